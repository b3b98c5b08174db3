"""check_object's look at a layer object before the check: one forward and backward pass on a fresh copy, to see
where its parameters' gradients are written (attributes, dict entries, backward's return value, or the
parameters' own step), which arrays forward sets (state) and which backward steps, and the typed errors that
name a parameter whose gradient is nowhere."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.calls import call_user, flat_outputs
from backcheck.containers import flatten, rebuild_like
from backcheck.errors import BadInputError, UserFunctionError
from backcheck.frontends.hints import object_output_error, outputs_sentence, pair_hint
from backcheck.frontends.layers import cotangents
from backcheck.frontends.object_passes import Shared, returned_heads
from backcheck.frontends.object_returns import flat_return
from backcheck.frontends.object_steps import Stepped, carried_by_forward, read_by_forward, takes_no_dout
from backcheck.frontends.slots import (
    MISSING,
    Slot,
    Where,
    attributes,
    buffer_named,
    dict_slots,
    grad_names,
    grad_slots,
    gradient_named,
    is_float_array,
    looked_labels,
    odd_arrays,
    snapshot,
    unchecked_slots,
    written_like,
    zero,
)


def with_params(template: Any, slots: list[Slot], values: Sequence[Any], shared: Sequence[Shared] = ()) -> Any:
    """A deep copy of ``template`` whose parameter arrays are fresh copies of ``values`` (aliases follow, and
    views of one another stay views of one fresh array)."""
    memo: dict[int, Any] = {id(s.get(template)): np.array(v, copy=True) for s, v in zip(slots, values, strict=True)}
    for group in shared:
        memo.update(group.memo(template, dict(zip(slots, values, strict=True))))
    views_kept(template, memo)
    return copy.deepcopy(template, memo)


def views_kept(template: Any, memo: dict[int, Any]) -> dict[int, Any]:
    """Views among the layer's array attributes kept views in the copy: ``self.W1 = self.flat[:12].reshape(3, 4)``
    beside ``self.flat`` (and gradients as views of ``self.gflat``) are views of the copy's ``flat``, so that a
    move of ``flat`` moves them and backward's writes into them reach ``gflat``, as in the layer itself (a deep
    copy gives each its own memory). Only views of an attribute that owns its C-contiguous memory; the owner's
    copy is its fresh value where it is a parameter (in ``memo``)."""
    arrays = [v for v in attributes(template).values() if isinstance(v, np.ndarray)]
    owners = [a for a in arrays if a.base is None and a.flags.c_contiguous and a.size]
    for owner in owners:
        views = [a for a in arrays if a is not owner and id(a) not in memo and a.base is owner]
        if not views:
            continue
        fresh = memo.get(id(owner))
        if fresh is None or not (isinstance(fresh, np.ndarray) and fresh.flags.c_contiguous):
            fresh = memo[id(owner)] = np.array(owner, copy=True)
        start = owner.__array_interface__["data"][0]
        for a in views:
            offset = a.__array_interface__["data"][0] - start
            if fresh.dtype == owner.dtype and fresh.nbytes == owner.nbytes and offset >= 0:
                memo[id(a)] = np.ndarray(a.shape, a.dtype, buffer=fresh, offset=offset, strides=a.strides)
    return memo


@dataclass  # -- one forward and backward pass to see where things are ---------------------------------------------
class Probe:
    changed_by_forward: set[Slot]
    updated: list[Slot]
    where: dict[Slot, Where]
    looked: dict[Slot, list[str]]
    out: Any = None
    shapes: dict[Slot, tuple[int, ...]] = field(default_factory=dict)  # the parameters' shapes, before backward
    unchecked: list[str] = field(default_factory=list)  # parameters of a kind not perturbed, with a gradient
    state: set[Slot] = field(default_factory=set)  # arrays a stepping backward updates and forward never reads
    keyed: bool = False  # backward returns the parameters' gradients in a dict keyed by their names
    returned_none: bool = False  # backward returns nothing (and keeps no input gradient found)
    stale: set[Slot] = field(default_factory=set)  # parameters whose gradient is an array backward left as it was
    after: dict[str, Any] = field(default_factory=dict)  # the layer's attributes after backward (gradients it made)


def _snap(value: Any) -> Any:
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


def _differs(before: Any, now: Any) -> bool:
    if isinstance(before, np.ndarray) and isinstance(now, np.ndarray):
        return before.shape != now.shape or not np.array_equal(before, now, equal_nan=True)
    return before is not now


def probe_layer(template: Any, slots: list[Slot], grads: Any, inputs: tuple[Any, ...], dout: Any, spec: Any) -> Probe:
    obj = spec.fresh(with_params(template, [], [], spec.shared))
    # (the objects themselves, not their ids: an array forward replaces is freed, and its id reused by the next)
    before = {s: (s.get(obj), _snap(s.get(obj))) for s in slots}
    out = call_user(lambda *a: spec.call_forward(obj, a), copy.deepcopy(inputs), f"{spec.cls}.{spec.forward}")
    if out is None or any(np.asarray(x).dtype.kind == "O" for _, x in flatten(out, "out")):
        raise object_output_error(f"{spec.cls}.{spec.forward}", out, obj)
    # set by forward (reassigned, even to equal values, or written): state such as a stored input
    changed = {s for s in slots if s.get(obj) is not before[s][0] or _differs(before[s][1], s.get(obj))}
    at_backward = {s: _snap(s.get(obj)) for s in slots}
    candidates = {s: grad_slots(s, grads) for s in slots}
    flat = [c for cs in candidates.values() for c in cs]
    zero(obj, flat)
    zeroed = {c: (c.get(obj), _snap(c.get(obj))) for c in flat}
    attrs, entries = (_snapshots(obj, slots), _entries(obj)) if grads is None else ({}, {})
    if dout is None and out is not None:
        ones = rebuild_like(out, [np.ones_like(np.asarray(x)) for _, x in flatten(out, "out")])
        dout = loss_among(out, obj, spec)
        dout = ones if dout is None else dout
    elif dout is not None:  # named with the output's shape, as check_layer names it, before backward meets it
        parts = [(n, np.asarray(p)) for n, p in flat_outputs(out, "out", f"{spec.cls}.{spec.forward}'s output")]
        cotangents(dout, parts, np.random.default_rng(0), f"{spec.cls}.{spec.forward}")
    names, odd = (f"{spec.cls}.{spec.forward}", f"{spec.cls}.{spec.backward}"), odd_arrays(obj, spec.step is not None)
    try:
        stepped = spec.step is not None
        raw = call_user(lambda d: spec.call_backward(obj, d, inputs, stepped), (copy.deepcopy(dout),), names[1])
        ret = flat_return(raw, spec.n_in, slots, spec.input_names)
    except UserFunctionError as exc:  # a backward taking one dout of a forward with several outputs: said so
        raise _loss_hint(pair_hint(exc, out, None, names), out, spec) from exc.__cause__
    updated = [s for s in slots if _differs(at_backward[s], s.get(obj))]
    head, order = _returned_order(ret, spec, slots, changed)
    where: dict[Slot, Where] = {}
    untouched: dict[Slot, Slot] = {}  # an array of the gradient's name backward left alone: the last resort
    for s in slots:
        shape = np.shape(at_backward[s])
        found = [c for c in candidates[s] if is_float_array(c.get(obj)) and c.get(obj).shape == shape]
        written = [c for c in found if c.get(obj) is not zeroed[c][0] or _differs(zeroed[c][1], c.get(obj))]
        # written in another shape, dtype or kind (a transposed dW, a list): the gradient as backward left it, for
        # the check to judge or refuse by name, never a parameter left out as a buffer
        odd_grad = [
            c
            for c in candidates[s]
            if c not in found
            and c.get(obj) is not MISSING
            and (c.get(obj) is not zeroed[c][0] or _differs(zeroed[c][1], c.get(obj)))
        ]
        if written:
            where[s] = written[0]
        elif s in order and (grads == "return" or grads is None):
            where[s] = head + order.index(s)  # (before an attribute backward left alone: self.dW from __init__)
        elif grads == "return":
            where[s] = spec.n_in + slots.index(s)
        elif found:
            untouched[s] = found[0]
        elif odd_grad:
            where[s] = odd_grad[0]
    if grads is None:  # a gradient no name pattern finds (self.d_c_w for self.weights), told by its shape
        where.update(_written_like(obj, attrs, slots, where, at_backward))
        left = {s: np.shape(at_backward[s]) for s in slots if s not in where}
        where.update(_written_in_dicts(obj, entries, left, named_only=spec.step is not None))
        # a backward given a learning rate that keeps no gradient anywhere: read off its step (one that stores the
        # gradient too, self.gradients['dW'] beside its own step, is checked on what it stores)
        steps = [s for s in updated if spec.step is not None and s not in where]
        where.update({s: Stepped(s) for s in steps if read_by_forward(spec, template, s, inputs, out)})
    stale = {s for s in untouched if s not in where}
    where.update({s: untouched[s] for s in stale})
    if spec.step is not None:  # an optimizer's state in a dict or list (Adam's moments), which forward never reads
        odd = {k: v for k, v in odd.items() if k[1] is None or read_by_forward(spec, template, Slot(*k), inputs, out)}
    unchecked = unchecked_slots(obj, odd, {s.attr for s in slots})  # (and a stepping backward's state: momentum)
    state = {s for s in updated if spec.step is not None and s not in where}
    # rebound by forward to the very values it held (self.W = self.W.astype(X.dtype), a clip that clips nothing,
    # np.ascontiguousarray): a parameter still where backward wrote its gradient and forward carries over what it
    # held (a stored input, self.x = x, is overwritten whatever it held)
    changed -= {
        s
        for s in changed & set(where)
        if not _differs(before[s][1], at_backward[s]) and carried_by_forward(spec, template, s, inputs, at_backward[s])
    }
    tail = ["backward's return value (one gradient per input, then per parameter)"] if grads is None else []
    looked = {s: looked_labels(obj, candidates[s], np.shape(at_backward[s])) + tail for s in slots}
    shapes = {s: np.shape(at_backward[s]) for s in slots}
    keyed, after = ret is not raw and (isinstance(raw, Mapping) or isinstance(raw[-1], Mapping)), attributes(obj)
    return Probe(changed, updated, where, looked, out, shapes, unchecked, state, keyed, raw is None, stale, after)


def probe_searched(
    template: Any, slots: list[Slot], grads: Any, inputs: tuple[Any, ...], dout: Any, spec: Any
) -> tuple[list[Slot], Probe, list[str]]:
    """:func:`probe_layer` over parameters searched for, less the arrays backward writes and forward never reads
    where no gradient of theirs was found: gradients kept on the object (CMU 11-785's ``self.dLdW``, a holder
    ``self.g = SimpleNamespace(W=zeros)`` made in ``__init__``), which are no parameters, and whose parameters'
    gradients they are (the probe is taken again without them)."""
    probe = probe_layer(template, slots, grads, inputs, dout, spec)
    written = [s for s in probe.updated if s not in probe.where and s not in probe.changed_by_forward]
    kept = [s for s in written if not read_by_forward(spec, template, s, inputs, probe.out)]
    if not kept:
        return slots, probe, []
    rest = [s for s in slots if s not in kept]
    again = probe_layer(template, rest, grads, inputs, dout, spec)
    shapes = {probe.shapes[s] for s in kept}
    if any(again.shapes[s] in shapes for s in rest if s not in again.where or s in again.stale):
        return slots, probe, []  # (one of them may be a parameter's gradient under a name no search knows: gW)
    note = (
        f"not checked: {', '.join(s.name for s in kept)} (written by {spec.cls}.{spec.backward}, never read by "
        f"{spec.cls}.{spec.forward}: gradients or an optimizer's state kept on the object, not parameters)."
    )
    return rest, again, [note]


def _loss_hint(exc: UserFunctionError, out: Any, spec: Any) -> UserFunctionError:
    """``exc`` with a hint for a loss whose backward takes the predictions where check_object gives a dout
    (``backward(self, dvalues, y_true)`` of "Neural Networks from Scratch", given its output as ``dvalues``)."""
    if (
        not spec.backward_inputs
        or spec.dout_free
        or np.ndim(out) > 1
        or not isinstance(out, (np.ndarray, float, np.floating))
    ):
        return exc
    first = spec.input_names[0]
    said = (
        f"{spec.cls}.{spec.backward} was given a dout of {spec.cls}.{spec.forward}'s loss and "
        f"{', '.join(spec.input_names[k] for k in spec.backward_inputs)}; a loss whose backward takes the "
        f"predictions instead (as nnfs' loss.backward(output, y) does: the softmax output, or {first} again) is "
        "checked as one function: "
        "backcheck.check(lambda p: <the mean loss at p>, p, lambda p: <the gradient its backward leaves at p>)."
    )
    return UserFunctionError(exc.message, f"{exc.hint} {said}" if exc.hint else said)


def _snapshots(obj: Any, slots: list[Slot]) -> dict[tuple, Any]:
    """:func:`snapshot` of ``obj`` and of every layer it holds that holds a parameter, by the steps that reach it."""
    return {via: snapshot(Slot("", via=via).owner(obj)) for via in {(), *(s.via for s in slots)}}


def _written_like(
    obj: Any, snaps: dict[tuple, Any], slots: list[Slot], where: dict[Slot, Where], at: dict[Slot, Any]
) -> dict[Slot, Slot]:
    """:func:`written_like` on ``obj`` and on each layer it holds, for the parameters no pattern placed (a network's
    ``fc1.dw`` for ``fc1.weight``)."""
    found: dict[Slot, Slot] = {}
    for via, before in snaps.items():
        group = {s: np.shape(at[s]) for s in slots if s.via == via and s not in where}
        taken = {s.attr for s in slots if s.via == via} | {
            w.attr for w in where.values() if isinstance(w, Slot) and w.via == via
        }
        owner = Slot("", via=via).owner(obj) if via else obj
        if group and owner is not MISSING:
            placed = written_like(owner, before, group, taken)
            found.update({s: dataclasses.replace(g, via=via) for s, g in placed.items()})
    return found


def _holders(obj: Any) -> dict[str, Any]:
    """The entries of ``obj``'s dict attributes and of its plain objects' attributes (``self.g =
    SimpleNamespace()``), by holder: where a backward may keep gradients beside the parameters' own holder."""
    out = {}
    for a, v in attributes(obj).items():
        if isinstance(v, Mapping):
            out[a] = dict(v)
        elif (
            hasattr(v, "__dict__")
            and not isinstance(v, type)
            and not callable(v)
            and not callable(getattr(v, "backward", None))
        ):
            out[a] = attributes(v)
    return out


