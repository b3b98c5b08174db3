"""Reports on a terminal: rich tables in colour when possible, plain text otherwise.

Colour is used only when rich is installed, the output is a terminal and ``NO_COLOR`` is not set
(https://no-color.org); anything else (a file, a pipe, a CI log) gets the plain-text table of
:mod:`backcheck.render.text`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from backcheck.render._data import (
    KINK_PHRASE,
    a_kind,
    error_stats,
    floor_sentence,
    has_floor,
    headline,
    one_report,
    quiet,
    rel_err_notes,
)
from backcheck.render.text import render_report

if TYPE_CHECKING:
    from backcheck.report import Element, Report

STYLE = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow", "skipped": "dim"}


def use_rich(file: TextIO | None = None) -> bool:
    """True when the report should be drawn with rich: installed, a terminal, and ``NO_COLOR`` unset."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = sys.stdout if file is None else file
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    try:
        importlib.import_module("rich")
    except ImportError:
        return False
    return True


def _elements_table(elements: Sequence[Element], title: str) -> Any:
    from rich.table import Table
    from rich.text import Text

    # (names as plain text, never as rich markup: W[val], a user's name holding [/b])
    t = Table(title=Text(title), title_justify="left", title_style="bold", show_edge=False, pad_edge=False)
    for col in ("element", "analytic", "numeric", "|diff|", "bound", "diff/bound", "verdict"):
        t.add_column(col, justify="left" if col == "element" else "right", min_width=len(col),
                     overflow="fold")
    for e in elements:
        bad = e.status in ("mismatch", "dead")
        ratio = e.abs_err / e.bound if e.bound > 0 else float("inf")
        style = "red" if bad else ("yellow" if e.status == "kink" else None)
        t.add_row(Text(e.name), f"{e.analytic:.6g}", f"{e.numeric:.6g}", f"{e.abs_err:.3g}", f"{e.bound:.3g}",
                  f"{ratio:.3g}", e.status, style=style)
    return t


@quiet
def renderables(report: Report) -> list[Any]:
    """The rich renderables that draw ``report`` (a heading, the per-input table, details)."""
    one_report(report)
    from rich.table import Table
    from rich.text import Text

    st = report.status
    head = Text()
    head.append(f" {headline(report)} ", style=f"{STYLE.get(st, 'bold')} reverse")
    head.append(f" {report.title}", style="bold")
    head.append(f"  ({report.kind}, {report.strategy}, {report.method}; {report.n_evals} evaluations, "
                f"{report.seconds:.3g} s)", style="dim")
    out: list[Any] = [head]
    t = Table(show_edge=False, pad_edge=False)
    for col in ("input", "shape", "dtype", "verdict", "checked", "wrong", "kinks", "max abs err",
                "max rel err", "rel diff"):
        t.add_column(col, justify="left" if col in ("input", "verdict") else "right",
                     min_width=min(len(col), 7), overflow="fold")
    for lf in report.leaves:
        t.add_row(Text(lf.name), str(lf.shape), lf.dtype, Text(lf.status, style=STYLE.get(lf.status, "")),
                  f"{lf.n_checked}/{lf.n_elements}", str(lf.n_mismatch), str(lf.n_kinks), *error_stats(lf))
    out.append(t)
    why = rel_err_notes(report)
    for f in report.findings:
        out.append(Text.assemble((f"{f.kind.upper()}: ", "bold red"), f.message))
    for lf in report.leaves:
        if lf.status in ("fail", "inconclusive") and lf.worst:
            out.append(_elements_table(lf.worst, f"{lf.name}: worst elements ({lf.n_mismatch} wrong of "
                                                 f"{lf.n_checked} checked)"))
        if lf.note:
            out.append(Text(f"{lf.name}: {lf.note}", style="yellow"))
        if has_floor(lf):
            out.append(Text(f"{lf.name}: {floor_sentence(lf)}", style="green"))
        if lf.name in why:
            out.append(Text(f"{lf.name}: {why[lf.name]}", style="dim"))
        if lf.kinks:
            names = ", ".join(e.name for e in lf.kinks)
            more = f" and {lf.n_kinks - len(lf.kinks)} more" if lf.n_kinks > len(lf.kinks) else ""
            out.append(Text(f"{lf.name}: {lf.n_kinks} element(s) at a kink ({KINK_PHRASE}): {names}{more}",
                            style="yellow"))
    for note in report.notes:
        out.append(Text(f"note: {note}", style="dim"))
    return out


@quiet
def print_report(report: Report, file: TextIO | None = None, *, color: bool | None = None) -> None:
    """Print a report: rich tables and colour on a terminal, plain text elsewhere.

    Parameters
    ----------
    report : Report
    file : text stream, optional
        Default ``sys.stdout``.
    color : bool, optional
        Force rich (True) or plain text (False); default: :func:`use_rich`.

    Examples
    --------
    >>> import io, numpy as np, backcheck
    >>> from backcheck.render.terminal import print_report
    >>> buf = io.StringIO()
    >>> print_report(backcheck.check(lambda x: np.sum(x ** 2), np.ones(3), lambda x: 2 * x), file=buf)
    >>> buf.getvalue().startswith("backcheck PASS")
    True
    """
    one_report(report)
    stream = sys.stdout if file is None else file
    if not callable(getattr(stream, "write", None)):
        from backcheck.errors import ArgumentError

        raise ArgumentError(f"file is {a_kind(file)}, not a text stream.", "pass file=sys.stderr or an open file.")
    rich_ok = use_rich(stream) if color is None else color
    if rich_ok:
        try:
            from rich.console import Console
        except ImportError:
            rich_ok = False
    if not rich_ok:
        stream.write(render_report(report) + "\n")
        return
    console = Console(file=stream, force_terminal=True if color else None, highlight=False, soft_wrap=False)
    if color and not use_rich(stream):
        console.width = 120  # forced colour into a file or pipe: no terminal width to follow
    for item in renderables(report):
        console.print(item)
