"""Weights from other tools: .npz, .pt, .safetensors; TransformerLens state dicts and their buffers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from compact_proofs.generator import weights_io
from tests.models import build

WEIGHTS = build("gaussian", 2, V=5, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)


@pytest.mark.parametrize("suffix", [".npz", ".pt", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    weights_io.save(path, WEIGHTS)
    loaded = weights_io.load(path)
    assert set(loaded) == set(WEIGHTS)
    for key in WEIGHTS:
        assert np.array_equal(loaded[key], WEIGHTS[key]) and loaded[key].dtype == np.float32


def hooked_transformer_state_dict() -> dict:
    """What HookedTransformer(attn_only, 1 layer, no LayerNorm).state_dict() contains: parameters plus
    the attention buffers mask and IGNORE."""
    state = {k: torch.from_numpy(v) for k, v in WEIGHTS.items()}
    state["blocks.0.attn.mask"] = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    state["blocks.0.attn.IGNORE"] = torch.tensor(-1e5)
    return state


def test_hooked_transformer_state_dict_in_pt_and_safetensors(tmp_path):
    torch.save(hooked_transformer_state_dict(), tmp_path / "ht.pt")
    save_file(hooked_transformer_state_dict(), str(tmp_path / "ht.safetensors"))
    for name in ("ht.pt", "ht.safetensors"):
        loaded = weights_io.load(tmp_path / name)
        assert set(loaded) == set(WEIGHTS)


def test_wrapped_state_dict_and_missing_head_axis(tmp_path):
    state = {k: torch.from_numpy(v[0] if v.ndim == 3 or k.endswith(("b_Q", "b_K", "b_V")) else v) for k, v in WEIGHTS.items()}
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    loaded = weights_io.load(tmp_path / "wrapped.pt")
    assert loaded["blocks.0.attn.W_Q"].shape == (1, 4, 2)


def test_half_precision_is_widened_exactly(tmp_path):
    state = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in WEIGHTS.items()}
    save_file(state, str(tmp_path / "bf16.safetensors"))
    loaded = weights_io.load(tmp_path / "bf16.safetensors")
    assert loaded["embed.W_E"].dtype == np.float32
    assert np.array_equal(loaded["embed.W_E"], state["embed.W_E"].to(torch.float32).numpy())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update({"ln_final.w": np.ones(4, np.float32)}), "LayerNorm and MLP weights are outside what is certified: attention-only transformers of one or two layers"),
        (lambda s: s.pop("unembed.W_U"), "missing"),
        (lambda s: s.update({"embed.W_E": np.full((5, 4), np.nan, np.float32)}), "NaN"),
        (lambda s: s.update({"blocks.0.attn.W_Q": np.zeros((2, 4, 2), np.float32)}), "head"),
        (lambda s: s.update({"embed.W_E": np.zeros((5, 4), np.int64)}), "float32"),
    ],
)
def test_bad_weights_are_errors(tmp_path, edit, message):
    state = dict(WEIGHTS)
    edit(state)
    np.savez(tmp_path / "bad.npz", **state)
    with pytest.raises(weights_io.WeightsError, match=message):
        weights_io.load(tmp_path / "bad.npz")


def test_unreadable_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(weights_io.WeightsError, match="cannot read"):
        weights_io.load(tmp_path / "junk.pt")
    with pytest.raises(weights_io.WeightsError, match="no such file"):
        weights_io.load(tmp_path / "absent.npz")
    with pytest.raises(weights_io.WeightsError, match="unsupported file type"):
        weights_io.load(tmp_path / "model.bin")


def two_layer_state_dict() -> dict:
    """A two-layer, two-head attention-only HookedTransformer state dict, with its buffers."""
    from tests.models import build_v2

    state = {k: torch.from_numpy(v) for k, v in build_v2("gaussian", 4, V=5, N=3, D=4, E=2, H=2, L=2, scale=1.0, biases=True,
                                                          dtype=np.float32).items()}
    for layer in (0, 1):
        state[f"blocks.{layer}.attn.mask"] = torch.tril(torch.ones(3, 3, dtype=torch.bool))
        state[f"blocks.{layer}.attn.IGNORE"] = torch.tensor(-1e5)
    return state


def test_two_layer_multi_head_state_dicts_load_in_every_format(tmp_path):
    state = two_layer_state_dict()
    torch.save(state, tmp_path / "m.pt")
    save_file(state, str(tmp_path / "m.safetensors"))
    np.savez(tmp_path / "m.npz", **{k: v.numpy() for k, v in state.items() if not k.endswith(("mask", "IGNORE"))})
    for name in ("m.pt", "m.safetensors", "m.npz"):
        loaded = weights_io.load(tmp_path / name)
        assert weights_io.is_v2(loaded) and loaded["blocks.1.attn.W_O"].shape == (2, 2, 4)
        assert all(np.array_equal(loaded[k], v.numpy()) for k, v in state.items() if k in loaded)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update({"blocks.1.mlp.W_in": torch.zeros(4, 8)}), "LayerNorm and MLP"),
    (lambda s: s.update({"blocks.1.ln1.w": torch.ones(4)}), "LayerNorm and MLP"),
    (lambda s: s.update({"blocks.2.attn.W_Q": torch.zeros(2, 4, 2)}), "blocks.0 and optionally blocks.1"),
    (lambda s: s.update({"blocks.1.attn.W_K": torch.zeros(3, 4, 2)}), "inconsistent"),
])
def test_what_format_v2_does_not_cover_is_a_clear_error(tmp_path, edit, message):
    state = two_layer_state_dict()
    edit(state)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(weights_io.WeightsError, match=message):
        weights_io.load(tmp_path / "bad.pt")
