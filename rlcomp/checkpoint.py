"""Trained agents on disk: ``NAME.safetensors`` (tensors) beside ``NAME.json`` (everything else).

Loading parses the safetensors header and JSON only; nothing is ever unpickled. Both files are
written to temporary names first and renamed into place, so a failed save leaves no half-written
checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlcomp.envs import resolve_env_id
from rlcomp.files import SafetensorsError, atomic_write, read_safetensors, safetensors_bytes
from rlcomp.nets import ACTIVATIONS, ObsNormalizer, mlp
from rlcomp.policy import Policy

FORMAT = "rlcomp-checkpoint/1"
"""The ``format`` field of every checkpoint this version writes and reads."""

ALGOS = ("ddqn", "pg")
"""Algorithm names a checkpoint can carry."""


class CheckpointError(ValueError):
    """A file that is missing, not a checkpoint, damaged, or for another environment."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: its tensors, its JSON metadata and the digest of its tensor file."""

    tensors: dict[str, torch.Tensor]
    meta: dict
    digest: str
    path: Path

    @property
    def env_id(self) -> str:
        return self.meta["env_id"]

    @property
    def algo(self) -> str:
        return self.meta["algo"]

    @property
    def name(self) -> str:
        return self.path.name


def checkpoint_paths(name: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(.safetensors, .json)`` pair a checkpoint name denotes.

    A checkpoint is named by either of its files or by their common path without extension.
    """
    path = Path(name)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save_checkpoint(stem: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write a checkpoint; ``meta`` must name ``env_id``, ``algo`` and ``architecture``.

    Returns:
        The common path of the two files, without extension.
    """
    for key in ("env_id", "algo", "architecture"):
        if key not in meta:
            raise ValueError(f"checkpoint metadata needs {key!r}")
    if meta["algo"] not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {meta['algo']!r}")
    st_path, json_path = checkpoint_paths(stem)
    header = {"format": FORMAT, "env_id": meta["env_id"], "algo": meta["algo"],
              "architecture": json.dumps(meta["architecture"])}
    blob = safetensors_bytes(tensors, header)
    full_meta = {"format": FORMAT, **meta, "digest": hashlib.sha256(blob).hexdigest()}
    text = json.dumps(full_meta, indent=1, sort_keys=False, allow_nan=False) + "\n"
    atomic_write(st_path, blob)
    atomic_write(json_path, text.encode())
    return st_path.with_suffix("")


def load_checkpoint(name: str | os.PathLike, env_id: str | None = None) -> Checkpoint:
    """Load and validate a checkpoint; with ``env_id``, refuse one trained on another environment.

    Raises:
        CheckpointError: with a one-line reason, for a missing, foreign, truncated, inconsistent or
            wrong-environment checkpoint.
    """
    st_path, json_path = checkpoint_paths(name)
    for p in (st_path, json_path):
        if not p.is_file():
            raise CheckpointError(f"{name}: no checkpoint file {p}")
    try:
        meta = json.loads(json_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{json_path}: not a checkpoint (not valid JSON)") from exc
    _check_format(meta, json_path)
    blob = st_path.read_bytes()
    try:
        header, tensors = read_safetensors(blob)
    except SafetensorsError as exc:
        raise CheckpointError(f"{st_path}: {exc}") from exc
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{st_path}: not an rlcomp checkpoint (no {FORMAT} metadata)")
    digest = hashlib.sha256(blob).hexdigest()
    if meta.get("digest") != digest:
        raise CheckpointError(f"{st_path}: does not match {json_path.name} (digest differs)")
    for key in ("env_id", "algo"):
        if header.get(key) != meta.get(key):
            raise CheckpointError(f"{st_path}: {key} disagrees with {json_path.name}")
    _check_meta(meta, json_path)
    if env_id is not None:
        wanted = resolve_env_id(env_id, notify=False)
        if meta["env_id"] != wanted:
            raise CheckpointError(
                f"{st_path.with_suffix('')}: trained on {meta['env_id']}, not {wanted}")
    ckpt = Checkpoint(tensors=tensors, meta=meta, digest=digest, path=st_path.with_suffix(""))
    _check_shapes(ckpt)
    return ckpt


def _check_format(meta: object, json_path: Path) -> None:
    """Refuse JSON that is not an rlcomp checkpoint, or one of a format version we do not read."""
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt == FORMAT:
        return
    name, _, version = FORMAT.partition("/")
    if isinstance(fmt, str) and fmt.startswith(name + "/"):
        raise CheckpointError(f"{json_path}: checkpoint format {fmt!r} is not supported; this "
                              f"rlcomp reads {FORMAT} (written by a newer rlcomp?)")
    raise CheckpointError(f"{json_path}: not an rlcomp checkpoint (format is not {FORMAT})")


def _sizes(value: object) -> bool:
    """Whether ``value`` is a list of layer sizes: two or more positive integers."""
    return isinstance(value, list) and len(value) >= 2 and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value)


def _check_meta(meta: dict, json_path: Path) -> None:
    """Refuse metadata with a missing or ill-typed field, or an unknown algorithm or environment."""
    if meta.get("algo") not in ALGOS:
        raise CheckpointError(f"{json_path}: unknown algorithm {meta.get('algo')!r} "
                              f"(expected one of {', '.join(ALGOS)})")
    env = meta.get("env_id")
    if not isinstance(env, str):
        raise CheckpointError(f"{json_path}: env_id must be an environment id, got {env!r}")
    try:
        known = resolve_env_id(env, notify=False)
    except ValueError as exc:
        raise CheckpointError(f"{json_path}: {exc}") from None
    if known != env:
        raise CheckpointError(f"{json_path}: env_id {env!r} is an old name; expected {known!r}")
    architecture = meta.get("architecture")
    if not isinstance(architecture, dict) or not _sizes(architecture.get("net")):
        raise CheckpointError(f"{json_path}: architecture must be an object whose 'net' lists "
                              f"two or more layer sizes, got {architecture!r}")
    seed = meta.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CheckpointError(f"{json_path}: seed must be an integer, got {seed!r}")
    activation = meta.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{json_path}: activation must be one of {', '.join(ACTIVATIONS)}, "
                              f"got {activation!r}")


