"""The HTML report's plots, laid out by a real browser: no label overlaps another label or the data.

Debian's Chromium renders the page (playwright drives it; nothing is downloaded). For every SVG plot the page
reports the bounding box of each <text> element and the points and segments of each data polyline in page
coordinates (rotated labels included); the test asserts that no two boxes overlap, that no box touches a data
point (with its marker) or crosses a segment, and that every label lies inside its plot.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from backcheck.render.html import write_html
from backcheck.report import Report

#: Boxes may touch; an overlap must be wider and taller than this (pixels) to count.
SLACK = 0.5
#: Radius of the circle drawn at each data point (svg.v_curve), plus a pixel of air.
MARKER = 2.6 + 1.0

#: Per plot: its box, the boxes of its labels and the points of its polylines, in page coordinates.
MEASURE = """() => [...document.querySelectorAll('svg')].map((svg, k) => {
  const box = (r) => [r.left, r.top, r.right, r.bottom];
  const ctm = svg.getScreenCTM();
  const texts = [...svg.querySelectorAll('text')].map(t => ({text: t.textContent,
                                                             box: box(t.getBoundingClientRect())}));
  const lines = [...svg.querySelectorAll('polyline')].map(pl => {
    const m = pl.getScreenCTM();
    return [...pl.points].map(p => { const q = p.matrixTransform(m); return [q.x, q.y]; });
  });
  return {index: k, label: svg.getAttribute('aria-label') || '', box: box(svg.getBoundingClientRect()),
          texts, lines};
})"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > SLACK and min(a[3], b[3]) - max(a[1], b[1]) > SLACK


def _segment_hits_box(p: list[float], q: list[float], box: list[float]) -> bool:
    """Whether the segment p-q passes through the box (shrunk by SLACK): sampled finely along its length."""
    x0, y0, x1, y1 = box[0] + SLACK, box[1] + SLACK, box[2] - SLACK, box[3] - SLACK
    n = max(2, int(math.hypot(q[0] - p[0], q[1] - p[1]) / 0.5))
    for k in range(n + 1):
        t = k / n
        x, y = p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])
        if x0 < x < x1 and y0 < y < y1:
            return True
    return False


def problems(plot: dict[str, Any]) -> list[str]:
    """Every overlap in one measured plot, in words."""
    out = []
    texts = [t for t in plot["texts"] if t["text"].strip()]
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            if _overlap(a["box"], b["box"]):
                out.append(f"labels {a['text']!r} and {b['text']!r} overlap")
        sx0, sy0, sx1, sy1 = plot["box"]
        x0, y0, x1, y1 = a["box"]
        if x0 < sx0 - SLACK or y0 < sy0 - SLACK or x1 > sx1 + SLACK or y1 > sy1 + SLACK:
            out.append(f"label {a['text']!r} sticks out of its plot")
        for line in plot["lines"]:
            if any(_overlap(a["box"], [x - MARKER, y - MARKER, x + MARKER, y + MARKER]) for x, y in line):
                out.append(f"label {a['text']!r} covers a data point")
            elif any(_segment_hits_box(p, q, a["box"]) for p, q in zip(line[:-1], line[1:], strict=True)):
                out.append(f"label {a['text']!r} sits on the data line")
    return out


def measure(browser: Any, html: Path, shots: Path | None = None) -> list[dict[str, Any]]:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.goto(html.resolve().as_uri())
        plots = page.evaluate(MEASURE)
        if shots is not None:
            page.screenshot(path=str(shots / f"{html.stem}.png"), full_page=True)
            figures = page.locator("figure")
            for k in range(figures.count()):
                figures.nth(k).screenshot(path=str(shots / f"{html.stem}-figure{k}.png"))
    finally:
        page.close()
    return plots


