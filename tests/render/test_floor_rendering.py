"""Every renderer states a passing array's detection floor: the smallest error in any element that would certainly
have failed (at least the largest bound a passing element was held to, plus its own difference).

A floor that is not a number (nothing passed one by one, or a projected check whose floor is in its note) is
never printed as 'nan': the array shows the note, or nothing.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import replace
from html import escape

import numpy as np
import pytest

import backcheck
from backcheck.render._data import KINK_PHRASE, floor_line, floor_sentence, leaf_data
from backcheck.render.html import render_html
from backcheck.render.json import to_json
from backcheck.render.terminal import print_report
from backcheck.render.text import render_report
from backcheck.report import Report

NAN = re.compile(r"\bnan\b", re.I)


def _rich(report: Report) -> str:
    buf = io.StringIO()
    print_report(report, file=buf, color=True)
    return re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())


def _leaf_section(page: str, name: str) -> str:
    """The HTML of one array's section (its <details>), found by the array's name in the summary."""
    for section in re.findall(r'<details class="leaf".*?</details>', page, re.S):
        if f'<h3 style="display:inline">{escape(name)}</h3>' in section:
            return section
    raise AssertionError(f"no section for {name}")


def _floor_cells(page: str) -> list[str]:
    """The last cell (detection floor) of every row of the leaves tables, in order."""
    tables = re.findall(r"<table><tr><th>input</th>.*?</table>", page, re.S)
    return [re.findall(r"<td[^>]*>.*?</td>", row)[-1] for t in tables for row in t.split("</tr>")[1:-1]]


def _expected_floor(report: Report) -> list[float]:
    """Each array's floor, checked against the per-element bounds and verdicts the report stores: never below
    what an element that passed was held to (its bound plus its own difference)."""
    out = []
    for d in leaf_data(report):
        assert d.bound is not None and d.status is not None and d.analytic is not None and d.numeric is not None
        ok = d.status == "ok"
        if ok.any():
            held = float((d.bound[ok] + np.abs(d.analytic[ok] - d.numeric[ok])).max())
            assert d.leaf.floor >= held * (1 - 1e-12)
        out.append(d.leaf.floor if ok.any() else math.nan)
    return out


def test_the_floor_shown_is_the_largest_bound_of_a_passing_element(passing32: Report) -> None:
    assert passing32.ok and len(passing32.leaves) == 3
    page = render_html(passing32)
    cells = _floor_cells(page)
    for lf, expected, cell in zip(passing32.leaves, _expected_floor(passing32), cells, strict=True):
        assert math.isfinite(expected) and expected > 0
        sentence = f"pass: no element wrong by more than {expected:.2g}"
        assert floor_sentence(lf).startswith(sentence)
        assert f'<p class="floor">{escape(floor_sentence(lf))}</p>' in _leaf_section(page, lf.name)
        assert f"{expected:.2g}" in cell and f"({lf.floor_rel:.2g} rel.)" in cell
        # relative to the array's typical gradient: the RMS of its numeric gradient
        numeric = next(d.numeric for d in leaf_data(passing32) if d.leaf is lf)
        typical = float(np.sqrt(np.mean(np.square(numeric))))
        assert lf.floor_rel == pytest.approx(expected / typical, rel=1e-6)
        assert f"{lf.name}: {floor_sentence(lf)}" in render_report(passing32)
        assert f"{lf.name}: {floor_sentence(lf)}" in _rich(passing32)


def test_a_failing_array_states_no_floor_but_its_passing_neighbours_do(failing: Report) -> None:
    page = render_html(failing)
    cells = _floor_cells(page)
    statuses = [lf.status for lf in failing.leaves]
    assert statuses == ["fail", "pass", "pass"]
    assert cells[0] == "<td></td>" and 'class="floor"' not in _leaf_section(page, "x")
    for lf, cell in zip(failing.leaves[1:], cells[1:], strict=True):
        assert f"{lf.floor:.2g}" in cell and escape(floor_sentence(lf)) in _leaf_section(page, lf.name)
    text, rich = render_report(failing), _rich(failing)
    assert "x: pass:" not in text and "x: pass:" not in rich
    assert "gamma: pass: no element wrong by more than" in text and "gamma: pass: no element wrong" in rich


def test_a_projected_pass_never_claims_an_element_floor_nor_nan(projected: Report) -> None:
    """Random directions vouch for an RMS error over the array, stated as such (or by the note), never per element."""
    lf = projected.leaves[0]
    assert projected.ok and lf.n_checked == 0
    line = floor_line(projected, lf)
    assert line.startswith("pass: ") and "random direction" in line and "would have failed" in line
    assert "no element wrong" not in line
    page = render_html(projected)
    assert not NAN.search(page)
    assert f'<p class="floor">{escape(line)}</p>' in _leaf_section(page, "x")
    cell = _floor_cells(page)[0]
    assert cell == f'<td title="{escape(line)}">see note</td>' or (f"{lf.floor:.2g}" in cell and "RMS" in cell)
    for out in (render_report(projected), _rich(projected)):
        assert not NAN.search(out) and "no element wrong" not in out


def test_an_rms_floor_reads_as_one(passing32: Report) -> None:
    """A floor over the whole array (random directions) is never worded as a bound on every element."""
    lf = replace(passing32.leaves[0], name="x", floor=3e-7, floor_rel=2e-7)
    assert floor_sentence(lf) == "pass: no element wrong by more than 3e-07 (2e-07 of its typical gradient)"
    lf.floor_kind = "rms"
    assert floor_sentence(lf) == (
        "pass: along random directions, an RMS error of 3e-07 (2e-07 of its typical gradient) or more would have failed"
    )
    page = render_html(replace(passing32, leaves=[lf]))
    assert _floor_cells(page) == ['<td>3e-07 <span class="rel">(2e-07 rel., RMS)</span></td>']
    assert "no element wrong" not in page


@pytest.mark.parametrize("status", ["pass", "inconclusive", "fail"])
def test_an_unknown_floor_is_never_printed(passing32: Report, status: str) -> None:
    """A NaN floor without a note about the array: the renderers say nothing about a floor."""
    leaves = [replace(lf, floor=math.nan, floor_rel=math.nan, status=status) for lf in passing32.leaves]
    report = replace(passing32, leaves=leaves, notes=[])
    page = render_html(report)
    assert not NAN.search(page) and 'class="floor"' not in page
    assert _floor_cells(page) == ["<td></td>"] * len(leaves)
    for out in (render_report(report), _rich(report)):
        assert not NAN.search(out) and "no element wrong" not in out


def test_a_floor_without_a_typical_gradient_is_stated_against_the_checks_own(passing32: Report) -> None:
    """An array whose differences show no gradient (f's rounding over its steps: another array's terms 1e17 times
    larger) is vouched against the check's largest typical gradient, and its pass says so."""
    lf = replace(passing32.leaves[0], floor_rel=math.nan, check_scale=2.0 * passing32.leaves[0].floor)
    assert floor_sentence(lf) == (
        f"pass: no element wrong by more than {lf.floor:.2g} (0.5 of the check's largest typical gradient, "
        f"{lf.check_scale:.2g}; the differences show no gradient of this array's own)"
    )
    lf = replace(lf, check_scale=math.nan)
    assert floor_sentence(lf) == f"pass: no element wrong by more than {lf.floor:.2g}"
    page = render_html(replace(passing32, leaves=[lf, *passing32.leaves[1:]]))
    assert not NAN.search(page) and _floor_cells(page)[0] == f"<td>{lf.floor:.2g}</td>"
    page = render_html(replace(passing32, leaves=[lf, *passing32.leaves[1:]]))
    assert not NAN.search(page) and _floor_cells(page)[0] == f"<td>{lf.floor:.2g}</td>"


