"""Each claim's measurement and verdict, per environment, on small hand-made results stores.

The stores are built so the right answer is known: returns as fractions of the distance from a
random to a dense agent (so the normalized return is known exactly), costs as multiples of
dense. Margin tests put the effect on either side of each claim's margin and check the verdict
changes there.
"""

from __future__ import annotations

import functools
import html
import io

import pandas as pd
import pytest

from rlcomp.analysis import claims
from rlcomp.analysis.book_data import csv_bytes, results_table, write_book_data
from rlcomp.analysis.claims import MARGINS, combined_verdict, per_environment
from rlcomp.analysis.verdict_rules import (
    CONFIRMED,
    ENVIRONMENT_DEPENDENT,
    NOT_JUDGED,
    NOT_RESOLVED,
    REFUTED,
    verdict_at_most,
)
from rlcomp.analysis.verdict_table import (
    DOMINATED_NOTE,
    ENTRIES,
    VERDICT_COLUMNS,
    all_claims,
    claim_markdown,
    claims_html,
    verdicts_frame,
)
from rlcomp.experiments import plans
from rlcomp.experiments.store import RANDOM_POLICY, ResultStore
from rlcomp.stats import Interval

ANCHORS = {"LunarLander-v3": (-180.0, 260.0), "HalfCheetah-v5": (-300.0, 5800.0)}
"""(random, dense) return of each environment's seed 0; seeds shift both by ``5 * seed``."""
SEEDS = (0, 1, 2, 3, 4)


def _return(env: str, seed: int, normalized_pct: float) -> float:
    random, dense = (a + 5.0 * seed for a in ANCHORS[env])
    return random + normalized_pct / 100.0 * (dense - random)


def build(tmp_path, specs: dict, envs=tuple(ANCHORS), name="r.sqlite") -> pd.DataFrame:
    """A store's tidy frame: ``specs`` maps (spec, finetuned) to fn(env, seed) -> metrics, where
    a metric ``normalized`` (% of dense over random) becomes ``return_mean``."""
    with ResultStore(tmp_path / name) as store:
        for env in envs:
            for seed in SEEDS:
                for (spec, tuned), make in specs.items():
                    metrics = dict(make(env, seed))
                    if "normalized" in metrics:
                        metrics["return_mean"] = _return(env, seed, metrics.pop("normalized"))
                    store.put(f"{env}-{seed}", spec, {"steps": 10} if tuned else None, 0,
                              {"episodes": 1}, checkpoint=f"{env}__{seed}", env=env, algo="x",
                              train_seed=seed, metrics=metrics,
                              extra={"provenance": {"git_commit": "abc", "machine": {
                                  "cpu_model": "test cpu", "vector_extensions": ["avx2"],
                                  "libraries": {"torch": "2.13.0"}}}})
        return store.load()


def anchors() -> dict:
    return {(RANDOM_POLICY, False): lambda e, s: {"normalized": 0.0},
            ("dense", False): lambda e, s: {"normalized": 100.0, "policy_time_ratio": 1.0,
                                            "isolated_footprint_bytes": 2e6, "bytes": 280_000.0,
                                            "eval_seconds": 10.0, "ram_percent": 1.0,
                                            "cpu_percent": 99.0, "compress_cpu_seconds": 0.01}}


def jitter(seed: int) -> float:
    """A small seed effect (-2 .. 2) so intervals have width."""
    return (seed - 2) * 1.0


# Normalization --------------------------------------------------------------------------------

def test_normalized_returns_use_each_seeds_random_and_dense(tmp_path):
    frame = build(tmp_path, {**anchors(), ("prune=0.5", False): lambda e, s: {"normalized": 40}})
    rows = claims.normalized_returns(frame, frame[frame["spec"] == "prune=0.5"])
    assert len(rows) == 2 * len(SEEDS)
    assert rows["value"].tolist() == pytest.approx([40.0] * 10)


def test_without_random_rows_nothing_is_normalized(tmp_path):
    specs = anchors()
    del specs[(RANDOM_POLICY, False)]
    frame = build(tmp_path, {**specs, ("prune=0.5", False): lambda e, s: {"normalized": 40}})
    assert claims.normalized_returns(frame, frame).empty
    assert claims.keep_io_remedy(frame).verdict == NOT_RESOLVED


