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


SECTIONS = {"spine": bench_spine}


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
