"""The explore figure's machinery (benchmarks/bugzoo/explore.py) on one edge layer and one ordinary layer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from backcheck.zoo import get

pytest.importorskip("hypothesis")


def _bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bugzoo" / "explore.py"
    spec = importlib.util.spec_from_file_location("bugzoo_explore", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_figure_counts_what_explore_and_one_point_find():
    bench = _bench()
    results = bench.run([get("rnn_seq"), get("relu")], [0], correct_points=4, bug_points=30, quiet=True)
    rows = {(r["layer"], r["bug"]): r for r in results["rows"]}
    assert rows["rnn_seq", "gradient_not_carried"]["status"] == "fail"
    assert rows["rnn_seq", "gradient_not_carried"]["one_point"] == "pass"  # hidden at make_inputs
    assert rows["rnn_seq", "gradient_not_carried"]["case"].startswith("N=1 T=2")
    assert rows["rnn_seq", None]["status"] == "pass" and rows["rnn_seq", None]["points"] == 4
    ordinary, edge = bench.summary(results)
    assert ordinary[1] == "2/2" and ordinary[2] == "2/2"  # relu's two bugs, by both
    assert edge[1] == "1/1" and edge[2] == "0/1" and edge[4] == "0/1"
    text = bench.markdown(results)
    assert "| rnn_seq | gradient_not_carried | fail |" in text
