import json

import numpy as np
import pytest
import torch

from rlcomp.agents.policy import Policy
from rlcomp.compress import compress
from rlcomp.compress.export import onnx_session, policy_to_onnx
from rlcomp.nets import ObsNormalizer, mlp
from rlcomp.probes.latency import (
    LatencyResult,
    eager_latency,
    observations,
    onnx_latency,
    session_latency,
    time_decisions,
)


def q_policy():
    torch.manual_seed(0)
    return Policy(net=mlp([8, 64, 64, 4]), action="argmax")


def mean_policy():
    torch.manual_seed(0)
    norm = ObsNormalizer(np.zeros(5), np.ones(5))
    return Policy(net=compress(mlp([5, 32, 2]), "quant=8"), action="mean", obs_norm=norm,
                  action_low=-np.ones(2, dtype=np.float32), action_high=np.ones(2, np.float32))


def check(result, runtime, repeats=50, warmup=5):
    assert isinstance(result, LatencyResult)
    assert result.runtime == runtime
    assert 0 < result.median_s <= result.p95_s < 1.0
    assert (result.repeats, result.warmup) == (repeats, warmup)
    d = result.to_dict()
    assert set(d) == {"runtime", "median_s", "p95_s", "repeats", "warmup"}
    json.dumps(d)


@pytest.mark.parametrize("make", [q_policy, mean_policy])
def test_eager_latency_is_positive_and_p95_is_at_least_the_median(make):
    threads = torch.get_num_threads()
    check(eager_latency(make(), repeats=50, warmup=5), "eager")
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("make", [q_policy, mean_policy])
def test_onnx_latency_is_positive_and_p95_is_at_least_the_median(make):
    check(onnx_latency(make(), repeats=50, warmup=5), "onnx")


def test_session_latency_times_a_given_session():
    session = onnx_session(policy_to_onnx(q_policy()))
    check(session_latency(session, 8, repeats=50, warmup=5), "onnx")


def test_observations_are_fixed_by_the_seed():
    a, b = observations(8, 10, seed=3), observations(8, 10, seed=3)
    assert a.dtype == np.float32 and a.shape == (10, 8)
    assert np.array_equal(a, b) and not np.array_equal(a, observations(8, 10, seed=4))


def test_each_timed_call_sees_one_observation_after_the_warmup():
    seen = []
    result = time_decisions(lambda x: seen.append(x.copy()), observations(3, 7), 2, "eager")
    assert len(seen) == 9 and all(x.shape == (1, 3) for x in seen)
    assert result.repeats == 7 and result.warmup == 2


def test_no_repeats_is_refused():
    with pytest.raises(ValueError):
        time_decisions(lambda x: None, observations(3, 0), 0, "eager")
