"""Unit tests of backcheck.evaluate: the only place that calls the function under test."""

import numpy as np
import pytest

import backcheck
from backcheck.backends import CHECK_EVERY
from backcheck.containers import flatten
from backcheck.errors import NonFiniteError, UserFunctionError
from backcheck.evaluate import Backend, Evaluator, Output
from backcheck.findings import unread_findings
from backcheck.numeric.steps import default_steps
from backcheck.tree import Tree

# the functions below step across the edge of log's domain on purpose
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")


def evaluator(f, params, **kw):
    tree = Tree(params, "x")
    ev = Evaluator(tree, f, Output.loss("f"), "f", **kw)
    ev.baseline()
    return ev


def cube(x):
    return float(np.sum(np.asarray(x) ** 3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fast_loop_and_the_element_path_agree_and_displacements_are_exact(dtype):
    x = np.linspace(-1.0, 2.0, 9).astype(dtype)
    ev = evaluator(cube, x)
    idx = np.array([7, 0, 3])
    steps = default_steps(ev.tree)
    fp, fm, dp, dm = ev.first_differences(idx, steps)
    for k, i in enumerate(idx):
        phis, disp = ev.element(int(i), (steps[i], -steps[i]))
        np.testing.assert_array_equal(phis, [fp[k], fm[k]])
        np.testing.assert_array_equal(disp, [dp[k], dm[k]])
        # the displacement is what the array could hold: (x + h) rounded to its dtype, minus x, in float64
        assert dp[k] == float(dtype(float(x[i]) + steps[i])) - float(x[i])
    eps = float(np.finfo(dtype).eps)
    central = (fp - fm) / (dp - dm)
    np.testing.assert_allclose(central, 3 * x[idx].astype(np.float64) ** 2, rtol=100 * eps ** (2 / 3), atol=1e-6)


def test_a_function_that_starts_writing_into_its_input_later_is_caught_and_every_value_stays_right():
    x = np.linspace(0.5, 1.5, 3 * CHECK_EVERY)
    before = x.tobytes()
    calls = {"n": 0}

    def late(v):
        calls["n"] += 1
        value = float(np.sum(v**3))
        if calls["n"] > 20:  # well after the baseline
            v[5] += 1.0
        return value

    ev = evaluator(late, x)
    assert ev.mutated == []
    clean = evaluator(cube, x.copy())
    idx = np.arange(x.size)
    steps = default_steps(ev.tree)
    got = ev.first_differences(idx, steps.copy())
    want = clean.first_differences(idx, steps.copy())
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)  # every value computed from the right input
    assert [(leaf.name, [int(i) for i in where]) for leaf, where in ev.mutated] == [("x", [5])]
    assert x.tobytes() == before


def test_mutation_is_caught_on_the_element_and_direction_paths_too():
    x = np.ones(4)
    calls = {"n": 0}

    def late(v):
        calls["n"] += 1
        if calls["n"] == 4:
            v *= 2.0
        return float(np.sum(v**2))

    ev = evaluator(late, x)
    phis, _ = ev.element(1, (1e-3, -1e-3))  # calls 3 and 4
    assert ev.mutated and np.array_equal(x, np.ones(4))
    phis2, _ = ev.direction(np.array([0, 2]), np.ones(2), (1e-3,))
    assert np.array_equal(x, np.ones(4))
    np.testing.assert_allclose(phis2[0], 2 * (1 + 1e-3) ** 2 + 2, rtol=1e-14)


def test_a_step_across_the_edge_of_the_domain_is_shrunk_in_place_and_noted():
    x = np.array([1e-7, 1.0, 2.0])
    ev = evaluator(lambda v: float(np.sum(np.log(v))), x)
    steps = default_steps(ev.tree)
    h0 = steps.copy()
    fp, fm, dp, dm = ev.first_differences(np.arange(3), steps)
    assert np.all(np.isfinite(fp)) and np.all(np.isfinite(fm))
    assert steps[0] < x[0] < h0[0] and np.array_equal(steps[1:], h0[1:])
    assert list(ev.shrunk) == [0]
    np.testing.assert_allclose((fp - fm) / (dp - dm), 1 / x, rtol=2e-2)
    assert any("x[0]" in n and "edge" in n for n in ev.notes())
    with pytest.raises(NonFiniteError, match=r"x\[0\] perturbed by -"):
        ev.element(0, (h0[0], -h0[0]))  # without shrink=True, a non-finite value is an error


def test_a_function_non_finite_on_both_sides_still_raises_a_typed_error():
    ev = evaluator(lambda v: float(np.sum(v)) if v[0] == 0.5 else float("nan"), np.array([0.5, 1.0]))
    with pytest.raises(NonFiniteError, match="did not help"):
        ev.first_differences(np.array([0]), default_steps(ev.tree))


def test_non_finite_entries_are_never_moved():
    x = np.array([1.0, -np.inf, np.nan, 2.0])
    before = x.tobytes()
    seen = []

    def f(v):
        seen.append(v.copy())
        return float(np.sum(np.where(np.isfinite(v), v, 0.0) ** 2))

    ev = evaluator(f, x)
    phis, disps = ev.direction(np.arange(4), np.ones(4), (0.1,))
    assert np.isneginf(seen[-1][1]) and np.isnan(seen[-1][2])
    np.testing.assert_allclose(disps[0], [0.1, 0.0, 0.0, 0.1])
    np.testing.assert_allclose(phis[0], 1.1**2 + 2.1**2)
    with ev.shifted(np.full(4, 0.25)):
        assert np.isneginf(x[1]) and np.isnan(x[2]) and x[0] == 1.25
    assert x.tobytes() == before


def test_the_user_error_names_the_element_and_the_arrays_are_restored():
    x = np.arange(1.0, 5.0)
    before = x.tobytes()

    def f(v):
        if v[2] != 3.0:
            raise ZeroDivisionError("boom")
        return float(np.sum(v))

    ev = evaluator(f, x)
    with pytest.raises(UserFunctionError, match=r"x\[2\] perturbed by \+"):
        ev.first_differences(np.arange(4), default_steps(ev.tree))
    assert x.tobytes() == before


def test_an_input_the_function_never_reads_is_found():
    W = np.random.default_rng(0).normal(size=(3, 3))
    copy = W.copy()
    ev = evaluator(lambda _: float(np.sum(copy**2)), W)  # a closure over a copy
    steps = default_steps(ev.tree)
    ev.first_differences(np.arange(9), steps)
    assert ev.unmoved() == [0]
    found = unread_findings("f", ev.tree, ev.unmoved(), 2 * W.reshape(-1), steps, ev.phi0, 2.2e-16)
    assert len(found) == 1 and "does not read x" in found[0].message
    # a zero gradient says nothing should have moved: no finding
    assert unread_findings("f", ev.tree, ev.unmoved(), np.zeros(9), steps, ev.phi0, 2.2e-16) == []
    reading = evaluator(lambda v: float(np.sum(v**2)), W)
    reading.first_differences(np.arange(9), steps)
    assert reading.unmoved() == []


def test_the_batched_path_recovers_non_finite_rows_by_shrinking():
    x = np.array([1e-7, 1.0])

    def rows(t):
        return np.sum(np.log(t), axis=1)

    ev = evaluator(lambda v: float(np.sum(np.log(v))), x, backend=Backend(batch_call=rows))
    steps = default_steps(ev.tree)
    fp, fm, dp, dm = ev.first_differences(np.arange(2), steps)
    np.testing.assert_allclose((fp - fm) / (dp - dm), 1 / x, rtol=2e-2)
    assert list(ev.shrunk) == [0]


@pytest.mark.parametrize("order", ["ascending", "shuffled"])
@pytest.mark.parametrize("budget", [1, 200, None])  # 2 rows per call, a few, the default
def test_batched_chunks_across_arrays_in_any_order_evaluate_the_points_asked_for(order, budget):
    params = {"a": np.linspace(0.5, 1.5, 3), "e": np.zeros(0), "b": np.arange(4.0).reshape(2, 2), "c": np.ones(5)}
    weights = np.arange(1.0, 13.0)

    def phi(p):
        return float(np.dot(weights, np.concatenate([np.ravel(p[k]) for k in "abc"]) ** 3))

    base = np.concatenate([np.ravel(params[k]) for k in "abc"])

    def rows(p):
        flat = np.concatenate([p[k].reshape(len(p[k]), -1) for k in "abc"], axis=1)
        assert p["e"].shape == (len(flat), 0)
        assert ((flat != base).sum(axis=1) == 1).all()  # each row one point: earlier chunks' entries put back
        return (flat**3) @ weights

    serial, batched = evaluator(phi, params), evaluator(phi, params, backend=Backend(rows, budget))
    idx = np.arange(12)
    if order == "shuffled":
        idx = np.random.default_rng(0).permutation(idx)
    steps = default_steps(serial.tree)
    want, got = serial.first_differences(idx, steps), batched.first_differences(idx, steps)
    for w, g in zip(want, got, strict=True):
        # one loss per row, summed in another order: equal to the rounding of a 12-term sum
        np.testing.assert_allclose(g, w, rtol=16 * 12 * np.finfo(np.float64).eps, atol=0)
    np.testing.assert_array_equal(got[2], want[2])  # displacements are exact
    assert batched.n_evals == serial.n_evals
    np.testing.assert_array_equal(batched.tree.leaves[0].work, params["a"])


def test_an_output_coarser_than_the_inputs_or_integer_is_said():
    x = np.linspace(0.5, 1.5, 4)
    assert any("float32 for float64 inputs" in n for n in evaluator(lambda v: np.float32(np.sum(v**2)), x).notes())
    ev = evaluator(lambda v: int(np.sum(v > 1.0)), x)
    assert ev.out_dtype == np.float64 and any("an integer" in n for n in ev.notes())
    ev.first_differences(np.arange(4), default_steps(ev.tree))
    assert ev.unmoved() == []  # an integer output stands still: that says nothing about what it reads
    assert evaluator(lambda v: float(np.sum(v**2)), x).notes() == []


@pytest.mark.parametrize("n", [5, 3 * (1 << 15) + 7])  # one chunk, several (the last one short)
def test_a_direction_gives_the_dot_products_of_its_pairs_exact_displacements(n):
    rng = np.random.default_rng(0)
    x = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4, size=n)
    coef = rng.normal(size=n) * 1e-6 * np.abs(x)
    g, w = rng.normal(size=n), rng.normal(size=n)
    ev = evaluator(lambda v: float(np.sum(np.sin(v))), x)
    steps = (1.0, -1.0)
    phis, disps = ev.direction(slice(0, n), coef, steps)
    phis2, dots = ev.direction(slice(0, n), coef, steps, weights=(g, w))
    np.testing.assert_array_equal(phis2, phis)  # the same points
    d = disps[0] - disps[1]  # the difference of the pair's exact displacements, rounded once
    for weight, got in zip((g, w), dots, strict=True):
        # a dot product summed by chunks: equal to the rounding of an n-term sum of |g d|
        allowed = 4 * n * np.finfo(float).eps * float(np.abs(weight) @ np.abs(d))
        assert abs(got - float(np.dot(weight, d))) <= allowed
    np.testing.assert_array_equal(ev.tree.leaves[0].work, x)  # put back
    with pytest.raises(ValueError, match="pair"):
        ev.direction(slice(0, n), coef, (1.0, -1.0, 0.5), weights=(g,))


