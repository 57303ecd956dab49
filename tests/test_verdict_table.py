"""The verdict table in plain words: quoted claims, measurements with units, margins, verdicts and
links, as an HTML table a browser lays out as one (every row as wide as the header).

The verdicts are made by hand (:func:`claims.assess` on known intervals), so every cell's text is
known.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest

from rlcomp.analysis import claims
from rlcomp.analysis.verdict_rules import NOT_JUDGED
from rlcomp.analysis.verdict_table import (
    ENTRIES,
    FIGURE_WORDS,
    HEADERS,
    Verdict,
    claims_html,
    estimate_text,
    link_text,
    margin_text,
    quote_text,
)
from rlcomp.stats import EMPTY, Interval

LL, HC = "LunarLander-v3", "HalfCheetah-v5"
STORAGE_LINK = "03-quantization.html#fig-quant-storage"
CPU_LINK = "03-quantization.html#fig-quant-cpu"


class Grid(HTMLParser):
    """The table's cells as a grid, rowspans filled in (what a browser lays out)."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.pending: dict[int, tuple[int, str]] = {}  # column -> (rows left, text)
        self.tags: list[str] = []
        self.cell: list[str] | None = None
        self.span = 1
        self.links: list[tuple[str, str]] = []
        self.href: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._fill()
            self.cell, self.span = [], int(attrs.get("rowspan", 1))
        elif tag == "a":
            self.href = attrs["href"]

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            text = "".join(self.cell)
            if self.span > 1:
                self.pending[len(self.rows[-1])] = (self.span - 1, text)
            self.rows[-1].append(text)
            self.cell = None
        elif tag == "tr":
            self._fill()
        elif tag == "a":
            self.links.append((self.href, self._link_text))
        self.tags.pop()

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        if self.tags and self.tags[-1] == "a":
            self._link_text = data

    def _fill(self):
        row = self.rows[-1]
        while len(row) in self.pending:
            left, text = self.pending.pop(len(row))
            row.append(text)
            if left > 1:
                self.pending[len(row) - 1] = (left - 1, text)


def grid(page: str) -> Grid:
    parser = Grid()
    parser.feed(page)
    return parser


def storage(env: str, low: float, high: float) -> Verdict:
    result = claims.assess(claims.CLAIMS["quant-storage"], Interval((low + high) / 2, low, high, 5),
                           "reduces", claims.MARGINS["quant-storage"], "%",
                           "change of the stored model's size, int8 against dense",
                           measure="bytes")
    return Verdict(claims.ClaimResult(**{**result.__dict__, "env": env}), STORAGE_LINK, True)


def cpu_percent(env: str, low: float, high: float) -> Verdict:
    result = claims.assess(claims.CLAIMS["quant-cpu-ram"], Interval((low + high) / 2, low, high, 5),
                           "no change", claims.MARGINS["quant-cpu-ram"], "%",
                           "change of the CPU utilization", measure="cpu_percent")
    return Verdict(claims.ClaimResult(**{**result.__dict__, "env": env}), CPU_LINK, False)


@pytest.fixture
def verdicts():
    return [storage(LL, -75.5, -74.5), storage(HC, -80.0, -70.0),
            cpu_percent(LL, -2.0, 2.0), cpu_percent(HC, 20.0, 30.0)]


def test_every_row_has_a_cell_under_every_header(verdicts):
    table = grid(claims_html(verdicts))
    assert table.rows[0] == list(HEADERS)
    assert len(table.rows) == 1 + len(verdicts)
    assert all(len(row) == len(HEADERS) for row in table.rows)


def test_a_row_says_the_claim_measure_estimate_margin_verdict_and_link(verdicts):
    rows = {row[3].split(":")[0] + row[2]: row for row in grid(claims_html(verdicts)).rows[1:]}
    row = rows[LL + "below -50%"]
    assert row[0] == quote_text(claims.CLAIMS["quant-storage"])
    assert row[1] == "change of the stored model's size, int8 against dense"
    assert row[3] == f"{LL}: -75.0 [-75.5, -74.5]% (5 seeds)"
    assert row[4] == "confirmed" and row[5] == "confirmed"
    assert row[6] == "Quantization: storage of the quantized models"


def test_the_claim_is_quoted_exactly_with_the_posters_place():
    claim = claims.CLAIMS["quant-storage"]
    assert quote_text(claim) == f"\u201c{claim.text}\u201d (Poster, quantization section)"
    assert quote_text(claims.CLAIMS["pruning-hurts-more"]).endswith("(Poster Fig 3, 6)")
    page = claims_html([storage(LL, -75.5, -74.5)])
    assert html.escape(claim.text) in page


