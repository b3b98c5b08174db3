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
import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.calls import arg_names, kind_of, typed_arguments
from backcheck.containers import flatten, rebuild_like
from backcheck.errors import ArgumentError, BadInputError, GradientStructureError, UserFunctionError
from backcheck.findings import unchecked_attributes, ungradiented, unseen_arrays
from backcheck.frontends.common import did_you_mean, float_input, float_list, python_float
from backcheck.frontends.hints import (
    stale_hint,
    stale_note,
    torch_inputs,
    updated_step,
)
from backcheck.frontends.layers import check_layer, names_option
from backcheck.frontends.object_kept import backward_inputs, find_kept, kept_note
from backcheck.frontends.object_optimizers import keep_gradients, step_findings
from backcheck.frontends.object_passes import Backward, Forward, Shared, also_held, shared, tie, tie_views
from backcheck.frontends.object_probe import (
    keep_params,
    loss_dout,
    named_grads,
    probe_layer,
    probe_searched,
    probe_with_held,
    views_kept,
    with_params,
)
from backcheck.frontends.object_sequence import as_network, layer_list
from backcheck.frontends.object_steps import (
    Stepped,
    call_backward,
    learning_rate_of,
    rate_findings,
    read_by_forward,
    resting_note,
    stepped_note,
    unfilled,
    unseen_reads,
)
from backcheck.frontends.slots import (
    PARAM_DICTS,
    VALUE_KEYS,
    Slot,
    buffer_named,
    declared,
    is_float_array,
    named,
    stale_arrays,
    validate_slots,
    where_notes,
)
from backcheck.randomness import keeps_random
from backcheck.report import Report
from backcheck.verdict import OK

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

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
        The layer, or a list of layers run in sequence (a network kept as ``[Dense(3, 4), Tanh(), ...]``: forward
        through them in order, backward in reverse, their parameters named ``layers[k].W``). It is never called nor
        changed: every evaluation works on a deep copy of it (its random
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
    listed = ""
    if layer_list(layer, forward, backward):  # a network kept as a list of layers: one layer, run in sequence
        (layer, listed), forward, backward = as_network(layer, forward, backward, len(inputs)), "forward", "backward"
    spec = _validate(layer, inputs, forward, backward, reset, options)
    try:
        report = _check(layer, inputs, spec, params, grads, dout, options)
        report.notes.extend(filter(None, [listed]))
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
    validate_slots(params, grads)
    _copyable(inputs, spec)
    pristine = _copy(layer, spec.cls)
    grads, kept = keep_gradients(pristine, grads)  # (optimizer objects of its own, W_opt beside W)
    spec = _douts(pristine, inputs, spec)
    parts = [np.asarray(x) for _, x in flatten(dout, "dout")] if dout is not None else []
    if len(parts) == 1 and parts[0].size > 1 and parts[0].ravel()[0] != 0 and np.all(parts[0] == parts[0].ravel()[0]):
        spec = dataclasses.replace(spec, dout_unit=float(parts[0].ravel()[0]))  # (see object_steps.dout_scale)
    kept_output, kept_dinput, labels = find_kept(pristine, inputs, spec)
    spec = dataclasses.replace(spec, kept_output=kept_output, kept_dinput=kept_dinput)
    if labels:  # float labels backward takes again: constants of the check, as constant=[...] makes them
        spec, options = _held_constant(spec, options, labels)
    template, slots, notes, carries = _params(pristine, params, inputs, spec)
    notes = [*notes, *filter(None, [kept])]
    slots = _read_entries(template, slots, inputs, spec) if params is None else slots
    # views of one another (W_out = E.T), found before any copy of them, rebuilt as views in every copy
    spec = dataclasses.replace(spec, shared=shared(layer if template is pristine else template, slots, spec.cls))
    if params is None and grads is None:
        slots, probe, held = probe_searched(template, slots, grads, inputs, dout, spec)
        notes = [*notes, *held]
    else:
        slots, probe = probe_with_held(
            template, slots, also_held(template, slots) if grads is None else [], (grads, inputs, dout, spec)
        )
    named = named_grads(slots, grads, spec)
    searched = slots
    slots, notes = keep_params(slots, probe, params is None or isinstance(params, str), notes, spec, named)
    if probe.returned_none and slots and spec.diff_in and all(s.via for s in slots):  # (a network's backward that
        # computes no input gradient; a layer's that forgets to return it fails on its missing gradient)
        unclaimed = [spec.input_names[k] for k in spec.diff_in]
        spec, options = _held_constant(spec, options, spec.diff_in)
        notes = [*notes, f"{spec.cls}.{spec.backward} returns no gradient of {', '.join(unclaimed)} and keeps none "
                 "where check_object looks: only the parameters' gradients were checked."]  # fmt: skip
    forgotten = _forgotten(searched, slots, probe, template, inputs, spec)
    notes += _unnamed(template, slots, inputs, dout, spec) if params is not None else []
    if params is None:  # a layer's link to another (self.next, self.net) reaches arrays its forward never reads
        unread = [s for s in slots if s.via and not read_by_forward(spec, template, s, inputs, probe.out)]
        slots = [s for s in slots if s not in unread]
        notes += [f"not checked: {', '.join(s.name for s in unread)} (arrays of objects {spec.cls} holds, which "
                  f"{spec.forward} never reads: links to other layers)."] if unread else []  # fmt: skip
    slots, tied, said = tie(slots, template, probe.where)
    slots, through, more = tie_views(slots, spec.shared, probe.where, spec.cls)
    tied = {k: [*tied.get(k, ()), *through.get(k, ())] for k in {*tied, *through}}
    notes = [*notes, *said, *more]
    if template is not pristine:
        if not slots:
            template, notes = pristine, [n for n in notes if "first forward pass" not in n]
        elif not carries:  # every evaluation re-creates them at its own input, then takes the values
            spec = dataclasses.replace(spec, pristine=pristine)
    unseen = unseen_reads(spec, template, inputs, probe) if not slots and params is None else []
    if not slots and params is None:
        notes = [*notes, f"found no parameters on {spec.cls}: only the inputs were checked (params=[...] names them)."]
    dout, notes = loss_dout(dout, layer, probe, notes, spec)
    where = {s.name: probe.where[s] for s in slots}
    names = [*spec.input_names, *(s.name for s in slots)]
    clash = sorted({n for n in spec.input_names if n in where})
    if clash:
        raise BadInputError(
            f"{spec.cls}.{spec.forward}'s input(s) {clash} have the name of a parameter.", "rename forward's argument."
        )
    values = tuple(np.array(s.get(template), copy=True) for s in slots)
    try:
        report = check_layer(
            Forward(template, slots, spec),
            backward := Backward(template, slots, where, spec, tied),
            (*inputs, *values),
            dout,
            names=names,
            **options,
        )
    except GradientStructureError as exc:  # named as the layer keeps it: where each gradient was read
        placed = " ".join(where_notes(slots, where, [], spec, probe.keyed))
        if not placed:
            raise
        raise GradientStructureError(f"{exc.message} ({placed})", exc.hint) from exc
    plain = [s for s in probe.updated if s.name in where and not isinstance(where[s.name], Stepped)]
    report.notes.extend(notes + kept_note(spec, labels) + where_notes(slots, where, plain, spec, probe.keyed))
    made = lambda: spec.make(template, slots, values, inputs)  # noqa: E731 - the layer at the point, afresh
    if spec.step is not None:
        stepped = [n for n, w in where.items() if isinstance(w, Stepped)]
        places = [w for w in where.values() if isinstance(w, Stepped)]
        report.findings.extend(rate_findings(spec, made, inputs, probe_dout(probe.out, dout), places))
        report.notes.append(stepped_note(report, f"{spec.cls}.{spec.backward}", spec.step, stepped))
        report.notes.extend(resting_note(backward.rested, f"{spec.cls}.{spec.backward}"))
    if kept:  # optimizer objects of its own, which the check's copies keep from stepping
        call = (spec.cls, spec.forward, spec.backward)
        report.findings.extend(step_findings(made, call, inputs, probe_dout(probe.out, dout), grads))
    updated_step(report, [s.name for s in probe.updated], f"{spec.cls}.{spec.backward}")
    report.findings.extend(unchecked_attributes(f"{spec.cls}.{spec.backward}", probe.unchecked))
    report.findings.extend(ungradiented(spec.cls, spec.forward, spec.backward, [s.label for s in forgotten]))
    report.findings.extend(unseen_arrays(spec.cls, spec.forward, [n for n in unseen if n not in probe.unchecked]))
    return report


def probe_dout(out: Any, dout: Any) -> Any:
    """The dout of the check's own probes: the one given, or a fixed random one in the output's structure."""
    if dout is not None:
        return dout
    rng = np.random.default_rng(0)
    parts = [
        rng.standard_normal(np.shape(x)).astype(np.result_type(np.asarray(x).dtype, np.float32))
        for _, x in flatten(out, "out")
    ]
    return rebuild_like(out, parts)


def _forgotten(
    searched: list[Slot], kept: list[Slot], probe: Any, template: Any, inputs: tuple[Any, ...], spec: _Spec
) -> list[Slot]:
    """The arrays left out as buffers that forward reads and whose names do not say buffer: parameters whose
    gradient backward forgets (self.db written, self.dW never), or a stepping backward never steps."""
    left = [s for s in searched if s not in kept and s not in probe.changed_by_forward and s not in probe.where]
    # (a view of a checked weight, tied to it: it moves with that weight, whose gradient holds its part)
    tied = {m.slot for g in spec.shared for m in g.members if any(n.slot in kept for n in g.members)}
    return [
        s
        for s in left
        if not buffer_named(s) and s not in tied and read_by_forward(spec, template, s, inputs, probe.out)
    ]


def _unnamed(template: Any, slots: list[Slot], inputs: tuple[Any, ...], dout: Any, spec: _Spec) -> list[str]:
    """A note naming the parameters params=[...] leaves out whose gradients backward leaves where the search finds
    them (``self.db`` beside a checked ``self.W``): constants in this check, said so. None when there are none or
    the search cannot run."""
    paths = {s.path for s in slots}
    try:
        others = [s for s in declared(template, None, spec.cls) if s.path not in paths]
        probe = probe_layer(template, others, None, inputs, dout, spec) if others else None
    except Exception:  # noqa: BLE001 - the check itself runs and reports on the layer as named
        return []
    left = [s for s in others if probe is not None and s in probe.where and s not in probe.changed_by_forward]
    if not left:
        return []
    return [
        f"not checked: {', '.join(s.label for s in left)} (parameters of {spec.cls} that params= does not name, "
        f"with gradients after {spec.backward}): constants in this check; name them in params= to check them."
    ]


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
    kept_output: str | None = None  # the attribute forward keeps its output on, returning None (object_kept.py)
    kept_dinput: str | None = None  # the attribute backward keeps the input's gradient on, returning None
    backward_inputs: tuple[int, ...] = ()  # forward's inputs backward takes again (by name)
    dout_free: bool = False  # backward takes them instead of a dout (a loss's backward(self, label_tensor))
    unfilled: str | None = None  # a parameter backward requires after dout that is no learning rate (_douts)
    split_douts: bool = False  # backward takes one dout per output of forward: backward(dh, dc)
    dout_unit: float = 1.0  # a doutless backward of one loss per sample: the same dout for each the user gave

    def call_forward(self, obj: Any, args: Sequence[Any]) -> Any:
        """``obj.forward(*args)``: its output, read where the layer keeps it when it returns None or itself."""
        out = getattr(obj, self.forward)(*args)
        if self.kept_output is not None and (out is None or out is obj):
            return getattr(obj, self.kept_output)
        return out

    def call_backward(self, obj: Any, dout: Any, args: Sequence[Any], stepped: bool) -> Any:
        """``obj.backward(dout)`` (:func:`call_backward`), given the inputs it takes again (from ``args``, this
        evaluation's inputs); the input's gradient read where the layer keeps it when it returns None or itself."""
        extra = tuple(copy.deepcopy(args[k]) for k in self.backward_inputs)
        if self.split_douts:  # (one dout per output, as forward returned them)
            return getattr(obj, self.backward)(*dout)
        ret = call_backward(getattr(obj, self.backward), dout, stepped, extra, self.dout_free, self.dout_unit)
        if (ret is None or ret is obj) and self.kept_dinput is not None:
            return getattr(obj, self.kept_dinput)
        return ret

    def make(self, template: Any, slots: list[Slot], values: Sequence[Any], inputs: Sequence[Any]) -> Any:
        """A fresh copy of the layer holding the parameters ``values``, ready for its forward pass at ``inputs``.

        A lazily initialised layer is initialised again by a forward pass at ``inputs`` on a copy of the
        pristine layer (numpy's global generator left as it was), then given ``values``: what that pass stores
        (inputs appended to a list) belongs to this evaluation, never to the point where the parameters were
        first created."""
        if self.pristine is None:
            return self.fresh(with_params(template, slots, values, self.shared))
        obj = copy.deepcopy(self.pristine)
        _kept_rng(lambda: getattr(obj, self.forward)(*copy.deepcopy(tuple(inputs))))
        return self.fresh(with_params(obj, slots, values, self.shared))

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
        raise ArgumentError(
            f"check_object got unknown keyword(s) {unknown}" + did_you_mean(unknown[0], sorted(_passthrough())),
            f"choose from {sorted(_passthrough())}.",
        )
    cls = type(layer).__name__
    if not inputs:
        raise BadInputError(
            f"check_object got no inputs for {cls}.{forward}.", "pass them after the layer: check_object(layer, x)."
        )
    if forward == "forward" and not callable(getattr(layer, forward, None)) and callable(layer):
        forward = "__call__"  # (a layer called as layer(x), PyTorch's way)
    for method in (forward, backward, *([reset] if isinstance(reset, str) else [])):
        if not callable(getattr(layer, method, None)):
            own = [m for m in dir(type(layer)) if not m.startswith("_") and callable(getattr(layer, m, None))]
            near = difflib.get_close_matches(method, own, 1, 0.6)
            raise BadInputError(
                f"{cls} has no method {method!r}"
                + (f" (did you mean {near[0]!r}?)." if near else ".")
                + (f" Its methods: {', '.join(own[:12])}." if own else ""),
                "name the methods: check_object(layer, x, forward='fprop', backward='bprop', reset='clear').",
            )
    if reset is not None and not isinstance(reset, str) and not callable(reset):
        raise BadInputError(f"reset is {kind_of(reset)}.", "pass a method name or a function of the layer.")
    names = arg_names(getattr(layer, forward), len(inputs))
    tensors = torch_inputs(f"{cls}.{forward}", names, inputs)
    if tensors is not None:  # (before any call: a backward given numpy douts would raise as the user's error)
        raise tensors
    constant = names_option("constant", options.get("constant"), names) or []
    arrays = tuple(
        i
        for i, x in enumerate(inputs)
        if ((float_input(x) and not python_float(x)) or float_list(x)) and names[i] not in constant
    )
    diff_in = arrays or tuple(i for i, x in enumerate(inputs) if python_float(x) and names[i] not in constant)
    lists, step = any(float_list(x) for x in inputs), learning_rate_of(getattr(layer, backward))
    again, free = backward_inputs(getattr(layer, backward), names)
    extra = None if again else unfilled(getattr(layer, backward))
    spec = _Spec(cls, forward, backward, len(inputs), names, reset, diff_in, lists, step=step)
    return dataclasses.replace(spec, backward_inputs=again, dout_free=free, unfilled=extra)


def _douts(layer: Any, inputs: tuple[Any, ...], spec: _Spec) -> _Spec:
    """``spec`` for a backward that requires a parameter after dout that is no learning rate: one dout per output
    of a forward that returns several arrays (an LSTM cell's ``forward(x, h, c) -> (h, c)``, ``backward(dh,
    dc)``), given them one by one; else :class:`ArgumentError` naming the parameter."""
    if spec.unfilled is None:
        return spec
    try:
        out = _kept_rng(lambda: spec.call_forward(copy.deepcopy(layer), copy.deepcopy(inputs)))
        params = list(inspect.signature(getattr(layer, spec.backward)).parameters.values())
    except Exception:  # noqa: BLE001 - the error below names the parameter
        out, params = None, []
    required = [p for p in params if p.default is inspect.Parameter.empty and p.kind in _POSITIONAL]
    if isinstance(out, (tuple, list)) and len(out) == len(required) > 1 and all(is_float_array(o) for o in out):
        return dataclasses.replace(spec, unfilled=None, split_douts=True)
    raise ArgumentError(
        f"{spec.cls}.{spec.backward} requires a parameter {spec.unfilled} after dout, which check_object cannot "
        "fill: it calls backward(dout), backward(dout, learning_rate) where the second parameter is named "
        "learning_rate, learn_rate, lr, eta, step_size or lrate, or backward(*douts) with one dout per output of a "
        "forward that returns several arrays.",
        f"if {spec.unfilled} is a learning rate, name it lr; otherwise give it a default, or check a wrapper whose "
        f"backward(dout) calls {spec.cls}.{spec.backward}(dout, ...).",
    )


def _copy(obj: Any, cls: str) -> Any:
    hint = "give the class a __deepcopy__ that copies its arrays (or drop the attribute that cannot be copied)."
    fresh = "check_object evaluates every point on a fresh copy of the layer"
    try:
        out = copy.deepcopy(obj, views_kept(obj, {}))  # (views of one attribute's memory stay views of its copy)
    except Exception as exc:
        raise BadInputError(f"{cls} cannot be deep-copied ({type(exc).__name__}: {exc}); {fresh}.", hint) from exc
    if out is obj:  # (its __deepcopy__ returns self)
        raise BadInputError(f"copy.deepcopy of the {cls} returns the layer itself; {fresh}, not yours.", hint)
    return out


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
        out = _kept_rng(lambda: spec.call_forward(init, copy.deepcopy(inputs)))
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


def _held_constant(spec: _Spec, options: dict[str, Any], which: tuple[int, ...]) -> tuple[_Spec, dict[str, Any]]:
    """``spec`` and check_layer's ``options`` with the inputs ``which`` (positions) held constant, as
    ``constant=[...]`` holds them: no longer differentiated, and passed on as constants."""
    held = names_option("constant", options.get("constant"), spec.input_names) or []
    options = {**options, "constant": [*held, *(spec.input_names[k] for k in which)]}
    return dataclasses.replace(spec, diff_in=tuple(k for k in spec.diff_in if k not in which)), options


def _read_entries(template: Any, slots: list[Slot], inputs: tuple[Any, ...], spec: _Spec) -> list[Slot]:
    """``slots`` without the entries of dict attributes of other names than ``parameters``/``params`` that forward
    never reads (``self.momentum = {"W": ...}`` beside ``self.weights = {"W": ...}``, a gradients' holder filled
    before backward): only the arrays forward reads are parameters there."""
    loose = [
        s
        for s in slots
        if s.key is not None
        and not s.via
        and s.attr not in PARAM_DICTS
        and s.key not in VALUE_KEYS
        and isinstance(getattr(template, s.attr, None), Mapping)
    ]
    if not loose:
        return slots
    try:
        out = _kept_rng(lambda: spec.call_forward(spec.make(template, [], [], inputs), copy.deepcopy(inputs)))
    except Exception:  # noqa: BLE001 - the check's own calls report the user's error
        return slots
    unread = {s for s in loose if not read_by_forward(spec, template, s, inputs, out)}
    return [s for s in slots if s not in unread]


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
        again = _kept_rng(lambda: spec.call_forward(copy.deepcopy(init), copy.deepcopy(inputs)))
        first, second = flatten(out, "out"), flatten(again, "out")
        return len(first) != len(second) or not all(
            np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
            for (_, a), (_, b) in zip(first, second, strict=True)
        )
    except Exception:  # a second pass that fails: the layer is not re-initialised at every evaluation
        return True
