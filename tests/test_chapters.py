"""Presentation tags of executed chapters: what a reader of the book sees of each code cell."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from rlcomp import chapters
from rlcomp.chapters import cell_presentation_tags, presentation_tags


def tagged(source: str = "x = 1", tags: list[str] | None = None, cell_type: str = "code"):
    make = new_code_cell if cell_type == "code" else new_markdown_cell
    cell = make(source)
    if tags is not None:
        cell.metadata["tags"] = list(tags)
    return cell


@pytest.mark.parametrize(("tags", "expected"), [
    (None, ["remove-input"]),
    ([], ["remove-input"]),
    (["remove-stderr"], ["remove-stderr", "remove-input"]),
    (["remove-output"], ["remove-output", "remove-input"]),
    (["show-input"], ["show-input"]),
    (["hide-input"], ["hide-input"]),
    (["remove-input"], ["remove-input"]),
    (["remove-cell"], ["remove-cell"]),
    (["parameters"], ["parameters", "remove-cell"]),
    (["injected-parameters"], ["injected-parameters", "remove-cell"]),
    (["parameters", "remove-cell"], ["parameters", "remove-cell"]),
])
def test_code_cell_tags(tags, expected):
    assert cell_presentation_tags(tagged(tags=tags)) == expected


@pytest.mark.parametrize(("tags", "expected"), [
    (None, ["remove-input"]),
    (["show-input"], ["show-input", "remove-input"]),
    (["hide-input"], ["hide-input", "remove-input"]),
    (["remove-output", "show-input"], ["remove-output", "show-input", "remove-input"]),
    (["remove-cell"], ["remove-cell"]),
    (["parameters"], ["parameters", "remove-cell"]),
])
def test_a_cell_with_an_nbval_marker_never_shows_its_code(tags, expected):
    for source in ("# NBVAL_CHECK_OUTPUT\ntable", "x = 1\n  #NBVAL_IGNORE_OUTPUT\nx",
                   "x = f()  # NBVAL_SKIP"):
        assert cell_presentation_tags(tagged(source, tags)) == expected, source


def test_markdown_cells_keep_their_tags():
    assert cell_presentation_tags(tagged("# Title", None, "markdown")) == []
    assert cell_presentation_tags(tagged("NBVAL_x", ["note"], "markdown")) == ["note"]


def test_list_sources_are_read_as_text():
    cell = tagged(tags=["show-input"])
    cell.source = ["# NBVAL_CHECK_OUTPUT\n", "x\n"]
    assert cell_presentation_tags(cell) == ["show-input", "remove-input"]


def notebook():
    nb = new_notebook(cells=[
        new_markdown_cell("# Chapter"),
        tagged('profile = "full"', ["parameters"]),
        tagged('# Parameters\nprofile = "smoke"\n', ["injected-parameters"]),
        tagged("import numpy", ["custom", "remove-stderr"]),
        tagged("table", ["show-input"]),
        tagged("# NBVAL_CHECK_OUTPUT\nnumbers"),
        tagged("fig", ["remove-output"]),
    ])
    nb.cells[5].outputs = [new_output("execute_result", {"text/plain": "1"}, execution_count=1)]
    return nb


def test_presentation_tags_keeps_other_tags_sources_and_outputs_and_is_idempotent():
    nb = notebook()
    before = copy.deepcopy(nb)
    assert presentation_tags(nb) is nb
    assert [c.metadata.get("tags") for c in nb.cells] == [
        None, ["parameters", "remove-cell"], ["injected-parameters", "remove-cell"],
        ["custom", "remove-stderr", "remove-input"], ["show-input"],
        ["remove-input"], ["remove-output", "remove-input"]]
    for cell, old in zip(nb.cells, before.cells, strict=True):
        assert cell.source == old.source
        assert cell.get("outputs") == old.get("outputs")
        assert {k: v for k, v in cell.metadata.items() if k != "tags"} == \
               {k: v for k, v in old.metadata.items() if k != "tags"}
    once = copy.deepcopy(nb)
    assert presentation_tags(nb) == once


def write(path, nb) -> bytes:
    nbformat.write(nb, path)
    return path.read_bytes()


def test_retag_rewrites_only_tags_and_leaves_a_tagged_notebook_alone(tmp_path):
    path = tmp_path / "chapter.ipynb"
    original = write(path, notebook())
    assert chapters.retag([path]) == [True]
    retagged = nbformat.read(path, as_version=4)
    assert retagged == presentation_tags(nbformat.reads(original.decode(), as_version=4))
    expected = nbformat.writes(retagged).encode()
    assert path.read_bytes() == expected
    stat = path.stat()
    assert chapters.retag([path]) == [False]
    assert path.read_bytes() == expected and path.stat().st_mtime_ns == stat.st_mtime_ns


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rlcomp.chapters", *map(str, args)],
                          cwd=chapters.ROOT, capture_output=True, text=True, timeout=120)


def test_retag_command_rewrites_every_notebook(tmp_path):
    paths = [tmp_path / "a.ipynb", tmp_path / "b.ipynb"]
    for path in paths:
        write(path, notebook())
    run = run_cli("retag", *paths)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"retagged {p}" for p in paths]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        assert nb == presentation_tags(copy.deepcopy(nb))
    assert run_cli("retag", *paths).stdout.splitlines() == [f"unchanged {p}" for p in paths]


@pytest.mark.parametrize("bad", ["missing.ipynb", "folder.ipynb", "text.md", "json.ipynb",
                                 "broken.ipynb"])
def test_retag_command_refuses_a_bad_path_in_one_line_and_changes_nothing(tmp_path, bad, capsys):
    good = tmp_path / "good.ipynb"
    original = write(good, notebook())
    (tmp_path / "folder.ipynb").mkdir()
    (tmp_path / "text.md").write_text("# not a notebook\n")
    (tmp_path / "json.ipynb").write_text('{"a": 1}')
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    assert chapters.main(["retag", str(good), str(tmp_path / bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlcomp.chapters: ") and bad in lines[0], lines
    assert good.read_bytes() == original


def test_retag_command_without_a_path_is_a_usage_error():
    run = run_cli("retag")
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "PATH" in run.stderr
    assert "Traceback" not in run.stderr


def test_retag_is_atomic_a_failed_write_leaves_the_notebook_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "chapter.ipynb"
    original = write(path, notebook())

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        chapters.retag([path])
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chapter.ipynb"]


@pytest.mark.slow
def test_run_chapter_writes_a_tagged_notebook(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00-tiny.py").write_text(
        '# %% [markdown]\n# # Tiny\n\n# %% tags=["parameters"]\nprofile = "full"\n\n'
        "# %%\nx = 6 * 7\nx\n\n# %%\n# NBVAL_CHECK_OUTPUT\nprint(x)\n")
    out = chapters.run_chapter("00-tiny", "smoke", tmp_path / "tiny.ipynb", root=tmp_path,
                               command=["test"])
    nb = nbformat.read(out, as_version=4)
    assert [c.metadata.get("tags", []) for c in nb.cells] == [
        [], ["parameters", "remove-cell"], ["injected-parameters", "remove-cell"],
        ["remove-input"], ["remove-input"]]
    assert nb.cells[4].outputs[0]["text"] == "42\n"
