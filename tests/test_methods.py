"""The methods page's library: the coverage simulation and the tables of rlcomp.analysis.methods."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlcomp.analysis import coverage, methods
from rlcomp.analysis.claims import MARGINS
from rlcomp.analysis.training import load_checkpoints
from rlcomp.experiments.plans import PROFILE_SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def _normal(rng: np.random.Generator, size: tuple[int, ...], episodes: int) -> np.ndarray:
    return rng.normal(10.0, 2.0, size=size)


# Coverage -----------------------------------------------------------------------------------------

def test_t_bounds_cover_a_normal_mean_at_the_nominal_rate():
    """Normal seed values: the t interval's coverage is 95% up to Monte Carlo error."""
    rng = np.random.default_rng(1)
    sims = 4000
    values = _normal(rng, (sims, 5), 1)
    low, high = coverage.t_bounds(values, 0.95)
    covered = float(((low <= 10.0) & (10.0 <= high)).mean())
    assert abs(covered - 0.95) < 4 * coverage.monte_carlo_se(0.95, sims)


def test_percentile_bootstrap_undercovers_at_five_seeds():
    rng = np.random.default_rng(2)
    values = _normal(rng, (1000, 5), 1)
    low, high = coverage.percentile_bounds(values, 0.95, 500, rng)
    covered = float(((low <= 10.0) & (10.0 <= high)).mean())
    assert covered < 0.9


def test_t_bounds_are_the_library_interval(monkeypatch):
    values = np.random.default_rng(3).gamma(2.0, 3.0, size=(4, 5))
    coverage.check_against_library(values)
    original = coverage.t_bounds
    monkeypatch.setattr(coverage, "t_bounds",
                        lambda v, c: (original(v, c)[0] - 1.0, original(v, c)[1]))
    with pytest.raises(AssertionError, match="differs from t_interval"):
        coverage.check_against_library(values)


def test_simulate_coverage_is_seeded_and_reproducible():
    a = coverage.simulate_coverage(60, reps=50, truth_seeds=2000, seed=5)
    b = coverage.simulate_coverage(60, reps=50, truth_seeds=2000, seed=5)
    c = coverage.simulate_coverage(60, reps=50, truth_seeds=2000, seed=6)
    assert a == b
    assert a[0] != c[0]


def test_simulate_coverage_rows_and_summary():
    rows, summary = coverage.simulate_coverage(300, reps=100, truth_seeds=5000, seed=0)
    assert [(r["scenario"], r["method"]) for r in rows] == [
        (s, m) for s in coverage.SCENARIOS for m in coverage.METHODS]
    assert all(set(r) == set(coverage.ROW_KEYS) for r in rows)
    by = {(r["scenario"], r["method"]): r for r in rows}
    assert summary["coverage"] == min(by[(s, "t")]["coverage"] for s in coverage.OURS)
    assert summary["coverage_bimodal"] == by[(coverage.BIMODAL, "t")]["coverage"]
    for s in coverage.OURS:  # the t interval is near nominal where it should be, and wider
        assert by[(s, "t")]["coverage"] > 0.88
        assert by[(s, "t")]["width"] > by[(s, "percentile")]["width"]
    assert by[(coverage.BIMODAL, "t")]["coverage"] < 0.85
    assert by[("lunarlander", "t")]["truth"] == pytest.approx(249.9)


def test_simulate_coverage_refuses_bad_sizes():
    with pytest.raises(ValueError, match="seeds >= 2"):
        coverage.simulate_coverage(10, seeds=1)
    with pytest.raises(ValueError, match="sims"):
        coverage.simulate_coverage(0)


def test_monte_carlo_se():
    assert coverage.monte_carlo_se(0.95, 20_000) == pytest.approx(math.sqrt(0.95 * 0.05 / 20_000))
    assert coverage.monte_carlo_se(1.0, 10) == 0.0
    with pytest.raises(ValueError):
        coverage.monte_carlo_se(0.5, 0)


def test_the_benchmark_prints_the_library_result_as_its_last_line():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "interval_coverage.py"),
                           "--sims", "40", "--reps", "30", "--truth-seeds", "1000", "--seed", "2"],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    _, summary = coverage.simulate_coverage(40, reps=30, truth_seeds=1000, seed=2)
    assert printed == json.loads(json.dumps(summary))


# Tables -------------------------------------------------------------------------------------------

def test_parameter_count_of_the_study_networks():
    assert methods.parameter_count([8, 256, 256, 4]) == 69_124
    assert methods.parameter_count([2, 3]) == 9
    with pytest.raises(ValueError):
        methods.parameter_count([8])


def test_agents_table_reads_the_committed_checkpoints():
    table = methods.agents_table(load_checkpoints(ROOT / "checkpoints"))
    assert list(table.columns) == ["quantity", "LunarLander-v3", "HalfCheetah-v5"]
    lunar = table.set_index("quantity")["LunarLander-v3"]
    assert lunar["policy network (layer widths)"] == "8-256-256-4"
    assert lunar["parameters"] == "69,124"
    assert lunar["float32 size (kB)"] == "276.5"
    assert lunar["training seeds"] == "0, 1, 2, 3, 4"
    quantities = list(table["quantity"])
    assert "training CPU time per seed (s)" in quantities
    assert "training budget (environment steps)" in quantities


def test_agents_table_refuses_no_checkpoints_and_paths_resolve_under_the_root(tmp_path):
    with pytest.raises(ValueError, match="at least one checkpoint"):
        methods.agents_table([])
    assert methods.repository_path("checkpoints") == ROOT / "checkpoints"
    assert methods.repository_path(tmp_path) == tmp_path


