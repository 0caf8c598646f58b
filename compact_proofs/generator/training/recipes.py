"""Training recipes for the version-3 models (SEMANTICS.md, version 3), bit-reproducible for a
seed on every x86-64 CPU like the paper's recipe (portable.py: one thread, pinned code paths).

- grokking: Nanda et al. (2023)'s modular-addition transformer: p = 113, one layer, 4 heads,
  d_model 128, d_head 32, a ReLU MLP of 512, no LayerNorm, inputs "a b =" (d_vocab 114,
  d_vocab_out 113, n_ctx 3). Full batch on 50% of the 12,769 pairs, AdamW (lr 3e-3, weight decay
  1.0, betas (0.9, 0.98)), cross-entropy at the last position, until the held-out 70% are all but
  0.1% right (checked every 100 steps; at most 40,000 steps).
- sort: two layers of 4 heads (d_model 64, d_head 16), GELU MLPs of 256, LayerNorm (eps 1e-05),
  on the task `sort` with 10 values and k = 5 (d_vocab 11 with the separator, d_vocab_out 10,
  n_ctx 10): fresh uniform batches of 256 sequences every step (repeats allowed, as in the
  domain), cross-entropy at the 5 positions read, AdamW (lr 1e-3, weight decay 0.01), 2500 steps.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from compact_proofs.generator.training import portable
from compact_proofs.generator.training.model_v3 import Config3, Transformer3
from compact_proofs.generator.training.train import _stream_seed


@dataclass(frozen=True)
class Recipe:
    name: str
    task: str
    cfg: Config3
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    steps: int = 40000  # at most (grokking stops earlier when the held-out accuracy is reached)
    batch_size: int = 0  # 0: full batch on the training fraction
    train_fraction: float = 0.5
    target: float = 0.999  # held-out accuracy that ends training (full-batch recipes)
    eval_every: int = 100
    notes: dict = field(default_factory=dict)


RECIPES = {
    "grokking": Recipe("grokking", "modular-addition",
                       Config3(d_vocab=114, d_vocab_out=113, n_ctx=3, d_model=128, d_head=32, n_heads=4, d_mlp=512, act="relu"),
                       lr=3e-3),
    "sort": Recipe("sort", "sort",
                   Config3(d_vocab=11, d_vocab_out=10, n_ctx=10, d_model=64, d_head=16, n_heads=4, n_layers=2, d_mlp=256,
                           act="gelu", normalization="LN"),
                   weight_decay=0.01, betas=(0.9, 0.999), steps=2500, batch_size=256),
}


def domain(task: str, cfg: Config3) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """The task's whole domain (inputs, labels, positions read), by the checker's definition."""
    from compact_proofs.checker.v3.tasks import resolve

    t = resolve(task, cfg.d_vocab, cfg.vocab_out, cfg.n_ctx, None)
    xs, ys = zip(*t.chunks(1 << 22))
    return np.concatenate(xs), np.concatenate(ys), t.readout


def accuracy(model: torch.nn.Module, inputs: np.ndarray, labels: np.ndarray, readout: tuple[int, ...]) -> float:
    """Float32 accuracy: an input counts when, at every position read, the label's logit is
    strictly the largest (the checker's rule, in float32)."""
    with torch.no_grad():
        right = np.ones(len(inputs), dtype=bool)
        for start in range(0, len(inputs), 1 << 14):
            logits = model(torch.from_numpy(inputs[start : start + (1 << 14)]), list(readout))
            y = torch.from_numpy(labels[start : start + (1 << 14)])
            mine = logits.gather(-1, y[..., None])
            others = logits.scatter(-1, y[..., None], float("-inf"))
            right[start : start + (1 << 14)] = (mine[..., 0] > others.max(-1).values).all(-1).numpy()
    return float(right.mean())


def about(recipe: Recipe, seed: int, stats: dict) -> dict:
    from compact_proofs import __version__

    return {"task": recipe.task, "seed": seed, "recipe": recipe.name, "model": asdict(recipe.cfg),
            "architecture": recipe.cfg.architecture(),
            "training": {k: v for k, v in asdict(recipe).items() if k not in ("cfg", "name", "task", "notes")} | stats,
            "generator": f"compact-proofs {__version__}, torch {portable.TORCH_VERSION}"}


def train_recipe(name: str, seed: int, on_step: Callable[[int, float], None] | None = None,
                 steps: int | None = None) -> tuple[torch.nn.Module, dict]:
    """(the trained model, stats: steps run, seconds, train and held-out float32 accuracy)."""
    recipe = RECIPES[name]
    if steps is not None:
        recipe = Recipe(**{**asdict(recipe), "cfg": recipe.cfg, "steps": steps})
    if portable.fixable_by_fresh_process():
        warnings.warn("torch was used before `generator` was imported; training in a fresh process", stacklevel=2)
        return _in_fresh_process(name, seed, recipe.steps)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(recipe, seed, on_step)
    finally:
        torch.set_num_threads(threads)


def _train(recipe: Recipe, seed: int, on_step) -> tuple[torch.nn.Module, dict]:
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_stream_seed(seed, "model"))
        model = Transformer3(recipe.cfg)
    data = torch.Generator().manual_seed(_stream_seed(seed, "data"))
    inputs, labels, readout = domain(recipe.task, recipe.cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    stats: dict = {}
    if recipe.batch_size == 0:
        order = torch.randperm(len(inputs), generator=data).numpy()
        cut = int(round(recipe.train_fraction * len(inputs)))
        train_x, train_y = torch.from_numpy(inputs[order[:cut]]), torch.from_numpy(labels[order[:cut]])
        held_x, held_y = inputs[order[cut:]], labels[order[cut:]]
    step = 0
    for step in range(1, recipe.steps + 1):
        if recipe.batch_size:
            x, y = _batch(recipe, data, readout)
        else:
            x, y = train_x, train_y
        logits = model(x, list(readout))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, loss.item())
        if recipe.batch_size == 0 and step % recipe.eval_every == 0:
            held = accuracy(model.eval(), held_x, held_y, readout)
            model.train()
            stats.setdefault("held_out_curve", []).append((step, held))
            if held >= recipe.target:
                break
    model.eval()
    stats = {"held_out_curve": stats.get("held_out_curve", []), "steps_run": step, "seconds": round(time.perf_counter() - start, 1),
             "float32_accuracy": accuracy(model, inputs, labels, readout)}
    if recipe.batch_size == 0:
        stats |= {"train_pairs": cut, "held_out_accuracy": accuracy(model, held_x, held_y, readout)}
    return model, stats


