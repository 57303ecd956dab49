"""Checkpoints: round trips, one-line refusals, provenance and reproducible returns."""

import hashlib
import json
import os
import pickle
import shutil

import pytest
import torch

import rlcomp
from rlcomp.agents.train import make_config, train_and_save
from rlcomp.checkpoint import (
    FORMAT,
    CheckpointError,
    build_net,
    checkpoint_paths,
    load_checkpoint,
    policy_from_checkpoint,
    save_checkpoint,
)
from rlcomp.rollout import evaluate_policy

ARCH = {"net": [8, 5, 4]}  # fits LunarLander-v3: 8 observations, 4 actions


def tiny_tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "net.0.weight": torch.randn(5, 8, generator=g),
        "net.0.bias": torch.randn(5, generator=g),
        "net.2.weight": torch.randn(4, 5, generator=g),
        "net.2.bias": torch.randn(4, generator=g),
        "log_std": torch.full((4,), -0.5),
        "obs_norm.var": torch.rand(8, generator=g, dtype=torch.float64),
    }


def tiny_meta(env_id="LunarLander-v3"):
    return {"env_id": env_id, "algo": "ddqn", "architecture": ARCH, "seed": 3,
            "note": "hand-made", "values": [1.5, -2.0]}


def assert_one_line(exc_info):
    message = str(exc_info.value)
    assert message and "\n" not in message
    assert "Traceback" not in message


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small real checkpoint, trained once for the whole module."""
    out = tmp_path_factory.mktemp("ckpt")
    config = make_config("ddqn", env_id="LunarLander-v3", seed=0, total_steps=600,
                         learning_starts=100, eval_interval=300, eval_episodes=2,
                         final_eval_episodes=3, hidden=(16, 16))
    path, result = train_and_save("ddqn", config, out)
    return path, result, config


def copy_checkpoint(path, dest_dir, name="copy"):
    st, js = checkpoint_paths(path)
    new_st, new_js = checkpoint_paths(dest_dir / name)
    shutil.copyfile(st, new_st)
    shutil.copyfile(js, new_js)
    return dest_dir / name


def test_checkpoint_paths_accept_every_name(tmp_path):
    expected = (tmp_path / "a.b.safetensors", tmp_path / "a.b.json")
    for name in ("a.b", "a.b.safetensors", "a.b.json"):
        assert checkpoint_paths(tmp_path / name) == expected
        assert checkpoint_paths(str(tmp_path / name)) == expected


def test_round_trip(tmp_path):
    tensors, meta = tiny_tensors(), tiny_meta()
    stem = save_checkpoint(tmp_path / "run", tensors, meta)
    assert stem == tmp_path / "run"
    assert sorted(os.listdir(tmp_path)) == ["run.json", "run.safetensors"]
    for name in (stem, str(stem), f"{stem}.safetensors", f"{stem}.json"):
        ckpt = load_checkpoint(name)
        assert ckpt.tensors.keys() == tensors.keys()
        for key, value in tensors.items():
            assert ckpt.tensors[key].dtype == value.dtype
            assert torch.equal(ckpt.tensors[key], value)
        for key, value in meta.items():
            assert ckpt.meta[key] == value
        assert ckpt.meta["format"] == FORMAT
        assert ckpt.env_id == "LunarLander-v3" and ckpt.algo == "ddqn"
        blob = (tmp_path / "run.safetensors").read_bytes()
        assert ckpt.digest == hashlib.sha256(blob).hexdigest()
        assert ckpt.meta["digest"] == ckpt.digest
        assert ckpt.path == tmp_path / "run"


def test_round_trip_non_contiguous_tensor(tmp_path):
    tensors = tiny_tensors()
    tensors["net.0.weight"] = torch.randn(8, 5).t()  # a transposed view
    save_checkpoint(tmp_path / "t", tensors, tiny_meta())
    assert torch.equal(load_checkpoint(tmp_path / "t").tensors["net.0.weight"],
                       tensors["net.0.weight"])


def test_build_net_uses_stored_weights(tmp_path):
    tensors = tiny_tensors()
    save_checkpoint(tmp_path / "n", tensors, tiny_meta())
    net = build_net(load_checkpoint(tmp_path / "n"))
    x = torch.randn(4, 8)
    expected = torch.relu(x @ tensors["net.0.weight"].T + tensors["net.0.bias"])
    expected = expected @ tensors["net.2.weight"].T + tensors["net.2.bias"]
    assert torch.allclose(net(x), expected)


def test_load_with_matching_env_and_alias(tmp_path):
    save_checkpoint(tmp_path / "r", tiny_tensors(), tiny_meta())
    assert load_checkpoint(tmp_path / "r", env_id="LunarLander-v3").env_id == "LunarLander-v3"
    assert load_checkpoint(tmp_path / "r", env_id="LunarLander-v2").env_id == "LunarLander-v3"


@pytest.mark.parametrize(
    "bad_meta",
    [
        {"env_id": "LunarLander-v3", "algo": "ddqn"},  # no architecture
        {"algo": "ddqn", "architecture": ARCH},  # no env_id
        {"env_id": "LunarLander-v3", "algo": "sac", "architecture": ARCH},  # unknown algo
        {**tiny_meta(), "score": float("nan")},  # not valid JSON
        {**tiny_meta(), "obj": object()},  # not JSON-serializable
    ],
)
def test_failed_save_writes_nothing(tmp_path, bad_meta):
    with pytest.raises((ValueError, TypeError)):
        save_checkpoint(tmp_path / "x", tiny_tensors(), bad_meta)
    assert os.listdir(tmp_path) == []


def test_failed_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "x", tiny_tensors(), tiny_meta())
    assert os.listdir(tmp_path) == []


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError) as exc_info:
        load_checkpoint(tmp_path / "nothing")
    assert_one_line(exc_info)
    # Half a pair is missing too.
    save_checkpoint(tmp_path / "half", tiny_tensors(), tiny_meta())
    (tmp_path / "half.json").unlink()
    with pytest.raises(CheckpointError, match="half.json") as exc_info:
        load_checkpoint(tmp_path / "half.safetensors")
    assert_one_line(exc_info)


class _Trap:
    """Unpickling this creates the file ``path``: proof that something was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _pickle_bytes(kind, marker):
    if kind == "pickle":
        return pickle.dumps({"net.0.weight": torch.zeros(5, 3), "trap": _Trap(marker)})
    buffer = __import__("io").BytesIO()
    torch.save({"net.0.weight": torch.zeros(5, 3)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_pickle_file_is_refused_without_unpickling(tmp_path, kind):
    marker = tmp_path / "unpickled"
    blob = _pickle_bytes(kind, marker)
    (tmp_path / "evil.safetensors").write_bytes(blob)
    meta = {"format": FORMAT, **tiny_meta(), "digest": hashlib.sha256(blob).hexdigest()}
    (tmp_path / "evil.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as exc_info:
        load_checkpoint(tmp_path / "evil")
    assert isinstance(exc_info.value, ValueError)
    assert_one_line(exc_info)
    assert "evil.safetensors" in str(exc_info.value)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [4, 20, 0.5, -1])
def test_truncated_safetensors_is_refused(tmp_path, keep):
    save_checkpoint(tmp_path / "t", tiny_tensors(), tiny_meta())
    path = tmp_path / "t.safetensors"
    blob = path.read_bytes()
    cut = int(len(blob) * keep) if isinstance(keep, float) else keep
    path.write_bytes(blob[:cut])
    with pytest.raises(CheckpointError) as exc_info:
        load_checkpoint(tmp_path / "t")
    assert_one_line(exc_info)


@pytest.mark.parametrize(
    "text",
    [
        '{"hello": "world"}',  # JSON, but not a checkpoint
        "[1, 2, 3]",  # JSON, not an object
        "this is not json",
        json.dumps({"format": "someone-else/2", **tiny_meta()}),
    ],
)
def test_json_that_is_not_a_checkpoint(tmp_path, text):
    save_checkpoint(tmp_path / "j", tiny_tensors(), tiny_meta())
    (tmp_path / "j.json").write_text(text)
    with pytest.raises(CheckpointError, match="j.json") as exc_info:
        load_checkpoint(tmp_path / "j")
    assert_one_line(exc_info)


def test_binary_json_is_refused(tmp_path):
    save_checkpoint(tmp_path / "j", tiny_tensors(), tiny_meta())
    (tmp_path / "j.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError) as exc_info:
        load_checkpoint(tmp_path / "j")
    assert_one_line(exc_info)


def test_plain_safetensors_without_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file(tiny_tensors(), tmp_path / "p.safetensors")
    blob = (tmp_path / "p.safetensors").read_bytes()
    meta = {"format": FORMAT, **tiny_meta(), "digest": hashlib.sha256(blob).hexdigest()}
    (tmp_path / "p.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not an rlcomp checkpoint") as exc_info:
        load_checkpoint(tmp_path / "p")
    assert_one_line(exc_info)


def test_mismatched_pair_is_refused(tmp_path):
    save_checkpoint(tmp_path / "a", tiny_tensors(0), tiny_meta())
    save_checkpoint(tmp_path / "b", tiny_tensors(1), tiny_meta())
    shutil.copyfile(tmp_path / "b.json", tmp_path / "a.json")
    with pytest.raises(CheckpointError, match="digest") as exc_info:
        load_checkpoint(tmp_path / "a")
    assert_one_line(exc_info)


def test_edited_json_env_disagrees_with_tensor_header(tmp_path):
    save_checkpoint(tmp_path / "e", tiny_tensors(), tiny_meta())
    meta = json.loads((tmp_path / "e.json").read_text())
    meta["env_id"] = "HalfCheetah-v5"
    (tmp_path / "e.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="env_id") as exc_info:
        load_checkpoint(tmp_path / "e")
    assert_one_line(exc_info)


def test_tensors_not_matching_architecture_are_refused(tmp_path):
    meta = {**tiny_meta(), "architecture": {"net": [8, 7, 4]}}
    save_checkpoint(tmp_path / "s", tiny_tensors(), meta)
    with pytest.raises(CheckpointError, match="architecture") as exc_info:
        load_checkpoint(tmp_path / "s")
    assert_one_line(exc_info)


def test_trained_checkpoint_files(trained):
    path, _, _ = trained
    assert path.name == "LunarLander-v3__ddqn__0"
    assert path.with_suffix(".safetensors").is_file()
    assert path.with_suffix(".json").is_file()


def test_trained_checkpoint_json_fields(trained):
    path, result, config = trained
    meta = json.loads(path.with_suffix(".json").read_text())
    for key in ("env_id", "algo", "architecture", "config", "seed", "training_curve",
                "final_eval", "rlcomp_version", "git_commit", "command"):
        assert key in meta, key
    assert meta["env_id"] == "LunarLander-v3"
    assert meta["algo"] == "ddqn"
    assert meta["seed"] == 0 and meta["config"]["seed"] == 0
    assert meta["architecture"] == {"net": [8, 16, 16, 4]}
    assert meta["config"]["total_steps"] == 600
    assert meta["config"]["hidden"] == [16, 16]
    assert meta["rlcomp_version"] == rlcomp.__version__
    assert meta["git_commit"] is None or isinstance(meta["git_commit"], str)
    assert isinstance(meta["command"], list)
    machine = meta["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1
    assert isinstance(machine["vector_extensions"], list)
    assert {"torch", "numpy", "gymnasium", "mujoco", "box2d"} <= set(machine["libraries"])
    curve = meta["training_curve"]
    assert curve["eval_step"] == [300, 600]
    assert len(curve["eval_mean_return"]) == 2
    assert len(curve["episode_end_step"]) == len(curve["episode_return"]) >= 1
    final = meta["final_eval"]
    for key in ("mean_return", "std_return", "returns", "lengths"):
        assert key in final, key
    assert len(final["returns"]) == len(final["lengths"]) == config.final_eval_episodes
    assert final["mean_return"] == pytest.approx(sum(final["returns"]) / len(final["returns"]))
    assert final == result.final_eval


def test_trained_checkpoint_refuses_other_env(trained):
    path, _, _ = trained
    with pytest.raises(CheckpointError, match="HalfCheetah-v5") as exc_info:
        load_checkpoint(path, env_id="HalfCheetah-v5")
    assert isinstance(exc_info.value, ValueError)
    assert_one_line(exc_info)
    assert load_checkpoint(path, env_id="LunarLander-v3").env_id == "LunarLander-v3"


def test_trained_checkpoint_refuses_truncation(trained, tmp_path):
    copy = copy_checkpoint(trained[0], tmp_path)
    st = copy.with_suffix(".safetensors")
    st.write_bytes(st.read_bytes()[:-100])
    with pytest.raises(CheckpointError) as exc_info:
        load_checkpoint(copy)
    assert_one_line(exc_info)


def test_policy_from_checkpoint_reproduces_final_evaluation(trained):
    path, result, config = trained
    ckpt = load_checkpoint(path)
    final = ckpt.meta["final_eval"]
    policy = policy_from_checkpoint(ckpt)
    assert policy.action == "argmax"
    again = evaluate_policy(policy, ckpt.env_id, config.final_eval_episodes,
                            seed=config.final_eval_seed)
    assert again.returns == final["returns"]
    assert again.lengths == final["lengths"]
    # The saved network is the one training kept.
    for key, value in result.tensors.items():
        assert torch.equal(ckpt.tensors[key], value)
