"""Findings that are not about one gradient element: a function that writes into its arguments, or that does
not read an input it is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.bits import foreign_float
from backcheck.report import FAILING_FINDINGS, Finding, Report
from backcheck.tree import Tree, format_index
from backcheck.verdict import DEAD, typical_size

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


def _shown(name: str, shape: tuple[int, ...], idx: np.ndarray) -> list[str]:
    """The first :data:`SHOWN` of the elements ``idx`` (flat) of the array ``name`` of this ``shape``, by name."""
    return [name + format_index(np.unravel_index(int(i), shape) if shape else ()) for i in idx[:SHOWN]]


def mutation_finding(function: str, changed: Sequence[Any], kind: str = "input") -> Finding:
    """A failing finding: ``function`` wrote into its ``kind`` (input, argument, dout) in place.

    ``changed`` holds ``(name, shape, flat indices)`` per array changed, or ``(Leaf, flat indices)`` as
    :meth:`Tree.changed` gives them.
    """
    rows = [(c[0].name, c[0].shape, c[1]) if len(c) == 2 else c for c in changed]
    name, shape, idx = rows[0]
    names = _shown(name, shape, idx)
    others = "".join(f", {n}" for n, _, _ in rows[1:])
    return Finding(
        "mutation",
        f"{function} modified its {kind} {name}{others} in place ({len(idx)} element(s) of {name}, "
        f"e.g. {', '.join(names)}). Code upstream that still holds the array now sees wrong values; copy "
        "before writing.",
        where=function,
        elements=names,
    )


def masked_gradient(function: str, tree: Tree, g: np.ndarray) -> list[Finding]:
    """A failing finding where the gradient is not finite at an input entry of +-inf (a mask: -inf logits before a
    softmax): f cannot move along such an entry, so its derivative there is 0, and a NaN or inf there makes every
    gradient computed from it upstream non-finite (``dQ = dS @ K``). ``g``: the flat gradient as the frontend gave
    it (where it kept those entries), beside what :meth:`Tree.note_masked` recorded. Asked only where the outputs
    are finite: an output masked too (``logaddexp(-inf, -inf)``) has a rule of its own there, 0 * inf in jax's."""
    if not tree.excluded.size:
        return []
    if g.size == tree.size:
        tree.note_masked(g)
    return nonfinite_at_masks(function, tree, tree.masked_nonfinite)


def nonfinite_at_masks(function: str, tree: Tree, bad: np.ndarray) -> list[Finding]:
    """The finding of :func:`masked_gradient` for the flat positions ``bad`` of ``tree`` (none where it is empty)."""
    if not bad.size:
        return []
    names = [tree.element_name(int(i)) for i in bad[:SHOWN]]
    more = f" and {bad.size - SHOWN} more" if bad.size > SHOWN else ""
    return [
        Finding(
            "non-finite gradient",
            f"{function}'s gradient is not finite at masked input entries (+-inf): {', '.join(names)}{more}. f "
            "cannot move along an infinite entry, so its derivative there is 0; a NaN or inf there makes every "
            "gradient computed from it upstream non-finite (a rule's 0 * inf, or a value written for masked "
            "entries).",
            where=function,
            elements=names,
        )
    ]


def dout_written(function: str, changed: tuple[str, tuple[int, ...], np.ndarray]) -> Finding:
    """A warning, not a failure: ``function`` (a backward pass) wrote into its upstream gradient ``dout`` in
    place (``dx = dout; dx[x <= 0] = 0``), a habit of many correct layers. The check hands every call a fresh
    copy, so its gradients are judged as they are; a network whose ``dout`` feeds two layers would not be."""
    name, shape, idx = changed
    names = _shown(name, shape, idx)
    return Finding(
        "dout written",
        f"{function} wrote into {name} in place ({len(idx)} element(s), e.g. {', '.join(names)}). Harmless where "
        f"{name} feeds this layer alone, as here (every call was given a fresh copy, and the gradients were judged "
        "as returned); wrong where it feeds two (a residual connection adds both branches' gradients into one "
        f"array): write dx = {name}.copy() first, or dx = {name} * mask.",
        where=function,
        elements=names,
    )


