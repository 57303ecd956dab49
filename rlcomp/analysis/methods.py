"""The methods page's tables: how the book's numbers were made, each read from code or a file.

Every function returns a pandas DataFrame whose column names carry their units, or the HTML of
one (:func:`html_table`); the methods chapter (``notebooks/09-methods.py``) calls them and holds
no logic. What they read:

- the agents and their training budgets from the committed checkpoints' JSON
  (:func:`agents_table`, via :func:`rlcomp.analysis.training.load_checkpoints`);
- the evaluation protocol of each profile from :data:`rlcomp.experiments.plans.PROFILE_SETTINGS`
  and :func:`rlcomp.experiments.plans.chapter_plan` (:func:`protocol_table`);
- the simulated coverage of the interval from :func:`rlcomp.analysis.coverage.simulate_coverage`
  (:func:`coverage_table`);
- each claim's rule and margin from :data:`rlcomp.analysis.verdict_table.ENTRIES`, measured on no
  data, so that the rule, threshold and unit are the claim functions' own (:func:`margins_table`);
- the environment-dominated measures from :data:`rlcomp.rollout.ENVIRONMENT_DOMINATED`
  (:func:`environment_dominated_table`);
- an example of normalization and the machine from ``book/data/results.csv``
  (:func:`normalization_example`, :func:`machine_table`, :func:`cost_protocol_table`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from rlcomp import rollout
from rlcomp.analysis import verdict_table
from rlcomp.analysis.claims import MEASURE_NAMES
from rlcomp.analysis.coverage import SCENARIO_UNITS, SCENARIO_WORDS, monte_carlo_se
from rlcomp.analysis.training import ALGO_NAMES, pg_variant
from rlcomp.analysis.verdict_rules import NOT_JUDGED, rule_text
from rlcomp.checkpoint import Checkpoint
from rlcomp.envs import STUDY_ENVS
from rlcomp.experiments.plans import PROFILE_SETTINGS, PRUNING, ROOT, chapter_plan
from rlcomp.experiments.store import COLUMNS
from rlcomp.stats import IntervalSettings, normalized

FLOAT32_BYTES = 4
"""Bytes of one float32 parameter (the dense model's storage)."""

METHOD_WORDS = {"t": "t interval (the book's)", "percentile": "percentile bootstrap"}
"""Each interval method of :mod:`rlcomp.analysis.coverage` in words."""

PROVENANCE_WORDS = {
    "cpu_model": "CPU model",
    "vector_extensions": "vector extensions",
    "torch": "PyTorch version",
    "numpy": "NumPy version",
    "gymnasium": "Gymnasium version",
    "mujoco": "MuJoCo version",
    "git_commit": "git commit of the code",
}
"""The provenance columns of ``book/data/results.csv``, in words, in the order shown."""

DOMINATED_WORDS = {
    "eval_seconds": "evaluation wall time of the episodes",
    "seconds_per_step": "evaluation wall time per environment step",
    "env_seconds": "the environment's share of the wall time",
    "cpu_seconds": "CPU time of the evaluation",
    "cpu_seconds_per_step": "CPU time per environment step",
    "cpu_percent": "CPU utilisation of the evaluating process",
    "ram_percent": "the evaluating process's share of memory",
    "rss_bytes": "resident memory of the evaluating process",
    "rss_peak_bytes": "peak resident memory of the evaluating process",
}
"""What each environment-dominated metric is, in words."""

DOMINATED_UNITS = {"eval_seconds": "s", "seconds_per_step": "s", "env_seconds": "s",
                   "cpu_seconds": "s", "cpu_seconds_per_step": "s", "cpu_percent": "%",
                   "ram_percent": "%", "rss_bytes": "bytes", "rss_peak_bytes": "bytes"}
"""The unit of each environment-dominated metric."""


def repository_path(path: str | os.PathLike) -> Path:
    """``path`` as given if absolute, else under the repository root.

    Whatever the working folder: nbval runs a notebook in its own folder.
    """
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


CELL_STYLE = "text-align: left; white-space: normal; vertical-align: top;"
"""How every cell of the page's tables is laid out: left-aligned, wrapping, top-aligned (a
notebook's default DataFrame style right-aligns and does not wrap, which cuts text off)."""


def html_table(frame: pd.DataFrame, css_class: str = "methods-table",
               links: Mapping[str, str] | None = None) -> str:
    """``frame`` as an HTML table (escaped, no index) in a block that scrolls when too wide.

    The book renders HTML outputs as they are (a Markdown table in an output would be shown as
    text); the outer ``div`` keeps a wide table from widening the page.

    Args:
        frame: the table; its column names are the headers.
        css_class: a class of the ``table`` element besides ``table``.
        links: column name -> the column whose values are the link targets of its cells (that
            column is not shown).
    """
    links = dict(links or {})
    shown = [c for c in frame.columns if c not in links.values()]
    head = "".join(f'<th style="{CELL_STYLE}">{html.escape(str(c))}</th>' for c in shown)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for column in shown:
            text = "" if pd.isna(row[column]) else html.escape(str(row[column]))
            if column in links:
                text = f'<a href="{html.escape(str(row[links[column]]))}">{text}</a>'
            cells.append(f'<td style="{CELL_STYLE}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<div class="table-wrapper" style="overflow-x: auto;">'
            f'<table class="table {css_class}"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")


# Agents ------------------------------------------------------------------------------------------

def parameter_count(widths: Sequence[int]) -> int:
    """Weights and biases of an MLP with these layer widths, e.g. ``[8, 256, 256, 4]`` -> 69,124."""
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least two widths, got {list(widths)}")
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _span(values: Sequence[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return fmt.format(low) if low == high else f"{fmt.format(low)} to {fmt.format(high)}"


def agents_table(checkpoints: Sequence[Checkpoint]) -> pd.DataFrame:
    """The network, its size and the training budget: one row per quantity, one column per agent.

    Every number is read from the checkpoints' JSON: the policy network's layer widths
    (``architecture.net``), its parameters and float32 bytes computed from them, the training
    seeds, the environment steps trained, the step of the kept snapshot, the final evaluation's
    episodes and mean return, and the CPU seconds of training (ranges over seeds).
    """
    if not checkpoints:
        raise ValueError("agents_table needs at least one checkpoint, got none")
    rows = []
    groups: dict[tuple[str, str, str], list[Checkpoint]] = {}
    for ckpt in checkpoints:
        groups.setdefault((ckpt.env_id, ckpt.algo, pg_variant(ckpt.meta)), []).append(ckpt)
    for (env, algo, variant), group in groups.items():
        nets = {tuple(c.meta["architecture"]["net"]) for c in group}
        if len(nets) != 1:
            raise ValueError(f"{env} {algo} checkpoints have different networks: {sorted(nets)}")
        widths = nets.pop()
        params = parameter_count(widths)
        metas = [c.meta for c in group]
        rows.append({
            "environment": env,
            "algorithm": ALGO_NAMES.get(algo, algo) + ("" if variant == "n/a" else f" ({variant})"),
            "policy network (layer widths)": "-".join(str(w) for w in widths),
            "parameters": f"{params:,}",
            "float32 size (kB)": f"{params * FLOAT32_BYTES / 1000:.1f}",
            "training seeds": ", ".join(str(m["seed"]) for m in sorted(metas,
                                                                     key=lambda m: m["seed"])),
            "training budget (environment steps)": _span([m["train_steps"] for m in metas],
                                                         "{:,}"),
            "kept snapshot (step)": _span([m["selected_step"] for m in metas], "{:,}"),
            "final evaluation (episodes per seed)": _span(
                [m["final_eval"]["episodes"] for m in metas], "{:d}"),
            "mean return per seed": _span([m["final_eval"]["mean_return"] for m in metas],
                                          "{:.1f}"),
            "training CPU time per seed (s)": _span([m["train_cpu_seconds"] for m in metas],
                                                    "{:,.0f}"),
        })
    table = pd.DataFrame(rows)
    if table["environment"].duplicated().any():  # several agents of one environment
        table["environment"] = table["environment"] + " (" + table["algorithm"] + ")"
    by_env = table.set_index("environment").T
    return by_env.rename_axis(None, axis=1).rename_axis("quantity").reset_index()


# The evaluation protocol -------------------------------------------------------------------------

def protocol_table(settings: Mapping[str, Mapping] = PROFILE_SETTINGS) -> pd.DataFrame:
    """What each profile runs: seeds, episodes, levels and budgets, one column per profile.

    Read from ``settings`` (default :data:`rlcomp.experiments.plans.PROFILE_SETTINGS`) and from
    the plan of the pruning chapter (its evaluation seeds and episodes, which every chapter's plan
    shares). Episode ``i`` of an evaluation with seed ``s`` is seeded ``s + i``.
    """
    def levels(values: Sequence[float]) -> str:
        return f"{len(values)}: " + ", ".join(f"{100 * v:g}%" for v in values)

    columns: dict[str, list[str]] = {}
    for profile, s in settings.items():
        plan = chapter_plan(PRUNING, profile)
        first, episodes = plan["eval_seeds"][0], plan["episodes"]
        columns[profile] = [
            f"{len(s['train_seeds'])} ({', '.join(str(x) for x in s['train_seeds'])})",
            f"{episodes}",
            ", ".join(str(x) for x in plan["eval_seeds"]),
            f"{first} to {first + episodes - 1}",
            levels(s["levels"]),
            levels(s["grid_levels"]) + f" ({len(s['grid_levels']) ** 2} cells)",
            f"{s['finetune_steps']:,}",
            levels(s["finetune_levels"]),
            f"{s['distill_steps']:,}",
        ]
    what = ["training seeds per environment (the unit of replication)",
            "evaluation episodes per job", "evaluation seeds", "episode seeds",
            "levels of each method alone", "levels of the rank x pruning grid (per axis)",
            "fine-tuning budget (environment steps)", "fine-tuned levels",
            "distillation budget (environment steps)"]
    return pd.DataFrame({"quantity": what, **{f"{p} profile": v for p, v in columns.items()}})


def cost_protocol_table(results: pd.DataFrame) -> pd.DataFrame:
    """How the policy's time per decision was measured, as recorded in the results.

    The A/B pairs and decisions per timed block of every ``policy_time_ratio`` measurement in
    ``results`` (``book/data/results.csv``), as their range over jobs, and how many jobs measured
    it.
    """
    rows = []
    for metric, what in (("policy_time_pairs", "A/B pairs per measurement (count)"),
                         ("policy_time_decisions", "decisions per timed block (count)")):
        values = results.loc[results["metric"] == metric, "value"].dropna()
        rows.append({"quantity": what,
                     "value": _span([int(v) for v in values], "{:,d}") if len(values) else
                     "not recorded"})
    jobs = int((results["metric"] == "policy_time_ratio").sum())
    rows.append({"quantity": "jobs with a policy-time measurement (count)", "value": f"{jobs:,}"})
    return pd.DataFrame(rows)


# Intervals and their coverage --------------------------------------------------------------------

def coverage_table(rows: Sequence[Mapping], sims: int) -> pd.DataFrame:
    """The simulated coverage of each interval method in each scenario, with its Monte Carlo error.

    Args:
        rows: from :func:`rlcomp.analysis.coverage.simulate_coverage`.
        sims: the simulated studies behind each row.

    Returns:
        One row per scenario: the scenario in words, the true value in its unit, and per method
        the coverage in % with its Monte Carlo standard error (in percentage points) and the
        interval's mean width in the scenario's unit.
    """
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        unit = SCENARIO_UNITS[r["scenario"]]
        truth = f"{r['truth']:.1f}" + (f" ± {r['truth_se']:.2f}" if r["truth_se"] else "")
        row = out.setdefault(r["scenario"], {"scenario": SCENARIO_WORDS[r["scenario"]],
                                             "true value": f"{truth} {unit}"})
        name = METHOD_WORDS[r["method"]]
        se = monte_carlo_se(r["coverage"], sims)
        row[f"{name}: coverage ± s.e. (%)"] = f"{100 * r['coverage']:.1f} ± {100 * se:.1f}"
        row[f"{name}: mean width"] = f"{r['width']:.1f} {unit}"
    return pd.DataFrame(list(out.values()))


# Claims, margins and what is not judged ---------------------------------------------------------

def _empty_results() -> pd.DataFrame:
    """A tidy results frame with no rows (the columns of ``ResultStore.load``)."""
    frame = pd.DataFrame(columns=list(COLUMNS))
    return frame.astype({"finetuned": "bool", "value": "float64", "level": "float64",
                         "train_seed": "int64", "eval_seed": "int64"})


def margins_table(entries: Sequence[verdict_table.Entry] = verdict_table.ENTRIES) -> pd.DataFrame:
    """Each claim's test: the poster's sentence, what is measured, the rule with its margin.

    Each entry's claim function runs on an empty results frame, which gives its rule, threshold
    and unit as the code fixes them (no measurement). ``judged`` says whether the verdict stands
    or is ``not judged`` (an environment-dominated measure); ``figure`` is the page and anchor of
    our figure.
    """
    empty = _empty_results()
    rows = []
    for entry in entries:
        r = entry.measure(empty)
        rows.append({
            "claim (the poster's words)": r.claim.text,
            "poster": r.claim.figure,
            "measure": r.measure,
            "rule and margin": rule_text(r.rule, r.threshold, r.unit, r.confidence),
            "verdict": NOT_JUDGED if r.environment_dominated else "judged",
            "our figure": f"{entry.chapter}#{entry.figure}",
        })
    return pd.DataFrame(rows).drop_duplicates(ignore_index=True)


def margins_html(table: pd.DataFrame) -> str:
    """:func:`margins_table` as HTML, the figure column as links into the book."""
    linked = table.assign(link=[f"{page}.html#{anchor}" for page, anchor in
                                (f.split("#", 1) for f in table["our figure"])],
                          **{"our figure": [f.split("#", 1)[0] for f in table["our figure"]]})
    return html_table(linked, links={"our figure": "link"})


def environment_dominated_table(
        metrics: Sequence[str] = rollout.ENVIRONMENT_DOMINATED) -> pd.DataFrame:
    """The metrics that mostly measure the simulator and the runtime, with their units.

    ``claim measure`` names the verdict table's measure where a claim uses the metric (those
    verdicts are ``not judged``).
    """
    return pd.DataFrame([{"metric": m, "what it is": DOMINATED_WORDS.get(m, m),
                          "unit": DOMINATED_UNITS.get(m, ""),
                          "claim measure": MEASURE_NAMES.get(m, "")} for m in metrics])


# Normalization and the machine -------------------------------------------------------------------

def _mean_return(results: pd.DataFrame, env: str, seed: int, spec: str) -> float:
    rows = results[(results["env"] == env) & (results["train_seed"] == seed)
                   & (results["spec"] == spec) & ~results["finetuned"].astype(bool)
                   & (results["metric"] == "return_mean")]
    if rows.empty:
        raise ValueError(f"no naive return_mean of {spec!r} for {env} seed {seed} in the results")
    return float(rows["value"].mean())


def normalization_example(results: pd.DataFrame, spec: str = "prune=0.5", seed: int = 0,
                          envs: Sequence[str] = STUDY_ENVS) -> pd.DataFrame:
    """Normalized return of one compressed model per environment, from its three mean returns.

    ``100 * (x - random) / (dense - random)`` (:func:`rlcomp.stats.normalized`), with ``x`` the
    mean return of ``spec``, ``random`` and ``dense`` those of the random policy and the
    uncompressed agent of the same training seed on the same evaluation episodes (naive rows of
    ``results``; where a job was run by several chapters, the mean of its identical returns).
    """
    rows = []
    for env in envs:
        random_, dense, x = (_mean_return(results, env, seed, s) for s in ("random", "dense", spec))
        rows.append({"environment": env, "training seed": seed,
                     "random policy (return)": f"{random_:.1f}",
                     "dense agent (return)": f"{dense:.1f}",
                     f"{spec} (return)": f"{x:.1f}",
                     f"{spec} normalized (%)": f"{100 * normalized(x, random_, dense):.1f}"})
    return pd.DataFrame(rows)


def machine_table(results: pd.DataFrame,
                  columns: Mapping[str, str] = PROVENANCE_WORDS) -> pd.DataFrame:
    """The machine and software every result was measured with (``results``' provenance columns).

    One row per provenance column present; several distinct values are joined by ``;`` (they
    would say the results mix machines or versions).
    """
    rows = []
    for column, words in columns.items():
        if column not in results.columns:
            continue
        values = sorted({str(v) for v in results[column].dropna()})
        rows.append({"what": words, "value": "; ".join(values) if values else "not recorded"})
    rows.append({"what": "results measured (rows)", "value": f"{len(results):,}"})
    return pd.DataFrame(rows)


# Facts the limitations page cites -----------------------------------------------------------------

INT8_TIME = ("quant-cpu-ram", "policy time per decision")
"""The verdict row (claim, measure) of int8's change of the policy's time per decision."""


def _env_key(env: str) -> str:
    return env.split("-")[0].lower()


def study_facts(checkpoints: Sequence[Checkpoint], results: pd.DataFrame,
                verdicts: pd.DataFrame,
                settings: Mapping[str, Mapping] = PROFILE_SETTINGS) -> dict[str, int | str]:
    """The numbers the limitations page quotes (by glue), each read from code or a file.

    Keys: ``envs`` (environments in the results), ``train_seeds``, ``episodes``,
    ``finetune_steps`` and ``distill_steps`` (the full profile's), ``largest_params`` (the
    largest compressed network, in parameters), ``cpu``, ``torch``, ``gymnasium`` (from the
    results' provenance) and ``int8_time_ENV`` for each
    environment of ``verdicts`` (``book/data/verdicts.csv``): int8's change of the policy's time
    per decision from dense, in % with its interval.
    """
    full = settings["full"]
    facts: dict[str, int | str] = {
        "envs": int(results["env"].nunique()),
        "train_seeds": len(full["train_seeds"]),
        "episodes": int(full["episodes"]),
        "finetune_steps": f"{full['finetune_steps']:,}",
        "distill_steps": f"{full['distill_steps']:,}",
    }
    params = [parameter_count(c.meta["architecture"]["net"]) for c in checkpoints]
    facts["largest_params"] = f"{max(params):,}" if params else "none"
    for column in ("cpu_model", "torch", "gymnasium"):
        values = sorted({str(v) for v in results[column].dropna()})
        facts[column.removesuffix("_model")] = "; ".join(values)
    confidence = IntervalSettings().confidence
    rows = verdicts[(verdicts["claim"] == INT8_TIME[0]) & (verdicts["measure"] == INT8_TIME[1])]
    for row in rows.itertuples():
        facts[f"int8_time_{_env_key(row.env)}"] = (
            f"{row.estimate:+.0f}% ({confidence:.0%} CI {row.ci_low:+.0f}% to "
            f"{row.ci_high:+.0f}%)")
    return facts
