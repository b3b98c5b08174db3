"""The pytest plugin under pytest-xdist (-n 2): one session report holding every worker's checks, and the failure
sections of the workers' tests."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("xdist")

# eight tests, so that both workers run some; a module-level check, which every worker makes as it collects
SPREAD = '''
import backcheck
from layers_mod import X, W, fwd, bwd, bad

AT_IMPORT = backcheck.check_layer(fwd, bwd, (X, W))


def test_0():
    assert backcheck.check_layer(fwd, bwd, (X, W)).ok


def test_1(gradcheck):
    gradcheck.layer(fwd, bwd, (X, W))


def test_2():
    assert backcheck.check_layer(fwd, bad, (X, W)).ok


def test_3():
    assert backcheck.check_layer(fwd, bwd, (X, W)).ok
    assert backcheck.check_layer(fwd, bwd, (X, W), seed=1).ok


def test_4():
    assert backcheck.check_layer(fwd, bwd, (X, W)).ok


def test_5():
    assert backcheck.check_layer(fwd, bwd, (X, W)).ok


def test_6():
    assert backcheck.check_layer(fwd, bwd, (X, W)).ok


def test_7():
    assert backcheck.check_layer(fwd, bwd, (X, W)).ok
'''

#: The labels of the session report, in the order of the tests.
LABELS = ["(outside a test)", "test_spread.py::test_0", "test_spread.py::test_1", "test_spread.py::test_2",
          "test_spread.py::test_3 [1]", "test_spread.py::test_3 [2]", "test_spread.py::test_4",
          "test_spread.py::test_5", "test_spread.py::test_6", "test_spread.py::test_7"]


def _run(layers: pytest.Pytester, *args: str) -> pytest.RunResult:
    layers.makepyfile(test_spread=SPREAD)
    result = layers.runpytest_inprocess("-p", "no:cacheprovider", "-n", "2", *args)
    result.assert_outcomes(passed=7, failed=1)
    assert re.search(r"created: 2/2 workers", result.stdout.str())
    # the failing test's section, made on its worker
    result.stdout.fnmatch_lines(["*_ test_2 _*", "*- backcheck -*", "backcheck FAIL: fwd / bad*",
                                 "*w: worst elements (8 wrong of 8 checked)*"])
    return result


def test_the_json_report_holds_every_workers_checks_in_test_order(layers: pytest.Pytester) -> None:
    # each worker wrote its own file (checks.gw0.json, checks.gw1.json) and the controller an empty one
    out = layers.path / "checks.json"
    result = _run(layers, f"--backcheck-report={out}")
    result.stdout.fnmatch_lines(["backcheck: 10 gradient check(s), 1 not passing; report written to *checks.json"])
    doc = json.loads(out.read_text())
    assert [r["label"] for r in doc["reports"]] == LABELS  # the import-time check once, not once per worker
    assert [r["status"] for r in doc["reports"]].count("fail") == 1 and doc["status"] == "fail"
    assert sorted(p.name for p in layers.path.glob("checks*")) == ["checks.json"]


def test_the_html_report_holds_every_workers_checks(layers: pytest.Pytester) -> None:
    out = layers.path / "out" / "checks.html"
    result = _run(layers, f"--backcheck-report={out}", "--backcheck-curves")
    result.stdout.fnmatch_lines(["backcheck: 10 gradient check(s), 1 not passing; report written to *checks.html"])
    page = out.read_text()
    assert page.count('<section class="check') == 10
    assert all(label in page for label in LABELS)
    assert page.count("V curve of") >= 10  # the workers recorded the curves, and they came across


def test_without_the_option_the_workers_failure_sections_show(layers: pytest.Pytester) -> None:
    result = _run(layers)
    assert "report written" not in result.stdout.str()
