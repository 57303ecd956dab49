"""The committed book, built and opened in headless Chromium at 1280 px: every page reads cleanly.

Every page of the table of contents is checked as a reader meets it (:func:`page_failures`): no
Markdown table source, ``NBVAL`` marker or Python traceback in the visible text, no code or
``parameters`` cell shown, every image loaded, nothing wider than the text column unless it scrolls
in its own box, and no sideways scrolling of the page. Figures and links are checked too. All
failures of all pages are collected and reported together; a full-page screenshot of each page is
saved to ``SITE/_screenshots/PAGE.png`` (``SITE`` is the built ``_build/html``) for review.

Set ``RLCOMP_SITE_BOOK`` to a book folder that was already built (or to its ``_build/html``) to
check that site instead of building the committed book.

Each check is shown to catch its defect on small synthetic pages opened in the same browser.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them when missing).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
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
WIDTH, HEIGHT = 1280, 900
"""The browser window: a laptop screen."""

SCREENSHOT_MAX_HEIGHT = 16384
"""Chromium draws at most this many pixels in one screenshot; a longer page is cut there."""

COLUMN = "article.bd-article"
"""The main text column of the theme (pydata / sphinx-book-theme)."""

CHAPTERS_WITH_FIGURES = ("01-pruning", "02-low-rank", "03-quantization", "04-fine-tuning",
                         "06-beyond-the-poster", "07-choose")


# The site --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site's ``_build/html``: ``RLCOMP_SITE_BOOK`` if set, else the committed book."""
    prebuilt = os.environ.get("RLCOMP_SITE_BOOK")
    if prebuilt:
        html = Path(prebuilt)
        html = html if (html / "index.html").is_file() else html / "_build" / "html"
        assert (html / "index.html").is_file(), f"RLCOMP_SITE_BOOK={prebuilt}: no built site"
        return html
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
                 "--allow-file-access-from-files",
                 f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.get("about:blank")  # the window size counts the browser's frame: make the page 1280 px
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * WIDTH - inner[0], 2 * HEIGHT - inner[1])
    yield driver
    driver.quit()


def toc_pages(toc_file: Path) -> list[str]:
    """Every page of a jupyter-book ``_toc.yml``, in reading order (root, parts, sections)."""
    toc = yaml.safe_load(toc_file.read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    return pages


def site_pages(html: Path) -> list[str]:
    """The pages of the built site: the table of contents it was built from."""
    built_toc = html.parent.parent / "_toc.yml"
    return toc_pages(built_toc if built_toc.is_file() else ROOT / "_toc.yml")


def open_page(driver, url: str) -> None:
    """Load ``url`` and wait until the document and its images have finished loading."""
    driver.get(url)
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
        and d.execute_script("return Array.from(document.images).every(i => i.complete)"))


# The checks of one page: each returns the page's failures as sentences -------------------------

MARKDOWN_TABLE_LINE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$"
                                 r"|^\s*\|[^|\n]*\|[^\n]*\|\s*$")
"""A Markdown table's separator (``|---|---|``) or row (``| a | b |``) shown as text."""

ERROR_LINE = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception)\b.*:")
"""An exception line of a Python output, such as ``ValueError: bad value``."""


def _shorten(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def check_text(driver) -> list[str]:
    """The visible text has no Markdown table source, no NBVAL marker, no Python traceback."""
    text = driver.execute_script("return document.body.innerText")
    failures = []
    table_lines = [line for line in text.splitlines() if MARKDOWN_TABLE_LINE.match(line)]
    if table_lines:
        failures.append(f"Markdown table source shown as text: {_shorten(table_lines[0])!r}")
    nbval = [line for line in text.splitlines() if "NBVAL" in line]
    if nbval:
        failures.append(f"NBVAL marker shown: {_shorten(nbval[0])!r}")
    if "Traceback (most recent call last)" in text:
        failures.append("Python traceback shown ('Traceback (most recent call last)')")
    return failures


def check_output_errors(driver) -> list[str]:
    """No cell output shows an error: no traceback output, no ``SomethingError:`` line."""
    texts = driver.execute_script(
        "return Array.from(document.querySelectorAll('div.cell_output, div.output'))"
        ".filter(e => e.checkVisibility({visibilityProperty: true})).map(e => e.innerText)")
    failures = []
    for text in texts:
        errors = [line for line in text.splitlines() if ERROR_LINE.match(line)]
        if errors:
            failures.append(f"error in an output: {_shorten(errors[0])!r}")
            break
    shown = driver.execute_script(
        "return document.querySelectorAll('div.output.traceback, div.output.error').length")
    if shown:
        failures.append(f"{shown} error output(s) rendered")
    return failures


def check_code_inputs(driver) -> list[str]:
    """No code is shown unless its cell was tagged ``show-input``."""
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('div.cell_input'))"
        ".filter(e => e.checkVisibility({visibilityProperty: true}) && e.innerText.trim()"
        " && !e.closest('.tag_show-input'))"
        ".map(e => e.innerText)")
    if not shown:
        return []
    return [f"{len(shown)} code cell(s) shown, the first: {_shorten(shown[0], 60)!r}"]


