"""The committed book, built and opened in headless Chromium: pages load, figures load, links work.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them when missing).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest
import yaml
from selenium.webdriver.support.ui import WebDriverWait

from rlcomp import chapters
from rlcomp.analysis.verdict_table import ENTRIES
from rlcomp.envs import STUDY_ENVS

ROOT = chapters.ROOT
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    book = tmp_path_factory.mktemp("site") / "book"
    shutil.copytree(ROOT / "book", book, symlinks=False,
                    ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run([str(jupyter_book), "build", str(book), "-W", "-n", "--keep-going"],
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    return book / "_build" / "html"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("chromium and chromedriver are needed (apt-get install chromium "
                    "chromium-driver; make test does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--allow-file-access-from-files"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc["chapters"]]


@pytest.mark.slow
def test_every_page_loads_with_its_figures_and_working_links(site, browser):
    for page in pages():
        path = site / f"{page}.html"
        assert path.is_file(), f"{page}.html was not built"
        browser.get(path.as_uri())
        WebDriverWait(browser, 60).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
            and d.execute_script("return Array.from(document.images).every(i => i.complete)"))
        title = browser.title
        assert title and "404" not in title, page
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth])")
        for src, complete, width in images:
            assert complete and width > 0, f"{page}: image {src} did not load"
        figures = browser.execute_script(
            "return Array.from(document.querySelectorAll('figure')).map(f => f.id)")
        for figure in figures:
            loaded = browser.execute_script(
                "const i = document.getElementById(arguments[0]).querySelector('img');"
                "return i !== null && i.complete && i.naturalWidth > 0", figure)
            assert loaded, f"{page}: figure {figure} has no loaded image"
        if page in ("01-pruning", "02-low-rank", "03-quantization", "04-fine-tuning",
                    "06-beyond-the-poster", "07-choose"):
            assert len(figures) >= 2, f"{page}: expected the chapter's figures, found {figures}"
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
        for href in links:
            url, fragment = urldefrag(href)
            parsed = urlparse(url)
            if parsed.scheme != "file":
                continue
            target = Path(parsed.path)
            assert target.exists(), f"{page}: broken link {href}"
            if fragment and target.suffix == ".html":
                html = target.read_text(errors="replace")
                assert f'id="{fragment}"' in html, f"{page}: broken anchor {href}"


@pytest.mark.slow
@pytest.mark.parametrize("page", ["05-verdicts", "intro"])
def test_verdict_table_is_a_rendered_table_with_one_row_per_claim(site, browser, page):
    """The verdicts show as an HTML table (not Markdown source), one row per claim of the study,
    measure and environment."""
    browser.get((site / f"{page}.html").as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.readyState") == "complete")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.claims-table[data-claims=\"all\"]'))"
        ".map(t => t.querySelectorAll('tbody tr').length)")
    assert rows == [len(ENTRIES) * len(STUDY_ENVS)], f"{page}: verdict tables with rows {rows}"
    text = browser.execute_script("return document.body.innerText")
    assert "| ---" not in text and "|---" not in text, f"{page}: Markdown table source shown"
