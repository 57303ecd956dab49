"""Observations recorded from the teacher's own episodes, for the sensitivity pass and parity.

One environment runs the teacher's greedy (or mean) policy from seeded episodes; every
``stride``-th observation is kept until ``count`` are recorded, so the states spread over several
episodes (a stride of 4 gives about 14 LunarLander episodes for 1,000 states). The same teacher,
count and seed record the same observations.
"""

from __future__ import annotations

import base64

import numpy as np

from rlcomp.policy import Policy
from rlcomp.probes.policy_time import recorded_observations

RECORD_SEED = 700_000
"""Seed of the first recorded episode (apart from evaluation seeds, below it)."""


def record_observations(policy: Policy, env_id: str, count: int = 1000, seed: int = RECORD_SEED,
                        stride: int = 4) -> np.ndarray:
    """``count`` observations (float32 rows) from ``policy``'s episodes, every ``stride``-th step.

    Episode ``k`` starts from ``reset(seed=seed + k)``.

    Raises:
        ValueError: for a count or stride below 1.
    """
    return recorded_observations(policy, env_id, count, seed, stride)


def encode_observations(obs: np.ndarray) -> dict:
    """Observation rows as JSON: their shape and their float32 bytes in base64."""
    obs = np.ascontiguousarray(obs, dtype=np.float32)
    return {"shape": list(obs.shape), "float32": base64.b64encode(obs.tobytes()).decode("ascii")}


def decode_observations(data: dict) -> np.ndarray:
    """The rows :func:`encode_observations` encoded."""
    raw = base64.b64decode(data["float32"])
    return np.frombuffer(raw, dtype=np.float32).reshape(data["shape"]).copy()
