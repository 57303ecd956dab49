"""Resident memory of a model in an isolated inference process, and pinning to one core.

:func:`isolated_resident_bytes` starts two fresh Python processes, each pinned to one core with one
PyTorch thread, that run the same number of decisions on the same observations. One builds the
policy from a file and acts with it. The other, the baseline, imports every module the first one
had loaded and computes a one-output linear map per decision instead (so that the BLAS runtime is
set up in both). The model's own footprint is the difference of their resident set sizes: its
tensors, what loading it left in the allocator, its activations and the workspace its kernels
keep, against the runtime (interpreter, NumPy, PyTorch, Gymnasium) that every model pays for. It
is not the bytes of the tensors (see :mod:`rlcomp.probes.size`); for the 0.28 MB LunarLander
Q-network it is about 2.6 MB.

The child processes run this module (``python -m rlcomp.probes.resources``); they print one line of
JSON. The module imports PyTorch only inside functions, so a child pins itself before PyTorch
starts.

The other memory and CPU figures of a sweep, RAM %, resident bytes (mean and peak) and CPU % of
the evaluation (:class:`rlcomp.rollout.EvalResult`), measure the whole evaluating process, sampled
over the whole evaluation, in a fresh process per job pinned to its own core (the local executor
of :mod:`rlcomp.experiments.executors`). They are environment- and runtime-dominated
(:data:`rlcomp.rollout.ENVIRONMENT_DOMINATED`): the difference measured here is the model's part.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from torch import nn

    from rlcomp.policy import Policy

DEFAULT_LOADER = "rlcomp.probes.resources:policy_from_file"
"""``module:function`` that turns a file path into a :class:`~rlcomp.policy.Policy`."""

OBS_POOL = 16
"""Distinct observations the decisions cycle through (standard normal, fixed seed)."""


def pin_to_one_core(core: int | None = None) -> int | None:
    """Pin this process to one CPU core and PyTorch to one thread (the "isolated processor").

    Args:
        core: the core to use; by default the lowest core this process may run on now.

    Returns:
        The core pinned to, or ``None`` where the platform cannot pin (no ``sched_setaffinity``);
        PyTorch runs one thread either way.

    Raises:
        ValueError: if ``core`` is not one this process may run on.
    """
    chosen = None
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        chosen = allowed[0] if core is None else core
        if chosen not in allowed:
            raise ValueError(f"core {chosen} is not available (allowed: {allowed})")
        os.sched_setaffinity(0, {chosen})
    import torch

    torch.set_num_threads(1)
    return chosen


def policy_from_file(path: str) -> Policy:
    """The default loader: the policy of a checkpoint or of a compressed file at ``path``.

    Uses :func:`rlcomp.compress.storage.load_checkpoint_or_compressed`, which tells the two kinds
    of file apart by their content.
    """
    from rlcomp.compress.storage import load_checkpoint_or_compressed

    return load_checkpoint_or_compressed(path).policy


@dataclass(frozen=True)
class IsolatedMemory:
    """Resident memory of an inference process with the model and of the same without it.

    Attributes:
        checkpoint: the file the model was loaded from.
        loader: the ``module:function`` that loaded it.
        decisions: decisions (batch-1 forward passes) each process ran before measuring.
        model_rss_bytes: resident bytes of the process that built and ran the model (median over
            ``repeats`` processes), measured after the decisions and a garbage collection.
        baseline_rss_bytes: the same for the process without a model.
        model_peak_bytes: peak resident bytes of the model process (includes transient copies
            made while loading).
        baseline_peak_bytes: peak resident bytes of the baseline process.
        core: the core both processes were pinned to, or ``None`` if not pinned.
        repeats: processes run of each kind.
    """

    checkpoint: str
    loader: str
    decisions: int
    model_rss_bytes: int
    baseline_rss_bytes: int
    model_peak_bytes: int
    baseline_peak_bytes: int
    core: int | None
    repeats: int

    @property
    def footprint_bytes(self) -> int:
        """The model's own resident bytes: model process minus baseline process."""
        return self.model_rss_bytes - self.baseline_rss_bytes

    @property
    def peak_footprint_bytes(self) -> int:
        """Difference of the peak resident bytes (loading included)."""
        return self.model_peak_bytes - self.baseline_peak_bytes

    def metrics(self) -> dict[str, float]:
        """The byte counts (and ``decisions``) as floats, for a results store."""
        keys = ("decisions", "model_rss_bytes", "baseline_rss_bytes", "model_peak_bytes",
                "baseline_peak_bytes", "footprint_bytes", "peak_footprint_bytes")
        info = self.to_dict()
        return {k: float(info[k]) for k in keys}

    def to_dict(self) -> dict:
        """JSON-ready fields plus the two differences."""
        return {**asdict(self), "footprint_bytes": self.footprint_bytes,
                "peak_footprint_bytes": self.peak_footprint_bytes}


def _loader_name(loader: str | Callable) -> str:
    """``module:function`` for a loader given as such a string or as an importable function."""
    if callable(loader):
        module, qualname = getattr(loader, "__module__", None), getattr(loader, "__qualname__", "")
        if not module or module == "__main__" or "<" in qualname:
            raise ValueError(f"loader {loader!r} is not importable by name from a new process; "
                             "pass a module-level function or a 'module:function' string")
        return f"{module}:{qualname}"
    module, sep, name = str(loader).partition(":")
    if not sep or not module or not name:
        raise ValueError(f"loader must be 'module:function', got {loader!r}")
    return str(loader)


