"""The verdicts in words: the book's verdict table and the paragraph under each chapter's figure.

:data:`ENTRIES` says which claim of :mod:`rlcomp.analysis.claims` each chapter measures, where
our figure is and what the measurement rests on; :func:`all_claims` and :func:`portable_claims`
measure them; :func:`claims_html` renders the table (chapter 05 and the introduction), and
:func:`claim_markdown` one claim for the chapter that shows it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Literal

import pandas as pd

from rlcomp.analysis import claims
from rlcomp.analysis.claims import ClaimResult
from rlcomp.analysis.verdict_rules import describe, rule_text
from rlcomp.envs import CHAOTIC_ENVS
from rlcomp.experiments.plans import FINE_TUNING, LOW_RANK, PRUNING, QUANTIZATION


@dataclass(frozen=True)
class Entry:
    """One row of the verdict table: how to measure a claim and where our figure is."""

    chapter: str
    """The chapter whose sweep holds the results."""
    measure: Callable[[pd.DataFrame], ClaimResult]
    figure: str
    """The figure's label in that chapter."""
    basis: Literal["returns", "trained", "sizes", "timing"]
    """What the measurement rests on:

    - ``returns`` of the committed agents, compressed: the same from run to run, and on every
      x86-64 CPU except for :data:`~rlcomp.envs.CHAOTIC_ENVS`;
    - ``trained``: returns of agents fine-tuned on this machine: the same from run to run, but not
      across CPUs for any environment (another CPU's matrix products round differently, the
      episodes of fine-tuning and with them the weights diverge; measured: LunarLander's dense
      agent fine-tuned in the smoke profile returns 279.2 on the Intel machine of the old
      baseline and 261.9 on an AMD EPYC, with the same code);
    - ``sizes``: the same everywhere;
    - ``timing``: time, CPU and memory, different on every run.
    """

    @property
    def deterministic(self) -> bool:
        """Whether the measurement is the same on every run (a return or a size, not a timing)."""
        return self.basis != "timing"


ENTRIES = (
    Entry(PRUNING, claims.minor_compression_gain, "fig-pruning-return", "returns"),
    Entry(LOW_RANK, claims.all_compression_lowers, "fig-lowrank-grid-return", "returns"),
    Entry(LOW_RANK, claims.pruning_hurts_more, "fig-lowrank-grid-return", "returns"),
    Entry(LOW_RANK, partial(claims.rank_resources, metric="policy_time_ratio"),
          "fig-lowrank-cpu", "timing"),
    Entry(LOW_RANK, partial(claims.rank_resources, metric="isolated_footprint_bytes"),
          "fig-lowrank-ram", "timing"),
    Entry(LOW_RANK, partial(claims.rank_resources, metric="eval_seconds"),
          "fig-lowrank-evaltime", "timing"),
    Entry(LOW_RANK, partial(claims.rank_resources, metric="ram_percent"),
          "fig-lowrank-ram", "timing"),
    Entry(LOW_RANK, partial(claims.return_evaltime, metric="eval_seconds"),
          "fig-lowrank-evaltime", "timing"),
    Entry(LOW_RANK, partial(claims.return_evaltime, metric="policy_time_ratio"),
          "fig-lowrank-cpu", "timing"),
    Entry(LOW_RANK, partial(claims.evaltime_drop_30, metric="eval_seconds"),
          "fig-lowrank-evaltime", "timing"),
    Entry(LOW_RANK, partial(claims.evaltime_drop_30, metric="policy_time_ratio"),
          "fig-lowrank-cpu", "timing"),
    Entry(LOW_RANK, claims.keep_io_remedy, "fig-lowrank-keep-io", "returns"),
    Entry(QUANTIZATION, partial(claims.quant_cpu_ram, metric="policy_time_ratio"),
          "fig-quant-cpu", "timing"),
    Entry(QUANTIZATION, partial(claims.quant_cpu_ram, metric="cpu_percent"),
          "fig-quant-cpu", "timing"),
    Entry(QUANTIZATION, partial(claims.quant_cpu_ram, metric="isolated_footprint_bytes"),
          "fig-quant-ram", "timing"),
    Entry(QUANTIZATION, partial(claims.quant_cpu_ram, metric="ram_percent"),
          "fig-quant-ram", "timing"),
    Entry(QUANTIZATION, claims.quant_storage, "fig-quant-storage", "sizes"),
    Entry(FINE_TUNING, claims.finetune_no_gain, "fig-finetune-evaltime", "trained"),
    Entry(FINE_TUNING, claims.finetune_cost, "fig-finetune-evaltime", "timing"),
    Entry(FINE_TUNING, partial(claims.finetune_deviation, x_metric="eval_seconds"),
          "fig-finetune-evaltime", "timing"),
    Entry(FINE_TUNING, partial(claims.finetune_deviation, x_metric="ram_percent"),
          "fig-finetune-ram", "timing"),
)
"""The verdict table's rows (each measured per environment), in the order of the chapters."""


