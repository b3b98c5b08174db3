"""Malformed and extreme inputs: every outcome is a right verdict, a typed error with a hint, or inconclusive
with a reason; never a raw exception from inside backcheck, and never a user array left changed (also when the
function raises or writes into its input)."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import BackcheckError, GradientStructureError, ParamsError, UserFunctionError

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
hnp = pytest.importorskip("hypothesis.extra.numpy")
assume, given = hypothesis.assume, hypothesis.given
array_shapes, arrays = hnp.array_shapes, hnp.arrays

FLOATS = st.floats(-2.0, 2.0, allow_nan=False, width=32)
VIEWS = ("plain", "transposed", "strided", "column", "read-only", "fortran")


def as_view(values: np.ndarray, kind: str) -> np.ndarray:
    """``values`` held in an array of the given memory layout (the values themselves unchanged)."""
    if kind == "transposed" and values.ndim >= 2:
        return np.ascontiguousarray(values.T).T
    if kind == "strided" and values.ndim >= 1:
        return np.repeat(values, 2, axis=-1)[..., ::2]
    if kind == "column" and values.ndim >= 1:
        return np.stack([values, values + 1], axis=-1)[..., 0]
    if kind == "read-only":
        out = values.copy()
        out.flags.writeable = False
        return out
    if kind == "fortran":
        return np.asfortranarray(values)
    return values.copy()


@st.composite
def leaves(draw, dtypes=(np.float64, np.float32), nonfinite=False):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    values = draw(arrays(dtype, shape, elements=FLOATS))
    if nonfinite and values.size and draw(st.booleans()):
        flat = values.reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
    return as_view(values, draw(st.sampled_from(VIEWS)))


def params_trees(nonfinite=False):
    leaf = leaves(nonfinite=nonfinite)
    scalar = st.floats(-2.0, 2.0, allow_nan=False)
    return st.one_of(leaf, st.dictionaries(st.sampled_from("abcd"), st.one_of(leaf, scalar), min_size=1, max_size=3))


def items(p):
    return list(p.items()) if isinstance(p, dict) else [("", p)]


def loss(p):
    # a quadratic: central differences are exact but for rounding, so the verdicts test the machinery alone
    total = 0.0
    for k, (_, x) in enumerate(items(p)):
        x = np.asarray(x, dtype=np.float64)
        x = np.where(np.isfinite(x), x, 0.0)
        total += (k + 1) * float(np.sum(x**2 + 0.1 * x))
    return total


def dloss(x):
    return 2 * x + 0.1


def grad_of(p, wrong=None, dtype=None):
    out = {}
    for k, (name, x) in enumerate(items(p)):
        arr = np.asarray(x)
        g = np.array((k + 1) * dloss(np.where(np.isfinite(arr), arr, 0.0)))
        if wrong is not None and name == wrong[0] and g.size:
            g.flat[wrong[1]] *= 1.5  # C order, as the report names elements; works for any memory layout
        g = g.astype(dtype or arr.dtype) if isinstance(x, np.ndarray) else float(g)
        out[name] = g
    return out if isinstance(p, dict) else out[""]


def snapshot(p):
    return [(np.asarray(x).tobytes(), np.shape(x), isinstance(x, np.ndarray) and x.flags.writeable)
            for _, x in items(p)]  # fmt: skip


def outcome(fn):
    """The report, or the typed error (which must carry a hint); anything else propagates and fails the test."""
    try:
        return fn()
    except BackcheckError as exc:
        assert exc.hint, exc
        return exc


def finite(p):
    return all(np.all(np.isfinite(np.asarray(x))) for _, x in items(p))


@given(p=params_trees())
def test_a_right_gradient_never_fails_and_the_arrays_are_untouched(p):
    before = snapshot(p)
    r = outcome(lambda: backcheck.check(loss, p, grad_of))
    assert snapshot(p) == before
    assert not isinstance(r, BackcheckError), r
    assert r.status in ("pass", "inconclusive"), str(r)
    if all(np.size(x) == 0 for _, x in items(p)):
        assert r.status == "pass" and any("no elements to check" in n for n in r.notes)


@given(p=params_trees(), data=st.data())
def test_a_wrong_gradient_element_never_passes(p, data):
    named = [(n, np.asarray(x)) for n, x in items(p) if np.size(x)]
    assume(named)
    name, x = data.draw(st.sampled_from(named))
    i = data.draw(st.integers(0, x.size - 1))
    assume(abs(dloss(float(x.reshape(-1)[i]))) > 0.2)
    before = snapshot(p)
    r = outcome(lambda: backcheck.check(loss, p, lambda q: grad_of(q, wrong=(name, i))))
    assert snapshot(p) == before
    assert not isinstance(r, BackcheckError), r
    assert r.status == "fail", str(r)


@given(p=params_trees(), gdtype=st.sampled_from([np.float64, np.float32]))
def test_gradients_in_another_float_dtype_are_judged_or_refused_when_strict(p, gdtype):
    assume(any(isinstance(x, np.ndarray) and x.dtype != gdtype and x.size for _, x in items(p)))
    r = outcome(lambda: backcheck.check(loss, p, lambda q: grad_of(q, dtype=gdtype)))
    assert not isinstance(r, BackcheckError), r
    assert r.status in ("pass", "inconclusive") and any("strict_dtype" in n for n in r.notes), str(r)
    with pytest.raises(GradientStructureError, match="strict_dtype"):
        backcheck.check(loss, p, lambda q: grad_of(q, dtype=gdtype), strict_dtype=True)


@given(p=params_trees(nonfinite=True), when=st.integers(1, 80), how=st.sampled_from(["raise", "write", "freeze"]))
def test_a_function_that_raises_or_writes_into_its_input_leaves_every_array_as_it_was(p, when, how):
    before = snapshot(p)
    calls = {"n": 0}

    def rogue(q):
        calls["n"] += 1
        if calls["n"] == when:
            if how == "raise":
                raise ValueError("boom")
            for _, x in items(q):
                if isinstance(x, np.ndarray) and x.size and x.flags.writeable:
                    if how == "write":
                        x.reshape(-1)[0] = 9.0 if x.flags.c_contiguous else x.reshape(-1)[0]
                        x[...] = x + 1.0
                    else:
                        x.flags.writeable = False
        return loss(q)

    r = outcome(lambda: backcheck.check(rogue, p, grad_of))
    assert snapshot(p) == before
    # float32 / float16 parameters: call 1 evaluates a copy of the point, call 2 a float64 copy (a function that
    # refuses it is checked in its own dtype), calls 3 and 4 the point; otherwise calls 1 and 2 the point
    narrow = any(np.asarray(x).dtype.kind == "f" and np.asarray(x).dtype.itemsize < 8 for _, x in items(p))
    if how == "raise" and when in ({1, 3, 4} if narrow else {1, 2}):
        assert isinstance(r, UserFunctionError)


@given(p=params_trees(nonfinite=True))
def test_non_finite_entries_give_a_verdict_or_a_typed_error(p):
    assume(not finite(p))
    before = snapshot(p)
    r = outcome(lambda: backcheck.check(loss, p, grad_of))
    assert snapshot(p) == before
    if not isinstance(r, BackcheckError):
        assert any("NaN or +-inf" in n for n in r.notes)


@given(x=leaves(), twice=st.sampled_from(["same", "view"]))
def test_the_same_memory_twice_is_refused_by_name(x, twice):
    assume(x.size and x.flags.writeable)
    # a view that shares x's memory whatever its strides (reshape(-1) would copy a non-contiguous x)
    other = x if twice == "same" else (x[(slice(0, 1),) * x.ndim] if x.ndim else x[...])
    assert np.shares_memory(x, other)
    with pytest.raises(ParamsError, match=r"p\['a'\] and p\['b'\] share memory"):
        backcheck.check(loss, {"a": x, "b": other}, grad_of)


def test_a_closure_over_a_zero_d_array_and_over_a_view_sees_the_perturbation():
    z = np.array(0.3)
    W = np.random.default_rng(0).normal(size=(4, 6))
    col = W[:, 3]
    assert backcheck.check(lambda _: float(np.sin(z)), z, lambda _: np.cos(z)).ok
    assert backcheck.check(lambda _: float(np.sum(col**3)), col, lambda _: 3 * col**2).ok
    assert not backcheck.check(lambda _: float(np.sum(col**3)), col, lambda _: 3.3 * col**2).ok


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_matrix_parameters_are_checked_as_matrices():
    M = np.matrix([[1.0, 2.0], [0.5, -1.0]])
    v = np.array([[1.0], [2.0]])

    def f(m):
        assert isinstance(m, np.matrix)
        return float((v.T @ np.asarray(m * m) @ v)[0, 0])

    def g(m):
        a = np.asarray(m)
        return np.outer(v, v) @ a.T + a.T @ np.outer(v, v)

    assert backcheck.check(f, M, g).ok
    assert not backcheck.check(f, M, lambda m: 2 * g(m)).ok


def test_a_gradient_in_float32_for_float64_inputs_is_still_held_to_float32_resolution():
    x = np.linspace(-1, 1, 7)
    assert backcheck.check(lambda x: float(np.sum(x**3)), x, lambda x: (3 * x**2).astype(np.float32)).ok
    wrong = backcheck.check(lambda x: float(np.sum(x**3)), x, lambda x: (3.003 * x**2).astype(np.float32))
    assert wrong.status == "fail"


def dropout_forward(x, w, rng):
    mask = rng.random(x.shape) > 0.5
    return (x * mask) @ w, (x, w, mask)


def dropout_backward(dout, cache):
    x, w, mask = cache
    return (dout @ w.T) * mask, (x * mask).T @ dout, None


def dropout_backward_drawing_again(dout, x, w, rng):
    mask = rng.random(x.shape) > 0.5  # in training the generator has moved on: another mask
    return (dout @ w.T) * mask, (x * mask).T @ dout, None


def test_a_generator_passed_as_an_input_is_replayed_in_forward_and_a_backward_drawing_from_it_fails():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    r = backcheck.check_layer(dropout_forward, dropout_backward, (x, w, np.random.default_rng(5)), cache=True)
    assert r.ok and any("replayed" in n for n in r.notes)

    def wrong_backward(dout, cache):
        dx, dw, _ = dropout_backward(dout, cache)
        return dx, dw * 1.1, None

    wrong = backcheck.check_layer(dropout_forward, wrong_backward, (x, w, np.random.default_rng(5)), cache=True)
    assert wrong.status == "fail"

    def forward_only(x, w, rng):
        return dropout_forward(x, w, rng)[0]

    gen = np.random.default_rng(5)
    state = gen.bit_generator.state
    again = backcheck.check_layer(forward_only, dropout_backward_drawing_again, (x, w, gen))
    assert again.status == "fail" and gen.bit_generator.state == state, again


def test_a_layer_backward_in_another_dtype_is_accepted_with_a_note_or_refused_when_strict():
    x = np.linspace(-1, 1, 6).astype(np.float32).reshape(2, 3)

    def backward(dout, x):
        return np.zeros(x.shape) + dout * (1 - np.tanh(x) ** 2)  # float64, as np.zeros makes it

    r = backcheck.check_layer(np.tanh, backward, (x,))
    assert r.ok and any("float64 for a float32 input" in n for n in r.notes)
    with pytest.raises(GradientStructureError):
        backcheck.check_layer(np.tanh, backward, (x,), strict_dtype=True)


def test_an_empty_input_beside_others_is_reported_with_nothing_checked():
    x, e = np.linspace(0.1, 1, 5), np.zeros((0, 2))
    r = backcheck.check(lambda p: float(np.sum(p["x"] ** 2) + np.sum(p["e"])), {"x": x, "e": e},
                        lambda p: {"x": 2 * p["x"], "e": np.zeros((0, 2))})  # fmt: skip
    assert r.ok and r.leaf("p['e']").n_checked == 0 and r.leaf("p['x']").n_checked == 5
    assert not any("no elements to check" in n for n in r.notes)


def test_numerical_grad_through_a_view_and_of_a_function_that_writes_into_its_input():
    W = np.random.default_rng(2).normal(size=(3, 4))
    col = W[:, 1]
    before = W.tobytes()
    np.testing.assert_allclose(backcheck.numerical_grad(lambda v: float(np.sum(v**2)), col), 2 * col, rtol=1e-6)

    def writes(v):
        value = float(np.sum(v**2))
        v += 1.0  # every call, after reading
        return value

    np.testing.assert_allclose(backcheck.numerical_grad(writes, col), 2 * col, rtol=1e-6)
    assert W.tobytes() == before
