"""The table a ``blame`` returns: every layer (or submodule call) of a model checked alone, the first failing marked.

:func:`backcheck.nn.check.blame` and :func:`backcheck.torch.blame` both return a :class:`Blame`; each row
is built from the layer's own :class:`~backcheck.report.Report` by :meth:`BlameRow.of` (or says why there
is none: ``'unused'``, ``'error'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backcheck.report import Report

#: Row statuses that make the table fail and can be the first failing row.
FAILING = ("fail", "error")
#: Row statuses that keep the table passing ('unused': the layer's output does not reach the loss).
PASSING = ("pass", "unused")


@dataclass
class BlameRow:
    """The isolated check of one layer (one call of one submodule).

    ``status`` is the report's status, or ``'unused'`` / ``'error'`` (then ``message`` says why and
    ``report`` is None). ``worst`` names the element to look at first: the first wrong one, else the one
    with the largest relative error.
    """

    name: str
    type: str
    status: str  # 'pass' | 'fail' | 'inconclusive' | 'unused' | 'error'
    n_checked: int = 0
    worst: str = ""
    max_rel_err: float = 0.0
    n_evals: int = 0
    message: str = ""
    report: Report | None = field(default=None, repr=False)

    @classmethod
    def of(cls, name: str, type_: str, report: Report) -> BlameRow:
        """The row of a layer whose check produced ``report``."""
        shown = [e for lf in report.leaves for e in lf.worst]
        wrong = [e for e in shown if e.status in ("mismatch", "dead")]
        worst = wrong[0] if wrong else max(shown, key=lambda e: e.rel_err, default=None)
        return cls(
            name,
            type_,
            report.status,
            n_checked=sum(lf.n_checked for lf in report.leaves),
            worst=worst.name if worst is not None else "",
            max_rel_err=_largest([lf.max_rel_err for lf in report.leaves if lf.n_judged > 0]),
            n_evals=report.n_evals,
            report=report,
        )

    @property
    def kind(self) -> str:
        """The layer's type (the name :func:`backcheck.nn.check.blame` used)."""
        return self.type

    @property
    def checked(self) -> str:
        """What the check covered: the elements judged one by one, and ``directions`` where arrays were
        checked along random directions instead (their elements are not counted one by one)."""
        along = self.report is not None and any(lf.floor_kind == "rms" for lf in self.report.leaves)
        if not along:
            return str(self.n_checked)
        return f"{self.n_checked} + directions" if self.n_checked else "directions"

    @property
    def worst_ratio(self) -> float:
        """The largest |analytic - numeric| / bound over the layer's shown elements (above 1 means wrong)."""
        if self.report is None:
            return 0.0
        ratios = [e.abs_err / e.bound for lf in self.report.leaves for e in lf.worst if e.bound > 0]
        return max(ratios, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "n_checked": self.n_checked,
            "worst": self.worst,
            "max_rel_err": self.max_rel_err,
            "worst_ratio": self.worst_ratio,
            "n_evals": self.n_evals,
            "message": self.message,
            "report": self.report.to_dict() if self.report is not None else None,
        }


def _largest(values: list[float]) -> float:
    """The largest of ``values``, NaN if any is (a gradient with a NaN in it), 0.0 for none."""
    return max(values, key=lambda v: (v != v, v), default=0.0)


@dataclass
class Blame:
    """One row per layer, in forward order; :attr:`first_failing` is the one to fix first.

    ``unit`` is what a row is (``'layer'``, ``'submodule call'``), for the table's words.
    """

    title: str
    rows: list[BlameRow] = field(default_factory=list)
    unit: str = "layer"

    @property
    def ok(self) -> bool:
        return all(r.status in PASSING for r in self.rows)

    @property
    def first_failing(self) -> BlameRow | None:
        return next((r for r in self.rows if r.status in FAILING), None)

    def row(self, name: str) -> BlameRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no {self.unit} named {name!r}; the rows are {[r.name for r in self.rows]}")

    def to_dict(self) -> dict[str, Any]:
        first = self.first_failing
        return {
            "title": self.title,
            "ok": self.ok,
            "first_failing": first.name if first else None,
            "rows": [r.to_dict() for r in self.rows],
        }

    def _headline(self) -> str:
        first = self.first_failing
        n = len(self.rows)
        if first is not None:
            verdict = f"first failing {self.unit}: {first.name}"
        elif self.ok:
            verdict = f"all {self.unit}s pass"
        else:
            verdict = "none fails, some are inconclusive"
        return f"backcheck blame: {self.title} ({n} {self.unit}{'' if n == 1 else 's'}; {verdict})"

    def __str__(self) -> str:
        first = self.first_failing
        table = [[self.unit.split()[0], "type", "verdict", "checked", "worst element", "max rel err"]]
        table[0] += ["|diff|/bound", "evals", ""]
        for r in self.rows:
            verdict = r.status if r.status in PASSING else r.status.upper()
            judged = r.checked != "directions"  # element errors exist where elements were judged one by one
            table.append([r.name, r.type, verdict, r.checked, r.worst, f"{r.max_rel_err:.3g}" if judged else "-"])
            ratio = f"{r.worst_ratio:.3g}" if judged else "-"
            table[-1] += [ratio, str(r.n_evals), "<-- first failing" if r is first else ""]
        widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
        lines = [self._headline()]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
        lines += [f"  {r.name}: {r.message}" for r in self.rows if r.message]
        return "\n".join(lines)
