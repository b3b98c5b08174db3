"""Neural-network ops with fused backward passes.

softmax, log_softmax, softmax cross-entropy with integer labels, mean squared error, dropout (explicit
mask) and embedding lookup (batch and layer norm are in :mod:`backcheck.nn.ops.norm`).  Fusing them
keeps the backward short and numerically stable: e.g. the gradient
of cross-entropy w.r.t. the logits is just ``softmax - onehot``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.nn.autograd import Context
from backcheck.nn.errors import DTypeError, IndexRangeError, LabelError, ShapeError
from backcheck.nn.ops.reduce import _norm_axis, kept_max
from backcheck.nn.tensor import Function, Tensor, as_tensor
from backcheck.nn.validate import choice, flag, float_array, generator, integer, number, probability

__all__ = [
    "softmax",
    "safe_softmax",
    "log_softmax",
    "cross_entropy",
    "mse_loss",
    "dropout",
    "dropout_mask",
    "embedding",
]

_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(op: str, reduction: Any) -> str:
    """``reduction`` if it is 'mean', 'sum' or 'none', else :class:`~backcheck.nn.errors.ArgumentError`."""
    return choice(op, "reduction", reduction, _REDUCTIONS)


def class_labels(op: str, labels: np.ndarray, classes: int | None) -> None:
    """Refuse labels that are not integers or (when ``classes`` is given) not in ``[0, classes)``."""
    if labels.dtype.kind not in "iu":
        raise LabelError(
            f"{op}: labels must be integers, got dtype {labels.dtype}",
            "labels are class indices in [0, C), e.g. y.astype(np.int64); cross_entropy also takes class "
            "probabilities as a float array of the logits' shape (N, C)",
        )
    if classes is None or not labels.size:
        return
    if classes == 0:
        raise ShapeError(
            f"{op}: the scores have 0 classes (size 0 along the class axis), so no label can be valid",
            "the scores need one column per class; check the out_features of the last layer",
        )
    lo, hi = labels.min(), labels.max()
    if lo < 0 or hi >= classes:
        bad = int(lo) if lo < 0 else int(hi)
        raise LabelError(
            f"{op}: label {bad} (at index {int(np.flatnonzero(labels == bad)[0])}) is out of range for {classes} "
            f"classes; labels must be in [0, {classes - 1}]",
            "the scores need one column per class",
        )


def _axis(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """The axis to normalize over, as reductions read one; for a 0-d input, 0 and -1 (as torch) name no axis at
    all: ``()``."""
    return _norm_axis(op, integer(op, "axis", axis), ndim)


# ---------------------------------------------------------------------- softmax family
class Softmax(Function):
    name = "softmax"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axis: int | tuple[int, ...], safe: bool = False) -> np.ndarray:
        axis = axis if isinstance(axis, tuple) else (axis,)  # () for a 0-d input
        # x - max(x) <= 0; where it overflows to -inf (|x| near the float maximum) exp gives the exact 0
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(x - kept_max(x, axis))
            total = e.sum(axis=axis, keepdims=True)
            # the sum is >= 1 except over a slice of all -inf: 0/0 is NaN there (as torch's softmax),
            # and 0 for the safe softmax of attention (as torch's scaled_dot_product_attention)
            e /= np.where(total == 0, 1, total) if safe else total
        ctx.out, ctx.axis = e, axis
        return e

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        out = ctx.out
        return (out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True)),)


class LogSoftmax(Function):
    name = "log_softmax"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axis: int | tuple[int, ...]) -> np.ndarray:
        axis = axis if isinstance(axis, tuple) else (axis,)  # () for a 0-d input
        # as in Softmax; a log-probability below -max float is -inf, a slice of all -inf is NaN (as torch)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            z = x - kept_max(x, axis)
            z -= np.log(np.exp(z).sum(axis=axis, keepdims=True))
        ctx.out, ctx.axis = z, axis
        return z

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad - np.exp(ctx.out) * grad.sum(axis=ctx.axis, keepdims=True),)


def softmax(x: Any, axis: int = -1) -> Tensor:
    """Softmax along ``axis``: ``exp(x) / sum(exp(x))``, shifted by the maximum for stability.

    Examples
    --------
    >>> softmax(Tensor([0.0, 0.0])).data
    array([0.5, 0.5], dtype=float32)
    """
    x = as_tensor(x)
    float_array("softmax", "input", x.data)
    return Softmax.apply(x, axis=_axis("softmax", axis, x.data.ndim))


def safe_softmax(x: Any, axis: int = -1) -> Tensor:
    """:func:`softmax`, except that a slice of all -inf (a fully masked attention row) gives 0, not NaN,
    and so a zero gradient (torch's safe softmax inside ``scaled_dot_product_attention``).

    Examples
    --------
    >>> safe_softmax(Tensor([[0.0, 0.0], [-np.inf, -np.inf]])).data
    array([[0.5, 0.5],
           [0. , 0. ]], dtype=float32)
    """
    x = as_tensor(x)
    float_array("safe_softmax", "input", x.data)
    return Softmax.apply(x, axis=_axis("safe_softmax", axis, x.data.ndim), safe=True)


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """``x - logsumexp(x, axis)``, computed stably.  Same shape as ``x``."""
    x = as_tensor(x)
    float_array("log_softmax", "input", x.data)
    return LogSoftmax.apply(x, axis=_axis("log_softmax", axis, x.data.ndim))


class SoftmaxCrossEntropy(Function):
    """Fused ``-log softmax(logits)[label]``, with torch's ``ignore_index`` and ``label_smoothing``; backward
    ``(softmax - target) * grad`` where the target is the (smoothed) one-hot row, 0 on ignored rows."""

    name = "cross_entropy"

    @staticmethod
    def forward(
        ctx: Context, logits: np.ndarray, labels: np.ndarray, *, reduction: str, ignore_index: int, smoothing: float
    ) -> np.ndarray:
        _ce_shapes(logits, labels)
        kept = labels != ignore_index
        keep: np.ndarray | None = None  # (the usual batch: no row ignored, nothing to mask)
        safe = labels
        if not kept.all():
            keep, safe = kept, np.where(kept, labels, 0)  # ignored rows pick class 0, then count for nothing
        class_labels("cross_entropy", safe, logits.shape[1])
        float_array("cross_entropy", "logits", logits)
        probs, losses = _ce_rows(logits, safe, smoothing)
        if keep is not None:
            losses = np.where(keep, losses, 0)
        losses = losses.astype(logits.dtype, copy=False)
        ctx.probs, ctx.labels, ctx.keep, ctx.smoothing = probs, safe, keep, smoothing
        ctx.reduction, ctx.count = reduction, len(labels) if keep is None else int(keep.sum())
        if reduction == "mean":  # over the rows not ignored; NaN when there are none (as torch), quietly
            return np.asarray(losses.sum() / ctx.count if ctx.count else np.nan, dtype=logits.dtype)
        if reduction == "sum":
            return np.asarray(losses.sum(), dtype=logits.dtype)
        return losses

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        d = ctx.probs.copy()
        n, c = d.shape
        eps = ctx.smoothing
        d[np.arange(n), ctx.labels] -= 1 - eps
        if eps:
            d -= eps / c
        if ctx.keep is not None:
            d *= ctx.keep[:, None]
        if ctx.reduction == "mean":
            d *= grad / max(ctx.count, 1)
        elif ctx.reduction == "sum":
            d *= grad
        else:
            d *= grad[:, None]
        return d, None


def _ce_shapes(logits: np.ndarray, labels: np.ndarray) -> None:
    if logits.ndim != 2:
        raise ShapeError(
            f"cross_entropy: logits must have shape (N, C), got {logits.shape}",
            "one row of class scores per sample; flatten extra axes first",
        )
    if labels.shape != (logits.shape[0],):
        same = labels.shape == logits.shape  # (integer one-hot rows)
        raise ShapeError(
            f"cross_entropy: labels of shape {labels.shape} do not match logits of shape {logits.shape}",
            "one integer label per row of logits, shape (N,)"
            + ("; for one-hot rows pass labels.argmax(1), or the rows as floats (class probabilities)" if same else ""),
        )


def _ce_rows(logits: np.ndarray, labels: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities and per-row losses ``(1 - eps) * nll + eps * mean_c(-log p_c)``."""
    rows = np.arange(logits.shape[0])
    # as in Softmax: x - max(x) overflows to -inf only where exp gives the exact 0; a loss above the
    # float maximum is inf; a row of all -inf logits gives NaN (as torch)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        z = logits - kept_max(logits, (1,))
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        log_s = np.log(s[:, 0])
        losses = log_s - z[rows, labels]
        if smoothing:
            losses = (1 - smoothing) * losses + smoothing * (log_s - z.mean(axis=1))
        e /= s
    return e, losses


def cross_entropy(
    logits: Any, labels: Any, reduction: str = "mean", ignore_index: int = -100, label_smoothing: float = 0.0
) -> Tensor:
    """Softmax cross-entropy with integer class labels (one fused op), as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Unnormalized scores.
    labels : array_like of int, shape (N,), or of float, shape (N, C)
        Class indices in ``[0, C)``, or ``ignore_index``; or class probabilities (one-hot rows, mixup,
        distillation), as torch: the loss of a row is then ``-sum_c p_c log_softmax(logits)_c``.
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over the rows that are not ignored.
    ignore_index : int
        Rows with this label add nothing to the loss or the gradient (-100, as torch).
    label_smoothing : float in [0, 1]
        The target puts ``1 - label_smoothing + label_smoothing / C`` on the label and
        ``label_smoothing / C`` on every other class.

    Returns
    -------
    Tensor
        Shape () for 'mean' and 'sum', (N,) for 'none' (0 on ignored rows).

    Raises
    ------
    LabelError
        If a label is outside ``[0, C)`` and not ``ignore_index`` (the message names the label and ``C``),
        or not an integer.

    Examples
    --------
    >>> round(cross_entropy(Tensor(np.zeros((2, 4))), np.array([0, 3])).item(), 4)
    1.3863
    >>> round(cross_entropy(Tensor([[2.0, 0.0], [0.0, 9.0]]), np.array([0, -100])).item(), 4)
    0.1269
    """
    check_reduction("cross_entropy", reduction)
    if type(ignore_index) is not int or ignore_index != -100:  # (the defaults need no validation: every step)
        ignore_index = integer("cross_entropy", "ignore_index", ignore_index)
    smoothing = 0.0
    if type(label_smoothing) is not float or label_smoothing != 0.0:
        smoothing = number("cross_entropy", "label_smoothing", label_smoothing, 0.0, 1.0)
    labels_arr = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    logits = as_tensor(logits)
    if labels_arr.dtype.kind == "f" and labels_arr.ndim == 2 and labels_arr.shape == logits.data.shape:
        return _soft_cross_entropy(logits, labels, reduction, smoothing)
    class_labels("cross_entropy", labels_arr, None)  # the dtype before the array becomes a tensor
    return SoftmaxCrossEntropy.apply(
        logits, Tensor(labels_arr), reduction=reduction, ignore_index=ignore_index, smoothing=smoothing
    )


def _soft_cross_entropy(logits: Tensor, probs: Any, reduction: str, smoothing: float) -> Tensor:
    """torch's cross-entropy with class-probability targets of the logits' shape (one-hot rows, mixup,
    distillation): ``-sum_c p_c log_softmax(logits)_c`` per row, with ``p`` smoothed towards uniform by
    ``label_smoothing``; 'mean' averages over the rows (``ignore_index`` does not apply, as torch). Composed of
    engine ops, so the targets get a gradient too when they require one."""
    float_array("cross_entropy", "logits", logits.data)
    p = as_tensor(probs, like=logits)
    if smoothing:
        p = p * (1.0 - smoothing) + smoothing / logits.data.shape[1]
    losses = -(p * log_softmax(logits, 1)).sum(axis=1)
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


class MSE(Function):
    name = "mse_loss"

    @staticmethod
    def forward(ctx: Context, pred: np.ndarray, target: np.ndarray, *, reduction: str) -> np.ndarray:
        if pred.shape != target.shape:
            raise ShapeError(
                f"mse_loss: input shape {pred.shape} differs from target shape {target.shape}",
                "reshape the target to the prediction's shape; mse_loss does not broadcast",
            )
        with np.errstate(over="ignore"):  # a squared error above the float maximum is inf
            diff = pred - target
            sq = diff * diff
            ctx.diff, ctx.reduction = diff, reduction
            if reduction == "mean":
                return np.asarray(sq.mean())
            if reduction == "sum":
                return np.asarray(sq.sum())
        return sq

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        diff = ctx.diff
        scale = 2.0 / diff.size if ctx.reduction == "mean" and diff.size else 2.0
        g = diff * (grad * scale)
        return g, (-g if ctx.needs_input_grad[1] else None)


def mse_loss(pred: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error ``mean((pred - target) ** 2)`` (one fused op).

    Parameters
    ----------
    pred, target : Tensor, same shape
    reduction : {'mean', 'sum', 'none'}

    Examples
    --------
    >>> mse_loss(Tensor([1.0, 3.0]), Tensor([1.0, 1.0])).item()
    2.0
    """
    check_reduction("mse_loss", reduction)
    pred = as_tensor(pred)
    float_array("mse_loss", "input", pred.data)
    return MSE.apply(pred, as_tensor(target, like=pred), reduction=reduction)


# ---------------------------------------------------------------------- dropout and embedding
class Dropout(Function):
    """Multiply by a fixed mask (zeros and ``1 / (1 - p)``), kept on the node as ``ctx.mask``."""

    name = "dropout"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, mask: np.ndarray) -> np.ndarray:
        if mask.shape != x.shape:
            raise ShapeError(f"dropout: mask of shape {mask.shape} does not match input of shape {x.shape}")
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        return (grad * ctx.mask,)


def dropout_mask(shape: Sequence[int], p: float, rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
    """A dropout mask: 0 with probability ``p``, else ``1 / (1 - p)`` (inverted dropout).

    Examples
    --------
    >>> m = dropout_mask((1000,), 0.5, np.random.default_rng(0))
    >>> sorted(set(m.tolist()))
    [0.0, 2.0]
    """
    p = probability("dropout_mask", "p", p)
    generator("dropout_mask", "rng", rng)
    dims = tuple(integer("dropout_mask", "shape", n, minimum=0) for n in shape)
    keep = rng.random(dims, dtype=np.float64) >= p
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)


def dropout(
    x: Any,
    p: float = 0.5,
    training: bool = True,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
) -> Tensor:
    """Inverted dropout.

    Parameters
    ----------
    x : Tensor, any shape
    p : float
        Probability of zeroing an element.
    training : bool
        If False, return ``x`` unchanged.
    rng : numpy.random.Generator, optional
        Source of the mask (a fresh unseeded generator if omitted).
    mask : numpy.ndarray, optional
        Use this mask (as from :func:`dropout_mask`) instead of drawing one; this replays a pass.

    Returns
    -------
    Tensor, same shape as ``x``; the mask is ``out.ctx.mask`` while the graph is alive.

    Examples
    --------
    >>> y = dropout(Tensor(np.ones(4)), 0.5, rng=np.random.default_rng(0))
    >>> sorted(set(y.data.tolist())) <= [0.0, 2.0]
    True
    """
    x = as_tensor(x)
    p = probability("dropout", "p", p, hint="p is the probability of zeroing an element; 0 disables dropout")
    if not flag("dropout", "training", training) or (p == 0.0 and mask is None):
        return x
    if mask is None:
        mask = dropout_mask(x.data.shape, p, rng if rng is not None else np.random.default_rng(), x.data.dtype)
    return Dropout.apply(x, mask=mask)


class Embedding(Function):
    """Rows of ``weight`` picked by integer ``indices``; backward scatter-adds with ``np.add.at``."""

    name = "embedding"

    @staticmethod
    def forward(ctx: Context, weight: np.ndarray, *, indices: np.ndarray) -> np.ndarray:
        ctx.indices, ctx.shape = indices, weight.shape
        return weight[indices]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        gw = np.zeros(ctx.shape, dtype=grad.dtype)
        np.add.at(gw, ctx.indices.reshape(-1), grad.reshape(ctx.indices.size, ctx.shape[1]))  # (-1: not for dim 0)
        return (gw,)


def embedding(indices: Any, weight: Any) -> Tensor:
    """Look up rows of ``weight``.

    Parameters
    ----------
    indices : array_like of int, any shape S
    weight : Tensor, shape (num_embeddings, dim)

    Returns
    -------
    Tensor, shape S + (dim,)

    Raises
    ------
    IndexRangeError
        If an index is outside ``[0, num_embeddings)``.

    Examples
    --------
    >>> embedding(np.array([[0, 2]]), Tensor(np.eye(3))).shape
    (1, 2, 3)
    """
    idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    weight = as_tensor(weight)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"embedding: indices must be integers, got dtype {idx.dtype}", "e.g. indices.astype(np.int64)")
    float_array("embedding", "weight", weight.data)
    if weight.data.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {weight.data.shape}")
    num = weight.data.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
        raise IndexRangeError(
            f"embedding: index {bad} is out of range for {num} embeddings",
            f"indices must be in [0, {num - 1}]; make the table larger (num_embeddings) or remap the ids",
        )
    return Embedding.apply(weight, indices=idx)
