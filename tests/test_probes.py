"""Probes: seeded evaluation and its costs, model size, isolated resident memory."""

import copy
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rlcomp import rollout
from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.compress import (
    FactorizedLinear,
    FakeQuantLinear,
    QuantizedLinear,
    compress,
    parse_spec,
    quantize_per_channel,
)
from rlcomp.envs import configure_torch, make_env
from rlcomp.nets import mlp
from rlcomp.policy import Policy
from rlcomp.probes import resources
from rlcomp.probes.resources import (
    DEFAULT_LOADER,
    _loader_name,
    isolated_resident_bytes,
    pin_to_one_core,
    policy_from_file,
    resident_bytes,
)
from rlcomp.probes.size import (
    ModelSize,
    model_size,
)
from rlcomp.rollout import (
    BATCH_ROWS,
    ENVIRONMENT_DOMINATED,
    ROW_STEP,
    EvalResult,
    evaluate_policy,
)

ROOT = Path(__file__).resolve().parents[1]
LUNAR = ROOT / "checkpoints" / "LunarLander-v3__ddqn__0"
CHEETAH = ROOT / "checkpoints" / "HalfCheetah-v5__pg__0"


@pytest.fixture(autouse=True)
def one_thread():
    configure_torch(1)


def noop_policy() -> Policy:
    """A LunarLander policy that always fires nothing (action 0): Q = bias = (1, 0, 0, 0)."""
    net = nn.Linear(8, 4)
    nn.init.zeros_(net.weight)
    with torch.no_grad():
        net.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    return Policy(net=net, action="argmax")


class RecordingPolicy:
    """Passes through to a policy and records the shape of every batch it is given."""

    def __init__(self, policy):
        self.policy, self.shapes = policy, []

    def act(self, obs):
        self.shapes.append(obs.shape)
        return self.policy.act(obs)


# rollout -------------------------------------------------------------------------------------


def test_seeding_contract_episode_i_uses_seed_plus_i():
    episodes, seed = 5, 40
    result = evaluate_policy(noop_policy(), "LunarLander-v3", episodes, seed, num_envs=2)
    env = make_env("LunarLander-v3")
    for i in range(episodes):
        env.reset(seed=seed + i)
        total, steps, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(0)
            total += float(reward)
            steps += 1
            done = terminated or truncated
        assert result.returns[i] == total
        assert result.lengths[i] == steps
    assert result.seed == seed


@pytest.mark.parametrize("name, episodes, seed, pools", [
    # Episodes 28..33 include one (31) whose ending depends on the batch size of the forward
    # pass on the machine where this was checked: batch-1 and batch-16 arithmetic differ there.
    (LUNAR, 6, 28, (1, 3, 16)),
    (CHEETAH, 3, 0, (1, 3, 16)),
])
def test_returns_identical_for_any_num_envs(name, episodes, seed, pools):
    policy = policy_from_checkpoint(load_checkpoint(name))
    env_id = load_checkpoint(name).env_id
    results = [evaluate_policy(policy, env_id, episodes, seed, num_envs=n) for n in pools]
    for other in results[1:]:
        assert other.returns == results[0].returns
        assert other.lengths == results[0].lengths
    assert [r.num_envs for r in results] == [min(n, episodes) for n in pools]


def test_every_forward_pass_has_batch_rows():
    for num_envs, episodes in ((1, 2), (5, 7), (BATCH_ROWS + 3, BATCH_ROWS + 5)):
        recorder = RecordingPolicy(noop_policy())
        evaluate_policy(recorder, "LunarLander-v3", episodes, 0, num_envs=num_envs)
        assert set(recorder.shapes) == {(BATCH_ROWS, 8)}


def test_row_results_do_not_depend_on_position_or_neighbours():
    """The property the fixed batch relies on, for the study's network and compressed forms."""
    torch.manual_seed(0)
    base = mlp([8, 256, 256, 4])
    nets = [base] + [compress(copy.deepcopy(base), parse_spec(s))
                     for s in ("lowrank=0.9", "quant=8", "prune=0.5,structured=true")]
    x = torch.randn(BATCH_ROWS, 8)
    perm = torch.randperm(BATCH_ROWS)
    other = torch.randn(BATCH_ROWS, 8)
    other[5] = x[0]
    with torch.inference_mode():
        for net in nets:
            ref = net(x)
            assert torch.equal(net(x[perm]), ref[perm])
            assert torch.equal(net(other)[5], ref[0])


