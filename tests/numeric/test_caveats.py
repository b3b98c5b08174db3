"""numerical_grad on functions that cannot see the perturbation, return a coarser loss, or change their input:
a NumericWarning naming the argument (never silent zeros or garbage), the user's array intact, typed errors."""

import warnings

import numpy as np
import pytest

from backcheck import numerical_grad
from backcheck.errors import BackcheckError, NumericWarning, UserFunctionError


def _point():
    return np.array([0.5, 1.5, -0.3])


def _run(f, params, **kwargs):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        g = numerical_grad(f, params, **kwargs)
    return g, [w for w in seen if issubclass(w.category, NumericWarning)]


@pytest.mark.parametrize("extrapolate", [True, False])
def test_a_closure_over_a_copy_warns_naming_the_argument(extrapolate):
    x = _point()
    copy = x.copy()

    def loss(weights):
        return np.sum(copy**2)

    g, seen = _run(loss, x, extrapolate=extrapolate)
    assert np.all(g == 0.0)
    assert len(seen) == 1 and "weights" in str(seen[0].message) and "copy" in str(seen[0].message)


def test_a_closure_over_a_0d_value_it_copied_warns():
    z = np.array(2.0)
    frozen = float(z)
    g, seen = _run(lambda theta: frozen**2, z)
    assert g == 0.0 and len(seen) == 1 and "theta" in str(seen[0].message)


def test_a_closure_over_a_read_only_array_says_it_cannot_be_perturbed_in_place():
    W = np.array([1.0, 2.0])
    W.flags.writeable = False
    g, seen = _run(lambda _w: np.sum(W**2), W)
    assert np.all(g == 0.0) and len(seen) == 1
    assert "in place" in str(seen[0].message) and "read-only" in str(seen[0].message)


def test_only_the_argument_that_never_moved_is_named():
    hidden = np.array([3.0])

    def loss(p):
        return np.sum(np.sin(p["a"])) + np.sum(hidden**2)

    params = {"a": _point(), "b": hidden.copy()}
    g, seen = _run(loss, params)
    assert np.allclose(g["a"], np.cos(params["a"]), rtol=0, atol=1e3 * np.finfo(np.float64).eps)
    assert len(seen) == 1
    message = str(seen[0].message)
    assert "b" in message.split("whenever")[1].split("moved")[0] and "a," not in message


def test_a_function_that_reads_its_argument_raises_no_warning():
    x = _point()
    g, seen = _run(lambda v: np.sum(np.sin(v)), x)
    assert seen == [] and np.allclose(g, np.cos(x), rtol=0, atol=1e3 * np.finfo(np.float64).eps)


@pytest.mark.parametrize("loss_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("extrapolate", [True, False])
def test_a_coarse_loss_gets_steps_for_its_own_precision_and_a_warning(loss_dtype, extrapolate):
    """A float32/float16 loss of float64 parameters: the steps follow the loss's precision, so the gradient is
    as good as that precision allows (a float64 step would give garbage), and a warning says why it is coarse."""
    x = _point()
    eps = float(np.finfo(loss_dtype).eps)
    g, seen = _run(lambda v: loss_dtype(np.sum(np.sin(v))), x.copy(), extrapolate=extrapolate)
    # the classic central difference reaches eps**(2/3) of the function's scale (|f|, |f''| about 1 here)
    assert np.max(np.abs(g - np.cos(x))) <= 4 * eps ** (2 / 3)
    assert len(seen) == 1 and np.dtype(loss_dtype).name in str(seen[0].message)


def test_an_integer_loss_warns():
    g, seen = _run(lambda v: int(np.sum(v * 100)), _point())
    assert len(seen) == 1 and "integer" in str(seen[0].message) and "float" in seen[0].message.hint


@pytest.mark.parametrize("extrapolate", [True, False])
def test_a_function_that_mutates_its_input_leaves_it_restored_and_says_so(extrapolate):
    x = _point()
    before = x.copy()

    def scaling(v):
        v *= 1.5
        return np.sum(v**2)

    g, seen = _run(scaling, x, extrapolate=extrapolate)
    assert x.tobytes() == before.tobytes()
    # every call saw the original point (plus its own step): the gradient of sum((1.5 v)**2)
    # the classic central difference's accuracy, eps**(2/3) of the scale of the function and its gradient
    tol = 100 * np.finfo(np.float64).eps ** (2 / 3) * (np.sum(2.25 * before**2) + np.max(4.5 * np.abs(before)))
    assert np.allclose(g, 4.5 * before, rtol=0, atol=tol)
    assert len(seen) == 1 and "changed its input" in str(seen[0].message) and "v[0]" in str(seen[0].message)


def test_a_function_that_marks_its_input_read_only_gets_a_correct_gradient_and_a_writable_array():
    x = _point()
    before = x.copy()

    def freeze(v):
        v.flags.writeable = False
        return np.sum(v**3)

    g, _seen = _run(freeze, x)
    assert x.flags.writeable and x.tobytes() == before.tobytes()
    assert np.allclose(g, 3 * before**2, rtol=1e3 * np.finfo(np.float64).eps, atol=0)


def test_a_function_that_resizes_its_input_raises_a_typed_error_not_a_raw_value_error():
    x = _point()

    def grow(v):
        v.resize(5, refcheck=False)
        return np.sum(v**2)

    with pytest.raises(BackcheckError) as info:
        numerical_grad(grow, x)
    assert isinstance(info.value, UserFunctionError) and "v" in info.value.message and info.value.hint


def test_the_complex_step_restores_its_copy_after_a_function_that_writes_into_it():
    x = _point()
    before = x.copy()

    def scaling(v):
        v *= 1.5
        return np.sum(v**2)

    g, seen = _run(scaling, x, method="complex")
    assert x.tobytes() == before.tobytes()
    # the complex step is exact to rounding: every call saw the point, so this is 4.5 x
    assert np.allclose(g, 4.5 * before, rtol=16 * np.finfo(np.float64).eps, atol=0)
    assert len(seen) == 1 and "changed its input" in str(seen[0].message) and "v" in str(seen[0].message)


def test_the_complex_step_says_a_closure_over_a_copy_never_reads_its_argument():
    x = _point()
    copy = x.copy()
    with pytest.raises(BackcheckError, match="never reads its argument"):
        numerical_grad(lambda _w: np.sum(copy**2), x, method="complex")
