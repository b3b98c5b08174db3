"""Where a layer object keeps its parameters and their gradients: attributes (``self.W``), entries of a dict
attribute (``self.parameters['W']``), or a dict of one parameter and its gradient (``self.W = {'val': W, 'grad': dW}``),
and the search :func:`~backcheck.check_object` runs when they are not named."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.calls import kind_of
from backcheck.errors import BadInputError
from backcheck.frontends.hints import nested_params_error

#: Dict attributes searched for the parameters, then for the gradients, when they are not named.
PARAM_DICTS = ("parameters", "params")
GRAD_DICTS = ("gradients", "grads", "grad")
#: Attribute names searched for the gradient of a parameter ``{}`` when it is not named.
GRAD_ATTRS = ("d{}", "d_{}", "grad_{}", "{}_grad", "grad{}", "dLd{}", "dL_d{}", "g{}")
#: How a gradient's name may spell out the loss it is of (``dLdW``, ``dL_dw``): read as ``dW``, ``dw``.
LOSS_PREFIXES = ("dl_d", "dld")
#: A parameter kept in a dict of its own with its gradient: ``self.W = {"val": W, "grad": dW}``.
VALUE_KEYS = ("val", "value", "data")
GRAD_KEY = "grad"


MISSING = object()
_SLOT = re.compile(r"^([A-Za-z_]\w*)(?:\[['\"]?([^'\"\]]+)['\"]?\])?$")
#: A step through containers to a layer: ``blocks[enc][0]`` (a list of layers in a dict).
_STEP = re.compile(r"^([A-Za-z_]\w*)((?:\[['\"]?[^'\"\]]+['\"]?\])*)$")
_KEY = re.compile(r"\[['\"]?([^'\"\]]+)['\"]?\]")


def _index(key: str | None) -> Any:
    """A step's key as written: a list's position (``layers[2]``, ``layers[-1]``) or a dict's key."""
    return int(key) if key is not None and key.lstrip("-").isdigit() else key


def _keys(k: Any) -> tuple[Any, ...]:
    """A step's keys: none (the attribute itself), one, or several (a list of layers in a dict)."""
    return () if k is None else k if isinstance(k, tuple) else (k,)


def _step_key(text: str) -> Any:
    """A step's key as written after its attribute: none, one (``[2]``), or several (``[enc][0]``)."""
    keys = tuple(_index(k) for k in _KEY.findall(text or ""))
    return None if not keys else keys[0] if len(keys) == 1 else keys


def is_float_array(v: Any) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind == "f"


