import json
import time

import numpy as np
import pytest
import torch

from rlcomp.compress import compress
from rlcomp.compress.export import onnx_session, policy_to_onnx
from rlcomp.nets import ObsNormalizer, mlp
from rlcomp.policy import Policy
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
    assert (result.repeats, result.warmup) == (repeats, warmup)
    d = result.to_dict()
    assert set(d) == {"runtime", "median_s", "p95_s", "repeats", "warmup"}
    json.dumps(d)


class FakeClock:
    """``perf_counter_ns`` that only moves when a decision runs: by the next planned duration."""

    def __init__(self, durations_ns):
        self.now, self.durations = 0, list(durations_ns)

    def __call__(self):
        return self.now

    def decide(self, batch):
        assert batch.shape[0] == 1
        self.now += self.durations.pop(0)


def test_median_and_p95_are_those_of_the_timed_calls_alone(monkeypatch):
    import rlcomp.probes.latency as latency

    # Two warm-up calls of a whole second each, then 20 calls of 1, 2, ..., 20 ms.
    clock = FakeClock([10**9] * 2 + [ms * 10**6 for ms in range(1, 21)])
    monkeypatch.setattr(latency.time, "perf_counter_ns", clock)
    result = time_decisions(clock.decide, observations(3, 20), 2, "eager")
    assert not clock.durations, "every planned call ran"
    assert result.median_s == pytest.approx(10.5e-3)  # the median of 1..20 ms
    assert result.p95_s == pytest.approx(19.05e-3)  # its 95th percentile (linear interpolation)
    check(result, "eager", repeats=20, warmup=2)


class Sleep(torch.nn.Module):
    """Waits ``seconds`` in every forward pass: a policy whose decisions take at least that."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


@pytest.mark.parametrize("make", [q_policy, mean_policy])
def test_eager_latency_times_the_policys_own_decisions(make):
    threads = torch.get_num_threads()
    fast = make()
    slow = make()
    slow.net = torch.nn.Sequential(*slow.net, Sleep(0.004))
    fast_result = eager_latency(fast, repeats=20, warmup=2)
    slow_result = eager_latency(slow, repeats=20, warmup=2)
    check(fast_result, "eager", repeats=20, warmup=2)
    assert slow_result.median_s >= 0.004 > fast_result.median_s
    assert torch.get_num_threads() == threads


def test_onnx_latency_times_the_exported_graph():
    torch.manual_seed(0)
    small = Policy(net=mlp([8, 16, 4]), action="argmax")
    large = Policy(net=mlp([8, 2048, 2048, 4]), action="argmax")  # ~250x the multiply-adds
    small_result = onnx_latency(small, repeats=50, warmup=5)
    check(small_result, "onnx")
    assert onnx_latency(large, repeats=50, warmup=5).median_s > 3 * small_result.median_s


@pytest.mark.parametrize("make", [q_policy, mean_policy])
def test_onnx_latency_runs_each_policy(make):
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
