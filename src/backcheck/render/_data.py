"""The per-element arrays behind the plots, taken from a report as they are (no verdict is recomputed)."""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from backcheck.calls import kind_of
from backcheck.verdict import FAILING, VOUCH_FLOOR

if TYPE_CHECKING:
    from backcheck.report import Curve, Element, Finding, LeafReport, Report

F = TypeVar("F", bound=Callable[..., Any])

#: A passing array whose largest relative error reaches this gets a sentence saying why the pass stands: a
#: reader who sees "max rel err 0.5" next to "pass" deserves the reason (the element's gradient is close to
#: zero, so the bound, not the relative error, is the judge).
LARGE_REL_ERR = 1e-2

#: How each kind of check is named in a subtitle ("layer check"); a scalar function's check is "gradient check".
KIND_PHRASES = {"check": "gradient check"}

_INDEX = re.compile(r"\[[0-9, ]*\]$")


#: What an array's error statistics (max abs err, max rel err, rel diff) read where no element was compared one by
#: one (a check along random directions, a sample that missed the array): no number, as 0 would read as agreement.
NOT_COMPARED = "-"
#: Why, for a renderer that can say it beside the sign (a tooltip).
NOT_COMPARED_WHY = "no element was compared one by one, so there is no elementwise error to state"


def number(x: float) -> str:
    """A short number, the same in every renderer: 3 significant digits; 'nan', 'inf' or '-inf' where not finite."""
    if not math.isfinite(x):
        return "nan" if x != x else ("inf" if x > 0 else "-inf")
    return f"{x:.3g}"


def error_stats(lf: LeafReport) -> tuple[str, str, str]:
    """An array's max abs err, max rel err and rel diff as the tables show them: :func:`number` each ('nan' where a
    value is not finite: the array's note names the elements), or :data:`NOT_COMPARED` each where no element was
    compared one by one (:attr:`~backcheck.report.LeafReport.n_judged`)."""
    if getattr(lf, "n_judged", lf.n_checked) <= 0:
        return NOT_COMPARED, NOT_COMPARED, NOT_COMPARED
    return number(lf.max_abs_err), number(lf.max_rel_err), number(lf.rel_diff)


#: What a kink element means, in every renderer: not a bug, and why.
KINK_PHRASE = "not differentiable there; the analytic value is a valid subgradient, not a bug"
#: The probability a sample of elements meets at least one wrong element, in what a sampled pass states.
SAMPLE_CONFIDENCE = 0.999


def floor_sentence(lf: LeafReport) -> str:
    """What a pass vouches for: 'pass: no element wrong by more than X (Y of its typical gradient)'.

    ``lf.floor`` is the smallest error in one element that would certainly have failed; the relative part is left
    out when the array's typical gradient is zero. An array checked along random directions only (``floor_kind`` 'rms')
    vouches for an RMS error over the whole array instead, and says so. Callers check :func:`has_floor` first.
    """
    rel = f" ({lf.floor_rel:.2g} of its typical gradient)" if math.isfinite(lf.floor_rel) else ""
    scale = getattr(lf, "check_scale", math.nan)
    own = ""
    if math.isfinite(lf.floor_rel) and lf.floor_rel > 0 and scale > 0 and lf.floor / lf.floor_rel < VOUCH_FLOOR * scale:
        own = f"this array's own is {lf.floor / lf.floor_rel:.2g}"  # (about 0: a bias before a batch norm)
    elif not math.isfinite(lf.floor_rel) and lf.floor >= 1e-290 and scale > 0:
        own = "the differences show no gradient of this array's own"  # (f's rounding over its steps)
    if own:  # vouched against the check's size, as vouching weighs such an array
        rel = f" ({lf.floor / scale:.2g} of the check's largest typical gradient, {scale:.2g}; {own})"
    if getattr(lf, "floor_kind", "element") == "rms":
        return f"pass: along random directions, an RMS error of {lf.floor:.2g}{rel} or more would have failed"
    if getattr(lf, "floor_kind", "element") == "sample":
        share = 1.0 - (1.0 - SAMPLE_CONFIDENCE) ** (1.0 / max(lf.n_checked, 1))
        return (
            f"pass: none of {lf.n_checked} sampled elements (of {lf.n_elements}) wrong by more than {lf.floor:.2g}"
            f"{rel}; an error confined to a few of the others may go unseen (wrong elements making up "
            f"{_percent(share)} of the array or more would have been sampled with probability {SAMPLE_CONFIDENCE:g})"
        )
    if not math.isfinite(lf.floor_rel) and lf.floor < 1e-290:  # no gradient at all, and f stood still
        return (
            f"pass: no element wrong by more than {lf.floor:.2g} (the function does not change with {lf.name} "
            "here: its derivative is exactly 0, as the gradient says)"
        )
    return f"pass: no element wrong by more than {lf.floor:.2g}{rel}"


