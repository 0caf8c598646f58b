"""The scaling study: where each proof family stays feasible and non-vacuous as d_vocab, K and
d_model grow.

Three axes around the paper's model (d_vocab 64, K = 4, d_model = d_head = 32):
    d_vocab in {32, 64, 128, 256, 512} at K in {4, 10, 20}, and on to 2048 at K in {4, 20};
    K in {2, 3, 4, 5, 10, 20, 40, 80, 160} at d_vocab 64;
    d_model = d_head in {8, 16, 32, 64} at d_vocab 64, K = 4.
The extension (d_vocab 1024 and 2048, K 80 and 160) looks for the sizes where each family goes
vacuous or infeasible; a family that cannot run there is recorded with the reason (a forecast
beyond the budget, or a checker resource limit).
Every model is trained with the paper's recipe unchanged (3000 AdamW steps of batch 128, portable:
generator/training/train.py), so size is the only variable; its sampled accuracy is recorded next to it.

Per (configuration, seed): one model file and one JSON record of it (training seconds, digest,
sampled accuracy, an estimate and never a proof) under RESULTS/models/; per strategy one row under
RESULTS/rows/, written atomically, so the study resumes where it stopped. Each proof runs in a
forked child process, so its peak resident memory is its own (it includes the interpreter and
libraries the child inherits, recorded as `baseline_rss_mb`). `prove_seconds` is the wall time of
`prove` (search, and the checker's verdict on the certificate); `check_seconds` that of a second,
cold check of the certificate's bytes (run where prove took at most a minute; above, prove's time
is mostly its one full check). The families are brute force (where
d_vocab^K <= 2^26), cubic, cubic/reference, and three subcubic variants: the best tiered variant
of the main sweep (the best subcubic family at every K), the best per-output-chords variant (the
best before the tiers) and the best of the paper's 100. A strategy whose forecast exceeds the per-proof
budget is recorded as skipped, and one the checker refuses by a resource limit as `limit`.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from compact_proofs.generator import weights_io
from compact_proofs.generator.weights_io import atomic_write

TIERED = "subcubic/mean_query+max_diff_exact_per_max/query_slot+ov_tiers+levels/exact_EQKE+max_diff_exact"
FAMILIES = {  # strategy -> family shown in the report
    "brute-force": "brute force",
    "cubic": "cubic",
    "cubic/reference": "cubic/reference",
    TIERED: "subcubic (tiered)",
    "subcubic/max_diff_exact/per_output+chords/exact_EQKE+max_diff_exact": "subcubic (chords)",
    "subcubic/max_diff_exact/mean_query+diff/exact_EQKE+max_diff_exact": "subcubic (paper's best)",
}
DEFAULT_SEEDS = 10
DEFAULT_BUDGET = 1800.0  # seconds of forecast per proof; above it a strategy is skipped


@dataclass(frozen=True, order=True)
class Config:
    d_vocab: int
    n_ctx: int
    d_model: int = 32

    @property
    def name(self) -> str:
        return f"v{self.d_vocab}-k{self.n_ctx}-d{self.d_model}"

    @property
    def inputs(self) -> int:
        return self.d_vocab**self.n_ctx


def grid() -> list[Config]:
    """The study's configurations (each once), smallest first."""
    configs = {Config(v, k) for v in (32, 64, 128, 256, 512) for k in (4, 10, 20)}
    configs |= {Config(v, k) for v in (1024, 2048) for k in (4, 20)}
    configs |= {Config(64, k) for k in (2, 3, 4, 5, 10, 20, 40, 80, 160)}
    configs |= {Config(64, 4, d) for d in (8, 16, 32, 64)}
    return sorted(configs, key=lambda c: (c.d_vocab**3 * c.n_ctx**2 * c.d_model, c))


