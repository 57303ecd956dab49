"""Making a candidate's policy and measuring its costs, with the results store as the cache.

A pure compression is remade from the teacher whenever it is needed (milliseconds). A candidate
that trains is made once: a distilled student (``distill=WxW``, the part of the spec up to the
distillation) is trained by :func:`rlcomp.retrain.pipeline.compressed_policy` with the retraining
seed and kept in the store as its compressed file (:mod:`rlcomp.choose.ledger`); the steps after
it (``+quant=8``) compress the student as loaded from that file, so the first run and every later
one compute from the same bits. A fine-tuned candidate is kept the same way, whole.

The costs of a candidate (:func:`costs`): ``model_bytes`` (the compressed file's tensor payload,
DESIGN.md's model bytes), ``bytes`` (the whole file), ``params``, ``nonzero_weights``,
``macs_per_decision`` and ``macs_nonzero_per_decision`` (:mod:`rlcomp.probes.cost`),
``latency_onnx_median_s`` (batch-1 decision in ONNX Runtime, the runtime a deployment would use,
:func:`rlcomp.probes.latency.onnx_latency`), and what making it cost in training
(``distill_*``, ``finetune_*``; a student's are shared by every candidate built on it).

Before a candidate that trains is made, :meth:`Builder.planned_costs` measures the same sizes on
a stand-in of the same shape (an untrained student, or the spec without fine-tuning), so the
search can order and skip expensive candidates by their objective before paying for them.
"""

from __future__ import annotations

import dataclasses

import torch

from rlcomp.checkpoint import Checkpoint, policy_from_checkpoint
from rlcomp.choose.candidates import Candidate
from rlcomp.choose.ledger import Ledger
from rlcomp.compress.export import in_features, out_features
from rlcomp.compress.registry import compress
from rlcomp.compress.specs import DistillSpec, parse_spec
from rlcomp.compress.storage import compressed_file_bytes, compressed_from_bytes
from rlcomp.experiments.jobs import payload_bytes
from rlcomp.policy import Policy
from rlcomp.probes.cost import decision_cost
from rlcomp.probes.latency import onnx_latency
from rlcomp.probes.size import model_size
from rlcomp.retrain.distill import student_mlp, teacher_activation
from rlcomp.retrain.pipeline import compressed_policy

LATENCY_REPEATS = 300
"""Timed decisions of a candidate's ONNX latency (after 50 untimed ones)."""


def file_bytes(ckpt: Checkpoint, policy: Policy, spec: str, finetune_steps: int = 0) -> bytes:
    """The compressed file of ``policy`` made from ``ckpt`` by ``spec`` (and fine-tuning)."""
    meta = {"env_id": ckpt.env_id, "algo": ckpt.algo, "spec": spec, "source": ckpt.name,
            "source_digest": ckpt.digest}
    if finetune_steps:
        meta["finetune_steps"] = str(finetune_steps)
    return compressed_file_bytes(policy, meta)


def costs(ckpt: Checkpoint, policy: Policy, spec: str, finetune_steps: int = 0) -> dict:
    """The sizes, multiply-accumulates and ONNX latency of a policy (see the module docstring)."""
    blob = file_bytes(ckpt, policy, spec, finetune_steps)
    size = model_size(policy.net)
    cost = decision_cost(policy.net)
    latency = onnx_latency(policy, repeats=LATENCY_REPEATS, warmup=50)
    return {"model_bytes": float(payload_bytes(blob)), "bytes": float(len(blob)),
            "params": float(size.params), "nonzero_weights": float(size.nonzero_weights),
            **cost.metrics(), "latency_onnx_median_s": latency.median_s}


