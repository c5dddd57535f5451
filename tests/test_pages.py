"""The HTML pages without a browser: what they contain, that they escape what a run holds, that they fetch
nothing, and that they are written whole and never through a symlink. tests/test_html.py opens them in Chromium."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _synthetic import HOSTILE_REASON, small_run

from benchbench.analysis.claim_html import claim_html, write_claim_html
from benchbench.analysis.index_page import index_html, write_index_html
from benchbench.analysis.verdict_text import pct_interval
from benchbench.results.html import ASSETS, json_script, md_inline, report_html, write_page, write_report_html
from benchbench.results.journal import WriteError
from benchbench.results.views import speedups

REFERENCE = Path(__file__).parents[1] / "reports" / "reference"


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="bb-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def _fetching_attributes(page: str) -> list[tuple]:
    """Tags whose attributes would make a browser fetch something: any src, or a <link> other than the inline
    icon (parsed as a browser would: escaped text and attribute values are no tags)."""
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            names = {k for k, _ in attrs}
            if names & {"src", "srcset", "background", "poster"} or (tag == "link" and ("href", "data:,") not in attrs):
                found.append((tag, attrs))

    Parser().feed(page)
    return found


def test_report_escapes_what_a_run_holds_and_fetches_nothing():
    page = report_html(small_run())
    assert HOSTILE_REASON not in page and "<img" not in page
    assert "&lt;img src=&quot;http://example.invalid/x.png&quot;&gt;" in page  # shown as text
    assert page.count("</script>") == 3  # the data and the two scripts; the reason's </script> is escaped
    assert not _fetching_attributes(page)
    assert "default-src 'none'" in page  # the Content-Security-Policy forbids every request


def test_report_plots_every_measured_cell_with_its_interval():
    run = small_run()
    plots = _data(report_html(run))["plots"]
    points = [p for s in plots["lat-all"]["series"] for p in s["points"]]
    ok = [c for c in run.cells if c.ok]
    assert len(points) == len(ok) == 12
    by_tip = {(p["t"][0], p["t"][1]): p for p in points}
    for c in ok:
        p = by_tip[(c.spec.model, f"{c.spec.backend} · {c.spec.variant} · {c.model['family']}")]
        assert p["y"] == pytest.approx(c.stats["median_ms"]) and p["x"] == pytest.approx(c.model["flops"] / 1e9)
        assert p["lo"] <= p["y"] <= p["hi"]
        assert f"[{c.stats['ci_low_ms']:.3f}, {c.stats['ci_high_ms']:.3f}]" in p["t"][2]
    sp = [p for s in plots["sp-all"]["series"] for p in s["points"]]
    assert sorted(p["y"] for p in sp) == pytest.approx(sorted(e.value for e in speedups(run).values()))
    # one tab per backend, with that backend's cells only
    assert {p["t"][1].split(" · ")[0] for s in plots["lat-1"]["series"] for p in s["points"]} == {"torch"}


def test_json_in_a_page_cannot_end_its_script_element():
    text = json_script({"reason": "</script><script>alert(1)</script> & <!--"})
    inner = text[text.index(">") + 1: text.rindex("</script>")]
    assert "<" not in inner and ">" not in inner and "&" not in inner
    assert json.loads(inner) == {"reason": "</script><script>alert(1)</script> & <!--"}


def test_md_inline_escapes_before_it_formats():
    assert md_inline("**When**: `a <b>` & <i>x</i>") == "<b>When</b>: <code>a &lt;b&gt;</code> &amp; &lt;i&gt;x&lt;/i&gt;"


def test_write_page_replaces_a_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "report.html").symlink_to(victim)
    path = write_report_html(small_run(), folder)
    assert victim.read_text() == "keep me"
    assert not path.is_symlink() and path.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in folder.iterdir()) == ["report.html"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_page_fails_whole_and_cleanly(tmp_path):
    (tmp_path / "index.html").mkdir()  # something that cannot be replaced by a file
    with pytest.raises(WriteError, match="cannot write .*index.html"):
        write_page(tmp_path, "index.html", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]
    with pytest.raises(ValueError):
        write_page(tmp_path, "../escape.html", "x")


def test_page_scripts_parse():
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed: the browser test checks the scripts run")
    for script in ASSETS.glob("*.js"):
        out = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def reference():
    """The published reference run and its claim analysis (claim.json, without observations: claim_html
    takes them from the run with the analysis's own function)."""
    from benchbench.results.load import load_run

    return load_run(REFERENCE / "results.json"), json.loads((REFERENCE / "claim.json").read_text())


def test_claim_page_shows_every_verdict_and_guideline_interval(reference):
    run, analysis = reference
    page = claim_html(analysis, [run])
    for backend, a in analysis["per_backend"].items():
        assert a["verdict"].replace("'", "&#x27;") in page  # each verdict sentence, with its interval
    cells = sum(len(g["rows"]) for g in analysis["guidelines"])
    assert page.count("</tr>") >= cells
    row = analysis["guidelines"][0]["rows"][1]["ours"]
    assert f"{row[0]:.2f} [{row[1]:.2f}, {row[2]:.2f}]" in page
    plots = _data(page)["plots"]
    effect = plots["effect"]["series"][0]["points"]
    assert [p["t"][0] for p in effect] == list(analysis["per_backend"])
    for p, a in zip(effect, analysis["per_backend"].values()):
        assert p["xlo"] == pytest.approx(100 * a["effect"]["effect_ci95"][0])
    # the latency plots hold every zoo observation of their backend
    n = {b: a["n"] for b, a in analysis["per_backend"].items()}
    for i, backend in enumerate(analysis["per_backend"]):
        assert sum(len(s["points"]) for s in plots[f"lat-{i}"]["series"]) >= n[backend]
    assert not _fetching_attributes(page)


def test_claim_page_draws_the_additive_fit_it_was_given(reference):
    run, analysis = reference
    backend, a = next(iter(analysis["per_backend"].items()))
    line = _data(claim_html(analysis, [run]))["plots"]["ovh-0"]["lines"][0]
    x, y = line["pts"][-1]
    assert y == pytest.approx(a["additive"]["overhead_us_per_op"] * x / 1e3)
    lo, hi = a["additive"]["ci"]["overhead_us_per_op"]
    assert line["band"][-1][1:] == pytest.approx([lo * x / 1e3, hi * x / 1e3])


def test_index_links_what_the_folder_holds(tmp_path, reference):
    run, analysis = reference
    for name in ("claim.json", "claim.md"):
        shutil.copy(REFERENCE / name, tmp_path / name)
    write_claim_html(analysis, [run], tmp_path)
    page = (write_index_html(tmp_path, meta=run.meta)).read_text()
    assert 'href="claim.html"' in page and 'href="claim.md"' in page and 'href="claim.json"' in page
    assert 'href="report.html"' not in page  # not in the folder: not linked
    for backend, a in analysis["per_backend"].items():
        assert f">{backend}<" in page
    e = analysis["per_backend"]["openvino"]["effect"]
    assert pct_interval(e["effect"], e["effect_ci95"], 1) in page and e["families"] == 21
    assert index_html(tmp_path, meta=run.meta) == page  # the folder's claim.json was read


def test_index_of_the_published_folder_reads_its_own_files(reference):
    from benchbench.analysis.index_page import _folder_meta

    run, analysis = reference
    assert _folder_meta(REFERENCE) == run.meta  # from the journal's lines, without loading its cells
    page = index_html(REFERENCE)
    assert "Sweep time" in page and 'href="results.json"' in page and 'href="cells.jsonl"' in page
    assert analysis["per_backend"]["tflite"]["verdict_code"] == "inconclusive" and "inconclusive" in page
