"""The chapters' tables show every number in a reader's unit, at a sensible precision.

Small hand-made tidy frames with one seed (so a cell is the bare number) or constant values, whose
cells are known exactly: seconds become µs or s, bytes kB or MB, fractions %, returns keep one
decimal, counts are integers with thousands separators; a metric the map does not know keeps its
name and three significant digits.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rlcomp.analysis import tables
from rlcomp.analysis.tables import (
    CPU_RATIO,
    METRIC_DISPLAY,
    Display,
    finetune_cost_table,
    finetune_table,
    latency_ratios,
    metric_display,
    spec_table,
    wide_table,
)
from rlcomp.experiments.store import COLUMNS

LL, HC = "LunarLander-v3", "HalfCheetah-v5"


def tidy(values: dict, envs=(LL,), seeds=(0,)) -> pd.DataFrame:
    """A tidy frame: ``values`` maps (spec, method, level, finetuned) to {metric: value or
    fn(seed)}; one job per environment and training seed."""
    rows = []
    for env in envs:
        for seed in seeds:
            for (spec, method, level, tuned), metrics in values.items():
                for metric, value in metrics.items():
                    rows.append({
                        "checkpoint": f"{env}__{seed}", "env": env, "algo": "x",
                        "train_seed": seed, "method": method, "level": level,
                        "finetuned": tuned, "metric": metric,
                        "value": value(seed) if callable(value) else value, "spec": spec,
                        "eval_seed": 0, "finetune": "{}", "probe": "{}",
                        "prune": level if method == "prune" else 0.0,
                        "lowrank": level if method == "lowrank" else 0.0, "quant": math.nan,
                        "key": f"{env}{spec}{tuned}{seed}"})
    return pd.DataFrame(rows, columns=list(COLUMNS))


# The map ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("metric", "stored", "header", "shown"), [
    ("latency_onnx_median_s", 1.08e-5, "ONNX latency (µs)", "10.8"),
    ("latency_eager_p95_s", 2.5e-4, "PyTorch latency, p95 (µs)", "250.0"),
    ("seconds_per_step", 7.8e-5, "Eval time per step (µs)", "78.0"),
    ("compress_cpu_seconds", 0.0123, "Compression CPU time (ms)", "12.3"),
    ("eval_seconds", 1.7369, "Eval wall time (s)", "1.74"),
    ("bytes", 288_728.0, "Model file (kB)", "288.7"),
    ("theoretical_bytes", 75_000.0, "Theoretical size (kB)", "75.0"),
    ("isolated_footprint_bytes", 3_342_336.0, "Isolated footprint (kB)", "3,342"),
    ("isolated_model_rss_bytes", 245_497_856.0, "Resident memory with the model (MB)", "245.5"),
    ("sparsity", 0.95, "Sparsity (%)", "95.0"),
    ("policy_share", 0.0456, "Policy share of eval time (%)", "4.6"),
    ("return_mean", 5812.345, "Return", "5,812.3"),
    ("return_mean", -161.75, "Return", "-161.8"),
    ("params", 71942.0, "Parameters", "71,942"),
    ("macs_per_decision", 160.0, "MACs per decision", "160"),
    ("finetune_env_steps", 3000.0, "Fine-tune env steps", "3,000"),
    ("policy_time_ratio", 1.234, "Policy time per decision (x dense)", "1.23"),
    ("episode_length_mean", 1000.0, "Episode length (steps)", "1,000"),
])
def test_each_metric_has_its_unit_and_precision(metric, stored, header, shown):
    display = metric_display(metric)
    assert display.header == header
    assert display.cell(stored) == shown


def test_an_unknown_metric_keeps_its_name_and_three_significant_digits():
    display = metric_display("some_new_metric")
    assert display == Display("some_new_metric")
    assert display.header == "some_new_metric"
    assert display.cell(123456.0) == "1.23e+05" and display.cell(0.012345) == "0.0123"


def test_every_stored_time_and_size_is_shown_in_a_readers_unit():
    """No metric stored in seconds or bytes is shown as stored: each has a unit and a factor."""
    for metric, display in METRIC_DISPLAY.items():
        if metric.endswith(("_s", "_bytes", "seconds_per_step", "per_decision")) \
                and "macs" not in metric:
            assert display.unit in ("s", "ms", "µs", "kB", "MB"), metric
        if display.unit in ("ms", "µs", "kB", "MB"):
            assert display.scale != 1.0, metric


def test_an_interval_is_scaled_with_its_estimate():
    cell = metric_display("latency_onnx_median_s").cell(1.0e-5, 0.9e-5, 1.1e-5)
    assert cell == "10.0 [9.0, 11.0]"


# The tables --------------------------------------------------------------------------------------

def test_wide_table_names_its_metric_and_levels():
    table = {LL: pd.DataFrame({"variant": ["global", "global"], "prune": [0.0, 0.5],
                               "estimate": [1.0e-5, 2.0e-5], "ci_low": [0.5e-5, 1.0e-5],
                               "ci_high": [1.5e-5, 3.0e-5], "n_seeds": [3, 3]})}
    out = wide_table(table, "prune", metric="latency_onnx_median_s")
    assert out.index.name == "% pruned" and list(out.index) == ["0", "50"]
    assert out.columns.names == [None, "ONNX latency (µs)"]
    assert out.loc["50", (LL, "global")] == "20.0 [10.0, 30.0]"
    legacy = wide_table(table, "prune", decimals=0)  # no metric: the numbers as stored
    assert legacy.index.name == "% prune" and legacy.iloc[0, 0] == "0 [0, 0]"


def test_spec_table_by_metric_names_and_by_column_names():
    frame = tidy({("dense", "dense", 0.0, False): {"bytes": 280_000.0,
                                                    "latency_onnx_median_s": 1.08e-5},
                  ("quant=8", "quant", 8.0, False): {"bytes": 80_123.0,
                                                      "latency_onnx_median_s": 2.0e-5}})
    models = {"dense": "dense", "int8": "quant=8"}
    out = spec_table(frame, models, ["bytes", "latency_onnx_median_s"])
    assert out.loc["int8", (LL, "Model file (kB)")] == "80.1"
    assert out.loc["dense", (LL, "ONNX latency (µs)")] == "10.8"
    named = spec_table(frame, models, {"file": "bytes"})
    assert named.loc["int8", (LL, "file (kB)")] == "80.1"
    exact = spec_table(frame, models, {"file bytes": "bytes"}, formats={"file bytes": "{:,.0f}"})
    assert exact.loc["int8", (LL, "file bytes")] == "80,123"  # the caller's own unit


def test_finetune_table_shows_the_metric_with_its_unit_and_a_signed_change():
    frame = tidy({("dense", "dense", 0.0, False): {"return_mean": 200.0},
                  ("prune=0.5", "prune", 0.5, False): {"return_mean": lambda s: 100.0 + s},
                  ("prune=0.5", "prune", 0.5, True): {"return_mean": lambda s: 1150.0 + s}},
                 seeds=(0, 1, 2))
    out = finetune_table(frame)
    assert out.columns.names == [None, "Return"]
    assert out.loc["prune=0.5", (LL, "fine-tuned")].startswith("1,151.0 [")
    assert out.loc["prune=0.5", (LL, "change")] == "+1,050.0"  # paired: the same every seed


def test_finetune_cost_table_has_units_counts_and_the_cpu_ratio():
    costs = {"finetune_env_steps": 3000.0, "finetune_updates": 136.0,
             "finetune_cpu_seconds": 1.5, "finetune_wall_seconds": 2.25, "env_steps": 1000.0,
             "cpu_seconds_per_step": 1e-4, "eval_seconds": 0.5}
    frame = tidy({("prune=0.5", "prune", 0.5, True): costs})
    out = finetune_cost_table(frame)
    row = out.loc[(LL, "prune=0.5")]
    assert row["Fine-tune env steps"] == "3,000" and row["Fine-tune updates"] == "136"
    assert row["Fine-tune CPU time (s)"] == "1.5" and row["Eval CPU time (s)"] == "0.10"
    assert row["Eval wall time (s)"] == "0.50" and row[CPU_RATIO] == "15.0"


def test_latency_ratios_say_what_they_divide_by():
    latency = pd.DataFrame({"model": ["dense", "int8"], "spec": ["dense", "quant=8"],
                            "runtime": ["ONNX Runtime"] * 2, "estimate": [0.01, 0.025],
                            "ci_low": [0.01, 0.025], "ci_high": [0.01, 0.025],
                            "n_seeds": [1, 1]})
    out = latency_ratios({LL: latency})
    assert out.columns.names == [None, "Latency (x dense)"]
    assert out.loc["int8", (LL, "ONNX Runtime")] == "2.50x"


def test_portable_keeps_the_unit_level_names():
    table = {env: pd.DataFrame({"variant": ["global"], "prune": [0.5], "estimate": [100.0],
                                "ci_low": [100.0], "ci_high": [100.0], "n_seeds": [1]})
             for env in (LL, HC)}
    out = tables.portable(wide_table(table, "prune", metric="return_mean"))
    assert list(out.columns) == [(LL, "global")] and out.columns.names == [None, "Return"]
