"""Sweeps: for every (K, seed), train (or load) the model, prove it with every strategy feasible for
that K, check every certificate with the standalone checker, and record one row per
(K, seed, strategy); plus, for K > 4, an accuracy estimate by sampling.

Results are one small JSON file per row under RESULTS/rows/ (and per estimate under
RESULTS/estimates/), each written atomically; a sweep skips every row already there, so a killed
sweep continues where it stopped. Work runs on a local process pool, or on an existing Dask
distributed cluster (`scheduler`).
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from compact_proofs import __version__
from compact_proofs.generator.training import zoo
from compact_proofs.generator.proving.prover import ProofError, prove
from compact_proofs.generator.weights_io import atomic_write

BRUTE_FORCE_LIMIT = 1 << 26  # inputs: brute force only where d_vocab^n_ctx allows it
ESTIMATE_SAMPLES = 1 << 17
ESTIMATE_Z = 2.5758293035489004  # two-sided 99%


@dataclass(frozen=True)
class Row:
    k: int
    seed: int
    strategy: str
    accepted: bool
    verified_correct: int
    total: int
    bound: float
    flops: int
    checker_ops: int
    unexplained_dimension: int
    complexity: str
    prove_seconds: float
    check_seconds: float
    digest: str
    version: str
    reason: str = ""
    model_digest: str = ""  # checker.weights.model_digest of the model
    manifest: str = ""  # the model against the published one: match, mismatch or unlisted


def _needs_estimate(k: int, d_vocab: int = 64) -> bool:
    """Where brute force is out of reach, accuracy is estimated by sampling (never a proof)."""
    return d_vocab**k > BRUTE_FORCE_LIMIT


def strategies_for(k: int, d_vocab: int = 64) -> list[str]:
    """Every Max-of-K strategy feasible at this size (the induction proofs are for the induction task)."""
    from compact_proofs.generator.proving.strategies import REGISTRY

    names = [name for name in REGISTRY if name != "brute-force" and not name.startswith("induction/")]
    return (["brute-force"] if d_vocab**k <= BRUTE_FORCE_LIMIT else []) + names


def _slug(strategy: str) -> str:
    return strategy.replace("/", "__")


def row_path(results: Path, k: int, seed: int, strategy: str) -> Path:
    return Path(results) / "rows" / f"k{k}" / f"seed{seed}" / f"{_slug(strategy)}.json"


def certificate_path(results: Path, k: int, seed: int, strategy: str) -> Path:
    return Path(results) / "certificates" / f"k{k}" / f"seed{seed}" / f"{_slug(strategy)}.msgpack"


def estimate_path(results: Path, k: int, seed: int) -> Path:
    return Path(results) / "estimates" / f"k{k}-seed{seed}.json"


def _code_version() -> str:
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def prove_and_check(weights: dict, k: int, seed: int, strategy: str, version: str, model: tuple[str, str] = ("", ""),
                    keep: Path | None = None) -> Row:
    """Prove; the verdict is the standalone checker's on the certificate's final bytes. `model`:
    the weights' digest and their comparison with the manifest, recorded in the row. `keep`:
    where to write the certificate (None: discard it)."""
    start = time.perf_counter()
    try:
        proof = prove(weights, strategy)
        if keep is not None:
            atomic_write(keep, proof.raw)
    except ProofError as exc:
        total = weights["embed.W_E"].shape[0] ** k
        return Row(k, seed, strategy, False, 0, total, 0.0, 0, 0, 0, "", time.perf_counter() - start, 0.0, "", version,
                   str(exc), *model)
    v = proof.verdict
    prove_seconds = time.perf_counter() - start - v.seconds
    return Row(k, seed, strategy, v.accepted, v.verified_correct or 0, v.total or 0,
               (v.claimed_correct / v.total) if v.accepted else 0.0, v.flops or 0, v.checker_ops or 0,
               v.unexplained_dimension or 0, v.complexity or "", prove_seconds, v.seconds, v.digest or "", version, v.reason,
               *model)


def sampled_accuracy(weights: dict, samples: int, seed: int) -> dict:
    """An ESTIMATE (not a proof) of accuracy from uniform random inputs evaluated in float64,
    with a 99% Wilson score interval; ties count as wrong."""
    import torch

    logits_of = _float64_logits(weights)
    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    gen = torch.Generator().manual_seed(seed)
    correct = 0
    for start in range(0, samples, 1 << 14):
        tokens = torch.randint(0, V, (min(1 << 14, samples - start), N), generator=gen).numpy()
        correct += int(label_strictly_largest(tokens, logits_of(tokens)).sum())
    p, z = correct / samples, ESTIMATE_Z
    centre = (p + z * z / (2 * samples)) / (1 + z * z / samples)
    half = z * math.sqrt(p * (1 - p) / samples + z * z / (4 * samples * samples)) / (1 + z * z / samples)
    return {"samples": samples, "correct": correct, "estimate": p, "ci_low": max(0.0, centre - half),
            "ci_high": min(1.0, centre + half), "confidence": 0.99, "method": "Wilson score interval, float64 evaluation",
            "label": "estimate (not a proof)"}


def label_strictly_largest(tokens: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per input: is the logit of max(x) strictly above every other (ties are wrong)? Overwrites logits."""
    label, rows = tokens.max(axis=1), np.arange(len(tokens))
    at_label = logits[rows, label]
    logits[rows, label] = -np.inf
    return at_label > logits.max(axis=1)


