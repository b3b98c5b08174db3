"""Values, gradients and accepted inputs of backcheck.nn against torch where they used to differ: BCE with logits
at confident logits, std of a constant slice, reductions of a 0-d tensor, save/load paths, empty shapes."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck import nn
from backcheck.nn import Tensor
from backcheck.nn.losses import binary_cross_entropy_with_logits as bce

torch = pytest.importorskip("torch")
TF = torch.nn.functional

_TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def _within(actual: np.ndarray, expected: np.ndarray, scale: np.ndarray, dt: type) -> None:
    err = np.abs(actual.astype(np.float64) - expected)
    bad = np.flatnonzero(err > 4 * np.finfo(dt).eps * scale)
    assert bad.size == 0, f"elements {bad}: {actual.ravel()[bad]} vs {expected.ravel()[bad]}"


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_bce_with_logits_keeps_the_loss_of_confident_logits(dt):
    """``softplus(x) - x y`` cancelled: float32 loss 0 from x = 15, float64 0 past 20 (torch: 3e-7, 1e-9)."""
    x = np.array([-30.0, -12.0, -1.0, 0.0, 2.0, 9.0, 12.0, 15.0, 20.5, 30.0] * 3)
    y = np.concatenate([np.ones(10), np.zeros(10), np.full(10, 0.3)])
    g = np.linspace(0.5, 1.5, x.size)
    a, t = Tensor(x.astype(dt), requires_grad=True), Tensor(y.astype(dt), requires_grad=True)
    loss = bce(a, t, "none")
    loss.backward(g.astype(dt))
    ref_x, ref_y = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    # float64 reference through torch's logsigmoid (its BCE's float64 loss is 1% off at x = -30, y = 0, and its
    # logits gradient sigmoid(x) - y cancels)
    ref = -(ref_y * TF.logsigmoid(ref_x) + (1 - ref_y) * TF.logsigmoid(-ref_x))
    ref.backward(torch.from_numpy(g))
    # each within 4 units of its dtype's rounding of the terms it sums (relative, where y is 0 or 1)
    sx, smx = 1 / (1 + np.exp(-x)), 1 / (1 + np.exp(x))
    _within(loss.data, ref.detach().numpy(), np.abs((1 - y) * x) + np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x))), dt)
    _within(a.grad, ref_x.grad.numpy(), g * ((1 - y) * sx + y * smx), dt)
    _within(t.grad, ref_y.grad.numpy(), g * np.abs(x), dt)
    torch_bce = TF.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y), reduction="none")
    np.testing.assert_allclose(loss.data, torch_bce.numpy(), rtol=2e-2, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_reductions_match_torch(reduction):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4, 5)) * 4, rng.uniform(size=(4, 5))
    a = Tensor(x, requires_grad=True)
    loss = bce(a, y, reduction)
    loss.backward()
    b = torch.tensor(x, requires_grad=True)
    ref = TF.binary_cross_entropy_with_logits(b, torch.from_numpy(y), reduction=reduction)
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-13)
    np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_std_of_a_constant_slice_has_torchs_zero_gradient(dt):
    """sqrt's backward at a zero deviation was g / (2 * 0), times the zero deviations: NaN for the whole slice."""
    x = np.array([[1.5, 1.5, 1.5], [1.0, 2.0, 4.0], [0.0, 0.0, 0.0]])
    g = np.array([0.7, -1.3, 2.0])
    for axis, keepdims in ((1, False), (None, False), (1, True)):
        a = Tensor(x.astype(dt), requires_grad=True)
        b = torch.tensor(x.astype(dt), requires_grad=True)
        out, ref = a.std(axis, keepdims=keepdims), b.std(axis, keepdim=keepdims) if axis else b.std()
        up = g.reshape(out.shape) if out.ndim else np.asarray(g[0])
        out.backward(up.astype(dt))
        ref.backward(torch.from_numpy(up.astype(dt)))
        tol = 8 * np.finfo(dt).eps
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=tol)
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=tol, atol=tol)
        assert np.isfinite(a.grad).all()


def test_std_of_a_constant_slice_second_order_matches_torch():
    from backcheck.nn import higher

    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    a, b = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (ga,) = higher.grad(a.std(1).sum(), [a])
    (gb,) = torch.autograd.grad(b.std(1).sum(), [b], create_graph=True)
    (ga * ga).sum().backward()
    (gb * gb).sum().backward()
    np.testing.assert_allclose(ga.data, gb.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)