def test_eval_result_costs_are_consistent():
    result = evaluate_policy(noop_policy(), "LunarLander-v3", 4, 0, num_envs=3)
    assert result.env_steps == sum(result.lengths) > 0
    assert result.seconds_per_step == result.eval_seconds / result.env_steps
    assert 0 < result.policy_seconds and 0 < result.env_seconds
    assert result.policy_seconds + result.env_seconds <= result.eval_seconds
    assert 0 < result.policy_share < 1
    assert result.policy_share == result.policy_seconds / (result.policy_seconds
                                                           + result.env_seconds)
    assert result.cpu_seconds > 0
    assert result.cpu_percent == 100 * result.cpu_seconds / result.eval_seconds
    assert 0 < result.cpu_percent <= 100 * (os.cpu_count() or 1) + 5
    assert result.cpu_seconds_per_step == result.cpu_seconds / result.env_steps
    assert 0 < result.ram_percent < 100 and result.rss_bytes > 0
    summary = json.loads(json.dumps(result.summary(), allow_nan=False))
    for key in ("mean_return", "returns", "lengths", "eval_seconds", "env_steps",
                "seconds_per_step", "policy_share", "cpu_seconds", "cpu_percent", "ram_percent",
                "rss_bytes", "rss_peak_bytes", "resource_samples"):
        assert key in summary, key
    assert summary["num_envs"] == 3
    assert set(ENVIRONMENT_DOMINATED) <= set(summary)


def test_resources_are_sampled_over_the_whole_evaluation(monkeypatch):
    import psutil

    short = evaluate_policy(noop_policy(), "LunarLander-v3", 1, 0, num_envs=1)
    assert short.resource_samples >= 2  # at the start and at the end, however short
    assert short.rss_peak_bytes >= short.rss_bytes > 50e6
    total = psutil.virtual_memory().total
    assert short.ram_percent == pytest.approx(100 * short.rss_bytes / total, rel=1e-6)
    # A sample at every forward pass: as many samples as passes, plus the one at the end.
    monkeypatch.setattr(rollout, "SAMPLE_PASSES", 1)
    recorder = RecordingPolicy(noop_policy())
    every = evaluate_policy(recorder, "LunarLander-v3", 3, 0, num_envs=3)
    assert every.resource_samples == len(recorder.shapes) + 2
    assert every.rss_peak_bytes >= every.rss_bytes


def test_smaller_passes_are_checked_to_give_the_bits_of_a_full_pass():
    policy = policy_from_checkpoint(load_checkpoint(LUNAR))
    probe = np.zeros((BATCH_ROWS, 8), dtype=np.float32)
    with torch.inference_mode():
        sizes = rollout._checked_sizes(policy, probe, BATCH_ROWS - 1)
        assert sizes and all(m % ROW_STEP == 0 and m < BATCH_ROWS for m in sizes)
        assert not probe.any()  # the buffer is handed back zeroed
        x = torch.randn(BATCH_ROWS, 8) * 3  # other values than the check's
        full = policy.net(x)
        for m in sizes:
            assert torch.equal(policy.net(x[:m]), full[:m])
        # A network whose rows depend on the batch size gets full passes only.
        shifty = Policy(net=nn.Sequential(BatchSized(), policy.net), action="argmax")
        assert rollout._checked_sizes(shifty, probe, BATCH_ROWS - 1) == []
        assert rollout._checked_sizes(RecordingPolicy(policy), probe, BATCH_ROWS - 1) == []
    assert rollout._rows_per_live([4, 8, 32], 70) == [0, 4, 4, 4, 4, 8, 8, 8, 8] + [32] * 24 + [
        64] * 32 + [68, 68, 68, 68, 72, 72]
    assert rollout._rows_per_live([], 3) == [0, 64, 64, 64]


class BatchSized(nn.Module):
    """Adds a batch-size-dependent amount to its input: rows differ between batch sizes."""

    def forward(self, x):
        return x + 1e-3 * len(x)


