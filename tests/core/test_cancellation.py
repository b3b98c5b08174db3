"""Rounding of terms that cancelled inside the function: far above ``eps`` times its output, never a false fail.

A pre-activation of 1e-7 summed from terms of size 1 carries their rounding (1e-16): 1e-9 of itself. The
function's noise and a correct backward's own rounding are then far above the model ``eps * |phi|`` and above
the noise probe's estimate scaled to each element's outputs; an element whose mismatch lies within a few
orders of that floor is judged against the noise measured along the element itself (24 evaluations, only
there). Correct backwards of :mod:`backcheck.zoo.cancellation` never fail; wrong ones (an element 1e-3 off, a
dropped term) still do.
"""

import numpy as np
import pytest

import backcheck
import backcheck.judgement as judgement_module
import backcheck.refinement as refinement_module
import backcheck.verdict as verdict_module
from backcheck.evaluate import Evaluator, Output
from backcheck.numeric.grad import ROUNDOFF_FACTOR
from backcheck.numeric.noise import POINTS, element_noise, local_noise
from backcheck.tree import Tree
from backcheck.zoo import CANCELLATION_LAYERS, get

SEEDS = range(12)
EPS = float(np.finfo(np.float64).eps)


def by_name(items):
    return pytest.mark.parametrize("layer", items, ids=[x.name for x in items])


def inputs(layer, dtype, seed):
    return tuple(layer.make_inputs(np.random.default_rng(seed), np.dtype(dtype)).values())


def statuses(layer, backward, dtype, strategy, **options):
    return [
        backcheck.check_layer(
            layer.forward, backward, inputs(layer, dtype, seed), strategy=strategy, seed=seed, **options
        ).status
        for seed in SEEDS
    ]


def loss_statuses(layer, backward, dtype, strategy):
    """The layer as a scalar loss ``sum(forward(*params) * u)`` and its gradient, through ``check``."""
    out = []
    for seed in SEEDS:
        point = inputs(layer, dtype, seed)
        u = np.random.default_rng(100 + seed).standard_normal(layer.forward(*point).shape).astype(dtype)

        def loss(params, u=u):
            return np.sum(layer.forward(*params) * u.astype(params[0].dtype))

        def grad(params, u=u):
            return tuple(backward(u.astype(params[0].dtype), *params))

        out.append(backcheck.check(loss, list(point), grad, strategy=strategy, seed=seed).status)
    return out


@by_name(CANCELLATION_LAYERS)
@pytest.mark.parametrize("strategy", ["full", "auto"])
def test_a_correct_float64_backward_passes_at_every_seed(layer, strategy):
    assert statuses(layer, layer.backward, np.float64, strategy) == ["pass"] * len(SEEDS)


# a random direction that fails within a few orders of its floor is judged again with the noise measured along it
@by_name(CANCELLATION_LAYERS)
def test_a_correct_float64_backward_passes_projected_at_every_seed(layer):
    assert statuses(layer, layer.backward, np.float64, "projected") == ["pass"] * len(SEEDS)


@by_name(CANCELLATION_LAYERS)
@pytest.mark.parametrize("strategy", ["full", "projected", "auto"])
def test_a_correct_float32_backward_never_fails(layer, strategy):
    # float32 inputs, differenced on float64 copies: along a random direction the float32 gradient's own rounding
    # (cancelled terms in the backward too) is measured against the float64 run of the same backward pass
    assert "fail" not in statuses(layer, layer.backward, np.float32, strategy)


@by_name(CANCELLATION_LAYERS)
@pytest.mark.parametrize("strategy", ["full", "projected", "auto"])
def test_a_correct_float32_gradient_of_a_loss_never_fails(layer, strategy):
    assert "fail" not in loss_statuses(layer, layer.backward, np.float32, strategy)


@by_name(CANCELLATION_LAYERS)
@pytest.mark.parametrize("strategy", ["full", "projected", "auto"])
def test_a_correct_float32_backward_differenced_in_float32_never_fails(layer, strategy):
    # upcast=False: the function computes in float32 and elements are refined on a Richardson table; an element
    # called wrong near its estimate's error is refined again with the noise measured along it
    assert "fail" not in statuses(layer, layer.backward, np.float32, strategy, upcast=False)


