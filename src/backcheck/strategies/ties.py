"""Elements tied in value or at one kink, judged together.

Elements tied at one maximum (or sort, or median) are each a valid one-sided slope alone, yet a gradient routed
to every tied element is wrong: moved together, the group changes the output by one slope, not their sum
(:func:`joint_kink_test`). The whole group moves along the ties, where every piece of the function that meets
at the point moves alike, so every valid subgradient sums to the same change there; a part of a tie group may
be flat (the median of three equal values does not move when one of them does) where a valid subgradient
(one of the three routed the gradient) is not. So elements whose value ties with others' are moved with all of
them first, and an element flat along its own axis whose value ties with others is judged at a nearby point
where the tie is broken (:func:`recheck_tied`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backcheck.evaluate import Evaluator
from backcheck.strategies.around import agrees_around
from backcheck.strategies.nearby import crowded_note, nearby_verdicts, slopes_along, weigh_along
from backcheck.verdict import KINK, MISMATCH, NOISY, VOUCH, Claim, Judgement

#: Relative agreement of two jumps (one-sided slope gaps) for their elements to count as tied.
TIE_RTOL = 1e-6
#: Most groups of tied elements moved together in one check (each costs 4 evaluations, or 4 per pair).
MAX_TIE_GROUPS = 512


def tie_groups(kink_idx: np.ndarray, jump: np.ndarray) -> list[np.ndarray]:
    """Groups of kink elements with the same jump (tied at one max, sort or clip bound), largest first."""
    order = np.argsort(jump, kind="stable")
    idx, jmp = kink_idx[order], jump[order]
    scale = np.maximum(np.abs(jmp[:-1]), np.abs(jmp[1:]))
    same = np.abs(np.diff(jmp)) <= TIE_RTOL * scale + 1e-300
    cuts = np.flatnonzero(~same) + 1
    groups = [np.sort(grp) for grp in np.split(idx, cuts) if grp.size >= 2]
    return sorted(groups, key=lambda grp: -grp.size)


def joint_kink_test(
    ev: Evaluator,
    kink_idx: np.ndarray,
    jump: np.ndarray,
    claim: Claim,
    tied: np.ndarray | None = None,
    alone: Alone | None = None,
) -> dict[int, tuple[float, float]] | None:
    """Move tied kink elements together; return the elements whose gradients are jointly inconsistent.

    Elements tied at one maximum (or at one clip bound) share the same jump between their one-sided slopes.
    Moving the whole group together is the direction in which the function *is* differentiable (the max of
    tied values moves with them, whatever their number), so there the analytic directional derivative must
    match exactly. A gradient routed to every tied element passes element by element, but fails this test.
    Where the whole group's direction still crosses a kink (independent kinks that happen to share a jump),
    its pairs are tried instead; directions that are not differentiable give no conclusion.

    A group found by its jumps may be only part of a tie (a sort of three equal values: the middle one's
    slopes are undefined): one that fails is moved again with every element of the input of its members'
    values, and passes where that whole tie agrees (:func:`_rescued`). ``tied``: elements taken as kinks for
    their value's ties (:func:`recheck_tied`), whose ties must agree as a whole, whatever their size.

    ``alone``: what the elements judged one by one said of themselves (:class:`Alone`). A tie by value is moved
    without the elements already wrong along their own axis: their error is theirs, and moved with a tie of their
    value it made every correctly routed kink of that value look wrong (a max pool on an integer image, one
    window's unique maximum 0.5% off, blamed the tied maxima of other windows, and the culprit fell off the
    report's table). A tie that still disagrees is moved again by its kinks alone (:func:`_tie_blamed`).

    Returns, per element blamed, what the joint move says of it: its claim less an equal share of the group's
    excess over the directional derivative, and an equal share of the move's slack (a tie of three given half the
    gradient each matches every one-sided mean, and was listed with a difference of 0); a cone point's group,
    which has no differentiable move, keeps its own (NaN).
    """
    alone = alone or Alone()
    apart = alone.wrong
    bad: dict[int, tuple[float, float]] = {}
    if tied is not None and tied.size:
        _value_groups(ev, tied, claim, alone, bad)
    for group in tie_groups(kink_idx, jump)[:MAX_TIE_GROUPS]:
        verdict, excess, slack = _move(ev, group, claim)
        if verdict is False:
            if not _rescued(ev, group, claim, apart) and not _summed_around(ev, group, claim, slack):
                _blame(bad, group, claim, excess, slack)
            continue
        if verdict is None and group.size > 2:
            pairs = [(group[k : k + 2], *_move(ev, group[k : k + 2], claim)) for k in range(group.size - 1)]
            wrong = [p for p in pairs if p[1] is False]
            wrong = [p for p in wrong if not _rescued(ev, p[0], claim, apart)]
            wrong = [p for p in wrong if not _summed_around(ev, p[0], claim, p[3])]
            for pair, _, excess, slack in wrong:
                _blame(bad, pair, claim, excess, slack)
            if wrong:
                continue
        if verdict is None and _along_claim(ev, group, claim) is False and not _rescued(ev, group, claim, apart):
            _blame(bad, group, claim, math.nan, math.nan)  # (a cone point: ||x|| at 0 claimed (1, 1, 1))
    keep = ~np.isin(kink_idx, apart)
    if not bad and keep.sum() >= 2:
        _all_together(ev, kink_idx[keep], jump[keep], claim, bad)
    return bad or None


def _all_together(
    ev: Evaluator, kinks: np.ndarray, jump: np.ndarray, claim: Claim, bad: dict[int, tuple[float, float]]
) -> None:
    """Every kink moved together, where no group of equal jumps was: kinks of unequal jumps that share an element
    (a hinge loss's margins at 0 at integer scores, ``max(0, x_j - x_y + 1)`` for two classes j, each with the
    correct class's score) leave f differentiable along their joint move (every margin stays at its kink: f does not
    change), and a rule whose value is within each element's one-sided slopes yet is no subgradient (the correct
    class given -1 for two margins) shows only there. A move that crosses kinks tells nothing; a sum that the
    backward pass's gradients around the point also give is a valid chain-rule subgradient (see
    :func:`_summed_around`)."""
    if any(g.size == kinks.size for g in tie_groups(kinks, jump)):
        return  # (moved together already)
    if ev.stood.intersection(kinks.tolist()) or not np.all(np.abs(jump) > VOUCH * claim.rms[kinks]):
        # stairs, not kinks: f stood still on a side at half a step that moved it (a value cast to bfloat16
        # inside), or slopes apart by far less than an error that matters (an intermediate's rounding far in a
        # GELU's tail, whose elements moved together disagree with their sum by that rounding)
        return
    verdict, excess, slack = _move(ev, kinks, claim)
    if verdict is False and not _summed_around(ev, kinks, claim, slack):
        _blame(bad, kinks, claim, excess, slack)


def _blame(bad: dict[int, tuple[float, float]], members: np.ndarray, claim: Claim, excess: float, slack: float) -> None:
    """Record ``members`` as jointly wrong: each with its claim less an equal share of the group's ``excess`` (the
    summed gradient over the directional derivative), and an equal share of the move's ``slack`` as its bound."""
    share = members.size or 1
    for i in members:
        bad[int(i)] = (float(claim.g[int(i)]) - excess / share, slack / share)


