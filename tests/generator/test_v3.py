"""Format v3 from the generator's side: models trained by other code (the real TransformerLens
where it installs, and a Hugging Face GPT-2-layout state dict built by hand), refusals of what the
semantics do not cover, the recipes, and the commands a user runs (import, prove, check)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from compact_proofs.checker import certificate
from compact_proofs.checker.verify import check
from compact_proofs.generator import importers, weights_io
from compact_proofs.generator.proving.prover import ProofError, prove
from compact_proofs.generator.training.model_v3 import Config3, Transformer3


def gpt2_state(seed=0, D=8, H=2, V=7, N=4, M=32, L=2, tied=True):
    rng = np.random.default_rng(seed)
    st = {"transformer.wte.weight": rng.normal(size=(V, D)), "transformer.wpe.weight": rng.normal(size=(N, D)) * 0.3,
          "transformer.ln_f.weight": 1 + 0.1 * rng.normal(size=D), "transformer.ln_f.bias": 0.1 * rng.normal(size=D)}
    for l in range(L):
        p = f"transformer.h.{l}."
        st |= {p + "ln_1.weight": 1 + 0.1 * rng.normal(size=D), p + "ln_1.bias": 0.1 * rng.normal(size=D),
               p + "attn.c_attn.weight": rng.normal(size=(D, 3 * D)) * 0.4, p + "attn.c_attn.bias": 0.1 * rng.normal(size=3 * D),
               p + "attn.c_proj.weight": rng.normal(size=(D, D)) * 0.4, p + "attn.c_proj.bias": 0.1 * rng.normal(size=D),
               p + "ln_2.weight": 1 + 0.1 * rng.normal(size=D), p + "ln_2.bias": 0.1 * rng.normal(size=D),
               p + "mlp.c_fc.weight": rng.normal(size=(D, M)) * 0.4, p + "mlp.c_fc.bias": 0.1 * rng.normal(size=M),
               p + "mlp.c_proj.weight": rng.normal(size=(M, D)) * 0.2, p + "mlp.c_proj.bias": 0.1 * rng.normal(size=D),
               p + "attn.bias": np.tril(np.ones((1, 1, N, N))), p + "attn.masked_bias": np.array(-1e4)}
    if not tied:
        st["lm_head.weight"] = rng.normal(size=(V, D))
    return {k: v.astype(np.float32) for k, v in st.items()}


def hf_gpt2_forward(st: dict, tokens: np.ndarray, H: int, eps: float = 1e-5) -> np.ndarray:
    """Hugging Face's GPT-2 forward, written from its modeling code's operations (float64)."""
    g = lambda k: np.asarray(st["transformer." + k], dtype=np.float64)  # noqa: E731
    T = len(tokens)
    x = g("wte.weight")[tokens] + g("wpe.weight")[:T]
    D = x.shape[1]
    E = D // H

    def ln(v, w, b):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + eps) * w + b

    layers = sorted({int(k.split(".")[2]) for k in st if k.startswith("transformer.h.")})
    for l in layers:
        p = f"h.{l}."
        a = ln(x, g(p + "ln_1.weight"), g(p + "ln_1.bias")) @ g(p + "attn.c_attn.weight") + g(p + "attn.c_attn.bias")
        q, k, v = (a[:, i * D:(i + 1) * D].reshape(T, H, E).transpose(1, 0, 2) for i in range(3))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(E)
        s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
        pattern = np.exp(s - s.max(-1, keepdims=True))
        pattern /= pattern.sum(-1, keepdims=True)
        z = (pattern @ v).transpose(1, 0, 2).reshape(T, D)
        x = x + z @ g(p + "attn.c_proj.weight") + g(p + "attn.c_proj.bias")
        h = ln(x, g(p + "ln_2.weight"), g(p + "ln_2.bias")) @ g(p + "mlp.c_fc.weight") + g(p + "mlp.c_fc.bias")
        h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
        x = x + h @ g(p + "mlp.c_proj.weight") + g(p + "mlp.c_proj.bias")
    x = ln(x, g("ln_f.weight"), g("ln_f.bias"))
    head = st.get("lm_head.weight", st["transformer.wte.weight"])
    return x @ np.asarray(head, dtype=np.float64).T


def as_model(weights: dict, arch: dict) -> Transformer3:
    """A version-3 torch model (float64) holding imported weights."""
    V, D = weights["embed.W_E"].shape
    H, _, E = weights["blocks.0.attn.W_Q"].shape
    M = weights["blocks.0.mlp.W_in"].shape[1] if "blocks.0.mlp.W_in" in weights else 0
    L = len({k.split(".")[1] for k in weights if k.startswith("blocks.")})
    cfg = Config3(d_vocab=V, n_ctx=weights["pos_embed.W_pos"].shape[0], d_model=D, d_head=E, n_heads=H, n_layers=L,
                  d_vocab_out=weights["unembed.W_U"].shape[1], d_mlp=M,
                  act=arch["activation"] if M else "relu", normalization=arch["normalization"], eps=arch.get("eps", "1e-05"))
    model = Transformer3(cfg).double()
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    state |= {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in weights.items()}
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_gpt2_layout_imports_to_the_same_function(tied):
    st = gpt2_state(tied=tied)
    weights, arch = importers.from_gpt2(st, {"n_head": 2, "layer_norm_epsilon": 1e-5})
    assert arch == {"activation": "gelu_new", "normalization": "LN", "eps": "1e-05"}
    tokens = np.array([3, 1, 6, 0])
    ours = as_model(weights, arch)(torch.from_numpy(tokens[None]))[0].detach().numpy()
    assert np.abs(ours - hf_gpt2_forward(st, tokens, 2)).max() < 1e-10


def test_gpt2_layout_is_certified_and_the_count_is_consistent_with_float64():
    st = gpt2_state(seed=3, V=4, N=3)
    weights, arch = importers.from_gpt2(st, {"n_head": 2})
    proof = prove(weights, "brute-force", task="max", architecture=arch)
    assert proof.verdict.accepted and proof.verdict.notes["undecided"] == 0
    right = 0
    for x in np.array(np.meshgrid(*[range(4)] * 3, indexing="ij")).reshape(3, -1).T:
        logits = hf_gpt2_forward(st, x, 2)[-1]
        y = x.max()
        right += bool((logits[y] > np.delete(logits, y)).all())
    assert proof.verdict.verified_correct == right  # float64 has no near-ties here to disagree on


@pytest.mark.parametrize("change, words", [
    ({"activation_function": "silu"}, "activation 'silu'"),
    ({"scale_attn_by_inverse_layer_idx": True}, "inverse layer index"),
    ({"n_head": None}, "number of heads"),
])
def test_gpt2_refusals_name_what(change, words):
    with pytest.raises(importers.ImportRefused, match=words):
        importers.from_gpt2(gpt2_state(), {"n_head": 2} | change)


def test_gpt2_unknown_key_is_named():
    st = gpt2_state() | {"transformer.h.0.attn.rotary_emb.inv_freq": np.ones(4, np.float32)}
    with pytest.raises(importers.ImportRefused, match="rotary_emb"):
        importers.from_gpt2(st, {"n_head": 2})


@pytest.mark.parametrize("change, words", [
    ({"normalization_type": "RMS"}, "RMSNorm"), ({"positional_embedding_type": "rotary"}, "rotary"),
    ({"attention_dir": "bidirectional"}, "bidirectional"), ({"act_fn": "silu"}, "silu"), ({"act_fn": "solu_ln"}, "solu_ln"),
    ({"gated_mlp": True}, "gated"), ({"n_layers": 5}, "at most 4"), ({"use_attn_scale": False}, "scale"),
])
def test_transformer_lens_config_refusals_name_what(change, words):
    cfg = {"normalization_type": "LN", "act_fn": "gelu", "eps": 1e-5, "d_head": 4, "n_heads": 2, "n_layers": 1} | change
    with pytest.raises(importers.ImportRefused, match=words):
        importers.transformer_lens_architecture(cfg)


# ---------------------------------------------------------------------------------------------
# the real TransformerLens (an optional test dependency)


def _hooked(normalization: str, act: str, seed: int = 0, layers: int = 2):
    transformer_lens = pytest.importorskip("transformer_lens")
    cfg = transformer_lens.HookedTransformerConfig(
        n_layers=layers, d_model=8, d_head=4, n_heads=2, d_mlp=16, d_vocab=5, d_vocab_out=4, n_ctx=4, act_fn=act,
        normalization_type=normalization, seed=seed, dtype=torch.float64, device="cpu")
    model = transformer_lens.HookedTransformer(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".b", "b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U")) or name.endswith(".w"):
                p.add_(0.1 * torch.randn_like(p))  # biases and LayerNorm weights away from their initial values
    return model


@pytest.mark.parametrize("normalization, act", [("LN", "gelu"), ("LNPre", "gelu_new"), (None, "relu"), ("LN", "relu")])
def test_real_transformer_lens_model_imports_to_the_same_function(normalization, act):
    model = _hooked(normalization, act)
    weights, arch = importers.from_hooked_transformer(model)
    tokens = torch.tensor([[1, 4, 0, 2]])
    theirs = model(tokens).detach().numpy()[0]
    ours = as_model(weights, arch)(tokens)[0].detach().numpy()
    assert np.abs(theirs - ours).max() < 1e-10


def test_real_transformer_lens_folded_and_unfolded_layernorm_both_load():
    model = _hooked("LN", "gelu", seed=1)
    unfolded = prove(model, "brute-force", task="sort")
    state = model.state_dict()
    model.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=False)
    assert model.cfg.normalization_type == "LNPre"
    weights, arch = importers.from_hooked_transformer(model)
    assert arch["normalization"] == "LNPre" and not any(".ln" in k for k in weights)
    folded = prove(model, "brute-force", task="sort")
    assert unfolded.verdict.accepted and folded.verdict.accepted
    # folding is exact in real arithmetic up to float rounding of the folded weights: the counts agree
    # unless an input sits within rounding of a tie, which these weights do not have
    assert folded.verdict.total == unfolded.verdict.total and abs(folded.verdict.verified_correct - unfolded.verdict.verified_correct) <= 1
    assert "blocks.0.ln1.w" in state


def test_real_transformer_lens_outside_the_semantics_is_refused_in_one_line():
    transformer_lens = pytest.importorskip("transformer_lens")
    cfg = transformer_lens.HookedTransformerConfig(n_layers=1, d_model=8, d_head=4, n_heads=2, d_mlp=16, d_vocab=5, n_ctx=4,
                                                   act_fn="silu", normalization_type="RMS", device="cpu")
    with pytest.raises(ProofError, match="RMSNorm|silu"):
        try:
            prove(transformer_lens.HookedTransformer(cfg), "brute-force", task="max")
        except importers.ImportRefused as exc:
            raise ProofError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# recipes and commands


def test_recipes_are_deterministic_and_record_their_architecture():
    from compact_proofs.generator.training import recipes

    first, stats = recipes.train_recipe("sort", 5, steps=3)
    second, _ = recipes.train_recipe("sort", 5, steps=3)
    a, b = recipes.weights_of(first), recipes.weights_of(second)
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    about = recipes.about(recipes.RECIPES["sort"], 5, stats)
    assert about["architecture"] == {"activation": "gelu", "normalization": "LN", "eps": "1e-05"} and about["task"] == "sort"


def run(*args, cwd):
    done = subprocess.run([sys.executable, "-m", "compact_proofs.generator", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
    return done.returncode, done.stdout, done.stderr


def test_import_prove_and_check_a_gpt2_layout_model(tmp_path):
    from safetensors.numpy import save_file

    st = gpt2_state(seed=2, V=4, N=3)
    save_file(st, str(tmp_path / "gpt2.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 2, "layer_norm_epsilon": 1e-5}))
    code, _, err = run("import", tmp_path / "gpt2.safetensors", "--layout", "gpt2", "--config", tmp_path / "config.json",
                       "-o", tmp_path / "m.npz", cwd=tmp_path)
    assert code == 0, err
    code, out, err = run("prove", tmp_path / "m.npz", "-s", "brute-force", "--task", "max", "-o", tmp_path / "c.msgpack", cwd=tmp_path)
    assert code == 0 and out.startswith("ACCEPTED"), err
    done = subprocess.run([sys.executable, "-m", "compact_proofs.checker", str(tmp_path / "c.msgpack")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("ACCEPTED")
    pure = subprocess.run([sys.executable, "-m", "compact_proofs.checker", "--pure", str(tmp_path / "c.msgpack")],
                          capture_output=True, text=True)
    assert pure.returncode == 5 and pure.stdout.startswith("UNSUPPORTED")
    (tmp_path / "eval.txt").write_text("0 1 3 -> 3\n2 2 1 -> 2\n")
    code, out, err = run("prove", tmp_path / "m.npz", "-s", "brute-force", "--data", tmp_path / "eval.txt", "-o", tmp_path / "d.msgpack",
                         cwd=tmp_path)
    assert code == 0, err
    import hashlib

    assert hashlib.sha256((tmp_path / "eval.txt").read_bytes()).hexdigest() in out and "of 2" not in out


def test_import_refusal_is_one_line_with_exit_3(tmp_path):
    from safetensors.numpy import save_file

    save_file(gpt2_state(), str(tmp_path / "g.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 2, "activation_function": "silu"}))
    code, out, err = run("import", tmp_path / "g.safetensors", "--layout", "gpt2", "--config", tmp_path / "config.json",
                         "-o", tmp_path / "m.npz", cwd=tmp_path)
    assert code == 3 and "silu" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_state_dict_with_mlp_proves_with_its_architecture_given(tmp_path):
    model = Transformer3(Config3(d_vocab=4, n_ctx=3, d_model=4, d_head=2, n_heads=2, d_vocab_out=3, d_mlp=8, act="relu"))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    code, _, err = run("prove", tmp_path / "m.pt", "-s", "brute-force", "--task", "modular-addition", "-o", tmp_path / "c.msgpack",
                       cwd=tmp_path)
    assert code == 3 and "mlp" in err.lower()  # without its architecture: refused, naming the MLP
    code, out, err = run("prove", tmp_path / "m.pt", "-s", "brute-force", "--task", "modular-addition", "--activation", "relu",
                         "--normalization", "none", "-o", tmp_path / "c.msgpack", cwd=tmp_path)
    assert code == 0 and "task modular-addition" in out, err
    cert = certificate.decode((tmp_path / "c.msgpack").read_bytes())
    assert cert.version == 3 and check(cert).accepted
