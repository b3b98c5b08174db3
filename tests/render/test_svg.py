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