def _rescued(ev: Evaluator, group: np.ndarray, claim: Claim, apart: np.ndarray) -> bool:
    """Whether every element of the input that shares a value with ``group``, moved together a value at a time
    (without the elements ``apart``, wrong on their own), moves differentiably and agrees with its summed gradient
    (the whole tie ``group`` is part of)."""
    ties = [t[~np.isin(t, apart)] for t in ev.tree.ties(group)]
    if not ties or min(t.size for t in ties) < 2 or not np.isin(group, np.concatenate(ties)).all():
        return False
    return all(_moved_together(ev, t, claim) is True for t in ties)


def _along_claim(ev: Evaluator, group: np.ndarray, claim: Claim) -> bool | None:
    """Where no move of the group is differentiable (a cone point: ``||x||`` at 0), whether the claimed gradient's
    own direction ``v = g / |g|`` sees ``g . v = |g|`` between the one-sided slopes along it, as every piece's
    gradient of a max or a min does (a valid subgradient of a norm lies in its unit ball); None for a zero claim
    or where ``v`` itself is a differentiable direction."""
    gs = claim.g[group]
    norm = float(np.linalg.norm(gs))
    if not (norm > 0 and math.isfinite(norm)):
        return None
    v = gs / norm
    fwd, bwd, slack = slopes_along(ev, group, v, claim)
    if abs(fwd - bwd) <= slack:
        # differentiable along v: a nested min of maxes may have a valid Clarke subgradient whose g . v is not
        # that slope (torch's (0.5, -0.25) for min(max(x0 + x1, x0), -x1) at 0): no conclusion
        return None
    if min(fwd, bwd) - slack <= norm <= max(fwd, bwd) + slack:
        return True
    if claim.regrad is None:
        return False
    # the slopes bound g . v for a max or a norm (convex pieces); kinks of both signs meeting there (ReLUs under
    # a dout of mixed signs) give valid chain-rule subgradients beyond them, among the gradients around the point
    # (the backward pass's own: it must be right at a nearby point, as a constant claim is not)
    whole = np.zeros(claim.g.size)
    whole[group] = v
    return None if agrees_around(ev, claim, whole, np.random.default_rng(len(group))) else False


