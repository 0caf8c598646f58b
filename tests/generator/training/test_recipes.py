"""The version-3 recipes (training/recipes.py) are portable like the paper's: the same seed gives
the same weight bytes under emulated CPUs (a few steps, every `make test`), and the published
grokking models are in the manifest and re-train to it (`pytest -m slow`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from compact_proofs.generator.training import manifest, portable
from tests.generator.training.test_portable import CPUS

pytestmark = pytest.mark.skipif(not portable.x86_64(), reason="bit-identical weights are promised on x86-64 only")

TRAIN = """
import json, sys
import compact_proofs.generator
from compact_proofs.checker.certificate import weights_digest
from compact_proofs.generator.training import portable, recipes
model, _ = recipes.train_recipe(sys.argv[1], int(sys.argv[2]), steps=int(sys.argv[3]))
print(json.dumps({"digest": weights_digest(recipes.weights_of(model)), "problems": portable.problems()}))
"""


def train_as(cpu: dict[str, str], recipe: str, seed: int, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in portable.PINS and k not in ("MKL_ENABLE_INSTRUCTIONS", "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", TRAIN, recipe, str(seed), str(steps)], env=env | cpu, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


_reference: dict = {}


def reference_sort() -> str:
    if "sort" not in _reference:
        _reference["sort"] = train_as({}, "sort", 3, 10)["digest"]
    return _reference["sort"]


@pytest.mark.parametrize("cpu", ["no FMA, SSE4.2 MKL, AVX2 ATen", "four threads"])
def test_the_sort_recipe_gives_the_same_bytes_on_other_cpus(cpu):
    assert train_as(CPUS[cpu], "sort", 3, 10)["digest"] == reference_sort()


def test_the_published_recipe_models_are_in_the_manifest():
    published = manifest.load_recipes()
    assert {("grokking", 0), ("grokking", 1)} <= set(published)


@pytest.mark.slow
def test_the_grokking_recipe_retrains_to_the_manifest():
    digest = train_as(CPUS["ATen AVX2 kernels"], "grokking", 1, 40000)["digest"]
    assert digest == manifest.load_recipes()[("grokking", 1)]
