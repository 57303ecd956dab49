"""A battery of bad inputs, through the command line and through the API.

Every case must end with exit code 2 and exactly one line on stderr (command line), or a one-line
``ValueError``/``TypeError`` (API); no traceback; and nothing written or changed: every file of the
case's folder and the committed checkpoint keep their digests, no file appears (a missing parent
folder of an output may be created), a store keeps its rows, and no pickled code runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlcomp.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from rlcomp.cli import main

ROOT = Path(__file__).resolve().parents[1]
LUNAR = ROOT / "checkpoints" / "LunarLander-v3__ddqn__0"
TRAIN = ["train", "--env", "LunarLander-v3", "--algo", "ddqn", "--seed", "0", "--steps", "600",
         "--learning-starts", "100", "--eval-interval", "300", "--eval-episodes", "2",
         "--final-eval-episodes", "2", "--hidden", "16,16", "--quiet"]
MARKER = "PWNED"


def _chattr_works() -> bool:
    """Whether ``chattr +i`` makes a file unwritable here, even for root."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "f"
        probe.write_text("x")
        try:
            if subprocess.run(["chattr", "+i", probe], capture_output=True).returncode:
                return False
            try:
                with open(probe, "a"):
                    return False
            except OSError:
                return True
        except OSError:
            return False
        finally:
            subprocess.run(["chattr", "-i", probe], capture_output=True)


CHATTR = _chattr_works()
needs_chattr = pytest.mark.skipif(not CHATTR, reason="chattr +i does not work on this filesystem")


class Trap:
    """Unpickling this creates the file ``path``: proof that pickled code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@dataclass
class Ctx:
    """A case's folder and tools; ``frozen`` files are made mutable again at teardown."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    frozen: list[Path] = field(default_factory=list)

    def freeze(self, path: Path) -> Path:
        subprocess.run(["chattr", "+i", path], check=True)
        self.frozen.append(path)
        return path

    def good(self, name: str = "good") -> Path:
        """A copy of the committed LunarLander checkpoint."""
        for src, dst in zip(checkpoint_paths(LUNAR), checkpoint_paths(self.tmp / name),
                            strict=True):
            dst.write_bytes(src.read_bytes())
        return self.tmp / name

    def resave(self, name: str, meta_edit: Callable[[dict], None] | None = None,
               tensor_edit: Callable[[dict], None] | None = None) -> Path:
        """The LunarLander checkpoint saved again, consistently (header, JSON, digest), edited."""
        tensors = load_file(checkpoint_paths(LUNAR)[0])
        meta = json.loads(checkpoint_paths(LUNAR)[1].read_text())
        meta.pop("format")
        meta.pop("digest")
        if meta_edit:
            meta_edit(meta)
        if tensor_edit:
            tensor_edit(tensors)
        return save_checkpoint(self.tmp / name, tensors, meta)

    def edit_json(self, name: str, edit: Callable[[dict], None]) -> Path:
        """A copy whose JSON is edited (its digest still matches the tensor file)."""
        stem = self.good(name)
        path = checkpoint_paths(stem)[1]
        meta = json.loads(path.read_text())
        edit(meta)
        path.write_text(json.dumps(meta))
        return stem

    def text(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def sweep(self, checkpoint: Path | str = LUNAR, extra: str = "",
              specs: str = "[dense, prune=0.5, quant=8]", name: str = "s.yaml") -> Path:
        return self.text(name, f"checkpoints: [{checkpoint}]\nspecs: {specs}\nepisodes: 2\n"
                               f"eval_seeds: [0]\nprobes: {{latency: false}}\n{extra}")

    def store(self, name: str = "r.sqlite", results: int = 40) -> Path:
        """A store with ``results`` results of 20 metrics each (several pages)."""
        from rlcomp.experiments.store import ResultStore

        path = self.tmp / name
        with ResultStore(path) as store:
            for i in range(results):
                store.put(f"d{i}", "prune=0.5", None, 0, {"episodes": 2}, checkpoint="c",
                          env="LunarLander-v3", algo="ddqn", train_seed=0,
                          metrics={f"m{j}": i + j / 10 for j in range(20)},
                          extra={"returns": [float(i)] * 20})
        return path

    def damaged_store(self) -> Path:
        path = self.store("damaged.sqlite", results=80)
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(4096))
        return path

    def versioned_store(self, version: int) -> Path:
        path = self.store("future.sqlite", results=3)
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version={version}")
        conn.close()
        return path

    def evil(self, name: str, kind: str = "pickle") -> Path:
        """A malicious pickle (``pickle``) or ``torch.save`` zip whose loading creates MARKER."""
        payload = {"net.0.weight": torch.zeros(4, 8), "trap": Trap(self.tmp / MARKER)}
        if kind == "pickle":
            blob = pickle.dumps(payload)
        else:
            buffer = io.BytesIO()
            torch.save(payload, buffer)
            blob = buffer.getvalue()
        return self.text(name, blob)

    def evil_pair(self) -> Path:
        """A pickle posing as a checkpoint's tensor file, with a matching JSON beside it."""
        blob = self.evil("evilpair.safetensors").read_bytes()
        meta = json.loads(checkpoint_paths(LUNAR)[1].read_text())
        meta["digest"] = hashlib.sha256(blob).hexdigest()
        self.text("evilpair.json", json.dumps(meta))
        return self.tmp / "evilpair"

    def no_trainer(self) -> None:
        """Training would leave MARKER: proves a refusal came before any training."""
        from rlcomp.agents import train

        def trainer(*args, **kwargs):
            (self.tmp / MARKER).write_text("trained")
            raise AssertionError("training started")

        self.monkeypatch.setitem(train.TRAINERS, "ddqn", trainer)


