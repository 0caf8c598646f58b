"""Sweeps: train (or load) models by (K, seed), prove them with several strategies, check every
certificate, and record one row per (K, seed, strategy)."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from generator import zoo
from generator.prover import ProofError, prove


@dataclass(frozen=True)
class Row:
    k: int
    seed: int
    strategy: str
    accepted: bool
    verified_correct: int
    total: int
    bound: float
    prove_seconds: float
    check_seconds: float
    digest: str
    reason: str = ""

    def as_dict(self) -> dict:
        out = asdict(self)
        out["verified_correct"], out["total"] = str(self.verified_correct), str(self.total)
        return out


def run_one(k: int, seed: int, strategies: Iterable[str], cache: Path | None) -> list[Row]:
    weights = zoo.trained(k, seed, cache)
    rows = []
    for strategy in strategies:
        start = time.perf_counter()
        try:
            proof = prove(weights, strategy)
        except ProofError as exc:
            rows.append(Row(k, seed, strategy, False, 0, 64**k, 0.0, time.perf_counter() - start, 0.0, "", str(exc)))
            continue
        v = proof.verdict
        rows.append(Row(k, seed, strategy, v.accepted, v.verified_correct, v.total, v.verified_correct / v.total,
                        time.perf_counter() - start, v.seconds, v.digest or "", v.reason))
    return rows


def run_local(tasks: list[tuple[int, int]], strategies: list[str], cache: Path | None, workers: int = 2) -> list[Row]:
    rows: list[Row] = []
    with ProcessPoolExecutor(workers) as pool:
        for result in pool.map(run_one, *zip(*[(k, s, strategies, cache) for k, s in tasks])):
            rows.extend(result)
    return rows
