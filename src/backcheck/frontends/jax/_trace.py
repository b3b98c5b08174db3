"""The function of the differentiable leaves and its jax transformations, compiled once per function.

The transformations live at module level, so ``jax.jit`` caches them across checks of the same function,
shapes and dtypes. :class:`Runner` calls them, or the plain ones for a function jit cannot trace, and runs
the numeric side in x64 mode when the check asked for it while the analytic side runs as the user runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from backcheck.calls import call_user, first_line
from backcheck.errors import BadInputError

#: Static arguments of the compiled transformations: fn, treedef, layout, statics, out_sel.
_STATIC = (0, 1, 2, 3, 4)


def merge(layout: tuple[str, ...], diff: Sequence[Any], arrays: Sequence[Any], statics: tuple[Any, ...]) -> list:
    """The leaves of the arguments, in order: ``d`` differentiable, ``a`` other arrays, ``s`` static values."""
    di, ai, si = iter(diff), iter(arrays), iter(statics)
    return [next(di) if k == "d" else next(ai) if k == "a" else next(si) for k in layout]


def call_fn(fn: Callable[..., Any], treedef: Any, leaves: list) -> Any:
    """``fn(*args, **kwargs)`` from the leaves of the pytree ``(args, kwargs)``."""
    args, kwargs = jax.tree_util.tree_unflatten(treedef, leaves)
    return fn(*args, **kwargs)


def _apply(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
) -> tuple[Any, ...]:
    leaves = jax.tree_util.tree_leaves(call_fn(fn, treedef, merge(layout, diff, arrays, statics)))
    return tuple(leaves[i] for i in out_sel)


def _batched(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    axes: tuple[int | None, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
) -> tuple[Any, ...]:
    return jax.vmap(lambda *d: _apply(fn, treedef, layout, statics, out_sel, d, arrays), in_axes=axes)(*diff)


def _rev(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
    cot: Sequence[Any],
) -> tuple:
    _, pull = jax.vjp(lambda *d: _apply(fn, treedef, layout, statics, out_sel, d, arrays), *diff)
    return pull(tuple(cot))


def _fwd(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
    tangents: Sequence[Any],
) -> tuple:
    def one(*t: Any) -> tuple[Any, ...]:
        return jax.jvp(lambda *d: _apply(fn, treedef, layout, statics, out_sel, d, arrays), tuple(diff), t)[1]

    return jax.vmap(one)(*tangents)


def _primals(
    fn: Callable[..., Any],
    treedef: Any,
    layout: tuple[str, ...],
    statics: tuple[Any, ...],
    out_sel: tuple[int, ...],
    diff: Sequence[Any],
    arrays: Sequence[Any],
    mode: str,
) -> tuple[Any, ...]:
    """The outputs ``jax.vjp`` (``mode`` 'rev') or ``jax.jvp`` give with their rules: a custom rule's own value."""
    one = lambda *d: _apply(fn, treedef, layout, statics, out_sel, d, arrays)  # noqa: E731
    if mode == "rev":
        return jax.vjp(one, *diff)[0]
    return jax.jvp(one, tuple(diff), tuple(jax.numpy.zeros_like(d) for d in diff))[0]


_jit_apply = jax.jit(_apply, static_argnums=_STATIC)
_jit_batched = jax.jit(_batched, static_argnums=(*_STATIC, len(_STATIC)))  # (the batched axes too)
_jit_rev = jax.jit(_rev, static_argnums=_STATIC)
_jit_fwd = jax.jit(_fwd, static_argnums=_STATIC)


def _on_device(values: Sequence[Any]) -> tuple[Any, ...]:
    """Numpy arrays as jax arrays (in the current x64 mode), as jit hands them to the function: an eager call
    gives the function what a traced one does (``x.at[...]`` on a closure's index, jax's operators and dtypes),
    not numpy arrays, on which ``.at`` fails and ``x @ w`` computes in numpy."""
    return tuple(jax.numpy.asarray(v) if isinstance(v, np.ndarray) else v for v in values)


