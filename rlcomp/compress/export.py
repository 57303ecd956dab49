"""ONNX export of a (compressed) policy, built node by node from the module structure.

The graph is written directly with :mod:`onnx.helper` (no ``torch.onnx`` tracing), so it holds
exactly the layers the compressors made:

- ``nn.Linear``: ``Gemm(x, W, b, transB=1)`` with float32 ``W``.
- ``QuantizedLinear`` (and ``FakeQuantLinear``, exported as the quantized layer it computes): an
  int8 layer with a scale per output row has its int8 weights and biases as ``INT8``
  initializers, with float32 scales (one per output row for the weights, one per layer for the
  biases) and ``DequantizeLinear`` nodes (see "The int8 form"). An int4 or int2 layer, or one with
  per-group scales, is exported as ``Gemm`` with float32 initializers holding its dequantized
  weights and biases (exactly the floats ``QuantizedLinear`` computes with): ONNX Runtime has no
  int4 matrix-multiply kernel we rely on, and opset 17's ``DequantizeLinear`` has no per-group
  (blocked) form. So such an ``.onnx`` file is as large as the dense one; the compact
  ``.rlc.safetensors`` file is where the fewer bits are stored.
- ``FactorizedLinear``: its two factors in turn (each may be Linear or int8).
- ``nn.ReLU``: ``Relu``; ``nn.Tanh``: ``Tanh``; ``nn.Sequential``: its children in order.

The full policy graph is ``obs -> [normalise] -> net -> output -> action``: the normaliser is
computed in float64 like :class:`rlcomp.nets.ObsNormalizer` (``Cast``, ``Sub``, ``Div``, ``Clip``,
``Cast``), ``output`` is the network's float32 ``[batch, n]`` result (Q-values or action means),
and ``action`` is ``ArgMax`` (int64 ``[batch]``) for ``"argmax"`` policies or ``output`` clipped
to the action bounds (float32 ``[batch, n]``) for ``"mean"`` policies. The batch is dynamic.

The int8 form. Two standard-op forms were measured at batch 1 on one thread in ONNX Runtime
1.31.1 (``benchmarks/compressed_latency.py``: full policy graph, ``session.run`` per decision,
best-of-5 median of 2,000 calls, on a shared 2-core machine; LunarLander / HalfCheetah, us,
the range over two runs):

- ``"dequantize"`` (chosen): ``DequantizeLinear(q int8 [out, in], scale [out], axis=0)`` feeding
  ``Gemm``; float32 arithmetic, exactly what ``QuantizedLinear`` computes (outputs agree with
  PyTorch to float rounding, about 1e-7 of the output scale). By default ORT keeps
  ``DequantizeLinear`` in the graph and runs it on every call: 25-36 / 28. :func:`onnx_session`
  sets ``session.disable_quant_qdq``, so ORT folds the constant dequantization once when the
  session starts: 11-16 / 13-13.5, the dense float graph's time (11 / 13; after folding the two
  graphs are the same ``Gemm`` nodes, so the spread is the machine's noise).
- ``"integer"``: ``DynamicQuantizeLinear`` of the activations (uint8, per tensor) then
  ``MatMulInteger`` with the int8 weights, ``Cast``, ``Mul`` by both scales, ``Add`` the bias (the
  pattern of ``onnxruntime.quantization.quantize_dynamic``, which ORT fuses into
  ``DynamicQuantizeMatMul``): 19 / 15, no faster than float at batch 1 (a 256 x 256 product is
  too small for the integer kernel to repay quantizing the activations), and not the function
  ``QuantizedLinear`` computes, since the activations are rounded to 8 bits too (about 1% of the
  output scale). It stays available as ``int8="integer"`` for comparison.

So the file carries int8 (about a quarter of the dense file's bytes) and the runtime computes in
float32; the cost is that a folded session holds float32 copies of the weights in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from rlcomp.compress.lowrank import FactorizedLinear
from rlcomp.compress.quant import FakeQuantLinear, QuantizedLinear
from rlcomp.files import atomic_write
from rlcomp.nets import ObsNormalizer
from rlcomp.policy import Policy

if TYPE_CHECKING:
    import onnxruntime

OPSET = 17
"""ONNX operator set of the exported graphs (per-axis ``DequantizeLinear`` needs 13 or later)."""

IR_VERSION = 8
"""ONNX IR version matching :data:`OPSET`, readable by any ONNX Runtime since 1.10."""

Int8Form = Literal["dequantize", "integer"]
"""How int8 layers compute: float math on dequantized weights, or integer matrix products."""


@dataclass
class _Graph:
    """The nodes and initializers of a graph being built, with unique value names."""

    int8: Int8Form = "dequantize"
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _count: int = 0

    def fresh(self, prefix: str) -> str:
        """A value name not used before in this graph."""
        self._count += 1
        return f"{prefix}_{self._count}"

    def constant(self, prefix: str, array: np.ndarray) -> str:
        """Add ``array`` (its dtype kept) as an initializer; return its name."""
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str | None = None, **attrs) -> str:
        """Add a one-output node; return the output's name."""
        out = self.fresh(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _linear(g: _Graph, x: str, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
    """``x @ weight.T + bias`` with float32 weights."""
    inputs = [x, g.constant("weight", _numpy(weight).astype(np.float32))]
    if bias is not None:
        inputs.append(g.constant("bias", _numpy(bias).astype(np.float32)))
    return g.op("Gemm", inputs, "linear", transB=1)


def _dequantized(g: _Graph, q: np.ndarray, scale: np.ndarray, axis: int = 0) -> str:
    """``q * scale`` (per ``axis`` for a vector of scales, per tensor for a 0-d one), in float32."""
    return g.op("DequantizeLinear", [g.constant("q", q), g.constant("scale", scale)],
                "dequantized", axis=axis)


def _int8_dequantize(g: _Graph, x: str, layer: QuantizedLinear) -> str:
    """``x @ W.T + b``: dequantize the int8 weights (and biases), then a float ``Gemm``."""
    inputs = [x, _dequantized(g, _numpy(layer.qweight), _numpy(layer.scale))]
    bias = _int8_bias(g, layer)
    return g.op("Gemm", inputs + ([bias] if bias is not None else []), "linear", transB=1)


def _int8_integer(g: _Graph, x: str, layer: QuantizedLinear) -> str:
    """Activations to uint8 per tensor, an int8 x uint8 product in int32, then both scales."""
    x_q, x_scale, x_zero = (g.fresh(n) for n in ("x_q", "x_scale", "x_zero"))
    g.nodes.append(helper.make_node("DynamicQuantizeLinear", [x], [x_q, x_scale, x_zero],
                                    name=x_q))
    q = _numpy(layer.qweight)
    w_q = g.constant("q_t", np.ascontiguousarray(q.T))
    w_zero = g.constant("q_zero", np.zeros(q.shape[0], dtype=np.int8))
    acc = g.op("MatMulInteger", [x_q, w_q, x_zero, w_zero], "acc")
    both = g.op("Mul", [x_scale, g.constant("scale", _numpy(layer.scale))], "scales")
    y = g.op("Mul", [g.op("Cast", [acc], "acc_f", to=TensorProto.FLOAT), both], "scaled")
    bias = _int8_bias(g, layer)
    return g.op("Add", [y, bias], "linear") if bias is not None else y


def _int8_bias(g: _Graph, layer: QuantizedLinear) -> str | None:
    """The layer's float biases: dequantized from int8 when it stores them so, else as they are."""
    if getattr(layer, "qbias", None) is not None:
        return _dequantized(g, _numpy(layer.qbias), _numpy(layer.bias_scale).reshape(()))
    if layer.bias is None:
        return None
    return g.constant("bias", _numpy(layer.bias).astype(np.float32))


def _int8_linear(g: _Graph, x: str, layer: QuantizedLinear) -> str:
    """An int8 layer (per-output-row scales) in the graph's int8 form."""
    emit = _int8_dequantize if g.int8 == "dequantize" else _int8_integer
    return emit(g, x, layer)


def _quantized_linear(g: _Graph, x: str, layer: QuantizedLinear) -> str:
    """An int8 per-row layer in the int8 form; any other width or grouping as dequantized floats."""
    if layer.bits == 8 and layer.group == 0:
        return _int8_linear(g, x, layer)
    return _linear(g, x, layer.dequantized_weight(), layer.bias)


def _emit_module(g: _Graph, module: nn.Module, x: str) -> str:
    """Add the nodes computing ``module(x)``; return the output's name.

    Raises:
        TypeError: for a module type the exporter does not know.
    """
    for kind, emit in _EMITTERS:
        if type(module) is kind:
            return emit(g, module, x)
    raise TypeError(f"cannot export {type(module).__module__}.{type(module).__qualname__} "
                    f"to ONNX (supported: {', '.join(k.__name__ for k, _ in _EMITTERS)})")


def _emit_sequential(g: _Graph, module: nn.Sequential, x: str) -> str:
    for child in module:
        x = _emit_module(g, child, x)
    return x


_EMITTERS: list[tuple[type, Callable[[_Graph, nn.Module, str], str]]] = [
    (nn.Sequential, _emit_sequential),
    (nn.Linear, lambda g, m, x: _linear(g, x, m.weight, m.bias)),
    (nn.ReLU, lambda g, m, x: g.op("Relu", [x], "relu")),
    (nn.Tanh, lambda g, m, x: g.op("Tanh", [x], "tanh")),
    (FactorizedLinear, lambda g, m, x: _emit_module(g, m.second, _emit_module(g, m.first, x))),
    (QuantizedLinear, lambda g, m, x: _quantized_linear(g, x, m)),
    (FakeQuantLinear, lambda g, m, x: _quantized_linear(g, x, m.quantized())),
]
"""Module type -> function adding its nodes (exact type match: a subclass may compute otherwise)."""


def in_features(net: nn.Module) -> int:
    """The input width of a network: that of its first layer.

    Raises:
        TypeError: when the first layer has no ``in_features``.
    """
    first = net
    while isinstance(first, nn.Sequential) and len(first) > 0:
        first = first[0]
    if not hasattr(first, "in_features"):
        raise TypeError(f"cannot tell the input width of {type(first).__name__}")
    return int(first.in_features)


def _emit_normaliser(g: _Graph, norm: ObsNormalizer, x: str) -> str:
    """``clip((x - mean) / std, -clip, clip)`` in float64, as ``ObsNormalizer`` computes it."""
    x64 = g.op("Cast", [x], "obs_f64", to=TensorProto.DOUBLE)
    centred = g.op("Sub", [x64, g.constant("obs_mean", norm.mean.astype(np.float64))], "centred")
    scaled = g.op("Div", [centred, g.constant("obs_std", norm.std.astype(np.float64))], "scaled")
    bounds = [g.constant(n, np.array(v, dtype=np.float64))
              for n, v in (("clip_low", -norm.clip), ("clip_high", norm.clip))]
    clipped = g.op("Clip", [scaled, *bounds], "clipped")
    return g.op("Cast", [clipped], "obs_normalised", to=TensorProto.FLOAT)


def _emit_action(g: _Graph, policy: Policy, out: str) -> onnx.ValueInfoProto:
    """Add the ``action`` output (argmax index, or the mean clipped to the bounds); describe it."""
    if policy.action == "argmax":
        g.nodes.append(helper.make_node("ArgMax", [out], ["action"], name="action", axis=-1,
                                        keepdims=0))
        return helper.make_tensor_value_info("action", TensorProto.INT64, ["batch"])
    n = out_features(policy.net)
    if policy.action_low is not None and policy.action_high is not None:
        low = g.constant("action_low", np.asarray(policy.action_low, dtype=np.float32))
        high = g.constant("action_high", np.asarray(policy.action_high, dtype=np.float32))
        # Clip takes scalar bounds only; per-dimension bounds are Max then Min.
        g.nodes.append(helper.make_node("Min", [g.op("Max", [out, low], "above_low"), high],
                                        ["action"], name="action"))
    else:
        g.nodes.append(helper.make_node("Identity", [out], ["action"], name="action"))
    return helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", n])


def out_features(net: nn.Module) -> int:
    """The output width of a network: that of its last layer with ``out_features``.

    Raises:
        TypeError: when no layer has ``out_features``.
    """
    widths = [m.out_features for m in net.modules() if hasattr(m, "out_features")]
    if not widths:
        raise TypeError(f"cannot tell the output width of {type(net).__name__}")
    return int(widths[-1])


def policy_to_onnx(policy: Policy, int8: Int8Form = "dequantize") -> onnx.ModelProto:
    """The ONNX model of a policy's decision: ``obs -> (output, action)``, batch dynamic.

    Args:
        policy: the policy; its ``net`` may hold any mix of the supported layers.
        int8: the form of int8 layers (see the module docstring); ``"dequantize"`` computes
            exactly what PyTorch does. Int4, int2 and per-group layers are always exported as
            their dequantized float weights.

    Returns:
        A checked model with input ``obs`` (float32 ``[batch, obs_dim]``) and outputs ``output``
        (float32 ``[batch, n]``) and ``action`` (int64 ``[batch]`` or float32 ``[batch, n]``).

    Raises:
        TypeError: naming a module type the exporter does not support.
        ValueError: for an unknown ``int8`` form.
    """
    if int8 not in ("dequantize", "integer"):
        raise ValueError(f"int8 must be 'dequantize' or 'integer', got {int8!r}")
    g = _Graph(int8=int8)
    x = "obs"
    if policy.obs_norm is not None:
        x = _emit_normaliser(g, policy.obs_norm, x)
    net_out = _emit_module(g, policy.net, x)
    g.nodes.append(helper.make_node("Identity", [net_out], ["output"], name="output"))
    action_info = _emit_action(g, policy, "output")
    n = out_features(policy.net)
    graph = helper.make_graph(
        g.nodes, "policy",
        inputs=[helper.make_tensor_value_info("obs", TensorProto.FLOAT,
                                              ["batch", in_features(policy.net)])],
        outputs=[helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", n]),
                 action_info],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="rlcomp")
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(policy: Policy, path: str | os.PathLike, int8: Int8Form = "dequantize") -> Path:
    """Write :func:`policy_to_onnx` of ``policy`` to ``path`` atomically; return the path."""
    path = Path(path)
    atomic_write(path, policy_to_onnx(policy, int8=int8).SerializeToString())
    return path


def onnx_session(model_or_path: onnx.ModelProto | str | os.PathLike,
                 fold_int8: bool = True) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session on one intra-op and one inter-op thread.

    Args:
        model_or_path: a model or the path of an ``.onnx`` file.
        fold_int8: let ONNX Runtime dequantize constant int8 weights once, when the session is
            made (``session.disable_quant_qdq``), instead of on every call; the results are the
            same, the int8 weights stay in the file and the session holds float32 copies.

    Returns:
        The session; run it as ``session.run(None, {"obs": obs})`` (``output``, ``action``).
    """
    import onnxruntime as ort  # imported here: exporting needs no runtime

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if fold_int8:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    source = (model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto)
              else str(model_or_path))
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
