"""Models saved by the real TransformerLens (one layer and one head, or two layers of several
heads) load, prove and match its own logits.

TransformerLens is an optional test dependency (`pip install -e '.[generator,dev,transformer-lens]'`);
releases 2.x and 3.x have HookedTransformer. Release 4 removed it (its TransformerBridge wraps
Hugging Face models, whose LayerNorm and MLP weights are outside SEMANTICS.md): this file is
skipped there, and where TransformerLens is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

tl = pytest.importorskip("transformer_lens")
try:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
except ImportError:  # TransformerLens 4 raises ImportError with a migration note
    pytest.skip("this TransformerLens has no HookedTransformer (4.x)", allow_module_level=True)

from compact_proofs.generator import weights_io  # noqa: E402
from compact_proofs.checker import tasks  # noqa: E402
from compact_proofs.generator.training.model import AttentionOnly, ModelConfig, build  # noqa: E402
from compact_proofs.generator.proving.prover import prove  # noqa: E402
from tests.reference.evaluator import exact_correct_count  # noqa: E402
from tests.reference.evaluator_v2 import reference  # noqa: E402

V, N, D, H = 5, 3, 8, 4


def hooked(seed: int, dtype=torch.float32, n_layers: int = 1, n_heads: int = 1, V: int = V, N: int = N,
           normalization_type: str | None = None) -> HookedTransformer:
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(n_layers=n_layers, n_heads=n_heads, d_model=D, d_head=H, d_vocab=V, n_ctx=N, attn_only=True,
                                  normalization_type=normalization_type, positional_embedding_type="standard",
                                  act_fn="relu", dtype=dtype)
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0, 0.8)  # biases too: the semantics include them
    return model.eval()


def save(model: HookedTransformer, path) -> None:
    state = model.state_dict()
    suffix = path.suffix
    if suffix == ".pt":
        torch.save(state, path)
    elif suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        np.savez(path, **{k: v.numpy() for k, v in state.items()})


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".npz"])
def test_a_hooked_transformer_file_loads_with_its_own_logits(tmp_path, suffix):
    model = hooked(1, torch.float64)
    path = tmp_path / f"model{suffix}"
    save(model, path)
    weights = weights_io.load(path)  # buffers (attn.mask, attn.IGNORE) dropped, every parameter kept
    ours = AttentionOnly(ModelConfig(d_vocab=V, n_ctx=N, d_model=D, d_head=H)).double()
    ours.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in weights.items()})
    tokens = torch.cartesian_prod(*[torch.arange(V)] * N)
    with torch.no_grad():
        theirs = model(tokens)[:, -1]
        assert torch.allclose(ours(tokens), theirs, atol=1e-10)


def test_a_hooked_transformer_state_dict_is_proved_directly():
    model = hooked(2)
    proof = prove(model.state_dict(), "brute-force")  # the Python API takes the state dict as it is
    weights = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith(("attn.mask", "attn.IGNORE"))}
    assert proof.verdict.accepted and proof.verdict.verified_correct == exact_correct_count(weights)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".npz"])
def test_a_two_layer_multi_head_hooked_transformer_loads_with_its_own_logits(tmp_path, suffix):
    model = hooked(3, torch.float64, n_layers=2, n_heads=2)
    path = tmp_path / f"model{suffix}"
    save(model, path)
    weights = weights_io.load(path)
    ours = build(ModelConfig(d_vocab=V, n_ctx=N, d_model=D, d_head=H, n_layers=2, n_heads=2)).double()
    ours.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in weights.items()})
    tokens = torch.cartesian_prod(*[torch.arange(V)] * N)
    with torch.no_grad():
        assert torch.allclose(ours(tokens), model(tokens)[:, -1], atol=1e-10)


def test_a_two_layer_hooked_transformer_is_certified_on_induction(tmp_path):
    """prove(state_dict, task=...) on TransformerLens' own two-layer model: the checker's count
    is the mpmath reference evaluator's, and the file route gives the same certificate."""
    model = hooked(4, n_layers=2, n_heads=2, V=3, N=4)
    proof = prove(model.state_dict(), "brute-force", task="induction")
    weights = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith(("attn.mask", "attn.IGNORE"))}
    correct, unsettled = reference(weights, tasks.resolve("induction"))
    assert proof.verdict.accepted and unsettled == 0 and proof.verdict.verified_correct == correct
    save(model, tmp_path / "model.safetensors")
    assert prove(weights_io.load(tmp_path / "model.safetensors"), "brute-force", task="induction").raw == proof.raw


def test_a_hooked_transformer_with_layernorm_gets_a_clear_error(tmp_path):
    model = hooked(5, n_layers=2, n_heads=2, normalization_type="LN")
    save(model, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="LayerNorm"):
        weights_io.load(tmp_path / "model.pt")
