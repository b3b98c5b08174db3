"""What check_layer and check_object tell a user whose layer does not follow their conventions: a forward pass
that returns the layer object (keeping its output on an attribute), one that returns ``(out, cache)`` without
``cache=True``, and a backward pass that returns one gradient where a float input beside it is a constant; and
the checks of a layer's output and of the ``dout`` given for it."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from backcheck.calls import flat_outputs
from backcheck.containers import flatten
from backcheck.errors import BadInputError, GradientStructureError, NonFiniteError, UserFunctionError
from backcheck.frontends.common import zero_dout_error


def output_described(value: Any) -> str:
    """What a forward pass returned instead of float arrays: ``None``, ``the layer object itself``, ``a dict``."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    return f"a {type(value).__name__} object"


#: Names a layer keeps its output under (lower case, without leading or trailing underscores).
OUTPUT_NAMES = ("output", "out", "y", "a", "activation", "outputs")


def kept_outputs(obj: Any) -> list[str]:
    """The float array attributes of ``obj`` a forward pass may keep its output on (``self.output``, ``self.out``)
    , the likely names first."""
    try:
        attrs = vars(obj)
    except TypeError:
        return []
    arrays = [a for a, v in attrs.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    likely = [a for a in arrays if a.lower().strip("_") in OUTPUT_NAMES]
    return likely + [a for a in arrays if a not in likely]


def object_output_error(fname: str, value: Any, layer: Any = None) -> BadInputError:
    """A forward pass returned an object (the layer itself, as darknet-style layers do) instead of its output."""
    itself = layer is not None and value is layer
    what = "the layer object itself (self)" if itself else output_described(value)
    kept = kept_outputs(value if value is not None and not isinstance(value, np.ndarray) else layer)
    where = f"self.{kept[0]}" if kept else "an attribute"
    hint = (
        f"return the output array from forward. A layer that keeps its output on {where} can be wrapped: a subclass "
        f"whose forward calls the layer's and returns {where}, and whose backward(dout) returns the input's "
        "gradient (setting the attribute the layer reads its upstream gradient from, such as self.delta)."
    )
    return BadInputError(f"{fname} returned {what}; a layer's output must be a float array.", hint)


def cache_error(fname: str, bname: str, backward: Callable[..., Any], out: Any, n_inputs: int) -> BadInputError | None:
    """The CS231n convention without ``cache=True``: ``forward`` returned a pair and ``backward`` takes
    ``(dout, cache)``, not ``(dout, *inputs)``; None when it does not look like that."""
    if not (isinstance(out, tuple) and len(out) == 2):
        return None
    try:
        sig = inspect.signature(backward)
    except (TypeError, ValueError):
        return None
    if _binds(sig, 1 + n_inputs) or not _binds(sig, 2):
        return None
    return BadInputError(
        f"{fname} returned a pair and {bname} takes two arguments, as in the (out, cache) convention; without "
        f"cache=True, check_layer calls {bname}(dout, *inputs), with {n_inputs} inputs.",
        "pass cache=True for the forward(*inputs) -> (out, cache), backward(dout, cache) convention.",
    )


def cache_hint(out: Any, part: str) -> str:
    """A sentence for an output of an unusual dtype: the second item of a returned pair may be a cache."""
    if isinstance(out, tuple) and len(out) == 2 and part.startswith("out[1]"):
        return " If forward returns (out, cache), pass cache=True."
    return ""


def pair_hint(
    exc: UserFunctionError, out: Any, cache: bool | None, names: tuple[str, str] = ("forward", "backward")
) -> UserFunctionError:
    """``backward``'s error, with a hint when ``forward`` returned several outputs: ``backward`` then received a
    tuple of as many douts, one per output (a backward written for the first output's gradient alone fails on
    it); for a pair without ``cache=True``, the pair may be ``(out, cache)``. ``names``: forward's and
    backward's names; ``cache=None`` for a layer object (no cache convention)."""
    said = outputs_sentence(out, cache, names)
    if cache and isinstance(exc.__cause__, TypeError) and "argument" in str(exc.__cause__):
        fname, bname = names
        said = (
            f"with cache=True, {bname} is called as {bname}(dout, cache) when {fname} returns (out, cache), and as "
            f"{bname}(dout_1, ..., dout_k, cache) when it returns (out_1, ..., out_k, cache): one dout per output."
        )
    if not said:
        return exc
    return UserFunctionError(exc.message, f"{exc.hint} {said}" if exc.hint else said)


def outputs_sentence(out: Any, cache: bool | None, names: tuple[str, str]) -> str:
    """What :func:`pair_hint` adds ('' when ``forward`` returned one output, or ``cache=True``)."""
    if cache or not isinstance(out, (tuple, list, Mapping)):
        return ""
    try:
        parts = [n for n, _ in flatten(out, "out")]
    except Exception:  # noqa: BLE001 - an output the check reports on by itself
        return ""
    if len(parts) < 2:
        return ""
    fname, bname = names
    shown = ", ".join(parts[:4]) + (", ..." if len(parts) > 4 else "")
    said = (
        f"{fname} returned {len(parts)} outputs ({shown}), so {bname} received a {type(out).__name__} of "
        f"{len(parts)} douts, one per output, as dout (numpy stacks it into one array with a leading axis of "
        f"{len(parts)} where it meets an array)."
    )
    if cache is False and isinstance(out, tuple) and len(out) == 2:
        said += " If the pair is (out, cache), pass cache=True."
    return said + (
        f" If {bname} takes the gradient of one output alone (the others' reaching it another way, as an LSTM "
        "cell's state), check a forward that returns only that output: a wrapper whose forward returns it."
    )


def torch_inputs(fname: str, names: Sequence[str], inputs: Sequence[Any]) -> BadInputError | None:
    """The error for float torch tensors given to the numpy layer checks (check_layer, check_object), which
    would pass them through unperturbed; None when there are none."""
    torch = sys.modules.get("torch")
    tensors = [n for n, x in zip(names, inputs, strict=True) if torch is not None and isinstance(x, torch.Tensor)]
    if not tensors or not any(inputs[list(names).index(n)].is_floating_point() for n in tensors):
        return None
    return BadInputError(
        f"{fname}'s input(s) {', '.join(tensors)} are torch tensors, not numpy arrays: check_layer and "
        "check_object perturb numpy arrays only.",
        "for torch code, wrap forward and backward in a torch.autograd.Function (backward from ctx's saved "
        "tensors) and check it with backcheck.torch.check_function(Fn, *tensors); for numpy code, pass "
        "x.detach().numpy() instead of each tensor.",
    )


def order_error(
    grads: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], order: Sequence[str], bname: str
) -> GradientStructureError | None:
    """The error for gradients returned in another order than forward's parameters (``dW, dx, db``): a gradient
    of the wrong shape that has another input's shape; None when none does."""
    for n, g in grads.items():
        shape = _shape(g)
        if shape is None or n not in shapes or shape == shapes[n]:
            continue
        like = [m for m in order if m != n and shapes.get(m) == shape]
        if not like:
            continue
        return GradientStructureError(
            f"the gradient {bname} returned for {n} has shape {shape}, the shape of {like[0]}, but {n} has shape "
            f"{shapes[n]}.",
            f"the gradients look out of order: return them in forward's parameter order ({', '.join(order)}); the "
            f"one in {n}'s place has {' or '.join(like)}'s shape. If they are in order, look for a missing sum over "
            "the batch axis or a missing transpose.",
        )
    return None


