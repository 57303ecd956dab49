"""``rlcomp choose``: intervals, drop rule, frontier, store reuse, JSON, parity, bad inputs."""

import hashlib
import json
import math

import numpy as np
import pytest
from scipy import stats

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.choose.artifacts import parity_check
from rlcomp.choose.candidates import LayerSensitivity, per_layer_candidates
from rlcomp.choose.command import UsageError, main, run_search
from rlcomp.choose.frontier import pareto_front
from rlcomp.choose.racing import (
    ACCEPTED,
    DROPPED,
    RACING,
    RETIRED,
    UNDECIDED,
    Race,
    RacingPlan,
    decide,
)
from rlcomp.choose.ratio import RatioInterval, normalized_interval
from rlcomp.choose.report import candidate_dicts
from rlcomp.choose.search import ChooseConfig, choose
from rlcomp.compress.export import policy_to_onnx
from rlcomp.compress.registry import compress
from rlcomp.compress.specs import format_spec, parse_spec
from rlcomp.experiments.store import ResultStore, job_key

LUNAR = "checkpoints/LunarLander-v3__ddqn__0"

# A quick search: two looks of 4 and 8 episodes, quantization and a tiny student, short budgets.
QUICK = ["--looks", "4,8", "--min-accept", "8", "--families", "quant,distill",
         "--students", "4x4", "--distill-steps", "800", "--quiet"]


def references(n=300, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.normal(250.0, 40.0, n)
    random = rng.normal(-150.0, 100.0, n)
    return dense, random


# --- the normalized return and its interval ---------------------------------------------------

def test_fieller_bounds_are_where_the_paired_t_test_turns():
    dense, random = references(60)
    cand = dense - 20.0 + np.random.default_rng(1).normal(0, 30.0, 60)
    interval = normalized_interval(cand, dense, random, 0.95)
    a, b = cand - random, dense - random
    t = stats.t.ppf(0.975, 59)
    for bound in (interval.ci_low, interval.ci_high):
        w = a - bound / 100 * b
        assert abs(w.mean() / (w.std(ddof=1) / math.sqrt(60))) == pytest.approx(t, rel=1e-6)
    assert interval.estimate == pytest.approx(100 * a.mean() / b.mean())
    assert interval.ci_low < interval.estimate < interval.ci_high


def test_a_candidate_identical_to_dense_has_the_point_interval_100():
    dense, random = references(30)
    interval = normalized_interval(dense, dense, random, 0.99)
    assert interval.estimate == interval.ci_low == interval.ci_high == pytest.approx(100.0)


def test_the_interval_is_unbounded_when_dense_is_not_clearly_above_random():
    rng = np.random.default_rng(0)
    dense, random = rng.normal(0, 100, 10), rng.normal(-5, 100, 10)
    interval = normalized_interval(dense + 1, dense, random, 0.95)
    assert interval.ci_low == -math.inf and interval.ci_high == math.inf


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"confidence": 1.0}, "confidence"), ({"candidate": []}, "at least one episode"),
    ({"candidate": np.zeros(400)}, "pairing needs the same seeds"),
])
def test_bad_interval_inputs(kwargs, message):
    dense, random = references(300)
    args = {"candidate": dense[:10], "dense": dense, "random": random, "confidence": 0.95,
            **kwargs}
    with pytest.raises(ValueError, match=message):
        normalized_interval(**args)


# --- the drop rule --------------------------------------------------------------------------

PLAN = RacingPlan(looks=(25, 50, 100, 200, 300), confidence=0.95, min_accept=100)


def test_each_look_gets_a_bonferroni_share_of_the_error():
    assert PLAN.look_confidence == pytest.approx(1 - 0.05 / 5)
    assert [(b.offset, b.size) for b in PLAN.blocks] == [(0, 25), (25, 25), (50, 50),
                                                         (100, 100), (200, 100)]
    assert PLAN.max_episodes == 300


@pytest.mark.parametrize(("low", "high", "episodes", "status"), [
    (80.0, 94.9, 25, DROPPED), (95.0, 110.0, 100, ACCEPTED), (95.0, 110.0, 50, RACING),
    (90.0, 110.0, 300, UNDECIDED), (90.0, 110.0, 200, RACING), (-math.inf, math.inf, 300,
                                                                 UNDECIDED),
])
def test_decide(low, high, episodes, status):
    interval = RatioInterval((low + high) / 2 if math.isfinite(low) else 0.0, low, high,
                             episodes, PLAN.look_confidence)
    assert decide(interval, 95.0, PLAN) == status


