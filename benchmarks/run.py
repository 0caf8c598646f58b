"""`make bench`: speed and tightness figures, all measured in one run on this machine.

Prints one table per section with times and the ratios the issues ask about. Machines are
noisy: compare ratios within a run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from checker import certificate
from checker.verify import check
from generator.model import AttentionOnly, ModelConfig
from generator.prover import prove
from generator.train import train

console = Console()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def naive_float32_accuracy(model: AttentionOnly, batch: int = 1 << 16) -> float:
    """Argmax accuracy of plain float32 torch over every input (the baseline brute force)."""
    V, N = model.cfg.d_vocab, model.cfg.n_ctx
    grids = torch.cartesian_prod(*[torch.arange(V)] * N)
    correct = 0
    with torch.no_grad():
        for chunk in grids.split(batch):
            correct += int((model(chunk).argmax(-1) == chunk.max(dim=1).values).sum())
    return correct / V**N


def weights_of(model: AttentionOnly) -> dict:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def bench_spine(seed: int) -> None:
    model, train_s = timed(train, seed, ModelConfig(n_ctx=4))
    acc, naive_s = timed(naive_float32_accuracy, model)
    proof, prove_s = timed(prove, weights_of(model), "brute-force")
    verdict, check_s = timed(check, certificate.decode(proof.raw))
    table = Table(title=f"Spine: K=4, d_vocab 64, seed {seed} (64^4 = 16,777,216 inputs)")
    for col in ("step", "seconds", "ratio", "result"):
        table.add_column(col)
    table.add_row("train (3000 steps, batch 128)", f"{train_s:.1f}", "", "reference recipe ~10 s here")
    table.add_row("naive float32 torch, all inputs", f"{naive_s:.1f}", "1.00", f"argmax accuracy {acc:.6f}")
    table.add_row("sound brute-force check", f"{check_s:.1f}", f"{check_s / naive_s:.3f}",
                  f"{verdict.verified_correct} / {verdict.total} = {verdict.verified_correct / verdict.total:.6f}; "
                  f"exact decisions {verdict.notes['exact_decisions']}")
    table.add_row("prove (includes one check)", f"{prove_s:.1f}", f"{prove_s / naive_s:.3f}", verdict.reason)
    console.print(table)
    console.print("targets: check <= 3x naive and < 120 s; training about 10 s\n")


def bench_cubic(seed: int, n_seeds: int = 20) -> None:
    from pathlib import Path

    from generator import zoo
    from generator.sweep import run_local

    cache = Path("out/models")
    variants = ["cubic", "cubic/reference"]
    table = Table(title=f"Cubic proof, seed {seed}: generation + sound check, and the checker's cost growth")
    for col in ("K", "variant", "bound", "prove + check s", "check s", "cases", "exact decisions"):
        table.add_column(col)
    for k in (4, 5, 10, 20):
        weights = zoo.trained(k, seed, cache)
        for variant in variants:
            proof, total_s = timed(prove, weights, variant)
            v = proof.verdict
            table.add_row(str(k), variant, f"{v.verified_correct / v.total:.5f}", f"{total_s:.2f}", f"{v.seconds:.2f}",
                          str(v.notes["cases"]), str(v.notes["exact_decisions"]))
    console.print(table)
    console.print("target: K=4 generation + check < 5 s (the reference code needs 21-23 s for its unsound float32 version)\n")

    seeds = zoo.paper_seeds()[:n_seeds]
    start = time.perf_counter()
    rows = run_local([(4, s) for s in seeds], variants + ["brute-force"], cache)
    rows += run_local([(k, s) for k in (5, 10, 20) for s in seeds], variants, cache)
    elapsed = time.perf_counter() - start
    reference_means = {4: 0.95307, 5: 0.94115, 10: 0.91384}
    table = Table(title=f"Cubic bound over the first {n_seeds} paper seeds (mean +- std; {elapsed:.0f} s incl. training)")
    for col in ("K", "cubic (ours)", "cubic/reference (ours)", "reference paper mean", "brute force", "gap to brute force"):
        table.add_column(col)
    for k in (4, 5, 10, 20):
        def stats(strategy):
            return np.array([r.bound for r in rows if r.k == k and r.strategy == strategy and r.accepted])

        tight, ref, brute = stats("cubic"), stats("cubic/reference"), stats("brute-force")
        table.add_row(str(k), f"{tight.mean():.5f} +- {tight.std():.5f}", f"{ref.mean():.5f} +- {ref.std():.5f}",
                      f"{reference_means.get(k, float('nan')):.5f}" if k in reference_means else "n/a",
                      f"{brute.mean():.5f}" if len(brute) else "n/a",
                      f"{brute.mean() - tight.mean():.5f}" if len(brute) else "n/a")
    console.print(table)
    console.print("target: mean cubic bound >= the reference paper's at K=4, 5, 10\n")


SECTIONS = {"spine": bench_spine, "cubic": bench_cubic}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}")
    for name in args.sections or SECTIONS:
        SECTIONS[name](args.seed)


if __name__ == "__main__":
    main()
