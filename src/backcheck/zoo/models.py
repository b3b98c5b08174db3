"""Whole models: a network's loss checked as one function of its parameter dict, ``check(loss, params, grad)``.

A :class:`Model` is a loss over a parameter dict and a fixed batch, its correct gradient and realistic wrong
ones (:class:`Bug` s whose ``backward`` is ``grad(params, batch) -> dict``). ``make(rng, dtype)`` returns the
parameters and the batch; the defaults are float32, the precision such models are trained in.

- ``mlp_relu_near_kink``: a two-layer ReLU network with softmax cross-entropy and L2 regularization, two of whose
  hidden pre-activations sit within float32's step of the ReLU kink (about 3e-5 from 0).
- ``patch_convnet_tie2/3/4``: a patchify convolution (2x2, stride 2), 2x2 max pooling, ReLU, a linear layer and
  softmax cross-entropy, on images with a blank background. A patch of background gives exactly the filter's
  bias, so pooling windows covering 2, 3 or 4 background patches tie at their maximum, and they stay tied
  whatever the parameters (moving the bias moves them together). The bug routes the pooled gradient to every
  tied element: k times too much in the bias gradient.

:func:`as_layer` turns a model into a loss :class:`Layer` (``forward(*params)``, the batch closed over) for the
checkers that take a forward and a backward.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._registry import Bug, Layer

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Model:
    """A whole model's loss: ``loss(params, batch) -> float`` and ``grad(params, batch) -> dict``."""

    name: str
    loss: Callable[[Params, Params], float]
    grad: Callable[[Params, Params], Params]
    make: Callable[[np.random.Generator, DTypeLike], tuple[Params, Params]]
    bugs: tuple[Bug, ...]
    description: str


