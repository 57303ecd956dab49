"""Sweep files, the driver, both executors, and surviving a kill."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlcomp.cli import main
from rlcomp.experiments.driver import run_sweep
from rlcomp.experiments.store import ResultStore
from rlcomp.experiments.sweep import SweepError, load_sweep

LUNAR = "checkpoints/LunarLander-v3__ddqn__0"
ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_expands_in_the_written_order_and_drops_zero_levels(tmp_path):
    sweep = load_sweep(write(tmp_path, f"""
checkpoints: [{LUNAR}]
specs:
  grid:
    lowrank: [0, 0.3]
    prune,scope=layer: [0, 0.5]
episodes: 3
eval_seeds: [0, 100]
"""))
    assert sweep.specs == ["dense", "prune=0.5,scope=layer", "lowrank=0.3",
                           "lowrank=0.3+prune=0.5,scope=layer"]
    jobs = sweep.jobs()
    assert len(jobs) == 4 * 2
    assert len({job.key for job in jobs}) == 8
    assert jobs[0].probe == {"episodes": 3, "latency": True, "isolated_memory": False,
                             "policy_time": False}
    assert jobs[0].env_id == "LunarLander-v3" and jobs[0].train_seed == 0


def test_spec_lists_mix_strings_and_grids(tmp_path):
    sweep = load_sweep(write(tmp_path, f"""
checkpoints: [{LUNAR}]
specs:
  - quant=8
  - grid: {{prune: [0, 0.5]}}
  - grid: {{"prune,scope=layer": [0.5]}}
episodes: 1
eval_seeds: [0]
"""))
    assert sweep.specs == ["quant=8", "dense", "prune=0.5", "prune=0.5,scope=layer"]
    with pytest.raises(SweepError, match=":4: prune amount must be"):
        load_sweep(write(tmp_path, f"checkpoints: [{LUNAR}]\nspecs:\n  - dense\n"
                                   "  - grid: {prune: [2]}\nepisodes: 1\neval_seeds: [0]\n"))


def test_globs_and_spec_lists(tmp_path):
    sweep = load_sweep(write(tmp_path, """
