"""What the projected strategies say of an array: the notes and reasons they write beside its verdict."""

from __future__ import annotations

from typing import Any

import numpy as np

from backcheck.strategies.elementwise import Outcome
from backcheck.strategies.projected import MAX_DIRECTIONS, MAX_KINKED
from backcheck.verdict import VOUCH

#: A detection size reached within this factor of the one asked for meets it (the bound of each direction is
#: itself an estimate).
UNMET = 1.5


def agreed(name: str, proj: Any, plan: tuple[int | None, float | None, float], worst: float) -> str:
    """The note of an array its random directions vouch for: how many agree, how closely, and what they catch."""
    k, confidence = len(proj.measurements), plan[2]
    short = (
        f" (the detection size asked for needs more than {k}: this is what {k} reach)"
        if plan[0] is None and proj.wanted >= MAX_DIRECTIONS
        else ""
    )
    each = "each " if k > 1 else ""
    early = f", {each}to within a fraction of its bound that vouches as {proj.wanted} directions would"
    return (
        f"{name}: {k} random direction{'s agree' if k > 1 else ' agrees'}{early if proj.early else ''} (worst "
        f"|mismatch|/bound {worst:.2g}); an error of {proj.detectable:.2g} of the gradient (RMS, step-weighted) or "
        f"more would have failed with probability >= {confidence:.6g}{short}."
    )


def shrunk(leaf: Any, proj: Any) -> list[str]:
    """A note where random directions were shrunk to stay inside f's domain."""
    factor = min(m.shrunk for m in proj.measurements)
    if factor >= 1.0:
        return []
    return [
        f"{leaf.name}: random directions left f's domain (NaN or inf at a step) and were shrunk "
        f"{1 / factor:.3g}x to stay inside it; their bounds grew as much."
    ]


def on_edge(leaf: Any, edge: np.ndarray) -> str:
    """Why elements of ``leaf`` (local positions ``edge``) were left out of its random directions."""
    names = ", ".join(leaf.element_name(int(i)) for i in edge[:5]) + (", ..." if edge.size > 5 else "")
    return (
        f"{leaf.name}: random directions left f's domain (NaN or inf at a step) unless shrunk, their bounds growing "
        f"as much; bisection found {edge.size} element(s) whose move alone does ({names}): judged one by one from "
        "their finite side, and left out of the directions over the others."
    )


def crossed(leaf: Any, still: np.ndarray | None, again: Any) -> str:
    """Why random directions over ``leaf`` were given up: where they crossed kinks (or rough ground)."""
    if again is not None:  # (projected again without the elements found: ``still`` is never None then)
        where = f"at {len(still) if still is not None else 0} element(s) and, with those left out, still elsewhere"
    elif still is None:
        where = f"at more than {MAX_KINKED} elements"
    else:
        where = f"along every one of its {leaf.size} elements"
    return (
        f"random directions cross kinks at the point (ties, ReLU inputs at 0), or f is too rough along them to "
        f"tell, {where}"
    )


def unmet(detect: float, k: int, reached: float, name: str) -> str:
    """Why an array is inconclusive when its ``k`` directions reach only ``reached``, not ``detect=``."""
    return (
        f"detect={detect:.2g} asks for errors of that size to fail, but {k} random directions catch only "
        f"{reached:.2g} of {name}'s gradient (their bounds, the function's rounding, set it); pass a larger "
        "detect=, or use floor= / strategy='full' to judge elements one by one."
    )


def detect_unmet(detect: float, reached: float, name: str, kind: str) -> str:
    """Why a passing array is inconclusive under ``detect=``: what its check reached (``kind``: 'rms' for random
    directions, 'element' for elements judged one by one, 'sample' for a sample of them)."""
    how = {
        "rms": f"its random directions catch RMS errors of {reached:.2g} of its gradient",
        "element": f"its elements, judged one by one, let errors of {reached:.2g} of its gradient pass (each within "
        "its own bound)",
        "sample": "a sample of its elements was judged, which vouches for no RMS size of the others",
    }.get(kind, f"its check vouches for {reached:.2g} of its gradient")
    return (
        f"detect={detect:.2g} asks for errors of that size to fail, but {how}; pass a larger detect=, or floor= to "
        f"refine every element of {name} to a precision."
    )


def how_many(sub: Outcome, pool: int) -> str:
    """What a (possibly sampled) check of ``pool`` elements judged one by one covered, in words."""
    if sub.checked.size >= pool:
        return f"every one of the {pool} was checked one by one"
    return (
        f"{sub.checked.size} random elements of {pool} were checked one by one (an error confined to a few of the "
        "others may go unseen; strategy='full' checks every one)"
    )


def blind_sample(name: str, judged: int, drawn: int, wrong: int | None = None) -> str:
    """Why a sample of an array stopped after its first elements (``wrong`` of them wrong: most)."""
    if wrong is not None:
        return (
            f"{name}: {wrong} of the first {judged} elements of a random sample of {drawn} are wrong (an error spread "
            f"over the array); the other {drawn - judged} were not judged."
        )
    return (
        f"{name}: none of the first {judged} elements of a random sample of {drawn} could see an error that matters "
        f"(their bounds are beyond {VOUCH:g} of the gradient); the other {drawn - judged} were not judged."
    )


def exhaustive(leaf: Any, directions: int) -> str:
    """Why an array was checked element by element: as many directions as elements."""
    return (
        f"{leaf.name}: {directions} random directions on {leaf.size} elements would cost more than checking each "
        "element, so each element was checked one by one."
    )
