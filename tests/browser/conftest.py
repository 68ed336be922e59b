"""Fixtures for the browser tests: the built book, a local web server, and headless Chromium.

The book is served from ``DAE_TUTOR_BOOK_HTML`` (default ``<repo>/_build/html``) by a
``http.server`` on 127.0.0.1 with an ephemeral port, in a thread (``file://`` pages cannot
load MathJax's fonts). Chromium is the Debian package (``apt-get install -y chromium
chromium-driver``), driven by its own chromedriver; nothing is downloaded.

Tests are skipped when the book has not been built, and fail (at setup) when Chromium or
chromedriver is missing.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as error:  # the default test run must still collect; the driver fixture fails
    SELENIUM_MISSING: ImportError | None = error
else:
    SELENIUM_MISSING = None

REPO = Path(__file__).resolve().parents[2]
HTML_ENV = "DAE_TUTOR_BOOK_HTML"
CHROMIUM = os.environ.get("DAE_TUTOR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DAE_TUTOR_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = "install the Debian packages with `apt-get install -y chromium chromium-driver`"

# Seconds to wait for a page (its load event, MathJax's typesetting, its images).
PAGE_TIMEOUT = 60


def book_html_dir() -> Path:
    """The directory of the built HTML book."""
    return Path(os.environ.get(HTML_ENV, REPO / "_build" / "html")).resolve()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the book's directory without logging every request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        # Chromium asks for /favicon.ico at the server's root on its own when a page names no icon.
        # That probe is the browser's, not a request of the page, and a book published under a
        # sub-path (GitHub Pages) never owns that root. Answering it with 204 No Content keeps the
        # console's 404 for it out of the error check; a favicon the page itself links is served
        # (or fails) as usual, since it lives under _static/.
        if self.path.split("?", 1)[0] == "/favicon.ico" and not Path(self.translate_path(self.path)).exists():
            self.send_response(204)
            self.end_headers()
            return None
        return super().send_head()


@pytest.fixture(scope="session")
def book_html() -> Path:
    """The built book; skips every browser test when it has not been built."""
    html = book_html_dir()
    if not (html / "index.html").is_file():
        pytest.skip(
            f"no built book at {html} (index.html missing): run `jupyter-book build .` first, "
            f"or point {HTML_ENV} at a built book's html directory"
        )
    return html


@pytest.fixture(scope="session")
def book_url(book_html: Path) -> Iterator[str]:
    """The origin (``http://127.0.0.1:PORT``) of a local server over the built book."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def driver(book_html: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One headless Chromium for the session, with console and network logs enabled."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (Path(path).is_file() or shutil.which(path))]
    if missing:
        pytest.fail(f"browser tests need Chromium and chromedriver; missing {missing}: {INSTALL_HINT}")
    if SELENIUM_MISSING is not None:
        pytest.fail(f"browser tests need selenium (pip install -r requirements.txt): {SELENIUM_MISSING}")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        # Any host but the local server resolves to nothing, so a page that tries to reach the
        # internet fails here the same way with or without a network (and the network log shows it).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # Console messages (browser) and DevTools network events (performance) for the checks.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    chrome = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    chrome.set_page_load_timeout(PAGE_TIMEOUT)
    chrome.set_script_timeout(PAGE_TIMEOUT)
    try:
        yield chrome
    finally:
        chrome.quit()


@dataclass
class Visit:
    """What one page load showed: collected right after it settled, before anything was clicked."""

    url: str  # after redirects
    mathjax: str  # "typeset", "no MathJax on this page", "MathJax did not start" or "MathJax error: ..."
    math: int  # Sphinx math elements (.math)
    typeset: int  # MathJax output elements (<mjx-container>)
    untypeset: list[str]  # math elements MathJax left as TeX
    math_errors: list[str]  # MathJax's <mjx-merror> messages
    text: str  # visible text, without code, scripts and MathJax output
    broken_images: list[str]  # <img> that did not load
    console: list[dict]  # console messages (level, message, source)
    requests: list[str]  # URLs of every request, from DevTools and the Resource Timing API


# Seconds MathJax may take to load and typeset before the page counts as untypeset.
MATHJAX_TIMEOUT = 20

# Resolves when MathJax (if the page loads it) has finished its first typesetting pass.
_WAIT_FOR_MATHJAX = """
const limit = arguments[0] * 1000, done = arguments[arguments.length - 1];
const start = Date.now();
const hasScript = Array.from(document.scripts).some(s => /mathjax/i.test(s.src));
(function wait() {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => done("typeset"), e => done("MathJax error: " + e));
  } else if (!hasScript) {
    done("no MathJax on this page");
  } else if (Date.now() - start > limit) {
    done("MathJax did not start");
  } else {
    setTimeout(wait, 50);
  }
})();
"""

# Resolves when every <img> has finished loading or failed (at most arguments[0] seconds).
_WAIT_FOR_IMAGES = """
const limit = arguments[0] * 1000, done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.filter(img => img.loading === "lazy").forEach(img => { img.loading = "eager"; });
const decoded = Promise.all(images.map(img => img.decode().catch(() => null)));
Promise.race([decoded, new Promise(resolve => setTimeout(resolve, limit))]).then(() => done(images.length));
"""

# Everything the read-only checks need, collected in one script.
_SNAPSHOT = """
const skip = "pre, code, script, style, textarea, noscript, mjx-container, .highlight";
const parts = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const element = walker.currentNode.parentElement;
  if (!element || element.closest(skip) || !element.checkVisibility()) continue;
  parts.push(walker.currentNode.nodeValue);
}
const math = Array.from(document.querySelectorAll(".math"));
return {
  math: math.length,
  typeset: document.querySelectorAll("mjx-container").length,
  untypeset: math.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 80)),
  math_errors: Array.from(document.querySelectorAll("mjx-merror")).map(e => e.textContent),
  text: parts.join(" "),
  broken_images: Array.from(document.images).filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => (img.currentSrc || img.src || img.outerHTML).slice(0, 120)),
  resources: performance.getEntriesByType("resource").map(e => e.name),
};
"""


def _settled(driver: object) -> bool:
    """The page has loaded and is not a redirect (``<meta http-equiv="refresh">``) about to leave."""
    try:
        ready, redirect = driver.execute_script(
            "return [document.readyState, !!document.querySelector('meta[http-equiv=refresh i]')]"
        )
    except WebDriverException:  # the document went away while the script ran: still navigating
        return False
    return ready == "complete" and not redirect


def _network_requests(entries: list[dict]) -> list[str]:
    """URLs of all requests in a DevTools performance log (including ones that failed)."""
    urls = []
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def load_page(driver: object, book_url: str, page: str) -> Visit:
    """Load ``page`` in a clean state, wait for its redirect, MathJax and images, and snapshot it."""
    driver.get("about:blank")
    # Every load is a reader's first visit: no storage left by earlier pages (the theme keeps state there).
    driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": book_url, "storageTypes": "all"})
    driver.get_log("browser")  # drop what earlier pages left in the logs
    driver.get_log("performance")
    driver.get(f"{book_url}/{page}")
    WebDriverWait(driver, PAGE_TIMEOUT).until(_settled)  # follows a redirect (index.html -> root page)
    mathjax = driver.execute_async_script(_WAIT_FOR_MATHJAX, MATHJAX_TIMEOUT)
    driver.execute_async_script(_WAIT_FOR_IMAGES, MATHJAX_TIMEOUT)
    snapshot = driver.execute_script(_SNAPSHOT)
    requests = _network_requests(driver.get_log("performance")) + list(snapshot.pop("resources"))
    return Visit(
        url=driver.current_url,
        mathjax=mathjax,
        console=driver.get_log("browser"),
        requests=requests,
        **snapshot,
    )


@pytest.fixture(scope="session")
def visit(driver: object, book_url: str) -> Callable[[str], Visit]:
    """``visit(page)``: the snapshot of one load of ``page``, taken once per session and shared."""
    cache: dict[str, Visit] = {}

    def snapshot(page: str) -> Visit:
        if page not in cache:
            cache[page] = load_page(driver, book_url, page)
        return cache[page]

    return snapshot