@dataclass(frozen=True)
class Slot:
    """Where a value lives on the object: the attribute ``attr``, or the entry ``key`` of the dict ``attr``; on a
    sub-object ``via`` reaches (a layer of a network: ``(("layers", 2),)`` is ``self.layers[2]``)."""

    attr: str
    key: Any = None
    full: bool = False  # named by its path (W[val]): the entry's key alone repeats or is an input's name
    #: the steps from the object to the one holding ``attr``: (attribute, index or key, or None for the attribute)
    via: tuple[tuple[str, Any], ...] = ()

    @property
    def prefix(self) -> str:
        """``via`` as a name's prefix: ``layers[2].`` (``blocks['enc'][0].`` through a list in a dict)."""
        return "".join(a + "".join(f"[{kk!r}]" for kk in _keys(k)) + "." for a, k in self.via)

    def owner(self, obj: Any) -> Any:
        """The object ``via`` reaches from ``obj`` (MISSING where a step finds nothing)."""
        for a, k in self.via:
            obj = getattr(obj, a, MISSING)
            for kk in _keys(k):
                if obj is MISSING:
                    break
                try:
                    obj = obj[kk]
                except (KeyError, IndexError, TypeError):
                    return MISSING
        return obj

    @classmethod
    def parse(cls, text: Any, what: str) -> Slot:
        """``W``, ``parameters[W]``, or either on a layer the object holds: ``layers[2].params[b]``."""
        parts = text.split(".") if isinstance(text, str) else [None]
        steps = [_STEP.match(p) if isinstance(p, str) else None for p in parts[:-1]]
        matches = [*steps, _SLOT.match(parts[-1]) if isinstance(parts[-1], str) else None]
        if any(m is None for m in matches):
            raise BadInputError(
                f"{what} names {text!r}, which is not an attribute name.",
                "use an attribute name ('W'), a dict attribute's entry ('parameters[W]'), or either on a layer the "
                "object holds ('layers[2].W', 'blocks[enc][0].W').",
            )
        via = tuple((m.group(1), _step_key(m.group(2))) for m in steps if m is not None)
        last = matches[-1]
        assert last is not None
        key = last.group(2)  # (a list's position, or a boxed parameter's value, is named by its path: params[1])
        full = key is not None and (key.lstrip("-").isdigit() or key in VALUE_KEYS)
        return cls(last.group(1), key, full=full, via=via)

    @property
    def name(self) -> str:
        """The name in the report: the attribute's, the dict entry's, or the path ``W[val]`` when keys repeat
        (after the sub-object's path: ``layers[2].b``)."""
        if self.key is None:
            return self.prefix + self.attr
        return self.path if self.full else self.prefix + str(self.key)

    @property
    def path(self) -> str:
        return self.prefix + (self.attr if self.key is None else f"{self.attr}[{self.key}]")

    @property
    def label(self) -> str:
        here = self.attr if self.key is None else f"{self.attr}[{self.key!r}]"
        return f"self.{self.prefix}{here}"

    def get(self, obj: Any) -> Any:
        obj = self.owner(obj) if self.via else obj
        value = getattr(obj, self.attr, MISSING)
        if self.key is None or value is MISSING:
            return value
        if isinstance(value, (list, tuple)):  # parallel lists: self.params = [W, b], self.grads = [dW, db]
            k = int(self.key) if isinstance(self.key, str) and self.key.lstrip("-").isdigit() else self.key
            return value[k] if isinstance(k, int) and -len(value) <= k < len(value) else MISSING
        if isinstance(value, Mapping):
            return value.get(self.key, MISSING)
        if _boxing(value) and self.key in (*VALUE_KEYS, GRAD_KEY):  # a Parameter object: .data and .grad
            return getattr(value, self.key, MISSING)
        return MISSING


@dataclass(frozen=True)
class Stepped:
    """Where a parameter's gradient is read when backward steps it itself: its value before minus after, over the
    learning rate (:mod:`backcheck.frontends.object_steps`)."""

    slot: Slot

    @property
    def label(self) -> str:
        return f"its step ({self.slot.label} before backward minus after)"


#: Where a parameter's gradient is found: a slot on the object, a position in backward's returned tuple, or the
#: parameter's own step (a backward that takes a learning rate: object_steps.py).
Where = Slot | int | Stepped


def dict_slots(slots: list[Slot]) -> bool:
    return any(s.key is not None for s in slots)


def declared(obj: Any, params: Any, cls: str, seen: set[int] | None = None, depth: int = 0) -> list[Slot]:
    """The parameters' slots on ``obj`` (candidates only, when they are searched for), and when searched for,
    those of the layers it holds too (:func:`_nested`; ``seen``: the objects already searched)."""
    own = _own(obj, params, cls)
    if params is not None:
        return own
    if depth >= NESTED_DEPTH:
        if any(True for _ in _held_layers(obj)):
            raise BadInputError(
                f"{cls} holds layers nested more than {NESTED_DEPTH} deep: their parameters are not searched for.",
                "name the parameters to check with params=['layers[0].layers[1].W', ...].",
            )
        return own
    seen = {id(obj)} if seen is None else seen
    return own + _nested(obj, cls, seen, depth)


