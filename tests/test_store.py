"""The results store: idempotent keys, schema checks, the tidy frame, and surviving a kill."""

import hashlib
import math
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pandas as pd
import pytest

from rlcomp.compress.specs import LowRankSpec, PruneSpec, spec_columns
from rlcomp.experiments import (
    COLUMNS,
    SCHEMA_VERSION,
    ResultStore,
    StoreError,
    job_key,
)

PROBE = {"episodes": 3, "num_envs": 1, "isolation": False}
KEY = ("d1", "prune=0.5", None, 0, PROBE)
NAMES = {"checkpoint": "ll__ddqn__0", "env": "LunarLander-v3", "algo": "ddqn", "train_seed": 0}


def put(store, key=KEY, metrics=None, **kwargs):
    metrics = {"return_mean": 1.5} if metrics is None else metrics
    return store.put(*key, **{**NAMES, **kwargs}, metrics=metrics)


def integrity(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


def assert_one_line(exc_info, *parts):
    message = str(exc_info.value)
    assert "\n" not in message
    for part in parts:
        assert str(part) in message


def test_put_twice_is_a_no_op(tmp_path):
    path = tmp_path / "sub" / "r.sqlite"
    with ResultStore(path) as store:
        assert put(store, metrics={"return_mean": 1.5, "ram_pct": 2.0}, extra={"returns": [1, 2]})
        assert not put(store, metrics={"return_mean": 99.0}, extra={"returns": [3]},
                       checkpoint="other")
        assert len(store) == 1
        assert store.keys() == {job_key(*KEY)}
        frame = store.load()
        assert frame["value"].tolist() == [2.0, 1.5]
        assert frame["checkpoint"].unique().tolist() == ["ll__ddqn__0"]
        assert store.extra(job_key(*KEY)) == {"returns": [1, 2]}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (2,)


def test_job_key_is_sha256_of_canonical_json():
    document = (b'{"checkpoint_digest":"d1","eval_seed":0,"finetune":{},'
                b'"probe":{"episodes":3,"isolation":false,"num_envs":1},"spec":"prune=0.5"}')
    assert job_key(*KEY) == hashlib.sha256(document).hexdigest()


@pytest.mark.parametrize("index, other", [
    (0, "d2"),
    (1, "prune=0.6"),
    (1, "prune=0.5,scope=layer"),
    (1, "dense"),
    (2, {"steps": 100}),
    (3, 1),
    (4, {**PROBE, "episodes": 4}),
    (4, {**PROBE, "isolation": True}),
])
def test_keys_differ_when_any_field_differs(tmp_path, index, other):
    changed = list(KEY)
    changed[index] = other
    assert job_key(*changed) != job_key(*KEY)
    with ResultStore(tmp_path / "r.sqlite") as store:
        assert put(store)
        assert put(store, key=tuple(changed))
        assert store.keys() == {job_key(*KEY), job_key(*changed)}


@pytest.mark.parametrize("index, same", [
    (1, "prune=0.50"),
    (1, " prune=0.5,scope=global,structured=false "),
    (1, (PruneSpec(0.5),)),
    (1, PruneSpec(0.5)),
    (2, {}),
    (4, dict(reversed(PROBE.items()))),
])
def test_equal_fields_give_equal_keys(tmp_path, index, same):
    changed = list(KEY)
    changed[index] = same
    assert job_key(*changed) == job_key(*KEY)
    with ResultStore(tmp_path / "r.sqlite") as store:
        assert put(store)
        assert not put(store, key=tuple(changed))
        assert store.has(job_key(*changed))


def test_reopen_keeps_everything(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        put(store, extra={"returns": [1.0, -2.5], "commit": "abc"})
        before = store.load()
    assert integrity(path) == [("ok",)]
    with ResultStore(path) as store:
        assert len(store) == 1 and job_key(*KEY) in store
        assert store.extra(job_key(*KEY)) == {"returns": [1.0, -2.5], "commit": "abc"}
        pd.testing.assert_frame_equal(store.load(), before)
        assert put(store, key=("d2", *KEY[1:]))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert integrity(path) == [("ok",)]


def test_unknown_schema_version_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="schema version 99") as exc_info:
        ResultStore(path)
    assert_one_line(exc_info, path, f"reads version {SCHEMA_VERSION}", "newer")


def test_version_1_store_is_read_as_it_is_and_upgraded_for_writing(tmp_path):
    path = tmp_path / "v1.sqlite"
    with ResultStore(path) as store:
        put(store)
    with sqlite3.connect(path) as conn:  # what rlcomp with schema version 1 wrote
        conn.execute("DROP TABLE claims")
        conn.execute("PRAGMA user_version=1")
    conn.close()
    with ResultStore(path, readonly=True) as store:
        assert len(store) == 1 and store.claimed() == set()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    conn.close()
    with ResultStore(path) as store:
        assert len(store) == 1 and store.claim("next")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()
    assert integrity(path) == [("ok",)]


def test_non_sqlite_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError, match="not an SQLite database") as exc_info:
        ResultStore(path)
    assert_one_line(exc_info, path)
    assert path.read_bytes() == b"these are my notes, not a database\n" * 50
    assert sorted(os.listdir(tmp_path)) == ["notes.sqlite"]


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not an rlcomp results store") as exc_info:
        ResultStore(path)
    assert_one_line(exc_info, path)


