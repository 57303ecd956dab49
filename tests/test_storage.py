import dataclasses
import io
import pickle

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from rlcomp.compress import QuantizedLinear, compress
from rlcomp.compress.storage import (
    StorageError,
    is_compressed_file,
    load_checkpoint_or_compressed,
    load_compressed,
    save_compressed,
)
from rlcomp.files import SafetensorsError, read_safetensors, safetensors_bytes
from rlcomp.nets import ObsNormalizer, mlp
from rlcomp.policy import Policy
from rlcomp.probes.size import theoretical_bytes

SPECS = ["dense", "prune=0.5", "prune=0.9", "prune=0.9,scope=layer", "prune=0.5,structured=true",
         "lowrank=0.5", "lowrank=0.9", "lowrank=0.75,keep_io=true", "quant=8", "quant=8,mode=qat",
         "lowrank=0.5+prune=0.5", "prune=0.9+quant=8", "lowrank=0.75+quant=8"]


def qpolicy(seed=0) -> Policy:
    torch.manual_seed(seed)
    return Policy(net=mlp([8, 256, 256, 4]), action="argmax")


def gaussian_policy(seed=0) -> Policy:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = ObsNormalizer(rng.normal(size=5), rng.uniform(0.5, 2, size=5), clip=5.0)
    return Policy(net=mlp([5, 32, 32, 3]), action="mean", obs_norm=norm,
                  action_low=-np.ones(3, np.float32), action_high=np.ones(3, np.float32))


