"""Tiny format-v3 models (MLPs, LayerNorm), benign and adversarial, for the property tests.

Kinds:
- gaussian: float32/float64 weights of varied scale;
- coarse: entries in {-2..2}/4, so values collide and cancel exactly and often;
- tie: two unembedding columns (and biases) equal: those logits tie on every input;
- near-tie: as tie, then one b_U entry moved by one ulp;
- flat: every embedding row and positional row constant across d_model, so the first LayerNorm
  sees a variance of exactly zero (its output is its bias), and near zero after attention;
- gelu-zero: half the MLP's input columns and biases zero, so those pre-activations are exactly 0
  (relu, gelu and gelu_new of 0 are 0) and others within a few ulps of it;
- huge: attention scaled up so scores overflow float exp.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

KINDS = ("gaussian", "coarse", "tie", "near-tie", "flat", "gelu-zero", "huge")
ACTIVATIONS = ("relu", "gelu", "gelu_new", "none")
NORMALIZATIONS = ("none", "LN", "LNPre")


def build_v3(kind: str, seed: int, V: int, O: int, N: int, D: int, E: int, H: int, M: int, L: int, act: str, norm: str,
             dtype=np.float32, scale: float = 1.0) -> tuple[dict, dict]:
    """(weights, architecture map)."""
    rng = np.random.default_rng(seed)
    shapes = {"embed.W_E": (V, D), "pos_embed.W_pos": (N, D), "unembed.W_U": (D, O), "unembed.b_U": (O,)}
    for l in range(L):
        p = f"blocks.{l}."
        shapes |= {p + "attn.W_Q": (H, D, E), p + "attn.W_K": (H, D, E), p + "attn.W_V": (H, D, E), p + "attn.W_O": (H, E, D),
                   p + "attn.b_Q": (H, E), p + "attn.b_K": (H, E), p + "attn.b_V": (H, E), p + "attn.b_O": (D,)}
        if act != "none":
            shapes |= {p + "mlp.W_in": (D, M), p + "mlp.b_in": (M,), p + "mlp.W_out": (M, D), p + "mlp.b_out": (D,)}
        if norm == "LN":
            shapes |= {p + "ln1.w": (D,), p + "ln1.b": (D,)}
            if act != "none":
                shapes |= {p + "ln2.w": (D,), p + "ln2.b": (D,)}
    if norm == "LN":
        shapes |= {"ln_final.w": (D,), "ln_final.b": (D,)}
    if kind == "coarse":
        w = {k: rng.integers(-2, 3, size=s) / 4 for k, s in shapes.items()}
    else:
        w = {k: rng.normal(size=s) * scale for k, s in shapes.items()}
    if kind == "huge":
        for k in w:
            if k.endswith(("W_Q", "W_K")):
                w[k] = w[k] * 60
    if kind == "flat":
        w["embed.W_E"] = np.repeat(rng.normal(size=(V, 1)), D, axis=1)
        w["pos_embed.W_pos"] = np.repeat(rng.normal(size=(N, 1)), D, axis=1)
    if kind == "gelu-zero" and act != "none":
        for l in range(L):
            w[f"blocks.{l}.mlp.W_in"][:, ::2] = 0
            w[f"blocks.{l}.mlp.b_in"][::2] = 0
    w = {k: np.asarray(v, dtype=dtype) for k, v in w.items()}
    if kind in ("tie", "near-tie") and O >= 2:
        w["unembed.W_U"][:, 1] = w["unembed.W_U"][:, 0]
        w["unembed.b_U"][1] = w["unembed.b_U"][0]
        if kind == "near-tie":
            w["unembed.b_U"][1] = np.nextafter(w["unembed.b_U"][0], dtype(np.inf))
    arch = {"activation": act, "normalization": norm} | ({"eps": "1e-05"} if norm != "none" else {})
    return w, arch


@st.composite
def tiny_models_v3(draw, max_layers: int = 2) -> tuple[dict, dict, str]:
    """(weights, architecture, task) with a domain of at most 27 inputs."""
    task = draw(st.sampled_from(["modular-addition", "sort", "max", "induction"]))
    L = draw(st.integers(1, max_layers))
    if task == "modular-addition":
        V, N = draw(st.integers(2, 4)), 3
        O = V - 1 + draw(st.integers(0, 1))
    elif task == "sort":
        V, N = draw(st.integers(2, 4)), draw(st.sampled_from([2, 4, 6] if L == 1 else [2, 4]))
        O = V - 1 + draw(st.integers(0, 1))
    else:
        V, N = draw(st.integers(2, 3)), draw(st.integers(2, 3))
        O = V
    if task == "sort" and (V - 1) ** (N // 2) > 27:
        N = 2
    weights, arch = build_v3(draw(st.sampled_from(KINDS)), draw(st.integers(0, 2**16)), V=V, O=O, N=N,
                             D=draw(st.integers(2, 4)), E=draw(st.integers(1, 2)), H=draw(st.integers(1, 2)),
                             M=draw(st.integers(1, 4)), L=L, act=draw(st.sampled_from(ACTIVATIONS)),
                             norm=draw(st.sampled_from(NORMALIZATIONS)), dtype=draw(st.sampled_from([np.float32, np.float64])),
                             scale=draw(st.sampled_from([0.3, 1.0, 3.0])))
    return weights, arch, task
