"""A checkpoint's policy under any spec: compression, distillation, fine-tuning, in one call.

:func:`compressed_policy` is what a sweep job and ``rlcomp compress`` run. A spec's steps apply
left to right; the pure ones through :func:`~rlcomp.compress.registry.compress`, and the two that
need the environment here:

- ``distill=WxW`` (at most one): the steps before it compress the teacher; the student
  (:func:`rlcomp.retrain.distill.distill`) replaces the network, and the steps after it
  compress the student.
- ``prune=P,schedule=gradual`` (the last step): with a fine-tuning budget it runs while
  fine-tuning (:class:`rlcomp.retrain.finetune.GradualPruning`); without one it prunes at once.

Fine-tuning (a budget of environment steps) then continues the agent's own algorithm from the
result (:func:`rlcomp.retrain.finetune.finetune`). Distillation and fine-tuning are seeded with
``seed`` (in a sweep, the training seed, so each agent's student is the same in every sweep).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rlcomp.checkpoint import Checkpoint, policy_from_checkpoint
from rlcomp.compress.registry import as_specs, compress
from rlcomp.compress.specs import DistillSpec, Spec
from rlcomp.policy import Policy
from rlcomp.retrain.distill import DistillConfig, distill
from rlcomp.retrain.finetune import finetune, split_gradual

GRADIENT_STEPS_PER_ENV_STEP = 1 / 8
"""Gradient steps of a distillation per environment step of its budget."""


@dataclass(frozen=True)
class CompressedPolicy:
    """A compressed policy and what making it cost.

    Attributes:
        policy: the checkpoint's policy with its network replaced (a student keeps the teacher's
            observation normaliser and action rule).
        costs: ``compress_cpu_seconds`` (the pure steps), and ``distill_*`` / ``finetune_*``
            figures (environment and gradient steps, CPU and wall seconds) where they ran.
    """

    policy: Policy
    costs: dict[str, float] = field(default_factory=dict)


def split_distill(specs: tuple[Spec, ...]) -> tuple[tuple[Spec, ...], DistillSpec | None,
                                                     tuple[Spec, ...]]:
    """The steps before a distillation, the distillation (None without one), the steps after.

    Raises:
        ValueError: for more than one distillation step.
    """
    at = [i for i, s in enumerate(specs) if isinstance(s, DistillSpec)]
    if len(at) > 1:
        raise ValueError("a spec may distil once (it has several distill steps)")
    if not at:
        return specs, None, ()
    return specs[:at[0]], specs[at[0]], specs[at[0] + 1:]


def check_spec(specs: tuple[Spec, ...]) -> None:
    """Refuse a spec no pipeline can run (two distillations, a gradual step not last).

    Raises:
        ValueError: naming the problem.
    """
    split_distill(specs)
    split_gradual(specs)


def compressed_policy(ckpt: Checkpoint, spec: Spec | tuple[Spec, ...] | str, *, seed: int,
                      finetune_steps: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> CompressedPolicy:
    """``ckpt``'s policy compressed by ``spec`` (distillation included), then fine-tuned.

    Args:
        ckpt: the trained agent.
        spec: a spec, a composition or its text.
        seed: seeds distillation and fine-tuning.
        finetune_steps: environment steps of fine-tuning after the spec (0: none).
        progress: a distillation's progress, called with (environment steps done, in all).

    Raises:
        ValueError: for a spec no pipeline can run or a step that does not apply.
    """
    specs = as_specs(spec)
    check_spec(specs)
    before, student, after = split_distill(specs)
    head, tail = (before, after) if student is not None else ((), specs)
    tail, gradual = split_gradual(tail) if finetune_steps else (tail, None)
    policy = policy_from_checkpoint(ckpt)
    costs: dict[str, float] = {}
    started = time.process_time()
    net = compress(policy.net, head)
    compress_seconds = time.process_time() - started
    if student is not None:
        config = DistillConfig(env_steps=student.steps, tau=student.tau,
                               gradient_steps=max(1, round(student.steps
                                                           * GRADIENT_STEPS_PER_ENV_STEP)))
        result = distill(dataclasses.replace(policy, net=net), ckpt.env_id, student.sizes,
                         seed=seed, config=config, progress=progress)
        costs.update({f"distill_{k}": float(v) for k, v in result.to_dict().items()
                      if v is not None})
        net = result.net
    started = time.process_time()
    net = compress(net, tail)
    costs["compress_cpu_seconds"] = compress_seconds + time.process_time() - started
    if finetune_steps:
        tuned = finetune(ckpt, net, finetune_steps, seed=seed, gradual=gradual)
        net = tuned.net
        costs.update({f"finetune_{k}": float(v) for k, v in tuned.to_dict().items()})
    return CompressedPolicy(dataclasses.replace(policy, net=net.eval()), costs)