class Runner:
    """Calls the compiled transformations of one function at one layout of its arguments.

    ``wide`` runs the numeric side (``apply``, ``batched``) in jax's x64 mode; the analytic side (``rev``,
    ``fwd``) always runs in the mode the user called the check in.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        treedef: Any,
        layout: tuple[str, ...],
        statics: tuple[Any, ...],
        arrays: Sequence[Any],
        fname: str,
    ):
        self.fn, self.treedef, self.layout, self.statics, self.fname = fn, treedef, layout, statics, fname
        self.arrays = tuple(arrays)
        self.out_sel: tuple[int, ...] = ()
        self.wide = False
        self.notes: list[str] = []
        try:
            hash(statics)
            self.jit = True
        except TypeError:
            self.jit = False
            self.notes.append(
                "an argument holds an unhashable non-array leaf, so jax.jit cannot cache the function; it "
                "was run without jit (slower)."
            )

    def _run(self, jitted: Callable[..., Any], plain: Callable[..., Any], *rest: Any) -> Any:
        head = (self.fn, self.treedef, self.layout, self.statics, self.out_sel)
        if not self.jit:
            return plain(*head, *map(_on_device, rest))
        try:
            return jitted(*head, *rest)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a function jit cannot trace runs eagerly; one that fails eagerly too raises
            failure = exc
        out = plain(*head, *map(_on_device, rest))
        self.jit = False
        self.notes.append(
            f"jax.jit could not compile {self.fname} ({type(failure).__name__}: {first_line(failure)[:120]}); "
            "it was run without jit (slower)."
        )
        return out

    def numeric_mode(self) -> Any:
        """The context the numeric side runs in: x64 on when the check widened it."""
        return jax.enable_x64(True) if self.wide else contextlib.nullcontext()

    def apply(self, diff: Sequence[Any]) -> tuple[Any, ...]:
        with self.numeric_mode():
            return self._run(_jit_apply, _apply, tuple(diff), self.arrays)

    def apply_as_user(self, diff: Sequence[Any]) -> tuple[Any, ...]:
        return self._run(_jit_apply, _apply, tuple(diff), self.arrays)

    def apply_eagerly(self, diff: Sequence[Any]) -> tuple[Any, ...]:
        """:meth:`apply_as_user` without jit, as :meth:`primals` runs: a comparison of the two then sees no
        difference of compilation (under jit, XLA keeps ``(x.astype(bfloat16) @ w).astype(float32)``'s product in
        float32; eagerly, and under jax.vjp, it is rounded to bfloat16: 1e-3 of it)."""
        head = (self.fn, self.treedef, self.layout, self.statics, self.out_sel)
        return _apply(*head, *map(_on_device, (tuple(diff), self.arrays)))

    def batched(self, diff: Sequence[Any], axes: tuple[int | None, ...] | None = None) -> tuple[Any, ...]:
        """The outputs at a batch of points: ``diff`` leaves with a leading batch axis where ``axes`` says 0, the
        others shared by every point (None: every leaf batched)."""
        axes = (0,) * len(diff) if axes is None else tuple(axes)
        with self.numeric_mode():
            return self._run(_jit_batched, _batched, axes, tuple(diff), self.arrays)

    def rev(self, diff: Sequence[Any], cot: Sequence[Any]) -> tuple[Any, ...]:
        return self._run(_jit_rev, _rev, tuple(diff), self.arrays, tuple(cot))

    def rev_wide(self, diff: Sequence[Any], cot: Sequence[Any]) -> tuple[Any, ...]:
        """:meth:`rev` in x64 mode with every floating argument in float64 (the other arrays too: a float32
        constant would keep float32's rounding in the run)."""
        arrays = tuple(
            np.asarray(a).astype(np.float64) if jax.numpy.issubdtype(np.asarray(a).dtype, jax.numpy.floating) else a
            for a in self.arrays
        )
        with jax.enable_x64(True):
            return self._run(_jit_rev, _rev, tuple(diff), arrays, tuple(cot))

    def fwd(self, diff: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, ...]:
        return self._run(_jit_fwd, _fwd, tuple(diff), self.arrays, tuple(tangents))

    def primals(self, diff: Sequence[Any], mode: str) -> tuple[Any, ...]:
        """The outputs as ``jax.vjp`` (``mode`` 'rev') or ``jax.jvp`` compute them (a custom rule's), eagerly."""
        head = (self.fn, self.treedef, self.layout, self.statics, self.out_sel)
        return _primals(*head, _on_device(tuple(diff)), _on_device(self.arrays), mode)

    def structure(self, diff: Sequence[Any]) -> Any:
        """The output as a pytree of abstract leaves (shapes and dtypes), or None where it cannot be traced
        abstractly: what a given ``dout`` is held against."""
        try:
            return jax.eval_shape(
                lambda *d: call_fn(self.fn, self.treedef, merge(self.layout, d, self.arrays, self.statics)), *diff
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # noqa: BLE001 - (abstract() runs it once instead and says what fails)
            return None

    def abstract(self, diff: Sequence[Any]) -> list[Any]:
        """Shapes and dtypes of every output leaf (traced abstractly, or run once if that fails)."""

        def all_outputs(*d: Any) -> list[Any]:
            return jax.tree_util.tree_leaves(
                call_fn(self.fn, self.treedef, merge(self.layout, d, self.arrays, self.statics))
            )

        try:
            return list(jax.eval_shape(all_outputs, *diff))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # a function that cannot be traced abstractly is run once
            outs = call_user(all_outputs, tuple(diff), self.fname)
            return [_abstract_leaf(o, k, self.fname) for k, o in enumerate(outs)]


def _abstract_leaf(out: Any, k: int, fname: str) -> Any:
    """The shape and dtype of one output leaf, or :class:`BadInputError` naming it when it is no array."""
    try:
        arr = jax.numpy.asarray(out)
    except (TypeError, ValueError):
        raise BadInputError(
            f"{fname}'s output out[{k}] is a {type(out).__name__}, not an array.",
            "return jax arrays (or a pytree of them): strings, generators and sets are no outputs to differentiate.",
        ) from None
    return jax.ShapeDtypeStruct(arr.shape, arr.dtype)


def apply_raw(run: Runner, diff: Sequence[Any]) -> tuple[Any, ...]:
    """The float outputs of ``run``'s function, uncompiled (for tracing inside another transformation)."""
    return _apply(run.fn, run.treedef, run.layout, run.statics, run.out_sel, tuple(diff), run.arrays)