def test_racing_drops_candidates_below_the_bound_and_accepts_those_above():
    dense, random = references(300)
    rng = np.random.default_rng(2)
    race = Race(PLAN, 95.0, dense, random, dense_objective=1000.0)
    truth = {"bad": dense - 80.0, "good": dense + rng.normal(0, 15.0, 300),
             "small-bad": dense - 200.0, "big-good": dense.copy()}
    for name, objective in (("bad", 10.0), ("good", 20.0), ("small-bad", 5.0),
                            ("big-good", 500.0)):
        race.add(name, objective)
    while race.due():
        for entry in race.due():
            if entry.status != RACING:
                continue
            block = race.next_block(entry.name)
            race.record(entry.name, truth[entry.name][block.offset:block.offset + block.size])
    status = {name: e.status for name, e in race.entries.items()}
    assert status["bad"] == status["small-bad"] == DROPPED
    assert race.entries["small-bad"].episodes == 25
    assert status["good"] == ACCEPTED and race.entries["good"].episodes == 100
    assert status["big-good"] == RETIRED and race.entries["big-good"].episodes < 300
    assert race.best().name == "good"
    assert race.episodes_used < 0.4 * race.episodes_if_exhaustive


def test_the_recommendation_is_the_best_accepted_objective_else_dense():
    dense, random = references(300)
    race = Race(PLAN, 95.0, dense, random, dense_objective=1000.0)
    assert race.best().name == "dense"
    for name, objective in (("a", 300.0), ("b", 200.0), ("c", 200.0), ("d", 50.0)):
        race.add(name, objective)
    race.entries["a"].status = ACCEPTED
    race.entries["a"].interval = RatioInterval(99, 97, 101, 100, 0.99)
    assert race.best().name == "a"
    for name, low in (("b", 96.0), ("c", 98.0)):
        race.entries[name].status = ACCEPTED
        race.entries[name].interval = RatioInterval(99, low, 101, 100, 0.99)
    assert race.best().name == "c"  # equal objectives: the higher lower bound
    race.retire_dominated()
    assert race.entries["d"].status == RACING and race.entries["a"].status == ACCEPTED
    race.add("e", 250.0)
    assert race.entries["e"].status == RETIRED


def test_pareto_front():
    points = [("dense", 100, 100.0), ("a", 10, 50.0), ("b", 20, 97.0), ("c", 30, 96.0),
              ("d", 5, -20.0), ("e", 20, 97.0), ("f", 50, 101.0)]
    front = pareto_front(points, lambda p: p[1], lambda p: p[2])
    assert [p[0] for p in front] == ["d", "a", "b", "e", "f"]


# --- per-layer specs and candidates ---------------------------------------------------------

@pytest.mark.parametrize("text", ["prune=0.9,layers=0.9/0.5/0.0", "lowrank=0.8,layers=0.0/0.8/0.0",
                                  "quant=4,layers=8/4/8", "quant=2,group=32,layers=8/2/8"])
def test_per_layer_specs_round_trip(text):
    assert format_spec(parse_spec(text)) == text


