"""A detection floor on demand: elements whose bound is wider than the floor asked for are refined sharply.

The default check screens every element with one central difference and refines only the doubtful ones, so
its bounds are those of a balanced step (about 1e-8 of the gradient in float64). With ``floor=`` the elements
still wider than ``floor`` of their size are differenced again on a Richardson table
(:func:`backcheck.numeric.grad.refine_elements`), which reaches numdifftools' accuracy on smooth functions, and
judged against the sharp estimate's own error. Where even that cannot reach the floor (noise, a kink), the
element is inconclusive: the floor asked for cannot be vouched for.
"""

from __future__ import annotations

import numpy as np

from backcheck.bits import machine_eps
from backcheck.errors import NonFiniteError
from backcheck.evaluate import Evaluator
from backcheck.judgement import QUIETER
from backcheck.numeric.grad import MEASURED_NOISE, NOISE_FACTOR, refine_elements
from backcheck.numeric.noise import POINTS, element_noise
from backcheck.numeric.richardson import Refined
from backcheck.refinement import COARSE_NOISE, KINK_GAP, NEAR_FLOOR
from backcheck.rounding import below_rounding_of_inputs
from backcheck.strategies.beside import nearby_bounds, nearby_direction
from backcheck.strategies.elementwise import (
    SPREAD_FOUND,
    SPREAD_THIN,
    Outcome,
    cancelling_kinks,
    plausible_rounding,
)
from backcheck.strategies.kink_evidence import (
    DEEP,
    GAP_NOISE,
    JUMP_KEPT,
    finer_departs,
    jump_kept,
    kept_gaps,
    kept_steps,
    off_point,
    tables_split,
)
from backcheck.strategies.own_rounding import OWN_ROUNDING_NOTE, unless_own_rounding
from backcheck.strategies.projected import suspects
from backcheck.verdict import (
    KINK,
    KINK_PERSISTENCE,
    MISMATCH,
    NOISY,
    OK,
    SAFETY,
    Claim,
    Judgement,
    bound,
    resolution,
    wide_resolution,
)

#: A function that computes in float32 (or coarser) is judged this finely by default: its single central
#: difference resolves only a few percent of a gradient, so elements are refined on a Richardson table until
#: an error of this fraction of their tensor's typical gradient would fail.
LOW_PRECISION_FLOOR = 2.5e-4
#: The most elements of one check refined by default (a random sample of them when more are wide).
LOW_PRECISION_SAMPLE = 512
#: Elements called wrong near their floor are refined again (with their own noise) in groups of this many, until
#: this many stay wrong: the backward pass is wrong, and the rest keep their verdict (a wrong rule off by 1e-4
#: everywhere would otherwise pay 38 evaluations per element).
CONFIRMED = 8


#: A float64 ``phi`` whose measured noise is this many times its float64 rounding computes in a coarser dtype
#: inside (a float32 kernel whose result the loss casts to float64), and is refined as a float32 one is (the level
#: at which judgement judges agreements below kinks with the noise along the element too).
COARSE_INSIDE = COARSE_NOISE
#: ... up to this many times float32's rounding of the outputs' size.
FLOAT32_ROUNDING = 100.0
#: A quantum of ``phi`` this many times its dtype's rounding of the outputs' size: ``phi`` is quantized inside.
QUANTIZED = 16.0


def coarse_inside(ev: Evaluator) -> bool:
    """Whether ``phi`` computes in float32 or coarser: it returns such a dtype, or its measured noise (measured
    only where some difference could not be cleared on rounding) is far above float64's rounding; and no
    quantum far above its rounding (a quantized ``phi``, a value rounded to float16 inside, is piecewise
    constant: no table makes a derivative of it)."""
    size = max(ev.scale, abs(ev.phi0))
    if ev.noise_quantum > QUANTIZED * ev.out_eps * size:
        return False
    if ev.out_eps > 1e-10:
        return True
    noise = ev.noise_known
    loud = noise > COARSE_INSIDE * machine_eps(np.float64) * size
    # ... and no louder than float32's rounding of a long computation: louder is no rounding (an oscillation
    # finer than the step, whose average over larger steps is no derivative of f)
    rounding = noise <= FLOAT32_ROUNDING * machine_eps(np.float32) * size
    return bool(loud and rounding and not ev.noise_quantum > 0)


