"""Environment ids, environment creation and seeding.

The poster names ``LunarLander-v2`` and ``HalfCheetah-v2``; Gymnasium 1.x ships their successors
``LunarLander-v3`` (Box2D) and ``HalfCheetah-v5`` (MuJoCo). The old names are accepted as aliases.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

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

CHAOTIC_ENVS: tuple[str, ...] = ("HalfCheetah-v5",)
"""Environments whose episodes are chaotic across CPUs: a last-bit difference in one action (the
simulator's or the matrix product's SIMD path on another CPU vendor) grows into another episode, so
their returns are the same from run to run on one machine but not from machine to machine. The
returns of the other study environments (LunarLander's discrete actions) are the same on every
x86-64 CPU."""


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


PERTURB_VARIABLE = "RLCOMP_PERTURB_OBS"
"""Environment variable: relative size of the noise added to the observations of
:data:`CHAOTIC_ENVS` (e.g. ``1e-9``); unset, empty or ``0`` means no noise."""

PERTURB_SEED_VARIABLE = "RLCOMP_PERTURB_SEED"
"""Environment variable: seed of that noise (an integer, default 0)."""


@dataclass(frozen=True)
class Perturbation:
    """Relative observation noise that simulates another CPU's last-bit differences.

    Attributes:
        scale: each observation entry ``x`` becomes ``x * (1 + scale * u)``, ``u`` uniform in
            ``[-1, 1)``.
        seed: seed of the noise; an episode reset with ``reset(seed=s)`` draws its noise from
            ``numpy.random.default_rng([seed, s])``, so the noise does not depend on which
            environment of a pool runs the episode.
    """

    scale: float
    seed: int = 0


def perturbation() -> Perturbation | None:
    """The perturbation asked for by :data:`PERTURB_VARIABLE` (read at each call), or None.

    The variable is inherited by papermill kernels, sweep workers and every other child process.

    Raises:
        ValueError: if the variables do not hold a finite non-negative number and an integer.
    """
    text = os.environ.get(PERTURB_VARIABLE, "").strip()
    seed_text = os.environ.get(PERTURB_SEED_VARIABLE, "").strip() or "0"
    try:
        scale = float(text) if text else 0.0
    except ValueError:
        raise ValueError(f"{PERTURB_VARIABLE} must be a number (e.g. 1e-9), got {text!r}") from None
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"{PERTURB_VARIABLE} must be finite and >= 0, got {text!r}")
    try:
        seed = int(seed_text)
    except ValueError:
        raise ValueError(f"{PERTURB_SEED_VARIABLE} must be an integer, got {seed_text!r}") from None
    return Perturbation(scale, seed) if scale > 0 else None


class PerturbedObservation(gym.ObservationWrapper):
    """Multiplies every observation by ``1 + scale * u`` with seeded uniform noise ``u``."""

    def __init__(self, env: gym.Env, perturb: Perturbation):
        super().__init__(env)
        self.perturb = perturb
        self._rng = np.random.default_rng([perturb.seed])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset; a seeded reset also restarts the noise from ``(perturbation seed, seed)``."""
        if seed is not None:
            self._rng = np.random.default_rng([self.perturb.seed, seed])
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self._rng.uniform(-1.0, 1.0, size=np.shape(observation))
        perturbed = observation * (1.0 + self.perturb.scale * noise)
        return perturbed.astype(np.asarray(observation).dtype, copy=False)


def _make(env_id: str) -> gym.Env:
    env = gym.make(env_id)
    perturb = perturbation() if env_id in CHAOTIC_ENVS else None
    return PerturbedObservation(env, perturb) if perturb is not None else env


def make_env(env_id: str) -> gym.Env:
    """Create one environment (ids already resolved by :func:`resolve_env_id`).

    With :data:`PERTURB_VARIABLE` set, the observations of :data:`CHAOTIC_ENVS` carry its noise.
    """
    _route_mujoco_warnings()
    return _make(env_id)


def make_vec_env(env_id: str, num_envs: int, seed: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of an environment stepping in lockstep, reset with seeds ``seed + i``.

    Sub-environments that end are reset in the same step (``SAME_STEP`` autoreset): the observation
    returned is the first of the new episode and the last one of the old episode is in
    ``info["final_obs"]``. Each is made by :func:`make_env` (so it carries any perturbation).

    Returns:
        The vector environment, already reset; its first observations are in ``.initial_obs``.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    _route_mujoco_warnings()
    envs = gym.vector.SyncVectorEnv(
        [lambda: _make(env_id) for _ in range(num_envs)],
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


@functools.cache
def env_io_sizes(env_id: str) -> tuple[int, int, bool]:
    """The sizes a policy network of ``env_id`` takes and gives: (observations, actions, discrete).

    The action size is the number of actions of a discrete space, or the action vector's length.
    Creates the environment once per process.

    Raises:
        ValueError: if the environment cannot be created (unknown id or missing dependency).
    """
    try:
        env = make_env(env_id)
    except Exception as exc:  # gymnasium raises many types: unknown id, missing Box2D/MuJoCo, ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot create environment {env_id!r} ({first})") from None
    try:
        obs_size = int(np.prod(env.observation_space.shape))
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            return obs_size, int(space.n), True
        return obs_size, int(np.prod(space.shape)), False
    finally:
        env.close()


@contextlib.contextmanager
def environment_variables(values: dict[str, str]) -> Iterator[None]:
    """Set process environment variables inside the block; child processes inherit them.

    The previous values, or their absence, are restored afterwards.
    """
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
