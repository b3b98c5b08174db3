"""Layers that step each parameter through an optimizer object of their own inside backward
(``self.W = self.W_opt.update(self.W, grad_w)``, with ``self.W_opt = copy.copy(optimizer)``) and keep no gradient:
in the check's copies each such optimizer is replaced by one that keeps the gradient it is given and returns the
parameter unchanged, and the gradient is read there."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from backcheck.frontends.slots import is_float_array

#: How an optimizer attribute names its parameter: ``W_opt`` or ``W_optimizer`` for ``W``.
SUFFIXES = ("_opt", "_optimizer", "_optim")


class KeptGradient:
    """An optimizer that keeps the gradient its ``update(w, grad)`` is given (as ``grad``) and returns ``w``."""

    def __init__(self, like: np.ndarray) -> None:
        self.grad = np.zeros(like.shape, dtype=np.float64)

    def update(self, w: Any, grad: Any) -> Any:
        self.grad = np.array(grad, dtype=np.float64)
        return w


def _steps(obj: Any) -> bool:
    """Whether ``obj`` is an optimizer object: a method ``update`` of two positional parameters (w, grad)."""
    update = getattr(type(obj), "update", None)
    if not inspect.isfunction(update):
        return False
    try:
        params = list(inspect.signature(update).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 and all(p.default is p.empty for p in positional[:2])


def keep_gradients(layer: Any, grads: Any) -> tuple[Any, str]:
    """On ``layer`` (the check's own copy), each optimizer attribute named after a float array attribute (``W_opt``
    beside ``W``) replaced by a :class:`KeptGradient`; ``grads`` then names where each gradient is kept
    (``{"W": "W_opt.grad"}``), and a note says so. ``grads`` and ``''`` as they were where the user named
    ``grads=`` or the layer holds no such optimizer."""
    state = getattr(layer, "__dict__", None)
    if grads is not None or not isinstance(state, dict):
        return grads, ""
    found = {}
    for attr, value in list(state.items()):
        param = next((attr[: -len(s)] for s in SUFFIXES if attr.endswith(s)), None)
        if param and is_float_array(state.get(param)) and _steps(value):
            state[attr] = KeptGradient(state[param])
            found[param] = f"{attr}.grad"
    if not found:
        return grads, ""
    opts = ", ".join(path.removesuffix(".grad") for path in found.values())
    note = (
        f"{type(layer).__name__} steps {', '.join(found)} through optimizer objects of its own ({opts}.update(w, "
        "grad)); in the check's copies these keep the gradient they are given and return w unchanged, and each "
        "gradient is read there."
    )
    return found, note