def unchecked_gradients(function: str, names: Sequence[str], values: Sequence[Any], raw: Any) -> list[Finding]:
    """Findings for the inputs ``names`` (with their ``values``) that the check does not differentiate but are
    numbers of a kind it does not perturb (complex, a list of numbers, a dict of arrays, a float dtype numpy does
    not know), for which ``function`` (a backward returning one gradient per input, ``raw``) returned a gradient:
    it was never compared, so nothing is vouched for it (the check is inconclusive, not passed)."""
    out = []
    for name, x, g in zip(names, values, raw, strict=True):
        if g is None or not _numbers(x):
            continue
        out.append(
            Finding(
                "unchecked gradient",
                f"{function} returned a gradient for {name}, which is {_kind(x)}: the check perturbs float arrays "
                f"(and lists of them), so that gradient was never compared and nothing is vouched for it. Pass {name} "
                f"as a float array (np.asarray({name}, dtype=np.float64)) to check it, or name it in "
                "constant=[...] if it is a constant.",
                where=function,
                elements=[name],
            )
        )
    return out


def unchecked_attributes(function: str, names: Sequence[str]) -> list[Finding]:
    """'unchecked gradient' findings for a layer object's arrays ``names`` whose gradient ``function`` wrote
    (``self.dW``) or stepped and the check never compared: attributes of numbers it does not perturb (complex,
    bfloat16), and arrays in a list or dict attribute no parameter name found (``layers[0]``)."""
    return [Finding("unchecked gradient", _unchecked_message(function, n), where=function, elements=[n]) for n in names]


def ungradiented(cls: str, forward: str, backward: str, names: Sequence[str]) -> list[Finding]:
    """'unchecked gradient' findings for a layer object's float arrays ``names`` (``self.W``) that ``forward``
    reads (its output moves with them) and for which ``backward`` leaves no gradient anywhere the search looks:
    a forgotten gradient, or a buffer; either way nothing is vouched for them."""
    return [
        Finding(
            "unchecked gradient",
            f"{cls}.{forward} reads {n} (its output moves with it), but {cls}.{backward} leaves no gradient for it "
            f"where backcheck looks: a gradient backward forgets, or a buffer. Nothing is vouched for it. If it is "
            f"a parameter, store its gradient (self.d{n.rpartition('.')[2]}) or name where it is (params= and "
            "grads=); if it is a buffer, name the parameters alone in params=[...].",
            where=f"{cls}.{backward}",
            elements=[n],
        )
        for n in names
    ]


def unseen_arrays(cls: str, forward: str, names: Sequence[str]) -> list[Finding]:
    """'unchecked gradient' findings for values ``forward`` reads where no parameter is looked for (in a list,
    tuple or nested dict of an attribute, ``self.params = [(W, dW), ...]`` or ``{'fc1': {'W': W}}``; a Python
    float with a gradient beside it; on the class): nothing is vouched for them."""
    return [
        Finding(
            "unchecked gradient",
            f"{cls}.{forward} reads {n} (its output moves with it), a value where check_object looks for no "
            "parameter (in a list, tuple or nested dict of an attribute, a Python float, or on the class): its "
            "gradient was never compared, so nothing is vouched for it. Keep each parameter as an array attribute "
            "or in a flat dict (self.W, self.params['W']; a scalar as a 0-d array, np.array(0.25)) with its "
            "gradient beside it (self.dW, self.grads['W']), or check the layer's math as a function with "
            "check_layer.",
            where=f"{cls}.{forward}",
            elements=[n],
        )
        for n in names
    ]


def _unchecked_message(function: str, name: str) -> str:
    if "[" in name:  # an item of a list or dict attribute
        return (
            f"{function} stepped self.{name}, which is not among the parameters found: its gradient was never "
            f"compared, so nothing is vouched for it. Name the parameters: params=['{name.partition('[')[0]}'] (or "
            "their attributes)."
        )
    return (
        f"{function} wrote a gradient for (or stepped) self.{name}, which holds numbers the check does not perturb "
        "(complex, or a float dtype numpy does not know, such as bfloat16): that gradient was never compared, so "
        f"nothing is vouched for it. Keep self.{name} a float32 or float64 array to check it."
    )


