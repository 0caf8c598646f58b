"""Models trained by other code, as format-v3 weights and architecture maps (SEMANTICS.md, version 3).

- TransformerLens 2.x/3.x HookedTransformer (a module, or its state dict with its config): the
  state dict already has the semantics' names; the config says the activation, normalization and
  eps. Folded LayerNorm (fold_ln: normalization_type LNPre, no ln weights) and unfolded (LN, with
  w and b) both load; buffers (attn.mask, attn.IGNORE, ...) are dropped.
- Hugging Face GPT-2 layout (the models TransformerLens 4's TransformerBridge wraps): transformer.wte,
  wpe, h.{l}.ln_1, attn.c_attn (Q, K, V fused, Conv1D [d_model, 3 d_model]), attn.c_proj,
  ln_2, mlp.c_fc, mlp.c_proj, ln_f, lm_head (tied to wte when absent); the config gives n_head,
  layer_norm_epsilon and activation_function (default gelu_new, GPT-2's).
Anything outside the semantics is refused with one line naming it (ImportRefused, a WeightsError):
another activation (silu, gelu_fast, solu), RMSNorm, rotary or shortformer positions, a
bidirectional mask, a non-default attention scale, gated or parallel MLPs, grouped KV heads,
local attention, more than four blocks.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from compact_proofs.generator.weights_io import WeightsError, _to_numpy

ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_new"}
NORMALIZATIONS = {None: "none", "LN": "LN", "LNPre": "LNPre"}


class ImportRefused(WeightsError):
    """A model outside the semantics: the message names what."""


def _get(cfg: Any, name: str, default=None):
    return cfg.get(name, default) if isinstance(cfg, Mapping) else getattr(cfg, name, default)


def _eps_text(eps: float) -> str:
    return repr(float(eps))  # the shortest decimal that reads back as the config's float


def transformer_lens_architecture(cfg: Any, force: bool = True) -> dict[str, str] | None:
    """The architecture map of a TransformerLens config (a HookedTransformerConfig or its dict);
    ImportRefused for anything outside the semantics. With force=False, None for a model that
    formats v1 and v2 already cover (no MLP, no LayerNorm)."""
    checks = [
        (_get(cfg, "positional_embedding_type", "standard") != "standard",
         f"positional embeddings {_get(cfg, 'positional_embedding_type')!r} (rotary, shortformer) are outside the semantics"),
        (_get(cfg, "attention_dir", "causal") != "causal", f"a {_get(cfg, 'attention_dir')} attention mask is outside the semantics"),
        (_get(cfg, "normalization_type") not in NORMALIZATIONS,
         f"normalization {_get(cfg, 'normalization_type')!r} (RMSNorm) is outside the semantics (LN, LNPre or none)"),
        (bool(_get(cfg, "gated_mlp", False)), "a gated MLP is outside the semantics"),
        (bool(_get(cfg, "parallel_attn_mlp", False)), "parallel attention and MLP are outside the semantics"),
        (_get(cfg, "n_key_value_heads") not in (None, _get(cfg, "n_heads")), "grouped key/value heads are outside the semantics"),
        (bool(_get(cfg, "use_local_attn", False)), "local attention is outside the semantics"),
        (not _get(cfg, "use_attn_scale", True) or abs(float(_get(cfg, "attn_scale", _get(cfg, "d_head") ** 0.5))
                                                       - _get(cfg, "d_head") ** 0.5) > 0,
         "an attention scale other than sqrt(d_head) is outside the semantics"),
        (bool(_get(cfg, "final_rms", False)), "a final RMSNorm is outside the semantics"),
        (_get(cfg, "n_layers", 1) > 4, f"{_get(cfg, 'n_layers')} blocks: the semantics take at most 4"),
        (bool(_get(cfg, "use_attn_result", False)) and False, ""),
    ]
    for refused, reason in checks:
        if refused:
            raise ImportRefused(reason)
    attn_only = bool(_get(cfg, "attn_only", False))
    act = _get(cfg, "act_fn")
    if not attn_only and act not in ACTIVATIONS:
        raise ImportRefused(f"activation {act!r} is outside the semantics (relu, gelu, gelu_new)")
    normalization = NORMALIZATIONS[_get(cfg, "normalization_type")]
    if not force and attn_only and normalization == "none":
        return None
    out = {"activation": "none" if attn_only else act, "normalization": normalization}
    return out | ({"eps": _eps_text(_get(cfg, "eps", 1e-5))} if normalization != "none" else {})


def from_transformer_lens(state: Mapping, cfg: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(weights, architecture) of a HookedTransformer's state dict and config."""
    arch = transformer_lens_architecture(cfg)
    from compact_proofs.generator.weights_io import from_state_dict_v3

    weights = {k: _to_numpy(v) for k, v in state.items() if not _is_buffer(k)}
    return from_state_dict_v3(weights, arch), arch