def _resolve_loader(name: str) -> Callable:
    module, _, attr = name.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _run_child(args: list[str], core: int | None, timeout: float, stdin: str = "") -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "rlcomp.probes.resources", *args]
    if core is not None:
        cmd += ["--core", str(core)]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no error output"]
        raise RuntimeError(f"isolated inference process failed ({proc.returncode}): {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def resident_bytes() -> tuple[int, int]:
    """(resident bytes now, peak resident bytes) of this process, its free heap released first.

    A garbage collection, then (with glibc) ``malloc_trim(0)``, which hands the allocator's free
    pages back to the system: what is left resident is what the process holds, not what the
    allocator happened to keep after earlier frees. Without the trim, the same model measured in
    five fresh processes gave footprints spread over 0.6 MB (int8 LunarLander, 4.0-4.6 MB); with
    it, over 0.06 MB. The peak is the process's high-water mark (``ru_maxrss``), which no trim
    lowers.
    """
    import resource

    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return psutil.Process().memory_info().rss, peak


def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or None where it has none (macOS, musl)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def isolated_resident_bytes(
    checkpoint: str | os.PathLike,
    decisions: int = 1000,
    *,
    loader: str | Callable = DEFAULT_LOADER,
    repeats: int = 1,
    pin: bool = True,
    core: int | None = None,
    timeout: float = 300.0,
) -> IsolatedMemory:
    """Resident bytes of a fresh process running a model from a file, against a model-free one.

    Args:
        checkpoint: the model's file, passed to ``loader`` (for the default loader a checkpoint
            name such as ``checkpoints/LunarLander-v3__ddqn__0`` or a compressed file).
        decisions: batch-1 decisions each process runs before it measures itself.
        loader: ``"module:function"`` (or a module-level function, named the same way) that takes
            the path as a string and returns a :class:`~rlcomp.policy.Policy`; the child
            process imports it, and the baseline process imports its module too.
        repeats: processes of each kind; the medians are reported.
        pin: pin the processes to one core (``core``, by default the lowest this process may
            use); they run one PyTorch thread either way.
        core: the core to pin to.
        timeout: seconds each process may take.

    Raises:
        RuntimeError: if a child process fails (its last line of error output is quoted).
        ValueError: for a loader that cannot be named, or ``decisions`` or ``repeats`` below 1.
    """
    if decisions < 1 or repeats < 1:
        raise ValueError(f"decisions and repeats must be >= 1, got {decisions}, {repeats}")
    name = _loader_name(loader)
    path = str(Path(checkpoint).absolute())
    if pin and hasattr(os, "sched_getaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        core = allowed[0] if core is None else core
        if core not in allowed:
            raise ValueError(f"core {core} is not available (allowed: {allowed})")
    else:
        core = None
    common = ["--checkpoint", path, "--decisions", str(decisions), "--loader", name]
    model, base = [], []
    for _ in range(repeats):
        model.append(_run_child(common, core, timeout))
        modules = json.dumps(model[-1].pop("modules"))
        base.append(_run_child([*common, "--baseline", "--obs-dim", str(model[-1]["obs_dim"])],
                               core, timeout, stdin=modules))

    def med(runs: list[dict], key: str) -> int:
        return int(statistics.median(r[key] for r in runs))

    return IsolatedMemory(
        checkpoint=path, loader=name, decisions=decisions,
        model_rss_bytes=med(model, "rss_bytes"), baseline_rss_bytes=med(base, "rss_bytes"),
        model_peak_bytes=med(model, "peak_bytes"), baseline_peak_bytes=med(base, "peak_bytes"),
        core=core, repeats=repeats)


def _input_width(net: nn.Module) -> int:
    for module in net.modules():
        width = getattr(module, "in_features", None)
        if width is not None:
            return int(width)
    raise ValueError("cannot tell the network's input width (no module has in_features)")


def _child(argv: list[str] | None = None) -> None:
    """Entry point of an isolated inference process: print its resident bytes as JSON."""
    parser = argparse.ArgumentParser(description="isolated inference process (rlcomp internal)")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--decisions", type=int, required=True)
    parser.add_argument("--loader", default=DEFAULT_LOADER)
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--obs-dim", type=int, default=None)
    parser.add_argument("--core", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    import numpy as np
    import torch

    torch.set_num_threads(1)
    module, _, _ = args.loader.partition(":")
    if args.baseline:
        # The same modules as the model process had loaded, so that only the model differs.
        for name in [module, *json.loads(sys.stdin.read() or "[]")]:
            try:
                importlib.import_module(name)
            except Exception:  # a module that only imports as a side effect of another
                pass
        obs_dim = args.obs_dim
        # A one-output linear map per decision, so that the BLAS runtime is set up here too.
        probe = torch.zeros(1, obs_dim)
    else:
        policy = _resolve_loader(args.loader)(args.checkpoint)
        obs_dim = _input_width(policy.net)
    pool = np.random.default_rng(args.seed).standard_normal((OBS_POOL, obs_dim)).astype(np.float32)
    with torch.inference_mode():
        for i in range(args.decisions):
            obs = pool[i % OBS_POOL : i % OBS_POOL + 1]
            if args.baseline:
                torch.nn.functional.linear(torch.as_tensor(obs), probe).argmax(dim=-1).numpy()
            else:
                policy.act(obs)
    rss, peak = resident_bytes()
    report = {"rss_bytes": rss, "peak_bytes": peak, "obs_dim": obs_dim, "baseline": args.baseline}
    if not args.baseline:
        report["modules"] = sorted(sys.modules)
    print(json.dumps(report))


if __name__ == "__main__":
    _child()
