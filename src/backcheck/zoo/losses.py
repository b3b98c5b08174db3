"""Loss functions. Each returns a scalar averaged over the batch; ``dout`` is a scalar."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn, sigmoid, softmax, uniform
from backcheck.zoo._registry import Bug, Grads, Layer, one_wrong_element, scale_bug

HUBER_DELTA = 1.0


# --- softmax cross-entropy -----------------------------------------------------------------------


def softmax_cross_entropy_forward(x: np.ndarray, y: np.ndarray) -> np.floating:
    """Mean over the batch of -log softmax(x)[n, y[n]]; x (N, C) scores, y (N,) int labels."""
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(log_probs[np.arange(x.shape[0]), y])


def softmax_cross_entropy_backward(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    """(softmax(x) - onehot(y)) / N."""
    p = softmax(x, axis=1)
    p[np.arange(x.shape[0]), y] -= 1
    return p * (float(dout) / x.shape[0]), None


def _sce_missing_1_over_n(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    p = softmax(x, axis=1)
    p[np.arange(x.shape[0]), y] -= 1
    return p * float(dout), None


def _sce_wrong_sign(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    p = softmax(x, axis=1)
    p[np.arange(x.shape[0]), y] -= 1
    return -p * (float(dout) / x.shape[0]), None


def _sce_forgot_minus_one(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    return softmax(x, axis=1) * (float(dout) / x.shape[0]), None


def _classification_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (5, 4), dtype), "y": rng.integers(0, 4, 5).astype(np.int64)}


SOFTMAX_CROSS_ENTROPY = Layer(
    name="softmax_cross_entropy",
    family="loss",
    forward=softmax_cross_entropy_forward,
    backward=softmax_cross_entropy_backward,
    make_inputs=_classification_inputs,
    loss=True,
    bugs=(
        Bug(
            "missing_1_over_n",
            _sce_missing_1_over_n,
            "gross",
            "The forward averages over the batch but the backward forgets to divide by N.",
        ),
        Bug(
            "wrong_sign",
            _sce_wrong_sign,
            "gross",
            "Returns onehot(y) - softmax(x): the gradient of the negated loss.",
        ),
        Bug(
            "forgot_minus_one",
            _sce_forgot_minus_one,
            "gross",
            "Forgets to subtract 1 at the correct class, returning softmax(x) / N.",
        ),
        scale_bug(softmax_cross_entropy_backward, 5),
    ),
)


# --- mean squared error ---------------------------------------------------------------------------


def mse_forward(pred: np.ndarray, target: np.ndarray) -> np.floating:
    """mean((pred - target)**2) over all elements."""
    r = pred - target
    return np.mean(r * r)


def mse_backward(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    """2 (pred - target) / size, and its negative for the target."""
    g = (pred - target) * (2.0 * float(dout) / pred.size)
    return g, -g


def _mse_missing_factor_2(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    g = (pred - target) * (float(dout) / pred.size)
    return g, -g


def _mse_target_wrong_sign(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    g = (pred - target) * (2.0 * float(dout) / pred.size)
    return g, g.copy()


def _mse_mean_over_batch_only(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    g = (pred - target) * (2.0 * float(dout) / pred.shape[0])
    return g, -g


def _regression_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"pred": randn(rng, (4, 3), dtype), "target": randn(rng, (4, 3), dtype)}


MSE = Layer(
    name="mse",
    family="loss",
    forward=mse_forward,
    backward=mse_backward,
    make_inputs=_regression_inputs,
    loss=True,
    bugs=(
        Bug("missing_factor_2", _mse_missing_factor_2, "gross", "Differentiates r**2 as r instead of 2 r."),
        Bug(
            "wrong_sign",
            _mse_target_wrong_sign,
            "gross",
            "Gives the target the same gradient as the prediction, forgetting the minus sign.",
        ),
        Bug(
            "mean_over_batch_only",
            _mse_mean_over_batch_only,
            "gross",
            "Divides by the batch size N instead of the number of elements N * D.",
        ),
    ),
)


# --- multiclass SVM hinge -------------------------------------------------------------------------


def _margins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hinge margins x_j - x_y + 1, with the correct class set to 0."""
    n = np.arange(x.shape[0])
    m = x - x[n, y][:, None] + 1
    m[n, y] = 0
    return m


def svm_hinge_forward(x: np.ndarray, y: np.ndarray) -> np.floating:
    """Multiclass SVM loss: mean over n of sum_{j != y} max(0, x_j - x_y + 1)."""
    return np.sum(np.maximum(_margins(x, y), 0)) / x.shape[0]


def _svm_grad(
    x: np.ndarray, y: np.ndarray, count_correct: bool = True, zero_correct_margin: bool = True
) -> np.ndarray:
    n = np.arange(x.shape[0])
    m = x - x[n, y][:, None] + 1
    if zero_correct_margin:
        m[n, y] = 0
    mask = (m > 0).astype(x.dtype)
    if count_correct:
        mask[n, y] = -np.sum(mask, axis=1)
    return mask


