"""Double backward: gradients from the ops' tensor rules, differentiated again, checked by backcheck."""

import numpy as np
import pytest

from backcheck.nn import Tensor
from backcheck.nn.check import check_grad_of_grad
from backcheck.nn.higher import TENSOR_RULES, DoubleBackwardError, grad
from backcheck.nn.ops import elementwise as ew

rng = np.random.default_rng(0)
A, B = rng.normal(size=(3, 4)) * 0.5, rng.normal(size=(4, 2)) * 0.5
P = rng.uniform(0.5, 2.0, size=(3, 4))

FUNCTIONS = {
    "matmul_tanh": (lambda a, b: (a @ b).tanh(), (A, B)),
    "sigmoid_mul": (lambda a, b: (a.sigmoid() * a) @ b, (A, B)),
    "exp_log_div": (lambda p: (p.exp() / (p.log() + 3.0)).sum(axis=1), (P,)),
    "pow_sqrt_mean": (lambda p: (p**2.5).sqrt().mean(axis=0), (P,)),
    "reshape_sub_neg": (lambda a: -(a.reshape(4, 3) - a.reshape(4, 3) ** 3).sum(), (A,)),
    "relu_mlp": (lambda a, b: ((a @ b).relu() @ Tensor(np.ones((2, 3)))).tanh(), (A, B)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_grad_of_grad_passes_for_ops_with_tensor_rules(name):
    fn, inputs = FUNCTIONS[name]
    report = check_grad_of_grad(fn, *inputs)
    assert report.ok, report
    assert "second order" in report.notes[0]


def test_hessian_of_a_cubic_by_hand():
    x = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    (g,) = grad((x**3).sum(), [x])
    (h,) = grad(g.sum(), [x])
    assert np.allclose(g.numpy(), 3 * x.data**2) and np.allclose(h.numpy(), 6 * x.data)


def test_a_rule_right_to_first_order_but_not_to_second_fails(monkeypatch):
    # the classic double-backward bug: the saved output treated as a constant
    monkeypatch.setitem(TENSOR_RULES, ew.Tanh, lambda ctx, g: (g * Tensor(1 - np.tanh(ctx.parents[0].data) ** 2),))
    report = check_grad_of_grad(*FUNCTIONS["matmul_tanh"][:1], *FUNCTIONS["matmul_tanh"][1])
    assert report.status == "fail" and "second order" in report.notes[0]


def test_a_rule_wrong_to_first_order_is_reported_as_such(monkeypatch):
    monkeypatch.setitem(TENSOR_RULES, ew.Exp, lambda ctx, g: (g * ctx.parents[0],))
    report = check_grad_of_grad(*FUNCTIONS["exp_log_div"][:1], *FUNCTIONS["exp_log_div"][1])
    assert report.status == "fail" and "first-order" in report.notes[0]


def test_ops_without_a_tensor_rule_are_named():
    x = Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    with pytest.raises(DoubleBackwardError, match="softplus: no tensor rule"):
        grad(ew.softplus(x).sum(), [x])


def _stale(kind: str):
    """A graph one of whose inputs was written in place after the forward read it."""
    from backcheck import nn
    from backcheck.nn import Tensor

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    if kind == "leaf under no_grad":
        y = (x * x * x).sum()
        with nn.no_grad():
            x -= 1.0
    elif kind == "optimizer step":
        y = (x * x).sum()
        y.backward(retain_graph=True)
        nn.SGD([x], lr=0.5).step()
    else:  # a recorded in-place write into a non-leaf the graph read
        h = x * 1.0
        y = (h * h).sum()
        h *= 3.0
    return x, y


@pytest.mark.parametrize("kind", ["leaf under no_grad", "optimizer step", "non-leaf"])
def test_grad_refuses_a_graph_whose_inputs_were_written_since(kind):
    # it differentiated at the new values, silently: [1, 6] for [3, 12], [0, 0] for [2, 4], [18, 36] for [2, 4]
    from backcheck.nn.errors import GraphError
    from backcheck.nn.higher import grad

    x, y = _stale(kind)
    with pytest.raises(GraphError, match="modified in place"):
        grad(y, [x])


def test_grad_gives_each_gradient_in_its_inputs_dtype():
    from backcheck.nn import Tensor
    from backcheck.nn.higher import grad

    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    w = Tensor(np.array([0.5, 3.0]))  # float64
    (g,) = grad((x * w).sum(), [x])
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g.numpy(), np.array([0.5, 3.0], dtype=np.float32))
