"""The book builds: configuration in one place, and a smoke chapter rendered by jupyter-book -W."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from rlcomp import chapters

ROOT = chapters.ROOT
BOOK = ROOT / "book"


@pytest.mark.parametrize("name", ["_config.yml", "_toc.yml"])
def test_book_configuration_links_to_the_top_level_file(name):
    link = BOOK / name
    assert link.is_symlink()
    assert os.readlink(link) == f"../{name}"
    assert link.resolve() == (ROOT / name).resolve()


def test_configuration_renders_and_does_not_execute():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert "_build" in config["exclude_patterns"]
    for bib in config.get("bibtex_bibfiles", []):
        assert (BOOK / bib).is_file()


def test_every_chapter_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [entry["file"] for entry in toc["chapters"]]
    for name in chapters.chapter_names():
        assert name in files


@pytest.mark.slow
def test_smoke_chapter_builds_into_the_book(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(BOOK, book, symlinks=False,
                    ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    notebook = book / "00-setup.ipynb"  # replaced by a fresh smoke execution; the rest as committed
    notebook.unlink()
    run = subprocess.run(
        [sys.executable, "-m", "rlcomp.chapters", "run", "00-setup", "--profile", "smoke",
         "--out", str(notebook)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-2000:]

    meta = nbformat.read(notebook, as_version=4).metadata["rlcomp"]
    assert meta["profile"] == "smoke"
    assert meta["chapter"] == "00-setup"
    assert meta["command"].startswith("python -m rlcomp.chapters run 00-setup --profile smoke")
    assert "git_commit" in meta and meta["date"]
    assert {"platform", "python", "torch"} <= set(meta["machine"])

    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run([str(jupyter_book), "build", str(book), "-W", "-n", "--keep-going"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    page = (book / "_build" / "html" / "00-setup.html").read_text()
    assert "<table" in page
    assert "LunarLander-v3" in page and "HalfCheetah-v5" in page
    assert 'id="fig-training-curves"' in page
    assert "Traceback" not in page


def cells_not_tagged_for_readers(path: Path) -> list[str]:
    """The cells of the notebook at ``path`` whose tags differ from :func:`presentation_tags`."""
    nb = nbformat.read(path, as_version=4)
    wrong = []
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        wanted = chapters.cell_presentation_tags(cell)
        if tags != wanted:
            wrong.append(f"{path.name} cell {index}: tags {tags}, needs {wanted}")
    return wrong


def test_committed_chapters_carry_the_presentation_tags():
    """Code hidden, parameters removed: run ``python -m rlcomp.chapters retag book/*.ipynb``."""
    notebooks = sorted(BOOK.glob("*.ipynb"))
    assert notebooks
    wrong = [line for path in notebooks for line in cells_not_tagged_for_readers(path)]
    assert not wrong, "\n".join(wrong[:20])


def test_an_untagged_chapter_is_caught(tmp_path):
    copy = tmp_path / "00-setup.ipynb"
    nb = nbformat.read(BOOK / "00-setup.ipynb", as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    nbformat.write(nb, copy)
    wrong = cells_not_tagged_for_readers(copy)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert len(wrong) == len(code_cells) > 0
    chapters.retag([copy])
    assert cells_not_tagged_for_readers(copy) == []