def save(tmp_path, policy, spec, name="m.rlc.safetensors"):
    compressed = dataclasses.replace(policy, net=compress(policy.net, spec))
    path = tmp_path / name
    n = save_compressed(path, compressed, {"env_id": "Test-v0", "algo": "ddqn", "spec": spec})
    return compressed, path, n


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("make", [qpolicy, gaussian_policy])
def test_round_trip_is_exact(tmp_path, spec, make):
    policy = make()
    compressed, path, n = save(tmp_path, policy, spec)
    loaded = load_compressed(path)
    assert loaded.bytes == n == path.stat().st_size
    assert loaded.spec == spec and loaded.env_id == "Test-v0"
    obs = np.random.default_rng(1).normal(size=(64, policy.net[0].in_features)) * 3
    x = torch.as_tensor(obs, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(loaded.policy.net(x), compressed.net(x))
    assert np.array_equal(loaded.policy.act(obs), compressed.act(obs))
    as_stored = [type(m).__name__.replace("FakeQuantLinear", "QuantizedLinear")
                 for m in compressed.net.modules()]
    assert [type(m).__name__ for m in loaded.policy.net.modules()] == as_stored


def test_policy_wrapping_survives(tmp_path):
    policy = gaussian_policy()
    _, path, _ = save(tmp_path, policy, "quant=8")
    loaded = load_compressed(path).policy
    assert loaded.action == "mean"
    assert np.array_equal(loaded.obs_norm.mean, policy.obs_norm.mean)
    assert np.array_equal(loaded.obs_norm.std, policy.obs_norm.std)
    assert loaded.obs_norm.clip == 5.0
    assert np.array_equal(loaded.action_low, policy.action_low)
    assert np.array_equal(loaded.action_high, policy.action_high)


def test_qat_model_is_stored_as_the_int8_model_it_computes(tmp_path):
    _, path, _ = save(tmp_path, qpolicy(), "quant=8,mode=qat")
    _, ptq_path, _ = save(tmp_path, qpolicy(), "quant=8", name="ptq.rlc.safetensors")
    loaded = load_compressed(path).policy.net
    assert all(isinstance(m, QuantizedLinear) for m in loaded if not isinstance(m, nn.ReLU))
    ptq = load_compressed(ptq_path).policy.net
    for a, b in zip(loaded.state_dict().values(), ptq.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# --- the byte targets, on a fixed model of the LunarLander Q-network's shape ---------------------

def test_int8_file_is_within_5_percent_of_one_byte_per_parameter(tmp_path):
    policy = qpolicy()
    params = sum(p.numel() for p in policy.net.parameters())
    assert params == 69_124
    compressed, _, n = save(tmp_path, policy, "quant=8")
    assert theoretical_bytes(compressed.net) == params
    assert n <= 1.05 * params


def test_sparse_file_at_90_percent_meets_the_bitmask_bound(tmp_path):
    policy = qpolicy()
    compressed, _, n = save(tmp_path, policy, "prune=0.9")
    weights = sum(m.weight.numel() for m in compressed.net if isinstance(m, nn.Linear))
    nnz = sum(int((m.weight != 0).sum()) for m in compressed.net if isinstance(m, nn.Linear))
    assert nnz == weights - round(0.9 * weights)
    assert n <= 1.10 * (nnz * 4 + weights / 8)


def test_dense_is_kept_when_sparse_would_be_larger(tmp_path):
    _, _, dense = save(tmp_path, qpolicy(), "dense", name="a.rlc.safetensors")
    _, path, light = save(tmp_path, qpolicy(), "prune=0.01", name="b.rlc.safetensors")
    with safe_open(path, "pt") as f:
        assert "mask" not in f.keys()  # 1% zeros: a bitmask would cost more than it saves
    assert abs(light - dense) <= 16  # only the spec text differs
    _, _, heavy = save(tmp_path, qpolicy(), "prune=0.5", name="c.rlc.safetensors")
    assert heavy < 0.6 * dense


def test_factors_are_stored_when_smaller(tmp_path):
    compressed, _, n = save(tmp_path, qpolicy(), "lowrank=0.75")
    dense = theoretical_bytes(qpolicy().net)
    assert theoretical_bytes(compressed.net) < 0.6 * dense
    assert n <= 1.01 * theoretical_bytes(compressed.net) + 1024


def test_theoretical_bytes_by_hand():
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
    assert theoretical_bytes(layer) == 8 // 8 + 1 * 4 + 2 * 4  # bitmask + 1 nonzero + biases
    with torch.no_grad():
        layer.weight.fill_(0.5)
    assert theoretical_bytes(layer) == 8 * 4 + 2 * 4  # dense: 8 weights + 2 biases, float32
    assert theoretical_bytes(nn.Linear(64, 1, bias=False)) == 256
    sparse = nn.Linear(64, 1, bias=False)
    with torch.no_grad():
        sparse.weight.zero_()
        sparse.weight[0, 3] = 1.0
    assert theoretical_bytes(sparse) == 64 // 8 + 4  # bitmask + one nonzero
    assert theoretical_bytes(compress(nn.Linear(4, 2), "quant=8")) == 8 + 2


# --- safety and failure --------------------------------------------------------------------------

def test_the_one_safetensors_reader_reads_what_the_writer_wrote():
    tensors = {"b": torch.arange(5, dtype=torch.int8), "a": torch.randn(3, 2, dtype=torch.float64)}
    blob = safetensors_bytes(tensors, {"format": "x/1", "note": "é"})
    metadata, read = read_safetensors(blob)
    assert metadata == {"format": "x/1", "note": "é"}
    assert set(read) == {"a", "b"} and all(torch.equal(read[k], tensors[k]) for k in tensors)
    for bad, reason in ((b"", "too short"), (b"\xff" * 8 + b"{}", "bad or truncated header"),
                        (b"\x04" + b"\0" * 7 + b"nope", "not JSON"),
                        (b"\x02" + b"\0" * 7 + b"[]", "not a JSON object"),
                        (blob[:-3], "damaged safetensors file")):
        with pytest.raises(SafetensorsError, match=reason) as info:
            read_safetensors(bad)
        assert "\n" not in str(info.value)


class Trap:
    """Unpickling this creates the file ``path``: proof that pickled code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_bytes(kind, marker, tmp_path):
    """A file whose unpickling creates ``marker``: a pickle, a ``torch.save`` zip, or a pickle
    inside a file that starts as a valid compressed rlcomp file (header and metadata intact)."""
    payload = {"net.0.weight": torch.zeros(4, 8), "trap": Trap(marker)}
    if kind == "pickle":
        return pickle.dumps(payload)
    if kind == "torch.save":
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()
    _, path, _ = save(tmp_path, qpolicy(), "prune=0.5", name="genuine.rlc.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    blob = pickle.dumps(payload)
    blob += b"\0" * (-len(blob) % 4)
    return safetensors_bytes({"float32": torch.frombuffer(bytearray(blob), dtype=torch.float32)},
                             meta)


@pytest.mark.parametrize("kind", ["pickle", "torch.save", "pickle-in-compressed-file"])
def test_loading_a_pickle_bearing_file_runs_no_pickled_code(tmp_path, kind):
    marker = tmp_path / "pickled-code-ran"
    path = tmp_path / "evil.rlc.safetensors"
    path.write_bytes(evil_bytes(kind, marker, tmp_path))
    with pytest.raises(StorageError) as info:
        load_compressed(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ValueError):
        load_checkpoint_or_compressed(path)
    assert not marker.exists(), "loading unpickled the file"
    # The trap is real: unpickling the same payload does create the marker.
    pickle.loads(pickle.dumps(Trap(marker)))
    assert marker.exists()


def test_unsupported_layer_writes_nothing(tmp_path):
    policy = Policy(net=nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()), action="argmax")
    with pytest.raises(TypeError, match="cannot store a Sigmoid layer"):
        save_compressed(tmp_path / "x.rlc.safetensors", policy,
                        {"env_id": "T-v0", "algo": "ddqn", "spec": "dense"})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("damage", ["truncate", "foreign", "garbage", "empty", "missing"])
def test_damaged_or_foreign_files_fail_with_one_line(tmp_path, damage):
    _, path, n = save(tmp_path, qpolicy(), "prune=0.9")
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: n - 100])
    elif damage == "foreign":
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(3)}, str(path))
    elif damage == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(StorageError) as info:
        load_compressed(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert not is_compressed_file(path) or damage == "truncate"


def test_inconsistent_metadata_is_caught(tmp_path):
    _, path, _ = save(tmp_path, qpolicy(), "quant=8")
    blob = path.read_bytes()
    tampered = blob.replace(b'\\"out\\":4', b'\\"out\\":3')
    assert tampered != blob
    path.write_bytes(tampered)
    with pytest.raises(StorageError, match="damaged"):
        load_compressed(path)


def test_is_compressed_file(tmp_path):
    _, path, _ = save(tmp_path, qpolicy(), "dense")
    assert is_compressed_file(path)
    assert not is_compressed_file(tmp_path / "nothing")
    (tmp_path / "t.json").write_text("{}")
    assert not is_compressed_file(tmp_path / "t.json")


# --- one build path, byte-reproducible files -----------------------------------------------------

@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("make", [qpolicy, gaussian_policy])
def test_compressed_tensors_are_contiguous_like_loaded_ones(tmp_path, spec, make):
    """The in-memory model and the loaded one share memory layouts, hence GEMM code paths."""
    compressed, path, _ = save(tmp_path, make(), spec)
    loaded = load_compressed(path).policy.net
    stored = dict(compressed.net.state_dict())
    for name, tensor in loaded.state_dict().items():
        assert tensor.is_contiguous(), name
        if name in stored:
            assert stored[name].stride() == tensor.stride(), name


SCRIPT = """
import hashlib, sys, torch
from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint, save_checkpoint
from rlcomp.compress import compress
from rlcomp.compress.storage import compressed_file_bytes
import dataclasses
ckpt = load_checkpoint("checkpoints/LunarLander-v3__ddqn__0")
policy = policy_from_checkpoint(ckpt)
small = dataclasses.replace(policy, net=compress(policy.net, "lowrank=0.5+prune=0.5+quant=8"))
data = compressed_file_bytes(small, {"env_id": ckpt.env_id, "algo": ckpt.algo,
                                     "spec": "lowrank=0.5+prune=0.5+quant=8", "source": ckpt.name,
                                     "source_digest": ckpt.digest})
meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "digest")}
stem = save_checkpoint(sys.argv[1] + "/ckpt", ckpt.tensors, meta)
blob = open(str(stem) + ".safetensors", "rb").read()
print(hashlib.sha256(data).hexdigest(), hashlib.sha256(blob).hexdigest())
"""


def test_files_are_byte_reproducible_across_processes(tmp_path):
    """The safetensors metadata is written in sorted order: the same model, the same bytes."""
    import os
    import subprocess
    import sys

    from rlcomp.chapters import ROOT

    digests = set()
    for hash_seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        digests.add(tuple(out))
    assert len(digests) == 1
