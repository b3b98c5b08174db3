"""The autograd engine itself: graph walk, accumulation, freeing, no_grad, hooks, tensor API."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

from backcheck.nn import Function, GraphError, Tensor, no_grad
from backcheck.nn.tensor import enable_grad, is_grad_enabled

torch = pytest.importorskip("torch")


def test_chain_of_100000_ops_backward_is_iterative():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y * 1.0
        y = y + 0.0
    y.backward()
    assert x.grad == pytest.approx(1.0)


def test_deleting_a_deep_graph_does_not_overflow():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for i in range(100_000):
        y = y + 1.0
        if i == 50_000:
            middle = weakref.ref(y)
    assert y.item() == 100_001.0 and middle() is not None
    last = weakref.ref(y)
    del y  # deallocation of the nested graph must not recurse the C stack to death
    assert last() is None and middle() is None  # the whole chain was freed, not leaked
    assert x.item() == 1.0 and x.grad is None


def test_reused_node_accumulates():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    a = x * 2.0
    y = (a * a + a * 3.0 + a).sum()  # a used four times
    y.backward()
    xt = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    at = xt * 2.0
    (at * at + at * 3.0 + at).sum().backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy())


def test_same_tensor_twice_in_one_op_and_diamond():
    x = Tensor(np.array([0.5, -1.5]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)
    x.grad = None
    b, c = x.exp(), x.tanh()
    (b * c).sum().backward()  # diamond: x -> b, x -> c -> join
    expected = np.exp(x.data) * np.tanh(x.data) + np.exp(x.data) * (1 - np.tanh(x.data) ** 2)
    np.testing.assert_allclose(x.grad, expected)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    np.testing.assert_allclose(x.grad, [7.0, 7.0])


def test_leaf_grads_do_not_alias_each_other():
    a = Tensor(np.zeros(3), requires_grad=True)
    b = Tensor(np.zeros(3), requires_grad=True)
    (a + b).backward(np.ones(3))
    a.grad *= 5  # users may modify a gradient in place; b must not change
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_graph_is_freed_after_backward_and_second_backward_raises():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.exp() * 2.0).sum()
    node = y.ctx
    y.backward()
    assert node.freed and node.saved() == {} and node.parents == ()
    with pytest.raises(GraphError, match="second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.exp() * 2.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.exp(x.data))


def test_intermediate_gradients_are_not_kept():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2.0
    (h * h).sum().backward()
    assert h.grad is None and x.grad is not None


def test_no_grad_builds_no_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2.0).exp().sum()
        with enable_grad():
            z = x * 2.0
    assert is_grad_enabled()
    assert not y.requires_grad and y.ctx is None and y.op is None
    assert z.requires_grad
    with pytest.raises(GraphError, match="does not require grad"):
        y.backward()


def test_detach_cuts_the_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * 2.0).detach()
    assert not y.requires_grad and y.is_leaf
    z = (x * y).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, y.data)


def test_backward_order_is_deterministic():
    def run():
        order = []

        class Tag(Function):
            name = "tag"

            @staticmethod
            def forward(ctx, a, *, label):
                ctx.label = label
                return a

            @staticmethod
            def backward(ctx, grad):
                order.append(ctx.label)
                return (grad,)

        x = Tensor(np.ones(2), requires_grad=True)
        parts = [Tag.apply(x * float(i), label=i) for i in range(6)]
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        total.sum().backward()
        return order

    first = run()
    assert first == run() and sorted(first) == list(range(6))


def test_hooks_and_retain_grad():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    seen = []
    h.register_hook(lambda g: seen.append(g.copy()))
    x.register_hook(lambda g: g * 10.0)  # a hook may replace the gradient
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(seen[0], 2 * h.data)
    np.testing.assert_allclose(x.grad, 10 * 3 * 2 * h.data)


def test_custom_function_gets_unbroadcasting_and_skipping_from_the_base():
    calls = []

    class Scale(Function):
        name = "scale"

        @staticmethod
        def forward(ctx, a, b):
            ctx.a, ctx.b = a, b
            calls.append(ctx.needs_input_grad)
            return a * b

        @staticmethod
        def backward(ctx, grad):
            # returns gradients in the broadcast output shape; the base sums them back
            return grad * ctx.b, (grad * ctx.a if ctx.needs_input_grad[1] else None)

    a = Tensor(np.ones((3, 4)), requires_grad=True)
    b = Tensor(np.full((4,), 2.0))
    Scale.apply(a, b).sum().backward()
    assert calls == [(True, False)]
    assert a.grad.shape == (3, 4) and b.grad is None
    b2 = Tensor(np.full((1, 4), 2.0), requires_grad=True)
    Scale.apply(a, b2).sum().backward()
    assert b2.grad.shape == (1, 4)
    np.testing.assert_allclose(b2.grad, [[3.0] * 4])


def test_operator_overloads_and_tensor_methods():
    a = Tensor(np.array([[1.0, -2.0], [3.0, 4.0]]), requires_grad=True)
    gt = a > 0
    assert not gt.requires_grad and gt.ctx is None
    np.testing.assert_array_equal(gt.data, [[True, False], [True, True]])
    np.testing.assert_array_equal((a >= 3.0).data, [[False, False], [True, True]])
    np.testing.assert_array_equal((a == a).data, np.ones((2, 2), bool))
    assert (a < 0).data.sum() == 1 and (a <= 1).data.sum() == 2 and (a != 1.0).data.sum() == 3
    y = (-a @ a.T + a**2 - 1.0 / (abs(a) + 1.0)).mean(axis=0, keepdims=True)
    d = a.data
    np.testing.assert_allclose(y.data, (-d @ d.T + d**2 - 1.0 / (np.abs(d) + 1.0)).mean(axis=0, keepdims=True))
    assert a.sum().item() == 6.0 and a.max().item() == 4.0 and a.min().item() == -2.0
    assert a.reshape(4).shape == (4,) and a.reshape(1, 4).shape == (1, 4) and a.T.shape == (2, 2)
    assert a.transpose().shape == (2, 2) and a.numpy() is a.data
    assert a[0].shape == (2,) and a[:, 1].shape == (2,)
    np_left = np.full(2, 3.0) * a  # ndarray on the left defers to Tensor's reflected operator
    assert np_left.requires_grad and np_left.op.name == "mul"
    np.testing.assert_array_equal(np_left.data, 3.0 * a.data)
    np_left.sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((2, 2), 3.0))
    as32 = a.astype(np.float32)
    assert as32.dtype == np.float32 and as32.requires_grad
    np.testing.assert_array_equal(as32.data, a.data.astype(np.float32))
    assert "requires_grad=True" in repr(a) and "op=" in repr(y)


def test_python_floats_follow_tensor_dtype():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = x * 2.0 + 1.0 - 3.0 / (x + 1.0)
    assert y.dtype == np.float32
    assert Tensor([1.0, 2.0]).dtype == np.float32 and Tensor([1, 2]).dtype == np.int64
    assert Tensor(np.ones(2)).dtype == np.float64
    assert Tensor(np.float64(2.0)).dtype == np.float64 and Tensor(2.0).dtype == np.float32


def test_backward_with_explicit_gradient():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x * 2.0
    y.backward(np.ones((2, 3)) * 0.5)
    np.testing.assert_allclose(x.grad, np.ones((2, 3)))
