"""The built documentation site renders its formulas in a browser, offline.

Run after building the site, with Debian's chromium installed:

    .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
    .venv/bin/python -m pytest -m docs tests/test_docs_site.py

A missing site or a missing chromium is a failure, not a skip. A run that does not ask
for these tests (no ``-m docs``, file not named) deselects them (``tests/conftest.py``).
"""

from __future__ import annotations

import html.parser
import json
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys

import pytest

pytestmark = pytest.mark.docs

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
BUILD = f"{sys.executable} -m sphinx -W --keep-going -b html docs docs/_build/html"
# API pages with formulas; the first is the one screenshotted.
MATH_PAGES = (
    "api/accumulators.html",
    "api/optimizers.html",
    "api/restarts.html",
    "api/variants.html",
    "api/schedules.html",
    "api/tuning.html",
    "learning-rate.html",
)
MIN_FORMULAS_FIRST_PAGE = 10
MIN_FORMULAS_TOTAL = 60


@pytest.fixture(scope="module")
def site() -> pathlib.Path:
    missing = [p for p in ("index.html", *MATH_PAGES) if not (SITE / p).is_file()]
    assert not missing, f"the site is not built (missing {missing}); run: {BUILD}"
    return SITE


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    assert os.access(path, os.X_OK), (
        "chromium is missing; install it with: apt-get update && apt-get install -y chromium"
    )
    return path


def _run_chromium(chromium: str, page: pathlib.Path, tmp: pathlib.Path, *args: str) -> str:
    """Open ``page`` headless with every host unresolvable; return stdout, write a net log."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp / 'profile'}",
        f"--log-net-log={tmp / 'net.json'}",
        "--virtual-time-budget=15000",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def _page_requests(net_log: pathlib.Path) -> list[str]:
    """http(s) URLs the page asked for (the browser's own requests have no origin)."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] == start and params.get("initiator") != "not an origin":
            if re.match(r"(https?|wss?|ftp):", params.get("url", "")):
                urls.append(params["url"])
    return urls


# attributes that make a browser fetch something; links to other pages are not fetched
RESOURCES = {
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "link": "href",
    "audio": "src",
    "video": "src",
    "embed": "src",
}
NAVIGATION = {"prev", "next", "index", "search", "author", "license", "canonical"}
VOID = {"img", "link", "meta", "br", "hr", "input", "source", "embed", "col", "wbr"}


class _MathNodes(html.parser.HTMLParser):
    """Sphinx's math nodes (``span.math``, ``div.math``): how many, how many hold MathJax
    output, TeX left as text, MathJax errors, and remote resources anywhere on the page."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, int | None]] = []  # (tag, index of the math node)
        self.nodes: list[dict] = []
        self.containers = 0
        self.errors: list[str] = []
        self.remote: list[str] = []
        self.style = False
        self.styles: list[str] = []

    def _current(self) -> int | None:
        return next((i for _, i in reversed(self.stack) if i is not None), None)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        url = attrs.get(RESOURCES.get(tag, ""))
        if url and re.match(r"(https?:)?//", url) and attrs.get("rel") not in NAVIGATION:
            self.remote.append(url)
        if tag == "style":
            self.style = True
        if tag == "mjx-container":
            self.containers += 1
            if self._current() is not None:
                self.nodes[self._current()]["rendered"] = True
        # a TeX error (mjx-merror), or a macro MathJax does not know (red text)
        if tag in ("mjx-merror", "merror") or (tag == "mtext" and attrs.get("mathcolor") == "red"):
            self.errors.append(tag)
        index = None
        if tag in ("span", "div") and "math" in (attrs.get("class") or "").split():
            index = len(self.nodes)
            self.nodes.append({"rendered": False, "text": ""})
        if tag not in VOID:
            self.stack.append((tag, index))

    def handle_endtag(self, tag):
        if tag == "style":
            self.style = False
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                del self.stack[k:]
                break

    def handle_data(self, data):
        if self.style:
            self.styles.append(data)
        if self.errors and self.errors[-1] in ("mtext", "merror"):
            self.errors[-1] += f": {data}"
        current = self._current()
        if current is not None and not any(t.startswith("mjx-") for t, _ in self.stack):
            self.nodes[current]["text"] += data


def _parse(text: str) -> _MathNodes:
    parser = _MathNodes()
    parser.feed(text)
    parser.close()
    return parser


def test_pages_load_no_remote_resources(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    remote = {str(p.relative_to(site)): _parse(p.read_text()).remote for p in pages}
    assert not {p: r for p, r in remote.items() if r}, remote
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    fonts = site / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert len(list(fonts.glob("*.woff"))) > 10
    script = re.compile(r'<script[^>]*src="([^"?]*)')
    for page in MATH_PAGES:
        sources = script.findall((site / page).read_text())
        assert any(s.endswith("_static/mathjax/tex-chtml.js") for s in sources), (page, sources)


@pytest.fixture(scope="module")
def rendered(site, chromium, tmp_path_factory):
    """Each math page before and after a headless browser ran its scripts."""
    results = {}
    for page in MATH_PAGES:
        tmp = tmp_path_factory.mktemp(page.replace("/", "_"))
        dom = _run_chromium(chromium, site / page, tmp, "--dump-dom")
        results[page] = (
            _parse((site / page).read_text()),
            _parse(dom),
            _page_requests(tmp / "net.json"),
        )
    return results


@pytest.mark.parametrize("page", MATH_PAGES)
def test_formulas_render(rendered, page):
    source, dom, requests = rendered[page]
    assert source.nodes, f"{page} has no math nodes"
    assert len(dom.nodes) == len(source.nodes)
    unrendered = [n["text"].strip()[:80] for n in dom.nodes if not n["rendered"]]
    assert not unrendered, f"{len(unrendered)} formulas not rendered on {page}: {unrendered}"
    assert dom.containers == len(source.nodes)
    left = [n["text"] for n in dom.nodes if re.search(r"\\[\[\(\]\)]", n["text"])]
    assert not left, f"TeX left unrendered on {page}: {left}"
    assert not dom.errors, f"TeX errors on {page}: {dom.errors}"
    assert not dom.remote, f"{page} inserted remote resources: {dom.remote}"
    fonts = re.findall(r"url\(([^)]*)\)", "".join(dom.styles))
    assert not [f for f in fonts if re.match(r"[\"']?(https?:)?//", f)], fonts
    assert not requests, f"{page} asked the network for {requests}"


def test_formula_counts(rendered):
    counts = {page: len(source.nodes) for page, (source, _, _) in rendered.items()}
    assert counts[MATH_PAGES[0]] > MIN_FORMULAS_FIRST_PAGE, counts
    assert sum(counts.values()) > MIN_FORMULAS_TOTAL, counts


def test_screenshot(site, chromium, tmp_path):
    out = SITE.parent / "screenshots"
    out.mkdir(exist_ok=True)
    png = out / (pathlib.Path(MATH_PAGES[0]).stem + ".png")
    png.unlink(missing_ok=True)
    _run_chromium(
        chromium, site / MATH_PAGES[0], tmp_path, f"--screenshot={png}", "--window-size=1200,2000"
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 2000)
    assert len(data) > 50_000, f"{png} is {len(data)} bytes: a blank page?"
