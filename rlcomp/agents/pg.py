"""Policy gradient with a Gaussian policy for continuous actions, read top to bottom.

A state-independent log-std Gaussian policy and a separate value network learn from vectorized
rollouts with reward-to-go returns, a value baseline, GAE(lambda) (Schulman et al., 2016) and
per-minibatch advantage normalisation. ``clip=None`` optimises the vanilla policy-gradient loss
``-log pi(a|s) * A``; a number optimises PPO's clipped surrogate (Schulman et al., 2017).
Observations (and, for training only, rewards) are normalised by running statistics, as
Stable-Baselines3's ``VecNormalize`` does; the observation statistics are saved with the policy and
applied outside the network that gets compressed.

:func:`pg_loop` is the one training loop; :func:`train_pg` runs it from new networks and
fine-tuning (:mod:`rlcomp.retrain.finetune`) from a compressed policy, both through its hook points
(:class:`rlcomp.agents.common.Hooks`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
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
from rlcomp.envs import make_vec_env, resolve_env_id, set_seed
from rlcomp.nets import ObsNormalizer, RunningMeanStd, as_tensor, mlp
from rlcomp.policy import Policy
from rlcomp.rollout import evaluate_policy


@dataclass(frozen=True)
class PGConfig:
    """Hyperparameters of a policy-gradient run (defaults: PPO tuned for HalfCheetah)."""

    env_id: str = "HalfCheetah-v5"
    """Gymnasium environment id (continuous actions)."""
    seed: int = 0
    """Seed of the network initialisation, action sampling, minibatches and training episodes."""
    total_steps: int = 1_000_000
    """Environment steps budget (all environments together); whole rollouts that fit are run."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy and of the value network."""
    num_envs: int = 1
    """Environments stepped in lockstep during rollouts."""
    rollout_steps: int = 512
    """Steps per environment between updates."""
    lr: float = 2.0633e-5
    """Adam learning rate of policy and value network."""
    gamma: float = 0.98
    """Discount factor."""
    gae_lambda: float = 0.92
    """GAE lambda (1.0 gives reward-to-go minus the baseline)."""
    clip: float | None = 0.1
    """PPO clip range; none for the vanilla policy-gradient loss."""
    update_epochs: int = 20
    """Passes over each rollout."""
    minibatch_size: int = 64
    """Transitions per gradient step."""
    ent_coef: float = 0.000401762
    """Weight of the entropy bonus."""
    vf_coef: float = 0.58096
    """Weight of the value loss."""
    max_grad_norm: float = 0.8
    """Gradient norm clip."""
    log_std_init: float = -2.0
    """Initial log standard deviation of the Gaussian policy."""
    normalize_obs: bool = True
    """Normalise observations by running statistics (saved with the policy)."""
    normalize_reward: bool = True
    """Scale rewards by the running std of the discounted return (training only)."""
    eval_interval: int = 50_000
    """Environment steps between mean-action evaluations that select the kept snapshot."""
    eval_episodes: int = 10
    """Episodes per selection evaluation (seeds from 1,000,000 on)."""
    final_eval_episodes: int = 100
    """Episodes of the final evaluation of the kept snapshot."""
    final_eval_seed: int = 0
    """First seed of the final evaluation (episode i uses final_eval_seed + i)."""

    def __post_init__(self) -> None:
        positive = ("total_steps", "num_envs", "rollout_steps", "update_epochs", "minibatch_size",
                    "eval_interval", "eval_episodes", "final_eval_episodes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0 or none, got {self.clip}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive widths, got {self.hidden}")
        check_disjoint_seeds(self.final_eval_seed, self.final_eval_episodes, self.eval_episodes)
        if self.total_steps < self.rollout_steps * self.num_envs:
            raise ValueError(f"total_steps must be >= rollout_steps * num_envs = "
                             f"{self.rollout_steps * self.num_envs}, got {self.total_steps}")


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_values: np.ndarray,
        gamma: float, lam: float) -> np.ndarray:
    """Generalized advantage estimates ``A_t = sum_k (gamma lam)^k delta_{t+k}``.

    ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)``; episodes cut by a time limit
    are expected to carry their bootstrap ``gamma * V(s_final)`` in ``r_t`` already.

    Args:
        rewards: shaped ``(T, N)``.
        values: ``V(s_t)``, shaped ``(T, N)``.
        dones: shaped ``(T, N)``; 1 where an episode ended with step ``t``.
        last_values: ``V(s_T)`` of the observation after the rollout, shaped ``(N,)``.
        gamma: discount factor.
        lam: GAE lambda; 1 gives reward-to-go minus the values, 0 the one-step TD error.
    """
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards, dtype=np.float64)
    next_adv = np.zeros(rewards.shape[1:])
    next_values = np.asarray(last_values, dtype=np.float64)
    for t in reversed(range(T)):
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * nonterminal - values[t]
        next_adv = delta + gamma * lam * nonterminal * next_adv
        advantages[t] = next_adv
        next_values = values[t]
    return advantages


LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class GaussianPolicy(nn.Module):
    """``N(mean_net(obs), exp(log_std))``: an MLP for the mean and a state-independent log-std.

    ``mean_net``, if given, is used instead of a new MLP of ``sizes`` (fine-tuning a compressed
    policy); its output width must be ``sizes[-1]``.
    """

    def __init__(self, sizes: list[int], log_std_init: float,
                 mean_net: nn.Module | None = None) -> None:
        super().__init__()
        self.mean_net = mlp(sizes) if mean_net is None else mean_net
        self.log_std = nn.Parameter(torch.full((sizes[-1],), float(log_std_init)))

    def log_prob(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density of ``actions`` under ``N(mean, exp(log_std))``, summed over action dims."""
        z = (actions - mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - LOG_SQRT_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the Gaussian (the same for every state)."""
        return (self.log_std + 0.5 + LOG_SQRT_2PI).sum()


def mean_policy(policy: GaussianPolicy, obs_rms: RunningMeanStd | None,
                low: np.ndarray, high: np.ndarray) -> Policy:
    """The deterministic evaluation policy: the Gaussian's mean, clipped to the action bounds."""
    norm = ObsNormalizer(obs_rms.mean, obs_rms.var) if obs_rms is not None else None
    return Policy(net=policy.mean_net, action="mean", obs_norm=norm, action_low=low,
                  action_high=high)


@dataclass
class RolloutState:
    """What carries over from one rollout to the next while the environments keep stepping.

    Attributes:
        obs: normalised observations for the next step, shaped ``(N, obs_dim)``.
        discounted: running discounted return of each environment (for reward normalisation).
        episode_returns: undiscounted return so far of each running episode.
        ret_rms: running statistics of ``discounted``; none to leave rewards unscaled.
        curve: ``episode_end_step`` and ``episode_return`` lists that ended episodes append to.
        step: environment steps so far, all environments together.
    """

    obs: np.ndarray
    discounted: np.ndarray
    episode_returns: np.ndarray
    ret_rms: RunningMeanStd | None
    curve: dict[str, list]
    step: int = 0


@dataclass
class Rollout:
    """``T`` steps of ``N`` environments, arrays shaped ``(T, N, ...)``.

    Attributes:
        obs: normalised observations the actions were chosen in.
        actions: sampled (unclipped) actions.
        logp: their log-probabilities under the policy that sampled them.
        rewards: (normalised) rewards; time-limit cuts carry their bootstrap ``gamma * V``.
        dones: 1 where an episode ended with the step.
        values: ``V(obs)``.
        last_values: ``V`` of the observations after the last step, shaped ``(N,)``.
    """

    obs: np.ndarray
    actions: np.ndarray
    logp: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    values: np.ndarray
    last_values: np.ndarray


def collect_rollout(
    policy: GaussianPolicy,
    value_net: nn.Module,
    envs: gym.vector.VectorEnv,
    state: RolloutState,
    length: int,
    config: PGConfig,
    normalize: Callable[[np.ndarray], np.ndarray],
    obs_rms: RunningMeanStd | None,
    low: np.ndarray,
    high: np.ndarray,
) -> Rollout:
    """Step the environments ``length`` times with actions sampled from ``policy``.

    Args:
        policy: the Gaussian policy that acts.
        value_net: the value network (values and time-limit bootstraps).
        envs: the vector environment, ``SAME_STEP`` autoreset (:func:`rlcomp.envs.make_vec_env`).
        state: carried over between rollouts; updated in place.
        length: steps per environment.
        config: ``gamma`` (discounting and bootstraps) and ``num_envs`` are used.
        normalize: raw observations to the policy's inputs.
        obs_rms: observation statistics updated with every new observation, before
            ``normalize`` sees it; none to leave them as they are.
        low: lower action bounds the environment gets its actions clipped to.
        high: upper action bounds.
    """
    T, N = length, config.num_envs
    obs_dim, act_dim = state.obs.shape[1], low.shape[0]
    b_obs = np.zeros((T, N, obs_dim), dtype=np.float32)
    b_act = np.zeros((T, N, act_dim), dtype=np.float32)
    b_logp = np.zeros((T, N), dtype=np.float32)
    b_rew = np.zeros((T, N))
    b_done = np.zeros((T, N))
    b_val = np.zeros((T, N))
    ret_rms = state.ret_rms
    for t in range(T):
        with torch.no_grad():
            obs_t = as_tensor(state.obs)
            mean = policy.mean_net(obs_t)
            action = mean + policy.log_std.exp() * torch.randn_like(mean)
            b_logp[t] = policy.log_prob(mean, action).numpy()
            b_val[t] = value_net(obs_t).squeeze(-1).numpy()
        b_obs[t], b_act[t] = state.obs, action.numpy()
        raw_next, reward, terminated, truncated, info = envs.step(
            np.clip(action.numpy(), low, high))
        state.step += N
        done = terminated | truncated
        state.episode_returns += reward
        for i in np.flatnonzero(done):
            state.curve["episode_end_step"].append(state.step)
            state.curve["episode_return"].append(float(state.episode_returns[i]))
            state.episode_returns[i] = 0.0
        if obs_rms is not None:
            obs_rms.update(raw_next)
        if ret_rms is not None:
            state.discounted = state.discounted * config.gamma + reward
            ret_rms.update(state.discounted)
            reward = np.clip(reward / np.sqrt(ret_rms.var + 1e-8), -10, 10)
            state.discounted[done] = 0.0
        reward = np.asarray(reward, dtype=np.float64)
        cut = np.flatnonzero(truncated & ~terminated)
        if cut.size:
            final_obs = normalize(np.stack([info["final_obs"][i] for i in cut]))
            with torch.no_grad():
                bootstrap = value_net(as_tensor(final_obs)).squeeze(-1).numpy()
            reward[cut] += config.gamma * bootstrap
        b_rew[t], b_done[t] = reward, done
        state.obs = normalize(raw_next)
    with torch.no_grad():
        last_values = value_net(as_tensor(state.obs)).squeeze(-1).numpy()
    return Rollout(b_obs, b_act, b_logp, b_rew, b_done, b_val, last_values)


def update_on_rollout(
    policy: GaussianPolicy,
    value_net: nn.Module,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    rollout: Rollout,
    config: PGConfig,
    batch_rng: np.random.Generator,
    hooks: Hooks = NO_HOOKS,
) -> int:
    """GAE on the rollout, then ``update_epochs`` passes of shuffled minibatches.

    Args:
        policy: the Gaussian policy being trained.
        value_net: the value network being trained.
        optimizer: the optimizer of ``params``.
        params: every trained parameter (their gradient norm is clipped together).
        rollout: what :func:`collect_rollout` recorded.
        config: ``gamma``, ``gae_lambda``, ``update_epochs``, ``minibatch_size``, ``clip``,
            ``ent_coef``, ``vf_coef`` and ``max_grad_norm`` are used.
        batch_rng: shuffles the minibatches.
        hooks: ``after_optimizer_step`` runs after each gradient step.

    Returns:
        The number of gradient steps taken.
    """
    T, N, obs_dim = rollout.obs.shape
    act_dim = rollout.actions.shape[2]
    advantages = gae(rollout.rewards, rollout.values, rollout.dones, rollout.last_values,
                     config.gamma, config.gae_lambda)
    returns = advantages + rollout.values
    flat_obs = torch.from_numpy(rollout.obs.reshape(T * N, obs_dim))
    flat_act = torch.from_numpy(rollout.actions.reshape(T * N, act_dim))
    flat_logp = torch.from_numpy(rollout.logp.reshape(-1))
    flat_adv = torch.from_numpy(advantages.reshape(-1).astype(np.float32))
    flat_ret = torch.from_numpy(returns.reshape(-1).astype(np.float32))
    updates = 0
    for _ in range(config.update_epochs):
        order = batch_rng.permutation(T * N)
        for start in range(0, T * N, config.minibatch_size):
            idx = torch.from_numpy(order[start : start + config.minibatch_size])
            logp = policy.log_prob(policy.mean_net(flat_obs[idx]), flat_act[idx])
            adv = flat_adv[idx]
            if adv.numel() > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            if config.clip is None:
                policy_loss = -(logp * adv).mean()
            else:
                ratio = (logp - flat_logp[idx]).exp()
                clipped = ratio.clamp(1.0 - config.clip, 1.0 + config.clip)
                policy_loss = -torch.min(ratio * adv, clipped * adv).mean()
            value_loss = (value_net(flat_obs[idx]).squeeze(-1) - flat_ret[idx]).pow(2).mean()
            entropy = policy.entropy()
            loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, config.max_grad_norm, foreach=True)
            optimizer.step()
            hooks.after_optimizer_step()
            updates += 1
    return updates


