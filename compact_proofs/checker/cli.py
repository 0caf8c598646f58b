"""The standalone checker's command line: compact-proofs-check CERT... (= python -m checker).

Exit codes (the contract; README and CLAIMS.md):
    0  every certificate accepted (and, with --min-accuracy, every bound at least that)
    1  a claim is not established (the checker refutes it), or a bound is below --min-accuracy,
       or a certificate is not about the model given by --model
    2  usage error (bad options)
    3  a file is unreadable or not a valid certificate
    4  a resource limit stopped a check (a size cap, or --max-seconds): nothing was decided
    5  a valid certificate this checker (path) does not check (--pure on a subcubic certificate)
  130  interrupted (Ctrl-C)
With several certificates the exit code is the first of 3, 1, 4, 5 that any of them has.

stdout carries one verdict line per certificate ("ACCEPTED <path>: ...", "REJECTED <path>: ...",
"INVALID", "LIMIT", "UNSUPPORTED"), or with --json one document (schema/verdicts-v1.schema.json);
progress and errors go to stderr. --max-seconds S is a hard limit: each check runs in a child
process that is stopped S seconds (plus one for start-up) after it began, whatever it is doing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from fractions import Fraction
from typing import Callable, Sequence

from compact_proofs.checker import strategies
from compact_proofs.checker.verify import Verdict

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE, EXIT_INVALID, EXIT_LIMIT, EXIT_UNSUPPORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
EXIT_OF = {"accepted": EXIT_ACCEPTED, "rejected": EXIT_REJECTED, "invalid": EXIT_INVALID, "limit": EXIT_LIMIT,
           "unsupported": EXIT_UNSUPPORTED}
SEVERITY = ("invalid", "rejected", "limit", "unsupported")  # which status decides the exit code of a batch
WATCHDOG_GRACE = 1.0  # seconds on top of --max-seconds before the child is stopped
JSON_SCHEMA = "compact-proofs/verdicts"
JSON_VERSION = 1
VERSION = "0.1.0"

Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------------
# what is shown


def lower_decimal(numerator: int, denominator: int, digits: int = 6) -> str:
    """numerator / denominator as a decimal rounded DOWN: `digits` decimals, or, below 10^-4, in
    scientific notation with `digits` significant digits (a lower bound never shown larger)."""
    if denominator <= 0 or numerator < 0:
        raise ValueError("a non-negative fraction is required")
    value = Fraction(numerator, denominator)
    if value == 0 or value >= Fraction(1, 10**4):
        scaled = value.numerator * 10**digits // value.denominator
        return f"{scaled // 10**digits}.{scaled % 10**digits:0{digits}d}"
    exponent = math.floor(math.log10(value.numerator) - math.log10(value.denominator))
    while Fraction(10) ** exponent > value:  # log10 in floats may be off by one near powers of ten
        exponent -= 1
    while Fraction(10) ** (exponent + 1) <= value:
        exponent += 1
    mantissa = value / Fraction(10) ** exponent  # in [1, 10)
    scaled = mantissa.numerator * 10 ** (digits - 1) // mantissa.denominator
    return f"{scaled // 10 ** (digits - 1)}.{scaled % 10 ** (digits - 1):0{digits - 1}d}e{exponent:+03d}"


def float_down(numerator: int, denominator: int) -> float:
    """The largest float64 f <= numerator / denominator whose shortest decimal (repr, what JSON
    prints) is also <= numerator / denominator: the printed value, read back exactly (as
    --min-accuracy reads it), never exceeds the bound. It is the largest float at or below the
    bound, or the float just below that one when that float's shortest decimal lies above the
    bound (the decimal is within half an ulp of its float, so one step down always suffices)."""
    value = Fraction(numerator, denominator)
    f = float(value)
    if Fraction(f) > value:
        f = math.nextafter(f, -math.inf)
    if Fraction(repr(f)) > value:
        f = math.nextafter(f, -math.inf)
    return f


def summary(path: str, verdict: Verdict) -> str:
    if verdict.accepted:
        task = verdict.notes.get("task", "max")
        what = verdict.strategy if task == "max" else f"{verdict.strategy}, task {task}"
        if verdict.notes.get("task_sha256"):  # a task given as data: its file's digest, as sha256sum prints it
            what += f" (file {verdict.notes['task_sha256']})"
        undecided = f", {verdict.notes['undecided']} undecided" if verdict.notes.get("undecided") else ""
        if not verdict.total:  # an empty domain (e.g. induction at n_ctx 1): nothing to bound
            return (f"ACCEPTED {path}: {what}, 0 of 0 inputs: the task's domain is empty, so there is no accuracy to bound "
                    f"(checker established {verdict.verified_correct}; {verdict.seconds:.2f} s)")
        return (f"ACCEPTED {path}: {what}, accuracy >= {verdict.bound} = "
                f"{lower_decimal(verdict.claimed_correct, verdict.total)} "
                f"(checker established {verdict.verified_correct}{undecided}; {verdict.seconds:.2f} s)")
    return f"{verdict.status.upper()} {path}: {verdict.reason}"


def record(path: str, verdict: Verdict) -> dict:
    """One certificate's entry of the --json document (schema/verdicts-v1.schema.json)."""
    big = lambda n: None if n is None else str(n)  # noqa: E731  (exact, whatever the size)
    accuracy = float_down(verdict.claimed_correct, verdict.total) if verdict.accepted and verdict.total else None
    return {
        "path": path, "status": verdict.status, "accepted": verdict.accepted, "strategy": verdict.strategy,
        "claimed_correct": big(verdict.claimed_correct), "verified_correct": big(verdict.verified_correct),
        "total": big(verdict.total), "bound": verdict.bound, "accuracy_lower_bound": accuracy,
        "reason": verdict.reason, "seconds": round(verdict.seconds, 6),
        "certificate_digest": verdict.digest, "weights_digest": verdict.weights_digest,
        "flops": big(verdict.flops), "checker_ops": big(verdict.checker_ops),
        "unexplained_dimension": big(verdict.unexplained_dimension), "complexity": verdict.complexity,
        "notes": {k: (v if isinstance(v, (bool, str)) or v is None else str(v) if isinstance(v, int) else
                      v if isinstance(v, float) and math.isfinite(v) else str(v)) for k, v in verdict.notes.items()},
    }