_ZERO_D = {
    "sum": (lambda x, ax, k: x.sum(ax, keepdims=k), lambda x, ax, k: x.sum(ax, keepdim=k)),
    "mean": (lambda x, ax, k: x.mean(ax, keepdims=k), lambda x, ax, k: x.mean(ax, keepdim=k)),
    "max": (lambda x, ax, k: x.max(ax, keepdims=k), lambda x, ax, k: x.amax(ax, keepdim=k)),
    "min": (lambda x, ax, k: x.min(ax, keepdims=k), lambda x, ax, k: x.amin(ax, keepdim=k)),
    "logsumexp": (lambda x, ax, k: x.logsumexp(ax, keepdims=k), lambda x, ax, k: x.logsumexp(ax, keepdim=k)),
    "var": (lambda x, ax, k: x.var(ax, 0, keepdims=k), lambda x, ax, k: x.var(ax, correction=0, keepdim=k)),
    "std": (lambda x, ax, k: x.std(ax, 0, keepdims=k), lambda x, ax, k: x.std(ax, correction=0, keepdim=k)),
    "softmax": (lambda x, ax, k: nn.functional.softmax(x, ax), lambda x, ax, k: torch.softmax(x, ax)),
    "log_softmax": (lambda x, ax, k: nn.functional.log_softmax(x, ax), lambda x, ax, k: torch.log_softmax(x, ax)),
}


@pytest.mark.parametrize("name", sorted(_ZERO_D))
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_a_0d_tensor_reduces_over_axis_0_and_minus_1_as_torch(name, axis, keepdims):
    """torch takes dim 0 and -1 on a 0-d tensor (nothing to reduce); numpy's AxisError/IndexError escaped."""
    ours, theirs = _ZERO_D[name]
    a, b = Tensor(np.array(3.0), requires_grad=True), torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    out, ref = ours(a, axis, keepdims), theirs(b, axis, keepdims)
    out.backward(np.array(0.7))
    ref.backward(torch.tensor(0.7, dtype=torch.float64))
    assert out.shape == tuple(ref.shape) == ()
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-15)


def test_a_0d_tensor_refuses_other_axes_with_a_typed_error():
    from backcheck.nn.errors import ShapeError

    x = Tensor(np.array(3.0))
    for call in (lambda: x.sum(1), lambda: x.max(-2), lambda: nn.functional.softmax(x, 1)):
        with pytest.raises(ShapeError, match="0-d input takes axis 0 or -1"):
            call()


@pytest.mark.parametrize("name", ["checkpoint", "model.pt", "weights.npz"])
def test_save_and_load_round_trip_any_path_as_torch(tmp_path, name):
    """np.savez appended ".npz" to a name without it, so load(the same path) raised FileNotFoundError."""
    import io
    import pathlib

    m = nn.Linear(3, 2, dtype=np.float64)
    for path in (str(tmp_path / name), pathlib.Path(tmp_path / ("p_" + name))):
        torch.save({"w": torch.zeros(1)}, str(path) + ".torch")  # torch keeps the path as given
        assert torch.load(str(path) + ".torch")["w"].shape == (1,)
        m.save(path)
        assert pathlib.Path(path).exists()
        fresh = nn.Linear(3, 2, dtype=np.float64)
        fresh.load(path)
        np.testing.assert_array_equal(fresh.weight.data, m.weight.data)
        np.testing.assert_array_equal(fresh.bias.data, m.bias.data)
    buf = io.BytesIO()
    m.save(buf)
    buf.seek(0)
    fresh = nn.Linear(3, 2, dtype=np.float64)
    fresh.load(buf)
    np.testing.assert_array_equal(fresh.weight.data, m.weight.data)


def test_load_reads_a_file_saved_with_the_old_suffix_and_names_both_paths_when_missing(tmp_path):
    m = nn.Linear(3, 2, dtype=np.float64)
    np.savez(tmp_path / "old", **m.state_dict())  # what save("old") wrote before: old.npz
    fresh = nn.Linear(3, 2, dtype=np.float64)
    fresh.load(str(tmp_path / "old"))
    np.testing.assert_array_equal(fresh.weight.data, m.weight.data)
    with pytest.raises(FileNotFoundError, match="nor"):
        fresh.load(str(tmp_path / "missing"))


