"""Agents: Double DQN, policy gradient, their checkpoints and the training entry point."""

from rlcomp.agents.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_paths,
    load_checkpoint,
    policy_from_checkpoint,
    save_checkpoint,
)
from rlcomp.agents.ddqn import DDQNConfig, double_dqn_target, train_ddqn
from rlcomp.agents.pg import PGConfig, gae, reward_to_go, train_pg
from rlcomp.agents.policy import Policy
from rlcomp.agents.train import CONFIGS, make_config, train_and_save

__all__ = [
    "CONFIGS",
    "Checkpoint",
    "CheckpointError",
    "DDQNConfig",
    "PGConfig",
    "Policy",
    "checkpoint_paths",
    "double_dqn_target",
    "gae",
    "load_checkpoint",
    "make_config",
    "policy_from_checkpoint",
    "reward_to_go",
    "save_checkpoint",
    "train_and_save",
    "train_ddqn",
    "train_pg",
]
