"""SEMANTICS.md version 3 in torch: up to four blocks of causal attention and an optional MLP
(relu, gelu with erf, gelu_new with tanh), optional LayerNorm (LN or LNPre) before attention,
before the MLP and before the unembedding; d_vocab_out may differ from d_vocab.

Laid out like TransformerLens' HookedTransformer, so `state_dict()` has its keys and shapes
(`blocks.0.mlp.W_in` [d_model, d_mlp], `blocks.0.ln1.w`, `ln_final.b`, ...), and `architecture()`
is the certificate's `architecture` map. The forward pass is TransformerLens' (its order of
operations, in float32): it is what a user's model computes, and the checker certifies the same
function in exact arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Config3:
    d_vocab: int
    n_ctx: int
    d_model: int
    d_head: int
    n_heads: int
    n_layers: int = 1
    d_vocab_out: int | None = None  # None: d_vocab
    d_mlp: int = 0  # 0: no MLP
    act: str = "relu"  # relu, gelu or gelu_new (with an MLP)
    normalization: str = "none"  # none, LN or LNPre
    eps: str = "1e-05"  # a decimal (the certificate states it)
    init_std: float | None = None  # None: 0.8 / sqrt(d_model)

    def __post_init__(self) -> None:
        if not 1 <= self.n_layers <= 4:
            raise ValueError("n_layers must be 1 to 4")
        if self.act not in ("relu", "gelu", "gelu_new") or self.normalization not in ("none", "LN", "LNPre"):
            raise ValueError(f"activation {self.act!r} or normalization {self.normalization!r} outside the semantics")

    @property
    def vocab_out(self) -> int:
        return self.d_vocab_out or self.d_vocab

    def architecture(self) -> dict[str, str]:
        out = {"activation": self.act if self.d_mlp else "none", "normalization": self.normalization}
        return out | ({"eps": self.eps} if self.normalization != "none" else {})


def _params(**tensors: torch.Tensor) -> nn.Module:
    holder = nn.Module()
    for name, value in tensors.items():
        holder.register_parameter(name, nn.Parameter(value))
    return holder


def activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return torch.relu(x)
    if name == "gelu":
        return torch.nn.functional.gelu(x)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Transformer3(nn.Module):
    def __init__(self, cfg: Config3):
        super().__init__()
        self.cfg = cfg
        std = cfg.init_std if cfg.init_std is not None else 0.8 / math.sqrt(cfg.d_model)
        V, O, N, D, E, H, M = cfg.d_vocab, cfg.vocab_out, cfg.n_ctx, cfg.d_model, cfg.d_head, cfg.n_heads, cfg.d_mlp
        normal = lambda *shape: torch.randn(*shape) * std  # noqa: E731
        zeros = torch.zeros
        self.embed = _params(W_E=normal(V, D))
        self.pos_embed = _params(W_pos=normal(N, D))
        blocks = []
        for _ in range(cfg.n_layers):
            block = nn.Module()
            block.attn = _params(W_Q=normal(H, D, E), W_K=normal(H, D, E), W_V=normal(H, D, E), W_O=normal(H, E, D),
                                 b_Q=zeros(H, E), b_K=zeros(H, E), b_V=zeros(H, E), b_O=zeros(D))
            if M:
                block.mlp = _params(W_in=normal(D, M), b_in=zeros(M), W_out=normal(M, D), b_out=zeros(D))
            if cfg.normalization == "LN":
                block.ln1 = _params(w=torch.ones(D), b=zeros(D))
                if M:
                    block.ln2 = _params(w=torch.ones(D), b=zeros(D))
            blocks.append(block)
        self.blocks = nn.ModuleList(blocks)
        if cfg.normalization == "LN":
            self.ln_final = _params(w=torch.ones(D), b=zeros(D))
        self.unembed = _params(W_U=normal(D, O), b_U=zeros(O))
        self.eps = float(cfg.eps)

    def _norm(self, x: torch.Tensor, ln: nn.Module | None) -> torch.Tensor:
        if self.cfg.normalization == "none":
            return x
        x = x - x.mean(-1, keepdim=True)
        x = x / (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
        return x * ln.w + ln.b if ln is not None else x

    def forward(self, tokens: torch.Tensor, positions: list[int] | None = None) -> torch.Tensor:
        """Logits [batch, T, d_vocab_out] at every position of tokens [batch, T] (T <= n_ctx), or
        [batch, len(positions), d_vocab_out] at those positions only (the last block is then
        computed there alone: nothing else reaches them)."""
        T = tokens.shape[1]
        resid = self.embed.W_E[tokens] + self.pos_embed.W_pos[:T]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        for l, block in enumerate(self.blocks):
            a = block.attn
            rows = list(range(T)) if positions is None or l < len(self.blocks) - 1 else list(positions)
            h = self._norm(resid, getattr(block, "ln1", None))
            q = torch.einsum("bid,hde->bihe", h[:, rows], a.W_Q) + a.b_Q
            k = torch.einsum("bid,hde->bihe", h, a.W_K) + a.b_K
            v = torch.einsum("bid,hde->bihe", h, a.W_V) + a.b_V
            scores = torch.einsum("bihe,bjhe->bhij", q, k) / math.sqrt(self.cfg.d_head)
            pattern = scores.masked_fill(~causal[rows], float("-inf")).softmax(dim=-1)
            z = torch.einsum("bhij,bjhe->bihe", pattern, v)
            resid = resid[:, rows] + torch.einsum("bihe,hed->bid", z, a.W_O) + a.b_O
            if self.cfg.d_mlp:
                m = block.mlp
                pre = self._norm(resid, getattr(block, "ln2", None)) @ m.W_in + m.b_in
                resid = resid + activation(self.cfg.act, pre) @ m.W_out + m.b_out
        return self._norm(resid, getattr(self, "ln_final", None)) @ self.unembed.W_U + self.unembed.b_U
