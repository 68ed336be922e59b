"""Checks of the built HTML book in headless Chromium: math, images, sliders, console, network.

Run after building the book::

    jupyter-book build .
    pytest -m browser tests/browser

``DAE_TUTOR_BOOK_HTML`` points at another build (default ``_build/html``). See ``conftest.py``
for the server and the browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # collected by the default run too; the driver fixture fails with an install hint
    pass

from .conftest import PAGE_TIMEOUT, Visit, load_page

pytestmark = pytest.mark.browser

LANDING = "index.html"  # jupyter-book writes it; it redirects to the root page when that is not index
DEMO = "how_to_use.html"  # how_to_use.ipynb: calls dae_tutor.widgets.slider
CHAPTERS = [
    f"chapters/{nb.stem}.html" for nb in sorted((Path(__file__).parents[2] / "chapters").glob("*.ipynb"))
]
PAGES = [LANDING, DEMO, *CHAPTERS]
SLIDER_PAGES = [DEMO, *CHAPTERS]  # every chapter has at least one slider (DESIGN.md: widgets)

# State of one static slider: its range input, the frames shown, the value label.
_SLIDER_STATE = """
const root = arguments[0];
const input = root.querySelector("input[type=range]");
const frames = Array.from(root.querySelectorAll(".dae-slider-frames img"));
const shown = frames.map((img, i) => [i, img]).filter(([i, img]) => img.checkVisibility());
return {
  value: Number(input.value), min: Number(input.min), max: Number(input.max), disabled: input.disabled,
  frames: frames.length, shown: shown.map(([i]) => i), src: shown.length ? shown[0][1].src : null,
  label: root.querySelector("output").textContent,
};
"""

_MOVE_SLIDER = """
const input = arguments[0].querySelector("input[type=range]");
input.value = arguments[1];
input.dispatchEvent(new Event("input", {bubbles: true}));
"""


# TeX that MathJax did not typeset, as a reader would see it: display or inline delimiters, a
# $...$ pair, or a backslash command (\\sigma, \\frac) in the visible (non-code) text.
_RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\$[^$\s][^$]*?\$|\\[A-Za-z]{2,}")


def _raw_tex(text: str) -> list[str]:
    """Each piece of raw TeX in ``text``, with a little context."""
    return [text[max(0, m.start() - 40) : m.end() + 40] for m in _RAW_TEX.finditer(text)]


def _severe(console: list[dict]) -> list[str]:
    return [entry["message"] for entry in console if entry["level"] == "SEVERE"]


@pytest.mark.parametrize("page", PAGES)
def test_math_is_typeset(visit: Callable[[str], Visit], page: str) -> None:
    seen = visit(page)
    assert seen.mathjax == "typeset", f"{page}: {seen.mathjax} (is MathJax served from the build itself?)"
    assert seen.math > 0, f"{page}: no math on the page (expected at least one formula to check typesetting)"
    assert seen.typeset > 0, f"{page}: MathJax produced no output (no <mjx-container>)"
    assert not seen.untypeset, f"{page}: formulas left as TeX: {seen.untypeset}"
    assert not seen.math_errors, f"{page}: MathJax could not typeset: {seen.math_errors}"
    raw = _raw_tex(seen.text)
    assert not raw, f"{page}: raw TeX in the visible text: {raw}"


def test_raw_tex_detector_flags_untypeset_math() -> None:
    """The control for the check above: the pieces chapter 1 once showed are caught, prose is not."""
    assert _raw_tex("so $p_\\sigma = p + \\frac{\\sigma^2}{2}") and _raw_tex("is \\(x\\) here")
    assert _raw_tex("the error $O(h)$ falls") and _raw_tex("$$ x $$")
    assert not _raw_tex("costs 5 $ and a σ² of 0.1 (r(x) − x)/σ²")


@pytest.mark.parametrize("term", ["score", "Hessian"])
def test_search_excerpts_show_no_raw_tex(driver, book_url: str, term: str) -> None:
    load_page(driver, book_url, f"search.html?q={term}")
    WebDriverWait(driver, PAGE_TIMEOUT).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-results p.context")) >= 3
    )
    excerpts = [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#search-results p.context")]
    raw = [piece for text in excerpts for piece in _raw_tex(text)]
    assert not raw, f"search for {term!r}: raw TeX in the result excerpts: {raw}"


@pytest.mark.parametrize("page", PAGES)
def test_images_have_loaded(visit: Callable[[str], Visit], page: str) -> None:
    broken = visit(page).broken_images
    assert not broken, f"{page}: images that did not load: {broken}"


@pytest.mark.parametrize("page", SLIDER_PAGES)
def test_static_slider_changes_frame(driver, book_url: str, page: str) -> None:
    load_page(driver, book_url, page)  # a fresh load: this test moves things
    sliders = driver.find_elements(By.CSS_SELECTOR, ".dae-slider")
    assert sliders, (
        f"{page}: no static slider (.dae-slider). If the page shows an empty widget instead, the book "
        "needs myst-nb to prefer text/html over the widget view (nb_mime_priority_overrides in _config.yml)"
    )
    ids = driver.execute_script(
        "return Array.from(document.querySelectorAll('.dae-slider, .dae-slider [id]')).map(e => e.id)"
    )
    assert len(ids) == len(set(ids)), f"{page}: slider element ids repeat: {sorted(ids)}"

    for number, root in enumerate(sliders):
        before = driver.execute_script(_SLIDER_STATE, root)
        assert not before["disabled"], f"slider {number}: its script did not run (input still disabled)"
        assert before["min"] == 0 and before["max"] == before["frames"] - 1, f"slider {number}: {before}"
        assert before["shown"] == [before["value"]], f"slider {number}: shows frames {before['shown']}"
        if before["frames"] < 2:
            continue
        target = (before["value"] + 1) % before["frames"]
        driver.execute_script(_MOVE_SLIDER, root, target)
        after = driver.execute_script(_SLIDER_STATE, root)
        assert after["shown"] == [target], f"slider {number}: moved to {target}, shows {after['shown']}"
        assert after["src"] != before["src"], f"slider {number}: the frame did not change"
        assert after["label"] != before["label"], (
            f"slider {number}: the value label stayed {after['label']!r}"
        )

    # A reader's keystroke, not only a scripted event, moves the first slider.
    root = sliders[0]
    before = driver.execute_script(_SLIDER_STATE, root)
    if before["frames"] >= 2:
        key = Keys.ARROW_LEFT if before["value"] == before["max"] else Keys.ARROW_RIGHT
        step = -1 if key == Keys.ARROW_LEFT else 1
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", root)
        root.find_element(By.CSS_SELECTOR, "input[type=range]").send_keys(key)
        WebDriverWait(driver, PAGE_TIMEOUT).until(
            lambda d: d.execute_script(_SLIDER_STATE, root)["shown"] == [before["value"] + step]
        )
        after = driver.execute_script(_SLIDER_STATE, root)
        assert after["label"] != before["label"] and after["src"] != before["src"]

    errors = _severe(driver.get_log("browser"))
    assert not errors, f"{page}: console errors while moving the sliders: {errors}"


# The header of every chapter's closing table (DESIGN.md: each chapter ends with "paper vs. this book").
_COMPARISON_TABLES = """
return Array.from(document.querySelectorAll('table')).filter(
    t => Array.from(t.querySelectorAll('th')).some(th => th.textContent.includes('why they differ'))
).map(t => t.querySelectorAll('tbody tr').length);
"""


@pytest.mark.parametrize("page", CHAPTERS)
def test_paper_vs_book_table_is_a_rendered_table(driver, book_url: str, page: str) -> None:
    load_page(driver, book_url, page)
    rows = driver.execute_script(_COMPARISON_TABLES)
    assert rows and min(rows) > 0, (
        f"{page}: no rendered table with a 'why they differ' column (a Markdown output left as text? "
        "see nb_render_markdown_format in _config.yml)"
    )


@pytest.mark.parametrize("page", PAGES)
def test_console_has_no_errors(visit: Callable[[str], Visit], page: str) -> None:
    errors = _severe(visit(page).console)
    assert not errors, f"{page}: console errors:\n" + "\n".join(errors)


@pytest.mark.parametrize("page", PAGES)
def test_no_requests_outside_local_server(visit: Callable[[str], Visit], book_url: str, page: str) -> None:
    requests = visit(page).requests
    assert requests, f"{page}: no requests recorded (the network log is not working)"
    outside = sorted(
        {url for url in requests if not url.startswith(book_url + "/") and url.split(":", 1)[0] != "data"}
    )
    assert not outside, f"{page}: requests outside {book_url}: {outside}"