def svm_hinge_backward(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    """+1/N per positive margin, -count/N at the correct class; a margin of exactly 0 is inactive."""
    return _svm_grad(x, y) * (float(dout) / x.shape[0]), None


def _svm_correct_not_counted(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    return _svm_grad(x, y, count_correct=False) * (float(dout) / x.shape[0]), None


def _svm_missing_1_over_n(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    return _svm_grad(x, y) * float(dout), None


def _svm_correct_in_count(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    return _svm_grad(x, y, zero_correct_margin=False) * (float(dout) / x.shape[0]), None


def _svm_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = randn(rng, (5, 4), np.float64)
    y = rng.integers(0, 4, 5).astype(np.int64)
    n = np.arange(5)
    m = x - x[n, y][:, None] + 1
    near = (np.abs(m) < 0.1) & (np.arange(4)[None, :] != y[:, None])
    x = x + near * np.where(m >= 0, 0.2, -0.2)  # push margins away from 0; x_y itself is untouched
    return {"x": x.astype(dtype), "y": y}


def _svm_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _svm_inputs(rng, dtype)
    x, y = inputs["x"], inputs["y"]
    for n in range(3):  # x_j - x_y + 1 == -0.5 - 0.5 + 1 == 0 exactly
        x[n, y[n]] = 0.5
        x[n, (y[n] + 1) % 4] = -0.5
    return inputs


SVM_HINGE = Layer(
    name="svm_hinge",
    family="loss",
    forward=svm_hinge_forward,
    backward=svm_hinge_backward,
    make_inputs=_svm_inputs,
    kinks=_svm_kinks,
    loss=True,
    bugs=(
        Bug(
            "correct_class_not_counted",
            _svm_correct_not_counted,
            "gross",
            "Forgets the -count term at the correct class: x_y appears in every margin.",
        ),
        Bug("missing_1_over_n", _svm_missing_1_over_n, "gross", "Forgets to divide the gradient by N."),
        Bug(
            "correct_class_in_margin_count",
            _svm_correct_in_count,
            "gross",
            "Does not zero the correct class's own margin (always 1) before counting positive margins.",
        ),
    ),
)


# --- binary hinge ---------------------------------------------------------------------------------


def hinge_binary_forward(x: np.ndarray, y: np.ndarray) -> np.floating:
    """mean(max(0, 1 - y x)) with int labels y in {-1, +1}."""
    return np.mean(np.maximum(1 - y.astype(x.dtype) * x, 0))


def hinge_binary_backward(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    """-y / size where the margin 1 - y x is positive (0 where it is exactly 0)."""
    ys = y.astype(x.dtype)
    return -ys * (1 - ys * x > 0) * (float(dout) / x.size), None


def _hinge_missing_1_over_n(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    ys = y.astype(x.dtype)
    return -ys * (1 - ys * x > 0) * float(dout), None


def _hinge_active_set_inverted(dout: float, x: np.ndarray, y: np.ndarray) -> Grads:
    ys = y.astype(x.dtype)
    return -ys * (1 - ys * x < 0) * (float(dout) / x.size), None


def _hinge_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    y = np.where(rng.random(8) < 0.5, -1, 1).astype(np.int64)
    margin = np.where(rng.random(8) < 0.5, -1.0, 1.0) * rng.uniform(0.1, 1.5, 8)  # 1 - y x, away from 0
    x = y * (1 - margin)
    return {"x": x.astype(dtype), "y": y}


def _hinge_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _hinge_inputs(rng, dtype)
    inputs["x"][:3] = inputs["y"][:3]  # y x == 1 exactly
    return inputs


HINGE_BINARY = Layer(
    name="hinge_binary",
    family="loss",
    forward=hinge_binary_forward,
    backward=hinge_binary_backward,
    make_inputs=_hinge_inputs,
    kinks=_hinge_kinks,
    loss=True,
    bugs=(
        Bug(
            "missing_1_over_n",
            _hinge_missing_1_over_n,
            "gross",
            "Forgets to divide by the number of examples.",
        ),
        Bug(
            "active_set_inverted",
            _hinge_active_set_inverted,
            "gross",
            "Passes the gradient where the margin is satisfied instead of where it is violated.",
        ),
    ),
)


# --- binary cross-entropy with logits -------------------------------------------------------------


def bce_with_logits_forward(x: np.ndarray, t: np.ndarray) -> np.floating:
    """mean(max(x, 0) - x t + log(1 + exp(-|x|))) with soft targets t in [0, 1]."""
    return np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))


def bce_with_logits_backward(dout: float, x: np.ndarray, t: np.ndarray) -> Grads:
    """(sigmoid(x) - t) / size for the logits, -x / size for the targets."""
    scale = float(dout) / x.size
    return (sigmoid(x) - t) * scale, -x * scale


def _bce_wrong_sign(dout: float, x: np.ndarray, t: np.ndarray) -> Grads:
    scale = float(dout) / x.size
    return (t - sigmoid(x)) * scale, -x * scale


def _bce_missing_1_over_n(dout: float, x: np.ndarray, t: np.ndarray) -> Grads:
    scale = float(dout)
    return (sigmoid(x) - t) * scale, -x * scale


def _bce_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (4, 3), dtype, scale=2.0), "t": uniform(rng, (4, 3), dtype, 0.0, 1.0)}


BCE_WITH_LOGITS = Layer(
    name="bce_with_logits",
    family="loss",
    forward=bce_with_logits_forward,
    backward=bce_with_logits_backward,
    make_inputs=_bce_inputs,
    loss=True,
    bugs=(
        Bug(
            "wrong_sign",
            _bce_wrong_sign,
            "gross",
            "Returns t - sigmoid(x) for the logits: the sign is flipped.",
        ),
        Bug(
            "missing_1_over_n", _bce_missing_1_over_n, "gross", "Forgets to divide by the number of elements."
        ),
        scale_bug(bce_with_logits_backward, 3),
    ),
)


# --- huber ----------------------------------------------------------------------------------------


def huber_forward(pred: np.ndarray, target: np.ndarray) -> np.floating:
    """Mean Huber loss with delta = 1: quadratic for |r| <= delta, linear beyond."""
    r = pred - target
    a = np.abs(r)
    return np.mean(np.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA)))


