"""One sweep job, run in a worker: load, compress (distil), (fine-tune), evaluate and measure.

The spec runs through :func:`rlcomp.retrain.pipeline.compressed_policy`: a distillation step
trains its student with the training seed, so each agent's student is the same in every sweep.

A job of the spec ``random`` evaluates uniformly random actions instead (the anchor of normalized
returns). The optional probes: latencies (eager and ONNX), the isolated footprint and the policy's
time per decision over the dense policy's; the last two only for naive models (fine-tuning keeps
the layers and storage they depend on). The multiply-accumulates and weight bytes of a decision
are always counted, and so are the sizes of the compressed file: ``bytes``, the whole file, and
``model_bytes``, its tensor payload (the file without its safetensors header: everything the
policy needs, as stored; DESIGN.md's *model bytes*).

Fine-tuning (``finetune: {steps: N}``) continues the agent's own algorithm for N environment steps
with the fine-tuning seed equal to the training seed, so each training seed's agent is fine-tuned
once per budget, identically in every sweep.

``run_job`` returns plain data (metrics as floats, extra as JSON-ready values) so any executor can
ship it back to the driver, which alone writes the store.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

from rlcomp.checkpoint import Checkpoint, load_checkpoint, policy_from_checkpoint
from rlcomp.compress.storage import compressed_file_bytes
from rlcomp.envs import configure_torch, set_seed
from rlcomp.experiments.store import RANDOM_POLICY
from rlcomp.experiments.sweep import Job
from rlcomp.policy import RandomPolicy
from rlcomp.probes.cost import decision_cost
from rlcomp.probes.size import model_size, theoretical_bytes
from rlcomp.provenance import provenance
from rlcomp.retrain.pipeline import compressed_policy
from rlcomp.rollout import EvalResult, evaluate_policy


@functools.cache
def _provenance() -> dict:
    return provenance()


def payload_bytes(blob: bytes) -> int:
    """The tensor payload of a safetensors file's bytes: the file without its header.

    The first 8 bytes hold the header's length (little-endian); the header follows them.
    """
    return len(blob) - 8 - int.from_bytes(blob[:8], "little")


class JobError(RuntimeError):
    """A job that cannot run as planned (for example, its checkpoint changed since planning)."""


def _return_metrics(result: EvalResult) -> dict[str, float]:
    summary = result.summary()
    return {"return_mean": summary["mean_return"], "return_std": summary["std_return"],
            "return_iqm": summary["iqm_return"], "return_min": summary["min_return"],
            "return_max": summary["max_return"],
            "episode_length_mean": sum(result.lengths) / len(result.lengths)}


def _random_job(job: Job, env_id: str, started: float) -> dict:
    """The returns of uniformly random actions over the job's evaluation episodes."""
    set_seed(job.eval_seed)
    policy = RandomPolicy.for_env(env_id, seed=job.eval_seed)
    result = evaluate_policy(policy, env_id, job.probe["episodes"], job.eval_seed)
    extra = {"returns": list(result.returns), "lengths": list(result.lengths),
             "job_seconds": time.perf_counter() - started, "provenance": _provenance()}
    return {"metrics": _return_metrics(result), "extra": extra}


def _policy_time(ckpt: Checkpoint, candidate: Path, tmp: Path,
                 footprint: bool) -> dict[str, float]:
    """The candidate's time per decision over the dense policy's (A/B in a fresh process).

    The dense policy is written in the same compact format as the candidate, so both load the
    same way; the process runs on this worker's core. With ``footprint``, the same process first
    measures the candidate's isolated footprint (``isolated_*`` metrics).
    """
    from rlcomp.probes.policy_time import policy_time_ratio

    dense = policy_from_checkpoint(ckpt)
    reference = tmp / "dense.rlc.safetensors"
    reference.write_bytes(compressed_file_bytes(dense, {
        "env_id": ckpt.env_id, "algo": ckpt.algo, "spec": "dense", "source": ckpt.name,
        "source_digest": ckpt.digest}))
    return policy_time_ratio(candidate, reference, env_id=ckpt.env_id,
                             footprint=footprint).metrics()


def run_job(job: Job) -> dict:
    """Measure one job; returns ``{"metrics": {name: float}, "extra": {...}}``."""
    configure_torch()
    started = time.perf_counter()
    ckpt = load_checkpoint(job.checkpoint)
    if ckpt.digest != job.checkpoint_digest:
        raise JobError(f"{job.checkpoint} changed since the sweep was planned (digest differs)")
    if job.spec == RANDOM_POLICY:
        return _random_job(job, ckpt.env_id, started)
    set_seed(job.eval_seed)
    made = compressed_policy(ckpt, job.spec, seed=job.train_seed,
                             finetune_steps=job.finetune["steps"] if job.finetune else 0)
    policy = made.policy

    result = evaluate_policy(policy, ckpt.env_id, job.probe["episodes"], job.eval_seed)
    summary = result.summary()
    metrics = {
        **_return_metrics(result),
        "eval_seconds": result.eval_seconds, "env_steps": result.env_steps,
        "seconds_per_step": result.seconds_per_step, "policy_share": result.policy_share,
        "cpu_percent": result.cpu_percent, "cpu_seconds_per_step": result.cpu_seconds_per_step,
        "ram_percent": result.ram_percent, "rss_bytes": result.rss_bytes,
        "rss_peak_bytes": result.rss_peak_bytes, "resource_samples": result.resource_samples,
    }
    metrics.update(made.costs)
    metrics.update({k: float(v) for k, v in model_size(policy.net).to_dict().items()})
    blob = compressed_file_bytes(policy, {"env_id": ckpt.env_id, "algo": ckpt.algo,
                                          "spec": job.spec, "source": ckpt.name,
                                          "source_digest": ckpt.digest})
    metrics["bytes"] = len(blob)
    metrics["model_bytes"] = payload_bytes(blob)
    metrics["theoretical_bytes"] = theoretical_bytes(policy.net)
    metrics.update(decision_cost(policy.net).metrics())

    if job.probe.get("latency"):
        from rlcomp.probes.latency import eager_latency, onnx_latency

        for lat in (eager_latency(policy), onnx_latency(policy)):
            metrics[f"latency_{lat.runtime}_median_s"] = lat.median_s
            metrics[f"latency_{lat.runtime}_p95_s"] = lat.p95_s
    # The footprint and the policy's time depend on the network's layers and storage, which
    # fine-tuning keeps: they are measured on the naive model of each spec only.
    if not job.finetune and (job.probe.get("isolated_memory") or job.probe.get("policy_time")):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.rlc.safetensors"
            path.write_bytes(blob)
            if job.probe.get("policy_time"):
                # one fresh process measures both (the footprint before the dense policy loads)
                metrics.update(_policy_time(ckpt, path, Path(tmp),
                                            footprint=bool(job.probe.get("isolated_memory"))))
            elif job.probe.get("isolated_memory"):
                from rlcomp.probes.resources import isolated_resident_bytes

                memory = isolated_resident_bytes(path)
                metrics.update({f"isolated_{k}": v for k, v in memory.metrics().items()})

    extra = {"returns": summary["returns"], "lengths": summary["lengths"],
             "job_seconds": time.perf_counter() - started, "provenance": _provenance()}
    return {"metrics": {k: float(v) for k, v in metrics.items()}, "extra": extra}