@pytest.mark.parametrize("name, episodes, seed", [(LUNAR, 6, 28), (CHEETAH, 2, 0)])
def test_fast_smaller_passes_give_the_returns_of_full_plain_passes(name, episodes, seed):
    """``RecordingPolicy`` hides the Policy, so it gets ``policy.act`` on full passes only."""
    policy = policy_from_checkpoint(load_checkpoint(name))
    env_id = load_checkpoint(name).env_id
    plain = RecordingPolicy(policy)
    for num_envs in (1, 5):
        fast = evaluate_policy(policy, env_id, episodes, seed, num_envs=num_envs)
        full = evaluate_policy(plain, env_id, episodes, seed, num_envs=num_envs)
        assert fast.returns == full.returns and fast.lengths == full.lengths
    assert set(plain.shapes) == {(BATCH_ROWS, policy.net[0].in_features)}


def test_eval_result_without_steps_has_no_division_by_zero():
    empty = EvalResult(returns=[], lengths=[], seed=0, eval_seconds=0.0)
    assert empty.seconds_per_step == empty.policy_share == empty.cpu_percent == 0.0


@pytest.mark.parametrize("kwargs", [dict(episodes=0), dict(num_envs=0)])
def test_evaluate_rejects_bad_counts(kwargs):
    args = dict(episodes=1, seed=0, num_envs=1) | kwargs
    with pytest.raises(ValueError):
        evaluate_policy(noop_policy(), "LunarLander-v3", **args)


# size ----------------------------------------------------------------------------------------


def test_size_of_one_linear_layer():
    size = model_size(nn.Linear(3, 2))
    assert size == ModelSize(params=8, weights=6, nonzero_weights=6, biases=2, scales=0,
                             flops=12, sparse_flops=12, tensor_bytes=32)
    assert size.to_dict()["sparsity"] == 0.0
    assert model_size(nn.Linear(3, 2, bias=False)).params == 6


def test_size_of_mlp_with_zeros():
    net = mlp([3, 4, 2])  # Linear(3,4) ReLU Linear(4,2)
    with torch.no_grad():
        net[0].weight[0] = 0.0  # 3 zeros
        net[2].weight[1, 2] = 0.0  # 1 zero
    size = model_size(net)
    assert size.params == 12 + 4 + 8 + 2
    assert (size.weights, size.nonzero_weights) == (20, 16)
    assert (size.flops, size.sparse_flops) == (40, 32)
    assert size.sparsity == pytest.approx(4 / 20)


def test_size_of_factorized_layer_counts_both_factors():
    layer = FactorizedLinear(5, 2, 3)  # first 2x5 without bias, second 3x2 with bias
    size = model_size(nn.Sequential(layer, nn.ReLU()))
    assert (size.params, size.weights, size.biases, size.flops) == (19, 16, 3, 32)


def test_size_of_quantized_layer_counts_int8_values_and_scales_apart():
    layer = nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0],
                                         [3.0, 0.01, -3.0, 1.0]]))
        layer.bias.copy_(torch.tensor([0.5, -1.0, 0.0]))
    quantized = QuantizedLinear.from_linear(layer)
    size = model_size(quantized)
    # Row 0: its 0 stays 0; row 1 is all zero; row 2: 0.01 rounds to 0 (step 3/127).
    # Scales: one per output channel (3) and one for the int8 bias vector.
    assert (size.params, size.weights, size.biases, size.scales) == (15, 12, 3, 4)
    assert size.nonzero_weights == 3 + 0 + 3
    assert size.flops == 24 and size.sparse_flops == 12
    assert size.tensor_bytes == 12 * 1 + 3 * 1 + 4 * 4
    no_bias = model_size(QuantizedLinear(*quantize_per_channel(layer.weight)))
    assert (no_bias.params, no_bias.scales, no_bias.tensor_bytes) == (12, 3, 12 + 3 * 4)


def test_fake_quant_layer_counts_as_float_linear():
    assert model_size(FakeQuantLinear(3, 2)) == model_size(nn.Linear(3, 2))