def _entries(obj: Any) -> dict[tuple[str, Any], tuple[np.ndarray, np.ndarray]]:
    """The float arrays :func:`_holders` finds, by ``(holder, key)``: the arrays and copies."""
    return {(a, k): (x, x.copy()) for a, v in _holders(obj).items() for k, x in v.items() if is_float_array(x)}


def _written_in_dicts(
    obj: Any,
    before: Mapping[tuple[str, Any], tuple[np.ndarray, np.ndarray]],
    shapes: Mapping[Slot, tuple[int, ...]],
    named_only: bool = False,
) -> dict[Slot, Slot]:
    """Gradients of parameters held in a dict attribute (``self.p["W"]``) or a plain object (``self.p.W``) that
    backward writes into another such holder under the parameter's key or a gradient's name for it
    (``self.g["dW"]``, ``self.g.W``): the one such entry in the parameter's shape, when there is one.
    ``named_only``: under a gradient's name only (a backward that steps keeps its momentum under the key)."""
    found = {}
    holders = _holders(obj)
    for s, shape in shapes.items():
        own = s.via[0][0] if len(s.via) == 1 and s.via[0][1] is None and s.key is None else s.attr
        key = s.key if isinstance(s.key, str) and not s.via else s.attr if own != s.attr else None
        if key is None:
            found.update(_named_entry(obj, holders, before, s, shapes))
            continue
        names = (key, *grad_names(key))
        fits = [
            (a, k)
            for a, v in holders.items()
            if a != own
            for k, x in v.items()
            if k in names
            and is_float_array(x)
            and x.shape == shape
            and _differs(before.get((a, k), (None, None))[1], x)
        ]
        named = [f for f in fits if f[1] != key]  # (a gradient's name, dW, before the key itself: momentum["W"])
        if len(named) == 1 or (len(fits) == 1 and not named_only):
            a, k = named[0] if len(named) == 1 else fits[0]
            found[s] = Slot(a, k) if isinstance(attributes(obj)[a], Mapping) else Slot(k, via=((a, None),))
        else:
            found.update(_named_entry(obj, holders, before, s, shapes))
    return found