def pg_loop(
    config: PGConfig,
    envs: gym.vector.VectorEnv,
    policy: GaussianPolicy,
    value_net: nn.Module,
    steps: int,
    normalize: Callable[[np.ndarray], np.ndarray],
    obs_rms: RunningMeanStd | None = None,
    hooks: Hooks = NO_HOOKS,
) -> LoopResult:
    """Policy gradient's training loop: rollouts of ``envs``, each followed by updates (in place).

    Training and fine-tuning both run this loop. It runs ``steps // (rollout_steps * num_envs)``
    whole rollouts of ``rollout_steps`` steps per environment, then one shorter rollout with the
    steps left over, if any (rounded down to a multiple of ``num_envs``). Training's budget is a
    multiple (whole rollouts only); a fine-tuning budget may end inside a rollout.

    Args:
        config: the run's settings; ``seed + 1`` seeds the minibatch order, ``normalize_reward``
            starts new reward statistics.
        envs: the vector environment (:func:`rlcomp.envs.make_vec_env`, already reset and seeded);
            the loop leaves it open.
        policy: the starting Gaussian policy, trained in place.
        value_net: the starting value network, trained in place. The optimizer is a fresh Adam
            over both.
        steps: environment steps to take, all environments together.
        normalize: raw observations to the networks' inputs.
        obs_rms: observation statistics updated with every new observation before ``normalize``
            sees it (training); none to leave the normalisation as it is (fine-tuning).
        hooks: ``after_optimizer_step`` runs after each gradient step, ``log`` after each
            rollout's update.
    """
    space = envs.single_action_space
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    params = list(policy.parameters()) + list(value_net.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, eps=1e-5, fused=True)
    batch_rng = np.random.default_rng(config.seed + 1)
    ret_rms = RunningMeanStd(()) if config.normalize_reward else None
    N = config.num_envs
    raw_obs = envs.initial_obs
    if obs_rms is not None:
        obs_rms.update(raw_obs)
    state = RolloutState(obs=normalize(raw_obs), discounted=np.zeros(N),
                         episode_returns=np.zeros(N), ret_rms=ret_rms,
                         curve={"episode_end_step": [], "episode_return": []})
    per_rollout = config.rollout_steps * N
    lengths = [config.rollout_steps] * (steps // per_rollout)
    if (steps % per_rollout) // N:
        lengths.append((steps % per_rollout) // N)

    updates = 0
    for length in lengths:
        # Collect a rollout of `length` steps in each of the N environments, then learn from it.
        rollout = collect_rollout(policy, value_net, envs, state, length, config, normalize,
                                  obs_rms, low, high)
        updates += update_on_rollout(policy, value_net, optimizer, params, rollout, config,
                                     batch_rng, hooks)
        hooks.log(state.step, state.curve)
    return LoopResult(env_steps=state.step, updates=updates, curve=state.curve)


def train_pg(config: PGConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Train a Gaussian policy by policy gradient and evaluate its best snapshot."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    env_id = resolve_env_id(config.env_id, notify=False)
    set_seed(config.seed)
    envs = make_vec_env(env_id, config.num_envs, seed=config.seed)
    space = envs.single_action_space
    if not hasattr(space, "low"):
        raise ValueError(f"policy gradient here needs continuous actions; {env_id} has {space}")
    obs_dim, act_dim = envs.single_observation_space.shape[0], space.shape[0]
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    sizes = [obs_dim, *config.hidden, act_dim]

    policy = GaussianPolicy(sizes, config.log_std_init)
    value_net = mlp([obs_dim, *config.hidden, 1])
    obs_rms = RunningMeanStd((obs_dim,)) if config.normalize_obs else None

    def normalize(o: np.ndarray) -> np.ndarray:
        if obs_rms is None:
            return o.astype(np.float32)
        return np.clip((o - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -10, 10).astype(
            np.float32)

    # Training runs whole rollouts only. After a rollout's update, once eval_interval steps have
    # passed and after the last rollout, evaluate the mean action on selection seeds; keep the best.
    per_rollout = config.rollout_steps * config.num_envs
    budget = config.total_steps // per_rollout * per_rollout
    selection = SnapshotSelection(env_id, config.eval_episodes)
    next_eval = config.eval_interval

    def log(step: int, curve: dict[str, list]) -> None:
        nonlocal next_eval
        if step >= next_eval or step == budget:
            next_eval += config.eval_interval
            selection.evaluate(mean_policy(policy, obs_rms, low, high), step,
                               lambda: (copy.deepcopy(policy.state_dict()),
                                        copy.deepcopy(value_net.state_dict()),
                                        copy.deepcopy(obs_rms)))
        if progress is not None:
            recent = curve["episode_return"][-10:]
            progress(step, float(np.mean(recent)) if recent else None)

    run = pg_loop(config, envs, policy, value_net, budget, normalize, obs_rms,
                  hooks=Hooks(log=log))
    envs.close()

    policy_state, value_state, obs_rms = selection.best
    policy.load_state_dict(policy_state)
    value_net.load_state_dict(value_state)
    final = evaluate_policy(mean_policy(policy, obs_rms, low, high), env_id,
                            config.final_eval_episodes, seed=config.final_eval_seed)
    tensors = {f"net.{k}": v.detach().clone() for k, v in policy.mean_net.state_dict().items()}
    tensors["log_std"] = policy.log_std.detach().clone()
    tensors.update({f"value_net.{k}": v.detach().clone()
                    for k, v in value_net.state_dict().items()})
    if obs_rms is not None:
        tensors["obs_norm.mean"] = torch.from_numpy(obs_rms.mean.copy())
        tensors["obs_norm.var"] = torch.from_numpy(obs_rms.var.copy())
    return TrainResult(
        tensors=tensors,
        architecture={"net": sizes, "value_net": [obs_dim, *config.hidden, 1]},
        curve={**run.curve, **selection.curve},
        selected_step=selection.best_step,
        final_eval=final.summary(),
        train_steps=run.env_steps,
        wall_seconds=time.perf_counter() - wall_start,
        cpu_seconds=time.process_time() - cpu_start,
        extra={"config": asdict(config), "action_bounds": [low.tolist(), high.tolist()]},
    )
