"""The verdicts in words: the book's verdict table and the paragraph under each chapter's figure.

:data:`ENTRIES` says which claim of :mod:`rlcomp.analysis.claims` each chapter measures, where
our figure is and what the measurement rests on; :func:`all_claims` and :func:`portable_claims`
measure them; :func:`claims_html` renders the table (chapter 05 and the introduction), and
:func:`claim_markdown` one claim for the chapter that shows it.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    Entry(LOW_RANK, claims.pruning_hurts_more, "fig-lowrank-grid-return", "returns"),
    Entry(LOW_RANK, lambda f: claims.rank_resources(f, metric="cpu_seconds_per_step"),
          "fig-lowrank-cpu", "timing"),
    Entry(LOW_RANK, lambda f: claims.rank_resources(f, metric="seconds_per_step"),
          "fig-lowrank-evaltime", "timing"),
    Entry(LOW_RANK, lambda f: claims.rank_resources(f, metric="ram_percent"),
          "fig-lowrank-ram", "timing"),
    Entry(LOW_RANK, claims.evaltime_drop_30_across_pruning, "fig-lowrank-evaltime",
          "timing"),
    Entry(LOW_RANK, claims.keep_io_remedy, "fig-lowrank-keep-io", "returns"),
    Entry(QUANTIZATION, lambda f: claims.quant_cpu_ram(f, metric="cpu_seconds_per_step"),
          "fig-quant-cpu", "timing"),
    Entry(QUANTIZATION, lambda f: claims.quant_cpu_ram(f, metric="ram_percent"),
          "fig-quant-ram", "timing"),
    Entry(QUANTIZATION, claims.quant_storage, "fig-quant-storage", "sizes"),
    Entry(FINE_TUNING, claims.finetune_no_gain, "fig-finetune-evaltime", "trained"),
    Entry(FINE_TUNING, claims.finetune_deviation, "fig-finetune-evaltime", "timing"),
)
"""The verdict table's rows, in the order of the chapters."""


@dataclass(frozen=True)
class Verdict:
    """A measured claim with the page and anchor of our figure."""

    result: ClaimResult
    link: str
    deterministic: bool


def _link(e: Entry) -> str:
    return f"{e.chapter}.html#{e.figure}"


def all_claims(frames: Mapping[str, pd.DataFrame]) -> list[Verdict]:
    """Measure each claim of :data:`ENTRIES` on its chapter's results (absent chapters skipped)."""
    return [Verdict(e.measure(frames[e.chapter]), _link(e), e.deterministic)
            for e in ENTRIES if e.chapter in frames]


def portable_claims(frames: Mapping[str, pd.DataFrame]) -> list[Verdict]:
    """The claims whose measurement is the same on every x86-64 CPU, measured so that it is.

    Claims resting on sizes are measured on every environment; claims resting on the returns of
    the committed agents are measured without the chaotic environments
    (:data:`~rlcomp.envs.CHAOTIC_ENVS`, whose returns move with another CPU's last-bit
    differences), and say so; claims resting on fine-tuned returns or on timing are left out (see
    :attr:`Entry.basis`). This is what the regression baseline checks;
    ``tests/test_portable_regression.py`` checks the chaotic environments' policies instead.
    """
    out = []
    for e in ENTRIES:
        if e.chapter not in frames or e.basis in ("trained", "timing"):
            continue
        frame = frames[e.chapter]
        result = e.measure(frame) if e.basis == "sizes" else _without_chaotic(e, frame)
        out.append(Verdict(result, _link(e), True))
    return out


def _without_chaotic(e: Entry, frame: pd.DataFrame) -> ClaimResult:
    kept = frame[~frame["env"].isin(CHAOTIC_ENVS)]
    envs = ", ".join(sorted(kept["env"].unique())) or "no environment"
    result = e.measure(kept)
    return dataclasses.replace(result, what=f"{result.what} ({envs} only)".strip())


HEADERS = ("Claim", "Study", "Ours", "Measured (95% CI)", "Rule", "Verdict")
"""Columns of the verdict table."""


def _cells(v: Verdict, digits: int) -> tuple[str, str, tuple[str, str], str, str, str]:
    """One row's cells as plain text; "Ours" is (anchor text, link)."""
    r = v.result
    measured = describe(r.measured, r.unit, digits, r.confidence)
    what = f"{r.what}: " if r.what else ""
    return (r.claim.text, r.claim.figure, (v.link.split("#", 1)[1], v.link), what + measured,
            rule_text(r.rule, r.threshold, r.unit, r.confidence), r.verdict)


def claims_html(verdicts: list[Verdict], deterministic_only: bool = False,
                digits: int = 3) -> str:
    """The verdict table as an HTML table, one row per claim (the chapter and the introduction).

    The book renders HTML outputs as they are, whereas a Markdown output would be read as
    CommonMark, which has no tables. The table has the class ``claims-table`` and says in
    ``data-claims`` whether it holds every claim (``all``) or the ``deterministic`` ones only.
    """
    head = "".join(f"<th>{name}</th>" for name in HEADERS)
    rows = []
    for v in verdicts:
        if deterministic_only and not v.deterministic:
            continue
        claim, figure, (anchor, link), measured, rule, verdict = _cells(v, digits)
        cells = (html.escape(claim), html.escape(figure),
                 f'<a href="{html.escape(link)}">{html.escape(anchor)}</a>',
                 html.escape(measured), html.escape(rule),
                 f"<strong>{html.escape(verdict)}</strong>")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    kind = "deterministic" if deterministic_only else "all"
    return (f'<table class="table claims-table" data-claims="{kind}"><thead><tr>{head}</tr>'
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


def claim_markdown(result: ClaimResult, digits: int = 3) -> str:
    """The claim, our measurement and the verdict as a short Markdown paragraph for a chapter."""
    measured = describe(result.measured, result.unit, digits, result.confidence)
    what = f"{result.what}: " if result.what else ""
    return (f"**The study's claim** ({result.claim.figure}): {result.claim.text}  \n"
            f"**Our measurement**: {what}{measured}.  \n"
            f"**Verdict**: {result.verdict} "
            f"({rule_text(result.rule, result.threshold, result.unit, result.confidence)}).")
