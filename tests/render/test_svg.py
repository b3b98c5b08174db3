"""The SVG plot primitives: well-formed, escaped, robust to zeros, NaN and empty data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from backcheck.render import svg


def _parse(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag.endswith("svg")
    return root


def test_v_curve_marks_chosen_step_and_bound() -> None:
    steps = [1e-8 * 2.0**k for k in range(20)]
    errors = [1e-16 / s + s**2 for s in steps]
    out = svg.v_curve(steps, errors, chosen=steps[10], bound=1e-9, name="W[0, 1]", dtype="float64")
    _parse(out)
    assert "chosen h = " in out and "bound 1e-09" in out and "round-off" in out and "truncation" in out
    assert out.count("<circle") == 20


def test_v_curve_with_exact_zeros_and_nan() -> None:
    out = svg.v_curve([1e-6, 1e-5, 1e-4, 1e-3], [0.0, float("nan"), 1e-10, 1e-8], chosen=1e-5, name="<x>")
    _parse(out)
    assert "&lt;x&gt;" in out and out.count("<circle") == 3
    _parse(svg.v_curve([], [], chosen=1.0, name="empty"))


def test_histogram_counts_every_ratio() -> None:
    ratios = np.concatenate([np.full(7, 1e-3), np.full(3, 1e4), [0.0]])
    out = svg.histogram(ratios, name="w")
    root = _parse(out)
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    counted = sum(int(t.split()[0]) for t in titles if "element(s) with ratio" in t)
    assert counted == ratios.size
    assert "3 of 11 beyond" in out
    _parse(svg.histogram(np.array([]), name="none"))


def test_heatmap_shapes() -> None:
    a = np.arange(12, dtype=float).reshape(3, 4)
    a[0, 0] = np.nan
    out = svg.heatmap(a, name="m", marked=[(2, 3)])
    _parse(out)
    assert out.count("#d0d3d6") == 1  # the NaN cell
    assert svg.as_matrix(np.zeros(5)).shape == (1, 5)
    assert svg.as_matrix(np.zeros((2, 3, 4))).shape == (6, 4)
    assert svg.as_matrix(np.zeros(())) is None
    _parse(svg.heatmap(np.zeros((2, 2)), name="zeros"))
    with pytest.raises(ValueError):
        svg.heatmap(np.zeros(3))


def test_palette_and_format() -> None:
    assert svg.color(0.0) == "#fffae4" and svg.color(1.0) == "#280a3c"
    assert svg.color(-1) == svg.color(0) and svg.color(2) == svg.color(1)
    assert svg.fmt(float("nan")) == "nan" and svg.fmt(float("inf")) == "inf" and svg.fmt(0.000123456) == "0.000123"


def test_fit_keeps_both_ends() -> None:
    name = "error vs step: p['encoder.layers.0.self_attention.query_projection.weight'][1, 5] (float64)"
    cut = svg.fit(name, 300, 12, bold=True)
    assert svg.text_width(cut, 12, bold=True) <= 300 < svg.text_width(name, 12, bold=True)
    assert cut.startswith("error vs step: p['") and cut.endswith("'][1, 5] (float64)") and "\u2026" in cut
    assert svg.fit("short", 300, 12) == "short"


def test_v_curve_labels_sit_outside_the_data() -> None:
    """The chosen step and the bound are named in a legend row above the plot area, round-off and truncation
    at the ends of the x-axis label's row: no label is placed where the data can be."""
    steps = [1e-8 * 2.0**k for k in range(20)]
    out = svg.v_curve(steps, [1.0] * 20, chosen=steps[10], bound=1e-8, name="x[1, 2]")
    root = _parse(out)
    ns = "{http://www.w3.org/2000/svg}"
    top, bottom = svg.MARGIN[0], svg.HEIGHT - svg.MARGIN[2]
    for t in root.iter(f"{ns}text"):
        y = float(t.get("y", "nan")) if t.get("y") else None
        if t.text and ("chosen h" in t.text or t.text.startswith("bound")):
            assert y == svg.LEGEND_Y < top
        if t.text and ("round-off" in t.text or "truncation" in t.text):
            assert y == svg.HEIGHT - 8 and y > bottom


def test_heatmap_index_labels_only_where_they_fit() -> None:
    def labels(a: np.ndarray) -> tuple[list[str], list[str]]:
        """The row and the column index labels: left of the cells, and on the row under them."""
        root = _parse(svg.heatmap(a, name="m"))
        texts = [t for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "tk"]
        rows = [t.text or "" for t in texts if t.get("x") == "54"]
        under = max(float(t.get("y", 0)) for t in texts if t.text == "0")
        cols = [t.text or "" for t in texts if float(t.get("y", 0)) == under]
        return rows, cols

    rows, cols = labels(np.ones((2, 300)))  # two thin rows: the last row's index would sit on the first's
    assert rows == ["0"] and cols == ["0", "299"]
    rows, cols = labels(np.ones((5, 1)))  # one column: its first index is its last
    assert rows == ["0", "4"] and cols == ["0"]
