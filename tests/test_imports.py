"""Foreign policies (Stable-Baselines3 zips, plain state dicts) act, evaluate and compress as ours.

The SB3 agents are trained here, briefly and seeded, and saved with SB3's own ``model.save``; the
imported policy must choose SB3's own deterministic actions.
"""

import base64
import io
import json
import os
import pickle
import zipfile

import cloudpickle
import numpy as np
import onnxruntime
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from rlcomp.checkpoint import policy_from_checkpoint
from rlcomp.cli import main
from rlcomp.compress.storage import load_compressed
from rlcomp.imports import ForeignFileError, is_foreign, load_foreign
from rlcomp.retrain.pipeline import compressed_policy

OURS = "checkpoints/LunarLander-v3__ddqn__0"

SB3_AGENTS = {
    # name: (algorithm, environment, settings, activation the import must find, action rule)
    "dqn": ("DQN", "CartPole-v1", {"learning_starts": 100, "policy_kwargs": {"net_arch": [32, 32]}},
            "relu", "argmax"),
    "ppo_discrete": ("PPO", "LunarLander-v3", {"n_steps": 64, "batch_size": 64, "n_epochs": 2,
                                               "policy_kwargs": {"net_arch": [32, 32]}},
                     "tanh", "argmax"),
    "ppo_box": ("PPO", "Pendulum-v1", {"n_steps": 64, "batch_size": 64, "n_epochs": 2,
                                       "policy_kwargs": {"net_arch": [32, 32]}}, "tanh", "mean"),
    "a2c_relu": ("A2C", "Pendulum-v1", {"n_steps": 8, "policy_kwargs": {
        "net_arch": {"pi": [16, 16], "vf": [8]}, "activation_fn": nn.ReLU}}, "relu", "mean"),
    # the study's environments, with SB3's default networks (64x64)
    "dqn_lunar": ("DQN", "LunarLander-v3", {"learning_starts": 100}, "relu", "argmax"),
    "ppo_cheetah": ("PPO", "HalfCheetah-v5", {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
                    "tanh", "mean"),
}
STEPS = {"dqn": 1000, "ppo_discrete": 64, "ppo_box": 64, "a2c_relu": 64, "dqn_lunar": 300,
         "ppo_cheetah": 64}


@pytest.fixture(scope="session")
def sb3(tmp_path_factory):
    """Each SB3 agent of :data:`SB3_AGENTS`: ``(model, zip path, env id)``."""
    import stable_baselines3

    folder = tmp_path_factory.mktemp("sb3")
    out = {}
    for name, (algo, env_id, settings, _, _) in SB3_AGENTS.items():
        cls = getattr(stable_baselines3, algo)
        model = cls("MlpPolicy", env_id, seed=0, device="cpu", **settings)
        model.learn(total_timesteps=STEPS[name])
        model.save(folder / name)
        out[name] = (model, folder / f"{name}.zip", env_id)
    return out


def observations(env_id, n=200, seed=0):
    """``n`` observations of ``env_id`` from random actions (episodes restart as they end)."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(n):
        rows.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.asarray(rows, dtype=np.float32)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(excinfo, *words):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def rezip(src, dst, replace=None, drop=()):
    """A copy of the zip ``src`` with entries replaced (name -> bytes) or dropped."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name not in drop and name not in replace:
                zout.writestr(name, zin.read(name))
        for name, data in replace.items():
            zout.writestr(name, data)
    return dst


def zip_data(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))


def torch_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


# --- Stable-Baselines3 ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SB3_AGENTS))
def test_an_sb3_zip_acts_as_sb3_does(sb3, name):
    model, path, env_id = sb3[name]
    _, _, _, activation, action = SB3_AGENTS[name]
    ckpt = load_foreign(path, env_id)
    assert ckpt.meta["activation"] == activation and ckpt.meta["action"] == action
    assert ckpt.algo == "sb3-" + SB3_AGENTS[name][0].lower()
    policy = policy_from_checkpoint(ckpt)
    assert all(type(m) in (nn.Linear, nn.ReLU, nn.Tanh) for m in policy.net)
    obs = observations(env_id)
    expected, _ = model.predict(obs, deterministic=True)
    if action == "argmax":
        np.testing.assert_array_equal(policy.act(obs), expected)
    else:
        np.testing.assert_allclose(policy.act(obs), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["dqn", "ppo_box", "dqn_lunar", "ppo_cheetah"])