@pytest.mark.parametrize(("text", "message"), [
    ("prune=0.5,layers=0.9/0.5", "needs amount 0.9"),
    ("quant=8,layers=8/4", "needs bits 4"),
    ("prune=0.9,layers=0.9/0.1,scope=layer", "does not combine with scope=layer"),
    ("quant=4,layers=8/4/8,mixed=true", "mixed=true"),
    ("lowrank=0.5,layers=0.5/0.0,keep_io=true", "keep_io"),
])
def test_bad_per_layer_specs(text, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(text)


def test_specs_without_layers_keep_their_text_and_store_key():
    for text in ("prune=0.5", "lowrank=0.6,keep_io=true", "quant=4,mixed=true"):
        assert format_spec(parse_spec(text)) == text
    fields = {"checkpoint_digest": "d", "spec": "prune=0.5", "finetune": {}, "eval_seed": 0,
              "probe": {"a": 1}}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert job_key("d", "prune=0.50", None, 0, {"a": 1}) == expected


def test_per_layer_levels_compress_each_layer_by_its_own():
    net = policy_from_checkpoint(load_checkpoint(LUNAR)).net
    pruned = compress(net, "prune=0.9,layers=0.9/0.5/0.0")
    zeros = [float((m.weight == 0).float().mean()) for m in pruned if hasattr(m, "weight")]
    assert zeros == pytest.approx([0.9, 0.5, 0.0], abs=1e-3)
    bits = [m.bits for m in compress(net, "quant=2,layers=8/4/2") if hasattr(m, "bits")]
    assert bits == [8, 4, 2]
    with pytest.raises(ValueError, match="gives 2 levels; the network has 3 layers"):
        compress(net, "quant=4,layers=8/4")


def test_per_layer_candidates_take_each_layers_most_aggressive_level_within_tolerance():
    found = [LayerSensitivity("prune", 0, 0.3, 0.001), LayerSensitivity("prune", 0, 0.5, 0.02),
             LayerSensitivity("prune", 1, 0.3, 0.001), LayerSensitivity("prune", 1, 0.5, 0.004),
             LayerSensitivity("quant", 0, 4, 0.003), LayerSensitivity("quant", 1, 4, 0.5)]
    specs = [c.spec for c in per_layer_candidates(found, 2, ("prune", "quant"), (0.005,))]
    assert specs == ["prune=0.5,layers=0.3/0.5", "quant=4,layers=4/8",
                     "prune=0.5,layers=0.3/0.5+quant=4,layers=4/8"]


# --- ONNX parity ----------------------------------------------------------------------------

def test_parity_check_passes_for_the_export_and_fails_for_another_network():
    policy = policy_from_checkpoint(load_checkpoint(LUNAR))
    obs = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    onnx_bytes = policy_to_onnx(policy).SerializeToString()
    good = parity_check(policy, onnx_bytes, obs)
    assert good.ok and good.max_abs_action_diff == 0 and good.actions_agree == 1.0
    other = type(policy)(net=compress(policy.net, "prune=0.6"), action="argmax")
    assert not parity_check(other, onnx_bytes, obs).ok


# --- the command ----------------------------------------------------------------------------

def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """The quick search twice on one store (the second must reuse everything)."""
    tmp = tmp_path_factory.mktemp("choose")
    outs = []
    for i in range(2):
        out = tmp / f"out{i}"
        code = main([LUNAR, "--env", "LunarLander-v3", "--store", str(tmp / "s.sqlite"),
                     "--out", str(out), "--json", *QUICK])
        outs.append((code, out))
    return tmp, outs


def test_json_fields_artifacts_and_parity(quick_runs, capsys):
    tmp, outs = quick_runs
    code, out = outs[0]
    assert code == 0
    data = json.loads((out / "report.json").read_text())
    for key in ("recommended", "artifact", "onnx", "bytes", "dense_bytes", "normalized_return",
                "ci_low", "ci_high", "episodes_used", "episodes_if_exhaustive", "seconds",
                "frontier"):
        assert key in data, key
    assert data["dense_bytes"] == 276_496
    assert data["episodes_used"] <= data["episodes_if_exhaustive"]
    assert data["frontier"] and all(
        {"bytes", "normalized_return", "ci_low", "ci_high", "spec"} <= set(p)
        for p in data["frontier"])
    assert data["parity"]["ok"] and data["parity"]["observations"] == 1000
    assert data["parity"]["max_abs_action_diff"] == 0
    for key in ("artifact", "onnx", "report", "figure"):
        assert (out / data[key].rsplit("/", 1)[-1]).is_file()
    assert (out / "report.md").read_text().startswith("# rlcomp choose")


def test_the_last_printed_line_is_the_json(tmp_path, capsys, quick_runs):
    tmp, _ = quick_runs
    code, stdout, err = run([LUNAR, "--env", "LunarLander-v3", "--store", tmp / "s.sqlite",
                             "--out", tmp_path / "o", "--json", *QUICK], capsys)
    assert code == 0, err
    data = json.loads(stdout.strip().splitlines()[-1])
    assert data["recommended"] == json.loads((tmp / "out0" / "report.json").read_text())[
        "recommended"]


def test_a_second_run_reuses_every_evaluation_and_build(quick_runs):
    _, outs = quick_runs
    first, second = (json.loads((out / "report.json").read_text()) for _, out in outs)
    assert first["store"]["episodes_run"] > 0 and first["store"]["builds_run"] > 0
    assert second["store"]["episodes_run"] == 0 and second["store"]["builds_run"] == 0
    assert second["store"]["blocks_reused"] == first["store"]["blocks_run"]
    assert second["recommended"] == first["recommended"]
    assert second["episodes_used"] == first["episodes_used"]
    for name in ("policy.rlc.safetensors", "policy.onnx"):
        assert (outs[0][1] / name).read_bytes() == (outs[1][1] / name).read_bytes()


def test_run_search_is_the_command_as_a_function(quick_runs, tmp_path, capsys):
    tmp, outs = quick_runs
    result, data = run_search([LUNAR, "--env", "LunarLander-v3", "--store", str(tmp / "s.sqlite"),
                               "--out", str(tmp_path / "o"), *QUICK])
    assert capsys.readouterr().out == ""
    assert data == json.loads((tmp_path / "o" / "report.json").read_text())
    first = json.loads((outs[0][1] / "report.json").read_text())
    assert (data["recommended"], data["episodes_used"]) == (first["recommended"],
                                                            first["episodes_used"])
    rows = candidate_dicts(result)
    assert len(rows) == data["candidates"] and "dense" not in {r["name"] for r in rows}
    with pytest.raises(UsageError, match="invalid choice"):
        run_search([LUNAR, "--env", "LunarLander-v3", "--objective", "speed"])


def test_honest_stopping_with_no_budget(tmp_path):
    ckpt = load_checkpoint(LUNAR)
    config = ChooseConfig(budget_seconds=0, plan=RacingPlan(looks=(4, 8), min_accept=8),
                          families=("quant",))
    with ResultStore(tmp_path / "s.sqlite") as store:
        result = choose(ckpt, store, config)
    assert result.budget_exhausted and result.recommended.name == "dense"
    assert result.episodes_used == 0 and result.not_done
    assert all(c.status in ("not finished", "not tried") for c in result.not_done)
    assert result.artifact_bytes


@pytest.mark.parametrize(("argv", "message"), [
    ([LUNAR, "--env", "LunarLander-v3", "--objective", "speed"], "invalid choice"),
    ([LUNAR, "--env", "LunarLander-v3", "--max-drop", "0"], "--max-drop must be in (0, 1)"),
    ([LUNAR, "--env", "LunarLander-v3", "--max-drop", "1.5"], "--max-drop must be in (0, 1)"),
    ([LUNAR, "--env", "LunarLander-v3", "--budget-minutes", "-1"], "--budget-minutes must be"),
    (["checkpoints/nothing-here", "--env", "LunarLander-v3"], "no checkpoint file"),
    ([LUNAR, "--env", "HalfCheetah-v5"], "trained on LunarLander-v3"),
    ([LUNAR, "--env", "NoSuchEnv-v0"], "unknown environment"),
    ([LUNAR, "--env", "LunarLander-v3", "--families", "prune,magic"], "families must be"),
    ([LUNAR, "--env", "LunarLander-v3", "--looks", "10,5"], "looks must increase"),
    ([LUNAR], "--env"),
])
def test_user_mistakes_exit_2_with_one_line(argv, message, capsys, tmp_path):
    code, stdout, err = run([*argv, "--store", tmp_path / "s.sqlite", "--out", tmp_path / "o"],
                            capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize(("argv", "message"), [
    ([LUNAR, "--env", "LunarLander-v3", "--max-drop", "0"], "--max-drop must be in (0, 1)"),
    ([LUNAR, "--env", "LunarLander-v3", "--activation", "tanh"], "contradicts"),
    ([LUNAR, "--env", "LunarLander-v3", "--obs-norm", "stats.npz"], "foreign files"),
])
def test_rlcomp_choose_is_a_subcommand_with_one_line_errors(argv, message, capsys, tmp_path):
    from rlcomp import cli

    code = cli.main(["choose", *map(str, argv), "--store", str(tmp_path / "s.sqlite"),
                     "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()
