"""The search's report: one JSON summary, a Markdown page and a PNG of the frontier.

:func:`summary` is the JSON object (``--json`` prints it as the last line); :func:`markdown` the
page; :func:`frontier_figure` draws the frontier into a given axes; :func:`write_report` writes
``report.json``, ``report.md`` and ``frontier.png`` into the output folder, each atomically.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from matplotlib.axes import Axes

from rlcomp.choose.artifacts import Artifacts
from rlcomp.choose.racing import DENSE
from rlcomp.choose.search import OBJECTIVES, ChooseResult
from rlcomp.files import atomic_write

REPORT_FILE, FIGURE_FILE, JSON_FILE = "report.md", "frontier.png", "report.json"
"""Names of the report's files in the output folder."""

OBJECTIVE_LABELS = {"bytes": "model bytes", "latency": "ONNX latency (s)",
                    "macs": "multiply-accumulates per decision"}
"""Axis and table names of the objectives."""

STATUS_COLORS = {"accepted": "tab:green", "dropped": "tab:red", "undecided": "tab:orange",
                 "retired": "tab:blue", "not finished": "tab:purple", "dense": "black"}
"""Marker colour of each candidate status in the figure."""


def _num(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def summary(result: ChooseResult, artifacts: Artifacts | None = None,
            out_dir: str | Path | None = None) -> dict:
    """The JSON summary: the recommendation's fields, the frontier, and what the run cost."""
    config, rec = result.config, result.recommended
    dense_bytes = result.dense_bytes
    fields = rec.to_dict(config.objective, dense_bytes)
    share = (result.episodes_used / result.episodes_if_exhaustive
             if result.episodes_if_exhaustive else None)
    out = Path(out_dir) if out_dir is not None else None
    return {
        "recommended": rec.spec, "name": rec.name, "finetune_steps": rec.finetune_steps,
        "artifact": None if artifacts is None else str(artifacts.policy_file),
        "onnx": None if artifacts is None else str(artifacts.onnx_file),
        "report": None if out is None else str(out / REPORT_FILE),
        "figure": None if out is None else str(out / FIGURE_FILE),
        "bytes": fields["bytes"], "file_bytes": fields["file_bytes"],
        "dense_bytes": int(dense_bytes), "factor": fields["factor"],
        "objective": config.objective, "objective_value": fields["objective_value"],
        "latency_onnx_s": fields["latency_onnx_s"], "macs": fields["macs"],
        "normalized_return": fields["normalized_return"], "ci_low": fields["ci_low"],
        "ci_high": fields["ci_high"], "mean_return": _num(rec.mean_return),
        "episodes": rec.episodes, "seeds": fields["seeds"],
        "max_drop": config.max_drop, "keep": config.keep,
        "confidence": config.plan.confidence, "look_confidence": config.plan.look_confidence,
        "looks": list(config.plan.looks),
        "episodes_used": result.episodes_used,
        "episodes_if_exhaustive": result.episodes_if_exhaustive, "racing_share": share,
        "reference_episodes": result.dense.episodes + result.random.episodes,
        "episodes_run": result.counts.episodes_run, "builds_run": result.counts.builds_run,
        "store": result.counts.to_dict(),
        "seconds": result.seconds, "budget_seconds": config.budget_seconds,
        "budget_exhausted": result.budget_exhausted, "phases": result.phases,
        "seed": config.seed, "teacher": result.teacher,
        "dense": result.dense.to_dict(), "random": result.random.to_dict(),
        "parity": None if artifacts is None else artifacts.parity.to_dict(),
        "training": fields["training"],
        "frontier": [c.to_dict(config.objective, dense_bytes) for c in result.frontier],
        "not_done": [{"name": c.name, "status": c.status, "reason": c.reason}
                     for c in result.not_done],
        "candidates": len(result.candidates) - 1,
    }


def candidate_dicts(result: ChooseResult) -> list[dict]:
    """Every candidate but the dense reference as JSON-ready dicts (``CandidateResult.to_dict``)."""
    return [c.to_dict(result.config.objective, result.dense_bytes) for c in result.candidates
            if c.name != DENSE]


def frontier_figure(ax: Axes, result: ChooseResult) -> None:
    """Normalized return (with its interval) against the objective, one point per raced candidate.

    Colours give each candidate's status; the dashed line is the return bound, the line through
    points the Pareto frontier, the star the recommendation.
    """
    objective = result.config.objective
    points = [c for c in result.candidates if c.episodes > 0]
    for status, color in STATUS_COLORS.items():
        chosen = [c for c in points if c.status == status]
        if not chosen:
            continue
        y = [c.normalized_return for c in chosen]
        low = [max(c.normalized_return - c.ci_low, 0) if math.isfinite(c.ci_low) else 0
               for c in chosen]
        high = [max(c.ci_high - c.normalized_return, 0) if math.isfinite(c.ci_high) else 0
                for c in chosen]
        ax.errorbar([c.objective for c in chosen], y, yerr=[low, high], fmt="o", ms=4,
                    color=color, ecolor=color, elinewidth=0.8, capsize=2, alpha=0.8,
                    label=status)
    front = result.frontier
    ax.plot([c.objective for c in front], [c.normalized_return for c in front], "-",
            color="grey", lw=0.8, zorder=0, label="Pareto frontier")
    rec = result.recommended
    ax.plot([rec.objective], [rec.normalized_return], "*", ms=16, color="gold",
            markeredgecolor="black", label=f"recommended: {rec.name}")
    ax.axhline(result.config.keep, ls="--", color="grey", lw=0.8,
               label=f"bound {result.config.keep:g}")
    ax.set_xscale("log")
    finite = [c.normalized_return for c in points if math.isfinite(c.normalized_return)]
    ax.set_ylim(max(min(finite + [0.0]) - 10, -150), max(finite + [100.0]) + 10)
    ax.set_xlabel(OBJECTIVE_LABELS[objective])
    ax.set_ylabel("normalized return (%)")
    ax.set_title(f"{result.teacher['name']}: {len(points) - 1} candidates raced")
    ax.legend(fontsize=7, loc="best")


def _interval(c) -> str:
    if not c.episodes:
        return "-"
    low = f"{c.ci_low:.1f}" if math.isfinite(c.ci_low) else "-inf"
    high = f"{c.ci_high:.1f}" if math.isfinite(c.ci_high) else "inf"
    return f"{c.normalized_return:.1f} [{low}, {high}]"


def _cell(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value * scale, fmt)


def _candidate_table(rows, dense_bytes: float) -> list[str]:
    lines = ["| candidate | status | model bytes | factor | ONNX latency (us) | MACs | "
             "normalized return [interval] | episodes | reason |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in rows:
        size = c.metrics.get("model_bytes")
        lines.append(
            f"| `{c.name}` | {c.status} | {_cell(size, ',.0f')} | "
            f"{_cell(dense_bytes / size, ',.1f') + 'x' if size else '-'} | "
            f"{_cell(c.metrics.get('latency_onnx_median_s'), '.1f', 1e6)} | "
            f"{_cell(c.metrics.get('macs_per_decision'), ',.0f')} | {_interval(c)} | "
            f"{c.episodes} | {c.reason} |")
    return lines


def markdown(result: ChooseResult, artifacts: Artifacts | None, summary_: dict) -> str:
    """The report page (see the module docstring)."""
    config, rec = result.config, result.recommended
    plan = config.plan
    dense, random = result.dense, result.random
    objective = config.objective
    lines = [f"# rlcomp choose: {result.teacher['name']} ({result.teacher['env_id']}, "
             f"{result.teacher['algo']})", ""]
    lines += [f"**Recommended: `{rec.name}`** ({rec.origin}: {rec.note}).", ""]
    size = rec.metrics.get("model_bytes", math.nan)
    lines += [
        f"- Model bytes: {size:,.0f} (dense {result.dense_bytes:,.0f}: "
        f"{result.dense_bytes / size:,.1f}x smaller); file {rec.metrics.get('bytes', 0):,.0f} "
        "bytes.",
        f"- ONNX latency (batch 1, median): {rec.metrics['latency_onnx_median_s'] * 1e6:.1f} us "
        f"(dense {result.dense_candidate.metrics['latency_onnx_median_s'] * 1e6:.1f}"
        f" us); {rec.metrics['macs_per_decision']:,.0f} multiply-accumulates per decision.",
        f"- Normalized return: {_interval(rec)} % of the dense policy's gain over random "
        f"actions (bound {config.keep:g}, max drop {config.max_drop:g}); mean return "
        f"{rec.mean_return:.2f} over {rec.episodes} episodes (seeds "
        f"{'-'.join(map(str, summary_['seeds'] or []))}).",
        f"- Dense policy: mean return {dense.mean:.2f} [{dense.ci_low:.2f}, {dense.ci_high:.2f}]"
        f" (95% t interval), random actions {random.mean:.2f} [{random.ci_low:.2f}, "
        f"{random.ci_high:.2f}], {dense.episodes} episodes each (seeds {dense.first_seed}-"
        f"{dense.first_seed + dense.episodes - 1}).",
        f"- Objective: {OBJECTIVE_LABELS[objective]} ({OBJECTIVES[objective]}).",
        f"- Time: {result.seconds:.0f} s of a {config.budget_seconds:.0f} s budget"
        + (" (the budget ran out)" if result.budget_exhausted else "") + "; "
        + ", ".join(f"{k} {v:.0f} s" for k, v in result.phases.items()) + ".",
        f"- Episodes: {result.episodes_used:,} played by candidates, against "
        f"{result.episodes_if_exhaustive:,} had every raced candidate played all "
        f"{plan.max_episodes} ({100 * (summary_['racing_share'] or 0):.0f}%); "
        f"{summary_['reference_episodes']:,} by the references; "
        f"{result.counts.episodes_run:,} run now, "
        f"{result.counts.blocks_reused} blocks and {result.counts.builds_reused} builds reused "
        "from the store.",
        f"- Seed {config.seed}: distillation and fine-tuning seed; evaluation episodes from "
        f"seed {config.first_seed}.",
    ]
    training = summary_["training"]
    if training:
        lines.append("- Training it cost: " + ", ".join(f"{k} {v:,.1f}"
                                                         for k, v in sorted(training.items()))
                     + ".")
    if artifacts is not None:
        p = artifacts.parity
        lines += ["", "## Artifacts", "",
                  f"- `{artifacts.policy_file}`: {artifacts.file_bytes:,} bytes "
                  "(`rlcomp evaluate` reads it).",
                  f"- `{artifacts.onnx_file}`: {artifacts.onnx_bytes:,} bytes; parity with "
                  f"PyTorch on {p.observations:,} recorded observations: largest action "
                  f"difference {p.max_abs_action_diff:g}, largest output difference "
                  f"{p.max_abs_output_diff:.2g}, {100 * p.actions_agree:.1f}% identical actions "
                  f"({'passed' if p.ok else 'FAILED'})."]
    lines += ["", "## How it was decided", "",
              f"The unit of replication is the evaluation episode. Every candidate plays the "
              f"same episode seeds as the dense and random policies, so each episode gives a "
              f"paired triple, and the normalized return 100 (x - random) / (dense - random) "
              f"has Fieller's interval from the paired t test. Candidates race in blocks: after "
              f"{', '.join(map(str, plan.looks))} episodes the interval is looked at; a candidate "
              f"is dropped when its upper end is below {config.keep:g}, accepted when its lower "
              f"end is at least {config.keep:g} (after at least {plan.min_accept} episodes), and "
              f"retired when an accepted candidate has a better objective. With {len(plan.looks)}"
              f" looks each interval has confidence {100 * plan.look_confidence:.2f}% "
              f"(Bonferroni), so over all looks a candidate that keeps the return is wrongly "
              f"dropped with probability at most {50 * (1 - plan.confidence):.1f}%, and one "
              "that does not is wrongly accepted with at most the same. The recommendation is "
              "the accepted candidate with the best objective (the dense policy if none).", ""]
    lines += ["![frontier](frontier.png)", "", "## Pareto frontier", ""]
    lines += _candidate_table(result.frontier, result.dense_bytes)
    lines += ["", "## Every candidate", ""]
    lines += _candidate_table([c for c in result.candidates if c.name != DENSE],
                              result.dense_bytes)
    if result.not_done:
        lines += ["", "## Not tried or not finished", ""]
        lines += [f"- `{c.name}`: {c.status} ({c.reason})" for c in result.not_done]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, result: ChooseResult,
                 artifacts: Artifacts | None) -> dict:
    """Write ``report.json``, ``report.md`` and ``frontier.png``; return the JSON summary."""
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = summary(result, artifacts, out)
    fig = Figure(figsize=(8, 5))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.11, top=0.93)
    frontier_figure(fig.add_subplot(), result)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    atomic_write(out / FIGURE_FILE, png.getvalue())
    atomic_write(out / REPORT_FILE, markdown(result, artifacts, data).encode())
    atomic_write(out / JSON_FILE, (json.dumps(data, indent=1, allow_nan=False) + "\n").encode())
    return data