def test_json_carries_floor_and_floor_rel(passing32: Report, projected: Report, failing: Report) -> None:
    doc = json.loads(to_json([passing32, projected, failing]))
    for report, entry in zip([passing32, projected, failing], doc["reports"], strict=True):
        for lf, leaf in zip(report.leaves, entry["leaves"], strict=True):
            for key in ("floor", "floor_rel"):
                value = getattr(lf, key)
                assert leaf[key] == (value if math.isfinite(value) else None), (report.title, lf.name, key)
    assert all(leaf["floor"] > 0 for leaf in doc["reports"][0]["leaves"])


def test_kinks_are_called_valid_subgradients_everywhere(kinked: Report) -> None:
    assert kinked.ok and any(lf.n_kinks for lf in kinked.leaves)
    for out in (render_report(kinked), _rich(kinked), render_html(kinked)):
        assert KINK_PHRASE in out and "one-sided slope)" not in out


def test_readme_quotes_the_floor_line_as_reports_print_it(passing32: Report) -> None:
    """README's 'What a verdict guarantees' quotes a floor line; it must be the renderers' own format."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"`x: (pass: no element wrong by more than (\S+) \((\S+) of its typical gradient\))`", readme)
    assert quoted, "README no longer quotes a floor line"
    lf = replace(passing32.leaves[0], name="x", floor=float(quoted.group(2)), floor_rel=float(quoted.group(3)))
    assert floor_sentence(lf) == quoted.group(1)


def test_a_function_that_stands_still_says_so_beside_its_tiny_floor() -> None:
    import backcheck

    report = backcheck.check_layer(lambda x: x * 0.0, lambda d, x: d * 0.0, np.linspace(-1.0, 1.0, 6))
    (lf,) = report.leaves
    assert report.ok and lf.floor < 1e-290
    assert "does not change with x here" in floor_sentence(lf)
    moving = backcheck.check_layer(lambda x: x * 2.0, lambda d, x: d * 2.0, np.linspace(-1.0, 1.0, 6))
    assert "does not change" not in floor_sentence(moving.leaves[0])


def test_an_array_whose_gradient_is_about_zero_states_its_floor_against_the_check():
    # a bias before a batch norm: its true gradient is 0, its numeric one rounding (4.5e-5); "267 of its typical
    # gradient" said nothing a reader could use
    from backcheck.report import LeafReport

    lf = LeafReport("b1", (6,), "float32", "pass", 6, 6, {"ok": 6}, 0.0, 0.0, 0.0, floor=0.012, floor_rel=267.0)
    assert floor_sentence(lf) == "pass: no element wrong by more than 0.012 (2.7e+02 of its typical gradient)"
    lf.check_scale = 0.8
    assert floor_sentence(lf) == (
        "pass: no element wrong by more than 0.012 (0.015 of the check's largest typical gradient, 0.8; this array's "
        "own is 4.5e-05)"
    )
    lf.floor_rel = 0.05  # an array of its own size: as before
    assert floor_sentence(lf).endswith("(0.05 of its typical gradient)")


def test_an_array_below_fs_rounding_says_what_its_pass_is_weighed_against() -> None:
    """exp(a) beside exp(40): a's terms are below f's last place, its differences read 0, and its pass is vouched
    against b's gradient, 1e17 times a's: the sentence says so, not a bare bound a hundred million times a's."""
    params = [np.array([1.0]), np.array([40.0])]
    f = lambda p: float(np.exp(p[0]).sum() + np.exp(p[1]).sum())  # noqa: E731
    report = backcheck.check(f, params, lambda p: [np.exp(p[0]), np.exp(p[1])])
    a = report.leaves[0]
    assert a.status == "pass" and a.floor > 1e6 * np.exp(1.0)
    assert "of the check's largest typical gradient" in floor_sentence(a)
    assert "show no gradient of this array's own" in floor_sentence(a)