# ---------------------------------------------------------------------------------------------
# checking one file


def _check_here(path: str, progress: Progress, max_seconds: float | None, pure: bool) -> Verdict:
    if pure:
        return _check_pure(path, progress)
    from compact_proofs.checker.certificate import load
    from compact_proofs.checker.errors import InvalidCertificate
    from compact_proofs.checker.verify import check

    try:
        cert = load(path)
    except InvalidCertificate as exc:
        return Verdict(False, "", None, None, None, str(exc), 0.0, invalid=True)
    return check(cert, progress, max_seconds)


def _check_pure(path: str, progress: Progress) -> Verdict:
    """The standard-library second path (checker/pure): brute-force and cubic certificates."""
    from compact_proofs.checker.pure import check_bytes

    from compact_proofs.checker.pure import MAX_FILE_BYTES

    start = time.perf_counter()
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return Verdict(False, "", None, None, None, f"pure: file larger than {MAX_FILE_BYTES} bytes", 0.0, invalid=True)
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)  # never more than the format allows (a device may not say its size)
    except OSError as exc:
        return Verdict(False, "", None, None, None, f"read: cannot read {path}: {exc.strerror or exc}", 0.0, invalid=True)
    pure = check_bytes(raw, progress, notice=lambda message: print(f"note: {message}", file=sys.stderr, flush=True))
    return Verdict(pure.accepted, pure.strategy, pure.claimed_correct, pure.verified_correct, pure.total,
                   f"pure: {pure.reason}", time.perf_counter() - start, invalid=pure.invalid, limit=pure.limit,
                   unsupported=pure.unsupported, notes=pure.notes, weights_digest=pure.weights_digest)


def _child(connection, path: str, max_seconds: float, pure: bool) -> None:
    """The watchdog's child: check, sending progress (at most ten updates a second) and the verdict."""
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.1 or done == total:
            last[0] = now
            connection.send(("progress", (stage, done, total)))

    try:
        verdict = _check_here(path, progress, max_seconds, pure)
    except BaseException as exc:  # never an accept; reported by the parent
        verdict = Verdict(False, "", None, None, None, f"internal error: {type(exc).__name__}: {exc}", 0.0)
    connection.send(("verdict", verdict))
    connection.close()


