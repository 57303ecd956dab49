"""The chapters and their nbval baselines: structure, freshness, and the chapter runner's errors.

The regression check itself is nbval: ``make test`` runs ``pytest --nbval-lax --nbval-current-env``,
which collects ``tests/baselines/*.smoke.ipynb`` and re-executes each baseline, comparing the cells
marked ``# NBVAL_CHECK_OUTPUT`` with their recorded output. These tests make sure that check means
something: every chapter has a baseline, the baseline holds the chapter's current code (nbval runs
the baseline's cells, not the chapter file), and the checked cells hold no timing and nothing that
differs between CPUs: no return of a chaotic environment (HalfCheetah, whose episodes diverge after
another CPU's last-bit difference; ``tests/test_portable_regression.py`` checks those policies),
only sizes or what :func:`~rlcomp.analysis.tables.portable` keeps.
"""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

from rlcomp import chapters
from rlcomp.analysis import training
from rlcomp.analysis.figures import training_curves
from rlcomp.analysis.tables import portable
from rlcomp.analysis.verdict_table import ENTRIES, Verdict, claims_html, portable_claims
from rlcomp.envs import CHAOTIC_ENVS
from rlcomp.experiments import plans

ROOT = chapters.ROOT
NAMES = chapters.chapter_names()
TIMING_WORDS = ("seconds", "wall", "cpu", "time", "cost_view")


def baseline_path(name: str):
    return ROOT / chapters.BASELINE_DIR / f"{name}.smoke.ipynb"


def code_cells(nb) -> list[str]:
    """Sources of the code cells, without papermill's injected-parameters cell."""
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"
            and "injected-parameters" not in c.metadata.get("tags", [])]


def checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")


def test_the_chapter_files_the_toc_and_the_plans_name_the_same_chapters():
    """A chapter missing from ``notebooks/``, from ``_toc.yml`` or from
    ``plans.BOOK_CHAPTERS`` (or added to one of them only) fails here."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    in_toc = [e["file"] for e in toc["chapters"] if chapters.CHAPTER_PATTERN.match(e["file"])]
    assert NAMES == list(plans.BOOK_CHAPTERS)
    assert sorted(in_toc) == NAMES and len(in_toc) == len(set(in_toc))
    assert set(plans.CHAPTERS) <= set(plans.BOOK_CHAPTERS)
    assert in_toc[0] == plans.FINDINGS, "the reader meets the findings first"


@pytest.mark.parametrize("name", NAMES)
def test_chapter_has_one_parameters_cell_with_profile(name):
    nb = chapters.read_chapter(chapters.chapter_path(name))
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert 'profile = "full"' in params[0].source


@pytest.mark.parametrize("name", NAMES)
def test_chapter_ends_with_checked_headline_cell(name):
    nb = chapters.read_chapter(chapters.chapter_path(name))
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert checked(last_code), "the last code cell records the headline numbers for nbval"


@pytest.mark.parametrize("name", NAMES)
def test_checked_cells_hold_no_timing(name):
    nb = chapters.read_chapter(chapters.chapter_path(name))
    cells = [c for c in nb.cells if checked(c)]
    assert cells, "a chapter without checked cells has no regression test"
    for cell in cells:
        assert not any(w in cell.source.lower() for w in TIMING_WORDS), cell.source


PORTABLE_NOTE = "# portable by construction:"
"""A checked cell that measures nothing (settings from the code, a seeded simulation) says so,
and why, in a comment line starting with this."""


def portable_by_construction(source: str) -> bool:
    """A checked cell shows CPU-exact numbers: it goes through ``portable``, shows sizes or
    operation counts only, or declares that it measures nothing (:data:`PORTABLE_NOTE`)."""
    if any(line.lstrip().startswith(PORTABLE_NOTE) for line in source.splitlines()):
        return True
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    return "portable" in code or (("bytes" in code or "macs_per_decision" in code)
                                  and "return" not in code)


@pytest.mark.parametrize("name", NAMES)
def test_checked_cells_show_only_numbers_every_cpu_agrees_on(name):
    nb = chapters.read_chapter(chapters.chapter_path(name))
    for cell in nb.cells:
        if checked(cell):
            assert portable_by_construction(cell.source), (
                f"{name}: a checked cell must wrap its table in portable(...) (returns of "
                f"{', '.join(CHAOTIC_ENVS)} differ between CPUs) or show sizes only:\n"
                f"{cell.source}")


@pytest.mark.parametrize("name", NAMES)
def test_baseline_checked_returns_name_no_chaotic_environment(name):
    baseline = nbformat.read(baseline_path(name), as_version=4)
    for cell in baseline.cells:
        if checked(cell) and "portable" in cell.source:
            text = "".join(str(v) for o in cell.outputs for v in o.get("data", {}).values())
            assert text, f"{name}: checked cell without output"
            for env in CHAOTIC_ENVS:
                assert env not in text, f"{name}: a checked cell shows {env}: {cell.source}"


@pytest.mark.parametrize("name", NAMES)
def test_every_chapter_has_a_smoke_baseline(name):
    assert baseline_path(name).is_file(), (
        f"no nbval baseline for {name}: run `make baseline`, review, commit")


@pytest.mark.parametrize("name", NAMES)
def test_baseline_is_the_current_chapter_in_the_smoke_profile(name):
    baseline = nbformat.read(baseline_path(name), as_version=4)
    chapter = chapters.read_chapter(chapters.chapter_path(name))
    assert code_cells(baseline) == code_cells(chapter), (
        f"{baseline_path(name).name} is stale: the chapter's code changed; refresh it on purpose "
        "with `make baseline`, review `git diff tests/baselines/`, commit")
    injected = [c for c in baseline.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'profile = "smoke"' in injected[0].source
    meta = baseline.metadata["rlcomp"]
    assert meta["profile"] == "smoke" and meta["chapter"] == name
    for key in ("git_commit", "date", "machine", "command"):
        assert key in meta
    assert not any(o.output_type == "error" for c in baseline.cells if c.cell_type == "code"
                   for o in c.outputs)


@pytest.mark.parametrize("name", NAMES)
def test_baseline_checked_cells_have_recorded_output(name):
    baseline = nbformat.read(baseline_path(name), as_version=4)
    for cell in baseline.cells:
        if checked(cell):
            assert cell.outputs, f"checked cell without output: {cell.source[:60]!r}"


@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-chapter", "--profile", "smoke"], "unknown chapter 'no-such-chapter'"),
    (["run", "00-setup", "--profile", "huge"], "invalid choice: 'huge'"),
    (["run", "00-setup", "--out", "book/00-setup.html"], "must name an .ipynb file"),
    (["run", "00-setup", "-p", "profile=smoke"], "with --profile"),
    (["run", "00-setup", "-p", "no-equals-sign"], "NAME=VALUE"),
    (["run", "00-setup", "-p", "checkpoint_dir=[1"], "cannot read '[1'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_requests_end_with_one_line_and_exit_2(argv, message, capsys, tmp_path):
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "x.ipynb")] if argv[0] == "run" else argv
    assert chapters.main(argv) == chapters.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.ipynb").exists()


def test_check_profile():
    assert chapters.check_profile("smoke") == "smoke"
    with pytest.raises(chapters.ChapterError, match="profile must be one of smoke, full"):
        chapters.check_profile("tiny")


FAILING_CHAPTER = """\
# %% tags=["parameters"]
profile = "full"

