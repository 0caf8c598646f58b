"""Turn a draft into a certificate the checker accepts, with the tightest claim it accepts."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from compact_proofs.checker import certificate
from compact_proofs.checker.context import Progress, no_progress
from compact_proofs.checker.verify import Verdict, check
from compact_proofs import __version__
from compact_proofs.generator.proving.strategies import REGISTRY, Draft

GENERATOR = {"name": "compact-proofs", "version": __version__}


class ProofError(RuntimeError):
    """The checker did not accept what a strategy produced (nothing is written). `status` is the
    checker's: rejected (a generator bug), limit (the model is too large for the strategy) or invalid."""

    def __init__(self, message: str, status: str = "rejected"):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Proof:
    raw: bytes
    verdict: Verdict


def _encode(strategy: str, weights: dict[str, np.ndarray], draft: Draft, claimed: int) -> bytes:
    total = weights["embed.W_E"].shape[0] ** weights["pos_embed.W_pos"].shape[0]
    return certificate.encode(
        strategy=strategy, params=draft.params, claimed_correct=claimed, total=total,
        weights=weights, evidence=draft.evidence, generator=GENERATOR,
    )


BEST_SUBCUBIC = "subcubic/best"


def names() -> list[str]:
    """Every strategy name `prove` accepts."""
    return list(REGISTRY) + [BEST_SUBCUBIC]


def prove_best_subcubic(weights: dict[str, np.ndarray], progress: Progress = no_progress, workers: int | None = None,
                        **options) -> Proof:
    """Every subcubic variant's search, on `workers` processes (default: as many as the cores and the
    memory allow); the variant whose draft claims the most inputs (the first in names() order on
    ties) is then certified and checked. Only the winner's certificate is encoded and checked: each
    draft's claim is the count its own evidence implies, computed with the checker's definitions."""
    from compact_proofs.checker.strategies import subcubic

    variants = [name for name in REGISTRY if name.startswith("subcubic/")]
    _within_cell_limit(weights, BEST_SUBCUBIC)
    groups: dict[tuple[str, str], list[str]] = {}  # variants that share attention bounds and anchors
    for name in variants:
        groups.setdefault(subcubic.axes(name)[1:], []).append(name)
    work = sorted(groups.values(), key=lambda group: subcubic.axes(group[0])[1] != "per_output+chords")  # longest first
    if workers is None:
        workers = default_workers(weights, len(work))
    claimed: dict[str, int] = {}
    progress("subcubic/best", 0, len(variants))
    for counts in _map(_claimed_counts, [(weights, group, options) for group in work], workers):
        claimed.update(counts)
        progress("subcubic/best", len(claimed), len(variants))
    best = max(variants, key=lambda name: (claimed[name], -variants.index(name)))
    return prove(weights, best, **options)


def _claimed_counts(weights: dict[str, np.ndarray], group: list[str], options: dict) -> dict[str, int]:
    return {name: REGISTRY[name](weights, no_progress, **options).claimed_correct for name in group}


def _map(task, args: list[tuple], workers: int):
    """task(*a) for each a in args, in completion order: in this process when workers <= 1 or when
    it may not have children (a daemon, e.g. a pool's worker), else on a pool of fresh processes."""
    import multiprocessing

    if workers <= 1 or multiprocessing.current_process().daemon:
        yield from (task(*a) for a in args)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"  # fork: no re-import of __main__
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        yield from (future.result() for future in as_completed([pool.submit(task, *a) for a in args]))


SMALL_CELLS = 1 << 15  # below this many cells a variant takes well under a second: no processes
BYTES_PER_CELL = 700  # a subcubic search's peak memory per cell, measured at d_vocab 512, K = 20 (tiered: 3.8 GB, 5.2M cells)


def default_workers(weights: dict[str, np.ndarray], tasks: int) -> int:
    """One process per available core, at most one per task, and no more than the available memory
    holds at BYTES_PER_CELL per cell each; 1 for small models."""
    cells = weights["embed.W_E"].shape[0] ** 2 * weights["pos_embed.W_pos"].shape[0]
    if cells < SMALL_CELLS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, tasks, _available_bytes() // (BYTES_PER_CELL * cells + (300 << 20))))