def _shape(g: Any) -> tuple[int, ...] | None:
    """``g``'s shape as numpy reads it; None for None and for a ragged sequence (told as such later)."""
    try:
        return None if g is None else np.shape(g)
    except ValueError:
        return None


def stale_note(stale: Sequence[str], spec: Any) -> str:
    """The note for a layer object that fails everywhere and holds inputs from a forward pass run before the
    check (``stale``: :func:`~backcheck.frontends.slots.stale_arrays`)."""
    shown = ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else "")
    return (
        f"every element of every input fails, and {spec.cls} already holds {shown} from before the check: a "
        f"{spec.forward} run earlier stored its input, and {spec.backward} may read that one instead of the "
        f"evaluation's (a list it appends to, an attribute it keeps). Every evaluation runs on a copy of the layer "
        "as you passed it: pass reset= (the layer's method that clears that state, e.g. reset='flush_gradients', "
        "or a function of the layer) or a layer that has not run forward yet."
    )


def stale_hint(exc: UserFunctionError, stale: Sequence[str], spec: Any) -> UserFunctionError:
    """A layer object's error, with :func:`stale_note`'s advice when it holds inputs from an earlier forward."""
    if not stale or spec.reset is not None:
        return exc
    shown = ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else "")
    hint = (
        f"{spec.cls} already holds {shown} from a {spec.forward} run before the check, and every evaluation runs "
        "on a copy of the layer as you passed it: pass reset= (the method that clears that state, e.g. "
        "reset='flush_gradients') or a layer that has not run forward yet."
    )
    return UserFunctionError(exc.message, f"{exc.hint} {hint}" if exc.hint else hint)


