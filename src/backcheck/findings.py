"""Findings that are not about one gradient element: a function that writes into its arguments, or that does
not read an input it is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.report import Finding
from backcheck.tree import Tree, format_index

#: Elements named in a finding's message.
SHOWN = 5


def changed_elements(name: str, before: np.ndarray, now: Any) -> tuple[str, tuple[int, ...], np.ndarray] | None:
    """``(name, shape, flat indices)`` of the elements of ``now`` that differ from ``before``; None if none."""
    now = np.asarray(now)
    if now.shape == before.shape and np.array_equal(before, now, equal_nan=True):
        return None
    if now.shape != before.shape:
        return name, before.shape, np.arange(before.size)
    a, b = before.reshape(-1), now.reshape(-1)
    idx = np.flatnonzero(~((a == b) | ((a != a) & (b != b))))
    return name, before.shape, idx


def mutation_finding(function: str, changed: Sequence[Any], kind: str = "input") -> Finding:
    """A failing finding: ``function`` wrote into its ``kind`` (input, argument, dout) in place.

    ``changed`` holds ``(name, shape, flat indices)`` per array changed, or ``(Leaf, flat indices)`` as
    :meth:`Tree.changed` gives them.
    """
    rows = [(c[0].name, c[0].shape, c[1]) if len(c) == 2 else c for c in changed]
    name, shape, idx = rows[0]
    names = [name + format_index(np.unravel_index(int(i), shape) if shape else ()) for i in idx[:SHOWN]]
    others = "".join(f", {n}" for n, _, _ in rows[1:])
    return Finding(
        "mutation",
        f"{function} modified its {kind} {name}{others} in place ({len(idx)} element(s) of {name}, "
        f"e.g. {', '.join(names)}). Code upstream that still holds the array now sees wrong values; copy "
        "before writing.",
        where=function,
        elements=names,
    )


#: How many rounding units of |phi| a perturbation must have moved phi by, by the gradient's account, before
#: a function that did not move at all is said not to read the input.
UNREAD_ULPS = 64.0


def unread_findings(
    function: str, tree: Tree, unmoved: Sequence[int], g: np.ndarray, steps: np.ndarray, phi: float, eps: float
) -> list[Finding]:
    """Findings for the leaves (positions in ``tree``) along which ``function`` never changed at all, although
    the gradient ``g`` says a step of ``steps`` should have moved ``phi`` by far more than its rounding
    (``eps`` of ``|phi|``): the function likely reads a copy of the input, not the array being perturbed.
    """
    out = []
    for k in unmoved:
        leaf = tree.leaves[k]
        sl = slice(leaf.offset, leaf.offset + leaf.size)
        expected = np.abs(g[sl]) * steps[sl]
        if not leaf.size or not np.nanmax(expected, initial=0.0) > UNREAD_ULPS * eps * max(abs(phi), 1e-300):
            continue
        out.append(
            Finding(
                "unread input",
                f"{function} did not change at all when {leaf.name} was perturbed, although its gradient says it "
                f"should have: {function} does not read {leaf.name} as passed. It may read a copy (a closure over "
                "another array, a read-only or 0-d array that had to be copied, a value cast to float before the "
                "call), or ignore it; its numeric gradient is 0, so its elements fail.",
                where=function,
                elements=[leaf.name],
            )
        )
    return out
