"""Fewer bits: int4/int2 weights per channel or per group, mixed precision, packed files, ONNX, QAT.

Files are checked bit for bit against the in-memory model; the file's tensor payload (file size
minus the safetensors header) is checked against parameters x bits / 8 + scales + biases as
stored (:func:`theoretical_bytes` with ``scales=True``) plus the policy's own tensors.
"""

import dataclasses
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.compress import (
    FactorizedLinear,
    FakeQuantLinear,
    QuantizedLinear,
    QuantSpec,
    compress,
    format_spec,
    parse_spec,
)
from rlcomp.compress.export import onnx_session, policy_to_onnx
from rlcomp.compress.quant import qmax_of, quantize_weight
from rlcomp.compress.specs import spec_columns
from rlcomp.compress.storage import (
    StorageError,
    compressed_file_bytes,
    load_compressed,
    pack_ints,
    save_compressed,
    unpack_ints,
)
from rlcomp.nets import ObsNormalizer, as_tensor, mlp
from rlcomp.policy import Policy
from rlcomp.probes.size import model_size, theoretical_bytes
from rlcomp.retrain.finetune import finetune, restored_copy, trainable_copy

DDQN = "checkpoints/LunarLander-v3__ddqn__0"
PG = "checkpoints/HalfCheetah-v5__pg__0"
LOW_SPECS = ["quant=4", "quant=2", "quant=4,group=32", "quant=2,group=32", "quant=4,mixed=true",
             "quant=2,mixed=true,mode=qat", "quant=4,group=32,mode=qat", "prune=0.5+quant=4",
             "prune=0.9+quant=2", "lowrank=0.5+quant=4", "lowrank=0.5+quant=2,group=8,mixed=true"]
RTOL_OF_SCALE = 1e-5  # as tests/test_export.py


def small_q_policy() -> Policy:
    torch.manual_seed(0)
    return Policy(net=mlp([7, 40, 33, 5]), action="argmax")  # widths no group size divides


def small_mean_policy() -> Policy:
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    norm = ObsNormalizer(rng.normal(size=5), rng.uniform(0.5, 2, size=5), clip=5.0)
    return Policy(net=mlp([5, 48, 3]), action="mean", obs_norm=norm,
                  action_low=-np.ones(3, np.float32), action_high=np.ones(3, np.float32))


@functools.cache
def checkpoint(name):
    return load_checkpoint(name)


def checkpoint_policy(name) -> Policy:
    return policy_from_checkpoint(checkpoint(name))


@functools.cache
def compressed_checkpoint(name, spec) -> Policy:
    """Shared between tests, which must not change it (the SVD of lowrank takes a while)."""
    return compressed(checkpoint_policy(name), spec)


def compressed(policy: Policy, spec: str) -> Policy:
    return dataclasses.replace(policy, net=compress(policy.net, spec))


def quantized_layers(net: nn.Module) -> list[QuantizedLinear]:
    return [m for m in net.modules() if isinstance(m, QuantizedLinear)]


def file_bytes(policy: Policy, spec: str) -> bytes:
    return compressed_file_bytes(policy, {"env_id": "Test-v0", "algo": "ddqn", "spec": spec})


def payload(data: bytes) -> int:
    """The file's tensor payload: its size minus the safetensors header."""
    return len(data) - 8 - int.from_bytes(data[:8], "little")


def policy_tensor_bytes(policy: Policy) -> int:
    """Bytes of the observation statistics (float64) and action bounds (float32) a file holds."""
    norm = 0 if policy.obs_norm is None else 2 * 8 * policy.obs_norm.mean.size
    bounds = 0 if policy.action_low is None else 2 * 4 * np.asarray(policy.action_low).size
    return norm + bounds


# --- specs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["quant=4", "quant=2", "quant=4,group=32", "quant=8,group=16",
                                  "quant=2,mixed=true,mode=qat", "quant=4,group=32,mixed=true",
                                  "prune=0.5+quant=4", "lowrank=0.5+quant=2,group=8"])
def test_spec_text_round_trips(text):
    specs = parse_spec(text)
    assert format_spec(specs) == text
    assert parse_spec(format_spec(specs)) == specs


def test_spec_text_is_canonical_with_defaults_omitted():
    assert format_spec(parse_spec("quant=4,mode=ptq,group=0,mixed=false")) == "quant=4"
    assert format_spec(parse_spec("quant=2, mode=qat , mixed=yes")) == "quant=2,mixed=true,mode=qat"
    assert parse_spec("quant=4,group=32") == (QuantSpec(bits=4, group=32),)
    assert format_spec(QuantSpec()) == "quant=8"


