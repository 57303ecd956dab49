"""Portable regression values of the committed agents: exact where all CPUs agree, banded elsewhere.

The committed seed-0 checkpoints are compressed with a few specs, and each compressed policy is
measured three ways (``benchmarks/record_regression.py`` records the values into
``tests/data/regression.json``; ``tests/test_portable_regression.py`` compares):

1. **Exact** (the same bits on every x86-64 CPU): the compressed file's size, its SHA-256 (for specs
   without low rank: pruning sorts magnitudes and int8 quantization divides and rounds, both exact
   IEEE operations, while a low-rank spec's SVD takes another code path on another CPU vendor, so
   its digest is not portable), the size measures of :mod:`rlcomp.probes.size` (parameters,
   nonzero weights, scales), the discrete actions on a fixed batch of recorded observations, and
   the returns of environments outside :data:`rlcomp.envs.CHAOTIC_ENVS` (LunarLander).
2. **Network outputs** on the recorded observations (Q-values or action means) agree to
   :data:`OUTPUT_RTOL` relative (plus :data:`OUTPUT_ATOL` absolute, for outputs near zero): the
   matrix products round differently on different CPUs, by a few float32 ulps, far below it.
3. **Chaotic returns** (HalfCheetah): a last-bit difference in one action grows into another
   episode, so the mean return is compared within a band derived from a measured spread: the
   recording re-runs the evaluation :data:`SPREAD_RUNS` times with every observation perturbed by
   :data:`SPREAD_SCALE` relative noise (other noise seeds), and the band is
   :data:`BAND_FACTOR` times the largest deviation seen, at least :data:`BAND_FLOOR_FRACTION` of
   the return's magnitude plus :data:`BAND_FLOOR_ABS`. The tight output check beside it still
   catches a change of the compressor or the policy, which the band alone would not.

Another CPU is simulated by ``RLCOMP_PERTURB_OBS=1e-9`` (:func:`rlcomp.envs.perturbation`) or by
``MKL_CBWR=COMPATIBLE`` (MKL's matrix products on another code path); every check passes under
both. Fine-tuned agents are not covered: fine-tuning's episodes diverge with another CPU's last
bits, so its weights differ by percents, not ulps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from rlcomp.checkpoint import Checkpoint, load_checkpoint, policy_from_checkpoint
from rlcomp.compress import compress
from rlcomp.compress.storage import compressed_file_bytes
from rlcomp.envs import (
    CHAOTIC_ENVS,
    PERTURB_SEED_VARIABLE,
    PERTURB_VARIABLE,
    configure_torch,
    environment_variables,
    make_env,
    set_seed,
)
from rlcomp.nets import as_tensor
from rlcomp.policy import Policy
from rlcomp.probes.size import model_size, theoretical_bytes
from rlcomp.rollout import evaluate_policy

CHECKPOINTS = ("checkpoints/LunarLander-v3__ddqn__0", "checkpoints/HalfCheetah-v5__pg__0")
"""The committed agents the regression values are recorded for (relative to the repository)."""

SPECS = ("dense", "prune=0.5", "lowrank=0.5", "quant=8", "prune=0.9+quant=8")
"""The compression specs recorded for each agent."""

EPISODES = 5
"""Evaluation episodes per return (seeds ``EVAL_SEED`` to ``EVAL_SEED + EPISODES - 1``)."""

EVAL_SEED = 0
"""Seed of the first evaluation episode."""

OBS_ROWS = 64
"""Recorded observations per agent (one forward pass of ``BATCH_ROWS`` rows)."""

OBS_SEED = 1000
"""Seed of the rollout the observations are taken from (apart from the evaluation seeds)."""

OBS_EVERY = 7
"""Every 7th observation of that rollout is kept, so the batch spans whole episodes."""

OUTPUT_RTOL = 1e-5
"""Relative tolerance of the network outputs: ``|y - y_ref| <= OUTPUT_ATOL + OUTPUT_RTOL |y_ref|``.
Different CPUs' matrix products differ by a few float32 ulps (about 1e-7 relative)."""