@dataclass(frozen=True)
class Verdict:
    """A claim measured on one environment, with the page and anchor of our figure."""

    result: ClaimResult
    link: str
    deterministic: bool


def _link(e: Entry) -> str:
    return f"{e.chapter}.html#{e.figure}"


def _measured(e: Entry, frame: pd.DataFrame, deterministic: bool) -> list[Verdict]:
    return [Verdict(r, _link(e), deterministic) for r in claims.per_environment(e.measure, frame)]


def all_claims(frames: Mapping[str, pd.DataFrame]) -> list[Verdict]:
    """Each claim of :data:`ENTRIES` on each environment of its chapter's results.

    Chapters absent from ``frames`` are skipped.
    """
    return [v for e in ENTRIES if e.chapter in frames
            for v in _measured(e, frames[e.chapter], e.deterministic)]


def portable_claims(frames: Mapping[str, pd.DataFrame]) -> list[Verdict]:
    """The claims whose measurement is the same on every x86-64 CPU, measured so that it is.

    Claims resting on the returns of the committed agents or on sizes, on the environments outside
    :data:`~rlcomp.envs.CHAOTIC_ENVS` (whose returns move with another CPU's last-bit
    differences; their sizes are checked by the chapters' size tables); claims resting on
    fine-tuned returns or on timing are left out (see :attr:`Entry.basis`). This is what the
    regression baseline checks; ``tests/test_portable_regression.py`` checks the chaotic
    environments' policies instead.
    """
    out = []
    for e in ENTRIES:
        if e.chapter not in frames or e.basis in ("trained", "timing"):
            continue
        frame = frames[e.chapter]
        out.extend(_measured(e, frame[~frame["env"].isin(CHAOTIC_ENVS)], True))
    return out


VERDICT_COLUMNS = ("claim", "env", "measure", "estimate", "ci_low", "ci_high", "n_seeds",
                   "margin", "verdict", "reading")
"""The columns of ``book/data/verdicts.csv``: ``verdict`` is the published one, ``reading`` what
the rule reads from this run's interval (they differ only for environment-dominated measures,
whose verdict is ``not judged``)."""


