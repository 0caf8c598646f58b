"""The induction study: two-layer attention-only models trained on the induction task (one per
paper seed), certified by brute force where it runs and by the compact proofs
(checker/strategies/induction/) at every size, and a report.

Recipes (two layers of one head, d_model = d_head = 32, biases frozen at zero, AdamW lr 1e-3,
betas (0.9, 0.999), weight decay 0.01, batch 128, batches uniform over the induction domain):
- `last` (the published 8 x 8 models): the paper's loss, at the last position, 3000 steps;
- `every`: the loss at every position whose prefix is in the domain (teacher-forced induction
  labels, how language models learn induction heads), 6000 steps. Changed where it must be: at
  d_vocab 32 and n_ctx 16 the `last` recipe reaches a sampled accuracy of about 0.955 in 3000 steps
  (0.996 in 10000), and its layer-0 head at the last position attends to many positions, so no
  cell of the induction mechanism is certified; `every` gives 0.997 and a previous-token head at
  every position.

Resumable: a row per (size, seed) holds the training, brute force and each compact proof's
figures; a method already in the row is not run again. Models and certificates are kept next to
the rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from compact_proofs.generator.studies import induction_ledger
from compact_proofs.generator.studies.induction_ledger import single_occurrence
from compact_proofs.generator.weights_io import atomic_write

STEPS = {"last": 3000, "every": 6000}
BRUTE_FORCE = "brute-force"


@dataclass(frozen=True)
class Size:
    d_vocab: int
    n_ctx: int
    recipe: str = "last"
    training_steps: int | None = None  # the recipe's (STEPS) unless given

    @property
    def name(self) -> str:
        return f"v{self.d_vocab}-n{self.n_ctx}" + ("" if self.recipe == "last" else f"-{self.recipe}")

    @property
    def steps(self) -> int:
        return STEPS[self.recipe] if self.training_steps is None else self.training_steps


@dataclass(frozen=True)
class Method:
    """A proof to run on every model: brute force, or a compact strategy (with its search depth)."""

    strategy: str
    depth: int = 0

    @property
    def name(self) -> str:
        return self.strategy if self.strategy in (BRUTE_FORCE, "induction/positions") else f"{self.strategy}:{self.depth}"

    @classmethod
    def parse(cls, text: str) -> "Method":
        strategy, _, depth = text.partition(":")
        return cls(strategy, int(depth) if depth else (1 if strategy.count("/") == 2 else 0))


def model_config(size: Size):
    from compact_proofs.generator.training.model import ModelConfig

    return ModelConfig(d_vocab=size.d_vocab, n_ctx=size.n_ctx, d_model=32, d_head=32, n_layers=2, n_heads=1)


def sampled_accuracy(weights: dict, size: Size, samples: int = 100_000) -> float:
    """The float32 model's accuracy on uniform samples of the domain (a fixed sample stream)."""
    import torch

    from compact_proofs.generator.training.model import build
    from compact_proofs.generator.training.train import _batch

    model = build(model_config(size))
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=False)
    tokens, labels = _batch("induction", model_config(size), samples, torch.Generator().manual_seed(12345))
    with torch.no_grad():
        return float((model(tokens).argmax(dim=-1) == labels).float().mean())


def _model(size: Size, seed: int, root: Path) -> tuple[dict, dict]:
    """The seed's weights (trained now unless its file exists) and the row's training fields."""
    import torch

    from compact_proofs.generator import weights_io
    from compact_proofs.generator.training.train import TrainConfig, about, train

    path = root / "models" / f"seed{seed}.npz"
    if path.exists():
        return weights_io.load(path), {"train_seconds": None}
    torch.set_num_threads(1)
    recipe = TrainConfig(steps=size.steps, loss_at=size.recipe)
    start = time.perf_counter()
    model = train(seed, model_config(size), recipe, task="induction")
    seconds = time.perf_counter() - start
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    weights_io.save(path, weights, about(seed, model_config(size), recipe, "induction"))
    return weights, {"train_seconds": round(seconds, 1)}


