"""The HTML report: one self-contained, escaped page with a section per check and per tensor, and plots."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from backcheck.render.html import render_html, write_html
from backcheck.report import Report


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", page, re.S)


def test_page_has_verdict_sections_tables_and_plots(all_reports: list[Report]) -> None:
    page = render_html(all_reports, title="all reports")
    assert page.startswith("<!DOCTYPE html>")
    assert 'class="verdict fail"' in page and "FAIL: 6 check(s)" in page
    assert page.count('<section class="check') == len(all_reports)
    n_leaves = sum(len(r.leaves) for r in all_reports)
    assert page.count('<details class="leaf"') == n_leaves
    # the worst elements of the failing check, with their bound and verdict
    worst = all_reports[0].leaves[0].worst[0]
    assert worst.name in page and "mismatch" in page
    # findings and notes
    assert "MUTATION" in page and "modified its argument x in place" in page
    assert "sparse check: 40 of 601 elements sampled" in page
    assert "at a kink" in page
    assert "returned None for y" in page


def test_plots_v_curve_histogram_heatmap(failing: Report) -> None:
    page = render_html(failing)
    svgs = _svgs(page)
    labels = [re.search(r'aria-label="([^"]*)"', s).group(1) for s in svgs]
    assert sum(lb.startswith("V curve of") for lb in labels) == len(failing.curves) == 3
    assert sum(lb.startswith("histogram") for lb in labels) == 3
    assert sum(lb.startswith("heatmap") for lb in labels) == 3
    for s in svgs:  # every plot is well-formed XML
        ET.fromstring(s)
    # the chosen step is marked on the V curve, and mismatching cells are outlined on the heatmap
    assert "chosen h = " in page
    assert 'fill="none" stroke="#222" stroke-width="1.2"' in page


def test_self_contained_and_offline(all_reports: list[Report]) -> None:
    page = render_html(all_reports)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    # the only hrefs are anchors within the page
    assert set(re.findall(r'href="(.)', page)) <= {"#"}


def test_user_strings_are_escaped(odd: Report) -> None:
    hostile = replace(odd, title="<img src=x onerror=alert(1)>", notes=["a & b <b>bold</b>"])
    page = render_html([hostile], title="t<script>alert(1)</script>", labels=["<i>label</i>"])
    assert "<script>" not in page and "<img" not in page and "<i>label" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page and "a &amp; b &lt;b&gt;" in page
    assert "p[&#x27;W&lt;script&gt;&#x27;]" in page


def test_sparse_heatmap_marks_unchecked_cells(odd: Report) -> None:
    page = render_html(odd)
    assert "#d0d3d6" in page  # grey: not checked


def test_report_without_arrays_still_renders(failing: Report) -> None:
    bare = replace(failing, _numeric=None, _analytic=None, curves=[])
    page = render_html(bare)
    assert "<svg" not in page and failing.leaves[0].worst[0].name in page


def test_large_tensor_heatmap_is_reduced(passing32: Report) -> None:
    import numpy as np

    from backcheck.render import svg

    big = np.abs(np.random.default_rng(0).normal(size=(500, 300)))
    out = svg.heatmap(big, name="big", shape=(500, 300))
    assert out.count("<rect") < 64 * 64 + 100
    assert "max over 8x5 blocks" in out
    ET.fromstring(out)


def test_labels_must_match(failing: Report) -> None:
    with pytest.raises(ValueError, match="labels"):
        render_html([failing], labels=["a", "b"])
    with pytest.raises(TypeError):
        render_html(cast(Any, ["not a report"]))


def test_write_html(tmp_path: Path, failing: Report, passing32: Report) -> None:
    out = write_html([failing, passing32], tmp_path / "sub" / "r.html", labels=["first", "second"])
    text = out.read_text(encoding="utf-8")
    assert out.exists() and "first" in text and "second" in text
    assert len(text) < 400_000