def sharpen_low_precision(ev: Evaluator, claim: Claim, outcome: Outcome, rng: np.random.Generator) -> list[str]:
    """Refine the ``ok`` elements of a check whose function computes in float32 or coarser, in place.

    Elements that reach :data:`LOW_PRECISION_FLOOR` of their tensor's typical gradient are held to the sharp
    bound (an error of 1e-3 fails); the others keep the verdict and the bound of their first difference. Elements
    whose first difference passed only with their gradient's measured rounding (own_rounding.py) added to its
    bound are refined too, and a table's mismatch is judged with that rounding added again: the difference's
    bound, not the rounding, was often the most of that sum, and an error 10x the floor a right rule's pass
    stated (the table's bound) passed under it.
    """
    pos = np.flatnonzero(outcome.status == OK)
    whole = pos.size
    if pos.size > LOW_PRECISION_SAMPLE:
        pos = np.sort(rng.choice(pos, size=LOW_PRECISION_SAMPLE, replace=False))
    notes = _refine(ev, claim, outcome, pos, LOW_PRECISION_FLOOR, demand=False)
    if not notes:
        return []
    sampled = f" (a random sample of {pos.size} of {whole})" if whole > pos.size else ""
    where = ev.out_name if ev.out_eps > 1e-10 else "a dtype coarser than the float64 it returns"
    return [
        f"{ev.fname} computes in {where}, where one central difference resolves only a few percent of a "
        f"gradient: elements were refined on a Richardson table{sampled} so that errors of "
        f"{LOW_PRECISION_FLOOR:.2g} of the gradient or more fail; " + notes[0]
    ] + notes[1:]


def restate_spread(ev: Evaluator, outcome: Outcome, wrong: np.ndarray) -> None:
    """The arrays of the ``wrong`` elements (flat positions) that failed as an error spread thinly, no element
    checked one by one wrong (random directions that disagree, a sample that agrees), say what refining found
    instead, in place: a report said both '1 wrong of 256 checked' and 'no single element is wrong'."""
    for name in {ev.tree.locate(int(i))[0].name for i in wrong}:
        reason = outcome.failed_leaves.get(name, "")
        if reason.endswith(SPREAD_THIN):
            outcome.failed_leaves[name] = reason[: -len(SPREAD_THIN)] + SPREAD_FOUND


def sharpen(ev: Evaluator, claim: Claim, outcome: Outcome, floor: float) -> list[str]:
    """Refine the ``ok`` elements of ``outcome`` whose bound is wider than ``floor`` of their size, in place."""
    notes = _refine(ev, claim, outcome, np.flatnonzero(outcome.status == OK), floor, demand=True)
    if notes:
        return notes
    if not outcome.checked.size:
        return [
            f"the floor asked for ({floor:.2g} of each element's size) holds for elements checked one by one: none "
            "was here (random directions state their own detection size); strategy='full' checks every element."
        ]
    return [f"every checked element's bound is within the floor asked for ({floor:.2g} of its size)."]


def _formula_through_wide(ev: Evaluator, claim: Claim, idx: np.ndarray, sharp: Refined) -> np.ndarray:
    """Which elements a table calls wrong at their own dtype are right through the float64 run of the same
    backward pass, and off from it by rounding alone (see ``elementwise.split_formula_from_rounding``): a float32
    ``expit(13) - 1`` is off by 2e-3 of itself, the formula not at all."""
    assert claim.g_wide is not None
    a64 = claim.g_wide[idx]
    res64 = wide_resolution(a64, sharp.value, claim.grad_eps[idx], claim.rms[idx])
    met = np.isfinite(sharp.value) & (np.abs(a64 - sharp.value) <= bound(sharp.error, 0.0, res64))
    return met & plausible_rounding(claim, idx, a64, ev)


#: Most elements a table calls wrong that are tried for a kink first (one confirmed wrong ends the tries).
KINK_RECHECKS = 16


