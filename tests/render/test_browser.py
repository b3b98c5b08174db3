"""The HTML report in headless Chromium: it loads without console errors and its screenshot shows plots.

Chromium comes from Debian; ``make test`` installs it (``apt-get install -y chromium``) before the suite.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from _browser import find_chromium, load_page

from backcheck.render.html import write_html
from backcheck.report import Report

if find_chromium() is None:
    raise RuntimeError("Chromium is required for the HTML tests: run `make test`, or apt-get install -y chromium")


def _pixels(png: bytes) -> np.ndarray:
    from matplotlib import image

    return image.imread(io.BytesIO(png), format="png")


def test_detects_console_errors(tmp_path: Path) -> None:
    """The harness itself: console.error, an uncaught exception and a missing file are all reported."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><p>x</p><script>console.log("fine"); console.error("bad-thing");'
                    'undefined_function();</script><img src="missing.png"></body></html>')
    result = load_page(page, screenshot=False)
    assert result.loaded
    texts = [str(e) for e in result.errors]
    assert any("bad-thing" in t for t in texts)
    assert any("undefined_function" in t for t in texts)
    assert any("missing.png" in t for t in texts)
    assert any(e.level == "log" and "fine" in e.text for e in result.entries)


def test_report_loads_cleanly_and_shows_plots(tmp_path: Path, failing: Report, passing32: Report,
                                              kinked: Report) -> None:
    path = write_html([failing, passing32, kinked], tmp_path / "report.html", title="browser test")
    result = load_page(path, size=(1200, 2000))
    assert result.loaded
    assert result.entries == [], [str(e) for e in result.entries]
    assert result.screenshot is not None and len(result.screenshot) > 50_000
    (tmp_path / "report.png").write_bytes(result.screenshot)
    img = _pixels(result.screenshot)
    assert img.shape[:2] == (2000, 1200)
    rgb = np.round(img[..., :3] * 255).astype(int)
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 200, "the page looks blank"
    # the plots are drawn: the V curve's blue, the failing histogram bars' red and the heatmap's darkest
    # colours each cover a visible area of the first screen
    def area(hex_colour: str, tol: int = 12) -> int:
        target = np.array([int(hex_colour[k:k + 2], 16) for k in (1, 3, 5)])
        return int(np.sum(np.all(np.abs(rgb - target) <= tol, axis=-1)))

    assert area("#2c6fbb") > 500  # V curve line and points
    assert area("#c8372d", tol=30) > 2000  # histogram bars beyond the bound (drawn at 85% opacity)
    assert area("#2e8b57", tol=30) > 1000  # histogram bars within the bound
    assert area("#6e145a", tol=30) > 200  # heatmap cells of the largest errors
