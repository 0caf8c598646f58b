"""A reference evaluator for tiny format-v2 models (1-2 layers, H heads, causal mask), written
from SEMANTICS.md (version 2) alone: the forward pass in mpmath interval arithmetic (mpmath.iv:
every operation, exp and sqrt included, returns an interval containing the exact result), at
rising precision. For each input of the task's domain: True (correct), False (a logit at least
the label's), or None when no precision settles it (an exact tie of non-identical logits)."""

from __future__ import annotations

import itertools

import numpy as np
from mpmath import iv

PRECISIONS = (80, 300, 1200)


def _logits(w: dict, x: tuple[int, ...]) -> list:
    V, D = w["embed.W_E"].shape
    N = len(x)
    layers = sorted({int(k.split(".")[1]) for k in w if k.startswith("blocks.")})
    f = lambda a: iv.mpf(float(a))  # noqa: E731  (a float is an exact dyadic)
    r = [[f(w["embed.W_E"][x[i], d]) + f(w["pos_embed.W_pos"][i, d]) for d in range(D)] for i in range(N)]
    for l in layers:
        get = lambda name, shape: np.asarray(w.get(f"blocks.{l}.attn.{name}", np.zeros(shape)), dtype=np.float64)  # noqa: E731
        mats = {n: np.asarray(w[f"blocks.{l}.attn.{n}"], dtype=np.float64) for n in ("W_Q", "W_K", "W_V", "W_O")}  # head axis present
        H, _, E = mats["W_Q"].shape
        bias = {n: get(n, (H, E)) for n in ("b_Q", "b_K", "b_V")}
        b_O = get("b_O", (D,))
        out = [[r[i][d] + f(b_O[d]) for d in range(D)] for i in range(N)]
        for h in range(H):
            proj = lambda n: [[sum((r[i][d] * f(mats[n][h][d, e]) for d in range(D)), iv.mpf(0)) + f(bias["b_" + n[-1]][h][e])  # noqa: E731
                               for e in range(E)] for i in range(N)]
            q, k, v = proj("W_Q"), proj("W_K"), proj("W_V")
            scale = 1 / iv.sqrt(iv.mpf(E))
            for i in range(N):
                weights = [iv.exp(sum((q[i][e] * k[j][e] for e in range(E)), iv.mpf(0)) * scale) for j in range(i + 1)]
                total = sum(weights, iv.mpf(0))
                for d in range(D):
                    mixed = sum((weights[j] * sum((v[j][e] * f(mats["W_O"][h][e, d]) for e in range(E)), iv.mpf(0))
                                 for j in range(i + 1)), iv.mpf(0))
                    out[i][d] = out[i][d] + mixed / total
        r = out
    b_U = np.asarray(w.get("unembed.b_U", np.zeros(V)), dtype=np.float64)
    return [sum((r[N - 1][d] * f(w["unembed.W_U"][d, o]) for d in range(D)), iv.mpf(0)) + f(b_U[o]) for o in range(V)]


def decide(w: dict, x: tuple[int, ...], label: int) -> bool | None:
    V = w["embed.W_E"].shape[0]
    for bits in PRECISIONS:
        iv.prec = bits
        logits = _logits(w, x)
        margins = [logits[label] - logits[o] for o in range(V) if o != label]
        if all(m.a > 0 for m in margins):
            return True
        if any(m.b < 0 for m in margins):
            return False
    W_U, b_U = np.asarray(w["unembed.W_U"]), np.asarray(w.get("unembed.b_U", np.zeros(V)))
    if any((W_U[:, o] == W_U[:, label]).all() and b_U[o] == b_U[label] for o in range(V) if o != label):
        return False  # identical logits: a tie
    return None


def reference(w: dict, task) -> tuple[int, int]:
    """(inputs certainly correct, inputs not settled) over the task's domain."""
    V, N = w["embed.W_E"].shape[0], w["pos_embed.W_pos"].shape[0]
    xs = np.array(list(itertools.product(range(V), repeat=N)), dtype=np.int64).reshape(-1, N)
    labels, domain = task.labels(xs)
    results = [decide(w, tuple(int(t) for t in x), int(y)) for x, y, d in zip(xs, labels, domain) if d]
    return results.count(True), results.count(None)
