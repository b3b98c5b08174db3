"""Edge cases of backcheck.nn against torch: negative axes, the tails of sigmoid, pow at 0, fully masked
attention rows, empty axes, -inf pooling windows, 0-d parameters in optimizers, non-finite losses in
``fit``, dropout seeding, and the warnings and messages of intended forward results."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from backcheck import nn
from backcheck.nn import Tensor
from backcheck.nn import functional as F
from backcheck.nn.errors import ArgumentError, GraphError, NNError, NonFiniteLossError, ShapeError
from backcheck.nn.higher import grad as higher_grad

torch = pytest.importorskip("torch")
tF = pytest.importorskip("torch.nn.functional")
_util = pytest.importorskip("nn_testutil")  # the shared helpers (they import torch and hypothesis)
check_against_torch, check_with_backcheck = _util.check_against_torch, _util.check_with_backcheck

DTYPES = (np.float32, np.float64)
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def torch_leaf(a: np.ndarray):
    return torch.tensor(a, requires_grad=True)


# ---------------------------------------------------------------------- permute with negative axes
@pytest.mark.parametrize(
    ("shape", "axes"),
    [((3, 3), (-1, 0)), ((2, 3, 4), (0, -1, 1)), ((2, 3, 4), (-1, -3, -2)), ((2, 3, 4, 5), (-2, 0, -1, 1))],
)
def test_permute_negative_axes_gradient_matches_torch(shape, axes):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape)
    w = rng.standard_normal(np.transpose(a, axes).shape)
    for call in (lambda t: t.permute(*axes), lambda t: t.transpose(tuple(axes))):
        x, xt = Tensor(a.copy(), requires_grad=True), torch_leaf(a)
        (call(x) * Tensor(w)).sum().backward()
        (xt.permute(*axes) * torch.tensor(w)).sum().backward()
        np.testing.assert_array_equal(x.grad, xt.grad.numpy())


def test_permute_negative_axes_double_backward_matches_torch():
    a = np.arange(6.0).reshape(2, 3) / 7
    w = np.arange(6.0).reshape(3, 2) + 1
    x, xt = Tensor(a.copy(), requires_grad=True), torch_leaf(a)
    (g,) = higher_grad((x.permute(-1, 0) ** 2 * Tensor(w)).sum(), [x])
    (gt,) = torch.autograd.grad((xt.permute(-1, 0) ** 2 * torch.tensor(w)).sum(), [xt], create_graph=True)
    np.testing.assert_allclose(g.data, gt.detach().numpy(), rtol=4 * eps(np.float64))
    (h,) = higher_grad(g.sum(), [x])
    (ht,) = torch.autograd.grad(gt.sum(), [xt])
    np.testing.assert_allclose(h.data, ht.numpy(), rtol=4 * eps(np.float64))


@pytest.mark.parametrize("axes", [(0, 0), (0, 2), (-3, 1), (0,)])
def test_permute_rejects_non_permutations_with_a_typed_error(axes):
    with pytest.raises(ShapeError, match="not a permutation") as info:
        Tensor(np.zeros((2, 3))).permute(*axes)
    assert info.value.hint


# ---------------------------------------------------------------------- sigmoid and softplus tails
NEG_TAIL = np.array([-80.0, -40.0, -20.0, -17.5, -10.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 10.0, 30.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_keeps_relative_precision_in_the_negative_tail(dtype):
    x = NEG_TAIL.astype(dtype)
    if dtype == np.float64:
        x = np.concatenate([x, [-300.0, -700.0]])
    ref = torch.sigmoid(torch.tensor(x, dtype=torch.float64)).numpy()  # the exact sigmoid of the rounded x
    got = F.sigmoid(Tensor(x)).data
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref, rtol=4 * eps(dtype), atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_sigmoid_is_finite_with_torch_gradient_far_in_the_tail(dtype):
    x = np.array([-20.0, -40.0, -60.0], dtype=dtype)
    t = Tensor(x, requires_grad=True)
    F.log(F.sigmoid(t)).sum().backward()
    tt = torch_leaf(x)
    torch.log(torch.sigmoid(tt)).sum().backward()
    np.testing.assert_allclose(F.log(F.sigmoid(Tensor(x))).data, np.log(torch.sigmoid(tt).detach().numpy()))
    assert np.isfinite(t.grad).all()
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=4 * eps(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_gradient_keeps_relative_precision_in_the_negative_tail(dtype):
    x = NEG_TAIL.astype(dtype)
    for beta in (1.0, 2.0):
        t = Tensor(x, requires_grad=True)
        F.softplus(t, beta=beta).sum().backward()
        ref = torch.sigmoid(beta * torch.tensor(x.astype(np.float64))).numpy()
        ref = np.where(beta * x > 20, 1.0, ref).astype(dtype)  # below dtype's range it is 0 on both sides
        np.testing.assert_allclose(t.grad, ref, rtol=8 * eps(dtype), atol=float(np.finfo(dtype).tiny))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_softplus_raise_no_warnings_at_extreme_inputs(dtype):
    x = np.array([-np.inf, -1e30, -1000.0, 0.0, 1000.0, 1e30, np.inf], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = Tensor(x, requires_grad=True)
        (F.sigmoid(t).sum() + F.softplus(t).sum()).backward()
        out = F.sigmoid(Tensor(x)).data
    np.testing.assert_array_equal(out, torch.sigmoid(torch.tensor(x)).numpy())


# ---------------------------------------------------------------------- pow at base 0
@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_gradients_at_base_zero_match_torch(dtype):
    base = np.array([0.0, 0.0, 0.0, 0.0, 2.0, 0.5], dtype=dtype)
    expo = np.array([0.0, 1.0, 2.0, 0.5, 0.0, 3.0], dtype=dtype)
    a, b = Tensor(base, requires_grad=True), Tensor(expo, requires_grad=True)
    (a**b).sum().backward()
    at, bt = torch_leaf(base), torch_leaf(expo)
    (at**bt).sum().backward()
    np.testing.assert_allclose(a.grad, at.grad.numpy(), rtol=4 * eps(dtype))
    np.testing.assert_allclose(b.grad, bt.grad.numpy(), rtol=4 * eps(dtype))
    assert np.isfinite(b.grad).all()  # d(0**0.5)/da is inf, as torch


def test_pow_double_backward_rule_at_base_zero_matches_torch():
    base, expo = np.array([0.0, 0.0, 0.0, 2.0, 0.5]), np.array([0.0, 1.0, 2.0, 0.0, 3.0])
    a, b = Tensor(base, requires_grad=True), Tensor(expo, requires_grad=True)
    ours = higher_grad((a**b).sum(), [a, b])
    at, bt = torch_leaf(base), torch_leaf(expo)
    theirs = torch.autograd.grad((at**bt).sum(), [at, bt], create_graph=True)
    for mine, ref in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine.data, ref.detach().numpy(), rtol=4 * eps(np.float64))


def test_pow_with_scalar_zero_exponent_at_zero_has_zero_gradient():
    x = Tensor(np.array([0.0, 1.0, -2.0]), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


# ---------------------------------------------------------------------- attention with a fully masked row
def _sdpa_inputs(dtype):
    rng = np.random.default_rng(3)
    return [rng.standard_normal(s).astype(dtype) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 6))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_row_gives_zero_output_and_finite_gradients_as_torch(dtype, kind):
    keep = np.ones((3, 5), dtype=bool)
    keep[1] = False  # query 1 may attend to nothing
    keep[2, :2] = False
    mask = keep if kind == "bool" else np.where(keep, 0.0, -np.inf).astype(dtype)
    arrays = _sdpa_inputs(dtype)
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch_leaf(a) for a in arrays]
    g = np.random.default_rng(4).standard_normal((2, 3, 6)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = F.scaled_dot_product_attention(*ours, mask=mask)
        out.backward(g)
    tout = tF.scaled_dot_product_attention(*theirs, attn_mask=torch.from_numpy(mask))
    tout.backward(torch.from_numpy(g))
    tol = dict(rtol=100 * eps(dtype), atol=100 * eps(dtype))
    np.testing.assert_array_equal(out.data[:, 1], 0)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), **tol)
    for mine, ref in zip(ours, theirs, strict=True):
        assert np.isfinite(mine.grad).all()
        np.testing.assert_allclose(mine.grad, ref.grad.numpy(), **tol)


def test_softmax_of_a_fully_masked_row_stays_nan_as_torch_without_warnings():
    x = np.array([[-np.inf, -np.inf, -np.inf], [1.0, -np.inf, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        soft, logsoft = F.softmax(Tensor(x)).data, F.log_softmax(Tensor(x)).data
    np.testing.assert_allclose(soft, torch.softmax(torch.tensor(x), -1).numpy(), equal_nan=True)
    np.testing.assert_allclose(logsoft, torch.log_softmax(torch.tensor(x), -1).numpy(), equal_nan=True)
    assert np.isnan(soft[0]).all() and np.isnan(logsoft[0]).all()


# ---------------------------------------------------------------------- empty axes and malformed axes
@pytest.mark.parametrize("shape", [(3, 0), (0, 3), (2, 0, 4)])
def test_softmax_family_over_empty_axes_matches_torch(shape):
    a = np.zeros(shape)
    for axis in range(len(shape)):
        for name in ("softmax", "log_softmax", "logsumexp"):
            x, xt = Tensor(a.copy(), requires_grad=True), torch_leaf(a)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                out = getattr(F, name)(x, axis)
                out.sum().backward()
            tout = getattr(torch, name)(xt, axis)
            tout.sum().backward()
            assert out.shape == tuple(tout.shape)
            np.testing.assert_array_equal(out.data, tout.detach().numpy())
            assert x.grad.shape == shape


def test_max_and_min_reduce_a_non_empty_axis_of_an_empty_tensor_as_torch():
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    for op, top in ((F.max, torch.amax), (F.min, torch.amin)):
        out = op(x, axis=1)
        assert out.shape == tuple(top(torch.zeros(0, 3), 1).shape) == (0,)
        out.sum().backward()
        assert x.grad.shape == (0, 3)
        with pytest.raises(ShapeError, match="axis 0 of length 0") as info:
            op(x, axis=0)
        assert info.value.hint


@pytest.mark.parametrize("axis", [1.0, "1", (0, 1.0), True, [None]])
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "logsumexp"])
def test_malformed_axis_raises_a_typed_error_with_a_hint(op, axis):
    with pytest.raises(ArgumentError, match=f"{op}: axis must be") as info:
        getattr(F, op)(Tensor(np.ones((2, 3))), axis=axis)
    assert info.value.hint and info.value.argument == "axis"


# ---------------------------------------------------------------------- max_pool2d with -inf windows
@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, 2, 1), (3, 1, 1), ((3, 2), (2, 1), (1, 1)), (2, 1, 1)])
def test_max_pool2d_routes_the_gradient_of_a_minus_inf_window_to_an_input_element_as_torch(kernel, stride, padding):
    rng = np.random.default_rng(5)
    x = rng.permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6).astype(np.float64)
    x[rng.random(x.shape) < 0.7] = -np.inf  # masked feature maps: most windows are all -inf
    _max_pool_as_torch(x, (kernel, stride, padding), rng)


def _max_pool_as_torch(x: np.ndarray, geometry: tuple, rng: np.random.Generator) -> None:
    """max_pool2d's values and gradients (for a random cotangent) against torch's, and no gradient dropped."""
    xb, xt = Tensor(x.copy(), requires_grad=True), torch_leaf(x)
    out = F.max_pool2d(xb, *geometry)
    tout = tF.max_pool2d(xt, *geometry)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(out.data, tout.detach().numpy())
    # overlapping windows add several gradients into one element, in another order than torch's
    tol = 8 * eps(np.float64) * np.abs(g).max() * g.size
    np.testing.assert_allclose(xb.grad, xt.grad.numpy(), rtol=0, atol=tol)
    np.testing.assert_allclose(xb.grad.sum(), g.sum(), rtol=0, atol=tol)  # nothing dropped


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, 2, 0), (3, 1, 1)])
def test_max_pool2d_routes_the_gradient_of_a_nan_window_to_its_nan_as_torch(kernel, stride, padding):
    rng = np.random.default_rng(6)
    x = rng.permutation(2 * 5 * 6).reshape(1, 2, 5, 6).astype(np.float64)
    x[rng.random(x.shape) < 0.2] = np.nan
    _max_pool_as_torch(x, (kernel, stride, padding), rng)


# ---------------------------------------------------------------------- optimizers on 0-d parameters
OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.1)),
    ("Adam", dict(lr=0.1, weight_decay=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.1, weight_decay=0.1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS)
def test_optimizers_step_a_0d_parameter_with_a_numpy_scalar_grad_as_torch(dtype, name, kwargs):
    q = nn.Parameter(np.array(1.5, dtype=dtype))
    qt = torch.nn.Parameter(torch.tensor(1.5, dtype=TORCH_DTYPE[dtype]))
    opt, topt = getattr(nn, name)([q], **kwargs), getattr(torch.optim, name)([qt], **kwargs)
    for step in range(5):
        g = dtype(0.3 * step - 0.5)
        q.grad = g  # a numpy scalar, as a 0-d graph's backward may leave it
        qt.grad = torch.tensor(float(g), dtype=TORCH_DTYPE[dtype])
        opt.step()
        topt.step()
    assert isinstance(q.data, np.ndarray) and q.data.shape == () and q.data.dtype == dtype
    np.testing.assert_allclose(q.data, qt.detach().numpy(), rtol=16 * eps(dtype))


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS)
def test_optimizer_step_with_a_wrong_shaped_grad_raises_a_typed_error(name, kwargs):
    w = nn.Parameter(np.ones((2, 3)))
    w.grad = np.ones(3)
    expected = r"params\[0\]\.grad has shape \(3,\) but the parameter has shape \(2, 3\)"
    with pytest.raises(ShapeError, match=expected) as info:
        getattr(nn, name)([w], **kwargs).step()
    assert info.value.hint
    np.testing.assert_array_equal(w.data, 1.0)


# ---------------------------------------------------------------------- higher.grad on a freed graph
def test_higher_grad_on_a_freed_graph_raises_graph_error_with_the_retain_graph_hint():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(GraphError, match="freed") as info:
        higher_grad(y, [x])
    assert "retain_graph=True" in info.value.hint
    y = (x * x).sum()
    y.backward(retain_graph=True)
    (g,) = higher_grad(y, [x])
    np.testing.assert_array_equal(g.data, 2 * x.data)


# ---------------------------------------------------------------------- fit with a non-finite loss
def _fit_data(n=64, features=8, classes=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, features)).astype(np.float32), rng.integers(0, classes, n)


@pytest.mark.parametrize("check", ["never", "first"])
def test_fit_stops_at_the_first_nan_loss_naming_the_step_and_batch(check):
    X, y = _fit_data()
    X[40, 0] = np.nan
    nn.manual_seed(0)
    model = nn.MLP([8, 16, 3])
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step (\d+) \(epoch 1/2, batch (\d+)/4\)") as info:
        nn.fit(model, (X, y), epochs=2, batch_size=16, check=check, progress=False)
    err = info.value
    # the shuffled batch holding sample 40 is where it stops, in the first epoch
    order = np.concatenate([yb for _, yb in nn.batches(np.arange(64), np.arange(64), 16, rng=np.random.default_rng(0))])
    assert (err.epoch, err.batch, err.step) == (0, int(np.flatnonzero(order == 40)[0]) // 16, err.batch)
    assert "1 NaN or infinite values" in str(err) and "np.isfinite" in err.hint
    assert all(np.isfinite(p.data).all() for p in model.parameters())  # the bad step updated nothing


def test_fit_stops_when_training_diverges_with_a_hint_about_the_learning_rate():
    X, y = _fit_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow itself is real and worth a warning
        with pytest.raises(NonFiniteLossError, match="inputs are finite") as info:
            nn.fit(
                nn.MLP([8, 16, 3]),
                (X, y),
                epochs=3,
                batch_size=16,
                check="never",
                progress=False,
                optimizer=None,
                lr_schedule=lambda epoch: 1e30,
            )
    assert "learning rate" in info.value.hint and not np.isfinite(info.value.loss)
    assert isinstance(info.value, NNError) and isinstance(info.value, FloatingPointError)


# ---------------------------------------------------------------------- dropout seeding
def _masks(model, shape, n=3):
    """The masks every Dropout layer of ``model`` draws on ``n`` training passes."""
    model.train()
    x = Tensor(np.ones(shape, dtype=np.float32))
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    masks = []
    for _ in range(n):
        model(x)
        masks.append(np.concatenate([d.last_mask.ravel() for d in drops]))
    return masks


def test_manual_seed_governs_dropout_layers_made_without_a_seed():
    nn.manual_seed(0)
    first = _masks(nn.Dropout(0.5), (4, 50))
    nn.manual_seed(0)
    again = _masks(nn.Dropout(0.5), (4, 50))
    nn.manual_seed(1)
    other = _masks(nn.Dropout(0.5), (4, 50))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], first[1])  # a new mask every pass
    np.testing.assert_array_equal(
        _masks(nn.Dropout(0.5, seed=3), (4, 50))[0], _masks(nn.Dropout(0.5, seed=3), (4, 50))[0]
    )


def test_mlp_dropout_masks_follow_manual_seed_and_leave_initialization_unchanged():
    def make(seed, p=0.5):
        nn.manual_seed(seed)
        return nn.MLP([8, 32, 32, 2], dropout=p, flatten=False)

    assert not np.array_equal(_masks(make(1), (4, 8))[0], _masks(make(2), (4, 8))[0])
    for a, b in zip(_masks(make(1), (4, 8)), _masks(make(1), (4, 8)), strict=True):
        np.testing.assert_array_equal(a, b)
    # dropout layers take generators spawned from manual_seed's, so the parameters are those without dropout
    for (name, p), (_, q) in zip(make(5).named_parameters(), make(5, p=0.0).named_parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    # an explicit rng governs the dropout generators too, whatever manual_seed was
    nn.manual_seed(7)
    a = nn.MLP([8, 32, 2], dropout=0.5, flatten=False, rng=np.random.default_rng(11))
    nn.manual_seed(8)
    b = nn.MLP([8, 32, 2], dropout=0.5, flatten=False, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(_masks(a, (4, 8))[0], _masks(b, (4, 8))[0])


def test_blame_leaves_dropout_generators_and_masks_as_they_were():
    from backcheck.nn.check import blame

    nn.manual_seed(0)
    model = nn.MLP([8, 16, 16, 3], dropout=0.5, flatten=False, dtype=np.float64)
    X, y = _fit_data(n=6)
    model(Tensor(X.astype(np.float64)))
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    before = [(d.rng.bit_generator.state, d.last_mask.copy()) for d in drops]
    assert blame(model, X.astype(np.float64), y).ok
    for d, (state, mask) in zip(drops, before, strict=True):
        assert d.rng.bit_generator.state == state
        np.testing.assert_array_equal(d.last_mask, mask)


def test_fit_with_check_first_trains_the_same_model_as_check_never():
    X, y = _fit_data(n=48)
    trained = []
    for check in ("first", "never", "every:2"):
        nn.manual_seed(3)
        model = nn.MLP([8, 16, 3], dropout=0.3)
        nn.fit(model, (X, y), epochs=2, batch_size=16, check=check, progress=False)
        trained.append(model.state_dict())
    for other in trained[1:]:
        for name, value in trained[0].items():
            np.testing.assert_array_equal(value, other[name], err_msg=name)


# ---------------------------------------------------------------------- intended forward results are quiet
MASKED_ROWS = np.array([[-np.inf, -np.inf], [0.0, 1.0]])
QUIET = {
    "exp overflow": (lambda: F.exp(Tensor([1000.0, 1.0])), lambda: torch.exp(torch.tensor([1000.0, 1.0]))),
    "log(0)": (lambda: F.log(Tensor([0.0, 1.0])), lambda: torch.log(torch.tensor([0.0, 1.0]))),
    "fully masked softmax": (
        lambda: F.softmax(Tensor(MASKED_ROWS)),
        lambda: torch.softmax(torch.tensor(MASKED_ROWS), -1),
    ),
    "cross_entropy, empty batch": (
        lambda: F.cross_entropy(Tensor(np.zeros((0, 3))), np.zeros(0, np.int64)),
        lambda: tF.cross_entropy(torch.zeros((0, 3), dtype=torch.float64), torch.zeros(0, dtype=torch.int64)),
    ),
    "cross_entropy, a row of -inf logits": (
        lambda: F.cross_entropy(Tensor(MASKED_ROWS), np.array([0, 1]), reduction="none"),
        lambda: tF.cross_entropy(torch.tensor(MASKED_ROWS), torch.tensor([0, 1]), reduction="none"),
    ),
}


@pytest.mark.parametrize("case", sorted(QUIET))
def test_intended_non_finite_forward_results_match_torch_without_warnings(case):
    ours, theirs = QUIET[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ours()
    np.testing.assert_allclose(out.data, theirs().numpy(), equal_nan=True)


def test_unintended_nan_still_warns_and_the_silencing_is_local():
    with pytest.warns(RuntimeWarning, match="invalid value"):
        F.log(Tensor(np.array([-1.0])))
    with pytest.warns(RuntimeWarning, match="invalid value"):
        Tensor(np.array([-1.0])) ** 0.5
    F.exp(Tensor(np.array([1000.0])))
    with pytest.warns(RuntimeWarning, match="overflow"):
        np.exp(np.array([1000.0]))  # numpy's own setting is untouched


def test_cross_entropy_with_zero_classes_says_so():
    with pytest.raises(ShapeError, match="0 classes") as info:
        F.cross_entropy(Tensor(np.zeros((2, 0))), np.zeros(2, np.int64))
    assert "[0, -1]" not in str(info.value) and "out_features" in info.value.hint


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (
            lambda: nn.BatchNorm1d(3),
            (2, 5),
            r"BatchNorm1d\(3\): expects 3 channels \(axis 1\), got an input of shape \(2, 5\)",
        ),
        (lambda: nn.BatchNorm2d(3), (2, 5, 4, 4), r"BatchNorm2d\(3\): expects 3 channels \(axis 1\)"),
        (
            lambda: nn.BatchNorm2d(4),
            (4, 3),
            r"BatchNorm2d\(4\): expected an input of shape \(N, C, H, W\), got shape \(4, 3\)",
        ),
        (lambda: nn.BatchNorm1d(4), (4,), r"BatchNorm1d\(4\): expected an input of shape \(N, C\) or \(N, C, L\)"),
    ],
)
def test_batch_norm_input_errors_name_the_layer_and_its_channels(layer, shape, message):
    module = layer()
    for mode in (module.train, module.eval):
        mode()
        with pytest.raises(ShapeError, match=message) as info:
            module(Tensor(np.zeros(shape, dtype=np.float32)))
        assert info.value.hint and "running_mean" not in str(info.value)


# ---------------------------------------------------------------------- cross_entropy: ignore_index, label_smoothing
CE_CASES = [
    dict(),
    dict(ignore_index=-100),
    dict(ignore_index=2),
    dict(label_smoothing=0.1),
    dict(label_smoothing=1.0),
    dict(ignore_index=-100, label_smoothing=0.25),
]


@pytest.mark.parametrize("kwargs", CE_CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_ignore_index_and_label_smoothing_match_torch(kwargs, reduction):
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((7, 4)) * 3
    labels = np.array([0, 3, -100, 2, 1, -100, 2])
    if kwargs.get("ignore_index", -100) != -100:
        labels[labels == -100] = 1
    ignore = kwargs.get("ignore_index", -100)

    def ours(t):
        return F.cross_entropy(t, labels, reduction, **kwargs)

    def theirs(t):
        return tF.cross_entropy(t, torch.from_numpy(labels), reduction=reduction, **kwargs)

    check_against_torch(ours, theirs, [logits], grad_seed=7)
    if reduction == "none":
        assert (ours(Tensor(logits)).data[labels == ignore] == 0).all()


def test_cross_entropy_label_smoothing_and_ignore_index_pass_backchecks_checker():
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((5, 3))
    labels = np.array([2, -100, 0, 1, -100])

    def loss(x):
        return F.cross_entropy(x, labels, label_smoothing=0.3)

    check_with_backcheck(loss, [logits], np.array(1.3))


def test_cross_entropy_with_every_row_ignored_is_nan_with_zero_gradient_as_torch():
    x = Tensor(np.ones((3, 4)), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(x, np.full(3, -100), label_smoothing=0.2)
        loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(x.grad, 0)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        (dict(ignore_index=1.5), "ignore_index"),
        (dict(label_smoothing=1.5), "label_smoothing"),
        (dict(label_smoothing=-0.1), "label_smoothing"),
    ],
)
def test_cross_entropy_refuses_bad_ignore_index_and_label_smoothing(kwargs, argument):
    for call in (
        lambda: F.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 1]), **kwargs),
        lambda: nn.CrossEntropyLoss(**kwargs),
    ):
        with pytest.raises(ArgumentError) as info:
            call()
        assert info.value.argument == argument


def test_cross_entropy_labels_other_than_ignore_index_are_still_checked():
    with pytest.raises(nn.LabelError, match="label -1 .* out of range for 3 classes"):
        F.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, -1]))
    loss = nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=0.1)
    assert np.isfinite(loss(Tensor(np.zeros((2, 3))), np.array([0, -1])).item())


# ---------------------------------------------------------------------- squeeze, unsqueeze, var, std
@pytest.mark.parametrize(("shape", "axis"), [((2, 3), 0), ((2, 3), 2), ((2, 3), -1), ((2, 3), -3), ((), 0), ((4,), -2)])
def test_unsqueeze_matches_torch_with_gradient(shape, axis):
    a = np.random.default_rng(9).standard_normal(shape)
    check_against_torch(lambda t: F.unsqueeze(t, axis), lambda t: torch.unsqueeze(t, axis), [a], grad_seed=1)


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((2, 1, 3, 1), None), ((2, 1, 3), 1), ((2, 1, 3), 0), ((2, 1, 3), (0, 1)), ((1, 1), -1), ((), None)],
)
def test_squeeze_matches_torch_with_gradient(shape, axis):
    a = np.random.default_rng(10).standard_normal(shape)

    def theirs(t):
        return torch.squeeze(t) if axis is None else torch.squeeze(t, axis)

    check_against_torch(lambda t: F.squeeze(t, axis), theirs, [a], grad_seed=2)


def test_squeeze_and_unsqueeze_refuse_out_of_range_axes():
    for call in (lambda: F.unsqueeze(Tensor(np.zeros((2, 3))), 3), lambda: F.squeeze(Tensor(np.zeros((2, 1))), 2)):
        with pytest.raises(ShapeError, match="out of range") as info:
            call()
        assert info.value.hint
    with pytest.raises(ArgumentError):
        F.unsqueeze(Tensor(np.zeros(2)), 1.0)


@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize(
    ("shape", "axis", "correction", "keepdims"),
    [
        ((5,), None, 1, False),
        ((3, 4), 1, 1, False),
        ((3, 4), 0, 0, True),
        ((2, 3, 4), (0, 2), 1, False),
        ((2, 3, 4), -1, 2, True),
    ],
)
def test_var_and_std_match_torch_with_gradient(op, shape, axis, correction, keepdims):
    a = np.random.default_rng(11).standard_normal(shape)

    def ours(t):
        return getattr(F, op)(t, axis, correction=correction, keepdims=keepdims)

    def theirs(t):
        return getattr(torch, op)(t, dim=axis, correction=correction, keepdim=keepdims)

    check_against_torch(ours, theirs, [a], grad_seed=3)


def test_var_defaults_to_torchs_unbiased_estimate_and_has_no_degrees_of_freedom_like_torch():
    a = np.array([1.0, 2.0, 4.0])
    assert F.var(Tensor(a)).item() == pytest.approx(torch.tensor(a).var().item(), rel=4 * eps(np.float64))
    for x, correction in ((np.array([3.0]), 1), (np.array([1.0, 2.0]), 2)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch warns about the degrees of freedom
            expected = torch.var(torch.tensor(x), correction=correction).numpy()
        np.testing.assert_array_equal(F.var(Tensor(x), correction=correction).data, expected)
    with pytest.raises(ArgumentError, match="correction"):
        F.var(Tensor(a), correction=-1)
    assert F.var(Tensor(a.astype(np.float32))).dtype == np.float32


def test_flatten_refuses_a_start_dim_past_the_input_axes_as_torch():
    """MLP([4, 8, 2]) given one unbatched sample of shape (4,): Flatten(start_dim=1) made it (4, 1) and the
    first Linear complained of an input the user never passed."""
    from backcheck.nn import MLP

    with pytest.raises(ShapeError) as info:
        MLP([4, 8, 2])(Tensor(np.ones(4, dtype=np.float32)))
    assert "x[None]" in info.value.hint and "(4,)" in str(info.value)
    with pytest.raises(IndexError):  # torch's "Dimension out of range"
        torch.flatten(torch.ones(4), start_dim=1)
    x = np.arange(24.0).reshape(2, 3, 4)
    for start in (-3, -1, 0, 1, 2):
        np.testing.assert_array_equal(
            F.flatten(Tensor(x), start).data, torch.flatten(torch.from_numpy(x), start).numpy()
        )


@pytest.mark.parametrize(("call", "argument"), [(lambda t: F.var(t, correction=-1), "correction"),
                                                (lambda t: F.var(t, correction=1.0), "correction"),
                                                (lambda t: F.flatten(t, 1.0), "start_dim")])  # fmt: skip
def test_var_and_flatten_refuse_malformed_arguments_by_name(call, argument):
    with pytest.raises(ArgumentError) as info:
        call(Tensor(np.ones((2, 3))))
    assert info.value.argument == argument and "integer" in str(info.value)


def test_dims_out_of_range_are_refused_and_a_0d_transpose_is_itself():
    # transpose(0, -1) of a 0-d tensor raised a bare ZeroDivisionError; out-of-range dims wrapped modulo ndim
    from backcheck.nn import Tensor
    from backcheck.nn.errors import ShapeError

    assert Tensor(np.array(1.5)).transpose(0, -1).shape == ()
    for call in (
        lambda: Tensor(np.zeros(3)).transpose(0, 5),
        lambda: Tensor(np.zeros((2, 3))).transpose(0, -5),
        lambda: Tensor(np.zeros((2, 3))).flatten(5),
        lambda: Tensor(np.zeros((2, 3, 4))).flatten(-7),
    ):
        with pytest.raises(ShapeError, match="out of range"):
            call()
    assert Tensor(np.zeros((2, 3, 4))).flatten(-2).shape == (2, 12)


def test_an_integer_to_a_negative_integer_power_is_a_typed_error():
    from backcheck.nn import Tensor
    from backcheck.nn.errors import DTypeError

    for exponent in (Tensor(np.array([-1, -2])), -1):
        with pytest.raises(DTypeError, match="negative integer power"):
            Tensor(np.array([2, 3])) ** exponent


def test_an_integer_matrix_takes_the_float_operands_dtype_in_a_product():
    from backcheck.nn import Tensor

    a, b = Tensor(np.ones((2, 3), dtype=np.int64)), Tensor(np.ones((3, 2), dtype=np.float32))
    assert (a @ b).dtype == np.float32 and (b.T @ a.T).dtype == np.float32 and (a * b.T).dtype == np.float32
