"""Parameter trees <-> one flat vector, with exact restore of the user's arrays.

A *tree* is an array, a Python or numpy float, or a dict / list / tuple / namedtuple of trees.  The checker
perturbs one flat vector; this module maps every position of that vector back to the user's own names and
shapes (``params['W1'][3, 7]``) and owns the only code that writes into user arrays.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.bits import bitsum, differ, foreign_float, foreign_float_error, overlaps_itself, span
from backcheck.containers import (
    build_node,
    children,
    describe,
    is_container,
    is_namedtuple,
)
from backcheck.errors import GradientStructureError, ParamsError, UserFunctionError
from backcheck.gradients import gradient_leaf, keys_note, matched_keys, same_but_ones


@dataclass
class Leaf:
    """One array (or scalar) of a tree, and where its elements sit in the flat vector."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    source: Any  # the user's own object
    work: np.ndarray  # the array that is perturbed: the user's own memory (a plain ndarray view), or a private copy
    in_place: bool  # True when ``work`` is the user's memory
    scalar: bool = False  # a Python/numpy scalar, rebuilt on every call
    original: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    size: int = field(init=False)  # (the shape is the one registered: it never changes)
    #: where ``work``'s memory starts (read once: the user's array moving away from it is a resize)
    address: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.size = math.prod(self.shape)
        self.address = _data(self.work)

    def element_name(self, local: int) -> str:
        return self.name + format_index(unravel(local, self.shape))

    def handover(self) -> Any:
        """What the user's function receives for this leaf, holding the current values.

        The user's own object when it is perturbed in place; otherwise the working copy, as the user's scalar
        type or viewed as the user's array subclass (``np.matrix``), so the function's arithmetic is unchanged.
        """
        if self.in_place:
            return self.source
        if self.scalar:
            value = self.work[()]
            return float(value) if isinstance(self.source, float) else value
        return _as_kind(self.source, self.work)


def _as_kind(source: Any, arr: np.ndarray) -> Any:
    kind = type(source)
    if isinstance(source, np.ndarray) and kind is not np.ndarray and arr.ndim == source.ndim:
        return arr.view(kind)
    return arr