@pytest.mark.parametrize(("text", "message"), [
    ("quant=3", "quant bits must be 8, 4 or 2, got 3"),
    ("quant=16", "quant bits must be 8, 4 or 2, got 16"),
    ("quant=4.5", "quant bits must be an integer, got '4.5'"),
    ("quant=4,group=-1", "quant group must be 0 (a scale per output channel) or a positive group "
                         "size, got -1"),
    ("quant=4,group=abc", "quant group must be an integer, got 'abc'"),
    ("quant=4,mixed=maybe", "quant mixed must be true or false, got 'maybe'"),
    ("quant=8,mixed=true", "quant mixed=true needs bits 4 or 2"),
    ("quant=4,bits=2", "quant has no option 'bits'"),
])
def test_bad_quant_text_is_refused_with_its_reason(text, message):
    with pytest.raises(ValueError) as info:
        parse_spec(text)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs", [{"bits": 4.0}, {"bits": True}, {"bits": 4, "group": 2.0},
                                    {"bits": 4, "group": True}, {"bits": 4, "mixed": 1}])
def test_quant_spec_types_are_checked_on_construction(kwargs):
    with pytest.raises(TypeError):
        QuantSpec(**kwargs)


def test_spec_columns_name_the_options():
    grouped = spec_columns("quant=4,group=32")
    assert grouped["method"] == "quant[group=32]" and grouped["level"] == grouped["quant"] == 4
    assert spec_columns("quant=2,mixed=true,mode=qat")["method"] == "quant[mixed,qat]"
    assert spec_columns("prune=0.5+quant=2")["quant"] == 2
    assert spec_columns("quant=8")["method"] == "quant"


# --- packing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [4, 2])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 8, 9, 255])
def test_packing_round_trips_bit_exactly(bits, n):
    half = 1 << (bits - 1)
    values = np.random.default_rng(n).integers(-half, half, size=n).astype(np.int8)
    packed = pack_ints(values, bits)
    assert packed.dtype == np.uint8 and packed.size == math.ceil(n * bits / 8)
    unpacked = unpack_ints(packed, bits, n)
    assert unpacked.dtype == np.int8 and np.array_equal(unpacked, values)


def test_packing_by_hand():
    # First value in the lowest bits; two's complement codes; the last byte padded with zeros.
    assert pack_ints(np.array([1, -1, 0, 7, -7]), 4).tolist() == [0xF1, 0x70, 0x09]
    assert pack_ints(np.array([1, -1, 0, 1, -1]), 2).tolist() == [0b01_00_11_01, 0b11]
    with pytest.raises(ValueError, match="4 or 2 bits"):
        pack_ints(np.array([1]), 3)


# --- quantization ------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("group", [0, 32, 5, 100])
def test_every_weight_is_within_half_a_step(bits, group):
    torch.manual_seed(bits + group)
    w = torch.randn(24, 70) * torch.rand(24, 1)
    w[3] = 0.0  # an all-zero row gets the scale 1
    q, scale = quantize_weight(w, bits, group)
    qmax = qmax_of(bits)
    groups = math.ceil(70 / group) if group else 0
    assert q.dtype == torch.int8 and int(q.abs().max()) == qmax
    assert tuple(scale.shape) == ((24, groups) if group else (24,))
    assert bool((scale[3] == 1).all()) and not q[3].any()
    step = scale.repeat_interleave(group, dim=1)[:, :70] if group else scale[:, None]
    slack = 1e-6 * float(w.abs().max())  # float32 rounding of q * step
    assert bool(((q.float() * step - w).abs() <= step / 2 + slack).all())
    if group:  # the last group of each row is shorter: the remaining 70 mod group columns
        last = w[:, (groups - 1) * group :].abs().amax(dim=1) / qmax
        torch.testing.assert_close(scale[:, -1], torch.where(last > 0, last, 1.0))


def test_quant_8_is_unchanged_by_groups_and_widths_being_possible():
    layer = nn.Linear(6, 4)
    q, scale = quantize_weight(layer.weight)
    assert torch.equal(QuantizedLinear.from_linear(layer).qweight, q)
    assert quantized_layers(compress(layer, "quant=8"))[0].scale.shape == (4,)