def run_seed(size: Size, seed: int, results: str, methods: list[Method], ceilings: bool = False) -> dict:
    """Train (if needed), then every method not yet in the seed's row; the row is written after each.
    ceilings: also the share of the domain in all-correct cells of each mechanistic cell structure
    (induction_ledger.ceilings, float64 over every input; sizes up to 2^24 inputs)."""
    from compact_proofs.checker import tasks
    from compact_proofs.generator.proving import prover

    root = Path(results) / size.name
    row_path = root / "rows" / f"seed{seed}.json"
    row = json.loads(row_path.read_text()) if row_path.exists() else None
    weights, trained = _model(size, seed, root)
    if row is None:
        row = {"d_vocab": size.d_vocab, "n_ctx": size.n_ctx, "recipe": size.recipe, "seed": seed, "steps": size.steps, **trained,
               "sampled_accuracy": sampled_accuracy(weights, size),
               "domain": str(tasks.resolve("induction").domain_size(size.d_vocab, size.n_ctx)), "methods": {}}
    for method in methods:
        if method.name in row["methods"]:
            continue
        options = {"depth": method.depth} if method.strategy.count("/") == 2 else {}
        start = time.perf_counter()
        try:
            proof = prover.prove(weights, method.strategy, task="induction", **options)
        except prover.ProofError as exc:
            row["methods"][method.name] = {"status": exc.status, "reason": str(exc)[:300]}
            continue
        seconds = time.perf_counter() - start
        v = proof.verdict
        (root / "certificates").mkdir(parents=True, exist_ok=True)
        atomic_write(root / "certificates" / f"seed{seed}.{method.name.replace('/', '-').replace(':', '-d')}.msgpack", proof.raw)
        row["weights_digest"] = v.weights_digest
        row["methods"][method.name] = {
            "status": "accepted", "certified_correct": str(v.verified_correct), "bound": v.verified_correct / v.total,
            "seconds": round(seconds, 1), "check_seconds": round(v.seconds, 1), "flops": str(v.flops), "bytes": len(proof.raw),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "notes": {k: v.notes[k] for k in v.notes if k != "task"}}
        (root / "rows").mkdir(parents=True, exist_ok=True)
        atomic_write(row_path, json.dumps(row).encode())
    if ceilings and "ceilings" not in row and size.d_vocab**size.n_ctx <= induction_ledger.MAX_CEILING_INPUTS:
        from compact_proofs.checker.transformer import from_weights

        row["ceilings"] = induction_ledger.ceilings(from_weights(weights))
    (root / "rows").mkdir(parents=True, exist_ok=True)
    atomic_write(row_path, json.dumps(row).encode())
    return row


def run(sizes: list[Size], seeds: list[int], results: Path, methods: list[Method], workers: int = 2,
        on_done: Callable[[Size, int], None] | None = None, ceilings: bool = False) -> int:
    """Every (size, seed), on a local process pool (in this process for one worker)."""
    import multiprocessing

    from compact_proofs.checker.strategies.brute_force_v2 import MAX_INPUTS
    from compact_proofs.generator.studies.sweep import dispatch

    args = [(size, seed, str(results), [m for m in methods if m.strategy != BRUTE_FORCE or size.d_vocab**size.n_ctx <= MAX_INPUTS], ceilings)
            for size in sizes for seed in seeds]
    return dispatch(run_seed, args, workers, None, on_done, multiprocessing.get_context("spawn"))


def adopt_published(results: Path, published: Path) -> int:
    """Rows for the published 8 x 8 models from docs/results/induction (rows.csv and the committed
    brute-force certificates, whose weights are the models): they are not trained again."""
    from compact_proofs.checker import certificate
    from compact_proofs.generator import weights_io

    adopted = 0
    with open(published / "rows.csv") as f:
        old = list(csv.DictReader(f))
    for r in old:
        if r.get("method", BRUTE_FORCE) != BRUTE_FORCE or r.get("recipe", "last") != "last":
            continue  # the flat report (one line per method): its brute-force lines of the published recipe
        size = Size(int(r["d_vocab"]), int(r["n_ctx"]))
        root = results / size.name
        row_path = root / "rows" / f"seed{r['seed']}.json"
        cert_path = published / "certificates" / size.name / f"seed{r['seed']}.msgpack"
        if row_path.exists() or not cert_path.exists():
            continue
        raw = cert_path.read_bytes()
        cert = certificate.decode(raw)
        (root / "models").mkdir(parents=True, exist_ok=True)
        weights_io.save(root / "models" / f"seed{r['seed']}.npz", dict(cert.weights))
        seconds = r.get("prove_seconds") or r.get("seconds")
        row = {"d_vocab": size.d_vocab, "n_ctx": size.n_ctx, "recipe": "last", "seed": int(r["seed"]), "steps": STEPS["last"],
               "train_seconds": float(r["train_seconds"]) if r.get("train_seconds") else None,
               "sampled_accuracy": float(r["sampled_accuracy"]), "domain": r["domain"], "weights_digest": r["weights_digest"],
               "methods": {BRUTE_FORCE: {"status": "accepted", "certified_correct": r["certified_correct"], "bound": float(r["bound"]),
                                         "seconds": float(seconds) if seconds else None, "check_seconds": None,
                                         "flops": r.get("flops") or None, "bytes": len(raw), "peak_mb": None, "notes": {}}}}
        (root / "rows").mkdir(parents=True, exist_ok=True)
        atomic_write(row_path, json.dumps(row).encode())
        adopted += 1
    return adopted