def test_size_of_study_network_and_its_compressed_forms():
    net = mlp([8, 256, 256, 4])
    size = model_size(net)
    assert size.params == 69_124  # the poster's 0.3 MB model
    assert size.flops == 2 * (8 * 256 + 256 * 256 + 256 * 4)
    assert size.tensor_bytes == 4 * 69_124
    # lowrank 0.9: ranks 1, 26, 1, each stored as two factors.
    low = model_size(compress(copy.deepcopy(net), parse_spec("lowrank=0.9")))
    assert low.weights == 1 * (8 + 256) + 26 * (256 + 256) + 1 * (256 + 4)
    assert low.biases == 516
    ptq = model_size(compress(copy.deepcopy(net), parse_spec("quant=8")))
    assert (ptq.params, ptq.scales) == (69_124, 516 + 3)  # per channel, and per bias vector
    assert ptq.tensor_bytes == 69_124 + 4 * (516 + 3)
    pruned = model_size(compress(copy.deepcopy(net), parse_spec("prune=0.5")))
    assert pruned.params == 69_124 and pruned.nonzero_weights == 68_608 - 34_304
    assert pruned.sparse_flops == 2 * 34_304 and pruned.flops == size.flops


def test_size_refuses_modules_it_cannot_count():
    with pytest.raises(TypeError, match="Conv1d"):
        model_size(nn.Sequential(nn.Linear(2, 2), nn.Conv1d(1, 1, 1)))


# resources -----------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_pin_to_one_core_and_restore():
    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    try:
        core = pin_to_one_core()
        assert os.sched_getaffinity(0) == {core} and core == min(before)
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            pin_to_one_core(max(before) + 1000)
    finally:
        os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)


def test_loader_names():
    assert _loader_name(policy_from_file) == DEFAULT_LOADER
    assert _loader_name("pkg.mod:fn") == "pkg.mod:fn"
    for bad in ("no_colon", ":fn", "mod:", lambda path: path):
        with pytest.raises(ValueError):
            _loader_name(bad)


@pytest.mark.skipif(resources._MALLOC_TRIM is None, reason="no malloc_trim in this C library")
def test_resident_bytes_hands_free_heap_back_before_reading():
    import gc

    import psutil

    resident_bytes()
    # 40 MB of 4 kB heap blocks, all freed but the last, which keeps the heap from shrinking.
    blocks = [bytearray(4000) for _ in range(10_000)]
    keep = blocks[-1]
    del blocks
    gc.collect()
    untrimmed = psutil.Process().memory_info().rss
    trimmed, _ = resident_bytes()
    assert untrimmed - trimmed > 30e6
    assert len(keep) == 4000


def test_isolated_resident_bytes_of_a_checkpoint():
    result = isolated_resident_bytes(LUNAR, decisions=50)
    assert result.baseline_rss_bytes > 50e6  # interpreter, NumPy and PyTorch
    assert result.model_rss_bytes > result.baseline_rss_bytes
    # At least the network's float32 tensors (0.28 MB); less than the whole runtime.
    assert 4 * 69_124 < result.footprint_bytes < result.baseline_rss_bytes
    info = result.to_dict()
    assert info["footprint_bytes"] == result.footprint_bytes
    assert info["loader"] == DEFAULT_LOADER and info["decisions"] == 50
    if hasattr(os, "sched_getaffinity"):
        assert result.core in os.sched_getaffinity(0)


def test_isolated_resident_bytes_reports_a_failing_child(tmp_path):
    with pytest.raises(RuntimeError, match="no checkpoint file"):
        isolated_resident_bytes(tmp_path / "missing", decisions=1)


def test_isolated_resident_bytes_of_a_compressed_file(tmp_path):
    from rlcomp.compress.storage import save_compressed

    ckpt = load_checkpoint(LUNAR)
    policy = policy_from_checkpoint(ckpt)
    small = dataclasses.replace(policy, net=compress(policy.net, parse_spec("lowrank=0.9")))
    path = tmp_path / "small.rlc.safetensors"
    save_compressed(path, small, {"env_id": ckpt.env_id, "algo": ckpt.algo,
                                  "spec": "lowrank=0.9", "source": ckpt.name})
    result = isolated_resident_bytes(path, decisions=20)
    metrics = result.metrics()
    assert metrics["decisions"] == 20.0
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["footprint_bytes"] == result.model_rss_bytes - result.baseline_rss_bytes