@dataclass
class Run:
    """What a case does: a command line (``argv``) or an API call (``call``)."""

    argv: list | None = None
    call: Callable[[], object] | None = None
    absent: list[Path] = field(default_factory=list)
    """Paths that must not exist afterwards (outputs that must not be written)."""


def _compress(src, out, *more, spec="prune=0.5"):
    return Run(argv=["compress", src, "--spec", spec, "--out", out, *more], absent=[Path(out)])


def _api_load(fn_name: str, *args, **kwargs) -> Callable[[], object]:
    def call():
        if fn_name == "load_checkpoint":
            return load_checkpoint(*args, **kwargs)
        if fn_name == "load_checkpoint_or_compressed":
            from rlcomp.compress.storage import load_checkpoint_or_compressed

            return load_checkpoint_or_compressed(*args, **kwargs)
        if fn_name == "parse_spec":
            from rlcomp.compress import parse_spec

            return parse_spec(*args)
        if fn_name == "load_sweep":
            from rlcomp.experiments.sweep import load_sweep

            return load_sweep(*args)
        if fn_name == "ResultStore":
            from rlcomp.experiments.store import ResultStore

            ResultStore(*args, **kwargs).close()
            return None
        raise AssertionError(fn_name)

    return call


def _run_sweep(ctx: Ctx, **kwargs) -> Callable[[], object]:
    yaml = ctx.sweep()

    def call():
        from rlcomp.experiments.driver import run_sweep
        from rlcomp.experiments.store import ResultStore
        from rlcomp.experiments.sweep import load_sweep

        sweep = load_sweep(yaml)
        with ResultStore(ctx.tmp / "r.sqlite") as store:
            return run_sweep(sweep, store, **kwargs)

    return call


def _train_api(ctx: Ctx, out: Path) -> Callable[[], object]:
    def call():
        from rlcomp.agents.train import make_config, train_and_save

        config = make_config("ddqn", env_id="LunarLander-v3", seed=0, total_steps=600)
        return train_and_save("ddqn", config, out)

    return call


def _evaluate_api(episodes: int) -> Callable[[], object]:
    def call():
        from rlcomp.checkpoint import policy_from_checkpoint
        from rlcomp.rollout import evaluate_policy

        return evaluate_policy(policy_from_checkpoint(load_checkpoint(LUNAR)), "LunarLander-v3",
                               episodes, 0)

    return call