OUTPUT_ATOL = 1e-6
"""Absolute part of the output tolerance, for outputs near zero."""

SIZE_FIELDS = ("params", "weights", "nonzero_weights", "biases", "scales", "flops",
               "sparse_flops", "tensor_bytes")
"""Size measures compared exactly."""

SPREAD_SCALE = 1e-6
"""Relative observation noise of the spread runs (about 10 float32 ulps: more than a CPU's)."""

SPREAD_RUNS = 5
"""Perturbed re-runs per spec (noise seeds 1 to 5)."""

BAND_FACTOR = 4.0
"""The band is this multiple of the largest deviation of a perturbed run from the reference."""

BAND_FLOOR_FRACTION = 0.01
"""The band is at least 1% of the recorded return's magnitude ..."""

BAND_FLOOR_ABS = 1.0
"""... plus 1 (so a policy that hardly moves, whose spread is tiny, does not get a zero band)."""

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def perturbed(scale: float, seed: int = 0) -> Iterator[None]:
    """Perturb the observations of :data:`~rlcomp.envs.CHAOTIC_ENVS` inside the block.

    Sets :data:`~rlcomp.envs.PERTURB_VARIABLE` (and the seed's variable), which environments read
    when they are made; the previous values are restored afterwards.
    """
    values = {PERTURB_VARIABLE: repr(float(scale)), PERTURB_SEED_VARIABLE: str(int(seed))}
    with environment_variables(values):
        yield


def compressed_policy(ckpt: Checkpoint, spec: str) -> Policy:
    """The checkpoint's evaluation policy with its network compressed by ``spec``."""
    policy = policy_from_checkpoint(ckpt)
    set_seed(EVAL_SEED)
    return dataclasses.replace(policy, net=compress(policy.net, spec).eval())


def digest_is_portable(spec: str) -> bool:
    """Whether a compressed file's bytes are the same on every CPU (no SVD in the spec)."""
    return "lowrank" not in spec


def exact_values(ckpt: Checkpoint, policy: Policy, spec: str) -> dict:
    """The file size and digest and the size measures of a compressed policy."""
    blob = compressed_file_bytes(policy, {"env_id": ckpt.env_id, "algo": ckpt.algo, "spec": spec,
                                          "source": ckpt.name, "source_digest": ckpt.digest})
    size = model_size(policy.net).to_dict()
    out = {"file_bytes": len(blob), "theoretical_bytes": float(theoretical_bytes(policy.net)),
           **{k: int(size[k]) for k in SIZE_FIELDS}}
    if digest_is_portable(spec):
        out["sha256"] = hashlib.sha256(blob).hexdigest()
    return out


def record_observations(policy: Policy, env_id: str, rows: int = OBS_ROWS,
                        seed: int = OBS_SEED, every: int = OBS_EVERY) -> np.ndarray:
    """``rows`` observations from the (dense) policy's own rollout, every ``every``-th step."""
    env = make_env(env_id)
    kept, step, episode = [], 0, 0
    obs = env.reset(seed=seed)[0]
    with torch.inference_mode():
        while len(kept) < rows:
            if step % every == 0:
                kept.append(np.array(obs, dtype=np.float64))
            action = policy.act(np.asarray(obs)[None])[0]
            obs, _, terminated, truncated, _ = env.step(
                int(action) if policy.action == "argmax" else action)
            step += 1
            if terminated or truncated:
                episode += 1
                obs = env.reset(seed=seed + episode)[0]
    env.close()
    return np.stack(kept)


def network_outputs(policy: Policy, obs: np.ndarray) -> np.ndarray:
    """The network's outputs (Q-values or action means, before clipping) for ``obs``."""
    x = policy.obs_norm(obs) if policy.obs_norm is not None else obs
    with torch.inference_mode():
        return policy.net(as_tensor(x)).to(torch.float64).numpy()


