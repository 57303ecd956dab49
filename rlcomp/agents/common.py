"""What the agents share: evaluation seeds, run names, training records and provenance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from rlcomp.provenance import git_commit, provenance

__all__ = ["git_commit", "provenance"]  # provenance lives in the core; re-exported here

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