def _sweep_cli(ctx: Ctx, yaml: Path, *more) -> Run:
    return Run(argv=["sweep", yaml, "--store", ctx.tmp / "r.sqlite", "--quiet", *more])


def _store_cli(ctx: Ctx, store: Path) -> Run:
    return Run(argv=["sweep", ctx.sweep(), "--store", store, "--quiet"])


def _drop(key: str) -> Callable[[dict], None]:
    return lambda meta: meta.pop(key)


def _set(key: str, value) -> Callable[[dict], None]:
    return lambda meta: meta.__setitem__(key, value)


def _shape(name: str, shape: tuple[int, ...]) -> Callable[[dict], None]:
    return lambda tensors: tensors.__setitem__(name, torch.zeros(shape))


def _truncate(ctx: Ctx) -> Path:
    stem = ctx.good("cut")
    st = checkpoint_paths(stem)[0]
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    return stem


def _random_bytes(ctx: Ctx) -> Path:
    stem = ctx.good("noise")
    checkpoint_paths(stem)[0].write_bytes(os.urandom(5000))
    return stem


def _half(ctx: Ctx, index: int) -> Path:
    stem = ctx.good("half")
    checkpoint_paths(stem)[index].unlink()
    return stem


def _symlink(ctx: Ctx) -> Run:
    stem = ctx.good()
    link = ctx.tmp / "link.rlc.safetensors"
    link.symlink_to(checkpoint_paths(stem)[0])
    return _compress(stem, link)


def _file(ctx: Ctx, name: str = "file.txt") -> Path:
    return ctx.text(name, "a regular file\n")


def _frozen_dir(ctx: Ctx) -> Path:
    folder = ctx.tmp / "frozen"
    folder.mkdir()
    ctx.freeze(folder)
    return folder


def _frozen_out(ctx: Ctx) -> Run:
    out = ctx.freeze(ctx.text("old.rlc.safetensors", b"an older compressed file"))
    return Run(argv=["compress", LUNAR, "--spec", "quant=8", "--out", out])


SPECS_BAD = ["prune=1.5", "prune=-0.1", "lowrank=1", "quant=3", "shrink=0.5", "", "prune=abc",
             "prune=0.5e", "prune=nan", "prune=", "prune=0.5+", "prune=0.5,bits=4",
             "quant=8,scope=layer", "lowrank=0.3,structured=true", "quant=8+prune=0.5"]