def _check_with_watchdog(path: str, progress: Progress, max_seconds: float, pure: bool) -> Verdict:
    """The check in a forked child, stopped once max_seconds + WATCHDOG_GRACE have passed."""
    import multiprocessing

    start = time.monotonic()
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, path, max_seconds, pure), daemon=True)
    child.start()
    sender.close()
    verdict = None
    try:
        while verdict is None:
            remaining = start + max_seconds + WATCHDOG_GRACE - time.monotonic()
            if remaining <= 0:
                break
            if not receiver.poll(min(remaining, 3600.0)):  # (poll takes at most about 2^31 ms)
                continue
            try:
                kind, payload = receiver.recv()
            except (EOFError, OSError):
                break
            if kind == "progress":
                progress(*payload)
            else:
                verdict = payload
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if verdict is not None:
        return verdict
    elapsed = time.monotonic() - start
    if elapsed >= max_seconds:
        return Verdict(False, "", None, None, None, f"resources: time limit of {max_seconds:g} s exceeded (stopped after "
                       f"{elapsed:.1f} s)", elapsed, limit=True)
    return Verdict(False, "", None, None, None, f"internal error: the checking process ended with code {child.exitcode}", elapsed)


def check_file(path: str, progress: Progress, max_seconds: float | None = None, pure: bool = False) -> Verdict:
    if max_seconds is None or not hasattr(os, "fork"):
        return _check_here(path, progress, max_seconds, pure)
    return _check_with_watchdog(path, progress, max_seconds, pure)


def _about_model(verdict: Verdict, model_digest: str) -> Verdict:
    if verdict.accepted and verdict.weights_digest != model_digest:
        verdict.accepted = False
        verdict.reason = (f"model: the certificate's weights ({verdict.weights_digest}) are not the given model's "
                          f"({model_digest})")
    return verdict


def _at_least(verdict: Verdict, min_accuracy: Fraction) -> Verdict:
    if verdict.accepted and not verdict.total:
        verdict.accepted = False
        verdict.reason = f"the task's domain is empty: there is no accuracy to compare with --min-accuracy {min_accuracy}"
    elif verdict.accepted and Fraction(verdict.claimed_correct, verdict.total) < min_accuracy:
        verdict.accepted = False
        verdict.reason = (f"bound {verdict.claimed_correct}/{verdict.total} = {lower_decimal(verdict.claimed_correct, verdict.total, 20)}... "
                          f"is below --min-accuracy {min_accuracy} (compared exactly; the claim itself is established)")
    return verdict


# ---------------------------------------------------------------------------------------------
# the command


def _progress_bar(enabled: bool):
    """A rich progress callback on stderr, or a no-op (also when rich is not installed)."""
    if enabled:
        try:
            from rich.console import Console
            from rich.progress import Progress as Bar
        except ImportError:
            enabled = False
    if not enabled:
        return None, lambda stage, done, total: None
    bar = Bar(transient=True, console=Console(stderr=True))
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def run(paths: Sequence[str], as_json: bool = False, show_progress: bool | None = None, max_seconds: float | None = None,
        pure: bool = False, quiet: bool = False, min_accuracy: Fraction | None = None, model_digest: str | None = None) -> int:
    """Check every path; print verdicts; return the exit code of the contract above."""
    if show_progress is None:
        show_progress = sys.stderr.isatty() and not as_json and not quiet
    bar, progress = _progress_bar(show_progress)
    verdicts = []
    for path in paths:
        if bar is not None:
            with bar:
                verdict = check_file(path, progress, max_seconds, pure)
        else:
            verdict = check_file(path, progress, max_seconds, pure)
        if model_digest is not None:
            verdict = _about_model(verdict, model_digest)
        if min_accuracy is not None:
            verdict = _at_least(verdict, min_accuracy)
        verdicts.append((path, verdict))
        if not as_json and not quiet:
            print(summary(path, verdict), flush=True)
    statuses = {v.status for _, v in verdicts}
    code = next((EXIT_OF[s] for s in SEVERITY if s in statuses), EXIT_ACCEPTED)
    if as_json:
        document = {"schema": JSON_SCHEMA, "version": JSON_VERSION, "exit_code": code,
                    "results": [record(p, v) for p, v in verdicts]}
        print(json.dumps(document, indent=2, allow_nan=False))
    return code


MAX_NUMBER_TEXT = 1000  # characters of a --min-accuracy value
MAX_EXPONENT = 1000  # |e| of a decimal's exponent: 1e-1000 is the smallest gate above 0 that can be written
_EXPONENT = re.compile(r"[eE]\s*([+-]?\d+)\s*\Z")