# Margins: each test's verdict changes where its margin says ----------------------------------

@pytest.mark.parametrize(("gap", "expected"), [(20.0, CONFIRMED), (3.0, NOT_RESOLVED),
                                               (-10.0, REFUTED)])
def test_pruning_hurts_more_needs_five_points(tmp_path, gap, expected):
    """Pruning below rank reduction by 20 pp: confirmed; by 3 pp (< 5): not confirmed."""
    specs = anchors()
    for level in (0.2, 0.4):
        specs[(f"prune={level:g}", False)] = lambda e, s, g=gap: {"normalized": 60 - g + 0.1 * s}
        specs[(f"lowrank={level:g}", False)] = lambda e, s: {"normalized": 60.0}
    frame = build(tmp_path, specs)
    results = per_environment(claims.pruning_hurts_more, frame)
    assert [r.env for r in results] == ["LunarLander-v3", "HalfCheetah-v5"]
    assert results[0].measured.estimate == pytest.approx(-gap + 0.2)
    if expected == NOT_RESOLVED:  # -2.8 pp: below 0 but not below -5: the rule says refuted
        assert results[0].verdict == REFUTED
    else:
        assert results[0].verdict == expected


@pytest.mark.parametrize(("change", "expected"), [(0.0, CONFIRMED), (5.0, CONFIRMED),
                                                  (30.0, REFUTED), (-30.0, REFUTED)])
def test_quant_unchanged_within_ten_percent(tmp_path, change, expected):
    specs = anchors()
    specs[("quant=8", False)] = lambda e, s: {"policy_time_ratio": 1 + change / 100
                                              + 0.001 * jitter(s)}
    frame = build(tmp_path, specs)
    result = per_environment(functools.partial(claims.quant_cpu_ram,
                                               metric="policy_time_ratio"), frame)[0]
    assert result.measured.estimate == pytest.approx(change)
    assert result.verdict == expected
    assert result.measure == "policy time per decision" and not result.environment_dominated


def test_quant_cpu_percent_is_marked_environment_dominated(tmp_path):
    specs = anchors()
    specs[("quant=8", False)] = lambda e, s: {"cpu_percent": 99.0 + 0.01 * jitter(s)}
    frame = build(tmp_path, specs)
    result = per_environment(functools.partial(claims.quant_cpu_ram, metric="cpu_percent"),
                             frame)[0]
    assert result.environment_dominated and result.reading == CONFIRMED
    assert result.verdict == NOT_JUDGED


@pytest.mark.parametrize(("rise", "expected"), [(5.0, CONFIRMED), (0.5, NOT_RESOLVED),
                                                (-5.0, REFUTED)])
def test_minor_compression_gain_needs_one_spec_above_one_point(tmp_path, rise, expected):
    """One minor spec rising 5 pp confirms; 0.5 pp (< 1) cannot; all falling refutes."""
    specs = anchors()
    specs[("prune=0.1", False)] = lambda e, s: {"normalized": 100 + rise + 0.3 * jitter(s)}
    specs[("prune=0.1,scope=layer", False)] = lambda e, s: {"normalized": 90 + jitter(s)}
    specs[("prune=0.5", False)] = lambda e, s: {"normalized": 150.0}  # not minor: ignored
    frame = build(tmp_path, specs)
    result = per_environment(claims.minor_compression_gain, frame)[0]
    assert result.verdict == expected
    assert result.confidence == pytest.approx(1 - 0.05 / 2)  # Bonferroni over two minor specs
    if expected == CONFIRMED:
        assert result.measured.estimate == pytest.approx(rise)


def _drop_at(level_of_drop: float):
    """Eval time 10 s that falls to 5 s at ``level_of_drop`` rank reduction (and stays)."""
    return lambda lowrank: 5.0 if lowrank >= level_of_drop - 1e-9 else 10.0


@pytest.mark.parametrize(("drop_at", "expected"), [(0.2, REFUTED), (0.3, CONFIRMED),
                                                   (0.4, CONFIRMED), (0.6, REFUTED)])