CASES: dict[str, Callable[[Ctx], Run]] = {
    # spec grammar, command line and API
    **{f"cli-spec-{s or 'empty'}": (lambda ctx, s=s: _compress(LUNAR, ctx.tmp / "o.rlc", spec=s))
       for s in SPECS_BAD},
    **{f"api-spec-{s or 'empty'}": (lambda ctx, s=s: Run(call=_api_load("parse_spec", s)))
       for s in ("prune=1.5", "", "prune=abc", "quant=8,scope=layer", "dense+prune=0.5")},
    "api-spec-not-a-string": lambda ctx: Run(call=_api_load("parse_spec", 0.5)),
    # checkpoints
    "ckpt-no-json": lambda ctx: _compress(_half(ctx, 1), ctx.tmp / "o.rlc"),
    "ckpt-no-safetensors": lambda ctx: _compress(_half(ctx, 0), ctx.tmp / "o.rlc"),
    "ckpt-truncated": lambda ctx: _compress(_truncate(ctx), ctx.tmp / "o.rlc"),
    "ckpt-random-bytes": lambda ctx: Run(argv=["evaluate", _random_bytes(ctx), "--episodes", 1]),
    "ckpt-json-not-json": lambda ctx: _compress(
        ctx.edit_json("nj", lambda m: None) and ctx.text("nj.json", "{not json") and
        ctx.tmp / "nj", ctx.tmp / "o.rlc"),
    "ckpt-json-binary": lambda ctx: _compress(
        ctx.good("bj") and ctx.text("bj.json", b"\xff\xfe\x00") and ctx.tmp / "bj",
        ctx.tmp / "o.rlc"),
    "ckpt-no-architecture": lambda ctx: _compress(ctx.edit_json("na", _drop("architecture")),
                                                  ctx.tmp / "o.rlc"),
    "ckpt-seed-abc": lambda ctx: _compress(ctx.edit_json("sa", _set("seed", "abc")),
                                           ctx.tmp / "o.rlc"),
    "ckpt-relabelled-halfcheetah": lambda ctx: _compress(
        ctx.resave("hc", _set("env_id", "HalfCheetah-v5")), ctx.tmp / "o.rlc"),
    "ckpt-relabelled-cartpole-evaluate": lambda ctx: Run(argv=[
        "evaluate", ctx.resave("cp", _set("env_id", "CartPole-v1")), "--episodes", 1]),
    "ckpt-relabelled-unknown-env": lambda ctx: _compress(
        ctx.resave("unk", _set("env_id", "Nowhere-v0")), ctx.tmp / "o.rlc"),
    "ckpt-architecture-mismatch": lambda ctx: _compress(
        ctx.resave("am", _set("architecture", {"net": [8, 128, 128, 4]})), ctx.tmp / "o.rlc"),
    "ckpt-future-format": lambda ctx: _compress(
        ctx.edit_json("ff", _set("format", "rlcomp-checkpoint/2")), ctx.tmp / "o.rlc"),
    "ckpt-wrong-tensor-shape": lambda ctx: _compress(
        ctx.resave("ws", tensor_edit=_shape("net.0.weight", (256, 9))), ctx.tmp / "o.rlc"),
    "ckpt-extra-layer-tensor": lambda ctx: _compress(
        ctx.resave("xl", tensor_edit=_shape("net.6.weight", (4, 4))), ctx.tmp / "o.rlc"),
    "ckpt-directory": lambda ctx: _compress(
        (ctx.tmp / "dir.safetensors").mkdir() or ctx.tmp / "dir.safetensors", ctx.tmp / "o.rlc"),
    "api-ckpt-no-architecture": lambda ctx: Run(call=_api_load(
        "load_checkpoint", ctx.edit_json("na", _drop("architecture")))),
    "api-ckpt-relabelled-halfcheetah": lambda ctx: Run(call=_api_load(
        "load_checkpoint_or_compressed", ctx.resave("hc", _set("env_id", "HalfCheetah-v5")))),
    "api-ckpt-truncated": lambda ctx: Run(call=_api_load("load_checkpoint", _truncate(ctx))),
    "api-ckpt-wrong-env-asked": lambda ctx: Run(call=_api_load(
        "load_checkpoint", LUNAR, env_id="HalfCheetah-v5")),
    # malicious pickles: no code may run
    "pickle-as-safetensors-evaluate": lambda ctx: Run(argv=[
        "evaluate", ctx.evil("evil.safetensors"), "--episodes", 1]),
    "pickle-pair-compress": lambda ctx: _compress(ctx.evil_pair(), ctx.tmp / "o.rlc"),
    "pickle-as-pt-evaluate": lambda ctx: Run(argv=["evaluate", ctx.evil("evil.pt"),
                                                   "--episodes", 1]),
    "pickle-as-pth-compress": lambda ctx: _compress(ctx.evil("evil.pth", "torch"),
                                                    ctx.tmp / "o.rlc"),
    "pickle-in-zip-evaluate": lambda ctx: Run(argv=["evaluate", ctx.evil("evil.zip", "torch"),
                                                    "--episodes", 1]),
    **{f"api-pickle-{name}": (lambda ctx, name=name, kind=kind: Run(
        call=_api_load("load_checkpoint_or_compressed", ctx.evil(name, kind))))
       for name, kind in (("evil.safetensors", "torch"), ("evil.pt", "pickle"),
                          ("evil.pth", "torch"), ("evil.zip", "torch"))},
    "api-pickle-pair": lambda ctx: Run(call=_api_load("load_checkpoint", ctx.evil_pair())),
    # outputs
    "out-is-input-safetensors": lambda ctx: Run(argv=[
        "compress", ctx.good(), "--spec", "quant=8", "--out", ctx.tmp / "good.safetensors"]),
    "out-is-input-json": lambda ctx: Run(argv=[
        "compress", ctx.good(), "--spec", "quant=8", "--out", ctx.tmp / "good.json"]),
    "out-is-input-named-by-json": lambda ctx: Run(argv=[
        "compress", ctx.good().with_suffix(".json"), "--spec", "quant=8", "--out",
        ctx.tmp / "good.safetensors"]),
    "out-symlink-to-input": _symlink,
    "onnx-is-input": lambda ctx: _compress(ctx.good(), ctx.tmp / "o.rlc", "--onnx",
                                           ctx.tmp / "good.json"),
    "out-under-a-file": lambda ctx: _compress(LUNAR, _file(ctx) / "o.rlc"),
    "out-in-proc": lambda ctx: _compress(LUNAR, "/proc/rlcomp-x.rlc.safetensors"),
    "out-is-a-directory": lambda ctx: _compress(LUNAR, ctx.tmp),
    "onnx-under-a-file": lambda ctx: _compress(LUNAR, ctx.tmp / "o.rlc", "--onnx",
                                               _file(ctx) / "x.onnx"),
    "onnx-in-proc": lambda ctx: _compress(LUNAR, ctx.tmp / "o.rlc", "--onnx",
                                          "/proc/rlcomp-x.onnx"),
    "train-out-is-a-file": lambda ctx: ctx.no_trainer() or Run(argv=[
        *TRAIN, "--out", _file(ctx)]),
    "train-out-under-a-file": lambda ctx: ctx.no_trainer() or Run(argv=[
        *TRAIN, "--out", _file(ctx) / "sub"]),
    "train-out-in-proc": lambda ctx: ctx.no_trainer() or Run(argv=[
        *TRAIN, "--out", "/proc/rlcomp-checkpoints"]),
    "api-train-out-is-a-file": lambda ctx: ctx.no_trainer() or Run(call=_train_api(
        ctx, _file(ctx))),
    # episodes
    "episodes-0": lambda ctx: Run(argv=["evaluate", LUNAR, "--episodes", 0]),
    "episodes-negative": lambda ctx: Run(argv=["evaluate", LUNAR, "--episodes", -3]),
    "episodes-not-a-number": lambda ctx: Run(argv=["evaluate", LUNAR, "--episodes", "abc"]),
    "episodes-fraction": lambda ctx: Run(argv=["evaluate", LUNAR, "--episodes", "1.5"]),
    "api-episodes-0": lambda ctx: Run(call=_evaluate_api(0)),
    # sweep files
    "sweep-not-yaml": lambda ctx: _sweep_cli(ctx, ctx.text("s.yaml", "checkpoints: [a\nb: {")),
    "sweep-binary": lambda ctx: _sweep_cli(ctx, ctx.text("s.yaml", b"\xff\xfe\x00\x81")),
    "sweep-a-list": lambda ctx: _sweep_cli(ctx, ctx.text("s.yaml", "- dense\n- quant=8\n")),
    "sweep-unknown-key": lambda ctx: _sweep_cli(ctx, ctx.sweep(extra="colour: blue\n")),
    "sweep-empty-grid": lambda ctx: _sweep_cli(ctx, ctx.sweep(specs="{grid: {}}")),
    "sweep-empty-levels": lambda ctx: _sweep_cli(ctx, ctx.sweep(specs="{grid: {prune: []}}")),
    "sweep-empty-specs": lambda ctx: _sweep_cli(ctx, ctx.sweep(specs="[]")),
    "sweep-invalid-spec": lambda ctx: _sweep_cli(ctx, ctx.sweep(specs="[dense, prune=2]")),
    "sweep-missing-checkpoint": lambda ctx: _sweep_cli(ctx, ctx.sweep(ctx.tmp / "nothing")),
    "sweep-checkpoint-seed-abc": lambda ctx: _sweep_cli(ctx, ctx.sweep(
        ctx.edit_json("sa", _set("seed", "abc")))),
    "sweep-checkpoint-relabelled": lambda ctx: _sweep_cli(ctx, ctx.sweep(
        ctx.resave("hc", _set("env_id", "HalfCheetah-v5")))),
    "sweep-checkpoint-unknown-env": lambda ctx: _sweep_cli(ctx, ctx.sweep(
        ctx.resave("unk", _set("env_id", "Nowhere-v0")))),
    "sweep-file-missing": lambda ctx: _sweep_cli(ctx, ctx.tmp / "none.yaml"),
    "api-sweep-unknown-key": lambda ctx: Run(call=_api_load(
        "load_sweep", ctx.sweep(extra="colour: blue\n"))),
    "api-sweep-seed-abc": lambda ctx: Run(call=_api_load("load_sweep", ctx.sweep(
        ctx.edit_json("sa", _set("seed", "abc"))))),
    # workers and executors
    "workers-0": lambda ctx: _sweep_cli(ctx, ctx.sweep(), "--workers", 0),
    "workers-negative": lambda ctx: _sweep_cli(ctx, ctx.sweep(), "--workers", -2),
    "workers-not-a-number": lambda ctx: _sweep_cli(ctx, ctx.sweep(), "--workers", "two"),
    "executor-unknown": lambda ctx: _sweep_cli(ctx, ctx.sweep(), "--executor", "slurm"),
    "api-workers-0": lambda ctx: ctx.store() and Run(call=_run_sweep(ctx, workers=0)),
    "api-workers-negative": lambda ctx: ctx.store() and Run(call=_run_sweep(ctx, workers=-1)),
    "api-executor-unknown": lambda ctx: ctx.store() and Run(call=_run_sweep(
        ctx, executor="slurm")),
    # stores
    "store-not-sqlite": lambda ctx: _store_cli(ctx, ctx.text("r.sqlite", "not a database\n")),
    "store-damaged-inside": lambda ctx: _store_cli(ctx, ctx.damaged_store()),
    "store-future-schema": lambda ctx: _store_cli(ctx, ctx.versioned_store(99)),
    "store-under-a-file": lambda ctx: _store_cli(ctx, _file(ctx) / "r.sqlite"),
    "store-is-a-directory": lambda ctx: _store_cli(ctx, ctx.tmp),
    "store-in-proc": lambda ctx: _store_cli(ctx, Path("/proc/rlcomp-r.sqlite")),
    "api-store-not-sqlite": lambda ctx: Run(call=_api_load(
        "ResultStore", ctx.text("r.sqlite", "not a database\n"))),
    "api-store-damaged-inside": lambda ctx: Run(call=_api_load(
        "ResultStore", ctx.damaged_store())),
    "api-store-damaged-inside-readonly": lambda ctx: Run(call=_api_load(
        "ResultStore", ctx.damaged_store(), readonly=True)),
    "api-store-future-schema": lambda ctx: Run(call=_api_load(
        "ResultStore", ctx.versioned_store(99))),
    "api-store-missing-readonly": lambda ctx: Run(call=_api_load(
        "ResultStore", ctx.tmp / "none.sqlite", readonly=True)),
}