def parse_config(text: str) -> Config:
    """`v128-k10` or `v64-k4-d16` (d_model = d_head, default 32)."""
    parts = dict((p[0], p[1:]) for p in text.lower().split("-") if p)
    try:
        config = Config(int(parts.pop("v")), int(parts.pop("k")), int(parts.pop("d", 32)))
    except (KeyError, ValueError):
        raise ValueError(f"cannot read configuration {text!r}; write e.g. v128-k10 or v64-k4-d16") from None
    if parts or min(config.d_vocab, config.n_ctx, config.d_model) < 1:
        raise ValueError(f"cannot read configuration {text!r}; write e.g. v128-k10 or v64-k4-d16")
    return config


def model_path(results: Path, config: Config, seed: int) -> Path:
    return Path(results) / "models" / f"{config.name}-seed{seed}.npz"


def model_record_path(results: Path, config: Config, seed: int) -> Path:
    return Path(results) / "models" / f"{config.name}-seed{seed}.json"


def row_path(results: Path, config: Config, seed: int, strategy: str) -> Path:
    return Path(results) / "rows" / config.name / f"seed{seed}" / f"{strategy.replace('/', '__')}.json"


def skip_reason(config: Config, strategy: str, budget: float) -> str:
    """Why a strategy is not run on a configuration ('' if it is)."""
    from compact_proofs.generator.proving.prover import forecast_seconds
    from compact_proofs.generator.studies.sweep import BRUTE_FORCE_LIMIT

    if strategy == "brute-force" and config.inputs > BRUTE_FORCE_LIMIT:
        return f"d_vocab^K = {config.inputs:.3g} inputs exceed the brute-force limit {BRUTE_FORCE_LIMIT}"
    forecast = forecast_seconds(strategy, config.d_vocab, config.n_ctx)
    if forecast > budget:
        return f"forecast {forecast:.0f} s exceeds the budget of {budget:.0f} s per proof"
    return ""


def _rss_mb() -> float:
    """This process's current resident set (Linux /proc), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mb() -> float:
    """The largest resident set of this process or any of its finished children (kB on Linux)."""
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def model_for(results: Path, config: Config, seed: int) -> dict:
    """The model of (configuration, seed): trained once with the paper's recipe, then loaded; its
    record (training seconds, digest, sampled accuracy) written next to it."""
    from compact_proofs.checker.weights import model_digest
    from compact_proofs.generator.training.model import ModelConfig
    from compact_proofs.generator.studies.sweep import ESTIMATE_SAMPLES, sampled_accuracy
    from compact_proofs.generator.training.train import TrainConfig, about, train

    path, record = model_path(results, config, seed), model_record_path(results, config, seed)
    if path.exists() and record.exists():
        return weights_io.load(path)
    start = time.perf_counter()
    cfg = ModelConfig(config.d_vocab, config.n_ctx, config.d_model, config.d_model)
    model = train(seed, cfg)
    seconds = time.perf_counter() - start
    weights = {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}
    weights_io.save(path, weights, about(seed, cfg, TrainConfig()))
    info = {**asdict(config), "seed": seed, "train_seconds": seconds, "recipe": asdict(TrainConfig()),
            "model_digest": model_digest(weights), "sampled": sampled_accuracy(weights, ESTIMATE_SAMPLES, seed)}
    atomic_write(record, json.dumps(info).encode())
    return weights


COLD_CHECK_UP_TO = 60.0  # seconds of prove: below, the certificate is also checked again from a cold start


def _prove_in_child(weights: dict, strategy: str, pipe, task: str | None = None, options: dict | None = None) -> None:
    from compact_proofs.checker import memo
    from compact_proofs.checker.verify import check_bytes
    from compact_proofs.generator.proving.prover import ProofError, prove

    baseline = _rss_mb()
    start = time.perf_counter()
    try:
        proof = prove(weights, strategy, task=task, **(options or {}))
        seconds = time.perf_counter() - start
        v = proof.verdict
        out = {"status": "accepted" if v.accepted else "rejected", "reason": v.reason,
               "verified_correct": str(v.verified_correct or 0), "total": str(v.total or 0),
               "bound": (v.verified_correct or 0) / v.total if v.total else 0.0, "flops": v.flops or 0,
               "checker_ops": v.checker_ops or 0, "unexplained_dimension": v.unexplained_dimension or 0,
               "complexity": v.complexity or "", "prove_seconds": seconds, "certificate_bytes": len(proof.raw),
               "digest": v.digest or "", "check_seconds": None}
        if seconds <= COLD_CHECK_UP_TO:
            memo.clear()
            cold = check_bytes(proof.raw)
            out["check_seconds"] = cold.seconds if cold.accepted else None
    except ProofError as exc:
        out = {"status": exc.status if exc.status in ("limit", "unsupported") else "rejected", "reason": str(exc),
               "prove_seconds": time.perf_counter() - start}
    except MemoryError:
        out = {"status": "limit", "reason": "out of memory", "prove_seconds": time.perf_counter() - start}
    out["peak_rss_mb"], out["baseline_rss_mb"] = _peak_rss_mb(), baseline
    pipe.send(out)
    pipe.close()


def measure(weights: dict, strategy: str, task: str | None = None, **options) -> dict:
    """Prove and check in a forked child; the child's outcome, times, bytes and peak memory.
    `task` and `options` go to prove (e.g. task="induction", depth=1)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_prove_in_child, args=(weights, strategy, send, task, options))
    child.start()
    send.close()
    try:
        out = receive.recv()
    except EOFError:
        out = {"status": "limit", "reason": "the proving process ended without a result (killed, e.g. out of memory)"}
    child.join()
    return out