def _own(obj: Any, params: Any, cls: str) -> list[Slot]:
    """The parameters' slots on ``obj`` itself (see :func:`declared`)."""
    if isinstance(params, str):
        value = getattr(obj, params, MISSING)
        if _float_list(value):
            return _list_slots(params, value)
        if isinstance(value, Mapping):
            found = [Slot(params, k) for k, v in value.items() if is_float_array(v)]
            if found:
                return found
            inner = [k for k, v in value.items() if isinstance(v, Mapping) and any(map(is_float_array, v.values()))]
            no_array = BadInputError(f"{cls}.{params} holds no float array.", params_hint(obj))
            raise nested_params_error(cls, params, inner) if inner else no_array
        if value is MISSING and "[" not in params:
            raise BadInputError(f"{cls} has no attribute {params!r} (given as params).", params_hint(obj))
        params = [params]
    if params is not None:
        slots = [Slot.parse(p, "params") for p in params]
        for s in slots:
            if not is_float_array(s.get(obj)):
                value = s.get(obj)
                what = "is missing" if value is MISSING else f"is a {type(value).__name__}, not a float array"
                raise BadInputError(f"{cls}'s parameter {s.label} {what}.", params_hint(obj))
        return slots
    for name in PARAM_DICTS:
        value = getattr(obj, name, None)
        if isinstance(value, Mapping) and any(is_float_array(v) for v in value.values()):
            return [Slot(name, k) for k, v in value.items() if is_float_array(v)]
        if _float_list(value):
            return _list_slots(name, value)
    attrs = attributes(obj)
    boxed = [Slot(a, k) for a, v in attrs.items() for k in (value_key(v),) if k is not None]
    if boxed:
        return boxed
    arrays = [a for a, v in attrs.items() if is_float_array(v)]
    candidates = [a for a in arrays if not any(a in grad_names(b) for b in arrays)]
    # and the arrays of dict attributes of other names (self.p = {"W": W}), but gradients beside their parameters
    # and entries keyed by an array attribute's name (an optimizer's moments: self.m["weights"])
    held = [(a, k) for a, v in attrs.items() if isinstance(v, Mapping) and a not in PARAM_DICTS + GRAD_DICTS
            for k, x in v.items() if isinstance(k, str) and is_float_array(x)]  # fmt: skip
    keys = {k for _, k in held}
    entries = [Slot(a, k) for a, k in held if k not in arrays and not any(k in grad_names(b) for b in keys)]
    return [Slot(a) for a in candidates] + entries  # none: a layer without parameters (or created by forward)


#: How deep :func:`declared` looks for the parameters of layers held by layers (a network of blocks of layers).
NESTED_DEPTH = 16


def _nested(obj: Any, cls: str, seen: set[int], depth: int) -> list[Slot]:
    """The parameters of the layer objects ``obj`` holds (a network's ``self.layers = [Dense(...), ReLU(), ...]``,
    a dict of them, or ``self.fc1 = Dense(...)``), each found as that layer's own would be, reached through
    ``via``; an object met before (one layer at two places, a layer's reference back to its network) is not
    searched again. A parameter in a dict of its own with its gradient is named by its path (``layers[0].W[val]``)."""
    out: list[Slot] = []
    for a, k, sub in _held_layers(obj):
        if id(sub) in seen:
            continue
        seen.add(id(sub))
        out += [
            dataclasses.replace(s, via=((a, k), *s.via), full=s.full or s.key in VALUE_KEYS)
            for s in declared(sub, None, cls, seen, depth + 1)
        ]
    return out


#: How many containers deep a layer is looked for in one attribute (``self.blocks = {'enc': [Dense, ...]}``: 2),
#: in containers of at most so many items (a list of a million numbers kept on the object is no list of layers).
CONTAINER_DEPTH = 6
CONTAINER_ITEMS = 4096


