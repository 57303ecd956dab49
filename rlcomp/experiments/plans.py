"""The sweeps behind the book's chapters, per profile: the single source of their grids.

Each chapter calls :func:`chapter_sweep` with its papermill parameters (``None`` means "as the
profile says"); ``python -m rlcomp.experiments.plans`` writes the same grids as YAML files under
``sweeps/`` so that ``rlcomp sweep sweeps/NAME.PROFILE.yaml`` runs exactly the chapter's jobs
(a test checks the files are up to date).

Profiles (DESIGN.md): ``smoke`` is one training seed, 3 episodes, three levels, tiny fine-tuning
and distillation budgets; ``full`` is five training seeds, 100 episodes, ten levels per method and
a 5 x 5 grid of rank reduction by pruning. Every chapter evaluates the random policy too (spec
``random``), the lower anchor of normalized returns.

A sweep's fine-tuning budgets multiply all of its specs, so a chapter that fine-tunes some specs
and not others (chapter 06 fine-tunes quantization-aware training and gradual pruning, not its
distilled students) runs the fine-tuned ones as a second sweep, a *part* (:data:`SWEEP_PARTS`)
with its own file ``sweeps/CHAPTER.PART.PROFILE.yaml``; :func:`chapter_results` runs every part
of a chapter and joins their results.

Chapter 07 runs no sweep but ``rlcomp choose`` on three policies (:func:`choose_policies`), with
the options of :data:`CHOOSE_OPTIONS` per profile (:func:`choose_argv`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from rlcomp.compress.specs import DISTILL_STEPS, canonical_spec
from rlcomp.envs import STUDY_ENVS
from rlcomp.experiments.driver import SweepSummary, run_and_load
from rlcomp.experiments.store import DEFAULT_PATH, RANDOM_POLICY
from rlcomp.experiments.sweep import Sweep, sweep_from_mapping

ALGOS = {"LunarLander-v3": "ddqn", "HalfCheetah-v5": "pg"}
"""The agent each study environment is trained with."""

PROFILE_SETTINGS = {
    "smoke": {"train_seeds": [0], "episodes": 3, "levels": [0.0, 0.5, 0.9],
              "grid_levels": [0.0, 0.5], "finetune_steps": 300, "finetune_levels": [0.9],
              "distill_steps": 2_000},
    "full": {"train_seeds": [0, 1, 2, 3, 4], "episodes": 100,
             "levels": [round(0.1 * i, 1) for i in range(10)],
             "grid_levels": [0.0, 0.2, 0.4, 0.6, 0.8], "finetune_steps": 10_000,
             "finetune_levels": [0.5, 0.7, 0.9], "distill_steps": DISTILL_STEPS},
}
"""What each profile means for the chapters' sweeps: ``levels`` of each method alone,
``grid_levels`` of the low-rank chapter's grid of rank reduction by pruning (the poster's Fig 6
and 8), fine-tuning's budget and levels, and the environment steps of a distillation (in the full
profile the spec's default, 200,000)."""

BOOK_CHAPTERS = ("00-setup", "01-pruning", "02-low-rank", "03-quantization", "04-fine-tuning",
                 "05-verdicts", "06-beyond-the-poster", "07-choose", "08-findings", "09-methods")
"""The book's chapters in the order they are executed: the one home of their names
(``notebooks/NAME.py``, the files of ``_toc.yml``; a test checks both hold these names). Code
names a chapter by the constants below, never by its text. The reproduction (01 to 04) ends with
its verdicts (05); what goes beyond the poster's methods (06) comes after them, ``rlcomp choose``
on single policies (07) next; the findings (08) read the results of 01 to 06, so they run after
them although the reader meets them first (``_toc.yml`` puts them after the introduction), and
the methods (09) describe how all of them were made."""

(SETUP, PRUNING, LOW_RANK, QUANTIZATION, FINE_TUNING, VERDICTS, BEYOND, CHOOSE, FINDINGS,
 METHODS) = BOOK_CHAPTERS

CHAPTERS = (PRUNING, LOW_RANK, QUANTIZATION, FINE_TUNING, BEYOND)
"""The chapters that run a sweep (each has a plan below and files under ``sweeps/``)."""

POSTER_CHAPTERS = (PRUNING, LOW_RANK, QUANTIZATION, FINE_TUNING)
"""The chapters that reproduce the poster: the verdicts (05) read their results, and
``book/data/results.csv`` holds them; chapter 06 writes ``book/data/frontier.csv``."""

