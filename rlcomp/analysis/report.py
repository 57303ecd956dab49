"""Every claim the chapters measure, with a link to our figure: the verdict table of the book."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from rlcomp.analysis import verdicts
from rlcomp.analysis.claims import ClaimResult, describe, rule_text


@dataclass(frozen=True)
class Entry:
    """One row of the verdict table: how to measure a claim and where our figure is."""

    chapter: str
    """The chapter whose sweep holds the results."""
    measure: Callable[[pd.DataFrame], ClaimResult]
    figure: str
    """The figure's label in that chapter."""
    deterministic: bool
    """Whether the measurement is a return or a size (the same on every run), not a timing."""


ENTRIES = (
    Entry("01-pruning", verdicts.minor_compression_gain, "fig-pruning-return", True),
    Entry("02-low-rank", verdicts.pruning_hurts_more, "fig-lowrank-grid-return", True),
    Entry("02-low-rank", lambda f: verdicts.rank_resources(f, metric="cpu_seconds_per_step"),
          "fig-lowrank-cpu", False),
    Entry("02-low-rank", lambda f: verdicts.rank_resources(f, metric="seconds_per_step"),
          "fig-lowrank-evaltime", False),
    Entry("02-low-rank", lambda f: verdicts.rank_resources(f, metric="ram_percent"),
          "fig-lowrank-ram", False),
    Entry("02-low-rank", verdicts.evaltime_drop_30_across_pruning, "fig-lowrank-evaltime", False),
    Entry("02-low-rank", verdicts.keep_io_remedy, "fig-lowrank-keep-io", True),
    Entry("03-quantization", lambda f: verdicts.quant_cpu_ram(f, metric="cpu_seconds_per_step"),
          "fig-quant-cpu", False),
    Entry("03-quantization", lambda f: verdicts.quant_cpu_ram(f, metric="ram_percent"),
          "fig-quant-ram", False),
    Entry("03-quantization", verdicts.quant_storage, "fig-quant-storage", True),
    Entry("04-fine-tuning", verdicts.finetune_no_gain, "fig-finetune-evaltime", True),
    Entry("04-fine-tuning", verdicts.finetune_deviation, "fig-finetune-evaltime", False),
)
"""The verdict table's rows, in the order of the chapters."""


@dataclass(frozen=True)
class Verdict:
    """A measured claim with the page and anchor of our figure."""

    result: ClaimResult
    link: str
    deterministic: bool


def all_claims(frames: Mapping[str, pd.DataFrame]) -> list[Verdict]:
    """Measure each claim of :data:`ENTRIES` on its chapter's results (absent chapters skipped)."""
    return [Verdict(e.measure(frames[e.chapter]), f"{e.chapter}.html#{e.figure}", e.deterministic)
            for e in ENTRIES if e.chapter in frames]


HEADERS = ("Claim", "Study", "Ours", "Measured (95% CI)", "Rule", "Verdict")
"""Columns of the verdict table."""


def _cells(v: Verdict, digits: int) -> tuple[str, str, tuple[str, str], str, str, str]:
    """One row's cells as plain text; "Ours" is (anchor text, link)."""
    r = v.result
    measured = describe(r.measured, r.unit, digits, r.confidence)
    what = f"{r.what}: " if r.what else ""
    return (r.claim.text, r.claim.figure, (v.link.split("#", 1)[1], v.link), what + measured,
            rule_text(r.rule, r.threshold, r.unit, r.confidence), r.verdict)


def claims_markdown(verdicts_: list[Verdict], deterministic_only: bool = False,
                    digits: int = 3) -> str:
    """A Markdown table: claim, the study's figure, ours (a link), measurement, rule, verdict."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for v in verdicts_:
        if deterministic_only and not v.deterministic:
            continue
        claim, figure, (anchor, link), measured, rule, verdict = _cells(v, digits)
        row = (claim, figure, f"[{anchor}]({link})", measured, rule, f"**{verdict}**")
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def claims_html(verdicts_: list[Verdict], digits: int = 3) -> str:
    """The verdict table as HTML (what the book's introduction pastes from another page)."""
    head = "".join(f"<th>{name}</th>" for name in HEADERS)
    rows = []
    for v in verdicts_:
        claim, figure, (anchor, link), measured, rule, verdict = _cells(v, digits)
        cells = (html.escape(claim), html.escape(figure),
                 f'<a href="{html.escape(link)}">{html.escape(anchor)}</a>',
                 html.escape(measured), html.escape(rule),
                 f"<strong>{html.escape(verdict)}</strong>")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table class="table"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")