def _held_layers(obj: Any) -> list[tuple[str, Any, Any]]:
    """The layer objects ``obj``'s attributes hold, with the attribute and the key (None, one, or a tuple through
    containers nested up to :data:`CONTAINER_DEPTH` deep) that reach each."""
    out: list[tuple[str, Any, Any]] = []

    def visit(a: str, keys: tuple[Any, ...], v: Any) -> None:
        if _layer_like(v):
            out.append((a, None if not keys else keys[0] if len(keys) == 1 else keys, v))
        elif isinstance(v, (Mapping, list, tuple)) and len(v) <= CONTAINER_ITEMS:
            items = list(v.items() if isinstance(v, Mapping) else enumerate(v))
            if len(keys) >= CONTAINER_DEPTH:
                if any(_holds_layer(sub, NESTED_DEPTH) for _, sub in items):
                    raise BadInputError(
                        f"self.{a} holds containers nested more than {CONTAINER_DEPTH} deep: layers in them are not "
                        "searched for.",
                        f"name the parameters to check with params=['{a}[0][0]...W', ...].",
                    )
                return
            for k, sub in items:
                visit(a, (*keys, k), sub)

    for a, v in attributes(obj).items():
        if a not in PARAM_DICTS + GRAD_DICTS:
            visit(a, (), v)
    return out


def _holds_layer(v: Any, depth: int) -> bool:
    """Whether ``v`` is a layer object or holds one in containers up to ``depth`` deep (of at most
    :data:`CONTAINER_ITEMS` items each)."""
    if _layer_like(v):
        return True
    if depth <= 0 or not isinstance(v, (Mapping, list, tuple)) or len(v) > CONTAINER_ITEMS:
        return False
    return any(_holds_layer(sub, depth - 1) for sub in (v.values() if isinstance(v, Mapping) else v))


def _layer_like(v: Any) -> bool:
    """An object that may hold parameters: a backward method beside a forward one or a ``__call__`` (a layer called
    as ``fc1(x)``), and attributes of its own; or a plain object holding float arrays (``self.p =
    SimpleNamespace(W1=...)``), searched as a layer is. Not a class (an autograd Function kept on the layer)."""
    if not hasattr(v, "__dict__") or isinstance(v, type) or _boxing_attrs(v):
        return False
    if callable(getattr(v, "backward", None)):
        return callable(getattr(v, "forward", None)) or callable(v)
    return not callable(v) and any(is_float_array(x) for x in attributes(v).values())


def _boxing_attrs(v: Any) -> bool:
    """A parameter's box (see :func:`_boxing`): its arrays are one parameter, not a layer's."""
    return not isinstance(v, (Mapping, list, tuple, np.ndarray)) and GRAD_KEY in attributes(v)


def _float_list(value: Any) -> bool:
    """A list or tuple of parameters: float arrays, at least one."""
    return isinstance(value, (list, tuple)) and any(is_float_array(v) for v in value)


def _list_slots(attr: str, value: Any) -> list[Slot]:
    """The float arrays of a list of parameters, by position, named by their path (``params[0]``)."""
    return [Slot(attr, k, full=True) for k, v in enumerate(value) if is_float_array(v)]


def grad_names(base: str) -> list[str]:
    """The attribute names searched for the gradient of ``base``: ``dW``, ``grad_W``..., and for a private
    ``_w`` also ``_dw``, ``_grad_w``... (the private pair), then ``dw``, ``grad_w``... (a parameter kept as
    ``self._w`` behind a property ``w``, its gradient public)."""
    names = [p.format(base) for p in GRAD_ATTRS]
    if base.startswith("_") and len(base) > 1:
        names += ["_" + p.format(base[1:]) for p in GRAD_ATTRS] + [p.format(base[1:]) for p in GRAD_ATTRS]
    return names


def odd_arrays(obj: Any, stepping: bool = False) -> dict[tuple[str, Any], np.ndarray]:
    """Copies of the arrays of ``obj`` whose gradient check_object does not compare, by ``(attribute, key)``: the
    attributes holding numbers it does not perturb (complex arrays, bfloat16 from ml_dtypes: kinds 'c' and 'V'; key
    None), and for a backward that steps the parameters itself (``stepping``) the float arrays in its list and dict
    attributes too (``layers[0]``: key 0), which it may step without their being found as parameters."""
    out: dict[tuple[str, Any], np.ndarray] = {}
    for a, v in attributes(obj).items():
        if isinstance(v, np.ndarray) and v.dtype.kind in "cV":
            out[(a, None)] = v.copy()
        elif stepping and isinstance(v, (list, tuple, dict)) and a not in PARAM_DICTS + GRAD_DICTS:
            for k, item in v.items() if isinstance(v, dict) else enumerate(v):
                if is_float_array(item):
                    out[(a, k)] = item.copy()
    return out