def verdicts_frame(verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per claim, environment and measure (the columns :data:`VERDICT_COLUMNS`)."""
    rows = [{"claim": v.result.claim.id, "env": v.result.env, "measure": v.result.measure,
             "estimate": v.result.measured.estimate, "ci_low": v.result.measured.ci_low,
             "ci_high": v.result.measured.ci_high, "n_seeds": v.result.measured.n_seeds,
             "margin": v.result.threshold, "verdict": v.result.verdict,
             "reading": v.result.reading} for v in verdicts]
    return pd.DataFrame.from_records(rows, columns=list(VERDICT_COLUMNS)).astype(
        {"n_seeds": "int64"})


HEADERS = ("Claim", "Study", "Environment", "Measured (95% CI)", "Rule", "Verdict",
           "Both environments")
"""Columns of the verdict table."""


def _verdict_text(r: ClaimResult) -> str:
    """The published verdict, with the rule's reading on this run where it is not judged."""
    if r.verdict == r.reading:
        return r.verdict
    return f"{r.verdict} (this run reads {r.reading})"


def _measure_text(r: ClaimResult, digits: int) -> str:
    label = " (environment-dominated)" if r.environment_dominated else ""
    what = f"{r.what}{label}: " if r.what else ""
    return what + describe(r.measured, r.unit, digits, r.confidence)


def _combined(verdicts: list[Verdict]) -> dict[tuple[str, str, str], str]:
    """The verdict over environments of each (claim, measure, what-without-env) group."""
    groups: dict[tuple[str, str, str], list[ClaimResult]] = {}
    for v in verdicts:
        groups.setdefault(_group_key(v), []).append(v.result)
    return {key: claims.combined_verdict(results) for key, results in groups.items()}


def _group_key(v: Verdict) -> tuple[str, str, str]:
    return (v.result.claim.id, v.result.measure, v.link)


def claims_html(verdicts: list[Verdict], deterministic_only: bool = False,
                digits: int = 3) -> str:
    """The verdict table as an HTML table, one row per claim, measure and environment.

    The last column is the verdict over both environments (:func:`claims.combined_verdict`).
    The book renders HTML outputs as they are, whereas a Markdown output would be read as
    CommonMark, which has no tables. The table has the class ``claims-table`` and says in
    ``data-claims`` whether it holds every claim (``all``) or the ``deterministic`` ones only.
    """
    shown = [v for v in verdicts if v.deterministic or not deterministic_only]
    combined = _combined(shown)
    head = "".join(f"<th>{name}</th>" for name in HEADERS)
    rows = []
    for v in shown:
        r = v.result
        anchor = v.link.split("#", 1)[1]
        cells = (f'{html.escape(r.claim.text)} (<a href="{html.escape(v.link)}">'
                 f"{html.escape(anchor)}</a>)", html.escape(r.claim.figure), html.escape(r.env),
                 html.escape(_measure_text(r, digits)),
                 html.escape(rule_text(r.rule, r.threshold, r.unit, r.confidence)),
                 f"<strong>{html.escape(_verdict_text(r))}</strong>",
                 html.escape(combined[_group_key(v)]))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    kind = "deterministic" if deterministic_only else "all"
    return (f'<table class="table claims-table" data-claims="{kind}"><thead><tr>{head}</tr>'
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


def claim_markdown(measure: Callable[[pd.DataFrame], ClaimResult], frame: pd.DataFrame,
                   digits: int = 3) -> str:
    """A claim measured on each environment of ``frame``, as a short Markdown paragraph.

    ``measure`` is one of the claim functions of :mod:`rlcomp.analysis.claims` (with its options
    bound, e.g. ``partial(rank_resources, metric="eval_seconds")``); the paragraph
    quotes the claim and the rule, gives one line per environment and ends with the verdict over
    all of them (:func:`claims.combined_verdict`).
    """
    results = claims.per_environment(measure, frame)
    if not results:
        return "No results to judge this claim on."
    first = results[0]
    lines = [f"**The study's claim** ({first.claim.figure}): {first.claim.text}  ",
             f"**The rule**: {rule_text(first.rule, first.threshold, first.unit, first.confidence)}"
             " (margin fixed in `rlcomp/analysis/claims.py` before the data was read).", ""]
    for r in results:
        lines.append(f"- **{r.env}**: {_measure_text(r, digits)}: **{_verdict_text(r)}**")
    lines += ["", f"**Verdict over the environments**: {claims.combined_verdict(results)}."]
    return "\n".join(lines)