def updated_step(report: Any, updated: Sequence[str], bname: str) -> None:
    """A 'nonlinear backward' finding of a layer object whose backward updates parameters (``updated``) itself,
    told where the nonlinearity may come from: gradients computed after the step, from the new values."""
    for found in report.findings if updated else ():
        if found.kind == "nonlinear backward":
            found.message += (
                f" {bname} updates {', '.join(updated)} itself: a gradient computed after that step, from the new "
                "values, depends on dout through the step too; compute every gradient before updating."
            )


def _binds(sig: inspect.Signature, n: int) -> bool:
    try:
        sig.bind(*([None] * n))
    except TypeError:
        return False
    return True


def constant_hint(diff_names: Sequence[str], returned: int = 1) -> str:
    """For a backward that returned ``returned`` gradients, fewer than there are float inputs: the inputs after
    those (a mask after q, k, v; labels after the predictions) may be constants."""
    returned = max(1, min(returned, len(diff_names) - 1))
    if len(diff_names) < 2:
        return ""
    rest, first = list(diff_names[returned:]), list(diff_names[:returned])
    return (
        f" If {', '.join(rest)} {'is a constant' if len(rest) == 1 else 'are constants'} of the layer (a target, "
        f"a mask, a fixed weight), declare {'it' if len(rest) == 1 else 'them'}: constant={rest!r} (or check "
        f"only {', '.join(first)} with wrt={first!r})."
    )


def check_outputs(parts: list[tuple[str, np.ndarray]], fname: str, out0: Any) -> None:
    """Every output of the forward pass (``out0``, flattened to ``parts``) a finite float array, or a typed error
    naming it."""
    for n, p in parts:
        if p.dtype.kind == "O" and p.shape == () and p.item() is None:
            raise BadInputError(
                f"{fname}'s output {n} is None (dtype object); a layer's output must be a float array.",
                "return the computed array (a forward pass left as a TODO returns None).",
            )
        if p.dtype.kind == "O" and p.shape == () and n == "out":
            raise object_output_error(fname, p.item())
        if p.dtype.kind != "f":
            raise BadInputError(
                f"{fname}'s output {n} has dtype {p.dtype}; a layer's output must be float.",
                "return float arrays." + cache_hint(out0, n),
            )
        if np.isnan(p).any():
            raise NonFiniteError(
                f"{fname}'s output {n} contains NaN at the original point.",
                "check the inputs and the forward pass for log(0), 0/0 or overflow.",
            )
    if sum(p.size for _, p in parts) and not any(np.isfinite(p).any() for _, p in parts):
        raise NonFiniteError(
            f"{fname}'s outputs are all infinite at the original point: nothing is left to check.",
            "check the inputs and the forward pass for overflow; a mask (-inf) may cover some entries only.",
        )


