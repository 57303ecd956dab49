"""Compact files of compressed policies: as small as the information in them, and self-describing.

A compressed file is one safetensors file. Its metadata names the format, the environment, the
algorithm, the canonical spec, the source checkpoint and its digest, and the model: the policy's
action rule and a list of layer descriptors. Its tensors are a few flat blobs, one per data type,
that the layer descriptors consume in order:

- ``float32``: float weights (dense, or only the nonzeros), biases, quantization scales, action
  bounds;
- ``int8``: int8 weights (dense, or only the nonzeros) and int8 biases;
- ``packed``: int4 and int2 weights (dense, or only the nonzeros), two or four to a byte
  (:func:`pack_ints`), each layer's values starting on a fresh byte;
- ``mask``: packed bitmasks (``numpy.packbits``, row-major) marking the nonzero weights of sparse
  layers;
- ``float64``: the observation normaliser's mean and variance, when the policy has one.

Each weight matrix is stored sparse (bitmask + nonzeros) when that is smaller than dense, else
dense; a factorized layer is its two factors; a quantized layer (descriptor ``i8``, ``i4`` or
``i2``, with ``group`` when it has per-group scales) is its integer values plus one float32 scale
per output channel (or per group, row-major) and, whatever the weights' width, int8 biases with
one float32 scale per bias vector. Packing everything into a handful of blobs keeps the
safetensors header near 1 kB whatever the number of layers, which is what lets the int8, int4 and
int2 files come within 5% of their bits per parameter (plus scales).

Loading reads the header as JSON and the blobs as raw arrays: nothing is unpickled, and a loaded
model computes exactly what the in-memory compressed model computed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlcomp.checkpoint import CheckpointError, load_checkpoint, policy_from_checkpoint
from rlcomp.compress.layers import FactorizedLinear, linear_from_tensors
from rlcomp.compress.quant import FakeQuantLinear, QuantizedLinear
from rlcomp.envs import resolve_env_id
from rlcomp.files import (
    SafetensorsError,
    atomic_write,
    read_safetensors,
    safetensors_bytes,
    safetensors_metadata,
)
from rlcomp.nets import ObsNormalizer
from rlcomp.policy import Policy

FORMAT = "rlcomp-compressed/1"
"""The ``format`` metadata of every compressed file this version writes and reads."""

SUFFIX = ".rlc.safetensors"
"""The conventional file name ending of a compressed model."""

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
"""Parameter-free layers a compressed network may contain, by their name in the file."""

_BLOB_DTYPES = {"float32": torch.float32, "int8": torch.int8, "mask": torch.uint8,
                "float64": torch.float64, "packed": torch.uint8}

_QUANT_KINDS = {"i8": 8, "i4": 4, "i2": 2}
"""Bits per weight of each quantized layer kind."""


class StorageError(ValueError):
    """A compressed file that is missing, foreign, damaged or inconsistent."""


@dataclass
class CompressedModel:
    """A loaded compressed file: the policy, its metadata and the file's digest."""

    policy: Policy
    meta: dict
    digest: str
    path: Path
    bytes: int

    @property
    def env_id(self) -> str:
        return self.meta["env_id"]

    @property
    def algo(self) -> str:
        return self.meta["algo"]

    @property
    def spec(self) -> str:
        return self.meta["spec"]


# --- packing --------------------------------------------------------------------------------------

