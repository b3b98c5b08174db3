"""Optimizers with torch's update rules, step for step: SGD (momentum, Nesterov, weight decay),
Adam and AdamW; and ``clip_grad_norm_``.

Updates are done in place on ``param.data`` with numpy ``out=`` arithmetic, so optimizer state
and parameters are never reallocated.  Gradients (``param.grad``) are only read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from backcheck.nn.autograd import modified
from backcheck.nn.errors import ArgumentError, DTypeError, ShapeError
from backcheck.nn.tensor import Tensor
from backcheck.nn.validate import flag, number

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_"]


class Optimizer:
    """Base class: holds the parameters and per-parameter state (a dict per parameter)."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        owner = type(self).__name__
        if isinstance(params, Tensor) or not isinstance(params, Iterable):
            raise ArgumentError(
                f"{owner}: params must be an iterable of tensors that require grad, got {type(params).__name__}",
                "pass model.parameters() or a list such as [w, b]",
                argument="params",
                allowed="an iterable of tensors that require grad",
                value=params,
            )
        self.params = list(params)
        if not self.params:
            raise ArgumentError(
                f"{owner}: params must be a non-empty iterable of tensors that require grad, got an empty one",
                "the model has no parameters, or an iterator of them was already consumed",
                argument="params",
                allowed="a non-empty iterable of tensors that require grad",
                value=self.params,
            )
        seen: set[int] = set()
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise DTypeError(
                    f"{owner}: every parameter must be a Tensor that requires grad; params[{i}] is {p!r}",
                    "pass model.parameters(), or tensors made with requires_grad=True",
                )
            if id(p) in seen:
                raise ArgumentError(
                    f"{owner}: params must be distinct tensors; params[{i}] appears more than once",
                    "each parameter must be listed once, or it is updated twice per step",
                    argument="params",
                    allowed="distinct tensors",
                    value=p,
                )
            seen.add(id(p))
        self.lr = number(owner, "lr", lr, low=0.0, hint="the learning rate scales every update")
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None."""
        for p in self.params:
            p.grad = None

    def _with_grads(self) -> Iterator[tuple[Tensor, dict[str, Any], np.ndarray]]:
        """``(param, state, grad)`` for each parameter with a gradient, the gradient as an array (a numpy
        scalar from a 0-d graph becomes a 0-d array) of the parameter's shape, or a ShapeError."""
        for i, (p, state) in enumerate(zip(self.params, self.state, strict=True)):
            if p.grad is None:
                continue
            g = p.grad
            if type(g) is not np.ndarray:
                g = np.asarray(g)
            if g.shape != p.data.shape:
                raise ShapeError(
                    f"{type(self).__name__}.step: params[{i}].grad has shape {g.shape} but the parameter has "
                    f"shape {p.data.shape}",
                    "a gradient must have its parameter's shape: let backward() set .grad, or assign an array "
                    "of that shape",
                )
            yield p, state, g

    def step(self) -> None:  # pragma: no cover - abstract
        """Update every parameter that has a gradient."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    ``g = grad + weight_decay * p``; with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step) and ``g = g + momentum * buf`` (Nesterov) or ``g = buf``;
    then ``p -= lr * g``.

    Examples
    --------
    >>> w = Tensor(np.ones(2), requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.data
    array([0.8, 0.8])
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        momentum = number("SGD", "momentum", momentum, low=0.0)
        dampening = number("SGD", "dampening", dampening, 0.0, 1.0)
        nesterov = flag("SGD", "nesterov", nesterov)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ArgumentError(
                f"SGD: nesterov must be False unless momentum > 0 and dampening == 0; Nesterov momentum requires "
                f"them, got momentum {momentum} and dampening {dampening}",
                "e.g. SGD(params, lr=0.1, momentum=0.9, nesterov=True)",
                argument="nesterov",
                allowed="False unless momentum > 0 and dampening == 0",
                value=nesterov,
            )
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay = number("SGD", "weight_decay", weight_decay, low=0.0)
        self.nesterov = nesterov

    def step(self) -> None:
        lr, mom, wd = self.lr, self.momentum, self.weight_decay
        for p, state, g in self._with_grads():
            if wd:
                g = g + wd * p.data
            if mom:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, copy=True)
                else:
                    buf *= mom
                    if self.dampening:
                        buf += (1 - self.dampening) * g
                    else:
                        buf += g
                g = g + mom * buf if self.nesterov else buf
            p.data -= lr * g
            modified(p)  # a graph built before the step refuses to backward through the new values


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient; optional AMSGrad).

    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 v + (1 - beta2) g^2``,
    ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

    Examples
    --------
    >>> w = Tensor(np.ones(2), requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> np.round(w.data, 6)
    array([0.9, 0.9])
    """

    decoupled = False

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr)
        owner = type(self).__name__
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ArgumentError(
                f"{owner}: betas must be a pair of numbers in [0, 1), got {betas!r}",
                "the decay rates of the first and second moment averages, e.g. (0.9, 0.999)",
                argument="betas",
                allowed="a pair of numbers in [0, 1)",
                value=betas,
            )
        hint = "the decay rates of the first and second moment averages, e.g. (0.9, 0.999)"
        b1, b2 = (number(owner, f"betas[{i}]", b, 0.0, 1.0, "[)", hint) for i, b in enumerate(betas))
        self.betas = (b1, b2)
        self.eps = number(owner, "eps", eps, low=0.0, interval="(]", hint="eps keeps m / (sqrt(v) + eps) finite")
        self.weight_decay = number(owner, "weight_decay", weight_decay, low=0.0)
        self.amsgrad = flag(owner, "amsgrad", amsgrad)

    def step(self) -> None:
        lr, (b1, b2), eps, wd = self.lr, self.betas, self.eps, self.weight_decay
        for p, state, g in self._with_grads():
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
                if self.amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            if wd:
                if self.decoupled:
                    p.data *= 1 - lr * wd
                else:
                    g = g + wd * p.data
            # m.lerp_(g, 1 - b1), with torch's formula for a weight below 0.5
            tmp = np.subtract(g, m)
            if type(tmp) is not np.ndarray:  # a 0-d parameter's: a numpy scalar, which out= cannot take
                tmp = np.asarray(tmp)
            tmp *= 1 - b1
            m += tmp
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v *= b2
            v += tmp
            bc1 = 1 - b1**t
            bc2_sqrt = math.sqrt(1 - b2**t)
            if self.amsgrad:
                vmax = state["max_exp_avg_sq"]
                np.maximum(vmax, v, out=vmax)
                np.sqrt(vmax, out=tmp)
            else:
                np.sqrt(v, out=tmp)
            tmp /= bc2_sqrt
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= lr / bc1
            p.data -= tmp
            modified(p)


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: decoupled weight decay ``p *= 1 - lr * weight_decay`` then Adam."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


