"""Training: deterministic for a seed, and the paper's recipe reaches the paper's accuracy."""

from __future__ import annotations

import pytest
import torch

from compact_proofs.generator import portable
from compact_proofs.generator.model import ModelConfig
from compact_proofs.generator.train import TrainConfig, train


def weights(seed: int) -> dict:
    model = train(seed, ModelConfig(d_vocab=8, n_ctx=3, d_model=8, d_head=4), TrainConfig(steps=30))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights_bit_for_bit():
    a, b = weights(5), weights(5)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_different_seeds_differ():
    a, b = weights(5), weights(6)
    assert not torch.equal(a["embed.W_E"], b["embed.W_E"])


def test_biases_stay_zero_and_state_dict_has_transformer_lens_keys():
    w = weights(1)
    assert set(w) >= {"embed.W_E", "pos_embed.W_pos", "blocks.0.attn.W_Q", "unembed.W_U", "unembed.b_U"}
    assert w["blocks.0.attn.W_Q"].shape == (1, 8, 4)
    assert all(not v.any() for k, v in w.items() if ".b_" in k)


def test_the_published_model_learns_max_of_4(trained_k4):
    from tests.helpers import check_weights

    verdict = check_weights(trained_k4)
    assert verdict.accepted and verdict.verified_correct / verdict.total > 0.999


@pytest.mark.skipif(not portable.x86_64(), reason="the published bytes are promised on x86-64 only")
def test_training_reproduces_the_published_model(trained_k4):
    """The paper's recipe for K=4 seed 123, trained here, is the manifest's model and the one in
    the committed certificates (on any x86-64 CPU: test_portable.py emulates others)."""
    from compact_proofs.checker.weights import model_digest
    from compact_proofs.generator import manifest

    model = train(123, manifest.paper_config(4))
    digest = model_digest({k: v.detach().numpy() for k, v in model.state_dict().items()})
    assert digest == manifest.load()[(4, 123)] == model_digest(trained_k4)