def unchecked_slots(obj: Any, before: dict[tuple[str, Any], np.ndarray], taken: set[str]) -> list[str]:
    """Of the arrays ``before`` (:func:`odd_arrays`, taken before backward; none of an attribute in ``taken``, the
    parameters'), those next to a gradient backward wrote under one of their gradient names (``dW``), or that
    backward changed (stepped) itself, by label (``W``, ``layers[0]``): a gradient never compared."""
    attrs = attributes(obj)
    out = []
    for (attr, key), was in before.items():
        if attr in taken:
            continue
        now = attrs.get(attr) if key is None else _item(attrs.get(attr), key)
        written = key is None and any(isinstance(attrs.get(g), np.ndarray) for g in grad_names(attr))
        if written or not (isinstance(now, np.ndarray) and np.array_equal(now, was, equal_nan=True)):
            out.append(attr if key is None else f"{attr}[{key!r}]")
    return out


def _item(container: Any, key: Any) -> Any:
    """``container[key]``, or None where it holds no such item any more."""
    try:
        return container[key]
    except (KeyError, IndexError, TypeError):
        return None


def value_key(value: Any) -> Any:
    """The key of the parameter in a dict of its own with its gradient (``{"val": W, "grad": dW}``), or in an
    object holding both (a micro-framework's ``Parameter`` with ``.data`` and ``.grad``); None else."""
    if _boxing(value):
        return next((k for k in VALUE_KEYS if is_float_array(getattr(value, k, None))), None)
    if not isinstance(value, Mapping) or GRAD_KEY not in value:
        return None
    return next((k for k in VALUE_KEYS if is_float_array(value.get(k))), None)


def _boxing(value: Any) -> bool:
    """An object (no layer, no container) with a ``grad`` attribute beside its value: a parameter's box."""
    return (
        hasattr(value, "__dict__")
        and not isinstance(value, (Mapping, list, tuple, np.ndarray, type))
        and not callable(getattr(value, "backward", None))
        and GRAD_KEY in vars(value)
    )


def named(slots: list[Slot], input_names: Sequence[str]) -> list[Slot]:
    """The slots, named by their path (``W[val]``) where a dict key alone would repeat or be an input's name."""
    keys = [s.name for s in slots if s.key is not None]
    return [
        dataclasses.replace(s, full=True)
        if s.key is not None and (keys.count(s.name) > 1 or s.name in input_names)
        else s
        for s in slots
    ]


def attributes(obj: Any) -> dict[str, Any]:
    try:
        return dict(vars(obj))
    except TypeError:
        return {a: getattr(obj, a, None) for a in getattr(type(obj), "__slots__", ())}


def params_hint(obj: Any) -> str:
    attrs = attributes(obj)
    arrays = [a for a, v in attrs.items() if is_float_array(v)]
    dicts = [a for a, v in attrs.items() if isinstance(v, Mapping)]
    return (
        f"its float array attributes are {arrays or 'none'}, its dict attributes {dicts or 'none'}; name the "
        "parameters with params=['W', 'b'] or params='parameters'."
    )


