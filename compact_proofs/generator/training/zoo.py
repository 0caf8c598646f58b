"""Trained Max-of-K models by (K, seed), cached on disk so sweeps and benchmarks train each once,
and compared with the published models (generator/training/manifest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compact_proofs.checker.weights import model_digest
from compact_proofs.generator.training import manifest
from compact_proofs.generator import weights_io
from compact_proofs.generator.training.model import ModelConfig
from compact_proofs.generator.training.train import TrainConfig, about, train

SEEDS_FILE = Path(__file__).with_name("seeds.txt")


def paper_seeds() -> list[int]:
    """The 151 seeds of the paper's Max-of-K experiments, in their order (123 is the selected one)."""
    return [int(line) for line in SEEDS_FILE.read_text().split()]


def model_path(cache: Path, k: int, seed: int, d_vocab: int = 64) -> Path:
    return Path(cache) / f"max{k}-v{d_vocab}-seed{seed}.npz"


def trained(k: int, seed: int, cache: Path | None = None, d_vocab: int = 64) -> dict[str, np.ndarray]:
    """The paper-recipe model for (K, seed): loaded from `cache` if there, else trained (and saved)."""
    return checked(k, seed, cache, d_vocab)[0]


def checked(k: int, seed: int, cache: Path | None = None, d_vocab: int = 64) -> tuple[dict[str, np.ndarray], str, manifest.Comparison]:
    """(weights, their digest, the comparison with the manifest). A cached model that differs from
    the published one is trained again (a cache from older code); a trained one is what it is."""
    cfg = ModelConfig(d_vocab=d_vocab, n_ctx=k)
    path = None if cache is None else model_path(cache, k, seed, d_vocab)
    if path is not None and path.exists():
        weights = weights_io.load(path)
        digest = model_digest(weights)
        comparison = manifest.compare(k, seed, cfg, TrainConfig(), digest)
        if comparison.status != "mismatch":
            return weights, digest, comparison
    model = train(seed, cfg)
    weights = {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}
    if path is not None:
        weights_io.save(path, weights, about(seed, cfg, TrainConfig()))
    digest = model_digest(weights)
    return weights, digest, manifest.compare(k, seed, cfg, TrainConfig(), digest)


def reproduce(k: int, seed: int, cache: str | None = None) -> tuple[int, int, str, str]:
    """Train (or, with `cache`, load) the paper model (K, seed): (K, seed, digest, comparison status)."""
    _, digest, comparison = checked(k, seed, None if cache is None else Path(cache))
    return k, seed, digest, comparison.status
