"""report.html and compare.html in a real browser (Debian's headless Chromium).

Every image must decode, the page must log no console error or exception, and a
full-page screenshot lands in the run folder's figures/ (report-screenshot.png).
scripts/test.sh installs chromium when it is missing, so under CI this runs.
"""

from __future__ import annotations

import pytest

from tempolab.analysis import build_report
from tempolab.analysis.browser import check_page, chromium_path
from tempolab.analysis.compare import build_compare
from tempolab.testing.synthetic import SyntheticSpec, make_run

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium not installed (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    a, b = root / "a-leader-kill", root / "b-leader-kill"
    make_run(a, SyntheticSpec(seed=3))
    make_run(b, SyntheticSpec(seed=4, nodes=7))
    build_report(a)
    build_report(b)
    return a, b


def test_report_page_renders_every_image_without_console_errors(runs):
    run = runs[0]
    shot = run / "figures" / "report-screenshot.png"
    check = check_page(run / "report.html", screenshot=shot)
    assert check.title.startswith("Tempo lab report")
    assert len(check.images) >= 5            # offsets, pre_post, skew_growth, failovers, cpu
    assert not check.broken_images, check.broken_images
    assert not check.console_errors, check.console_errors
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_compare_page_renders_every_image_without_console_errors(runs, tmp_path):
    out = tmp_path / "compare"
    build_compare(list(runs), out)
    html = out / "compare.html"
    assert html.exists()
    check = check_page(html, screenshot=out / "figures" / "compare-screenshot.png")
    assert check.images and not check.broken_images, check.broken_images
    assert not check.console_errors, check.console_errors


def test_a_broken_image_is_reported(tmp_path):
    # the check can fail: a page with an image that does not decode
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><title>x</title></head><body>'
                    '<img alt="bad" src="data:image/png;base64,AAAA"></body></html>')
    check = check_page(page)
    assert [i["alt"] for i in check.broken_images] == ["bad"]
