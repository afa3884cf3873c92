"""What the browser tier checks on every page, in a real Chromium driven by Playwright.

:class:`PageWatch` records, for one browser context, what a page did while it loaded:
its console errors and uncaught exceptions, the requests it tried to send to any other
origin than the one it was served from (aborted, so nothing leaves the machine), and
the failed responses of its own. :func:`layout_problems` measures the page as Chromium
laid it out: every chart (an inline SVG) inside its container and the boxes around it,
every drawn element inside its chart, its text drawn at least 9 px high, no two text
labels of a chart overlapping (their real, rotated outlines), every table with at least one row of data, every image loaded,
and no page wider than the window. Each problem is one line naming the page's element.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, Request, Route
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
INSTALL_HINT = (
    f"the browser tests need Chromium at {CHROMIUM}: on Debian, `apt-get install chromium` "
    "(`make test` does so where it runs as root or with passwordless sudo); or name another "
    "Chromium or Chrome binary (`make test CHROMIUM=/path`, or CHROMIUM_EXECUTABLE=/path "
    "for pytest)"
)
# The charts are laid out for Liberation Sans (ml/charts.py); drawn in another face,
# their labels would not be what users see.
CHART_FONT = "Liberation Sans"
FONT_HINT = (
    f"the browser tests draw the charts in {CHART_FONT}, which fontconfig does not find: on "
    "Debian, `apt-get install fonts-liberation` (`make test` does so where it may)"
)
# Chromium's own traffic (updates, safe browsing, sync) is turned off: the only requests
# left are the page's.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-gpu",
]
WINDOW = {"width": 1280, "height": 900}
SETTLE_MS = 10_000  # a page still sending requests this long after it loaded is broken
# Schemes that never leave the page: inline data, blobs it made, its own empty frames.
LOCAL_SCHEMES = ("data", "blob", "about")


def chart_font_installed() -> bool:
    """Whether fontconfig, which Chromium asks, has the charts' font."""
    try:
        found = subprocess.run(
            ["fc-match", "-f", "%{family}", CHART_FONT],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout  # fmt: skip
    except OSError:
        return False
    return CHART_FONT in found


@dataclass
class PageWatch:
    """What the pages of one context did: console errors, foreign requests, failures.

    ``origin`` is the one origin requests may go to (``http://127.0.0.1:8080``), or
    ``file://<folder>`` for files opened from disk: only files below that folder.
    """

    origin: str
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.route("**/*", self._route)
        context.on("page", self._watch_page)
        for page in context.pages:
            self._watch_page(page)

    def _watch_page(self, page: Page) -> None:
        page.on(
            "console",
            lambda msg: (
                msg.type == "error"
                and self.console_errors.append(f"{msg.text} ({msg.location.get('url', '')})")
            ),
        )
        page.on("pageerror", lambda exc: self.console_errors.append(f"uncaught: {exc}"))
        page.on("response", self._response)
        page.on("requestfailed", self._request_failed)

    def _response(self, response) -> None:
        # The page's own document has its status checked by whoever opened it (an error
        # page's is meant); a frame's document or anything else a page loads must succeed.
        main_document = response.request.is_navigation_request() and (
            response.frame.parent_frame is None
        )
        if response.status >= 400 and not main_document:
            self.failed_responses.append(f"{response.status} {response.url}")

    def _request_failed(self, request: Request) -> None:
        # Those to other hosts are aborted here, and listed as such; one cancelled because
        # the page went on is not a failure.
        if self.allowed(request.url) and request.failure != "net::ERR_ABORTED":
            self.failed_responses.append(f"{request.url} ({request.failure})")

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in LOCAL_SCHEMES:
            return True
        if self.origin.startswith("file://"):
            return parts.scheme == "file" and url.startswith(self.origin.rstrip("/") + "/")
        return f"{parts.scheme}://{parts.netloc}" == self.origin

    def _route(self, route: Route, request: Request) -> None:
        if self.allowed(request.url):
            route.continue_()
        else:
            self.foreign_requests.append(f"{request.resource_type} {request.url}")
            route.abort("blockedbyclient")

    def take(self) -> list[str]:
        """The problems recorded since the last call, each as one line; then forgets them."""
        problems = (
            [f"console error: {e}" for e in self.console_errors]
            + [f"request to another host: {r}" for r in self.foreign_requests]
            + [f"failed request: {r}" for r in self.failed_responses]
        )
        self.console_errors.clear()
        self.foreign_requests.clear()
        self.failed_responses.clear()
        return problems


# Runs in the page: every problem of its layout as one line. Boxes are in CSS pixels of
# the viewport; a label's outline is its SVG bounding box through its transform (a label
# rotated 45 degrees is a rotated rectangle, not the larger upright box around it).
_LAYOUT = r"""
() => {
  const TOL = 1.5;
  const MIN_TEXT_PX = 9;
  const problems = [];
  const rect = (el) => el.getBoundingClientRect();
  const inside = (a, b) => a.left >= b.left - TOL && a.top >= b.top - TOL
    && a.right <= b.right + TOL && a.bottom <= b.bottom + TOL;
  const size = (b) => `${Math.round(b.width)}x${Math.round(b.height)}`;
  const describe = (el) => {
    let text = el.tagName.toLowerCase();
    if (el.id) text += '#' + el.id;
    const cls = el.getAttribute('class');
    if (cls) text += '.' + cls.trim().split(/\s+/).join('.');
    return text;
  };
  const chartName = (svg, index) => {
    const heading = [...document.querySelectorAll('h1,h2,h3,h4')]
      .filter((h) => h.compareDocumentPosition(svg) & Node.DOCUMENT_POSITION_FOLLOWING).pop();
    return `chart ${index + 1}` + (heading ? ` (under "${heading.textContent.trim().slice(0, 60)}")` : '');
  };
  const shown = (el) => {
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.display === 'none' || style.visibility === 'hidden' || Number(style.opacity) === 0) return false;
      for (const name of ['opacity', 'fill-opacity']) {
        const attr = node.getAttribute(name);
        if (attr !== null && Number(attr) === 0) return false;
      }
    }
    return true;
  };
  const clipped = (el, svg) => {
    for (let node = el.parentElement; node && node !== svg; node = node.parentElement) {
      if (node.hasAttribute('clip-path')) return true;
    }
    return false;
  };
  const outline = (el) => {
    const box = el.getBBox();
    const m = el.getScreenCTM();
    return [[box.x, box.y], [box.x + box.width, box.y], [box.x + box.width, box.y + box.height],
            [box.x, box.y + box.height]].map(([x, y]) => {
      const p = new DOMPoint(x, y).matrixTransform(m);
      return [p.x, p.y];
    });
  };
  // Two convex outlines overlap unless some edge's normal separates them (by more than
  // TOL pixels of slack, so labels that merely touch are not reported).
  const overlap = (a, b) => {
    for (const poly of [a, b]) {
      for (let i = 0; i < poly.length; i++) {
        const [x1, y1] = poly[i], [x2, y2] = poly[(i + 1) % poly.length];
        const len = Math.hypot(x2 - x1, y2 - y1) || 1;
        const nx = (y1 - y2) / len, ny = (x2 - x1) / len;
        const span = (p) => p.map(([x, y]) => x * nx + y * ny);
        const pa = span(a), pb = span(b);
        const depth = Math.min(Math.max(...pa), Math.max(...pb)) - Math.max(Math.min(...pa), Math.min(...pb));
        if (depth <= TOL) return false;
      }
    }
    return true;
  };
  const bounds = (poly) => ({
    left: Math.min(...poly.map((p) => p[0])), right: Math.max(...poly.map((p) => p[0])),
    top: Math.min(...poly.map((p) => p[1])), bottom: Math.max(...poly.map((p) => p[1])),
  });
  // Charts: Vega's SVGs (class "marks") and whatever a page shows in a chart's box; the
  // icons of an app's own interface are not charts.
  const charts = [...document.querySelectorAll('svg.marks, .chart svg')]
    .filter((svg) => !svg.parentElement.closest('svg') && shown(svg));
  charts.forEach((svg, index) => {
    const name = chartName(svg, index);
    const box = rect(svg);
    if (box.width < 1 || box.height < 1) { problems.push(`${name}: drawn ${size(box)}`); return; }
    // Its container, and every box around it up to the page or a scrolling area.
    for (let outer = svg.parentElement; outer && outer !== document.documentElement; outer = outer.parentElement) {
      const around = rect(outer);
      if (!inside(box, around)) {
        problems.push(`${name} (${size(box)}) spills out of ${describe(outer)} (${size(around)})`);
        break;
      }
      const style = getComputedStyle(outer);
      if (['auto', 'scroll'].includes(style.overflowX)) break;
    }
    const drawn = [...svg.querySelectorAll('text, rect, path, line, circle, ellipse, polygon, polyline, image')]
      .filter((el) => shown(el) && !clipped(el, svg));
    for (const el of drawn) {
      const b = el.tagName === 'text' ? bounds(outline(el)) : rect(el);
      if ((b.right - b.left) + (b.bottom - b.top) > 0 && !inside(b, box)) {
        const what = el.tagName === 'text' ? `label "${el.textContent.trim()}"` : describe(el);
        problems.push(`${name}: ${what} lies outside the chart (${size(box)})`);
      }
    }
    const labels = drawn.filter((el) => el.tagName === 'text' && el.textContent.trim())
      .map((el) => ({text: el.textContent.trim(), poly: outline(el), el}));
    // A chart drawn wider than its box is scaled down, and its text with it.
    for (const {text, el} of labels) {
      const m = el.getScreenCTM();
      const px = parseFloat(getComputedStyle(el).fontSize) * Math.hypot(m.a, m.b);
      if (px < MIN_TEXT_PX) {
        problems.push(`${name}: label "${text}" is drawn ${px.toFixed(1)} px high, too small to read`);
        break;
      }
    }
    for (let i = 0; i < labels.length; i++) {
      for (let j = i + 1; j < labels.length; j++) {
        if (overlap(labels[i].poly, labels[j].poly)) {
          problems.push(`${name}: labels "${labels[i].text}" and "${labels[j].text}" overlap`);
        }
      }
    }
  });
  // Charts side by side must not cover each other.
  const boxes = charts.map(rect);
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > TOL && h > TOL) problems.push(`charts ${i + 1} and ${j + 1} overlap`);
    }
  }
  // A section of the view that could not read its files says so in place of its content.
  for (const el of document.querySelectorAll('.error')) {
    const text = el.textContent.trim();
    if (text.startsWith('Unavailable')) problems.push(`a section shows "${text.slice(0, 120)}"`);
  }
  [...document.querySelectorAll('table')].filter(shown).forEach((table, index) => {
    if (!table.querySelector('td')) {
      const head = [...table.querySelectorAll('th')].map((th) => th.textContent.trim()).join(', ');
      problems.push(`table ${index + 1} (${head.slice(0, 80)}) has no rows`);
    }
  });
  [...document.querySelectorAll('img')].filter(shown).forEach((img) => {
    if (!img.complete || img.naturalWidth === 0) {
      problems.push(`image "${img.getAttribute('alt') || img.currentSrc || img.outerHTML.slice(0, 80)}" did not load`);
    }
  });
  const wide = document.documentElement.scrollWidth;
  if (wide > window.innerWidth + TOL) problems.push(`the page is ${wide} px wide in a ${window.innerWidth} px window`);
  return problems;
}
"""


def layout_problems(page: Page) -> list[str]:
    """The layout problems of ``page`` and of the frames it shows, as lines."""
    problems = []
    for frame in page.frames:
        if frame.url.startswith(("about:", "data:")):
            continue
        where = "" if frame is page.main_frame else f"frame {frame.url}: "
        problems += [where + line for line in frame.evaluate(_LAYOUT)]
    return problems


def shot_name(url: str) -> str:
    """A file name for the screenshot of ``url`` (or of a page named so): its path and
    query, in safe characters."""
    parts = urlsplit(url)
    name = (parts.path + ("_" + parts.query if parts.query else "")).strip("/") or "index"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-150:] + ".png"


