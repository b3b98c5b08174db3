"""Error statistics and plots of arrays where they are undefined: a gradient with NaN or inf entries (every view
agrees with the verdict) and arrays of which no element was compared one by one (no invented 0)."""

from __future__ import annotations

import io
import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest

import backcheck
from backcheck.blame import BlameRow
from backcheck.render import svg
from backcheck.render.html import render_html
from backcheck.render.json import to_document, to_json
from backcheck.render.terminal import print_report
from backcheck.render.text import render_report
from backcheck.report import Report

STATS = ("max_abs_err", "max_rel_err", "rel_diff")
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report-schema.json"


def _with_bad_entry(value: float) -> Report:
    """A 4-element gradient, right but for ``value`` at x[1]: FAIL, 1 wrong of 4 checked."""
    x = np.array([1.0, -2.0, 0.5, 3.0])
    return backcheck.check(lambda x: np.sum(x**2), x, lambda x: np.where(np.arange(4) == 1, value, 2 * x))


@pytest.fixture(scope="module")
def nan_grad() -> Report:
    return _with_bad_entry(np.nan)


@pytest.fixture(scope="module")
def inf_grad() -> Report:
    return _with_bad_entry(np.inf)


@pytest.fixture(scope="module")
def missed() -> Report:
    """A sparse check whose one sample fell in p['b']: p['a'] is inconclusive with 0 of 50 elements checked."""
    p = {"a": np.linspace(-1, 1, 50), "b": np.linspace(-2, 2, 3000).reshape(60, 50)}
    return backcheck.check(lambda p: np.sum(p["a"] ** 2) + np.sum(p["b"] ** 2), p,
                           lambda p: {"a": 2 * p["a"], "b": 2 * p["b"]}, strategy="sparse", samples=1, seed=0)


@pytest.fixture(scope="module")
def projected_pass() -> Report:
    """A pass along random directions: 0 of 2000 elements compared one by one."""
    x = np.random.default_rng(0).normal(size=2000)
    return backcheck.check(lambda x: np.sum(x**2), x, lambda x: 2 * x, strategy="projected")


def _text_stats(report: Report, name: str) -> list[str]:
    row = next(line for line in render_report(report).splitlines() if line.split()[:1] == [name])
    return row.split()[-3:]


def _rich_stats(report: Report, name: str) -> list[str]:
    pytest.importorskip("rich")
    buf = io.StringIO()
    print_report(report, file=buf, color=True)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
    row = next(line for line in plain.splitlines() if line.split()[:1] == [name])
    return [cell for cell in row.split() if cell != "│"][-3:]