def has_floor(lf: LeafReport) -> bool:
    """Whether a passing array states its detection floor (finite and positive; NaN when nothing passed)."""
    return lf.status == "pass" and math.isfinite(lf.floor) and lf.floor > 0


def floor_line(report: Report, lf: LeafReport) -> str:
    """What a passing array vouches for: its floor sentence, else the report's note about it ('' if none).

    A projected check judges no element one by one, so its floor is NaN; the error it would have caught is
    stated in the report's note that starts with the array's name, which then stands in for the floor.
    """
    if has_floor(lf):
        return floor_sentence(lf)
    if lf.status != "pass":
        return ""
    prefix = f"{lf.name}: "
    said = next((n[len(prefix) :] for n in report.notes if n.startswith(prefix) and "would have failed" in n), "")
    return f"pass: {said}" if said else ""


def quiet(fn: F) -> F:
    """A renderer computing under ``np.errstate(all='ignore')``: a report of values near float64's edges (1e308)
    shows their overflow as inf, and numpy's warnings would only alarm (or raise, under ``-W error``)."""

    @functools.wraps(fn)
    def quietly(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return cast(F, quietly)


a_kind = kind_of  # ``value``'s type with its article, for a message: 'a str', 'an int', 'None'


_REPORTS_HINT = "pass the Report a check returned (backcheck.check(...)), or a list of them."


def as_list(reports: Report | Sequence[Report], what: str = "reports") -> list[Report]:
    """A single report or a sequence of them, as a list; :class:`~backcheck.errors.ArgumentError` (a
    ``TypeError``) naming ``what`` for anything else."""
    from backcheck.errors import ArgumentError
    from backcheck.report import Report

    if isinstance(reports, Report):
        return [reports]
    if isinstance(reports, (str, bytes, Mapping)) or not isinstance(reports, Sequence):
        raise ArgumentError(f"{what} is {a_kind(reports)}, not a backcheck Report.", _REPORTS_HINT)
    out = list(reports)
    for k, r in enumerate(out):
        if not isinstance(r, Report):
            raise ArgumentError(f"{what}[{k}] is {a_kind(r)}, not a backcheck Report.", _REPORTS_HINT)
    return out


def one_report(report: Any, what: str = "report") -> Report:
    """``report`` itself, or :class:`~backcheck.errors.ArgumentError` naming ``what`` if it is no Report."""
    from backcheck.errors import ArgumentError
    from backcheck.report import Report

    if not isinstance(report, Report):
        hint = "pass the Report a check returned (backcheck.check(...))."
        raise ArgumentError(f"{what} is {a_kind(report)}, not a backcheck Report.", hint)
    return report


def label_list(labels: Sequence[str] | None, reports: Sequence[Report], default: Sequence[str]) -> list[str]:
    """One caption per report: ``labels``, or ``default``; :class:`~backcheck.errors.BadInputError` naming
    ``labels`` when they are not a list of strings of the reports' number."""
    from backcheck.errors import BadInputError

    if labels is None:
        return list(default)
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise BadInputError(
            f"labels is {a_kind(labels)}, not a list of strings.",
            "pass one caption per report, e.g. labels=['first', 'second'], or leave labels out.",
        )
    names = [str(x) for x in labels]
    if len(names) != len(reports):
        raise BadInputError(
            f"{len(names)} labels for {len(reports)} reports.",
            "pass one caption per report, in the reports' order, or leave labels out.",
        )
    return names


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, False where the system cannot even look (a name too long: the write then says why)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def write_text(path: str | os.PathLike[str], text: str, what: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8, creating its folder); :class:`~backcheck.errors.BadInputError` naming
    the path for a folder, a path that cannot be written, or a folder that cannot be created."""
    from backcheck.errors import BadInputError

    try:
        out = Path(path)
    except TypeError:
        raise BadInputError(
            f"the {what} path is {a_kind(path)}, not a file name.", "pass a path such as 'report.html'."
        ) from None
    if _is_dir(out):
        raise BadInputError(f"the {what} path {out} is a folder.", f"give a file name in it, e.g. {out / 'report'}.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInputError(
            f"could not write the {what} to {out}: {exc.strerror or exc}.",
            "give a path in a folder you can write to.",
        ) from exc
    return out


def overall_status(reports: Sequence[Report]) -> str:
    """'fail' if any report failed, else 'inconclusive' if any is, else 'pass' ('empty' for none)."""
    statuses = [r.status for r in reports]
    if not statuses:
        return "empty"
    for s in ("fail", "inconclusive"):
        if s in statuses:
            return s
    return "pass"


def kind_phrase(kind: str) -> str:
    """What a report checked, as a subtitle: 'layer check', 'gradient check' (never 'check check')."""
    return KIND_PHRASES.get(kind, f"{kind} check")


def finding_phrase(f: Finding) -> str:
    """A few words for a finding, e.g. 'mutation: backward wrote into dout'."""
    if f.kind == "mutation":
        args = list(dict.fromkeys(_INDEX.sub("", e) for e in f.elements))
        into = ", ".join(args) if args else "its arguments"
        who = f.where or "the function"
        return f"mutation: {who} wrote into {into}"
    if f.kind == "saved state" and f.where:  # (where: the tensor whose gradient changed, not what was written)
        return f"saved state: a second backward pass gives another gradient for {f.where}"
    return f"{f.kind} in {f.where}" if f.where else f.kind


def reason(report: Report) -> str:
    """Why a failing report failed when a finding is among the causes ('' otherwise).

    A finding (a function writing into its inputs, say) fails a check even when every gradient is right; the
    headline then names it, since the table alone would show every input as passing.
    """
    if report.status != "fail" or not report.findings:
        return ""
    return "; ".join(dict.fromkeys(finding_phrase(f) for f in report.findings))


def headline(report: Report) -> str:
    """The verdict as a headline: 'PASS', 'FAIL', 'FAIL (mutation: backward wrote into dout)'."""
    why = reason(report)
    return report.status.upper() + (f" ({why})" if why else "")


def flatten(tree: Any, dtype: Any = np.float64) -> list[np.ndarray]:
    """The arrays of a tree in the checker's leaf order (dict order, namedtuple fields, list index)."""
    if tree is None:
        return []
    if isinstance(tree, Mapping):
        return [a for v in tree.values() for a in flatten(v, dtype)]
    if isinstance(tree, (list, tuple)):
        return [a for v in tree for a in flatten(v, dtype)]
    return [np.asarray(tree, dtype=dtype)]


@dataclass
class LeafData:
    """One leaf's report with its full analytic and numeric arrays (and per-element bounds when known)."""

    leaf: LeafReport
    analytic: np.ndarray | None
    numeric: np.ndarray | None
    bound: np.ndarray | None  # per element, when the report stores it
    curve: Curve | None
    status: np.ndarray | None = None  # each element's verdict ('' where not checked), when the report stores it

    @property
    def has_arrays(self) -> bool:
        return self.analytic is not None and self.numeric is not None

    def abs_diff(self) -> np.ndarray:
        """|analytic - numeric| in the leaf's shape; NaN where the element was not checked."""
        assert self.analytic is not None and self.numeric is not None
        return np.abs(self.analytic - self.numeric)

    def _verdict_mask(self, verdicts: tuple[str, ...], listed: Sequence[Element]) -> np.ndarray:
        """True at the elements whose verdict is one of ``verdicts``: every one when the report stores verdicts,
        else those of the ``listed`` elements."""
        if self.status is not None and self.status.shape == tuple(self.leaf.shape):
            return np.isin(self.status, verdicts)
        mask = np.zeros(self.leaf.shape, dtype=bool)
        for e in listed:
            if e.status in verdicts and len(e.index) == len(self.leaf.shape):
                mask[tuple(e.index)] = True
        return mask

    def kink_mask(self) -> np.ndarray:
        """True at the elements at a kink: every one when the report stores verdicts, else the few it lists."""
        return self._verdict_mask(("kink",), self.leaf.kinks)

    def failing_mask(self) -> np.ndarray:
        """True at the elements that failed (mismatch, dead): every one when the report stores verdicts, else the
        worst elements it lists."""
        return self._verdict_mask(FAILING, self.leaf.worst)

    def nonfinite_mask(self) -> np.ndarray:
        """True at the checked elements away from kinks whose analytic or numeric value is NaN or infinite: their
        |a - n| (NaN, or inf) is no error a plot can place, and the verdicts say what they are."""
        diff = self.abs_diff()
        if self.status is not None and self.status.shape == diff.shape:
            checked = self.status != ""
        else:  # (the numeric gradient is NaN where it was not evaluated)
            checked = ~np.isnan(np.asarray(self.numeric, dtype=float))
        return checked & ~np.isfinite(diff) & ~self.kink_mask()

    def nonfinite_counts(self) -> tuple[int, int]:
        """How many elements :meth:`nonfinite_mask` marks, and how many of them failed."""
        bad = self.nonfinite_mask()
        return int(bad.sum()), int((bad & self.failing_mask()).sum())

    def reference_bound(self) -> float | None:
        """The largest bound among the listed worst elements: the scale when per-element bounds are absent."""
        bounds = [e.bound for e in self.leaf.worst if np.isfinite(e.bound) and e.bound > 0]
        return max(bounds) if bounds else None

    def ratios(self) -> tuple[np.ndarray, bool]:
        """|a - n| / bound over the checked, non-kink elements, and whether the bound is per element.

        Without per-element bounds in the report, every element is divided by :meth:`reference_bound`.
        """
        diff = self.abs_diff()
        keep = np.isfinite(diff) & ~self.kink_mask()
        if self.bound is not None and self.bound.shape == diff.shape:
            b = self.bound
            keep &= np.isfinite(b) & (b > 0)
            return (diff[keep] / b[keep]).ravel(), True
        ref = self.reference_bound()
        if ref is None:
            return np.empty(0), False
        return (diff[keep] / ref).ravel(), False


def leaf_data(report: Report) -> list[LeafData]:
    """Each leaf of ``report`` with its arrays, matched by position (the trees follow the leaf order)."""
    analytic, numeric = flatten(report.analytic), flatten(report.numeric)
    bound = flatten(getattr(report, "bound", None))
    status = flatten(getattr(report, "element_status", None), str)
    curves = {c.name: c for c in report.curves}
    n = len(report.leaves)
    usable = (
        len(analytic) == n
        and len(numeric) == n
        and all(
            a.shape == tuple(lf.shape) and m.shape == tuple(lf.shape)
            for a, m, lf in zip(analytic, numeric, report.leaves, strict=True)
        )
    )
    out = []
    for k, lf in enumerate(report.leaves):
        curve = curves.get(lf.worst[0].name) if lf.worst else None
        if usable:
            b = bound[k] if len(bound) == n else None
            st = status[k] if len(status) == n else None
            out.append(LeafData(lf, analytic[k], numeric[k], b, curve, st))
        else:
            out.append(LeafData(lf, None, None, None, curve))
    return out


def _g(x: float) -> str:
    return f"{x:.3g}"


def rel_err_note(d: LeafData) -> str:
    """For a passing array with a large relative error, why the pass stands ('' when there is nothing to say).

    The relative error |a - n| / max(|a|, |n|) of an element whose gradient is close to zero can reach 1
    while |a - n| is far below what finite differences can resolve; the note names that element, its
    gradient and its bound.
    """
    lf = d.leaf
    if lf.status != "pass" or not math.isfinite(lf.max_rel_err) or lf.max_rel_err < LARGE_REL_ERR:
        return ""
    found = _largest_rel_err(d)
    if found is None:
        return (
            f"max rel err {_g(lf.max_rel_err)} comes from elements whose gradient is close to zero, tiny "
            "against the bound finite differences can resolve; their |a - n| is within that bound, so they "
            "pass (near zero the relative error means little: the bound is the judge)."
        )
    name, a, n, b = found
    mag = max(abs(a), abs(n))
    if b is None or not b > 0:
        size = "close to zero"
        within = "within its bound"
    else:
        size = f"tiny against the bound {_g(b)}" if mag <= b else f"only {_g(mag / b)} times the bound {_g(b)}"
        within = "within that bound"
    return (
        f"max rel err {_g(lf.max_rel_err)} comes from {name}, whose gradient (analytic {a:.3g}, numeric "
        f"{n:.3g}) is {size} the finite differences can resolve; its |a - n| = {_g(abs(a - n))} is "
        f"{within}, so it passes (near zero the relative error means little: the bound is the judge)."
    )


def _element_name(leaf: LeafReport, index: tuple[int, ...]) -> str:
    return leaf.name + ("[" + ", ".join(str(int(i)) for i in index) + "]" if index else "")


def _largest_rel_err(d: LeafData) -> tuple[str, float, float, float | None] | None:
    """The element with the largest relative error (name, analytic, numeric, bound), if it can be found."""
    lf = d.leaf
    close = 1e-6 * lf.max_rel_err
    if d.has_arrays:
        a, n = np.asarray(d.analytic, dtype=float), np.asarray(d.numeric, dtype=float)
        diff = np.abs(a - n)
        scale = np.maximum(np.abs(a), np.abs(n))
        keep = np.isfinite(diff) & (scale > 0) & ~d.kink_mask()
        rel = np.where(keep, np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0), -1.0)
        if rel.size and abs(float(rel.max()) - lf.max_rel_err) <= close:
            index = tuple(int(i) for i in np.unravel_index(int(np.argmax(rel)), rel.shape))
            b = float(d.bound[index]) if d.bound is not None and d.bound.shape == rel.shape else None
            if b is None:
                b = next((e.bound for e in lf.worst if tuple(e.index) == index), None)
            return _element_name(lf, index), float(a[index]), float(n[index]), b
    best = max(lf.worst, key=lambda e: e.rel_err, default=None)
    if best is not None and best.rel_err >= lf.max_rel_err - close:
        return best.name, best.analytic, best.numeric, best.bound
    return None


def rel_err_notes(report: Report) -> dict[str, str]:
    """:func:`rel_err_note` of each leaf that has one, by leaf name (arrays are read only when needed)."""
    if not any(lf.status == "pass" and lf.max_rel_err >= LARGE_REL_ERR for lf in report.leaves):
        return {}
    notes = {d.leaf.name: rel_err_note(d) for d in leaf_data(report)}
    return {name: note for name, note in notes.items() if note}


def _percent(share: float) -> str:
    """``share`` as a percentage to two significant figures, without an exponent (100%, 0.52%, 3e-05 as 0.003%)."""
    return f"{float(f'{100 * share:.2g}'):g}%" if share >= 1e-4 else f"{100 * share:.1g}%"