def test_protocol_table_follows_the_profiles():
    table = methods.protocol_table()
    assert list(table.columns) == ["quantity", *(f"{p} profile" for p in PROFILE_SETTINGS)]
    full = dict(zip(table["quantity"], table["full profile"], strict=True))
    seeds = PROFILE_SETTINGS["full"]["train_seeds"]
    assert full["training seeds per environment (the unit of replication)"].startswith(
        f"{len(seeds)} (")
    assert full["evaluation episodes per job"] == str(PROFILE_SETTINGS["full"]["episodes"])
    assert full["episode seeds"] == f"0 to {PROFILE_SETTINGS['full']['episodes'] - 1}"
    assert all("(" in q or "seeds" in q or "levels" in q or "episodes" in q
               for q in table["quantity"])  # each quantity names its unit or is a count


def test_coverage_table_has_units_and_monte_carlo_error():
    rows = [{"scenario": "relative-diff", "method": m, "coverage": c, "width": w,
             "truth": -6.3, "truth_se": 0.04, "mean_estimate": -6.0}
            for m, c, w in (("t", 0.95, 14.44), ("percentile", 0.8, 8.76))]
    table = methods.coverage_table(rows, 2000)
    assert len(table) == 1
    row = table.iloc[0]
    se = f"{100 * math.sqrt(0.95 * 0.05 / 2000):.1f}"
    assert row["t interval (the book's): coverage ± s.e. (%)"] == f"95.0 ± {se}"
    assert row["percentile bootstrap: mean width"] == "8.8 %"
    assert row["true value"] == "-6.3 ± 0.04 %"


def test_margins_table_is_the_claim_functions_own():
    table = methods.margins_table()
    assert len(table) == len(table.drop_duplicates())
    storage = table[table["measure"] == "file bytes"].iloc[0]
    assert f"-{MARGINS['quant-storage']:g} %" in storage["rule and margin"]
    dominated = set(table.loc[table["verdict"] == "not judged", "measure"])
    assert dominated == {"evaluation wall time", "RAM %", "CPU %"}
    html = methods.margins_html(table)
    assert html.count("<tr>") == len(table) + 1
    assert 'href="03-quantization.html#fig-quant-storage"' in html


def test_environment_dominated_table_names_units():
    table = methods.environment_dominated_table()
    assert (table["unit"] != "").all()
    assert table.set_index("metric").loc["ram_percent", "claim measure"] == "RAM %"


def _results() -> pd.DataFrame:
    rows = []
    for env, (rnd, dense, pruned) in {"LunarLander-v3": (-200.0, 250.0, 160.0),
                                      "HalfCheetah-v5": (-300.0, 5000.0, 4470.0)}.items():
        for spec, value in (("random", rnd), ("dense", dense), ("prune=0.5", pruned)):
            rows.append({"env": env, "train_seed": 0, "spec": spec, "finetuned": False,
                         "metric": "return_mean", "value": value, "cpu_model": "Some CPU",
                         "vector_extensions": "avx avx2", "torch": "2.0", "numpy": "2.0",
                         "gymnasium": "1.0", "mujoco": "3.0", "git_commit": "abc"})
    rows.append({**rows[0], "spec": "dense", "finetuned": True, "value": 0.0})
    return pd.DataFrame(rows)


def test_normalization_example_is_random_zero_dense_hundred():
    table = methods.normalization_example(_results())
    assert list(table["prune=0.5 normalized (%)"]) == ["80.0", "90.0"]
    with pytest.raises(ValueError, match="no naive return_mean"):
        methods.normalization_example(_results(), spec="quant=8")


def test_machine_table_reads_the_provenance_columns():
    results = _results()
    table = methods.machine_table(results).set_index("what")["value"]
    assert table["CPU model"] == "Some CPU" and table["MuJoCo version"] == "3.0"
    assert table["results measured (rows)"] == f"{len(results):,}"
    mixed = results.assign(cpu_model=["A", "B"] * (len(results) // 2) + ["A"] * (len(results) % 2))
    assert methods.machine_table(mixed).set_index("what")["value"]["CPU model"] == "A; B"


def test_machine_table_of_the_committed_results():
    results = pd.read_csv(ROOT / "book" / "data" / "results.csv")
    table = methods.machine_table(results).set_index("what")["value"]
    assert table["CPU model"] == "; ".join(sorted(set(results["cpu_model"].astype(str))))


def test_html_table_escapes_and_scrolls():
    html = methods.html_table(pd.DataFrame({"size (kB)": ["<1"], "page": ["a.html#b"]}),
                              links={"size (kB)": "page"})
    assert "overflow-x: auto" in html and "&lt;1" in html and "size (kB)" in html
    assert '<a href="a.html#b">&lt;1</a>' in html and "<th" in html and ">page<" not in html
    assert "white-space: normal" in html


def test_study_facts():
    verdicts = pd.DataFrame([{"claim": "quant-cpu-ram", "env": "LunarLander-v3",
                              "measure": "policy time per decision", "estimate": 34.2,
                              "ci_low": 30.0, "ci_high": 38.4}])
    facts = methods.study_facts(load_checkpoints(ROOT / "checkpoints"), _results(), verdicts)
    assert facts["envs"] == 2 and facts["cpu"] == "Some CPU"
    assert facts["train_seeds"] == len(PROFILE_SETTINGS["full"]["train_seeds"])
    assert facts["int8_time_lunarlander"] == "+34% (95% CI +30% to +38%)"
    assert facts["largest_params"] == "71,942"