class Builder:
    """Makes candidates' policies for one teacher, training each student at most once.

    Args:
        ckpt: the teacher.
        ledger: the store rows of this teacher and retraining seed.
    """

    def __init__(self, ckpt: Checkpoint, ledger: Ledger) -> None:
        self.ckpt, self.ledger = ckpt, ledger
        self.teacher = policy_from_checkpoint(ckpt)
        self._trained: dict[tuple[str, int], tuple[Policy, dict]] = {}

    @property
    def seed(self) -> int:
        return self.ledger.retrain_seed

    def _trained_policy(self, spec: str, finetune_steps: int) -> tuple[Policy, dict]:
        """A spec that trains (a student, or a fine-tuned spec), from the store or trained now.

        Returns the policy decoded from its compressed file and its build metrics.
        """
        key = (spec, finetune_steps)
        if key not in self._trained:
            made: dict = {}

            def run() -> tuple[dict, bytes]:
                result = compressed_policy(self.ckpt, spec, seed=self.seed,
                                           finetune_steps=finetune_steps)
                blob = file_bytes(self.ckpt, result.policy, spec, finetune_steps)
                made["policy"] = compressed_from_bytes(blob, spec).policy
                metrics = costs(self.ckpt, made["policy"], spec, finetune_steps)
                return {**metrics, **{k: float(v) for k, v in result.costs.items()}}, blob

            metrics, blob, _ = self.ledger.build(spec, finetune_steps, True, run)
            policy = made.get("policy") or compressed_from_bytes(blob, spec).policy
            self._trained[key] = (policy, metrics)
        return self._trained[key]

    def is_stored(self, candidate: Candidate) -> bool:
        """Whether the store holds what making ``candidate`` needs to train (or it trains not)."""
        if candidate.finetune_steps:
            return self.ledger.stored_build(candidate.spec, candidate.finetune_steps,
                                            True) is not None
        student = candidate.student
        return student is None or (student, 0) in self._trained or \
            self.ledger.stored_build(student, 0, True) is not None

    def policy(self, candidate: Candidate) -> Policy:
        """The candidate's policy (training its student or fine-tuning at most once)."""
        if candidate.finetune_steps:
            return self._trained_policy(candidate.spec, candidate.finetune_steps)[0]
        student = candidate.student
        if student is None:
            return dataclasses.replace(self.teacher, net=compress(self.teacher.net,
                                                                  candidate.spec).eval())
        base, _ = self._trained_policy(student, 0)
        return dataclasses.replace(base, net=compress(base.net, candidate.tail).eval())

    def training_costs(self, candidate: Candidate) -> dict:
        """What training the candidate (or its student) cost, from its build metrics."""
        if not candidate.trains:
            return {}
        spec, steps = (candidate.spec, candidate.finetune_steps) if candidate.finetune_steps \
            else (candidate.student, 0)
        metrics = self._trained_policy(spec, steps)[1]
        return {k: v for k, v in metrics.items() if k.startswith(("distill_", "finetune_"))}

    def build(self, candidate: Candidate) -> tuple[dict, bool]:
        """``(costs, reused)`` of a candidate: its build row, from the store or made now."""
        def run() -> tuple[dict, None]:
            policy = self.policy(candidate)
            return {**costs(self.ckpt, policy, candidate.spec, candidate.finetune_steps),
                    **self.training_costs(candidate)}, None

        metrics, _, reused = self.ledger.build(candidate.spec, candidate.finetune_steps,
                                               candidate.trains, run)
        return metrics, reused

    def stored_costs(self, candidate: Candidate) -> dict | None:
        """The candidate's stored build metrics, or None."""
        stored = self.ledger.stored_build(candidate.spec, candidate.finetune_steps,
                                          candidate.trains)
        return None if stored is None else stored[0]

    def planned_costs(self, candidate: Candidate) -> dict:
        """The candidate's sizes measured on a stand-in of its shape, without training.

        A student's stand-in is an untrained network of its widths (seeded, so the same every
        run); a fine-tuned spec's is the spec without fine-tuning.
        """
        stored = self.stored_costs(candidate)
        if stored is not None:
            return stored
        if candidate.finetune_steps:
            policy = compressed_policy(self.ckpt, candidate.spec, seed=self.seed).policy
        elif candidate.student is not None:
            hidden = next(s for s in parse_spec(candidate.student) if isinstance(s, DistillSpec))
            torch.manual_seed(0)
            teacher = self.teacher.net
            net = student_mlp([in_features(teacher), *hidden.sizes, out_features(teacher)],
                              teacher_activation(teacher))
            policy = dataclasses.replace(self.teacher, net=compress(net, candidate.tail).eval())
        else:
            policy = self.policy(candidate)
        return costs(self.ckpt, policy, candidate.spec, candidate.finetune_steps)