def _at_kinks(
    ev: Evaluator, claim: Claim, idx: np.ndarray, a: np.ndarray, wrong: np.ndarray, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of the ``wrong`` elements sit at a kink whose one-sided slopes hold the claim, and which cannot be
    told from one. A Richardson table's central differences converge to the slopes' mean (a max-pool tie: half
    the routed gradient); the screen let such an element through at a bound widened by the noise other kinks stir
    up, and the kink shows only against the noise along the element itself (:func:`element_noise`, 24
    evaluations). An element tied in value whose claim lies among its slopes, their gap hidden by their rounding,
    cannot be told from one (a float32 sort's tie whose end weights differ by 1%: the table sees their mean, the
    slopes no gap); nor can those left untried after :data:`KINK_RECHECKS` that each sat at a kink or so.

    The slopes are taken at the element's step or the step of its table's estimate (``table``), the smaller: a
    step far beyond the scale on which f bends (a float32 softmax of logits near 1e4, whose step follows 1e4)
    saturates f, and slopes that saturate keep a gap at every step, which is no kink's. Where they show no kink
    that holds the claim, at :data:`KINK_SCALES` of that step too: other kinks a little off the point (a float32
    ReLU network on an image of values in steps of 0.01) lie within a float32 step. Third, the elements tried
    whose slopes at the step show a kink with the claim outside them: wrong at their own kink."""
    kinks, unsure = np.zeros(wrong.size, dtype=bool), np.zeros(wrong.size, dtype=bool)
    outside = np.zeros(wrong.size, dtype=bool)
    tried = np.flatnonzero(wrong)
    tied = np.isin(idx[tried], np.concatenate(ev.tree.ties(idx[tried]) or [tried[:0]]))
    for n, k in enumerate(tried):
        if n == KINK_RECHECKS:  # every one tried sat at a kink: the others are not wrong for sure (untried)
            unsure[tried[n:]] = True
            break
        i, h = int(idx[k]), float(claim.steps[idx[k]])
        if np.isfinite(table[k]) and 0 < table[k] < h:
            h = float(table[k])
        noise = element_noise(ev, i, h, float(a[k]))  # (of phi's values, at every scale below)
        found = [_kink_along(ev, i, h * scale, float(a[k]), noise) for scale in KINK_SCALES]
        kinks[k] = any(all(f) for f in found)
        outside[k] = not kinks[k] and found[0][0] and not found[0][1]
        # a tied element whose claim lies among its slopes, whose gap the rounding hides: a kink the table's
        # precision sees and the slopes cannot (a float32 sort's tie whose end weights differ by 1%)
        unsure[k] = not kinks[k] and bool(tied[n]) and found[0][1] and not found[0][0]
        if not (kinks[k] or unsure[k]):
            break  # a wrong element off every kink: the rule is wrong, the others keep the table's verdict
    return kinks, unsure, outside


#: Fractions of an element's step at which :func:`_at_kinks` looks for a kink at the point, in turn (a sixteenth:
#: below kinks off the point by a float32 step, and above the noise of phi's float32 values).
KINK_SCALES = (1.0, 1.0 / 16)


def _kink_along(ev: Evaluator, i: int, h: float, a: float, noise: float) -> tuple[bool, bool]:
    """Whether element ``i``'s one-sided slopes at ``h`` and ``h / 2`` keep a gap beyond ``noise`` (of phi's
    values along it) and phi's rounding, and whether the claim ``a`` lies between them."""
    phis, disp = ev.element(i, (h, -h, h / 2, -h / 2), shrink=True)
    fwd, bwd = (phis[0::2] - ev.phi0) / disp[0::2], (ev.phi0 - phis[1::2]) / -disp[1::2]
    # the noise along the element, and the rounding of phi itself (two values each side, of its size)
    half = min(disp[2], -disp[3])
    slack = NOISE_FACTOR * noise / half
    rounding = 4 * ev.out_eps * max(abs(ev.phi0), ev.scale) / half
    gaps = np.abs(fwd - bwd)  # a kink's gap stays as the step halves; a smooth f's halves with it
    # the rounding of phi widens the slopes' range by a sliver of the gap at most: a large float32 loss
    # rounds by up to half a gap, and a claim outside the slopes by that much is no subgradient
    wider = slack + min(rounding, KINK_GAP * gaps[1])
    gap = bool(gaps[1] > max(2 * (slack + rounding), KINK_PERSISTENCE * gaps[0]))
    return gap, bool(min(fwd[1], bwd[1]) - wider <= a <= max(fwd[1], bwd[1]) + wider)