CHATTR_CASES: dict[str, Callable[[Ctx], Run]] = {
    "out-immutable-file": _frozen_out,
    "out-in-immutable-dir": lambda ctx: _compress(LUNAR, _frozen_dir(ctx) / "o.rlc"),
    "onnx-in-immutable-dir": lambda ctx: _compress(LUNAR, ctx.tmp / "o.rlc", "--onnx",
                                                   _frozen_dir(ctx) / "x.onnx"),
    "train-out-immutable-dir": lambda ctx: ctx.no_trainer() or Run(argv=[
        *TRAIN, "--out", _frozen_dir(ctx)]),
    "store-immutable": lambda ctx: _store_cli(ctx, ctx.freeze(ctx.store())),
    "api-store-immutable": lambda ctx: Run(call=_api_load("ResultStore", ctx.freeze(ctx.store()))),
}

ALL = [pytest.param(name, build, id=name) for name, build in CASES.items()] + [
    pytest.param(name, build, id=name, marks=needs_chattr) for name, build in CHATTR_CASES.items()]


def _digests(tmp: Path) -> dict[str, str]:
    """sha256 of every file in the case folder and of the committed checkpoint."""
    files = [p for p in tmp.rglob("*") if p.is_file() and not p.is_symlink()]
    files += list(checkpoint_paths(LUNAR))
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _results(path: Path) -> int | None:
    """The number of results in a valid store (read without leaving files), else None."""
    from rlcomp.experiments.schema import StoreError
    from rlcomp.experiments.store import ResultStore

    try:
        with ResultStore(path, readonly=True) as store:
            return len(store)
    except (StoreError, OSError):
        return None


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    context = Ctx(tmp_path, monkeypatch)
    yield context
    for path in context.frozen:
        subprocess.run(["chattr", "-i", path], check=False)