def _moved_together(ev: Evaluator, group: np.ndarray, claim: Claim) -> bool | None:
    """Whether moving ``group`` together agrees with its summed gradient; None where that is not differentiable."""
    return _move(ev, group, claim)[0]


def _move(ev: Evaluator, group: np.ndarray, claim: Claim) -> tuple[bool | None, float, float]:
    """Whether moving ``group`` together agrees with its summed gradient (None where that is not differentiable),
    the summed gradient's excess over the directional derivative, and the move's slack.
    A tie (one value) is moved by less than its distance to the next value of the input: a step relative to 1
    (elements of 1e-6, whose step is 5e-3 in float32) would carry it across every other value, a move along which a
    sort is no more differentiable than along one element."""
    summed = float(np.sum(claim.g[group]))
    fwd, bwd, slack, held = weigh_along(ev, group, np.ones(group.size), claim, most=_tie_room(ev, group), target=summed)
    excess = summed - (fwd + bwd) / 2
    if abs(fwd - bwd) > slack:
        return None, excess, held  # not a differentiable direction: no conclusion
    return bool(abs(excess) <= held), excess, held


def _tie_room(ev: Evaluator, group: np.ndarray) -> float:
    """A quarter of the distance from a tie's value to the nearest other value of the input (inf for a group of
    several values, or a tie alone in its input); at least 2**10 units of the value's own last place."""
    values = ev.tree.values()
    v = float(values[group[0]])
    if not np.all(values[group] == v):
        return np.inf
    gaps = np.abs(values[values != v] - v)
    if not gaps.size:
        return np.inf
    unit = float(np.spacing(np.asarray(abs(v), dtype=ev.tree.locate(int(group[0]))[0].dtype)))
    return max(float(gaps.min()) / 4, 2.0**10 * unit)


