"""Terminal output: rich tables in colour on a terminal, plain text elsewhere."""

from __future__ import annotations

import io
import sys

import pytest

from backcheck.render.terminal import print_report, use_rich
from backcheck.render.text import render_report
from backcheck.report import Report


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_text_when_not_a_terminal(failing: Report) -> None:
    buf = io.StringIO()
    print_report(failing, file=buf)
    assert buf.getvalue() == render_report(failing) + "\n"
    assert "\x1b[" not in buf.getvalue()


def test_rich_on_a_terminal(failing: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    buf = FakeTTY()
    assert use_rich(buf)
    print_report(failing, file=buf)
    out = buf.getvalue()
    assert "\x1b[" in out  # colour
    assert "FAIL" in out and "worst elements" in out and "mismatch" in out
    assert failing.leaves[0].worst[0].name in out


def test_no_color_gives_plain_text(failing: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    buf = FakeTTY()
    assert not use_rich(buf)
    print_report(failing, file=buf)
    assert "\x1b[" not in buf.getvalue() and buf.getvalue().startswith("backcheck FAIL")


def test_without_rich_gives_plain_text(failing: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    buf = FakeTTY()
    assert not use_rich(buf)
    print_report(failing, file=buf)
    assert buf.getvalue() == render_report(failing) + "\n"


def test_forced_colour_into_a_file(kinked: Report, mutating: Report) -> None:
    buf = io.StringIO()
    print_report(kinked, file=buf, color=True)
    print_report(mutating, file=buf, color=True)
    out = buf.getvalue()
    assert "\x1b[" in out and "at a kink" in out and "MUTATION" in out


def test_text_report_lists_ratio_to_bound(failing: Report) -> None:
    text = render_report(failing)
    assert "diff/bound" in text
    worst = failing.leaves[0].worst[0]
    assert f"{worst.abs_err / worst.bound:.3g}" in text


def test_an_array_failed_by_random_directions_lists_no_empty_table() -> None:
    """strategy='projected' fails an array without naming elements: its reason is shown, not an empty table."""
    import numpy as np

    import backcheck

    x = np.random.default_rng(7).normal(size=(100, 100))

    def wrong(x: np.ndarray) -> np.ndarray:
        g = 1 - np.tanh(x) ** 2
        g[3, 4] += 0.5
        return g

    report = backcheck.check(lambda x: np.sum(np.tanh(x)), x, wrong, strategy="projected")
    lf = report.leaves[0]
    assert lf.status == "fail" and lf.worst == [] and "random directions disagree" in lf.note
    text = render_report(report)
    assert "worst elements" not in text and "element  analytic" not in text
    assert f"  x: {lf.note}" in text
    buf = io.StringIO()
    print_report(report, file=buf, color=True)
    assert "worst elements" not in buf.getvalue() and "random directions disagree" in buf.getvalue()
