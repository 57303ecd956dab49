"""Retraining a compressed policy: fine-tuning now; distillation (``distill.py``) will join.

``finetune.py``: ``finetune(ckpt, net, steps, seed)`` continues the agent's own algorithm from a
compressed network while the compression holds (pruned weights stay zero, factors stay factors,
quantization stays on, and Double DQN's target network is the compressed network's copy).
Retraining never copies a training loop: it runs :func:`rlcomp.agents.ddqn.ddqn_loop` or
:func:`rlcomp.agents.pg.pg_loop` through their hook points (:class:`rlcomp.agents.common.Hooks`).
This layer sits above ``agents`` and ``compress`` and below ``probes`` and ``experiments``.

Import from the modules (``from rlcomp.retrain.finetune import finetune``): the package re-exports
nothing, so ``rlcomp.retrain.finetune`` is always the module, never the function.
"""