@by_name(CANCELLATION_LAYERS)
@pytest.mark.parametrize("strategy", ["full", "projected", "auto"])
def test_wrong_float64_backwards_still_fail(layer, strategy):
    for bug in layer.bugs:
        assert statuses(layer, bug.backward, np.float64, strategy) == ["fail"] * len(SEEDS), bug.name


@by_name(CANCELLATION_LAYERS)
def test_wrong_float32_backwards_still_fail_element_by_element(layer):
    for bug in layer.bugs:
        assert statuses(layer, bug.backward, np.float32, "full") == ["fail"] * len(SEEDS), bug.name


@by_name(CANCELLATION_LAYERS)
@pytest.mark.parametrize("upcast", [None, False])
@pytest.mark.parametrize("strategy", ["full", "projected", "auto"])
def test_a_dropped_term_in_float32_still_fails(layer, strategy, upcast):
    gross = [bug for bug in layer.bugs if bug.severity == "gross"]
    assert gross
    for bug in gross:
        assert statuses(layer, bug.backward, np.float32, strategy, upcast=upcast) == ["fail"] * len(SEEDS), bug.name


def _residual_evaluator(x: float, r: float) -> Evaluator:
    """``phi(r) = ((x + r) - x)**2``: the difference carries the rounding of ``x + r``, of ``ulp(x) / 2``."""
    ev = Evaluator(Tree(np.array([r]), "r"), lambda v: float((((x + v) - x) ** 2)[0]), Output.loss("f"), "f")
    ev.baseline()
    return ev


@pytest.mark.parametrize("seed", range(8))
def test_the_element_probe_measures_the_rounding_of_a_cancelled_value(seed):
    x, r, step = 1.5, 1e-8, 1e-6
    ev = _residual_evaluator(x, r)
    sigma = element_noise(ev, 0, step, seed=seed)
    # y = (x + r') - x is r' rounded to the grid of x (spacing ulp(x)): an error of deviation ulp(x) / sqrt(12);
    # y**2 carries it times 2 |r'|, r' between r + step / 2 and r + step on either side of the point
    q = float(np.spacing(x)) / np.sqrt(12.0)
    low, high = 2 * (r + step / 2) * q, 2 * (r + step) * q
    assert low / 4 <= sigma <= 4 * high
    # the output's size says far less: eps |phi| at the probed points is far below the measured noise
    assert ROUNDOFF_FACTOR * EPS * (r + step) ** 2 < sigma / 100
    assert ev.n_evals == 2 + 2 * POINTS  # the baseline's two calls, then two segments


@pytest.mark.parametrize("seed", range(4))
def test_the_probe_along_a_direction_measures_the_rounding_of_every_cancelled_value(seed):
    # the probe a random direction's difference may ask for (the probe of the whole point is scaled to it instead)
    n, x, step = 16, 1.5, 1e-6
    rng = np.random.default_rng(seed)
    r = 1e-8 * rng.standard_normal(n)
    ev = Evaluator(Tree(r.copy(), "r"), lambda v: float(np.sum(((x + v) - x) ** 2)), Output.loss("f"), "f")
    ev.baseline()
    move = step * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    sigma = local_noise(ev, np.arange(n), move, seed=seed)
    # each element's y**2 carries ulp(x) / sqrt(12) times 2 |r_j'|, r_j' between half and all of its move
    q = float(np.spacing(x)) / np.sqrt(12.0)
    low, high = 2 * (step / 2 - 1e-7) * q * np.sqrt(n), 2 * (step + 1e-7) * q * np.sqrt(n)
    assert low / 4 <= sigma <= 4 * high


def _counting_element_noise(calls):
    """:func:`element_noise`, appending the evaluations each probe costs to ``calls``."""

    def counted(ev, *args, **kwargs):
        before = ev.n_evals
        out = element_noise(ev, *args, **kwargs)
        calls.append(ev.n_evals - before)
        return out

    return counted


