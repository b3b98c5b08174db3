"""Layer objects that keep state: ``layer.forward(*inputs)`` stores on the object what ``layer.backward(dout)``
needs, and the parameters and their gradients live on the object too (numpy-ml's ``self.parameters`` and
``self.gradients`` dicts, or attributes ``W`` / ``dW``); some layers even take an SGD step inside ``backward``.

:func:`check_object` reduces such an object to :func:`~backcheck.check_layer`'s ``forward(*inputs, *params)`` and
``backward(dout, *inputs, *params)``. Every call works on a fresh deep copy of the layer holding the parameters of
the point being evaluated, so state kept between forward and backward, gradients accumulated with ``+=`` and weight
updates inside backward never leak into another evaluation, nor into the caller's object.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.calls import arg_names, call_user, flat_outputs, kind_of, typed_arguments
from backcheck.containers import flatten, rebuild_like
from backcheck.errors import BadInputError, UserFunctionError
from backcheck.findings import unchecked_attributes
from backcheck.frontends.common import float_input, float_list, python_float
from backcheck.frontends.hints import (
    cotangents,
    object_output_error,
    outputs_sentence,
    pair_hint,
    stale_hint,
    stale_note,
    updated_step,
)
from backcheck.frontends.layers import check_layer, names_option
from backcheck.frontends.object_passes import Backward, Forward, Shared, shared, tie, tie_views
from backcheck.frontends.object_steps import Stepped, call_backward, learning_rate_of, read_by_forward, stepped_note
from backcheck.frontends.slots import (
    Slot,
    Where,
    declared,
    dict_slots,
    grad_slots,
    is_float_array,
    looked_labels,
    named,
    odd_arrays,
    snapshot,
    stale_arrays,
    unchecked_slots,
    where_notes,
    written_like,
    zero,
)
from backcheck.randomness import keeps_random
from backcheck.report import Report
from backcheck.verdict import OK

#: check_layer's arguments that check_object builds itself (every other keyword passes through).
_BUILT = frozenset({"forward", "backward", "inputs", "dout", "cache", "names"})


@keeps_random  # the user's random streams are left as they were found
@typed_arguments
def check_object(
    layer: Any,
    *inputs: Any,
    params: str | Sequence[str] | None = None,
    grads: str | Mapping[str, str] | None = None,
    forward: str = "forward",
    backward: str = "backward",
    reset: str | Callable[[Any], Any] | None = None,
    dout: Any = None,
    **options: Any,
) -> Report:
    """Check a layer object that keeps its state, parameters and gradients on itself.

    The object is called as ``out = layer.forward(*inputs)`` then ``dx = layer.backward(dout)``; the inputs and
    the parameters are checked, the parameters named by their attribute names (or dict keys).

    Parameters
    ----------
    layer : object
        The layer. It is never called nor changed: every evaluation works on a deep copy of it (its random
        generators are copied too, so a dropout mask is the same at every evaluation). A layer whose
        parameters are created by its first forward pass (lazy initialisation) is initialised on a copy to find
        them; then every evaluation initialises a fresh copy of the untouched layer at its own input (numpy's
        global generator left as it was) and installs the point's parameter values, so what the first pass
        stored (inputs appended to a list) is never read by another evaluation. A layer whose forward pass
        carries state to the next call (a recurrent step: a second pass at the point gives another output)
        continues from the initialised copy instead, with a note; ``reset=`` then starts every evaluation
        from a flushed layer.
    *inputs : arrays
        The point, as ``forward`` takes it, passed as :func:`~backcheck.check_layer` passes its inputs: labels
        and config unperturbed, a list of float arrays as one input.
    params : str, sequence of str or None
        Where the parameters are: a dict attribute (``"parameters"``), or attribute names (``["W", "b"]``,
        also ``"parameters[W]"``, ``"W[val]"``), or ``()`` for a layer without parameters. Default: the dict
        attribute ``parameters`` or ``params``; else the attributes that are dicts of a parameter and its
        gradient (``self.W = {"val": W, "grad": dW}``, also ``"value"`` or ``"data"``); else every float array
        attribute that ``forward`` leaves alone and whose gradient ``backward`` writes. When none is found,
        only the inputs are checked, with a note. Found by default or named as a whole dict, entries without a
        gradient after ``backward`` (buffers such as ``running_mean``) are left out with a note; parameters
        named one by one must each have one. Dict entries are named by their key (``W``), or by their path
        (``W[val]``) when keys repeat or are an input's name. Slots holding the same array (tied weights) are one
        parameter, named by the first, whose gradient is the sum of their gradients; slots that are views of one
        array (``self.W_out = self.E.T``) move together in every evaluation, and are one parameter, named by the
        slot the others are views of, whose gradient is its own plus theirs mapped back through their views.
    grads : str, mapping or None
        Where ``backward`` puts the parameters' gradients: a dict attribute (``"gradients"``), an attribute
        pattern (``"d{}"``, ``"grad_{}"``), a mapping ``{"W": "dW"}``, or ``"return"`` (``backward`` returns the
        inputs' gradients followed by the parameters'). Default: the dict ``gradients``, ``grads`` or
        ``grad``, then the attributes ``dW``, ``d_W``, ``grad_W``, ``W_grad``, ``gradW`` (``_dw`` for a
        private ``_w``), then a returned tuple of one gradient per input and parameter, then the one array
        ``backward`` writes in the parameter's shape under a gradient's name that names the parameter or ends in
        its initial (``self.d_c_w`` for ``self.weights``; only when no other parameter left has that shape).
        Gradients on the object are zeroed before each backward pass (a layer that accumulates with ``+=``
        starts from zero), and read where ``backward`` wrote them, so an update of the weights inside
        ``backward`` does not change what is checked.
    forward, backward : str
        The names of the methods. ``backward(dout)`` returns the gradient of the input (a tuple of one per
        input when there are several, ``None`` for integer inputs; a single array when one input is
        differentiated), possibly followed by the parameters' gradients.
    dout : array or tree like ``forward``'s output, optional
        The upstream gradient, as in :func:`~backcheck.check_layer`. When it is not given and ``backward``'s
        first parameter defaults to a number (a loss layer's ``backward(self, dout=1)``, which may ignore it),
        ``dout`` is that number everywhere, with a note.
    **options
        Every other keyword of :func:`~backcheck.check_layer`: ``wrt``, ``constant``, ``strategy``,
        ``samples``, ``atol``, ``rtol``, ``step``, ``seed``, ``upcast``, ``curves``, ``random``,
        ``vectorized``, ``max_batch_bytes``, ``executor``, ``progress``, ``strict_dtype``.

    Returns
    -------
    Report
        Leaves named by the inputs' names (``forward``'s parameter names) and the parameters' names.

    Raises
    ------
    BadInputError
        A method, parameter or gradient cannot be found (the message names the attribute and where it looked),
        or ``backward`` updates a parameter without leaving its gradient anywhere. :class:`ParamsError` (one of
        them) names two parameter slots that are views of one array but cannot be checked as one weight (a
        broadcast view, views that overlap without one holding the others).

    Examples
    --------
    >>> import numpy as np, backcheck
    >>> class Dense:
    ...     def __init__(self, W, b):
    ...         self.parameters = {"W": W, "b": b}
    ...         self.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
    ...     def forward(self, X):
    ...         self.X = X
    ...         return X @ self.parameters["W"] + self.parameters["b"]
    ...     def backward(self, dLdy):
    ...         self.gradients["W"] += self.X.T @ dLdy
    ...         self.gradients["b"] += dLdy.sum(axis=0)
    ...         return dLdy @ self.parameters["W"].T
    >>> rng = np.random.default_rng(0)
    >>> layer = Dense(rng.normal(size=(3, 2)), np.zeros(2))
    >>> backcheck.check_object(layer, rng.normal(size=(4, 3))).ok
    True
    """
    spec = _validate(layer, inputs, forward, backward, reset, options)
    try:
        report = _check(layer, inputs, spec, params, grads, dout, options)
    except UserFunctionError as exc:  # a layer that ran forward before the check: said so, with reset=
        raise stale_hint(exc, stale_arrays(layer, inputs, spec.diff_in, spec.input_names), spec) from exc.__cause__
    if report.status == "fail" and all(
        lf.status == "fail" and not lf.counts.get(OK, 0)
        for lf in report.leaves
        if lf.name in {spec.input_names[i] for i in spec.diff_in}
    ):
        stale = stale_arrays(layer, inputs, spec.diff_in, spec.input_names)
        report.notes.extend([stale_note(stale, spec)] if stale and spec.reset is None else [])
    return report


def _check(
    layer: Any, inputs: tuple[Any, ...], spec: _Spec, params: Any, grads: Any, dout: Any, options: dict[str, Any]
) -> Report:
    _validate_slots(params, grads)
    _copyable(inputs, spec)
    pristine = _copy(layer, spec.cls)
    template, slots, notes, carries = _params(pristine, params, inputs, spec)
    # views of one another (W_out = E.T), found before any copy of them, rebuilt as views in every copy
    spec = dataclasses.replace(spec, shared=shared(layer if template is pristine else template, slots, spec.cls))
    probe = _probe(template, slots, grads, inputs, dout, spec)
    named = _named_grads(slots, grads, spec)
    slots, notes = _keep(slots, probe, params is None or isinstance(params, str), notes, spec, named)
    slots, tied, said = tie(slots, template, probe.where)
    slots, through, more = tie_views(slots, spec.shared, probe.where, spec.cls)
    tied = {k: [*tied.get(k, ()), *through.get(k, ())] for k in {*tied, *through}}
    notes = [*notes, *said, *more]
    if template is not pristine:
        if not slots:
            template, notes = pristine, [n for n in notes if "first forward pass" not in n]
        elif not carries:  # every evaluation re-creates them at its own input, then takes the values
            spec = dataclasses.replace(spec, pristine=pristine)
    if not slots and params is None:
        notes = [*notes, f"found no parameters on {spec.cls}: only the inputs were checked (params=[...] names them)."]
    dout, notes = _loss_dout(dout, layer, probe, notes, spec)
    where = {s.name: probe.where[s] for s in slots}
    names = [*spec.input_names, *(s.name for s in slots)]
    clash = sorted({n for n in spec.input_names if n in where})
    if clash:
        raise BadInputError(
            f"{spec.cls}.{spec.forward}'s input(s) {clash} have the name of a parameter.", "rename forward's argument."
        )
    values = tuple(np.array(s.get(template), copy=True) for s in slots)
    report = check_layer(
        Forward(template, slots, spec),
        Backward(template, slots, where, spec, tied),
        (*inputs, *values),
        dout,
        names=names,
        **options,
    )
    plain = [s for s in probe.updated if s.name in where and not isinstance(where[s.name], Stepped)]
    report.notes.extend(notes + where_notes(slots, where, plain, spec))
    if spec.step is not None:
        stepped = [n for n, w in where.items() if isinstance(w, Stepped)]
        report.notes.append(stepped_note(report, f"{spec.cls}.{spec.backward}", spec.step, stepped))
    updated_step(report, [s.name for s in probe.updated], f"{spec.cls}.{spec.backward}")
    report.findings.extend(unchecked_attributes(f"{spec.cls}.{spec.backward}", probe.unchecked))
    return report


def _copyable(inputs: tuple[Any, ...], spec: Any) -> None:
    """Every evaluation runs on deep copies of the inputs: one that refuses to be copied is named, typed."""
    for k, x in enumerate(inputs):
        try:
            copy.deepcopy(x)
        except Exception as exc:  # noqa: BLE001 - the user's object refuses the copy: named, typed
            name = spec.input_names[k] if k < len(spec.input_names) else f"inputs[{k}]"
            raise BadInputError(
                f"{spec.cls}.{spec.forward}'s input {name} ({type(x).__name__}) cannot be deep-copied "
                f"({type(exc).__name__}: {exc}); every evaluation runs on private copies of the inputs.",
                "pass copyable inputs (arrays, plain dicts), and keep locks, files or sessions on the layer or in a "
                "closure.",
            ) from exc


def _passthrough() -> set[str]:
    return set(inspect.signature(check_layer).parameters) - _BUILT


@dataclass(frozen=True)
class _Spec:
    cls: str
    forward: str
    backward: str
    n_in: int
    input_names: list[str]
    reset: Any = None
    diff_in: tuple[int, ...] = ()  # the inputs that are differentiated (float arrays, lists of them)
    list_in: bool = False  # an input is a list of arrays
    pristine: Any = None  # a layer that creates its parameters in its first forward pass, before that pass
    shared: tuple[Shared, ...] = ()  # parameter slots that are views of one another, rebuilt so in every copy
    step: str | None = None  # backward's learning-rate parameter: it steps the parameters itself (object_steps.py)

    def make(self, template: Any, slots: list[Slot], values: Sequence[Any], inputs: Sequence[Any]) -> Any:
        """A fresh copy of the layer holding the parameters ``values``, ready for its forward pass at ``inputs``.

        A lazily initialised layer is initialised again by a forward pass at ``inputs`` on a copy of the
        pristine layer (numpy's global generator left as it was), then given ``values``: what that pass stores
        (inputs appended to a list) belongs to this evaluation, never to the point where the parameters were
        first created."""
        if self.pristine is None:
            return self.fresh(_with_params(template, slots, values, self.shared))
        obj = copy.deepcopy(self.pristine)
        _kept_rng(lambda: getattr(obj, self.forward)(*copy.deepcopy(tuple(inputs))))
        return self.fresh(_with_params(obj, slots, values, self.shared))

    def fresh(self, obj: Any) -> Any:
        """``obj`` (a private copy) after the user's reset, ready for its forward pass."""
        if isinstance(self.reset, str):
            getattr(obj, self.reset)()
        elif self.reset is not None:
            self.reset(obj)
        return obj


def _validate(
    layer: Any, inputs: tuple[Any, ...], forward: str, backward: str, reset: Any, options: dict[str, Any]
) -> _Spec:
    unknown = sorted(set(options) - _passthrough())
    if unknown:
        raise BadInputError(f"check_object got unknown keyword(s) {unknown}.", f"choose from {sorted(_passthrough())}.")
    cls = type(layer).__name__
    if not inputs:
        raise BadInputError(
            f"check_object got no inputs for {cls}.{forward}.", "pass them after the layer: check_object(layer, x)."
        )
    for method in (forward, backward, *([reset] if isinstance(reset, str) else [])):
        if not callable(getattr(layer, method, None)):
            raise BadInputError(
                f"{cls} has no method {method!r}.",
                "name the methods: check_object(layer, x, forward='fprop', backward='bprop', reset='clear').",
            )
    if reset is not None and not isinstance(reset, str) and not callable(reset):
        raise BadInputError(f"reset is {kind_of(reset)}.", "pass a method name or a function of the layer.")
    names = arg_names(getattr(layer, forward), len(inputs))
    constant = names_option("constant", options.get("constant"), names) or []
    arrays = tuple(
        i
        for i, x in enumerate(inputs)
        if ((float_input(x) and not python_float(x)) or float_list(x)) and names[i] not in constant
    )
    diff_in = arrays or tuple(i for i, x in enumerate(inputs) if python_float(x) and names[i] not in constant)
    lists, step = any(float_list(x) for x in inputs), learning_rate_of(getattr(layer, backward))
    return _Spec(cls, forward, backward, len(inputs), names, reset, diff_in, lists, step=step)


def _validate_slots(params: Any, grads: Any) -> None:
    """``params=`` and ``grads=`` of a kind check_object reads, or :class:`BadInputError` naming them."""
    if params is not None and not isinstance(params, (str, list, tuple)):
        raise BadInputError(
            f"params is {kind_of(params)}.", "name the parameters: params='parameters' or params=['W', 'b']."
        )
    if grads is not None and not isinstance(grads, (str, Mapping)):
        raise BadInputError(
            f"grads is {kind_of(grads)}.", "pass a pattern (grads='d{}'), a dict ({'W': 'dW'}) or 'return'."
        )
    if isinstance(grads, str):
        try:
            grads.format("W")
        except (IndexError, KeyError, ValueError):
            raise BadInputError(
                f"grads={grads!r} is not an attribute name or a pattern with one '{{}}' for the parameter's name.",
                "pass e.g. grads='d{}', grads='grad_{}' or grads='gradients'.",
            ) from None


def _copy(obj: Any, cls: str) -> Any:
    try:
        return copy.deepcopy(obj)
    except Exception as exc:
        raise BadInputError(
            f"{cls} cannot be deep-copied ({type(exc).__name__}: {exc}); check_object evaluates every point on "
            "a fresh copy of the layer.",
            "give the class a __deepcopy__ that copies its arrays (or drop the attribute that cannot be copied).",
        ) from exc


def _with_params(template: Any, slots: list[Slot], values: Sequence[Any], shared: Sequence[Shared] = ()) -> Any:
    """A deep copy of ``template`` whose parameter arrays are fresh copies of ``values`` (aliases follow, and
    views of one another stay views of one fresh array)."""
    memo: dict[int, Any] = {id(s.get(template)): np.array(v, copy=True) for s, v in zip(slots, values, strict=True)}
    for group in shared:
        memo.update(group.memo(template, dict(zip(slots, values, strict=True))))
    return copy.deepcopy(template, memo)


def _params(
    template: Any, params: Any, inputs: tuple[Any, ...], spec: _Spec
) -> tuple[Any, list[Slot], list[str], bool]:
    """The template to copy, the parameters' slots on it, a note when a first forward pass created them, and
    whether that layer carries state from one forward pass to the next (then every evaluation continues from
    the initialised copy; otherwise each re-creates the parameters at its own input)."""
    if params is not None and not isinstance(params, str) and len(params) == 0:
        return template, [], [], False
    try:
        slots = declared(template, params, spec.cls)
        if slots:
            return template, named(slots, spec.input_names), [], False
        first = None
    except BadInputError as exc:
        first = exc
    init = copy.deepcopy(template)
    try:
        out = _kept_rng(lambda: getattr(init, spec.forward)(*copy.deepcopy(inputs)))
        slots = declared(init, params, spec.cls)
    except Exception:
        if first is not None:
            raise first from None
        return template, [], [], False  # no parameters, and a forward pass the check itself will report on
    if not slots:
        return template, [], [], False
    note = f"{spec.cls} creates its parameters in its first forward pass: they were created on a copy of the layer"
    if spec.reset is None and _carries(init, out, inputs, spec):
        note += (
            f", and every evaluation continued from that copy: {spec.forward} carries state from one call to the "
            "next (a recurrent step), so the point's first pass is part of every evaluation. reset= starts each "
            "evaluation from a flushed layer instead."
        )
        return init, named(slots, spec.input_names), [note], True
    note += "; every evaluation re-created them at its own input, then took the point's values."
    return init, named(slots, spec.input_names), [note], False


def _kept_rng(call: Callable[[], Any]) -> Any:
    """``call()`` with numpy's global generator left as it was (a lazy initialisation drawing from it)."""
    state = np.random.get_state()
    try:
        return call()
    finally:
        np.random.set_state(state)


def _carries(init: Any, out: Any, inputs: tuple[Any, ...], spec: _Spec) -> bool:
    """Whether a second forward pass at the same point, after the initialising one, gives another output."""
    try:
        again = _kept_rng(lambda: getattr(copy.deepcopy(init), spec.forward)(*copy.deepcopy(inputs)))
        first, second = flatten(out, "out"), flatten(again, "out")
        return len(first) != len(second) or not all(
            np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
            for (_, a), (_, b) in zip(first, second, strict=True)
        )
    except Exception:  # a second pass that fails: the layer is not re-initialised at every evaluation
        return True


@dataclass  # -- one forward and backward pass to see where things are ---------------------------------------------
class _Probe:
    changed_by_forward: set[Slot]
    updated: list[Slot]
    where: dict[Slot, Where]
    looked: dict[Slot, list[str]]
    out: Any = None
    shapes: dict[Slot, tuple[int, ...]] = field(default_factory=dict)  # the parameters' shapes, before backward
    unchecked: list[str] = field(default_factory=list)  # parameters of a kind not perturbed, with a gradient
    state: set[Slot] = field(default_factory=set)  # arrays a stepping backward updates and forward never reads


def _snap(value: Any) -> Any:
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


def _differs(before: Any, now: Any) -> bool:
    if isinstance(before, np.ndarray) and isinstance(now, np.ndarray):
        return before.shape != now.shape or not np.array_equal(before, now, equal_nan=True)
    return before is not now


def _probe(template: Any, slots: list[Slot], grads: Any, inputs: tuple[Any, ...], dout: Any, spec: _Spec) -> _Probe:
    obj = spec.fresh(_with_params(template, [], [], spec.shared))
    before = {s: (id(s.get(obj)), _snap(s.get(obj))) for s in slots}
    out = call_user(getattr(obj, spec.forward), copy.deepcopy(inputs), f"{spec.cls}.{spec.forward}")
    if out is None or any(np.asarray(x).dtype.kind == "O" for _, x in flatten(out, "out")):
        raise object_output_error(f"{spec.cls}.{spec.forward}", out, obj)
    # set by forward (reassigned, even to equal values, or written): state such as a stored input
    changed = {s for s in slots if id(s.get(obj)) != before[s][0] or _differs(before[s][1], s.get(obj))}
    at_backward = {s: _snap(s.get(obj)) for s in slots}
    candidates = {s: grad_slots(s, grads) for s in slots}
    flat = [c for cs in candidates.values() for c in cs]
    zero(obj, flat)
    zeroed = {c: (id(c.get(obj)), _snap(c.get(obj))) for c in flat}
    attrs = snapshot(obj) if grads is None else {}
    if dout is None and out is not None:
        dout = rebuild_like(out, [np.ones_like(np.asarray(x)) for _, x in flatten(out, "out")])
    elif dout is not None:  # named with the output's shape, as check_layer names it, before backward meets it
        parts = [(n, np.asarray(p)) for n, p in flat_outputs(out, "out", f"{spec.cls}.{spec.forward}'s output")]
        cotangents(dout, parts, np.random.default_rng(0), f"{spec.cls}.{spec.forward}")
    names, odd = (f"{spec.cls}.{spec.forward}", f"{spec.cls}.{spec.backward}"), odd_arrays(obj, spec.step is not None)
    try:
        method = getattr(obj, spec.backward)
        ret = call_user(lambda d: call_backward(method, d, spec.step is not None), (copy.deepcopy(dout),), names[1])
    except UserFunctionError as exc:  # a backward taking one dout of a forward with several outputs: said so
        raise pair_hint(exc, out, None, names) from exc.__cause__
    updated = [s for s in slots if _differs(at_backward[s], s.get(obj))]
    positional = isinstance(ret, (tuple, list)) and len(ret) == spec.n_in + len(slots) and len(slots) > 0
    where: dict[Slot, Where] = {}
    for k, s in enumerate(slots):
        shape = np.shape(at_backward[s])
        found = [c for c in candidates[s] if is_float_array(c.get(obj)) and c.get(obj).shape == shape]
        written = [c for c in found if id(c.get(obj)) != zeroed[c][0] or _differs(zeroed[c][1], c.get(obj))]
        if written or found:
            where[s] = (written or found)[0]
        elif grads == "return" or (grads is None and positional):
            where[s] = spec.n_in + k
        elif (
            spec.step is not None and s in updated and grads is None and read_by_forward(spec, template, s, inputs, out)
        ):
            where[s] = Stepped(s)  # (a backward given a learning rate, that keeps no gradient: read off its step)
    if grads is None:  # a gradient no name pattern finds (self.d_c_w for self.weights), told by its shape
        taken = {s.attr for s in slots} | {w.attr for w in where.values() if isinstance(w, Slot)}
        where.update(written_like(obj, attrs, {s: np.shape(at_backward[s]) for s in slots if s not in where}, taken))
    unchecked = unchecked_slots(obj, odd, {s.attr for s in slots})  # (and a stepping backward's state: momentum)
    state = {s for s in updated if spec.step is not None and s not in where}
    tail = ["backward's return value (one gradient per input, then per parameter)"] if grads is None else []
    looked = {s: looked_labels(obj, candidates[s]) + tail for s in slots}
    return _Probe(changed, updated, where, looked, out, {s: np.shape(at_backward[s]) for s in slots}, unchecked, state)


def _named_grads(slots: list[Slot], grads: Any, spec: _Spec) -> set[Slot]:
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


def _keep(
    slots: list[Slot], probe: _Probe, searched: bool, notes: list[str], spec: _Spec, named: set[Slot]
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
        if (kept or not lost) and not hidden:
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


def _loss_dout(dout: Any, layer: Any, probe: _Probe, notes: list[str], spec: _Spec) -> tuple[Any, list[str]]:
    """``dout`` filled with the default of ``backward``'s first parameter (``backward(self, dout=1)`` of a loss
    layer, which may ignore it), when none is given; else ``dout`` as it is."""
    if dout is not None or probe.out is None:
        return dout, notes
    try:
        first = next(iter(inspect.signature(getattr(layer, spec.backward)).parameters.values()), None)
    except (TypeError, ValueError):
        return dout, notes
    default = None if first is None else first.default
    if isinstance(default, bool) or not isinstance(default, (int, float)) or default == 0:  # (0 compares nothing)
        return dout, notes
    leaves = [np.asarray(x) for _, x in flatten(probe.out, "out")]
    filled = [np.full(x.shape, default, dtype=x.dtype if x.dtype.kind == "f" else np.float64) for x in leaves]
    note = f"dout = {default} everywhere: {spec.cls}.{spec.backward}'s dout defaults to {default} (dout= sets another)."
    return rebuild_like(probe.out, filled), [*notes, note]


#: What is left of a slot's name around another's when it is that one's gradient (``gW``, ``dW``, ``W_grad``).
GRADIENT_MARKS = ("d", "g", "grad", "grads", "delta", "gradient")


def _gradient_of(s: Slot, probe: _Probe) -> Slot | None:
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


def _no_gradient(s: Slot, probe: _Probe, spec: _Spec) -> BadInputError:
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
        return BadInputError(
            f"{spec.cls}.{spec.backward} updates the parameter {s.label} (an optimizer step inside backward) and "
            f"leaves no gradient for it where backcheck looked ({looked}); the gradient cannot be recovered from "
            "the update.",
            f"store the gradient on the object before the update (self.d{s.name} = ...), or name where it is: "
            f"grads={{{s.name!r}: 'attribute'}}.",
        )
    return BadInputError(
        f"found no gradient of {s.label} after {spec.cls}.{spec.backward}: looked in {looked} (for an array of "
        f"{s.name}'s shape).",
        "name where backward writes it: grads='gradients' (a dict attribute), grads='d{}' (a pattern), "
        f"grads={{{s.name!r}: 'attribute'}}, or grads='return' if backward returns it after the inputs' gradients; "
        "or leave it out of params=[...] if it is not a parameter." + (f" {said}" if said else ""),
    )
