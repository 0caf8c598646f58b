"""The attention-only transformers of SEMANTICS.md, in torch: the paper's one layer, one head
(`AttentionOnly`, format v1) and version 2's one or two causal layers of several heads
(`CausalStack`); `build` picks one from a ModelConfig.

Submodules are laid out like TransformerLens's HookedTransformer, so `state_dict()` has exactly
the TransformerLens keys and shapes (`embed.W_E`, `blocks.0.attn.W_Q` [n_heads, d_model, d_head], ...).
The last layer is computed at the last position only: nothing else reaches the logits read there.
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
    n_layers: int = 1
    n_heads: int = 1

    def __post_init__(self) -> None:
        if self.n_layers not in (1, 2):
            raise ValueError("n_layers must be 1 or 2")
        for name in ("d_vocab", "n_ctx", "d_model", "d_head", "n_heads"):
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


class CausalStack(nn.Module):
    """SEMANTICS.md, version 2: r^{l+1}_i = r^l_i + sum_h (sum_{j<=i} a^{l,h}_{ij} v^{l,h}_j) W_O[h] + b_O,
    logits = r^L_{n-1} W_U + b_U. Weights start N(0, init_std); biases at zero, frozen."""

    def __init__(self, cfg: ModelConfig, init_std: float | None = None):
        super().__init__()
        self.cfg = cfg
        std = 0.8 / math.sqrt(cfg.d_model) if init_std is None else init_std
        v, n, d, h, heads = cfg.d_vocab, cfg.n_ctx, cfg.d_model, cfg.d_head, cfg.n_heads

        def normal(*shape: int) -> torch.Tensor:
            return torch.randn(*shape) * std

        self.embed = _params(W_E=normal(v, d))
        self.pos_embed = _params(W_pos=normal(n, d))
        blocks = []
        for _ in range(cfg.n_layers):
            block = nn.Module()
            block.attn = _params(
                W_Q=normal(heads, d, h), W_K=normal(heads, d, h), W_V=normal(heads, d, h), W_O=normal(heads, h, d),
                b_Q=torch.zeros(heads, h), b_K=torch.zeros(heads, h), b_V=torch.zeros(heads, h), b_O=torch.zeros(d),
            )
            blocks.append(block)
        self.blocks = nn.ModuleList(blocks)
        self.unembed = _params(W_U=normal(d, v), b_U=torch.zeros(v))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at the last position, [batch, d_vocab], for tokens [batch, n_ctx]."""
        return self._logits(tokens, every=False)

    def every_position(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at every position, [batch, n_ctx, d_vocab] (causal: position i reads x_0..x_i)."""
        return self._logits(tokens, every=True)

    def _logits(self, tokens: torch.Tensor, every: bool) -> torch.Tensor:
        n = self.cfg.n_ctx
        resid = self.embed.W_E[tokens] + self.pos_embed.W_pos  # [b, n, d]
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        for l, block in enumerate(self.blocks):
            a = block.attn
            last = l == len(self.blocks) - 1 and not every
            rows = slice(n - 1, n) if last else slice(0, n)  # the last layer: the last position, unless every one is read
            q = torch.einsum("bid,hde->bhie", resid[:, rows], a.W_Q) + a.b_Q[:, None]
            k = torch.einsum("bjd,hde->bhje", resid, a.W_K) + a.b_K[:, None]
            v = torch.einsum("bjd,hde->bhje", resid, a.W_V) + a.b_V[:, None]
            scores = torch.einsum("bhie,bhje->bhij", q, k) / math.sqrt(self.cfg.d_head)
            scores = scores.masked_fill(~causal[rows], float("-inf"))
            mixed = torch.einsum("bhij,bhje->bhie", scores.softmax(dim=-1), v)
            resid = resid[:, rows] + torch.einsum("bhie,hed->bid", mixed, a.W_O) + a.b_O
        return (resid if every else resid[:, -1]) @ self.unembed.W_U + self.unembed.b_U  # the last position's as it always was


def build(cfg: ModelConfig) -> nn.Module:
    """The paper's model for one layer and one head (its exact operations, so trained weights stay
    byte-identical), else CausalStack."""
    return AttentionOnly(cfg) if cfg.n_layers == 1 and cfg.n_heads == 1 else CausalStack(cfg)