checkpoints: ["checkpoints/LunarLander-v3__ddqn__*", checkpoints/LunarLander-v3__ddqn__0.json]
specs: [dense, "prune=0.50", quant=8, prune=0.5]
episodes: 1
eval_seeds: [0]
"""))
    on_disk = sorted(p.stem for p in (ROOT / "checkpoints").glob("LunarLander-v3__ddqn__*.json"))
    assert len(on_disk) >= 3  # the glob expands to every seed, and seed 0 is not listed twice
    assert [Path(c).name for c in sweep.checkpoints] == on_disk
    assert sweep.specs == ["dense", "prune=0.5", "quant=8"]


@pytest.mark.parametrize(("text", "needles"), [
    (f"checkpoints: [{LUNAR}]\nspecs: [dense]\nepisodes: 1\neval_seeds: [0]\nepisode: 3\n",
     [":5: unknown key 'episode'"]),
    (f"checkpoints: [{LUNAR}]\nspecs: [dense, prune=1.5]\nepisodes: 1\neval_seeds: [0]\n",
     [":2: prune amount must be in [0, 1), got 1.5"]),
    ("checkpoints: [checkpoints/nothing]\nspecs: [dense]\nepisodes: 1\neval_seeds: [0]\n",
     [":1:", "no checkpoint file"]),
    ("checkpoints: [checkpoints/none_*]\nspecs: [dense]\nepisodes: 1\neval_seeds: [0]\n",
     [":1: no checkpoint matches"]),
    (f"checkpoints: [{LUNAR}]\nspecs: {{grid: {{}}}}\nepisodes: 1\neval_seeds: [0]\n",
     [":2: specs grid must map methods"]),
    (f"checkpoints: [{LUNAR}]\nspecs:\n  grid:\n    prune: []\nepisodes: 1\neval_seeds: [0]\n",
     [":4: grid 'prune' needs a non-empty list"]),
    (f"checkpoints: [{LUNAR}]\nspecs: [dense]\nepisodes: 0\neval_seeds: []\n",
     ["2 problems", ":3: episodes must be an integer >= 1", ":4: eval_seeds must be"]),
    (f"checkpoints: [{LUNAR}]\nspecs: [dense]\neval_seeds: [0]\n", ["missing key 'episodes'"]),
    (f"checkpoints: [{LUNAR}]\nspecs: [dense]\nepisodes: 1\neval_seeds: [0]\n"
     "probes: {latency: maybe}\n", [":5: probe latency must be true or false"]),
    (f"checkpoints: [{LUNAR}]\nspecs: [dense, 'prune=0.9,schedule=gradual+quant=8']\n"
     "episodes: 1\neval_seeds: [0]\n", [":2: prune schedule=gradual must be the last step"]),
    (f"checkpoints: [{LUNAR}]\nspecs: {{grid: {{'prune,schedule=gradual': [0.5], quant: [8]}}}}\n"
     "episodes: 1\neval_seeds: [0]\n", [":2: prune schedule=gradual must be the last step",
                                         "grid combination prune=0.5,schedule=gradual+quant=8"]),
    ("checkpoints: [a\nspecs: [", ["not valid YAML"]),
    ("- just a list\n", ["a sweep file is a mapping"]),
])
def test_each_problem_is_reported_with_its_line(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(SweepError) as info:
        load_sweep(path)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_bad_sweep_file_exits_2_and_writes_nothing(tmp_path, capsys):
    path = write(tmp_path, f"checkpoints: [{LUNAR}]\nspecs: [shrink=1]\nepisodes: 1\n"
                           "eval_seeds: [0]\n")
    store = tmp_path / "r.sqlite"
    code = main(["sweep", str(path), "--store", str(store)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown compression method" in err
    assert not store.exists()


SMALL = f"""checkpoints: [{LUNAR}]
specs: [dense, prune=0.5, quant=8]
episodes: 2
eval_seeds: [0]
probes: {{latency: false}}
"""


def test_sweep_runs_stores_and_skips_on_rerun(tmp_path, capsys):
    path, store = write(tmp_path, SMALL), tmp_path / "r.sqlite"
    code = main(["sweep", str(path), "--store", str(store), "--workers", "2", "--json", "--quiet"])
    assert code == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["jobs_total"], first["jobs_skipped"], first["jobs_run"]) == (3, 0, 3)
    code = main(["sweep", str(path), "--store", str(store), "--json", "--quiet"])
    again = json.loads(capsys.readouterr().out)
    assert (again["jobs_skipped"], again["jobs_run"]) == (3, 0)
    with ResultStore(store) as s:
        frame = s.load()
    returns = frame[frame.metric == "return_mean"].set_index("spec")["value"]
    assert set(returns.index) == {"dense", "prune=0.5", "quant=8"}
    size = frame[frame.metric == "bytes"].set_index("spec")["value"]
    assert size["quant=8"] < 0.3 * size["dense"]
    # the dense job's return is what `rlcomp evaluate` reports for the same episodes
    code = main(["evaluate", LUNAR, "--episodes", "2", "--json"])
    assert returns["dense"] == json.loads(capsys.readouterr().out)["mean_return"]


def test_results_do_not_depend_on_workers(tmp_path):
    path = write(tmp_path, SMALL)
    frames = []
    for workers in (1, 2):
        with ResultStore(tmp_path / f"w{workers}.sqlite") as store:
            run_sweep(load_sweep(path), store, workers=workers)
            frame = store.load(metric=["return_mean", "bytes", "nonzero_weights"])
        frames.append(frame.sort_values(["spec", "metric"])[["spec", "metric", "value", "key"]]
                      .reset_index(drop=True))
    assert frames[0].equals(frames[1])


@pytest.mark.slow
def test_ray_executor_gives_the_same_rows_as_the_pool(tmp_path):
    path = write(tmp_path, SMALL)
    frames = []
    for executor in ("local", "ray"):
        with ResultStore(tmp_path / f"{executor}.sqlite") as store:
            summary = run_sweep(load_sweep(path), store, executor=executor, workers=2)
            assert summary.jobs_run == 3
            frame = store.load(metric=["return_mean", "return_std", "env_steps", "bytes"])
        frames.append(frame.sort_values(["spec", "metric"])[["spec", "metric", "value", "key"]]
                      .reset_index(drop=True))
    assert frames[0].equals(frames[1])


def test_a_killed_sweep_resumes_without_recomputing(tmp_path):
    specs = ", ".join(f"prune={p / 10}" for p in range(8))
    path = write(tmp_path, f"checkpoints: [{LUNAR}]\nspecs: [{specs}]\nepisodes: 1\n"
                           "eval_seeds: [0]\nprobes: {latency: false}\n")
    store = tmp_path / "r.sqlite"
    command = [sys.executable, "-m", "rlcomp.cli", "sweep", str(path), "--store", str(store),
               "--workers", "1", "--quiet", "--json"]
    proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store, timeout=5) as conn:
                    stored = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
        if stored >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with ResultStore(store) as s:
        before = {key: s.extra(key)["job_seconds"] for key in s.keys()}
    assert 2 <= len(before) < 8
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout)
    assert summary["jobs_skipped"] == len(before)
    assert summary["jobs_run"] == 8 - len(before)
    with ResultStore(store) as s:
        assert len(s) == 8
        assert all(s.extra(key)["job_seconds"] == seconds for key, seconds in before.items())
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(DISTINCT key) FROM results").fetchone()[0] == 8


def test_committed_chapter_sweep_files_are_up_to_date_and_valid():
    from rlcomp.experiments.plans import CHAPTERS, PROFILE_SETTINGS, chapter_sweep, sweep_file_text

    for chapter in CHAPTERS:
        for profile in PROFILE_SETTINGS:
            path = ROOT / "sweeps" / f"{chapter}.{profile}.yaml"
            assert path.read_text() == sweep_file_text(chapter, profile), (
                f"{path} is stale: run python -m rlcomp.experiments.plans")
            sweep = chapter_sweep(chapter, profile)
            assert load_sweep(path).specs == sweep.specs
            assert [Path(c).name for c in load_sweep(path).checkpoints] == [
                Path(c).name for c in sweep.checkpoints]
    full = chapter_sweep("01-pruning", "full")
    # five seeds x two environments; random, dense and 3 ways of pruning x 9 levels
    assert len(full.checkpoints) == 10 and full.episodes == 100 and len(full.specs) == 29
    grid = chapter_sweep("02-low-rank", "full").specs
    pairs = {(lr, pr) for lr in (0.2, 0.4, 0.6, 0.8) for pr in (0.2, 0.4, 0.6, 0.8)}
    assert {f"lowrank={lr:g}+prune={pr:g}" for lr, pr in pairs} <= set(grid)  # the 5 x 5 grid


def test_finetune_budgets_multiply_jobs(tmp_path):
    text = (f"checkpoints: [{LUNAR}]\nspecs: [prune=0.5]\nepisodes: 1\neval_seeds: [0]\n"
            "finetune: {steps: [0, 50]}\n")
    sweep = load_sweep(write(tmp_path, text))
    jobs = sweep.jobs()
    assert [job.finetune for job in jobs] == [None, {"steps": 50}]
    assert jobs[0].key != jobs[1].key


def test_a_simulated_other_cpu_never_shares_keys_with_real_results(tmp_path, monkeypatch):
    """Under RLCOMP_PERTURB_OBS the chaotic environment's jobs get their own keys; others keep
    theirs (their episodes do not change), so a warm store is never read as a perturbed result."""
    text = f"""