def discrete_actions(policy: Policy, obs: np.ndarray) -> list[int] | None:
    """Greedy actions for ``obs`` (None for a continuous policy)."""
    if policy.action != "argmax":
        return None
    with torch.inference_mode():
        return [int(a) for a in policy.act(np.asarray(obs, dtype=np.float32))]


def returns(policy: Policy, env_id: str, episodes: int = EPISODES,
            seed: int = EVAL_SEED) -> list[float]:
    """Per-episode returns of the evaluation (:func:`~rlcomp.rollout.evaluate_policy`)."""
    configure_torch()
    return [float(r) for r in evaluate_policy(policy, env_id, episodes, seed).returns]


def band(reference: float, deviations: Sequence[float]) -> float:
    """The half-width of the band around ``reference``: see the module docstring."""
    spread = max((abs(d) for d in deviations), default=0.0)
    return max(BAND_FACTOR * spread, BAND_FLOOR_FRACTION * abs(reference) + BAND_FLOOR_ABS)


def measure(checkpoint: str, spec: str, obs: np.ndarray, root: Path = ROOT) -> dict:
    """Every compared value of one checkpoint and spec, on the recorded observations ``obs``."""
    ckpt = load_checkpoint(root / checkpoint)
    policy = compressed_policy(ckpt, spec)
    values = {"exact": exact_values(ckpt, policy, spec),
              "outputs": network_outputs(policy, obs).tolist(),
              "returns": returns(policy, ckpt.env_id)}
    actions = discrete_actions(policy, obs)
    if actions is not None:
        values["actions"] = actions
    return values


def record(root: Path = ROOT, checkpoints: Sequence[str] = CHECKPOINTS,
           specs: Sequence[str] = SPECS, log=print) -> dict:
    """Measure every checkpoint and spec, with the spread runs of the chaotic environments.

    Raises:
        RuntimeError: if a perturbation is already set (the reference must be unperturbed).
    """
    if os.environ.get(PERTURB_VARIABLE, "").strip() not in ("", "0"):
        raise RuntimeError(f"unset {PERTURB_VARIABLE} to record reference values")
    configure_torch()
    agents = {}
    for name in checkpoints:
        ckpt = load_checkpoint(root / name)
        obs = record_observations(policy_from_checkpoint(ckpt), ckpt.env_id)
        cases = {}
        for spec in specs:
            values = measure(name, spec, obs, root)
            if ckpt.env_id in CHAOTIC_ENVS:
                policy = compressed_policy(ckpt, spec)
                mean = float(np.mean(values["returns"]))
                perturbed_means = []
                for noise_seed in range(1, SPREAD_RUNS + 1):
                    with perturbed(SPREAD_SCALE, noise_seed):
                        perturbed_means.append(float(np.mean(returns(policy, ckpt.env_id))))
                deviations = [m - mean for m in perturbed_means]
                values["spread"] = {"scale": SPREAD_SCALE, "runs": SPREAD_RUNS,
                                    "perturbed_mean_returns": perturbed_means,
                                    "max_abs_deviation": max(abs(d) for d in deviations),
                                    "band": band(mean, deviations)}
            cases[spec] = values
            log(f"{ckpt.env_id} {spec}: mean return {np.mean(values['returns']):.2f}"
                + (f" band +-{values['spread']['band']:.2f}" if "spread" in values else ""))
        agents[name] = {"env_id": ckpt.env_id, "checkpoint_digest": ckpt.digest,
                        "chaotic": ckpt.env_id in CHAOTIC_ENVS,
                        "observations": obs.tolist(), "specs": cases}
    return {"settings": settings(), "agents": agents}


def settings() -> dict:
    """The settings the values were recorded with (the comparison refuses others)."""
    return {"specs": list(SPECS), "episodes": EPISODES, "eval_seed": EVAL_SEED,
            "obs_rows": OBS_ROWS, "obs_seed": OBS_SEED, "obs_every": OBS_EVERY,
            "spread_scale": SPREAD_SCALE, "spread_runs": SPREAD_RUNS,
            "band_factor": BAND_FACTOR, "band_floor_fraction": BAND_FLOOR_FRACTION,
            "band_floor_abs": BAND_FLOOR_ABS}


