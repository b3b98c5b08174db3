"""Every op of backcheck.nn against torch.autograd in float64, over Hypothesis-drawn shapes.

Preconditions keep inputs off kinks and ties where the derivative is not unique: relu, abs,
leaky_relu and clip inputs are away from their kinks, max/min/max_pool inputs have distinct values,
log/sqrt/pow bases are positive.
"""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.nn import Tensor
from backcheck.nn import functional as F

torch = pytest.importorskip("torch")
tF = pytest.importorskip("torch.nn.functional")
hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
hnp = pytest.importorskip("hypothesis.extra.numpy")
assume, given, settings = hypothesis.assume, hypothesis.given, hypothesis.settings
_util = pytest.importorskip("nn_testutil")  # the shared helpers (they import torch and hypothesis)
away_from_zero, check_against_torch, distinct, seeds = (
    _util.away_from_zero, _util.check_against_torch, _util.distinct, _util.seeds
)

FEW = settings(max_examples=15, deadline=None)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
pair_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)


def normal(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype=np.float64)


# ---------------------------------------------------------------------- elementwise binary
@FEW
@given(pair_shapes, seeds, st.sampled_from(["add", "sub", "mul", "div"]))
def test_binary_broadcasting(shapes2, seed, op):
    (sa, sb), _ = shapes2
    a = normal(seed, sa)
    b = normal(seed + 1, sb)
    if op == "div":
        b = away_from_zero(b, 0.5)
    fns = {
        "add": (lambda x, y: x + y, lambda x, y: x + y),
        "sub": (lambda x, y: x - y, lambda x, y: x - y),
        "mul": (lambda x, y: x * y, lambda x, y: x * y),
        "div": (lambda x, y: x / y, lambda x, y: x / y),
    }
    check_against_torch(*fns[op], [a, b], grad_seed=seed)


@FEW
@given(pair_shapes, seeds)
def test_pow_tensor_base_and_exponent(shapes2, seed):
    (sa, sb), _ = shapes2
    base = np.abs(normal(seed, sa)) + 0.5
    expo = normal(seed + 1, sb)
    check_against_torch(lambda x, y: x**y, lambda x, y: x**y, [base, expo], grad_seed=seed)


@FEW
@given(shapes, seeds, st.sampled_from([2, 3, -1, 0.5, 1.5]))
def test_pow_scalar_exponent(shape, seed, p):
    x = np.abs(normal(seed, shape)) + 0.5
    check_against_torch(lambda t: t**p, lambda t: t**p, [x], grad_seed=seed)


@FEW
@given(shapes, seeds)
def test_scalar_operands_and_reflected_ops(shape, seed):
    x = away_from_zero(normal(seed, shape), 0.5)
    check_against_torch(
        lambda t: (2.0 - t) * 3.0 / t + 1.0 - (-t),
        lambda t: (2.0 - t) * 3.0 / t + 1.0 - (-t),
        [x],
        grad_seed=seed,
    )
    check_against_torch(lambda t: 2.0**t, lambda t: 2.0**t, [x], grad_seed=seed)


# ---------------------------------------------------------------------- matmul and linear
@FEW
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 4),
    st.lists(st.integers(1, 3), max_size=2),
    seeds,
    st.booleans(),
)
def test_matmul_batched(n, k, m, batch, seed, broadcast_b):
    a = normal(seed, (*batch, n, k))
    b = normal(seed + 1, (k, m) if broadcast_b else (*batch, k, m))
    check_against_torch(lambda x, y: x @ y, lambda x, y: x @ y, [a, b], grad_seed=seed)


@FEW
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    seeds,
    st.sampled_from(["vec-mat", "mat-vec", "vec-vec", "batch-vec"]),
)
def test_matmul_1d_operands(n, k, seed, kind):
    shapes_ = {
        "vec-mat": ((k,), (k, n)),
        "mat-vec": ((n, k), (k,)),
        "vec-vec": ((k,), (k,)),
        "batch-vec": ((2, n, k), (k,)),
    }[kind]
    a, b = normal(seed, shapes_[0]), normal(seed + 1, shapes_[1])
    check_against_torch(F.matmul, torch.matmul, [a, b], grad_seed=seed)


@FEW
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 5), seeds, st.booleans())
def test_linear(lead, out_features, seed, bias):
    x = normal(seed, tuple(lead))
    w = normal(seed + 1, (out_features, lead[-1]))
    inputs = [x, w] + ([normal(seed + 2, (out_features,))] if bias else [])
    check_against_torch(F.linear, tF.linear, inputs, grad_seed=seed)


