"""One entry point that trains either agent and writes its checkpoint with provenance."""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path

from rlcomp.agents.common import ProgressFn, TrainResult, run_name
from rlcomp.agents.ddqn import DDQNConfig, train_ddqn
from rlcomp.agents.pg import PGConfig, train_pg
from rlcomp.checkpoint import checkpoint_paths, save_checkpoint
from rlcomp.envs import resolve_env_id
from rlcomp.files import check_writable
from rlcomp.provenance import provenance

CONFIGS: dict[str, type] = {"ddqn": DDQNConfig, "pg": PGConfig}
"""Config dataclass of each algorithm."""

TRAINERS = {"ddqn": train_ddqn, "pg": train_pg}


def make_config(algo: str, **overrides) -> DDQNConfig | PGConfig:
    """The config of ``algo`` with its defaults replaced by ``overrides``.

    Raises:
        ValueError: for an unknown algorithm, a field the algorithm does not have, or a bad value.
    """
    if algo not in CONFIGS:
        raise ValueError(f"algo must be one of {sorted(CONFIGS)}, got {algo!r}")
    cls = CONFIGS[algo]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"{algo} has no setting {unknown[0]!r}")
    if "env_id" in overrides:
        overrides["env_id"] = resolve_env_id(overrides["env_id"])
    return cls(**overrides)


def check_output_dir(out_dir: str | os.PathLike, name: str) -> None:
    """Refuse, before training, an output folder where checkpoint ``name`` could not be saved.

    Raises:
        ValueError: ``out_dir`` is a file, or is not writable, or a checkpoint file there is not.
    """
    folder = Path(out_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output directory {folder} is a file, not a directory")
    for path in checkpoint_paths(folder / name):
        check_writable(path)


def train_and_save(
    algo: str,
    config: DDQNConfig | PGConfig,
    out_dir: str | os.PathLike,
    progress: ProgressFn | None = None,
    command: list[str] | None = None,
) -> tuple[Path, TrainResult]:
    """Train ``algo`` with ``config`` and save ``out_dir/ENV__ALGO__SEED.{safetensors,json}``.

    Raises:
        ValueError: before training starts, if the checkpoint could not be saved in ``out_dir``.
    """
    if algo not in TRAINERS:
        raise ValueError(f"algo must be one of {sorted(TRAINERS)}, got {algo!r}")
    name = run_name(config.env_id, algo, config.seed)
    check_output_dir(out_dir, name)
    origin = provenance(command)
    result = TRAINERS[algo](config, progress)
    meta = {
        "name": name,
        "env_id": config.env_id,
        "algo": algo,
        "seed": config.seed,
        "architecture": result.architecture,
        "config": asdict(config),
        "train_steps": result.train_steps,
        "train_wall_seconds": result.wall_seconds,
        "train_cpu_seconds": result.cpu_seconds,
        "selected_step": result.selected_step,
        "final_eval": result.final_eval,
        "training_curve": result.curve,
        **{k: v for k, v in result.extra.items() if k != "config"},
        **origin,
    }
    path = save_checkpoint(Path(out_dir) / name, result.tensors, meta)
    return path, result