@pytest.mark.parametrize("call", [2, 3])  # during a direction's first step (not put back after it) and its last
def test_a_write_into_another_array_during_a_direction_is_found_and_undone(call):
    params = {"a": np.linspace(0.1, 1.0, 5000), "b": np.array([1.0, 2.0, 3.0])}
    before = {k: v.copy() for k, v in params.items()}
    seen = []

    def f(p):
        seen.append(p["b"].copy())
        out = float(np.sum(np.sin(p["a"])) + np.sum(p["b"] ** 2))
        if len(seen) == call:
            p["b"][0] += 1.0  # the function writes into an input it is not being moved along
        return out

    r = backcheck.check(f, params, lambda p: {"a": np.cos(p["a"]), "b": 2 * p["b"]}, strategy="auto")
    assert [finding.elements for finding in r.findings] == [["p['b'][0]"]], r.findings
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    # every call after the write saw b as it was (but for the check's own steps, far below the write's 1.0)
    assert all(abs(b[0] - before["b"][0]) < 0.5 for b in seen[call:])


def test_a_layer_that_starts_writing_into_its_input_later_is_caught_and_every_first_difference_stays_right():
    # a layer's outputs take the same fast loop as a loss: its inputs are checksummed every CHECK_EVERY pairs, and
    # the pairs since the last checksum are evaluated again from the restored point
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(4, 3 * CHECK_EVERY // 4)), rng.normal(size=(3 * CHECK_EVERY // 4, 2))
    before = x.copy()
    calls = {"n": 0}

    def late(x, w):
        calls["n"] += 1
        out = np.tanh(x) @ w
        if calls["n"] > 2 * CHECK_EVERY + 5:  # well inside the first differences, in the middle of a block
            x[1, 2] = 7.0  # an in-place write into the caller's array
        return out

    def clean(x, w):
        return np.tanh(x) @ w

    def backward(dout, x, w):
        return (dout @ w.T) * (1 - np.tanh(x) ** 2), np.tanh(x).T @ dout

    wrote = backcheck.check_layer(late, backward, (x, w), strategy="full", seed=0)
    right = backcheck.check_layer(clean, backward, (x, w), strategy="full", seed=0)
    assert [f.kind for f in wrote.findings] == ["mutation"] and "x[1, 2]" in wrote.findings[0].message, wrote
    got, want = flatten(wrote.numeric), flatten(right.numeric)
    assert [name for name, _ in got] == [name for name, _ in want] == ["['x']", "['w']"]
    for (_, a), (_, b) in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)  # every value computed from the caller's input, as it was
    assert np.array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_segment_along_one_element_matches_the_direction_over_it_and_names_it_where_f_is_not_finite(dtype):
    x = np.linspace(0.25, 2.0, 12).astype(dtype)
    ev = evaluator(lambda v: float(np.sum(np.log(np.asarray(v, dtype=np.float64)) * np.arange(12))), x)
    offsets = np.linspace(-3e-3, 3e-3, 7) + 1e-9  # (off the grid of float32: both round alike)
    n0 = ev.n_evals
    got = ev.along(5, offsets)
    assert ev.n_evals - n0 == offsets.size
    want = [ev.direction(np.array([5]), np.array([o]), (1.0,))[0][0] for o in offsets]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(NonFiniteError, match=r"x\[0\] perturbed"):
        ev.along(0, np.array([0.1, -0.3]))  # log of a negative number
    assert np.array_equal(ev.tree.values(), x.astype(np.float64))