def cotangents(
    dout: Any, parts: list[tuple[str, np.ndarray]], rng: np.random.Generator, fname: str
) -> list[np.ndarray]:
    """The cotangent of every output: ``dout`` checked against the outputs ``parts``, or a seeded normal draw; 0 at
    masked entries (+-inf: a softmax after the mask gives them no gradient, and phi leaves them out)."""
    out = (
        [rng.standard_normal(p.shape).astype(p.dtype) for _, p in parts] if dout is None else _given(dout, parts, fname)
    )
    for (_, p), d in zip(parts, out, strict=True):
        d[np.isinf(p)] = 0.0
    if dout is not None and any(x.size for x in out) and not any(bool(np.any(x != 0)) for x in out):
        masked = any(bool(np.isinf(p).any()) for _, p in parts)
        raise zero_dout_error(fname, masked=masked)
    return out


def _numbers_like(dout: Any, out: np.ndarray) -> bool:
    """Whether ``dout`` (a list or tuple) is a nested list of numbers in the shape of the one output ``out``."""
    try:
        arr = np.asarray(dout)
    except (ValueError, TypeError):  # (ragged)
        return False
    return arr.shape == out.shape and arr.dtype.kind in "fiu"


def _given(dout: Any, parts: list[tuple[str, np.ndarray]], fname: str) -> list[np.ndarray]:
    """The user's ``dout``, one float array per output in its shape (copies), or a typed error."""
    given = flat_outputs(dout, "dout", "dout")
    if len(parts) == 1 and len(given) != 1 and isinstance(dout, (list, tuple)) and _numbers_like(dout, parts[0][1]):
        given = [("dout", np.asarray(dout, dtype=np.float64))]  # (a nested list of numbers: one array, as written)
    if len(given) != len(parts):
        raise GradientStructureError(
            f"dout has {len(given)} array(s), but {fname} returns {len(parts)} ({', '.join(n for n, _ in parts)}).",
            "pass one upstream gradient per output, in the output's structure.",
        )
    out = []
    for (gname, gval), (pname, p) in zip(given, parts, strict=True):
        arr = np.asarray(gval)
        if arr.shape != p.shape:
            raise GradientStructureError(
                f"{gname} has shape {arr.shape}, but {fname}'s output {pname} has shape {p.shape}.",
                "dout must have the shape of the output it is the gradient of.",
            )
        if arr.dtype.kind != "f":
            raise GradientStructureError(f"{gname} has dtype {arr.dtype}; it must be float.", "pass a float array.")
        if not np.all(np.isfinite(arr) | np.isinf(p)):  # (at a masked entry of the output it is set to 0)
            raise NonFiniteError(f"{gname} contains NaN or Inf.", "pass a finite upstream gradient dout.")
        out.append(arr.copy())
    return out


def masked_note(counts: list[tuple[str, int, int]]) -> str:
    """A note naming the outputs with masked (+-inf) entries, ``(name, masked, size)`` each, or ''."""
    said = ", ".join(f"{n} ({k} of {size})" for n, k, size in counts if k)
    if not said:
        return ""
    return (
        f"masked entries (+-inf at the original point) of {said} are left out: their dout is 0, as a softmax after "
        "the mask gives them, and they must stay masked at every step."
    )


def nested_params_error(cls: str, params: str, inner: list[Any]) -> BadInputError:
    """Naming a dict of dicts of arrays (``self.params = {'fc1': {'W': W}}``) as the parameters: where they are."""
    return BadInputError(
        f"{cls}.{params} holds no float array itself: its arrays sit one level down, in dicts "
        f"({', '.join(map(repr, inner[:4]))}), a nested layout check_object takes no parameters from.",
        "keep one flat dict of parameters (self.params['fc1_W']) with its gradients beside it, or check each "
        "sub-layer with check_object on its own.",
    )