def run_unit(config: Config, seed: int, strategies: list[str], results: str, budget: float, version: str) -> int:
    """Everything missing for one (configuration, seed); returns the number of rows written."""
    import torch

    torch.set_num_threads(1)
    results_path = Path(results)
    missing = [s for s in strategies if not row_path(results_path, config, seed, s).exists()]
    if not missing and model_record_path(results_path, config, seed).exists():
        return 0
    weights = model_for(results_path, config, seed)
    for strategy in missing:
        row = {**asdict(config), "seed": seed, "strategy": strategy, "family": FAMILIES.get(strategy, strategy),
               "version": version}
        reason = skip_reason(config, strategy, budget)
        row.update({"status": "skipped", "reason": reason} if reason else measure(weights, strategy))
        atomic_write(row_path(results_path, config, seed, strategy), json.dumps(row).encode())
    return len(missing)


def units(configs: list[Config], seeds: list[int], strategies: list[str], results: Path) -> list[tuple[Config, int]]:
    """(configuration, seed) pairs with work left, in grid order."""
    return [(c, s) for c in configs for s in seeds
            if not model_record_path(results, c, s).exists() or any(not row_path(results, c, s, x).exists() for x in strategies)]


def run(configs: list[Config], seeds: list[int], results: Path, strategies: list[str] | None = None, workers: int = 2,
        scheduler: str | None = None, budget: float = DEFAULT_BUDGET, on_done: Callable[[Config, int], None] | None = None) -> int:
    """Run every missing unit on a local process pool or a Dask scheduler; returns the number run."""
    from compact_proofs.generator.studies.sweep import _code_version, dispatch

    names = list(strategies or FAMILIES)
    work = units(configs, seeds, names, results)
    version = _code_version()
    args = [(c, s, names, str(results), budget, version) for c, s in work]
    return dispatch(run_unit, args, workers, scheduler, on_done, multiprocessing.get_context("spawn"))


def load(results: Path) -> tuple[list[dict], dict[tuple[str, int], dict]]:
    """(rows, model records by (configuration name, seed))."""
    rows = [json.loads(p.read_text()) for p in sorted(Path(results).glob("rows/*/seed*/*.json"))]
    models = {}
    for p in Path(results).glob("models/*.json"):
        m = json.loads(p.read_text())
        models[(Config(m["d_vocab"], m["n_ctx"], m["d_model"]).name, m["seed"])] = m
    return rows, models
