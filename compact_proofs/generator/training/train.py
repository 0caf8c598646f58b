"""The paper's training recipe for Max-of-K, bit-reproducible for a seed on every x86-64 CPU.

AdamW (lr 1e-3, betas (0.9, 0.999), weight decay 0.01), batch 128, 3000 steps, every batch fresh
uniform sequences, cross-entropy at the last position against max(x). One thread, deterministic
algorithms, and the code paths pinned by generator/training/portable.py: the same (configs, seed) give the
same weight bytes whatever the CPU's SIMD level, MKL code path or core count.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from compact_proofs.generator.training import portable
from compact_proofs.generator.training.model import ModelConfig, build


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    loss_at: str = "last"  # "last": the last position's label (the paper's); "every": every position's, on its prefix

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        if self.loss_at not in ("last", "every"):
            raise ValueError("loss_at must be 'last' or 'every'")


def about(seed: int, cfg: ModelConfig, train_cfg: TrainConfig, task: str = "max") -> dict:
    """What a trained model's file says about it (weights_io.save): the task it was trained on
    (`prove` certifies that one), the seed, the architecture and the recipe."""
    from compact_proofs import __version__

    return {"task": task, "seed": seed, "model": asdict(cfg),
            "training": asdict(train_cfg) | {"optimiser": "AdamW", "loss": LOSSES[train_cfg.loss_at].format(task=task),
                                             "data": "fresh sequences every step, uniform over the task's domain"},
            "generator": f"compact-proofs {__version__}, torch {portable.TORCH_VERSION}"}


LOSSES = {"last": "cross-entropy at the last position, the {task} task's label",
          "every": "cross-entropy at every position whose prefix is in the {task} task's domain, that prefix's label (mean)"}


def _stream_seed(seed: int, stream: str) -> int:
    """Independent, reproducible seeds for the model init and the data stream."""
    return int(np.random.SeedSequence([seed, sum(map(ord, stream))]).generate_state(1)[0])


def train(
    seed: int,
    cfg: ModelConfig,
    train_cfg: TrainConfig = TrainConfig(),
    on_step: Callable[[int, float], None] | None = None,
    task: str = "max",
) -> torch.nn.Module:
    """Train one model on a task of checker/tasks.py (batches drawn uniformly from its domain).
    If this process's torch is not pinned (torch was used before `generator` was imported), the
    training runs in a fresh process, which is."""
    if portable.fixable_by_fresh_process():
        warnings.warn("torch was used before `generator` was imported, so its code paths are not pinned in this "
                      "process; training in a fresh one instead (import generator first to avoid this)", stacklevel=2)
        state, losses = _train_in_fresh_process(seed, cfg, train_cfg, task)
        for step, loss in enumerate(losses):
            if on_step is not None:
                on_step(step, loss)
        model = build(cfg)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        return model.eval()
    return _train_here(seed, cfg, train_cfg, on_step, task)


def _train_here(seed: int, cfg: ModelConfig, train_cfg: TrainConfig, on_step, task: str = "max") -> torch.nn.Module:
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(seed, cfg, train_cfg, on_step, task)
    finally:
        torch.set_num_threads(threads)


def _train_in_fresh_process(seed: int, cfg: ModelConfig, train_cfg: TrainConfig, task: str) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train in a new interpreter (which imports `generator`, so pins torch, before torch loads)."""
    request = json.dumps({"seed": seed, "cfg": asdict(cfg), "train": asdict(train_cfg), "task": task})
    root = str(Path(__file__).resolve().parents[2])  # where this `compact_proofs` package is importable from
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", "from compact_proofs.generator.training.train import _serve; _serve()"], input=request.encode(),
                          capture_output=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"training in a fresh process failed: {done.stderr.decode(errors='replace').strip()[-2000:]}")
    with np.load(io.BytesIO(done.stdout), allow_pickle=False) as data:
        losses = data["__losses__"].tolist()
        return {k: data[k] for k in data.files if k != "__losses__"}, losses


def _serve() -> None:
    """The fresh process's side: a JSON request on stdin, the state dict and losses as .npz on stdout."""
    request = json.loads(sys.stdin.read())
    train_args = dict(request["train"], betas=tuple(request["train"]["betas"]))
    losses: list[float] = []
    model = _train_here(request["seed"], ModelConfig(**request["cfg"]), TrainConfig(**train_args),
                        lambda step, loss: losses.append(loss), request["task"])
    buffer = io.BytesIO()
    np.savez(buffer, __losses__=np.array(losses), **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    sys.stdout.buffer.write(buffer.getvalue())


def _train(seed: int, cfg: ModelConfig, train_cfg: TrainConfig, on_step, task: str) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_stream_seed(seed, "model"))
        model = build(cfg)
    data = torch.Generator().manual_seed(_stream_seed(seed, "data"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay)
    every = train_cfg.loss_at == "every"
    if every and not hasattr(model, "every_position"):
        raise ValueError("loss at every position needs the causal model (two layers or several heads)")
    for step in range(train_cfg.steps):
        tokens, labels = _batch(task, cfg, train_cfg.batch_size, data)
        if every:
            logits = model.every_position(tokens)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.d_vocab), _prefix_labels(task, tokens).reshape(-1), ignore_index=-100)
        else:
            loss = torch.nn.functional.cross_entropy(model(tokens), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, loss.item())
    return model.eval()


def _batch(task: str, cfg: ModelConfig, size: int, data: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform sequences (for max: the paper's stream, draw for draw); for other tasks, uniform
    over the task's domain by rejection, labels from checker.tasks."""
    if task == "max":
        tokens = torch.randint(0, cfg.d_vocab, (size, cfg.n_ctx), generator=data)
        return tokens, tokens.max(dim=1).values
    from compact_proofs.checker.tasks import resolve

    if resolve(task).domain_size(cfg.d_vocab, cfg.n_ctx) == 0:
        raise ValueError(f"the {task} task has no inputs at d_vocab {cfg.d_vocab}, n_ctx {cfg.n_ctx}")
    kept: list[np.ndarray] = []
    while sum(map(len, kept)) < size:
        tokens = torch.randint(0, cfg.d_vocab, (size, cfg.n_ctx), generator=data).numpy()
        kept.append(tokens[resolve(task).labels(tokens)[1]])
    tokens = np.concatenate(kept)[:size]
    return torch.from_numpy(tokens), torch.from_numpy(resolve(task).labels(tokens)[0])


def _prefix_labels(task: str, tokens: torch.Tensor) -> torch.Tensor:
    """[batch, n_ctx]: the task's label of each prefix x_0..x_i, -100 where the prefix is outside the
    task's domain (cross-entropy ignores those)."""
    from compact_proofs.checker.tasks import resolve

    x = tokens.numpy()
    out = np.full(x.shape, -100, dtype=np.int64)
    for i in range(x.shape[1]):
        label, inside = resolve(task).labels(x[:, : i + 1])
        out[:, i] = np.where(inside, label, -100)
    return torch.from_numpy(out)
