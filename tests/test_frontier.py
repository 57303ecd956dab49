"""Chapter 06: the smallest file that keeps the return (frontier), the model-bytes metric, the plan.

The frontier is checked on tiny hand-made frames with exact answers: random returns 0 and dense
100 on every seed, so a model's normalized return is its return.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from rlcomp.analysis import frontier
from rlcomp.analysis.frontier import (
    FRONTIER_COLUMNS,
    FactorTarget,
    distill_cost_table,
    distillation_gain,
    frontier_figure,
    frontier_table,
    method_family,
    target_table,
    write_frontier,
)
from rlcomp.checkpoint import load_checkpoint
from rlcomp.compress.storage import compressed_file_bytes
from rlcomp.experiments import plans
from rlcomp.experiments.jobs import payload_bytes, run_job
from rlcomp.experiments.sweep import load_sweep, sweep_from_mapping
from rlcomp.files import read_safetensors, safetensors_bytes
from rlcomp.retrain.pipeline import compressed_policy

LL, HC = "LunarLander-v3", "HalfCheetah-v5"
T_975_1 = 12.706204736174705
"""The 97.5% quantile of Student's t with 1 degree of freedom (two seeds)."""

# spec, fine-tuned, returns of seeds 0 and 1, model bytes, file bytes, training metrics per seed
MODELS = [
    ("dense", False, (100.0, 100.0), 1000, 1100, {}),
    ("prune=0.5", False, (80.0, 70.0), 600, 700, {}),
    ("prune=0.9", False, (10.0, 20.0), 300, 400, {}),
    ("quant=8", False, (99.0, 97.0), 250, 330, {}),
    ("prune=0.2+quant=8", False, (97.0, 95.0), 200, 290, {}),
    ("prune=0.5+quant=8", False, (96.0, 92.0), 150, 240, {}),
    ("quant=4,mixed=true,mode=qat", True, (90.0, 80.0), 140, 230,
     {"finetune_env_steps": (10_000, 10_000), "finetune_cpu_seconds": (12.0, 14.0)}),
    ("distill=16x16", False, (100.0, 98.0), 100, 180,
     {"distill_env_steps": (200_000, 200_000), "distill_cpu_seconds": (30.0, 34.0),
      "distill_gradient_steps": (25_000, 25_000), "distill_wall_seconds": (31.0, 35.0)}),
    ("distill=8x8", False, (96.0, 95.0), 40, 120,
     {"distill_env_steps": (200_000, 200_000), "distill_cpu_seconds": (28.0, 30.0),
      "distill_gradient_steps": (25_000, 25_000), "distill_wall_seconds": (29.0, 31.0)}),
    ("distill=8x8+quant=8", False, (96.0, 94.0), 20, 100,
     {"distill_env_steps": (200_000, 200_000), "distill_cpu_seconds": (27.0, 125.0),
      "distill_gradient_steps": (25_000, 25_000), "distill_wall_seconds": (28.0, 126.0)}),
]


def tidy_frame(env: str = LL, models=MODELS, sizes: bool = True) -> pd.DataFrame:
    rows = []

    def add(spec, finetuned, seed, metric, value):
        rows.append({"checkpoint": f"{env}__{seed}", "env": env, "algo": "x", "train_seed": seed,
                     "spec": spec, "finetuned": finetuned, "eval_seed": 0, "metric": metric,
                     "value": float(value)})

    for seed in (0, 1):
        add("random", False, seed, "return_mean", 0.0)
    for spec, finetuned, returns, model_bytes, file_bytes, training in models:
        for seed in (0, 1):
            add(spec, finetuned, seed, "return_mean", returns[seed])
            if sizes:
                add(spec, finetuned, seed, "model_bytes", model_bytes)
            add(spec, finetuned, seed, "bytes", file_bytes)
            for metric, values in training.items():
                add(spec, finetuned, seed, metric, values[seed])
    return pd.DataFrame(rows)


@pytest.fixture
def ax():
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)


