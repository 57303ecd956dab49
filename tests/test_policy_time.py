"""Policy time per decision as a ratio to a reference, in a pinned fresh process.

Each call of ``policy_time_ratio`` starts one Python process (about 2-3 s, mostly importing
PyTorch), so the tests use tiny networks, few pairs and short blocks.
"""

import math
import os
from pathlib import Path

import pytest
import torch

from rlcomp.compress import compress
from rlcomp.compress.storage import compressed_file_bytes
from rlcomp.nets import mlp
from rlcomp.policy import Policy
from rlcomp.probes.policy_time import PolicyTime, policy_time_ratio, ratio_interval

META = {"env_id": "LunarLander-v3", "algo": "ddqn", "source": "test"}


def write_policy(path: Path, spec: str) -> Path:
    """A tiny 8-16-4 LunarLander Q-network, compressed with ``spec``, as a compressed file."""
    torch.manual_seed(0)
    policy = Policy(net=compress(mlp([8, 16, 4]), spec).eval(), action="argmax")
    path.write_bytes(compressed_file_bytes(policy, {**META, "spec": spec}))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("policies")
    return (write_policy(tmp / "int8.rlc.safetensors", "quant=8"),
            write_policy(tmp / "dense.rlc.safetensors", "dense"))


def test_ratio_interval_by_hand():
    # Equal ratios: no spread, a point interval.
    assert ratio_interval([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]) == pytest.approx((2.0, 2.0, 2.0))
    # Two pairs with ratios 2 and 4: log ratios ln2 and 2 ln2, mean 1.5 ln2 (ratio 2^1.5);
    # standard deviation ln2 / sqrt(2), standard error ln2 / 2; t(0.975, 1 df) = 12.7062.
    ratio, low, high = ratio_interval([2.0, 8.0], [1.0, 2.0])
    half = 12.706204736 * math.log(2) / 2
    assert ratio == pytest.approx(2**1.5)
    assert (low, high) == pytest.approx((2**1.5 * math.exp(-half), 2**1.5 * math.exp(half)))


@pytest.mark.parametrize("cand, ref", [([1.0], [1.0]), ([1.0, 2.0], [1.0]),
                                       ([1.0, 0.0], [1.0, 1.0])])
def test_ratio_interval_rejects_bad_series(cand, ref):
    with pytest.raises(ValueError):
        ratio_interval(cand, ref)


def test_compressed_against_dense(files):
    result = policy_time_ratio(*files, pairs=12, decisions=5)
    assert isinstance(result, PolicyTime)
    assert (result.pairs, result.decisions, result.statistic) == (12, 5, "median")
    assert len(result.candidate_blocks_s) == len(result.reference_blocks_s) == 12
    assert result.ci_low <= result.ratio <= result.ci_high
    assert result.ci_halfwidth == pytest.approx(
        (result.ci_high - result.ci_low) / 2 / result.ratio)
    assert result.candidate_s > 0 and result.reference_s > 0
    assert min(result.candidate_blocks_s + result.reference_blocks_s) > 0
    if hasattr(os, "sched_getaffinity"):  # by default, the lowest core the caller may use
        assert result.core == min(os.sched_getaffinity(0))
    assert result.observations == "env:LunarLander-v3"
    metrics = result.metrics()
    assert metrics["policy_time_ratio"] == result.ratio
    assert metrics["dense_policy_seconds_per_decision"] == result.reference_s
    assert {"policy_time_ratio_ci_low", "policy_time_ratio_ci_high",
            "policy_seconds_per_decision"} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    assert result.to_dict()["candidate_blocks_s"] == list(result.candidate_blocks_s)


def test_same_file_against_itself_gives_a_ratio_near_one(files):
    # Both blocks of a pair run the same network on the same observations, so the true ratio is
    # 1. The interval should contain 1, but on a shared machine a burst of load can still tilt a
    # short measurement by a few percent (and allocator or cache placement differs a little
    # between the two loaded copies); the check is wide enough that only a broken measurement
    # (for example, blocks of different lengths or one policy timed twice) fails it.
    result = policy_time_ratio(files[1], files[1], pairs=30, decisions=10)
    assert 0.8 < result.ratio < 1.25
    assert result.ci_low < 1.25 and result.ci_high > 0.8


@pytest.mark.parametrize("kwargs", [{"pairs": 1}, {"pairs": 0}, {"decisions": 0},
                                    {"pairs": 2.5}, {"pool": 0}, {"statistic": "max"},
                                    {"loader": "no_colon"}])
def test_bad_arguments_raise_value_error(files, kwargs):
    with pytest.raises(ValueError):
        policy_time_ratio(*files, **kwargs)


def test_missing_file_is_reported_before_starting_a_process(files, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        policy_time_ratio(tmp_path / "nothing-here", files[1])


def test_failing_child_reports_its_last_error_line(files, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a policy")
    with pytest.raises(RuntimeError, match="neither a checkpoint nor a compressed"):
        policy_time_ratio(junk, files[1], pairs=2, decisions=1)


def test_timeout_kills_the_child(files):
    with pytest.raises(RuntimeError, match="timed out"):
        policy_time_ratio(*files, pairs=2, decisions=1, timeout=0.2)


def test_footprint_is_measured_in_the_same_process_before_the_reference_loads(tmp_path):
    """A 8-1024-1024-4 network (4.2 MB of float32 weights) against the tiny one: the footprint
    holds the weights (resident bytes after loading minus before), and a bigger model's is bigger
    by about the size of its weights."""
    torch.manual_seed(0)
    big = Policy(net=mlp([8, 1024, 1024, 4]).eval(), action="argmax")
    big_path = tmp_path / "big.rlc.safetensors"
    big_path.write_bytes(compressed_file_bytes(big, {**META, "spec": "dense"}))
    small_path = write_policy(tmp_path / "small.rlc.safetensors", "dense")
    measured = {}
    for name, path in (("big", big_path), ("small", small_path)):
        result = policy_time_ratio(path, small_path, pairs=4, decisions=2, footprint=True)
        metrics = result.metrics()
        assert metrics["isolated_footprint_bytes"] == (metrics["isolated_model_rss_bytes"]
                                                       - metrics["isolated_baseline_rss_bytes"])
        assert metrics["isolated_decisions"] == 1000.0
        measured[name] = metrics["isolated_footprint_bytes"]
    weights = 4 * (8 * 1024 + 1024 * 1024 + 1024 * 4)
    assert 0.8 * weights < measured["big"] - measured["small"] < 3 * weights
    without = policy_time_ratio(small_path, small_path, pairs=2, decisions=1)
    assert without.footprint is None and "isolated_footprint_bytes" not in without.metrics()