def grad_slots(slot: Slot, grads: Any) -> list[Slot]:
    # searched for beside the parameter, on the layer that holds it (a pattern too: '{}_gradient' of a network's
    # layers[0].weights is layers[0].weights_gradient)
    if slot.via and (grads is None or (isinstance(grads, str) and "{}" in grads)):
        return [dataclasses.replace(c, via=slot.via) for c in grad_slots(dataclasses.replace(slot, via=()), grads)]
    name = slot.name
    if isinstance(grads, Mapping):
        for key in (name, slot.path, slot.label):
            if key in grads:
                return [Slot.parse(grads[key], "grads")]
        grads = None
    position = slot.key if isinstance(slot.key, int) else None  # an entry of a list of parameters
    if isinstance(grads, str) and grads != "return":
        return [Slot(grads.format(name))] if "{}" in grads else [Slot(grads, name if position is None else position)]
    if grads == "return":
        return []
    if position is not None:  # the gradient at the same position of a list beside it (self.grads[0])
        return [Slot(d, position) for d in GRAD_DICTS]
    boxed = slot.key in VALUE_KEYS
    base = slot.attr if boxed or slot.key is None else str(slot.key)
    return (
        [Slot(slot.attr, GRAD_KEY)] * boxed + [Slot(d, base) for d in GRAD_DICTS] + [Slot(n) for n in grad_names(base)]
    )


def looked_labels(obj: Any, candidates: Sequence[Slot], shape: tuple[int, ...] | None = None) -> list[str]:
    """Where the search looked for a gradient, as the user reads it: an entry of a dict attribute only when that
    attribute is a dict (or absent); an attribute of another kind (a tuple property) is named with its kind, and
    an array of another shape than the parameter's ``shape`` with its shape."""
    labels: list[str] = []
    for c in candidates:
        holder = getattr(c.owner(obj), c.attr, MISSING) if c.key is not None else MISSING
        found = c.get(obj)
        label = (
            c.label
            if holder is MISSING or isinstance(holder, Mapping)
            else (f"self.{c.attr} (a {type(holder).__name__}, not a dict)")
        )
        if shape is not None and is_float_array(found) and found.shape != shape:
            label += f" (of shape {found.shape}, not {shape})"
        if label not in labels:
            labels.append(label)
    return labels


def gradient_named(attr: str, param: str) -> bool:
    """A name the gradient of ``param`` may have when no pattern fits it: a gradient's (``d...``, ``...grad...``)
    that names the parameter (``delta_kernel`` for ``kernel``, ``gradient_weights``), ends in its initial (``d_c_w``
    for ``weights``), or is ``d`` and the start of its name (``dw`` for ``weight``, ``dgam`` for ``gamma``)."""
    a, p = attr.lower().lstrip("_"), param.lower().lstrip("_")
    for loss in LOSS_PREFIXES:  # (dL/dW written out: dLdW, dL_dw, CMU 11-785's dLdBW)
        if a.startswith(loss) and len(a) > len(loss):
            a = "d" + a[len(loss) :]
            break
    if not p or not (a.startswith("d") or "grad" in a):
        return False
    stem = a[1:].lstrip("_") if a.startswith("d") else ""  # (dw for weight, d_gam for gamma)
    return p in a or a.split("_")[-1] == p[0] or (bool(stem) and p.startswith(stem))