# Method families --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, finetuned, family", [
    ("dense", False, "dense"),
    ("dense", True, "dense, fine-tuned"),
    ("prune=0.5", False, "prune"),
    ("prune=0.5,scope=layer", False, "prune"),
    ("prune=0.5", True, "prune, fine-tuned"),
    ("prune=0.9,schedule=gradual", True, "gradual prune"),
    ("prune=0.9,schedule=gradual", False, "prune"),  # without fine-tuning: one-shot
    ("lowrank=0.6,keep_io=true+quant=8", False, "lowrank+int8"),
    ("prune=0.5+quant=8", False, "prune+int8"),
    ("quant=4,group=32", False, "int4"),
    ("quant=2,mixed=true,mode=qat", True, "int2 QAT"),
    ("quant=2,mixed=true,mode=qat", False, "int2"),  # without fine-tuning: PTQ
    ("distill=16x16", False, "distill"),
    ("distill=8x8,steps=2000+quant=4,mixed=true", False, "distill+int4"),
    ("random", False, "random"),
])
def test_method_family(spec, finetuned, family):
    assert method_family(spec, finetuned) == family


def test_poster_and_distill_families():
    assert all(frontier.is_poster_family(f) for f in
               ("prune", "lowrank", "int8", "prune+int8", "lowrank+int8", "prune, fine-tuned"))
    assert not any(frontier.is_poster_family(f) for f in
                   ("dense", "int4", "gradual prune", "int4 QAT", "distill", "distill+int8"))
    assert frontier.is_distill_family("distill+int4")
    assert not frontier.is_distill_family("prune+int8")


# The frontier table -----------------------------------------------------------------------------

def test_frontier_table_columns_are_exact():
    table = frontier_table(tidy_frame())
    assert tuple(table.columns) == FRONTIER_COLUMNS == (
        "env", "method", "spec", "bytes", "file_bytes", "factor", "normalized_return", "ci_low",
        "ci_high", "n_seeds", "env_steps", "cpu_seconds")


def test_frontier_table_picks_the_smallest_model_that_keeps_95_percent():
    table = frontier_table(tidy_frame()).set_index("method")
    assert list(table.index) == ["dense", "prune", "int8", "prune+int8", "int4 QAT", "distill",
                                 "distill+int8"]
    assert (table["env"] == LL).all() and (table["n_seeds"] == 2).all()
    # dense: the reference, factor 1, normalized 100 on both seeds (a point interval)
    dense = table.loc["dense"]
    assert (dense["spec"], dense["bytes"], dense["file_bytes"]) == ("dense", 1000, 1100)
    assert dense["factor"] == 1.0 and dense["ci_low"] == dense["ci_high"] == 100.0
    # int8: 98 = mean(99, 97) >= 95; its t interval over two seeds: 98 +- t(0.975, 1) * 1
    int8 = table.loc["int8"]
    assert (int8["spec"], int8["bytes"], int8["factor"]) == ("quant=8", 250, 4.0)
    assert int8["normalized_return"] == 98.0
    assert int8["ci_low"] == pytest.approx(98.0 - T_975_1)
    assert int8["ci_high"] == pytest.approx(98.0 + T_975_1)
    # prune+int8: 0.5 (150 bytes) keeps 94 < 95, so the smallest that keeps it is 0.2 (200 bytes)
    assert table.loc["prune+int8", "spec"] == "prune=0.2+quant=8"
    assert table.loc["prune+int8", "factor"] == 5.0
    # distill: 8x8 (40 bytes, 95.5) beats 16x16 (100 bytes, 99); training cost means over seeds
    distill = table.loc["distill"]
    assert (distill["spec"], distill["bytes"], distill["factor"]) == ("distill=8x8", 40, 25.0)
    assert (distill["env_steps"], distill["cpu_seconds"]) == (200_000, 29.0)
    # exactly 95 keeps it
    assert table.loc["distill+int8", "spec"] == "distill=8x8+quant=8"
    assert table.loc["distill+int8", "normalized_return"] == 95.0
    assert table.loc["distill+int8", "factor"] == 50.0
    # pure compressions cost no training
    assert table.loc["int8", "env_steps"] == 0 and table.loc["int8", "cpu_seconds"] == 0.0


def test_a_family_that_falls_short_shows_its_best_returning_model():
    table = frontier_table(tidy_frame()).set_index("method")
    # prune=0.9 is smaller (300 bytes) but returns 15; the family's best return is prune=0.5
    prune = table.loc["prune"]
    assert (prune["spec"], prune["bytes"], prune["normalized_return"]) == ("prune=0.5", 600, 75.0)
    assert prune["normalized_return"] < frontier.KEEP
    qat = table.loc["int4 QAT"]  # fine-tuned: its cost is the fine-tuning's
    assert (qat["spec"], qat["normalized_return"]) == ("quant=4,mixed=true,mode=qat", 85.0)
    assert (qat["env_steps"], qat["cpu_seconds"]) == (10_000, 13.0)