def _float64_logits(weights: dict) -> Callable[[np.ndarray], np.ndarray]:
    """tokens [b, n_ctx] -> the model's logits [b, d_vocab] in float64, through per-token tables:
    scores[i] = S[x_last, x_i, i] and logits = direct[x_last] + sum_i a_i OV[x_i, i] (the real
    model's algebra, rounded differently from a layer-by-layer pass; for estimates only)."""
    w = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
    get = lambda name, shape: w.get(name, np.zeros(shape)).reshape(shape)  # noqa: E731
    V, D = w["embed.W_E"].shape
    N, H = w["pos_embed.W_pos"].shape[0], w["blocks.0.attn.W_Q"].shape[-1]
    W_Q, W_K, W_V = (get(f"blocks.0.attn.W_{x}", (D, H)) for x in "QKV")
    b_Q, b_K, b_V = (get(f"blocks.0.attn.b_{x}", (H,)) for x in "QKV")
    W_O, b_O = get("blocks.0.attn.W_O", (H, D)), get("blocks.0.attn.b_O", (D,))
    W_U, b_U = get("unembed.W_U", (D, V)), get("unembed.b_U", (V,))
    resid = w["embed.W_E"][:, None, :] + w["pos_embed.W_pos"][None, :, :]  # [token, position, d]
    query = resid[:, -1] @ W_Q + b_Q  # [V, h]
    scores = np.einsum("qh,knh->qkn", query, resid @ W_K + b_K) / math.sqrt(H)  # [query, key token, position]
    ov = (resid @ W_V + b_V) @ W_O @ W_U  # [token, position, V]
    direct = (resid[:, -1] + b_O) @ W_U + b_U
    positions = np.arange(N)

    def logits(tokens: np.ndarray, attention: bool = False):
        """The logits, or with attention=True (logits, attention weights [b, n_ctx])."""
        s = scores[tokens[:, -1:], tokens, positions]
        a = np.exp(s - s.max(axis=1, keepdims=True))
        a /= a.sum(axis=1, keepdims=True)
        out = direct[tokens[:, -1]] + np.einsum("bn,bnv->bv", a, ov[tokens, positions])
        return (out, a) if attention else out

    return logits