def unravel(local: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The C-order multi-index of flat position ``local`` (``np.unravel_index`` without its overhead)."""
    out = []
    for dim in reversed(shape):
        local, rest = divmod(int(local), dim) if dim else (local, 0)
        out.append(rest)
    return tuple(reversed(out))


def format_index(index: tuple[Any, ...]) -> str:
    if not index:
        return ""
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _as_float_dtype(obj: Any, name: str) -> np.dtype:
    if isinstance(obj, (bool, np.bool_)):
        raise ParamsError(
            f"{name} is a bool; only floating-point values can be differentiated.",
            "pass non-differentiable values through a closure, or to check_layer, which skips them.",
        )
    if isinstance(obj, (int, np.integer)):
        raise ParamsError(
            f"{name} is the integer {obj!r}; only floating-point values can be differentiated.",
            f"write it as a float ({float(obj)!r}), or pass it through a closure if it is not a parameter.",
        )
    if isinstance(obj, float):
        return np.dtype(np.float64)
    dt = np.asarray(obj).dtype
    if foreign_float(dt):  # (numpy reads some of ml_dtypes' floats as kind 'f')
        raise foreign_float_error(name, dt)
    if dt.kind == "f":
        return dt
    if dt.kind in "iub":
        raise ParamsError(
            f"{name} has dtype {dt}; only floating-point arrays can be differentiated.",
            "convert it with .astype(np.float64), or pass labels and masks through a closure "
            "(check_layer skips integer inputs by itself).",
        )
    if dt.kind == "c":
        raise ParamsError(
            f"{name} has complex dtype {dt}; backcheck checks real parameters.",
            "split it into real and imaginary parts, each a float array.",
        )
    raise ParamsError(f"{name} has dtype {dt}, which cannot be differentiated.", "pass float arrays.")


class Tree:
    """A parameter tree packed into one flat vector.

    Parameters
    ----------
    obj : tree
        The user's parameters.
    root : str
        The name the reports use for the tree itself (``params``); with ``bare_keys`` a top-level dict's keys
        are used alone (``x``, ``w``), which suits the inputs of a layer.
    in_place : bool
        Perturb the user's own writable arrays, views included (so functions that read them through a closure
        see the perturbation); otherwise every array is copied first and the user's arrays are never written.
        Arrays perturbed in place must not share memory (the same array twice, an array and a view of it):
        that raises :class:`ParamsError` naming both.

    Attributes
    ----------
    excluded : ndarray of int
        Flat positions holding NaN or +-inf at the point (masks, padding): they are not coordinates to
        differentiate; they keep their value and are packed as 0 in gradients.
    """

    def __init__(self, obj: Any, root: str = "params", *, in_place: bool = True, bare_keys: bool = False):
        self.obj = obj
        self.root = root
        self.leaves: list[Leaf] = []
        self.stale: set[str] = set()  # leaves the function resized: views taken of their memory before are stale
        self.reshaped: dict[str, tuple[int, ...]] = {}  # gradients accepted in a shape but for axes of size 1
        self.keyed: dict[str, list[str]] = {}  # dicts of gradients read under d-prefixed keys, and keys left out
        self.structure = self._walk(obj, root, in_place, bare_keys, top=True)
        self.size = sum(leaf.size for leaf in self.leaves)
        if not self.leaves:
            raise ParamsError(
                f"{root} holds no arrays to differentiate"
                + (" (an empty container)" if is_container(obj) else "")
                + ".",
                "pass at least one float array.",
            )
        self.offsets = np.array([leaf.offset for leaf in self.leaves], dtype=np.int64)
        self._starts = self.offsets.tolist()  # (for :meth:`leaf_of`: one bisection, no numpy call per element)
        _refuse_aliasing([leaf for leaf in self.leaves if leaf.in_place and leaf.size])
        bad = [
            np.flatnonzero(~np.isfinite(leaf.original.reshape(-1))) + leaf.offset
            for leaf in self.leaves
            if not np.isfinite(leaf.original).all()
        ]
        self.excluded = np.concatenate(bad) if bad else np.empty(0, dtype=np.intp)
        #: excluded positions (entries of +-inf: masks) where a gradient packed here was not finite
        self.masked_nonfinite = np.empty(0, dtype=np.intp)

    # -- building -------------------------------------------------------------------------------------
    def _walk(self, obj: Any, name: str, in_place: bool, bare_keys: bool, top: bool = False) -> Any:
        if is_container(obj):
            kids = []
            for key, suffix, child in children(obj):
                child_name = str(key) if (top and bare_keys and isinstance(obj, Mapping)) else name + suffix
                kids.append((key, self._walk(child, child_name, in_place, bare_keys)))
            return (obj, kids)
        _refuse_leaf(obj, name)
        dtype = _as_float_dtype(obj, name)
        offset = sum(leaf.size for leaf in self.leaves)
        if isinstance(obj, np.ndarray):
            # perturbed through a plain view of the user's memory: a view object of its own, so that a function
            # that freezes or reshapes its argument cannot stop the restore (np.matrix keeps its 2-d shape)
            base = obj.view(np.ndarray)
            original = np.array(base, order="C", copy=True)
            writable = in_place and base.flags.writeable
            work = base if writable else original.copy()
            leaf = Leaf(name, base.shape, dtype, offset, obj, work, writable, original=original)
        else:
            # scalars: perturbed in a private 0-d array and handed over rebuilt
            work = np.array(obj, dtype=dtype)
            leaf = Leaf(name, (), dtype, offset, obj, work, False, scalar=True, original=work.copy())
        self.leaves.append(leaf)
        return len(self.leaves) - 1

    # -- what the user's function receives --------------------------------------------------------------
    def current(self) -> Any:
        """The tree to hand to the user's function, holding the current (possibly perturbed) values.

        Its containers are new on every call (a shallow rebuild: the arrays are the working ones), so a function
        that adds, replaces or deletes entries changes neither the user's containers nor what later calls get.
        """
        node = self.structure
        return self.leaves[node].handover() if isinstance(node, int) else self._current(node)

    def _current(self, node: Any) -> Any:
        template, kids = node
        leaves = self.leaves
        if type(template) is dict:  # the common case, built directly (loops: cheaper than comprehensions here)
            out = {}
            for key, k in kids:
                out[key] = leaves[k].handover() if k.__class__ is int else self._current(k)
            return out
        values = []
        for _, k in kids:
            values.append(leaves[k].handover() if k.__class__ is int else self._current(k))
        return build_node(node, values)

    def fresh(self, flat: np.ndarray | None = None, dtype: Any = None, copy: bool = True) -> Any:
        """A new tree of private arrays holding ``flat`` (or the original values); ``copy=False`` lets the
        arrays be views of a ``flat`` the caller owns and does not change."""
        return self._fresh(self.structure, flat, dtype, copy)

    def _fresh(self, node: Any, flat: np.ndarray | None, dtype: Any, copy: bool = True) -> Any:
        if isinstance(node, int):
            leaf = self.leaves[node]
            if flat is None:
                arr = leaf.original.copy()
            else:
                arr = np.asarray(flat[leaf.offset : leaf.offset + leaf.size]).reshape(leaf.shape)
            arr = arr.astype(dtype or leaf.dtype, copy=copy or flat is None)
            if leaf.scalar and flat is None and isinstance(leaf.source, float):
                return float(arr)
            return _as_kind(leaf.source, arr) if flat is None else arr
        return build_node(node, [self._fresh(k, flat, dtype, copy) for _, k in node[1]])

    def fresh_arrays(self, dtype: Any) -> tuple[Any, list[np.ndarray]]:
        """A new tree of private arrays of ``dtype`` (scalars as 0-d arrays), and those arrays in leaf order."""
        arrays = [leaf.original.astype(dtype, copy=True).reshape(leaf.shape) for leaf in self.leaves]
        return self._with(self.structure, arrays), arrays

    def with_arrays(self, arrays: list[np.ndarray]) -> Any:
        """The tree's structure around ``arrays`` (one per leaf, in leaf order), as they are: no copies."""
        return self._with(self.structure, arrays)

    def _with(self, node: Any, arrays: list[np.ndarray]) -> Any:
        if node.__class__ is int:
            return arrays[node]
        if type(node[0]) is dict:  # the common case, built directly (as in _current)
            return {key: arrays[k] if k.__class__ is int else self._with(k, arrays) for key, k in node[1]}
        return build_node(node, [self._with(k, arrays) for _, k in node[1]])

    # -- flat views ---------------------------------------------------------------------------------------
    def values(self) -> np.ndarray:
        """The original values as one float64 vector (read-only: made once, as the originals never change)."""
        made = self.__dict__.get("_values")
        if made is None:
            made = np.concatenate([leaf.original.reshape(-1).astype(np.float64) for leaf in self.leaves])
            made.flags.writeable = False
            self.__dict__["_values"] = made
        return made

    def ties(self, of: np.ndarray, within_arrays: bool = False) -> list[np.ndarray]:
        """The groups of two or more elements (flat positions, sorted; the largest group first) holding one finite
        original value with an element of ``of``: across the tree, or ``within_arrays`` within each array."""
        values = self.values()
        shared = np.unique(values[of])
        members = np.flatnonzero(np.isin(values, shared[np.isfinite(shared)])) if shared.size else np.zeros(0, int)
        if members.size < 2:
            return []
        key = np.searchsorted(self.offsets, members, side="right") if within_arrays else np.zeros(members.size)
        order = np.lexsort((values[members], key))
        members, vals, key = members[order], values[members][order], key[order]
        groups = np.split(members, np.flatnonzero((np.diff(vals) != 0) | (np.diff(key) != 0)) + 1)
        return sorted((np.sort(g) for g in groups if g.size >= 2), key=lambda g: -g.size)

    def leaf_of(self, i: int) -> int:
        """The index of the leaf holding global position ``i`` (past empty leaves sharing its offset)."""
        return bisect_right(self._starts, i) - 1 if len(self._starts) > 1 else 0

    def locate(self, i: int) -> tuple[Leaf, int]:
        """The leaf and the local flat index of global position ``i``."""
        leaf = self.leaves[self.leaf_of(i)]
        return leaf, int(i - leaf.offset)

    def element_name(self, i: int) -> str:
        return self.locate(i)[0].element_name(self.locate(i)[1])

    def notes(self) -> list[str]:
        """What the report should say about the point itself: empty arrays, non-finite entries left out."""
        out = []
        if self.size == 0:
            out.append(f"no elements to check: every array of {self.root} is empty, so the check passes trivially.")
        for leaf in self.leaves if self.excluded.size else ():  # (the non-finite elements are the excluded ones)
            if bad := int(np.count_nonzero(~np.isfinite(leaf.original))):
                out.append(
                    f"{leaf.name}: {bad} of {leaf.size} element(s) are NaN or +-inf (masks, padding): they are "
                    "not coordinates to differentiate, so they keep their value and are not checked."
                )
        return out

    # -- gradients ----------------------------------------------------------------------------------------
    def pack(self, other: Any, what: str = "gradient", *, strict_dtype: bool = False) -> np.ndarray:
        """Validate that ``other`` has this tree's structure and shapes; return it as one float64 vector.

        A leaf in another float dtype than its parameter is accepted (see :meth:`pack_dtypes`), unless
        ``strict_dtype``. Non-finite values are kept (a NaN gradient element is a failing element, not an
        error), except at :attr:`excluded` positions, which are packed as 0.
        """
        return self.pack_dtypes(other, what, strict_dtype=strict_dtype)[0]

    def pack_dtypes(
        self, other: Any, what: str = "gradient", *, strict_dtype: bool = False
    ) -> tuple[np.ndarray, dict[str, np.dtype]]:
        """Like :meth:`pack`, and the dtypes of the leaves of ``other`` that differ from their parameter's."""
        out = np.empty(self.size, dtype=np.float64)
        dtypes: dict[str, np.dtype] = {}
        self._pack(self.structure, other, self.root, (what, strict_dtype, out, dtypes))
        if self.excluded.size:
            if what != "report":  # (a report's numeric values and bounds are not finite there by design)
                self.note_masked(out)
            out[self.excluded] = 0.0
        return out, dtypes

    def note_masked(self, g: np.ndarray) -> None:
        """Record the mask entries (+-inf: :attr:`excluded` positions) where the gradient ``g`` (flat) is not
        finite, in :attr:`masked_nonfinite` (see :func:`backcheck.findings.masked_gradient`)."""
        at = self.excluded[np.isinf(self.values()[self.excluded])]
        bad = at[~np.isfinite(g[at])]
        if bad.size:
            self.masked_nonfinite = np.union1d(self.masked_nonfinite, bad)

    def grad_eps(self, dtypes: Mapping[str, np.dtype]) -> np.ndarray | None:
        """Per element, the machine epsilon to judge a gradient at: the coarser of its parameter's dtype and
        its own (``dtypes`` as :meth:`pack_dtypes` gives them); None when that is the parameter's everywhere."""
        coarser = any(np.finfo(d).eps > np.finfo(self._leaf(n).dtype).eps for n, d in dtypes.items())
        if not coarser:
            return None
        eps = [max(np.finfo(lf.dtype).eps, np.finfo(dtypes.get(lf.name, lf.dtype)).eps) for lf in self.leaves]
        return self.per_leaf(eps)

    def per_leaf(self, values: Sequence[float]) -> np.ndarray:
        """One value per leaf over its elements (read-only; a large single leaf's costs no memory)."""
        if len(self.leaves) == 1:  # (a broadcast takes longer to make than a small array)
            value = float(values[0])
            return np.broadcast_to(np.float64(value), (self.size,)) if self.size > 4096 else np.full(self.size, value)
        return np.repeat(np.asarray(values, dtype=np.float64), [leaf.size for leaf in self.leaves])

    def dtype_notes(self, dtypes: Mapping[str, np.dtype], what: str = "gradient") -> list[str]:
        """Notes on gradients accepted in another dtype or shape than their parameter's."""
        out = [
            f"the {what} of {name} has shape {shape} for a parameter of shape {self._leaf(name).shape}: the same "
            "elements but for axes of size 1, accepted."
            for name, shape in self.reshaped.items()
        ] + [keys_note(name, left, what) for name, left in self.keyed.items()]
        for name, dt in dtypes.items():
            leaf = self._leaf(name)
            low = dt if np.finfo(dt).eps > np.finfo(leaf.dtype).eps else leaf.dtype
            out.append(
                f"the {what} of {name} is {dt} for a {leaf.dtype} input: accepted, and judged at {low}'s "
                "resolution (the coarser of the two); strict_dtype=True refuses it."
            )
        return out

    def _leaf(self, name: str) -> Leaf:
        return next(leaf for leaf in self.leaves if leaf.name == name)

    def _pack(self, node: Any, other: Any, name: str, ctx: tuple[str, bool, np.ndarray, dict]) -> None:
        what, strict, out, dtypes = ctx
        if isinstance(node, int):
            leaf = self.leaves[node]
            arr = gradient_leaf(other, leaf, what, strict)
            if not isinstance(leaf.source, float) and arr.dtype != leaf.dtype:
                dtypes[leaf.name] = arr.dtype
            if same_but_ones(arr.shape, leaf.shape):
                self.reshaped[leaf.name] = arr.shape
            out[leaf.offset : leaf.offset + leaf.size] = arr.reshape(-1)
            return
        template, kids = node
        if isinstance(template, Mapping):
            keys = [key for key, _ in kids]  # as they were when the tree was built
            if not isinstance(other, Mapping):
                raise GradientStructureError(
                    f"the {what} for {name} is a {describe(other)}, but the parameters there are a dict "
                    f"with keys {keys}.",
                    "return a dict with the same keys as the parameters.",
                )
            other = matched_keys(other, keys, name, self.keyed)
            missing = ", ".join(repr(k) for k in keys if k not in other)
            extra = ", ".join(repr(k) for k in other.keys() if k not in keys)
            if missing or extra:
                parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
                raise GradientStructureError(
                    f"the {what} for {name} has the wrong keys: {'; '.join(parts)}.",
                    f"the {what} must have exactly the keys of the parameters: {keys}.",
                )
            for key, kid in kids:
                self._pack(kid, other[key], name + f"[{key!r}]", ctx)
            return
        if not isinstance(other, (list, tuple)) or len(other) != len(kids):
            got = f"a {describe(other)}" + (f" of length {len(other)}" if isinstance(other, (list, tuple)) else "")
            raise GradientStructureError(
                f"the {what} for {name} is {got}, but the parameters there are a "
                f"{describe(template)} of length {len(kids)}.",
                f"return one {what} per parameter, in the same order.",
            )
        for (key, kid), item in zip(kids, other, strict=True):
            suffix = f".{key}" if is_namedtuple(template) else f"[{key}]"
            self._pack(kid, item, name + suffix, ctx)

    # -- restoring --------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Put every perturbed array back to its original value, bit for bit (and its shape and writeable
        flag, should the function under test have changed them)."""
        stuck = [(leaf, err) for leaf in self.leaves if (err := _restore_leaf(leaf))]
        if stuck:
            leaf, err = stuck[0]
            raise UserFunctionError(
                f"{leaf.name} cannot be put back as it was: the function under test changed the array itself ({err}).",
                "do not resize arrays being checked or change their memory; work on a copy inside the function.",
            )

    def changed(self, against: list[np.ndarray] | None = None) -> list[tuple[Leaf, np.ndarray]]:
        """Leaves whose working array no longer equals the original (or ``against``, one array per leaf),
        bitwise, with the changed flat indices. An array whose shape or writeable flag was changed counts as
        changed everywhere.
        """
        out = []
        for k, leaf in enumerate(self.leaves):
            w = leaf.work
            if _reshaped(leaf):
                out.append((leaf, np.arange(max(leaf.size, 1))))
                continue
            if leaf.size == 0:
                continue
            ref = leaf.original if against is None else np.ascontiguousarray(against[k])
            diff = differ(np.ascontiguousarray(w), ref)
            if diff.size:
                out.append((leaf, diff))
        return out

    def sums(self) -> list[int]:
        """A checksum of every working array's bits (cheap: one integer sum per array)."""
        return [bitsum(leaf.work) for leaf in self.leaves]

    def intact(self, sums: list[int], moving: Leaf | None = None) -> bool:
        """Whether every working array still has the checksum ``sums``, its shape and its writeable flag
        (``moving``: only the latter two)."""
        for leaf, s in zip(self.leaves, sums, strict=True):
            if _reshaped(leaf) or (leaf is not moving and bitsum(leaf.work) != s):  # (a resized array's old
                return False  # memory is not read)
        return True

    def unaltered(self, leaf: Leaf) -> bool:
        """Whether ``leaf``'s working array is still the one it was: its shape, dtype, flags and memory (a view
        of it may be written through)."""
        return leaf.name not in self.stale and not _reshaped(leaf)


