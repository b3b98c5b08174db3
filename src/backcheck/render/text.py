"""Plain-text tables of a report, for terminals, logs and assertion messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backcheck.render._data import (
    KINK_PHRASE,
    error_stats,
    floor_sentence,
    has_floor,
    headline,
    one_report,
    quiet,
    rel_err_notes,
)

if TYPE_CHECKING:
    from backcheck.report import Element, Report

__all__ = ["element_rows", "floor_sentence", "render_report"]


def _g(x: float) -> str:
    return f"{x:.3g}" if x == x else "nan"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [cell.ljust(w) if c == 0 else cell.rjust(w)
                 for c, (cell, w) in enumerate(zip(r, widths, strict=True))]
        lines.append(indent + "  ".join(cells).rstrip())
    return lines


def element_rows(elements: list[Element]) -> list[list[str]]:
    rows = [["element", "analytic", "numeric", "|diff|", "bound", "diff/bound", "verdict"]]
    for e in elements:
        ratio = e.abs_err / e.bound if e.bound > 0 else float("inf")
        rows.append([e.name, f"{e.analytic:.6g}", f"{e.numeric:.6g}", _g(e.abs_err), _g(e.bound), _g(ratio),
                     e.status])
    return rows


@quiet
def render_report(report: Report) -> str:
    one_report(report)
    head = (f"backcheck {headline(report)}: {report.title} ({report.kind}, {report.strategy}, "
            f"{report.method}; {report.n_evals} evaluations, {report.seconds:.3g} s)")
    rows = [["input", "shape", "dtype", "verdict", "checked", "wrong", "kinks", "max abs err", "max rel err",
             "rel diff"]]
    for lf in report.leaves:
        verdict = lf.status if lf.status == "pass" else lf.status.upper()
        rows.append([lf.name, str(lf.shape), lf.dtype, verdict, f"{lf.n_checked}/{lf.n_elements}",
                     str(lf.n_mismatch), str(lf.n_kinks), *error_stats(lf)])
    lines = [head, *_table(rows)]
    why = rel_err_notes(report)
    for f in report.findings:
        lines.append(f"  {f.kind.upper()}: {f.message}")
    for lf in report.leaves:
        if lf.status in ("fail", "inconclusive") and lf.worst:
            lines.append(f"  {lf.name}: worst elements ({lf.n_mismatch} wrong of {lf.n_checked} checked)")
            lines.extend(_table(element_rows(lf.worst), "    "))
        if lf.note:
            lines.append(f"  {lf.name}: {lf.note}")
        if has_floor(lf):
            lines.append(f"  {lf.name}: {floor_sentence(lf)}")
        if lf.name in why:
            lines.append(f"  {lf.name}: {why[lf.name]}")
        if lf.kinks:
            names = ", ".join(e.name for e in lf.kinks)
            more = f" and {lf.n_kinks - len(lf.kinks)} more" if lf.n_kinks > len(lf.kinks) else ""
            lines.append(f"  {lf.name}: {lf.n_kinks} element(s) at a kink ({KINK_PHRASE}): {names}{more}")
    for note in report.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