def _shots(tmp_path: Path) -> Path:
    """Where screenshots go: $BACKCHECK_SCREENSHOTS if set (to look at them), else the test's folder."""
    folder = Path(os.environ.get("BACKCHECK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_checker_sees_overlaps(browser: Any, tmp_path: Path) -> None:
    """The measurement itself: labels on each other and on the data are found (so the test can fail)."""
    page = tmp_path / "overlaps.html"
    page.write_text(
        '<!DOCTYPE html><html><body><svg xmlns="http://www.w3.org/2000/svg" width="300" height="200">'
        '<polyline points="10,100 290,100" fill="none" stroke="blue"/>'
        '<text x="20" y="104">on the line</text><text x="150" y="40">chosen h</text>'
        '<text x="160" y="44">bound</text><text x="250" y="190">outside the plot</text>'
        '<text x="200" y="150">fine</text></svg></body></html>')
    (plot,) = measure(browser, page)
    found = problems(plot)
    assert any("'on the line'" in f and "data" in f for f in found), found
    assert "labels 'chosen h' and 'bound' overlap" in found
    assert "label 'outside the plot' sticks out of its plot" in found
    assert not any("'fine'" in f for f in found)


@pytest.fixture(scope="module")
def reports(failing: Report, passing32: Report, kinked_curves: Report, long_names: Report, odd: Report,
            tiny_gradient: Report, mutating: Report) -> dict[str, list[Report]]:
    return {"failing": [failing], "passing": [passing32, tiny_gradient], "kinks": [kinked_curves],
            "mixed": [long_names, odd, mutating]}


@pytest.mark.parametrize("name", ["failing", "passing", "kinks", "mixed"])
def test_no_label_overlaps_a_label_or_the_data(browser: Any, tmp_path: Path, reports: dict[str, list[Report]],
                                               name: str) -> None:
    html = write_html(reports[name], tmp_path / f"{name}.html", title=f"layout: {name}")
    plots = measure(browser, html, _shots(tmp_path))
    n_curves = sum(len(r.curves) for r in reports[name])
    assert sum(p["label"].startswith("V curve") for p in plots) == n_curves > 0
    assert sum(len(p["lines"]) for p in plots) == n_curves  # every curve's data line was measured
    assert all(len(p["texts"]) >= 3 for p in plots)
    found = [f"{p['label']}: {f}" for p in plots for f in problems(p)]
    assert not found, "\n".join(found)


def test_every_plot_has_its_caption_under_it(browser: Any, tmp_path: Path, failing: Report,
                                             long_names: Report) -> None:
    html = write_html([failing, long_names], tmp_path / "captions.html")
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.goto(html.resolve().as_uri())
        figures = page.evaluate("""() => [...document.querySelectorAll('figure')].map(f => {
            const s = f.querySelector('svg').getBoundingClientRect();
            const c = f.querySelector('figcaption').getBoundingClientRect();
            return {plot: [s.left, s.top, s.right, s.bottom], caption: [c.left, c.top, c.right, c.bottom],
                    text: f.querySelector('figcaption').textContent,
                    spills: f.querySelector('figcaption').scrollWidth > f.querySelector('figcaption').clientWidth};
        })""")
        n_svg = page.locator("svg").count()
        footer = page.locator("footer").count()
    finally:
        page.close()
    assert len(figures) == n_svg > 0 and footer == 0
    for f in figures:
        plot, caption = f["plot"], f["caption"]
        assert plot[3] <= caption[1] + SLACK  # under the plot
        assert caption[0] >= plot[0] - SLACK and caption[2] <= plot[2] + SLACK  # no wider than the plot
        assert not f["spills"], f["text"]  # long names wrap inside it
        assert len(f["text"]) > 80
    v_texts = [f["text"] for f in figures if f["text"].startswith("Error of the central difference")]
    assert len(v_texts) == len(failing.curves) + len(long_names.curves)
    # the curves of the wrong elements say that no step brings the error under the bound, the others that it
    # falls under it
    wrong = {e.name for r in (failing, long_names) for lf in r.leaves for e in lf.worst[:1] if lf.status == "fail"}
    for t in v_texts:
        name = t.removeprefix("Error of the central difference for ").split(" against the step")[0]
        assert ("stays above the bound at every step" in t) == (name in wrong), t
        assert ("under the bound" in t) == (name not in wrong), t
