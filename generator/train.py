"""The paper's training recipe for Max-of-K, deterministic on CPU for a seed.

AdamW (lr 1e-3, betas (0.9, 0.999), weight decay 0.01), batch 128, 3000 steps, every batch fresh
uniform sequences, cross-entropy at the last position against max(x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from generator.model import AttentionOnly, ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)


def _stream_seed(seed: int, stream: str) -> int:
    """Independent, reproducible seeds for the model init and the data stream."""
    return int(np.random.SeedSequence([seed, sum(map(ord, stream))]).generate_state(1)[0])


def train(
    seed: int,
    cfg: ModelConfig,
    train_cfg: TrainConfig = TrainConfig(),
    on_step: Callable[[int, float], None] | None = None,
) -> AttentionOnly:
    """Train one model; the same seed and configs give bit-identical weights on CPU (one thread,
    which is also the fastest for a model this small)."""
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(seed, cfg, train_cfg, on_step)
    finally:
        torch.set_num_threads(threads)


def _train(seed: int, cfg: ModelConfig, train_cfg: TrainConfig, on_step) -> AttentionOnly:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_stream_seed(seed, "model"))
        model = AttentionOnly(cfg)
    data = torch.Generator().manual_seed(_stream_seed(seed, "data"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay)
    for step in range(train_cfg.steps):
        tokens = torch.randint(0, cfg.d_vocab, (train_cfg.batch_size, cfg.n_ctx), generator=data)
        loss = torch.nn.functional.cross_entropy(model(tokens), tokens.max(dim=1).values)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, loss.item())
    return model.eval()