def exact_mismatches(reference: dict, measured: dict) -> list[str]:
    """Exact checks: file size, digest, size measures, discrete actions, non-chaotic returns."""
    problems = []
    for key, want in reference["exact"].items():
        got = measured["exact"].get(key)
        if got != want:
            problems.append(f"{key}: {got!r} != recorded {want!r}")
    if "actions" in reference:
        diff = [i for i, (a, b) in enumerate(zip(measured.get("actions", []), reference["actions"],
                                                 strict=False)) if a != b]
        if diff or len(measured.get("actions", [])) != len(reference["actions"]):
            problems.append(f"discrete actions differ on {len(diff)} of "
                            f"{len(reference['actions'])} recorded observations")
    return problems


def return_mismatches(reference: dict, measured: dict, chaotic: bool) -> list[str]:
    """Returns: exact per episode, or (chaotic) the mean within the recorded band."""
    if not chaotic:
        if measured["returns"] != reference["returns"]:
            return [f"returns {measured['returns']} != recorded {reference['returns']}"]
        return []
    want, got = float(np.mean(reference["returns"])), float(np.mean(measured["returns"]))
    width = reference["spread"]["band"]
    if not abs(got - want) <= width:
        return [f"mean return {got:.2f} outside {want:.2f} +- {width:.2f} (band = "
                f"{BAND_FACTOR:g} x the largest deviation "
                f"{reference['spread']['max_abs_deviation']:.2f} of {SPREAD_RUNS} runs with "
                f"{SPREAD_SCALE:g} relative observation noise, floor "
                f"{BAND_FLOOR_FRACTION:g} |return| + {BAND_FLOOR_ABS:g})"]
    return []


def output_mismatches(reference: dict, measured: dict, rtol: float = OUTPUT_RTOL,
                      atol: float = OUTPUT_ATOL) -> list[str]:
    """Network outputs on the recorded observations within ``atol + rtol |reference|``."""
    want = np.asarray(reference["outputs"], dtype=np.float64)
    got = np.asarray(measured["outputs"], dtype=np.float64)
    if got.shape != want.shape:
        return [f"outputs shaped {got.shape}, recorded {want.shape}"]
    excess = np.abs(got - want) - (atol + rtol * np.abs(want))
    if (excess > 0).any() or not np.isfinite(got).all():
        worst = float(np.max(np.abs(got - want) / (np.abs(want) + atol / rtol)))
        return [f"network outputs differ beyond rtol {rtol:g} (atol {atol:g}) on "
                f"{int((excess > 0).sum())} of {want.size} entries (worst relative {worst:.2e})"]
    return []


def mismatches(reference: dict, measured: dict, chaotic: bool) -> dict[str, list[str]]:
    """Every check of one case: ``{"exact": [...], "outputs": [...], "returns": [...]}``."""
    return {"exact": exact_mismatches(reference, measured),
            "outputs": output_mismatches(reference, measured),
            "returns": return_mismatches(reference, measured, chaotic)}


def observations_of(agent: dict) -> np.ndarray:
    """The recorded observations of an agent's entry."""
    return np.asarray(agent["observations"], dtype=np.float64)


TIE_RTOL = 1e-6
"""A best and second-best Q-value further apart than this fraction of the row's largest magnitude
(about 8 float32 ulps) cannot swap on another CPU, whose products differ by an ulp or two."""


def min_top2_gap(outputs: Sequence[Sequence[float]]) -> float:
    """Smallest gap between the best and second-best Q-value, relative to the row's largest |Q|.

    Discrete actions are exact across CPUs as long as this exceeds :data:`TIE_RTOL`.
    """
    q = np.asarray(outputs, dtype=np.float64)
    if q.shape[1] < 2:
        return math.inf
    top = np.sort(q, axis=1)
    return float(np.min((top[:, -1] - top[:, -2]) / np.abs(q).max(axis=1)))