def test_battery_is_big_enough():
    assert len(ALL) >= 35
    assert sum(name.startswith("api-") for name in {**CASES, **CHATTR_CASES}) >= 20


@pytest.mark.parametrize(("name", "build"), ALL)
def test_bad_input_is_refused_with_one_line_and_changes_nothing(name, build, ctx, capsys):
    run = build(ctx)
    capsys.readouterr()
    before = _digests(ctx.tmp)
    stores = {p: _results(p) for p in ctx.tmp.glob("*.sqlite") if p.is_file()}
    absent = [Path(p) for p in run.absent if not os.path.lexists(p)]
    if run.argv is not None:
        code = main([str(a) for a in run.argv])
        out, err = capsys.readouterr()
        assert code == 2, err
        assert "Traceback" not in err
        assert len(err.strip("\n").splitlines()) == 1, err
        assert err.startswith("rlcomp"), err
    else:
        with pytest.raises((ValueError, TypeError)) as info:
            run.call()
        message = str(info.value)
        assert message and "\n" not in message, message
        assert "Traceback" not in message
    assert not (ctx.tmp / MARKER).exists(), "pickled code ran, or training started"
    for path in absent:
        assert not path.exists(), f"{path} was written"
    assert _digests(ctx.tmp) == before
    assert {p: _results(p) for p in stores} == stores


