"""Policy time per decision, as a ratio to a reference policy with its interval.

:func:`policy_time_ratio` times the policy alone, without the simulator: a whole evaluation of a
LunarLander agent spends most of its time in the environment, so its wall time barely moves when
the policy gets faster or slower. It starts one fresh Python process (this module, run as
``python -m rlcomp.probes.policy_time``) that pins itself to one core with one PyTorch thread
before PyTorch starts, loads both policies from their files, and builds a fixed pool of
observations: real ones, recorded by acting with the reference policy from a seeded reset of its
environment when the environment is known, else seeded standard-normal rows. After a warm-up it
runs ``pairs`` A/B pairs; each pair runs a block of ``decisions`` batch-1 ``policy.act`` calls
(under ``torch.inference_mode``, garbage collection paused, each call timed) of the candidate and
one of the reference on the same observations, the order alternating from pair to pair (ABBA),
so that a drift of the machine's speed cancels. The process prints each block's total, fastest
and median call time as one line of JSON.

With ``footprint=True`` the same process first measures the candidate's resident footprint:
its resident bytes after importing what loading a policy needs and running one-output linear maps
(the baseline), and again after loading the candidate and running its decisions; sweeps use this
so that one fresh process per job measures both the footprint and the time.

Each block gives one figure of seconds per decision, its ``statistic``:

- ``"median"`` (the default): the block's median call. An interruption (another process, an
  interrupt) slows a few calls of a block and leaves the median alone.
- ``"min"``: the block's fastest call, the figure other processes disturb least (they only ever
  add time); costs every call pays (the int8 layers' dequantization and allocation, the Python
  overhead of ``act``) are in it.
- ``"mean"``: the block's total over ``decisions``, every interruption included; under load the
  added time pulls the ratio towards 1.

The parent takes the log ratio of the two blocks' figures in each pair; their mean gives the
ratio (the geometric mean of the per-pair ratios) and a Student-t 95% interval (``pairs - 1``
degrees of freedom), exponentiated back to a ratio interval.

Why many short pairs (300 of 20 decisions, about 2.5 ms a pair for LunarLander int8 vs dense)
rather than a few long ones: on a shared machine the speed of the core changes over tens of
milliseconds (other jobs on the same core, the other cores, the host's other guests) and slows
whole blocks of 7-18 ms, so that 30 pairs of 200 decisions gave half-widths of 3-9% of the ratio
at a load of 1-2.5 on two cores, whatever the statistic; short pairs see the same conditions in
both halves, and the same time spread over more pairs narrows the interval (0.8-2.2% of the
ratio with the median in six runs at a load of 1.1-1.4; under 0.1% with the minimum; the mean
stays noisy, up to 13%, because int8 calls have a heavy tail of slow calls under load).

What the interval does not cover: the differences between measuring processes (memory layout)
and between moments of different load, which moved the LunarLander int8-vs-dense ratio by a few
percent from run to run. The seconds per decision (medians over the blocks) are this machine's
and this moment's; the ratio is the figure to compare. Not shown either: batched forward passes
(the evaluation loop acts on 64 rows at once), environment stepping, cold start, or other
runtimes (ONNX: :mod:`rlcomp.probes.latency`).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlcomp.probes.resources import DEFAULT_LOADER, pin_to_one_core, resident_bytes

if TYPE_CHECKING:
    from rlcomp.policy import Policy

DEFAULT_PAIRS = 300
"""A/B pairs timed by default (many short pairs: see the module docstring)."""

DEFAULT_DECISIONS = 20
"""Decisions per timed block by default: about 0.7 ms for the dense LunarLander Q-network at
batch 1 (about 37 us a decision) and 1.7 ms for its int8 version, so 300 pairs take about 0.8 s."""

DEFAULT_POOL = 256
"""Observations in the pool the decisions cycle through."""

FOOTPRINT_DECISIONS = 1000
"""Decisions run before each resident-bytes reading of the footprint (as the isolated probe's)."""

FOOTPRINT_MODULES = ("rlcomp.compress", "rlcomp.compress.storage", "rlcomp.compress.layers",
                     "rlcomp.compress.quant", "rlcomp.compress.lowrank", "rlcomp.compress.prune",
                     "rlcomp.checkpoint", "rlcomp.policy", "rlcomp.nets")
"""Modules imported before the baseline reading, so that loading the candidate imports none."""

WARMUP_DECISIONS = 400
"""Untimed decisions of each policy before the timed pairs (at least one pass over the pool)."""

CONFIDENCE = 0.95
"""Coverage of the interval of the ratio."""

STATISTICS = ("min", "median", "mean")
"""Figures of a block that :func:`policy_time_ratio` can compare (see the module docstring)."""


@dataclass(frozen=True)
class PolicyTime:
    """Policy time of a candidate relative to a reference, from interleaved A/B pairs.

    Attributes:
        ratio: ``exp(mean(log(t_candidate / t_reference)))`` over the pairs: the candidate's
            time per decision as a multiple of the reference's.
        ci_low: lower end of the 95% Student-t interval of ``ratio``.
        ci_high: upper end of that interval.
        ci_halfwidth: ``(ci_high - ci_low) / 2 / ratio``, the interval's half-width as a fraction
            of the ratio.
        candidate_s: seconds per decision of the candidate: the median over its blocks of
            each block's ``statistic``.
        reference_s: the same for the reference.
        pairs: A/B pairs timed.
        decisions: batch-1 decisions per timed block.
        statistic: each block's figure: ``"min"``, ``"median"`` or ``"mean"`` call.
        core: the core the measuring process was pinned to, or ``None`` if it could not pin.
        observations: where the observation pool came from (``env:<id>`` or ``normal``).
        candidate_blocks_s: seconds per decision of each of the candidate's blocks (its
            ``statistic``), in pair order.
        reference_blocks_s: the same for the reference's blocks.
    """

    ratio: float
    ci_low: float
    ci_high: float
    ci_halfwidth: float
    candidate_s: float
    reference_s: float
    pairs: int
    decisions: int
    statistic: str
    core: int | None
    observations: str
    candidate_blocks_s: tuple[float, ...]
    reference_blocks_s: tuple[float, ...]
    footprint: dict[str, int] | None = None
    """With ``footprint=True``: the candidate's resident bytes in the measuring process
    (``baseline_rss_bytes`` before loading it, ``model_rss_bytes`` after loading it and running
    its decisions, their peaks, ``decisions``); see :func:`policy_time_ratio`."""

    def metrics(self) -> dict[str, float]:
        """The figures as floats under the results store's names.

        ``dense_policy_seconds_per_decision`` is the reference's time: in a sweep the reference
        is the dense checkpoint the candidate was compressed from.
        """
        return {
            "policy_time_ratio": self.ratio,
            "policy_time_ratio_ci_low": self.ci_low,
            "policy_time_ratio_ci_high": self.ci_high,
            "policy_time_ratio_ci_halfwidth": self.ci_halfwidth,
            "policy_seconds_per_decision": self.candidate_s,
            "dense_policy_seconds_per_decision": self.reference_s,
            "policy_time_pairs": float(self.pairs),
            "policy_time_decisions": float(self.decisions),
            **self.footprint_metrics(),
        }

    def footprint_metrics(self) -> dict[str, float]:
        """The footprint figures under the store's ``isolated_*`` names (empty without them)."""
        if self.footprint is None:
            return {}
        f = self.footprint
        return {"isolated_decisions": float(f["decisions"]),
                "isolated_model_rss_bytes": float(f["model_rss_bytes"]),
                "isolated_baseline_rss_bytes": float(f["baseline_rss_bytes"]),
                "isolated_model_peak_bytes": float(f["model_peak_bytes"]),
                "isolated_baseline_peak_bytes": float(f["baseline_peak_bytes"]),
                "isolated_footprint_bytes": float(f["model_rss_bytes"] - f["baseline_rss_bytes"]),
                "isolated_peak_footprint_bytes": float(f["model_peak_bytes"]
                                                       - f["baseline_peak_bytes"])}

    def to_dict(self) -> dict:
        """JSON-ready fields (the block times as lists)."""
        return {
            "ratio": self.ratio, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "ci_halfwidth": self.ci_halfwidth, "candidate_s": self.candidate_s,
            "reference_s": self.reference_s, "pairs": self.pairs, "decisions": self.decisions,
            "statistic": self.statistic, "core": self.core, "observations": self.observations,
            "candidate_blocks_s": list(self.candidate_blocks_s),
            "reference_blocks_s": list(self.reference_blocks_s),
            "footprint": self.footprint,
        }


def ratio_interval(candidate_s: list[float] | np.ndarray, reference_s: list[float] | np.ndarray,
                   confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Ratio and Student-t interval from paired block times: ``(ratio, low, high)``.

    Args:
        candidate_s: the candidate's block times, one per pair.
        reference_s: the reference's block times, in the same pair order.
        confidence: coverage of the interval.

    Raises:
        ValueError: for fewer than two pairs, unequal lengths or non-positive times.
    """
    from scipy import stats

    cand, ref = np.asarray(candidate_s, dtype=float), np.asarray(reference_s, dtype=float)
    if cand.shape != ref.shape or cand.ndim != 1 or len(cand) < 2:
        raise ValueError(f"need two equal-length series of >= 2 block times, got {cand.shape} "
                         f"and {ref.shape}")
    if not (np.all(cand > 0) and np.all(ref > 0)):
        raise ValueError("block times must be positive")
    logs = np.log(cand) - np.log(ref)
    n = len(logs)
    mean = float(logs.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * logs.std(ddof=1) / math.sqrt(n))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def _caller_core(core: int | None) -> int | None:
    """``core``, or the lowest core this process may run on; ``None`` where pinning is absent."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[0] if core is None else core
    if chosen not in allowed:
        raise ValueError(f"core {chosen} is not available (allowed: {allowed})")
    return chosen


def _check_file(path: Path) -> None:
    """Raise FileNotFoundError unless ``path`` is a file or names a checkpoint's files."""
    if not (path.is_file() or path.with_name(path.name + ".safetensors").is_file()):
        raise FileNotFoundError(f"{path}: no such file or checkpoint")


def policy_time_ratio(
    candidate: str | os.PathLike,
    reference: str | os.PathLike,
    *,
    pairs: int = DEFAULT_PAIRS,
    decisions: int = DEFAULT_DECISIONS,
    core: int | None = None,
    loader: str = DEFAULT_LOADER,
    statistic: str = "median",
    env_id: str | None = None,
    pool: int = DEFAULT_POOL,
    seed: int = 0,
    timeout: float = 120.0,
    footprint: bool = False,
) -> PolicyTime:
    """Time per decision of ``candidate`` relative to ``reference``, in one pinned fresh process.

    Args:
        candidate: the candidate's file (a checkpoint name or a compressed file for the default
            loader).
        reference: the reference's file (in a sweep, the dense checkpoint).
        pairs: A/B pairs timed, at least 2 (the interval has ``pairs - 1`` degrees of freedom).
        decisions: batch-1 decisions per timed block, at least 1; blocks of a few milliseconds
            and many pairs resist a shared machine's noise best (see the module docstring).
        core: the core to measure on; by default the lowest core this process may run on, so
            a sweep worker pinned to core ``k`` measures on core ``k``.
        loader: ``"module:function"`` taking a path string and returning a
            :class:`~rlcomp.policy.Policy`.
        statistic: each block's figure of seconds per decision: its median call
            (``"median"``), its fastest call (``"min"``) or its total over ``decisions``
            (``"mean"``).
        env_id: environment whose observations make the pool; by default the reference file's
            environment when the default loader reads it, else standard-normal observations.
        pool: observations in the pool.
        seed: seed of the environment's reset (or of the normal observations).
        timeout: seconds the measuring process may take; it is killed after that.
        footprint: also measure the candidate's resident footprint in the same fresh process,
            before it loads the reference: the process imports every module loading a policy
            needs and runs :data:`FOOTPRINT_DECISIONS` one-output linear maps (so the BLAS
            runtime is set up), reads its resident bytes (the baseline), then loads the
            candidate, runs as many of its decisions and reads them again (the model); the
            footprint is the difference, the model's tensors, what loading left in the
            allocator, its activations and kernel workspace. This is
            :func:`rlcomp.probes.resources.isolated_resident_bytes`'s measure with the baseline
            taken in the same process before the model instead of in a second process, which
            saves a second interpreter start (about 2 s a job).

    Raises:
        ValueError: for ``pairs < 2``, ``decisions < 1``, ``pool < 1``, an unknown statistic, a
            malformed loader or an unavailable core.
        FileNotFoundError: (default loader) for a file or checkpoint that does not exist.
        RuntimeError: if the measuring process fails or times out (its last error line quoted).
    """
    for name, value, least in (("pairs", pairs, 2), ("decisions", decisions, 1),
                               ("pool", pool, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    module, sep, function = loader.partition(":")
    if not (module and sep and function):
        raise ValueError(f"loader must be 'module:function', got {loader!r}")
    paths = [Path(p).absolute() for p in (candidate, reference)]
    if loader == DEFAULT_LOADER:
        for path in paths:
            _check_file(path)
    core = _caller_core(core)
    args = ["--candidate", str(paths[0]), "--reference", str(paths[1]), "--pairs", str(pairs),
            "--decisions", str(decisions), "--loader", loader, "--pool", str(pool),
            "--seed", str(seed)]
    if env_id is not None:
        args += ["--env-id", env_id]
    if core is not None:
        args += ["--core", str(core)]
    if footprint:
        args += ["--footprint"]
    report = _run_child(args, timeout)
    cand = [_per_decision(block, statistic, decisions) for block in report["candidate"]]
    ref = [_per_decision(block, statistic, decisions) for block in report["reference"]]
    ratio, low, high = ratio_interval(cand, ref)
    return PolicyTime(
        ratio=ratio, ci_low=low, ci_high=high, ci_halfwidth=(high - low) / 2 / ratio,
        candidate_s=float(np.median(cand)), reference_s=float(np.median(ref)),
        pairs=pairs, decisions=decisions, statistic=statistic, core=report["core"],
        observations=report["observations"],
        candidate_blocks_s=tuple(cand), reference_blocks_s=tuple(ref),
        footprint=report.get("footprint"))


def _per_decision(block: dict[str, int], statistic: str, decisions: int) -> float:
    """Seconds per decision of one block by ``statistic``, from its nanosecond figures."""
    if statistic == "mean":
        return block["sum"] / decisions / 1e9
    return block[statistic] / 1e9


def _run_child(args: list[str], timeout: float) -> dict:
    """Run this module as a fresh process with ``args``; its last line of output as JSON."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "rlcomp.probes.policy_time", *args]
    try:
        # On a timeout, subprocess.run kills the child and reaps it before raising.
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"policy-time process timed out after {timeout:g} s (killed)") from None
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no error output"]
        raise RuntimeError(f"policy-time process failed ({proc.returncode}): {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the measuring process ------------------------------------------------------------------------

def _load(path: str, loader: str) -> tuple[Policy, str | None]:
    """The policy at ``path`` and, for the default loader, its environment id."""
    if loader == DEFAULT_LOADER:
        from rlcomp.compress.storage import load_checkpoint_or_compressed

        loaded = load_checkpoint_or_compressed(path)
        return loaded.policy, loaded.env_id
    module, _, attr = loader.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj(path), None


def _input_width(policy: Policy) -> int:
    for module in policy.net.modules():
        width = getattr(module, "in_features", None)
        if width is not None:
            return int(width)
    raise ValueError("cannot tell the network's input width (no module has in_features)")


def recorded_observations(policy: Policy, env_id: str, count: int, seed: int,
                          stride: int = 1) -> np.ndarray:
    """``count`` observations met by ``policy`` acting from ``reset(seed=seed)`` of ``env_id``.

    Every ``stride``-th observation is kept (all of them by default). An episode that ends is
    followed by one reset with the next seed.

    Raises:
        ValueError: for a count or stride below 1.
    """
    if count < 1 or stride < 1:
        raise ValueError(f"count and stride must be >= 1, got {count} and {stride}")
    import torch

    from rlcomp.envs import make_env

    env = make_env(env_id)
    try:
        obs, _ = env.reset(seed=seed)
        episode, step, rows = 0, 0, []
        with torch.inference_mode():
            while len(rows) < count:
                row = np.asarray(obs, dtype=np.float32).reshape(-1)
                if step % stride == 0:
                    rows.append(row)
                step += 1
                action = policy.act(row[None])[0]
                if policy.action == "argmax":
                    action = int(action)
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    episode += 1
                    obs, _ = env.reset(seed=seed + episode)
    finally:
        env.close()
    return np.stack(rows)


def _load_measuring_footprint(path: str, loader: str, seed: int) -> tuple[Policy, dict]:
    """Load the candidate between two resident-bytes readings (see ``policy_time_ratio``)."""
    import torch

    for name in (*FOOTPRINT_MODULES, loader.partition(":")[0]):
        importlib.import_module(name)
    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        probe = torch.zeros(1, 8)
        pool = rng.standard_normal((16, 8)).astype(np.float32)
        for i in range(FOOTPRINT_DECISIONS):
            torch.nn.functional.linear(torch.as_tensor(pool[i % 16 : i % 16 + 1]),
                                       probe).argmax(dim=-1).numpy()
    del probe, pool
    baseline_rss, baseline_peak = resident_bytes()
    policy, _ = _load(path, loader)
    width = _input_width(policy)
    pool = rng.standard_normal((16, width)).astype(np.float32)
    with torch.inference_mode():
        for i in range(FOOTPRINT_DECISIONS):
            policy.act(pool[i % 16 : i % 16 + 1])
    del pool
    model_rss, model_peak = resident_bytes()
    return policy, {"decisions": FOOTPRINT_DECISIONS, "baseline_rss_bytes": baseline_rss,
                    "model_rss_bytes": model_rss, "baseline_peak_bytes": baseline_peak,
                    "model_peak_bytes": model_peak}


def _time_block(act: Callable[[np.ndarray], object], rows: list[np.ndarray], start: int,
                decisions: int) -> dict[str, int]:
    """``decisions`` calls of ``act`` on ``rows[start:]`` (cycling), each timed: figures in ns.

    Returns the block's total (``sum``), its fastest call (``min``) and its median call
    (``median``: the upper median for an even count).
    """
    n, clock = len(rows), time.perf_counter_ns
    calls = [0] * decisions
    for i in range(decisions):
        row = rows[(start + i) % n]
        begin = clock()
        act(row)
        calls[i] = clock() - begin
    calls.sort()
    return {"sum": sum(calls), "min": calls[0], "median": calls[decisions // 2]}


def _child(argv: list[str] | None = None) -> None:
    """Entry point of the measuring process: print the per-pair block times as JSON."""
    parser = argparse.ArgumentParser(description="policy-time process (rlcomp internal)")
    parser.add_argument("--candidate", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--pairs", type=int, required=True)
    parser.add_argument("--decisions", type=int, required=True)
    parser.add_argument("--loader", default=DEFAULT_LOADER)
    parser.add_argument("--pool", type=int, default=DEFAULT_POOL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env-id", default=None)
    parser.add_argument("--core", type=int, default=None)
    parser.add_argument("--footprint", action="store_true")
    args = parser.parse_args(argv)
    # Pin (and set one thread) before anything imports PyTorch's kernels.
    core = pin_to_one_core(args.core)
    import torch

    if args.footprint:
        candidate, footprint = _load_measuring_footprint(args.candidate, args.loader, args.seed)
    else:
        candidate, footprint = _load(args.candidate, args.loader)[0], None
    reference, ref_env = _load(args.reference, args.loader)
    env_id = args.env_id or ref_env
    if env_id is not None:
        pool = recorded_observations(reference, env_id, args.pool, args.seed)
        source = f"env:{env_id}"
    else:
        width = _input_width(reference)
        pool = np.random.default_rng(args.seed).standard_normal((args.pool, width))
        pool = pool.astype(np.float32)
        source = "normal"
    rows = [pool[i : i + 1] for i in range(len(pool))]  # batch-1 views, made once
    policies = {"candidate": candidate.act, "reference": reference.act}
    times: dict[str, list[dict[str, int]]] = {"candidate": [], "reference": []}
    with torch.inference_mode():
        for act in policies.values():
            _time_block(act, rows, 0, max(WARMUP_DECISIONS, len(rows)))
        gc.collect()
        gc.disable()
        try:
            for pair in range(args.pairs):
                # Both blocks of a pair act on the same observations; the order alternates.
                order = ("candidate", "reference") if pair % 2 == 0 else ("reference", "candidate")
                for name in order:
                    times[name].append(_time_block(policies[name], rows, pair * args.decisions,
                                                   args.decisions))
        finally:
            gc.enable()
    print(json.dumps({"candidate": times["candidate"], "reference": times["reference"],
                      "core": core, "observations": source, "pairs": args.pairs,
                      "decisions": args.decisions, "footprint": footprint}))


if __name__ == "__main__":
    _child()
