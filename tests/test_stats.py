"""Intervals over training seeds (t and percentile bootstrap), their settings, and normalization.

Hand computations use ``scipy.stats.t`` directly; the coverage test simulates studies of five
seeds with a fixed seed, so its numbers are the same on every run.
"""

import dataclasses
import inspect
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from rlcomp.stats import (
    METHODS,
    Interval,
    IntervalSettings,
    aggregate,
    bootstrap_ci,
    interval,
    normalized,
    t_interval,
)

# t interval ------------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_t_interval_matches_a_hand_computation(confidence):
    x = np.array([1.0, 2.0, 4.0, 8.0, 15.0])
    mean = x.sum() / 5
    sd = math.sqrt(((x - mean) ** 2).sum() / 4)
    half = scipy_stats.t.ppf(0.5 + confidence / 2, df=4) * sd / math.sqrt(5)
    got = t_interval(list(x), confidence)
    assert got.n_seeds == 5 and got.estimate == pytest.approx(6.0, abs=1e-12)
    assert got.ci_low == pytest.approx(mean - half, abs=1e-12)
    assert got.ci_high == pytest.approx(mean + half, abs=1e-12)


def test_t_interval_reduces_episodes_to_seed_means():
    episodes = np.array([[0.0, 2.0, 4.0], [5.0, 5.0, 5.0], [9.0, 10.0, 11.0]])
    expected = t_interval([2.0, 5.0, 10.0])
    assert t_interval(episodes) == expected
    assert t_interval([list(row) for row in episodes]) == expected
    # Unequal episode counts: the mean of seed means (1), not of the pooled episodes (1.5).
    ragged = t_interval([[0.0], [2.0, 2.0, 2.0]])
    assert ragged.estimate == 1.0 and ragged.n_seeds == 2
    assert ragged == t_interval([0.0, 2.0])


def test_t_interval_of_one_seed_or_equal_values_is_a_point():
    assert t_interval([4.0]) == Interval(4.0, 4.0, 4.0, 1)
    # One seed with spread-out episodes: still one seed, so no spread over seeds to measure.
    assert t_interval(np.array([[0.0, 10.0, 20.0, 30.0]])) == Interval(15.0, 15.0, 15.0, 1)
    assert t_interval([2.5, 2.5, 2.5]) == Interval(2.5, 2.5, 2.5, 3)
    assert t_interval([[1.0, 3.0], [2.0, 2.0]]) == Interval(2.0, 2.0, 2.0, 2)


@pytest.mark.parametrize("bad, message", [
    ([1.0, math.nan], "NaN"), ([[1.0, math.nan], [2.0, 3.0]], "NaN"), ([], "at least one seed"),
    ([[1.0], []], "at least one episode"), ([[[1.0]]], "shape"),
])
def test_t_interval_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        t_interval(bad)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5])
def test_t_interval_rejects_a_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence)


# Dispatch and settings -------------------------------------------------------------------------

def test_interval_dispatches_by_method():
    x = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert METHODS == ("t", "percentile")
    assert interval(x) == t_interval(x)
    assert interval(x, "t", confidence=0.9) == t_interval(x, 0.9)
    assert interval(x, "percentile", reps=300, random_state=7) == bootstrap_ci(
        x, reps=300, random_state=7)
    assert interval(x, "percentile", "iqm") == bootstrap_ci(x, "iqm")
    assert interval(x) != interval(x, "percentile")


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "bca"}, "method must be one of t, percentile"),
    ({"statistic": "iqm"}, "method='percentile' for the IQM"),
    ({"method": "percentile", "statistic": "median"}, "statistic"),
    ({"confidence": 0.0}, "confidence"),
    ({"method": "percentile", "reps": 0}, "reps"),
])
def test_interval_and_settings_reject_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        interval([1.0, 2.0], **kwargs)
    with pytest.raises(ValueError, match=message):
        IntervalSettings(**kwargs)


def test_interval_settings_are_aggregate_keywords():
    settings = IntervalSettings()
    assert dataclasses.fields(settings)[0].name == "method" and settings.method == "t"
    assert set(dataclasses.asdict(settings)) <= set(inspect.signature(aggregate).parameters)
    assert IntervalSettings(method="percentile", statistic="iqm").statistic == "iqm"


# Aggregation -----------------------------------------------------------------------------------

def per_seed_rows(values_by_group):
    """Tidy rows: group -> seed -> list of values (one row each)."""
    return pd.DataFrame([{"g": g, "train_seed": s, "metric": "m", "value": v}
                         for g, seeds in values_by_group.items()
                         for s, vs in seeds.items() for v in vs])


def test_aggregate_defaults_to_the_t_interval_of_seed_means():
    rows = per_seed_rows({"a": {0: [1.0, 3.0], 1: [7.0], 2: [4.0, 6.0, 8.0]},
                          "b": {0: [1.0], 1: [2.0], 2: [6.0], 3: [7.0]}})
    table = aggregate(rows, "g", "m").set_index("g")
    for group, seed_means in (("a", [2.0, 7.0, 6.0]), ("b", [1.0, 2.0, 6.0, 7.0])):
        assert tuple(table.loc[group]) == pytest.approx(tuple(t_interval(seed_means)), abs=1e-12)
    percentile = aggregate(rows, "g", "m", method="percentile", reps=200).set_index("g")
    assert tuple(percentile.loc["a"]) == tuple(bootstrap_ci([2.0, 7.0, 6.0], reps=200))
    with pytest.raises(ValueError, match="percentile"):
        aggregate(rows, "g", "m", statistic="iqm")


# Normalization ---------------------------------------------------------------------------------

def test_normalized_scales_random_to_zero_and_dense_to_one():
    assert normalized(150.0, -150.0, 250.0) == 0.75
    assert isinstance(normalized(150.0, -150.0, 250.0), float)
    got = normalized(np.array([-150.0, 250.0, 50.0]), -150.0, np.array([250.0, 250.0, 50.0]))
    np.testing.assert_allclose(got, [0.0, 1.0, 1.0])
    # Per seed: each column is one seed with its own dense return.
    np.testing.assert_allclose(normalized(np.array([[10.0, 30.0]]), 0.0, np.array([20.0, 40.0])),
                               [[0.5, 0.75]])


@pytest.mark.parametrize("random, dense", [
    (5.0, 5.0), (np.array([0.0, 1.0]), np.array([2.0, 1.0])),
])
def test_normalized_rejects_dense_equal_to_random(random, dense):
    with pytest.raises(ValueError, match="dense != random"):
        normalized(np.array([1.0, 2.0]), random, dense)


# Coverage --------------------------------------------------------------------------------------

def test_t_interval_covers_at_five_seeds_and_the_percentile_bootstrap_does_not():
    rng = np.random.default_rng(20240611)
    truth, sims = 250.0, 400
    studies = rng.normal(truth, 10.0, size=(sims, 5))
    t_hits = sum(i.ci_low <= truth <= i.ci_high for i in map(t_interval, studies))
    boot = (bootstrap_ci(s, reps=400, random_state=k) for k, s in enumerate(studies))
    p_hits = sum(i.ci_low <= truth <= i.ci_high for i in boot)
    assert 0.91 <= t_hits / sims <= 0.98
    assert p_hits / sims < 0.89 and p_hits < t_hits - 20
