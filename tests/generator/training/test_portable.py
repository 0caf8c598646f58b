"""Training gives the same weight bytes on every x86-64 CPU.

Other CPUs are emulated by fresh processes that steer each code path a CPU would change: ATen's
SIMD level (ATEN_CPU_CAPABILITY), MKL's instruction set and reproducibility branch
(MKL_ENABLE_INSTRUCTIONS, MKL_CBWR, as a user might have set them), the CPU features glibc sees
when it picks libm's FMA or SSE2 variants (GLIBC_TUNABLES), and the thread count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from compact_proofs.generator.training import portable

pytestmark = pytest.mark.skipif(not portable.x86_64(), reason="bit-identical weights are promised on x86-64 only")

TRAIN = """
import json
import compact_proofs.generator
from compact_proofs.checker.weights import model_digest
from compact_proofs.generator.training import portable
from compact_proofs.generator.training.model import ModelConfig
from compact_proofs.generator.training.train import TrainConfig, train
model = train(123, ModelConfig(n_ctx=4), TrainConfig(steps=300))
print(json.dumps({"digest": model_digest({k: v.detach().numpy() for k, v in model.state_dict().items()}),
                  "problems": portable.problems()}))
"""
NO_AVX = "glibc.cpu.hwcaps=-AVX_Usable,-AVX2_Usable,-FMA_Usable,-AVX,-AVX2,-FMA,-FMA4,-AVX512F"
CPUS = {
    "this machine": {},
    "ATen AVX2 kernels": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATen AVX-512 kernels": {"ATEN_CPU_CAPABILITY": "avx512"},
    "MKL limited to SSE4.2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "MKL limited to AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "MKL AVX-512": {"MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    "MKL branch set by the user": {"MKL_CBWR": "AUTO"},
    "glibc without FMA and AVX (libm's SSE2 variants)": {"GLIBC_TUNABLES": NO_AVX},
    "four threads": {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"},
    "no FMA, SSE4.2 MKL, AVX2 ATen": {"GLIBC_TUNABLES": NO_AVX, "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "avx2"},
}


def train_as(cpu: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in portable.PINS and k not in ("MKL_ENABLE_INSTRUCTIONS", "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", TRAIN], env=env | cpu, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference() -> dict:
    return train_as({})


@pytest.mark.parametrize("cpu", list(CPUS))
def test_every_emulated_cpu_trains_the_same_bytes(reference, cpu):
    result = train_as(CPUS[cpu])
    assert result["problems"] == []  # the pins were in effect
    assert result["digest"] == reference["digest"]


UNPINNED = """
import json, torch
torch.ones(1).softmax(0)  # ATen's kernels are chosen now, before generator pins them
from compact_proofs.checker.weights import model_digest
from compact_proofs.generator.training.model import ModelConfig
from compact_proofs.generator.training.train import TrainConfig, _train_here
model = _train_here(123, ModelConfig(n_ctx=4), TrainConfig(steps=300), None)
print(json.dumps({"digest": model_digest({k: v.detach().numpy() for k, v in model.state_dict().items()}),
                  "capability": torch.backends.cpu.get_cpu_capability()}))
"""


def test_without_the_pins_the_bytes_depend_on_the_code_path():
    """The control: unpinned, the same training changes with ATen's kernels (this CPU's best
    against the baseline), so the test above would notice if the pins stopped working."""
    results = []
    for capability in ({}, {"ATEN_CPU_CAPABILITY": "default"}):
        env = {k: v for k, v in os.environ.items() if k not in portable.PINS} | capability
        done = subprocess.run([sys.executable, "-c", UNPINNED], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if results[0]["capability"] == "DEFAULT":
        pytest.skip("this CPU runs ATen's baseline kernels anyway")
    assert results[0]["digest"] != results[1]["digest"]


def test_torch_loaded_first_still_trains_the_published_bytes(reference):
    """A notebook that used torch before importing `generator`: training moves to a fresh process."""
    script = "import torch\ntorch.ones(2, 2).softmax(0) @ torch.ones(2, 2)\n" + TRAIN
    env = {k: v for k, v in os.environ.items() if k not in portable.PINS}
    done = subprocess.run([sys.executable, "-W", "always", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "training in a fresh one instead" in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["digest"] == reference["digest"]


def test_problems_name_what_is_not_pinned():
    script = "import torch\ntorch.ones(2, 2) @ torch.ones(2, 2)\nimport compact_proofs.generator\nfrom compact_proofs.generator.training import portable\nprint(portable.problems())"
    env = {k: v for k, v in os.environ.items() if k not in portable.PINS} | {"ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert "ATen dispatches AVX2 kernels" in done.stdout and "MKL runs code-path branch" in done.stdout, done.stdout