def _batch(recipe: Recipe, data: torch.Generator, readout: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh uniform sequences of the task (sort: k values, the separator, the sorted prefix)."""
    cfg = recipe.cfg
    values, k = cfg.d_vocab - 1, cfg.n_ctx // 2
    v = torch.randint(0, values, (recipe.batch_size, k), generator=data)
    w = v.sort(dim=1).values
    x = torch.cat([v, torch.full((recipe.batch_size, 1), values), w[:, :-1]], dim=1)
    return x, w


def _in_fresh_process(name: str, seed: int, steps: int) -> tuple[torch.nn.Module, dict]:
    request = json.dumps({"name": name, "seed": seed, "steps": steps})
    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", "from compact_proofs.generator.training.recipes import _serve; _serve()"],
                          input=request.encode(), capture_output=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"training in a fresh process failed: {done.stderr.decode(errors='replace').strip()[-2000:]}")
    with np.load(io.BytesIO(done.stdout), allow_pickle=False) as data:
        stats = json.loads(data["__stats__"].tobytes().decode())
        state = {k: torch.from_numpy(data[k]) for k in data.files if k != "__stats__"}
    model = Transformer3(RECIPES[name].cfg)
    model.load_state_dict(state)
    return model.eval(), stats


def _serve() -> None:
    request = json.loads(sys.stdin.read())
    model, stats = train_recipe(request["name"], request["seed"], steps=request["steps"])
    buffer = io.BytesIO()
    np.savez(buffer, __stats__=np.frombuffer(json.dumps(stats).encode(), dtype=np.uint8),
             **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    sys.stdout.buffer.write(buffer.getvalue())


def weights_of(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
