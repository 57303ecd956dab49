"""Trained agents as tables and notes: what each checkpoint achieved and what it cost to train.

Every number comes from a checkpoint's JSON (:func:`rlcomp.checkpoint.load_checkpoint`); the
only numbers defined here are the training targets the project set for the two agents of the study.
Functions return pandas DataFrames or Markdown: the ``*_view`` tables keep the stored numbers
(the regression baseline checks one of them), the ``*_display`` tables are what a reader sees
(words for column names, returns to one decimal, times in seconds). :func:`training_figure` draws
every training curve as one page-wide figure. The setup chapter calls them and holds no logic of
its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, MaxNLocator

from rlcomp.analysis.plotting import PAGE_WIDTH_IN, book_style, colour, marker
from rlcomp.checkpoint import Checkpoint, load_checkpoint
from rlcomp.envs import STUDY_ENVS


@dataclass(frozen=True)
class Target:
    """What a trained agent must reach: a mean return within a step and a wall-clock budget."""

    algo: str
    """Algorithm the target applies to."""
    min_return: float
    """Lowest acceptable mean return of the final (100-episode) evaluation."""
    max_steps: int
    """Most environment steps the training may take."""
    max_wall_seconds: float
    """Most wall-clock seconds the training may take."""

    def describe(self) -> str:
        """The target in words, e.g. ``mean return >= 240 within 300k steps and 600 s``."""
        steps = (f"{self.max_steps // 1_000_000}M" if self.max_steps % 1_000_000 == 0
                 else f"{self.max_steps // 1000}k")
        return (f"mean return >= {self.min_return:g} within {steps} steps "
                f"and {self.max_wall_seconds:g} s")


TARGETS: dict[str, Target] = {
    "LunarLander-v3": Target(algo="ddqn", min_return=240.0, max_steps=300_000,
                             max_wall_seconds=600.0),
    "HalfCheetah-v5": Target(algo="pg", min_return=3000.0, max_steps=1_000_000,
                             max_wall_seconds=1800.0),
}
"""The project's training target for each environment of the study."""

ALGO_NAMES = {"ddqn": "Double DQN", "pg": "policy gradient"}
"""Readable names of the algorithms."""

TABLE_COLUMNS = [
    "env", "algo", "variant", "train_seed", "train_steps", "selected_step", "eval_episodes",
    "return_mean", "return_std", "return_iqm", "train_wall_seconds", "train_cpu_seconds",
    "target", "meets_target", "name",
]
"""Columns of :func:`checkpoint_table`, one row per checkpoint."""

CURVE_COLUMNS = ["env", "algo", "variant", "train_seed", "curve", "step", "return"]
"""Columns of :func:`curve_table`, one row per point of a training curve."""


def load_checkpoints(directory: str | os.PathLike, recursive: bool = False) -> list[Checkpoint]:
    """Load every checkpoint in ``directory`` (each ``NAME.json`` beside its ``NAME.safetensors``).

    JSON files without a tensor file beside them are not checkpoints and are skipped; a directory
    that does not exist holds no checkpoints. Subdirectories (such as ``variants/``) are searched
    only when ``recursive``.

    Raises:
        CheckpointError: for a damaged or inconsistent checkpoint.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = directory.rglob("*.json") if recursive else directory.glob("*.json")
    paths = sorted(p for p in found if p.with_suffix(".safetensors").is_file())
    return sorted((load_checkpoint(p) for p in paths), key=_order)


def _order(ckpt: Checkpoint) -> tuple:
    env = ckpt.env_id
    env_rank = STUDY_ENVS.index(env) if env in STUDY_ENVS else len(STUDY_ENVS)
    return env_rank, env, ckpt.algo, pg_variant(ckpt.meta), ckpt.meta.get("seed", 0)


def pg_variant(meta: dict) -> str:
    """Policy-gradient variant: ``vanilla`` (no clipping) or ``PPO clip C``; ``n/a`` otherwise."""
    if meta["algo"] != "pg":
        return "n/a"
    clip = meta.get("config", {}).get("clip")
    return "vanilla" if clip is None else f"PPO clip {clip:g}"


def meets_target(meta: dict) -> bool | None:
    """Whether a checkpoint meets its environment's target; ``None`` when no target applies."""
    target = TARGETS.get(meta["env_id"])
    if target is None or target.algo != meta["algo"]:
        return None
    return bool(meta["final_eval"]["mean_return"] >= target.min_return
                and meta["train_steps"] <= target.max_steps
                and meta["train_wall_seconds"] <= target.max_wall_seconds)