def _softmax_xent(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer labels and its gradient with respect to the scores."""
    z = scores - scores.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = scores.shape[0]
    dscores = np.exp(logp)
    dscores[np.arange(n), y] -= 1
    return float(-logp[np.arange(n), y].mean()), dscores / n


# --- a two-layer ReLU network with pre-activations next to the kink --------------------------------

REG = 1e-3


def mlp_loss(p: Params, batch: Params) -> float:
    h = np.maximum(batch["x"] @ p["w1"] + p["b1"], 0)
    loss, _ = _softmax_xent(h @ p["w2"] + p["b2"], batch["y"])
    return loss + REG * float(np.sum(p["w1"] * p["w1"]) + np.sum(p["w2"] * p["w2"]))


def _mlp_grad(p: Params, batch: Params, n_scale: bool = True, reg_factor: float = 2.0,
              mask: bool = True) -> Params:
    x = batch["x"]
    z = x @ p["w1"] + p["b1"]
    h = np.maximum(z, 0)
    _, ds = _softmax_xent(h @ p["w2"] + p["b2"], batch["y"])
    ds = ds if n_scale else ds * x.shape[0]
    dh = ds @ p["w2"].T
    dz = dh * (z > 0) if mask else dh
    out = {"w1": x.T @ dz + reg_factor * REG * p["w1"], "b1": dz.sum(axis=0),
           "w2": h.T @ ds + reg_factor * REG * p["w2"], "b2": ds.sum(axis=0)}
    return {k: v.astype(p[k].dtype) for k, v in out.items()}


def mlp_grad(p: Params, batch: Params) -> Params:
    """Backpropagation through softmax cross-entropy, the second layer, the ReLU and the first layer."""
    return _mlp_grad(p, batch)


def _mlp_no_1_over_n(p: Params, batch: Params) -> Params:
    return _mlp_grad(p, batch, n_scale=False)


def _mlp_reg_halved(p: Params, batch: Params) -> Params:
    return _mlp_grad(p, batch, reg_factor=1.0)


def _mlp_no_relu_mask(p: Params, batch: Params) -> Params:
    return _mlp_grad(p, batch, mask=False)


def _mlp_make(rng: np.random.Generator, dtype: DTypeLike = np.float32) -> tuple[Params, Params]:
    x = rng.standard_normal((8, 6))
    p = {"w1": 0.5 * rng.standard_normal((6, 10)), "b1": 0.1 * rng.standard_normal(10),
         "w2": 0.5 * rng.standard_normal((10, 3)), "b2": 0.1 * rng.standard_normal(3)}
    # two hidden units whose pre-activation on one example lies within float32's step of the kink
    p["b1"][2] = 3e-5 - x[0] @ p["w1"][:, 2]
    p["b1"][7] = -3e-5 - x[3] @ p["w1"][:, 7]
    params = {k: v.astype(dtype) for k, v in p.items()}
    return params, {"x": x.astype(dtype), "y": rng.integers(0, 3, 8)}


MLP = Model(
    name="mlp_relu_near_kink",
    loss=mlp_loss,
    grad=mlp_grad,
    make=_mlp_make,
    description="Two-layer ReLU network, softmax cross-entropy and L2 regularization; two hidden pre-activations "
    "3e-5 from the kink.",
    bugs=(
        Bug("missing_1_over_n", _mlp_no_1_over_n, "gross",
            "Forgets the 1/N of the mean cross-entropy in the scores' gradient.", size=7.0),
        Bug("regularization_halved", _mlp_reg_halved, "subtle",
            "Differentiates reg * sum(W^2) as reg * W (the 2 forgotten).", size=1.4e-3),
        Bug("relu_mask_missing", _mlp_no_relu_mask, "gross",
            "Passes the hidden gradient through the ReLU without its mask.", size=0.56),
    ),
)


# --- a patchify convolution, max pooling with ties of k, ReLU, linear, softmax cross-entropy ---------


def _patches(x: np.ndarray) -> np.ndarray:
    """(N, 1, 8, 8) -> (N, 4, 4, 4): the 2x2 patches (stride 2), flattened."""
    n = x.shape[0]
    return x.reshape(n, 4, 2, 4, 2).transpose(0, 1, 3, 2, 4).reshape(n, 4, 4, 4)


def _pool_windows(c: np.ndarray) -> np.ndarray:
    """(N, F, 4, 4) -> (N, F, 2, 2, 4): the 2x2 pooling windows of the conv output."""
    n, f = c.shape[:2]
    return c.reshape(n, f, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, f, 2, 2, 4)


def _convnet_forward(p: Params, batch: Params) -> tuple[np.ndarray, ...]:
    pt = _patches(batch["x"])
    conv = np.einsum("nijk,fk->nfij", pt, p["w"].reshape(p["w"].shape[0], -1)) + p["b"][None, :, None, None]
    win = _pool_windows(conv)
    pooled = win.max(axis=-1)
    h = np.maximum(pooled, 0).reshape(pooled.shape[0], -1)
    return pt, win, pooled, h, h @ p["w2"] + p["b2"]


def convnet_loss(p: Params, batch: Params) -> float:
    *_, scores = _convnet_forward(p, batch)
    return _softmax_xent(scores, batch["y"])[0]


def _convnet_grad(p: Params, batch: Params, every: bool = False) -> Params:
    pt, win, pooled, h, scores = _convnet_forward(p, batch)
    _, ds = _softmax_xent(scores, batch["y"])
    dpooled = (ds @ p["w2"].T).reshape(pooled.shape) * (pooled > 0)
    if every:  # every element equal to the window's maximum gets the full gradient
        chosen = win == win.max(axis=-1, keepdims=True)
    else:
        chosen = np.zeros(win.shape, dtype=bool)
        np.put_along_axis(chosen, win.argmax(axis=-1)[..., None], True, axis=-1)
    dwin = chosen * dpooled[..., None]
    n, f = dwin.shape[:2]
    dconv = dwin.reshape(n, f, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, f, 4, 4)
    out = {"w": np.einsum("nfij,nijk->fk", dconv, pt).reshape(p["w"].shape), "b": dconv.sum(axis=(0, 2, 3)),
           "w2": h.T @ ds, "b2": ds.sum(axis=0)}
    return {k: v.astype(p[k].dtype) for k, v in out.items()}


def convnet_grad(p: Params, batch: Params) -> Params:
    """Backpropagation; each pooled gradient goes to the first maximum of its window."""
    return _convnet_grad(p, batch)


def _convnet_to_every_tie(p: Params, batch: Params) -> Params:
    return _convnet_grad(p, batch, every=True)


def _blank_patch_layout(size: int) -> np.ndarray:
    """Which conv positions see blank background: (2 images, 4, 4) booleans, pooling windows holding 0, 1 or
    ``size`` blank positions, two windows of ``size`` per image."""
    counts = [[size, 1, 0, size], [0, size, size, 1]]
    blank = np.zeros((2, 4, 4), dtype=bool)
    for n, row in enumerate(counts):
        for w, k in enumerate(row):
            cells = np.zeros(4, dtype=bool)
            cells[[(w + j) % 4 for j in range(k)]] = True
            r, q = divmod(w, 2)
            blank[n, 2 * r : 2 * r + 2, 2 * q : 2 * q + 2] = cells.reshape(2, 2)
    return blank


def _convnet_make(size: int) -> Callable[[np.random.Generator, DTypeLike], tuple[Params, Params]]:
    def make(rng: np.random.Generator, dtype: DTypeLike = np.float32) -> tuple[Params, Params]:
        blank = _blank_patch_layout(size)
        ink = rng.uniform(0.3, 1.0, (2, 8, 8)) * np.repeat(np.repeat(~blank, 2, axis=1), 2, axis=2)
        w = rng.standard_normal((2, 1, 2, 2))
        w[0] = -np.abs(w[0]) - 0.2  # filter 0 responds below its bias to any ink: blank patches are its maximum
        p = {"w": 0.5 * w, "b": np.array([0.2, 0.1]), "w2": 0.5 * rng.standard_normal((8, 3)),
             "b2": 0.1 * rng.standard_normal(3)}
        params = {k: v.astype(dtype) for k, v in p.items()}
        return params, {"x": ink[:, None].astype(dtype), "y": rng.integers(0, 3, 2)}

    return make


def _convnet(size: int) -> Model:
    return Model(
        name=f"patch_convnet_tie{size}",
        loss=convnet_loss,
        grad=convnet_grad,
        make=_convnet_make(size),
        description=f"Patchify conv, 2x2 max pool, ReLU, linear, softmax cross-entropy; pooling windows with ties "
        f"of {size} (blank background patches).",
        bugs=(
            Bug("ties_to_every_element", _convnet_to_every_tie, "gross",
                f"The max pool's backward routes the gradient to every tied maximum: {size} times too much "
                "through the windows of blank background.", size={2: 0.54, 3: 1.1, 4: 1.9}[size]),
        ),
    )


#: The whole-model cases.
MODELS: tuple[Model, ...] = (MLP, _convnet(2), _convnet(3), _convnet(4))
_BY_NAME = {m.name: m for m in MODELS}


def get_model(name: str) -> Model:
    """The model called ``name``; raises ``KeyError`` naming close matches if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_BY_NAME), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no zoo model named {name!r}{hint}") from None