def test_readonly(tmp_path):
    path = tmp_path / "r.sqlite"
    with pytest.raises(StoreError, match="no results store"):
        ResultStore(path, readonly=True)
    assert not path.exists()
    with ResultStore(path) as store:
        put(store)
        with ResultStore(path, readonly=True) as reader:
            assert reader.keys() == {job_key(*KEY)}
            put(store, key=("d2", *KEY[1:]))
            assert len(reader) == 2
            with pytest.raises(StoreError, match="read-only"):
                put(reader, key=("d3", *KEY[1:]))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"metrics": {}}, ValueError, "non-empty mapping"),
    ({"metrics": {"ok": True}}, TypeError, "metric 'ok' must be a number"),
    ({"metrics": {"ok": "1"}}, TypeError, "metric 'ok' must be a number"),
    ({"extra": {"returns": [math.nan]}}, ValueError, "extra must be plain JSON"),
    ({"extra": [1]}, TypeError, "extra must be a mapping"),
    ({"train_seed": 1.0}, TypeError, "train_seed must be an integer"),
    ({"env": ""}, ValueError, "env must be a non-empty string"),
    ({"key": ("d1", "prune=1.5", None, 0, PROBE)}, ValueError, r"in \[0, 1\), got 1.5"),
    ({"key": ("d1", "dense", {"lr": math.inf}, 0, PROBE)}, ValueError, "finetune settings"),
    ({"key": ("d1", "dense", "naive", 0, PROBE)}, TypeError, "finetune settings must be a map"),
    ({"key": ("d1", "dense", None, True, PROBE)}, TypeError, "eval_seed must be an integer"),
    ({"key": ("d1", "dense", None, 0, None)}, TypeError, "probe settings must be a mapping"),
])
def test_bad_arguments_write_nothing(tmp_path, kwargs, error, match):
    with ResultStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(error, match=match):
            put(store, **kwargs)
        assert len(store) == 0


def test_numpy_values_are_accepted(tmp_path):
    np = pytest.importorskip("numpy")
    with ResultStore(tmp_path / "r.sqlite") as store:
        assert store.put("d1", "dense", {"steps": np.int64(5)}, np.int64(2), PROBE, **NAMES,
                         metrics={"m": np.float32(0.5)}, extra={"returns": np.array([1.0, 2.0])})
        assert store.has(job_key("d1", "dense", {"steps": 5}, 2, PROBE))
        assert store.load()["value"].tolist() == [0.5]
        assert store.extra(job_key("d1", "dense", {"steps": 5}, 2, PROBE)) == {
            "returns": [1.0, 2.0]}


