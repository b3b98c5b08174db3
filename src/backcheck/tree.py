"""Parameter trees <-> one flat vector, with exact restore of the user's arrays.

A *tree* is an array, a Python or numpy float, or a dict / list / tuple / namedtuple of trees.  The checker
perturbs one flat vector; this module maps every position of that vector back to the user's own names and
shapes (``params['W1'][3, 7]``) and owns the only code that writes into user arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.errors import GradientStructureError, ParamsError

_CONTAINERS = (dict, list, tuple)


def _is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def _children(obj: Any) -> list[tuple[Any, str, Any]]:
    """(key, path suffix, child) of a container, in a deterministic order."""
    if isinstance(obj, Mapping):
        return [(k, f"[{k!r}]", v) for k, v in obj.items()]
    if _is_namedtuple(obj):
        return [(f, f".{f}", getattr(obj, f)) for f in obj._fields]
    return [(i, f"[{i}]", v) for i, v in enumerate(obj)]


def _rebuild(template: Any, values: list[Any]) -> Any:
    if isinstance(template, Mapping):
        out = dict(zip(template.keys(), values, strict=True))
        kind: Any = type(template)
        try:
            return kind(out)
        except TypeError:
            return out
    if _is_namedtuple(template):
        return type(template)(*values)
    if isinstance(template, tuple):
        return tuple(values)
    return list(values)


def _is_container(obj: Any) -> bool:
    return isinstance(obj, (Mapping, list, tuple))


def _describe(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


@dataclass
class Leaf:
    """One array (or scalar) of a tree, and where its elements sit in the flat vector."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    source: Any  # the user's own object
    work: np.ndarray  # the array that is perturbed: the user's own array, or a private copy
    in_place: bool  # True when ``work`` is the user's array
    scalar: bool = False  # a Python/numpy scalar, rebuilt on every call
    original: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def element_name(self, local: int) -> str:
        return self.name + format_index(np.unravel_index(local, self.shape) if self.shape else ())


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
        Perturb the user's own writable arrays (so functions that read them through a closure see the
        perturbation); otherwise every array is copied first and the user's arrays are never written.
    """

    def __init__(self, obj: Any, root: str = "params", *, in_place: bool = True, bare_keys: bool = False):
        self.obj = obj
        self.root = root
        self.leaves: list[Leaf] = []
        self._rebuild_needed = False
        self.structure = self._walk(obj, root, in_place, bare_keys, top=True)
        self.size = sum(leaf.size for leaf in self.leaves)
        if self.size == 0:
            raise ParamsError(
                f"{root} holds no elements to differentiate"
                + (" (an empty container)" if _is_container(obj) else f" (shape {np.shape(obj)})")
                + ".",
                "pass at least one non-empty float array.",
            )
        self.offsets = np.array([leaf.offset for leaf in self.leaves], dtype=np.int64)

    # -- building -------------------------------------------------------------------------------------
    def _walk(self, obj: Any, name: str, in_place: bool, bare_keys: bool, top: bool = False) -> Any:
        if _is_container(obj):
            kids = []
            for key, suffix, child in _children(obj):
                child_name = str(key) if (top and bare_keys and isinstance(obj, Mapping)) else name + suffix
                kids.append((key, self._walk(child, child_name, in_place, bare_keys)))
            return (obj, kids)
        if obj is None:
            raise ParamsError(f"{name} is None.", "remove it from the tree, or pass a float array.")
        if not isinstance(obj, (np.ndarray, np.generic, float, int)):
            raise ParamsError(
                f"{name} is a {_describe(obj)}; backcheck's numpy checker takes numpy arrays and floats.",
                "convert it with np.asarray(...), or use backcheck.torch / backcheck.jax for tensors.",
            )
        dtype = _as_float_dtype(obj, name)
        offset = sum(leaf.size for leaf in self.leaves)
        if isinstance(obj, np.ndarray) and obj.ndim > 0:
            original = obj.copy()
            writable = obj.flags.writeable and in_place
            work = obj if writable else obj.copy()
            if not writable:
                self._rebuild_needed = True
            leaf = Leaf(name, obj.shape, dtype, offset, obj, work, writable, original=original)
        else:
            # 0-d arrays and scalars: perturbed in a private 0-d array and handed over rebuilt
            scalar = not isinstance(obj, np.ndarray)
            work = np.array(obj, dtype=dtype)
            self._rebuild_needed = True
            leaf = Leaf(name, (), dtype, offset, obj, work, False, scalar=scalar, original=work.copy())
        self.leaves.append(leaf)
        return len(self.leaves) - 1

    # -- what the user's function receives --------------------------------------------------------------
    def current(self) -> Any:
        """The tree to hand to the user's function, holding the current (possibly perturbed) values."""
        if not self._rebuild_needed:
            return self.obj
        return self._current(self.structure)

    def _current(self, node: Any) -> Any:
        if isinstance(node, int):
            leaf = self.leaves[node]
            if leaf.scalar:
                value = leaf.work[()]
                return float(value) if isinstance(leaf.source, float) else value
            return leaf.work
        template, kids = node
        return _rebuild(template, [self._current(k) for _, k in kids])

    def fresh(self, flat: np.ndarray | None = None, dtype: Any = None) -> Any:
        """A new tree of private arrays holding ``flat`` (or the original values)."""
        return self._fresh(self.structure, flat, dtype)

    def _fresh(self, node: Any, flat: np.ndarray | None, dtype: Any) -> Any:
        if isinstance(node, int):
            leaf = self.leaves[node]
            if flat is None:
                arr = leaf.original.copy()
            else:
                arr = np.asarray(flat[leaf.offset : leaf.offset + leaf.size]).reshape(leaf.shape)
            arr = arr.astype(dtype or leaf.dtype, copy=True)
            if leaf.scalar and flat is None and isinstance(leaf.source, float):
                return float(arr)
            return arr
        template, kids = node
        return _rebuild(template, [self._fresh(k, flat, dtype) for _, k in kids])

    def fresh_arrays(self, dtype: Any) -> tuple[Any, list[np.ndarray]]:
        """A new tree of private arrays of ``dtype`` (scalars as 0-d arrays), and those arrays in leaf order."""
        arrays = [leaf.original.astype(dtype, copy=True).reshape(leaf.shape) for leaf in self.leaves]
        return self._with(self.structure, arrays), arrays

    def _with(self, node: Any, arrays: list[np.ndarray]) -> Any:
        if isinstance(node, int):
            return arrays[node]
        template, kids = node
        return _rebuild(template, [self._with(k, arrays) for _, k in kids])

    # -- flat views ---------------------------------------------------------------------------------------
    def values(self) -> np.ndarray:
        """The original values as one float64 vector."""
        return np.concatenate([leaf.original.reshape(-1).astype(np.float64) for leaf in self.leaves])

    def locate(self, i: int) -> tuple[Leaf, int]:
        """The leaf and the local flat index of global position ``i``."""
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        leaf = self.leaves[k]
        return leaf, int(i - leaf.offset)

    def element_name(self, i: int) -> str:
        leaf, local = self.locate(i)
        return leaf.element_name(local)

    def element_index(self, i: int) -> tuple[int, ...]:
        leaf, local = self.locate(i)
        return tuple(int(j) for j in np.unravel_index(local, leaf.shape)) if leaf.shape else ()

    def pack(self, other: Any, what: str = "gradient") -> np.ndarray:
        """Validate that ``other`` has this tree's structure, shapes and dtypes; return it as one float64 vector."""
        out = np.empty(self.size, dtype=np.float64)
        self._pack(self.structure, other, self.root, what, out)
        return out

    def _pack(self, node: Any, other: Any, name: str, what: str, out: np.ndarray) -> None:
        if isinstance(node, int):
            leaf = self.leaves[node]
            arr = _gradient_leaf(other, leaf, what)
            out[leaf.offset : leaf.offset + leaf.size] = arr.reshape(-1)
            return
        template, kids = node
        if isinstance(template, Mapping):
            if not isinstance(other, Mapping):
                raise GradientStructureError(
                    f"the {what} for {name} is a {_describe(other)}, but the parameters there are a dict "
                    f"with keys {list(template.keys())}.",
                    "return a dict with the same keys as the parameters.",
                )
            missing = [k for k in template.keys() if k not in other]
            extra = [k for k in other.keys() if k not in template]
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing {', '.join(repr(k) for k in missing)}")
                if extra:
                    parts.append(f"unexpected {', '.join(repr(k) for k in extra)}")
                raise GradientStructureError(
                    f"the {what} for {name} has the wrong keys: {'; '.join(parts)}.",
                    f"the {what} must have exactly the keys of the parameters: {list(template.keys())}.",
                )
            for key, kid in kids:
                self._pack(kid, other[key], name + f"[{key!r}]", what, out)
            return
        if not isinstance(other, (list, tuple)) or len(other) != len(kids):
            got = (
                f"a {_describe(other)} of length {len(other)}"
                if isinstance(other, (list, tuple))
                else (f"a {_describe(other)}")
            )
            raise GradientStructureError(
                f"the {what} for {name} is {got}, but the parameters there are a "
                f"{_describe(template)} of length {len(kids)}.",
                f"return one {what} per parameter, in the same order.",
            )
        for (key, kid), item in zip(kids, other, strict=True):
            suffix = f".{key}" if _is_namedtuple(template) else f"[{key}]"
            self._pack(kid, item, name + suffix, what, out)

    # -- restoring --------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Put every perturbed array back to its original value, bit for bit."""
        for leaf in self.leaves:
            np.copyto(leaf.work, leaf.original)

    def changed(self) -> list[tuple[Leaf, np.ndarray]]:
        """Leaves whose working array no longer equals the original (bitwise), with the changed flat indices."""
        out = []
        for leaf in self.leaves:
            now = leaf.work.reshape(-1).view(np.uint8).reshape(leaf.size, -1)
            was = leaf.original.reshape(-1).view(np.uint8).reshape(leaf.size, -1)
            diff = np.flatnonzero((now != was).any(axis=1))
            if diff.size:
                out.append((leaf, diff))
        return out


