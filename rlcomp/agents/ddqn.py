"""Double DQN (van Hasselt et al., 2016) for discrete-action environments, read top to bottom.

The online network chooses the next action and the target network scores it
(:func:`double_dqn_target`); everything else is DQN (Mnih et al., 2015): a replay buffer, an
epsilon-greedy schedule, the Huber loss and a periodically copied target network. The run keeps the
snapshot with the best greedy evaluation, measured on seeds disjoint from those of the final
100-episode evaluation.

:func:`ddqn_loop` is the one training loop; :func:`train_ddqn` runs it from a new network and
fine-tuning (:mod:`rlcomp.retrain.finetune`) from a compressed one, both through its hook points
(:class:`rlcomp.agents.common.Hooks`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlcomp.agents.common import (
    NO_HOOKS,
    Hooks,
    LoopResult,
    ProgressFn,
    SnapshotSelection,
    TrainResult,
    check_disjoint_seeds,
)
from rlcomp.envs import make_env, resolve_env_id, set_seed
from rlcomp.nets import as_tensor, mlp
from rlcomp.policy import Policy
from rlcomp.rollout import evaluate_policy


@dataclass(frozen=True)
class DDQNConfig:
    """Hyperparameters of a Double DQN run."""

    env_id: str = "LunarLander-v3"
    """Gymnasium environment id (discrete actions)."""
    seed: int = 0
    """Seed of the network initialisation, exploration, replay sampling and training episodes."""
    total_steps: int = 300_000
    """Environment steps to train for."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the Q-network."""
    lr: float = 6.3e-4
    """Adam learning rate."""
    buffer_size: int = 100_000
    """Replay buffer capacity in transitions."""
    batch_size: int = 128
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    learning_starts: int = 5_000
    """Environment steps of pure exploration before the first gradient step."""
    train_freq: int = 4
    """Environment steps between rounds of gradient steps."""
    gradient_steps: int = 2
    """Gradient steps per round."""
    target_update_interval: int = 1_000
    """Environment steps between copies of the online network into the target network."""
    eps_start: float = 1.0
    """Initial exploration probability."""
    eps_end: float = 0.05
    """Final exploration probability."""
    eps_fraction: float = 0.15
    """Fraction of total_steps over which exploration decays linearly to eps_end."""
    max_grad_norm: float = 10.0
    """Gradient norm clip."""
    eval_interval: int = 10_000
    """Environment steps between greedy evaluations that select the kept snapshot."""
    eval_episodes: int = 20
    """Episodes per selection evaluation (seeds from 1,000,000 on)."""
    final_eval_episodes: int = 100
    """Episodes of the final evaluation of the kept snapshot."""
    final_eval_seed: int = 0
    """First seed of the final evaluation (episode i uses final_eval_seed + i)."""

    def __post_init__(self) -> None:
        positive = ("total_steps", "buffer_size", "batch_size", "train_freq", "gradient_steps",
                    "target_update_interval", "eval_interval", "eval_episodes",
                    "final_eval_episodes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {self.learning_starts}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("eps_start", "eps_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.eps_fraction <= 1.0:
            raise ValueError(f"eps_fraction must be in (0, 1], got {self.eps_fraction}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive widths, got {self.hidden}")
        check_disjoint_seeds(self.final_eval_seed, self.final_eval_episodes, self.eval_episodes)


def double_dqn_target(
    online: nn.Module,
    target: nn.Module,
    rewards: torch.Tensor,
    next_obs: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Double DQN target ``r + gamma * (1 - terminated) * Q_target(s', argmax_a Q_online(s', a))``.

    The online network chooses the next action, the target network scores it. Episodes cut by a time
    limit are not terminated: their target still bootstraps.
    """
    with torch.no_grad():
        next_actions = online(next_obs).argmax(dim=1, keepdim=True)
        next_q = target(next_obs).gather(1, next_actions).squeeze(1)
        return rewards + gamma * (1.0 - terminated) * next_q


class ReplayBuffer:
    """A fixed-capacity ring buffer of transitions, sampled uniformly with its own generator."""

    def __init__(self, capacity: int, obs_dim: int, seed: int) -> None:
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.rng = np.random.default_rng(seed)

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, float(terminated)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        idx = self.rng.integers(0, self.size, size=batch_size)
        return (
            torch.from_numpy(self.obs[idx]),
            torch.from_numpy(self.actions[idx]),
            torch.from_numpy(self.rewards[idx]),
            torch.from_numpy(self.next_obs[idx]),
            torch.from_numpy(self.terminated[idx]),
        )


def gradient_step(
    q_net: nn.Module,
    target_net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, ...],
    gamma: float,
    max_grad_norm: float,
) -> torch.Tensor:
    """One Adam step on the Huber loss between ``Q(s, a)`` and the Double DQN target.

    Args:
        q_net: the online network, the one ``optimizer`` updates.
        target_net: the target network that scores the online network's next actions.
        optimizer: the optimizer of ``q_net``'s parameters.
        batch: ``(obs, actions, rewards, next_obs, terminated)`` as :meth:`ReplayBuffer.sample`
            returns it.
        gamma: discount factor.
        max_grad_norm: the gradient's norm is clipped to this.

    Returns:
        The loss before the step (detached).
    """
    b_obs, b_act, b_rew, b_next, b_term = batch
    y = double_dqn_target(q_net, target_net, b_rew, b_next, b_term, gamma)
    q = q_net(b_obs).gather(1, b_act[:, None]).squeeze(1)
    loss = F.smooth_l1_loss(q, y)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(q_net.parameters(), max_grad_norm)
    optimizer.step()
    return loss.detach()


def epsilon_at(step: int, config: DDQNConfig) -> float:
    """Exploration probability after ``step`` environment steps (linear decay, then constant)."""
    decay_steps = config.eps_fraction * config.total_steps
    frac = min(1.0, step / decay_steps)
    return config.eps_start + frac * (config.eps_end - config.eps_start)


def epsilon_greedy(q_net: nn.Module, obs: np.ndarray, epsilon: float,
                   rng: np.random.Generator, n_actions: int) -> int:
    """A random action with probability ``epsilon`` (drawn from ``rng``), else the greedy one."""
    if rng.random() < epsilon:
        return int(rng.integers(n_actions))
    with torch.no_grad():
        return int(q_net(as_tensor(obs[None]))[0].argmax())


def greedy_policy(q_net: nn.Module) -> Policy:
    """The greedy policy of a Q-network."""
    return Policy(net=q_net, action="argmax")


def ddqn_loop(
    config: DDQNConfig,
    env: gym.Env,
    q_net: nn.Module,
    steps: int,
    episode_seed: int,
    hooks: Hooks = NO_HOOKS,
) -> LoopResult:
    """Double DQN's training loop: ``steps`` steps of ``env`` while ``q_net`` learns (in place).

    Training and fine-tuning both run this loop. Each environment step picks an epsilon-greedy
    action, stores the transition in the replay buffer and, every ``train_freq`` steps after
    ``learning_starts``, takes ``gradient_steps`` gradient steps on sampled batches; every
    ``target_update_interval`` steps the target network becomes a copy of the online one.

    Args:
        config: the run's settings; ``seed`` seeds exploration (``seed + 1``) and replay sampling,
            ``total_steps`` sets the exploration schedule (:func:`epsilon_at`).
        env: the environment (discrete actions); the loop resets it and leaves it open.
        q_net: the starting online network, trained in place; the optimizer is a fresh Adam.
        steps: environment steps to take.
        episode_seed: the seed of the first episode's reset (later episodes continue its RNG).
        hooks: ``target`` makes the target network from ``q_net``, ``after_optimizer_step`` runs
            after each gradient step, ``log`` after each environment step.
    """
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
    target_net = hooks.target(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.lr, fused=True)
    buffer = ReplayBuffer(min(config.buffer_size, steps), obs_dim, seed=config.seed)
    explore_rng = np.random.default_rng(config.seed + 1)
    curve: dict[str, list] = {"episode_end_step": [], "episode_return": []}
    updates = 0

    obs, _ = env.reset(seed=episode_seed)
    episode_return = 0.0
    for step in range(1, steps + 1):
        action = epsilon_greedy(q_net, obs, epsilon_at(step, config), explore_rng, n_actions)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        obs, episode_return = next_obs, episode_return + float(reward)
        if terminated or truncated:
            curve["episode_end_step"].append(step)
            curve["episode_return"].append(episode_return)
            obs, _ = env.reset()
            episode_return = 0.0

        if step > config.learning_starts and step % config.train_freq == 0:
            for _ in range(config.gradient_steps):
                batch = buffer.sample(config.batch_size)
                gradient_step(q_net, target_net, optimizer, batch, config.gamma,
                              config.max_grad_norm)
                hooks.after_optimizer_step()
                updates += 1
        if step % config.target_update_interval == 0:
            target_net.load_state_dict(q_net.state_dict())
        hooks.log(step, curve)
    return LoopResult(env_steps=steps, updates=updates, curve=curve)


def train_ddqn(config: DDQNConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Train a Double DQN agent and evaluate its best snapshot on the final evaluation seeds."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    env_id = resolve_env_id(config.env_id, notify=False)
    set_seed(config.seed)
    env = make_env(env_id)
    if not hasattr(env.action_space, "n"):
        raise ValueError(f"Double DQN needs discrete actions; {env_id} has {env.action_space}")
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
    sizes = [obs_dim, *config.hidden, n_actions]
    q_net = mlp(sizes)
    selection = SnapshotSelection(env_id, config.eval_episodes,
                                  initial=copy.deepcopy(q_net.state_dict()))

    def log(step: int, curve: dict[str, list]) -> None:
        # Evaluate the greedy policy on selection seeds now and then; keep the best snapshot.
        if step % config.eval_interval == 0 or step == config.total_steps:
            selection.evaluate(greedy_policy(q_net), step,
                               lambda: copy.deepcopy(q_net.state_dict()))
        if progress is not None and (step % 1000 == 0 or step == config.total_steps):
            recent = curve["episode_return"][-20:]
            progress(step, float(np.mean(recent)) if recent else None)

    run = ddqn_loop(config, env, q_net, config.total_steps, episode_seed=config.seed,
                    hooks=Hooks(log=log))
    env.close()

    q_net.load_state_dict(selection.best)
    final = evaluate_policy(greedy_policy(q_net), env_id, config.final_eval_episodes,
                            seed=config.final_eval_seed)
    return TrainResult(
        tensors={f"net.{k}": v.detach().clone() for k, v in q_net.state_dict().items()},
        architecture={"net": sizes},
        curve={**run.curve, **selection.curve},
        selected_step=selection.best_step,
        final_eval=final.summary(),
        train_steps=config.total_steps,
        wall_seconds=time.perf_counter() - wall_start,
        cpu_seconds=time.process_time() - cpu_start,
        extra={"config": asdict(config)},
    )
