"""The arguments of a checked function split into what is differentiated and what is passed through, and
the outputs with the cotangent that reduces them to one number.

Every floating array leaf of ``(args, kwargs)`` is differentiated (``argnums`` narrows it), named by its
path: ``params['w'][2]`` for a positional argument, ``w`` for a keyword one. A Python float is a 0-d
parameter when ``argnums`` names its argument or when no argument holds a float array (``f(2.0)``);
otherwise it is passed through as a constant. Entries that are not finite (``-inf`` masks in log-domain
code) are not coordinates: they are left out and the report says so. Empty arrays have nothing to check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from backcheck.calls import arg_names
from backcheck.errors import BadInputError, GradientStructureError, NonFiniteError
from backcheck.frontends.common import zero_dout_error
from backcheck.tree import format_index


@dataclass
class Inputs:
    """The leaves of ``(args, kwargs)``; ``layout`` says for each leaf: ``d`` checked, ``a`` array passed
    through, ``s`` static value."""

    treedef: Any
    layout: tuple[str, ...]
    diff: list[Any]
    arrays: list[Any]
    statics: tuple[Any, ...]
    names: list[str]
    masks: list[np.ndarray | None]
    #: leaves with nothing to differentiate, reported aside: (name, shape, dtype, status, note)
    aside: list[tuple[str, tuple[int, ...], str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def natives(self) -> list[Any]:
        return [d.dtype for d in self.diff]


def is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, jax.Array))


def is_float_dtype(dt: Any) -> bool:
    return bool(jnp.issubdtype(dt, jnp.floating))


def dtype_name(dt: Any) -> str:
    return str(np.dtype(dt))


def _selection(argnums: Any, args: tuple[Any, ...], kwargs: dict[str, Any], fname: str) -> set[Any] | None:
    """The arguments argnums selects: positions (ints) and keyword names (strings); None for all."""
    if argnums is None:
        return None
    try:
        wanted = set([argnums] if isinstance(argnums, (int, str)) else argnums)
    except TypeError:
        raise BadInputError(
            f"argnums={argnums!r} is not a position, a keyword name or a sequence of them.",
            "pass e.g. argnums=0, argnums=(0, 2) or argnums='w'.",
        ) from None
    bad = [a for a in wanted if not (isinstance(a, int) and 0 <= a < len(args)) and a not in kwargs]
    if bad:
        raise BadInputError(
            f"argnums={argnums!r}, but {fname} gets {len(args)} positional argument(s)"
            + (f" and the keyword argument(s) {sorted(kwargs)}" if kwargs else "")
            + f"; {bad[0]!r} is none of them.",
            f"choose positions among 0..{len(args) - 1}"
            + (" or keyword names." if kwargs else ".")
            + (
                " A name selects a keyword argument only: pass the argument by keyword, or select it by position."
                if isinstance(bad[0], str)
                else ""
            ),
        )
    return wanted


def _flatten_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], fname: str, names: list[str]) -> Any:
    """``jax.tree_util.tree_flatten_with_path`` of the arguments, or :class:`BadInputError` when a pytree
    contains itself (jax reports the recursion as a SystemError) or a dict whose keys cannot be sorted."""
    try:
        return jax.tree_util.tree_flatten_with_path((tuple(args), dict(kwargs)))
    except ValueError:
        where = unsortable_keys([*zip(names, args, strict=False), *kwargs.items()])
        if where is None:
            raise
        raise BadInputError(
            f"the dict {where} passed to {fname} has keys of types that do not sort together "
            "(jax orders a dict's entries by sorting its keys).",
            "give the dict keys of one type (all strings, say), or pass its arrays as separate arguments.",
        ) from None
    except (RecursionError, SystemError) as exc:
        if not isinstance(exc, RecursionError) and not isinstance(exc.__cause__, RecursionError):
            raise
        raise BadInputError(
            f"an argument of {fname} contains itself, or nests containers deeper than Python can walk.",
            "pass pytrees of arrays without cycles.",
        ) from None


def unsortable_keys(named: list[tuple[Any, Any]]) -> str | None:
    """The name (``arg['k'][0]``) of the first dict among ``named`` values, nested in dicts, lists and tuples,
    whose keys do not sort, with its keys; None when there is none."""
    todo = [(str(n), v, 0) for n, v in named]
    while todo:
        name, v, depth = todo.pop(0)
        if depth > 64:
            continue
        if isinstance(v, dict):
            try:
                sorted(v)
            except TypeError:
                return f"{name} (keys {', '.join(repr(k) for k in list(v)[:6])})"
            todo.extend((f"{name}[{k!r}]", x, depth + 1) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            todo.extend((f"{name}[{k}]", x, depth + 1) for k, x in enumerate(v))
    return None


def _named(wanted: Any, names: list[str]) -> str:
    """The arguments ``argnums`` chose, by name."""
    return ", ".join(names[k] if isinstance(k, int) and k < len(names) else str(k) for k in sorted(wanted, key=str))


def split_inputs(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], argnums: Any, fname: str
) -> Inputs:
    """Split the arguments; raise :class:`BadInputError` when nothing can be differentiated."""
    names = arg_names(fn, len(args))
    wanted = _selection(argnums, args, kwargs, fname)
    with_path, treedef = _flatten_arguments(args, kwargs, fname, names)
    kinds: list[str] = []
    leaf_names: list[str] = []
    for path, leaf in with_path:
        key = path[1].idx if path[0].idx == 0 else path[1].key
        name = (names[key] if isinstance(key, int) else str(key)) + jax.tree_util.keystr(tuple(path[2:]))
        chosen = wanted is None or key in wanted
        leaf_names.append(name)
        refuse_tracer(leaf, name, fname)
        if is_array(leaf) and chosen and jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            raise BadInputError(
                f"{name} is complex ({leaf.dtype}); backcheck.jax checks real arrays.",
                "split it into real and imaginary parts, or leave it out of argnums.",
            )
        if is_array(leaf) and chosen and is_float_dtype(leaf.dtype):
            kinds.append("d")
        elif type(leaf) is float and chosen:
            kinds.append("p")  # a python float: a parameter if chosen by name or if nothing else is
        else:
            kinds.append("a" if is_array(leaf) else "s")
    floats = [n for n, k in zip(leaf_names, kinds, strict=True) if k == "p"]
    as_param = wanted is not None or "d" not in kinds
    notes = []
    if floats and not as_param:
        notes.append(
            f"the python float(s) {', '.join(floats)} were passed through as constants; name their arguments "
            "in argnums to check them too."
        )
    inputs = Inputs(treedef, (), [], [], (), [], [], notes=notes)
    layout, statics = [], []
    for (_path, leaf), name, kind in zip(with_path, leaf_names, kinds, strict=True):
        if kind == "p" and as_param:
            leaf, kind = np.asarray(leaf, dtype=jax.dtypes.canonicalize_dtype(np.float64)), "d"
        if kind == "d":
            kind = _add_checked(inputs, leaf, name)
        elif kind == "p":
            kind = "s"
        layout.append(kind)
        if kind == "a":
            inputs.arrays.append(leaf)
        elif kind == "s":
            statics.append(leaf)
    inputs.layout, inputs.statics = tuple(layout), tuple(statics)
    if not inputs.diff and not inputs.aside:
        message = f"none of {fname}'s arguments holds a floating-point array to differentiate."
        hint = "pass float arrays or python floats (integer arrays and other values are passed through)"
        if wanted is not None:
            message = (
                f"argnums={argnums!r} names {_named(wanted, names)}, and none of those holds a floating-point array."
            )
            hint += ", and name them in argnums"
        raise BadInputError(message, hint + ".")
    if not inputs.diff and any(a[3] == "skipped" for a in inputs.aside):
        raise BadInputError(
            f"no entry of {fname}'s float arguments is finite ({', '.join(a[0] for a in inputs.aside)}), so "
            "there is no coordinate to differentiate.",
            "check at a point with finite entries; -inf masks are left out of the check.",
        )
    return inputs


def refuse_tracer(value: Any, name: str, fname: str) -> None:
    """:class:`BadInputError` when ``value`` is a jax tracer: the check was called inside a transformation (jit,
    vmap, grad), where values are abstract and a check, which evaluates the function at many concrete points and
    reads the results, cannot run."""
    if isinstance(value, jax.core.Tracer):
        raise BadInputError(
            f"{name} of {fname} is a jax tracer ({type(value).__name__}): backcheck.jax.check was called inside a "
            "jax transformation (jit, vmap, grad, scan, ...), where it cannot evaluate the function at concrete "
            "points.",
            "call the check outside jit / vmap / grad, on concrete arrays (a test, or before the training step).",
        )


def _as_computed(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` in the dtype jax computes it in (float64 is float32 unless x64 is on), or :class:`BadInputError`
    where finite values of ``arr`` do not fit that dtype (1e300 in float32)."""
    dtype = jax.dtypes.canonicalize_dtype(arr.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        value = arr.astype(dtype)
    lost = np.isfinite(arr) & ~np.isfinite(value)
    if lost.any():
        k = int(np.flatnonzero(lost.reshape(-1))[0])
        raise BadInputError(
            f"{name} holds {arr.reshape(-1)[k]:.3g} (and {int(lost.sum()) - 1} more), beyond the range of {dtype}, "
            f"the dtype jax computes a {arr.dtype} input in here (x64 is off).",
            "enable float64 in jax first (jax.config.update('jax_enable_x64', True)), or scale the input.",
        )
    return value


def _add_checked(inputs: Inputs, leaf: Any, name: str) -> str:
    """Add one float leaf to the checked ones (``d``), or aside when it has nothing to check (``a``)."""
    # numpy leaves stay numpy (jnp.asarray would compile a copy), in the dtype jax computes them in
    value = leaf if isinstance(leaf, jax.Array) else _as_computed(np.asarray(leaf), name)
    shape, dt = tuple(np.shape(value)), dtype_name(value.dtype)
    if np.size(value) == 0:
        inputs.aside.append((name, shape, dt, "pass", f"{name} is empty: nothing to check."))
        return "a"
    finite = np.isfinite(np.asarray(value).astype(np.float64))  # (bfloat16 too; float32 would overflow 1e300)
    if not finite.any():
        note = f"{name} has no finite entry; non-finite entries are not coordinates, so it was left out."
        inputs.aside.append((name, shape, dt, "skipped", note))
        return "a"
    inputs.diff.append(value)
    inputs.names.append(name)
    inputs.masks.append(None if finite.all() else ~finite)
    return "d"


@dataclass
class Outputs:
    """The float outputs checked (``sel`` among all output leaves) and the cotangent ``u`` dotted with them."""

    sel: tuple[int, ...]
    names: list[str]
    shapes: list[tuple[int, ...]]
    dtypes: list[Any]
    cot: list[np.ndarray]
    masks: list[np.ndarray | None] = field(default_factory=list)

    @property
    def u(self) -> list[np.ndarray]:
        return [np.asarray(c).astype(np.float64) for c in self.cot]


def outputs(shapes: list[Any], dout: Any, rng: np.random.Generator, fname: str, like: Any = None) -> Outputs:
    """The float outputs among ``shapes`` (abstract output leaves) and their cotangent; ``like``: the output as a
    pytree, which a given ``dout`` with dicts must match (see :func:`same_structure`)."""
    if dout is not None and like is not None:
        same_structure(dout, like, fname)
    for i, s in enumerate(shapes):
        if jnp.issubdtype(s.dtype, jnp.complexfloating):
            raise BadInputError(
                f"{fname}'s output {i} is complex; backcheck.jax checks real outputs.",
                "return the real and imaginary parts as two outputs.",
            )
    sel = tuple(i for i, s in enumerate(shapes) if is_float_dtype(s.dtype))
    if not sel:
        raise BadInputError(f"{fname} returns no floating-point array.", "return a float array.")
    outs = [shapes[i] for i in sel]
    names = [f"out[{i}]" if len(shapes) > 1 else "out" for i in sel]
    out_shapes = [tuple(s.shape) for s in outs]
    us = _cotangent(dout, out_shapes, len(shapes), sel, rng, fname)
    cot = [np.asarray(u).astype(s.dtype) for u, s in zip(us, outs, strict=True)]  # numpy: no device copy
    return Outputs(sel, names, out_shapes, [s.dtype for s in outs], cot, [None] * len(sel))


def same_structure(dout: Any, like: Any, fname: str) -> None:
    """A ``dout`` holding dicts in the output's structure (lists and tuples alike), or a typed error: its leaves
    are paired with the outputs' in flattening order, where other keys, or a sequence for a dict, would pair them
    silently by the keys' sorted order (jax.vjp refuses it too)."""
    try:
        mine, theirs = _plain(dout), _plain(like)
    except Exception:  # noqa: BLE001 - (an unflattenable dout is named where its leaves are read)
        return
    if mine == theirs or not (_has_dict(dout) or _has_dict(like)):
        return
    raise GradientStructureError(
        f"dout has the structure {mine}, but {fname} returns {theirs}.",
        "give dout the output's structure: the same dict keys, each with a cotangent of its output's shape.",
    )


def _tuples(tree: Any) -> Any:
    """``tree`` with its lists as tuples (a cotangent's sequence may be either)."""
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        return tuple(_tuples(v) for v in tree)
    if isinstance(tree, dict):
        return {k: _tuples(v) for k, v in tree.items()}
    return tree


def _plain(tree: Any) -> Any:
    return jax.tree_util.tree_structure(_tuples(tree))


def _has_dict(tree: Any) -> bool:
    if isinstance(tree, dict):
        return True
    if isinstance(tree, (list, tuple)):
        return any(_has_dict(v) for v in tree)
    return False


def _cotangent(
    dout: Any, shapes: list[tuple[int, ...]], n_all: int, sel: tuple[int, ...], rng: np.random.Generator, fname: str
) -> list[np.ndarray]:
    """The given ``dout`` checked against the outputs; by default 1 for a single scalar output (the gradient
    itself is checked), else standard normal."""
    if dout is None:
        if len(shapes) == 1 and int(np.prod(shapes[0], dtype=np.int64)) == 1:
            return [np.ones(shapes[0])]
        return [rng.standard_normal(shape) for shape in shapes]
    try:
        given = jax.tree_util.tree_leaves(dout)
    except ValueError:
        where = unsortable_keys([("dout", dout)])
        if where is None:
            raise
        raise BadInputError(
            f"the dict {where} has keys of types that do not sort together (jax orders a dict's entries by "
            "sorting its keys).",
            "give dout the structure of the output, with keys of one type.",
        ) from None
    except (RecursionError, SystemError) as exc:
        if not isinstance(exc, RecursionError) and not isinstance(exc.__cause__, RecursionError):
            raise
        raise BadInputError("dout contains itself.", "pass a pytree of arrays without cycles.") from None
    if len(given) == n_all and n_all != len(shapes):
        given = [given[i] for i in sel]
    if len(given) != len(shapes):
        raise GradientStructureError(
            f"dout has {len(given)} array(s), but {fname} returns {len(shapes)} float output(s).",
            "pass one cotangent per float output, in the output's structure.",
        )
    us = []
    for k, (gv, shape) in enumerate(zip(given, shapes, strict=True)):
        try:
            arr = np.asarray(gv).astype(np.float64)
        except (TypeError, ValueError):
            raise GradientStructureError(
                f"dout[{k}] is a {type(gv).__name__} that is not an array of numbers.",
                "pass a float array (or a pytree of them) like the output.",
            ) from None
        if arr.shape != shape:
            raise GradientStructureError(
                f"dout[{k}] has shape {arr.shape}, but the output has shape {shape}.",
                "dout must have the shape of its output.",
            )
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError("dout contains NaN or Inf.", "pass a finite cotangent.")
        us.append(arr)
    if sum(np.size(u) for u in us) and not any(np.any(u != 0) for u in us):
        raise zero_dout_error(fname)  # (an empty output has no element to be zero)
    return us


def mask_outputs(outs: Outputs, values: Sequence[Any], fname: str) -> list[str]:
    """Leave out output entries that are +-inf at the original point (log-domain outputs of masked inputs):
    their cotangent becomes 0. NaN entries raise :class:`NonFiniteError`, named. Returns notes."""
    left_out = []
    for k, (v, name) in enumerate(zip(values, outs.names, strict=True)):
        arr = np.asarray(v).astype(np.float64)
        bad = ~np.isfinite(arr)
        if not bad.any():
            continue
        nan = np.isnan(arr)
        if nan.any():
            raise NonFiniteError(
                f"{fname}'s output {name}{_first(nan)} is nan at the original point.",
                "check the inputs and the function for 0/0, inf - inf or log of a negative number.",
            )
        outs.masks[k] = bad
        outs.cot[k] = np.where(bad, 0, outs.cot[k]).astype(outs.cot[k].dtype)
        first = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), arr.shape)
        n = int(bad.sum())
        left_out.append(f"{name} ({n} entr{'y' if n == 1 else 'ies'}, e.g. {name}{_first(bad)} = {arr[first]})")
    if not left_out:
        return []
    if all(m is not None and m.all() for m in outs.masks):
        raise NonFiniteError(
            f"every output entry of {fname} is infinite at the original point ({left_out[0]}), so there is "
            "nothing to compare.",
            "check at a point where the function is finite.",
        )
    return [
        "output entries that are infinite at the original point were left out of the check (their cotangent "
        "is 0): " + "; ".join(left_out) + "."
    ]


def _first(where: np.ndarray) -> str:
    """The index of the first True entry, as ``[i, j]`` ('' for a 0-d array)."""
    return format_index(np.unravel_index(int(np.flatnonzero(where.reshape(-1))[0]), where.shape))