def test_flatten_of_an_empty_batch_as_torch():
    """Reshape to (0, -1) cannot infer the -1 in numpy: an empty batch was refused with a ShapeError."""
    x = np.zeros((0, 1, 8, 8), np.float32)
    t = torch.from_numpy(x)
    assert nn.Flatten()(Tensor(x)).shape == tuple(torch.nn.Flatten()(t).shape) == (0, 64)
    assert nn.functional.flatten(Tensor(x)).shape == tuple(torch.flatten(t, 1).shape)
    assert Tensor(x).flatten(1).shape == tuple(t.flatten(1).shape)
    assert Tensor(x).flatten().shape == tuple(t.flatten().shape) == (0,)
    a = Tensor(np.zeros((0, 3, 2)), requires_grad=True)
    nn.functional.flatten(a).sum().backward()
    assert a.grad.shape == (0, 3, 2)
    out = nn.MLP([64, 10])(Tensor(x))
    assert out.shape == (0, 10)


@pytest.mark.parametrize(("xs", "ws"), [((2, 3), (0, 3)), ((2, 0), (4, 0)), ((2, 5, 0), (4, 0)), ((0, 3), (4, 3))])
def test_linear_with_a_zero_size_axis_has_torchs_gradients(xs, ws):
    """Backward reshaped with -1 beside a 0: a bare ValueError."""
    rng = np.random.default_rng(5)
    xv, wv, bv = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0])
    x, w, b = (Tensor(v, requires_grad=True) for v in (xv, wv, bv))
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (xv, wv, bv))
    out, ref = nn.functional.linear(x, w, b), TF.linear(tx, tw, tb)
    g = rng.normal(size=out.shape)
    out.backward(g)
    ref.backward(torch.from_numpy(g))
    assert out.shape == tuple(ref.shape)
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_embedding_of_dimension_0_as_torch():
    w = Tensor(np.zeros((5, 0)), requires_grad=True)
    out = nn.functional.embedding(np.array([[1, 2], [3, 3]]), w)
    out.sum().backward()
    tw = torch.zeros(5, 0, requires_grad=True)
    TF.embedding(torch.tensor([[1, 2], [3, 3]]), tw).sum().backward()
    assert out.shape == (2, 2, 0) and w.grad.shape == tuple(tw.grad.shape)


_UNARY = {
    "exp": (nn.functional.exp, torch.exp),
    "log": (nn.functional.log, torch.log),
    "sqrt": (nn.functional.sqrt, torch.sqrt),
    "tanh": (nn.functional.tanh, torch.tanh),
    "sigmoid": (nn.functional.sigmoid, torch.sigmoid),
}


@pytest.mark.parametrize("name", sorted(_UNARY))
@pytest.mark.parametrize("values", [np.array([1, 2, 7]), np.array([True, False, True])])
@pytest.mark.parametrize("default", [np.float32, np.float64])
def test_float_functions_of_integer_and_bool_tensors_give_the_default_float_dtype(name, values, default):
    """numpy's promotion gave float64 for int64 and float16 for bool; sigmoid(bool) was numpy's bare TypeError."""
    ours, theirs = _UNARY[name]
    before, torch_before = nn.default_dtype(), torch.get_default_dtype()
    nn.set_default_dtype(default)
    torch.set_default_dtype(_TORCH_DTYPE[default])
    try:
        out, ref = ours(Tensor(values)), theirs(torch.from_numpy(values))
    finally:
        nn.set_default_dtype(before)
        torch.set_default_dtype(torch_before)
    assert out.dtype == default and ref.dtype == _TORCH_DTYPE[default]
    np.testing.assert_allclose(out.data, ref.numpy(), rtol=4 * np.finfo(default).eps)


def test_gelu_softplus_of_integers_and_integer_division_give_float32():
    i = np.array([1, -2, 3])
    assert nn.functional.gelu(Tensor(i)).dtype == nn.functional.softplus(Tensor(i)).dtype == np.float32
    for ours, theirs in ((Tensor(i) / 2, torch.from_numpy(i) / 2), (2 / Tensor(i), 2 / torch.from_numpy(i))):
        assert ours.dtype == np.float32 and theirs.dtype == torch.float32
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_cross_entropy_with_class_probability_targets_as_torch(reduction, smoothing, dt):
    """torch takes float targets of the logits' shape; ours refused them with a hint (astype int) that misled."""
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(5, 4)) * 3
    probs = rng.dirichlet(np.ones(4), size=5)
    probs[0] = np.eye(4)[2]  # a one-hot row
    g = rng.normal(size=5) if reduction == "none" else np.array(1.3)
    a, p = Tensor(logits.astype(dt), requires_grad=True), Tensor(probs.astype(dt), requires_grad=True)
    out = nn.functional.cross_entropy(a, p, reduction=reduction, label_smoothing=smoothing)
    out.backward(g.astype(dt))
    b, q = torch.tensor(logits.astype(dt), requires_grad=True), torch.tensor(probs.astype(dt), requires_grad=True)
    ref = TF.cross_entropy(b, q, reduction=reduction, label_smoothing=smoothing)
    ref.backward(torch.tensor(g.astype(dt)))
    tol = 50 * np.finfo(dt).eps
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=tol, atol=tol)


