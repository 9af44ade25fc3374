"""The HTML report in a real headless browser (Debian's ``chromium``): it renders, filters, sorts.

``--dump-dom`` prints the DOM after the page's script ran, so the view the URL fragment asks for
(``#q=...&verdict=...&sort=...&open=...``) can be checked without a driver. Screenshots of the
overview and of an opened claim are saved under the test's tmp dir and, when ``NTK_ARTIFACTS``
is set (CI), copied there for a person to look at.

Skipped, with the reason, where /usr/bin/chromium is absent (``apt-get install chromium``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("NTK_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"headless browser test needs Chromium at {CHROMIUM} (Debian: apt-get install chromium); not found",
)


def _samples():
    spec = importlib.util.spec_from_file_location("_ntk_report_samples",
                                                  Path(__file__).resolve().with_name("test_report_html.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           "--disable-extensions", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


class Dom(HTMLParser):
    """The claim bodies of a dumped DOM in document order: id, verdict, hidden, open; and #shown."""

    def __init__(self, text: str):
        super().__init__()
        self.bodies: list[dict] = []
        self.html_class = ""
        self.shown = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.html_class = a.get("class", "")
        if tag == "tbody" and "claim" in (a.get("class") or "").split():
            self.bodies.append({"id": a["data-id"], "verdict": a["data-verdict"], "hidden": "hidden" in a,
                                "open": "open" in a["class"].split()})
        if tag == "span" and a.get("id") == "shown":
            self.shown = a.get("data-shown")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    mod = _samples()
    text, report = mod.sample_page()
    d = tmp_path_factory.mktemp("browser")
    path = d / "report.html"
    path.write_text(text, encoding="utf-8")
    return path, report, mod


def _dom(page_path: Path, fragment: str) -> Dom:
    res = _chromium(page_path.parent, "--dump-dom", page_path.as_uri() + fragment)
    assert res.returncode == 0, res.stderr[-2000:]
    return Dom(res.stdout)


def test_the_filter_in_the_fragment_hides_other_claims(page):
    path, report, _ = page
    dom = _dom(path, "#verdict=FAILS,ERROR&q=liu2025")
    assert "js" in dom.html_class.split()  # the script ran
    expected = {c["id"] for c in report["claims"] if c["verdict"] in ("FAILS", "ERROR") and "liu2025" in c["id"]}
    visible = {b["id"] for b in dom.bodies if not b["hidden"]}
    assert visible == expected and len(expected) == 3
    assert dom.shown == str(len(expected))
    assert len(dom.bodies) == len(report["claims"]) + 1  # every claim rendered (+ the missing one)


def test_sort_and_open_from_the_fragment(page):
    path, report, mod = page
    dom = _dom(path, "#sort=-measured&open=liu2025.table")
    measured = {}
    for c in report["claims"]:
        m = mod.baseline.decisive(c)
        if m and m.get("measured") is not None:
            measured[c["id"]] = m["measured"]
    order = [b["id"] for b in dom.bodies if b["id"] in measured]
    assert order == sorted(measured, key=lambda k: -measured[k])  # descending; claims without a number last
    ids = [b["id"] for b in dom.bodies]
    assert set(ids[:len(measured)]) == set(measured)  # claims without a measured value sort last
    opened = [b["id"] for b in dom.bodies if b["open"]]
    assert opened == ["liu2025.table"]


def test_screenshots_for_a_person(page):
    path, _, _ = page
    shots = {"report-overview.png": ("", "1400,1000"),
             "report-liu-table.png": ("#q=liu2025.table&open=all", "1400,1300")}
    for name, (fragment, size) in shots.items():
        out = path.parent / name
        res = _chromium(path.parent, f"--screenshot={out}", f"--window-size={size}", path.as_uri() + fragment)
        assert res.returncode == 0 and out.is_file(), res.stderr[-2000:]
        data = out.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 40_000  # a rendered page, not a blank canvas (a blank one is a few kB)
        artifacts = os.environ.get("NTK_ARTIFACTS")
        if artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(out, Path(artifacts) / name)