def test_normalized_returns_use_each_seeds_random_and_dense():
    frame = tidy_frame()
    shifted = frame.copy()
    # seed 1: random 100, dense 300 -> a return of 290 is 95% of dense's gain
    one = shifted["train_seed"] == 1
    ret = shifted["metric"] == "return_mean"
    shifted.loc[one & ret, "value"] = 100.0 + 2.0 * shifted.loc[one & ret, "value"]
    table = frontier_table(shifted).set_index("method")
    assert table.loc["int8", "normalized_return"] == 98.0
    assert table.loc["distill", "spec"] == "distill=8x8"


def test_environments_are_separate_and_in_the_study_order():
    frame = pd.concat([tidy_frame(HC), tidy_frame(LL)], ignore_index=True)
    table = frontier_table(frame)
    assert list(dict.fromkeys(table["env"])) == [LL, HC]
    assert len(table) == 2 * 7


def test_results_without_model_bytes_are_refused():
    with pytest.raises(ValueError, match="no model_bytes for LunarLander-v3: dense"):
        frontier_table(tidy_frame(sizes=False))


def test_write_frontier_writes_the_exact_columns(tmp_path):
    path = write_frontier(tidy_frame(), tmp_path / "data")
    assert path == tmp_path / "data" / "frontier.csv"
    text = path.read_text()
    assert text.splitlines()[0] == ",".join(FRONTIER_COLUMNS)
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, frontier_table(tidy_frame()), check_dtype=False)
    assert write_frontier(tidy_frame(), tmp_path / "data").read_bytes() == text.encode()


# The targets and the comparison with the poster -------------------------------------------------

def test_target_table_sets_the_best_kept_factor_beside_the_targets():
    table = frontier_table(tidy_frame())
    row = target_table(table).iloc[0]
    assert (row["spec"], row["factor"]) == ("distill=8x8+quant=8", 50.0)
    assert (row["target"], row["stretch"]) == (300.0, 500.0)
    assert not row["target_met"] and not row["stretch_met"]
    row = target_table(table, targets={LL: FactorTarget(40.0, 60.0)}).iloc[0]
    assert row["target_met"] and not row["stretch_met"]
    assert "is **met**" in frontier.target_markdown(target_table(
        table, targets={LL: FactorTarget(40.0, 60.0)}))
    shown = frontier.target_display(target_table(table)).loc[LL]
    assert (shown["smaller than dense"], shown["target"], shown["stretch target"]) == (
        "50x", "300x: not met", "500x: not met")


def test_distillation_gain_over_the_posters_best():
    gain = distillation_gain(frontier_table(tidy_frame())).iloc[0]
    # the poster's best that keeps 95%: prune=0.2+quant=8 at 5x; distillation's 50x
    assert (gain["poster_spec"], gain["poster_factor"]) == ("prune=0.2+quant=8", 5.0)
    assert (gain["distill_spec"], gain["distill_factor"]) == ("distill=8x8+quant=8", 50.0)
    assert gain["gain"] == 10.0
    assert "10.0 times smaller" in frontier.gain_markdown(distillation_gain(
        frontier_table(tidy_frame())))


def test_distill_cost_table_counts_every_distillation_of_a_student():
    costs = distill_cost_table(tidy_frame()).set_index("student")
    assert list(costs.index) == ["16x16", "8x8"]
    assert costs.loc["8x8", "distillations"] == 4  # alone and before int8, two seeds each
    assert costs.loc["8x8", "max_cpu_seconds"] == 125.0
    assert costs.loc["16x16", "cpu_seconds"] == 32.0
    text = frontier.distill_cost_markdown(distill_cost_table(tidy_frame()))
    assert "longest of 6 distillations took 125.0 CPU seconds" in text and "**not met**" in text