def _html_stats(report: Report, name: str) -> list[str]:
    page = render_html(report)
    for row in re.findall(r"<tr><td class=\"name\"><a href=\"#c0-l\d+\">(.*?)</tr>", page):
        cells = [unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", "<td>" + row)]
        if cells[0] == name:
            return [c.replace("*", "") for c in cells[7:10]]
    raise AssertionError(f"no row of {name}")


def _json_stats(report: Report, name: str) -> list[object]:
    leaf = next(lf for lf in to_document(report)["reports"][0]["leaves"] if lf["name"] == name)
    return [leaf[k] for k in STATS]


def _validate(report: Report) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(json.loads(to_json(report)))


@pytest.mark.parametrize(("which", "shown"), [("nan_grad", ["nan", "nan", "nan"]), ("inf_grad", ["inf", "nan", "nan"])])
def test_a_non_finite_gradient_has_no_finite_error_statistics(which: str, shown: list[str],
                                                               request: pytest.FixtureRequest) -> None:
    # a NaN at x[1] read as max rel err 2.75e-11 and rel diff 0 (the element dropped), max abs err null in JSON
    report = request.getfixturevalue(which)
    assert report.status == "fail" and report.leaves[0].n_mismatch == 1
    assert _text_stats(report, "x") == shown
    assert _rich_stats(report, "x") == shown
    assert _html_stats(report, "x") == shown
    assert _json_stats(report, "x") == [None, None, None]
    _validate(report)


@pytest.mark.parametrize("which", ["nan_grad", "inf_grad"])
def test_the_histogram_counts_a_failed_non_finite_element_beyond_the_bound(which: str,
                                                                          request: pytest.FixtureRequest) -> None:
    # it dropped the element: 'Here 0 of 3 are beyond the bound', every bar green
    page = render_html(request.getfixturevalue(which))
    caption = next(c for c in re.findall(r"<figcaption>(.*?)</figcaption>", page) if "over its own bound" in c)
    assert "Here 1 of 4 are beyond the bound." in caption and "NaN/inf" in caption
    assert re.findall(r">(\d+ of \d+ beyond the bound)<", page) == ["1 of 4 beyond the bound"]
    assert "NaN/inf: 1 (bar at the right)" in page and "1 element(s) with a NaN or infinite value: failed" in page


@pytest.mark.parametrize("which", ["nan_grad", "inf_grad"])
def test_the_heatmap_shows_a_failed_non_finite_element_as_failing(which: str, request: pytest.FixtureRequest) -> None:
    # it was grey, 'Grey cells were not checked' (x[1] was checked: it is the mismatch)
    page = render_html(request.getfixturevalue(which))
    caption = next(c for c in re.findall(r"<figcaption>(.*?)</figcaption>", page) if "laid out as one row" in c)
    assert "Grey cells" not in caption and "NaN or infinite value" in caption and "counts them as wrong" in caption
    heat = next(p for p in re.findall(r"<svg.*?</svg>", page) if "heatmap of" in p)
    assert f'fill="{svg.RED}"><title>[0, 1]: ' in heat and "(NaN or inf: failed)" in heat
    assert "NaN or inf, failed" in heat  # the legend under the plot


def test_a_non_finite_element_not_judged_wrong_is_told_apart() -> None:
    # sqrt at 0: the analytic derivative is inf there, and the element is inconclusive, not wrong
    x = np.array([1.0, 2.0, 0.0, 3.0])
    report = backcheck.check(lambda x: np.sum(x**2) + np.sqrt(x[2]), x,
                             lambda x: np.r_[2 * x[:2], 2 * x[2] + 0.5 / np.sqrt(x[2]), 2 * x[3:]])
    assert report.status == "inconclusive" and report.element_status[2] == "noisy"
    page = render_html(report)
    assert re.findall(r">(\d+ of \d+ beyond the bound)<", page) == ["0 of 4 beyond the bound"]
    assert "none counts as beyond the bound" in page and "Brown cells" in page and "Grey cells" not in page
    assert _text_stats(report, "x") == ["inf", "nan", "nan"]


@pytest.mark.parametrize(("which", "name"), [("missed", "p['a']"), ("projected_pass", "x")])
def test_nothing_compared_shows_no_error_statistics(which: str, name: str, request: pytest.FixtureRequest) -> None:
    # 0/50 and 0/2000 compared one by one read 'max abs err 0, max rel err 0, rel diff 0': exact agreement
    report = request.getfixturevalue(which)
    lf = report.leaf(name)
    assert lf.n_checked == 0 and lf.n_judged == 0
    assert _text_stats(report, name) == ["-", "-", "-"]
    assert _rich_stats(report, name) == ["-", "-", "-"]
    assert _html_stats(report, name) == ["-", "-", "-"]
    assert _json_stats(report, name) == [None, None, None]
    assert all(getattr(lf, k) != 0.0 for k in STATS)  # NaN on the object: no number either
    _validate(report)


def test_a_projected_pass_keeps_its_per_direction_statement(projected_pass: Report) -> None:
    text = render_report(projected_pass)
    assert "pass: along random directions, an RMS error of" in text
    assert "relative difference -" in render_html(projected_pass)


def test_the_compared_array_beside_one_missed_keeps_its_statistics(missed: Report) -> None:
    stats = _json_stats(missed, "p['b']")
    assert all(isinstance(v, float) and v > 0 for v in stats)
    assert _text_stats(missed, "p['b']") == [svg.fmt(missed.leaf("p['b']").max_abs_err),
                                             svg.fmt(missed.leaf("p['b']").max_rel_err),
                                             svg.fmt(missed.leaf("p['b']").rel_diff)]


def test_blame_takes_the_largest_error_of_the_arrays_compared(missed: Report) -> None:
    # an array compared in no element has no error (NaN): it must not hide the others' largest one
    row = BlameRow.of("layer", "Affine", missed)
    assert row.max_rel_err == missed.leaf("p['b']").max_rel_err


def test_svg_histogram_and_heatmap_take_non_finite_counts() -> None:
    plot = svg.histogram(np.array([0.1, 0.5, 3.0]), name="w", nonfinite=(2, 1))
    assert ">2 of 5 beyond the bound<" in plot and "NaN/inf: 2 (bar at the right)" in plot
    assert "1 element(s) with a NaN or infinite value: failed" in plot
    assert "1 element(s) with a NaN or infinite value: not judged wrong" in plot
    only = svg.histogram(np.empty(0), name="w", nonfinite=(1, 1))
    assert ">1 of 1 beyond the bound<" in only
    values = np.array([[1e-3, np.nan], [np.inf, 1e-2]])
    flags = np.array([[0, svg.NONFINITE_FAILED], [svg.NONFINITE_OTHER, 0]])
    heat = svg.heatmap(values, name="w", flags=flags)
    assert f'fill="{svg.RED}"><title>[0, 1]: nan (NaN or inf: failed)' in heat
    assert f'fill="{svg.BROWN}"><title>[1, 0]: inf (NaN or inf)' in heat
    assert "NaN or inf, failed" in heat and "NaN or inf, not judged wrong" in heat
    assert "NaN or inf" not in svg.heatmap(np.array([[1e-3, np.nan]]), name="w")
