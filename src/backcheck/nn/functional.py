"""Functional interface, like ``torch.nn.functional``: every op as a plain function on tensors.

Primitive ops (with a hand-written backward) live in :mod:`backcheck.nn.ops`; the few functions
defined here are compositions of them, differentiated by the engine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from backcheck.nn.ops.conv import avg_pool2d, conv2d, max_pool2d
from backcheck.nn.ops.elementwise import (
    abs,
    add,
    cast,
    clip,
    div,
    exp,
    gelu,
    leaky_relu,
    log,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    softplus,
    sqrt,
    sub,
    tanh,
    where,
)
from backcheck.nn.ops.linalg import linear, matmul
from backcheck.nn.ops.nnfunc import (
    cross_entropy,
    dropout,
    dropout_mask,
    embedding,
    log_softmax,
    mse_loss,
    safe_softmax,
    softmax,
)
from backcheck.nn.ops.norm import batch_norm, layer_norm
from backcheck.nn.ops.reduce import logsumexp, max, mean, min, std, sum, var
from backcheck.nn.ops.shape import (
    broadcast_to,
    concatenate,
    flatten,
    getitem,
    pad,
    permute,
    reshape,
    squeeze,
    stack,
    unsqueeze,
)
from backcheck.nn.tensor import Tensor, as_tensor
from backcheck.nn.validate import number

__all__ = [
    "abs",
    "add",
    "avg_pool2d",
    "batch_norm",
    "broadcast_to",
    "cast",
    "clip",
    "concatenate",
    "conv2d",
    "cross_entropy",
    "div",
    "dropout",
    "dropout_mask",
    "embedding",
    "exp",
    "flatten",
    "gelu",
    "getitem",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log",
    "log_softmax",
    "logsumexp",
    "matmul",
    "max",
    "max_pool2d",
    "mean",
    "min",
    "mse_loss",
    "mul",
    "neg",
    "pad",
    "permute",
    "pow",
    "relu",
    "reshape",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "softplus",
    "sqrt",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "tanh",
    "unsqueeze",
    "var",
    "where",
    "cat",
]

cat = concatenate


def scaled_dot_product_attention(q: Any, k: Any, v: Any, mask: Any = None, scale: float | None = None) -> Tensor:
    """Attention ``softmax(q @ k^T * scale + mask) @ v``, composed from primitive ops.

    Parameters
    ----------
    q : Tensor, shape (..., L, d)
    k : Tensor, shape (..., S, d)
    v : Tensor, shape (..., S, dv)
    mask : array_like, broadcastable to (..., L, S), optional
        Boolean: True where a query may attend to a key (torch's convention); positions with
        False get probability 0.  A float mask is added to the scores instead.  A query row with
        every key masked (all False, or all -inf) attends to nothing: its output row is 0 and its
        gradients are 0, as torch's.
    scale : float, optional
        Defaults to ``1 / sqrt(d)``.

    Returns
    -------
    Tensor, shape (..., L, dv)

    Examples
    --------
    >>> q = Tensor(np.ones((2, 3, 4)))
    >>> scaled_dot_product_attention(q, q, q).shape
    (2, 3, 4)
    """
    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    d = q.data.shape[-1]
    s = 1.0 / math.sqrt(d) if scale is None else number("scaled_dot_product_attention", "scale", scale)
    scores = matmul(q, k.transpose(-2, -1)) * s
    if mask is not None:
        m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if m.dtype == np.bool_:
            scores = where(m, scores, -np.inf)
        else:
            scores = scores + as_tensor(m.astype(scores.data.dtype, copy=False))
    return matmul(safe_softmax(scores, axis=-1), v)