def _named_entry(
    obj: Any,
    holders: Mapping[str, Mapping[Any, Any]],
    before: Mapping[tuple[str, Any], tuple[np.ndarray, np.ndarray]],
    s: Slot,
    shapes: Mapping[Slot, tuple[int, ...]],
) -> dict[Slot, Slot]:
    """The gradient of the attribute ``s`` that backward writes into a dict of its layer (``obj``'s, or of the
    layer ``obj`` holds it in) under a gradient's name for it (``self.gradients['dLdW']`` for
    ``self.weights``): the one such entry in its shape, named for no other parameter of that shape. ``holders``
    and ``before``: ``obj``'s own, and their values before backward."""
    if s.key is not None:
        return {}
    if s.via:
        owner = Slot("", via=s.via).owner(obj)
        holders, before = ({} if owner is MISSING else _holders(owner)), {}
    shape = shapes[s]
    fits = [
        (a, k)
        for a, v in holders.items()
        if isinstance(v, Mapping)
        for k, x in v.items()
        if isinstance(k, str)
        and gradient_named(k, s.attr)
        and is_float_array(x)
        and x.shape == shape
        and _differs(before.get((a, k), (None, None))[1], x)
        and not any(gradient_named(k, o.attr) for o, sh in shapes.items() if o != s and o.via == s.via and sh == shape)
    ]
    return {s: Slot(*fits[0], via=s.via)} if len(fits) == 1 else {}