def test_mixed_keeps_the_first_and_last_layers_as_quant_8_makes_them():
    net = small_q_policy().net
    mixed, int8 = compress(net, "quant=2,group=8,mixed=true"), compress(net, "quant=8")
    layers = quantized_layers(mixed)
    assert [(m.bits, m.group) for m in layers] == [(8, 0), (2, 8), (8, 0)]
    for i in (0, 2):
        assert torch.equal(layers[i].qweight, quantized_layers(int8)[i].qweight)
        assert torch.equal(layers[i].scale, quantized_layers(int8)[i].scale)
    factorized = compress(net, "lowrank=0.5+quant=4,mixed=true")
    assert isinstance(factorized[0], FactorizedLinear)
    assert [m.bits for m in quantized_layers(factorized[0])] == [8, 8]
    assert {m.bits for m in quantized_layers(factorized[2])} == {4}


def test_qat_forward_is_the_quantized_network_and_gradients_pass_straight_through():
    net = small_q_policy().net
    ptq, qat = compress(net, "quant=2,group=8"), compress(net, "quant=2,group=8,mode=qat")
    assert all(type(m) is FakeQuantLinear and (m.bits, m.group) == (2, 8)
               for m in qat if isinstance(m, nn.Linear))
    x = torch.randn(16, 7)
    with torch.no_grad():
        assert torch.equal(qat(x), ptq(x))
    qat(x).sum().backward()
    assert all(m.weight.grad.abs().sum() > 0 for m in qat if isinstance(m, nn.Linear))


def test_sizes_count_the_packed_widths():
    layer = nn.Linear(5, 3)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    size = model_size(compress(layer, "quant=4"))
    assert size.params == 18 and size.scales == 3 + 1
    assert size.tensor_bytes == math.ceil(15 / 2) + 3 + 4 * 4  # packed weights, int8 biases, scales
    assert model_size(compress(layer, "quant=2")).tensor_bytes == math.ceil(15 / 4) + 3 + 16
    assert theoretical_bytes(compress(layer, "quant=4")) == math.ceil(15 / 2 + 3)
    assert theoretical_bytes(compress(layer, "quant=2")) == math.ceil(15 / 4 + 3)
    assert theoretical_bytes(compress(layer, "quant=2"), scales=True) == math.ceil(15 / 4 + 3) + 16
    grouped = compress(layer, "quant=4,group=2")  # 3 groups per row
    assert model_size(grouped).scales == 3 * 3 + 1