def run_task(k: int, seed: int, strategies: list[str], results: str, models: str | None, d_vocab: int = 64,
             version: str | None = None, keep_certificates: bool = False) -> int:
    """Everything missing for one (K, seed); returns the number of rows written. `version`: the
    code version the sweep started with (recorded in every row; default: the current one).
    keep_certificates: also write each certificate under RESULTS/certificates/ (`check` reads them)."""
    import torch

    torch.set_num_threads(1)
    results_path = Path(results)
    missing = [s for s in strategies if not row_path(results_path, k, seed, s).exists()]
    need_estimate = _needs_estimate(k, d_vocab) and not estimate_path(results_path, k, seed).exists()
    if not missing and not need_estimate:
        return 0
    weights, digest, comparison = zoo.checked(k, seed, None if models is None else Path(models), d_vocab)
    version = version or _code_version()
    for strategy in missing:
        keep = certificate_path(results_path, k, seed, strategy) if keep_certificates else None
        row = prove_and_check(weights, k, seed, strategy, version, (digest, comparison.status), keep)
        atomic_write(row_path(results_path, k, seed, strategy), json.dumps(asdict(row)).encode())
    if need_estimate:
        estimate = {"k": k, "seed": seed, **sampled_accuracy(weights, ESTIMATE_SAMPLES, seed)}
        atomic_write(estimate_path(results_path, k, seed), json.dumps(estimate).encode())
    return len(missing)


def tasks_for(ks: Iterable[int], seeds: Iterable[int], strategies: list[str] | None, results: Path, d_vocab: int = 64):
    """(k, seed, strategies) units with work left, smallest K first."""
    out = []
    for k in ks:
        names = strategies if strategies is not None else strategies_for(k, d_vocab)
        for seed in seeds:
            if any(not row_path(results, k, seed, s).exists() for s in names) or (_needs_estimate(k, d_vocab) and not estimate_path(results, k, seed).exists()):
                out.append((k, seed, names))
    return out


def run(ks: list[int], seeds: list[int], results: Path, models: Path | None, strategies: list[str] | None = None,
        workers: int = 2, scheduler: str | None = None, on_done: Callable[[int, int], None] | None = None,
        d_vocab: int = 64, keep_certificates: bool = False) -> int:
    """Run every missing task; returns the number of tasks run. on_done(k, seed) after each."""
    work = tasks_for(ks, seeds, strategies, results, d_vocab)
    version = _code_version()  # once, at the start: the code every task of this sweep loads
    args = [(k, seed, names, str(results), None if models is None else str(models), d_vocab, version, keep_certificates)
            for k, seed, names in work]
    return dispatch(run_task, args, workers, scheduler, on_done)


def dispatch(task: Callable, args: list[tuple], workers: int, scheduler: str | None, on_done: Callable | None, mp_context=None) -> int:
    """task(*a) for every a in args: on a Dask scheduler, else on a local process pool (in this
    process when workers <= 1); on_done(a[0], a[1]) after each. Returns len(args)."""
    if scheduler is not None:
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            futures = {client.submit(task, *a, pure=False): a for a in args}
            for future in as_completed(futures):
                future.result()
                if on_done:
                    on_done(*futures[future][:2])
        return len(args)
    from concurrent.futures import ProcessPoolExecutor, as_completed as done_in_order

    if workers <= 1:
        for a in args:
            task(*a)
            if on_done:
                on_done(*a[:2])
        return len(args)
    with ProcessPoolExecutor(workers, mp_context=mp_context) as pool:
        futures = {pool.submit(task, *a): a for a in args}
        for future in done_in_order(futures):
            future.result()
            if on_done:
                on_done(*futures[future][:2])
    return len(args)


def rows_missing(work, results: Path) -> int:
    """The certificates the tasks `work` ((k, seed, strategies) units) have left to write."""
    return sum(not row_path(results, k, seed, s).exists() for k, seed, names in work for s in names)


def rows_written(results: Path) -> int:
    return sum(1 for _ in Path(results).glob("rows/k*/seed*/*.json"))


def load_rows(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(results).glob("rows/k*/seed*/*.json"))]


def load_estimates(results: Path) -> dict[tuple[int, int], dict]:
    out = {}
    for p in Path(results).glob("estimates/*.json"):
        e = json.loads(p.read_text())
        out[(e["k"], e["seed"])] = e
    return out