def test_evaltime_drop_is_located_around_30_percent(tmp_path, drop_at, expected):
    """A fall ending at 20% or 60% is not "around 30%"; one ending at 30% or 40% is."""
    curve = _drop_at(drop_at)
    specs = anchors()
    specs[("dense", False)] = lambda e, s: {"normalized": 100.0, "eval_seconds": curve(0.0)}
    for lowrank in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        for prune in (0.0, 0.5):
            spec = "+".join(p for p in (f"lowrank={lowrank:g}",
                                        f"prune={prune:g}" if prune else "") if p)
            value = curve(lowrank)
            specs[(spec, False)] = lambda e, s, v=value: {"eval_seconds": v}
    specs[("prune=0.5", False)] = lambda e, s: {"eval_seconds": curve(0.0)}
    frame = build(tmp_path, specs)
    result = per_environment(claims.evaltime_drop_30, frame)[0]
    assert result.measured.estimate == (100.0 if expected == CONFIRMED else 0.0)
    assert result.reading == expected


def test_a_small_fall_at_30_percent_is_not_sharp(tmp_path):
    specs = anchors()
    for lowrank in (0.1, 0.2, 0.3, 0.4):
        specs[(f"lowrank={lowrank:g}", False)] = lambda e, s, v=lowrank: {
            "eval_seconds": 9.5 if v >= 0.3 else 10.0}  # 5% < the 10% margin
    frame = build(tmp_path, specs)
    assert per_environment(claims.evaltime_drop_30, frame)[0].reading == REFUTED


@pytest.mark.parametrize(("rank_effect", "expected"), [(-50.0, CONFIRMED), (-8.0, REFUTED)])
def test_rank_resources_compares_with_pruning(tmp_path, rank_effect, expected):
    """Rank reduction -50% vs pruning -5%: 45 pp more; -8% vs -5%: 3 pp (< 10): refuted."""
    specs = anchors()
    for level in (0.2, 0.4):
        specs[(f"lowrank={level:g}", False)] = lambda e, s: {
            "policy_time_ratio": 1 + rank_effect / 100 + 0.001 * jitter(s)}
        specs[(f"prune={level:g}", False)] = lambda e, s: {"policy_time_ratio": 0.95}
    frame = build(tmp_path, specs)
    result = per_environment(claims.rank_resources, frame)[0]
    assert result.measured.estimate == pytest.approx(abs(rank_effect) - 5.0)
    assert result.verdict == expected


@pytest.mark.parametrize(("gain", "expected"), [(2.0, CONFIRMED), (30.0, REFUTED)])
def test_finetune_no_gain_on_hurt_models_only(tmp_path, gain, expected):
    """Gains are judged on models that compression hurt (20-95%), not on destroyed ones."""
    specs = anchors()
    specs[("prune=0.5", False)] = lambda e, s: {"normalized": 60.0 + jitter(s)}
    specs[("prune=0.5", True)] = lambda e, s: {"normalized": 60.0 + gain + jitter(s)}
    specs[("prune=0.9", False)] = lambda e, s: {"normalized": -50.0}  # destroyed: left out
    specs[("prune=0.9", True)] = lambda e, s: {"normalized": 100.0}
    specs[("dense", True)] = lambda e, s: {"normalized": 80.0}  # a control, shown not judged
    frame = build(tmp_path, specs)
    assert claims.hurt_specs(frame) == ["prune=0.5"]
    result = per_environment(claims.finetune_no_gain, frame)[0]
    assert result.measured.estimate == pytest.approx(gain)
    assert result.verdict == expected
    assert "fine-tuning the uncompressed agent gains -20" in result.what


def test_finetune_cost_counts_cpu_seconds(tmp_path):
    specs = anchors()
    specs[("prune=0.5", False)] = lambda e, s: {"compress_cpu_seconds": 0.01}
    specs[("prune=0.5", True)] = lambda e, s: {"compress_cpu_seconds": 0.01,
                                               "finetune_cpu_seconds": 30.0 + s}
    frame = build(tmp_path, specs)
    result = per_environment(claims.finetune_cost, frame)[0]
    assert result.measured.estimate == pytest.approx(3201.0)
    assert result.verdict == CONFIRMED


@pytest.mark.parametrize(("scale", "expected"), [(0.2, CONFIRMED), (1.0, REFUTED),
                                                (2.0, REFUTED)])