def _unless_noise(
    ev: Evaluator,
    idx: np.ndarray,
    a: np.ndarray,
    wrong: np.ndarray,
    sharp: Refined,
    target: np.ndarray,
    res: np.ndarray,
) -> None:
    """Refine again, in place of their first estimates in ``sharp``, the elements called ``wrong`` within
    :data:`~backcheck.verdict.NEAR_FLOOR` of their estimate's error, with the noise measured along each element.

    The table's rounding allowance is the noise of ``phi`` measured over the whole point, scaled to its outputs;
    rounding of terms that cancelled inside the function (``x - mean(x)`` of rows near 1) is far larger where it
    arises, and a correct backward pass computed from the same rounded values carries it too (see
    :func:`backcheck.refinement._unless_noise`). A wrong rule (an element 1e-3 off) lies orders beyond. Elements go
    in groups of :data:`CONFIRMED`, those nearest their floor first, until that many stay wrong.
    """
    err = np.abs(a - sharp.value)
    limit = bound(sharp.error, 0.0, res)
    near = np.flatnonzero(wrong & (res <= sharp.error) & (err <= NEAR_FLOOR * limit))
    near = near[np.argsort(err[near] / limit[near], kind="stable")]  # the likeliest rounding first
    target = np.broadcast_to(target, idx.shape)
    confirmed = 0
    for start in range(0, near.size, CONFIRMED):
        if confirmed >= CONFIRMED:
            break  # this many elements wrong beyond their own noise: the others keep their verdict
        part = near[start : start + CONFIRMED]
        sigma = np.array([element_noise(ev, int(idx[k]), float(sharp.step[k]), float(a[k])) for k in part])
        again = refine_elements(ev, idx[part], target=target[part], noise=MEASURED_NOISE * np.maximum(ev.noise, sigma))
        sharp.value[part], sharp.error[part], sharp.step[part] = again.value, again.error, again.step
        sharp.evaluations[part] += again.evaluations + 2 * POINTS
        confirmed += int(np.sum(np.abs(a[part] - again.value) > bound(again.error, 0.0, res[part])))


#: A table's estimate extrapolates from rows at least this many times its last step (see _unless_kinks_inside).
REACHED = 2.0
#: A table calls an element wrong by a hair where its mismatch is at most this many of its bounds.
MARGINAL = 1.5
#: An element a table calls wrong is refined again from first steps this many times below the step the table's
#: estimate came from (see :func:`_unless_kinks_inside`).
BELOW_THE_TABLE = (4.0, 16.0, 64.0, 256.0)


