"""Checking at scale: O(1) verdicts, O(m log N) localization, batched and distributed evaluation."""

import math
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import backcheck
from backcheck.parallel import EvaluationError

sys.path.insert(0, os.path.dirname(__file__))
import scale_funcs  # noqa: E402
from agreeing import agreeing, directions  # noqa: E402

distributed = pytest.importorskip("dask.distributed")
dask_config = pytest.importorskip("dask.config")
Client, LocalCluster = distributed.Client, distributed.LocalCluster

HERE = os.path.dirname(__file__)


def pool(workers, monkeypatch):
    """A process pool whose workers start fresh ('spawn'): forking a process that has started threads (jax,
    BLAS) can deadlock. Fresh workers import the test functions by name, so their folder goes on the path."""
    monkeypatch.setenv("PYTHONPATH", HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def problem(n, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    x = rng.normal(size=n)

    def f(x):
        return float(np.sum(np.tanh(a * x)))

    def g(x):
        return a * (1 - np.tanh(a * x) ** 2)

    return f, g, x


def with_wrong(g, where, size=0.5):
    def wrong(x):
        d = g(x).copy()
        d[where] += size
        return d

    return wrong


@pytest.mark.parametrize("n", [1, 3, 10, 1000, 100_000, 1_000_000])
def test_auto_verdict_on_a_correct_gradient_costs_at_most_8_evaluations(n):
    f, g, x = problem(n)
    r = backcheck.check(f, x, g, strategy="auto")
    assert r.ok and r.n_evals <= 8
    if n > backcheck.strategies.SMALL_ARRAY:
        # the point once (its second call only before a verdict but a pass), at most three random directions
        # (no noise probe: none needed), fewer where the first lie well within their bounds
        assert 1 <= directions(r) <= 3 and r.n_evals == 1 + 2 * directions(r)
        assert "probability >= 0.999" in " ".join(r.notes)
        assert directions(r) == 3 or "vouches as 3 directions would" in " ".join(r.notes)
    else:
        assert r.n_evals == 1 + 2 * n  # tiny arrays are checked element by element


@pytest.mark.parametrize("promotes", [False, True], ids=["float32-arithmetic", "promotes-at-once"])
@pytest.mark.parametrize("n", [100_000, 1_000_000])
def test_auto_on_float32_parameters_costs_at_most_8_evaluations_too(n, promotes):
    """float32 parameters differenced on float64 copies: the call at the copies that decided it is the
    baseline's first. Two calls decide for a function computing in float32 (its values at the point and at the
    copies differ by rounding), three for one that promotes to float64 at once (equal to the bit, then asked off
    float32's grid); the directions (at most three) two each."""
    _, g, x = problem(n)
    a = np.random.default_rng(0).normal(size=n)  # (problem's own weights)
    a = a if promotes else a.astype(np.float32)

    def f(x):
        return np.sum(np.tanh(a * x))

    r = backcheck.check(f, x.astype(np.float32), g, strategy="auto")
    assert r.ok and 1 <= directions(r) <= 3 and r.n_evals == (3 if promotes else 2) + 2 * directions(r), r
    assert any("evaluated in float64" in n for n in r.notes), r.notes
    wrong = backcheck.check(f, x.astype(np.float32), with_wrong(g, 7, 0.5), strategy="auto")
    assert wrong.status == "fail" and [e.index for e in wrong.mismatches] == [(7,)], wrong


@pytest.mark.parametrize("confidence, wanted", [(0.9, 1), (0.999, 3), (0.999999, 6)])
def test_the_number_of_directions_follows_the_confidence_asked_for(confidence, wanted):
    f, g, x = problem(10_000)
    r = backcheck.check(f, x, g, strategy="auto", confidence=confidence)
    # one direction misses an error of 10 bounds with probability sqrt(2/3)/10 = 0.082; fewer than asked for
    # where the first lie well within their bounds (what the confidence leaves over is spent on stopping early)
    k = directions(r)
    assert r.ok and r.n_evals == 1 + 2 * k and 1 <= k <= wanted
    assert f"probability >= {confidence:.6g}" in " ".join(r.notes)
    assert k == wanted or f"vouches as {wanted} directions would" in " ".join(r.notes)


def test_a_detection_size_as_loose_as_gradchecks_takes_one_direction_and_states_what_it_catches():
    # gradcheck's fast mode takes one random direction and a relative tolerance of 1e-3: asked to catch errors
    # of that size, one direction's bound (about 1e-7 of the gradient in float64) catches them at 0.999
    f, g, x = problem(10_000)
    r = backcheck.check(f, x, g, strategy="auto", detect=1e-3)
    assert r.ok and r.n_evals == 1 + 2
    assert 0 < r.leaves[0].floor_rel <= 1e-3
    wrong = backcheck.check(f, x, lambda x: g(x) * (1 + 3e-3), strategy="auto", detect=1e-3)
    assert wrong.status == "fail"


def test_a_smaller_detection_size_takes_more_directions_and_is_stated():
    f, g, x = problem(10_000)
    plain = backcheck.check(f, x, g, strategy="auto")
    sharp = backcheck.check(f, x, g, strategy="auto", detect=plain.leaves[0].floor_rel / 3)
    assert sharp.ok and sharp.n_evals > plain.n_evals
    assert sharp.leaves[0].floor_rel <= plain.leaves[0].floor_rel / 3 * (1 + 1e-9)
    assert plain.leaves[0].floor_kind == sharp.leaves[0].floor_kind == "rms"  # no element was judged alone
    assert plain.to_dict()["leaves"][0]["floor_kind"] == "rms"


def test_auto_is_the_default_for_large_inputs():
    f, g, x = problem(10_000)
    r = backcheck.check(f, x, g)
    assert r.strategy == "auto" and r.n_evals == 1 + 2 * directions(r) <= 7


def test_one_wrong_element_among_1e5_is_found_in_O_log_n():
    n = 100_000
    f, g, x = problem(n)
    r = backcheck.check(f, x, with_wrong(g, 31337), strategy="auto")
    assert r.status == "fail"
    assert r.n_evals <= 4 * math.log2(n) + 20
    wrong = [e for e in r.leaves[0].worst if e.status == "mismatch"]
    assert [e.index for e in wrong] == [(31337,)] and abs(wrong[0].analytic - wrong[0].numeric - 0.5) < 1e-6


@pytest.mark.parametrize("m", [2, 10])
def test_several_wrong_elements_are_all_found(m):
    n = 50_000
    f, g, x = problem(n)
    where = np.random.default_rng(m).choice(n, size=m, replace=False)
    r = backcheck.check(f, x, with_wrong(g, where, 0.3), strategy="auto")
    leaf = r.leaves[0]
    assert r.status == "fail" and leaf.n_mismatch == m
    found = {int(i) for i in np.flatnonzero(~np.isnan(r.numeric))}
    assert found == set(where.tolist())


def test_sign_cancelling_errors_cannot_hide():
    f, g, x = problem(20_000)
    r = backcheck.check(
        f,
        x,
        lambda x: g(x) + np.where(np.arange(x.size) == 5, 0.2, 0) - np.where(np.arange(x.size) == 6, 0.2, 0),
        strategy="auto",
    )
    assert r.status == "fail" and r.leaves[0].n_mismatch == 2


def test_too_many_wrong_elements_are_sampled_and_estimated():
    f, g, x = problem(20_000)
    wrong_mask = np.random.default_rng(0).random(x.size) < 0.3
    r = backcheck.check(f, x, lambda x: g(x) + 0.2 * wrong_mask, strategy="auto")
    leaf = r.leaves[0]
    assert r.status == "fail" and "too many wrong elements" in leaf.note and "%" in leaf.note
    assert leaf.n_checked >= 64 and leaf.n_mismatch >= backcheck.strategies.projected.MAX_LOCALIZED


def test_projected_gives_a_verdict_per_array_at_constant_cost():
    rng = np.random.default_rng(0)
    p = {"W": rng.normal(size=(300, 200)), "b": rng.normal(size=200)}

    def f(p):
        return float(np.sum(np.tanh(p["W"]) * 2) + np.sum(p["b"] ** 2))

    def g(p):
        return {"W": 2 * (1 - np.tanh(p["W"]) ** 2), "b": 2 * p["b"]}

    r = backcheck.check(f, p, g, strategy="projected")
    # the point once, at most three directions per array
    assert r.ok and set(agreeing(r)) == {"p['W']", "p['b']"} and r.n_evals == 1 + 2 * directions(r) <= 13
    bad = backcheck.check(f, p, lambda p: {**g(p), "b": 2.001 * p["b"]}, strategy="projected")
    assert [lf.status for lf in bad.leaves] == ["pass", "fail"]
    assert backcheck.strategies.SMALL_ARRAY < 200  # "b" above was projected, not checked element by element


def test_vectorized_full_check_matches_the_serial_one():
    a = np.random.default_rng(2).normal(size=500)
    x = np.random.default_rng(3).normal(size=500)

    def f(x):
        return np.sum(np.tanh(a * x), axis=-1)

    def g(x):
        return a * (1 - np.tanh(a * x) ** 2)

    serial = backcheck.check(lambda x: float(f(x)), x, g, strategy="full")
    batched = backcheck.check(f, x, g, strategy="full", vectorized=True, max_batch_bytes=40_000)
    assert serial.ok and batched.ok and batched.n_evals == serial.n_evals
    assert np.allclose(batched.numeric, serial.numeric, rtol=1e-12, atol=1e-12)
    wrong = backcheck.check(f, x, with_wrong(g, 3), strategy="full", vectorized=True)
    assert [e.index for e in wrong.leaves[0].worst if e.status == "mismatch"] == [(3,)]


def test_vectorized_function_that_ignores_the_batch_axis_is_refused():
    with pytest.raises(backcheck.NotScalarError, match="one loss per row"):
        backcheck.check(lambda x: float(np.sum(x)), np.ones(4), np.ones_like, vectorized=True)


def test_process_pool_gives_the_same_report_as_a_serial_run(monkeypatch):
    x = np.random.default_rng(0).normal(size=300)
    serial = backcheck.check(scale_funcs.loss, x, scale_funcs.grad_one_wrong, strategy="full")
    with pool(2, monkeypatch) as workers:
        pooled = backcheck.check(scale_funcs.loss, x, scale_funcs.grad_one_wrong, strategy="full", executor=workers)
    assert pooled.to_dict()["leaves"] == serial.to_dict()["leaves"] and pooled.n_evals == serial.n_evals
    assert np.array_equal(pooled.numeric, serial.numeric)


def test_dask_cluster_gives_the_same_report_as_a_serial_run(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.path.dirname(__file__) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    x = np.random.default_rng(0).normal(size=300)
    serial = backcheck.check(scale_funcs.loss, x, scale_funcs.grad_one_wrong, strategy="full")
    with (
        dask_config.set({"temporary-directory": str(tmp_path)}),  # (dask's scratch space, else left in /tmp)
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        distributed = backcheck.check(scale_funcs.loss, x, scale_funcs.grad_one_wrong, strategy="full", executor=client)
    assert distributed.to_dict()["leaves"] == serial.to_dict()["leaves"]
    assert np.array_equal(distributed.numeric, serial.numeric)


def test_a_worker_that_dies_gives_a_clear_error_and_leaves_the_arrays_intact(monkeypatch):
    monkeypatch.setenv("BACKCHECK_TEST_PARENT", str(os.getpid()))
    x = np.random.default_rng(0).normal(size=300)
    before = x.tobytes()
    with pool(2, monkeypatch) as workers, pytest.raises(EvaluationError, match="died"):
        backcheck.check(scale_funcs.dies_in_worker, x, scale_funcs.grad, strategy="full", executor=workers)
    assert x.tobytes() == before


def test_unpicklable_function_with_an_executor_is_refused(monkeypatch):
    with pool(1, monkeypatch) as workers, pytest.raises(backcheck.BadInputError, match="picklable"):
        backcheck.check(lambda x: float(np.sum(x**2)), np.ones(3), lambda x: 2 * x, executor=workers)


def test_progress_bar_appears_for_long_checks(monkeypatch):
    from backcheck import progress

    monkeypatch.setattr(progress, "DELAY", 0.0)
    with progress.Progress("demo", enabled=True) as bar:
        bar(10, 100)
        assert bar._bar is not None
        bar(100, 100)
        assert bar._bar.tasks[0].completed == 100


def test_vectorized_layer_check_matches_the_serial_one():
    rng = np.random.default_rng(0)
    x, w, labels = rng.normal(size=(6, 5)), rng.normal(size=(5, 4)), np.array([0, 3, 1, 2, 2, 0])

    def forward(x, w, labels):  # x and w may carry a leading batch axis B
        z = np.tanh(x @ w)
        return z * (1 + (labels[:, None] == np.arange(4)))

    def backward(dout, x, w, labels):
        z = np.tanh(x @ w)
        dz = dout * (1 + (labels[:, None] == np.arange(4))) * (1 - z**2)
        return dz @ w.T, x.T @ dz, None

    serial = backcheck.check_layer(forward, backward, (x, w, labels))
    batched = backcheck.check_layer(forward, backward, (x, w, labels), vectorized=True, max_batch_bytes=2000)
    assert serial.ok and batched.ok and batched.n_evals == serial.n_evals
    for name in ("x", "w"):
        # batched matrix products round differently; the estimates agree to the numeric side's own precision
        assert np.allclose(batched.numeric[name], serial.numeric[name], rtol=1e-7, atol=1e-9)
    wrong = backcheck.check_layer(
        forward, lambda d, x, w, y: (backward(d, x, w, y)[0], 0 * w, None), (x, w, labels), vectorized=True
    )
    assert [lf.status for lf in wrong.leaves] == ["pass", "fail"]


def test_layer_check_on_a_process_pool_matches_the_serial_one(monkeypatch):
    rng = np.random.default_rng(1)
    inputs = (rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), np.array([0, 2, 1, 1, 0]))
    serial = backcheck.check_layer(scale_funcs.layer_forward, scale_funcs.layer_backward, inputs)
    with pool(2, monkeypatch) as workers:
        pooled = backcheck.check_layer(scale_funcs.layer_forward, scale_funcs.layer_backward, inputs, executor=workers)
    assert serial.ok and pooled.to_dict()["leaves"] == serial.to_dict()["leaves"]
    assert pooled.n_evals == serial.n_evals
    for name in ("x", "w"):
        assert np.array_equal(pooled.numeric[name], serial.numeric[name])


def test_a_vectorized_float32_loss_is_probed_for_float64_copies_with_its_batch_axis():
    a = np.random.default_rng(2).normal(size=50).astype(np.float32)
    x = np.random.default_rng(3).normal(size=50).astype(np.float32)

    def f(x):
        return np.sum(np.tanh(a * x), axis=1)  # needs the batch axis

    def g(x):
        return a * (1 - np.tanh(a * x) ** 2)

    right = backcheck.check(f, x, g, strategy="full", vectorized=True)
    assert right.ok and any("evaluated in float64" in n for n in right.notes), right
    assert backcheck.check(f, x, lambda x: g(x) * np.float32(1.001), strategy="full", vectorized=True).status == "fail"


def test_a_detection_size_the_directions_cannot_reach_is_inconclusive_not_passed() -> None:
    x = np.random.default_rng(2).normal(size=20_000)
    f = lambda a: float(np.sum(np.sin(a)))  # noqa: E731
    unmet = backcheck.check(f, x, np.cos, detect=1e-12)  # below float64's rounding of the differences
    assert unmet.status == "inconclusive", unmet
    assert "detect=1e-12" in str(unmet)
    assert backcheck.check(f, x, np.cos, detect=1e-3).status == "pass"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sharper", [2.0, 3.0, 5.0])
def test_the_stated_detection_size_meets_the_one_asked_for_whatever_the_later_bounds(seed, sharper):
    # the number of directions (and where they may stop early) follows from the first direction's bound; the
    # others' differ by rounding's draw, and where they are larger the directions go on until the size is met
    f, g, x = problem(10_000, seed)
    asked = backcheck.check(f, x, g, strategy="auto").leaves[0].floor_rel / sharper
    r = backcheck.check(f, x, g, strategy="auto", detect=asked)
    assert r.ok, r
    assert r.leaves[0].floor_rel <= asked * (1 + 1e-12), (r.leaves[0].floor_rel, asked)