FINETUNED = "finetuned"
"""The name of a chapter's part whose specs are all fine-tuned."""

SWEEP_PARTS: dict[str, tuple[str, ...]] = {BEYOND: (FINETUNED,)}
"""The chapters that run more than one sweep, and the names of their extra parts (the first
sweep, part ``None``, is the chapter's own: ``sweeps/CHAPTER.PROFILE.yaml``)."""

ROOT = Path(__file__).resolve().parents[2]

BOOK_DATA = ROOT / "book" / "data"
"""Where the full profile's chapters write the tables behind the book (05: results and verdicts,
06: the frontier)."""


def _checkpoints(envs: Sequence[str], train_seeds: Sequence[int]) -> list[str]:
    unknown = [e for e in envs if e not in ALGOS]
    if unknown:
        raise ValueError(f"envs must be among {', '.join(ALGOS)}, got {unknown}")
    return [f"checkpoints/{env}__{ALGOS[env]}__{seed}" for env in envs for seed in train_seeds]


def _grid(method: str, levels: Sequence[float]) -> dict:
    return {"grid": {method: [float(v) for v in levels]}}


def sweep_parts(chapter: str) -> tuple[str | None, ...]:
    """The parts of a chapter's jobs, one sweep each.

    ``None`` (the chapter's own sweep) first, then its parts in :data:`SWEEP_PARTS`.
    """
    return (None, *SWEEP_PARTS.get(chapter, ()))


def sweep_name(chapter: str, part: str | None = None) -> str:
    """The name of a part's sweep (its file is ``sweeps/NAME.PROFILE.yaml``)."""
    return chapter if part is None else f"{chapter}.{part}"


BEYOND_PROBES = {"latency": False, "isolated_memory": False, "policy_time": True}
"""Chapter 06 measures returns, sizes and the policy's time per decision (which places its models
on the findings' speed panel); latencies and footprints (a few seconds per job each) are left out,
so its jobs are its own (other probe settings, other keys)."""

BEYOND_POSTER_SPECS = ("prune=0.2", "prune=0.3", "prune=0.2+quant=8", "prune=0.3+quant=8",
                       "prune=0.5+quant=8", "prune=0.9+quant=8", "lowrank=0.5",
                       "lowrank=0.6,keep_io=true", "lowrank=0.6,keep_io=true+quant=8", "quant=8")
"""Chapter 06's candidates of the poster's own methods for small files: pruning alone at the levels
that kept most of the return in chapter 01, then with int8 after it up to 90%; rank reduction of
every layer (the poster's) and with the input and output layers whole (its proposed remedy, which
kept most of the return in chapter 02 at levels where reducing every layer did not, and at 60%
makes the file smaller); int8."""

BEYOND_LOW_BITS = ("quant=4", "quant=4,group=32", "quant=4,mixed=true", "quant=2,mixed=true")
"""Chapter 06's post-training quantization below 8 bits."""

STUDENTS = ("64x64", "32x32", "16x16", "8x8")
"""Chapter 06's distilled students (hidden widths), each alone."""

STUDENT_COMPOSITIONS = {"quant=8": ("32x32", "16x16", "8x8"),
                        "quant=4,mixed=true": ("16x16", "8x8")}
"""Chapter 06's students quantized after distillation (the same student as alone: distillation
is seeded by the training seed)."""

BEYOND_FINETUNED_SPECS = ("prune=0.9", "prune=0.9,schedule=gradual",
                          "prune=0.95,schedule=gradual", "quant=4,mixed=true,mode=qat",
                          "quant=2,mixed=true,mode=qat")
"""Chapter 06's fine-tuned part: gradual pruning (with one-shot pruning fine-tuned on the same
budget as its control) and quantization-aware training below 8 bits."""


def _beyond_specs(settings: dict) -> list[str]:
    def student(hidden: str, *after: str) -> str:
        steps = f"distill={hidden},steps={settings['distill_steps']}"
        return canonical_spec("+".join([steps, *after]))

    return [RANDOM_POLICY, "dense", *BEYOND_POSTER_SPECS, *BEYOND_LOW_BITS,
            *(student(h) for h in STUDENTS),
            *(student(h, after) for after, hidden in STUDENT_COMPOSITIONS.items()
              for h in hidden)]