# ---------------------------------------------------------------------- reductions
def _axis_strategy(ndim: int):
    return st.one_of(
        st.none(),
        st.integers(-ndim, ndim - 1),
        st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
    )


@FEW
@given(st.data(), shapes, seeds, st.booleans(), st.sampled_from(["sum", "mean", "max", "min", "logsumexp"]))
def test_reductions(data, shape, seed, keepdims, op):
    axis = data.draw(_axis_strategy(len(shape)))
    x = distinct(np.random.default_rng(seed), shape) if op in ("max", "min") else normal(seed, shape)
    dims = tuple(range(len(shape))) if axis is None else axis
    torch_fns = {
        "sum": lambda t: t.sum(dim=dims, keepdim=keepdims),
        "mean": lambda t: t.mean(dim=dims, keepdim=keepdims),
        "max": lambda t: t.amax(dim=dims, keepdim=keepdims),
        "min": lambda t: t.amin(dim=dims, keepdim=keepdims),
        "logsumexp": lambda t: torch.logsumexp(t, dim=dims, keepdim=keepdims),
    }
    check_against_torch(lambda t: getattr(F, op)(t, axis, keepdims), torch_fns[op], [x], grad_seed=seed)


def test_max_splits_gradient_evenly_among_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    t = torch.tensor(x.data, requires_grad=True)
    t.amax(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy())


# ---------------------------------------------------------------------- unary and activations
UNARY = {
    "exp": (F.exp, torch.exp, None),
    "log": (F.log, torch.log, "positive"),
    "sqrt": (F.sqrt, torch.sqrt, "positive"),
    "abs": (F.abs, torch.abs, "kink"),
    "tanh": (F.tanh, torch.tanh, None),
    "sigmoid": (F.sigmoid, torch.sigmoid, None),
    "relu": (F.relu, torch.relu, "kink"),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), lambda t: tF.leaky_relu(t, 0.1), "kink"),
    "gelu_exact": (lambda t: F.gelu(t), lambda t: tF.gelu(t), None),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), lambda t: tF.gelu(t, approximate="tanh"), None),
    "softplus": (
        lambda t: F.softplus(t, beta=2.0, threshold=3.0),
        lambda t: tF.softplus(t, beta=2.0, threshold=3.0),
        "softplus",
    ),
    "clip": (lambda t: F.clip(t, -0.5, 0.7), lambda t: torch.clamp(t, -0.5, 0.7), "clip"),
    "neg": (F.neg, torch.neg, None),
}


@FEW
@given(shapes, seeds, st.sampled_from(sorted(UNARY)))
def test_unary(shape, seed, name):
    bc_fn, torch_fn, pre = UNARY[name]
    x = normal(seed, shape, 2.0)
    if pre == "positive":
        x = np.abs(x) + 0.1
    elif pre == "kink":
        x = away_from_zero(x)
    elif pre == "clip":
        x = np.where(np.abs(x + 0.5) < 0.05, x + 0.1, x)
        x = np.where(np.abs(x - 0.7) < 0.05, x + 0.1, x)
    elif pre == "softplus":
        x = np.where(np.abs(2 * x - 3.0) < 0.05, x + 0.1, x)  # off the threshold switch
    check_against_torch(bc_fn, torch_fn, [x], grad_seed=seed)


def test_sigmoid_and_softplus_do_not_overflow():
    x = Tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    y = F.sigmoid(x) + F.softplus(x)
    assert np.all(np.isfinite(y.data))
    y.sum().backward()
    assert np.all(np.isfinite(x.grad))


@FEW
@given(pair_shapes, seeds)
def test_where(shapes2, seed):
    (sa, sb), _ = shapes2
    a, b = normal(seed, sa), normal(seed + 1, sb)
    cond = np.asarray(np.random.default_rng(seed).random(np.broadcast_shapes(sa, sb)) > 0.5)
    check_against_torch(
        lambda x, y: F.where(cond, x, y),
        lambda x, y: torch.where(torch.from_numpy(cond), x, y),
        [a, b],
        grad_seed=seed,
    )