# %%
print("ran", profile)

# %%
raise RuntimeError("boom in the chapter")
"""


@pytest.mark.slow
def test_failed_chapter_writes_nothing_and_says_where(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "99-fails.py").write_text(FAILING_CHAPTER)
    out = tmp_path / "book" / "99-fails.ipynb"
    out.parent.mkdir()
    out.write_text("previous notebook")
    with pytest.raises(chapters.ChapterFailed, match="boom in the chapter") as info:
        chapters.run_chapter("99-fails", "smoke", out, root=tmp_path)
    assert "99-fails (smoke) failed in cell" in str(info.value)
    assert "\n" not in str(info.value)
    assert out.read_text() == "previous notebook"
    assert [p.name for p in out.parent.iterdir()] == ["99-fails.ipynb"]


# The chapter's helpers (rlcomp/analysis/training.py) on hand-made metadata.

def meta(env="LunarLander-v3", algo="ddqn", mean=250.0, steps=300_000, wall=599.0, clip=0.1):
    return {"env_id": env, "algo": algo, "final_eval": {"mean_return": mean},
            "train_steps": steps, "train_wall_seconds": wall, "config": {"clip": clip}}


@pytest.mark.parametrize("kwargs, expected", [
    ({}, True),
    ({"mean": 239.9}, False),
    ({"steps": 300_001}, False),
    ({"wall": 600.5}, False),
    ({"algo": "pg"}, None),
    ({"env": "HalfCheetah-v5", "algo": "pg", "mean": 3000.0, "steps": 1_000_000, "wall": 1800.0},
     True),
    ({"env": "CartPole-v1"}, None),
])
def test_meets_target(kwargs, expected):
    assert training.meets_target(meta(**kwargs)) is expected


def test_target_descriptions_and_variants():
    assert training.TARGETS["LunarLander-v3"].describe() == (
        "mean return >= 240 within 300k steps and 600 s")
    assert training.TARGETS["HalfCheetah-v5"].describe() == (
        "mean return >= 3000 within 1M steps and 1800 s")
    assert training.pg_variant(meta(algo="pg", clip=None)) == "vanilla"
    assert training.pg_variant(meta(algo="pg", clip=0.2)) == "PPO clip 0.2"
    assert training.pg_variant(meta()) == "n/a"


def test_no_checkpoints_is_said_per_environment(tmp_path):
    table = training.checkpoint_table(training.load_checkpoints(tmp_path / "missing"))
    assert table.empty and list(table.columns) == training.TABLE_COLUMNS
    note = training.coverage_note(table)
    assert "no committed checkpoints for LunarLander-v3" in note
    assert "no committed checkpoints for HalfCheetah-v5" in note
    assert "no committed policy-gradient checkpoints" in training.pg_variant_note(table)
    assert training.curve_table([]).empty
    ax = Figure().subplots()
    assert training_curves(training.curve_table([]), ax, env="LunarLander-v3").empty
    assert any("no committed checkpoints" in t.get_text() for t in ax.texts)


# What the checked cells show: portable and the verdicts every CPU agrees on.

def test_portable_keeps_the_environments_every_cpu_agrees_on():
    wide = pd.DataFrame([[1.0, 2.0, 3.0]], columns=pd.MultiIndex.from_tuples(
        [("LunarLander-v3", "a"), ("HalfCheetah-v5", "a"), ("LunarLander-v3", "b")]))
    assert list(portable(wide).columns) == [("LunarLander-v3", "a"), ("LunarLander-v3", "b")]
    long = pd.DataFrame({"env": ["LunarLander-v3", "HalfCheetah-v5"], "train_seed": [0, 0],
                         "return_mean": [1.0, 2.0]}).set_index(["env", "train_seed"])
    assert list(portable(long).index.get_level_values("env")) == ["LunarLander-v3"]
    assert portable(pd.DataFrame()).empty
    with pytest.raises(ValueError, match="portable needs"):
        portable(pd.DataFrame({"x": [1]}))


def _frame() -> pd.DataFrame:
    rows = []
    for env, scale in (("LunarLander-v3", 1.0), ("HalfCheetah-v5", 30.0)):
        for spec, method, prune, ret, size in (("random", "random", 0.0, -100.0, 0.0),
                                               ("dense", "dense", 0.0, 200.0, 1000.0),
                                               ("prune=0.1", "prune", 0.1, 190.0, 800.0),
                                               ("quant=8", "quant", 0.0, 199.0, 260.0)):
            for metric, value in (("return_mean", ret * scale), ("bytes", size),
                                  ("cpu_seconds_per_step", 1e-4)):
                rows.append({"checkpoint": f"{env}__0", "env": env, "algo": "x", "train_seed": 0,
                             "spec": spec, "method": method, "level": prune, "prune": prune,
                             "lowrank": 0.0, "finetuned": False, "metric": metric,
                             "value": value})
    return pd.DataFrame(rows)


def test_portable_claims_leave_out_timing_and_chaotic_returns():
    frames = {"01-pruning": _frame(), "03-quantization": _frame()}
    exact = portable_claims(frames)
    returns = [e for e in ENTRIES if e.chapter in frames and e.basis == "returns"]
    sizes = [e for e in ENTRIES if e.chapter in frames and e.basis == "sizes"]
    # LunarLander only (HalfCheetah's returns move with the CPU)
    assert len(exact) == len(returns) + len(sizes) and all(v.deterministic for v in exact)
    gain = [v.result for v in exact if v.result.claim.id == "minor-compression-gain"]
    assert [r.env for r in gain] == ["LunarLander-v3"]
    # normalized: (190 - -100) / (200 - -100) = 96.67% of dense, so -3.33 pp
    assert gain[0].measured.estimate == pytest.approx(-10 / 3)
    storage = [v.result.env for v in exact if v.result.claim.id == "quant-storage"]
    assert storage == ["LunarLander-v3"]
    tuned = portable_claims({"04-fine-tuning": _frame()})
    assert tuned == []  # fine-tuned returns differ between CPUs in every environment


def test_claims_html_is_a_table_with_one_row_per_claim():
    verdicts = portable_claims({"01-pruning": _frame(), "03-quantization": _frame()})
    page = claims_html(verdicts)
    assert page.startswith('<table class="table claims-table" data-claims="all">')
    assert page.count("<tr>") == len(verdicts) + 1 and "|" not in page
    timing = Verdict(verdicts[0].result, verdicts[0].link, deterministic=False)
    only = claims_html([*verdicts, timing], deterministic_only=True)
    assert 'data-claims="deterministic"' in only and only.count("<tr>") == len(verdicts) + 1


def test_headline_numbers_are_the_checkpoints_final_means():
    checkpoints = training.load_checkpoints(ROOT / "checkpoints")
    table = training.checkpoint_table(checkpoints)
    headline = training.headline_numbers(table, decimals=6)
    assert list(headline.columns) == ["return_mean"]
    recorded = sorted(round(c.meta["final_eval"]["mean_return"], 6) for c in checkpoints)
    assert sorted(headline["return_mean"]) == recorded and len(recorded) >= 2