def chapter_plan(chapter: str, profile: str, *, part: str | None = None,
                 envs: Sequence[str] | None = None, train_seeds: Sequence[int] | None = None,
                 episodes: int | None = None, levels: Sequence[float] | None = None) -> dict:
    """The sweep mapping (what a sweep file holds) of ``chapter`` in ``profile``.

    Args:
        chapter: one of :data:`CHAPTERS`.
        profile: ``smoke`` or ``full``.
        part: which of the chapter's sweeps (:func:`sweep_parts`; ``None``, its own).
        envs: environments (default: both study environments).
        train_seeds: training seeds (default: the profile's).
        episodes: evaluation episodes per job (default: the profile's).
        levels: compression levels of each axis (default: the profile's; chapter 06 has its
            own fixed specs and ignores them).
    """
    if profile not in PROFILE_SETTINGS:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_SETTINGS)}, got {profile!r}")
    if chapter in CHAPTERS and part not in sweep_parts(chapter):
        parts = ", ".join(str(p) for p in sweep_parts(chapter))
        raise ValueError(f"chapter {chapter} has no part {part!r} (parts: {parts})")
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
    elif chapter == BEYOND:
        plan["probes"] = dict(BEYOND_PROBES)
        if part == FINETUNED:
            plan["specs"] = list(BEYOND_FINETUNED_SPECS)
            plan["finetune"] = {"steps": [settings["finetune_steps"]]}
        else:
            plan["specs"] = _beyond_specs(settings)
    else:
        raise ValueError(f"unknown chapter {chapter!r} (chapters: {', '.join(CHAPTERS)})")
    return plan


CHAPTER_PROBES = {"latency": True, "isolated_memory": True, "policy_time": True}
"""The optional measurements the jobs of chapters 01 to 04 make: latencies, the isolated footprint
and the policy's time per decision over dense (A/B in a fresh pinned process). Chapter 06 makes
none (:data:`BEYOND_PROBES`)."""

SMOKE_STORE = "results/smoke.sqlite"
"""The store of the smoke profile: apart from the full results, shared by the smoke chapters."""


def default_store(profile: str) -> str:
    """Where a chapter keeps its results (under the repository root, whatever the working folder).

    ``results/rlcomp.sqlite`` in the ``full`` profile, ``results/smoke.sqlite`` in ``smoke``.
    """
    return str(ROOT / (DEFAULT_PATH if profile == "full" else SMOKE_STORE))


# Chapter 07: rlcomp choose on single policies -----------------------------------------------------

@dataclass(frozen=True)
class ChoosePolicy:
    """A policy chapter 07 runs ``rlcomp choose`` on."""

    env: str
    """The environment it acts in."""
    path: str
    """Its file, relative to the repository root (or absolute): a checkpoint or an SB3 zip."""
    label: str
    """What it is, in words."""

    @property
    def name(self) -> str:
        """Its name: the file's name without its suffix (the folder of its artifacts)."""
        return Path(self.path).name.removesuffix(".zip").removesuffix(".json")


SB3_POLICY = "checkpoints/sb3/LunarLander-v3__sb3-dqn__0.zip"
"""The committed Stable-Baselines3 DQN policy (``checkpoints/train_sb3.py`` trains it)."""


def choose_policies(sb3_policy: str | None = None) -> tuple[ChoosePolicy, ...]:
    """The policies of chapter 07.

    Our LunarLander and HalfCheetah agents of training seed 0, and an SB3 zip (default
    :data:`SB3_POLICY`).
    """
    lunar, cheetah = _checkpoints(STUDY_ENVS, [0])
    return (ChoosePolicy("LunarLander-v3", lunar, "our Double DQN agent, training seed 0"),
            ChoosePolicy("HalfCheetah-v5", cheetah, "our policy-gradient agent, training seed 0"),
            ChoosePolicy("LunarLander-v3", sb3_policy or SB3_POLICY,
                         "a Stable-Baselines3 DQN policy (SB3's own zip)"))


CHOOSE_OPTIONS: dict[str, tuple[str, ...]] = {
    "smoke": ("--max-drop", "0.05", "--objective", "bytes", "--families", "prune,quant",
              "--looks", "5,10", "--min-accept", "5", "--budget-minutes", "10"),
    "full": ("--max-drop", "0.05", "--objective", "bytes"),
}
"""The options of ``rlcomp choose`` in chapter 07, per profile. ``full`` is the issue's search: at
most a 5% drop of the normalized return, the smallest model bytes, every family, the default
looks and budget. ``smoke`` tries the pure compressions of two families on 10 episodes per
candidate (looks after 5 and 10); its budget is a ceiling the search never reaches, so the same
store and code give the same recommendation."""

