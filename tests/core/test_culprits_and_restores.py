"""The contract at the edges of the entry points: the user's arrays as they were, whatever the user's code does
before the check proper starts, a write into the inputs found whenever it happens, and typed errors naming the
function or argument that is at fault."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import backcheck
from backcheck.errors import ArgumentError, BackcheckError, BadInputError, CaseError, NonFiniteError, UserFunctionError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("at_call", [1, 2, 3])
def test_a_narrow_array_written_through_a_closure_is_restored_when_f_raises(dtype, at_call):
    # f reads the user's array through a closure (the argument is a copy) and writes into it before raising;
    # the first calls decide whether to difference on float64 copies, before the check proper
    x = np.array([1.0, 2.0, 3.0], dtype=dtype)
    calls = [0]

    def f(_):
        calls[0] += 1
        x[0] = 7.0
        if calls[0] >= at_call:
            raise RuntimeError("boom")
        return float(np.sum(x))

    with pytest.raises(UserFunctionError, match="boom"):
        backcheck.check(f, x, lambda p: np.ones_like(p))
    assert x.tolist() == [1.0, 2.0, 3.0]


def test_a_narrow_array_written_through_a_closure_is_restored_when_the_check_refuses_f():
    x = np.ones((2, 3), dtype=np.float32)

    def f(_):
        x[:, 0] = 7.0
        return np.sum(x)  # one number for a batch: not what vectorized=True asks for

    with pytest.raises(BackcheckError):
        backcheck.check(f, x, lambda p: np.ones_like(p), vectorized=True)
    assert np.array_equal(x, np.ones((2, 3), dtype=np.float32))


def test_a_write_into_the_input_at_the_first_call_only_fails_the_check():
    # a lazy in-place normalisation: the two calls at the point differ (the first computed after its write), which
    # the check first takes for randomness; the write is a mutation all the same
    x = np.array([0.3, -0.2, 0.6])
    done = [False]

    def f(p):
        if not done[0]:
            p /= np.abs(p).sum()
            done[0] = True
        return np.sum(np.tanh(p))

    report = backcheck.check(f, x, lambda p: 1 - np.tanh(p) ** 2)
    assert report.status == "fail"
    assert [fd.kind for fd in report.findings] == ["mutation"]
    assert x.tolist() == [0.3, -0.2, 0.6]


def test_a_forward_raising_before_the_backward_pass_is_named_as_forward():
    # a mutable config input (CS231n's bn_param): forward runs before each backward call, and raises there
    calls = [0]

    def layer_fwd(x, cfg):
        calls[0] += 1
        if calls[0] == 4:
            raise RuntimeError("raised inside forward")
        return np.tanh(x)

    def layer_bwd(dout, x, cfg):
        return dout * (1 - np.tanh(x) ** 2), None

    with pytest.raises(UserFunctionError) as info:
        backcheck.check_layer(layer_fwd, layer_bwd, (np.linspace(-1, 1, 6), {"mode": "train"}))
    assert info.value.message.startswith("layer_fwd (run before its backward pass) raised RuntimeError")


def test_check_hvp_names_a_lambda_product_and_a_vector_that_is_not_finite():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = np.array([0.5, -1.0])
    grad = lambda x: a @ x  # noqa: E731
    wrong = lambda x, v: v[5]  # noqa: E731 - named by its source text
    with pytest.raises(UserFunctionError) as info:
        backcheck.check_hvp(None, grad, wrong, x)
    assert info.value.message.startswith("lambda x, v: v[5] raised IndexError")
    with pytest.raises(UserFunctionError) as info:
        backcheck.check_hvp(None, lambda x: a @ x, lambda x, v: v[5], x)  # (two on a line: by its role)
    assert info.value.message.startswith("hvp raised IndexError")
    with pytest.raises(NonFiniteError) as info:
        backcheck.check_hvp(
            None,
            lambda p: 2 * p["w"],
            lambda p, v: {"w": 2 * v["w"]},
            {"w": np.ones(3)},
            v={"w": np.array([1.0, np.inf, 2.0])},
        )
    assert "the vector v is inf at v['w'][1]" in info.value.message


def test_freeze_rng_asked_for_torch_imports_it():
    pytest.importorskip("torch")
    # a program that has not imported torch yet (a fresh interpreter: torch cannot be imported twice in one)
    program = (
        "import sys, numpy as np, backcheck\n"
        "assert 'torch' not in sys.modules\n"
        "def noisy(x):\n"
        "    import torch\n"
        "    return float(np.sum(x * torch.rand(x.shape).numpy()))\n"
        "f = backcheck.freeze_rng(noisy, torch=True)\n"
        "assert f(np.ones(4)) == f(np.ones(4))\n"
        "print('same')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "same"


def test_explore_refuses_a_misspelt_option_and_a_forward_that_is_no_function():
    pytest.importorskip("hypothesis")
    from backcheck.explore import Array, assert_explore

    def relu_bwd(d, x):
        return d * (x >= 0)

    with pytest.raises(ArgumentError, match="did you mean max_points"):
        backcheck.explore(lambda x: np.maximum(x, 0), relu_bwd, inputs={"x": Array("N")}, max_point=5)
    with pytest.raises(ArgumentError, match=r"^assert_explore\(\) got an unexpected keyword"):
        assert_explore(lambda x: np.maximum(x, 0), relu_bwd, inputs={"x": Array("N")}, max_point=5)
    with pytest.raises(BadInputError, match="forward is an int, not a function"):
        backcheck.explore(3, relu_bwd, inputs={"x": Array("N")}, max_points=5)


def test_a_case_naming_its_layer_by_neither_function_nor_name_is_a_case_error():
    with pytest.raises(CaseError, match="forward=3"):

        @backcheck.case(forward=3, backward="bwd")
        def layer():
            return np.ones(3)


def test_check_object_refuses_a_layer_whose_deepcopy_is_itself_and_leaves_it_alone():
    class Shared:
        def __init__(self, w):
            self.W, self.dW = w, np.zeros_like(w)

        def __deepcopy__(self, memo):
            return self

        def forward(self, x):
            self.X = x
            return x @ self.W

        def backward(self, d):
            self.dW += self.X.T @ d
            return d @ self.W.T

    rng = np.random.default_rng(0)
    layer = Shared(rng.normal(size=(3, 2)))
    w0 = layer.W.copy()
    with pytest.raises(BadInputError, match="returns the layer itself"):
        backcheck.check_object(layer, rng.normal(size=(4, 3)))
    assert np.array_equal(layer.W, w0) and not layer.dW.any() and not hasattr(layer, "X")
