"""Chapter 07's helpers (rlcomp/analysis/choosing.py, the choose part of plans) on hand-made
summaries and a hand-made chapter-06 table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rlcomp.analysis import choosing
from rlcomp.analysis.frontier import FRONTIER_COLUMNS
from rlcomp.analysis.tables import portable
from rlcomp.experiments import plans

FAMILIES = ("prune", "lowrank", "quant", "distill", "finetune")


def point(name, status, size, ret, low, high, episodes=10, origin="book", dense=276_496):
    return {"name": name, "spec": name, "status": status, "bytes": size, "file_bytes": size + 500,
            "factor": dense / size, "normalized_return": ret, "ci_low": low, "ci_high": high,
            "episodes": episodes, "origin": origin, "finetune_steps": 0}


def summary(env="LunarLander-v3", name="LunarLander-v3__ddqn__0", rec=None, **kw):
    rec = rec or point("quant=8", "accepted", 69_124, 99.0, 96.0, 102.0, episodes=100)
    dense = point("dense", "dense", 276_496, 100.0, 100.0, 100.0, episodes=300)
    frontier = [point("prune=0.9+quant=8", "dropped", 18_029, 20.0, 5.0, 40.0, 25), rec, dense]
    data = {"name": rec["name"], "recommended": rec["spec"], "finetune_steps": 0,
            "bytes": rec["bytes"], "file_bytes": rec["file_bytes"], "dense_bytes": 276_496,
            "factor": rec["factor"], "normalized_return": rec["normalized_return"],
            "ci_low": rec["ci_low"], "ci_high": rec["ci_high"], "episodes": rec["episodes"],
            "keep": 95.0, "max_drop": 0.05, "objective": "bytes", "confidence": 0.95,
            "look_confidence": 0.99, "looks": [25, 50, 100, 200, 300], "episodes_used": 400,
            "episodes_if_exhaustive": 900, "racing_share": 400 / 900, "reference_episodes": 600,
            "seconds": 123.4, "budget_seconds": 480.0, "budget_exhausted": False,
            "store": {"blocks_reused": 2, "builds_reused": 1},
            "teacher": {"name": name, "env_id": env, "algo": "ddqn"},
            "dense": {"mean_return": 250.0, "ci_low": 240.0, "ci_high": 260.0, "episodes": 300},
            "random": {"mean_return": -150.0, "ci_low": -160.0, "ci_high": -140.0,
                       "episodes": 300},
            "parity": {"observations": 1000, "max_abs_action_diff": 0.0,
                       "max_abs_output_diff": 1e-6, "actions_agree": 1.0, "ok": True},
            "frontier": frontier,
            "not_done": [{"name": "distill=8x8", "status": "skipped", "reason": "could not beat"}],
            "candidates": 3}
    data.update(kw)
    return data


CANDIDATES = [point("prune=0.9+quant=8", "dropped", 18_029, 20.0, 5.0, 40.0, 25),
              point("quant=8", "accepted", 69_124, 99.0, 96.0, 102.0, 100),
              {"name": "distill=8x8", "status": "skipped", "origin": "student"}]


def chapter06(rows):
    base = dict.fromkeys(FRONTIER_COLUMNS, 0)
    return pd.DataFrame([{**base, "ci_low": r[4] - 2, "ci_high": r[4] + 2, "n_seeds": 5,
                          "env": r[0], "method": r[1], "spec": r[2], "bytes": r[3],
                          "file_bytes": r[3] + 600, "factor": 276_496 / r[3],
                          "normalized_return": r[4]} for r in rows])


def test_the_frontier_table_lists_the_frontier_smallest_first():
    table = choosing.frontier_display(summary())
    assert list(table.index) == ["prune=0.9+quant=8", "quant=8", "dense"]
    assert list(table["model size"]) == ["18.0 kB", "69.1 kB", "276.5 kB"]
    assert table["smaller than dense"].iloc[1] == "4.0x"
    assert table["return, % of dense [95% CI]"].iloc[1] == "99.0% [96.0, 102.0]"
    assert table["return, % of dense [95% CI]"].iloc[2] == "100.0%"


def test_the_paragraph_says_every_number_of_the_recommendation():
    text = choosing.recommendation_markdown("our agent", summary(), CANDIDATES, ("prune", "quant",
                                            "distill"), FAMILIES)
    for piece in ("`quant=8` (one of chapter 06's families)", "69,124 model bytes",
                  "69,624 bytes of file", "4.0 times smaller than the dense policy's 276,496",
                  "99.0 [96.0, 102.0]% over 100 episodes", "bound of 95%",
                  "1 accepted, 1 dropped, 1 skipped", "400 episodes, against 900",
                  "(44%)", "600 episodes of the dense and random references",
                  "123 s of a 480 s budget", "100.0% identical actions", "parity passed",
                  "the families `lowrank`, `finetune` were not in this search",
                  "1 candidates were not raced to a decision (1 skipped)",
                  "mean return is 250.0 [240.0, 260.0]"):
        assert piece in text, piece


def test_the_paragraph_for_a_dense_recommendation_names_the_closest_candidate():
    dense = point("dense", "dense", 276_496, 100.0, 100.0, 100.0, episodes=300)
    data = summary(rec=dense, parity={"observations": 1000, "max_abs_action_diff": 6e-7,
                                      "max_abs_output_diff": 1e-6, "actions_agree": 0.0,
                                      "ok": True})
    data["frontier"][1] = point("quant=8", "undecided", 69_124, 97.0, 90.0, 104.0, 300)
    text = choosing.recommendation_markdown("x", data, CANDIDATES, FAMILIES, FAMILIES)
    assert "recommends the policy as it is: 276,496 model bytes" in text
    assert "`quant=8` (factor 4.0), ended undecided at 97.0 [90.0, 104.0]% after 300" in text
    assert "ONNX" not in text and "Not tried: 1 candidates" in text


def test_continuous_parity_does_not_count_identical_actions():
    words = choosing._parity_words({"observations": 10, "max_abs_action_diff": 6e-7,
                                    "max_abs_output_diff": 1e-6, "actions_agree": 0.0,
                                    "ok": True})
    assert "identical" not in words and "6e-07" in words and "passed" in words


def test_headline_is_portable():
    table = choosing.headline_table([summary(), summary("HalfCheetah-v5", "HalfCheetah-v5__pg__0")])
    assert list(table.index.names) == ["env", "policy"]
    assert list(portable(table).index.get_level_values("env")) == ["LunarLander-v3"]
    assert table["parity"].tolist() == [True, True]


def test_the_best_poster_method_is_the_smallest_single_one_that_keeps_the_return():
    table = chapter06([("LunarLander-v3", "prune", "prune=0.3", 200_000, 97.0),
                       ("LunarLander-v3", "int8", "quant=8", 69_124, 99.0),
                       ("LunarLander-v3", "prune+int8", "prune=0.5+quant=8", 45_000, 96.0),
                       ("LunarLander-v3", "lowrank", "lowrank=0.5", 60_000, 80.0),
                       ("HalfCheetah-v5", "int8", "quant=8", 72_000, 90.0)])
    best = choosing.poster_best(table, "LunarLander-v3")
    assert best["spec"] == "quant=8"  # the composition and the low-rank model are not candidates
    assert choosing.poster_best(table, "HalfCheetah-v5") is None
    rows = choosing.comparison_table([summary(), summary("HalfCheetah-v5", "cheetah")], table)
    assert rows["gain"].iloc[0] == pytest.approx(1.0) and math.isnan(rows["gain"].iloc[1])
    text = choosing.comparison_markdown(rows, table, "book/data/frontier.csv")
    lunar, cheetah = text.splitlines()
    assert "compresses as much as chapter 06's best single poster method, int8 `quant=8`" in lunar
    assert "mean over 5 training seeds" in lunar
    assert "none of the poster's single methods keeps 95% on HalfCheetah-v5" in cheetah
    assert "closest is int8 (`quant=8`, 90.0%)" in cheetah
    dense = point("dense", "dense", 276_496, 100.0, 100.0, 100.0, episodes=300)
    rows = choosing.comparison_table([summary(rec=dense)], table)
    text = choosing.comparison_markdown(rows, table, "f")
    assert "accepted no compression of this policy (with at most 300 episodes per candidate)" \
        in text and "int8 `quant=8` (69,124 model bytes" in text and "compresses 4.0 times" in text
    rows = choosing.comparison_table([summary(), summary("HalfCheetah-v5", "cheetah")], table)
    shown = choosing.comparison_display(rows)
    assert shown["choose's factor / chapter 06's"].tolist() == ["1.00x", "-"]


def test_a_missing_table_or_row_is_said_plainly(tmp_path):
    assert choosing.read_frontier(tmp_path / "frontier.csv") is None
    rows = choosing.comparison_table([summary()], None)
    assert rows["poster_method"].isna().all()
    assert "is not there yet" in choosing.comparison_markdown(rows, None, "book/data/frontier.csv")
    other = chapter06([("HalfCheetah-v5", "int8", "quant=8", 72_000, 99.0)])
    text = choosing.comparison_markdown(choosing.comparison_table([summary()], other), other, "f")
    assert "`f` has no row of the poster's single methods (prune, lowrank, int8) for " \
           "LunarLander-v3" in text
    (tmp_path / "bad.csv").write_text("env,method\nx,y\n")
    with pytest.raises(ValueError, match="lacks the columns spec"):
        choosing.read_frontier(tmp_path / "bad.csv")
    chapter06([("LunarLander-v3", "int8", "quant=8", 69_124, 99.0)]).to_csv(
        tmp_path / "frontier.csv", index=False)
    assert choosing.read_frontier(tmp_path / "frontier.csv")["spec"].tolist() == ["quant=8"]


def test_the_searches_note_shows_the_commands_and_the_settings():
    text = choosing.searches_markdown("smoke", ["rlcomp choose a --env X"], [summary()])
    assert "executed in the `smoke` profile" in text and "$ rlcomp choose a --env X" in text
    assert "keeps 95%" in text and "after 25, 50, 100, 200, 300 episodes" in text
    assert "480 s" in text
    assert "placeholders" not in choosing.searches_markdown("full", ["c"], [summary()])


def test_the_chapter_searches_three_policies_with_the_issues_settings_in_full():
    policies = plans.choose_policies()
    assert [p.env for p in policies] == ["LunarLander-v3", "HalfCheetah-v5", "LunarLander-v3"]
    assert [p.name for p in policies] == ["LunarLander-v3__ddqn__0", "HalfCheetah-v5__pg__0",
                                          "LunarLander-v3__sb3-dqn__0"]
    assert plans.choose_command(policies[0], "full") == (
        "rlcomp choose checkpoints/LunarLander-v3__ddqn__0 --env LunarLander-v3 --max-drop 0.05 "
        "--objective bytes")
    argv = plans.choose_argv(policies[2], "smoke", store="/s.sqlite")
    assert argv[0] == str(plans.ROOT / plans.SB3_POLICY)
    assert argv[-5:] == ["--store", "/s.sqlite", "--out", str(
        plans.ROOT / plans.CHOOSE_OUT / "smoke" / "LunarLander-v3__sb3-dqn__0"), "--quiet"]
    mine = plans.choose_policies("/tmp/x.zip")[2]
    assert plans.choose_argv(mine, "full", out="/o")[0] == "/tmp/x.zip"
    with pytest.raises(ValueError, match="profile must be one of smoke, full"):
        plans.choose_argv(mine, "tiny")
