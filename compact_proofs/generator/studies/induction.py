"""The induction study: two-layer attention-only models trained on the induction task (one per
paper seed), each certified by format-v2 brute force over its whole domain, and a report.

Recipe: the paper's Max-of-K optimiser and schedule (AdamW lr 1e-3, betas (0.9, 0.999), weight
decay 0.01, batch 128, 3000 steps, biases frozen at zero), two layers of one head, d_model =
d_head = 32, batches drawn uniformly from the induction domain. Resumable: a seed whose row
exists is skipped; the models and certificates are kept next to the rows.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from compact_proofs.generator.weights_io import atomic_write

STEPS = 3000


@dataclass(frozen=True)
class Size:
    d_vocab: int
    n_ctx: int

    @property
    def name(self) -> str:
        return f"v{self.d_vocab}-n{self.n_ctx}"


def model_config(size: Size):
    from compact_proofs.generator.training.model import ModelConfig

    return ModelConfig(d_vocab=size.d_vocab, n_ctx=size.n_ctx, d_model=32, d_head=32, n_layers=2, n_heads=1)


def sampled_accuracy(model, size: Size, samples: int = 100_000) -> float:
    """The float32 model's accuracy on uniform samples of the domain (a fixed sample stream)."""
    import torch

    from compact_proofs.generator.training.train import _batch

    tokens, labels = _batch("induction", model_config(size), samples, torch.Generator().manual_seed(12345))
    with torch.no_grad():
        return float((model(tokens).argmax(dim=-1) == labels).float().mean())


def run_seed(size: Size, seed: int, results: str, steps: int = STEPS) -> dict:
    """Train, certify and record one seed (nothing is redone if its row exists)."""
    import torch

    from compact_proofs.generator.proving import prover
    from compact_proofs.generator import weights_io
    from compact_proofs.generator.training.train import TrainConfig, about, train

    torch.set_num_threads(1)
    root = Path(results) / size.name
    row_path = root / "rows" / f"seed{seed}.json"
    if row_path.exists():
        return json.loads(row_path.read_text())
    start = time.perf_counter()
    model = train(seed, model_config(size), TrainConfig(steps=steps), task="induction")
    train_seconds = time.perf_counter() - start
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    (root / "models").mkdir(parents=True, exist_ok=True)
    weights_io.save(root / "models" / f"seed{seed}.npz", weights, about(seed, model_config(size), TrainConfig(steps=steps), "induction"))
    start = time.perf_counter()
    proof = prover.prove(weights, "brute-force", task="induction")
    prove_seconds = time.perf_counter() - start
    (root / "certificates").mkdir(parents=True, exist_ok=True)
    atomic_write(root / "certificates" / f"seed{seed}.msgpack", proof.raw)
    v = proof.verdict
    row = {"d_vocab": size.d_vocab, "n_ctx": size.n_ctx, "seed": seed, "steps": steps, "train_seconds": round(train_seconds, 1),
           "sampled_accuracy": sampled_accuracy(model, size), "certified_correct": str(v.verified_correct), "domain": str(v.total),
           "bound": v.verified_correct / v.total, "undecided": v.notes.get("undecided", 0),
           "decided_in_arb": v.notes.get("decided_in_arb", 0), "prove_seconds": round(prove_seconds, 1),
           "weights_digest": v.weights_digest}
    (root / "rows").mkdir(parents=True, exist_ok=True)
    atomic_write(row_path, json.dumps(row).encode())
    return row


def run(sizes: list[Size], seeds: list[int], results: Path, workers: int = 2,
        on_done: Callable[[Size, int], None] | None = None, steps: int = STEPS) -> int:
    """Every missing (size, seed), on a local process pool (in this process for one worker)."""
    import multiprocessing

    from compact_proofs.generator.studies.sweep import dispatch

    args = [(size, seed, str(results), steps) for size in sizes for seed in seeds]
    return dispatch(run_seed, args, workers, None, on_done, multiprocessing.get_context("spawn"))


def load_rows(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(results).glob("*/rows/seed*.json"))]


COLUMNS = ["d_vocab", "n_ctx", "seed", "sampled_accuracy", "bound", "certified_correct", "domain", "undecided",
           "decided_in_arb", "train_seconds", "prove_seconds", "weights_digest"]


def report(results: Path, out: Path) -> None:
    """docs/results/induction: rows.csv, summary.md (per size: mean, min, max of the bound)."""
    rows = sorted(load_rows(results), key=lambda r: (r["d_vocab"], r["n_ctx"], r["seed"]))
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "rows.csv", buffer.getvalue().encode())
    lines = ["| d_vocab | n_ctx | seeds | certified accuracy: mean | min | max | sampled (float32) mean | undecided | brute force s (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted({(r["d_vocab"], r["n_ctx"]) for r in rows}):
        group = [r for r in rows if (r["d_vocab"], r["n_ctx"]) == key]
        bounds = np.array([r["bound"] for r in group])
        lines.append(f"| {key[0]} | {key[1]} | {len(group)} | {bounds.mean():.6f} | {bounds.min():.6f} | {bounds.max():.6f} | "
                     f"{np.mean([r['sampled_accuracy'] for r in group]):.6f} | {sum(r['undecided'] for r in group)} | "
                     f"{np.mean([r['prove_seconds'] for r in group]):.0f} |")
    atomic_write(out / "summary.md", ("\n".join(lines) + "\n").encode())