@pytest.mark.parametrize("argv", [
    ["compress", LUNAR, "--spec", "prune=1.5", "--out", "{tmp}/o.rlc"],
    ["compress", "{tmp}/good", "--spec", "quant=8", "--out", "{tmp}/good.safetensors"],
    ["evaluate", "{tmp}/evil.pt"],
    ["sweep", "{tmp}/s.yaml", "--store", "{tmp}/r.sqlite", "--workers", "0"],
], ids=["spec", "out-is-input", "pickle", "workers-0"])
def test_real_process_exits_2_with_one_line(argv, ctx):
    ctx.good()
    ctx.evil("evil.pt")
    ctx.sweep()
    before = _digests(ctx.tmp)
    args = [str(a).replace("{tmp}", str(ctx.tmp)) for a in argv]
    done = subprocess.run([sys.executable, "-m", "rlcomp.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip("\n").splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert _digests(ctx.tmp) == before
    assert not (ctx.tmp / MARKER).exists()


def test_readonly_open_leaves_no_files_beside_the_store(ctx):
    from rlcomp.experiments.store import ResultStore

    path = ctx.store()
    names = sorted(os.listdir(ctx.tmp))
    with ResultStore(path, readonly=True) as store:
        assert len(store) == 40
        store.load()
    assert sorted(os.listdir(ctx.tmp)) == names
    if CHATTR:
        ctx.freeze(path)
        with ResultStore(path, readonly=True) as store:
            assert len(store) == 40
        assert sorted(os.listdir(ctx.tmp)) == names


def test_compress_still_works_beside_the_refusals(ctx, capsys):
    """The checks refuse only what they should: a new folder for --out is created."""
    out = ctx.tmp / "new" / "deeper" / "o.rlc.safetensors"
    code = main(["compress", str(ctx.good()), "--spec", "quant=8", "--out", str(out),
                 "--onnx", str(ctx.tmp / "o.onnx")])
    assert code == 0, capsys.readouterr().err
    assert out.is_file() and (ctx.tmp / "o.onnx").is_file()
