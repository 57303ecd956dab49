"""Choose's measurements in the results store: every one is looked up by its key before it is made.

Three kinds of result, each one row of the store (:class:`~rlcomp.experiments.store.ResultStore`)
under the store's five key fields:

- an **evaluation block**: the episode returns of one policy on a block of seeds. Key: the
  teacher's digest, the candidate's canonical spec (``dense``, ``random`` or a compression), its
  fine-tuning (``{"steps": N}`` or none), the block's first seed, and the probe
  ``{"choose": 1, "episodes": n}`` plus the retraining seed for a spec that trains (distillation,
  fine-tuning), and the pool size for the random policy (its action draws depend on it). The
  returns and lengths are in the row's ``extra``.
- a **build**: a candidate's sizes and costs (model bytes, file bytes, multiply-accumulates, ONNX
  latency, what training it cost). Key: the same fields with eval seed 0 and the probe
  ``{"choose": 1, "build": 1}`` (plus the retraining seed). When the candidate trains, ``extra``
  also holds its compressed file (``model_file``, base64 of the ``.rlc.safetensors`` bytes, a
  format that is never unpickled), so a later run loads the student instead of training it again.
- **teacher data** (:meth:`Ledger.teacher_data`): the recorded observations and the sensitivity
  pass, under spec ``dense`` with the probe ``{"choose": 1, NAME: settings}``.

So a second run with the same teacher, specs, seeds and blocks finds every result and computes
nothing but the final artifact. Keys hold what determines a result; like every row of the store,
they do not hold the code's version.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rlcomp.checkpoint import Checkpoint
from rlcomp.experiments.store import RANDOM_POLICY, ResultStore, job_key

PROBE = {"choose": 1}
"""The probe settings every row of choose starts with (so no sweep job shares a key with it)."""

RANDOM_POOL = 64
"""Environments of a random-policy evaluation (its action draws depend on the pool)."""


@dataclass
class LedgerCounts:
    """What one run found in the store and what it had to compute."""

    blocks_reused: int = 0
    blocks_run: int = 0
    episodes_run: int = 0
    builds_reused: int = 0
    builds_run: int = 0

    def to_dict(self) -> dict:
        return dict(vars(self))


class Ledger:
    """Reads and writes choose's rows of one store, for one teacher and retraining seed.

    Args:
        store: the results store (opened for writing).
        ckpt: the teacher; its digest is the first key field.
        retrain_seed: seed of distillation and fine-tuning (a key field of specs that train).
    """

    def __init__(self, store: ResultStore, ckpt: Checkpoint, retrain_seed: int) -> None:
        self.store, self.ckpt, self.retrain_seed = store, ckpt, retrain_seed
        self.counts = LedgerCounts()

    def _probe(self, trains: bool, **settings) -> dict:
        probe = {**PROBE, **settings}
        if trains:
            probe["retrain_seed"] = self.retrain_seed
        return probe

    @staticmethod
    def _finetune(finetune_steps: int) -> dict:
        return {"steps": finetune_steps} if finetune_steps else {}

    def block_key(self, spec: str, finetune_steps: int, trains: bool, seed: int,
                  episodes: int) -> tuple[str, dict, dict]:
        """``(key, finetune, probe)`` of an evaluation block."""
        extra = {"num_envs": RANDOM_POOL} if spec == RANDOM_POLICY else {}
        probe = self._probe(trains, episodes=episodes, **extra)
        finetune = self._finetune(finetune_steps)
        return job_key(self.ckpt.digest, spec, finetune, seed, probe), finetune, probe

    def build_key(self, spec: str, finetune_steps: int, trains: bool) -> tuple[str, dict, dict]:
        """``(key, finetune, probe)`` of a build."""
        probe = self._probe(trains, build=1)
        finetune = self._finetune(finetune_steps)
        return job_key(self.ckpt.digest, spec, finetune, 0, probe), finetune, probe

    def _put(self, spec: str, finetune: dict, seed: int, probe: dict,
             metrics: Mapping[str, float], extra: Mapping) -> bool:
        return self.store.put(self.ckpt.digest, spec, finetune, seed, probe,
                       checkpoint=self.ckpt.name, env=self.ckpt.env_id, algo=self.ckpt.algo,
                       train_seed=int(self.ckpt.meta.get("seed", 0)), metrics=metrics,
                       extra=extra)

    def stored_block(self, spec: str, finetune_steps: int, trains: bool, seed: int,
                     episodes: int) -> list[float] | None:
        """The stored returns of a block, or None."""
        key, _, _ = self.block_key(spec, finetune_steps, trains, seed, episodes)
        if not self.store.has(key):
            return None
        return [float(r) for r in self.store.extra(key)["returns"]]

    def put_block(self, spec: str, finetune_steps: int, trains: bool, seed: int,
                  returns: list[float], lengths: list[int], seconds: float) -> None:
        """Store a block's returns (and count the episodes as run)."""
        _, finetune, probe = self.block_key(spec, finetune_steps, trains, seed, len(returns))
        metrics = {"return_mean": sum(returns) / len(returns), "episodes": float(len(returns)),
                   "env_steps": float(sum(lengths)), "eval_seconds": seconds}
        if self._put(spec, finetune, seed, probe, metrics,
                     {"returns": [float(r) for r in returns],
                      "lengths": [int(n) for n in lengths]}):
            self.counts.blocks_run += 1
            self.counts.episodes_run += len(returns)

    def stored_build(self, spec: str, finetune_steps: int,
                     trains: bool) -> tuple[dict, bytes | None] | None:
        """``(metrics, model file bytes or None)`` of a stored build, or None."""
        key, _, _ = self.build_key(spec, finetune_steps, trains)
        if not self.store.has(key):
            return None
        extra = self.store.extra(key)
        blob = extra.get("model_file")
        return dict(extra["metrics"]), None if blob is None else base64.b64decode(blob)

    def put_build(self, spec: str, finetune_steps: int, trains: bool, metrics: Mapping[str, float],
                  model_file: bytes | None) -> None:
        """Store a build's metrics, and the model file of one that trains (counted if new)."""
        _, finetune, probe = self.build_key(spec, finetune_steps, trains)
        extra: dict = {"metrics": dict(metrics)}
        if model_file is not None:
            extra["model_file"] = base64.b64encode(model_file).decode("ascii")
        if self._put(spec, finetune, 0, probe, metrics, extra):
            self.counts.builds_run += 1

    def block(self, spec: str, finetune_steps: int, trains: bool, seed: int, episodes: int,
              run: Callable[[], tuple[list[float], list[int], float]]) -> list[float]:
        """A block's returns: from the store, or ``run()`` (returns, lengths, seconds), stored."""
        stored = self.stored_block(spec, finetune_steps, trains, seed, episodes)
        if stored is not None:
            self.counts.blocks_reused += 1
            return stored
        returns, lengths, seconds = run()
        if len(returns) != episodes:
            raise ValueError(f"{spec}: a block of {episodes} episodes gave {len(returns)} returns")
        self.put_block(spec, finetune_steps, trains, seed, returns, lengths, seconds)
        return [float(r) for r in returns]

    def build(self, spec: str, finetune_steps: int, trains: bool,
              run: Callable[[], tuple[dict, bytes | None]]) -> tuple[dict, bytes | None, bool]:
        """``(metrics, model file, reused)``: from the store, or ``run()``, stored."""
        stored = self.stored_build(spec, finetune_steps, trains)
        if stored is not None:
            self.counts.builds_reused += 1
            return (*stored, True)
        metrics, model_file = run()
        self.put_build(spec, finetune_steps, trains, metrics, model_file)
        return metrics, model_file, False

    def teacher_data(self, name: str, settings: Mapping, run: Callable[[], object]) -> object:
        """A JSON value made from the teacher alone, from the store or ``run()``, stored.

        Recorded observations and the sensitivity pass are kept this way: a row of spec
        ``dense``, eval seed 0 and the probe ``{"choose": 1, name: settings}``, the value in its
        ``extra`` under ``name``.
        """
        probe = {**PROBE, name: dict(settings)}
        key = job_key(self.ckpt.digest, "dense", {}, 0, probe)
        if self.store.has(key):
            return self.store.extra(key)[name]
        value = run()
        self._put("dense", {}, 0, probe, {"stored": 1.0}, {name: value})
        return value