def _returned_order(ret: Any, spec: Any, slots: list[Slot], changed: set[Slot]) -> tuple[int, list[Slot]]:
    """Where the parameters' gradients start in ``backward``'s return value (after one gradient per input, or per
    differentiated input: :func:`returned_heads`), and the parameters whose gradients it returns there, in order:
    every slot's (``(dX, dW, db)``), or those of the slots forward leaves alone where the others are its state (a
    batch norm's running statistics beside ``(dX, dgamma, dbeta)``); none when the return value holds neither."""
    free = [s for s in slots if s not in changed]
    for order in (slots, free, [s for s in free if not buffer_named(s)]):  # (eval mode: running statistics read)
        heads = returned_heads(spec, ret, len(order))
        if heads and order:
            return heads[0], order
    return spec.n_in, []


def named_grads(slots: list[Slot], grads: Any, spec: Any) -> set[Slot]:
    """The parameters whose gradient ``grads=`` names one by one (a dict), or :class:`BadInputError` for a key
    that names no parameter of the layer."""
    if not isinstance(grads, Mapping):
        return set()
    named = {s for s in slots if any(k in grads for k in (s.name, s.path, s.label))}
    known = {k for s in slots for k in (s.name, s.path, s.label)}
    unknown = sorted(str(k) for k in grads if k not in known)
    if unknown:
        raise BadInputError(
            f"grads= names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not a parameter of "
            f"{spec.cls} (its parameters: {', '.join(s.name for s in slots) or 'none found'}).",
            "key grads= by the parameters' names, e.g. grads={'W': 'dW'}; params=[...] names the parameters.",
        )
    return named


