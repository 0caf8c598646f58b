"""Hypothesis strategies for tiny models, benign and adversarial.

Kinds:
- gaussian: float32/float64 weights of varied scale, optional biases;
- coarse: entries in {-2..2}/4, so scores and margins collide and cancel exactly and often;
- uniform-attention: W_K = 0 (every score equal), margins are rational and often exactly zero;
- tie: two W_U columns (and b_U entries) equal, so two logits tie on every input;
- near-tie: as tie, then one b_U entry moved by one ulp, so those logits differ by one ulp;
- equal-residual: two tokens with equal embeddings and two positions with equal embeddings, so
  scores coincide and terms with equal exponents must be merged before deciding a sign;
- huge-scores: W_Q, W_K scaled up so scores overflow exp in float64.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

KINDS = ("gaussian", "coarse", "uniform-attention", "tie", "near-tie", "equal-residual", "huge-scores")


def _shapes(V: int, N: int, D: int, H: int) -> dict[str, tuple[int, ...]]:
    return {
        "embed.W_E": (V, D),
        "pos_embed.W_pos": (N, D),
        "blocks.0.attn.W_Q": (1, D, H),
        "blocks.0.attn.W_K": (1, D, H),
        "blocks.0.attn.W_V": (1, D, H),
        "blocks.0.attn.W_O": (1, H, D),
        "unembed.W_U": (D, V),
    }


BIAS_SHAPES = lambda V, D, H: {  # noqa: E731
    "blocks.0.attn.b_Q": (1, H),
    "blocks.0.attn.b_K": (1, H),
    "blocks.0.attn.b_V": (1, H),
    "blocks.0.attn.b_O": (D,),
    "unembed.b_U": (V,),
}


def build(kind: str, seed: int, V: int, N: int, D: int, H: int, scale: float, biases: bool, dtype) -> dict:
    rng = np.random.default_rng(seed)
    shapes = _shapes(V, N, D, H)
    if biases or kind in ("tie", "near-tie"):
        shapes.update(BIAS_SHAPES(V, D, H))
    w = _adversarial(kind, _draw(kind, rng, shapes, scale, dtype), rng, V, N, dtype, layers=1)
    if kind == "equal-residual":
        if V >= 2:
            w["embed.W_E"][1] = w["embed.W_E"][0]
        if N >= 3:
            w["pos_embed.W_pos"][1] = w["pos_embed.W_pos"][0]
    return w


def _draw(kind: str, rng, shapes: dict, scale: float, dtype) -> dict:
    if kind in ("coarse", "uniform-attention"):
        w = {k: rng.integers(-2, 3, size=s) / 4 for k, s in shapes.items()}
    else:
        w = {k: rng.normal(size=s) * scale for k, s in shapes.items()}
    return {k: v.astype(dtype) for k, v in w.items()}


def _adversarial(kind: str, w: dict, rng, V: int, N: int, dtype, layers: int) -> dict:
    """uniform-attention, tie, near-tie and huge-scores, in every layer."""
    for l in range(layers):
        if kind == "uniform-attention":
            w[f"blocks.{l}.attn.W_K"][:] = 0
            w.pop(f"blocks.{l}.attn.b_K", None)
        if kind == "huge-scores":
            w[f"blocks.{l}.attn.W_Q"] *= dtype(300)
            w[f"blocks.{l}.attn.W_K"] *= dtype(300)
    if kind in ("tie", "near-tie") and V >= 2:
        a, b = rng.choice(V, size=2, replace=False)
        w["unembed.W_U"][:, a] = w["unembed.W_U"][:, b]
        w["unembed.b_U"][a] = w["unembed.b_U"][b]
        if kind == "near-tie":
            direction = np.inf if rng.random() < 0.5 else -np.inf
            w["unembed.b_U"][a] = np.nextafter(w["unembed.b_U"][a], w["unembed.b_U"].dtype.type(direction))
    return w


@st.composite
def tiny_models(draw, max_vocab: int = 5, max_ctx: int = 4, max_inputs: int = 700, kinds=KINDS) -> dict:
    V = draw(st.integers(2, max_vocab))  # d_vocab = 1 is covered by an explicit test
    N = draw(st.integers(1, max_ctx).filter(lambda n: V**n <= max_inputs))
    D = draw(st.integers(1, 8))
    H = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(kinds))
    scale = draw(st.sampled_from([1e-3, 0.1, 1.0, 3.0, 30.0]))
    biases = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    return build(kind, seed, V, N, D, H, scale, biases, dtype)


def near_tie_model() -> dict:
    """Every logit difference is +-(a_0 - a_1), the attention on two positions whose scores differ
    by 2^-80: its sign is settled at 128 bits, not at 64. Exactly one input, (0, 0), is correct."""
    return {
        "embed.W_E": np.zeros((2, 3)),
        "pos_embed.W_pos": np.array([[1.0, 2.0**-80, 0.0], [-1.0, 0.0, 0.0]]),  # values +-1; key offset 2^-80
        "blocks.0.attn.W_Q": np.zeros((1, 3, 1)),
        "blocks.0.attn.b_Q": np.ones((1, 1)),
        "blocks.0.attn.W_K": np.array([[[0.0], [1.0], [0.0]]]),
        "blocks.0.attn.W_V": np.array([[[1.0], [0.0], [0.0]]]),
        "blocks.0.attn.W_O": np.array([[[0.0, 0.0, 1.0]]]),
        "unembed.W_U": np.array([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0]]),
    }


KINDS_V2 = ("gaussian", "coarse", "uniform-attention", "tie", "near-tie", "huge-scores")


def build_v2(kind: str, seed: int, V: int, N: int, D: int, E: int, H: int, L: int, scale: float, biases: bool, dtype) -> dict:
    """A format-v2 model (L layers of H heads, d_head E) of the given kind (as `build`)."""
    rng = np.random.default_rng(seed)
    shapes = {"embed.W_E": (V, D), "pos_embed.W_pos": (N, D), "unembed.W_U": (D, V)}
    for l in range(L):
        shapes.update({f"blocks.{l}.attn.{n}": (H, D, E) for n in ("W_Q", "W_K", "W_V")})
        shapes[f"blocks.{l}.attn.W_O"] = (H, E, D)
        if biases:
            shapes.update({f"blocks.{l}.attn.{n}": (H, E) for n in ("b_Q", "b_K", "b_V")})
            shapes[f"blocks.{l}.attn.b_O"] = (D,)
    if biases or kind in ("tie", "near-tie"):
        shapes["unembed.b_U"] = (V,)
    return _adversarial(kind, _draw(kind, rng, shapes, scale, dtype), rng, V, N, dtype, layers=L)


@st.composite
def tiny_models_v2(draw, max_inputs: int = 81) -> dict:
    V = draw(st.integers(2, 3))
    N = draw(st.integers(1, 4).filter(lambda n: V**n <= max_inputs))
    D, E, H, L = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kind = draw(st.sampled_from(KINDS_V2))
    scale = draw(st.sampled_from([1e-3, 0.3, 1.0, 3.0]))
    return build_v2(kind, draw(st.integers(0, 2**32 - 1)), V, N, D, E, H, L, scale, draw(st.booleans()),
                    draw(st.sampled_from([np.float32, np.float64])))


def induction_circuit(V: int, N: int, strength: float = 12.0, recency: float = 1.0, dtype=np.float64) -> dict:
    """A hand-built two-layer induction model (format v2, one head per layer), exact in float64.

    The residual holds the token (one-hot, V), the position (one-hot, N), the previous token
    (written by layer 0, V) and the copied token (written by layer 1, V). Layer 0 attends from j to
    j - 1 (score `strength` for that key, 0 otherwise; position 0 attends to itself) and writes the
    key's token into the previous-token slot. Layer 1 matches the current token against the
    previous-token slot (score `strength` on a match) plus `recency` times the key's position, and
    copies the key's token; the unembedding reads only the copied slot."""
    D = 3 * V + N
    tok, pos, prev, copy = 0, V, V + N, 2 * V + N
    W_E = np.zeros((V, D)); W_E[np.arange(V), tok + np.arange(V)] = 1.0
    W_pos = np.zeros((N, D)); W_pos[np.arange(N), pos + np.arange(N)] = 1.0
    E = max(V, N) + 1  # the last coordinate carries layer 1's recency term
    scale = np.sqrt(E)
    q0 = np.zeros((1, D, E)); k0 = np.zeros((1, D, E))
    for j in range(N):  # query at position j selects key position j - 1
        q0[0, pos + j, (j - 1) % N if j > 0 else 0] = strength * scale
        k0[0, pos + j, j] = 1.0
    v0 = np.zeros((1, D, E)); o0 = np.zeros((1, E, D))
    v0[0, tok + np.arange(V), np.arange(V)] = 1.0
    o0[0, np.arange(V), prev + np.arange(V)] = 1.0
    q1 = np.zeros((1, D, E)); k1 = np.zeros((1, D, E))
    q1[0, tok + np.arange(V), np.arange(V)] = strength * scale
    k1[0, prev + np.arange(V), np.arange(V)] = 1.0
    q1b = np.zeros((1, E)); q1b[0, E - 1] = recency * scale
    k1[0, pos + np.arange(N), E - 1] = np.arange(N)
    v1 = np.zeros((1, D, E)); o1 = np.zeros((1, E, D))
    v1[0, tok + np.arange(V), np.arange(V)] = 1.0
    o1[0, np.arange(V), copy + np.arange(V)] = 1.0
    W_U = np.zeros((D, V)); W_U[copy + np.arange(V), np.arange(V)] = 1.0
    weights = {"embed.W_E": W_E, "pos_embed.W_pos": W_pos, "unembed.W_U": W_U,
               "blocks.0.attn.W_Q": q0, "blocks.0.attn.W_K": k0, "blocks.0.attn.W_V": v0, "blocks.0.attn.W_O": o0,
               "blocks.1.attn.W_Q": q1, "blocks.1.attn.W_K": k1, "blocks.1.attn.W_V": v1, "blocks.1.attn.W_O": o1,
               "blocks.1.attn.b_Q": q1b}
    return {k: v.astype(dtype) for k, v in weights.items()}