def _numbers(x: Any) -> bool:
    """Numbers the check could differentiate in another form: complex values, a float dtype numpy does not know
    (bfloat16 from ml_dtypes), a list or tuple of numbers, a dict holding float arrays."""
    if isinstance(x, complex) or (isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind in "cV"):
        return True
    if isinstance(x, (np.ndarray, np.generic)) and foreign_float(x.dtype):  # (float8_e5m2: of kind 'f' to numpy)
        return True
    if isinstance(x, (list, tuple)):
        numbers = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in x)
        return numbers and any(isinstance(v, (float, np.floating)) for v in x)  # (sizes and strides are ints)
    if isinstance(x, dict):  # (a config of floats and strings too: only a gradient returned for it is named)
        return any(isinstance(v, (float, np.floating)) or _numbers(v) or _float_array(v) for v in x.values())
    return False


def _float_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def _kind(x: Any) -> str:
    if isinstance(x, (np.ndarray, np.generic)):
        return f"an array of {x.dtype}"
    if isinstance(x, dict):
        return "a dict of arrays"
    return f"a {type(x).__name__} of numbers" if isinstance(x, (list, tuple)) else f"a {type(x).__name__}"


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


#: A failing gradient whose every wrong element is off by at most this fraction of its typical size, with at least
#: half of the elements checked wrong, is off by a small error spread over it (see :func:`small_error_note`): an
#: adjoint solved to a relative tolerance of 1e-4 is off by about 1e-3 of the gradient.
SMALL_ERROR = 1e-2
#: ... and errors at a few elements this small beside it (and beside each element's own) are a hair's.
TINY_ERROR = 1e-5


#: How a report says that group testing found an array's wrong elements among all of them.
LOCALIZED = "a random direction disagrees; group testing found"


def small_error_note(report: Report, tree: Tree, fname: str) -> str:
    """A note for a report that fails only by small errors spread over the gradient ('' otherwise).

    A rule solved to a tolerance (an iterative solve's adjoint stopped at a residual, an adaptive ODE adjoint)
    is off everywhere by about that tolerance: at least half of the elements that could show it wrong (where the
    gradient is not 0 and the bound is below the errors' size), each by at most
    :data:`SMALL_ERROR` of the gradient's typical size, where a wrong term is off by a good part of the gradient
    in the elements it touches. The failure stands (the rule is off by far more than the check's bounds); the
    note says what such errors come from, and how to accept them. ``tree``: the leaves of the reverse-mode
    section (the report's other leaves, a forward-mode section, are not considered).
    """
    if report.status != "fail" or any(f.kind in FAILING_FINDINGS for f in report.findings):
        return ""
    names = {lf.name for lf in tree.leaves}
    leaves = [lf for lf in report.leaves if lf.name in names]
    if not any(lf.status == "fail" for lf in leaves) or any(lf.counts.get(DEAD, 0) for lf in leaves):
        return ""
    g, n, b = (tree.pack(t, "report") for t in (report.analytic, report.numeric, report.bound))
    checked = np.isfinite(n) & np.isfinite(b) & np.isfinite(g)
    wrong = checked & ~(np.abs(g - n) <= b)
    k, total = int(np.count_nonzero(wrong)), int(np.count_nonzero(checked))
    if not k:
        return ""
    # of the elements that could show errors of the size found: where the gradient acts (a rule off by a
    # constant's rounding is exact where the gradient is 0: a saturated hardsigmoid, a ReLU's dead half) and the
    # bound is below that size (an error at the edge of the bounds shows at some elements only)
    size = float(np.median(np.abs(g - n)[wrong]))
    seen = wrong | (checked & ((g != 0) | (np.abs(n) > b)) & (b < size))
    # an array group testing went through found its wrong elements among all of its own: none spread over it
    localized = sum(
        lf.n_elements - lf.n_checked
        for lf in leaves
        if lf.status == "fail" and any(note.startswith(f"{lf.name}: {LOCALIZED}") for note in report.notes)
    )
    typical = typical_size(g[checked])
    err = np.abs(g - n)[wrong]
    worst = float(np.max(err))
    # small beside the gradient's typical size, and mostly beside each element's own gradient: a wrong term is
    # off by a good part of the gradient where it acts, however small that is beside one large element
    own = float(np.median(err / np.maximum(np.abs(n[wrong]), np.abs(g[wrong]))))
    atol = 10.0 ** np.ceil(np.log10(worst))
    if 2 * k < int(np.count_nonzero(seen)) + localized:
        if worst <= TINY_ERROR * typical and own <= TINY_ERROR:  # (a few elements, each off by a hair)
            return (
                f"{fname}'s gradient is off at {k} element(s) by at most {worst:.2g} ({worst / typical:.1g} of the "
                f"gradient's typical size, {typical:.3g}), far below what a wrong term is off by where it acts: a "
                "small guard in the forward that the rule leaves out (log(p + 1e-9), a denominator + 1e-8) makes "
                "such errors where it matters, and so does a solver's tolerance. If that is meant, accept errors "
                f"of this size with atol={atol:.0e}."
            )
        return ""
    if not (worst <= SMALL_ERROR * typical and own <= SMALL_ERROR):
        return ""
    could = int(np.count_nonzero(seen))
    of = f"{k} of the {could} elements that could show it" + (f" ({total} checked)" if could != total else "")
    return (
        f"{fname}'s gradient is off by a small error spread over it: {of} are "
        f"wrong, each by at most {worst:.2g} ({worst / typical:.1g} of the gradient's typical size, {typical:.3g}). "
        "That is what a backward solved to a tolerance gives (an iterative solve's adjoint stopped at a residual, "
        "an adaptive ODE adjoint, a fixed point's implicit gradient), an approximate formula, a constant rounded to "
        "a narrower dtype (1/6 held in float32 is off by 3e-8 of itself), or a forward whose "
        "small guard the rule leaves out (log(p + 1e-7) with the gradient of log(p)); a wrong term is "
        "off by a good part of the gradient where it acts. A forward solved to a tolerance (a fixed point iterated "
        "until its steps fall below one) makes them too, on the numeric side: the differences follow where its "
        "solver stopped, and an implicit gradient is the exact one of the solution. If the rule or the forward is "
        "meant to be exact only to its solver's tolerance, tighten that tolerance (its atol / rtol; the forward's "
        f"first), or accept errors of this size with atol={atol:.0e}."
    )


