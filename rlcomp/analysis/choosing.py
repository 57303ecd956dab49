"""``rlcomp choose`` in the book (chapter 07): a search's outcome in words and tables.

Everything here reads the search's JSON summary (``report.json``, the dict
:func:`rlcomp.choose.report.summary` returns) and its candidates as JSON-ready dicts
(:func:`rlcomp.choose.report.candidate_dicts`), so that this layer does not import the search.

:func:`frontier_display` formats a search's Pareto frontier, :func:`recommendation_markdown`
explains its recommendation, :func:`headline_table` holds the numbers the regression baseline
checks and :func:`headline_display` shows them to a reader (sizes in kB, factors, %);
:func:`draw_search` and :func:`search_figure` draw every raced candidate.
:func:`comparison_table` sets each recommendation beside chapter 06's smallest model of the poster's
single global methods (pruning, rank reduction, int8: :data:`POSTER_SINGLE`) that keeps the return
in ``book/data/frontier.csv`` (:func:`read_frontier`), and :func:`comparison_markdown`
says it in words, naming what the table lacks.

The two differ in what they are about: chapter 06's rule is on the **mean over training seeds**
of a model's normalized return (five agents per environment in the full profile), the search's on
the **lower end of the interval** over evaluation episodes of **one** policy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from rlcomp.analysis.frontier import (
    FRONTIER_COLUMNS,
    KEEP,
    RETURN_HEADING,
    factor_cell,
    percent_cell,
    set_bytes_axis,
    size_cell,
)
from rlcomp.analysis.plotting import PAGE_WIDTH_IN, book_style, colour, marker
from rlcomp.analysis.tables import interval_cell

FRONTIER_FILE = "frontier.csv"
"""Chapter 06's table of the smallest model per family that keeps the return (in ``book/data``)."""

POSTER_SINGLE = ("prune", "lowrank", "int8")
"""The poster's methods, each alone and global (chapter 06's families of that name): pruning,
rank reduction, 8-bit quantization."""

STATUS_ORDER = ("accepted", "dropped", "undecided", "retired", "not finished", "skipped",
                "not tried", "failed")
"""The order in which a search's candidate statuses are counted."""


def _num(value) -> float:
    return math.nan if value is None else float(value)


def _interval(row: Mapping, fmt: str = "{:.1f}") -> str:
    return interval_cell(_num(row.get("normalized_return")), _num(row.get("ci_low")),
                         _num(row.get("ci_high")), fmt) or "-"


# One search ---------------------------------------------------------------------------------------

def frontier_display(summary: Mapping) -> pd.DataFrame:
    """A search's Pareto frontier for a page: one row per candidate, smallest first.

    Indexed by the candidate (its spec, with a fine-tuning budget if any): its status, model
    size (kB), factor against the dense policy, normalized return with its interval (%) and
    episodes played.
    """
    rows = [{"candidate": c["name"], "status": c["status"], "model size": size_cell(
             _num(c["bytes"])) or "-", "smaller than dense": factor_cell(_num(c["factor"])) or "-",
             RETURN_HEADING: _percent(c), "episodes": c["episodes"]} for c in summary["frontier"]]
    return pd.DataFrame(rows, columns=["candidate", "status", "model size", "smaller than dense",
                                       RETURN_HEADING, "episodes"]).set_index("candidate")


def _percent(row: Mapping) -> str:
    return percent_cell(_num(row.get("normalized_return")), _num(row.get("ci_low")),
                        _num(row.get("ci_high"))) or "-"


def status_counts(candidates: Sequence[Mapping]) -> dict[str, int]:
    """How many candidates ended in each status, in :data:`STATUS_ORDER` (dense left out)."""
    counts = Counter(c["status"] for c in candidates if c["status"] != "dense")
    order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
    return {s: counts[s] for s in order}