checkpoints: [{LUNAR}, checkpoints/HalfCheetah-v5__pg__0]
specs: [dense, quant=8]
episodes: 2
eval_seeds: [0]
"""
    monkeypatch.delenv("RLCOMP_PERTURB_OBS", raising=False)
    plain = {(j.env_id, j.spec): j for j in load_sweep(write(tmp_path, text)).jobs()}
    monkeypatch.setenv("RLCOMP_PERTURB_OBS", "1e-9")
    perturbed = {(j.env_id, j.spec): j for j in load_sweep(write(tmp_path, text)).jobs()}
    assert plain.keys() == perturbed.keys() and len(plain) == 4
    for (env, spec), job in perturbed.items():
        if env == "HalfCheetah-v5":
            assert job.key != plain[env, spec].key
            assert job.probe["perturb_obs"] == {"scale": 1e-9, "seed": 0}
        else:
            assert job.key == plain[env, spec].key and "perturb_obs" not in job.probe


def test_random_policy_jobs_anchor_normalized_returns(tmp_path):
    """``random`` in a sweep's specs evaluates uniformly random actions on the same episodes:
    once per checkpoint (never fine-tuned), stored with method ``random`` and NaN levels."""
    sweep = load_sweep(write(tmp_path, f"""
checkpoints: [{LUNAR}]
specs: [random, dense]
episodes: 3
eval_seeds: [0]
finetune: {{steps: [0, 50]}}
probes: {{latency: false}}
"""))
    jobs = sweep.jobs()
    assert [(j.spec, j.finetune) for j in jobs] == [("random", None), ("dense", None),
                                                     ("dense", {"steps": 50})]
    sweep.finetune_steps, sweep._jobs = [0], None  # the naive jobs only
    with ResultStore(tmp_path / "r.sqlite") as s:
        run_sweep(sweep, s, workers=1)
        frame = s.load()
    random = frame[(frame["spec"] == "random") & (frame["metric"] == "return_mean")]
    assert random["method"].tolist() == ["random"] and random["prune"].isna().all()
    dense = frame[(frame["spec"] == "dense") & (frame["metric"] == "return_mean")]
    assert random["value"].item() < 0 < dense["value"].item()
    assert frame[frame["spec"] == "random"]["metric"].nunique() == 6  # returns only, no sizes
    with ResultStore(tmp_path / "again.sqlite") as s:
        run_sweep(sweep, s, workers=1)
        again = s.load()
    assert (again[(again["spec"] == "random") & (again["metric"] == "return_mean")]["value"]
            .item() == random["value"].item())