def _available_bytes() -> int:
    """MemAvailable from /proc/meminfo, else the free physical memory, else unlimited."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _within_cell_limit(weights: dict[str, np.ndarray], strategy: str) -> None:
    """The checker's subcubic cell limit, before any search (ProofError with status limit)."""
    from compact_proofs.checker import cost
    from compact_proofs.checker.strategies.subcubic import MAX_CELLS

    cells = weights["embed.W_E"].shape[0] ** 2 * weights["pos_embed.W_pos"].shape[0]
    if cells > MAX_CELLS:
        raise ProofError(f"{strategy} cannot be checked here (limit): {cost.quantity(cells)} cells exceed the subcubic "
                         f"limit {cost.quantity(MAX_CELLS)}", "limit")


def estimated_seconds(strategy: str, weights: dict[str, np.ndarray]) -> float:
    """A rough forecast of prove's time on a 2-core machine (for a note before long work)."""
    from compact_proofs.generator.weights_io import is_v2

    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    if strategy == "induction/positions":  # measured: 145 s at d_vocab 32, n_ctx 16 (2 cores, shared)
        return (V * N) ** 2 * V * V * 5e-7
    if strategy == "induction/positions2":  # measured: 5 times positions at d_vocab 16, n_ctx 16
        return (V * N) ** 2 * V * V * N * 2e-7
    if strategy.startswith("induction/"):  # measured: about 0.5 s per root cell at 8 x 8 (exact keys, vertices)
        return V * V * N * (V * N) ** 3 * V * 2.5e-7
    if is_v2(weights):  # measured: about 40 us per input for two layers of one head at d_model 32
        return V**N * 4e-5 * len({k.split(".")[1] for k in weights if k.startswith("blocks.")}) / 2
    return forecast_seconds(strategy, V, N)


def forecast_seconds(strategy: str, d_vocab: int, n_ctx: int) -> float:
    """The same forecast from the sizes alone."""
    from compact_proofs.checker.strategies.cubic import count_cases
    from compact_proofs.generator.proving.strategies.cubic import CLAIMS_UP_TO

    V, N = d_vocab, n_ctx
    if strategy == "brute-force":
        return V**N / 5e6
    if strategy.startswith("cubic"):
        cases = count_cases(V, N)  # measured (docs/results/scaling): with claims about 4e-6 s per case; derived,
        return cases * 4e-6 if cases <= CLAIMS_UP_TO else V**3 / 3 * (2e-6 + 1e-7 * N)  # per (m, q, k) triple
    if strategy == BEST_SUBCUBIC:  # measured: 160 searches at d_vocab 512, K = 20 in 701 s on 2 processes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return V * V * N * 1.7e-6 * sum(name.startswith("subcubic/") for name in REGISTRY) / max(1, min(cores, 30))
    if "/query_slot+ov_tiers+levels/" in strategy:  # measured: 116 s at d_vocab 512, K = 20, 101 s at 1024, K = 4
        return V * V * N * 2.2e-5
    return V * V * N * 2e-6


