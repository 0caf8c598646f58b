"""The standalone checker's command line: compact-proofs-check CERT... [--json] [--quiet].

Exit codes: 0 every certificate accepted, 1 some claim rejected, 2 usage error, 3 some file
unreadable or not a valid certificate. The verdict is one stable line per file on stdout
("ACCEPTED <path> ..." / "REJECTED <path>: reason"); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from checker import strategies
from checker.certificate import load
from checker.errors import InvalidCertificate
from checker.verify import Verdict, check

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3


def _progress_bar(enabled: bool):
    """A rich progress callback on stderr, or a no-op."""
    if not enabled:
        return None, lambda stage, done, total: None
    from rich.progress import Progress

    bar = Progress(transient=True, console=None, redirect_stdout=False, redirect_stderr=False)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def summary(path: str, verdict: Verdict) -> str:
    if verdict.accepted:
        frac = verdict.claimed_correct / verdict.total
        return (f"ACCEPTED {path}: {verdict.strategy}, accuracy >= {verdict.bound} = {frac:.6f} "
                f"(checker established {verdict.verified_correct}; {verdict.seconds:.2f} s)")
    return f"REJECTED {path}: {verdict.reason}"


def check_file(path: str, progress, max_seconds: float | None = None, pure: bool = False) -> Verdict:
    if pure:
        return check_file_pure(path)
    try:
        cert = load(path)
    except InvalidCertificate as exc:
        return Verdict(False, "", None, None, None, str(exc), 0.0, invalid=True)
    return check(cert, progress, max_seconds)


def check_file_pure(path: str) -> Verdict:
    """The standard-library second path (checker/pure): brute-force and cubic certificates."""
    import time

    from checker.pure import check_bytes

    start = time.perf_counter()
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        return Verdict(False, "", None, None, None, f"read: cannot read {path}: {exc.strerror or exc}", 0.0, invalid=True)
    pure = check_bytes(raw)
    return Verdict(pure.accepted, "", pure.claimed_correct, pure.verified_correct, pure.total, f"pure: {pure.reason}",
                   time.perf_counter() - start, invalid=pure.invalid)


def run(paths: Sequence[str], as_json: bool = False, show_progress: bool | None = None, max_seconds: float | None = None,
        pure: bool = False) -> int:
    if show_progress is None:
        show_progress = sys.stderr.isatty() and not as_json
    bar, progress = _progress_bar(show_progress)
    verdicts = []
    for path in paths:
        if bar is not None:
            with bar:
                verdict = check_file(path, progress, max_seconds, pure)
        else:
            verdict = check_file(path, progress, max_seconds, pure)
        verdicts.append((path, verdict))
        if not as_json:
            print(summary(path, verdict), flush=True)
    if as_json:
        records = [{"path": p, **v.as_json()} for p, v in verdicts]
        print(json.dumps(records[0] if len(records) == 1 else records, indent=2, default=str))
    if any(v.invalid for _, v in verdicts):
        return EXIT_INVALID
    return EXIT_ACCEPTED if all(v.accepted for _, v in verdicts) else EXIT_REJECTED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="compact-proofs-check",
        description="Check compact-proofs certificates with sound arithmetic. Exit 0 iff every certificate is accepted.",
    )
    parser.add_argument("certificates", nargs="*", metavar="CERT", help="certificate files (.msgpack)")
    parser.add_argument("--json", action="store_true", help="print machine-readable verdicts")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="S",
                        help="REJECT a certificate whose check takes longer than S seconds")
    parser.add_argument("--pure", action="store_true",
                        help="check with the standard-library second path (exact, slow; brute-force and cubic, small models)")
    parser.add_argument("--list-strategies", action="store_true", help="list the strategies this checker knows")
    args = parser.parse_args(argv)
    if args.list_strategies:
        print("\n".join(strategies.names()))
        return EXIT_ACCEPTED
    if not args.certificates:
        parser.error("give at least one certificate")
    if args.max_seconds is not None and not args.max_seconds > 0:
        parser.error("--max-seconds must be positive")
    return run(args.certificates, as_json=args.json, show_progress=False if args.no_progress or args.pure else None,
               max_seconds=args.max_seconds, pure=args.pure)


def main_exit() -> None:
    sys.exit(main())
