"""In-place operators of Tensor (``+=``, ``-=``, ``*=``, ``/=``, ``t[i] = v``) against torch's: written into the
tensor where torch writes, recorded in the graph where torch records, refused (typed) where torch refuses."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck import nn
from backcheck.nn import Tensor, no_grad
from backcheck.nn.errors import DTypeError, GraphError, ShapeError

torch = pytest.importorskip("torch")


def test_manual_sgd_idiom_updates_the_parameters_as_torch():
    """``with no_grad(): for p in params: p -= lr * p.grad`` trains (it used to rebind the loop variable)."""
    rng = np.random.default_rng(0)
    w0, b0, x = rng.normal(size=(1, 3)), rng.normal(size=1), rng.normal(size=(4, 3))
    m = nn.Linear(3, 1, dtype=np.float64)
    m.weight.data[...], m.bias.data[...] = w0, b0
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    ours, theirs = [], []
    for _ in range(3):
        m.zero_grad()
        loss = (m(Tensor(x)) ** 2).mean()
        loss.backward()
        with no_grad():
            for p in m.parameters():
                p -= 0.1 * p.grad
        tw.grad = tb.grad = None
        tloss = ((torch.from_numpy(x) @ tw.T + tb) ** 2).mean()
        tloss.backward()
        with torch.no_grad():
            for p in (tw, tb):
                p -= 0.1 * p.grad
        ours.append(loss.item())
        theirs.append(tloss.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_allclose(m.weight.data, tw.detach().numpy(), rtol=1e-12)
    assert m.weight.is_leaf and m.weight.requires_grad


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
def test_every_operator_writes_into_the_same_array_without_grad(op):
    data = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    t = Tensor(data)
    alias = t
    exec(f"t {op} np.float32(2.0)", {"np": np}, {"t": t})
    expected = {"+=": [3, 4, 6], "-=": [-1, 0, 2], "*=": [2, 4, 8], "/=": [0.5, 1, 2]}[op]
    np.testing.assert_array_equal(alias.data, np.array(expected, dtype=np.float32))
    assert alias.data is data and alias.data.dtype == np.float32


def test_setitem_writes_in_place_without_grad_and_under_no_grad():
    t = Tensor(np.zeros((2, 3)))
    t[0] = 1.0
    t[1, [0, 2]] = Tensor(np.array([5.0, 6.0]))
    np.testing.assert_array_equal(t.data, [[1, 1, 1], [5, 0, 6]])
    w = Tensor(np.zeros(3), requires_grad=True)
    with no_grad():
        w[1] = 7.0
    assert w.is_leaf and w.requires_grad and w.data[1] == 7.0


_WRITES = [lambda w: w.__iadd__(1.0), lambda w: w.__imul__(2.0), lambda w: w.__setitem__(0, 1.0)]


@pytest.mark.parametrize("write", _WRITES)
def test_a_grad_leaf_in_grad_mode_is_refused_as_torch_refuses(write):
    tw = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tw += 1.0
    w = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(GraphError, match="leaf tensor that requires grad") as info:
        write(w)
    assert "no_grad" in info.value.hint
    np.testing.assert_array_equal(w.data, np.ones(3))


def test_recorded_in_place_ops_on_a_non_leaf_give_torchs_gradients():
    rng = np.random.default_rng(1)
    xv, yv, g = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))

    def run(x, y):
        h = x * 2.0
        h += y
        h[0, 1] = y[1, 2] * 3.0
        h *= 3.0  # (torch refuses a factor that saves h, e.g. h *= h, once h is written again)
        h -= x
        h /= y
        return h

    x, y = Tensor(xv, requires_grad=True), Tensor(yv, requires_grad=True)
    out = run(x, y)
    out.backward(g)
    tx, ty = torch.tensor(xv, requires_grad=True), torch.tensor(yv, requires_grad=True)
    tout = run(tx, ty)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(y.grad, ty.grad.numpy(), rtol=1e-12)


def test_a_plain_tensor_written_with_a_grad_operand_joins_the_graph_as_torch():
    wv = np.array([1.0, -2.0, 3.0])
    w, tw = Tensor(wv, requires_grad=True), torch.tensor(wv, requires_grad=True)
    acc, tacc = Tensor(np.zeros((2, 3))), torch.zeros(2, 3, dtype=torch.float64)
    acc += w
    acc[1] = w * w
    tacc += tw
    tacc[1] = tw * tw
    assert acc.requires_grad and not acc.is_leaf
    acc.sum().backward()
    tacc.sum().backward()
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-12)


def test_an_earlier_graph_of_the_written_tensor_refuses_backward():
    """A graph that read ``x`` before ``x`` was written in place would see the new values (torch refuses too)."""
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = Tensor(np.array([3.0, 4.0]))
    loss = (w * x).sum()
    x += 1.0
    with pytest.raises(GraphError, match="modified in place"):
        loss.backward()


def test_a_tensor_its_op_saved_is_refused_under_no_grad():
    x = Tensor(np.array([0.5, 1.0]), requires_grad=True)
    y = x.exp()
    with pytest.raises(GraphError, match="saved by its op 'exp'"), no_grad():
        y += 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp([0.5, 1.0]), rtol=1e-15)


def test_results_the_tensor_cannot_hold_are_typed_errors():
    ti = torch.tensor([1, 2])
    with pytest.raises(RuntimeError):
        ti /= 2
    with pytest.raises(DTypeError, match="cannot be stored"):
        t = Tensor(np.array([1, 2]))
        t /= 2
    with pytest.raises(ShapeError, match="shape"):
        t = Tensor(np.zeros(3))
        t += np.ones((2, 3))
    with pytest.raises(ShapeError, match="setitem"):
        Tensor(np.zeros(3))[5] = 1.0


def test_hooks_registered_before_a_recorded_write_see_the_old_value_as_torch():
    seen = {"ours": [], "torch": []}
    grads = {}
    for lib, x in (
        ("ours", Tensor(np.array([1.0, 2.0]), requires_grad=True)),
        ("torch", torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)),
    ):
        h = x * 1.0
        h.register_hook(lambda g, lib=lib: seen[lib].append(("before", np.asarray(g).tolist())))
        h.retain_grad()
        h *= 3.0
        h.register_hook(lambda g, lib=lib: seen[lib].append(("after", np.asarray(g).tolist())))
        h.sum().backward()
        grads[lib] = (np.asarray(h.grad).tolist(), np.asarray(x.grad).tolist())
    assert seen["ours"] == seen["torch"]
    assert grads["ours"] == grads["torch"]


def test_a_write_into_a_view_counts_for_the_tensor_it_views_as_torch():
    """``v = a.reshape(...)`` shares a's memory: a graph that saved ``a`` refuses backward after ``v += 1``."""
    w = Tensor(np.array([1.0, 2.0, 3.0, 4.0]), requires_grad=True)
    a = w * 1.0
    loss = (a * a).sum()
    v = a.reshape(2, 2)
    with no_grad():
        v += 1.0
    np.testing.assert_array_equal(a.data, [2.0, 3.0, 4.0, 5.0])  # (torch: a view writes into its base)
    with pytest.raises(GraphError, match="modified in place"):
        loss.backward()


@pytest.mark.parametrize("write", ["iadd", "setitem"])
def test_a_write_through_a_view_into_what_an_op_saved_is_refused(write):
    """``z = y.reshape(3)`` shares ``y``'s memory, and exp saved ``y`` (its output) for backward: a write into
    ``z`` would change exp's gradient silently (it gave exp(x) + 1), so it is refused as a write into ``y`` is."""
    x = Tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    y = x.exp()
    z = y.reshape((3,))
    with pytest.raises(GraphError, match="views a tensor .* saved by its op 'exp'"), no_grad():
        if write == "iadd":
            z += 1.0
        else:
            z[0:2] = 5.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp([0.5, 1.0, 2.0]), rtol=1e-15)