def _gradient_leaf(other: Any, leaf: Leaf, what: str) -> np.ndarray:
    if other is None:
        raise GradientStructureError(
            f"the {what} for {leaf.name} is None.",
            f"return an array of shape {leaf.shape} (zeros if it is zero).",
        )
    if _is_container(other):
        raise GradientStructureError(
            f"the {what} for {leaf.name} is a {_describe(other)}, but {leaf.name} is a single array "
            f"of shape {leaf.shape}.",
            "return one array per parameter array, in the parameters' structure.",
        )
    if not isinstance(other, (np.ndarray, np.generic, float, int)):
        raise GradientStructureError(
            f"the {what} for {leaf.name} is a {_describe(other)}, not a numpy array.",
            "convert it with np.asarray(...) (or .detach().numpy() for a torch tensor).",
        )
    arr = np.asarray(other)
    if arr.dtype.kind != "f":
        raise GradientStructureError(
            f"the {what} for {leaf.name} has dtype {arr.dtype}; a gradient must be a float array "
            f"like {leaf.name} ({leaf.dtype}).",
            "check for an integer or boolean array where a float one was meant (e.g. np.zeros_like(labels)).",
        )
    if arr.shape != leaf.shape and not (leaf.shape == () and arr.size == 1):
        raise GradientStructureError(
            f"the {what} for {leaf.name} has shape {arr.shape}, but {leaf.name} has shape {leaf.shape}.",
            "a gradient has the shape of its parameter; look for a missing sum over the batch axis "
            "or a missing transpose.",
        )
    if not isinstance(leaf.source, float) and arr.dtype != leaf.dtype:
        raise GradientStructureError(
            f"the {what} for {leaf.name} has dtype {arr.dtype}, but {leaf.name} has dtype {leaf.dtype}.",
            f"compute the gradient in {leaf.dtype}, as the forward pass does (or cast it with .astype).",
        )
    return arr.astype(np.float64, copy=False)