def _value_groups(
    ev: Evaluator, of: np.ndarray, claim: Claim, alone: Alone, bad: dict[int, tuple[float, float]]
) -> None:
    """The elements of ``of`` whose ties (every element of the input of their value, moved together, whatever their
    number: a 3x3 max pool at stride 1 on a 24x24 image of 0s and 1s, giving every tied maximum the gradient, passed
    while ties of more than 64 were left unmoved) move differentiably but not as their summed gradient says (and
    whose sum lies beyond the sums around the point, :func:`_summed_around`: a direction across hundreds of kinks,
    whose float32 rounding the slack does not hold, is one whose sums around it hold a right rule's), into ``bad``.
    Each tie moves without the elements ``alone.wrong`` (wrong along their own axis), and one that disagrees
    blames what :func:`_tie_blamed` finds in the part (a row) whose move disagrees."""
    for group in ev.tree.ties(of)[:MAX_TIE_GROUPS]:
        for part in [group, *_rows_of(ev, group)]:
            part = part[~np.isin(part, alone.wrong)]
            if part.size < 2:
                continue
            verdict, excess, slack = _move(ev, part, claim)
            if verdict is False and not _summed_around(ev, part, claim, slack):
                _tie_blamed(ev, (group, part), of, claim, alone, bad, (excess, slack))
                break


@dataclass
class Alone:
    """What the elements judged one by one said of themselves: those ``wrong`` along their own axis (a
    differentiable mismatch), those ``fine`` there with a bound that vouches (flat position: their bound), those
    at ``kinks`` (hidden ones too), and every one ``checked``."""

    wrong: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fine: dict[int, float] = field(default_factory=dict)
    kinks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    checked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _tie_blamed(
    ev: Evaluator,
    tie: tuple[np.ndarray, np.ndarray],
    of: np.ndarray,
    claim: Claim,
    alone: Alone,
    bad: dict[int, tuple[float, float]],
    found: tuple[float, float],
) -> None:
    """Blame, in ``bad``, the elements a tie's disagreeing ``part`` (of its ``group``: ``tie``) holds the evidence
    against, given its move's ``found`` excess and slack. A tie by value also holds elements differentiable along
    their own axis that merely share its value (a max pool's unique maxima of other windows): its kinks (those of
    ``of`` and hidden ones) are moved again without them. Where they agree there, the difference is those others':
    the ones not judged fine alone are blamed, where the fine ones' bounds cannot hold it (a culprit whose own bound,
    a float32 gradient's measured rounding, was too coarse to vouch); where the kinks disagree, they are blamed.
    Else (no such move, or the difference lies with elements this check did not judge) the part's kinks are."""
    group, part = tie
    excess, slack = found
    own = part[np.isin(part, of)]
    kinks = part[np.isin(part, of) | np.isin(part, alone.kinks)]
    others = part[~np.isin(part, kinks)]
    if kinks.size >= 2 and others.size:
        verdict, k_excess, k_slack = _move(ev, kinks, claim)
        if verdict is True:
            unsure = others[~np.isin(others, list(alone.fine))]
            held = slack + sum(alone.fine.get(int(i), 0.0) for i in others)
            if abs(excess) <= held:
                return  # (the others' own bounds hold the difference: no evidence against any one)
            if unsure.size and np.isin(unsure, alone.checked).all():
                _blame(bad, unsure, claim, excess, slack)
                return
        elif verdict is False and not _summed_around(ev, kinks, claim, k_slack):
            _blame_narrowed(ev, bad, own if own.size else kinks, claim, (k_excess, k_slack))
            return
    own = own if own.size else group[np.isin(group, of) & ~np.isin(group, alone.wrong)]
    _blame_narrowed(ev, bad, own, claim, found)  # (a row of hidden kinks alone: the tie's elements of ``of`` at all)


#: Most moves of parts of one blamed tie, halving it to the parts the evidence is against.
MAX_NARROWING = 8


