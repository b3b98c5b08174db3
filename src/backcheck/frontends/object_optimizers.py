"""Layers that step each parameter through an optimizer object of their own inside backward
(``self.W = self.W_opt.update(self.W, grad_w)``, with ``self.W_opt = copy.copy(optimizer)``) and keep no gradient:
in the check's copies each such optimizer is replaced by one that keeps the gradient it is given and returns the
parameter unchanged, and the gradient is read there. Since those copies never move their parameters, a backward
that computes the input's gradient from the stepped weights is called once more with optimizers that do step
(:func:`step_findings`): its returned gradients must not change."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.containers import flatten
from backcheck.findings import Finding
from backcheck.frontends.object_steps import near
from backcheck.frontends.slots import Slot, is_float_array

#: How an optimizer attribute names its parameter: ``W_opt`` or ``W_optimizer`` for ``W``.
SUFFIXES = ("_opt", "_optimizer", "_optim")


class KeptGradient:
    """An optimizer that keeps the gradient its ``update(w, grad)`` is given (as ``grad``) and returns ``w``."""

    def __init__(self, like: np.ndarray) -> None:
        self.grad = np.zeros(like.shape, dtype=np.float64)

    def update(self, w: Any, grad: Any) -> Any:
        self.grad = np.array(grad, dtype=np.float64)
        return w


class SteppedGradient(KeptGradient):
    """A :class:`KeptGradient` that steps as plain gradient descent of rate 1 does: ``update(w, grad)`` returns
    ``w - grad`` in ``w``'s dtype."""

    def update(self, w: Any, grad: Any) -> Any:
        super().update(w, grad)
        held = np.asarray(w)
        return (held - self.grad).astype(held.dtype, copy=False)


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
    if grads is not None or not isinstance(getattr(layer, "__dict__", None), dict):
        return grads, ""
    found = {}
    for prefix, holder in _holders(layer):
        state = holder.__dict__
        for attr, value in list(state.items()):
            param = next((attr[: -len(s)] for s in SUFFIXES if attr.endswith(s)), None)
            if param and is_float_array(state.get(param)) and _steps(value):
                state[attr] = KeptGradient(state[param])
                found[prefix + param] = f"{prefix}{attr}.grad"
    if not found:
        return grads, ""
    opts = ", ".join(path.removesuffix(".grad") for path in found.values())
    note = (
        f"{type(layer).__name__} steps {', '.join(found)} through optimizer objects of its own ({opts}.update(w, "
        "grad)); in the check's copies these keep the gradient they are given and return w unchanged, and each "
        "gradient is read there."
    )
    return found, note


def _holders(layer: Any) -> list[tuple[str, Any]]:
    """``layer`` itself, and the layers it holds one attribute down (a network's ``self.layers = [...]``, or
    ``self.fc1``), each with the prefix that names its arrays (``layers[0].``)."""
    out: list[tuple[str, Any]] = [("", layer)]
    for attr, value in list(vars(layer).items()):
        if isinstance(value, (list, tuple)):
            out += [(f"{attr}[{k}].", v) for k, v in enumerate(value) if _layer_like(v)]
        elif _layer_like(value) and not _steps(value):
            out.append((f"{attr}.", value))
    return out


def _layer_like(value: Any) -> bool:
    """Whether ``value`` is an object with attributes of its own (a layer), not an array, a container or a class."""
    return isinstance(getattr(value, "__dict__", None), dict) and not isinstance(value, (type, np.ndarray))


def step_findings(
    made: Callable[[], Any], call: tuple[str, str, str], inputs: tuple[Any, ...], dout: Any, kept: dict[str, str]
) -> list[Finding]:
    """A finding where the gradients backward returns change when the layer's optimizer objects (``kept``: parameter
    -> where its gradient is kept, as :func:`keep_gradients` names them) step their parameters, against the check's
    copies, where they hold them: one computed from the weights after their step (``self.W = self.W_opt.update(...)``
    before ``return dout @ self.W.T``), which no check on copies that never step can see. ``made()``: a fresh copy of
    the layer at the point; ``call``: the class, forward and backward names. None where a call raises (the check
    reports on its own calls)."""
    cls, forward, backward = call
    runs = []
    for stepping in (False, True):
        try:
            obj = made()
            for param, path in kept.items() if stepping else ():
                opt = Slot.parse(path.removesuffix(".grad"), "grads")  # (on a layer the object holds: layers[0].)
                setattr(opt.owner(obj), opt.attr, SteppedGradient(np.asarray(Slot.parse(param, "params").get(obj))))
            getattr(obj, forward)(*copy.deepcopy(inputs))
            ret = getattr(obj, backward)(copy.deepcopy(dout))
        except Exception:  # noqa: BLE001 - no conclusion from calls that raise
            return []
        runs.append([np.asarray(x) for _, x in flatten(ret, "ret")] if ret is not None else [])
    held, stepped = runs
    if len(held) != len(stepped) or all(near(a, b) for a, b in zip(held, stepped, strict=True)):
        return []
    opts = ", ".join(path.removesuffix(".grad") for path in kept.values())
    return [
        Finding(
            "optimizer step",
            f"{cls}.{backward} returns other gradients when its optimizers ({opts}) step the parameters than when "
            "they hold them: a gradient it returns must not depend on the step (one computed from the weights "
            "after their update); compute it, or keep the weights it needs, before the optimizers' update.",
            where=f"{cls}.{backward}",
        )
    ]
