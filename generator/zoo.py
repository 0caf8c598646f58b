"""Trained Max-of-K models by (K, seed), cached on disk so sweeps and benchmarks train each once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generator import weights_io
from generator.model import ModelConfig
from generator.train import train

SEEDS_FILE = Path(__file__).with_name("seeds.txt")


def paper_seeds() -> list[int]:
    """The 151 seeds of the paper's Max-of-K experiments, in their order (123 is the selected one)."""
    return [int(line) for line in SEEDS_FILE.read_text().split()]


def model_path(cache: Path, k: int, seed: int, d_vocab: int = 64) -> Path:
    return Path(cache) / f"max{k}-v{d_vocab}-seed{seed}.npz"


def trained(k: int, seed: int, cache: Path | None = None, d_vocab: int = 64) -> dict[str, np.ndarray]:
    """The paper-recipe model for (K, seed): loaded from `cache` if there, else trained (and saved)."""
    path = None if cache is None else model_path(cache, k, seed, d_vocab)
    if path is not None and path.exists():
        return weights_io.load(path)
    model = train(seed, ModelConfig(d_vocab=d_vocab, n_ctx=k))
    weights = {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}
    if path is not None:
        weights_io.save(path, weights)
    return weights