def prove(weights: dict, strategy: str, progress: Progress = no_progress, task: str | None = None,
          architecture: dict | None = None, task_file: bytes | None = None, **options) -> Proof:
    """Draft with `strategy` and claim the count its evidence implies (for brute force: the count
    the checker establishes on the draft). The verdict is the checker's on the returned bytes.
    `weights`: a TransformerLens-style state dict (numpy arrays or torch tensors; buffers such as
    attn.mask are dropped, as when a file is read), or a torch module such as a HookedTransformer
    (its state_dict() is taken). The verdict's seconds are the checker's time over every check made
    here (a standalone check of the bytes takes about as long). `options` go to the strategy's search (cubic:
    derived=True for the format without per-case claims; subcubic: rank=r for rank-r EQKE splits).
    A task other than max (checker/tasks.py), or a model with two layers or several heads, gives a
    format-v2 certificate (brute force, or for the task induction the compact proofs induction/*). With
    an `architecture` map (SEMANTICS.md, version 3: activation, normalization, eps), a model of
    compact_proofs' version-3 models, or a TransformerLens HookedTransformer with an MLP or
    LayerNorm, a format-v3 certificate (brute force; `task_file`: the bytes of the task `data`'s file)."""
    from collections.abc import Mapping

    from compact_proofs.generator.weights_io import from_state_dict, is_v2

    if architecture is not None or task_file is not None or _module_architecture(weights) is not None:
        return prove_v3(weights, strategy, task or "max", architecture, task_file, progress)
    if strategy not in names():
        raise ValueError(f"unknown strategy {strategy!r}; generator.prover.names() lists them")
    if not isinstance(weights, Mapping) and callable(getattr(weights, "state_dict", None)):
        weights = weights.state_dict()  # a torch module (a HookedTransformer): its parameters and buffers
    if not isinstance(weights, Mapping):
        raise TypeError(f"prove() takes a state dict (a mapping of names to tensors or arrays) or a torch module, "
                        f"not {type(weights).__name__}")
    weights = from_state_dict(weights)
    if task not in (None, "max") or is_v2(weights):
        return prove_v2(weights, strategy, task or "max", progress, **options)
    if strategy.startswith("induction/"):
        raise ProofError(f"{strategy} proves the induction task (task='induction'); this is a max model", "unsupported")
    if strategy == BEST_SUBCUBIC:
        return prove_best_subcubic(weights, progress, **options)
    if strategy.startswith("subcubic/"):
        _within_cell_limit(weights, strategy)
    draft = REGISTRY[strategy](weights, progress, **options)
    claimed = draft.claimed_correct
    seconds = 0.0  # the checker's time over every check below (the last one finds the first's work memoised)
    if claimed is None:  # let the checker establish the count first
        verdict = check(certificate.decode(_encode(strategy, weights, draft, 0)), progress)
        seconds += verdict.seconds
        if not verdict.accepted:
            raise ProofError(_refusal(strategy, "evidence", verdict), verdict.status)
        claimed = verdict.verified_correct
    raw = _encode(strategy, weights, draft, claimed)
    verdict = check(certificate.decode(raw), progress)
    verdict.seconds += seconds
    if not verdict.accepted:
        raise ProofError(_refusal(strategy, "certificate", verdict), verdict.status)
    return Proof(raw, verdict)


def _refusal(strategy: str, what: str, verdict) -> str:
    """Why no certificate came out: a limit or an unsupported case is not a rejection."""
    if verdict.status in ("limit", "unsupported"):
        return f"{strategy} cannot be checked here ({verdict.status}): {verdict.reason}"
    return f"the checker did not accept the {strategy} {what}: {verdict.reason}"


def prove_v2(weights: dict[str, np.ndarray], strategy: str, task: str, progress: Progress = no_progress, **options) -> Proof:
    """A format-v2 certificate (SEMANTICS.md, version 2): brute force over the task's domain, or for
    the task induction a compact proof (induction/*: options go to its search, e.g. depth=2); the
    claim is the count the checker establishes."""
    from compact_proofs.checker import tasks
    from compact_proofs.checker.errors import InvalidCertificate
    from compact_proofs.checker.strategies import induction

    if strategy != "brute-force" and not (strategy in induction.NAMES and task == "induction"):
        raise ProofError(f"{strategy} does not take this model and task (format v2 takes brute-force, and for the task "
                         f"induction the compact proofs {', '.join(induction.NAMES)})", "unsupported")
    try:
        total = tasks.resolve(task).domain_size(weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0])
    except InvalidCertificate as exc:
        raise ProofError(exc.reason, "invalid") from None
    draft = REGISTRY[strategy](weights, progress, **options) if strategy != "brute-force" else None
    evidence = draft.evidence if draft is not None else {}
    encode = lambda claimed: certificate.encode(strategy=strategy, params={}, claimed_correct=claimed, total=total,  # noqa: E731
                                                weights=weights, evidence=evidence, generator=GENERATOR, task=task)
    verdict = check(certificate.decode(encode(0)), progress)
    seconds = verdict.seconds  # the checker's time: the second check finds this one's work memoised
    if not verdict.accepted:
        raise ProofError(_refusal(strategy, "evidence", verdict), verdict.status)
    raw = encode(verdict.verified_correct)
    verdict = check(certificate.decode(raw))
    verdict.seconds += seconds
    if not verdict.accepted:
        raise ProofError(_refusal(strategy, "certificate", verdict), verdict.status)
    return Proof(raw, verdict)