def fraction_in_unit_interval(text: str) -> Fraction:
    """A decimal (with an optional exponent, |e| <= MAX_EXPONENT) or n/d in [0, 1], read exactly,
    in time bounded by the text's length (Fraction alone would build 10^e for any exponent e)."""
    if len(text) > MAX_NUMBER_TEXT:
        raise argparse.ArgumentTypeError(f"longer than {MAX_NUMBER_TEXT} characters")
    exponent = _EXPONENT.search(text)
    if exponent is not None and abs(int(exponent[1])) > MAX_EXPONENT:
        raise argparse.ArgumentTypeError(f"exponent {exponent[1]} outside -{MAX_EXPONENT}..{MAX_EXPONENT}")
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must lie in [0, 1]")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compact-proofs-check",
        description="Check compact-proofs certificates in sound arithmetic. Exit 0 iff every certificate is accepted; "
                    "1 a claim not established, 2 usage, 3 invalid file, 4 resource or time limit, 5 not supported here.",
    )
    p.add_argument("certificates", nargs="*", metavar="CERT",
                   help="certificate files (.msgpack), or directories to search for *.msgpack; options may come before or after them")
    p.add_argument("--json", action="store_true", help="print one JSON document (schema/verdicts-v1.schema.json)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing; the exit code is the verdict")
    p.add_argument("--max-seconds", type=_positive_seconds, default=None, metavar="S",
                   help="stop any check after S seconds (exit 4; a hard limit)")
    p.add_argument("--min-accuracy", type=fraction_in_unit_interval, default=None, metavar="X",
                   help="also require every certified bound to be at least X (exit 1 otherwise), for CI gating: a decimal "
                        f"(exponent within +-{MAX_EXPONENT}) or n/d, compared exactly; the bound a verdict prints, as text "
                        "or as --json's accuracy_lower_bound, passes when given back")
    p.add_argument("--model", metavar="FILE", help="require every certificate to be about this model (.npz, .safetensors, .pt)")
    p.add_argument("--pure", action="store_true",
                   help="check with the standard-library second path (brute-force and cubic certificates; format-v2 brute force up to 2^20 sequences)")
    p.add_argument("--list-strategies", action="store_true", help="list the strategies this checker knows")
    p.add_argument("--version", action="version", version=f"compact-proofs-check {VERSION}")
    return p


def certificate_paths(given: Sequence[str]) -> list[str]:
    """The files to check: each file as given, each directory's *.msgpack files (recursively, sorted).
    Raises ValueError for a directory without any."""
    paths = []
    for name in given:
        if os.path.isdir(name):
            from pathlib import Path

            found = sorted(str(f) for f in Path(name).rglob("*.msgpack"))
            if not found:
                raise ValueError(f"no certificates (*.msgpack) under {name}")
            paths += found
        else:
            paths.append(name)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)  # options after certificates too: `CERT --min-accuracy X CERT`
    if args.list_strategies:
        print("\n".join(strategies.names()))
        return EXIT_ACCEPTED
    if not args.certificates:
        parser().error("give at least one certificate")
    try:
        args.certificates = certificate_paths(args.certificates)
    except ValueError as exc:
        parser().error(str(exc))
    model_digest = None
    if args.model is not None:
        from compact_proofs.checker.model_file import ModelFileError, digest_of_file

        try:
            model_digest = digest_of_file(args.model)
        except ModelFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            if args.json:  # the same document shape: nothing was checked
                print(json.dumps({"schema": JSON_SCHEMA, "version": JSON_VERSION, "exit_code": EXIT_INVALID, "results": []}))
            return EXIT_INVALID
    progress = args.progress if args.progress is not None else None
    if args.quiet or args.json:
        progress = False if args.progress is None else progress
    return run(args.certificates, as_json=args.json, show_progress=progress, max_seconds=args.max_seconds,
               pure=args.pure, quiet=args.quiet, min_accuracy=args.min_accuracy, model_digest=model_digest)


def main_exit() -> None:
    """The console script: the exit code of main, with Ctrl-C and a closed pipe as one line, never a traceback."""
    try:
        code = main()
        sys.stdout.flush()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `compact-proofs-check --list-strategies | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_ACCEPTED
    sys.exit(code)
