"""The sweeps behind the book's chapters, per profile: the single source of their grids.

Each chapter calls :func:`chapter_sweep` with its papermill parameters (``None`` means "as the
profile says"); ``python -m rlcomp.experiments.plans`` writes the same grids as YAML files under
``sweeps/`` so that ``rlcomp sweep sweeps/NAME.PROFILE.yaml`` runs exactly the chapter's jobs
(a test checks the files are up to date).

Profiles (DESIGN.md): ``smoke`` is one training seed, 3 episodes, three levels, tiny fine-tuning
budgets; ``full`` is five training seeds, 100 episodes, ten levels per method and a 5 x 5 grid of
rank reduction by pruning. Every chapter evaluates the random policy too (spec ``random``), the
lower anchor of normalized returns.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from rlcomp.envs import STUDY_ENVS
from rlcomp.experiments.driver import SweepSummary, run_and_load
from rlcomp.experiments.store import DEFAULT_PATH, RANDOM_POLICY
from rlcomp.experiments.sweep import Sweep, sweep_from_mapping

ALGOS = {"LunarLander-v3": "ddqn", "HalfCheetah-v5": "pg"}
"""The agent each study environment is trained with."""

PROFILE_SETTINGS = {
    "smoke": {"train_seeds": [0], "episodes": 3, "levels": [0.0, 0.5, 0.9],
              "grid_levels": [0.0, 0.5], "finetune_steps": 300, "finetune_levels": [0.9]},
    "full": {"train_seeds": [0, 1, 2, 3, 4], "episodes": 100,
             "levels": [round(0.1 * i, 1) for i in range(10)],
             "grid_levels": [0.0, 0.2, 0.4, 0.6, 0.8], "finetune_steps": 10_000,
             "finetune_levels": [0.5, 0.7, 0.9]},
}
"""What each profile means for the chapters' sweeps: ``levels`` of each method alone,
``grid_levels`` of the low-rank chapter's grid of rank reduction by pruning (the poster's Fig 6
and 8), fine-tuning's budget and levels."""

BOOK_CHAPTERS = ("00-setup", "01-pruning", "02-low-rank", "03-quantization", "04-fine-tuning",
                 "05-verdicts")
"""The book's chapters in order: the one home of their names (``notebooks/NAME.py``, the files of
``_toc.yml``; a test checks both agree with this tuple). Code names a chapter by the constants
below, never by its text."""

SETUP, PRUNING, LOW_RANK, QUANTIZATION, FINE_TUNING, VERDICTS = BOOK_CHAPTERS

CHAPTERS = (PRUNING, LOW_RANK, QUANTIZATION, FINE_TUNING)
"""The chapters that run a sweep (each has a plan below and files under ``sweeps/``)."""

ROOT = Path(__file__).resolve().parents[2]

BOOK_DATA = ROOT / "book" / "data"
"""Where the full profile's verdicts chapter writes the tables behind the book."""


def _checkpoints(envs: Sequence[str], train_seeds: Sequence[int]) -> list[str]:
    unknown = [e for e in envs if e not in ALGOS]
    if unknown:
        raise ValueError(f"envs must be among {', '.join(ALGOS)}, got {unknown}")
    return [f"checkpoints/{env}__{ALGOS[env]}__{seed}" for env in envs for seed in train_seeds]


def _grid(method: str, levels: Sequence[float]) -> dict:
    return {"grid": {method: [float(v) for v in levels]}}


