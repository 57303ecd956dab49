"""``rlcomp compress`` and ``rlcomp evaluate`` on compressed files."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.cli import main
from rlcomp.compress.storage import load_compressed

LUNAR = "checkpoints/LunarLander-v3__ddqn__0"
CHEETAH = "checkpoints/HalfCheetah-v5__pg__0"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("spec", "canonical"), [
    ("quant=8", "quant=8"), ("prune=0.90", "prune=0.9"), ("lowrank=0.5", "lowrank=0.5"),
    ("lowrank=0.5 + prune=0.5", "lowrank=0.5+prune=0.5"), ("dense", "dense"),
])
def test_compress_writes_a_file_and_reports_its_size(tmp_path, capsys, spec, canonical):
    out = tmp_path / "m.rlc.safetensors"
    code, stdout, err = run(["compress", LUNAR, "--spec", spec, "--out", out, "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["spec"] == canonical
    assert summary["bytes"] == out.stat().st_size
    for key in ("params", "nonzero_weights", "weights", "theoretical_bytes"):
        assert isinstance(summary[key], int) and summary[key] > 0
    assert summary["nonzero_weights"] <= summary["weights"] <= summary["params"]
    assert summary["theoretical_bytes"] <= summary["bytes"] <= 1.05 * summary["theoretical_bytes"]
    assert load_compressed(out).spec == canonical


def test_compress_figures_for_lunarlander(tmp_path, capsys):
    figures = {}
    for spec in ("dense", "quant=8", "prune=0.9"):
        out = tmp_path / f"{spec}.rlc.safetensors"
        code, stdout, _ = run(["compress", LUNAR, "--spec", spec, "--out", out, "--json"], capsys)
        assert code == 0
        figures[spec] = json.loads(stdout)
    dense, int8, sparse = figures["dense"], figures["quant=8"], figures["prune=0.9"]
    assert dense["params"] == int8["params"] == 69_124 and dense["weights"] == 68_608
    assert int8["theoretical_bytes"] == 69_124 and int8["bytes"] <= 1.05 * 69_124
    assert sparse["nonzero_weights"] == 68_608 - round(0.9 * 68_608)
    assert sparse["bytes"] <= 1.10 * (sparse["nonzero_weights"] * 4 + 68_608 / 8)


def test_onnx_export_matches_the_compressed_policy(tmp_path, capsys):
    out, onnx_path = tmp_path / "c.rlc.safetensors", tmp_path / "c.onnx"
    code, stdout, err = run(["compress", CHEETAH, "--spec", "quant=8", "--out", out,
                             "--onnx", onnx_path, "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["onnx_bytes"] == onnx_path.stat().st_size
    policy = load_compressed(out).policy
    obs = np.random.default_rng(0).normal(size=(16, 17)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = {o.name: v for o, v in zip(session.get_outputs(),
                                         session.run(None, {session.get_inputs()[0].name: obs}),
                                         strict=True)}
    np.testing.assert_allclose(outputs["action"], policy.act(obs), rtol=1e-4, atol=1e-5)


def test_evaluate_accepts_a_compressed_file(tmp_path, capsys):
    out = tmp_path / "d.rlc.safetensors"
    assert run(["compress", LUNAR, "--spec", "dense", "--out", out], capsys)[0] == 0
    code, stdout, err = run(["evaluate", out, "--episodes", "2", "--json"], capsys)
    assert code == 0, err
    from_file = json.loads(stdout)
    code, stdout, _ = run(["evaluate", LUNAR, "--episodes", "2", "--json"], capsys)
    from_checkpoint = json.loads(stdout)
    assert from_file["spec"] == "dense" and from_checkpoint["spec"] == "dense"
    assert from_file["returns"] == from_checkpoint["returns"]  # dense file = the checkpoint


def test_evaluate_refuses_a_compressed_file_of_another_env(tmp_path, capsys):
    out = tmp_path / "q.rlc.safetensors"
    assert run(["compress", LUNAR, "--spec", "quant=8", "--out", out], capsys)[0] == 0
    code, _, err = run(["evaluate", out, "--env", "HalfCheetah-v5", "--episodes", "1"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not HalfCheetah-v5" in err


@pytest.mark.parametrize(("spec", "needle"), [
    ("prune=1.5", "prune amount must be in [0, 1), got 1.5"),
    ("lowrank=1", "lowrank reduction must be in [0, 1), got 1"),
    ("quant=3", "quant bits must be 8, 4 or 2, got 3"),
    ("prune=abc", "prune amount must be a number, got 'abc'"),
    ("shrink=0.5", "unknown compression method 'shrink'"),
    ("quant=8+prune=0.5", "prune first"),
])
def test_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, spec, needle):
    out, onnx_path = tmp_path / "x.rlc.safetensors", tmp_path / "x.onnx"
    code, stdout, err = run(["compress", LUNAR, "--spec", spec, "--out", out, "--onnx", onnx_path],
                            capsys)
    assert code == 2 and stdout == ""
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert needle in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("problem", ["missing", "out-is-dir", "same-file"])
def test_bad_paths_exit_2(tmp_path, capsys, problem):
    source, out, onnx_path = LUNAR, tmp_path / "x.rlc.safetensors", None
    if problem == "missing":
        source = tmp_path / "nothing"
    elif problem == "out-is-dir":
        out = tmp_path
    else:
        onnx_path = out
    argv = ["compress", source, "--spec", "quant=8", "--out", out]
    if onnx_path is not None:
        argv += ["--onnx", onnx_path]
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.rlc.safetensors").exists()


def test_compress_never_changes_the_checkpoint(tmp_path, capsys):
    before = load_checkpoint(LUNAR).digest
    assert run(["compress", LUNAR, "--spec", "prune=0.5", "--out", tmp_path / "p"], capsys)[0] == 0
    assert load_checkpoint(LUNAR).digest == before
    dense = policy_from_checkpoint(load_checkpoint(LUNAR)).net
    assert int((dense[0].weight == 0).sum()) == 0
