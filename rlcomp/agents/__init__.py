"""Agents: the training algorithms, one readable file each, and the training entry point.

``ddqn`` (Double DQN, discrete actions), ``pg`` (policy gradient with a value baseline, GAE and an
optional PPO clip, continuous actions), ``common`` (what both share: seeds, run names, the
training record, the loops' :class:`Hooks`) and ``train`` (trains either agent and writes its
checkpoint). The policy they produce and the checkpoint format live in the core
(:mod:`rlcomp.policy`, :mod:`rlcomp.checkpoint`).

Each algorithm has one training loop, :func:`ddqn_loop` and :func:`pg_loop`. Training runs it from
new networks; fine-tuning (:mod:`rlcomp.retrain`) runs the same loop from a compressed network and
changes what it needs through the hook points: ``after_optimizer_step``, ``target`` (Double DQN's
target network) and ``log``.
"""

from rlcomp.agents.common import Hooks, LoopResult
from rlcomp.agents.ddqn import DDQNConfig, ddqn_loop, double_dqn_target, train_ddqn
from rlcomp.agents.pg import PGConfig, gae, pg_loop, train_pg
from rlcomp.agents.train import CONFIGS, make_config, train_and_save

__all__ = [
    "CONFIGS",
    "DDQNConfig",
    "Hooks",
    "LoopResult",
    "PGConfig",
    "ddqn_loop",
    "double_dqn_target",
    "gae",
    "make_config",
    "pg_loop",
    "train_and_save",
    "train_ddqn",
    "train_pg",
]
