"""Episodic returns of a deterministic policy over seeded evaluation episodes, and what they cost.

A pool of plain environments steps in lockstep; each step the observations of the live
environments go through the policy in one batched forward pass. Episode ``i`` is reset with
``seed + i`` whichever environment runs it, so the episodes do not depend on the pool's size. Nor
do the returns, to the last bit, although PyTorch's CPU kernels may round differently for
different batch sizes (for the study's 8-256-256-4 network on an AVX-512 machine, batches of 1 to 3
rows give other last bits than 64 rows; some low-rank networks differ for every size that is not a
multiple of 4). Two facts make that so:

- a row's result depends neither on its position nor on the other rows of a batch of a given size;
- every forward pass has :data:`BATCH_ROWS` rows (the live environments, padded), except that at
  the start of each evaluation the policy's network is run on one seeded batch of ``BATCH_ROWS``
  random rows and on its first ``m`` rows for each smaller multiple ``m`` of :data:`ROW_STEP`; the
  sizes whose every output is bit-identical to the full batch's (on this machine, for this
  network) may serve a pass with at most ``m`` live environments. The kernel a matrix product
  takes depends on the shapes, not on the values, so a size that agrees on the random batch agrees
  on every batch. Policies other than :class:`~rlcomp.policy.Policy` always get full passes.

A pool larger than ``BATCH_ROWS`` is run ``BATCH_ROWS`` rows at a time (the last chunk on a checked
smaller size).

Speed: for the LunarLander Q-network a pass costs about 25 us of call overhead plus 1.5 us a row
(AVX-512, caches warm), against about 32 us per environment step. Towards the end of an evaluation
few environments are left (the longest episode sets the number of passes), and the smaller passes
then save most of the padding; a :class:`~rlcomp.policy.Policy` is also run by the same operations
as its ``act`` without ``act``'s wrapping (checked to give the same actions), about 20 us less a
pass. Each forward pass and the other environments evict data from the caches, which makes the
passes about 1.5 x and the environment steps about 7% slower than when run alone.
``benchmarks/eval_throughput.py`` compares the whole loop with the environment alone and with a
one-environment loop.

Resources are sampled over the whole evaluation, not once: this process's resident memory (psutil,
about 13 us a read) at the start, before every :data:`SAMPLE_PASSES`-th forward pass and at the
end: at the same points of every run of the same evaluation, so that two runs read the same
allocations (sampling on a wall clock read different points of a growing heap from run to run,
which moved an int8 LunarLander job's mean by 1.4% between three runs; counted in passes, 0.5%),
and its CPU time at both ends; see :class:`EvalResult` for what is reported, and
:data:`ENVIRONMENT_DOMINATED` for which figures mostly measure the simulator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import psutil
import torch

from rlcomp.envs import make_env
from rlcomp.nets import as_tensor
from rlcomp.policy import Policy
from rlcomp.stats import summarize_returns

BATCH_ROWS = 64
"""Rows of a full forward pass: a pool of up to 64 environments is padded to 64 rows, a larger one
is run 64 rows at a time."""

ROW_STEP = 4
"""Smaller passes have a multiple of this many rows, each size checked at the start of the
evaluation to give the bits of a full pass (see the module docstring)."""

SAMPLE_PASSES = 16
"""Forward passes between two samples of this process's resident memory during an evaluation
(about 100 samples in a 100-episode LunarLander or HalfCheetah evaluation)."""

ENVIRONMENT_DOMINATED = ("eval_seconds", "seconds_per_step", "env_seconds", "cpu_seconds",
                         "cpu_seconds_per_step", "cpu_percent", "ram_percent", "rss_bytes",
                         "rss_peak_bytes")
"""Costs of an evaluation that mostly measure the environment and the runtime, not the policy.