#: Elements whose numeric derivative stands clear of its bound, at least, for a constant factor to be named.
SCALE_ELEMENTS = 3
#: How far (relative) each such element's ratio may be from their median for the factor to be constant.
SCALE_SPREAD = 0.01


def scale_note(report: Report, tree: Tree, fname: str) -> str:
    """A note for a failing report whose gradient is one constant factor times the numeric derivative at every
    element that shows it ('' otherwise): a sign, a missing or extra 1/N, a learning rate, a gradient reversal.
    A factor within :data:`NEAR_ONE` of 1 is named where every element's ratio agrees closely beside its distance
    from 1 (1/(N-1) for 1/N: 128/127); one within :data:`LEAST_FACTOR` of 1 is the small-error note's (a constant
    rounded to a narrower dtype, :func:`small_error_note`)."""
    if report.status != "fail":
        return ""
    g, n, b = (tree.pack(t, "report") for t in (report.analytic, report.numeric, report.bound))
    shows = np.isfinite(n) & np.isfinite(b) & np.isfinite(g) & (np.abs(n) > b)
    whole = _factor(g[shows], n[shows], b[shows])
    if whole is not None:
        return (
            f"{fname}'s gradient is {_times(whole)} the numeric derivative at every element that shows it "
            f"({int(np.count_nonzero(shows))} elements): {ONE_FACTOR}"
        )
    parts = [slice(leaf.offset, leaf.offset + leaf.size) for leaf in tree.leaves]
    each = [
        (leaf.name, _factor(g[p][shows[p]], n[p][shows[p]], b[p][shows[p]]))
        for leaf, p in zip(tree.leaves, parts, strict=True)
    ]
    named = [f"{name}'s {_times(factor)}" for name, factor in each if factor is not None]
    if not named:
        return ""
    named[0] = named[0].replace("'s ", "'s gradient is ", 1)
    return f"{_listed_names(named)} the numeric derivative at every element of the array that shows it: {ONE_FACTOR}"


