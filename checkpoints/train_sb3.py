"""Train the committed Stable-Baselines3 policy that `rlcomp choose` is shown on (chapter 07).

    python checkpoints/train_sb3.py [--seed 0] [--steps 100000] [--out checkpoints/sb3]

writes ``OUT/LunarLander-v3__sb3-dqn__SEED.zip`` (SB3's own file, as a user would bring it) and
``.json`` beside it: the settings, the provenance (commit, command, seed, CPU, library versions)
and the policy's return over 100 evaluation episodes (seeds 0..99) as ``rlcomp`` reads and
evaluates it, through :func:`rlcomp.imports.load_foreign` (never unpickling the zip).

The settings are the RL Baselines3 Zoo's tuned DQN hyperparameters for LunarLander
(``hyperparams/dqn.yml`` of DLR-RM/rl-baselines3-zoo): 1e5 steps, learning rate 6.3e-4, batch 128,
buffer 50,000, no learning start, gamma 0.99, target update every 250 steps, a train step every 4
environment steps with as many gradient steps, exploration falling to 0.1 over the first 12%, a
256x256 MLP. Training is pinned to one thread; the same seed gives the same zip on one machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import stable_baselines3
import torch

from rlcomp.checkpoint import policy_from_checkpoint
from rlcomp.files import atomic_write
from rlcomp.imports import load_foreign
from rlcomp.provenance import provenance
from rlcomp.rollout import evaluate_policy

ENV_ID = "LunarLander-v3"

SETTINGS = {"learning_rate": 6.3e-4, "batch_size": 128, "buffer_size": 50_000,
            "learning_starts": 0, "gamma": 0.99, "target_update_interval": 250,
            "train_freq": 4, "gradient_steps": -1, "exploration_fraction": 0.12,
            "exploration_final_eps": 0.1, "policy_kwargs": {"net_arch": [256, 256]}}
"""RL Baselines3 Zoo's DQN hyperparameters for LunarLander (see the module docstring)."""


def main() -> None:
    """Train, save the zip, evaluate the import and write the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--out", default="checkpoints/sb3")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{ENV_ID}__sb3-dqn__{args.seed}"
    model = stable_baselines3.DQN("MlpPolicy", ENV_ID, seed=args.seed, device="cpu",
                                  **SETTINGS)
    model.learn(total_timesteps=args.steps)
    model.save(stem)
    ckpt = load_foreign(stem.with_suffix(".zip"), ENV_ID)
    result = evaluate_policy(policy_from_checkpoint(ckpt), ENV_ID, 100, 0)
    record = {"env_id": ENV_ID, "algo": "sb3-dqn", "seed": args.seed, "steps": args.steps,
              "settings": SETTINGS, "settings_source": "DLR-RM/rl-baselines3-zoo "
              "hyperparams/dqn.yml (LunarLander)", "digest": ckpt.digest,
              "evaluation": {"episodes": 100, "seed": 0,
                             "mean_return": float(np.mean(result.returns)),
                             "returns": [float(r) for r in result.returns]},
              "provenance": provenance(sys.argv)}
    atomic_write(stem.with_suffix(".json"), json.dumps(record, indent=1).encode())
    print(json.dumps({"zip": str(stem.with_suffix(".zip")),
                      "mean_return": record["evaluation"]["mean_return"]}))


if __name__ == "__main__":
    main()