def check_parameters(driver) -> list[str]:
    """No ``parameters`` or papermill ``injected-parameters`` cell is on the page."""
    found = driver.execute_script(
        "return new Set(Array.from(document.querySelectorAll("
        "'.tag_parameters, .tag_injected-parameters, div.cell_input'))"
        ".filter(e => e.checkVisibility({visibilityProperty: true})"
        " && (!e.matches('div.cell_input') || /^\\s*# Parameters/.test(e.innerText)))"
        ".map(e => e.closest('.cell') || e)).size")
    return [f"{found} parameters cell(s) shown"] if found else []


def check_images(driver) -> list[str]:
    """Every image has loaded, with a non-zero natural size."""
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.getAttribute('src'))")
    return [f"image did not load: {_shorten(src or '(no src)', 80)}" for src in broken]


def check_page_overflow(driver) -> list[str]:
    """The page does not scroll sideways."""
    scroll, inner = driver.execute_script(
        "return [Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),"
        " window.innerWidth]")
    if scroll > inner:
        return [f"the page scrolls sideways: {scroll} px wide in a {inner} px window"]
    return []


WIDE_ELEMENTS_JS = """
const column = document.querySelector(arguments[0]);
if (column === null) { return ['no text column ' + arguments[0]]; }
const box = column.getBoundingClientRect();
const scrolls = el => {
  for (let a = el.parentElement; a !== null && a !== column; a = a.parentElement) {
    const overflow = getComputedStyle(a).overflowX;
    if (overflow === 'auto' || overflow === 'scroll') { return true; }
  }
  return false;
};
const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + (typeof el.className === 'string' && el.className.trim()
     ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
const wide = [];
for (const el of column.querySelectorAll('*')) {
  if (wide.some(w => w.contains(el))) { continue; }
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) { continue; }
  const style = getComputedStyle(el);
  if (style.position === 'fixed' || style.visibility === 'hidden') { continue; }
  if ((r.right > box.right + 1 || r.left < box.left - 1) && !scrolls(el)) { wide.push(el); }
}
return wide.slice(0, 5).map(el => describe(el) + ' is '
  + Math.round(el.getBoundingClientRect().width) + ' px wide, reaching '
  + Math.round(el.getBoundingClientRect().right - box.right) + ' px past the '
  + Math.round(box.width) + ' px text column');
"""


def check_wide_elements(driver) -> list[str]:
    """Nothing is wider than the text column except inside a box that scrolls sideways."""
    return [f"too wide: {line}" for line in driver.execute_script(WIDE_ELEMENTS_JS, COLUMN)]


PAGE_CHECKS: tuple[Callable[[object], list[str]], ...] = (
    check_text, check_output_errors, check_code_inputs, check_parameters, check_images,
    check_page_overflow, check_wide_elements)


def page_failures(driver) -> list[str]:
    """Every check of :data:`PAGE_CHECKS` on the page open in ``driver``."""
    return [failure for check in PAGE_CHECKS for failure in check(driver)]


def save_full_page_screenshot(driver, path: Path) -> None:
    """A PNG of the whole page at the window's width (cut at :data:`SCREENSHOT_MAX_HEIGHT`)."""
    height = driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
    width = driver.execute_script("return window.innerWidth")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(int(height), SCREENSHOT_MAX_HEIGHT),
        "deviceScaleFactor": 1, "mobile": False})
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def figure_and_link_failures(driver, page: str) -> list[str]:
    """Every figure has a loaded image, chapters have their figures, internal links resolve."""
    failures = []
    figures = driver.execute_script(
        "return Array.from(document.querySelectorAll('figure')).map(f => [f.id,"
        " (i => i !== null && i.complete && i.naturalWidth > 0)(f.querySelector('img'))])")
    failures += [f"figure {name or '(no id)'} has no loaded image"
                 for name, loaded in figures if not loaded]
    if page in CHAPTERS_WITH_FIGURES and len(figures) < 2:
        failures.append(f"expected the chapter's figures, found {[f for f, _ in figures]}")
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    for href in sorted(set(links)):
        url, fragment = urldefrag(href)
        parsed = urlparse(url)
        if parsed.scheme != "file":
            continue
        target = Path(parsed.path)
        if not target.exists():
            failures.append(f"broken link {href}")
        elif fragment and target.suffix == ".html":
            if f'id="{fragment}"' not in target.read_text(errors="replace"):
                failures.append(f"broken anchor {href}")
    return failures