CHOOSE_OUT = "results/choose"
"""Where chapter 07 writes each policy's artifacts and report: ``CHOOSE_OUT/PROFILE/NAME``."""


def choose_argv(policy: ChoosePolicy, profile: str, *, store: str | None = None,
                out: str | None = None) -> list[str]:
    """The arguments of ``rlcomp choose`` for ``policy`` in ``profile``, paths under ROOT.

    Args:
        policy: one of :func:`choose_policies`.
        profile: ``smoke`` or ``full``.
        store: the results store (default :func:`default_store`).
        out: the folder of every policy's output folder (default ``ROOT/CHOOSE_OUT/PROFILE``).
    """
    if profile not in CHOOSE_OPTIONS:
        raise ValueError(f"profile must be one of {', '.join(CHOOSE_OPTIONS)}, got {profile!r}")
    folder = Path(out) if out is not None else ROOT / CHOOSE_OUT / profile
    return [str(ROOT / policy.path), "--env", policy.env, *CHOOSE_OPTIONS[profile],
            "--store", store or default_store(profile), "--out", str(folder / policy.name),
            "--quiet"]


def choose_command(policy: ChoosePolicy, profile: str) -> str:
    """The ``rlcomp choose`` command line of ``policy`` in ``profile``, as a user types it."""
    return " ".join(["rlcomp choose", policy.path, "--env", policy.env, *CHOOSE_OPTIONS[profile]])


def chapter_sweep(chapter: str, profile: str, *, part: str | None = None,
                  **overrides) -> Sweep:
    """The validated :class:`Sweep` of :func:`chapter_plan`, its checkpoints found under ROOT.

    The checkpoints are named relative to the repository, so a chapter finds them whatever its
    working directory (nbval runs a notebook in its own folder).
    """
    plan = chapter_plan(chapter, profile, part=part, **overrides)
    plan["checkpoints"] = [str(ROOT / name) for name in plan["checkpoints"]]
    return sweep_from_mapping(plan, f"{sweep_name(chapter, part)} ({profile})")


@dataclass
class ChapterResults:
    """A chapter's sweep, its tidy results, what running it did, and the environments present.

    ``sweep`` and ``run`` are the chapter's own sweep; ``parts`` the sweeps of its other parts
    (:data:`SWEEP_PARTS`) with what running each did. ``frame`` holds the results of all.
    """

    sweep: Sweep
    frame: pd.DataFrame
    run: SweepSummary
    envs: list[str]
    parts: list[tuple[Sweep, SweepSummary]] = field(default_factory=list)


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
    ran = []
    for part in sweep_parts(chapter):
        sweep = chapter_sweep(chapter, profile, part=part, **overrides)
        ran.append((sweep, *run_and_load(sweep, store or default_store(profile),
                                         workers=workers)))
    frame = pd.concat([f for _, f, _ in ran], ignore_index=True) if len(ran) > 1 else ran[0][1]
    envs = [env for env in STUDY_ENVS if env in set(frame["env"])]
    sweep, _, run = ran[0]
    return ChapterResults(sweep, frame, run, envs, [(s, r) for s, _, r in ran[1:]])


def sweep_file_text(chapter: str, profile: str, part: str | None = None) -> str:
    """The YAML text of a chapter's sweep (or of one of its parts), as written under ``sweeps/``."""
    what = f"chapter {chapter}" + (f", part {part}" if part else "")
    header = (f"# The sweep of {what}, {profile} profile. Generated by\n"
              "# `python -m rlcomp.experiments.plans` from rlcomp/experiments/plans.py: edit "
              "that, not this.\n")
    return header + yaml.safe_dump(chapter_plan(chapter, profile, part=part), sort_keys=False)


def sweep_file(chapter: str, profile: str, part: str | None = None, root: Path = ROOT) -> Path:
    """``sweeps/NAME.PROFILE.yaml`` of a chapter's part (:func:`sweep_name`)."""
    return root / "sweeps" / f"{sweep_name(chapter, part)}.{profile}.yaml"


def write_sweep_files(root: Path = ROOT) -> list[Path]:
    """Write the sweep file of every chapter, part and profile."""
    out = []
    for chapter in CHAPTERS:
        for part in sweep_parts(chapter):
            for profile in PROFILE_SETTINGS:
                path = sweep_file(chapter, profile, part, root)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(sweep_file_text(chapter, profile, part))
                out.append(path)
    return out


if __name__ == "__main__":
    for written in write_sweep_files():
        print(written.relative_to(ROOT), file=sys.stdout)
