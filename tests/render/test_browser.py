"""The HTML report in headless Chromium: it loads without console errors and its screenshot shows plots.

Chromium comes from Debian (``make test`` installs it with apt); playwright drives it without downloading one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backcheck.render.html import write_html
from backcheck.report import Report


@dataclass
class PageLoad:
    """What a page said while it loaded: console calls, uncaught exceptions, failed loads; its screenshot."""

    entries: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    screenshot: bytes | None = None

    @property
    def errors(self) -> list[str]:
        return [text for level, text in self.entries if level == "error"]


def load(browser: Any, path: Path, size: tuple[int, int] = (1200, 2000), screenshot: bool = True) -> PageLoad:
    result = PageLoad()
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.on("console", lambda m: result.entries.append((m.type, m.text)))
    page.on("pageerror", lambda e: result.entries.append(("error", str(e))))
    page.on("requestfailed", lambda r: result.entries.append(("error", f"failed to load {r.url}")))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        page.wait_for_timeout(200)  # late console messages
        if screenshot:
            result.screenshot = page.screenshot()
    finally:
        page.close()
    return result


def _pixels(png: bytes) -> np.ndarray:
    from matplotlib import image

    return image.imread(io.BytesIO(png), format="png")


def test_detects_console_errors(browser: Any, tmp_path: Path) -> None:
    """The harness itself: console.error, an uncaught exception and a missing file are all reported."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><p>x</p><script>console.log("fine"); console.error("bad-thing");'
                    'undefined_function();</script><img src="missing.png"></body></html>')
    result = load(browser, page, screenshot=False)
    assert any("bad-thing" in t for t in result.errors)
    assert any("undefined_function" in t for t in result.errors)
    assert any("missing.png" in t for t in result.errors)
    assert ("log", "fine") in result.entries


def test_report_loads_cleanly_and_shows_plots(browser: Any, tmp_path: Path, failing: Report, passing32: Report,
                                              kinked: Report) -> None:
    path = write_html([failing, passing32, kinked], tmp_path / "report.html", title="browser test")
    result = load(browser, path, size=(1200, 2000))
    assert result.entries == []
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


def test_floor_is_visible_in_the_table_also_when_sections_are_closed(browser: Any, tmp_path: Path,
                                                                     passing32: Report) -> None:
    """A passing array's detection floor reads in its row of the table (always shown) and atop its section.

    With more than ten checks the passing sections start closed: the floor must still be on screen.
    """
    lf = passing32.leaves[0]
    value = f"{lf.floor:.2g}"
    for copies, sections_open in ((1, True), (11, False)):
        path = write_html([passing32] * copies, tmp_path / f"floor{copies}.html")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(path.resolve().as_uri(), wait_until="load")
            table = page.locator("section.check > table").first  # the arrays of the first check
            header = table.locator("th").last
            assert header.inner_text() == "detection floor" and header.is_visible()
            cell = table.locator("tr").nth(1).locator("td").last
            assert cell.is_visible() and cell.inner_text() == f"{value} ({lf.floor_rel:.2g} rel.)"
            line = page.locator("section.check p.floor").first
            assert line.is_visible() is sections_open
            assert line.text_content() == f"pass: no element wrong by more than {value} " \
                                          f"({lf.floor_rel:.2g} of its typical gradient)"
        finally:
            page.close()
