"""backcheck.explore on small hand-written layers: what it finds, how it shrinks, what it reports."""

from __future__ import annotations

import re

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError
from backcheck.explore import (
    Array,
    Choice,
    ExploreFailure,
    Floats,
    Integers,
    Ints,
    Labels,
    Mask,
    Params,
    assert_explore,
    explore,
)

pytest.importorskip("hypothesis")  # explore's only dependency beyond numpy, imported when a search runs


def relu(x):
    return np.maximum(x, 0)


def relu_backward(dout, x):
    return dout * (x >= 0)  # slope 1 at 0: a valid one-sided slope


def relu_backward_shifted(dout, x):
    return dout * (x > 1e-3)  # wrong only for 0 < x <= 1e-3: near the kink


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward_cache(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout[0]  # bias gradient not summed over the batch: right only for N = 1


def subsample(x, step):
    return x[:, ::step]


def subsample_backward(dout, x, step):
    dx = np.zeros_like(x)
    dx[:, ::step] = dout
    return dx


def subsample_backward_floor(dout, x, step):
    dx = np.zeros_like(x)
    dx[:, : (x.shape[1] // step) * step : step] = dout  # drops the last column when step does not divide D
    return dx


RELU = {"x": Array("N", "D")}


def test_correct_relu_passes_with_kinks_and_counts_its_points():
    result = explore(relu, relu_backward, RELU, max_points=25, progress=False)
    assert result.status == "pass", result
    assert result.ok and result.case is None and result.test == ""
    assert result.points == result.passed + result.inconclusive + result.invalid == 25
    assert result.kinks >= 1  # points placed exactly at 0 were drawn, and a kink is not a failure


def test_a_bug_next_to_the_kink_is_found_and_shrunk_to_one_element():
    result = explore(relu, relu_backward_shifted, RELU, max_points=60, progress=False)
    assert result.status == "fail", result
    assert result.case.shapes() == {"x": (1, 1)}
    x = result.case.inputs["x"]
    assert 0 < x[0, 0] <= 1e-3  # the shrunk value sits in the one interval where the backward is wrong
    assert result.report is not None and result.report.status == "fail"
    assert result.passed_before >= 0 and result.shrinks >= 0


def test_the_printed_test_reproduces_the_failure():
    result = explore(relu, relu_backward_shifted, RELU, max_points=60, progress=False)
    source = result.test
    assert "def test_relu_explored():" in source and "backcheck.assert_layer(" in source
    assert "from test_explore_api import relu" in source or "import relu" in source
    namespace: dict = {}
    exec(compile(source, "<explored>", "exec"), namespace)
    with pytest.raises(AssertionError):
        namespace["test_relu_explored"]()


def test_the_same_seed_gives_the_same_run():
    runs = [explore(relu, relu_backward_shifted, RELU, max_points=40, seed=3, progress=False) for _ in range(2)]
    assert runs[0].status == runs[1].status
    assert runs[0].points == runs[1].points and runs[0].passed_before == runs[1].passed_before
    assert runs[0].test == runs[1].test


def test_cache_convention_and_a_batch_bug_shrinks_to_two_rows():
    inputs = {"x": Array("N", "D"), "w": Array("D", "M"), "b": Array("M")}
    result = explore(affine_forward, affine_backward_cache, inputs, cache=True, max_points=40, progress=False)
    assert result.status == "fail", result
    assert result.case.dims["N"] == 2  # N = 1 passes; the smallest failing batch has two rows
    assert result.case.dims["D"] == 1 and result.case.dims["M"] == 1
    assert "cache=True" in result.test


def test_a_hyper_parameter_that_does_not_divide_is_found():
    ok = explore(subsample, subsample_backward, {"x": Array("N", "D")}, hyper={"step": Ints(1, 3)},
                 dims={"D": (1, 6)}, max_points=40, progress=False)
    assert ok.status == "pass", ok
    bad = explore(subsample, subsample_backward_floor, {"x": Array("N", "D")}, hyper={"step": Ints(1, 3)},
                  dims={"D": (1, 6)}, max_points=60, progress=False)
    assert bad.status == "fail", bad
    step, d = bad.case.hyper["step"], bad.case.dims["D"]
    assert step >= 2 and d % step != 0
    assert "functools.partial(" in bad.test and f"step={step}" in bad.test


def test_labels_masks_integers_and_params_are_drawn_in_range():
    seen = []

    def loss(x, y, m, s, p):
        seen.append((y.copy(), m.copy(), s.copy(), dict(p)))
        return np.sum(x[np.arange(len(y)), y] * m * s) * p["alpha"]

    def loss_backward(dout, x, y, m, s, p):
        dx = np.zeros_like(x)
        np.add.at(dx, (np.arange(len(y)), y), dout * m * s * p["alpha"])
        return dx, None, None, None, None

    inputs = {"x": Array("N", "C"), "y": Labels("N", classes="C"), "m": Mask("N", dtype="float64"),
              "s": Integers("N", values=(-1, 1)), "p": Params(alpha=Choice(0.5, 2.0))}
    result = explore(loss, loss_backward, inputs, max_points=25, progress=False)
    assert result.status != "fail" and result.passed >= 1, result  # an all-zero mask leaves nothing to vouch for
    classes = set()
    for y, m, s, p in seen:
        assert y.dtype.kind == "i" and m.dtype == np.float64 and set(np.unique(s)) <= {-1, 1}
        assert set(np.unique(m)) <= {0.0, 1.0} and p["alpha"] in (0.5, 2.0)
        classes.update(y.tolist())
    assert min(classes) >= 0


def test_a_forward_that_refuses_a_point_puts_it_outside_the_domain():
    def even_only(x):
        if x.shape[1] % 2:
            raise ValueError("D must be even")
        return x * 2.0

    def even_backward(dout, x):
        return dout * 2.0

    result = explore(even_only, even_backward, {"x": Array("N", "D")}, max_points=30, progress=False)
    assert result.status == "pass", result
    assert result.invalid >= 1 and "D must be even" in result.invalid_example


def test_a_space_entirely_outside_the_domain_is_inconclusive_not_a_pass():
    def refuse(x):
        raise ValueError("never")

    result = explore(refuse, lambda d, x: d, {"x": Array("N")}, max_points=5, progress=False)
    assert result.status == "inconclusive" and not result.ok and result.invalid == 5
    assert "no point passed" in str(result) and "never" in result.invalid_example


def test_a_backward_that_crashes_where_the_forward_works_is_a_failure():
    def crash_backward(dout, x):
        if x.shape[0] > 1:
            raise IndexError("batch loop off by one")
        return dout * 2.0

    result = explore(lambda x: 2.0 * x, crash_backward, {"x": Array("N", "D")}, max_points=30, progress=False)
    assert result.status == "fail" and result.report is None
    assert "IndexError" in result.error and result.case.dims["N"] == 2


def test_where_restricts_the_points():
    drawn = []

    def scaled(x, k):
        drawn.append((x.shape[0], k))
        return x * k

    explore(scaled, lambda d, x, k: d * k, {"x": Array("N")}, hyper={"k": Floats(0.5, 2.0, edges=(1.0,))},
            where=lambda e: e["N"] >= 2, max_points=15, progress=False)
    assert drawn and all(n >= 2 and 0.5 <= k <= 2.0 for n, k in drawn)


def test_float32_points_are_float32():
    dtypes = set()

    def tanh(x):
        dtypes.add(x.dtype)
        return np.tanh(x)

    result = explore(tanh, lambda d, x: d * (1 - np.tanh(x) ** 2), {"x": Array("N")}, dtype="float32",
                     max_points=10, progress=False)
    assert result.status in ("pass", "inconclusive")
    assert np.dtype(np.float32) in dtypes


def test_budgets_stop_the_search():
    by_points = explore(relu, relu_backward, RELU, max_points=7, progress=False)
    assert by_points.points == 7 and by_points.stopped_by == "points"
    by_evals = explore(relu, relu_backward, RELU, max_points=1000, max_evals=50, progress=False)
    assert by_evals.stopped_by == "evaluations" and by_evals.points < 1000
    assert by_evals.evals - 50 <= max(by_evals.evals / max(by_evals.points, 1) * 2, 200)
    by_time = explore(relu, relu_backward, RELU, max_points=1000, seconds=1e-9, progress=False)
    assert by_time.stopped_by == "seconds" and by_time.points <= 1


def test_shrinking_can_be_turned_off_and_limited():
    result = explore(affine_forward, affine_backward_cache, {"x": Array("N", "D"), "w": Array("D", "M"),
                     "b": Array("M")}, cache=True, shrink=False, max_points=40, seed=1, progress=False)
    assert result.status == "fail" and result.shrinks == 0
    limited = explore(relu, relu_backward_shifted, RELU, max_points=60, shrink_points=1, progress=False)
    assert limited.status == "fail" and limited.shrinks <= 1 and limited.case is not None
    assert "def test_relu_explored" in limited.test


def test_assert_explore_raises_with_the_test_in_the_message():
    with pytest.raises(ExploreFailure) as info:
        assert_explore(relu, relu_backward_shifted, RELU, max_points=60, progress=False)
    assert "def test_relu_explored" in str(info.value) and info.value.result.status == "fail"
    assert assert_explore(relu, relu_backward, RELU, max_points=5, progress=False).ok


def test_the_package_is_callable():
    result = backcheck.explore(relu, relu_backward, inputs=RELU, max_points=3, progress=False)
    assert result.status == "pass" and result.points == 3


@pytest.mark.parametrize(
    "inputs, kwargs, fragment",
    [
        ({}, {}, "non-empty dict"),
        ({"x": (2, 3)}, {}, "not an input description"),
        ({"bad name": Array("N")}, {}, "not a Python identifier"),
        ({"y": Labels("N", classes=3)}, {}, "nothing to differentiate"),
        ({"x": Array("N", lambda e: e["Q"])}, {}, "give its range in dims="),
        ({"x": Array("N")}, {"dims": {"N": "many"}}, "not a dimension range"),
        ({"x": Array("N")}, {"hyper": {"x": Ints(0, 1)}}, "both inputs and hyper-parameters"),
        ({"x": Array("N")}, {"seed": 1.5}, "seed=1.5"),
        ({"x": Array("N")}, {"max_evals": -1}, "evals=-1"),
        ({"x": Array("N")}, {"dtype": "int32"}, "not a float dtype"),
        ({"x": Array("N")}, {"dtype": "float65"}, "is not a dtype"),
    ],
)
def test_bad_descriptions_are_typed_errors_naming_the_culprit(inputs, kwargs, fragment):
    with pytest.raises(BadInputError, match=re.escape(fragment)):
        explore(relu, relu_backward, inputs, progress=False, max_points=2, **kwargs)


def test_bad_specs_are_typed_errors():
    with pytest.raises(BadInputError, match="domain"):
        Array("N", domain="complex")
    with pytest.raises(BadInputError, match="two axes"):
        Array("N", domain="spd")
    with pytest.raises(BadInputError, match="integer range"):
        Ints(3, 1)
    with pytest.raises(BadInputError, match="no values"):
        Choice()
    with pytest.raises(BadInputError, match="finite range"):
        Floats(0.0, float("inf"))


def test_the_result_text_names_counts_case_and_table():
    result = explore(relu, relu_backward_shifted, RELU, max_points=60, progress=False)
    text = str(result)
    assert text.startswith("backcheck explore FAIL: relu / relu_backward_shifted")
    assert f"after {result.passed_before} passing points" in text
    assert "x(1, 1)" in text and "A test that reproduces it" in text
    assert str(result.report).splitlines()[0] in text


def test_progress_bar_runs_without_a_terminal():
    result = explore(relu, relu_backward, RELU, max_points=3, progress=True)
    assert result.points == 3
