"""What the agents share: evaluation seeds, run names, training records and the loops' hook points.

Each algorithm has one training loop (:func:`rlcomp.agents.ddqn.ddqn_loop`,
:func:`rlcomp.agents.pg.pg_loop`); training and fine-tuning both run it, and change what they need
through :class:`Hooks`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rlcomp.policy import Policy
from rlcomp.rollout import evaluate_policy

SELECTION_SEED_BASE = 1_000_000
"""Episodes that pick the best snapshot during training use seeds from here on.

The final evaluation uses seeds ``final_eval_seed + i`` for ``i < final_eval_episodes``; the configs
refuse any overlap, so the reported number carries no selection bias.
"""

ProgressFn = Callable[[int, float | None], None]
"""Called as ``progress(env_steps_done, mean_recent_return)`` while an agent trains."""


def run_name(env_id: str, algo: str, seed: int) -> str:
    """The name of a training run and of its checkpoint files: ``env__algo__seed``."""
    return f"{env_id}__{algo}__{seed}"


def check_disjoint_seeds(final_seed: int, final_episodes: int, eval_episodes: int) -> None:
    """Refuse final-evaluation seeds that overlap the snapshot-selection seeds."""
    if final_seed < 0:
        raise ValueError(f"final_eval_seed must be >= 0, got {final_seed}")
    if final_seed + final_episodes > SELECTION_SEED_BASE:
        raise ValueError(
            f"final evaluation seeds {final_seed}..{final_seed + final_episodes - 1} must stay "
            f"below the selection seeds, which start at {SELECTION_SEED_BASE}"
        )
    if eval_episodes < 1:
        raise ValueError(f"eval_episodes must be >= 1, got {eval_episodes}")


@dataclass
class TrainResult:
    """What a training run produced: tensors to save and the facts for the checkpoint's JSON."""

    tensors: dict[str, torch.Tensor]
    architecture: dict[str, list[int]]
    curve: dict[str, list]
    selected_step: int
    final_eval: dict
    train_steps: int
    wall_seconds: float
    cpu_seconds: float
    extra: dict = field(default_factory=dict)


def nothing(*args: object) -> None:
    """The hook that does nothing (the default of every :class:`Hooks` field but ``target``)."""


@dataclass(frozen=True)
class Hooks:
    """What a caller changes in an algorithm's training loop; every field has a default.

    Training sets ``log`` (evaluations, the kept snapshot, progress); fine-tuning sets
    ``after_optimizer_step`` (pruned weights back to zero) and ``target`` (the compressed target
    network). The other inputs of a loop are its arguments: the starting network(s), the number of
    environment steps and the settings (a config).
    """

    after_optimizer_step: Callable[[], None] = nothing
    """Called right after every optimizer step: re-apply masks or projections here."""
    target: Callable[[nn.Module], nn.Module] = copy.deepcopy
    """Double DQN: makes the target network from the online network once, at the start. The loop
    then refreshes it with ``target.load_state_dict(online.state_dict())``, so it keeps the
    structure this gave it. Policy gradient has no target network."""
    log: Callable[[int, dict[str, list]], None] = nothing
    """What gets logged: called as ``log(env_steps, curve)`` after every environment step (Double
    DQN) or after every rollout's update (policy gradient), with the environment steps so far (all
    environments together) and the ended episodes, ``curve["episode_end_step"]`` and
    ``curve["episode_return"]``."""


NO_HOOKS = Hooks()
"""The loops' defaults: nothing logged, nothing re-applied, the target a plain copy."""


@dataclass
class LoopResult:
    """What one run of a training loop did.

    Attributes:
        env_steps: environment steps taken (all environments together).
        updates: optimizer steps taken.
        curve: the ended episodes: ``episode_end_step`` (environment steps when each ended) and
            ``episode_return`` (its undiscounted return).
    """

    env_steps: int
    updates: int
    curve: dict[str, list]


class SnapshotSelection:
    """Training's evaluations on the selection seeds and the best snapshot they found.

    Evaluation round ``k`` runs episodes seeded from ``SELECTION_SEED_BASE + k * episodes`` on; a
    snapshot that scores at least as well as the best so far replaces it.

    Attributes:
        curve: ``eval_step`` and ``eval_mean_return`` of every evaluation, in order.
        best: the kept snapshot (``initial`` until an evaluation keeps one).
        best_return: its mean return on the selection seeds.
        best_step: the environment steps when it was taken.
    """

    def __init__(self, env_id: str, episodes: int, initial: object = None) -> None:
        self.env_id, self.episodes = env_id, episodes
        self.curve: dict[str, list] = {"eval_step": [], "eval_mean_return": []}
        self.best, self.best_return, self.best_step = initial, -np.inf, 0

    def evaluate(self, policy: Policy, step: int, snapshot: Callable[[], object]) -> None:
        """Evaluate ``policy`` on the next selection seeds; keep ``snapshot()`` if it is best."""
        seed = SELECTION_SEED_BASE + len(self.curve["eval_step"]) * self.episodes
        result = evaluate_policy(policy, self.env_id, self.episodes, seed=seed)
        mean_return = float(np.mean(result.returns))
        self.curve["eval_step"].append(step)
        self.curve["eval_mean_return"].append(mean_return)
        if mean_return >= self.best_return:
            self.best, self.best_return, self.best_step = snapshot(), mean_return, step