def keep_params(
    slots: list[Slot], probe: Probe, searched: bool, notes: list[str], spec: Any, named: set[Slot]
) -> tuple[list[Slot], list[str]]:
    """The parameters to check: when they were searched for (or named as a whole dict), those forward leaves alone
    and whose gradient backward writes; otherwise every one, each with a gradient (or a typed error naming it).
    A parameter whose gradient ``grads=`` names (``named``) is never left out: it has that gradient, or the error."""
    missing = [s for s in slots if s in named and s not in probe.where]
    if missing:
        raise _no_gradient(missing[0], probe, spec)
    if searched:
        state = [s for s in slots if s in probe.changed_by_forward]
        kept = [s for s in slots if s not in probe.changed_by_forward and s in probe.where]
        lost = [s for s in slots if s not in probe.changed_by_forward and s not in probe.where]
        hidden = [s for s in lost if s in probe.updated and s not in probe.state]  # (momentum: forward reads none)
        if (kept or all(buffer_named(s) for s in lost)) and not hidden:  # (a positional table beside no weight)
            if lost:
                what = "entries" if dict_slots(lost) else "float array attributes"
                notes = [
                    *notes,
                    f"not checked: {', '.join(s.name for s in lost)} ({what} of {spec.cls} with no gradient after "
                    f"{spec.backward}, such as buffers; name them in params= and grads= to check them).",
                ]
            if state:
                notes = [*notes, f"{', '.join(s.name for s in state)}: set by {spec.forward} (state, not parameters)."]
            return kept, notes
        slots = hidden or lost
    for s in slots:
        if s not in probe.where:
            raise _no_gradient(s, probe, spec)
    return slots, notes