def test_bytes_table_shows_the_compressions_of_the_agents_only():
    table = frontier.bytes_table(tidy_frame())
    assert list(table.index) == ["dense", "prune=0.5", "prune=0.9", "quant=8",
                                 "prune=0.2+quant=8", "prune=0.5+quant=8"]
    assert table.loc["quant=8", (LL, "model bytes")] == "250"
    assert table.loc["quant=8", (LL, "factor")] == "4.00x"
    assert "distill=8x8" in frontier.bytes_table(tidy_frame(), trained=True).index


def test_frontier_figure_draws_every_model_and_the_95_line(ax):
    points = frontier_figure(tidy_frame(), LL, ax)
    assert len(points) == len(MODELS)
    assert ax.get_xscale() == "log"
    assert any(list(line.get_ydata()) == [95.0, 95.0] for line in ax.get_lines())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "dense" and "distill+int8" in labels and "95% of dense" in labels
    assert "300x smaller than dense" in labels
    empty = frontier_figure(tidy_frame(), HC, ax)
    assert empty.empty


# The model-bytes metric -------------------------------------------------------------------------

def test_payload_bytes_is_the_file_without_its_header():
    blob = safetensors_bytes({"w": torch.zeros(3, 5), "b": torch.zeros(7, dtype=torch.int8)},
                             {"note": "x" * 100})
    assert payload_bytes(blob) == 3 * 5 * 4 + 7


def test_jobs_record_model_bytes_the_tensor_payload_of_the_file():
    sweep = sweep_from_mapping({"checkpoints": [str(plans.ROOT / "checkpoints" /
                                                    "LunarLander-v3__ddqn__0")],
                                "specs": ["prune=0.5+quant=8"], "episodes": 1,
                                "eval_seeds": [0], "probes": dict(plans.BEYOND_PROBES)})
    metrics = run_job(sweep.jobs()[0])["metrics"]
    ckpt = load_checkpoint(plans.ROOT / "checkpoints" / "LunarLander-v3__ddqn__0")
    policy = compressed_policy(ckpt, "prune=0.5+quant=8", seed=0).policy
    _, tensors = read_safetensors(compressed_file_bytes(policy, {
        "env_id": ckpt.env_id, "algo": ckpt.algo, "spec": "prune=0.5+quant=8"}))
    payload = sum(t.numel() * t.element_size() for t in tensors.values())
    assert metrics["model_bytes"] == payload
    assert 8 < metrics["bytes"] - metrics["model_bytes"] < 1024  # the header


# The chapter's plan -----------------------------------------------------------------------------

def test_chapter_06_part_files_are_up_to_date_and_valid():
    for part in plans.sweep_parts(plans.BEYOND):
        for profile in plans.PROFILE_SETTINGS:
            path = plans.sweep_file(plans.BEYOND, profile, part)
            assert path.read_text() == plans.sweep_file_text(plans.BEYOND, profile, part), (
                f"{path} is stale: run python -m rlcomp.experiments.plans")
            sweep = plans.chapter_sweep(plans.BEYOND, profile, part=part)
            assert load_sweep(path).specs == sweep.specs
            assert [Path(c).name for c in load_sweep(path).checkpoints] == [
                Path(c).name for c in sweep.checkpoints]


def test_chapter_06_full_profile_jobs():
    naive = plans.chapter_sweep(plans.BEYOND, "full")
    tuned = plans.chapter_sweep(plans.BEYOND, "full", part=plans.FINETUNED)
    assert len(naive.checkpoints) == len(tuned.checkpoints) == 10 and naive.episodes == 100
    assert len(naive.jobs()) == 10 * 25 and len(tuned.jobs()) == 10 * 5
    assert all(job.finetune == {"steps": 10_000} for job in tuned.jobs())
    assert all(job.finetune is None for job in naive.jobs())
    students = [s for s in naive.specs if s.startswith("distill")]
    assert len(students) == 9 and all(",steps=" not in s for s in students)  # default 200k
    assert naive.probes == plans.BEYOND_PROBES == {"latency": False, "isolated_memory": False,
                                                   "policy_time": True}
    smoke = plans.chapter_sweep(plans.BEYOND, "smoke")
    assert all(",steps=2000" in s for s in smoke.specs if s.startswith("distill"))
    with pytest.raises(ValueError, match="has no part 'finetuned'"):
        plans.chapter_plan(plans.PRUNING, "smoke", part=plans.FINETUNED)
    assert math.isclose(frontier.DISTILL_CPU_TARGET, 120.0)
