"""Array and element names are shown as written in the colour terminal report: rich read them as markup, so
check_object's W[val] lost its [val] (b[val][0] showed as b[0]) and a name holding [/b] crashed the renderer."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

import backcheck

pytest.importorskip("rich")


def _plain(report: backcheck.Report) -> str:
    from backcheck.render.terminal import print_report

    buf = io.StringIO()
    print_report(report, file=buf, color=True)
    return re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())


def test_names_with_brackets_are_shown_as_written() -> None:
    params = {"b[val]": np.ones(2), "a[/b]": np.ones(2)}
    report = backcheck.check(
        lambda p: float(np.sum(p["b[val]"] ** 2 + p["a[/b]"] ** 2)),
        params,
        lambda p: {"b[val]": 3 * p["b[val]"], "a[/b]": 2 * p["a[/b]"]},
    )
    text = _plain(report)
    assert "p['b[val]'][0]" in text and "p['a[/b]']" in text, text