def load_rows(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(results).glob("*/rows/seed*.json"))]


COLUMNS = ["d_vocab", "n_ctx", "recipe", "seed", "method", "bound", "certified_correct", "domain", "seconds", "check_seconds",
           "flops", "bytes", "peak_mb", "sampled_accuracy", "train_seconds", "weights_digest"]


def flat(rows: list[dict]) -> list[dict]:
    """One record per (model, method) that was accepted."""
    out = []
    for r in rows:
        for name, m in r["methods"].items():
            if m.get("status") == "accepted":
                out.append({**{k: r.get(k) for k in COLUMNS if k in r}, "method": name, **{k: m.get(k) for k in COLUMNS if k in m}})
    return sorted(out, key=lambda x: (x["d_vocab"], x["n_ctx"], x["recipe"], x["method"], x["seed"]))


def fit_exponents(points: list[tuple[int, int, float]]) -> tuple[float, float] | None:
    """Least-squares exponents (a, b) of cost ~ d_vocab^a n_ctx^b over (d_vocab, n_ctx, cost) points
    (None with fewer than three distinct sizes)."""
    sizes = {(v, n) for v, n, _ in points}
    if len(sizes) < 3:
        return None
    A = np.array([[math.log(v), math.log(n), 1.0] for v, n, _ in points])
    y = np.array([math.log(c) for _, _, c in points])
    (a, b, _), *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(a), float(b)


