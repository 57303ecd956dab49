"""Distillation: train a small student MLP to act like a (possibly compressed) teacher policy.

``distill(teacher, env_id, hidden, seed)`` trains a new MLP of hidden widths ``hidden`` (ReLU, or
the teacher's activation) on states labelled by the teacher and returns it with what the training
cost. The student is a plain ``nn.Sequential`` built like the study's networks
(:func:`rlcomp.nets.mlp`), with the teacher's input and output sizes, so it is a drop-in
replacement for the teacher's ``net``: every compressor applies to it afterwards and it is saved
and loaded by the compressed-file format (:mod:`rlcomp.compress.storage`). The student policy is
the teacher policy with ``net`` replaced: the same frozen observation normaliser, action rule and
action bounds.

What the student learns from (DAgger, Ross et al. 2011):

- States come from rollouts of ``num_envs`` environments stepping in lockstep. At each step every
  environment takes the teacher's action with probability ``beta`` and the student's otherwise
  (DAgger's per-step mixture policy); ``beta`` decays linearly from 1 at the start to 0 after
  ``beta_fraction`` of the environment steps, and from then on the student acts alone. Starting
  with the teacher's rollouts gives the first updates states where the teacher's behaviour
  matters (a lander descending, a cheetah running) instead of only an untrained student's
  crashes; the rest are the student's own states, labelled by the teacher, which is what corrects
  the compounding errors of imitating from the teacher's states alone.
- Every visited state is labelled by the teacher when it is visited (the teacher is fixed) and
  kept in a replay of the ``replay_size`` most recent states.
- Every ``train_freq`` environment steps, minibatches of ``batch_size`` states drawn uniformly
  from the replay take Adam steps, so many that the gradient steps done keep pace with the
  environment steps done: after ``s`` of ``env_steps`` environment steps,
  ``floor(gradient_steps * s / env_steps)`` gradient steps are done, and at the end exactly
  ``gradient_steps``.

The loss follows the teacher's action rule:

- ``"argmax"`` (Double DQN's Q-network): ``KL(softmax(Q_teacher / tau) || softmax(student))``,
  the policy distillation of Rusu et al. (2016) with temperature ``tau`` (0.01 there and here).
  The student's outputs are logits used greedily (argmax) as a Q head, so the student is a
  drop-in Q-network of the same output size; its values are not Q-values.
- ``"mean"`` (the Gaussian policy's mean): the mean squared error between the student's and the
  teacher's means, which is the KL divergence between the two Gaussians when they share the
  teacher's fixed standard deviation, up to a per-dimension weight of ``1 / (2 std^2)``. The
  error is that of the action the environment receives: where the teacher's mean lies beyond an
  action bound (actions are clipped there), the target is the bound, and a student beyond the same
  bound is right. The student acts with its mean.

Environment episodes of environment ``i`` start from ``reset(seed=DISTILL_SEED_BASE +
num_envs * seed + i)`` (later episodes continue that environment's random stream), apart from the
evaluation, selection and fine-tuning seeds. PyTorch runs on one thread (:func:`set_seed` sets
that for the process, as training and fine-tuning do); the same inputs and seed give bit-identical
student weights.

Distillation is supervised learning on the teacher's labels, not an agent's algorithm, so it has
its own loop here rather than running an agent's loop through its hooks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlcomp.compress.storage import ACTIVATIONS
from rlcomp.envs import make_env, resolve_env_id, set_seed
from rlcomp.nets import mlp
from rlcomp.policy import Policy

DISTILL_SEED_BASE = 3_000_000
"""Distillation episodes are seeded from ``DISTILL_SEED_BASE + num_envs * seed`` on: apart from the
evaluation seeds (below 1,000,000), the snapshot-selection seeds (from 1,000,000 on) and the
fine-tuning seeds (from 2,000,000 on)."""

LOSS_ROWS = 8192
"""Rows per forward pass when the final loss is computed over the whole replay."""


@dataclass(frozen=True)
class DistillConfig:
    """Settings of a distillation.

    The defaults distil both study agents in 25-36 CPU seconds (one core shared with other
    jobs): LunarLander-v3 Double DQN seed 0 (252.6 over evaluation episodes 0-99) into a 16x16
    student that scored 253.2 and 254.8 (distillation seeds 0 and 1), its seed-1 checkpoint
    (265.0) into one that scored 267.4; HalfCheetah-v5 PPO seed 0 (5975.6 over episodes 0-19)
    into a 32x32 student that scored 5935.4 and 5984.1, its seed-1 checkpoint (6257.0) into one
    that scored 6349.2. Half the budgets (100k environment and 12.5k gradient steps, measured
    with an unfused Adam) still gave 252.5 and 5974.2 for seed 0 in 15-19 CPU seconds; the full
    budget leaves a margin for other seeds and smaller students.
    """

    env_steps: int = 200_000
    """Environment steps to collect states from (all environments together)."""
    gradient_steps: int = 25_000
    """Adam steps on minibatches of the replay, spread evenly over the environment steps."""
    batch_size: int = 256
    """States per gradient step."""
    lr: float = 1e-3
    """Adam learning rate."""
    replay_size: int = 100_000
    """The replay keeps this many of the most recent states."""
    num_envs: int = 16
    """Environments stepping in lockstep (one forward pass of teacher and student per step)."""
    train_freq: int = 1_000
    """Environment steps (all environments together) between rounds of gradient steps."""
    beta_fraction: float = 0.1
    """The teacher's share of actions decays linearly from 1 to 0 over this fraction of the
    environment steps; 0 lets the student act alone from the first step."""
    tau: float = 0.01
    """Temperature of the teacher's softmax over Q-values (discrete actions only)."""
    activation: str | None = None
    """The student's activation, ``"relu"`` or ``"tanh"``; None takes the teacher's (the first
    one found in its network; ReLU if it has none)."""

    def __post_init__(self) -> None:
        for name in ("env_steps", "gradient_steps", "batch_size", "replay_size", "num_envs",
                     "train_freq"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "tau"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        beta = self.beta_fraction
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 <= beta <= 1:
            raise ValueError(f"beta_fraction must be a number in [0, 1], got {beta!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)} or None, "
                             f"got {self.activation!r}")


@dataclass(frozen=True)
class DistillResult:
    """A distilled student and what distilling it cost.

    Attributes:
        net: the student network, a plain ``nn.Sequential`` MLP.
        policy: the student policy: the teacher policy with ``net`` replaced.
        env_steps: environment steps taken (all environments together).
        gradient_steps: Adam steps taken.
        cpu_seconds: CPU seconds of this process (all threads) while distilling.
        wall_seconds: wall seconds of distilling.
        final_loss: the distillation loss of the final student over the whole final replay.
        agreement: for discrete actions, the fraction of the final replay's states where the
            student's greedy action is the teacher's; None for continuous actions.
        curve: the ended episodes of the rollouts (teacher and student mixed while ``beta > 0``):
            ``episode_end_step`` and ``episode_return``.
    """

    net: nn.Module
    policy: Policy
    env_steps: int
    gradient_steps: int
    cpu_seconds: float
    wall_seconds: float
    final_loss: float
    agreement: float | None = None
    curve: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The costs and the final loss, JSON-ready (without the network)."""
        return {
            "env_steps": int(self.env_steps),
            "gradient_steps": int(self.gradient_steps),
            "cpu_seconds": float(self.cpu_seconds),
            "wall_seconds": float(self.wall_seconds),
            "env_steps_per_second": (self.env_steps / self.wall_seconds
                                     if self.wall_seconds > 0 else 0.0),
            "final_loss": float(self.final_loss),
            "agreement": None if self.agreement is None else float(self.agreement),
        }


def teacher_activation(net: nn.Module) -> str:
    """The name of the first activation in ``net`` (``"relu"`` or ``"tanh"``); ReLU if none."""
    for module in net.modules():
        for name, cls in ACTIVATIONS.items():
            if type(module) is cls:
                return name
    return "relu"


def student_mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """A student: :func:`rlcomp.nets.mlp` of ``sizes`` with ``activation`` between its layers."""
    net = mlp(sizes)
    if activation != "relu":
        net = nn.Sequential(*(ACTIVATIONS[activation]() if isinstance(m, nn.ReLU) else m
                              for m in net))
    return net


def distillation_loss(student_out: torch.Tensor, target: torch.Tensor, discrete: bool,
                      low: torch.Tensor | None = None,
                      high: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of a batch of student outputs against the stored teacher targets.

    Args:
        student_out: the student's outputs, shaped ``(n, out)``.
        target: discrete: the teacher's log-probabilities ``log_softmax(Q / tau)``; continuous:
            the teacher's means, both shaped ``(n, out)``.
        discrete: which loss: ``KL(teacher || softmax(student_out))`` averaged over the batch, or
            the mean squared error of the clipped actions.
        low: lower action bounds (continuous); the targets are clipped to them and a student
            output beyond the same bound as its target counts as right.
        high: upper action bounds (continuous).
    """
    if discrete:
        return F.kl_div(F.log_softmax(student_out, dim=-1), target, reduction="batchmean",
                        log_target=True)
    if low is None or high is None:
        return F.mse_loss(student_out, target)
    clipped = torch.clamp(target, low, high)
    error = student_out - clipped
    error = torch.where((target >= high) & (error > 0), 0.0, error)
    error = torch.where((target <= low) & (error < 0), 0.0, error)
    return error.pow(2).mean()


def _check_teacher(teacher: Policy, env: gym.Env, env_id: str) -> tuple[int, int, bool]:
    """The teacher's (input size, output size, discrete), checked against the environment."""
    if not isinstance(teacher, Policy):
        raise TypeError(f"teacher must be a rlcomp Policy, got {type(teacher).__name__}")
    if teacher.action not in ("argmax", "mean"):
        raise ValueError(f"teacher action must be 'argmax' or 'mean', got {teacher.action!r}")
    if not isinstance(teacher.net, nn.Module):
        raise TypeError(f"teacher net must be a torch module, got {type(teacher.net).__name__}")
    space = env.action_space
    discrete = isinstance(space, gym.spaces.Discrete)
    if discrete != (teacher.action == "argmax"):
        kind = "discrete" if discrete else "continuous"
        raise ValueError(f"a teacher acting by {teacher.action!r} cannot act in {env_id}, "
                         f"which has {kind} actions")
    obs_size = int(np.prod(env.observation_space.shape))
    act_size = int(space.n) if discrete else int(np.prod(space.shape))
    try:
        with torch.no_grad():
            out = teacher.net(torch.zeros(1, obs_size))
    except RuntimeError as exc:
        raise ValueError(f"teacher net does not fit {env_id}: it must take {obs_size} inputs "
                         f"({str(exc).splitlines()[0]})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, act_size):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"teacher net does not fit {env_id}: it must give {act_size} outputs "
                         f"for one observation, got {shape}")
    return obs_size, act_size, discrete


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, str | bytes) or not isinstance(hidden, Sequence):
        raise TypeError(f"hidden must be a sequence of layer widths, got {hidden!r}")
    for width in hidden:
        if isinstance(width, bool) or not isinstance(width, int | np.integer):
            raise TypeError(f"hidden widths must be integers, got {width!r} in {list(hidden)}")
        if width < 1:
            raise ValueError(f"hidden widths must be >= 1, got {width} in {list(hidden)}")
    return tuple(int(w) for w in hidden)