def _unless_kinks_inside(
    ev: Evaluator,
    idx: np.ndarray,
    a: np.ndarray,
    wrong: np.ndarray,
    sharp: Refined,
    target: np.ndarray,
    res: np.ndarray,
    hair: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine again, from first steps :data:`BELOW_THE_TABLE` times below the one its estimate came from, each
    element a table calls ``wrong``; where the new table contradicts the first and agrees with the claim, the
    element is not wrong, and takes the new estimate (in place in ``sharp`` and ``wrong``). Returns the elements
    neither table can judge (see below): those the tables below disagree with, and those they agree with.

    A kink a little off the point lies inside the table's steps: a float32 ReLU layer whose pre-activation is
    4e-4 from 0 is differentiable at the point, but every central difference wider than that averages the
    slopes beyond the kink, and the column of such differences still shrinks as a smooth one does, to a value
    10% off with an error estimate of 3e-3 of it. A table started below the kink finds the derivative. A wrong
    rule agrees with neither table, or both tables agree. A table too noisy to tell contradicts nothing; where it
    agrees with the claim, the first table's mismatch is not confirmed if it is a ``hair`` (within
    :data:`MARGINAL` of the first table's bound: a Huber loss's residual near its delta, where f'' jumps), if
    that table's steps reached past 0 (ELU's and SELU's kinks at inputs of 0.01), or where the differences at
    steps about the table's show a kink inside them (:func:`_rough`). A hair keeps the element's first bound: a
    pass states MARGINAL of a table's bound as its floor (``run._reach``). Any other is returned, to be judged
    inconclusive: had the claim been right, the first table would have agreed and the pass stated its bound, so
    an error past it, this mismatch, passed on the screen's bound (a float32 loss's element off by 1.3 to 30 of
    the floor, the tables below too noisy, its steps past 0). Steps past 0 and a hair excuse nothing once a table
    below, its steps short of 0, has called the element wrong beyond a hair of its own bound. Where the
    differences show a kink inside a quarter of the step, the table below crossed it too, and its disagreement
    with the claim confirms nothing: such an element (a float32 ReLU input 1e-3 from 0, where f's rounding drowns
    every difference below the kink) is inconclusive too; so is one whose gaps show kinks off the point alone, or
    whose two tables split around the claim (:func:`off_point`, :func:`tables_split`). Elements go one by one until
    :data:`CONFIRMED` stay wrong.
    """
    target = np.broadcast_to(target, idx.shape)
    blurred, unsettled = np.zeros(idx.shape, dtype=bool), np.zeros(idx.shape, dtype=bool)
    x = ev.tree.values()
    confirmed = 0
    for k in np.flatnonzero(wrong):
        if confirmed >= CONFIRMED:
            break  # this many elements wrong at every scale tried: the others keep their verdict
        first, first_error = float(sharp.value[k]), float(sharp.error[k])
        # the table's steps (its estimate extrapolates from rows at twice its last step) reached past 0
        crossed = 0.0 < abs(float(x[idx[k]])) <= REACHED * sharp.step[k]
        seconded = False  # a table below, off 0, has called the element wrong as the first did, beyond a hair
        for below in BELOW_THE_TABLE:
            start = sharp.step[k : k + 1] / below
            quiet = _below_noise(ev, int(idx[k]), float(start[0]), float(a[k]))
            again = refine_elements(ev, idx[k : k + 1], target=target[k : k + 1], first_step=start, noise=quiet)
            value, error = float(again.value[0]), float(again.error[0])
            sharp.evaluations[k] += again.evaluations[0]
            if not np.isfinite(value):
                break
            if bound(error + first_error, 0.0, 2 * res[k]) >= abs(a[k] - first):
                # too noisy to tell the claim from the first estimate (finer starts are noisier still): a table
                # whose steps crossed 0, or that called the element wrong by a hair, is not confirmed by one below
                # that agrees with the claim (a Huber loss's residual near its delta, where f'' jumps); nor by one
                # whose own steps cross the kink the first one's did (a ReLU input 1e-3 from 0: both tables off)
                marginal = abs(a[k] - first) <= hair[k]
                agrees = abs(a[k] - value) <= bound(error, 0.0, res[k])
                where = (int(idx[k]), float(sharp.step[k]), float(a[k]), first, bound(first_error, 0.0, res[k]))
                excused = (crossed or marginal) and not seconded
                rough, deep, off = (True, False, False) if agrees and excused else _rough(ev, *where)
                split = rough and tables_split(a[k], (first, first_error), (value, error), res[k])
                if (agrees and rough) or deep or split or off:
                    # unconfirmed, and not contradicted. A mismatch of a hair keeps the first bound (a pass states
                    # MARGINAL of a table's bound as its floor: see run._reach); any other is inconclusive: where
                    # the claim had been right the table would have agreed, the pass would have stated its bound,
                    # and an error past it passed (a float32 loss's element off by 1.3 to 30 of that floor)
                    wrong[k] = False
                    sharp.value[k], sharp.error[k] = np.nan, np.inf
                    blurred[k] = not agrees  # (both tables crossed the kink)
                    unsettled[k] = agrees and not (marginal and not seconded)
                break
            if abs(value - first) > bound(error + first_error, 0.0, 2 * res[k]) and abs(a[k] - value) <= bound(
                error, 0.0, res[k]
            ):
                wrong[k] = False
                sharp.value[k], sharp.error[k], sharp.step[k] = value, error, again.step[0]
                break
            # as precise as needed, it agrees with the first, its steps short of 0, and is off the claim beyond a
            # hair of its own bound: neither a jump of f'' at 0 nor a hair-wide bias explains the first's mismatch
            seconded |= bool(
                abs(a[k] - value) > MARGINAL * bound(error, 0.0, res[k])
                and not 0.0 < abs(float(x[idx[k]])) <= REACHED * again.step[0]
            )
        if wrong[k]:
            confirmed += 1
    return blurred, unsettled


def _below_noise(ev: Evaluator, i: int, step: float, a: float) -> float | None:
    """The noise a table started at ``step``, below the first, is given: the noise of ``phi`` measured along element
    ``i`` about that step (24 evaluations), where it is far quieter than the check's (None: the check's). Noise
    measured over wider moves counts the kinks they cross (a sort of values 1e-6 apart, stepped by 6e-6, read as a
    function computing in float32), and a table below those kinks, judged with it, contradicts nothing; where the
    function does compute coarsely, it is as loud below."""
    sigma = MEASURED_NOISE * element_noise(ev, i, step, a)
    return sigma if sigma * QUIETER < MEASURED_NOISE * ev.noise else None


def _rough(ev: Evaluator, i: int, step: float, a: float, first: float, first_bound: float) -> tuple[bool, bool, bool]:
    """Whether element ``i``'s differences, at steps from four times the table's ``step`` down to a quarter of
    it, show a kink inside the table's steps where the claim ``a`` is consistent with f: the one-sided slopes
    differ by a gap that did not halve with the step, beyond their rounding, and ``a`` lies among those slopes (a
    float32 network's ReLU input a few 1e-3 from 0, crossed by the table's steps, whose column still converged
    to a value some percent off), not a claim outside a kink's slopes at the point (ReLU at 0 claimed 2.8 with
    slopes 0 and 2); or a central difference at a half or a quarter of the step departs from the table's
    estimate ``first`` (bound ``first_bound``), toward ``a``, beyond its rounding and the truncation the wider
    differences imply (kinks between a quarter of the step and twice it, which the table's rows crossed and the
    finer ones do not). And whether the gap was kept down to the quarter of the step, with ``a`` among the
    slopes: the kink lies inside a quarter of the step, and a table started there crosses it too. And whether
    the gaps show kinks off the point alone (:func:`off_point`). Ten evaluations, and 24 for the noise."""
    scales = [4 * step, 2 * step, step, step / 2, step / 4]
    phis, disp = ev.element(i, [t for s in scales for t in (s, -s)])
    if not (np.all(np.isfinite(phis)) and np.all(disp != 0.0)):
        return False, False, False
    # one value's deviation where these steps take their values (24 evaluations), at least the rounding of the
    # values themselves (half a unit in their last place): the model of a whole evaluation's worst rounding (8 eps
    # of the largest |phi| seen anywhere, by SAFETY again) hid a float32 loss's gaps of 3e-4 at steps below 0.06,
    # where a ReLU input 6e-4 from 0 kept them
    sigma = max(element_noise(ev, i, step, a), ev.out_eps * max(abs(ev.phi0), float(np.max(np.abs(phis)))) / 2)
    slopes = (phis - ev.phi0) / disp
    central = (phis[0::2] - phis[1::2]) / (disp[0::2] - disp[1::2])
    # the rounding of a gap between one-sided slopes, and of a central difference, at each of the scales
    gap_bounds = [SAFETY * GAP_NOISE * sigma / s for s in scales]
    rounding = [SAFETY * sigma / (np.sqrt(2) * s) for s in scales]
    kept = kept_gaps(slopes, gap_bounds, a)
    shares = jump_kept(slopes, gap_bounds, a)
    jumps = [share > JUMP_KEPT for share in shares]
    rough = any(kept) or any(jumps) or kept_steps(central, rounding)
    # kept down to the quarter of the step: the gap itself, or a jump kept somewhere and still left, beyond what a
    # smooth f's eightfold shrinking remainder leaves, once the curvature is taken out at the finest halving (a
    # planted weight of 6 whose ReLU turns 2e-3 away: gaps of 7e-4, 3e-4, 1e-4 halving as curvature does, each
    # leaving a jump of -6.5e-5; every table started below crossed the kink and seconded the first)
    deep = kept[-1] or (any(jumps) and shares[-1] > DEEP)
    rough = rough or finer_departs(central, scales, rounding, a, (first, first_bound))
    return rough, deep, off_point(slopes, gap_bounds)


def _refine(ev: Evaluator, claim: Claim, outcome: Outcome, pos: np.ndarray, floor: float, demand: bool) -> list[str]:
    """Refine the elements at positions ``pos`` of ``outcome`` whose bound is wider than ``floor`` of their size.

    ``demand``: an element that cannot reach the floor is inconclusive (a floor the user asked for); else it
    keeps its verdict and the tighter of its two bounds.
    """
    idx = outcome.checked[pos]
    a, n = claim.g[idx], outcome.numeric[pos]
    typical = claim.typical[idx] if claim.typical is not None else np.zeros(idx.size)
    size = np.maximum(np.abs(a), np.abs(n))
    # asked for: each element's own size (its tensor's where it is zero); by default, never below its tensor's
    size = np.where(size > 0, size, typical) if demand else np.maximum(size, typical)
    wide = outcome.bound[pos] > floor * size
    if not wide.any():
        return []
    pos, idx, a, size = pos[wide], idx[wide], a[wide], size[wide]
    sharp = refine_elements(ev, idx, target=floor * size / 4)
    res = resolution(a, sharp.value, 1.0, claim.rms[idx]) * claim.grad_eps[idx]
    limit = bound(sharp.error, 0.0, res)
    wrong = np.isfinite(sharp.value) & (np.abs(a - sharp.value) > limit)
    blurred, unsettled = np.zeros(idx.size, dtype=bool), np.zeros(idx.size, dtype=bool)
    if not claim.tol.custom:
        # a hair of the first table's bound, the floor a pass states (run._reach): not of one refined again below
        hair = MARGINAL * limit
        _unless_noise(ev, idx, a, wrong, sharp, floor * size / 4, res)
        limit = bound(sharp.error, 0.0, res)
        wrong = np.isfinite(sharp.value) & (np.abs(a - sharp.value) > limit)
        blurred, unsettled = _unless_kinks_inside(ev, idx, a, wrong, sharp, floor * size / 4, res, hair)
        limit = bound(sharp.error, 0.0, res)
        # a table of exactly 0 (f stood still at every step it kept: a float32 loss of size 2 does not move for
        # a change below 2.4e-7) where the screen's own step moved f: its steps fell below f's resolution
        stood = (sharp.value == 0.0) & (outcome.numeric[pos] != 0.0)
        wrong &= ~stood
        sharp.value[stood], sharp.error[stood] = np.nan, np.inf  # (the element keeps its first bound)
        limit = bound(sharp.error, 0.0, res)
    # a rule that claims 0 where the check's own step could not tell f's change from 0 (f stood still, or its
    # jumps fill the bound), and the table's wider steps find a slope: a piecewise constant f (floor(1000 x), a
    # value rounded inside) whose table averages its jumps, not a derivative
    if claim.g_wide is not None and wrong.any():
        wrong &= ~_formula_through_wide(ev, claim, idx, sharp)
    still = wrong & (a == 0.0) & (np.abs(outcome.numeric[pos]) <= outcome.bound[pos])
    # ... and a claim of a change where f stood still at the screen's step and every step of the table, which the
    # screen's bound could not tell from 0 (a float32 log(1 - p) at p near 1 moves in steps of 3% of itself)
    still |= wrong & (sharp.value == 0.0) & (outcome.numeric[pos] == 0.0) & (outcome.bound[pos] >= np.abs(a))
    still |= wrong & below_rounding_of_inputs(ev, idx, a, claim.steps[idx], outcome.checked[outcome.numeric != 0])
    wrong &= ~still
    kinks, unsure, outside = _at_kinks(ev, claim, idx, a, wrong, sharp.step)  # a table averages a kink's slopes
    wrong &= ~kinks & ~unsure
    if wrong.any() and claim.regrad is not None and _kinks_about(ev, outcome):  # (kinks meeting along the axis)
        cancelled = _cancelling(ev, claim, idx, (wrong, outside, kinks, unsure), sharp, limit)
        wrong &= ~kinks & ~unsure
    else:
        cancelled = []
    own = unless_own_rounding(ev, claim, idx, sharp.value, limit, wrong) if wrong.any() else 0
    reached = np.isfinite(limit) & (limit <= floor * size)
    better = np.isfinite(limit) & (limit < outcome.bound[pos])
    take = wrong | (reached if demand else better)
    outcome.numeric[pos] = np.where(take, sharp.value, outcome.numeric[pos])
    outcome.bound[pos] = np.where(take, limit, outcome.bound[pos])
    if outcome.sharp is None:
        outcome.sharp = np.zeros(outcome.checked.size, dtype=bool)
    outcome.sharp[pos[take]] = True
    outcome.status[pos[wrong]] = MISMATCH
    restate_spread(ev, outcome, outcome.checked[pos[wrong]])
    outcome.status[pos[still]] = NOISY
    outcome.bound[pos[still]] = np.inf
    outcome.status[pos[kinks]] = KINK
    outcome.status[pos[unsure]], outcome.bound[pos[unsure]] = NOISY, np.inf
    outcome.status[pos[blurred | unsettled]] = NOISY  # (with their first bound)
    if demand:
        outcome.status[pos[~wrong & ~reached]] = NOISY
    if outcome.vouch_bound is not None:
        outcome.vouch_bound[pos] = outcome.bound[pos]
    missed = int((~wrong & ~reached & ~still & ~kinks & ~unsure & ~blurred & ~unsettled).sum())
    short = f"{missed} could not reach it" + (" (inconclusive)" if demand else " (they keep their first bound)")
    head = f"floor {floor:.2g}: " if demand else ""
    flat = (
        f" {int(still.sum())} where the check's step could not tell f's change from 0 and f stood still at the "
        "table's steps, or moved only at wider ones (f piecewise constant there, or below its resolution: no "
        "derivative to compare with; inconclusive)."
        if still.any()
        else ""
    )
    if unsure.any():
        flat += (
            f" {int(unsure.sum())} tied in value where the table differs from the claim by less than the rounding "
            "of the one-sided slopes, which hides any kink there (a tie's slopes differing by less: the table takes "
            "their mean), or left untried after that many at kinks (inconclusive)."
        )
    if blurred.any():
        flat += (
            f" {int(blurred.sum())} where a kink lies a little off the point, crossed by the table's steps and by one "
            "started at a quarter of them, and f's rounding drowns every difference below it (a ReLU input "
            "1e-3 from 0 in float32): neither table tells the rule's value (inconclusive)."
        )
    if unsettled.any():
        flat += (
            f" {int(unsettled.sum())} the table called wrong, where tables started below it agree with the claim but "
            "are too noisy to contradict the first (a kink, or a jump of f'', within the first table's steps, or an "
            "error below the finer tables' resolution): neither settles the rule's value (inconclusive)."
        )
    said = f"{head}{pos.size} element(s) refined ({int(sharp.evaluations.sum())} evaluations); {int(wrong.sum())} wrong"
    rounding = [OWN_ROUNDING_NOTE.format(own)] if own else []
    return [said + (f", {short}." if missed else ".") + flat, *rounding, *cancelled]


def _kinks_about(ev: Evaluator, outcome: Outcome) -> bool:
    """Whether the point has kinks a table's element may meet others at: some element checked sits at one, or
    some array holds zeros or repeated values (a ReLU's input at 0 under integer data, a max's ties)."""
    return KINK in outcome.status or any(suspects(leaf).size for leaf in ev.tree.leaves)


def _cancelling(
    ev: Evaluator, claim: Claim, idx: np.ndarray, marks: tuple[np.ndarray, ...], sharp: Refined, limit: np.ndarray
) -> list[str]:
    """Of the elements a table calls wrong (``marks``: that mask over ``idx``, those of them whose slopes showed a
    kink with the claim outside them, and the kink and unsure masks, updated in place), those where kinks of both
    signs meet and cancel along their own axis, their claims valid subgradients
    (:func:`~backcheck.strategies.elementwise.cancelling_kinks`). Along such an axis f is differentiable, or its
    slopes both lie on one side of the claim, and a table converges to a value that a ReLU's slope of 0 at each
    kink does not give: a float32 ReLU network on integer data, a fifth of its hidden units at exactly 0.

    Being right at the nearby points excuses only where their bounds there rule out the table's mismatch, else the
    element is inconclusive; one whose own slopes showed the claim outside them must be right there on tables
    that rule it out (:func:`_right_beside`), else it stays wrong (a ReLU's 0 with slopes 0 and 2 claimed 2.8, in
    a float32 loss of 5000, whose first differences there bound it within 3.9 only)."""
    wrong, outside, kinks, unsure = marks
    k = np.flatnonzero(wrong)
    status = np.full(k.size, MISMATCH, dtype=object)
    j = Judgement(sharp.value[k].copy(), limit[k].copy(), status, np.full(k.size, np.nan), np.full((k.size, 2), np.nan))
    said, _ = cancelling_kinks(ev, idx[k], j, claim, np.random.default_rng(k.size))
    taken = np.flatnonzero((j.status == KINK) & ~outside[k])
    if taken.size:
        near = nearby_bounds(ev, idx[k[taken]], claim, np.random.default_rng(taken.size))
        j.status[taken[near > np.abs(claim.g[idx[k[taken]]] - j.numeric[taken])]] = NOISY
    taken = np.flatnonzero((j.status == KINK) & outside[k])
    if taken.size:
        right = _right_beside(ev, claim, idx[k[taken]], np.abs(claim.g[idx[k[taken]]] - j.numeric[taken]))
        j.status[taken[~right]] = MISMATCH
    kinks[k] |= j.status == KINK
    unsure[k] |= j.status == NOISY
    return said


def _right_beside(ev: Evaluator, claim: Claim, sub: np.ndarray, mismatch: np.ndarray) -> np.ndarray:
    """Per element of ``sub``, whether the backward pass is right at the points
    :data:`~backcheck.strategies.beside.NEARBY` steps away in a random direction and in the opposite one, each
    judged on a Richardson table started at a few of its steps (inside the distance to the point's own kinks)
    whose bound rules out ``mismatch`` (the table's at the point): right within a bound that does not is no
    evidence, and counts as wrong."""
    assert claim.regrad is not None
    direction = nearby_direction(ev, claim, np.random.default_rng(sub.size))
    right = np.ones(sub.size, dtype=bool)
    for side in (direction, -direction):
        try:
            with ev.shifted(side):
                a = claim.regrad()[sub]
                sharp = refine_elements(ev, sub, target=mismatch / 4, first_step=4 * claim.steps[sub])
        except NonFiniteError:
            return np.zeros(sub.size, dtype=bool)
        limit = bound(sharp.error, 0.0, resolution(a, sharp.value, 1.0, claim.rms[sub]) * claim.grad_eps[sub])
        right &= (np.abs(a - sharp.value) <= limit) & (limit < mismatch)
    return right