def _times(factor: float) -> str:
    """``1.5 times``, or for a factor near 1 its distance from 1 too: ``1.00787 (1 + 0.0079) times``."""
    off = factor - 1.0
    if abs(off) > NEAR_ONE:
        return f"{factor:.3g} times"
    return f"{factor:.6g} (1 {'+' if off > 0 else '-'} {abs(off):.2g}) times"


#: What a gradient one constant factor times the derivative is.
ONE_FACTOR = (
    "one constant factor (a sign, a missing or extra 1/N, a learning rate or step size, a gradient reversal), not a "
    "wrong formula element by element."
)


#: A factor this near 1 is named only where every element's ratio lies within :data:`NEAR_SPREAD` of its distance
#: from 1 (beside the ratio's own uncertainty, the element's bound over its derivative) ...
NEAR_ONE = 0.05
NEAR_SPREAD = 0.25
#: ... and one nearer than this is never named: what a solve to a relative tolerance of 1e-4 is off by (about 1e-3
#: of the gradient, see :data:`SMALL_ERROR`), a constant rounded to a narrower dtype, an approximation.
LEAST_FACTOR = 2e-3


def _factor(g: np.ndarray, n: np.ndarray, b: np.ndarray) -> float | None:
    """The one factor ``g / n`` shows over at least :data:`SCALE_ELEMENTS` elements, if any (``b``: the elements'
    bounds), and not within :data:`LEAST_FACTOR` of 1."""
    if g.size < SCALE_ELEMENTS:
        return None
    ratio = g / n
    factor = float(np.median(ratio))
    off = abs(factor - 1.0)
    if factor == 0.0:
        return None  # a gradient of 0 where f moves: no factor but a gradient that does not flow (said as such)
    if off > NEAR_ONE:
        return factor if np.all(np.abs(ratio - factor) <= SCALE_SPREAD * abs(factor)) else None
    own = np.abs(b / n)  # (each ratio's own uncertainty: below 1, as the derivative shows beyond its bound)
    if off < LEAST_FACTOR or not np.all(np.abs(ratio - factor) + own <= NEAR_SPREAD * off):
        return None
    return factor


def _listed_names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def offset_notes(report: Report, tree: Tree) -> list[str]:
    """Notes for a failing report's arrays whose gradient differs from the numeric derivative by one constant at
    every element (at least :data:`SCALE_ELEMENTS`): a gradient defined up to an added constant, or a term the
    same for every element, missing or extra."""
    if report.status != "fail":
        return []
    g, n, b = (tree.pack(t, "report") for t in (report.analytic, report.numeric, report.bound))
    notes = []
    for leaf in tree.leaves:
        part = slice(leaf.offset, leaf.offset + leaf.size)
        seen = np.isfinite(n[part]) & np.isfinite(b[part]) & np.isfinite(g[part])
        if int(np.count_nonzero(seen)) < SCALE_ELEMENTS:
            continue
        d, bb, nn = (g[part] - n[part])[seen], b[part][seen], n[part][seen]
        shift = float(np.median(d))
        if not (np.all(np.abs(d) > bb) and np.all(np.abs(d - shift) <= bb + SCALE_SPREAD * abs(shift))):
            continue
        if np.all(np.abs(nn - np.median(nn)) <= bb):  # (a constant derivative: a factor says it as well)
            continue
        notes.append(
            f"{leaf.name}'s gradient differs from the numeric derivative by one constant, {shift:.3g}, at every "
            f"element ({int(np.count_nonzero(seen))}): a gradient defined only up to an added constant (of a "
            "function meant on a simplex, or of potentials fixed up to a shift) differs so from the derivative "
            "of f off that set, which the differences measure; so does a term the same for every element, "
            "missing or extra (the derivative of a sum or a mean)."
        )
    return notes


def error_notes(report: Report, tree: Tree, fname: str) -> list[str]:
    """What a failing report's errors look like as a whole, where they look like one thing: a small error spread
    over the gradient, a constant factor, or an added constant."""
    scale = scale_note(report, tree, fname)  # (a factor named is no small error spread over the gradient)
    notes = [scale] if scale else [n for n in (small_error_note(report, tree, fname),) if n]
    return notes + offset_notes(report, tree)
