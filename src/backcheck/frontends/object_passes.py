"""The functions :func:`~backcheck.check_object` hands to check_layer: ``forward(*inputs, *params)`` and
``backward(dout, *inputs, *params)`` on a fresh copy of the layer (classes, so that an executor can pickle them
with the layer); and parameters held in two slots at once (tied weights), checked once against the sum of their
slots' gradients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backcheck.errors import GradientStructureError, ParamsError
from backcheck.frontends.hints import constant_hint
from backcheck.frontends.slots import MISSING, Slot, Where, is_float_array, zero


# -- the functions check_layer calls (classes, so that an executor can pickle them with the layer) ---------------
class Forward:
    """``forward(*inputs, *params)`` on a fresh copy of the layer holding ``params``."""

    def __init__(self, template: Any, slots: list[Slot], spec: Any) -> None:
        self.template, self.slots, self.spec = template, slots, spec
        self.__name__ = f"{spec.cls}.{spec.forward}"

    def __call__(self, *args: Any) -> Any:
        n = self.spec.n_in
        obj = self.spec.make(self.template, self.slots, args[n:], args[:n])
        return getattr(obj, self.spec.forward)(*args[:n])


class Backward:
    """``backward(dout, *inputs, *params)``: forward then backward on a fresh copy, the gradients read from where
    backward wrote them (before any update of the parameters inside backward)."""

    #: it runs the forward pass itself: replayed random streams are restored before it, not left as forward left them
    runs_forward = True

    def __init__(
        self,
        template: Any,
        slots: list[Slot],
        where: dict[str, Where],
        spec: Any,
        tied: Mapping[str, Sequence[Where]] | None = None,
    ) -> None:
        self.template, self.slots, self.where, self.spec = template, slots, where, spec
        self.tied = dict(tied or {})  # a parameter's other slots' gradients (tied weights), added to its own
        self.__name__ = f"{spec.cls}.{spec.backward}"

    def _read(self, w: Where, ret: Any, obj: Any) -> Any:
        value = (ret[w] if len(ret) > w else None) if isinstance(w, int) else w.get(obj)
        return None if value is MISSING else value

    def __call__(self, dout: Any, *args: Any) -> tuple[Any, ...]:
        spec = self.spec
        obj = spec.make(self.template, self.slots, args[spec.n_in :], args[: spec.n_in])
        getattr(obj, spec.forward)(*args[: spec.n_in])
        every = [*self.where.values(), *(w for ws in self.tied.values() for w in ws)]
        zero(obj, [w for w in every if isinstance(w, Slot)])
        ret = getattr(obj, spec.backward)(dout)
        positional = any(isinstance(w, int) for w in every)
        grads = []
        for s in self.slots:
            value = self._read(self.where[s.name], ret, obj)
            for w in self.tied.get(s.name, ()):
                more = self._read(w, ret, obj)
                value = more if value is None else value if more is None else np.asarray(value) + more
            grads.append(value)
        return (*self._inputs(ret[: spec.n_in] if positional else ret), *grads)

    def _inputs(self, ret: Any) -> tuple[Any, ...]:
        spec = self.spec
        if (
            self.slots
            and not spec.list_in
            and isinstance(ret, (tuple, list))
            and len(ret) == spec.n_in + len(self.slots)
        ):
            ret = ret[: spec.n_in]  # (dX, dW, db), the parameters' gradients also stored on the object
        if spec.n_in == 1:
            return (ret[0] if isinstance(ret, (tuple, list)) and len(ret) == 1 else ret,)
        if not isinstance(ret, (tuple, list)) and len(spec.diff_in) == 1:
            # a bare gradient when one input is differentiated (labels beside it): that input's
            return tuple(ret if i == spec.diff_in[0] else None for i in range(spec.n_in))
        if not isinstance(ret, (tuple, list)) or len(ret) != spec.n_in:
            got = f"{len(ret)} values" if isinstance(ret, (tuple, list)) else f"a {type(ret).__name__}"
            n_got = len(ret) if isinstance(ret, (tuple, list)) else 1
            raise GradientStructureError(
                f"{spec.cls}.{spec.backward} returned {got} for {spec.n_in} inputs ({', '.join(spec.input_names)}).",
                "return one gradient per input of forward, in order (None for integer inputs)."
                + (constant_hint([spec.input_names[i] for i in spec.diff_in]) if len(spec.diff_in) > n_got else ""),
            )
        return tuple(ret)


def tie(slots: list[Slot], obj: Any, where: Mapping[Slot, Where]) -> tuple[list[Slot], dict, list[str]]:
    """Parameters held in several slots at once (the same array: tied weights) kept once, under the first slot's
    name, with the other slots' gradient places (their gradients are added to its own), and a note. (Views of
    one array are not the same array: the layer's deep copies hold them as arrays of their own.)"""
    kept: list[Slot] = []
    tied: dict[str, list[Where]] = {}
    notes = []
    for s in slots:
        first = next((k for k in kept if k.get(obj) is s.get(obj)), None)
        if first is None:
            kept.append(s)
            continue
        if where[s] != where[first]:
            tied.setdefault(first.name, []).append(where[s])
        notes.append(
            f"{first.name} and {s.name} hold the same array ({first.label} is {s.label}: tied weights): checked "
            f"once, as {first.name}, against the sum of their gradients."
        )
    return kept, tied, notes


