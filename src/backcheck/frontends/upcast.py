"""Whether a layer's numeric side may be evaluated on float64 copies of its narrow inputs (check_layer,
check_object): only when the forward pass computes the same function from them, judged at the precision of the
inputs, not of the output (a float32 layer that casts to float64 inside returns float64 from float32 inputs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.calls import ONE_ULP_AWAY, refusal_note
from backcheck.containers import flatten
from backcheck.outputs import computes_alike, nudge_ulp, within_spread
from backcheck.tree import Tree


def upcast_point(
    tree: Tree, out: Callable[[Any], Any], parts: list[tuple[str, np.ndarray]], upcast: bool | None
) -> tuple[Tree, str]:
    """Where the numeric side is evaluated: float64 copies of ``tree`` when the forward pass ``out`` (a function
    of ``tree.current()``-like inputs) computes from them what it computes from the narrow inputs, up to their
    rounding; else ``tree`` itself. ``parts``: the outputs at the narrow inputs. And a note when the forward pass
    raised on the copies it was asked at (it is then differenced at the inputs' own dtype)."""
    narrow = [leaf.dtype for leaf in tree.leaves if leaf.dtype.kind == "f" and leaf.dtype.itemsize < 8]
    if not (upcast or (upcast is None and narrow)):
        return tree, ""
    if upcast:  # asked for: float64 copies, whatever the forward pass computes from them (as check's upcast=True)
        return Tree(tree.fresh(dtype=np.float64), "inputs", in_place=False, bare_keys=True), ""
    # the precision of the narrow run: a narrow output's own, or for a float64 output the inputs' (a float32
    # layer that casts to float64 inside carries float32's rounding, not float64's)
    eps_in = max(float(np.finfo(d).eps) for d in narrow) if narrow else None
    eps = [_eps(p, eps_in) for _, p in parts]
    wide = Tree(tree.fresh(dtype=np.float64), "inputs", in_place=False, bare_keys=True)
    try:
        wide_out = [np.asarray(p) for _, p in flatten(out(wide.current()), "out")]
    except Exception as exc:  # a function that refuses float64 is checked at its own dtype
        return tree, refusal_note("the forward pass", exc, "on float64 copies of its inputs", narrow)
    finally:
        wide.restore()  # a forward pass that writes into its inputs leaves the copies as they were
    same = len(wide_out) == len(parts) and all(
        w.dtype == np.float64 and w.shape == p.shape for w, (_, p) in zip(wide_out, parts, strict=True)
    )
    if same and not all(computes_alike(w, p, e) for w, (_, p), e in zip(wide_out, parts, eps, strict=True)):
        # beyond the dtype's rounding of each value: within the forward's own measured rounding (-log p at
        # p near 1 in float32 is off by far more than eps32 of itself)?
        nudged = Tree(tree.fresh(), "inputs", in_place=False, bare_keys=True)
        gen = np.random.default_rng(0)
        for leaf in nudged.leaves:
            nudge_ulp(leaf.work, gen)
        try:
            moved = [np.asarray(p) for _, p in flatten(out(nudged.current()), "out")]
        except Exception as exc:  # no measure: the narrow dtype it is
            return tree, refusal_note("the forward pass", exc, ONE_ULP_AWAY, narrow)
        same = len(moved) == len(parts) and all(
            within_spread(w, p, m, e) for w, (_, p), m, e in zip(wide_out, parts, moved, eps, strict=True)
        )
    return (wide if same else tree), ""


def _eps(out: np.ndarray, eps_in: float | None) -> float | None:
    """The rounding of a narrow run's output: its dtype's when narrower than float64, else the inputs'."""
    dtype = np.asarray(out).dtype
    return float(np.finfo(dtype).eps) if dtype.kind == "f" and dtype.itemsize < 8 else eps_in