def checkpoint_table(checkpoints: list[Checkpoint]) -> pd.DataFrame:
    """One row per checkpoint with the columns :data:`TABLE_COLUMNS`, in study order."""
    rows = []
    for ckpt in checkpoints:
        meta, final = ckpt.meta, ckpt.meta["final_eval"]
        target = TARGETS.get(ckpt.env_id)
        rows.append({
            "env": ckpt.env_id,
            "algo": ckpt.algo,
            "variant": pg_variant(meta),
            "train_seed": meta["seed"],
            "train_steps": meta["train_steps"],
            "selected_step": meta["selected_step"],
            "eval_episodes": final["episodes"],
            "return_mean": final["mean_return"],
            "return_std": final["std_return"],
            "return_iqm": final["iqm_return"],
            "train_wall_seconds": meta["train_wall_seconds"],
            "train_cpu_seconds": meta["train_cpu_seconds"],
            "target": target.describe() if target and target.algo == ckpt.algo else "none",
            "meets_target": meets_target(meta),
            "name": ckpt.meta.get("name", ckpt.name),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def returns_view(table: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """What each agent achieved, per environment and training seed; no timing, so it is repeatable.

    Args:
        table: from :func:`checkpoint_table`.
        decimals: returns are rounded to this many decimals.
    """
    view = table.set_index(["env", "train_seed"])[[
        "algo", "variant", "train_steps", "selected_step", "eval_episodes",
        "return_mean", "return_std", "return_iqm"]]
    return view.round({"return_mean": decimals, "return_std": decimals, "return_iqm": decimals})


def cost_view(table: pd.DataFrame) -> pd.DataFrame:
    """What each agent cost to train (wall and CPU seconds) and whether it meets its target.

    Args:
        table: from :func:`checkpoint_table`.
    """
    view = table.set_index(["env", "train_seed"])[[
        "train_steps", "return_mean", "train_wall_seconds", "train_cpu_seconds", "target",
        "meets_target"]].copy()
    view["meets_target"] = view["meets_target"].map({True: "yes", False: "no", None: "n/a"})
    return view.round({"return_mean": 1, "train_wall_seconds": 0, "train_cpu_seconds": 0})


def _algorithm(algo: str, variant: str) -> str:
    name = ALGO_NAMES.get(algo, algo)
    return name if variant in ("n/a", "") else f"{name} ({variant})"


def _return(value: float) -> str:
    return "" if pd.isna(value) else f"{value:,.1f}"


def _index(table: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([table["env"], table["train_seed"]],
                                     names=["environment", "training seed"])


def returns_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`returns_view` for a page: column names in words, returns to one decimal.

    Args:
        table: from :func:`checkpoint_table`.
    """
    return pd.DataFrame({
        "algorithm": [_algorithm(a, v) for a, v in zip(table["algo"], table["variant"],
                                                        strict=True)],
        "training (environment steps)": [f"{v:,}" for v in table["train_steps"]],
        "kept snapshot (environment step)": [f"{v:,}" for v in table["selected_step"]],
        "evaluation episodes": list(table["eval_episodes"]),
        "mean return": [_return(v) for v in table["return_mean"]],
        "standard deviation": [_return(v) for v in table["return_std"]],
        "interquartile mean": [_return(v) for v in table["return_iqm"]],
    }, index=_index(table))


def _seconds(value: float) -> str:
    if pd.isna(value):
        return ""
    return f"{value:,.0f} s"


def cost_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`cost_view` for a page, indexed by environment and training seed.

    Steps, the mean return to one decimal, times in whole seconds (the unit of the targets),
    the target in words and whether it is met.

    Args:
        table: from :func:`checkpoint_table`.
    """
    return pd.DataFrame({
        "training (environment steps)": [f"{v:,}" for v in table["train_steps"]],
        "mean return": [_return(v) for v in table["return_mean"]],
        "wall-clock time": [_seconds(v) for v in table["train_wall_seconds"]],
        "CPU time": [_seconds(v) for v in table["train_cpu_seconds"]],
        "target": list(table["target"]),
        "meets target": list(table["meets_target"].map({True: "yes", False: "no"}).fillna(
            "n/a")),
    }, index=_index(table))


def headline_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`headline_numbers` for a page: the final mean return of every agent, one decimal.

    Args:
        table: from :func:`checkpoint_table`.
    """
    return returns_display(table)[["algorithm", "mean return", "evaluation episodes"]]


def headline_numbers(table: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """The chapter's headline: the final mean return of every agent, per environment and seed."""
    view = table.set_index(["env", "algo", "variant", "train_seed"])[["return_mean"]]
    return view.round(decimals)


def curve_table(checkpoints: list[Checkpoint]) -> pd.DataFrame:
    """Training curves as a tidy table with the columns :data:`CURVE_COLUMNS`.

    ``curve`` is ``episode`` for the return of each training episode (at the step it ended) or
    ``selection eval`` for the mean greedy return of each evaluation that selects the kept snapshot.
    """
    frames = []
    for ckpt in checkpoints:
        curve = ckpt.meta["training_curve"]
        key = {"env": ckpt.env_id, "algo": ckpt.algo, "variant": pg_variant(ckpt.meta),
               "train_seed": ckpt.meta["seed"]}
        for kind, steps, returns in (
            ("episode", curve["episode_end_step"], curve["episode_return"]),
            ("selection eval", curve["eval_step"], curve["eval_mean_return"]),
        ):
            frames.append(pd.DataFrame({**key, "curve": kind, "step": steps, "return": returns},
                                       columns=CURVE_COLUMNS))
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True)



def targets_note(targets: dict[str, Target] | None = None) -> str:
    """Markdown listing the training target of each environment (default :data:`TARGETS`)."""
    targets = TARGETS if targets is None else targets
    return "\n".join(f"- **{env}** ({ALGO_NAMES.get(t.algo, t.algo)}): {t.describe()} of training."
                     for env, t in targets.items())


def coverage_note(table: pd.DataFrame, envs: tuple[str, ...] = STUDY_ENVS) -> str:
    """Markdown naming the checkpoints present for each environment, or their absence."""
    lines = []
    for env in envs:
        rows = table[table["env"] == env]
        if rows.empty:
            lines.append(f"- **{env}**: no committed checkpoints for {env}.")
            continue
        for (algo, variant), group in rows.groupby(["algo", "variant"], sort=True):
            seeds = ", ".join(str(s) for s in sorted(group["train_seed"]))
            name = ALGO_NAMES.get(algo, algo) + (f" ({variant})" if algo == "pg" else "")
            lines.append(f"- **{env}**: {name}, {len(group)} training "
                         f"seed{'s' if len(group) != 1 else ''}: {seeds}.")
    return "\n".join(lines)


def pg_variant_note(table: pd.DataFrame, env_id: str = "HalfCheetah-v5",
                    variants: pd.DataFrame | None = None) -> str:
    """Markdown stating which policy-gradient variant the ``env_id`` checkpoints use, from the data.

    The poster trains HalfCheetah with "policy gradients"; our policy-gradient agent runs either the
    vanilla loss (``clip`` none) or PPO's clipped surrogate. The note says which are present, how
    many of them meet the target and, when ``variants`` holds runs of the other variant (the
    comparison runs kept beside the checkpoints, not used by the book), what those reached.

    Args:
        table: from :func:`checkpoint_table`, the book's checkpoints.
        env_id: the environment of the policy-gradient agents.
        variants: from :func:`checkpoint_table` of the comparison runs, or ``None``.
    """
    rows = table[(table["env"] == env_id) & (table["algo"] == "pg")]
    if rows.empty:
        return f"There are no committed policy-gradient checkpoints for {env_id}."
    kinds = sorted(set(rows["variant"]))
    counts = rows["variant"].value_counts()
    used = ", ".join(f"{v} ({_seeds(counts[v])}, mean return "
                     f"{rows.loc[rows['variant'] == v, 'return_mean'].mean():.1f})" for v in kinds)
    target = TARGETS.get(env_id)
    reached = ""
    if target is not None:
        met = int(rows["meets_target"].eq(True).sum())
        reached = f" {met} of {len(rows)} of these runs meet the target ({target.describe()})."
    if all(k == "vanilla" for k in kinds):
        text = (f"The {env_id} checkpoints use vanilla policy gradient (no clipping), the "
                f"poster's algorithm, with a value baseline and GAE: {used}.{reached}")
    elif "vanilla" in kinds:
        text = (f"The {env_id} checkpoints include both variants: {used}. Each row of the table "
                f"says which one it is.{reached}")
    else:
        text = (f"The {env_id} checkpoints use PPO's clipped surrogate objective: {used}. Vanilla "
                f"policy gradient (clip none), the poster's plain variant, was not used for these "
                f"checkpoints; `checkpoints/README.md` records why the book's agents use PPO and "
                f"how they were trained.{reached}")
    return text + _comparison(rows, variants, env_id)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _comparison(rows: pd.DataFrame, variants: pd.DataFrame | None, env_id: str) -> str:
    """A sentence on comparison runs of a variant that the book's checkpoints do not use."""
    if variants is None or variants.empty:
        return ""
    other = variants[(variants["env"] == env_id) & (variants["algo"] == "pg")
                     & ~variants["variant"].isin(set(rows["variant"]))]
    if other.empty:
        return ""
    runs = "; ".join(f"{r.variant}, seed {r.train_seed}: mean return {r.return_mean:.1f} after "
                     f"{r.train_steps:,} steps in {r.train_wall_seconds:.0f} s"
                     for r in other.itertuples())
    return f" For comparison, runs of the variant not used: {runs}."


# The figure ---------------------------------------------------------------------------------------

def _panel_title(env: str, runs: pd.DataFrame) -> str:
    kinds = sorted({v if a == "pg" else ALGO_NAMES.get(a, a)
                    for a, v in zip(runs["algo"], runs["variant"], strict=True)})
    return f"{env}, {' / '.join(kinds)}" if kinds else env


def training_figure(curves: pd.DataFrame, envs: tuple[str, ...] = STUDY_ENVS,
                    window: int = 20, height: float = 3.9) -> Figure:
    """Every training curve, one panel per environment, as a page-wide figure in the book style.

    Solid lines: training-episode returns smoothed by a trailing mean over ``window`` episodes;
    markers joined by dashed lines: the selection evaluations; dotted line: the target mean
    return. Each training seed has one colour and marker of the book's palette in every panel;
    one legend below the panels names them.

    Args:
        curves: from :func:`curve_table`.
        envs: the environments, one panel each.
        window: episodes in the trailing mean of the training returns.
        height: the figure's height in inches.

    Returns:
        The figure (:data:`~rlcomp.analysis.plotting.PAGE_WIDTH_IN` wide); pass it through
        :func:`~rlcomp.analysis.plotting.readable` before showing it, and close it
        (``plt.close``) after.
    """
    seeds = sorted(curves["train_seed"].unique()) if len(curves) else []
    import matplotlib.pyplot as plt

    with book_style():
        fig = plt.figure(figsize=(PAGE_WIDTH_IN, height), layout="constrained")
        axes = fig.subplots(1, len(envs), squeeze=False)[0]
        handles = {}
        for env, ax in zip(envs, axes, strict=True):
            mine = curves[curves["env"] == env]
            ax.set_title(_panel_title(env, mine), fontsize="medium")
            if mine.empty:
                ax.text(0.5, 0.5, "no checkpoints", ha="center", va="center",
                        transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            for (seed, _, _), run in mine.groupby(["train_seed", "algo", "variant"], sort=True):
                i = seeds.index(seed)
                episodes = run[run["curve"] == "episode"]
                smooth = episodes["return"].rolling(window, min_periods=1).mean()
                ax.plot(episodes["step"], smooth, color=colour(i), lw=1.2)
                evals = run[run["curve"] == "selection eval"]
                ax.plot(evals["step"], evals["return"], color=colour(i), ls="--", lw=0.8,
                        marker=marker(i), ms=4)
                handles.setdefault(f"seed {seed}", Line2D(
                    [], [], color=colour(i), marker=marker(i), ms=4, lw=1.2))
            target = TARGETS.get(env)
            if target is not None:
                ax.axhline(target.min_return, color="0.3", ls=":", lw=1.2)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.set_xlabel("Environment steps")
            ax.set_ylabel("Return")
        handles[f"episodes, mean of {window}"] = Line2D([], [], color="0.3", lw=1.2)
        handles["selection evaluations"] = Line2D([], [], color="0.3", ls="--", lw=0.8,
                                                  marker="o", ms=4)
        handles["target"] = Line2D([], [], color="0.3", ls=":", lw=1.2)
        renderer = fig._get_renderer()
        for columns in range(min(len(handles), 6), 0, -1):
            legend = fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                                ncols=columns, frameon=False)
            if legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width or columns == 1:
                break
            legend.remove()
    return fig
