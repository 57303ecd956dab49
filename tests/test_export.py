"""ONNX export: the exported graph computes what PyTorch computes, and stores int8 as int8.

Tolerance: ``max |onnx - torch| <= 1e-5 * max |torch|`` on the network output (float32 rounding of
a different summation order; the measured error is about 1e-7 of the output scale).
"""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.compress import compress
from rlcomp.compress.export import export_onnx, onnx_session, policy_to_onnx
from rlcomp.nets import ObsNormalizer, as_tensor, mlp
from rlcomp.policy import Policy

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["dense", "prune=0.9", "lowrank=0.5", "lowrank=0.5,keep_io=true", "quant=8",
         "quant=8,mode=qat", "lowrank=0.5+prune=0.5", "lowrank=0.5+quant=8"]
INT8_SPECS = ["quant=8", "quant=8,mode=qat", "lowrank=0.5+quant=8"]
RTOL_OF_SCALE = 1e-5


def random_q_policy():
    torch.manual_seed(0)
    return Policy(net=mlp([6, 32, 24, 5]), action="argmax")


def random_mean_policy():
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    norm = ObsNormalizer(rng.normal(size=7), rng.uniform(0.1, 4.0, size=7), clip=3.0)
    return Policy(net=mlp([7, 32, 3]), action="mean", obs_norm=norm,
                  action_low=np.array([-1.0, -0.5, -0.1], dtype=np.float32),
                  action_high=np.array([1.0, 0.5, 0.1], dtype=np.float32))


def checkpoint_policy(name):
    return policy_from_checkpoint(load_checkpoint(ROOT / "checkpoints" / name))


POLICIES = {
    "random_q": random_q_policy,
    "random_mean": random_mean_policy,
    "lunarlander": lambda: checkpoint_policy("LunarLander-v3__ddqn__0"),
    "halfcheetah": lambda: checkpoint_policy("HalfCheetah-v5__pg__0"),
}
_CACHE = {}


def base_policy(name):
    if name not in _CACHE:
        _CACHE[name] = POLICIES[name]()
    return _CACHE[name]


def compressed(policy, spec):
    return Policy(net=compress(policy.net, spec), action=policy.action, obs_norm=policy.obs_norm,
                  action_low=policy.action_low, action_high=policy.action_high)


def observations(policy, n=64, seed=0):
    width = policy.net[0].in_features
    obs = np.random.default_rng(seed).standard_normal((n, width))
    if policy.obs_norm is not None:  # raw observations around the training distribution
        obs = policy.obs_norm.mean + 1.5 * policy.obs_norm.std * obs
    return obs.astype(np.float32)


def torch_output(policy, obs):
    x = policy.obs_norm(obs) if policy.obs_norm is not None else obs
    with torch.no_grad():
        return policy.net(as_tensor(x)).numpy()


def run(model, obs):
    output, action = onnx_session(model).run(None, {"obs": obs})
    return output, action


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_onnx_computes_what_pytorch_computes(name, spec):
    policy = compressed(base_policy(name), spec)
    obs = observations(policy)
    output, action = run(policy_to_onnx(policy), obs)
    ref = torch_output(policy, obs)
    assert output.dtype == np.float32 and output.shape == ref.shape
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(output, ref, rtol=0, atol=RTOL_OF_SCALE * scale)
    ref_action = policy.act(obs)
    if policy.action == "argmax":
        assert action.dtype == np.int64 and action.shape == (len(obs),)
        top2 = np.sort(ref, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 10 * RTOL_OF_SCALE * scale
        assert clear.mean() > 0.9
        assert np.array_equal(action[clear], ref_action[clear])
    else:
        assert action.dtype == np.float32 and action.shape == ref.shape
        np.testing.assert_allclose(action, ref_action, rtol=0, atol=RTOL_OF_SCALE * scale)


def test_mean_actions_are_clipped_to_the_bounds():
    policy = random_mean_policy()
    obs = observations(policy, n=256)
    _, action = run(policy_to_onnx(policy), obs)
    assert (action >= policy.action_low).all() and (action <= policy.action_high).all()
    assert (action == policy.action_high).any() and (action == policy.action_low).any()


def test_normaliser_clips_like_the_policy():
    policy = random_mean_policy()
    obs = observations(policy) * 100.0  # far outside: every input is clipped
    output, _ = run(policy_to_onnx(policy), obs)
    np.testing.assert_allclose(output, torch_output(policy, obs), rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3, 200])
def test_the_batch_dimension_is_dynamic(batch):
    policy = base_policy("lunarlander")
    model = policy_to_onnx(policy)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    obs = observations(policy, n=batch)
    output, action = run(model, obs)
    assert output.shape == (batch, 4) and action.shape == (batch,)