# ---------------------------------------------------------------------- shape ops
@FEW
@given(shapes, seeds)
def test_reshape_and_permute(shape, seed):
    x = normal(seed, shape)
    perm = tuple(np.random.default_rng(seed).permutation(len(shape)))
    check_against_torch(
        lambda t: t.permute(perm).reshape(-1) * 2.0,
        lambda t: t.permute(perm).reshape(-1) * 2.0,
        [x],
        grad_seed=seed,
    )
    if len(shape) >= 2:
        check_against_torch(lambda t: t.transpose(0, 1), lambda t: t.transpose(0, 1), [x], grad_seed=seed)
        check_against_torch(
            lambda t: t.T, lambda t: t.permute(*reversed(range(t.dim()))), [x], grad_seed=seed
        )


@FEW
@given(st.integers(2, 6), st.integers(1, 4), seeds)
def test_getitem_slices_and_integer_arrays(n, m, seed):
    x = normal(seed, (n, m))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=5)  # with repeats: gradients must accumulate
    check_against_torch(lambda t: t[idx], lambda t: t[torch.from_numpy(idx)], [x], grad_seed=seed)
    check_against_torch(lambda t: t[1:, ::2], lambda t: t[1:, ::2], [x], grad_seed=seed)
    check_against_torch(lambda t: t[-1], lambda t: t[-1], [x], grad_seed=seed)
    cols = rng.integers(0, m, size=5)
    check_against_torch(
        lambda t: t[idx, cols],
        lambda t: t[torch.from_numpy(idx), torch.from_numpy(cols)],
        [x],
        grad_seed=seed,
    )
    mask = rng.random((n, m)) > 0.3
    assume(mask.any())
    check_against_torch(lambda t: t[mask], lambda t: t[torch.from_numpy(mask)], [x], grad_seed=seed)


@FEW
@given(shapes, st.integers(1, 3), seeds, st.data())
def test_concatenate_and_stack(shape, count, seed, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    arrays = [normal(seed + i, shape[:axis] + (i + 1,) + shape[axis + 1 :]) for i in range(count)]
    check_against_torch(
        lambda *ts: F.concatenate(ts, axis=axis), lambda *ts: torch.cat(ts, dim=axis), arrays, grad_seed=seed
    )
    same = [normal(seed + i, shape) for i in range(count)]
    check_against_torch(
        lambda *ts: F.stack(ts, axis=axis), lambda *ts: torch.stack(ts, dim=axis), same, grad_seed=seed
    )


@FEW
@given(shapes, seeds, st.data())
def test_pad(shape, seed, data):
    widths = [data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in shape]
    x = normal(seed, shape)
    torch_pad = [w for pair in reversed(widths) for w in pair]  # torch lists the last axis first
    check_against_torch(
        lambda t: F.pad(t, widths, value=0.5), lambda t: tF.pad(t, torch_pad, value=0.5), [x], grad_seed=seed
    )


def test_broadcast_to():
    x = normal(0, (3, 1))
    check_against_torch(lambda t: F.broadcast_to(t, (2, 3, 4)), lambda t: t.expand(2, 3, 4), [x])


# ---------------------------------------------------------------------- convolution and pooling
@FEW
@given(
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(3, 6),
    st.integers(3, 6),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(0, 2),
    seeds,
    st.booleans(),
)
def test_conv2d(n, c, f, h, w, k, stride, padding, seed, bias):
    assume(h + 2 * padding >= k and w + 2 * padding >= k)
    x = normal(seed, (n, c, h, w))
    wt = normal(seed + 1, (f, c, k, k))
    inputs = [x, wt] + ([normal(seed + 2, (f,))] if bias else [])
    check_against_torch(
        lambda *a: F.conv2d(*a, stride=stride, padding=padding),
        lambda *a: tF.conv2d(*a, stride=stride, padding=padding),
        inputs,
        grad_seed=seed,
    )


def test_conv2d_rectangular_kernel_large_padding():
    x, w = normal(0, (2, 2, 5, 4)), normal(1, (3, 2, 2, 3))
    check_against_torch(
        lambda a, b: F.conv2d(a, b, stride=(2, 1), padding=(3, 1)),
        lambda a, b: tF.conv2d(a, b, stride=(2, 1), padding=(3, 1)),
        [x, w],
    )


@FEW
@given(
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(2, 6),
    st.integers(2, 6),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 1),
    seeds,
    st.sampled_from(["max", "avg"]),
)
def test_pooling(n, c, h, w, k, stride, padding, seed, kind):
    assume(h + 2 * padding >= k and w + 2 * padding >= k and padding * 2 <= k)
    x = distinct(np.random.default_rng(seed), (n, c, h, w))
    bc = F.max_pool2d if kind == "max" else F.avg_pool2d
    th = tF.max_pool2d if kind == "max" else tF.avg_pool2d
    check_against_torch(
        lambda t: bc(t, k, stride, padding), lambda t: th(t, k, stride, padding), [x], grad_seed=seed
    )