def screenshot(page: Page, folder: Path, url: str | None = None) -> Path:
    """The whole page as a PNG under ``folder``, for a person to look at."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / shot_name(url or page.url)
    page.screenshot(path=str(path), full_page=True)
    return path


# Every link of a page and of its frames, and where each GET form of theirs leads when
# submitted as it stands (its default values): absolute URLs, fragments dropped.
_LINKS = r"""
() => {
  const found = [...document.querySelectorAll('a[href]')].map((a) => a.href);
  for (const form of document.querySelectorAll('form')) {
    if ((form.getAttribute('method') || 'get').toLowerCase() !== 'get') continue;
    // A GET form replaces its action's query with its fields.
    const target = new URL(form.getAttribute('action') || '', document.baseURI);
    target.search = new URLSearchParams(new FormData(form)).toString();
    found.push(target.href);
  }
  return found.map((href) => href.split('#')[0]);
}
"""


def links(page: Page) -> list[str]:
    """The links and GET forms of ``page`` and its frames, in document order."""
    found: list[str] = []
    for frame in page.frames:
        if not frame.url.startswith(("about:", "data:")):
            found += frame.evaluate(_LINKS)
    return list(dict.fromkeys(found))


@dataclass
class Visit:
    """One page as the browser got it: the status of its document, its problems, how many
    charts it drew and its screenshot."""

    url: str
    status: int | None
    problems: list[str]
    charts: int
    shot: Path


def settle(page: Page) -> list[str]:
    """Wait until ``page`` has sent no request for half a second; a problem if it never
    does within :data:`SETTLE_MS`."""
    try:
        page.wait_for_load_state("networkidle", timeout=SETTLE_MS)
    except PlaywrightTimeout:
        return [f"still sending requests {SETTLE_MS / 1000:.0f} s after it loaded"]
    return []


def visit(page: Page, watch: PageWatch, url: str, folder: Path, name: str | None = None) -> Visit:
    """Open ``url`` in ``page``, wait until it and its frames have loaded, and check it:
    what :class:`PageWatch` recorded, its layout, and a screenshot under ``folder``
    (named after ``name``, or the URL's path)."""
    watch.take()  # what an earlier page did after it was checked is not this page's
    # Committed, then loaded: an app that sets its route in the fragment as it starts
    # (dbt's docs) navigates within the page before its load event.
    response = page.goto(url, wait_until="commit")
    page.wait_for_load_state("load")
    problems = settle(page)
    if page.url.split("#")[0] != url.split("#")[0]:
        problems.append(f"sent on to {page.url}")
    problems += layout_problems(page)
    charts = page.locator("svg.marks").count()
    shot = screenshot(page, folder, name or url)
    # Last: what the page did while it was measured and photographed is its own too.
    problems = watch.take() + problems
    return Visit(url, response.status if response else None, problems, charts, shot)


def report(broken: dict[str, list[str]], folder: Path) -> str:
    """The problems of every page, a page per paragraph, also written to ``folder``'s
    ``problems.txt`` beside the screenshots."""
    text = "\n\n".join(
        f"{page}\n" + "\n".join(f"  - {problem}" for problem in problems)
        for page, problems in broken.items()
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "problems.txt").write_text(text + "\n" if text else "")
    return text
