"""Models saved by the real TransformerLens load, prove and match its own logits.

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
from compact_proofs.generator.model import AttentionOnly, ModelConfig  # noqa: E402
from compact_proofs.generator.prover import prove  # noqa: E402
from tests.reference.evaluator import exact_correct_count  # noqa: E402

V, N, D, H = 5, 3, 8, 4


def hooked(seed: int, dtype=torch.float32) -> HookedTransformer:
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(n_layers=1, n_heads=1, d_model=D, d_head=H, d_vocab=V, n_ctx=N, attn_only=True,
                                  normalization_type=None, positional_embedding_type="standard", act_fn="relu", dtype=dtype)
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0, 0.8)  # biases too: the semantics include them
    return model.eval()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".npz"])
def test_a_hooked_transformer_file_loads_with_its_own_logits(tmp_path, suffix):
    model = hooked(1, torch.float64)
    path = tmp_path / f"model{suffix}"
    state = model.state_dict()
    if suffix == ".pt":
        torch.save(state, path)
    elif suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
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