def _check_shapes(ckpt: Checkpoint) -> None:
    """Refuse tensors that do not match the architecture, or a network that does not fit its env."""
    for prefix, sizes in ckpt.meta["architecture"].items():
        if not _sizes(sizes):
            raise CheckpointError(f"{ckpt.path}: architecture {prefix!r} must list layer sizes, "
                                  f"got {sizes!r}")
        expected = set()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            for name, shape in ((f"{prefix}.{2 * i}.weight", (n_out, n_in)),
                                (f"{prefix}.{2 * i}.bias", (n_out,))):
                tensor = ckpt.tensors.get(name)
                if tensor is None or tuple(tensor.shape) != shape:
                    raise CheckpointError(f"{ckpt.path}: tensors do not match architecture "
                                          f"{prefix} {sizes} ({name})")
                expected.add(name)
        extra = sorted(k for k in ckpt.tensors if k.startswith(prefix + ".") and k not in expected)
        if extra:
            raise CheckpointError(f"{ckpt.path}: tensor {extra[0]} is not in architecture "
                                  f"{prefix} {sizes}")
    _check_env_fit(ckpt)


def _check_env_fit(ckpt: Checkpoint) -> None:
    """Refuse a network whose input or output size does not fit its stored environment."""
    from rlcomp.envs import env_io_sizes

    try:
        obs_size, act_size, discrete = env_io_sizes(ckpt.env_id)
    except ValueError as exc:
        raise CheckpointError(f"{ckpt.path}: {exc}") from None
    sizes = ckpt.meta["architecture"]["net"]
    if discrete != (ckpt.algo == "ddqn"):
        kind = "discrete" if discrete else "continuous"
        raise CheckpointError(f"{ckpt.path}: {ckpt.env_id} has {kind} actions; a "
                              f"{ckpt.algo} network {sizes} cannot act in it")
    if (sizes[0], sizes[-1]) != (obs_size, act_size):
        raise CheckpointError(f"{ckpt.path}: network {sizes} does not fit {ckpt.env_id} "
                              f"({obs_size} observations, {act_size} actions)")
    needs = {"obs_norm.mean": (obs_size,), "obs_norm.var": (obs_size,)}
    if ckpt.algo == "pg":
        needs["log_std"] = (act_size,)
    for name, shape in needs.items():
        tensor = ckpt.tensors.get(name)
        if tensor is not None and tuple(tensor.shape) != shape:
            raise CheckpointError(f"{ckpt.path}: {name} has shape {tuple(tensor.shape)}, "
                                  f"not {shape} as {ckpt.env_id} needs")
    bounds = ckpt.meta.get("action_bounds")
    if bounds is not None and not (
            isinstance(bounds, list) and len(bounds) == 2
            and all(isinstance(b, list) and len(b) == act_size and all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in b)
                for b in bounds)):
        raise CheckpointError(f"{ckpt.path}: action_bounds must be two lists of {act_size} "
                              "numbers")


def build_net(ckpt: Checkpoint, prefix: str = "net") -> torch.nn.Sequential:
    """The MLP stored under ``prefix`` (``net`` is the network that compression acts on).

    Its activation is the metadata's ``activation`` (``relu`` when absent, as in every checkpoint
    our agents write).
    """
    net = mlp(ckpt.meta["architecture"][prefix], ckpt.meta.get("activation", "relu"))
    state = {k[len(prefix) + 1 :]: v for k, v in ckpt.tensors.items() if k.startswith(prefix + ".")}
    net.load_state_dict(state)
    return net


def policy_from_checkpoint(ckpt: Checkpoint) -> Policy:
    """The deterministic evaluation policy of a checkpoint (greedy or Gaussian mean).

    The action rule is the metadata's ``action`` if it has one (imported policies,
    :mod:`rlcomp.imports`), else ``argmax`` for Double DQN and ``mean`` for policy gradient. The
    observation normaliser's ``clip`` and ``eps`` are the metadata's ``obs_norm`` settings, if any.
    """
    net = build_net(ckpt)
    norm = None
    if "obs_norm.mean" in ckpt.tensors:
        norm = ObsNormalizer(ckpt.tensors["obs_norm.mean"].numpy(),
                             ckpt.tensors["obs_norm.var"].numpy(), **ckpt.meta.get("obs_norm", {}))
    if ckpt.meta.get("action", "argmax" if ckpt.algo == "ddqn" else "mean") == "argmax":
        return Policy(net=net, action="argmax", obs_norm=norm)
    bounds = ckpt.meta.get("action_bounds")
    low = np.asarray(bounds[0], dtype=np.float32) if bounds else None
    high = np.asarray(bounds[1], dtype=np.float32) if bounds else None
    return Policy(net=net, action="mean", obs_norm=norm, action_low=low, action_high=high)
