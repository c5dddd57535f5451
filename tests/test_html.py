"""The HTML pages in a real browser: Debian's Chromium, headless, driven by Playwright (which downloads no
browser here: it is pointed at /usr/bin/chromium; `.ci/browser` installs it).

Each page is opened from a file: URL with every request routed through the test, which lets file: and data:
through and fails the test on anything else. Checked: no console error, no request off the machine, a table
sorts when its header is clicked, a plot renders, hovering a point shows its tooltip. Screenshots go to a
temporary folder, or to $BENCHBENCH_SCREENSHOTS when set (to look at them).
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from _synthetic import HOSTILE_REASON, small_run

from benchbench.analysis.claim_html import write_claim_html
from benchbench.analysis.index_page import write_index_html
from benchbench.results.html import write_report_html
from benchbench.results.load import load_run

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
REFERENCE = Path(__file__).parents[1] / "reports" / "reference"

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"Chromium is not installed ({CHROMIUM}); .ci/browser installs it")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """report.html of a small synthetic run (with a failed cell whose reason is hostile HTML); claim.html and
    index.html of the published reference (its results and claim analysis)."""
    folder = tmp_path_factory.mktemp("pages")
    write_report_html(small_run(), folder / "run")
    ref = folder / "reference"
    ref.mkdir()
    for name in ("claim.json", "claim.md"):
        shutil.copy(REFERENCE / name, ref / name)
    run = load_run(REFERENCE / "results.json")
    write_claim_html(json.loads((REFERENCE / "claim.json").read_text()), [run], ref)
    write_index_html(ref, meta=run.meta)
    return {"report": folder / "run" / "report.html", "claim": ref / "claim.html", "index": ref / "index.html"}


@pytest.fixture()
def shots(tmp_path):
    path = Path(os.environ.get("BENCHBENCH_SCREENSHOTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


class Opened:
    """A page opened with every request routed: what it asked for, and what it logged as errors."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.requests, self.blocked, self.errors, self.dialogs = [], [], [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.route("**/*", self._route)
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("html[data-ready]", timeout=15000)

    def _route(self, route):
        url = route.request.url
        self.requests.append(url)
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def check_clean(self):
        assert not self.blocked, f"the page asked the network for {self.blocked}"
        assert not self.errors, f"console errors: {self.errors}"
        assert not self.dialogs

    def column(self, table: str, col: int) -> list[str]:
        return self.page.eval_on_selector_all(
            f"#{table} tbody tr:not([hidden])", f"rows => rows.map(r => r.cells[{col}].textContent.trim())")

    def header_index(self, table: str, label: str) -> int:
        labels = self.page.eval_on_selector_all(f"#{table} thead th", "ths => ths.map(t => t.textContent.trim())")
        return labels.index(label)

    def sort(self, table: str, label: str):
        self.page.click(f"#{table} thead th:nth-child({self.header_index(table, label) + 1})")

    def plot_points(self, key: str) -> int:
        return self.page.eval_on_selector_all(f'[data-plot="{key}"] svg .pt', "p => p.length")

    def hover_point(self, key: str, index: int = 0) -> str:
        """Hover a point (by the tooltip's own rule: pointer over it) and return the tooltip's text."""
        point = self.page.locator(f'[data-plot="{key}"] svg .pt .mk').nth(index)
        point.scroll_into_view_if_needed()
        box = point.bounding_box()
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        tip = self.page.locator(f'[data-plot="{key}"] .tip')
        tip.wait_for(state="visible", timeout=3000)
        return tip.inner_text()


def _numbers(texts: list[str]) -> list[float]:
    return [float(t) for t in texts if t]


def test_report_page(browser, pages, shots):
    o = Opened(browser, pages["report"])
    page = o.page
    # the plot: one point per measured cell (12), drawn as SVG of a real size
    assert o.plot_points("lat-all") == 12
    box = page.locator('[data-plot="lat-all"] svg').bounding_box()
    assert box["width"] > 500 and box["height"] > 200
    tip = o.hover_point("lat-all")
    assert re.search(r"median \d+\.\d{3} ms \[\d+\.\d{3}, \d+\.\d{3}\] \(95%\)", tip), tip
    assert re.search(r"(ort|torch) · (train|deploy)", tip), tip
    page.screenshot(path=str(shots / "report-hover.png"))

    # sorting: ascending, then descending; the failed cells (no median) stay last
    median = o.header_index("cells", "median ms")
    o.sort("cells", "median ms")
    values = o.column("cells", median)
    assert _numbers(values) == sorted(_numbers(values)) and len(_numbers(values)) == 12 and values[-2:] == ["", ""]
    o.sort("cells", "median ms")
    values = o.column("cells", median)
    assert _numbers(values) == sorted(_numbers(values), reverse=True) and values[-2:] == ["", ""]
    models = o.header_index("cells", "model")
    o.sort("cells", "model")
    assert o.column("cells", models) == sorted(o.column("cells", models))

    # filtering: text, status, and the backend tabs
    page.fill('input[data-filter-for="cells"]', "gamma")
    assert set(o.column("cells", models)) == {"gamma"} and len(o.column("cells", models)) == 4
    page.fill('input[data-filter-for="cells"]', "")
    page.select_option('select[data-filter-for="cells"]', "!ok")
    assert o.column("cells", o.header_index("cells", "status")) == ["unsupported", "crashed"]
    reason = o.column("cells", o.header_index("cells", "reason"))[0]
    assert reason == HOSTILE_REASON  # shown as text, not run as HTML
    assert page.eval_on_selector_all("img", "i => i.length") == 0
    page.select_option('select[data-filter-for="cells"]', "")
    page.click('.tabs button[data-tab="b1"]')  # torch
    assert set(o.column("cells", o.header_index("cells", "backend"))) == {"torch"}
    assert page.is_visible('[data-plot="lat-1"]') and not page.is_visible('[data-plot="lat-all"]')
    assert o.plot_points("lat-1") == 6
    assert "torch" in o.hover_point("lat-1", 2)
    page.screenshot(path=str(shots / "report-torch.png"), full_page=True)
    o.check_clean()


def _reference_effects() -> dict[str, str]:
    """Per target of the published claim, its verdict's effect as the pages print it, read from claim.json."""
    from benchbench.analysis.verdict_text import pct_interval

    per = json.loads((REFERENCE / "claim.json").read_text())["per_backend"]
    return {t: pct_interval(b["effect"]["effect"], b["effect"]["effect_ci95"], 1) for t, b in per.items()
            if (b.get("effect") or {}).get("effect") is not None}


def test_claim_page(browser, pages, shots):
    o = Opened(browser, pages["claim"])
    page = o.page
    effects = _reference_effects()
    assert len(effects) >= 4 and o.plot_points("effect") == len(effects)
    assert o.plot_points("lat-0") >= 100 and o.plot_points("ovh-0") >= 100 and o.plot_points("pairs-0") >= 20
    tip = o.hover_point("effect", 0)
    assert "openvino" in tip and effects["openvino"] in tip
    tip = o.hover_point("lat-0", 5)
    assert re.search(r"median \d+\.\d{3} ms \[\d+\.\d{3}, \d+\.\d{3}\]", tip) and "openvino" in tip, tip
    page.screenshot(path=str(shots / "claim-hover.png"))

    # another backend's tab shows its own plots (the tabs in the claim's order of targets)
    t = list(json.loads((REFERENCE / "claim.json").read_text())["per_backend"]).index("torch")
    page.click(f'.tabs[data-tabs="backends"] button[data-tab="b{t}"]')
    assert page.is_visible(f'[data-plot="lat-{t}"]') and not page.is_visible('[data-plot="lat-0"]')
    assert "torch" in o.hover_point(f"lat-{t}", 0)

    # highlighting a family dims every other point, in every plot
    page.select_option("select[data-highlight]", "vanillanet")
    dim = page.eval_on_selector_all(f'[data-plot="lat-{t}"] .pt', "ps => ps.filter(p => p.classList.contains('dim')).length")
    lit = page.eval_on_selector_all(f'[data-plot="lat-{t}"] .pt:not(.dim)', "ps => ps.map(p => p.getAttribute('data-g'))")
    assert dim > 50 and lit and set(lit) == {"vanillanet"}

    # a table sorts: the train → deploy latency ratios
    col = o.header_index("family-ratios", "latency ratio")
    o.sort("family-ratios", "latency ratio")
    values = _numbers(o.column("family-ratios", col))
    assert values == sorted(values) and len(values) > 20 and values[0] < values[-1]
    page.screenshot(path=str(shots / "claim.png"), full_page=True)
    o.check_clean()


def test_index_page(browser, pages, shots):
    o = Opened(browser, pages["index"])
    page = o.page
    links = page.eval_on_selector_all("a", "as => as.map(a => a.getAttribute('href'))")
    assert {"claim.html", "claim.md", "claim.json"} <= set(links)
    cards = page.eval_on_selector_all(".card", "cs => cs.map(c => c.innerText)")
    effects = _reference_effects()
    assert len(cards) == len(effects) and any("openvino" in c and effects["openvino"] in c for c in cards)
    page.screenshot(path=str(shots / "index.png"), full_page=True)
    # following a link opens the claim page from the same folder, still without the network
    page.click('a[href="claim.html"]')
    page.wait_for_selector("html[data-ready]")
    assert "fragmentation" in page.title()
    o.check_clean()
    assert all(u.startswith("file:") for u in o.requests)
