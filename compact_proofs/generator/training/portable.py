"""Bit-reproducible training on every x86-64 CPU: the process settings that pin torch's code paths.

A float result depends on the order of operations, and torch picks that order by CPU:
- ATen's kernels (softmax, reductions, the optimiser's elementwise steps) dispatch on the SIMD
  level (AVX-512, AVX2 or the x86-64 baseline): pinned to the baseline, ATEN_CPU_CAPABILITY=default;
- MKL's sgemm (every matrix product) dispatches on the CPU model and instruction set: pinned by
  MKL's conditional numerical reproducibility mode, MKL_CBWR=COMPATIBLE (one code path on every
  Intel and compatible CPU);
- threads split reductions: training runs on one thread (train.py);
- glibc's libm picks FMA or SSE2 variants of expf, logf, sinf and cosf at load time. Not pinned,
  because measured not to matter: on glibc 2.36, over all 2^32 float32 inputs the two variants
  of logf agree everywhere, expf differs on 2 inputs, sinf on 12 and cosf on 22, none of them in
  [0, 7] (the Box-Muller angles of torch.randn). The emulation test masks FMA anyway.

Both variables are read once, when torch first dispatches a kernel and when MKL starts, so they
must be in the environment before torch loads: importing `generator` sets them (`pin`).
`problems` says whether they are in effect in this process (for example if torch was imported and
used before `generator`); train.py then trains in a fresh process instead. Nothing here touches
the checker, which uses neither torch nor MKL.

On other architectures (aarch64: no MKL, NEON kernels, FMA contraction by the compiler) training
is deterministic on one machine but gives other bytes than the manifest's x86-64 models.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path

PINS = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
TORCH_VERSION = "2.13.0"
_MKL_CBWR_BRANCH, _MKL_CBWR_COMPATIBLE = 1, 3  # mkl_service.h: what to query, and the COMPATIBLE branch


def pin() -> None:
    """Put the pinned settings into the environment (effective if torch has not dispatched yet)."""
    os.environ.update(PINS)


def x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _mkl_branch() -> int | None:
    """MKL's active code-path branch, or None if this torch build has no MKL."""
    import torch

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        query = ctypes.CDLL(str(lib)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    query.restype, query.argtypes = ctypes.c_int, [ctypes.c_int]
    return int(query(_MKL_CBWR_BRANCH))


def problems() -> list[str]:
    """What, in this process, stands between training and the published bytes ([] = nothing)."""
    import torch

    out = []
    if not x86_64():
        out.append(f"{platform.machine()} is not x86-64: training is deterministic here, but only x86-64 "
                   "reproduces the published models bit for bit")
    if torch.__version__.split("+")[0] != TORCH_VERSION:
        out.append(f"torch {torch.__version__} is not the pinned {TORCH_VERSION}")
    if x86_64() and torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        out.append(f"ATen dispatches {torch.backends.cpu.get_cpu_capability()} kernels, not the x86-64 baseline")
    branch = _mkl_branch()
    if branch is not None and branch != _MKL_CBWR_COMPATIBLE:
        out.append(f"MKL runs code-path branch {branch}, not COMPATIBLE ({_MKL_CBWR_COMPATIBLE})")
    return out


def fixable_by_fresh_process() -> bool:
    """Whether a new Python process (which imports `generator` before torch) would be pinned."""
    return x86_64() and "torch" in sys.modules and any(
        p.startswith(("ATen", "MKL")) for p in problems())