The time figures are dominated by the simulator: for the LunarLander Q-network the policy takes
about 3 to 5 us of a step that costs about 35 to 70 us (machine-dependent; ``policy_share`` says how
much on the machine of the run). CPU % is about 100 (one busy thread) whatever the policy. Resident
memory is the interpreter, NumPy, PyTorch, Gymnasium and the simulators (about 300 MB), of which
the study's networks (0.3 MB and less) are a fraction of a percent; the model's own footprint is
measured apart (:func:`rlcomp.probes.resources.isolated_resident_bytes`). ``policy_seconds`` and
``policy_share`` are the figures of the policy itself."""


@dataclass
class EvalResult:
    """Per-episode outcome of an evaluation and its costs; episode ``i`` used seed ``seed + i``.

    Resource figures cover the whole evaluation (environment creation included): resident memory
    is sampled ``resource_samples`` times (at the start, every :data:`SAMPLE_PASSES` forward
    passes, at the end) and reported as the mean of the samples and their peak; CPU % is CPU
    seconds over wall seconds of the whole evaluation. The figures named
    in :data:`ENVIRONMENT_DOMINATED` mostly measure the environment and the runtime, not the policy.

    Attributes:
        returns: undiscounted return of each episode.
        lengths: environment steps of each episode.
        seed: seed of episode 0.
        eval_seconds: wall seconds of the whole evaluation (environment creation included), the
            poster's "eval time" (environment-dominated).
        env_steps: environment steps over all episodes (``sum(lengths)``).
        policy_seconds: wall seconds inside ``policy.act``.
        env_seconds: wall seconds inside ``env.step`` and ``env.reset``.
        cpu_seconds: CPU seconds (user + system, all threads) of this process during the
            evaluation.
        ram_percent: resident memory of this process as a percentage of physical memory, the mean
            over the ``resource_samples`` samples over the whole evaluation (psutil's
            ``memory_percent()`` of the mean resident bytes; the poster's RAM %;
            environment- and runtime-dominated).
        rss_bytes: resident bytes of this process, the mean over the same samples.
        rss_peak_bytes: the largest of those samples.
        resource_samples: how many samples of resident memory were taken (at least 2).
        num_envs: environments in the pool (``min(num_envs, episodes)``).
        extra: free-form additions.
    """

    returns: list[float]
    lengths: list[int]
    seed: int
    eval_seconds: float
    env_steps: int = 0
    policy_seconds: float = 0.0
    env_seconds: float = 0.0
    cpu_seconds: float = 0.0
    ram_percent: float = 0.0
    rss_bytes: int = 0
    rss_peak_bytes: int = 0
    resource_samples: int = 0
    num_envs: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def seconds_per_step(self) -> float:
        """Wall seconds per environment step: eval time without the episode-length confound."""
        return self.eval_seconds / self.env_steps if self.env_steps else 0.0

    @property
    def policy_share(self) -> float:
        """Fraction of the policy-plus-environment time spent inside ``policy.act``."""
        busy = self.policy_seconds + self.env_seconds
        return self.policy_seconds / busy if busy > 0 else 0.0

    @property
    def cpu_percent(self) -> float:
        """CPU seconds over wall seconds x 100 (the poster's CPU %; 100 is one busy core).

        The time-weighted mean of the CPU % of the intervals between the resource samples, i.e.
        over the whole evaluation.
        """
        return 100.0 * self.cpu_seconds / self.eval_seconds if self.eval_seconds > 0 else 0.0

    @property
    def cpu_seconds_per_step(self) -> float:
        """CPU seconds per environment step."""
        return self.cpu_seconds / self.env_steps if self.env_steps else 0.0

    def costs(self) -> dict:
        """Time and resource figures of the evaluation, JSON-ready."""
        return {
            "env_steps": int(self.env_steps),
            "seconds_per_step": self.seconds_per_step,
            "policy_seconds": self.policy_seconds,
            "env_seconds": self.env_seconds,
            "policy_share": self.policy_share,
            "cpu_seconds": self.cpu_seconds,
            "cpu_seconds_per_step": self.cpu_seconds_per_step,
            "cpu_percent": self.cpu_percent,
            "ram_percent": self.ram_percent,
            "rss_bytes": int(self.rss_bytes),
            "rss_peak_bytes": int(self.rss_peak_bytes),
            "resource_samples": int(self.resource_samples),
            "num_envs": int(self.num_envs),
        }

    def summary(self) -> dict:
        """A JSON-ready dictionary: summary statistics, per-episode values and :meth:`costs`."""
        return {
            **summarize_returns(self.returns),
            "episodes": len(self.returns),
            "seed": self.seed,
            "returns": [float(r) for r in self.returns],
            "lengths": [int(n) for n in self.lengths],
            "eval_seconds": self.eval_seconds,
            **self.costs(),
        }


class ResourceSampler:
    """Resident memory of this process, sampled over an evaluation; CPU time at both ends.

    Call :meth:`sample` at the start and the end, and in between at fixed points of the work
    (the evaluation: every :data:`SAMPLE_PASSES` forward passes): a read of the resident bytes
    costs about 13 us (psutil).
    """

    def __init__(self) -> None:
        self.samples = 0
        self.rss_sum = 0
        self.rss_peak = 0
        self._process = psutil.Process()
        self._memory = self._process.memory_info

    def sample(self) -> None:
        """Read the resident bytes now."""
        rss = self._memory().rss
        self.samples += 1
        self.rss_sum += rss
        self.rss_peak = max(self.rss_peak, rss)

    @property
    def rss_mean(self) -> float:
        """Mean resident bytes over the samples."""
        return self.rss_sum / self.samples if self.samples else 0.0

    @property
    def ram_percent(self) -> float:
        """Mean resident memory as a percentage of physical memory (psutil's ``memory_percent``)."""
        return 100.0 * self.rss_mean / psutil.virtual_memory().total


def _checked_sizes(policy: Policy, probe: np.ndarray, largest: int) -> list[int]:
    """Multiples of :data:`ROW_STEP` below :data:`BATCH_ROWS` whose passes give a full pass's bits.

    Only the sizes that ``largest`` live environments (at most) may need are checked.

    ``probe`` (:data:`BATCH_ROWS` rows of the evaluation's observation buffer, so laid out as the
    passes will be) is filled with seeded normal values for the check and zeroed after it. Runs
    ``policy.act``'s arithmetic (normalisation, network) and compares the network's outputs.
    """
    if type(policy) is not Policy or largest < 1:
        return []
    probe[:] = np.random.default_rng(0).standard_normal(probe.shape)

    def forward(rows: int) -> torch.Tensor:
        x = probe[:rows] if policy.obs_norm is None else policy.obs_norm(probe[:rows])
        return policy.net(as_tensor(x))

    full = forward(BATCH_ROWS)
    sizes = [m for m in range(ROW_STEP, BATCH_ROWS, ROW_STEP)
             if m - ROW_STEP < largest and torch.equal(forward(m), full[:m])]
    probe[:] = 0
    return sizes


def _rows_per_live(sizes: list[int], n_slots: int) -> list[int]:
    """Rows of the forward pass for each number of live environments, ``0..n_slots``."""
    rows = [0]
    for live in range(1, n_slots + 1):
        full, rest = divmod(live, BATCH_ROWS)
        if rest:
            rest = next((m for m in sizes if m >= rest), BATCH_ROWS)
        rows.append(full * BATCH_ROWS + rest)
    return rows


def _hook_free(net: torch.nn.Module) -> bool:
    """Whether calling the modules' ``forward`` directly skips no hook (theirs or global)."""
    from torch.nn.modules import module as torch_module

    names = ("_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_hooks",
             "_global_backward_pre_hooks")
    if any(getattr(torch_module, name, True) for name in names):
        return False
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return all(not getattr(m, h, True) for m in net.modules() for h in hooks)


def _fast_act(policy: Policy) -> Callable[[np.ndarray], np.ndarray] | None:
    """:meth:`Policy.act`'s arithmetic with less Python overhead, or None for another policy.

    The same operations on the same tensors (so the same bits), without ``act``'s ``no_grad``
    (the evaluation runs under ``inference_mode``) and, for an ``nn.Sequential`` without hooks,
    calling each layer's ``forward`` directly. About 20 us less per forward pass, which is what a
    pass of a few rows costs besides its arithmetic.
    """
    if type(policy) is not Policy or policy.action not in ("argmax", "mean"):
        return None
    net, norm = policy.net, policy.obs_norm
    layers = ([m.forward for m in net] if isinstance(net, torch.nn.Sequential) and _hook_free(net)
              else [net])
    low, high = policy.action_low, policy.action_high
    clip = policy.action == "mean" and low is not None and high is not None

    def act(obs: np.ndarray) -> np.ndarray:
        x = as_tensor(obs if norm is None else norm(obs))
        for layer in layers:
            x = layer(x)
        if policy.action == "argmax":
            return x.argmax(dim=-1).numpy()
        return np.clip(x.numpy(), low, high) if clip else x.numpy()

    return act


def _actor(policy: Policy, probe: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving ``policy.act``'s actions, at most :data:`BATCH_ROWS` rows at a time.

    :func:`_fast_act` where it gives the same actions as ``policy.act`` on ``probe`` (seeded
    normal rows, zeroed after the check), ``policy.act`` otherwise.
    """
    act = policy.act
    fast = _fast_act(policy)
    if fast is not None:
        probe[:] = np.random.default_rng(1).standard_normal(probe.shape)
        if np.array_equal(fast(probe), policy.act(probe)):
            act = fast
        probe[:] = 0

    def chunked(obs: np.ndarray) -> np.ndarray:
        if len(obs) <= BATCH_ROWS:
            return act(obs)
        return np.concatenate([act(obs[i : i + BATCH_ROWS])
                               for i in range(0, len(obs), BATCH_ROWS)])

    return chunked


def evaluate_policy(
    policy: Policy,
    env_id: str,
    episodes: int,
    seed: int,
    num_envs: int = 64,
) -> EvalResult:
    """Run ``episodes`` episodes of ``policy``, ``num_envs`` at a time, one forward pass a step.

    Episode ``i`` starts from ``reset(seed=seed + i)``; the returns and lengths are bit-identical
    for every ``num_envs`` (see the module docstring). The evaluation runs under
    ``torch.inference_mode``; set PyTorch's threads beforehand
    (:func:`rlcomp.envs.configure_torch`).

    Args:
        policy: the deterministic policy; ``act`` gets ``(rows, obs_dim)`` arrays whose rows past
            the live environments are padding.
        env_id: a Gymnasium id (already resolved).
        episodes: number of episodes, at least 1.
        seed: seed of episode 0.
        num_envs: environments stepping in lockstep; up to :data:`BATCH_ROWS`, more are faster
            (they share each forward pass) and the results are the same.

    Returns:
        Per-episode returns and lengths with the wall, CPU and memory figures of the evaluation
        (resident memory sampled over the whole of it; see :class:`EvalResult`).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    perf = time.perf_counter
    sampler = ResourceSampler()
    start, cpu_start = perf(), time.process_time()
    sampler.sample()
    n_slots = min(num_envs, episodes)
    all_envs = [make_env(env_id) for _ in range(n_slots)]
    space = all_envs[0].observation_space
    obs = np.zeros((BATCH_ROWS * math.ceil(n_slots / BATCH_ROWS), *space.shape),
                   dtype=space.dtype or np.float32)
    # Python ints make Discrete.contains (checked by every LunarLander step) cheap.
    discrete = isinstance(all_envs[0].action_space, gym.spaces.Discrete)
    returns = [0.0] * episodes
    lengths = [0] * episodes
    policy_seconds = env_seconds = 0.0

    # The live environments are envs[0:n], their observations obs[0:n] and their episodes
    # episode_of[0:n]; an environment without a next episode leaves, and the rest move up.
    envs = list(all_envs)
    episode_of = list(range(n_slots))
    next_episode = n_slots
    with torch.inference_mode():
        sizes = _checked_sizes(policy, obs[:BATCH_ROWS], min(n_slots, BATCH_ROWS - 1))
        rows_for = _rows_per_live(sizes, n_slots)
        act = _actor(policy, obs[:BATCH_ROWS])
        t0 = perf()
        for slot, env in enumerate(envs):
            obs[slot] = env.reset(seed=seed + slot)[0]
        env_seconds += perf() - t0

        passes = 0
        while envs:
            if passes % SAMPLE_PASSES == 0:
                sampler.sample()
            passes += 1
            t0 = perf()
            actions = act(obs[: rows_for[len(envs)]])
            t1 = perf()
            policy_seconds += t1 - t0
            if discrete:
                actions = actions.tolist()
            ended = False
            for slot, env in enumerate(envs):
                t0 = perf()
                ob, reward, terminated, truncated, _ = env.step(actions[slot])
                env_seconds += perf() - t0
                ep = episode_of[slot]
                returns[ep] += float(reward)
                lengths[ep] += 1
                if terminated or truncated:
                    if next_episode < episodes:
                        t0 = perf()
                        ob = env.reset(seed=seed + next_episode)[0]
                        env_seconds += perf() - t0
                        episode_of[slot] = next_episode
                        next_episode += 1
                    else:
                        episode_of[slot] = -1
                        ended = True
                obs[slot] = ob
            if ended:
                keep = [s for s, ep in enumerate(episode_of) if ep >= 0]
                obs[: len(keep)] = obs[keep]
                envs = [envs[s] for s in keep]
                episode_of = [episode_of[s] for s in keep]

    sampler.sample()
    for env in all_envs:
        env.close()
    cpu_seconds = time.process_time() - cpu_start
    return EvalResult(
        returns=returns,
        lengths=lengths,
        seed=seed,
        eval_seconds=perf() - start,
        env_steps=sum(lengths),
        policy_seconds=policy_seconds,
        env_seconds=env_seconds,
        cpu_seconds=cpu_seconds,
        ram_percent=sampler.ram_percent,
        rss_bytes=round(sampler.rss_mean),
        rss_peak_bytes=sampler.rss_peak,
        resource_samples=sampler.samples,
        num_envs=n_slots,
    )