def chapter_plan(chapter: str, profile: str, *, envs: Sequence[str] | None = None,
                 train_seeds: Sequence[int] | None = None, episodes: int | None = None,
                 levels: Sequence[float] | None = None) -> dict:
    """The sweep mapping (what a sweep file holds) of ``chapter`` in ``profile``.

    Args:
        chapter: one of :data:`CHAPTERS`.
        profile: ``smoke`` or ``full``.
        envs: environments (default: both study environments).
        train_seeds: training seeds (default: the profile's).
        episodes: evaluation episodes per job (default: the profile's).
        levels: compression levels of each axis (default: the profile's).
    """
    if profile not in PROFILE_SETTINGS:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_SETTINGS)}, got {profile!r}")
    settings = PROFILE_SETTINGS[profile]
    envs = list(envs or STUDY_ENVS)
    train_seeds = list(train_seeds if train_seeds is not None else settings["train_seeds"])
    levels = list(levels if levels is not None else settings["levels"])
    plan: dict = {"checkpoints": _checkpoints(envs, train_seeds),
                  "episodes": int(episodes or settings["episodes"]), "eval_seeds": [0],
                  "probes": dict(CHAPTER_PROBES)}
    grid = [float(v) for v in settings["grid_levels"]]
    if chapter == PRUNING:
        plan["specs"] = [RANDOM_POLICY, _grid("prune", levels), _grid("prune,scope=layer", levels),
                         _grid("prune,structured=true", levels)]
    elif chapter == LOW_RANK:
        plan["specs"] = [RANDOM_POLICY, _grid("lowrank", levels),
                         {"grid": {"lowrank": grid, "prune": grid}},
                         _grid("lowrank,keep_io=true", levels)]
    elif chapter == QUANTIZATION:
        plan["specs"] = [RANDOM_POLICY, "dense", "quant=8", "prune=0.5+quant=8",
                         "lowrank=0.5+quant=8", "lowrank=0.75"]
    elif chapter == FINE_TUNING:
        ft = [float(v) for v in settings["finetune_levels"]]
        plan["specs"] = [RANDOM_POLICY, "dense", _grid("prune", ft), _grid("lowrank", ft),
                         "quant=8", "quant=8,mode=qat"]
        plan["finetune"] = {"steps": [0, settings["finetune_steps"]]}
    else:
        raise ValueError(f"unknown chapter {chapter!r} (chapters: {', '.join(CHAPTERS)})")
    return plan


CHAPTER_PROBES = {"latency": True, "isolated_memory": True, "policy_time": True}
"""The optional measurements every chapter's jobs make: latencies, the isolated footprint and the
policy's time per decision over dense (A/B in a fresh pinned process)."""

SMOKE_STORE = "results/smoke.sqlite"
"""The store of the smoke profile: apart from the full results, shared by the smoke chapters."""


def default_store(profile: str) -> str:
    """Where a chapter keeps its results (under the repository root, whatever the working folder).

    ``results/rlcomp.sqlite`` in the ``full`` profile, ``results/smoke.sqlite`` in ``smoke``.
    """
    return str(ROOT / (DEFAULT_PATH if profile == "full" else SMOKE_STORE))


def chapter_sweep(chapter: str, profile: str, **overrides) -> Sweep:
    """The validated :class:`Sweep` of :func:`chapter_plan`, its checkpoints found under ROOT.

    The checkpoints are named relative to the repository, so a chapter finds them whatever its
    working directory (nbval runs a notebook in its own folder).
    """
    plan = chapter_plan(chapter, profile, **overrides)
    plan["checkpoints"] = [str(ROOT / name) for name in plan["checkpoints"]]
    return sweep_from_mapping(plan, f"{chapter} ({profile})")


@dataclass
class ChapterResults:
    """A chapter's sweep, its tidy results, what running it did, and the environments present."""

    sweep: Sweep
    frame: pd.DataFrame
    run: SweepSummary
    envs: list[str]


def chapter_results(chapter: str, profile: str, *, store: str | None = None,
                    workers: int | None = None, **overrides) -> ChapterResults:
    """Run what the store lacks of a chapter's sweep and return its results.

    Args:
        chapter: one of :data:`CHAPTERS`.
        profile: ``smoke`` or ``full``.
        store: the results store (default :func:`default_store`).
        workers: parallel jobs (default one per core).
        **overrides: ``envs``, ``train_seeds``, ``episodes``, ``levels`` (None: the profile's).
    """
    sweep = chapter_sweep(chapter, profile, **overrides)
    frame, run = run_and_load(sweep, store or default_store(profile), workers=workers)
    envs = [env for env in STUDY_ENVS if env in set(frame["env"])]
    return ChapterResults(sweep, frame, run, envs)


def sweep_file_text(chapter: str, profile: str) -> str:
    """The YAML text of a chapter's sweep, as written under ``sweeps/``."""
    header = (f"# The sweep of chapter {chapter}, {profile} profile. Generated by\n"
              "# `python -m rlcomp.experiments.plans` from rlcomp/experiments/plans.py: edit "
              "that, not this.\n")
    return header + yaml.safe_dump(chapter_plan(chapter, profile), sort_keys=False)


def write_sweep_files(root: Path = ROOT) -> list[Path]:
    """Write ``sweeps/CHAPTER.PROFILE.yaml`` for every chapter and profile."""
    out = []
    for chapter in CHAPTERS:
        for profile in PROFILE_SETTINGS:
            path = root / "sweeps" / f"{chapter}.{profile}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(sweep_file_text(chapter, profile))
            out.append(path)
    return out


if __name__ == "__main__":
    for written in write_sweep_files():
        print(written.relative_to(ROOT), file=sys.stdout)
