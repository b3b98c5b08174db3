"""A low-precision gradient's own rounding, measured: how far it moves when the point moves by a few units in the
last place.

A float32 backward pass of data far from 0 beside its spread (a variance of values near 1e4 whose spread is 1)
loses digits to cancellation: ``x - mean(x)`` carries the rounding of the mean, about a unit in the last place of
1e4, and the gradient that of the centred values, a thousandth of them. No model of the gradient's dtype alone
(sixteen epsilons of the element) sees that, but the backward pass itself shows it: moved by a few units in the
last place of its inputs, the gradient moves by their rounding times its sensitivity to them, about as much as its
rounding at the point. A wrong rule is off by a share of the gradient, orders beyond.
"""

from __future__ import annotations

import numpy as np

from backcheck.bits import machine_eps
from backcheck.evaluate import Evaluator
from backcheck.verdict import FAILING, OK, SAFETY, Claim, Judgement

#: Units in the last place of each element's dtype that the point moves by to measure a gradient's rounding.
ULPS_AWAY = 4.0
#: Backward calls at points a few units in the last place away that measure a native gradient's own rounding.
JITTER_RUNS = 2
#: Gradients this coarse and coarser (float32, float16, bfloat16) are judged against their measured rounding.
NARROW = 1e-10


def native_jitter(ev: Evaluator, claim: Claim, sub: np.ndarray, eps: np.ndarray | None = None) -> np.ndarray:
    """Per element of ``sub``, how far the native gradient moves when the point moves by :data:`ULPS_AWAY` units
    in the last place of each element's dtype (``eps`` per element of the tree, or the gradient's), in random
    directions (two backward calls): the rounding the native run carries, with the gradient's true change over so
    small a move."""
    g0 = claim.g[sub]
    jitter = np.zeros(sub.size)
    for moved in _moved_gradients(ev, claim, sub, eps):
        with np.errstate(invalid="ignore"):
            jitter = np.fmax(jitter, np.abs(moved - g0))
    return jitter


def _moved_gradients(ev: Evaluator, claim: Claim, sub: np.ndarray, eps: np.ndarray | None) -> list[np.ndarray]:
    """The native gradient at ``sub`` at each of the points :func:`_jitter_moves` moves to."""
    assert claim.regrad is not None
    out = []
    for move in _jitter_moves(ev, claim.grad_eps if eps is None else eps):
        with ev.shifted(move, evaluate=False):
            out.append(claim.regrad()[sub])
    return out


def _broken_at_the_point(
    ev: Evaluator, claim: Claim, sub: np.ndarray, numeric: np.ndarray, limit: np.ndarray, eps: np.ndarray
) -> np.ndarray:
    """Per element of ``sub``, whether the gradient is wrong at the point alone: a few units in the last place
    away it agrees with the numeric derivative (well within ``limit``), or turns NaN or infinite, while at the
    point it is far off. Rounding scatters the gradient about the truth on both sides of the point; a rule
    broken at one value (0 at x = 1, the derivative an ulp away) lands on the truth there, and excuses nothing."""
    g0 = claim.g[sub]
    far = np.abs(g0 - numeric) > POINT_APART * limit
    close, broken = np.ones(sub.size, dtype=bool), np.zeros(sub.size, dtype=bool)
    for moved in _moved_gradients(ev, claim, sub, eps):
        with np.errstate(invalid="ignore"):
            close &= np.abs(moved - numeric) <= limit / POINT_APART
        broken |= ~np.isfinite(moved) & np.isfinite(g0)
    return (far & close) | broken


#: A gradient off at the point by this many bounds, and within a bound over this of the numeric derivative a few
#: units in the last place away, is broken at the point, not rounded (:func:`_broken_at_the_point`).
POINT_APART = 4.0


def own_rounding(ev: Evaluator, claim: Claim, sub: np.ndarray) -> np.ndarray | None:
    """Per element of ``sub``, the gradient's measured rounding (:func:`native_jitter`) where its computation is
    low-precision and it has no float64 run (its arithmetic is in float32 whatever it is given); None where there
    is none to measure (a float64 computation, a precomputed gradient, the user's own tolerance) or it cannot be
    (a backward pass that returns another gradient when called again at the same point: a random one).

    The inputs move by units of the coarsest precision the computation has (the inputs' dtype, the gradient's, or
    the output's: a float32 kernel of float64 arrays).
    """
    if claim.g_wide is not None or claim.regrad is None or claim.tol.custom or not sub.size:
        return None
    eps = _coarsest_eps(ev, claim)
    if not float(eps[sub].min()) >= NARROW:
        return None
    if not np.array_equal(claim.regrad()[sub], claim.g[sub], equal_nan=True):
        return None
    if _crosses(ev, claim, eps):
        return None
    every, jumped = _rounding_moves(ev, claim, eps)
    return np.maximum(every[sub], _leaf_rms(ev, np.where(jumped, np.nan, every))[sub])