def test_the_element_probe_runs_only_for_a_mismatch_near_the_floor(monkeypatch):
    calls = []
    counted = _counting_element_noise(calls)
    monkeypatch.setattr(refinement_module, "element_noise", counted)
    layer = get("cancel_matmul_square")
    point = inputs(layer, np.float64, 0)
    right = backcheck.check_layer(layer.forward, layer.backward, point, strategy="full", seed=0)
    # elements near the floor were probed, at 24 evaluations each, fewer than the elements checked
    checked = sum(lf.n_checked for lf in right.leaves)
    assert right.status == "pass" and calls == [2 * POINTS] * len(calls) and 0 < len(calls) < checked
    monkeypatch.setattr(refinement_module, "NEAR_FLOOR", 0.0)
    # (outputs whose change rounded away explain some of them too, and so does a wider step whose span holds the
    # stairs of an intermediate: those re-judges are switched off here as well)
    monkeypatch.setattr(judgement_module, "rounded_away", lambda *a, **k: None)
    monkeypatch.setattr(refinement_module, "_on_stairs_of", lambda *a, **k: False)
    without = backcheck.check_layer(layer.forward, layer.backward, point, strategy="full", seed=0)
    assert without.status == "fail"  # without the probe, they are the false alarm it prevents
    monkeypatch.setattr(refinement_module, "NEAR_FLOOR", 1e3)
    calls.clear()
    bug = next(b for b in layer.bugs if b.name == "one_wrong_element")
    assert backcheck.check_layer(layer.forward, bug.backward, point, strategy="full", seed=0).status == "fail"


def test_a_clean_check_pays_nothing_for_the_probe(monkeypatch):
    calls = []
    for module in (verdict_module, refinement_module):  # (unrelated values, and mismatches near the floor)
        monkeypatch.setattr(module, "element_noise", lambda *a, **k: calls.append(a) or 0.0)
    x = np.random.default_rng(0).normal(size=20)
    full = backcheck.check(lambda v: np.sum(np.sin(v)), x, np.cos, strategy="full")
    assert full.ok and full.n_evals == 2 * x.size + 2 and not calls
    big = np.random.default_rng(1).normal(size=5000)
    auto = backcheck.check(lambda v: np.sum(np.sin(v)), big, np.cos, strategy="auto")
    # the point once and two evaluations per random direction (at most three): no noise probe
    assert auto.ok and auto.n_evals in (3, 5, 7) and not calls


def test_a_float32_function_refines_again_only_elements_called_wrong_near_their_floor(monkeypatch):
    import backcheck.strategies.sharp as sharp_module

    calls = []
    counted = _counting_element_noise(calls)
    monkeypatch.setattr(sharp_module, "element_noise", counted)
    layer = get("cancel_center_square")
    point = inputs(layer, np.float32, 7)  # an element's float32 rounding sits just beyond its sharp bound
    right = backcheck.check_layer(layer.forward, layer.backward, point, strategy="full", seed=7, upcast=False)
    assert right.status == "pass" and calls == [2 * POINTS] * len(calls) and 0 < len(calls) < point[0].size
    monkeypatch.setattr(sharp_module, "NEAR_FLOOR", 0.0)
    import backcheck.run as run_module  # (the backward's rounding measured along a line would excuse it too)

    monkeypatch.setattr(run_module, "excuse_measured", lambda *args: [])
    # (and tables started below the first, which leave a hair-wide mismatch unconfirmed)
    monkeypatch.setattr(sharp_module, "_unless_kinks_inside", lambda ev, idx, *args: (np.zeros(idx.shape, bool),) * 2)
    # (and the backward's rounding measured a few units in the last place away)
    monkeypatch.setattr(sharp_module, "unless_own_rounding", lambda *args: 0)
    without = backcheck.check_layer(layer.forward, layer.backward, point, strategy="full", seed=7, upcast=False)
    assert without.status == "fail"  # the false alarm the second refinement prevents
    monkeypatch.setattr(sharp_module, "NEAR_FLOOR", 1e3)
    calls.clear()
    # a float32 kernel without cancellation pays nothing for it
    x = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    clean = backcheck.check_layer(np.tanh, lambda d, x: (d * (1 - np.tanh(x) ** 2),), (x,), upcast=False)
    assert clean.ok and not calls
    wrong = backcheck.check_layer(np.tanh, lambda d, x: (d * (1 - np.tanh(x) ** 2) * 1.01,), (x,), upcast=False)
    assert wrong.status == "fail"