def test_a_bare_linear_layer_exports():
    torch.manual_seed(0)
    policy = Policy(net=nn.Linear(4, 3), action="argmax")
    obs = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    output, action = run(policy_to_onnx(policy), obs)
    np.testing.assert_allclose(output, torch_output(policy, obs), rtol=0, atol=1e-5)
    assert np.array_equal(action, policy.act(obs))
    policy = compressed(policy, "quant=8")
    output, _ = run(policy_to_onnx(policy), obs)
    np.testing.assert_allclose(output, torch_output(policy, obs), rtol=0, atol=1e-5)


def weight_initializers(model):
    return [t for t in model.graph.initializer if len(t.dims) == 2]


def initializer_sizes(model, data_type):
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == data_type)


@pytest.mark.parametrize("spec", INT8_SPECS)
@pytest.mark.parametrize("name", ["random_q", "lunarlander"])
def test_int8_parameters_are_int8_initializers(name, spec):
    base = base_policy(name)
    model = policy_to_onnx(compressed(base, spec))
    weights = weight_initializers(model)
    assert weights and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    # One byte for each parameter of the float network; float32 only for the scales.
    float_net = compress(base.net, spec.replace("+quant=8", "") if "+" in spec else "dense")
    layers = [m for m in float_net.modules() if isinstance(m, nn.Linear)]
    assert initializer_sizes(model, onnx.TensorProto.INT8) == sum(
        p.numel() for p in float_net.parameters())
    assert initializer_sizes(model, onnx.TensorProto.FLOAT) == sum(
        m.out_features + (m.bias is not None) for m in layers)


def test_dense_weights_are_float32_initializers():
    weights = weight_initializers(policy_to_onnx(base_policy("lunarlander")))
    assert len(weights) == 3 and all(t.data_type == onnx.TensorProto.FLOAT for t in weights)


def test_quantized_file_is_about_a_quarter_of_the_dense_file(tmp_path):
    policy = base_policy("lunarlander")
    dense = export_onnx(policy, tmp_path / "dense.onnx")
    quant = export_onnx(compressed(policy, "quant=8"), tmp_path / "quant.onnx")
    ratio = quant.stat().st_size / dense.stat().st_size
    assert 0.25 < ratio < 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.onnx", "quant.onnx"]


def test_exported_file_loads_and_runs(tmp_path):
    policy = compressed(base_policy("halfcheetah"), "lowrank=0.5+quant=8")
    path = export_onnx(policy, tmp_path / "sub" / "policy.onnx")
    assert path == tmp_path / "sub" / "policy.onnx"
    onnx.checker.check_model(onnx.load(path), full_check=True)
    obs = observations(policy, n=8)
    output, _ = onnx_session(path).run(None, {"obs": obs})
    np.testing.assert_allclose(output, torch_output(policy, obs), rtol=0,
                               atol=RTOL_OF_SCALE * float(np.abs(output).max()))


def test_session_uses_one_thread_and_folding_is_optional():
    model = policy_to_onnx(compressed(base_policy("random_q"), "quant=8"))
    obs = observations(base_policy("random_q"))
    folded, per_call = onnx_session(model), onnx_session(model, fold_int8=False)
    assert folded.get_session_options().intra_op_num_threads == 1
    assert folded.get_session_options().inter_op_num_threads == 1
    np.testing.assert_array_equal(folded.run(None, {"obs": obs})[0],
                                  per_call.run(None, {"obs": obs})[0])


@pytest.mark.parametrize("name", ["random_q", "lunarlander", "halfcheetah"])
def test_integer_form_approximates_the_int8_network(name):
    policy = compressed(base_policy(name), "quant=8")
    model = policy_to_onnx(policy, int8="integer")
    ops = {n.op_type for n in model.graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    obs = observations(policy)
    output, _ = run(model, obs)
    ref = torch_output(policy, obs)
    # Activations are rounded to 8 bits too: about 1% of the output scale.
    np.testing.assert_allclose(output, ref, rtol=0, atol=0.05 * float(np.abs(ref).max()))


class ScaledLinear(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


@pytest.mark.parametrize("net, type_name", [
    (nn.Sequential(nn.Linear(3, 4), nn.SiLU(), nn.Linear(4, 2)), "SiLU"),
    (nn.Sequential(ScaledLinear(3, 2)), "ScaledLinear"),
    (nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Dropout(), nn.Linear(4, 2))), "Dropout"),
])
def test_unsupported_modules_raise_type_error_naming_the_type(net, type_name):
    with pytest.raises(TypeError, match=type_name):
        policy_to_onnx(Policy(net=net, action="argmax"))


def test_unknown_int8_form_is_refused():
    with pytest.raises(ValueError, match="int8"):
        policy_to_onnx(random_q_policy(), int8="int4")
