"""One sweep job, run in a worker: load, compress, (fine-tune), evaluate and measure.

Fine-tuning (``finetune: {steps: N}``) continues the agent's own algorithm for N environment steps
with the fine-tuning seed equal to the training seed, so each training seed's agent is fine-tuned
once per budget, identically in every sweep.

``run_job`` returns plain data (metrics as floats, extra as JSON-ready values) so any executor can
ship it back to the driver, which alone writes the store.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from pathlib import Path

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.compress import compress
from rlcomp.compress.storage import compressed_file_bytes
from rlcomp.envs import configure_torch, set_seed
from rlcomp.experiments.sweep import Job
from rlcomp.probes.size import model_size, theoretical_bytes
from rlcomp.provenance import provenance
from rlcomp.retrain.finetune import finetune
from rlcomp.rollout import evaluate_policy


@functools.cache
def _provenance() -> dict:
    return provenance()


class JobError(RuntimeError):
    """A job that cannot run as planned (for example, its checkpoint changed since planning)."""


def run_job(job: Job) -> dict:
    """Measure one job; returns ``{"metrics": {name: float}, "extra": {...}}``."""
    configure_torch()
    started = time.perf_counter()
    ckpt = load_checkpoint(job.checkpoint)
    if ckpt.digest != job.checkpoint_digest:
        raise JobError(f"{job.checkpoint} changed since the sweep was planned (digest differs)")
    policy = policy_from_checkpoint(ckpt)
    set_seed(job.eval_seed)
    net = compress(policy.net, job.spec)
    finetune_costs: dict = {}
    if job.finetune:
        tuned = finetune(ckpt, net, job.finetune["steps"], seed=job.train_seed)
        net = tuned.net
        finetune_costs = {f"finetune_{k}": v for k, v in tuned.to_dict().items()}
    policy = dataclasses.replace(policy, net=net.eval())

    result = evaluate_policy(policy, ckpt.env_id, job.probe["episodes"], job.eval_seed)
    summary = result.summary()
    metrics = {
        "return_mean": summary["mean_return"], "return_std": summary["std_return"],
        "return_iqm": summary["iqm_return"], "return_min": summary["min_return"],
        "return_max": summary["max_return"],
        "episode_length_mean": sum(result.lengths) / len(result.lengths),
        "eval_seconds": result.eval_seconds, "env_steps": result.env_steps,
        "seconds_per_step": result.seconds_per_step, "policy_share": result.policy_share,
        "cpu_percent": result.cpu_percent, "cpu_seconds_per_step": result.cpu_seconds_per_step,
        "ram_percent": result.ram_percent, "rss_bytes": result.rss_bytes,
    }
    metrics.update(finetune_costs)
    metrics.update({k: float(v) for k, v in model_size(policy.net).to_dict().items()})
    blob = compressed_file_bytes(policy, {"env_id": ckpt.env_id, "algo": ckpt.algo,
                                          "spec": job.spec, "source": ckpt.name,
                                          "source_digest": ckpt.digest})
    metrics["bytes"] = len(blob)
    metrics["theoretical_bytes"] = theoretical_bytes(policy.net)

    if job.probe.get("latency"):
        from rlcomp.probes.latency import eager_latency, onnx_latency

        for lat in (eager_latency(policy), onnx_latency(policy)):
            metrics[f"latency_{lat.runtime}_median_s"] = lat.median_s
            metrics[f"latency_{lat.runtime}_p95_s"] = lat.p95_s
    if job.probe.get("isolated_memory"):
        from rlcomp.probes.resources import isolated_resident_bytes

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.rlc.safetensors"
            path.write_bytes(blob)
            memory = isolated_resident_bytes(path)
        metrics.update({f"isolated_{k}": v for k, v in memory.metrics().items()})

    extra = {"returns": summary["returns"], "lengths": summary["lengths"],
             "job_seconds": time.perf_counter() - started, "provenance": _provenance()}
    return {"metrics": {k: float(v) for k, v in metrics.items()}, "extra": extra}