# The site, page by page ------------------------------------------------------------------------

@pytest.mark.slow
def test_every_page_reads_cleanly_with_its_figures_and_working_links(site, browser):
    """Every page of the table of contents, checked as a reader meets it; all failures listed."""
    screenshots = site / "_screenshots"
    failures: dict[str, list[str]] = {}
    for page in site_pages(site):
        path = site / f"{page}.html"
        if not path.is_file():
            failures[page] = [f"{page}.html was not built"]
            continue
        open_page(browser, path.as_uri())
        found = []
        title = browser.title
        if not title or "404" in title:
            found.append(f"no title or a 404 page: {title!r}")
        found += page_failures(browser)
        found += figure_and_link_failures(browser, page)
        save_full_page_screenshot(browser, screenshots / f"{page}.png")
        if found:
            failures[page] = found
    report = "\n".join(f"{page}:\n" + "\n".join(f"  - {f}" for f in found)
                       for page, found in failures.items())
    assert not failures, f"pages that do not read cleanly (screenshots in {screenshots}):\n{report}"


@pytest.mark.slow
@pytest.mark.parametrize("page", ["05-verdicts", "intro"])
def test_verdict_table_is_a_rendered_table_with_one_row_per_claim(site, browser, page):
    """The verdicts show as an HTML table (not Markdown source), one row per claim of the study,
    measure and environment."""
    open_page(browser, (site / f"{page}.html").as_uri())
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.claims-table[data-claims=\"all\"]'))"
        ".map(t => t.querySelectorAll('tbody tr').length)")
    assert rows == [len(ENTRIES) * len(STUDY_ENVS)], f"{page}: verdict tables with rows {rows}"
    text = browser.execute_script("return document.body.innerText")
    assert "| ---" not in text and "|---" not in text, f"{page}: Markdown table source shown"


# The checks catch their defects: small synthetic pages -----------------------------------------

PNG_1PX = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
           "/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==")

CLEAN_BODY = f"""
<article class="bd-article" style="width: 600px">
  <h1>A clean page</h1>
  <p>Prose with a pipe | in it, and a formula a|b|c written inline.</p>
  <div class="cell tag_remove-input"><div class="cell_output">
    <div class="output text_html" style="overflow-x: auto">
      <table style="width: 1500px"><tr><td>1.0</td><td>2.0</td></tr></table>
    </div>
  </div></div>
  <div class="cell tag_show-input"><div class="cell_input"><pre>print("shown on purpose")</pre>
  </div></div>
  <details><div class="cell_input"><pre>hidden = True</pre></div></details>
  <div class="cell_input" style="display: none"><pre>x = 1</pre></div>
  <img src="{PNG_1PX}" alt="a dot">
</article>
"""

DEFECTS = {
    "markdown table": (check_text, "<p>| a | b |<br>|---|---|</p>", "Markdown table"),
    "markdown separator": (check_text, "<pre>| --- | :---: |</pre>", "Markdown table"),
    "NBVAL": (check_text, "<pre># NBVAL_CHECK_OUTPUT\nx</pre>", "NBVAL"),
    "traceback": (check_text, "<pre>Traceback (most recent call last):\n  File x</pre>",
                  "traceback"),
    "error line": (check_output_errors,
                   '<div class="cell_output"><pre>KeyError: \'metric\'</pre></div>', "KeyError"),
    "error output": (check_output_errors,
                     '<div class="output traceback"><pre>oops</pre></div>', "error output"),
    "code input": (check_code_inputs,
                   '<div class="cell"><div class="cell_input"><pre>x = 1</pre></div></div>',
                   "code cell"),
    "parameters": (check_parameters, '<div class="cell tag_parameters"><div class="cell_output">'
                   '<pre>profile</pre></div></div>', "parameters"),
    "injected parameters": (check_parameters, '<div class="cell tag_show-input"><div '
                            'class="cell_input"><pre># Parameters\nprofile = "full"</pre></div>'
                            '</div>', "parameters"),
    "missing image": (check_images, '<img src="no-such-image.png" alt="">', "did not load"),
    "empty image": (check_images, '<img src="data:image/png;base64," alt="">', "did not load"),
    "too wide": (check_wide_elements, '<div style="width: 900px">a wide block</div>',
                 "too wide"),
    "too wide table": (check_wide_elements, '<table style="width: 900px"><tr><td>1</td></tr>'
                       "</table>", "too wide"),
}