def _module_architecture(model) -> dict | None:
    """The architecture map of a torch module that carries one (a version-3 model of
    training/model_v3.py, or a TransformerLens HookedTransformer with an MLP or LayerNorm)."""
    from collections.abc import Mapping

    if isinstance(model, Mapping):
        return None
    cfg = getattr(model, "cfg", None)
    if cfg is not None and callable(getattr(cfg, "architecture", None)):
        return cfg.architecture()
    if cfg is not None and hasattr(cfg, "normalization_type"):
        from compact_proofs.generator import importers

        return importers.transformer_lens_architecture(cfg, force=False)
    return None


def prove_v3(weights, strategy: str, task: str, architecture: dict | None = None, task_file: bytes | None = None,
             progress: Progress = no_progress) -> Proof:
    """A format-v3 certificate (SEMANTICS.md, version 3): brute force over the task's domain, the
    claim being the count the checker establishes. `weights`: a state dict, a version-3 model, or
    a TransformerLens HookedTransformer (its config gives the architecture)."""
    from collections.abc import Mapping

    from compact_proofs.checker.v3.tasks import NAMES
    from compact_proofs.generator import importers
    from compact_proofs.generator.weights_io import WeightsError, from_state_dict_v3

    if strategy != "brute-force":
        raise ProofError(f"{strategy} does not take models with MLPs or LayerNorm (format v3); use brute-force", "unsupported")
    if task not in NAMES:
        raise ProofError(f"unknown task {task!r} (format v3 knows: {', '.join(NAMES)})", "invalid")
    if not isinstance(weights, Mapping):
        if hasattr(getattr(weights, "cfg", None), "normalization_type"):  # a HookedTransformer
            weights, architecture = importers.from_hooked_transformer(weights)
        else:
            architecture = architecture or _module_architecture(weights)
            weights = weights.state_dict()
    if architecture is None:
        raise ProofError("a format-v3 model needs its architecture (activation, normalization, eps)", "invalid")
    try:
        weights = from_state_dict_v3(weights, architecture)
    except WeightsError as exc:
        raise ProofError(str(exc), "invalid") from None
    encode = lambda claimed, total: certificate.encode(  # noqa: E731
        strategy=strategy, params={}, claimed_correct=claimed, total=total, weights=weights, evidence={}, generator=GENERATOR,
        task=task, architecture=architecture, task_file=task_file)
    verdict = check(certificate.decode(encode(0, _v3_total(weights, architecture, task, task_file))), progress)
    seconds = verdict.seconds
    if not verdict.accepted:
        raise ProofError(_refusal(strategy, "evidence", verdict), verdict.status)
    raw = encode(verdict.verified_correct, verdict.total)
    verdict = check(certificate.decode(raw))
    verdict.seconds += seconds
    if not verdict.accepted:
        raise ProofError(_refusal(strategy, "certificate", verdict), verdict.status)
    return Proof(raw, verdict)


def _v3_total(weights: dict, architecture: dict, task: str, task_file: bytes | None) -> int:
    from compact_proofs.checker.errors import InvalidCertificate
    from compact_proofs.checker.v3 import tasks

    try:
        V, O, N = weights["embed.W_E"].shape[0], weights["unembed.W_U"].shape[1], weights["pos_embed.W_pos"].shape[0]
        return tasks.resolve(task, V, O, N, task_file).size
    except (InvalidCertificate, KeyError) as exc:
        raise ProofError(getattr(exc, "reason", str(exc)), "invalid") from None
