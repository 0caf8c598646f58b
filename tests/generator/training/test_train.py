"""Training: deterministic for a seed, and the paper's recipe reaches the paper's accuracy."""

from __future__ import annotations

import pytest
import torch

from compact_proofs.generator.training import portable
from compact_proofs.generator.training.model import ModelConfig
from compact_proofs.generator.training.train import TrainConfig, train


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
    from compact_proofs.generator.training import manifest

    model = train(123, manifest.paper_config(4))
    digest = model_digest({k: v.detach().numpy() for k, v in model.state_dict().items()})
    assert digest == manifest.load()[(4, 123)] == model_digest(trained_k4)


INDUCTION = ModelConfig(d_vocab=4, n_ctx=5, d_model=8, d_head=4, n_layers=2, n_heads=2)


def test_induction_training_is_deterministic_and_has_two_layers_of_heads():
    a, b = (train(3, INDUCTION, TrainConfig(steps=20), task="induction").state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["blocks.1.attn.W_Q"].shape == (2, 8, 4) and a["blocks.1.attn.W_O"].shape == (2, 4, 8)


def test_task_batches_come_from_the_domain_with_their_labels():
    import numpy as np

    from compact_proofs.checker.tasks import resolve
    from compact_proofs.generator.training.train import _batch

    tokens, labels = _batch("induction", INDUCTION, 300, torch.Generator().manual_seed(0))
    want, domain = resolve("induction").labels(tokens.numpy())
    assert tokens.shape == (300, 5) and domain.all() and np.array_equal(labels.numpy(), want)
    with pytest.raises(ValueError, match="no inputs"):
        _batch("induction", ModelConfig(d_vocab=4, n_ctx=1, n_layers=2), 4, torch.Generator())


def test_the_causal_stack_computes_the_checkers_semantics():
    """The torch model's logits (float64) lie in the checker's enclosures of version 2's logits."""
    import numpy as np

    from compact_proofs.checker.transformer import enclose_logits, from_weights
    from compact_proofs.generator.training.model import build

    torch.manual_seed(0)
    model = build(INDUCTION).double()
    for p in model.parameters():
        p.data.normal_()
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    balls = enclose_logits(from_weights(weights), ())
    tokens = torch.from_numpy(np.indices((4,) * 5).reshape(5, -1).T.copy())
    with torch.no_grad():
        logits = model(tokens).numpy()
    slack = 1e-9 * (1 + np.abs(logits))  # torch's own float64 rounding
    assert (balls.lower() <= logits + slack).all() and (logits - slack <= balls.upper()).all()
