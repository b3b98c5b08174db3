"""Layers that keep their results on themselves instead of returning them (the convention of the book "Neural
Networks from Scratch" and of many layers written after it): ``forward`` returns None (or the layer itself) and
leaves its output on ``self.output``; ``backward`` returns None and leaves the input's gradient on
``self.dinputs``. check_object finds those attributes by one forward and backward pass on a copy of the layer,
and reads them after every call as it reads a returned value.

A backward that takes forward's inputs again after dout (``backward(self, dvalues, y_true)``) is given them."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.containers import flatten, rebuild_like
from backcheck.frontends.hints import OUTPUT_NAMES
from backcheck.frontends.object_steps import call_backward
from backcheck.frontends.slots import attributes, is_float_array

#: Names an input's gradient is kept under (lower case, without underscores), after ``d`` + the input's name
#: (``dinputs`` for ``forward(self, inputs)``, ``dX`` for ``forward(self, X)``) and its ``grad_``, ``_grad`` forms.
DINPUT_NAMES = (
    "dinputs", "dinput", "dinp", "din", "dx", "dxs", "gradinput", "gradinputs", "gradin", "gradx", "inputgrad",
    "inputgradient", "inputsgrad", "delta", "dprev", "daprev", "dxprev",
)  # fmt: skip


def backward_inputs(backward: Callable[..., Any], input_names: list[str]) -> tuple[tuple[int, ...], bool]:
    """The inputs of forward that ``backward`` takes again, by name, in its order, and whether it takes them
    instead of a dout: after dout (``backward(self, dvalues, y_true)`` for ``forward(self, inputs, y_true)``), or
    alone (a loss's ``backward(self, label_tensor)``: no dout, its gradients times the scalar dout); ``((),
    False)`` when it takes other parameters or none."""
    try:
        params = list(inspect.signature(backward).parameters.values())
    except (TypeError, ValueError):
        return (), False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    free = bool(params) and params[0].kind in positional and params[0].name in input_names
    required = [
        p.name for p in params[0 if free else 1 :] if p.default is inspect.Parameter.empty and p.kind in positional
    ]
    if not required or any(n not in input_names for n in required):
        return (), False
    return tuple(input_names.index(n) for n in required), free


def _written(before: dict[str, Any], obj: Any) -> dict[str, np.ndarray]:
    """The float array attributes of ``obj`` assigned or written since ``before`` (:func:`_held`)."""
    out = {}
    for a, v in attributes(obj).items():
        was = before.get(a)
        if is_float_array(v) and (was is None or was[0] is not v or not np.array_equal(was[1], v, equal_nan=True)):
            out[a] = v
    return out


def _held(obj: Any) -> dict[str, tuple[Any, Any]]:
    """Every attribute of ``obj`` with a copy of its value where it is an array (the objects themselves are held:
    an array freed by the call would lend its id to the next)."""
    return {a: (v, v.copy() if isinstance(v, np.ndarray) else None) for a, v in attributes(obj).items()}


def _output(written: dict[str, np.ndarray], args: tuple[Any, ...]) -> str | None:
    """Of the arrays forward wrote, the one under an output's name (``self.output = inputs`` too, an identity), or
    else the only one that is not the input itself or a view of it (``self.inputs = inputs``); None when that is
    not clear."""
    named = [a for a in written if a.lower().strip("_") in OUTPUT_NAMES]
    if named:
        return named[0]
    given = [x for x in args if isinstance(x, np.ndarray)]
    own = [a for a, v in written.items() if not any(np.shares_memory(v, x) for x in given)]
    return own[0] if len(own) == 1 else None


def find_kept(layer: Any, inputs: tuple[Any, ...], spec: Any) -> tuple[str | None, str | None, tuple[int, ...]]:
    """What one forward and backward pass on a copy of the layer tells of its conventions: the attribute
    ``forward`` keeps its output on when it returns None or the layer itself; the one ``backward`` keeps the
    input's gradient on when it returns None or the layer (one differentiated input, no learning rate); and the
    float inputs backward takes again by name that are labels, not inputs to differentiate (after the first, when
    backward returns one gradient or keeps it, for the one input left: ``backward(self, label_tensor)`` of a
    loss given one-hot labels). None, None, () where the layer returns its results, or where a pass raises or the
    attribute is not clear (the check then says what it got)."""
    obj, args = copy.deepcopy(layer), copy.deepcopy(inputs)
    state = np.random.get_state()
    output = None
    try:
        held = _held(obj)
        value = getattr(obj, spec.forward)(*args)
        if value is None or value is obj:
            output = _output(_written(held, obj), args)
            if output is None:
                return None, None, ()
            value = getattr(obj, output)
        if spec.step is not None:
            return output, None, ()
        held = _held(obj)
        dout = rebuild_like(value, [np.ones_like(np.asarray(x)) for _, x in flatten(value, "out")])
        extra = tuple(copy.deepcopy(inputs[k]) for k in spec.backward_inputs)
        ret = call_backward(getattr(obj, spec.backward), dout, False, extra, spec.dout_free)
        labels = tuple(k for k in spec.backward_inputs if k in spec.diff_in and k > 0)
        rest = [k for k in spec.diff_in if k not in labels]
        labels = labels if len(rest) == 1 and (ret is None or ret is obj or is_float_array(ret)) else ()
        labels = labels or _forward_labels(value, ret, inputs, spec.diff_in)
        if (ret is not None and ret is not obj) or len(rest) != 1:
            return output, None, labels
        dinput = _kept_dinput(_written(held, obj), inputs[rest[0]], spec.input_names[rest[0]])
        # (a backward returning the layer and keeping no input gradient: darknet's, told by the check's error)
        return (None, None, ()) if ret is obj and dinput is None else (output, dinput, labels)
    except Exception:  # noqa: BLE001 - the check's own calls report the user's error
        return output, None, ()
    finally:
        np.random.set_state(state)


def _forward_labels(value: Any, ret: Any, inputs: tuple[Any, ...], diff_in: tuple[int, ...]) -> tuple[int, ...]:
    """The float inputs after the first that are one-hot (or 0/1) labels given to a loss's forward alone, where its
    backward returns one gradient, of the first input's shape (deep-learning-from-scratch's SoftmaxWithLoss:
    ``forward(x, t)``, ``backward(dout=1) -> dx``): held constant. Continuous targets are not told from a second
    input whose gradient backward forgot: those stay refused, the hint naming constant=[...]."""
    if len(diff_in) < 2 or np.ndim(value) != 0 or not is_float_array(ret):
        return ()
    if np.shape(ret) != np.shape(inputs[diff_in[0]]):
        return ()
    ones = tuple(k for k in diff_in[1:] if _zero_one(inputs[k]))
    return ones if len(ones) == len(diff_in) - 1 else ()


def _zero_one(x: Any) -> bool:
    """Whether a float array holds only zeros and ones (one-hot or binary labels), some of each."""
    a = np.asarray(x)
    return bool(a.size) and bool(np.all((a == 0) | (a == 1))) and bool(np.any(a == 1)) and bool(np.any(a == 0))


def _kept_dinput(written: dict[str, np.ndarray], x: Any, name: str) -> str | None:
    """Of the arrays backward wrote, the one under an input gradient's name (``d`` + the input's name first, then
    :data:`DINPUT_NAMES`) in the shape of the differentiated input ``x`` (named ``name``), or else in another shape;
    None when none is."""
    name = name.lower().replace("_", "")
    names = (f"d{name}", f"grad{name}", f"{name}grad", *DINPUT_NAMES)
    named = sorted(
        (a for a in written if a.lower().replace("_", "") in names),
        key=lambda a: names.index(a.lower().replace("_", "")),
    )
    fits = [a for a in named if written[a].shape == np.shape(x)]
    # (else the likely name in another shape: the check names both shapes, not a gradient missing)
    return fits[0] if fits else named[0] if named else None


def kept_note(spec: Any, labels: tuple[int, ...] = ()) -> list[str]:
    """Where the check read what the layer kept instead of returning it, and what backward was given again."""
    said = []
    if spec.kept_output is not None:
        said.append(f"{spec.cls}.{spec.forward} returns no output: it was read from self.{spec.kept_output}")
    if spec.kept_dinput is not None:
        name = spec.input_names[spec.diff_in[0]]
        kept = f"self.{spec.kept_dinput}"
        said.append(f"{spec.cls}.{spec.backward} returns no gradient: that of {name} was read from {kept}")
    if spec.backward_inputs:
        again = ", ".join(spec.input_names[k] for k in spec.backward_inputs)
        said.append(
            f"{spec.cls}.{spec.backward} was given {again} and no dout, as a loss's (its gradient times the dout)"
            if spec.dout_free
            else f"{spec.cls}.{spec.backward} was given {again} after dout, as {spec.forward} was"
        )
    if labels:
        named = ", ".join(spec.input_names[k] for k in labels)
        retaken = set(labels) <= set(spec.backward_inputs)
        how = f"taken again by {spec.backward}" if retaken else f"0/1 labels given to {spec.forward} alone"
        said.append(f"{named}: {how}, held constant (labels; constant=[...] says so too)")
    return [f"{'; '.join(said)}."] if said else []
