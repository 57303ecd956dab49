"""Each claim's measurement and verdict on a small hand-made results store."""

import pytest

from rlcomp.analysis.claims import (
    finetune_no_gain,
    keep_io_remedy,
    minor_compression_gain,
    pruning_hurts_more,
    quant_cpu_ram,
    quant_storage,
)
from rlcomp.analysis.verdict_rules import CONFIRMED, NOT_RESOLVED, REFUTED
from rlcomp.analysis.verdict_table import ENTRIES, all_claims, claims_html
from rlcomp.experiments import plans
from rlcomp.experiments.store import ResultStore

ENVS = {"LunarLander-v3": 200.0, "HalfCheetah-v5": 5000.0}
SEEDS = (0, 1, 2)


def returns(spec: str, dense: float, seed: int, finetuned: bool) -> float:
    """Hand-set returns, as fractions of dense, with a small seed effect."""
    fraction = {"dense": 1.0, "prune=0.1": 0.9, "prune=0.5": 0.5, "prune=0.9": 0.1,
                "lowrank=0.5": 0.8, "lowrank=0.9": 0.6, "lowrank=0.9,keep_io=true": 0.95,
                "quant=8": 1.0}[spec]
    if finetuned:
        fraction = min(1.0, fraction + 0.005 * (seed + 1))
    return dense * (fraction + 0.01 * seed)


@pytest.fixture
def frame(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        for env, dense in ENVS.items():
            for seed in SEEDS:
                for spec in ("dense", "prune=0.1", "prune=0.5", "prune=0.9", "lowrank=0.5",
                             "lowrank=0.9", "lowrank=0.9,keep_io=true", "quant=8"):
                    for finetuned in (False, True):
                        if finetuned and spec in ("dense", "quant=8"):
                            continue
                        metrics = {"return_mean": returns(spec, dense, seed, finetuned),
                                   "bytes": 70_000.0 if spec == "quant=8" else 280_000.0,
                                   "cpu_seconds_per_step": 1e-4 * (1 + 0.001 * seed)}
                        store.put(f"{env}-{seed}", spec, {"steps": 10} if finetuned else None,
                                  0, {"episodes": 1}, checkpoint=f"{env}__{seed}", env=env,
                                  algo="x", train_seed=seed, metrics=metrics)
        return store.load()


def test_each_verdict_follows_its_rule(frame):
    gain = minor_compression_gain(frame)
    assert gain.measured.estimate == pytest.approx(-10.0 / 1.01, rel=0.02)
    assert gain.verdict == REFUTED
    worse = pruning_hurts_more(frame)  # pruning 0.5/0.9 -> 30%, low rank 0.8/0.6 -> 70% of dense
    assert worse.measured.estimate == pytest.approx(-40.0, abs=1.0)
    assert worse.verdict == CONFIRMED
    keep = keep_io_remedy(frame)
    assert keep.measured.estimate == pytest.approx(35.0, abs=1.0) and keep.verdict == CONFIRMED
    storage = quant_storage(frame)
    assert storage.measured.estimate == pytest.approx(-75.0) and storage.verdict == CONFIRMED
    assert quant_cpu_ram(frame).verdict == CONFIRMED  # identical CPU time per step
    tuned = finetune_no_gain(frame)
    assert 0 < tuned.measured.estimate < 2.0 and tuned.verdict == CONFIRMED


def test_missing_results_are_never_resolved(frame):
    dense_only = frame[frame["spec"] == "dense"]
    for measure in (minor_compression_gain, pruning_hurts_more, quant_storage, finetune_no_gain,
                    keep_io_remedy):
        assert measure(dense_only).verdict == NOT_RESOLVED


def test_verdict_table_links_every_claim_to_a_figure(frame):
    verdicts = all_claims({plans.PRUNING: frame, plans.QUANTIZATION: frame})
    page = claims_html(verdicts)
    assert page.count("<tr>") == len(verdicts) + 1
    assert '<a href="01-pruning.html#fig-pruning-return">' in page
    assert '<a href="03-quantization.html#fig-quant-storage">' in page
    deterministic = claims_html(verdicts, deterministic_only=True)
    assert "cpu_seconds_per_step" in page and "cpu_seconds_per_step" not in deterministic


def test_every_verdict_names_a_chapter_that_runs_a_sweep():
    assert {e.chapter for e in ENTRIES} <= set(plans.CHAPTERS)