def _count_words(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"


def _parity_words(parity: Mapping | None) -> str:
    if parity is None:
        return "No ONNX export was written."
    verdict = "passed" if parity["ok"] else "FAILED"
    diff = parity["max_abs_action_diff"]
    # a greedy policy's action differences are differences of action indices (whole numbers)
    same = (f"{100 * parity['actions_agree']:.1f}% identical actions, "
            if float(diff).is_integer() else "")
    return (f"Its ONNX export, run in ONNX Runtime, against PyTorch on "
            f"{parity['observations']:,} recorded observations: {same}largest action "
            f"difference {diff:.2g}, largest network-output difference "
            f"{parity['max_abs_output_diff']:.2g}: parity {verdict}.")


def _closest_words(summary: Mapping, keep: float) -> str:
    """The smallest frontier candidate that was not dropped, when nothing was accepted."""
    open_ = [c for c in summary["frontier"] if c["status"] not in ("dropped", "dense")]
    if not open_:
        return f"Every smaller candidate on the frontier was dropped (below {keep:g}%). "
    c = open_[0]
    return (f"The smallest candidate on the frontier that was not dropped, `{c['name']}` "
            f"(factor {c['factor']:,.1f}), ended {c['status']} at {_interval(c)}% after "
            f"{c['episodes']} episodes. ")


def _not_done_words(summary: Mapping, families: Sequence[str],
                    every_family: Sequence[str]) -> str:
    left_out = [f for f in every_family if f not in families]
    parts = []
    if left_out:
        parts.append(f"the families {', '.join(f'`{f}`' for f in left_out)} were not in this "
                     "search")
    reasons = Counter(c["status"] for c in summary["not_done"])
    if reasons:
        parts.append(f"{len(summary['not_done'])} candidates were not raced to a decision ("
                     + ", ".join(f"{n} {s}" for s, n in sorted(reasons.items())) + ")")
    if not parts:
        return "Every candidate of every family was raced to a decision."
    return "Not tried: " + "; ".join(parts) + "."


def recommendation_markdown(label: str, summary: Mapping, candidates: Sequence[Mapping],
                            families: Sequence[str], every_family: Sequence[str]) -> str:
    """One paragraph on a search's recommendation, every number from ``summary``.

    Args:
        label: what the policy is, in words (e.g. ``our Double DQN agent, training seed 0``).
        summary: the search's JSON summary.
        candidates: every candidate as a JSON-ready dict (its status and origin are read).
        families: the method families the search tried.
        every_family: every family the search can try (those missing are named as not tried).
    """
    teacher = summary["teacher"]
    keep, dense_bytes = summary["keep"], summary["dense_bytes"]
    name = summary["name"]
    dense, random = summary["dense"], summary["random"]
    head = (f"**{teacher['env_id']}, {label}** (`{teacher['name']}`). Over {dense['episodes']} "
            f"episodes its mean return is {dense['mean_return']:.1f} [{dense['ci_low']:.1f}, "
            f"{dense['ci_high']:.1f}], random actions' {random['mean_return']:.1f}: the anchors "
            "of the normalized return (100 and 0). ")
    counts = status_counts(candidates)
    raced = sum(n for s, n in counts.items() if s not in ("skipped", "not tried", "failed"))
    if name == "dense":
        body = (f"No compression kept the return with enough confidence, so `rlcomp choose` "
                f"recommends the policy as it is: {dense_bytes:,} model bytes. "
                + _closest_words(summary, keep))
    else:
        origin = next((c["origin"] for c in candidates if c["name"] == name), "")
        found = {"book": "one of chapter 06's families", "sensitivity":
                 "a per-layer candidate of the sensitivity pass",
                 "student": "a distilled student"}.get(origin, origin)
        tuned = f", fine-tuned for {summary['finetune_steps']:,} steps" \
            if summary["finetune_steps"] else ""
        body = (f"`rlcomp choose` recommends `{summary['recommended']}`{tuned} ({found}): "
                f"{summary['bytes']:,} model bytes ({summary['file_bytes']:,} bytes of file), "
                f"{summary['factor']:,.1f} times smaller than the dense policy's "
                f"{dense_bytes:,}. Its normalized return is {_interval(summary)}% over "
                f"{summary['episodes']} episodes (interval at "
                f"{100 * summary['look_confidence']:.2f}% per look); the lower end is at least "
                f"the bound of {keep:g}%. ")
    share = summary["racing_share"]
    share_text = "" if share is None else f" ({100 * share:.0f}%)"
    budget = ("the budget ran out" if summary["budget_exhausted"]
              else "the search ended before its budget did")
    body += (f"Of {summary['candidates']} candidates, {raced} were raced: {_count_words(counts)}. "
             f"They played {summary['episodes_used']:,} episodes, against "
             f"{summary['episodes_if_exhaustive']:,} had every raced candidate played all "
             f"{summary['looks'][-1]}{share_text}, beside {summary['reference_episodes']:,} "
             f"episodes of the dense and random references. The search took "
             f"{summary['seconds']:.0f} s of a {summary['budget_seconds']:.0f} s budget ({budget}; "
             f"{summary['store']['blocks_reused']} evaluation blocks and "
             f"{summary['store']['builds_reused']} builds came from the results store). ")
    if name != "dense":
        body += _parity_words(summary["parity"]) + " "
    return head + body + _not_done_words(summary, families, every_family)


def headline_table(summaries: Sequence[Mapping]) -> pd.DataFrame:
    """What each search recommends, indexed by ``env`` and policy (the regression baseline's cell).

    The recommendation, its model bytes, the dense policy's, the factor, the normalized return with
    its interval, its episodes, the episodes of all candidates and the ONNX parity; numbers
    rounded to 4 decimals.
    """
    rows = []
    for s in summaries:
        rows.append({"env": s["teacher"]["env_id"], "policy": s["teacher"]["name"],
                     "recommended": s["name"], "model_bytes": s["bytes"],
                     "dense_bytes": s["dense_bytes"], "factor": round(s["factor"], 4),
                     "normalized_return": round(s["normalized_return"], 4),
                     "ci_low": round(_num(s["ci_low"]), 4),
                     "ci_high": round(_num(s["ci_high"]), 4), "episodes": s["episodes"],
                     "episodes_used": s["episodes_used"],
                     "parity": None if s["parity"] is None else bool(s["parity"]["ok"])})
    return pd.DataFrame(rows).set_index(["env", "policy"])


def headline_display(summaries: Sequence[Mapping]) -> pd.DataFrame:
    """:func:`headline_table` for a page, indexed by environment and policy.

    Sizes in kB, the factor as ``4.0x``, the normalized return in % with its interval, the ONNX
    parity in words.
    """
    rows = []
    for s in summaries:
        parity = s["parity"]
        rows.append({
            "environment": s["teacher"]["env_id"], "policy": s["teacher"]["name"],
            "recommended": s["name"], "model size": size_cell(_num(s["bytes"])),
            "dense model size": size_cell(_num(s["dense_bytes"])),
            "smaller than dense": factor_cell(_num(s["factor"])),
            RETURN_HEADING: _percent(s),
            "episodes of the recommendation": s["episodes"],
            "episodes of all candidates": f"{s['episodes_used']:,}",
            "ONNX parity": "no export" if parity is None else
            ("passed" if parity["ok"] else "failed")})
    return pd.DataFrame(rows).set_index(["environment", "policy"])


# Against chapter 06 -------------------------------------------------------------------------------

def read_frontier(path: str | Path) -> pd.DataFrame | None:
    """Chapter 06's ``frontier.csv``, or None if there is no such file.

    Raises:
        ValueError: if the file lacks one of the columns
            :data:`~rlcomp.analysis.frontier.FRONTIER_COLUMNS`.
    """
    path = Path(path)
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    missing = [c for c in FRONTIER_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {', '.join(missing)}")
    return table


def poster_best(frontier: pd.DataFrame, env: str, keep: float = KEEP) -> pd.Series | None:
    """Chapter 06's smallest model of the poster's single global methods that keeps ``keep``.

    Among the rows of ``env`` whose family is one of :data:`POSTER_SINGLE` and whose mean
    normalized return is at least ``keep``, the one with the fewest model bytes; None if none.
    """
    rows = frontier[(frontier["env"] == env) & frontier["method"].isin(POSTER_SINGLE)
                    & (frontier["normalized_return"] >= keep)]
    if rows.empty:
        return None
    return rows.sort_values(["bytes", "method"]).iloc[0]


COMPARISON_COLUMNS = ("env", "policy", "recommended", "bytes", "factor", "normalized_return",
                      "ci_low", "ci_high", "episodes", "poster_method", "poster_spec",
                      "poster_bytes", "poster_factor", "poster_return", "poster_ci_low",
                      "poster_ci_high", "poster_seeds", "gain")
"""The columns of :func:`comparison_table`: the search's recommendation (its normalized return
over ``episodes`` of one policy), chapter 06's best single poster method (``poster_*``, its
return the mean over ``poster_seeds`` training seeds), and ``gain``, the recommendation's factor
over the poster method's (NaN where chapter 06 has no such row)."""


def comparison_table(summaries: Sequence[Mapping], frontier: pd.DataFrame | None,
                     keep: float = KEEP) -> pd.DataFrame:
    """Each search's recommendation beside :func:`poster_best` for its environment."""
    rows = []
    for s in summaries:
        env = s["teacher"]["env_id"]
        best = None if frontier is None else poster_best(frontier, env, keep)
        row = {"env": env, "policy": s["teacher"]["name"], "recommended": s["name"],
               "bytes": s["bytes"], "factor": s["factor"],
               "normalized_return": s["normalized_return"], "ci_low": _num(s["ci_low"]),
               "ci_high": _num(s["ci_high"]), "episodes": s["episodes"]}
        if best is None:
            row.update({c: math.nan for c in COMPARISON_COLUMNS if c.startswith("poster_")})
            row.update(poster_method=None, poster_spec=None, gain=math.nan)
        else:
            row.update(poster_method=best["method"], poster_spec=best["spec"],
                       poster_bytes=int(best["bytes"]), poster_factor=float(best["factor"]),
                       poster_return=float(best["normalized_return"]),
                       poster_ci_low=float(best["ci_low"]), poster_ci_high=float(best["ci_high"]),
                       poster_seeds=int(best["n_seeds"]),
                       gain=float(s["factor"]) / float(best["factor"]))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`comparison_table` for a page, one row per policy.

    Sizes in kB, factors as ``4.0x``, returns in % with their intervals.
    """
    def poster(r) -> str:
        return "-" if pd.isna(r.poster_method) else f"{r.poster_method}: {r.poster_spec}"

    def returns(estimates, lows, highs) -> list[str]:
        return [percent_cell(e, lo, hi) or "-" for e, lo, hi in zip(estimates, lows, highs,
                                                                     strict=True)]

    out = pd.DataFrame({
        "environment": table["env"], "policy": table["policy"],
        "choose recommends": table["recommended"],
        "model size": [size_cell(_num(v)) or "-" for v in table["bytes"]],
        "smaller than dense": [factor_cell(_num(v)) or "-" for v in table["factor"]],
        RETURN_HEADING: returns(table["normalized_return"], table["ci_low"], table["ci_high"]),
        "chapter 06, best poster method": [poster(r) for r in table.itertuples()],
        "its model size": [size_cell(_num(v)) or "-" for v in table["poster_bytes"]],
        "its factor": [factor_cell(_num(v)) or "-" for v in table["poster_factor"]],
        "its return, % of dense [95% CI]": returns(table["poster_return"], table["poster_ci_low"],
                                                   table["poster_ci_high"]),
        "choose's factor / chapter 06's": ["-" if math.isnan(v) else f"{v:,.2f}x"
                                           for v in table["gain"]],
    })
    return out.set_index(["environment", "policy"])


def comparison_markdown(table: pd.DataFrame, frontier: pd.DataFrame | None, source: str,
                        keep: float = KEEP) -> str:
    """One bullet per search: its recommendation against chapter 06's best single poster method.

    Says plainly when ``source`` (chapter 06's table) is missing, or has no row of the poster's
    single methods for the environment, or none of them keeps ``keep``.
    """
    if frontier is None:
        return (f"`{source}` is not there yet: chapter 06 writes it when it runs in the full "
                "profile. Without it there is nothing to compare the recommendations with.")
    lines = []
    for r in table.itertuples(index=False):
        head = f"- **{r.env}**, `{r.policy}`: "
        if pd.isna(r.poster_method):
            mine = frontier[(frontier["env"] == r.env) & frontier["method"].isin(POSTER_SINGLE)]
            if mine.empty:
                lines.append(head + f"`{source}` has no row of the poster's single methods "
                             f"({', '.join(POSTER_SINGLE)}) for {r.env}, so there is nothing to "
                             "compare with.")
            else:
                best = mine.sort_values("normalized_return", ascending=False).iloc[0]
                lines.append(head + f"in `{source}` none of the poster's single methods keeps "
                             f"{keep:g}% on {r.env}; the closest is {best['method']} "
                             f"(`{best['spec']}`, {best['normalized_return']:.1f}%). The "
                             f"search's `{r.recommended}` is {r.factor:,.1f} times smaller than "
                             "dense.")
            continue
        if r.gain > 1:
            verdict = f"compresses {r.gain:,.2f} times more than"
        elif r.gain < 1:
            verdict = f"compresses {1 / r.gain:,.2f} times less than"
        else:
            verdict = "compresses as much as"
        mine = interval_cell(r.normalized_return, r.ci_low, r.ci_high, "{:.1f}")
        theirs = interval_cell(r.poster_return, r.poster_ci_low, r.poster_ci_high, "{:.1f}")
        poster = (f"chapter 06's best single poster method, {r.poster_method} `{r.poster_spec}` "
                  f"({int(r.poster_bytes):,} model bytes, factor {r.poster_factor:,.1f}, "
                  f"{theirs}% as the mean over {int(r.poster_seeds)} training seeds)")
        if r.recommended == "dense":
            lines.append(head + "the search accepted no compression of this policy (with at "
                         f"most {r.episodes} episodes per candidate) and keeps it dense "
                         f"({r.bytes:,} model bytes), while {poster} compresses "
                         f"{r.poster_factor:,.1f} times.")
            continue
        lines.append(
            head + f"the search's `{r.recommended}` ({r.bytes:,} model bytes, factor "
            f"{r.factor:,.1f}, {mine}% over {r.episodes} episodes of this one policy) {verdict} "
            f"{poster}.")
    return "\n".join(lines)


def searches_markdown(profile: str, commands: Sequence[str], summaries: Sequence[Mapping]) -> str:
    """What this execution ran: the profile, the searches as commands, and their shared settings.

    Args:
        profile: ``smoke`` or ``full``.
        commands: the ``rlcomp choose`` command of each search, as a user types it.
        summaries: the searches' JSON summaries (their shared settings are read from the first).
    """
    first = summaries[0]
    lines = []
    if profile == "smoke":
        lines += ["This page was executed in the `smoke` profile: tiny searches whose numbers are "
                  "placeholders, not results. The `full` profile runs the same commands without "
                  "the options after `--objective bytes`.", ""]
    else:
        lines += [f"This page was executed in the `{profile}` profile.", ""]
    lines += ["The searches, as commands (the chapter also passes `--store`, `--out` and "
              "`--quiet`):", "", "```console"]
    lines += [f"$ {c}" for c in commands]
    lines += ["```", ""]
    looks = ", ".join(str(n) for n in first["looks"])
    lines.append(
        f"Each keeps {first['keep']:g}% of its dense policy's normalized return (`--max-drop "
        f"{first['max_drop']:g}`) at the lower end of a candidate's interval, and minimizes "
        f"{first['objective']}. A candidate's interval is looked at after {looks} episodes, "
        f"each look at {100 * first['look_confidence']:.2f}% confidence "
        f"({100 * first['confidence']:g}% over all looks); the budget of a search is "
        f"{first['budget_seconds']:.0f} s.")
    return "\n".join(lines)


# The figure ---------------------------------------------------------------------------------------

FIGURE_STATUSES = ("accepted", "dropped", "undecided", "retired", "not finished")
"""The statuses of raced candidates, in the order of their colour and marker in
:func:`draw_search`."""

OBJECTIVE_AXES = {"bytes": ("Model bytes (log scale)", 1.0),
                  "latency": ("ONNX time per decision (µs, log scale)", 1e6),
                  "macs": ("Multiply-accumulates per decision (log scale)", 1.0)}
"""Axis name and factor from the stored unit, per objective of a search."""


def _objective_axis(ax: Axes, objective: str, low: float, high: float) -> None:
    if objective == "bytes":
        set_bytes_axis(ax, low, high)
        return
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    subs = (1.0,) if math.log10(high / low) >= 2 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _value(c: Mapping, key: str) -> float:
    return _num(c.get(key))


def draw_search(ax: Axes, summary: Mapping, candidates: Sequence[Mapping]) -> list[Mapping]:
    """Normalized return (with its interval) against the objective, one point per raced candidate.

    Each status has a colour and marker of the book's palette; the grey line joins the Pareto
    frontier, the black star is the dense policy, the ring marks the recommendation and the
    dashed line is the return bound. No legend is drawn (:func:`search_figure` draws one).

    Args:
        ax: the axes to draw into.
        summary: the search's JSON summary (frontier, bound, recommendation, dense size).
        candidates: every candidate as a JSON-ready dict (dense left out).

    Returns:
        The candidates drawn (raced, with a finite return).
    """
    objective = summary["objective"]
    label, scale = OBJECTIVE_AXES.get(objective, (objective, 1.0))
    points = [c for c in candidates if c.get("episodes") and math.isfinite(_value(
        c, "normalized_return")) and math.isfinite(_value(c, "objective_value"))]
    for i, status in enumerate([*FIGURE_STATUSES, *sorted({c["status"] for c in points}
                                                         - set(FIGURE_STATUSES))]):
        mine = [c for c in points if c["status"] == status]
        if not mine:
            continue
        y = np.array([_value(c, "normalized_return") for c in mine])
        below = np.nan_to_num(y - np.array([_value(c, "ci_low") for c in mine]), posinf=0.0)
        above = np.nan_to_num(np.array([_value(c, "ci_high") for c in mine]) - y, posinf=0.0)
        ax.errorbar([scale * _value(c, "objective_value") for c in mine], y,
                    yerr=np.clip([below, above], 0.0, None), fmt=marker(i), ms=5,
                    color=colour(i), elinewidth=0.8, capsize=2, label=status)
    front = sorted((c for c in summary["frontier"] if math.isfinite(_value(c, "objective_value"))
                    and math.isfinite(_value(c, "normalized_return"))),
                   key=lambda c: _value(c, "objective_value"))
    ax.plot([scale * _value(c, "objective_value") for c in front],
            [_value(c, "normalized_return") for c in front], "-", color="0.5", lw=1.0,
            zorder=0, label="Pareto frontier")
    dense = next((c for c in summary["frontier"] if c["status"] == "dense"), None)
    dense_x = (_value(dense, "objective_value") if dense is not None
               else float(summary["dense_bytes"]) if objective == "bytes" else math.nan)
    if math.isfinite(dense_x):
        ax.plot([scale * dense_x], [100.0], "*", ms=12, color="k", zorder=5, label="dense")
    rec_x = _value(summary, "objective_value")
    if math.isfinite(rec_x):
        ax.plot([scale * rec_x], [_value(summary, "normalized_return")], "o", ms=13, mfc="none",
                mec="k", mew=1.0, zorder=6, label=f"recommended: {summary['name']}")
    ax.axhline(summary["keep"], ls="--", color="0.3", lw=0.9,
               label=f"bound: {summary['keep']:g}% of dense")
    xs = [scale * _value(c, "objective_value") for c in points] + [scale * v for v in (
        dense_x, rec_x) if math.isfinite(v)]
    xs = [x for x in xs if x > 0] or [1.0]
    _objective_axis(ax, objective, min(xs) / 1.6, max(xs) * 1.6)
    finite = [_value(c, "normalized_return") for c in points]
    upper = [v for v in (_value(c, "ci_high") for c in points) if math.isfinite(v)]
    ax.set_ylim(max(min([*finite, 0.0]) - 10, -150), min(max([*finite, *upper, 100.0]) + 5, 200))
    ax.set_xlabel(label)
    ax.set_ylabel("Return (% of dense)")
    ax.set_title(f"{summary['teacher']['name']}: {len(points)} candidates raced")
    return points


def search_figure(summary: Mapping, candidates: Sequence[Mapping],
                  height: float = 4.6) -> Figure:
    """:func:`draw_search` as a page-wide figure in the book style, its legend below the axes.

    Returns:
        The figure (:data:`~rlcomp.analysis.plotting.PAGE_WIDTH_IN` wide); pass it through
        :func:`~rlcomp.analysis.plotting.readable` before showing it, and close it
        (``plt.close``) after.
    """
    import matplotlib.pyplot as plt

    with book_style():
        fig = plt.figure(figsize=(PAGE_WIDTH_IN, height), layout="constrained")
        ax = fig.subplots()
        draw_search(ax, summary, candidates)
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda k: labels[k] not in FIGURE_STATUSES)
        handles, labels = [handles[k] for k in order], [labels[k] for k in order]
        renderer = fig._get_renderer()
        for columns in range(min(4, len(labels)), 0, -1):
            legend = fig.legend(handles, labels, loc="outside lower center", ncols=columns,
                                frameon=False)
            if legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width or columns == 1:
                break
            legend.remove()
    return fig