# ---------------------------------------------------------------------- softmax family and losses
@FEW
@given(shapes, seeds, st.data())
def test_softmax_log_softmax(shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = normal(seed, shape, 3.0)
    check_against_torch(lambda t: F.softmax(t, axis), lambda t: torch.softmax(t, axis), [x], grad_seed=seed)
    check_against_torch(
        lambda t: F.log_softmax(t, axis), lambda t: torch.log_softmax(t, axis), [x], grad_seed=seed
    )


@FEW
@given(st.integers(1, 6), st.integers(1, 5), seeds, st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy(n, c, seed, reduction):
    logits = normal(seed, (n, c), 3.0)
    labels = np.random.default_rng(seed).integers(0, c, size=n)
    check_against_torch(
        lambda t, y: F.cross_entropy(t, y, reduction),
        lambda t, y: tF.cross_entropy(t, y, reduction=reduction),
        [logits, labels],
        grad_seed=seed,
    )


@FEW
@given(shapes, seeds, st.sampled_from(["mean", "sum", "none"]))
def test_mse_loss(shape, seed, reduction):
    a, b = normal(seed, shape), normal(seed + 1, shape)
    check_against_torch(
        lambda x, y: F.mse_loss(x, y, reduction),
        lambda x, y: tF.mse_loss(x, y, reduction=reduction),
        [a, b],
        grad_seed=seed,
    )


def test_other_losses():
    from backcheck.nn import losses

    x, y = normal(0, (5, 3)), normal(1, (5, 3))
    check_against_torch(losses.l1_loss, tF.l1_loss, [away_from_zero(x - y) + y, y])
    targets = (np.random.default_rng(0).random((5, 3)) > 0.5).astype(np.float64)
    check_against_torch(
        lambda a: losses.binary_cross_entropy_with_logits(a, targets),
        lambda a: tF.binary_cross_entropy_with_logits(a, torch.from_numpy(targets)),
        [x * 4],
    )
    labels = np.array([0, 2, 1, 1, 0])
    check_against_torch(
        lambda a: losses.nll_loss(F.log_softmax(a), labels),
        lambda a: tF.nll_loss(torch.log_softmax(a, -1), torch.from_numpy(labels)),
        [x],
    )


# ---------------------------------------------------------------------- normalization, dropout, embedding
@FEW
@given(st.integers(2, 5), st.integers(1, 4), st.sampled_from([(), (3,), (2, 3)]), seeds, st.booleans())
def test_batch_norm_functional(n, c, spatial, seed, training):
    x = normal(seed, (n, c, *spatial), 2.0) + 1.0
    w, b = normal(seed + 1, (c,)), normal(seed + 2, (c,))
    rm, rv = normal(seed + 3, (c,)), np.abs(normal(seed + 4, (c,))) + 0.5
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    rm_b, rv_b = rm.copy(), rv.copy()
    check_against_torch(
        lambda a, ww, bb: F.batch_norm(a, rm_b, rv_b, ww, bb, training=training, momentum=0.2, eps=1e-3),
        lambda a, ww, bb: tF.batch_norm(a, rm_t, rv_t, ww, bb, training=training, momentum=0.2, eps=1e-3),
        [x, w, b],
        grad_seed=seed,
        stateless_fn=lambda a, ww, bb: F.batch_norm(
            a, rm.copy(), rv.copy(), ww, bb, training=training, momentum=0.2, eps=1e-3
        ),
    )
    np.testing.assert_allclose(rm_b, rm_t.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv_b, rv_t.numpy(), rtol=1e-12)


@FEW
@given(st.lists(st.integers(1, 4), min_size=1, max_size=2), st.sampled_from([(3,), (2, 3)]), seeds)
def test_layer_norm(lead, norm_shape, seed):
    x = normal(seed, (*lead, *norm_shape), 2.0)
    w, b = normal(seed + 1, norm_shape), normal(seed + 2, norm_shape)
    check_against_torch(
        lambda a, ww, bb: F.layer_norm(a, norm_shape, ww, bb, eps=1e-5),
        lambda a, ww, bb: tF.layer_norm(a, norm_shape, ww, bb, eps=1e-5),
        [x, w, b],
        grad_seed=seed,
    )


@FEW
@given(shapes, seeds, st.sampled_from([0.1, 0.5, 0.9]))
def test_dropout_with_mask_matches_manual_torch(shape, seed, p):
    x = normal(seed, shape)
    mask = F.dropout_mask(shape, p, np.random.default_rng(seed), np.float64)
    assert set(np.unique(mask)) <= {0.0, 1.0 / (1.0 - p)}
    check_against_torch(
        lambda t: F.dropout(t, p, mask=mask), lambda t: t * torch.from_numpy(mask), [x], grad_seed=seed
    )


def test_dropout_eval_is_identity_and_mask_is_kept_on_the_node():
    x = Tensor(np.ones((50, 4)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    y = F.dropout(x, 0.5, rng=np.random.default_rng(0))
    mask = y.ctx.mask
    assert 0.3 < (mask == 0).mean() < 0.7
    y.backward(np.ones(y.shape), retain_graph=True)
    first = x.grad.copy()
    x.grad = None
    y.backward(np.ones(y.shape))  # replayed backward uses the same mask
    np.testing.assert_array_equal(first, x.grad)
    np.testing.assert_array_equal(first, mask)


@FEW
@given(st.integers(1, 6), st.integers(1, 4), st.lists(st.integers(1, 4), min_size=1, max_size=2), seeds)
def test_embedding(num, dim, idx_shape, seed):
    w = normal(seed, (num, dim))
    idx = np.random.default_rng(seed).integers(0, num, size=tuple(idx_shape))
    check_against_torch(
        lambda ww: F.embedding(idx, ww),
        lambda ww: tF.embedding(torch.from_numpy(idx), ww),
        [w],
        grad_seed=seed,
    )


# ---------------------------------------------------------------------- attention
@FEW
@given(
    st.integers(1, 2),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    seeds,
    st.sampled_from(["none", "bool", "causal", "float"]),
)
def test_scaled_dot_product_attention(b, lq, lk, d, dv, seed, mask_kind):
    q, k, v = normal(seed, (b, lq, d)), normal(seed + 1, (b, lk, d)), normal(seed + 2, (b, lk, dv))
    rng = np.random.default_rng(seed)
    mask = None
    if mask_kind == "bool":
        mask = rng.random((lq, lk)) > 0.3
        mask[:, 0] = True  # every query attends to something
    elif mask_kind == "causal":
        mask = np.tril(np.ones((lq, lk), dtype=bool))
        mask[:, 0] = True
    elif mask_kind == "float":
        mask = rng.standard_normal((lq, lk))
    tmask = None if mask is None else torch.from_numpy(mask)
    check_against_torch(
        lambda a, bb, c: F.scaled_dot_product_attention(a, bb, c, mask=mask),
        lambda a, bb, c: tF.scaled_dot_product_attention(a, bb, c, attn_mask=tmask),
        [q, k, v],
        grad_seed=seed,
    )


# ---------------------------------------------------------------------- float32 stays float32
@pytest.mark.parametrize(
    "fn",
    [
        lambda x: F.relu(x).sum(),
        lambda x: F.gelu(x).mean(),
        lambda x: F.cross_entropy(x.reshape(2, 8), np.array([1, 3])),
        lambda x: F.conv2d(x.reshape(1, 1, 4, 4), Tensor(np.ones((2, 1, 3, 3), np.float32)), padding=1).sum(),
        lambda x: F.max_pool2d(x.reshape(1, 1, 4, 4), 2).sum(),
        lambda x: F.batch_norm(x.reshape(4, 4), None, None, training=True).sum(),
        lambda x: (x * 2.0 + 1.0).exp().log().sum(),
    ],
)
def test_float32_in_float32_out(fn):
    x = Tensor(np.random.default_rng(0).standard_normal(16).astype(np.float32), requires_grad=True)
    y = fn(x)
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_max_pool_routes_ties_to_the_first_maximum_like_torch():
    x = np.zeros((1, 2, 4, 4))
    x[0, 1, :2, :2] = [[1.0, 3.0], [3.0, 3.0]]
    check_against_torch(lambda t: F.max_pool2d(t, 2), lambda t: tF.max_pool2d(t, 2), [x])
    check_against_torch(lambda t: F.max_pool2d(t, 3, 1), lambda t: tF.max_pool2d(t, 3, 1), [x])
