"""Decision latency of a policy at batch size 1, in eager PyTorch and in ONNX Runtime.

One decision is the work of :meth:`Policy.act` for one observation: a float32 row in, the action
out (normalise, forward pass, argmax or clip). Each call is timed on its own with
``time.perf_counter_ns`` after a warm-up, on one thread, over fixed observations drawn from a
seeded normal generator; the result is the median and the 95th percentile in seconds.

What the number shows: the per-decision cost of the policy's own computation in each runtime on
this machine, including the Python call overhead a deployment in Python pays. What it does not
show: environment stepping, batched throughput, cold-start (the first calls are discarded), or
a figure comparable across machines; on a busy machine p95 mostly measures the neighbours, so
compare variants measured together, and prefer the median.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from rlcomp.compress.export import in_features, onnx_session, policy_to_onnx
from rlcomp.policy import Policy

if TYPE_CHECKING:
    import onnxruntime


@dataclass(frozen=True)
class LatencyResult:
    """Batch-1 decision latency: median and 95th percentile over ``repeats`` timed calls."""

    runtime: str
    """``"eager"`` (PyTorch) or ``"onnx"`` (ONNX Runtime)."""
    median_s: float
    """Median seconds per decision."""
    p95_s: float
    """95th percentile of seconds per decision."""
    repeats: int
    """Timed calls."""
    warmup: int
    """Untimed calls before them."""

    def to_dict(self) -> dict:
        """A JSON-ready dictionary of the fields."""
        return asdict(self)


def observations(obs_dim: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` standard-normal float32 observations, the same for the same ``seed``."""
    return np.random.default_rng(seed).standard_normal((count, obs_dim)).astype(np.float32)


def time_decisions(decide: Callable[[np.ndarray], object], obs: np.ndarray, warmup: int,
                   runtime: str) -> LatencyResult:
    """Time ``decide(row[None])`` once per row of ``obs`` after ``warmup`` untimed calls."""
    if len(obs) < 1 or warmup < 0:
        raise ValueError(f"need at least one repeat and warmup >= 0, got {len(obs)}, {warmup}")
    for i in range(warmup):
        decide(obs[i % len(obs)][None])
    times = np.empty(len(obs), dtype=np.int64)
    for i, row in enumerate(obs):
        batch = row[None]
        start = time.perf_counter_ns()
        decide(batch)
        times[i] = time.perf_counter_ns() - start
    seconds = times / 1e9
    return LatencyResult(runtime=runtime, median_s=float(np.median(seconds)),
                         p95_s=float(np.percentile(seconds, 95)), repeats=len(obs), warmup=warmup)


def eager_latency(policy: Policy, obs_dim: int | None = None, repeats: int = 1000,
                  warmup: int = 100, seed: int = 0) -> LatencyResult:
    """Batch-1 latency of ``policy.act`` in eager PyTorch on one thread.

    Args:
        policy: the policy to time.
        obs_dim: the observation width; by default the input width of ``policy.net``.
        repeats: timed decisions, each on its own observation.
        warmup: untimed decisions before them.
        seed: seed of the observations.
    """
    obs = observations(obs_dim or in_features(policy.net), repeats, seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return time_decisions(policy.act, obs, warmup, "eager")
    finally:
        torch.set_num_threads(threads)


def session_latency(session: onnxruntime.InferenceSession, obs_dim: int, repeats: int = 1000,
                    warmup: int = 100, seed: int = 0) -> LatencyResult:
    """Batch-1 latency of an ONNX Runtime session of :func:`policy_to_onnx`'s graph.

    One decision is ``session.run(["action"], {"obs": row})``.
    """
    obs = observations(obs_dim, repeats, seed)
    return time_decisions(lambda x: session.run(["action"], {"obs": x}), obs, warmup, "onnx")


def onnx_latency(policy: Policy, obs_dim: int | None = None, repeats: int = 1000,
                 warmup: int = 100, seed: int = 0) -> LatencyResult:
    """Batch-1 latency of ``policy`` exported to ONNX, in ONNX Runtime on one thread.

    The session is :func:`rlcomp.compress.export.onnx_session` (its setup is not timed). Arguments
    are those of :func:`eager_latency`.
    """
    session = onnx_session(policy_to_onnx(policy))
    return session_latency(session, obs_dim or in_features(policy.net), repeats, warmup, seed)