def test_evaluate_runs_an_sb3_zip(sb3, capsys, name):
    _, path, env_id = sb3[name]
    code, out, err = run(["evaluate", path, "--env", env_id, "--episodes", "2", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["env_id"] == env_id and summary["spec"] == "dense"
    assert summary["algo"].startswith("sb3-") and len(summary["returns"]) == 2


@pytest.mark.parametrize("spec", ["prune=0.5", "quant=8", "lowrank=0.5"])
@pytest.mark.parametrize("name", ["dqn", "ppo_box", "dqn_lunar", "ppo_cheetah"])
def test_compress_an_sb3_zip_with_every_pure_spec(sb3, tmp_path, capsys, name, spec):
    _, path, env_id = sb3[name]
    out = tmp_path / "c.rlc.safetensors"
    code, stdout, err = run(["compress", path, "--env", env_id, "--spec", spec, "--out", out,
                             "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["spec"] == spec
    loaded = load_compressed(out)
    assert loaded.env_id == env_id and loaded.meta["source"] == path.name
    obs = observations(env_id, n=16)
    expected = compressed_policy(load_foreign(path, env_id), spec, seed=0).policy.act(obs)
    np.testing.assert_array_equal(loaded.policy.act(obs), expected)
    code, _, err = run(["evaluate", out, "--episodes", "1", "--json"], capsys)
    assert code == 0, err


def test_onnx_export_of_imported_policies(sb3, tmp_path, capsys):
    _, dqn, _ = sb3["dqn"]
    code, _, err = run(["compress", dqn, "--env", "CartPole-v1", "--spec", "quant=8", "--out",
                        tmp_path / "d.rlc.safetensors", "--onnx", tmp_path / "d.onnx"], capsys)
    assert code == 0 and (tmp_path / "d.onnx").stat().st_size > 0, err
    _, ppo, _ = sb3["ppo_box"]  # a Tanh network
    code, _, err = run(["compress", ppo, "--env", "Pendulum-v1", "--spec", "quant=8", "--out",
                        tmp_path / "p.rlc.safetensors", "--onnx", tmp_path / "p.onnx"], capsys)
    assert code == 0, err
    session = onnxruntime.InferenceSession(str(tmp_path / "p.onnx"))
    obs = observations("Pendulum-v1", n=64)
    actions = session.run(None, {session.get_inputs()[0].name: obs})[0]
    expected = load_compressed(tmp_path / "p.rlc.safetensors").policy.act(obs)
    np.testing.assert_allclose(actions, expected, atol=1e-5)


def test_an_imported_policy_distils_but_does_not_fine_tune(sb3):
    _, path, env_id = sb3["ppo_box"]
    ckpt = load_foreign(path, env_id)
    student = compressed_policy(ckpt, "distill=8,steps=64", seed=0).policy
    assert [m.out_features for m in student.net if isinstance(m, nn.Linear)] == [8, 1]
    assert isinstance(student.net[1], nn.Tanh)  # the teacher's activation
    with pytest.raises(ValueError) as excinfo:
        compressed_policy(ckpt, "prune=0.5", seed=0, finetune_steps=64)
    one_line_error(excinfo, "fine-tune")


def test_a_missing_env_is_refused(sb3, capsys):
    _, path, _ = sb3["dqn"]
    with pytest.raises(ForeignFileError) as excinfo:
        load_foreign(path)
    one_line_error(excinfo, "--env")
    code, out, err = run(["evaluate", path, "--episodes", "1"], capsys)
    assert code == 2 and not out and err.count("\n") == 1 and "--env" in err
    code, _, err = run(["compress", path, "--spec", "quant=8", "--out", "x.rlc.safetensors"],
                       capsys)
    assert code == 2 and err.count("\n") == 1 and "--env" in err


@pytest.mark.parametrize(("name", "env_id", "words"), [
    ("dqn", "LunarLander-v3", ["does not fit LunarLander-v3", "8 observations"]),
    ("dqn", "Pendulum-v1", ["discrete"]),
    ("ppo_box", "LunarLander-v3", ["Gaussian", "discrete"]),
    ("ppo_discrete", "Pendulum-v1", ["categorical", "continuous"]),
])
def test_an_env_that_does_not_fit_is_refused(sb3, name, env_id, words):
    with pytest.raises(ForeignFileError) as excinfo:
        load_foreign(sb3[name][1], env_id)
    one_line_error(excinfo, *words)


def crafted(sb3, tmp_path, case):
    """A damaged or unsupported variant of the PPO zip."""
    _, path, _ = sb3["ppo_box"]
    data = zip_data(path)
    if case == "no policy.pth":
        return rezip(path, tmp_path / "a.zip", drop=("policy.pth",))
    if case == "garbage policy.pth":
        return rezip(path, tmp_path / "a.zip", replace={"policy.pth": b"not a torch file"})
    if case == "pickled module":
        return rezip(path, tmp_path / "a.zip", replace={"policy.pth": torch_bytes(nn.Linear(3, 1))})
    if case == "cnn":
        weights = {"features_extractor.cnn.0.weight": torch.zeros(32, 3, 8, 8),
                   "action_net.weight": torch.zeros(1, 32), "action_net.bias": torch.zeros(1)}
        return rezip(path, tmp_path / "a.zip", replace={"policy.pth": torch_bytes(weights)})
    if case == "lstm":
        weights = {"lstm_actor.weight_ih_l0": torch.zeros(4, 3),
                   "action_net.weight": torch.zeros(1, 32), "action_net.bias": torch.zeros(1)}
        return rezip(path, tmp_path / "a.zip", replace={"policy.pth": torch_bytes(weights)})
    if case == "sac data":
        data["policy_class"]["__module__"] = "stable_baselines3.sac.policies"
        return rezip(path, tmp_path / "a.zip", replace={"data": json.dumps(data)})
    if case == "sac weights":
        weights = {"actor.mu.weight": torch.zeros(1, 16), "actor.mu.bias": torch.zeros(1),
                   "critic.qf0.0.weight": torch.zeros(16, 4)}
        return rezip(path, tmp_path / "a.zip", replace={"policy.pth": torch_bytes(weights)})
    if case == "gsde":
        data["use_sde"] = True
        return rezip(path, tmp_path / "a.zip", replace={"data": json.dumps(data)})
    if case == "not a zip":
        (tmp_path / "a.zip").write_bytes(b"PK but not really")
        return tmp_path / "a.zip"
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "words"), [
    ("no policy.pth", ["no policy.pth"]),
    ("garbage policy.pth", ["policy.pth", "not a readable PyTorch state dict"]),
    ("pickled module", ["policy.pth", "not a readable PyTorch state dict"]),
    ("cnn", ["CNN", "MlpPolicy"]),
    ("lstm", ["recurrent"]),
    ("sac data", ["SAC/TD3", "not supported"]),
    ("sac weights", ["SAC/TD3", "not supported"]),
    ("gsde", ["gSDE"]),
    ("not a zip", ["not a zip"]),
])
def test_unsupported_or_damaged_zips_are_refused(sb3, tmp_path, capsys, case, words):
    path = crafted(sb3, tmp_path, case)
    with pytest.raises(ForeignFileError) as excinfo:
        load_foreign(path, "Pendulum-v1")
    one_line_error(excinfo, str(path), *words)
    code, _, err = run(["evaluate", path, "--env", "Pendulum-v1"], capsys)
    assert code == 2 and err.count("\n") == 1 and words[0] in err


class _Payload:
    """Unpickling this makes the folder ``marker``: proof that a pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_pickled_fields_are_never_unpickled(sb3, tmp_path, monkeypatch):
    model, path, env_id = sb3["a2c_relu"]
    marker = tmp_path / "unpickled"
    payload = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    data = zip_data(path)
    assert ":serialized:" in data["policy_kwargs"]  # SB3 pickled it (it holds a class)
    for key in ("policy_kwargs", "observation_space", "action_space", "policy_class"):
        data[key][":serialized:"] = payload
    bomb = rezip(path, tmp_path / "bomb.zip", replace={"data": json.dumps(data)})

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    for module, name in ((pickle, "loads"), (pickle, "load"), (cloudpickle, "loads"),
                         (cloudpickle, "load"), (base64, "b64decode")):
        monkeypatch.setattr(module, name, refuse)
    ckpt = load_foreign(bomb, env_id)
    monkeypatch.undo()
    assert not marker.exists()
    assert ckpt.meta["activation"] == "relu"  # read from the readable text beside the pickle
    obs = observations(env_id, n=16)
    np.testing.assert_allclose(policy_from_checkpoint(ckpt).act(obs),
                               model.predict(obs, deterministic=True)[0], rtol=1e-6, atol=1e-6)
    pickle.loads(base64.b64decode(payload))
    assert marker.exists()  # the payload was real


def test_the_activation_must_agree_with_the_zip(sb3):
    _, path, env_id = sb3["a2c_relu"]
    assert load_foreign(path, env_id, activation="relu").meta["activation"] == "relu"
    with pytest.raises(ForeignFileError) as excinfo:
        load_foreign(path, env_id, activation="tanh")
    one_line_error(excinfo, "relu", "tanh")
    _, ppo, _ = sb3["ppo_box"]  # names no activation: the caller's wins over SB3's default
    assert load_foreign(ppo, env_id, activation="relu").meta["activation"] == "relu"


def test_vecnormalize_statistics_come_from_npz_never_from_the_pickle(sb3, tmp_path, capsys):
    model, path, env_id = sb3["ppo_box"]
    folder = tmp_path / "run"
    folder.mkdir()
    copy = rezip(path, folder / "ppo.zip")
    (folder / "vecnormalize.pkl").write_bytes(b"a pickle rlcomp must not read")
    with pytest.raises(ForeignFileError) as excinfo:
        load_foreign(copy, env_id)
    one_line_error(excinfo, "vecnormalize.pkl", "--obs-norm", "mean", "var")
    with pytest.raises(ForeignFileError) as excinfo:
        load_foreign(folder / "vecnormalize.pkl", env_id)
    one_line_error(excinfo, "pickle", "--obs-norm")
    mean, var = np.array([0.5, -0.5, 1.0]), np.array([0.25, 4.0, 9.0])
    np.savez(folder / "stats.npz", mean=mean, var=var, clip_obs=5.0)
    policy = policy_from_checkpoint(load_foreign(copy, env_id, obs_norm=folder / "stats.npz"))
    obs = observations(env_id, n=32)
    normalised = np.clip((obs - mean) / np.sqrt(var + 1e-8), -5, 5).astype(np.float32)
    np.testing.assert_allclose(policy.act(obs), model.predict(normalised, deterministic=True)[0],
                               rtol=1e-6, atol=1e-6)
    out = tmp_path / "q.rlc.safetensors"
    code, _, err = run(["compress", copy, "--env", env_id, "--obs-norm", folder / "stats.npz",
                        "--spec", "quant=8", "--out", out], capsys)
    assert code == 0, err
    assert load_compressed(out).policy.obs_norm.clip == 5.0
    (folder / "bad.json").write_text(json.dumps({"mean": [0.0], "var": [1.0]}))
    with pytest.raises(ForeignFileError) as excinfo:
        load_foreign(copy, env_id, obs_norm=folder / "bad.json")
    one_line_error(excinfo, "3 numbers")


# --- our own files --------------------------------------------------------------------------------

def test_our_files_are_not_foreign(tmp_path, capsys):
    assert not is_foreign(OURS) and not is_foreign(OURS + ".safetensors")
    assert not is_foreign(OURS + ".json")
    out = tmp_path / "d.rlc.safetensors"
    assert run(["compress", OURS, "--spec", "dense", "--out", out], capsys)[0] == 0
    assert not is_foreign(out)


@pytest.mark.parametrize(("command", "extra", "words"), [
    ("evaluate", ["--activation", "tanh"], ["--activation tanh", "relu"]),
    ("compress", ["--activation", "tanh"], ["--activation tanh", "relu"]),
    ("evaluate", ["--obs-norm", "stats.npz"], ["--obs-norm is for foreign files"]),
    ("compress", ["--env", "HalfCheetah-v5"], ["not HalfCheetah-v5"]),
])
def test_foreign_options_that_contradict_our_checkpoint_are_refused(tmp_path, capsys, command,
                                                                    extra, words):
    argv = [command, OURS, *extra]
    if command == "compress":
        argv += ["--spec", "dense", "--out", tmp_path / "c.rlc.safetensors"]
    code, _, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1
    assert all(word in err for word in words), err
    code, _, err = run([command, OURS, "--activation", "relu", *argv[2 + len(extra):]]
                       + (["--episodes", "1"] if command == "evaluate" else []), capsys)
    assert code == 0, err


# --- plain state dicts ----------------------------------------------------------------------------

def seeded_mlp(sizes, activation, scale=1.0):
    torch.manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    net = nn.Sequential(*layers)
    with torch.no_grad():
        net[-1].weight.mul_(scale)
    return net


@pytest.mark.parametrize(("fmt", "activation", "env_id", "sizes"), [
    ("pt", "tanh", "Pendulum-v1", [3, 16, 16, 1]),
    ("pt", "relu", "CartPole-v1", [4, 16, 2]),
    ("safetensors", "tanh", "CartPole-v1", [4, 8, 8, 8, 8, 8, 2]),  # layer 10 after layer 2
    ("safetensors", "relu", "Pendulum-v1", [3, 16, 1]),
])
def test_a_state_dict_acts_as_its_network(tmp_path, capsys, fmt, activation, env_id, sizes):
    cls = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    net = seeded_mlp(sizes, cls, scale=20.0)  # large means: some actions get clipped
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / f"net.{fmt}"
    if fmt == "pt":
        torch.save(state, path)
    else:
        save_file(state, path)
    assert is_foreign(path)
    ckpt = load_foreign(path, env_id, activation)
    assert ckpt.meta["architecture"]["net"] == sizes and ckpt.algo == "state-dict"
    policy = policy_from_checkpoint(ckpt)
    obs = observations(env_id, n=200)
    with torch.no_grad():
        out = net(torch.from_numpy(obs)).numpy()
    if env_id == "CartPole-v1":
        np.testing.assert_array_equal(policy.act(obs), out.argmax(-1))
    else:
        assert (np.abs(out) > 2).any()
        np.testing.assert_allclose(policy.act(obs), np.clip(out, -2, 2), rtol=1e-6, atol=1e-6)
    rlc = tmp_path / "c.rlc.safetensors"
    code, _, err = run(["compress", path, "--env", env_id, "--activation", activation,
                        "--spec", "lowrank=0.5+quant=8", "--out", rlc], capsys)
    assert code == 0, err
    code, out_json, err = run(["evaluate", path, "--env", env_id, "--activation", activation,
                               "--episodes", "1", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out_json)["algo"] == "state-dict"


def test_bad_state_dicts_are_refused(tmp_path, capsys):
    net = seeded_mlp([4, 16, 2], nn.ReLU)
    good = tmp_path / "good.pt"
    torch.save(net.state_dict(), good)
    with pytest.raises(ForeignFileError) as excinfo:
        load_foreign(good, "CartPole-v1")
    one_line_error(excinfo, "--activation")
    code, _, err = run(["evaluate", good, "--env", "CartPole-v1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--activation" in err
    cases = {
        "unchained.pt": ({"0.weight": torch.zeros(16, 4), "0.bias": torch.zeros(16),
                          "2.weight": torch.zeros(2, 8), "2.bias": torch.zeros(2)},
                         ["takes 8 inputs", "gives 16"]),
        "wrongenv.pt": (net.state_dict(), ["does not fit LunarLander-v3"]),
        "batchnorm.pt": ({**net.state_dict(), "1.running_mean": torch.zeros(16)},
                         ["1.running_mean", "not a Linear layer"]),
        "nested.pt": ({"model": net.state_dict()}, ["'model' is not a tensor"]),
        "conv.pt": ({"0.weight": torch.zeros(8, 3, 3, 3)}, ["not a Linear layer"]),
        "module.pt": (net, ["not a readable PyTorch state dict"]),
    }
    for name, (obj, words) in cases.items():
        torch.save(obj, tmp_path / name)
        env_id = "LunarLander-v3" if name == "wrongenv.pt" else "CartPole-v1"
        with pytest.raises(ForeignFileError) as excinfo:
            load_foreign(tmp_path / name, env_id, "relu")
        one_line_error(excinfo, name, *words)
