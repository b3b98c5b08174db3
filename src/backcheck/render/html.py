"""One self-contained HTML file for a set of reports: verdicts, tables and inline SVG plots.

The file loads nothing (no scripts, fonts, images or style sheets from elsewhere) and works offline. Every
string that comes from the user (titles, names, notes, messages) is escaped.

Examples
--------
>>> import numpy as np, backcheck
>>> from backcheck.render.html import render_html
>>> report = backcheck.check(lambda x: np.sum(x ** 3), np.arange(1.0, 4.0), lambda x: 3 * x ** 2)
>>> page = render_html(report, title="cubes")
>>> page.startswith("<!DOCTYPE html>") and "PASS" in page
True
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from backcheck._version import __version__ as version
from backcheck.render import svg
from backcheck.render._data import (
    KINK_PHRASE,
    NOT_COMPARED,
    NOT_COMPARED_WHY,
    LeafData,
    a_kind,
    as_list,
    error_stats,
    floor_line,
    has_floor,
    headline,
    kind_phrase,
    label_list,
    leaf_data,
    overall_status,
    quiet,
    rel_err_note,
    write_text,
)

if TYPE_CHECKING:
    from backcheck.report import Element, LeafReport, Report

CSS = """
:root{--pass:#1f7a4a;--fail:#b3261e;--inc:#8a6100;--ink:#1d1f21;--muted:#5f6368;--line:#dfe1e5;--bg:#fafafa}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px 48px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,
sans-serif;color:var(--ink);background:var(--bg)}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 6px}h3{font-size:15px;margin:0}
.meta{color:var(--muted);margin:2px 0 10px}
.verdict{display:inline-block;font-size:18px;font-weight:600;padding:6px 14px;border-radius:6px;color:#fff;
margin:8px 0}
.badge{display:inline-block;font-size:12px;font-weight:700;letter-spacing:.04em;padding:1px 8px;
border-radius:10px;color:#fff;vertical-align:2px}
.pass{background:var(--pass)}.fail{background:var(--fail)}.inconclusive,.empty{background:var(--inc)}
.skipped{background:var(--muted)}
section.check{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:18px 0}
section.check.st-fail{border-left:6px solid var(--fail)}
section.check.st-pass{border-left:6px solid var(--pass)}
section.check.st-inconclusive{border-left:6px solid var(--inc)}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{font-weight:600;color:var(--muted);font-size:12px}
th:first-child,td:first-child,th.l,td.name{text-align:left}
td.name{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
tr.bad td{color:var(--fail);font-weight:600}tr.kink td{color:var(--inc)}
.finding{border:1px solid var(--fail);background:#fdecea;border-radius:6px;padding:8px 12px;margin:8px 0}
.finding b{color:var(--fail)}
ul.notes{margin:6px 0;padding-left:20px;color:var(--muted)}
p.why{margin:6px 0;padding:6px 10px;border-left:3px solid var(--pass);background:#eef6f1}
p.floor{margin:6px 0;color:var(--pass)}td .rel{color:var(--muted);font-size:12px}
details.leaf{border-top:1px solid var(--line);padding:8px 0 4px}
details.leaf>summary{cursor:pointer;list-style-position:outside;margin-left:16px}
.plots{display:flex;flex-wrap:wrap;align-items:flex-start;gap:16px;margin:10px 0}
.plots svg{border:1px solid var(--line);border-radius:4px;background:#fff}
svg .pt{font:600 12px system-ui,sans-serif;fill:#1d1f21}svg .pl{font:11px system-ui,sans-serif;fill:#5f6368}
svg .tk{font:10px system-ui,sans-serif;fill:#5f6368}svg .an{font:10px system-ui,sans-serif;fill:#1d1f21}
svg .grid{stroke:#eceef1;stroke-width:1}svg .frame{fill:none;stroke:#9aa0a6;stroke-width:1}
a{color:#1a5fb4}
figure{margin:0}figcaption{color:var(--muted);font-size:12px;line-height:1.4;margin:4px 2px 0;
overflow-wrap:anywhere}
"""

_LABEL = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "skipped": "SKIPPED",
          "empty": "EMPTY"}


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge {_e(status)}">{_e(text) if text else _LABEL.get(status, _e(status.upper()))}</span>'


def _g(x: float) -> str:
    return _e(svg.fmt(x))


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _element_table(elements: Sequence[Element]) -> str:
    rows = ["<table><tr><th>element</th><th>analytic</th><th>numeric</th><th>|a &#8722; n|</th><th>bound</th>"
            "<th>|a &#8722; n| / bound</th><th>rel err</th><th>verdict</th></tr>"]
    for e in elements:
        cls = "bad" if e.status in ("mismatch", "dead") else ("kink" if e.status == "kink" else "")
        ratio = e.abs_err / e.bound if e.bound > 0 else float("inf")
        rows.append(f'<tr class="{cls}"><td class="name">{_e(e.name)}</td><td>{_e(f"{e.analytic:.6g}")}</td>'
                    f'<td>{_e(f"{e.numeric:.6g}")}</td><td>{_g(e.abs_err)}</td><td>{_g(e.bound)}</td>'
                    f"<td>{_g(ratio)}</td><td>{_g(e.rel_err)}</td><td>{_e(e.status)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _stat_cells(lf: LeafReport, why: str) -> str:
    """The cells of max abs err, max rel err (starred where a note says why a large one passes) and rel diff; each
    a sign with a tooltip where no element was compared one by one."""
    texts = error_stats(lf)
    if texts[0] == NOT_COMPARED:
        return f'<td title="{_e(NOT_COMPARED_WHY)}">{NOT_COMPARED}</td>' * 3
    cells = [f"<td>{_e(text)}</td>" for text in texts]
    if why:
        cells[1] = f'<td title="{_e(why)}">{_g(lf.max_rel_err)}<sup>*</sup></td>'
    return "".join(cells)


def _floor_cell(lf: LeafReport, line: str) -> str:
    """A passing array's detection floor: absolute, and relative to its typical gradient; else empty.

    Without a floor of its own (a projected check), the cell points to the sentence that states it.
    """
    if not has_floor(lf):
        return f'<td title="{_e(line)}">see note</td>' if line else "<td></td>"
    what = ["rel."] if math.isfinite(lf.floor_rel) else []
    if getattr(lf, "floor_kind", "element") in ("rms", "sample"):
        what.append("RMS" if lf.floor_kind == "rms" else "sampled")
    rel = f"{lf.floor_rel:.2g} " if math.isfinite(lf.floor_rel) else ""
    tail = f' <span class="rel">({_e(rel + ", ".join(what))})</span>' if what else ""
    return f"<td>{_e(f'{lf.floor:.2g}')}{tail}</td>"


def _leaves_table(leaves: Sequence[LeafReport], anchor: str, why: dict[str, str], floors: dict[str, str]) -> str:
    rows = ["<table><tr><th>input</th><th>shape</th><th>dtype</th><th>verdict</th><th>checked</th>"
            "<th>wrong</th><th>kinks</th><th>max abs err</th><th>max rel err</th><th>rel diff</th>"
            '<th title="the smallest error in one element that would certainly have failed (RMS: an error over the '
            'whole array, along random directions)">detection floor</th></tr>']
    for k, lf in enumerate(leaves):
        rows.append(f'<tr><td class="name"><a href="#{anchor}-l{k}">{_e(lf.name)}</a></td>'
                    f"<td>{_e(_shape(lf.shape))}</td><td>{_e(lf.dtype)}</td><td>{_badge(lf.status)}</td>"
                    f"<td>{lf.n_checked}/{lf.n_elements}</td><td>{lf.n_mismatch}</td><td>{lf.n_kinks}</td>"
                    f"{_stat_cells(lf, why.get(lf.name, ''))}"
                    f"{_floor_cell(lf, floors.get(lf.name, ''))}</tr>")
    rows.append("</table>")
    return "".join(rows)


def _figure(plot: str, caption: str) -> str:
    """A plot with its caption under it, as wide as the plot."""
    width = re.search(r'width="(\d+)"', plot)
    style = f' style="width:{width.group(1)}px"' if width else ""
    return f"<figure{style}>{plot}<figcaption>{caption}</figcaption></figure>"


def _v_curve(d: LeafData) -> str:
    lf, c = d.leaf, d.curve
    assert c is not None
    bound = lf.worst[0].bound if lf.worst else None
    plot = svg.v_curve(c.steps, c.errors, chosen=c.chosen, bound=bound, name=c.name, dtype=lf.dtype)
    text = (f"Error of the central difference for {_e(c.name)} against the step h. Round-off grows as h "
            "shrinks (left), truncation as h grows (right); a correct gradient dips below the bound (dotted) "
            "near the step the check used (dashed).")
    errors = [e for e in c.errors if math.isfinite(e)]
    if errors and bound is not None and bound > 0:
        least = min(errors)
        if least > bound:
            text += (f" <b>Here the error stays above the bound at every step</b> (at least {_g(least)}, bound "
                     f"{_g(bound)}): the analytic value is wrong, not the step.")
        else:
            text += f" Here it falls to {_g(least)}, under the bound {_g(bound)}."
    return _figure(plot, text)


def _histogram(d: LeafData) -> str:
    lf = d.leaf
    ratios, per_element = d.ratios()
    bad, bad_failed = d.nonfinite_counts()
    if not ratios.size and not bad:
        return ""
    over = int(np.sum(ratios > 1)) + bad_failed
    scale = "its own bound" if per_element else "the bound of the worst listed element"
    text = (f"Each checked element of {_e(lf.name)}: |analytic &#8722; numeric| over {scale} (log scale). "
            "Right of the dashed line at 1 (red): wrong; left of it (green): within what finite differences "
            f"resolve. Here {over} of {ratios.size + bad} are beyond the bound.")
    text += _nonfinite_bar_sentence(bad, bad_failed)
    plot = svg.histogram(ratios, name=lf.name, per_element=per_element, nonfinite=(bad, bad_failed))
    return _figure(plot, text)


def _nonfinite_bar_sentence(bad: int, failed: int) -> str:
    """For the histogram's caption: what its bar of the ``bad`` elements with a NaN or infinite value counts, of which
    ``failed`` failed ('' where there is none)."""
    if not bad:
        return ""
    text = (f" {bad} element(s) hold a NaN or infinite value (analytic or numeric): their error is no number to place "
            "on the axis, so the bar marked NaN/inf, right of it, counts them")
    if failed == bad:
        return text + "; they failed, and count as beyond the bound."
    if not failed:
        return text + "; none of them was judged wrong (they are inconclusive), so none counts as beyond the bound."
    return text + (f"; {failed} of them failed and count as beyond the bound, the other {bad - failed} were not "
                   "judged wrong.")


def _heatmap(d: LeafData) -> str:
    lf = d.leaf
    diff = d.abs_diff()
    mat = svg.as_matrix(diff)
    if mat is None or mat.size <= 1:
        return ""
    marked = []
    for e in lf.worst:
        if e.status in ("mismatch", "dead") and len(e.index) == diff.ndim:
            if diff.ndim == 1:
                marked.append((0, e.index[0]))
            else:
                marked.append((int(np.ravel_multi_index(e.index[:-1], diff.shape[:-1])), e.index[-1]))
    layout = ("as one row" if diff.ndim == 1 else "by rows and columns" if diff.ndim == 2 else
              "by the last axis across, the leading axes flattened down")
    flags = _nonfinite_flags(d)
    text = (f"|analytic &#8722; numeric| for each element of {_e(lf.name)}, laid out {layout}; darker is larger "
            "(log scale, values on the bar).")
    if (np.isnan(mat) & (svg.as_matrix(flags) == 0)).any():
        text += " Grey cells were not checked."
    text += _nonfinite_cells_sentence(flags)
    if marked:
        text += " Outlined cells are wrong elements listed below."
    plot = svg.heatmap(mat, name=lf.name, shape=lf.shape, marked=marked, flags=svg.as_matrix(flags))
    return _figure(plot, text)


def _nonfinite_flags(d: LeafData) -> np.ndarray:
    """In the leaf's shape: :data:`svg.NONFINITE_FAILED` where a NaN or infinite value failed,
    :data:`svg.NONFINITE_OTHER` where one was not judged wrong, 0 elsewhere."""
    bad = d.nonfinite_mask()
    failed = bad & d.failing_mask()
    return np.where(failed, svg.NONFINITE_FAILED, np.where(bad, svg.NONFINITE_OTHER, 0))


def _nonfinite_cells_sentence(flags: np.ndarray) -> str:
    """For the heatmap's caption: what its cells of NaN or infinite values mean ('' where there is none)."""
    text = ""
    if (flags == svg.NONFINITE_FAILED).any():
        text += (" Red cells crossed out hold a NaN or infinite value (analytic or numeric) and failed: their error is "
                 "no number to colour, and the check counts them as wrong.")
    if (flags == svg.NONFINITE_OTHER).any():
        text += " Brown cells hold a NaN or infinite value that was not judged wrong (inconclusive)."
    return text


def _plots(d: LeafData) -> str:
    out = []
    if d.curve is not None:
        out.append(_v_curve(d))
    if d.has_arrays and d.leaf.n_checked > 0:
        out.append(_histogram(d))
        out.append(_heatmap(d))
    out = [o for o in out if o]
    return f'<div class="plots">{"".join(out)}</div>' if out else ""


def _leaf_section(d: LeafData, anchor: str, k: int, expand: bool, why: str, floor: str) -> str:
    lf = d.leaf
    is_open = " open" if (expand or lf.status != "pass" or why) else ""
    head = (f"<summary><h3 style=\"display:inline\">{_e(lf.name)}</h3> {_badge(lf.status)} "
            f'<span class="meta">shape {_e(_shape(lf.shape))}, {_e(lf.dtype)}; {lf.n_checked} of '
            f"{lf.n_elements} checked, {lf.n_mismatch} wrong, {lf.n_kinks} at kinks; relative difference "
            f"{_e(error_stats(lf)[2])}</span>"
            "</summary>")
    body = [f'<p class="floor">{_e(floor)}</p>' if floor else "", _plots(d)]
    if lf.worst:
        what = "worst elements" if lf.status != "pass" else "elements closest to their bound"
        body.append(f'<p class="meta">{what} ({lf.n_mismatch} wrong of {lf.n_checked} checked)</p>')
        body.append(_element_table(lf.worst))
    if lf.kinks:
        more = f"; the first {len(lf.kinks)} are listed" if lf.n_kinks > len(lf.kinks) else ""
        body.append(f'<p class="meta">{lf.n_kinks} element(s) at a kink ({_e(KINK_PHRASE)}){_e(more)}</p>')
        body.append(_element_table(lf.kinks))
    if lf.note:
        body.append(f'<p class="meta">{_e(lf.note)}</p>')
    if why:
        body.append(f'<p class="why"><sup>*</sup> {_e(why)}</p>')
    return f'<details class="leaf" id="{anchor}-l{k}"{is_open}>{head}{"".join(body)}</details>'


def _check_section(report: Report, label: str, anchor: str, expand: bool) -> str:
    st = report.status
    heading = _e(label) + (f" &#8212; {_e(report.title)}" if label and label != report.title else "")
    if not label:
        heading = _e(report.title)
    parts = [
        f'<section class="check st-{_e(st)}" id="{anchor}"><h2>{_badge(st, headline(report))} {heading}</h2>',
        f'<p class="meta">{_e(kind_phrase(report.kind))}, strategy {_e(report.strategy)}, {_e(report.method)} '
        f"differences; {report.n_evals} evaluations in {_e(f'{report.seconds:.3g}')} s</p>",
    ]
    for f in report.findings:
        where = f" in {_e(f.where)}" if f.where else ""
        parts.append(f'<div class="finding"><b>{_e(f.kind.upper())}</b>{where}: {_e(f.message)}</div>')
    if report.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    data = leaf_data(report)
    why = {d.leaf.name: rel_err_note(d) for d in data}
    floors = {lf.name: floor_line(report, lf) for lf in report.leaves}
    parts.append(_leaves_table(report.leaves, anchor, why, floors))
    for k, d in enumerate(data):
        parts.append(_leaf_section(d, anchor, k, expand, why[d.leaf.name], floors[d.leaf.name]))
    parts.append("</section>")
    return "".join(parts)


def _nav(items: Sequence[Report], names: Sequence[str]) -> str:
    """The table of contents: one row per check with its verdict and counts."""
    rows = ["<table><tr><th>#</th><th class='l'>check</th><th>kind</th><th>strategy</th><th>verdict</th>"
            "<th>wrong</th><th>checked</th><th>evaluations</th><th>seconds</th></tr>"]
    for k, (r, name) in enumerate(zip(items, names, strict=True)):
        wrong = sum(lf.n_mismatch for lf in r.leaves)
        checked = sum(lf.n_checked for lf in r.leaves)
        rows.append(f'<tr><td>{k + 1}</td><td class="name"><a href="#c{k}">{_e(name)}</a></td>'
                    f"<td>{_e(r.kind)}</td><td>{_e(r.strategy)}</td><td>{_badge(r.status, headline(r))}</td>"
                    f"<td>{wrong}</td><td>{checked}</td><td>{r.n_evals}</td><td>{_e(f'{r.seconds:.3g}')}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


@quiet
def render_html(reports: Report | Sequence[Report], title: str = "backcheck report",
                labels: Sequence[str] | None = None) -> str:
    """Render reports as one self-contained HTML page.

    Parameters
    ----------
    reports : Report or sequence of Report
        The checks to show, in order.
    title : str
        The page title.
    labels : sequence of str, optional
        A caption per report (a test id, a case name); default: the report's own title.

    Returns
    -------
    str
        The HTML text: summary verdict, a section per check and per tensor with the worst elements,
        findings, notes and inline SVG plots (the error-versus-step V curve when the check recorded
        ``curves``, a histogram of error/bound ratios and a heatmap of ``|analytic - numeric|``).
    """
    items = as_list(reports)
    names = label_list(labels, items, [r.title for r in items])
    if not isinstance(title, str):
        from backcheck.errors import ArgumentError

        raise ArgumentError(f"title is {a_kind(title)}, not a string.", "pass title='my checks'.")
    overall = overall_status(items)
    counts = {s: sum(r.status == s for r in items) for s in ("pass", "fail", "inconclusive")}
    summary = ", ".join(f"{n} {'passed' if s == 'pass' else ('failed' if s == 'fail' else s)}"
                        for s, n in counts.items() if n)
    expand = len(items) <= 10
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    sections = [_check_section(r, name, f"c{k}", expand)
                for k, (r, name) in enumerate(zip(items, names, strict=True))]
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<div class="verdict {_e(overall)}">{_LABEL.get(overall, "")}: {len(items)} check(s)'
        f"{': ' + summary if summary else ''}</div>",
        f'<p class="meta">backcheck {_e(version)} &#183; {_e(when)} &#183; a mismatch is an error beyond '
        "the bound the finite differences can vouch for (truncation + round-off + the gradient dtype's "
        "resolution)</p>",
        "</header><nav>", _nav(items, names), "</nav>", *sections,
        "</body></html>\n",
    ])


def write_html(reports: Report | Sequence[Report], path: str | os.PathLike[str],
               title: str = "backcheck report", labels: Sequence[str] | None = None) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8, creating its folder); return the path. A folder, or a path
    that cannot be written, is a :class:`~backcheck.errors.BadInputError` naming it."""
    return write_text(path, render_html(reports, title=title, labels=labels), "HTML report")