def loss_among(out: Any, layer: Any, spec: Any) -> Any:
    """For a loss's backward that takes no dout beside several outputs of forward of which one is a single number
    (``forward(x, y) -> (probs, loss)``, ``backward(self)``): a dout of 1 on that number and 0 on the others (the
    loss is what backward differentiates); None for any other layer."""
    leaves = [np.asarray(x) for _, x in flatten(out, "out")]
    scalars = [k for k, x in enumerate(leaves) if x.size == 1]
    if len(leaves) < 2 or len(scalars) != 1 or not (spec.dout_free or takes_no_dout(getattr(layer, spec.backward))):
        return None
    return rebuild_like(out, [np.full(x.shape, float(k in scalars), np.float64) for k, x in enumerate(leaves)])


def loss_dout(dout: Any, layer: Any, probe: Probe, notes: list[str], spec: Any) -> tuple[Any, list[str]]:
    """``dout`` filled with the default of ``backward``'s first parameter (``backward(self, dout=1)`` of a loss
    layer, which may ignore it), when none is given; else ``dout`` as it is."""
    if dout is not None or probe.out is None:
        return dout, notes
    picked = loss_among(probe.out, layer, spec)
    if picked is not None:
        k = next(k for k, (_, x) in enumerate(flatten(picked, "out")) if np.any(x))
        said = f"{spec.cls}.{spec.forward}'s output {k} is the loss {spec.cls}.{spec.backward} differentiates"
        return picked, [*notes, f"{said} (its one number): dout 1 on it, 0 on the others."]
    leaves = [np.asarray(x) for _, x in flatten(probe.out, "out")]
    try:
        first = next(iter(inspect.signature(getattr(layer, spec.backward)).parameters.values()), None)
    except (TypeError, ValueError):
        return dout, notes
    default = None if first is None else first.default
    if isinstance(default, bool) or not isinstance(default, (int, float)) or default == 0:  # (0 compares nothing)
        return dout, notes
    filled = [np.full(x.shape, default, dtype=x.dtype if x.dtype.kind == "f" else np.float64) for x in leaves]
    note = f"dout = {default} everywhere: {spec.cls}.{spec.backward}'s dout defaults to {default} (dout= sets another)."
    return rebuild_like(probe.out, filled), [*notes, note]


