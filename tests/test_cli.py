"""The ``rlcomp`` command: mistakes end with one line on stderr and exit code 2; runs that work."""

import contextlib
import hashlib
import io
import json
import pickle
import subprocess
import sys

import pytest
import torch

from rlcomp.checkpoint import FORMAT
from rlcomp.cli import main
from rlcomp.stats import iqm

TRAIN_TINY = ["train", "--env", "LunarLander-v3", "--algo", "ddqn", "--seed", "0",
              "--steps", "600", "--learning-starts", "100", "--eval-interval", "300",
              "--eval-episodes", "2", "--final-eval-episodes", "3", "--hidden", "16,16"]
CKPT_NAME = "LunarLander-v3__ddqn__0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run the tiny ``rlcomp train`` once; return the output directory and its JSON summary."""
    out = tmp_path_factory.mktemp("cli")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([*TRAIN_TINY, "--out", str(out), "--json", "--quiet"])
    assert code == 0, stderr.getvalue()
    return out, json.loads(stdout.getvalue())


@pytest.fixture
def pickle_checkpoint(tmp_path):
    """A pickle file posing as a checkpoint, with a plausible JSON beside it."""
    blob = pickle.dumps({"net.0.weight": torch.zeros(4, 8)})
    (tmp_path / "evil.safetensors").write_bytes(blob)
    meta = {"format": FORMAT, "env_id": "LunarLander-v3", "algo": "ddqn",
            "architecture": {"net": [8, 4]}, "digest": hashlib.sha256(blob).hexdigest()}
    (tmp_path / "evil.json").write_text(json.dumps(meta))
    return tmp_path / "evil.safetensors"


