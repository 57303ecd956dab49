"""Evaluation throughput: ``evaluate_policy`` against the environment alone and a sequential loop.

Runs the same 100 LunarLander-v3 episodes (seeds 0..99) of ``checkpoints/LunarLander-v3__ddqn__0``
three ways, pinned to one core with one PyTorch thread:

- ours: ``rlcomp.rollout.evaluate_policy`` (64 environments in lockstep, one batched forward
  pass a step, of 64 rows or of a smaller checked size when fewer environments are left; resident
  memory sampled every 50 ms);
- env limit: one environment stepping the same episodes with the actions of our run replayed, no
  policy at all (the most any evaluation of these episodes could reach);
- sequential: the poster-style loop, one environment, one batch-1 forward pass a step, episodes one
  after the other.

The machine is shared, so each way runs ``--repeats`` times, interleaved, and the best run of each
counts (the median is printed too). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.envs import configure_torch, make_env
from rlcomp.policy import Policy
from rlcomp.probes.resources import pin_to_one_core
from rlcomp.rollout import BATCH_ROWS, evaluate_policy


def record_actions(policy: Policy, env_id: str, episodes: int, seed: int) -> tuple[list, list]:
    """Each episode's actions and return, one episode at a time, with our arithmetic.

    The forward pass has ``BATCH_ROWS`` rows like ``evaluate_policy``'s, so the actions are the ones
    our run took (checked against its returns by the caller).
    """
    env = make_env(env_id)
    buf = np.zeros((BATCH_ROWS, *env.observation_space.shape), dtype=env.observation_space.dtype)
    actions, returns = [], []
    with torch.inference_mode():
        for i in range(episodes):
            buf[0] = env.reset(seed=seed + i)[0]
            taken, total, done = [], 0.0, False
            while not done:
                action = policy.act(buf)[0].item()
                obs, reward, terminated, truncated, _ = env.step(action)
                buf[0] = obs
                taken.append(action)
                total += float(reward)
                done = terminated or truncated
            actions.append(taken)
            returns.append(total)
    env.close()
    return actions, returns


def env_limit(env_id: str, actions: list, seed: int) -> tuple[float, int, list]:
    """Wall seconds, steps and returns of one environment replaying ``actions``, no policy."""
    start = time.perf_counter()
    env = make_env(env_id)
    steps, returns = 0, []
    for i, taken in enumerate(actions):
        env.reset(seed=seed + i)
        total = 0.0
        for action in taken:
            total += float(env.step(action)[1])
        steps += len(taken)
        returns.append(total)
    env.close()
    return time.perf_counter() - start, steps, returns


def sequential(policy: Policy, env_id: str, episodes: int, seed: int) -> tuple[float, int]:
    """The poster-style loop: wall seconds and steps, one env and one batch-1 pass a step."""
    start = time.perf_counter()
    env = make_env(env_id)
    steps = 0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            action = policy.act(obs[None])[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            steps += 1
            done = terminated or truncated
    env.close()
    return time.perf_counter() - start, steps


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/LunarLander-v3__ddqn__0")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    core = pin_to_one_core()
    configure_torch(1)
    ckpt = load_checkpoint(args.checkpoint)
    policy = policy_from_checkpoint(ckpt)
    env_id = ckpt.env_id
    evaluate_policy(policy, env_id, 4, args.seed)  # warm-up

    ours_result = evaluate_policy(policy, env_id, args.episodes, args.seed)
    actions, returns = record_actions(policy, env_id, args.episodes, args.seed)
    if returns != ours_result.returns:
        raise SystemExit("the recorded actions do not reproduce evaluate_policy's episodes")

    runs: dict[str, list[float]] = {"ours": [], "env_limit": [], "sequential": []}
    steps = {"ours": ours_result.env_steps}
    fastest = ours_result
    for _ in range(args.repeats):
        result = evaluate_policy(policy, env_id, args.episodes, args.seed)
        runs["ours"].append(result.env_steps / result.eval_seconds)
        if result.eval_seconds < fastest.eval_seconds:
            fastest = result
        seconds, n, replayed = env_limit(env_id, actions, args.seed)
        if replayed != ours_result.returns:
            raise SystemExit("replaying the actions did not reproduce the episodes")
        runs["env_limit"].append(n / seconds)
        steps["env_limit"] = n
        seconds, n = sequential(policy, env_id, args.episodes, args.seed)
        runs["sequential"].append(n / seconds)
        steps["sequential"] = n

    best = {k: max(v) for k, v in runs.items()}
    median = {k: statistics.median(v) for k, v in runs.items()}
    print(f"{args.episodes} episodes of {ckpt.name} on core {core}, 1 torch thread, "
          f"best of {args.repeats} (median in brackets)")
    for key, label in (("ours", "evaluate_policy"), ("env_limit", "env limit (replay)"),
                       ("sequential", "sequential (poster)")):
        print(f"  {label:22s} {best[key]:8.0f} steps/s  ({median[key]:8.0f})  "
              f"{steps[key]} steps")
    print(f"  ours / env limit      {best['ours'] / best['env_limit']:.3f}  "
          f"({median['ours'] / median['env_limit']:.3f})")
    print(f"  ours / sequential     {best['ours'] / best['sequential']:.3f}  "
          f"({median['ours'] / median['sequential']:.3f})")
    us = 1e6 / fastest.env_steps
    other = fastest.eval_seconds - fastest.policy_seconds - fastest.env_seconds
    print(f"  our fastest run, us/step: policy.act {fastest.policy_seconds * us:.1f}, "
          f"env.step+reset {fastest.env_seconds * us:.1f}, rest {other * us:.1f} (env limit "
          f"{1e6 / best['env_limit']:.1f}); policy share {fastest.policy_share:.3f}, "
          f"CPU {fastest.cpu_percent:.0f} %, RAM {fastest.ram_percent:.2f} % (mean of "
          f"{fastest.resource_samples} samples, peak {fastest.rss_peak_bytes / 1e6:.0f} MB)")
    print(json.dumps({
        "ratio_vs_env_limit": best["ours"] / best["env_limit"],
        "speedup_vs_sequential": best["ours"] / best["sequential"],
        "ours_steps_per_s": best["ours"],
        "env_limit_steps_per_s": best["env_limit"],
        "sequential_steps_per_s": best["sequential"],
        "median_ratio_vs_env_limit": median["ours"] / median["env_limit"],
        "median_speedup_vs_sequential": median["ours"] / median["sequential"],
        "episodes": args.episodes,
        "repeats": args.repeats,
        "policy_share": fastest.policy_share,
        "resource_samples": fastest.resource_samples,
        "us_per_step": {"policy": fastest.policy_seconds * us, "env": fastest.env_seconds * us,
                        "rest": other * us, "env_limit": 1e6 / best["env_limit"]},
    }))


if __name__ == "__main__":
    main()
