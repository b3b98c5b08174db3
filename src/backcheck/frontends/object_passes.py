"""The functions :func:`~backcheck.check_object` hands to check_layer: ``forward(*inputs, *params)`` and
``backward(dout, *inputs, *params)`` on a fresh copy of the layer (classes, so that an executor can pickle them
with the layer); and parameters held in two slots at once (tied weights: the same array, or views of one array),
checked once against the sum of their slots' gradients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from backcheck.bits import overlaps_itself, span
from backcheck.calls import call_user
from backcheck.containers import flatten, rebuild_like
from backcheck.errors import GradientStructureError, ParamsError
from backcheck.frontends.hints import constant_hint
from backcheck.frontends.object_returns import flat_return
from backcheck.frontends.object_steps import Stepped, before_step, dout_scale, read_step
from backcheck.frontends.slots import MISSING, Slot, Where, declared, is_float_array, zero


# -- the functions check_layer calls (classes, so that an executor can pickle them with the layer) ---------------
class Forward:
    """``forward(*inputs, *params)`` on a fresh copy of the layer holding ``params``."""

    def __init__(self, template: Any, slots: list[Slot], spec: Any) -> None:
        self.template, self.slots, self.spec = template, slots, spec
        self.__name__ = f"{spec.cls}.{spec.forward}"

    def __call__(self, *args: Any) -> Any:
        n = self.spec.n_in
        obj = self.spec.make(self.template, self.slots, args[n:], args[:n])
        return self.spec.call_forward(obj, args[:n])


#: A step for twice dout within this share of its size of the affine extension of the steps for 0 and dout.
AFFINE_SLACK = 1e-6


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
        tied: Mapping[str, Sequence[Where | Through]] | None = None,
    ) -> None:
        self.template, self.slots, self.where, self.spec = template, slots, where, spec
        self.tied = dict(tied or {})  # a parameter's other slots' gradients (tied weights), added to its own
        self.__name__ = f"{spec.cls}.{spec.backward}"
        self.rested: dict[str, float] = {}  # the largest step taken for a dout of zeros, by stepped parameter

    def _read(self, w: Where, ret: Any, obj: Any, before: Any = None, scale: float = 1.0) -> Any:
        if isinstance(w, Stepped):
            return read_step(w, obj, before)
        if scale != 1.0 and isinstance(w, Slot):  # a stored gradient of a loss's backward(self), times its dout
            value = self._read(w, ret, obj, before)
            return value if value is None else scale * np.asarray(value)
        value = (ret[w] if len(ret) > w else None) if isinstance(w, int) else w.get(obj)
        if isinstance(value, (list, tuple)) and isinstance(w, Slot):  # a gradient kept as a list of floats
            try:
                as_array = np.asarray(value)
            except ValueError:  # (ragged: told by the check as it is)
                return value
            return as_array if as_array.dtype.kind == "f" else value
        return None if value is MISSING else value

    def __call__(self, dout: Any, *args: Any) -> tuple[Any, ...]:
        spec = self.spec
        obj = spec.make(self.template, self.slots, args[spec.n_in :], args[: spec.n_in])
        call_user(getattr(obj, spec.forward), args[: spec.n_in], f"{spec.cls}.{spec.forward}")  # (named if it raises)
        tied = (_place(w) for ws in self.tied.values() for w in ws)
        every = [*self.where.values(), *tied]
        zero(obj, [w for w in every if isinstance(w, Slot)])
        before = before_step(obj, every)
        raw = spec.call_backward(obj, dout, args, spec.step is not None)
        ret = flat_return(raw, spec.n_in, self.slots, spec.input_names)
        if isinstance(ret, Mapping) and ret and not _input_keyed(ret, spec.input_names, args[: spec.n_in]):
            raise _parameters_returned(spec, list(ret))
        positional = any(isinstance(w, int) for w in every)
        # (a loss's backward(self): its stored gradients times dout too)
        scale = dout_scale(getattr(obj, spec.backward), dout, spec.dout_free, spec.dout_unit)
        grads = []
        for s in self.slots:
            value = self._read(self.where[s.name], ret, obj, before, scale)
            read = [value]
            for w in self.tied.get(s.name, ()):
                raw = self._read(_place(w), ret, obj, scale=scale)
                if any(_one_memory(raw, r) for r in read):
                    continue  # one gradient array for the tied slots (or a view of it): its sum is already there
                read.append(raw)
                more = w.map(raw) if isinstance(w, Through) else raw
                value = more if value is None else value if more is None else np.asarray(value) + more
            grads.append(value)
        resting = self._resting(dout, args) if any(isinstance(w, Stepped) for w in self.where.values()) else {}
        for k, s in enumerate(self.slots):
            if s.name in resting and grads[k] is not None:
                grads[k] = np.asarray(grads[k]) - resting[s.name]
                most = float(np.max(np.abs(resting[s.name]), initial=0.0))
                self.rested[s.name] = max(self.rested.get(s.name, 0.0), most)  # (resting_note drops the zeros)
        return (*self._inputs(ret[: spec.n_in] if positional else ret), *grads)

    def _resting(self, dout: Any, args: tuple[Any, ...]) -> dict[str, np.ndarray]:
        """The step a stepping backward takes for a dout of zeros, by parameter read off its step, where its step is
        affine in dout (it takes ``s(0) + 2 (s(dout) - s(0))`` for twice dout): what the step holds besides the
        gradient (a velocity of earlier steps, a weight decay), to be taken off the step it takes for dout. Nothing
        where the step is not affine (Adam's moments: its linearity test tells it) or a call raises."""
        places = [w for w in self.where.values() if isinstance(w, Stepped)]
        parts = [np.asarray(x) for _, x in flatten(dout, "d")]
        s0, s1, s2 = (self._step_for(rebuild_like(dout, [k * x for x in parts]), args, places) for k in (0.0, 1.0, 2.0))
        if s0 is None or s1 is None or s2 is None:
            return {}
        out = {}
        for name, rest in s0.items():
            size = float(np.max(np.abs(s2[name]), initial=0.0))
            if np.all(np.abs(s2[name] - (rest + 2 * (s1[name] - rest))) <= AFFINE_SLACK * size):
                out[name] = rest
        return out

    def _step_for(self, dout: Any, args: tuple[Any, ...], places: list[Stepped]) -> dict[str, np.ndarray] | None:
        """Each stepped parameter's step for ``dout`` on a fresh copy of the layer (None where a call raises)."""
        spec = self.spec
        obj = spec.make(self.template, self.slots, args[spec.n_in :], args[: spec.n_in])
        try:
            getattr(obj, spec.forward)(*args[: spec.n_in])
            before = before_step(obj, places)
            spec.call_backward(obj, dout, args, True)
        except Exception:  # noqa: BLE001 - no resting step to take off
            return None
        return {w.slot.name: read_step(w, obj, before) for w in places}

    def _inputs(self, ret: Any) -> tuple[Any, ...]:
        spec = self.spec
        heads = returned_heads(spec, ret, len(self.slots))
        if self.slots and not spec.list_in and isinstance(ret, (tuple, list)) and heads:
            ret = tuple(ret[: heads[0]])  # (dX, dW, db), the parameters' gradients also stored on the object
        elif self.slots and not spec.list_in and isinstance(ret, (tuple, list)) and len(ret) > spec.n_in:
            raise self._some_returned(ret)
        if spec.n_in == 1:
            return (ret[0] if isinstance(ret, (tuple, list)) and len(ret) == 1 else ret,)
        if ret is None and not spec.diff_in:  # (a loss of constant inputs, X and y: its backward returns nothing)
            return (None,) * spec.n_in
        if not isinstance(ret, (tuple, list)) and len(spec.diff_in) == 1:
            # a bare gradient when one input is differentiated (labels beside it): that input's
            return tuple(ret if i == spec.diff_in[0] else None for i in range(spec.n_in))
        if isinstance(ret, (tuple, list)) and len(ret) == len(spec.diff_in) < spec.n_in:
            # one gradient per differentiated input ((dQ, dK, dV) beside a mask): placed on those inputs
            placed = dict(zip(spec.diff_in, ret, strict=True))
            return tuple(placed.get(i) for i in range(spec.n_in))
        if not isinstance(ret, (tuple, list)) or len(ret) != spec.n_in:
            got = f"{len(ret)} values" if isinstance(ret, (tuple, list)) else f"a {type(ret).__name__}"
            n_got = len(ret) if isinstance(ret, (tuple, list)) else 1
            diff = [spec.input_names[i] for i in spec.diff_in]
            raise GradientStructureError(
                f"{spec.cls}.{spec.backward} returned {got} for {spec.n_in} inputs ({', '.join(spec.input_names)}).",
                "return one gradient per input of forward, in order (None for integer inputs)."
                + (constant_hint(diff, n_got) if len(diff) > n_got else ""),
            )
        return tuple(ret)

    def _some_returned(self, ret: Sequence[Any]) -> GradientStructureError:
        """The error for a return value with more values than inputs but not one per parameter after them (``(dX,
        db)`` with ``self.dW`` stored, or ``(dX, cache)``)."""
        spec, k = self.spec, len(ret) - self.spec.n_in
        shapes = ", ".join(str(np.shape(g)) if isinstance(g, np.ndarray) else type(g).__name__ for g in ret)
        params = ", ".join(s.name for s in self.slots)
        return GradientStructureError(
            f"{spec.cls}.{spec.backward} returned {len(ret)} values ({shapes}) for {spec.n_in} input(s) "
            f"({', '.join(spec.input_names)}) and {len(self.slots)} parameter(s) ({params}): {k} after the inputs' "
            "gradients is neither none nor one per parameter.",
            f"return the inputs' gradients, then either every parameter's gradient in order ({params}) or none "
            "(each stored on the object, as self.dW); not some of each, and no other value (a cache) beside them.",
        )


def returned_heads(spec: Any, ret: Any, n_params: int) -> list[int]:
    """How many inputs' gradients lead ``backward``'s return value where ``n_params`` parameters' gradients follow
    them: one per input (``(dX, dW, db)``), or one per differentiated input (``(dQ, dK, dV, dW)`` beside a mask)."""
    if not isinstance(ret, (tuple, list)) or not n_params:
        return []
    return [h for h in dict.fromkeys((spec.n_in, len(spec.diff_in))) if len(ret) == h + n_params]


def tie(
    slots: list[Slot], obj: Any, where: Mapping[Slot, Where]
) -> tuple[list[Slot], dict[str, list[Where]], list[str]]:
    """Parameters held in several slots at once (the same array: tied weights) kept once, under the first slot's
    name, with the other slots' gradient places (their gradients are added to its own), and a note. (Views of
    one array are not the same array: :func:`tie_views` keeps them once.)"""
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


def _input_keyed(ret: Mapping[Any, Any], names: Sequence[str], inputs: Sequence[Any]) -> bool:
    """Whether a dict backward returned names an input (``x``, ``dx``, ``grad_x``) among its keys, or may be the
    gradient of a dict input (keyed as it is)."""
    if any(isinstance(x, Mapping) for x in inputs):
        return True
    plain = {str(n).lower() for n in names}
    keys = {str(k).lower().replace("_", "") for k in ret}
    return any(k in plain or k in {f"d{n}" for n in plain} or k in {f"grad{n}" for n in plain} for k in keys)


def _parameters_returned(spec: Any, keys: list[Any]) -> GradientStructureError:
    """The error for a backward that returns the parameters' gradients by name and none of the inputs' (a
    network's ``gradient(x, t) -> {'W1': ..., 'b1': ...}``, deep-learning-from-scratch's TwoLayerNet)."""
    shown = ", ".join(repr(k) for k in keys[:4]) + (", ..." if len(keys) > 4 else "")
    return GradientStructureError(
        f"{spec.cls}.{spec.backward} returned a dict keyed {shown}: parameters' gradients, none of the inputs' "
        f"({', '.join(spec.input_names)}); check_object checks a layer's forward and backward pair.",
        "a network whose gradient(x, t) returns its parameters' gradients is checked as one function, its loss "
        "reading the arrays the check moves in place: backcheck.check(lambda p: net.loss(x, t), net.params, "
        "lambda p: net.gradient(x, t)).",
    )


def also_held(obj: Any, slots: list[Slot]) -> list[Slot]:
    """The slots ``params=`` leaves out that hold a named slot's very array (``self.params = [W, W]``): a move of
    one moves the other, so they are checked with it, tied (a 'constant' there would be moved by every step)."""
    try:
        held = [s.get(obj) for s in slots]
        paths = {s.path for s in slots}
        found = declared(obj, None, type(obj).__name__)
    except Exception:  # noqa: BLE001 - the check itself reports on the layer as named
        return []
    return [s for s in found if s.path not in paths and any(s.get(obj) is h for h in held)]


def _place(w: Where | Through) -> Where:
    """Where a tied slot's gradient is read (a view's: its own place, mapped back afterwards)."""
    return w.where if isinstance(w, Through) else w


def _one_memory(x: Any, y: Any) -> bool:
    """Whether two gradients read are one array (or views of one array)."""
    return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and np.may_share_memory(x, y) and _share(x, y)


# -- parameters that are views of one another (self.W_out = self.E.T) --------------------------------------------
def _pairs(cls: str, a: Slot, b: Slot, x: np.ndarray, y: np.ndarray) -> str:
    """``a`` and ``b`` as the user reads them: which one is a view of which, when numpy says so."""
    if x.base is y:
        return f"{cls}'s parameter {a.label} is a view of {b.label}"
    if y.base is x:
        return f"{cls}'s parameter {b.label} is a view of {a.label}"
    return f"{cls}'s parameters {a.label} and {b.label} share memory (views of one array)"


def _share(x: np.ndarray, y: np.ndarray) -> bool:
    try:
        return bool(np.shares_memory(x, y))
    except np.exceptions.TooHardError:
        return True


def view_groups(obj: Any, slots: Sequence[Slot]) -> list[list[tuple[Slot, np.ndarray]]]:
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


def _refuse(cls: str, a: Slot, b: Slot, x: np.ndarray, y: np.ndarray, why: str, hint: str) -> ParamsError:
    return ParamsError(f"{_pairs(cls, a, b, x, y)}, {why}", hint)


@dataclass(frozen=True)
class Member:
    """A parameter slot's array as a view of its group's buffer: its first element at item ``offset``, its
    ``strides`` counted in items (so that the buffer may take another dtype, an upcast one)."""

    slot: Slot
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    rank: int = 0  # 0: the array owns its memory, 1: C-contiguous, 2: another view (the parameter: the lowest)

    def over(self, buf: np.ndarray) -> np.ndarray:
        """The view of ``buf`` this member is."""
        return as_strided(buf[self.offset :], self.shape, tuple(k * buf.itemsize for k in self.strides))

    def cells(self, size: int) -> np.ndarray:
        """The buffer's items this member holds, sorted."""
        return np.sort(self.over(np.arange(size, dtype=np.intp)), axis=None)


@dataclass(frozen=True)
class Shared:
    """Parameter slots whose arrays share memory (views of one array: ``self.W_out = self.E.T``), rebuilt in every
    copy of the layer as views of one fresh buffer of ``size`` items, so that perturbing one moves the others as it
    does on the user's layer."""

    members: tuple[Member, ...]
    size: int

    def memo(self, obj: Any, values: Mapping[Slot, Any]) -> dict[int, np.ndarray]:
        """Deep-copy memo entries: each member's array on ``obj`` -> its view of a fresh buffer holding ``obj``'s
        values, then the parameters' ``values`` (the point being evaluated)."""
        now = [(m, m.slot.get(obj)) for m in self.members if is_float_array(m.slot.get(obj))]
        given = [(m, np.asarray(values[m.slot])) for m in self.members if m.slot in values]
        dtype = np.result_type(*(v.dtype for _, v in given)) if given else now[0][1].dtype
        buf = np.zeros(self.size, dtype)
        for m, v in [*now, *given]:
            m.over(buf)[...] = v
        return {id(x): m.over(buf) for m, x in now}


def _member(cls: str, a: Slot, x: np.ndarray, lo: int, group: list[tuple[Slot, np.ndarray]]) -> Member:
    """``a``'s array ``x`` as a member of a buffer starting at byte ``lo``, or :class:`ParamsError` naming it and a
    slot it shares memory with for a view that cannot be one (elements that share memory, misaligned)."""
    size = x.itemsize
    start = int(x.__array_interface__["data"][0]) - lo
    b, y = next(q for q in group if q[1] is not x and _share(q[1], x))
    if overlaps_itself(x):
        raise _refuse(
            cls, a, b, x, y,
            f"and {a.label} has elements that share memory (strides {x.strides} for shape {x.shape}: a broadcast "
            "or as_strided view): perturbing one element of the weight would move several of its elements.",
            "hold the weight itself as the parameter and broadcast it inside the methods.",
        )  # fmt: skip
    if start % size or any(k % size for k in x.strides):
        raise _refuse(
            cls, a, b, x, y,
            f"and {a.label}'s elements do not fall on its elements' boundaries (a view at a byte offset).",
            "hold the weight once and build the other view inside the methods.",
        )  # fmt: skip
    rank = 0 if x.base is None else 1 if x.flags.c_contiguous else 2
    return Member(a, start // size, x.shape, tuple(k // size for k in x.strides), rank)


def shared(obj: Any, slots: Sequence[Slot], cls: str) -> tuple[Shared, ...]:
    """The groups of parameter slots of ``obj`` (the layer before any copy of its parameters) that are views of one
    another, each to be rebuilt over one buffer in every copy; :class:`ParamsError` naming two slots for views that
    cannot be perturbed element by element (broadcast, another dtype's view)."""
    found = []
    for g in view_groups(obj, slots):
        (a, x), (b, y) = next(
            ((p, q) for k, p in enumerate(g) for q in g[:k] if p[1].dtype != q[1].dtype), (g[0], g[0])
        )
        if a != b:
            raise _refuse(
                cls, a, b, x, y,
                f"as arrays of other dtypes ({x.dtype} and {y.dtype}: a .view of another dtype).",
                "hold the weight once, in one dtype, and build the other view inside the methods.",
            )  # fmt: skip
        spans = [span(x) for _, x in g]
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
        members = tuple(_member(cls, a, x, lo, g) for a, x in g)
        found.append(Shared(members, (hi - lo) // g[0][1].itemsize))
    return tuple(found)


@dataclass(frozen=True)
class Through:
    """A gradient place of a slot that is a view of a parameter (``member`` of the parameter ``param``): its
    gradient mapped back through the view (scattered into a zero array of the parameter's shape)."""

    where: Where
    member: Member
    param: Member
    size: int

    def map(self, g: Any) -> Any:
        if g is None:
            return None
        g = np.asarray(g)
        if g.shape != self.member.shape:
            raise GradientStructureError(
                f"the gradient of {self.member.slot.label} has shape {g.shape}, not its shape {self.member.shape}.",
                f"leave the gradient of {self.member.slot.label} in its shape ({self.member.slot.name} is a view "
                f"of {self.param.slot.name}: its gradient is mapped back through the view).",
            )
        acc = np.zeros(self.size, g.dtype if g.dtype.kind in "fc" else np.float64)
        self.member.over(acc)[...] = g
        return np.array(self.param.over(acc))


def tie_views(
    kept: list[Slot], groups: Sequence[Shared], where: Mapping[Slot, Where], cls: str
) -> tuple[list[Slot], dict[str, list[Through]], list[str]]:
    """Parameters that are views of another parameter kept once, as the one holding the others (the base array's
    slot), with the others' gradient places (mapped back through their views and added to its own), and a note;
    a slot left out (no gradient) that is a view of a parameter follows it, with a note. Views that overlap
    without one holding the others: :class:`ParamsError`."""
    tied: dict[str, list[Through]] = {}
    notes: list[str] = []
    out = list(kept)
    for g in groups:
        cells = {m: m.cells(g.size) for m in g.members}
        params = [m for s in kept for m in g.members if m.slot == s]
        for m in params:
            if m.slot not in out:
                continue
            near = [o for o in params if o.slot in out and np.intersect1d(cells[o], cells[m]).size]
            union = np.unique(np.concatenate([cells[o] for o in near]))
            base = min((o for o in near if cells[o].size == union.size), key=lambda o: o.rank, default=None)
            if base is None:
                o = next(o for o in near if not np.isin(cells[o], cells[m]).all() and o != m)
                raise ParamsError(
                    f"{cls}'s parameters {m.slot.label} and {o.slot.label} are views of one array that overlap, and "
                    "no parameter among them holds all the others: they cannot be checked as one weight.",
                    "hold the weight once as a parameter and take both views of it inside the methods.",
                )
            for o in near:
                if o is base:
                    continue
                out.remove(o.slot)
                if where[o.slot] != where[base.slot]:
                    tied.setdefault(base.slot.name, []).append(Through(where[o.slot], o, base, g.size))
                notes.append(
                    f"{o.slot.name} is a view of {base.slot.name} ({o.slot.label} shares {base.slot.label}'s "
                    f"memory: tied weights): checked once, as {base.slot.name}, against its gradient plus "
                    f"{o.slot.name}'s mapped back through the view."
                )
        for m in g.members:
            holder = next((p for p in params if p.slot in out and np.isin(cells[m], cells[p]).all()), None)
            if m.slot not in kept and holder is not None and (m.offset, m.shape, m.strides) != (
                holder.offset, holder.shape, holder.strides,
            ):  # fmt: skip
                notes.append(
                    f"{m.slot.name} ({m.slot.label}) shares memory with {holder.slot.name} (views of one array): it "
                    f"moved with {holder.slot.name} in every evaluation."
                )
    return out, tied, notes