def huber_backward(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    """clip(r, -delta, delta) / size."""
    g = np.clip(pred - target, -HUBER_DELTA, HUBER_DELTA) * (float(dout) / pred.size)
    return g, -g


def _huber_missing_clip(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    g = (pred - target) * (float(dout) / pred.size)
    return g, -g


def _huber_swapped_regions(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    r = pred - target
    g = np.where(np.abs(r) <= HUBER_DELTA, HUBER_DELTA * np.sign(r), r) * (float(dout) / pred.size)
    return g, -g


def _huber_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    u = rng.uniform(0.1, 1.7, (4, 3))
    magnitude = np.where(u < 0.9, u, u + 0.2)  # |r| in [0.1, 0.9) or [1.1, 1.9): away from the threshold
    r = np.where(rng.random((4, 3)) < 0.5, -1.0, 1.0) * magnitude
    target = rng.standard_normal((4, 3))
    return {"pred": (target + r).astype(dtype), "target": target.astype(dtype)}


def _huber_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    """|r| == delta exactly. Huber is C1 there (the second derivative jumps), so it is a mild kink."""
    inputs = _huber_inputs(rng, dtype)
    target = (rng.integers(-8, 8, (4, 3)) / 8).astype(dtype)  # dyadic: target +- 1 is exact
    pred = inputs["pred"] - inputs["target"] + target
    pred.reshape(-1)[::3] = target.reshape(-1)[::3] + HUBER_DELTA
    pred.reshape(-1)[1::3] = target.reshape(-1)[1::3] - HUBER_DELTA
    return {"pred": pred, "target": target}


HUBER = Layer(
    name="huber",
    family="loss",
    forward=huber_forward,
    backward=huber_backward,
    make_inputs=_huber_inputs,
    kinks=_huber_kinks,
    loss=True,
    bugs=(
        Bug("missing_clip", _huber_missing_clip, "gross", "Uses the quadratic-region gradient r everywhere."),
        Bug(
            "swapped_regions",
            _huber_swapped_regions,
            "gross",
            "Uses the linear-region gradient inside the threshold and r outside.",
        ),
        one_wrong_element(huber_backward),
    ),
)


# --- l1 -------------------------------------------------------------------------------------------


def l1_forward(pred: np.ndarray, target: np.ndarray) -> np.floating:
    """mean(|pred - target|)."""
    return np.mean(np.abs(pred - target))


def l1_backward(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    """sign(pred - target) / size (0 where pred == target)."""
    g = np.sign(pred - target) * (float(dout) / pred.size)
    return g, -g


def _l1_missing_1_over_n(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    g = np.sign(pred - target) * float(dout)
    return g, -g


def _l1_target_wrong_sign(dout: float, pred: np.ndarray, target: np.ndarray) -> Grads:
    g = np.sign(pred - target) * (float(dout) / pred.size)
    return g, g.copy()


def _l1_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    target = rng.standard_normal((4, 3))
    r = np.where(rng.random((4, 3)) < 0.5, -1.0, 1.0) * rng.uniform(0.1, 1.5, (4, 3))
    return {"pred": (target + r).astype(dtype), "target": target.astype(dtype)}


def _l1_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _l1_inputs(rng, dtype)
    inputs["pred"].reshape(-1)[::3] = inputs["target"].reshape(-1)[::3]
    return inputs


L1 = Layer(
    name="l1",
    family="loss",
    forward=l1_forward,
    backward=l1_backward,
    make_inputs=_l1_inputs,
    kinks=_l1_kinks,
    loss=True,
    bugs=(
        Bug(
            "missing_1_over_n", _l1_missing_1_over_n, "gross", "Forgets to divide by the number of elements."
        ),
        Bug("wrong_sign", _l1_target_wrong_sign, "gross", "Gives the target +sign(r) instead of -sign(r)."),
        scale_bug(l1_backward, 5),
    ),
)

LAYERS: tuple[Layer, ...] = (
    SOFTMAX_CROSS_ENTROPY,
    MSE,
    SVM_HINGE,
    HINGE_BINARY,
    BCE_WITH_LOGITS,
    HUBER,
    L1,
)