def _is_buffer(key: str) -> bool:
    return key.endswith(("attn.mask", "attn.IGNORE", "rotary_sin", "rotary_cos")) or ".hook_" in key


def from_hooked_transformer(model) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(weights, architecture) of a TransformerLens 2.x/3.x HookedTransformer."""
    return from_transformer_lens(model.state_dict(), model.cfg)


_GPT2_BLOCK = re.compile(r"h\.(\d+)\.(ln_1\.weight|ln_1\.bias|attn\.c_attn\.weight|attn\.c_attn\.bias|attn\.c_proj\.weight|"
                         r"attn\.c_proj\.bias|ln_2\.weight|ln_2\.bias|mlp\.c_fc\.weight|mlp\.c_fc\.bias|mlp\.c_proj\.weight|"
                         r"mlp\.c_proj\.bias|attn\.bias|attn\.masked_bias)\Z")


def from_gpt2(state: Mapping, config: Mapping | None = None, n_heads: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(weights, architecture) of a Hugging Face GPT-2-layout state dict (GPT2Model or
    GPT2LMHeadModel: the `transformer.` prefix is optional). `config`: the model's config.json
    as a dict (n_head, layer_norm_epsilon, activation_function, ...); or n_heads alone."""
    config = dict(config or {})
    heads = n_heads or config.get("n_head")
    if not heads:
        raise ImportRefused("the GPT-2 layout does not say the number of heads: give the config (n_head) or n_heads")
    act = config.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise ImportRefused(f"activation {act!r} is outside the semantics (relu, gelu, gelu_new)")
    for key, refused in (("scale_attn_by_inverse_layer_idx", "an attention scale by the inverse layer index"),
                         ("reorder_and_upcast_attn", None), ("add_cross_attention", "cross-attention")):
        if config.get(key) and refused:
            raise ImportRefused(f"{refused} is outside the semantics")
    if config.get("scale_attn_weights") is False:
        raise ImportRefused("unscaled attention (scale_attn_weights false) is outside the semantics")
    arch = {"activation": act, "normalization": "LN", "eps": _eps_text(config.get("layer_norm_epsilon", 1e-5))}
    params = {(k[len("transformer."):] if k.startswith("transformer.") else k): _to_numpy(v) for k, v in state.items()}
    out: dict[str, np.ndarray] = {}
    blocks: dict[int, dict[str, np.ndarray]] = {}
    for key, value in params.items():
        match = _GPT2_BLOCK.match(key)
        if match:
            blocks.setdefault(int(match[1]), {})[match[2]] = value
        elif key == "wte.weight":
            out["embed.W_E"] = value
        elif key == "wpe.weight":
            out["pos_embed.W_pos"] = value
        elif key in ("ln_f.weight", "ln_f.bias"):
            out["ln_final." + ("w" if key.endswith("weight") else "b")] = value
        elif key == "lm_head.weight":
            out["unembed.W_U"] = value.T
        elif key == "lm_head.bias":
            out["unembed.b_U"] = value
        else:
            raise ImportRefused(f"{key}: not a parameter of the GPT-2 layout the semantics cover")
    if "embed.W_E" not in out:
        raise ImportRefused("no transformer.wte.weight: not a GPT-2-layout state dict")
    out.setdefault("unembed.W_U", out["embed.W_E"].T)  # tied embeddings
    D = out["embed.W_E"].shape[1]
    if D % heads:
        raise ImportRefused(f"d_model {D} is not a multiple of n_head {heads}")
    E = D // heads
    for l, b in sorted(blocks.items()):
        p = f"blocks.{l}."
        try:
            qkv_w, qkv_b = b["attn.c_attn.weight"], b["attn.c_attn.bias"]  # Conv1D: [in, out]
            for i, name in enumerate("QKV"):
                out[p + f"attn.W_{name}"] = qkv_w[:, i * D : (i + 1) * D].reshape(D, heads, E).transpose(1, 0, 2)
                out[p + f"attn.b_{name}"] = qkv_b[i * D : (i + 1) * D].reshape(heads, E)
            out[p + "attn.W_O"] = b["attn.c_proj.weight"].reshape(heads, E, D)
            out[p + "attn.b_O"] = b["attn.c_proj.bias"]
            out[p + "mlp.W_in"], out[p + "mlp.b_in"] = b["mlp.c_fc.weight"], b["mlp.c_fc.bias"]
            out[p + "mlp.W_out"], out[p + "mlp.b_out"] = b["mlp.c_proj.weight"], b["mlp.c_proj.bias"]
            for mine, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
                out[p + f"{mine}.w"], out[p + f"{mine}.b"] = b[f"{theirs}.weight"], b[f"{theirs}.bias"]
        except KeyError as missing:
            raise ImportRefused(f"block {l} has no {missing.args[0]}") from None
    from compact_proofs.generator.weights_io import from_state_dict_v3

    return from_state_dict_v3({k: np.ascontiguousarray(v) for k, v in out.items()}, arch), arch
