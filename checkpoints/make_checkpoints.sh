#!/usr/bin/env bash
# Retrain the committed agents with the recorded settings: three seeds per environment.
# Each run is pinned to one core (taskset) with one PyTorch thread, as the targets are per core.
# Usage: bash checkpoints/make_checkpoints.sh [ddqn|pg|all] [SEEDS...]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"; shift || true
seeds=("${@:-0 1 2}")
read -r -a seeds <<< "${seeds[*]}"
core="${RLCOMP_CORE:-0}"
run() { taskset -c "$core" .venv/bin/rlcomp train "$@" --out checkpoints --json; }
for seed in "${seeds[@]}"; do
  if [[ "$which" == all || "$which" == ddqn ]]; then
    run --env LunarLander-v3 --algo ddqn --seed "$seed"
  fi
  if [[ "$which" == all || "$which" == pg ]]; then
    run --env HalfCheetah-v5 --algo pg --seed "$seed"
  fi
done

# The vanilla policy-gradient comparison run (checkpoints/variants/vanilla, not used by the book's
# compression chapters): the same networks, rollouts and normalisation, the plain -log pi * A loss,
# every transition used once (one epoch of minibatches of 64), and Spinning Up's VPG policy learning
# rate 3e-4. Run with: bash checkpoints/make_checkpoints.sh vanilla
if [[ "$which" == vanilla ]]; then
  for seed in "${seeds[@]}"; do
    taskset -c "$core" .venv/bin/rlcomp train --env HalfCheetah-v5 --algo pg --seed "$seed" \
      --clip none --update-epochs 1 --lr 3e-4 --out checkpoints/variants/vanilla --json
  done
fi

# The Stable-Baselines3 DQN that chapter 07 runs `rlcomp choose` on, as a user would bring it
# (checkpoints/sb3/; RL Zoo's LunarLander settings; see checkpoints/train_sb3.py).
# Run with: bash checkpoints/make_checkpoints.sh sb3 [SEEDS...]
if [[ "$which" == sb3 ]]; then
  for seed in "${seeds[@]}"; do
    taskset -c "$core" .venv/bin/python checkpoints/train_sb3.py --seed "$seed"
  done
fi