def clip_grad_norm_(params: Iterable[Tensor], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale gradients so that their global norm is at most ``max_norm`` (as torch).

    The global norm is the ``norm_type`` norm of the per-parameter norms; every gradient is
    multiplied by ``min(1, max_norm / (total + 1e-6))``.  Gradients are replaced, not modified in
    place.

    Returns
    -------
    float
        The global norm before clipping.

    Examples
    --------
    >>> w = Tensor(np.ones(4), requires_grad=True)
    >>> (w * 3.0).sum().backward()
    >>> clip_grad_norm_([w], 1.0)
    6.0
    """
    max_norm = number("clip_grad_norm_", "max_norm", max_norm, low=0.0)
    if not (isinstance(norm_type, int | float) and norm_type == math.inf):
        norm_type = number("clip_grad_norm_", "norm_type", norm_type, low=0.0, interval="(]")
    with_grad = [p for p in params if p.grad is not None]
    grads = [p.grad for p in with_grad if p.grad is not None]
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        norms = np.array([np.linalg.norm(g.ravel(), ord=norm_type) for g in grads])
        total = float(np.linalg.norm(norms, ord=norm_type))
    coef = min(max_norm / (total + 1e-6), 1.0)
    for p, g in zip(with_grad, grads, strict=True):
        p.grad = g * np.asarray(coef, dtype=g.dtype)
    return total
