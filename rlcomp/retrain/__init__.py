"""Retraining a compressed policy: fine-tuning and distillation.

``finetune.py``: ``finetune(ckpt, net, steps, seed)`` continues the agent's own algorithm from a
compressed network while the compression holds (pruned weights stay zero, factors stay factors,
quantization stays on, and Double DQN's target network is the compressed network's copy).
Retraining never copies a training loop: it runs :func:`rlcomp.agents.ddqn.ddqn_loop` or
:func:`rlcomp.agents.pg.pg_loop` through their hook points (:class:`rlcomp.agents.common.Hooks`).

``distill.py``: ``distill(teacher, env_id, hidden, seed)`` trains a new, smaller MLP (a plain
``nn.Sequential`` that every compressor and the compressed-file format accept) to act like a
possibly compressed teacher policy, on states from its own rollouts labelled by the teacher
(DAgger): KL to the teacher's sharpened softmax for Double DQN, squared error of the mean for the
Gaussian policy. It is supervised learning, not an agent's algorithm, so it has its own loop.

This layer sits above ``agents`` and ``compress`` and below ``probes`` and ``experiments``.

Import from the modules (``from rlcomp.retrain.finetune import finetune``,
``from rlcomp.retrain.distill import distill``): the package re-exports nothing, so
``rlcomp.retrain.finetune`` and ``rlcomp.retrain.distill`` are always the modules, never the
functions.
"""