#: What is left of a slot's name around another's when it is that one's gradient (``gW``, ``dW``, ``W_grad``).
GRADIENT_MARKS = ("d", "g", "grad", "grads", "delta", "gradient")


def _gradient_of(s: Slot, probe: Probe) -> Slot | None:
    """The parameter ``s`` may be the gradient of, by its name (``gW``, ``dW`` for ``_W``) and its shape."""
    name = s.name.lower()
    for other in probe.where:
        base = other.name.lstrip("_").lower()
        # a gradient's marker before or after the name (gW, dW, grad_a, W_grad), not another parameter (W2 beside
        # W); the name is taken from the end it stands at, not from inside the marker (grad_a for a)
        marks = {name.removesuffix(base).strip("_")} if base and name.endswith(base) else set()
        marks |= {name.removeprefix(base).strip("_")} if base and name.startswith(base) else set()
        if other != s and probe.shapes.get(other) == probe.shapes.get(s) and marks & set(GRADIENT_MARKS):
            return other
    return None


def _no_gradient(s: Slot, probe: Probe, spec: Any) -> BadInputError:
    looked = ", ".join(probe.looked[s]) or "backward's return value"
    said = outputs_sentence(probe.out, None, (f"{spec.cls}.{spec.forward}", f"{spec.cls}.{spec.backward}"))
    like = _gradient_of(s, probe)
    if s in probe.updated and like is not None:
        return BadInputError(
            f"{spec.cls}.{spec.backward} writes {s.label}, which backcheck took for a parameter (a float array "
            f"attribute {spec.forward} leaves alone); by its name and shape it may be the gradient of {like.label}, "
            f"whose gradient backcheck looked for in {', '.join(probe.looked[like]) or 'its return value'}.",
            f"if {s.label} is {like.name}'s gradient, name it: grads={{{like.name!r}: {s.path!r}}} (and "
            f"params=[{like.path!r}, ...]); if it is a parameter updated inside backward, store its gradient on the "
            f"object before the update and name it in grads=.",
        )
    if s in probe.updated:
        dname = s.prefix + "d" + (s.attr if s.key is None else str(s.key))  # (self.layers[0].dW for layers[0].W)
        return BadInputError(
            f"{spec.cls}.{spec.backward} updates the parameter {s.label} (an optimizer step inside backward) and "
            f"leaves no gradient for it where backcheck looked ({looked}); the gradient cannot be recovered from "
            "the update.",
            f"store the gradient on the object before the update (self.{dname} = ...), and name where it is if "
            f"backcheck does not find it: grads={{{s.name!r}: {dname!r}}}.",
        )
    return BadInputError(
        f"found no gradient of {s.label} after {spec.cls}.{spec.backward}: looked in {looked} (for an array of "
        f"{s.name}'s shape).",
        "name where backward writes it: grads='gradients' (a dict attribute), grads='d{}' (a pattern), "
        f"grads={{{s.name!r}: 'attribute'}}, or grads='return' if backward returns it after the inputs' gradients; "
        "or leave it out of params=[...] if it is not a parameter." + (f" {said}" if said else ""),
    )


def probe_with_held(template: Any, slots: list[Slot], held: list[Slot], how: tuple[Any, ...]) -> tuple[list[Slot], Any]:
    """The slots params= names, and those holding their very arrays (tied to them) where backward leaves a
    gradient for each; with the probe of the layer. ``how``: grads, inputs, dout and the spec."""
    if held:
        try:
            return [*slots, *held], probe_layer(template, [*slots, *held], *how)
        except BadInputError:  # one gradient for the array (self.params = [self.W]): the named slot's holds it all
            pass
    return slots, probe_layer(template, slots, *how)