# --- files ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", LOW_SPECS)
@pytest.mark.parametrize("make", [small_q_policy, small_mean_policy])
def test_file_round_trip_is_bit_exact(tmp_path, spec, make):
    policy = compressed(make(), spec)
    path = tmp_path / "m.rlc.safetensors"
    n = save_compressed(path, policy, {"env_id": "Test-v0", "algo": "ddqn", "spec": spec})
    loaded = load_compressed(path)
    assert loaded.bytes == n and loaded.spec == spec
    x = torch.as_tensor(np.random.default_rng(2).normal(size=(64, policy.net[0].in_features)) * 3,
                        dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(loaded.policy.net(x), policy.net(x))
    stored = [m.quantized() if isinstance(m, FakeQuantLinear) else m
              for m in policy.net.modules() if isinstance(m, nn.Linear | QuantizedLinear)]
    for a, b in zip(quantized_layers(loaded.policy.net), stored, strict=True):
        assert (a.bits, a.group) == (b.bits, b.group)
        assert all(torch.equal(t, u) for t, u in zip(a.state_dict().values(),
                                                     b.state_dict().values(), strict=True))


@pytest.mark.parametrize("spec", ["quant=4", "quant=2", "quant=4,group=32", "quant=2,group=32",
                                  "quant=4,mixed=true", "prune=0.5+quant=4", "prune=0.9+quant=2",
                                  "lowrank=0.5+quant=4"])
@pytest.mark.parametrize("name", [DDQN, PG])
def test_file_payload_is_within_5_percent_of_the_bits(name, spec):
    policy = compressed_checkpoint(name, spec)
    data = file_bytes(policy, spec)
    theoretical = theoretical_bytes(policy.net, scales=True) + policy_tensor_bytes(policy)
    assert theoretical <= payload(data) <= 1.05 * theoretical
    assert len(data) - payload(data) < 1024  # the header


def test_fewer_bits_make_smaller_files():
    policy = checkpoint_policy(DDQN)
    sizes = {spec: payload(file_bytes(compressed(policy, spec), spec))
             for spec in ("quant=8", "quant=4", "quant=2")}
    assert sizes["quant=4"] < 0.55 * sizes["quant=8"] and sizes["quant=2"] < 0.55 * sizes["quant=4"]


def test_an_unused_code_in_a_packed_layer_is_refused(tmp_path):
    policy = compressed(small_q_policy(), "quant=4")
    path = tmp_path / "m.rlc.safetensors"
    save_compressed(path, policy, {"env_id": "Test-v0", "algo": "ddqn", "spec": "quant=4"})
    blob = bytearray(path.read_bytes())
    blob[-1] = 0x88  # two codes of -8, which symmetric int4 never uses
    path.write_bytes(bytes(blob))
    with pytest.raises(StorageError, match="damaged"):
        load_compressed(path)


# --- ONNX ----------------------------------------------------------------------------------------

ONNX_CASES = [(make, spec) for make in (small_q_policy, small_mean_policy) for spec in LOW_SPECS]
ONNX_CASES += [("halfcheetah", spec) for spec in LOW_SPECS if "lowrank" not in spec]
ONNX_CASES += [("halfcheetah", "lowrank=0.5+quant=4")]


@pytest.mark.parametrize(("make", "spec"), ONNX_CASES)
def test_onnx_computes_what_pytorch_computes(make, spec):
    policy = (compressed_checkpoint(PG, spec) if make == "halfcheetah"
              else compressed(make(), spec))
    obs = np.random.default_rng(0).standard_normal((32, policy.net[0].in_features))
    if policy.obs_norm is not None:
        obs = policy.obs_norm.mean + 1.5 * policy.obs_norm.std * obs
    obs = obs.astype(np.float32)
    output, _ = onnx_session(policy_to_onnx(policy)).run(None, {"obs": obs})
    x = policy.obs_norm(obs) if policy.obs_norm is not None else obs
    with torch.no_grad():
        ref = policy.net(as_tensor(x)).numpy()
    np.testing.assert_allclose(output, ref, rtol=0, atol=RTOL_OF_SCALE * float(np.abs(ref).max()))


def test_low_bit_layers_export_as_float_and_int8_edges_stay_int8():
    model = policy_to_onnx(compressed(small_q_policy(), "quant=4,mixed=true"))
    weights = [t for t in model.graph.initializer if len(t.dims) == 2]
    assert [t.data_type for t in weights] == [3, 1, 3]  # INT8, FLOAT, INT8


# --- fine-tuning ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["quant=4", "quant=2,group=32", "quant=2,mixed=true"])
def test_trainable_copy_keeps_width_and_restores_exactly(spec):
    net = compress(checkpoint_policy(DDQN).net, spec)
    work, conversions = trainable_copy(net)
    assert set(conversions.values()) == {"int8"}
    fakes = [m for m in work.modules() if isinstance(m, nn.Linear)]
    assert [(m.bits, m.group) for m in fakes] == [(m.bits, m.group) for m in quantized_layers(net)]
    x = torch.randn(7, 8)
    with torch.no_grad():
        assert torch.equal(work(x), net(x))
    back = restored_copy(work, conversions)
    for a, b in zip(quantized_layers(back), quantized_layers(net), strict=True):
        assert (a.bits, a.group) == (b.bits, b.group) and torch.equal(a.qweight, b.qweight)


@pytest.mark.parametrize(("name", "spec", "kind"), [
    (DDQN, "quant=4", QuantizedLinear),
    (DDQN, "quant=2,group=32,mixed=true,mode=qat", FakeQuantLinear),
    (PG, "quant=4,group=32", QuantizedLinear),
])
def test_finetuning_keeps_layer_type_and_width(name, spec, kind):
    net = compress(checkpoint_policy(name).net, spec)
    result = finetune(checkpoint(name), net, 200, seed=0)
    layers_in = [m for m in net.modules() if isinstance(m, kind)]
    layers_out = [m for m in result.net.modules() if isinstance(m, kind)]
    assert [type(m) for m in result.net.modules()] == [type(m) for m in net.modules()]
    assert [(m.bits, m.group) for m in layers_out] == [(m.bits, m.group) for m in layers_in]
    assert any(not torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                     result.net.state_dict().values(), strict=True))
    if kind is QuantizedLinear:
        assert all(int(m.qweight.abs().max()) <= qmax_of(m.bits) for m in layers_out)