# -- parameters that are views of one another (self.W_out = self.E.T) --------------------------------------------
def _pairs(cls: str, a: Slot, b: Slot, x: np.ndarray, y: np.ndarray) -> tuple[str, Slot]:
    """``a`` and ``b`` as the user reads them (which one is a view of which, when numpy says so), and the one
    that holds the weight."""
    if x.base is y:
        return f"{cls}'s parameter {a.label} is a view of {b.label}", b
    if y.base is x:
        return f"{cls}'s parameter {b.label} is a view of {a.label}", a
    return f"{cls}'s parameters {a.label} and {b.label} share memory (views of one array)", a


def _share(x: np.ndarray, y: np.ndarray) -> bool:
    try:
        return bool(np.shares_memory(x, y))
    except np.exceptions.TooHardError:
        return True


def view_groups(obj: Any, slots: Sequence[Slot], cls: str) -> list[list[tuple[Slot, np.ndarray]]]:
    """The parameter slots of ``obj`` (the user's layer, before any copy) whose arrays share memory without being
    the same array (views of one another: ``self.W_out = self.E.T``), in groups."""
    arrays = [(s, s.get(obj)) for s in slots if is_float_array(s.get(obj))]
    group = list(range(len(arrays)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i, (_, x) in enumerate(arrays):
        for j, (_, y) in enumerate(arrays[:i]):
            if x is y or root(i) == root(j) or not np.may_share_memory(x, y):
                continue
            if _share(x, y):
                group[root(i)] = root(j)
    found: dict[int, list[tuple[Slot, np.ndarray]]] = {}
    for i, item in enumerate(arrays):
        found.setdefault(root(i), []).append(item)
    return [g for g in found.values() if len({id(x) for _, x in g}) > 1]


def refuse_views(obj: Any, slots: Sequence[Slot], cls: str) -> None:
    """:class:`ParamsError` naming two parameter slots of ``obj`` that are views of one another: the deep copy every
    evaluation runs on would make them arrays of their own, and check them apart."""
    for g in view_groups(obj, slots, cls):
        (a, x), (b, y) = next((p, q) for k, p in enumerate(g) for q in g[:k] if p[1] is not q[1] and _share(p[1], q[1]))
        said, base = _pairs(cls, a, b, x, y)
        raise ParamsError(
            f"{said}: perturbing one moves the other, but every evaluation runs on a deep copy "
            "of the layer, where a view becomes an array of its own, so they cannot be checked as one weight.",
            f"hold the weight once ({base.label}) and build the other view inside the methods (e.g. "
            f"{base.label}.T), or give both slots the same array object (tied weights, checked once against the sum "
            "of their gradients).",
        )