def _arrays(leaf: Leaf) -> tuple[np.ndarray, ...]:
    """The arrays a function could reshape or freeze: the working array, and the user's object it views."""
    if leaf.in_place and leaf.source is not leaf.work:
        return (leaf.work, leaf.source)
    return (leaf.work,)


def resized(leaf: Leaf) -> bool:
    """Whether the function changed the shape of the leaf's array or of the user's array it views (cheap)."""
    for a in _arrays(leaf):
        if a.shape != leaf.shape:
            return True
    return False


def _data(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _reshaped(leaf: Leaf) -> bool:
    """Whether the function changed an array itself: its shape, dtype, writeable flag or (resized) its memory."""
    for a in _arrays(leaf):
        if a.shape != leaf.shape or a.dtype != leaf.dtype or not a.flags.writeable:
            return True
    return leaf.in_place and _data(leaf.source) != leaf.address  # (``work`` is a view: its memory stays)


def _restore_leaf(leaf: Leaf) -> str:
    """Restore one working array (dtype, shape, writeable flag, values); return why the check cannot go on with
    it ('' when it can). A resized array is sized back and refilled, in the memory it has now: views of the
    memory it had (the evaluator's among them) are stale, so that stops the check."""
    resized = ""
    try:
        for a in _arrays(leaf):
            if a.dtype != leaf.dtype:
                a.dtype = leaf.dtype  # type: ignore[misc]  # (numpy types the attribute read-only)
            if a.shape != leaf.shape and a.size != leaf.size and a.flags.owndata:
                a.resize(leaf.shape, refcheck=False)
                resized = "resized, which moves its memory: its shape and values are put back, in new memory"
            elif a.shape != leaf.shape:
                a.shape = leaf.shape
            if not a.flags.writeable:
                a.flags.writeable = True
        if leaf.in_place and _data(leaf.source) != leaf.address:
            leaf.work = leaf.source.view(np.ndarray)
            leaf.address = _data(leaf.work)
            resized = resized or "its memory moved: its values are put back, in its new memory"
        np.copyto(leaf.work, leaf.original)
    except (AttributeError, ValueError) as exc:
        return str(exc)
    return resized


def _refuse_leaf(obj: Any, name: str) -> None:
    if obj is None:
        raise ParamsError(f"{name} is None.", "remove it from the tree, or pass a float array.")
    if isinstance(obj, np.ma.MaskedArray):
        raise ParamsError(
            f"{name} is a masked array; its masked entries are not coordinates to differentiate, and the "
            "checker cannot tell which the function reads.",
            "pass its data (x.filled(0.0) or x.data) and apply the mask inside the function, e.g. through a "
            "closure holding x.mask.",
        )
    if not isinstance(obj, (np.ndarray, np.generic, float, int)):
        tensor = type(obj).__module__.split(".")[0] in ("torch", "jax", "jaxlib", "tensorflow")
        raise ParamsError(
            f"{name} is a {describe(obj)}; backcheck's numpy checker takes numpy arrays and floats as parameters.",
            "use backcheck.torch / backcheck.jax for tensors, or convert it with np.asarray(...)."
            if tensor
            else "keep what is not a parameter (a generator, a name, a config) out of params: pass it to f through "
            "a closure or functools.partial, and params= the float arrays alone.",
        )


def _refuse_aliasing(leaves: list[Leaf]) -> None:
    """Raise when two arrays perturbed in place share memory, or one array's own elements do: perturbing one
    element would move others."""
    for leaf in leaves:
        if overlaps_itself(leaf.work):
            raise ParamsError(
                f"{leaf.name} has elements that share memory (strides {leaf.work.strides} for shape {leaf.shape}: "
                "a broadcast or as_strided view): perturbing one element moves others, so its gradient cannot be "
                "checked element by element.",
                "pass a copy (np.copy) to make every element a parameter of its own, or pass the array before "
                "broadcasting and broadcast it inside the function.",
            )
    if len(leaves) < 2:
        return
    spans = sorted((span(leaf.work), k) for k, leaf in enumerate(leaves))
    for a, ((_, hi), ka) in enumerate(spans):
        for (lo2, _), kb in spans[a + 1 :]:
            if lo2 >= hi:
                break
            x, y = leaves[ka], leaves[kb]
            try:
                shared = bool(np.shares_memory(x.work, y.work))
            except np.exceptions.TooHardError:
                shared = True
            if shared:
                first, second = sorted((x, y), key=lambda leaf: leaf.offset)
                raise ParamsError(
                    f"{first.name} and {second.name} share memory (the same array twice, or an array and a "
                    "view of it): perturbing one moves the other, so their gradients cannot be checked apart.",
                    "pass the array once (the gradient of a parameter used twice is the sum over its uses), "
                    "or pass a copy (np.copy) where they are meant to be separate parameters.",
                )


def flat_view(arr: np.ndarray) -> Any:
    """A writable flat view of ``arr`` (``arr.flat`` when it is not contiguous)."""
    if arr.flags.c_contiguous:
        return arr.reshape(-1)
    return arr.flat
