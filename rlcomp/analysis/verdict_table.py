"""The verdicts in words: the book's verdict table and the paragraph under each chapter's figure.

:data:`ENTRIES` says which claim of :mod:`rlcomp.analysis.claims` each chapter measures, where
our figure is and what the measurement rests on; :func:`all_claims` and :func:`portable_claims`
measure them; :func:`claims_html` renders the table (chapter 05 and the introduction) in plain
words: the poster's sentence quoted, what we measured with its unit, the estimate and interval,
the margin, the verdict and a link to our figure; :func:`claim_markdown` says the same of one
claim in the chapter that shows it.
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
from rlcomp.analysis.tables import interval_cell
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


CHAPTER_TITLES = {PRUNING: "Pruning", LOW_RANK: "Low rank", QUANTIZATION: "Quantization",
                  FINE_TUNING: "Fine-tuning"}
"""How a chapter is named in a link's words."""

FIGURE_WORDS = {
    "fig-pruning-return": "return against % pruned",
    "fig-lowrank-grid-return": "return over % pruned and % rank reduced",
    "fig-lowrank-cpu": "CPU and policy time against % rank reduced",
    "fig-lowrank-ram": "memory against % rank reduced",
    "fig-lowrank-evaltime": "eval time against % rank reduced",
    "fig-lowrank-keep-io": "return with the input and output layers kept",
    "fig-quant-cpu": "CPU and policy time of the quantized models",
    "fig-quant-ram": "memory of the quantized models",
    "fig-quant-storage": "storage of the quantized models",
    "fig-finetune-evaltime": "return against eval time, naive and fine-tuned",
    "fig-finetune-ram": "return against % RAM, naive and fine-tuned",
}
"""What each figure of :data:`ENTRIES` shows, as its link reads in the verdict table."""

HEADERS = ("The poster's claim", "What we measured", "Confirmed if the interval lies",
           "Environment: estimate [95% CI]", "Verdict", "Over both environments", "Our figure")
"""Columns of the verdict table."""

CAPTION = ("pp: percentage points. Returns are normalized per environment and training seed: "
           "100% is the uncompressed (dense) agent, 0% uniformly random actions. Intervals are "
           "over training seeds. A measure that is mostly the simulator's time and memory is "
           "<em>not judged</em>; the table shows what its rule reads on this run.")
"""The note above the verdict table."""

NUMBER_FORMATS = {"pp": "{:.1f}", "%": "{:.1f}", "% of pruning levels": "{:.0f}",
                  "x": "{:,.1f}", "": "{:.2f}"}
"""Format of an estimate and its interval by :attr:`ClaimResult.unit`; others get 3 significant
digits."""

UNIT_SYMBOLS = {"x": "×"}
"""How a unit is written after a number, where not as :attr:`ClaimResult.unit` says."""

DOMINATED_NOTE = "mostly the simulator's time and memory, not the policy's"
"""Said of an environment-dominated measure beside what it measures."""


def _with_unit(number: str, unit: str) -> str:
    unit = UNIT_SYMBOLS.get(unit, unit)
    if not unit:
        return number
    return f"{number}{unit}" if unit.startswith("%") else f"{number} {unit}"


def estimate_text(r: ClaimResult) -> str:
    """The estimate with its interval and unit, the seeds, and the coverage if not 95%."""
    m = r.measured
    if m.n_seeds == 0 or pd.isna(m.estimate):
        return "not measured"
    cell = interval_cell(m.estimate, m.ci_low, m.ci_high, NUMBER_FORMATS.get(r.unit, "{:.3g}"))
    notes = [f"{m.n_seeds} seed{'s' if m.n_seeds != 1 else ''}"]
    if abs(r.confidence - 0.95) > 1e-9:
        notes.append(f"{100 * r.confidence:.3g}% CI")
    return f"{_with_unit(cell, r.unit)} ({', '.join(notes)})"


def margin_text(r: ClaimResult) -> str:
    """Where the interval must lie to confirm the claim, with the margin of the claim's code."""
    t = _with_unit(f"{r.threshold:g}", r.unit)
    if r.rule == "no change":
        return f"within ±{t}"
    if r.rule == "reduces":
        return f"below -{t}" if r.threshold else "below 0"
    if r.rule == "increases":
        return f"above {t}" if r.threshold else "above 0"
    if r.rule == "at most":
        return f"at or below {t}"
    raise ValueError(f"rule must be one of no change, reduces, increases, at most, "
                     f"got {r.rule!r}")


def measured_text(r: ClaimResult) -> str:
    """What was measured, in words, noting an environment-dominated measure."""
    what = r.what or r.measure
    return f"{what} ({DOMINATED_NOTE})" if r.environment_dominated else what


def quote_text(claim: claims.Claim) -> str:
    """The poster's sentence in quotation marks, and where the poster says it."""
    where = f"Poster {claim.figure}" if claim.figure.startswith("Fig") else \
        f"Poster, {claim.figure}"
    return f"\u201c{claim.text}\u201d ({where})"