def test_an_environment_dominated_measure_is_not_judged_and_shows_its_reading(verdicts):
    rows = grid(claims_html(verdicts)).rows[1:]
    cpu = [row for row in rows if row[0].startswith(quote_text(claims.CLAIMS["quant-cpu-ram"]))]
    assert [row[4] for row in cpu] == [f"{NOT_JUDGED} (this run reads confirmed)",
                                       f"{NOT_JUDGED} (this run reads refuted)"]
    assert all("mostly the simulator's" in row[1] for row in cpu)
    assert {row[5] for row in cpu} == {NOT_JUDGED}


def test_deterministic_only_leaves_out_timing(verdicts):
    page = claims_html(verdicts, deterministic_only=True)
    assert 'data-claims="deterministic"' in page
    assert len(grid(page).rows) == 1 + 2


def test_shared_cells_span_the_environments(verdicts):
    """The quote, the margin, the verdict over both and the link are one cell for both
    environments; the estimate and verdict are one per environment."""
    page = claims_html(verdicts)
    assert page.count('rowspan="2"') == 2 * 5  # claim, what, margin, both, link per claim
    assert page.count("<tr>") == 1 + len(verdicts)


def test_links_point_at_our_figures_in_words(verdicts):
    links = grid(claims_html(verdicts)).links
    assert links == [(STORAGE_LINK, "Quantization: storage of the quantized models"),
                     (CPU_LINK, "Quantization: CPU and policy time of the quantized models")]
    for _, text in links:
        assert "fig-" not in text and "_" not in text


def test_every_entry_has_link_words():
    for entry in ENTRIES:
        assert entry.figure in FIGURE_WORDS, entry.figure
        assert "fig-" not in link_text(f"{entry.chapter}.html#{entry.figure}")


@pytest.mark.parametrize(("unit", "interval", "text"), [
    ("pp", Interval(-12.345, -20.06, -4.5, 5), "-12.3 [-20.1, -4.5] pp (5 seeds)"),
    ("%", Interval(143.0, 143.0, 143.0, 1), "143.0% (1 seed)"),
    ("x", Interval(187.25, 150.0, 220.5, 5), "187.2 [150.0, 220.5] × (5 seeds)"),
    ("", Interval(0.532, 0.41, 0.66, 5), "0.53 [0.41, 0.66] (5 seeds)"),
    ("% of pruning levels", Interval(60.0, 40.0, 80.0, 5),
     "60 [40, 80]% of pruning levels (5 seeds)"),
])
def test_estimates_carry_their_unit_and_precision(unit, interval, text):
    result = claims.assess(claims.CLAIMS["quant-storage"], interval, "increases", 1.0, unit)
    assert estimate_text(result) == text


def test_an_adjusted_interval_says_its_coverage_and_a_missing_one_says_so():
    adjusted = claims.assess(claims.CLAIMS["minor-compression-gain"], Interval(2.0, 1.5, 2.5, 5),
                             "increases", 1.0, "pp", confidence=0.975)
    assert estimate_text(adjusted) == "2.0 [1.5, 2.5] pp (5 seeds, 97.5% CI)"
    empty = claims.assess(claims.CLAIMS["minor-compression-gain"], EMPTY, "increases", 1.0, "pp")
    assert estimate_text(empty) == "not measured"


@pytest.mark.parametrize(("rule", "threshold", "unit", "text"), [
    ("no change", 10.0, "%", "within ±10%"),
    ("reduces", 5.0, "pp", "below -5 pp"),
    ("reduces", 0.0, "pp", "below 0"),
    ("increases", 0.3, "", "above 0.3"),
    ("at most", 10.0, "pp", "at or below 10 pp"),
])
def test_margins_read_as_where_the_interval_must_lie(rule, threshold, unit, text):
    result = claims.assess(claims.CLAIMS["quant-storage"], Interval(0.0, -1.0, 1.0, 5), rule,
                           threshold, unit)
    assert margin_text(result) == text


def test_margins_come_from_the_claims_code():
    verdict = storage(LL, -75.5, -74.5)
    assert margin_text(verdict.result) == f"below -{claims.MARGINS['quant-storage']:g}%"


def test_no_variable_names_in_the_visible_text(verdicts):
    table = grid(claims_html(verdicts))
    text = " ".join(cell for row in table.rows for cell in row)
    for name in ("fig-", "_bytes", "_percent", "quant=8", "policy_time_ratio"):
        assert name not in text
