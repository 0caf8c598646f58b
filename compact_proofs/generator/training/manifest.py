"""The published models: the weights digest of every paper model, 151 seeds x K = 4, 5, 10, 20.

Each digest is `checker.weights.model_digest` (sha256 of the canonical encoding of names, dtypes,
shapes and bytes) of the weights generator/training/train.py gives for the paper's recipe on x86-64
(generator/training/portable.py). `train` and `sweep` compare what they produce against it and say so
loudly on a mismatch; `compact-proofs models` re-trains and compares (and, with --write, records).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from compact_proofs.generator.training import portable
from compact_proofs.generator.training.model import ModelConfig

PATH = Path(__file__).with_name("models.json")
FORMAT = "compact-proofs/models-manifest"
PAPER_KS = (4, 5, 10, 20)
PAPER_MODEL = {"d_vocab": 64, "d_model": 32, "d_head": 32}


def paper_config(k: int) -> ModelConfig:
    return ModelConfig(n_ctx=k, **PAPER_MODEL)


def recipe() -> dict:
    """What the manifest's digests are digests of."""
    from compact_proofs.generator.training.train import TrainConfig

    return {
        "model": dict(PAPER_MODEL, n_ctx="K", layers=1, heads=1, biases="zero, frozen", init="normal, std 0.8/sqrt(d_model)"),
        "training": asdict(TrainConfig()) | {"optimiser": "AdamW", "loss": "cross-entropy at the last position, label max(x)",
                                              "data": "fresh uniform sequences every step"},
        "seeds": "generator/training/seeds.txt (the paper's 151); init and data streams from numpy SeedSequence([seed, stream])",
        "platform": f"x86-64, torch {portable.TORCH_VERSION} CPU, one thread, " + ", ".join(f"{k}={v}" for k, v in portable.PINS.items()),
    }


def load(path: Path = PATH) -> dict[tuple[int, int], str]:
    """(K, seed) -> weights digest."""
    if not Path(path).exists():
        return {}
    data = json.loads(Path(path).read_text())
    return {(int(k), int(seed)): digest for k, seeds in data["models"].items() for seed, digest in seeds.items()}


def load_recipes(path: Path = PATH) -> dict[tuple[str, int], str]:
    """(recipe, seed) -> weights digest of the version-3 recipes' models (training/recipes.py)."""
    if not Path(path).exists():
        return {}
    data = json.loads(Path(path).read_text())
    return {(name, int(seed)): digest for name, seeds in data.get("recipes", {}).items() for seed, digest in seeds.items()}


def write_recipes(digests: dict[tuple[str, int], str], path: Path = PATH) -> None:
    """Record the recipes' digests beside the paper models' (the rest of the manifest unchanged)."""
    from compact_proofs.generator.weights_io import atomic_write

    data = json.loads(Path(path).read_text())
    recorded = {(name, int(seed)): d for name, seeds in data.get("recipes", {}).items() for seed, d in seeds.items()} | digests
    data["recipes"] = {}
    for (name, seed), digest in sorted(recorded.items()):
        data["recipes"].setdefault(name, {})[str(seed)] = digest
    atomic_write(path, (json.dumps(data, indent=1) + "\n").encode())


def compare_recipe(name: str, seed: int, digest: str) -> str:
    """A line saying whether a recipe's model is the published one."""
    expected = load_recipes().get((name, seed))
    if expected is None:
        return f"not a published model (no digest for recipe {name}, seed {seed} in compact_proofs/generator/training/models.json)"
    if expected == digest:
        return f"weights {digest[:19]}... match the published model (recipe {name}, seed {seed})"
    why = "; ".join(portable.problems()) or "no known cause in this process"
    return f"MISMATCH: these weights ({digest[:19]}...) differ from the published model ({expected[:19]}...) ({why})"


def write(digests: dict[tuple[int, int], str], path: Path = PATH) -> None:
    from compact_proofs.generator.weights_io import atomic_write

    models: dict[str, dict[str, str]] = {}
    for (k, seed), digest in sorted(digests.items()):
        models.setdefault(str(k), {})[str(seed)] = digest
    body = {"format": FORMAT, "version": 1, "digest": "compact_proofs.checker.weights.model_digest", "recipe": recipe(), "models": models}
    if Path(path).exists() and "recipes" in json.loads(Path(path).read_text()):  # the version-3 recipes' models stay
        body["recipes"] = json.loads(Path(path).read_text())["recipes"]
    atomic_write(path, (json.dumps(body, indent=1) + "\n").encode())


@dataclass(frozen=True)
class Comparison:
    status: str  # "match", "mismatch" or "unlisted" (not a paper model, or not in the manifest)
    expected: str | None = None

    def message(self, digest: str) -> str:
        if self.status == "match":
            return f"weights {digest[:19]}... match the published model (compact_proofs/generator/training/models.json)"
        if self.status == "unlisted":
            return "not a published model (no digest in compact_proofs/generator/training/models.json to compare with)"
        why = "; ".join(portable.problems()) or "no known cause in this process"
        return (f"MISMATCH: these weights ({digest[:19]}...) differ from the published model ({self.expected[:19]}...); "
                f"the certificates and results of this repository are about the published one ({why})")


def compare(k: int, seed: int, cfg: ModelConfig, train_cfg, digest: str, manifest: dict | None = None) -> Comparison:
    """Compare a trained model's digest with the manifest, if (cfg, train_cfg, seed) is a paper model."""
    from compact_proofs.generator.training.train import TrainConfig

    manifest = load() if manifest is None else manifest
    if cfg != paper_config(k) or train_cfg != TrainConfig() or (k, seed) not in manifest:
        return Comparison("unlisted")
    expected = manifest[(k, seed)]
    return Comparison("match" if expected == digest else "mismatch", expected)