def run_main(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_usage_error(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]


TRAIN_BASE = ["train", "--env", "LunarLander-v3", "--algo", "ddqn", "--seed", "0", "--quiet"]

TRAIN_MISTAKES = {
    "unknown env": (["train", "--env", "NoSuchLander-v9", "--algo", "ddqn", "--seed", "0"],
                    "NoSuchLander-v9"),
    "unknown algo": (["train", "--env", "LunarLander-v3", "--algo", "sac", "--seed", "0"],
                     "sac"),
    "clip with ddqn": ([*TRAIN_BASE, "--clip", "0.1"], "--clip"),
    "negative lr": ([*TRAIN_BASE, "--lr", "-1"], "lr"),
    "zero steps": ([*TRAIN_BASE, "--steps", "0"], "total_steps"),
    "bad hidden": ([*TRAIN_BASE, "--hidden", "a,b"], "--hidden"),
    "negative seed": ([*TRAIN_BASE, "--seed", "-1"], "seed"),
    "unknown option": ([*TRAIN_BASE, "--bogus", "1"], "--bogus"),
    "missing env": (["train", "--algo", "ddqn", "--seed", "0"], "--env"),
    "no command": ([], "rlcomp"),
}


@pytest.mark.parametrize("case", list(TRAIN_MISTAKES))
def test_train_mistakes_exit_2_with_one_line(case, capsys, tmp_path):
    argv, needle = TRAIN_MISTAKES[case]
    if argv:
        argv = [*argv, "--out", tmp_path]
    code, out, err = run_main(argv, capsys)
    assert_usage_error(code, err, needle)
    assert out == ""
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_evaluate_negative_episodes(trained, capsys):
    out_dir, _ = trained
    code, _, err = run_main(["evaluate", out_dir / CKPT_NAME, "--episodes", "-3"], capsys)
    assert_usage_error(code, err, "--episodes", "-3")


def test_evaluate_negative_seed(trained, capsys):
    out_dir, _ = trained
    code, _, err = run_main(["evaluate", out_dir / CKPT_NAME, "--seed", "-1"], capsys)
    assert_usage_error(code, err, "--seed")


def test_evaluate_missing_file(tmp_path, capsys):
    code, _, err = run_main(["evaluate", tmp_path / "nothing.json"], capsys)
    assert_usage_error(code, err, "nothing")


def test_evaluate_pickle_file(pickle_checkpoint, capsys):
    code, out, err = run_main(["evaluate", pickle_checkpoint, "--episodes", "1"], capsys)
    assert_usage_error(code, err, "evil.safetensors")
    assert out == ""


def test_evaluate_wrong_env(trained, capsys):
    out_dir, _ = trained
    code, out, err = run_main(
        ["evaluate", out_dir / f"{CKPT_NAME}.json", "--env", "HalfCheetah-v5"], capsys)
    assert_usage_error(code, err, "HalfCheetah-v5", "LunarLander-v3")
    assert out == ""


def test_evaluate_unknown_env(trained, capsys):
    out_dir, _ = trained
    code, _, err = run_main(["evaluate", out_dir / CKPT_NAME, "--env", "Nowhere-v1"], capsys)
    assert_usage_error(code, err, "Nowhere-v1")


def run_subprocess(argv, cwd):
    return subprocess.run([sys.executable, "-m", "rlcomp.cli", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def test_subprocess_unknown_env(tmp_path):
    proc = run_subprocess(["train", "--env", "NoSuchLander-v9", "--algo", "ddqn", "--seed", "0",
                           "--out", tmp_path / "out"], tmp_path)
    assert_usage_error(proc.returncode, proc.stderr, "NoSuchLander-v9")
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists()


def test_subprocess_pickle_file(pickle_checkpoint, tmp_path):
    proc = run_subprocess(["evaluate", pickle_checkpoint, "--episodes", "1"], tmp_path)
    assert_usage_error(proc.returncode, proc.stderr, "evil.safetensors")
    assert proc.stdout == ""


def squeeze(text):
    """Text without whitespace: argparse wraps help lines at spaces and after hyphens."""
    return "".join(text.split())


def test_train_help_shows_field_docstrings(capsys):
    with pytest.raises(SystemExit) as exc_info:
        main(["train", "--help"])
    assert exc_info.value.code == 0
    text = squeeze(capsys.readouterr().out)
    # DDQNConfig.target_update_interval's docstring, and its default.
    assert squeeze("--target-update-interval X [ddqn] Environment steps between copies of the "
                   "online network into the target network. (default 1000)") in text
    # PGConfig.clip's docstring, with the algorithm that owns it.
    assert squeeze("--clip X [pg] PPO clip range; none for the vanilla policy-gradient loss. "
                   "(default 0.1)") in text
    # A field both algorithms have lists both docstrings.
    assert squeeze("[ddqn] Adam learning rate. (default 0.00063) "
                   "[pg] Adam learning rate of policy and value network.") in text


def test_train_json_summary(trained):
    out_dir, summary = trained
    assert summary["checkpoint"] == str(out_dir / CKPT_NAME)
    assert (out_dir / f"{CKPT_NAME}.safetensors").is_file()
    assert summary["train_steps"] == 600
    for key in ("mean_return", "std_return", "selected_step", "wall_seconds", "cpu_seconds"):
        assert key in summary
    meta = json.loads((out_dir / f"{CKPT_NAME}.json").read_text())
    assert meta["command"] == ["rlcomp", *TRAIN_TINY, "--out", str(out_dir), "--json", "--quiet"]
    assert meta["final_eval"]["mean_return"] == summary["mean_return"]


def test_evaluate_json(trained, capsys):
    out_dir, _ = trained
    code, out, err = run_main(
        ["evaluate", out_dir / f"{CKPT_NAME}.json", "--episodes", "3", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    for key in ("mean_return", "std_return", "returns", "lengths", "eval_seconds", "iqm_return"):
        assert key in result, key
    assert result["env_id"] == "LunarLander-v3" and result["algo"] == "ddqn"
    assert len(result["returns"]) == len(result["lengths"]) == 3
    returns = result["returns"]
    assert result["mean_return"] == pytest.approx(sum(returns) / 3)
    assert result["iqm_return"] == iqm(returns)
    # Seeds 0, 1, 2 are the training run's final evaluation: the same episodes again.
    meta = json.loads((out_dir / f"{CKPT_NAME}.json").read_text())
    assert returns == meta["final_eval"]["returns"]
    assert result["lengths"] == meta["final_eval"]["lengths"]


def reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def test_evaluate_one_episode_json_is_strict(trained, capsys):
    out_dir, _ = trained
    code, out, err = run_main(["evaluate", out_dir / CKPT_NAME, "--episodes", "1", "--json"],
                              capsys)
    assert code == 0, err
    result = json.loads(out, parse_constant=reject_constant)  # no NaN or Infinity
    assert len(result["returns"]) == 1
    assert result["mean_return"] == result["returns"][0]


def test_evaluate_text(trained, capsys):
    out_dir, _ = trained
    name = out_dir / CKPT_NAME
    code, out, _ = run_main(["evaluate", name, "--episodes", "3", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    code, out, _ = run_main(["evaluate", f"{name}.safetensors", "--episodes", "3"], capsys)
    assert code == 0
    assert f"mean {result['mean_return']:.2f}" in out
    assert f"std {result['std_return']:.2f}" in out
    assert f"IQM {result['iqm_return']:.2f}" in out


def test_evaluate_matching_env_alias(trained, capsys):
    out_dir, _ = trained
    code, out, err = run_main(["evaluate", out_dir / CKPT_NAME, "--episodes", "1",
                               "--env", "LunarLander-v2", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["env_id"] == "LunarLander-v3"