def test_finetune_deviation_at_a_given_eval_time(tmp_path, scale, expected):
    """Fine-tuned points scattered ``scale`` times as far from their line as naive ones (about
    11.5 pp): a fifth of it lowers the spread by ~9 pp (> 1): confirmed; the same or twice the
    spread refutes "fine-tuning lowers the spread"."""
    specs = anchors()
    offsets = (-10.0, 10.0, -10.0, 10.0)
    for i, spec in enumerate(("prune=0.3", "prune=0.5", "prune=0.7", "prune=0.9")):
        specs[(spec, False)] = lambda e, s, i=i: {"normalized": 50 + offsets[i] * (1 + 0.01 * s),
                                                  "eval_seconds": 10.0 + i}
        specs[(spec, True)] = lambda e, s, i=i: {
            "normalized": 50 + scale * offsets[i] * (1 + 0.01 * s), "eval_seconds": 10.0 + i}
    frame = build(tmp_path, specs)
    result = per_environment(claims.finetune_deviation, frame)[0]
    assert result.reading == expected
    assert result.measured.n_seeds == len(SEEDS)


def test_keep_io_remedy_needs_five_points(tmp_path):
    specs = anchors()
    specs[("lowrank=0.9", False)] = lambda e, s: {"normalized": 10.0 + jitter(s)}
    specs[("lowrank=0.9,keep_io=true", False)] = lambda e, s: {"normalized": 13.0 + jitter(s)}
    frame = build(tmp_path, specs)
    assert per_environment(claims.keep_io_remedy, frame)[0].verdict == REFUTED  # +3 < 5
    specs[("lowrank=0.9,keep_io=true", False)] = lambda e, s: {"normalized": 40.0 + jitter(s)}
    frame = build(tmp_path, specs, name="again.sqlite")
    result = per_environment(claims.keep_io_remedy, frame)[0]
    assert result.measured.estimate == pytest.approx(30.0) and result.verdict == CONFIRMED


def test_quant_storage(tmp_path):
    specs = anchors()
    specs[("quant=8", False)] = lambda e, s: {"bytes": 70_000.0}
    frame = build(tmp_path, specs)
    result = per_environment(claims.quant_storage, frame)[0]
    assert result.measured.estimate == pytest.approx(-75.0) and result.verdict == CONFIRMED


def test_return_evaltime_correlation(tmp_path):
    specs = anchors()
    for i, level in enumerate((0.2, 0.4, 0.6, 0.8)):
        specs[(f"prune={level:g}", False)] = lambda e, s, i=i: {
            "normalized": 90.0 - 20 * i, "eval_seconds": 10.0 - i + 0.01 * s * (i % 2)}
    frame = build(tmp_path, specs)
    result = per_environment(claims.return_evaltime, frame)[0]
    assert result.measured.estimate > 0.9 and result.reading == CONFIRMED
    assert result.environment_dominated and result.verdict == NOT_JUDGED


# Over both environments ---------------------------------------------------------------------

def _result(verdict_ci: tuple[float, float]) -> claims.ClaimResult:
    low, high = verdict_ci
    return claims.assess(claims.CLAIMS["quant-storage"], Interval((low + high) / 2, low, high, 5),
                         "reduces", 50.0)


def test_combined_verdict():
    confirmed, refuted, open_ = _result((-80, -70)), _result((-10, 0)), _result((-60, -40))
    assert combined_verdict([confirmed, confirmed]) == CONFIRMED
    assert combined_verdict([refuted, refuted]) == REFUTED
    assert combined_verdict([confirmed, refuted]) == ENVIRONMENT_DEPENDENT
    assert combined_verdict([confirmed, open_]) == NOT_RESOLVED


def test_at_most_rule():
    assert verdict_at_most(Interval(1, 0, 2, 5), 10) == CONFIRMED
    assert verdict_at_most(Interval(20, 15, 25, 5), 10) == REFUTED
    assert verdict_at_most(Interval(10, 5, 15, 5), 10) == NOT_RESOLVED


def test_margins_are_fixed_for_every_claim():
    for claim in claims.CLAIMS:
        assert claim in MARGINS, claim


# The verdict table and its files ------------------------------------------------------------