def _settings(config: DistillConfig | None, overrides: dict) -> DistillConfig:
    if config is not None and not isinstance(config, DistillConfig):
        raise TypeError(f"config must be a DistillConfig, got {type(config).__name__}")
    names = [f.name for f in dataclasses.fields(DistillConfig)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"distillation has no setting {unknown[0]!r} (settings: "
                         f"{', '.join(names)})")
    return dataclasses.replace(config or DistillConfig(), **overrides)


class StateReplay:
    """A ring buffer of the most recent states (normalised observations) and their targets.

    Attributes:
        x: the states, ``(capacity, obs_size)``; rows ``size`` on are unused.
        y: the teacher's targets for them, ``(capacity, out_size)``.
        size: how many rows hold states.
    """

    def __init__(self, capacity: int, obs_size: int, out_size: int) -> None:
        self.x = np.zeros((capacity, obs_size), dtype=np.float32)
        self.y = np.zeros((capacity, out_size), dtype=np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Append rows of states and targets, overwriting the oldest when full."""
        for start in range(0, len(x), self.capacity):
            xs, ys = x[start : start + self.capacity], y[start : start + self.capacity]
            n = len(xs)
            first = min(n, self.capacity - self.pos)
            self.x[self.pos : self.pos + first], self.y[self.pos : self.pos + first] = (
                xs[:first], ys[:first])
            self.x[: n - first], self.y[: n - first] = xs[first:], ys[first:]
            self.pos = (self.pos + n) % self.capacity
            self.size = min(self.size + n, self.capacity)


def distill(teacher: Policy, env_id: str, hidden: Sequence[int], seed: int = 0,
            config: DistillConfig | None = None,
            progress: Callable[[int, int], None] | None = None, **overrides) -> DistillResult:
    """Train a student MLP of hidden widths ``hidden`` to act like ``teacher`` (DAgger).

    See the module docstring for the data, the schedule and the losses. ``teacher`` is never
    changed.

    Args:
        teacher: the policy to imitate; its ``net`` may be any (compressed) network, its
            ``action`` rule picks the loss (``"argmax"``: KL to the sharpened softmax of its
            Q-values; ``"mean"``: squared error of its mean), its observation normaliser (frozen)
            feeds teacher and student alike.
        env_id: the environment (a Gymnasium id or one of the poster's names).
        hidden: the student's hidden widths, e.g. ``(64, 64)``; empty gives one linear layer.
        seed: seeds the student's initial weights, the action mixing, the minibatches and the
            episodes.
        config: the settings (default :class:`DistillConfig`).
        progress: called with (environment steps done, environment steps in all) after each
            training round; it changes nothing of the result.
        **overrides: settings replacing those of ``config`` (fields of :class:`DistillConfig`).

    Returns:
        The student network and policy, the costs and the final loss.

    Raises:
        TypeError: for a teacher that is not a :class:`Policy`, hidden widths that are not
            integers, or a config of another type.
        ValueError: for a bad setting or seed, an unknown environment, or a teacher that does
            not fit the environment.
    """
    hidden = _check_hidden(hidden)
    cfg = _settings(config, overrides)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    env_id = resolve_env_id(env_id, notify=False)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    envs = [make_env(env_id) for _ in range(cfg.num_envs)]
    try:
        obs_size, out_size, discrete = _check_teacher(teacher, envs[0], env_id)
        set_seed(seed)
        activation = cfg.activation or teacher_activation(teacher.net)
        student = student_mlp([obs_size, *hidden, out_size], activation)
        run = _dagger(teacher, student, envs, cfg, seed, discrete, progress)
    finally:
        for env in envs:
            env.close()
    return DistillResult(
        net=student,
        policy=dataclasses.replace(teacher, net=student),
        env_steps=run["env_steps"],
        gradient_steps=run["gradient_steps"],
        cpu_seconds=time.process_time() - cpu_start,
        wall_seconds=time.perf_counter() - wall_start,
        final_loss=run["final_loss"],
        agreement=run["agreement"],
        curve=run["curve"],
    )


def _action_bounds(teacher: Policy, env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """The bounds the rollouts clip continuous actions to: the teacher's, else the space's."""
    if teacher.action_low is not None and teacher.action_high is not None:
        return (np.asarray(teacher.action_low, dtype=np.float32),
                np.asarray(teacher.action_high, dtype=np.float32))
    space = env.action_space
    return space.low.astype(np.float32), space.high.astype(np.float32)


def _dagger(teacher: Policy, student: nn.Module, envs: list[gym.Env], cfg: DistillConfig,
            seed: int, discrete: bool,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """The DAgger loop: roll out the mixture, label, replay, train ``student`` in place."""
    n_envs = len(envs)
    normalize = teacher.obs_norm
    low, high = (None, None) if discrete else _action_bounds(teacher, envs[0])
    low_t = None if low is None else torch.from_numpy(low)
    high_t = None if high is None else torch.from_numpy(high)
    out_size = envs[0].action_space.n if discrete else low.shape[0]
    replay = StateReplay(cfg.replay_size, int(np.prod(envs[0].observation_space.shape)),
                         int(out_size))
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr, fused=True)
    rng = np.random.default_rng([seed, DISTILL_SEED_BASE])
    beta_steps = cfg.beta_fraction * cfg.env_steps
    curve: dict[str, list] = {"episode_end_step": [], "episode_return": []}

    first_seed = DISTILL_SEED_BASE + n_envs * seed
    obs = np.stack([env.reset(seed=first_seed + i)[0] for i, env in enumerate(envs)])
    returns = np.zeros(n_envs)
    steps = updates = 0
    next_round = cfg.train_freq
    while steps < cfg.env_steps:
        # One step of the first n environments (fewer than all only at the end of the budget).
        n = min(n_envs, cfg.env_steps - steps)
        x = obs[:n] if normalize is None else normalize(obs[:n])
        x = np.asarray(x, dtype=np.float32)
        with torch.no_grad():
            xt = torch.from_numpy(x)
            teacher_out = teacher.net(xt)
            student_out = student(xt)
        if discrete:
            target = F.log_softmax(teacher_out / cfg.tau, dim=-1)
            chosen = torch.where(torch.from_numpy(rng.random(n) < _beta(steps, beta_steps)),
                                 teacher_out.argmax(-1), student_out.argmax(-1))
            actions: list = chosen.tolist()
        else:
            target = teacher_out
            mix = torch.from_numpy(rng.random(n) < _beta(steps, beta_steps))[:, None]
            actions = list(np.clip(torch.where(mix, teacher_out, student_out).numpy(), low, high))
        replay.add(x, target.numpy())
        for i in range(n):
            ob, reward, terminated, truncated, _ = envs[i].step(actions[i])
            returns[i] += float(reward)
            if terminated or truncated:
                curve["episode_end_step"].append(steps + i + 1)
                curve["episode_return"].append(float(returns[i]))
                returns[i] = 0.0
                ob, _ = envs[i].reset()
            obs[i] = ob
        steps += n

        if steps >= next_round or steps == cfg.env_steps:
            next_round = (steps // cfg.train_freq + 1) * cfg.train_freq
            due = cfg.gradient_steps * steps // cfg.env_steps
            for _ in range(due - updates):
                idx = rng.integers(0, replay.size, size=cfg.batch_size)
                loss = distillation_loss(student(torch.from_numpy(replay.x[idx])),
                                         torch.from_numpy(replay.y[idx]), discrete, low_t,
                                         high_t)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            updates = max(updates, due)
            if progress is not None:
                progress(steps, cfg.env_steps)

    final_loss, agreement = _replay_loss(student, replay, discrete, low_t, high_t)
    return {"env_steps": steps, "gradient_steps": updates, "final_loss": final_loss,
            "agreement": agreement, "curve": curve}


def _beta(step: int, beta_steps: float) -> float:
    """The probability that the teacher acts after ``step`` environment steps."""
    return max(0.0, 1.0 - step / beta_steps) if beta_steps > 0 else 0.0


def _replay_loss(student: nn.Module, replay: StateReplay, discrete: bool,
                 low: torch.Tensor | None, high: torch.Tensor | None) -> tuple[float, float | None]:
    """The loss over the whole replay and, for discrete actions, the greedy agreement."""
    total, agree = 0.0, 0
    with torch.no_grad():
        for start in range(0, replay.size, LOSS_ROWS):
            end = min(start + LOSS_ROWS, replay.size)
            x, y = torch.from_numpy(replay.x[start:end]), torch.from_numpy(replay.y[start:end])
            out = student(x)
            total += float(distillation_loss(out, y, discrete, low, high)) * len(x)
            if discrete:
                agree += int((out.argmax(-1) == y.argmax(-1)).sum())
    size = max(replay.size, 1)
    return total / size, (agree / size if discrete else None)
