"""Environment ids, environment creation and seeding.

The poster names ``LunarLander-v2`` and ``HalfCheetah-v2``; Gymnasium 1.x ships their successors
``LunarLander-v3`` (Box2D) and ``HalfCheetah-v5`` (MuJoCo). The old names are accepted as aliases.
"""

from __future__ import annotations

import functools
import random
import sys
import warnings

import gymnasium as gym
import numpy as np
import torch

ENV_ALIASES: dict[str, str] = {
    "LunarLander-v2": "LunarLander-v3",
    "HalfCheetah-v2": "HalfCheetah-v5",
}
"""Poster environment ids and the Gymnasium 1.x ids that replace them."""

STUDY_ENVS: tuple[str, ...] = ("LunarLander-v3", "HalfCheetah-v5")
"""The two environments of the study."""


def resolve_env_id(env_id: str, *, notify: bool = True) -> str:
    """The Gymnasium id for ``env_id``, mapping the poster's v2 names to their successors.

    Args:
        env_id: an id registered with Gymnasium, or one of :data:`ENV_ALIASES`.
        notify: print a one-line notice on stderr when an alias is used.

    Raises:
        ValueError: if the id is unknown to Gymnasium.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env id must be a string, got {type(env_id).__name__}")
    if env_id in ENV_ALIASES:
        new_id = ENV_ALIASES[env_id]
        if notify:
            print(f"rlcomp: note: {env_id} is the poster's name; using {new_id}", file=sys.stderr)
        return new_id
    if env_id not in gym.registry:
        known = ", ".join(sorted(set(STUDY_ENVS) | set(ENV_ALIASES)))
        raise ValueError(f"unknown environment {env_id!r} (the study's are {known})")
    return env_id


_MUJOCO_NOISE = ("compiler attribute 'settotalmass' is deprecated",)
"""MuJoCo 4 warns about an attribute of Gymnasium's model files: harmless, and repeated per env."""


@functools.cache
def _route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings to Python's ``warnings`` (not to stderr and ``MUJOCO_LOG.TXT``).

    Installed once per process, on the first environment created.
    """
    try:
        import mujoco
    except ImportError:
        return

    def handler(message: str) -> None:
        if not message.startswith(_MUJOCO_NOISE):
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)


def make_env(env_id: str) -> gym.Env:
    """Create one environment (ids already resolved by :func:`resolve_env_id`)."""
    _route_mujoco_warnings()
    return gym.make(env_id)


def make_vec_env(env_id: str, num_envs: int, seed: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of an environment stepping in lockstep, reset with seeds ``seed + i``.

    Sub-environments that end are reset in the same step (``SAME_STEP`` autoreset): the observation
    returned is the first of the new episode and the last one of the old episode is in
    ``info["final_obs"]``.

    Returns:
        The vector environment, already reset; its first observations are in ``.initial_obs``.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    _route_mujoco_warnings()
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs, _ = envs.reset(seed=[seed + i for i in range(num_envs)])
    envs.action_space.seed(seed)
    envs.initial_obs = obs  # type: ignore[attr-defined]
    return envs


def configure_torch(threads: int | None = 1) -> None:
    """Flush denormal floats to zero and, by default, run PyTorch on one thread.

    One thread makes CPU results bit-identical from run to run and matches the study's "isolated
    processor". Flushing guards against slow denormal arithmetic; for the study's agents it changed
    neither speed nor results when measured. Training and evaluation both run under these settings.
    """
    torch.set_flush_denormal(True)
    if threads is not None:
        torch.set_num_threads(threads)


def set_seed(seed: int, *, threads: int | None = 1) -> None:
    """Seed Python, NumPy and PyTorch; by default also run PyTorch on one thread.

    Also applies :func:`configure_torch` (denormals flushed, ``threads`` PyTorch threads).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    configure_torch(threads)