def test_one_store_shared_by_threads(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        threads = [threading.Thread(target=put, args=(store, (f"d{i}", *KEY[1:])))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(store) == 4


NAN = math.nan


def cols(method, level, prune, lowrank, quant, distill=NAN):
    """spec_columns' expected answer, in its column order."""
    return {"method": method, "level": level, "prune": prune, "lowrank": lowrank, "quant": quant,
            "distill": distill}


@pytest.mark.parametrize("spec, expected", [
    ("dense", cols("dense", 0.0, 0.0, 0.0, NAN)),
    ("prune=0.5", cols("prune", 0.5, 0.5, 0.0, NAN)),
    ("prune=0.5,scope=layer", cols("prune[layer]", 0.5, 0.5, 0.0, NAN)),
    ("prune=0.25,scope=layer,structured=true",
     cols("prune[layer,structured]", 0.25, 0.25, 0.0, NAN)),
    ("lowrank=0.3,keep_io=true", cols("lowrank[keep_io]", 0.3, 0.0, 0.3, NAN)),
    ("lowrank=0.3+prune=0.5", cols("lowrank+prune", NAN, 0.5, 0.3, NAN)),
    ("quant=8", cols("quant", 8.0, 0.0, 0.0, 8.0)),
    ("quant=8,mode=qat", cols("quant[qat]", 8.0, 0.0, 0.0, 8.0)),
    ("prune=0.2+prune=0.3", cols("prune+prune", NAN, NAN, 0.0, NAN)),
    ("distill=16x16+quant=4,mixed=true", cols("distill+quant[mixed]", NAN, 0.0, 0.0, 4.0, 16.0)),
    ("distill=8,tau=0.1", cols("distill[tau=0.1]", 8.0, 0.0, 0.0, NAN, 8.0)),
    ((LowRankSpec(0.3), PruneSpec(0.5)), cols("lowrank+prune", NAN, 0.5, 0.3, NAN)),
])
def test_spec_columns(spec, expected):
    columns = spec_columns(spec)
    assert list(columns) == list(expected)
    for name, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(columns[name]), name
        else:
            assert columns[name] == value, name


def hand_made_store(path):
    store = ResultStore(path)
    store.put("d1", "dense", None, 0, PROBE, checkpoint="ll_0", env="LunarLander-v3",
              algo="ddqn", train_seed=0, metrics={"return_mean": 10.0, "ram_pct": 1.25})
    store.put("d1", "lowrank=0.3+prune=0.5", {"steps": 1000}, 0, PROBE, checkpoint="ll_0",
              env="LunarLander-v3", algo="ddqn", train_seed=0, metrics={"return_mean": -5.5})
    store.put("d2", "quant=8,mode=qat", {"steps": 50}, 1, PROBE, checkpoint="hc_1",
              env="HalfCheetah-v5", algo="pg", train_seed=1,
              metrics={"return_mean": 300.0, "x": NAN})
    return store


def test_load_is_the_tidy_frame(tmp_path):
    probe = '{"episodes":3,"isolation":false,"num_envs":1}'
    keys = [job_key("d2", "quant=8,mode=qat", {"steps": 50}, 1, PROBE),
            job_key("d1", "dense", None, 0, PROBE),
            job_key("d1", "lowrank=0.3+prune=0.5", {"steps": 1000}, 0, PROBE)]
    expected = pd.DataFrame({
        "checkpoint": ["hc_1", "hc_1", "ll_0", "ll_0", "ll_0"],
        "env": ["HalfCheetah-v5"] * 2 + ["LunarLander-v3"] * 3,
        "algo": ["pg", "pg", "ddqn", "ddqn", "ddqn"],
        "train_seed": [1, 1, 0, 0, 0],
        "method": ["quant[qat]", "quant[qat]", "dense", "dense", "lowrank+prune"],
        "level": [8.0, 8.0, 0.0, 0.0, NAN],
        "finetuned": [True, True, False, False, True],
        "metric": ["return_mean", "x", "ram_pct", "return_mean", "return_mean"],
        "value": [300.0, NAN, 1.25, 10.0, -5.5],
        "spec": ["quant=8,mode=qat"] * 2 + ["dense"] * 2 + ["lowrank=0.3+prune=0.5"],
        "eval_seed": [1, 1, 0, 0, 0],
        "finetune": ['{"steps":50}'] * 2 + ["{}"] * 2 + ['{"steps":1000}'],
        "probe": [probe] * 5,
        "prune": [0.0, 0.0, 0.0, 0.0, 0.5],
        "lowrank": [0.0, 0.0, 0.0, 0.0, 0.3],
        "quant": [8.0, 8.0, NAN, NAN, NAN],
        "distill": [NAN] * 5,
        "key": [keys[0], keys[0], keys[1], keys[1], keys[2]],
    })
    with hand_made_store(tmp_path / "r.sqlite") as store:
        frame = store.load()
        assert tuple(frame.columns) == COLUMNS
        pd.testing.assert_frame_equal(frame, expected, check_exact=True)
        pd.testing.assert_frame_equal(store.load(env="HalfCheetah-v5"), expected.iloc[:2])
        pd.testing.assert_frame_equal(
            store.load(metric="return_mean"),
            expected.iloc[[0, 3, 4]].reset_index(drop=True))
        pd.testing.assert_frame_equal(
            store.load(env=["LunarLander-v3"], metric=["ram_pct", "x"]),
            expected.iloc[[2]].reset_index(drop=True))
        empty = store.load(env=[])
        assert empty.empty
        pd.testing.assert_series_equal(empty.dtypes, expected.dtypes)


def test_empty_store_loads_an_empty_frame_with_the_columns(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store, \
            hand_made_store(tmp_path / "full.sqlite") as full:
        frame = store.load()
        assert frame.empty and tuple(frame.columns) == COLUMNS
        pd.testing.assert_series_equal(frame.dtypes, full.load().dtypes)


# A writer that another process kills with SIGKILL. Result i has METRICS metrics
# m0..m{METRICS-1} with value i * 1000 + j and an extra that records i.
WRITER = textwrap.dedent("""
    import sys, time
    from rlcomp.experiments import ResultStore
    path, mode = sys.argv[1], sys.argv[2]
    METRICS, FREEZE = 200, 5
    store = ResultStore(path)
    if mode == "freeze":
        state = {"puts": 0}
        def trace(statement):
            if statement.startswith("INSERT OR IGNORE INTO results"):
                state["puts"] += 1
            if state["puts"] == FREEZE + 1 and statement.startswith("INSERT INTO metrics"):
                print("inside", flush=True)
                time.sleep(600)
        store._conn.set_trace_callback(trace)
    i = 0
    while True:
        big = mode == "freeze" and i == FREEZE  # spills uncommitted pages into the WAL
        extra = {"i": i, "returns": [float(i)] * (1_500_000 if big else 500)}
        store.put(f"digest{i}", "prune=0.5", None, 0, {"episodes": 3}, checkpoint="c",
                  env="LunarLander-v3", algo="ddqn", train_seed=0,
                  metrics={f"m{j}": i * 1000.0 + j for j in range(METRICS)}, extra=extra)
        print(i, flush=True)
        i += 1
""")


def start_writer(tmp_path, mode):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    stderr = open(tmp_path / "writer.err", "w")
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "r.sqlite"), mode],
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    return proc


def wait_for_line(proc, tmp_path, wanted, timeout=120.0):
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            proc.wait()
            raise AssertionError("writer stopped or hung: " + (tmp_path / "writer.err").read_text())
        if line.strip() == wanted:
            return


def kill(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def assert_whole_results(store, count):
    """The store holds results 0..count-1, each with all its metrics and its extra."""
    assert len(store) == count
    assert store.keys() == {job_key(f"digest{i}", "prune=0.5", None, 0, {"episodes": 3})
                            for i in range(count)}
    frame = store.load()
    assert len(frame) == 200 * count
    for key, group in frame.groupby("key"):
        i = store.extra(key)["i"]
        assert sorted(group["value"]) == [i * 1000.0 + j for j in range(200)]


def test_sigkill_in_a_write_loop_leaves_whole_rows(tmp_path):
    proc = start_writer(tmp_path, "loop")
    wait_for_line(proc, tmp_path, "20")
    kill(proc)
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        assert integrity(path) == [("ok",)]
        assert len(store) >= 21
        assert_whole_results(store, len(store))


def test_sigkill_inside_a_transaction_loses_only_that_result(tmp_path):
    path = tmp_path / "r.sqlite"
    proc = start_writer(tmp_path, "freeze")
    wait_for_line(proc, tmp_path, "inside")
    # The writer holds an open transaction whose uncommitted pages (the 7 MB extra) have spilled
    # into the WAL, well beyond the 5 committed results; readers still read the committed state.
    assert os.path.getsize(str(path) + "-wal") > 4_000_000
    with ResultStore(path, readonly=True) as reader:
        assert_whole_results(reader, 5)
    kill(proc)
    assert integrity(path) == [("ok",)]
    with ResultStore(path) as store:
        assert_whole_results(store, 5)
        assert store.put("digest5", "prune=0.5", None, 0, {"episodes": 3}, checkpoint="c",
                         env="LunarLander-v3", algo="ddqn", train_seed=0, metrics={"m0": 1.0})