def link_text(link: str) -> str:
    """A figure link in words: the chapter and what the figure shows."""
    page, anchor = link.split("#", 1)
    chapter = page.removesuffix(".html")
    return f"{CHAPTER_TITLES.get(chapter, chapter)}: {FIGURE_WORDS.get(anchor, 'figure')}"


def _verdict_text(r: ClaimResult) -> str:
    """The published verdict, with the rule's reading on this run where it is not judged."""
    if r.verdict == r.reading:
        return r.verdict
    return f"{r.verdict} (this run reads {r.reading})"


def _combined(verdicts: list[Verdict]) -> dict[tuple[str, str, str], str]:
    """The verdict over environments of each (claim, measure, figure) group."""
    groups: dict[tuple[str, str, str], list[ClaimResult]] = {}
    for v in verdicts:
        groups.setdefault(_group_key(v), []).append(v.result)
    return {key: claims.combined_verdict(results) for key, results in groups.items()}


def _group_key(v: Verdict) -> tuple[str, str, str]:
    return (v.result.claim.id, v.result.measure, v.link)


def _spans(keys: list) -> list[int]:
    """For each row, how many rows its cell spans.

    The length of its run of equal keys at a run's first row, 0 for the rows the run covers.
    """
    spans = [0] * len(keys)
    i = 0
    while i < len(keys):
        j = i
        while j < len(keys) and keys[j] == keys[i]:
            j += 1
        spans[i] = j - i
        i = j
    return spans


def _cell(text: str, span: int) -> str:
    if span == 0:
        return ""
    return f'<td rowspan="{span}">{text}</td>' if span > 1 else f"<td>{text}</td>"


def claims_html(verdicts: list[Verdict], deterministic_only: bool = False) -> str:
    """The verdict table as an HTML table, one row per claim, measure and environment.

    Columns (:data:`HEADERS`): the poster's sentence quoted (one cell over the rows of that
    claim), what we measured in words and the margin (one cell over the environments where they
    read the same), the environment with the estimate, its 95% interval and unit, the verdict,
    the verdict over both environments (:func:`claims.combined_verdict`) and a link to our
    figure (one cell over the measure's rows).
    The book renders HTML outputs as they are, whereas a Markdown output would be read as
    CommonMark, which has no tables. The table has the class ``claims-table`` and says in
    ``data-claims`` whether it holds every claim (``all``) or the ``deterministic`` ones only.
    """
    shown = [v for v in verdicts if v.deterministic or not deterministic_only]
    combined = _combined(shown)
    claim_spans = _spans([v.result.claim.id for v in shown])
    group_spans = _spans([_group_key(v) for v in shown])
    what_spans = _spans([(_group_key(v), measured_text(v.result)) for v in shown])
    margin_spans = _spans([(_group_key(v), margin_text(v.result)) for v in shown])
    head = "".join(f"<th>{name}</th>" for name in HEADERS)
    rows = []
    for i, v in enumerate(shown):
        r = v.result
        link = f'<a href="{html.escape(v.link)}">{html.escape(link_text(v.link))}</a>'
        cells = (_cell(html.escape(quote_text(r.claim)), claim_spans[i]),
                 _cell(html.escape(measured_text(r)), what_spans[i]),
                 _cell(html.escape(margin_text(r)), margin_spans[i]),
                 _cell(f"{html.escape(r.env)}: {html.escape(estimate_text(r))}", 1),
                 _cell(f"<strong>{html.escape(_verdict_text(r))}</strong>", 1),
                 _cell(html.escape(combined[_group_key(v)]), group_spans[i]),
                 _cell(link, group_spans[i]))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    kind = "deterministic" if deterministic_only else "all"
    return (f'<table class="table claims-table" data-claims="{kind}"><caption>{CAPTION}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def claim_markdown(measure: Callable[[pd.DataFrame], ClaimResult], frame: pd.DataFrame) -> str:
    """A claim measured on each environment of ``frame``, as a short Markdown paragraph.

    ``measure`` is one of the claim functions of :mod:`rlcomp.analysis.claims` (with its options
    bound, e.g. ``partial(rank_resources, metric="eval_seconds")``); the paragraph
    quotes the poster, says what was measured and where its interval must lie, gives one line
    per environment and ends with the verdict over all of them (:func:`claims.combined_verdict`).
    """
    results = claims.per_environment(measure, frame)
    if not results:
        return "No results to judge this claim on."
    first = results[0]
    lines = [f"**The poster**: {quote_text(first.claim)}  ",
             f"**What we measured**: {measured_text(first)}; the claim is confirmed if its "
             f"{100 * first.confidence:.3g}% interval lies {margin_text(first)} (margin fixed in "
             "`rlcomp/analysis/claims.py` before the data was read).", ""]
    for r in results:
        lines.append(f"- **{r.env}**: {estimate_text(r)}: **{_verdict_text(r)}**")
    lines += ["", f"**Verdict over the environments**: {claims.combined_verdict(results)}."]
    return "\n".join(lines)