def _blame_narrowed(
    ev: Evaluator, bad: dict[int, tuple[float, float]], members: np.ndarray, claim: Claim, found: tuple[float, float]
) -> None:
    """:func:`_blame` of the smallest parts of ``members`` (a tie whose move together disagrees by ``found``'s
    excess, with its slack) that disagree on their own: halves moved together differentiably that agree are
    cleared (a weighted total variation's tie of -1 values in two separate runs, one run wrong), halves that
    disagree are halved again; where a half's move is not differentiable (it breaks a kink within it), the part
    stays whole. At most :data:`MAX_NARROWING` moves."""
    budget = [MAX_NARROWING]

    def narrow(part: np.ndarray, said: tuple[float, float]) -> list[tuple[np.ndarray, tuple[float, float]]]:
        if part.size < 2 or budget[0] < 2:
            return [(part, said)]
        wrong = []
        for half in np.array_split(part, 2):
            budget[0] -= 1
            verdict, excess, slack = _move(ev, half, claim)
            if verdict is None:
                return [(part, said)]
            if verdict is False:
                wrong.append((half, (excess, slack)))
        if not wrong:  # (the halves agree apart: the disagreement is between them)
            return [(part, said)]
        return [piece for half, h in wrong for piece in narrow(half, h)]

    for part, (excess, slack) in narrow(members, found):
        _blame(bad, part, claim, excess, slack)


#: Most rows of one tie moved on their own (each costs 4 evaluations, more where it disagrees).
MAX_TIE_ROWS = 16


def _rows_of(ev: Evaluator, group: np.ndarray) -> list[np.ndarray]:
    """A tie's parts in each index of its array's first axis, where it spans several (at most
    :data:`MAX_TIE_ROWS`, the largest): a function of each row alone (a sort of rows) is differentiable along each
    part too, and a rule wrong at ties in rows whose errors cancel across the rows (one row's tie +0.5, another's
    -0.5) is told there. A function that mixes rows is not differentiable along a part: no conclusion."""
    leaf = ev.tree.locate(int(group[0]))[0]
    if len(leaf.shape) < 2 or int(group[-1]) >= leaf.offset + leaf.size:
        return []
    rows = (group - leaf.offset) // (leaf.size // leaf.shape[0])
    if rows[0] == rows[-1]:
        return []
    parts = [p for p in np.split(group, np.flatnonzero(np.diff(rows)) + 1) if p.size >= 2]
    return sorted(parts, key=lambda p: -p.size)[:MAX_TIE_ROWS]


def _summed_around(ev: Evaluator, group: np.ndarray, claim: Claim, held: float) -> bool:
    """Whether a group whose summed gradient disagrees with its move together is a valid chain-rule subgradient
    still (:func:`~backcheck.strategies.around.agrees_around` along the group's move). Kinks of both signs that
    cancel along the group's direction (integer data: relu(a t) - relu(a t) beside the group) make it
    differentiable there, and a ReLU's slope of 0 at its kinks is valid yet does not sum to that derivative; a
    max's gradient routed to every tied element sums beyond every sum around the point, where the tie is broken.
    ``held``: the move's bound, within which a sum sought toward the claim's vouches for it."""
    v = np.zeros(claim.g.size)
    v[group] = 1.0
    return agrees_around(ev, claim, v, np.random.default_rng(group.size), held)


