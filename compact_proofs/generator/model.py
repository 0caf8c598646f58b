"""The one-layer, one-head, attention-only transformer of SEMANTICS.md, in torch.

Submodules are laid out like TransformerLens's HookedTransformer, so `state_dict()` has exactly
the TransformerLens keys and shapes (`embed.W_E`, `blocks.0.attn.W_Q` [1, d_model, d_head], ...).
Only the last position is computed: with one layer nothing else can influence it, and the task
reads the answer there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    d_vocab: int = 64
    n_ctx: int = 4
    d_model: int = 32
    d_head: int = 32

    def __post_init__(self) -> None:
        for name in ("d_vocab", "n_ctx", "d_model", "d_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")


def _params(**tensors: torch.Tensor) -> nn.Module:
    holder = nn.Module()
    for name, value in tensors.items():
        holder.register_parameter(name, nn.Parameter(value, requires_grad=not name.startswith("b_")))
    return holder


class AttentionOnly(nn.Module):
    """logits = (r_{n-1} + (sum_i a_i v_i) W_O + b_O) W_U + b_U, a = softmax_i(q.k_i / sqrt(d_head)).

    Weights start N(0, init_std); biases start at zero and are frozen (the paper's zero_biases).
    """

    def __init__(self, cfg: ModelConfig, init_std: float | None = None):
        super().__init__()
        self.cfg = cfg
        std = 0.8 / math.sqrt(cfg.d_model) if init_std is None else init_std
        v, n, d, h = cfg.d_vocab, cfg.n_ctx, cfg.d_model, cfg.d_head

        def normal(*shape: int) -> torch.Tensor:
            return torch.randn(*shape) * std

        self.embed = _params(W_E=normal(v, d))
        self.pos_embed = _params(W_pos=normal(n, d))
        attn = _params(
            W_Q=normal(1, d, h), W_K=normal(1, d, h), W_V=normal(1, d, h), W_O=normal(1, h, d),
            b_Q=torch.zeros(1, h), b_K=torch.zeros(1, h), b_V=torch.zeros(1, h), b_O=torch.zeros(d),
        )
        block = nn.Module()
        block.attn = attn
        self.blocks = nn.ModuleList([block])
        self.unembed = _params(W_U=normal(d, v), b_U=torch.zeros(v))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at the last position, [batch, d_vocab], for tokens [batch, n_ctx]."""
        a = self.blocks[0].attn
        resid = self.embed.W_E[tokens] + self.pos_embed.W_pos  # [b, n, d]
        query = resid[:, -1] @ a.W_Q[0] + a.b_Q[0]  # [b, h]
        keys = resid @ a.W_K[0] + a.b_K[0]  # [b, n, h]
        values = resid @ a.W_V[0] + a.b_V[0]
        scores = torch.einsum("bh,bnh->bn", query, keys) / math.sqrt(self.cfg.d_head)
        mixed = torch.einsum("bn,bnh->bh", scores.softmax(dim=-1), values)
        return (resid[:, -1] + mixed @ a.W_O[0] + a.b_O) @ self.unembed.W_U + self.unembed.b_U
