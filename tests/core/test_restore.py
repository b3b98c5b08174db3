"""The user's arrays are bit-identical after every check, whatever the user's function does."""

import numpy as np
import pytest

import backcheck
from backcheck import UserFunctionError

given = pytest.importorskip("hypothesis").given
st = pytest.importorskip("hypothesis.strategies")


def snapshot(tree):
    return {k: (v.copy(), v.tobytes()) for k, v in tree.items()}


def assert_same(tree, snap):
    for k, v in tree.items():
        assert v.tobytes() == snap[k][1], k
        assert v.dtype == snap[k][0].dtype and v.shape == snap[k][0].shape


def make_params(dtype):
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, 4)).astype(dtype)
    W[0, 0] = -0.0  # signed zero must survive
    W[1, 1] = np.finfo(dtype).tiny / 4  # a subnormal too
    return {
        "W": W,
        "b": rng.normal(size=4).astype(dtype),
        "T": np.asfortranarray(rng.normal(size=(2, 3))).astype(dtype),
    }


def loss(p):
    return float(np.sum(np.tanh(p["W"])) + np.sum(p["b"] ** 2) + np.sum(p["T"] ** 3))


def dloss(p):
    return {"W": 1 - np.tanh(p["W"]) ** 2, "b": 2 * p["b"], "T": 3 * p["T"] ** 2}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_arrays_are_restored_after_a_passing_and_a_failing_check(dtype):
    p = make_params(dtype)
    snap = snapshot(p)
    assert backcheck.check(loss, p, dloss).ok
    assert_same(p, snap)
    assert not backcheck.check(loss, p, lambda q: {**dloss(q), "b": -dloss(q)["b"]}).ok
    assert_same(p, snap)


@given(when=st.integers(1, 46), exc=st.sampled_from([ValueError, ZeroDivisionError, KeyboardInterrupt, SystemExit]))
def test_arrays_are_restored_when_the_function_raises_at_any_evaluation(when, exc):
    # a check of 22 elements takes 2 + 2 * 22 = 46 evaluations; raise at any one of them
    p = make_params(np.float64)
    snap = snapshot(p)
    calls = {"n": 0}

    def exploding(q):
        calls["n"] += 1
        if calls["n"] == when:
            raise exc("injected")
        return loss(q)

    expected = exc if exc in (KeyboardInterrupt, SystemExit) else UserFunctionError  # (they pass through)
    with pytest.raises(expected):
        backcheck.check(exploding, p, dloss)
    assert_same(p, snap)


def test_closure_style_function_ignoring_its_argument():
    # CS231n style: the loss reads the parameters from the model, not from its argument
    rng = np.random.default_rng(0)
    model = {"W": rng.normal(size=(5, 3)), "X": rng.normal(size=(4, 5))}
    snap = snapshot(model)

    def f(_):
        return float(np.sum((model["X"] @ model["W"]) ** 2))

    def grad(_):
        return 2 * model["X"].T @ (model["X"] @ model["W"])

    assert backcheck.check(f, model["W"], grad).ok
    assert_same(model, snap)


def test_read_only_and_non_contiguous_arrays():
    base = np.arange(12.0).reshape(3, 4) / 7
    view = base.T  # not C-contiguous, perturbed through its own view
    ro = np.linspace(0, 1, 5)
    ro.flags.writeable = False
    p = {"view": view, "ro": ro}
    r = backcheck.check(
        lambda q: float(np.sum(q["view"] ** 2) + np.sum(np.sin(q["ro"]))),
        p,
        lambda q: {"view": 2 * q["view"], "ro": np.cos(q["ro"])},
    )
    assert r.ok, r
    assert base.tobytes() == (np.arange(12.0).reshape(3, 4) / 7).tobytes()


def test_check_layer_never_writes_the_callers_arrays_even_when_backward_mutates():
    x = np.array([-1.0, 0.5, 2.0])
    dout = np.array([1.0, 2.0, 3.0])
    before_x, before_d = x.tobytes(), dout.tobytes()

    def relu_backward_inplace(d, x):
        d[x <= 0] = 0  # mutates the upstream gradient
        return d

    r = backcheck.check_layer(lambda x: np.maximum(x, 0), relu_backward_inplace, x, dout=dout)
    assert x.tobytes() == before_x and dout.tobytes() == before_d
    # (a habit of correct layers: said, not failed; every call had a fresh copy, and the gradient is right)
    assert r.status == "pass" and r.findings and r.findings[0].kind == "dout written"
    assert "dout" in r.findings[0].message and "dout[0]" in r.findings[0].elements


def _resizes_at(call_no: int, calls: dict):
    def f(x):
        calls["n"] += 1
        if calls["n"] == call_no:
            x.resize(x.size + 4096, refcheck=False)  # moves its memory: views taken before are stale
        return float(np.sum(np.sin(x[:5])))

    return f


@pytest.mark.parametrize("strategy, n, call_no", [("full", 5, 5), ("full", 5, 9), ("auto", 5000, 4), ("auto", 5000, 5)])
def test_a_function_that_resizes_its_input_mid_check_is_named_and_the_array_put_back(strategy, n, call_no):
    x = np.linspace(0.1, 1.0, n).copy()  # owns its memory: f is handed the array itself, and can resize it
    before, calls = x.copy(), {"n": 0}
    with pytest.raises(UserFunctionError, match="x"):
        backcheck.check(_resizes_at(call_no, calls), x, lambda x: np.where(np.arange(x.size) < 5, np.cos(x), 0.0),
                        strategy=strategy)  # fmt: skip
    assert x.shape == before.shape and np.array_equal(x, before)
    # stopped at the call that resized it (auto's call 5: a direction's second step, written without its dots):
    # no value was written through the stale views, no call made after
    # (the serial loop used to write the pair's second step through them and call the function again)
    assert calls["n"] == call_no