def _rounding_moves(ev: Evaluator, claim: Claim, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element, how far its gradient moves under :func:`_jitter_moves` (as :func:`native_jitter`) but for
    the moves where it jumps, and whether it jumped under any: moved as far again, it moves :data:`JUMP_RATIO`
    times less, and its array's gradients (RMS) too (four backward calls). Rounding moves a gradient about as much
    again (a new rounding, or its true change over twice the move; a float32 gradient's rounding can repeat to the
    bit, its array's does not), a jump not at all: a mask that flips under so small a move (a clip of integer data
    at its bound, tied values of a sort or a max, or a wrong rule's own threshold on the point: ``|x| <= 2`` at
    x = 2, where f is flat on both sides). Its jump is no rounding of the gradient: of a right rule, a kink of f
    along that element's own axis (judged as one there), of a wrong one, the error itself."""
    assert claim.regrad is not None
    g0 = claim.g
    out, jumped = np.zeros(g0.size), np.zeros(g0.size, dtype=bool)
    for move in _jitter_moves(ev, eps):
        with ev.shifted(move, evaluate=False):
            near = claim.regrad()
        with ev.shifted(2.0 * move, evaluate=False):
            far = claim.regrad()
        with np.errstate(invalid="ignore"):
            moved, again = np.abs(near - g0), np.abs(far - near)
            jump = moved > JUMP_RATIO * np.maximum(again, _leaf_rms(ev, again))
        out = np.fmax(out, np.where(jump, 0.0, moved))
        jumped |= jump
    return out, jumped


#: A gradient that moves this many times more under a move than under the same move again has jumped there.
JUMP_RATIO = 16.0


def _coarsest_eps(ev: Evaluator, claim: Claim) -> np.ndarray:
    """Per element, the coarsest precision its computation has: the input's dtype, the gradient's, or the
    output's (a float32 kernel of float64 arrays)."""
    inputs = ev.tree.per_leaf([machine_eps(leaf.dtype) for leaf in ev.tree.leaves])
    return np.maximum(np.maximum(claim.grad_eps, inputs), ev.out_eps)


def _crosses(ev: Evaluator, claim: Claim, eps: np.ndarray) -> bool:
    """Whether the point moved by :data:`ULPS_AWAY` units in the last place (as :func:`native_jitter` moves it)
    moves ``f`` by far more than the gradient says and its noise allows: the move crosses a branch (a target of
    exactly 1 read as ``t != 1``), and the gradient's change there is a jump, not rounding."""
    allowed = ev.noise + JUMP_ULPS * ev.out_eps * abs(ev.phi0)
    for move in _jitter_moves(ev, eps):
        with ev.shifted(move) as phi:
            expected = abs(float(np.dot(np.nan_to_num(claim.g), move)))
        if not abs(phi - ev.phi0) <= CROSSING * (expected + allowed):
            return True
    return False


def _jitter_moves(ev: Evaluator, eps: np.ndarray) -> np.ndarray:
    """The :data:`JITTER_RUNS` moves of the point by :data:`ULPS_AWAY` units in the last place (``eps`` per
    element) of random signs, the same at every call: what :func:`native_jitter` and :func:`_crosses` move by."""
    floor = ULPS_AWAY * eps * np.abs(ev.tree.values())
    return (np.random.default_rng(0).integers(0, 2, size=(JITTER_RUNS, floor.size)) * 2.0 - 1.0) * floor


#: A move of f beyond this many times what the gradient and the noise allow is a crossing, not rounding.
CROSSING = 16.0
#: The rounding of f's value allowed beside its measured noise, in units of its dtype's epsilon.
JUMP_ULPS = 64.0


def _tied(ev: Evaluator, idx: np.ndarray) -> np.ndarray:
    """Per element of ``idx`` (flat positions), whether another element of its array holds its value."""
    ties = ev.tree.ties(idx, within_arrays=True) if idx.size else []
    return np.isin(idx, np.concatenate(ties)) if ties else np.zeros(idx.size, dtype=bool)


def _leaf_rms(ev: Evaluator, jitter: np.ndarray) -> np.ndarray:
    """Per element, the RMS of the jitter over its array: an element's own can vanish by chance (the moves of a
    row of a variance all of one sign leave x - mean(x) where it was), while its rounding is its computation's.
    NaN leaves an element out: one whose gradient jumped (:func:`_rounding_moves`), whose jump in the RMS would
    excuse every element any error below it (one element of integer data at a clip's bound, in float32)."""
    out = np.zeros(jitter.size)
    for leaf in ev.tree.leaves:
        part = jitter[leaf.offset : leaf.offset + leaf.size]
        finite = part[np.isfinite(part)]
        out[leaf.offset : leaf.offset + leaf.size] = float(np.sqrt(np.mean(finite**2))) if finite.size else 0.0
    return out


def within_own_rounding(ev: Evaluator, idx: np.ndarray, j: Judgement, claim: Claim) -> tuple[list[str], np.ndarray]:
    """Failing elements (of their own difference: not of a joint test) judged again with the gradient's
    :func:`own_rounding` added to their bound: those within it pass with that bound (inconclusive where it cannot
    see an error that matters). Returns the notes and the positions in ``idx`` of the elements that passed so:
    their bound is the last word (an error beyond it fails here, whatever the step).

    A gradient that jumps within the few units moved (a ReLU mask flipping) would excuse anything; but an element
    judged failing was smooth along its own axis over its steps, and its gradient reads only masks its own axis
    moves: such a kink would have shown there (and been judged as one). Nor is a jump of the gradient under the
    moves counted as rounding, its own or its array's (:func:`_rounding_moves`). Where the data resolve their spread
    poorly (values near 1e4 in float32 spread by 0.01: ten units of their last place), the gradient's rounding
    reaches its size, and so does the bound: inconclusive, never failed for the arithmetic of the right rule."""
    if not set(j.status.tolist()) & set(FAILING):
        return [], idx[:0]
    with np.errstate(invalid="ignore"):
        beyond = np.abs(claim.g[idx] - j.numeric) > j.bound  # (mismatches of their own difference, not of a joint one)
    bad = np.flatnonzero(np.isin(j.status, FAILING) & beyond)
    # f flat along an element whose value ties with another's (a median of equal values): its gradient jumps as
    # the moves break the tie, no rounding; the ties' own re-check judges it (strategies/ties.py)
    bad = bad[~(_tied(ev, idx[bad]) & (np.abs(j.numeric[bad]) <= j.bound[bad]))]
    wider = _widened(ev, claim, idx[bad], j.numeric[bad], j.bound[bad])
    if wider is None:
        return [], bad[:0]
    within, limit = wider
    j.status[bad[within]] = OK
    j.bound[bad[within]] = limit[within]
    return ([OWN_ROUNDING_NOTE.format(int(within.sum()))] if within.any() else []), bad[within]


def unless_own_rounding(
    ev: Evaluator, claim: Claim, idx: np.ndarray, value: np.ndarray, limit: np.ndarray, wrong: np.ndarray
) -> int:
    """Elements a sharp estimate ``value`` calls ``wrong`` judged again with the gradient's :func:`own_rounding`
    added to their ``limit``; those within it are not wrong, and keep that limit (both in place). Returns how many."""
    bad = np.flatnonzero(wrong)
    wider = _widened(ev, claim, idx[bad], value[bad], limit[bad])
    if wider is None:
        return 0
    within, widened = wider
    limit[bad[within]] = widened[within]
    wrong[bad[within]] = False
    return int(within.sum())


def _widened(
    ev: Evaluator, claim: Claim, sub: np.ndarray, numeric: np.ndarray, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """For the elements ``sub`` with these ``numeric`` estimates and ``limit`` bounds: which lie within the limit
    widened by ``SAFETY`` times the gradient's :func:`own_rounding`, and that widened limit (None: nothing to
    measure)."""
    jitter = own_rounding(ev, claim, sub)
    if jitter is None:
        return None
    widened = limit + SAFETY * jitter
    within = np.abs(claim.g[sub] - numeric) <= widened
    if within.any():
        eps = _coarsest_eps(ev, claim)
        within &= ~_broken_at_the_point(ev, claim, sub, numeric, limit, eps)
    return within, widened


OWN_ROUNDING_NOTE = (
    "{} element(s) differ from the numeric derivative by no more than the backward pass's own rounding: its "
    "gradient moves by as much when the inputs move by a few units in their last place (a computation that cancels "
    "digits, as of inputs far from 0 beside their spread); their bound includes that movement."
)