def as_layer(model: Model, batch: Params, names: list[str]) -> Layer:
    """The model as a loss layer of its parameters (in ``names`` order), the batch closed over.

    ``forward(*arrays) -> loss`` and ``backward(dout, *arrays) -> one gradient per parameter`` for a given
    bug's ``grad`` via :func:`layer_backward`; ``make_inputs`` is not used (the caller holds the point).
    """

    def forward(*arrays: np.ndarray) -> np.ndarray:
        loss = model.loss(dict(zip(names, arrays, strict=True)), batch)
        return np.asarray(loss, dtype=arrays[0].dtype)

    forward.__name__ = forward.__qualname__ = f"{model.name}_loss"
    return Layer(
        name=model.name,
        family="model",
        forward=forward,
        backward=layer_backward(model.grad, batch, names),
        make_inputs=lambda rng, dtype: dict(zip(names, model.make(rng, dtype)[0].values(), strict=True)),
        bugs=tuple(
            Bug(b.name, layer_backward(b.backward, batch, names), b.severity, b.description, b.mutates, b.size)
            for b in model.bugs
        ),
        loss=True,
    )


def layer_backward(grad: Callable[[Params, Params], Params], batch: Params,
                   names: list[str]) -> Callable[..., tuple[np.ndarray, ...]]:
    """``backward(dout, *arrays)``: ``dout`` times ``grad`` of the parameters, in ``names`` order."""

    def backward(dout: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        g = grad(dict(zip(names, arrays, strict=True)), batch)
        return tuple((np.asarray(dout) * g[n]).astype(a.dtype) for n, a in zip(names, arrays, strict=True))

    backward.__name__ = backward.__qualname__ = f"{getattr(grad, '__name__', 'grad')}_backward"
    return backward