def pack_ints(values: np.ndarray, bits: int) -> np.ndarray:
    """Signed integers of ``bits`` (4 or 2) bits, ``8 // bits`` to a byte, as uint8.

    Each value is its two's complement low ``bits`` bits; value ``k`` of a byte sits at bit
    ``k * bits`` (the first value in the lowest bits); the last byte is padded with zeros.
    """
    per_byte = _per_byte(bits)
    codes = np.asarray(values).astype(np.int16).reshape(-1) & ((1 << bits) - 1)
    padded = np.zeros(-(-codes.size // per_byte) * per_byte, dtype=np.uint8)
    padded[: codes.size] = codes
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    return np.bitwise_or.reduce(padded.reshape(-1, per_byte) << shifts, axis=1).astype(np.uint8)


def unpack_ints(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` values :func:`pack_ints` packed into ``packed``, as int8."""
    per_byte = _per_byte(bits)
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    codes = (np.asarray(packed, dtype=np.uint8).reshape(-1, 1) >> shifts) & ((1 << bits) - 1)
    codes = codes.reshape(-1)[:count].astype(np.int8)
    return np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes).astype(np.int8)


def _per_byte(bits: int) -> int:
    if bits not in (4, 2):
        raise ValueError(f"packing takes 4 or 2 bits, got {bits!r}")
    return 8 // bits


def packed_bytes(count: int, bits: int) -> int:
    """Bytes of ``count`` values of ``bits`` bits each (32, 8, 4 or 2), whole bytes."""
    return math.ceil(count * bits / 8)


# --- encoding -------------------------------------------------------------------------------------

class _Writer:
    """Appends arrays to the per-dtype blobs."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in _BLOB_DTYPES}

    def put(self, blob: str, values: torch.Tensor | np.ndarray) -> None:
        array = values.detach().numpy() if isinstance(values, torch.Tensor) else values
        self.parts[blob].append(np.ascontiguousarray(array).reshape(-1))

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, parts in self.parts.items():
            if parts:
                dtype = _BLOB_DTYPES[name]
                out[name] = torch.from_numpy(np.concatenate(parts)).to(dtype).contiguous()
        return out


def _sparse_is_smaller(numel: int, nnz: int, bits: int) -> bool:
    return math.ceil(numel / 8) + packed_bytes(nnz, bits) < packed_bytes(numel, bits)


def _put_values(w: _Writer, values: torch.Tensor, bits: int) -> None:
    """Write float32 (32 bits), int8 (8) or packed int4/int2 (4, 2) values."""
    if bits == 32:
        w.put("float32", values)
    elif bits == 8:
        w.put("int8", values)
    else:
        w.put("packed", pack_ints(values.detach().numpy(), bits))


def _put_matrix(w: _Writer, weight: torch.Tensor, bits: int) -> dict:
    """Write a weight matrix dense or as bitmask + nonzeros, whichever is smaller."""
    flat = weight.detach().reshape(-1)
    nonzero = flat != 0
    nnz = int(nonzero.sum())
    if _sparse_is_smaller(flat.numel(), nnz, bits):
        w.put("mask", np.packbits(nonzero.numpy()))
        _put_values(w, flat[nonzero], bits)
        return {"nnz": nnz}
    _put_values(w, flat, bits)
    return {}


def _encode_layer(w: _Writer, module: nn.Module) -> dict | str:
    if isinstance(module, FakeQuantLinear):
        module = module.quantized()
    if type(module) is nn.Linear:
        desc = {"t": "f32", "in": module.in_features, "out": module.out_features,
                **_put_matrix(w, module.weight, 32)}
        if module.bias is None:
            desc["bias"] = False
        else:
            w.put("float32", module.bias)
        return desc
    if isinstance(module, QuantizedLinear):
        desc = {"t": f"i{module.bits}", "in": module.in_features, "out": module.out_features,
                **_put_matrix(w, module.qweight, module.bits)}
        if module.group:
            desc["group"] = module.group
        w.put("float32", module.scale)
        if module.qbias is None:
            desc["bias"] = False
        else:
            w.put("int8", module.qbias)
            w.put("float32", module.bias_scale.reshape(1))
        return desc
    if isinstance(module, FactorizedLinear):
        return {"t": "factors", "first": _encode_layer(w, module.first),
                "second": _encode_layer(w, module.second)}
    for name, cls in ACTIVATIONS.items():
        if type(module) is cls:
            return name
    raise TypeError(f"cannot store a {type(module).__name__} layer (supported: Linear, "
                    "FactorizedLinear, QuantizedLinear, FakeQuantLinear, ReLU, Tanh)")


def _modules(net: nn.Module) -> list[nn.Module]:
    return list(net) if isinstance(net, nn.Sequential) else [net]


# --- decoding -------------------------------------------------------------------------------------

class _Reader:
    """Consumes the per-dtype blobs in the order the writer filled them."""

    def __init__(self, blobs: dict[str, torch.Tensor]) -> None:
        self.blobs = blobs
        self.pos = dict.fromkeys(blobs, 0)

    def take(self, blob: str, count: int) -> torch.Tensor:
        data = self.blobs.get(blob)
        start = self.pos.get(blob, 0)
        if data is None or start + count > data.numel():
            raise StorageError(f"the {blob} data ends early (the file is damaged)")
        self.pos[blob] = start + count
        return data[start : start + count].clone()

    def check_consumed(self) -> None:
        for blob, data in self.blobs.items():
            if self.pos[blob] != data.numel():
                raise StorageError(f"the {blob} data has {data.numel() - self.pos[blob]} values "
                                   "that no layer uses (the file is damaged)")


def _take_values(r: _Reader, count: int, bits: int) -> torch.Tensor:
    """Read what :func:`_put_values` wrote: float32, int8, or int4/int2 unpacked to int8."""
    if bits == 32:
        return r.take("float32", count)
    if bits == 8:
        return r.take("int8", count)
    values = unpack_ints(r.take("packed", packed_bytes(count, bits)).numpy(), bits, count)
    if (values == -(1 << (bits - 1))).any():
        raise StorageError(f"an int{bits} layer holds the unused code -{1 << (bits - 1)} "
                           "(the file is damaged)")
    return torch.from_numpy(values)


def _take_matrix(r: _Reader, desc: dict, bits: int) -> torch.Tensor:
    n_out, n_in = desc["out"], desc["in"]
    numel = n_out * n_in
    if "nnz" not in desc:
        return _take_values(r, numel, bits).reshape(n_out, n_in)
    present = np.unpackbits(r.take("mask", math.ceil(numel / 8)).numpy())[:numel].astype(bool)
    if int(present.sum()) != desc["nnz"]:
        raise StorageError("a sparse layer's bitmask does not match its nonzero count")
    values = _take_values(r, desc["nnz"], bits)
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[torch.from_numpy(present)] = values
    return dense.reshape(n_out, n_in)


def _decode_quantized(r: _Reader, desc: dict, bits: int) -> QuantizedLinear:
    group = desc.get("group", 0)
    if isinstance(group, bool) or not isinstance(group, int) or group < 0:
        raise StorageError(f"a quantized layer has a bad group size {group!r}")
    qweight = _take_matrix(r, desc, bits)
    n_out = desc["out"]
    if group:
        scale = r.take("float32", n_out * math.ceil(desc["in"] / group)).reshape(n_out, -1)
    else:
        scale = r.take("float32", n_out)
    qbias, bias_scale = None, None
    if desc.get("bias", True):
        qbias, bias_scale = r.take("int8", n_out), r.take("float32", 1).reshape(())
    return QuantizedLinear(qweight, scale, qbias, bias_scale, bits=bits, group=group)


def _decode_layer(r: _Reader, desc: dict | str) -> nn.Module:
    if isinstance(desc, str):
        if desc not in ACTIVATIONS:
            raise StorageError(f"unknown layer {desc!r}")
        return ACTIVATIONS[desc]()
    kind = desc.get("t")
    if kind == "factors":
        first, second = _decode_layer(r, desc["first"]), _decode_layer(r, desc["second"])
        return FactorizedLinear.of(first, second)
    has_bias = desc.get("bias", True)
    if kind == "f32":
        weight = _take_matrix(r, desc, 32)
        return linear_from_tensors(weight, r.take("float32", desc["out"]) if has_bias else None)
    if kind in _QUANT_KINDS:
        return _decode_quantized(r, desc, _QUANT_KINDS[kind])
    raise StorageError(f"unknown layer kind {kind!r}")

# --- files ----------------------------------------------------------------------------------------

def _policy_tensors(policy: Policy, w: _Writer) -> dict:
    desc: dict = {"action": policy.action}
    if policy.obs_norm is not None:
        desc["obs_norm"] = {"dim": int(policy.obs_norm.mean.size), "clip": policy.obs_norm.clip,
                            "eps": policy.obs_norm.eps}
        w.put("float64", policy.obs_norm.mean.astype(np.float64))
        w.put("float64", policy.obs_norm.var.astype(np.float64))
    if policy.action_low is not None and policy.action_high is not None:
        desc["bounds"] = int(np.asarray(policy.action_low).size)
        w.put("float32", np.asarray(policy.action_low, dtype=np.float32))
        w.put("float32", np.asarray(policy.action_high, dtype=np.float32))
    return desc


def compressed_file_bytes(policy: Policy, meta: dict) -> bytes:
    """The bytes of a compressed file for ``policy``; ``meta`` names env_id, algo, spec, source.

    ``meta`` may also carry ``source_digest`` (the source checkpoint's digest).
    """
    for key in ("env_id", "algo", "spec"):
        if not isinstance(meta.get(key), str):
            raise ValueError(f"compressed-file metadata needs {key!r} as text")
    w = _Writer()
    policy_desc = _policy_tensors(policy, w)
    layers = [_encode_layer(w, m) for m in _modules(policy.net)]
    model = {"policy": policy_desc, "layers": layers}
    header = {"format": FORMAT, **{k: str(v) for k, v in meta.items()},
              "model": json.dumps(model, separators=(",", ":"))}
    return safetensors_bytes(w.tensors(), header)


def save_compressed(path: str | os.PathLike, policy: Policy, meta: dict) -> int:
    """Write ``policy`` as a compressed file (atomically); returns the file's size in bytes."""
    data = compressed_file_bytes(policy, meta)
    atomic_write(path, data)
    return len(data)


def is_compressed_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that starts like a compressed rlcomp file."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with p.open("rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else 0
            return 0 < n < 1 << 20 and FORMAT.encode() in f.read(n)
    except OSError:
        return False


def load_compressed(path: str | os.PathLike) -> CompressedModel:
    """Load a compressed file into a :class:`Policy` that computes exactly what was saved.

    Raises:
        StorageError: with a one-line reason, for a missing, foreign, damaged or inconsistent file.
    """
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path}: no such file")
    return compressed_from_bytes(path.read_bytes(), path)


def compressed_from_bytes(blob: bytes, path: str | os.PathLike = "<bytes>") -> CompressedModel:
    """:func:`load_compressed` of a compressed file's bytes already in memory.

    ``path`` names the bytes' source in errors and in the result.

    Raises:
        StorageError: with a one-line reason, for foreign, damaged or inconsistent bytes.
    """
    path = Path(path)
    try:
        meta = safetensors_metadata(blob)
    except SafetensorsError as exc:
        raise StorageError(f"{path}: not a compressed rlcomp file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise StorageError(f"{path}: not a compressed rlcomp file (format is not {FORMAT})")
    try:
        _, blobs = read_safetensors(blob)
        model = json.loads(meta["model"])
        for name, data in blobs.items():
            if name not in _BLOB_DTYPES or data.dtype != _BLOB_DTYPES[name] or data.dim() != 1:
                raise StorageError(f"unexpected tensor {name!r}")
        r = _Reader(blobs)
        pol = model["policy"]
        obs_norm = None
        if "obs_norm" in pol:
            dim = pol["obs_norm"]["dim"]
            mean, var = r.take("float64", dim).numpy(), r.take("float64", dim).numpy()
            obs_norm = ObsNormalizer(mean, var, clip=pol["obs_norm"]["clip"],
                                     eps=pol["obs_norm"]["eps"])
        low = high = None
        if "bounds" in pol:
            low = r.take("float32", pol["bounds"]).numpy()
            high = r.take("float32", pol["bounds"]).numpy()
        layers = [_decode_layer(r, d) for d in model["layers"]]
        r.check_consumed()
        if pol["action"] not in ("argmax", "mean"):
            raise StorageError(f"unknown action rule {pol['action']!r}")
    except (StorageError, SafetensorsError) as exc:
        raise StorageError(f"{path}: {exc}") from None
    except Exception as exc:  # safetensors and malformed JSON raise their own types
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise StorageError(f"{path}: damaged compressed file ({reason})") from None
    net: nn.Module = nn.Sequential(*layers)
    policy = Policy(net=net.eval(), action=pol["action"], obs_norm=obs_norm,
                    action_low=low, action_high=high)
    meta = {k: v for k, v in meta.items() if k != "model"} | {"model": model}
    return CompressedModel(policy=policy, meta=meta, digest=hashlib.sha256(blob).hexdigest(),
                           path=path, bytes=len(blob))


# --- either kind of file --------------------------------------------------------------------------

@dataclass
class LoadedPolicy:
    """A policy from a checkpoint or a compressed file, with what identifies it."""

    policy: Policy
    env_id: str
    algo: str
    spec: str
    """Canonical spec of the compression applied (``dense`` for a checkpoint)."""
    digest: str
    """SHA-256 of the tensor file (checkpoint) or of the compressed file."""
    path: Path


def load_checkpoint_or_compressed(name: str | os.PathLike,
                                  env_id: str | None = None) -> LoadedPolicy:
    """Load a checkpoint (``NAME``, ``NAME.json`` or ``NAME.safetensors``) or a compressed file.

    Args:
        name: what to load; a compressed file is recognised by its content, not its name.
        env_id: if given, refuse a model of another environment.

    Raises:
        CheckpointError | StorageError: (both ``ValueError``) with a one-line reason.
    """
    if is_compressed_file(name):
        model = load_compressed(name)
        if env_id is not None and model.env_id != resolve_env_id(env_id, notify=False):
            raise StorageError(f"{model.path}: compressed from a {model.env_id} agent, not "
                               f"{resolve_env_id(env_id, notify=False)}")
        return LoadedPolicy(model.policy, model.env_id, model.algo, model.spec, model.digest,
                            model.path)
    try:
        ckpt = load_checkpoint(name, env_id=env_id)
    except CheckpointError as exc:
        if Path(name).is_file() and Path(name).suffix not in (".json", ".safetensors"):
            raise CheckpointError(f"{name}: neither a checkpoint nor a compressed rlcomp file") \
                from exc
        raise
    return LoadedPolicy(policy_from_checkpoint(ckpt), ckpt.env_id, ckpt.algo, "dense",
                        ckpt.digest, ckpt.path)