def snapshot(obj: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The float array attributes of ``obj``: the arrays themselves (not their ids, which a freed array lends to the
    next) and copies of their values."""
    return {a: (v, v.copy()) for a, v in attributes(obj).items() if is_float_array(v)}


def written_like(
    obj: Any,
    before: Mapping[str, tuple[np.ndarray, np.ndarray]],
    shapes: Mapping[Slot, tuple[int, ...]],
    taken: set[str],
) -> dict[Slot, Slot]:
    """Gradients that no name pattern finds (``self.d_c_w`` for ``self.weights``): the one float array attribute
    with a gradient's name that backward wrote (or created) in a parameter's shape, when no other parameter
    left to place has that shape. ``taken``: attributes that are parameters or gradients already."""
    written = {
        a: v
        for a, v in attributes(obj).items()
        if is_float_array(v)
        and a not in taken
        and (a not in before or before[a][0] is not v or not np.array_equal(before[a][1], v, equal_nan=True))
    }
    found = {}
    for s, shape in shapes.items():
        named = [a for a in written if gradient_named(a, _bare(s))]
        fits = [a for a in named if written[a].shape == shape]
        alone = len(fits) == 1 and not any(gradient_named(fits[0], _bare(o)) for o in shapes if o != s)
        # the only parameter of its shape, or the only one the name fits (gamma's dgamma beside beta's dbeta)
        if len(fits) == 1 and (sum(sh == shape for sh in shapes.values()) == 1 or alone):
            found[s] = Slot(fits[0])
        elif not fits and len(named) == 1 and not any(gradient_named(named[0], _bare(o)) for o in shapes if o != s):
            found[s] = Slot(named[0])  # (in another shape: the check names both shapes, not a gradient missing)
    return found


def _bare(s: Slot) -> str:
    """A parameter's own name, without the path to the layer holding it (``weight`` of ``fc1.weight``)."""
    return s.attr if s.key is None else str(s.key)


def zero(obj: Any, slots: Sequence[Slot]) -> None:
    """Zero the gradient arrays already on the copy: a backward pass that accumulates starts from zero."""
    for s in slots:
        value = s.get(obj)
        if is_float_array(value) and value.flags.writeable:
            value[...] = 0


def stale_arrays(obj: Any, inputs: Sequence[Any], diff_in: Sequence[int], names: Sequence[str]) -> list[str]:
    """What an earlier forward pass may have left on the user's ``obj``: its arrays (attributes, items of its list
    and dict attributes, a few levels deep, but for the parameter and gradient dicts) in the shape of a
    differentiated input (a stored input ``self.X``), as ``"self.X[0] (x's shape)"``."""
    shapes: dict[tuple[int, ...], list[str]] = {}
    for i in diff_in:
        if isinstance(inputs[i], np.ndarray):
            shapes.setdefault(np.shape(inputs[i]), []).append(names[i])  # (Q, K and V may share one shape)
    found: list[str] = []

    def visit(x: Any, label: str, level: int) -> None:
        if is_float_array(x) and x.shape in shapes:
            found.append(f"{label} ({' / '.join(shapes[x.shape])}'s shape)")
        elif level < 3 and isinstance(x, (list, tuple, Mapping)):
            for k, item in x.items() if isinstance(x, Mapping) else enumerate(x):
                visit(item, f"{label}[{k!r}]", level + 1)

    for attr, v in attributes(obj).items():
        if attr not in PARAM_DICTS + GRAD_DICTS:  # (parameters and their gradients are no state)
            visit(v, f"self.{attr}", 0)
    return found


def where_notes(
    slots: list[Slot], where: Mapping[str, Where], updated: Sequence[Slot], spec: Any, keyed: bool = False
) -> list[str]:
    """check_object's notes on where each parameter and its gradient were found (``updated``: the parameters
    ``backward`` updates itself; ``keyed``: backward returns their gradients in a dict keyed by their names)."""
    if not slots:
        return []

    def place(s: Slot, w: Where) -> str:
        if not isinstance(w, int):
            return w.label
        return f"the dict {spec.backward}() returns" if keyed else f"{spec.backward}()[{w}]"

    found = "; ".join(f"{s.name} = {s.label}, gradient in {place(s, where[s.name])}" for s in slots)
    notes = [f"{spec.cls}: {found}."]
    if updated:
        notes.append(
            f"{spec.cls}.{spec.backward} updates {', '.join(s.name for s in updated)} (an optimizer step "
            "inside backward): the gradients were read where backward wrote them, and every evaluation ran on a "
            "fresh copy of the layer."
        )
    return notes


#: Words in an array's name that say it is a buffer (running statistics, a mask, a positional table), not a
#: parameter whose gradient backward forgot.
BUFFER_WORDS = frozenset(
    "running moving mean var variance std stats stat mask buf buffer cache count eps pe pos position table const "
    "constant fixed frozen ema avg noise encoding encodings causal tril triu eye identity freqs inv window mu sigma "
    "sigma2 positional".split()
)


def buffer_named(slot: Slot) -> bool:
    """Whether the words of ``slot``'s name (split at underscores, dots, brackets and CamelCase humps:
    ``runningMean`` is running, mean) say buffer (:data:`BUFFER_WORDS`)."""
    words = set(re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", slot.name).lower()))
    return bool(BUFFER_WORDS & words)


def validate_slots(params: Any, grads: Any) -> None:
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