def recheck_tied(
    ev: Evaluator, idx: np.ndarray, j: Judgement, claim: Claim, rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    """Elements that mismatch where their value ties with other elements of the input, flat along their own
    axis (the median of three equal values), judged at a nearby point where the tie is broken: right there, and
    their analytic value among the gradients around the point, they are kinks (and :func:`joint_kink_test`
    moves them with the elements they tie with); else they stay mismatches. With the notes, the flat
    positions of the elements taken as kinks."""
    none = idx[:0]
    # flat along its own axis: f does not move with the element alone (a nonzero slope is judged as it is)
    wrong = np.flatnonzero((j.status == MISMATCH) & (np.abs(j.numeric) <= j.bound))
    shared = ev.tree.ties(idx[wrong])
    tied = wrong[np.isin(idx[wrong], np.concatenate(shared))] if shared else wrong[:0]
    if not tied.size:
        return [], none
    j.hull[tied, 0] = j.hull[tied, 1] = j.numeric[tied]  # (their one-sided slopes agree)
    if claim.regrad is None:  # a gradient given as an array: no backward to call near the point, and the joint
        said, kinks = [GIVEN_AS_ARRAY], tied  # test of their ties (below) is their whole judge
    else:
        found = nearby_verdicts(ev, idx, tied, j, claim, rng)
        if found is None:
            return [], none
        fine, poles, unsure = found
        j.status[tied[unsure]], j.bound[tied[unsure]] = NOISY, np.inf
        said = crowded_note(int(unsure.sum())) + _wrong_nearby(ev, idx, tied[~fine & ~unsure])
        kinks = tied[fine & ~poles]
    if not kinks.size:
        return said, none
    # the tie moved as a whole must tell its summed gradient to VOUCH of its size, or the excuse vouches nothing
    told: dict[int, bool] = {}
    vouch = np.array([_tie_told(ev, int(idx[k]), claim, told) for k in kinks], dtype=bool)
    j.status[kinks[~vouch]], j.bound[kinks[~vouch]] = NOISY, np.inf
    kinks = kinks[vouch]
    if not kinks.size:
        return said, none
    j.status[kinks] = KINK
    nearby = (
        ""
        if claim.regrad is None
        else "; their analytic values lie among the gradients around it, and the backward "
        "pass is right at a nearby point where the tie is broken"
    )
    return said + [
        f"{kinks.size} element(s) tie in value with other elements of the input (a median or a sort of equal "
        f"values): f does not move with one of them alone, yet is not differentiable at the point{nearby}: taken "
        "as kinks, and moved together with the elements of their value."
    ], idx[kinks]


def _wrong_nearby(ev: Evaluator, idx: np.ndarray, wrong: np.ndarray) -> list[str]:
    """Said of tied elements flat along their own axis that stay mismatches because the backward pass was wrong
    at the nearby points where their ties are broken."""
    if not wrong.size:
        return []
    names = ", ".join(ev.tree.element_name(int(i)) for i in idx[wrong[:5]]) + (" and more" if wrong.size > 5 else "")
    return [
        f"{names} {'ties' if wrong.size == 1 else 'tie'} in value with other elements, and f does not move with "
        "one alone: such a value may be a valid "
        "split of the tie's gradient, but the backward pass was wrong at points nearby where the tie is broken (a "
        "gradient function that returns one precomputed array whatever its argument is so), so they stay "
        "mismatches. If the gradient function ignores its argument, pass the array it returns instead: its ties "
        "are then judged moved together (a split among a tie's elements that sums right passes, and is said)."
    ]


#: Said where elements flat along their own axis, tied in value, were judged by their ties alone.
GIVEN_AS_ARRAY = (
    "the gradient was given as an array, so elements that tie in value with others and that f does not move with "
    "alone were judged by their ties moved together only, not at nearby points where the ties are broken: a "
    "split of the tie's gradient among its elements that sums right passes (pass the gradient as a function of the "
    "parameters to check its split too)."
)


def _tie_told(ev: Evaluator, i: int, claim: Claim, told: dict[int, bool]) -> bool:
    """Whether every element of element ``i``'s value, moved together, moves differentiably with a bound that
    tells the summed gradient to :data:`~backcheck.verdict.VOUCH` of its size (a bfloat16 median's tie did not:
    its rounding hid a rule twice the gradient). ``told``: answers by the tie's first element."""
    ties = ev.tree.ties(np.array([i]))
    if not ties:
        return False
    group = ties[0]
    if int(group[0]) not in told:
        fwd, bwd, slack = slopes_along(ev, group, np.ones(group.size), claim)
        size = max(abs(fwd + bwd) / 2, abs(float(np.sum(claim.g[group]))))
        told[int(group[0])] = abs(fwd - bwd) <= slack and slack <= VOUCH * size
    return told[int(group[0])]
