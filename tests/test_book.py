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