def synthetic_page(tmp_path: Path, body: str, outside: str = "", head: str = "") -> str:
    path = tmp_path / "page.html"
    path.write_text(f"<!DOCTYPE html><html><head><title>synthetic</title>{head}</head>"
                    f"<body style='margin: 0'>{body}{outside}</body></html>")
    return path.as_uri()


@pytest.mark.slow
def test_a_clean_page_passes_every_check(browser, tmp_path):
    open_page(browser, synthetic_page(tmp_path, CLEAN_BODY))
    assert page_failures(browser) == []


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_check_catches_its_defect(browser, tmp_path, defect):
    check, snippet, expected = DEFECTS[defect]
    body = CLEAN_BODY.replace("</article>", snippet + "</article>")
    open_page(browser, synthetic_page(tmp_path, body))
    found = check(browser)
    assert found and expected in found[0], f"{defect}: {check.__name__} reported {found}"
    assert found == [f for f in page_failures(browser) if f in found]


@pytest.mark.slow
def test_page_overflow_is_caught(browser, tmp_path):
    open_page(browser, synthetic_page(tmp_path, CLEAN_BODY,
                                      outside='<div style="width: 3000px">wide</div>'))
    found = check_page_overflow(browser)
    assert found and "scrolls sideways" in found[0]


@pytest.mark.slow
def test_missing_text_column_is_reported(browser, tmp_path):
    open_page(browser, synthetic_page(tmp_path, "<main><p>no article</p></main>"))
    assert check_wide_elements(browser) == [f"too wide: no text column {COLUMN}"]


@pytest.mark.slow
def test_book_stylesheet_puts_a_wide_output_table_in_a_scroll_box(browser, tmp_path):
    """A pandas table of many columns, as myst-nb renders it, stays in the column with the
    book's stylesheet and runs past it without."""
    columns = "".join(f"<th>metric_{i}</th>" for i in range(30))
    values = "".join(f"<td>{i * 1234.5678:.4f}</td>" for i in range(30))
    body = ('<article class="bd-article" style="width: 600px"><div class="cell tag_remove-input">'
            '<div class="cell_output docutils container"><div class="output text_html">'
            f'<table class="dataframe"><thead><tr><th></th>{columns}</tr></thead>'
            f"<tbody><tr><th>LunarLander-v3</th>{values}</tr></tbody></table>"
            "</div></div></div></article>")
    css = (ROOT / "book" / "_static" / "rlcomp.css").as_uri()
    open_page(browser, synthetic_page(tmp_path, body))
    assert check_wide_elements(browser), "the unstyled table should run past the column"
    open_page(browser, synthetic_page(tmp_path, body, head=f'<link rel="stylesheet" href="{css}">'))
    assert check_wide_elements(browser) == []
    assert check_page_overflow(browser) == []
    cell = browser.execute_script(
        "const td = document.querySelector('table.dataframe td'); const s = getComputedStyle(td);"
        "return [s.textAlign, s.whiteSpace]")
    assert cell == ["right", "nowrap"]


@pytest.mark.slow
def test_screenshot_covers_the_whole_page(browser, tmp_path):
    open_page(browser, synthetic_page(tmp_path, CLEAN_BODY,
                                      outside='<div style="height: 2500px">tall</div>'))
    shot = tmp_path / "shots" / "page.png"
    save_full_page_screenshot(browser, shot)
    header = shot.read_bytes()[:24]
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert width == WIDTH and height > 2500
    assert browser.execute_script("return window.innerHeight") == HEIGHT


def test_toc_pages_reads_chapters_parts_and_sections(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: intro\nchapters:\n  - file: a\n    sections:\n"
                   "      - file: a1\n  - file: b\n")
    assert toc_pages(toc) == ["intro", "a", "a1", "b"]
    toc.write_text("format: jb-book\nroot: intro\nparts:\n  - caption: P\n    chapters:\n"
                   "      - file: c\n")
    assert toc_pages(toc) == ["intro", "c"]
