"""The tensor as Python and numpy see it: 0-d tensors used many times, iteration and conversions, promotion of
mixed dtypes, and grad mode per thread; torch is the reference."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from backcheck.nn import GraphError, Tensor, no_grad
from backcheck.nn.tensor import is_grad_enabled

torch = pytest.importorskip("torch")


def _close(ours: object, theirs: object, dtype: type = np.float64, terms: int = 16) -> None:
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=8 * terms * np.finfo(dtype).eps)


# -- 0-d tensors ------------------------------------------------------------------------------------------------------
def test_a_0d_tensor_used_three_or_more_times_keeps_every_contribution():
    a = Tensor(np.array(2.0), requires_grad=True)
    (a * a * a).backward()
    assert type(a.grad) is np.ndarray and a.grad.shape == () and float(a.grad) == 12.0
    b = Tensor(np.array(1.5), requires_grad=True)
    y = b
    for _ in range(20):
        y = y * b
    y.backward()
    _close(b.grad, 21 * 1.5**20)


def test_a_scalar_weight_with_an_l2_term_matches_torch():
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=7), rng.normal(size=7)
    w = Tensor(np.array(0.3), requires_grad=True)
    (((w * x - t) ** 2).mean() + 0.01 * (w * w)).backward()
    tw = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)
    (((tw * tx - tt) ** 2).mean() + 0.01 * (tw * tw)).backward()
    _close(w.grad, tw.grad.numpy())


def test_a_reused_0d_loss_gives_array_leaves_torchs_gradient():
    v0 = np.array([1.0, 2.0, 3.0])
    v = Tensor(v0.copy(), requires_grad=True)
    m = (v * v).mean()
    (m + 0.1 * m + m * m).backward()
    tv = torch.tensor(v0, requires_grad=True)
    tm = (tv * tv).mean()
    (tm + 0.1 * tm + tm * tm).backward()
    _close(v.grad, tv.grad.numpy())


def test_0d_results_and_gradients_are_arrays():
    a = Tensor(np.array(2.0, dtype=np.float32), requires_grad=True)
    y = a * a + a
    assert type(y.data) is np.ndarray and y.data.dtype == np.float32
    y.backward()
    assert type(a.grad) is np.ndarray and a.grad.dtype == np.float32 and float(a.grad) == 5.0


# -- iteration and conversions ----------------------------------------------------------------------------------------
def test_iteration_and_unpacking_give_rows_that_carry_the_gradient():
    t = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = list(t)
    assert [r.shape for r in rows] == [(2,)] * 3
    first, second, third = t
    (first.sum() * 1.0 + second.sum() * 2.0 + third.sum() * 3.0).backward()
    np.testing.assert_array_equal(t.grad, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    with pytest.raises(TypeError):
        iter(Tensor(np.array(1.0)))
    with pytest.raises(TypeError):
        len(Tensor(np.array(1.0)))


def test_numpy_conversion_of_values_and_refusal_where_the_gradient_would_be_lost():
    data = np.arange(4.0, dtype=np.float32).reshape(2, 2)
    t = Tensor(data)
    assert np.asarray(t) is data and np.array(t) is not data
    np.testing.assert_array_equal(np.array(t, dtype=np.float64), data)
    g = Tensor(data.copy(), requires_grad=True)
    with pytest.raises(GraphError) as err:
        np.concatenate([g, g])
    assert "detach" in err.value.hint
    np.testing.assert_array_equal(np.asarray(g.detach()), data)


def test_python_scalar_conversions_and_formatting_as_torch():
    loss = Tensor(np.array([[1.0, 2.0], [3.0, 4.5]], dtype=np.float32)).sum()
    tl = torch.tensor([[1.0, 2.0], [3.0, 4.5]]).sum()
    assert float(loss) == float(tl) == 10.5 and int(loss) == int(tl) == 10
    assert f"{loss:.3f}" == f"{tl:.3f}" == "10.500"
    assert f"{loss}" == str(loss)
    with pytest.raises(Exception) as err:
        float(Tensor(np.ones(2)))
    assert "one-element" in str(err.value)


# -- promotion --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "other",
    [np.arange(3), np.array([1, 0, 1], dtype=bool), np.array(2.0), Tensor(np.array(2.0)), Tensor(np.arange(3))],
    ids=["int array", "bool mask", "0-d float64 array", "0-d float64 tensor", "int tensor"],
)
def test_a_float32_operand_stays_float32_as_in_torch(other):
    x = Tensor(np.array([0.5, -1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = x * other
    raw = other.data if isinstance(other, Tensor) else other
    theirs = torch.tensor([0.5, -1.0, 2.0]) * torch.from_numpy(np.asarray(raw))
    assert y.dtype == np.float32 and str(theirs.dtype) == "torch.float32"
    _close(y.data, theirs.numpy(), np.float32)
    y.sum().backward()
    assert x.grad.dtype == np.float32
    _close(x.grad, np.broadcast_to(raw, (3,)).astype(np.float32), np.float32)


def test_a_0d_float64_tensor_beside_float32_gets_its_gradient_in_its_own_dtype():
    x = Tensor(np.array([0.5, -1.0, 2.0], dtype=np.float32), requires_grad=True)
    s = Tensor(np.array(3.0), requires_grad=True)
    (x * s).sum().backward()
    assert s.grad.dtype == np.float64 and float(s.grad) == pytest.approx(1.5, rel=1e-6)


def test_operands_with_dimensions_promote_as_numpy_does():
    a = Tensor(np.ones(3, dtype=np.float32))
    assert (a * Tensor(np.ones(3))).dtype == np.float64 == (a * np.ones(3)).dtype
    assert (Tensor(np.array(1.0, dtype=np.float32)) * np.array(2.0)).dtype == np.float64  # both 0-d


# -- grad mode --------------------------------------------------------------------------------------------------------
def test_no_grad_in_one_thread_leaves_another_recording():
    inside, done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def evaluate() -> None:
        with no_grad():
            seen.append(is_grad_enabled())
            inside.set()
            done.wait(5)

    worker = threading.Thread(target=evaluate)
    worker.start()
    assert inside.wait(5)
    w = Tensor(np.ones(2), requires_grad=True)
    y = (w * 2.0).sum()
    done.set()
    worker.join(5)
    assert seen == [False] and is_grad_enabled() and y.requires_grad
    y.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0])


# -- writes in place after use ----------------------------------------------------------------------------------------
def test_a_graph_refuses_to_backward_through_parameters_loaded_after_it_ran():
    from backcheck.nn import Linear

    layer = Linear(3, 2)
    saved = layer.state_dict()
    loss = layer(Tensor(np.ones((4, 3), dtype=np.float32))).sum()
    layer.load_state_dict({k: v * 2 for k, v in saved.items()})
    with pytest.raises(GraphError) as err:
        loss.backward()
    assert "modified in place" in str(err.value) and "backward()" in err.value.hint
    fresh = layer(Tensor(np.ones((4, 3), dtype=np.float32))).sum()  # the forward run again: no complaint
    fresh.backward()
    np.testing.assert_allclose(layer.bias.grad, [4.0, 4.0])


def test_versions_count_only_engine_writes_and_leave_untouched_graphs_alone():
    from backcheck.nn.autograd import modified

    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    other = Tensor(np.array([3.0]), requires_grad=True)
    y = (w * w).sum()
    modified(other)  # a tensor the graph never read
    y.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 4.0])
    z = (w * 3.0).sum()
    modified(w)
    with pytest.raises(GraphError):
        z.backward()


def test_an_optimizer_step_between_forward_and_backward_is_refused_as_in_torch():
    from backcheck.nn import SGD, Adam, Linear

    for make in (lambda ps: SGD(ps, lr=0.1), lambda ps: Adam(ps, lr=0.1)):
        layer = Linear(3, 2)
        opt = make(layer.parameters())
        first = layer(Tensor(np.ones((2, 3), dtype=np.float32))).sum()
        first.backward()
        opt.step()  # the usual order: backward, then step
        second = layer(Tensor(np.ones((2, 3), dtype=np.float32))).sum()
        opt.step()  # a step before the graph that read the weights is differentiated (the GAN slip)
        with pytest.raises(GraphError):
            second.backward()


def test_an_op_applied_to_numpy_arrays_is_a_typed_error_naming_the_input():
    from backcheck.nn import ArgumentError
    from backcheck.nn.ops.elementwise import Mul

    with pytest.raises(ArgumentError) as err:
        Mul.apply(Tensor(np.ones(2)), np.ones(2))
    assert err.value.argument == "inputs[1]" and "Tensor(" in err.value.hint


def test_squeeze_unsqueeze_var_and_std_are_tensor_methods_matching_torch():
    data = np.random.default_rng(0).normal(size=(3, 1, 4))
    t, tt = Tensor(data.copy(), requires_grad=True), torch.tensor(data, requires_grad=True)
    ours = t.squeeze(1).unsqueeze(0).var(axis=2).sum() + t.std()
    theirs = tt.squeeze(1).unsqueeze(0).var(dim=2).sum() + tt.std()
    _close(ours.data, theirs.detach().numpy())
    ours.backward()
    theirs.backward()
    _close(t.grad, tt.grad.numpy())


def test_a_hook_returning_a_wrong_shape_is_named_not_the_op():
    from backcheck.nn import ShapeError

    x = Tensor(np.ones(5), requires_grad=True)
    y = x * 2.0

    def halve_and_sum(g):
        return g.sum(keepdims=True) / 2

    y.register_hook(halve_and_sum)
    with pytest.raises(ShapeError) as err:
        y.sum().backward()
    assert "halve_and_sum" in str(err.value) and "(1,)" in str(err.value) and err.value.hint


def test_loading_identical_or_other_parameters_leaves_a_graph_differentiable():
    """blame() puts the model back with load_state_dict between a forward and its backward: the same values are
    no write; nor is a partial load of parameters the graph never read."""
    from backcheck.nn import Linear, Sequential
    from backcheck.nn.check import blame

    model = Sequential(Linear(3, 4), Linear(4, 2))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    loss = model(Tensor(x)).sum()
    assert blame(model, x, np.arange(5) % 2).ok
    model.load_state_dict(model.state_dict())
    loss.backward(retain_graph=True)
    assert model[0].weight.grad is not None
    enc = Linear(3, 3)
    head = Linear(3, 2)
    used = enc(Tensor(x)).sum()
    head.load_state_dict({k: v + 1 for k, v in head.state_dict().items()}, strict=False)
    used.backward()  # the graph read enc only
    assert enc.weight.grad is not None


def test_a_check_of_a_function_returning_an_nn_loss_that_requires_grad_says_how_to_read_it():
    import backcheck
    from backcheck.errors import NotScalarError
    from backcheck.nn import Linear

    layer = Linear(3, 1)

    def loss(x):
        return (layer(Tensor(x)) ** 2).sum()  # a Tensor requiring grad: the weights feed it

    with pytest.raises(NotScalarError) as err:
        backcheck.check(loss, np.ones((2, 3), dtype=np.float32), lambda x: np.zeros_like(x))
    assert ".item()" in err.value.hint and "check_module" in err.value.hint