def summary(rows: list[dict]) -> list[dict]:
    """Per (size, recipe, method): seeds, bound mean/min/max, the ratio to brute force's exact count
    (where it ran), and mean cost."""
    records = flat(rows)
    groups: dict = {}
    for r in records:
        groups.setdefault((r["d_vocab"], r["n_ctx"], r["recipe"], r["method"]), []).append(r)
    brute = {(r["d_vocab"], r["n_ctx"], r["recipe"], r["seed"]): r["bound"] for r in records if r["method"] == BRUTE_FORCE}
    out = []
    for (V, N, recipe, method), group in sorted(groups.items()):
        bounds = np.array([g["bound"] for g in group])
        ratios = [g["bound"] / brute[(V, N, recipe, g["seed"])] for g in group if (V, N, recipe, g["seed"]) in brute and brute[(V, N, recipe, g["seed"])] > 0]
        known = lambda key: [float(g[key]) for g in group if g.get(key) not in (None, "None")]  # noqa: E731
        out.append({"d_vocab": V, "n_ctx": N, "recipe": recipe, "method": method, "seeds": len(group), "mean": float(bounds.mean()),
                    "min": float(bounds.min()), "max": float(bounds.max()), "ratio": float(np.mean(ratios)) if ratios else None,
                    "flops": float(np.mean(known("flops"))) if known("flops") else None,
                    "seconds": float(np.mean(known("seconds"))) if known("seconds") else None,
                    "bytes": float(np.mean(known("bytes"))) if known("bytes") else None,
                    "peak_mb": float(np.max(known("peak_mb"))) if known("peak_mb") else None,
                    "single": single_occurrence(V, N) / int(group[0]["domain"])})
    return out


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def report(results: Path, out: Path) -> None:
    """rows.csv (one line per model and method), summary.md, and the figures bound_vs_size.png and
    cost_vs_size.png."""
    rows = load_rows(results)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat(rows))
    atomic_write(out / "rows.csv", buffer.getvalue().encode())
    table = summary(rows)
    lines = ["| d_vocab | n_ctx | recipe | method | seeds | bound: mean | min | max | / brute force | single-occurrence share | FLOPs | seconds | bytes | peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in table:
        lines.append(f"| {s['d_vocab']} | {s['n_ctx']} | {s['recipe']} | {s['method']} | {s['seeds']} | {s['mean']:.4f} | {s['min']:.4f} | "
                     f"{s['max']:.4f} | {_fmt(s['ratio'], '.4f')} | {s['single']:.4f} | {_fmt(s['flops'], '.3g')} | {_fmt(s['seconds'], '.0f')} | "
                     f"{_fmt(s['bytes'], '.3g')} | {_fmt(s['peak_mb'], '.0f')} |")
    fits = []
    for method in sorted({s["method"] for s in table}):
        for key in ("flops", "seconds"):
            points = [(s["d_vocab"], s["n_ctx"], s[key]) for s in table if s["method"] == method and s[key]]
            fit = fit_exponents(points)
            if fit:
                fits.append(f"- {method}, {key}: d_vocab^{fit[0]:.2f} n_ctx^{fit[1]:.2f} (least squares over {len(points)} sizes)")
    text = "\n".join(lines) + "\n" + ("\nFitted cost exponents:\n" + "\n".join(fits) + "\n" if fits else "")
    text += _ceilings_table(rows)
    atomic_write(out / "summary.md", text.encode())
    _figures(table, out)


def _ceilings_table(rows: list[dict]) -> str:
    """Mean over the seeds that have them, per (size, recipe): each cell structure's ceiling."""
    groups: dict = {}
    for r in rows:
        if "ceilings" in r:
            groups.setdefault((r["d_vocab"], r["n_ctx"], r["recipe"]), []).append(r["ceilings"])
    if not groups:
        return ""
    names = list(next(iter(groups.values()))[0])
    lines = ["", "Ceilings of cell structures (share of the domain in cells whose every input is correct in float64; mean over seeds):", "",
             "| d_vocab | n_ctx | recipe | seeds | " + " | ".join(names) + " |", "|---" * (4 + len(names)) + "|"]
    for (V, N, recipe), group in sorted(groups.items()):
        lines.append(f"| {V} | {N} | {recipe} | {len(group)} | " + " | ".join(f"{np.mean([g[n] for g in group]):.4f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def _figures(table: list[dict], out: Path) -> None:
    from compact_proofs.generator.studies.report import save_figure

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({s["method"] for s in table})
    colours = dict(zip(methods, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for recipe, marker in (("last", "s"), ("every", "o")):
        for method in methods:
            pts = sorted((s["d_vocab"] ** s["n_ctx"], s["mean"], s["min"]) for s in table if s["method"] == method and s["recipe"] == recipe)
            if not pts:
                continue
            x, mean, low = zip(*pts)
            ax.plot(x, mean, marker=marker, color=colours[method], linestyle="-" if recipe == "every" else ":",
                    label=f"{method} ({recipe} recipe)")
            ax.vlines(x, low, mean, color=colours[method], alpha=0.4)
    singles = sorted({(s["d_vocab"] ** s["n_ctx"], s["single"]) for s in table})
    if singles:
        x, y = zip(*singles)
        ax.plot(x, y, color="grey", linestyle="--", linewidth=1, label="share of inputs with one earlier occurrence")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("d_vocab^n_ctx (sequences of the size; log scale)")
    ax.set_ylabel("certified accuracy (mean over seeds; bar to the min)")
    ax.set_title("Induction: certified bound against size")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower left")
    save_figure(fig, out / "bound_vs_size.png")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for method in methods:
        pts = sorted((s["d_vocab"] ** s["n_ctx"], s["flops"]) for s in table if s["method"] == method and s["flops"])
        if pts:
            x, y = zip(*pts)
            ax.plot(x, y, marker="o", color=colours[method], label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("d_vocab^n_ctx (log scale)")
    ax.set_ylabel("checker FLOPs (mean over seeds; log scale)")
    ax.set_title("Induction: proof cost against size")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    save_figure(fig, out / "cost_vs_size.png")