@pytest.fixture
def study(tmp_path):
    specs = anchors()
    specs[("prune=0.1", False)] = lambda e, s: {"normalized": 99.0 + jitter(s)}
    specs[("quant=8", False)] = lambda e, s: {"bytes": 70_000.0, "policy_time_ratio": 2.0}
    return build(tmp_path, specs)


def test_verdict_table_has_a_row_per_claim_environment_and_measure(study, tmp_path):
    verdicts = all_claims({plans.PRUNING: study, plans.QUANTIZATION: study})
    entries = [e for e in ENTRIES if e.chapter in (plans.PRUNING, plans.QUANTIZATION)]
    assert len(verdicts) == 2 * len(entries)
    page = claims_html(verdicts)
    assert page.count("<tr>") == len(verdicts) + 1
    assert '<a href="03-quantization.html#fig-quant-storage">' in page
    # CPU % and RAM %, each one cell over both environments
    assert page.count(html.escape(DOMINATED_NOTE)) == 2
    table = verdicts_frame(verdicts)
    assert tuple(table.columns) == VERDICT_COLUMNS
    storage = table[table["claim"] == "quant-storage"]
    assert storage["verdict"].tolist() == [CONFIRMED, CONFIRMED]
    assert storage["n_seeds"].tolist() == [5, 5] and storage["margin"].tolist() == [50.0, 50.0]
    time = table[(table["claim"] == "quant-cpu-ram")
                 & (table["measure"] == "policy time per decision")]
    assert time["estimate"].tolist() == pytest.approx([100.0, 100.0])
    assert time["verdict"].tolist() == [REFUTED, REFUTED]
    assert (table["verdict"] == table["reading"]).sum() == len(table) - 4
    ram = table[(table["claim"] == "quant-cpu-ram") & (table["measure"] == "RAM %")]
    assert ram["verdict"].tolist() == [NOT_JUDGED, NOT_JUDGED]
    assert "not judged (this run reads" in page


def test_claim_markdown_gives_each_environment_and_the_combined_verdict(study):
    text = claim_markdown(claims.quant_storage, study)
    assert "- **LunarLander-v3**:" in text and "- **HalfCheetah-v5**:" in text
    assert "**Verdict over the environments**: confirmed." in text


def test_book_data_files(study, tmp_path):
    verdicts = all_claims({plans.QUANTIZATION: study})
    with ResultStore(tmp_path / "r.sqlite", readonly=True) as store:
        table = results_table({plans.QUANTIZATION: study, plans.PRUNING: study}, store)
        written = write_book_data({plans.QUANTIZATION: study}, store, verdicts, tmp_path / "d")
    assert len(table) == len(study)  # a job shared by chapters appears once
    assert set(table["cpu_model"]) == {"test cpu"} and set(table["git_commit"]) == {"abc"}
    first = written["verdicts.csv"].read_text().splitlines()[0]
    assert first == ",".join(VERDICT_COLUMNS)
    again = tmp_path / "d2"
    with ResultStore(tmp_path / "r.sqlite", readonly=True) as store:
        write_book_data({plans.QUANTIZATION: study}, store, verdicts, again)
    assert (again / "results.csv").read_bytes() == written["results.csv"].read_bytes()


def test_every_verdict_names_a_chapter_that_runs_a_sweep():
    assert {e.chapter for e in ENTRIES} <= set(plans.CHAPTERS)


def test_csv_floats_read_back_exactly(study, tmp_path):
    table = verdicts_frame(all_claims({plans.QUANTIZATION: study}))
    text = csv_bytes(table).decode()
    assert "np.float64" not in text
    again = pd.read_csv(io.StringIO(text))
    pd.testing.assert_series_equal(again["estimate"], table["estimate"], check_exact=True)


def test_every_row_of_the_full_table_has_its_own_key(tmp_path):
    """verdicts-check pairs rows by (claim, env, measure): no two entries may share one."""
    from rlcomp.verdicts_check import KEYS

    specs = anchors()
    frame = build(tmp_path, specs)
    table = verdicts_frame(all_claims({chapter: frame for chapter in plans.CHAPTERS}))
    assert len(table) == 2 * len(ENTRIES)
    assert not table.duplicated(KEYS).any()