def test_cross_entropy_of_integer_one_hot_rows_says_what_to_pass():
    from backcheck.nn.errors import ShapeError

    with pytest.raises(ShapeError, match="do not match") as info:
        nn.functional.cross_entropy(Tensor(np.zeros((4, 3))), np.eye(3, dtype=np.int64)[[0, 1, 2, 0]])
    assert "argmax(1)" in info.value.hint


def test_check_module_of_a_training_dropout_model_without_a_mask_at_that_shape():
    """A fresh model (or one whose last training forward had another batch size) raised a ShapeError about
    'Dropout.replay'; the check now draws the mask it needs and puts the generators and masks back."""
    from backcheck.nn.check import check_module
    from backcheck.nn.ops import linalg

    x = np.random.default_rng(0).standard_normal((5, 4))
    m = nn.MLP([4, 8, 3], dropout=0.5, dtype=np.float64)
    drops = [d for d in m.modules() if isinstance(d, nn.Dropout)]
    states = [d.rng.bit_generator.state for d in drops]
    assert check_module(m, x).ok
    assert all(d.last_mask is None and d.rng.bit_generator.state == s for d, s in zip(drops, states, strict=True))
    m(Tensor(x[:3]))  # the short last batch of an epoch
    last = [d.last_mask for d in drops]
    assert check_module(m, x).ok
    assert all(d.last_mask is mask for d, mask in zip(drops, last, strict=True))
    orig = linalg.Linear.backward

    def planted(ctx, grad):  # one weight element 1% off
        gx, gw, *rest = orig(ctx, grad)
        gw = gw.copy()
        gw[0, 0] *= 1.01
        return (gx, gw, *rest)

    linalg.Linear.backward = staticmethod(planted)
    try:
        # (its own generator: one drawn from manual_seed's, which the tests before advance, may drop unit 0 of
        # every example, where the planted elements' gradients are 0 and no error can show)
        planted_model = nn.MLP([4, 8, 3], dropout=0.5, dtype=np.float64, rng=np.random.default_rng(0))
        assert not check_module(planted_model, x).ok
    finally:
        linalg.Linear.backward = staticmethod(orig)


def test_replay_without_a_mask_still_refuses_with_a_hint():
    d = nn.Dropout(0.5)
    with d.replay(), pytest.raises(nn.ShapeError, match="no stored mask") as info:
        d(Tensor(np.ones(3)))
    assert "eval()" in info.value.hint


def test_retain_grad_stores_the_gradient_after_the_other_hooks_as_torch():
    """torch (>= 2.0) runs the retain_grad hook last; ours stored the gradient before later hooks changed it."""
    x, xt = Tensor(np.arange(3.0), requires_grad=True), torch.arange(3.0, dtype=torch.float64, requires_grad=True)
    h, ht = x * 2, xt * 2
    h.register_hook(lambda g: g + 1.0)
    ht.register_hook(lambda g: g + 1.0)
    h.retain_grad()
    ht.retain_grad()
    h.retain_grad()  # twice: stored once, as torch
    ht.retain_grad()
    h.register_hook(lambda g: g * 10)
    ht.register_hook(lambda g: g * 10)
    ((h * h).sum() + h.sum()).backward()
    ((ht * ht).sum() + ht.sum()).backward()
    np.testing.assert_array_equal(h.grad, ht.grad.numpy())
    np.testing.assert_array_equal(x.grad, xt.grad.numpy())


def test_bce_with_logits_of_integer_targets_is_in_the_logits_dtype():
    x = Tensor(np.array([1.0, -2.0, 0.5], dtype=np.float32), requires_grad=True)
    loss = bce(x, Tensor(np.array([1, 0, 1])))
    ref = TF.binary_cross_entropy_with_logits(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([1.0, 0.0, 1.0]))
    assert loss.data.dtype == np.float32 and str(ref.dtype) == "torch.float32"
    loss.backward()
    assert x.grad.dtype == np.float32
