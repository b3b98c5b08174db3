"""Numerical derivatives: every method close to the exact gradient, error estimates that bound the actual error,
evaluation counts, and the contract of the sharp primitive the checker refines elements with."""

import zlib

import numpy as np
import pytest

from backcheck import BadInputError, numerical_grad
from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator, Output
from backcheck.numeric import default_steps, refine, refine_elements, sharp_derivative, step_base
from backcheck.numeric.richardson import FIRST_STEP, MAX_ROWS
from backcheck.numeric.stencils import STENCILS
from backcheck.tree import Tree


def _rosen(x):
    return np.sum(10 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _rosen_grad(x):
    g = np.zeros_like(x)
    g[:-1] += -40 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 20 * (x[1:] - x[:-1] ** 2)
    return g


#: smooth test functions of a vector, with their exact gradients (evaluated in float64)
FUNCS = {
    "sin": (lambda x: np.sum(np.sin(x)), np.cos),
    "exp_sin_cube": (
        lambda x: np.sum(np.exp(np.sin(x)) * x**3),
        lambda x: np.exp(np.sin(x)) * (np.cos(x) * x**3 + 3 * x**2),
    ),
    "logistic": (lambda x: np.sum(np.log1p(np.exp(x))), lambda x: 1 / (1 + np.exp(-x))),
    "runge": (lambda x: np.sum(1 / (1 + 25 * x**2)), lambda x: -50 * x / (1 + 25 * x**2) ** 2),
    "rosenbrock": (_rosen, _rosen_grad),
    "prod": (lambda x: np.prod(1 + 0.1 * x), lambda x: 0.1 * np.prod(1 + 0.1 * x) / (1 + 0.1 * x)),
}
DIFFERENCE_METHODS = ["central", "forward", "backward", "central4", "central6"]
# truncation orders reachable by a single stencil: the accuracy a method must reach is the classic one of
# its family in the dtype, eps**(2/3) for symmetric stencils and eps**(1/2) for one-sided ones
ONE_SIDED = {"forward", "backward"}


def _point(dtype, n=8, seed=0):
    return np.random.default_rng(seed).normal(size=n).astype(dtype)


def _tolerance(f, x, method):
    """The accuracy a sharp method must beat: the classic stencil's best, ``eps**(2/3)`` (symmetric) or
    ``eps**(1/2)`` (one-sided), relative to the gradient's and the function's scale."""
    eps = float(np.finfo(x.dtype).eps)
    power = 0.5 if method in ONE_SIDED else 2 / 3
    exact = FUNCS[f][1](x.astype(np.float64))
    return eps**power * (np.max(np.abs(exact)) + abs(float(FUNCS[f][0](x))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", DIFFERENCE_METHODS)
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_error_estimates_bound_the_actual_error_and_methods_reach_their_accuracy(name, method, dtype):
    f, df = FUNCS[name]
    x = _point(dtype)
    g, err = numerical_grad(f, x.copy(), method=method, return_error=True)
    actual = np.abs(g - df(x.astype(np.float64)))
    assert np.all(actual <= err), (actual, err)
    assert np.max(actual) <= _tolerance(name, x, method)


def test_richardson_reaches_the_dtype_on_the_issue_function():
    """sum(exp(sin x) x**3) on 30 elements: the old two-step Richardson reached 1.6e-8 relative, numdifftools
    about 1e-13; the table gets close to the rounding of the function, with an estimate that bounds the error
    and is not far above it."""
    f, df = FUNCS["exp_sin_cube"]
    x = np.random.default_rng(0).normal(size=30)
    exact = df(x)
    g, err = numerical_grad(f, x, method="richardson", return_error=True)
    actual = np.abs(g - exact)
    scale = np.max(np.abs(exact))
    assert np.max(actual) <= 1e-12 * scale
    assert np.all(actual <= err)
    assert np.max(err) <= 100 * max(np.max(actual), np.finfo(np.float64).eps * scale)
    plain = numerical_grad(f, x, method="central", extrapolate=False)
    assert np.max(actual) < np.max(np.abs(plain - exact)) / 10


@pytest.mark.parametrize(
    "method,per_element", [("central", 2), ("forward", 1), ("backward", 1), ("central4", 4), ("central6", 6)]
)
def test_single_step_costs_exactly_the_stencil(method, per_element):
    calls = []
    x = _point(np.float64, n=5)

    def f(v):
        calls.append(1)
        return np.sum(np.sin(v))

    numerical_grad(f, x, method=method, extrapolate=False)
    assert len(calls) == 2 + per_element * x.size  # the base point twice (determinism), then the stencils


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method,most", [("central", 22), ("forward", 14), ("central4", 24)])
def test_table_costs_a_few_steps_per_element(method, most, dtype):
    """Smooth elements stop at the rounding floor after a handful of steps: well under numdifftools' 30 (or 15
    one-sided) evaluations per element, and never more than the cap."""
    calls = []
    x = _point(dtype, n=10)

    def f(v):
        calls.append(1)
        return np.sum(np.exp(np.sin(v)) * v**3)

    numerical_grad(f, x, method=method)
    per_element = (len(calls) - 2 - 24) / x.size  # base point twice, the noise probe 24 times
    assert 3 <= per_element <= most
    cap = len(STENCILS[method].offsets) * (MAX_ROWS + 1)
    assert per_element <= cap


def test_refine_reports_the_evaluations_it_made_and_is_the_same_one_element_at_a_time():
    xs = np.array([0.3, -1.2, 2.5, 0.0])
    counted = np.zeros(xs.size, dtype=int)

    def evaluate_all(m, steps):
        counted[m] += len(steps)
        t = np.asarray(steps)
        return np.exp(np.sin(xs[m] + t)), t

    together = refine(evaluate_all, FIRST_STEP * np.maximum(np.abs(xs), 1), np.abs(xs), np.finfo(float).eps)
    assert np.array_equal(together.evaluations, counted)
    for m in range(xs.size):

        def evaluate_one(_m, steps, m=m):
            t = np.asarray(steps)
            return np.exp(np.sin(xs[m] + t)), t

        alone = refine(evaluate_one, np.array([FIRST_STEP * max(abs(xs[m]), 1)]), np.abs(xs[m : m + 1]), 2.0**-52)
        assert alone.value[0] == together.value[m] and alone.error[0] == together.error[m]
        assert alone.evaluations[0] == together.evaluations[m]
    exact = np.cos(xs) * np.exp(np.sin(xs))
    assert np.all(np.abs(together.value - exact) <= together.error) and together.converged.all()


def test_refine_elements_refines_the_chosen_elements_of_an_evaluator():
    x = np.array([0.3, -1.2, 2.5, 0.9, 1.7])

    def f(v):
        bad = v[4] != 1.7  # any move of the last element leaves the domain
        return np.sum(np.sin(v) * v) + (np.nan if bad else 0.0)

    ev = Evaluator(Tree(x.copy()), f, Output.loss("f"))
    ev.baseline()
    idx = np.array([3, 0, 4])
    res = refine_elements(ev, idx)
    exact = np.sin(x[idx]) + x[idx] * np.cos(x[idx])
    assert np.all(np.abs(res.value[:2] - exact[:2]) <= res.error[:2]) and np.all(res.error[:2] < 1e-12)
    assert np.isnan(res.value[2]) and np.isinf(res.error[2]) and isinstance(res.failures[2], NonFiniteError)
    loose = refine_elements(ev, idx[:2], target=1e-6)
    assert np.all(np.abs(loose.value - exact[:2]) <= loose.error) and np.all(loose.error <= 1e-6)
    assert loose.evaluations.sum() < res.evaluations[:2].sum()


def test_sharp_derivative_contract():
    d = sharp_derivative(lambda t: np.exp(1.0 + t), 1.0)
    value, error, evaluations = d
    assert abs(value - np.e) <= error <= 1e-12 * np.e
    assert d.converged and d.order >= 2 and 0 < d.step <= FIRST_STEP
    assert evaluations == d.evaluations <= 2 * MAX_ROWS + 2
    loose = sharp_derivative(lambda t: np.exp(1.0 + t), 1.0, target=1e-5)
    assert loose.evaluations <= evaluations and abs(loose.value - np.e) <= loose.error <= 1e-5


def test_sharp_derivative_on_an_evaluator_element_in_float32():
    x = np.array([0.7, -2.1, 3.3], dtype=np.float32)
    tree = Tree(x)
    ev = Evaluator(tree, lambda v: np.sum(np.sin(v) * v), Output.loss("f"))
    ev.baseline()
    for i in range(x.size):
        d = sharp_derivative(lambda s, i=i: ev.element(i, s), max(abs(float(x[i])), 1.0), ev.out_dtype)
        xi = float(x[i])
        exact = np.sin(xi) + xi * np.cos(xi)
        assert abs(d.value - exact) <= d.error <= 1e3 * np.finfo(np.float32).eps * (1 + abs(ev.phi0))
    assert x.tobytes() == np.array([0.7, -2.1, 3.3], dtype=np.float32).tobytes()


def test_sharp_derivative_tries_smaller_steps_at_the_edge_of_the_domain():
    def phi(t):
        v = np.log(0.05 + t)  # NaN for the largest steps
        if not np.all(np.isfinite(v)):
            raise NonFiniteError("log of a negative number.", "smaller steps.")
        return v

    d = sharp_derivative(phi, 1.0)
    assert abs(d.value - 20.0) <= d.error <= 1e-8 * 20


def test_sharp_derivative_raises_when_no_step_is_finite():
    def phi(t):
        raise NonFiniteError("always NaN.", "nothing to do.")

    with pytest.raises(NonFiniteError, match="always NaN"):
        sharp_derivative(phi, 1.0)


def test_aliased_steps_are_caught():
    """sin(w t) with w h_0 a multiple of 2 pi * 64: the first seven halvings all see sin(w h_k) = 0, a table
    that looks converged on the value 0; the stencil at 0.7 h disagrees, so the steps go on down."""
    w = 2 * np.pi * 64 / FIRST_STEP
    x0 = 0.3
    d = sharp_derivative(lambda t: np.sin(w * (x0 + t)), 1.0)
    exact = w * np.cos(w * x0)
    assert abs(d.value - exact) <= d.error
    assert d.error < 1e-6 * abs(exact)


def test_noisy_function_gets_an_estimate_that_covers_its_noise():
    rng = np.random.default_rng(3)
    x = rng.normal(size=6)

    def f(v):
        # smooth, plus a deterministic jitter of relative size 1e-10 that changes on every step, unrelated from
        # one point to the next as rounding is (a hash of the point; a jitter periodic in the point, such as
        # sin(1e9 * x), is a high-frequency part of the function that the noise probe aliases)
        jitter = zlib.crc32(np.asarray(v, dtype=np.float64).tobytes()) / 2**31 - 1.0
        return np.sum(np.sin(v)) * (1 + 1e-10 * jitter)

    g, err = numerical_grad(f, x, return_error=True)
    assert np.all(np.abs(g - np.cos(x)) <= err)
    assert np.max(err) < 1e-4


def test_a_step_reaching_past_the_domain_is_not_an_error():
    x = np.array([0.05, 1.0, 3.0])
    g, err = numerical_grad(lambda v: np.sum(np.log(v)), x, return_error=True)
    assert np.all(np.abs(g - 1 / x) <= err) and np.all(err <= 1e-8 / x)


def test_every_method_converges_on_sin():
    x = np.linspace(-1, 1, 7)
    f, df = FUNCS["sin"]
    for method, tol in [("central", 1e-12), ("forward", 1e-10), ("central6", 1e-12), ("complex", 1e-15)]:
        assert np.max(np.abs(numerical_grad(f, x, method=method) - df(x))) < tol


def test_higher_order_stencils_beat_central_at_a_coarse_step_without_extrapolation():
    x = np.linspace(-1, 1, 5)
    df = 0.5 * np.exp(0.5 * x)

    def f(v):
        return np.sum(np.exp(0.5 * v))

    errs = {
        m: np.max(np.abs(numerical_grad(f, x, method=m, step=1e-2, extrapolate=False) - df))
        for m in ("forward", "central", "central4", "central6")
    }
    assert errs["forward"] > errs["central"] > errs["central4"] > errs["central6"]


def test_single_step_error_estimate_covers_its_error():
    x = _point(np.float64, n=6)
    f, df = FUNCS["exp_sin_cube"]
    g, err = numerical_grad(f, x, extrapolate=False, return_error=True)
    assert np.all(np.abs(g - df(x)) <= err)


def test_complex_step_has_no_cancellation_even_at_tiny_steps():
    x = np.array([0.3, 1.7])
    g, err = numerical_grad(lambda v: np.sum(np.exp(v) * np.sin(v)), x, method="complex", return_error=True)
    exact = np.exp(x) * (np.sin(x) + np.cos(x))
    assert np.allclose(g, exact, rtol=1e-15, atol=0)
    assert np.all(np.abs(g - exact) <= err) and np.all(err <= 1e-14 * np.abs(exact))


def test_complex_step_refuses_functions_that_drop_the_imaginary_part():
    with pytest.raises(BadInputError, match="drops the imaginary part"):
        numerical_grad(lambda v: float(np.sum(np.abs(v))), np.array([1.0, 2.0]), method="complex")


def test_trees_are_returned_in_the_users_structure():
    params = {"W": np.ones((2, 3)), "b": [np.zeros(3), 2.0]}
    g = numerical_grad(lambda p: np.sum(p["W"] ** 2) + np.sum(p["b"][0]) + p["b"][1] ** 3, params)
    assert set(g) == {"W", "b"} and g["W"].shape == (2, 3) and g["b"][0].shape == (3,)
    assert np.allclose(g["W"], 2.0) and np.allclose(g["b"][0], 1.0) and np.isclose(g["b"][1], 12.0)


def test_float32_inputs_are_differenced_with_actual_representable_steps():
    x = np.array([0.1, 1.0, 3.3], dtype=np.float32)
    for extrapolate in (False, True):
        g = numerical_grad(lambda v: np.sum(v.astype(np.float64) ** 2), x, extrapolate=extrapolate)
        # the step actually taken in float32 is used, so the estimate is exact for a quadratic in float64
        assert np.allclose(g, 2 * x.astype(np.float64), rtol=1e-9)


def test_steps_follow_dtype_and_magnitude():
    t = Tree({"a": np.array([0.0, 10.0]), "b": np.array([1.0], dtype=np.float32)})
    h = default_steps(t)
    assert np.isclose(h[0], step_base(np.float64)) and np.isclose(h[1], 10 * step_base(np.float64))
    assert np.isclose(h[2], step_base(np.float32))
    assert 4e-3 < step_base(np.float32) < 6e-3 and 5e-6 < step_base(np.float64) < 7e-6
    assert np.all(default_steps(t, 1e-3) == 1e-3)
    with pytest.raises(BadInputError, match="step="):
        default_steps(t, -1.0)


def test_closure_style_functions_see_in_place_perturbations():
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    before = W.copy()
    g = numerical_grad(lambda _: np.sum(W**2), W)
    assert np.allclose(g, 2 * W)
    assert W.tobytes() == before.tobytes()


def test_unknown_method_is_named():
    with pytest.raises(BadInputError, match="unknown method='simpson'"):
        numerical_grad(lambda x: x**2, 1.0, method="simpson")


def test_numerical_grad_at_the_edge_of_a_domain_warns_nothing_of_numpys():
    import warnings

    from backcheck.errors import NonFiniteError

    x = np.array([0.0, 1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # x ** 1.5 at -h: numpy's 'invalid value' stays inside
        with pytest.raises(NonFiniteError, match=r"v\[0\]"):
            numerical_grad(lambda v: np.sum(v**1.5), x)
        g = numerical_grad(lambda v: np.sum(v**1.5), x, method="forward")
    assert abs(g[1] - 1.5) < 1e-8 and abs(g[2] - 1.5 * np.sqrt(2.0)) < 1e-8
