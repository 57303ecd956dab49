"""Which code, command, seed and machine made a file or a number.

Floats computed through different SIMD paths differ in their last bits, and a chaotic simulation
(HalfCheetah) turns that into a different episode, so the machine part names the CPU model, its
vector extensions and the ones the numerical libraries dispatch to, beside the library versions.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import rlcomp

LIBRARIES = ("torch", "numpy", "gymnasium", "mujoco", "box2d", "safetensors", "onnxruntime")
"""Packages whose versions every provenance records (those that compute or store numbers)."""

VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw",
                "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
"""CPU flags (as ``/proc/cpuinfo`` spells them) that change which SIMD code paths run."""


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit of the working tree around ``cwd`` (with ``-dirty`` if modified)."""
    try:
        cwd = cwd or Path(__file__).resolve().parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def machine() -> dict:
    """The machine a number was made on: CPU model, vector extensions, cores, library versions.

    ``vector_extensions`` are the CPU's SIMD flags; ``torch_cpu_capability`` is the instruction
    set PyTorch's kernels dispatch to and ``numpy_simd`` the extensions NumPy found and uses.
    """
    import numpy as np
    import torch

    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    try:
        numpy_simd = list(np.show_config(mode="dicts")["SIMD Extensions"]["found"])
    except (KeyError, TypeError):
        numpy_simd = None
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_model": info.get("model name") or platform.processor() or None,
        "cpu_vendor": info.get("vendor_id"),
        "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy_simd": numpy_simd,
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "torch": torch.__version__,
    }


def provenance(command: list[str] | None = None) -> dict:
    """Package version, git commit, command, date and machine of this run."""
    return {
        "rlcomp_version": rlcomp.__version__,
        "git_commit": git_commit(),
        "command": command if command is not None else list(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
    }
