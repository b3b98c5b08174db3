"""Small, dependency-free SVG plots for the HTML report: the error-versus-step V curve, a histogram of
error/bound ratios, and a heatmap of elementwise errors.

Every function returns one ``<svg>`` element as a string; all text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

from backcheck.render._data import number, quiet

WIDTH, HEIGHT = 380, 250
MARGIN = (42, 16, 44, 58)  # top, right, bottom, left
#: Baselines of the title and of the legend row above the plot area.
TITLE_Y, LEGEND_Y = 16, 33

GREEN, RED, BLUE, GREY, INK = "#2e8b57", "#c8372d", "#2c6fbb", "#9aa0a6", "#222"
#: Elements with a NaN or infinite value that were not judged wrong (inconclusive): the HTML page's colour for that.
BROWN = "#8a6100"
#: Codes of a heatmap's ``flags``: a cell whose value is NaN or infinite and failed, or was not judged wrong.
NONFINITE_OTHER, NONFINITE_FAILED = 1, 2
#: A sequential palette (light for small errors, dark for large), interpolated linearly.
PALETTE = ((255, 250, 228), (252, 205, 120), (240, 130, 60), (196, 48, 62), (110, 20, 90), (40, 10, 60))


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _e(text: object) -> str:
    return escape(str(text), quote=True)


#: A short number: 3 significant digits ('nan', 'inf' where not finite), as every renderer writes it.
fmt = number


#: Advance widths in em of a wide sans-serif (DejaVu Sans, the usual system-ui on Linux), rounded up: labels
#: are laid out from these estimates, so they err on the wide side.
_NARROW, _WIDE = set(" .,:;'|!ijlrtf()[]{}1-"), set("mwMW=<>~+%@&")


def text_width(text: str, size: float, bold: bool = False) -> float:
    """An upper estimate of the width in pixels of ``text`` at font ``size``."""
    em = 0.0
    for ch in text:
        if ch in _NARROW:
            em += 0.40
        elif ch in _WIDE:
            em += 0.86
        elif ch.isupper():
            em += 0.74
        else:
            em += 0.64
    return em * size * (1.1 if bold else 1.0)


def fit(text: str, width: float, size: float, bold: bool = False) -> str:
    """``text``, cut in the middle with an ellipsis so that it fits ``width`` pixels.

    The middle goes: both ends say the most (what is plotted, and which element: ``...weight'][1, 5]``).
    """
    if text_width(text, size, bold) <= width:
        return text
    head, tail = len(text) // 2, len(text) - len(text) // 2
    while head + tail > 0:
        if head >= tail:
            head -= 1
        else:
            tail -= 1
        cut = text[:head] + "\u2026" + text[len(text) - tail:]
        if text_width(cut, size, bold) <= width:
            return cut
    return "\u2026"


def _pow10(k: int) -> str:
    return "1" if k == 0 else ("10" if k == 1 else f"1e{k}")


def color(t: float) -> str:
    """The palette colour at ``t`` in [0, 1]."""
    t = min(max(t, 0.0), 1.0) * (len(PALETTE) - 1)
    k = min(int(t), len(PALETTE) - 2)
    u = t - k
    rgb = [round(a + (b - a) * u) for a, b in zip(PALETTE[k], PALETTE[k + 1], strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


class Frame:
    """A plot area: data ranges mapped to pixels, axes with ticks, and an SVG element under construction."""

    def __init__(self, xrange: tuple[float, float], yrange: tuple[float, float], *, title: str, xlabel: str,
                 ylabel: str, label: str) -> None:
        (x0, x1), (y0, y1), width, height = xrange, yrange, WIDTH, HEIGHT
        self.x0, self.x1 = (x0, x1) if x1 > x0 else (x0 - 0.5, x0 + 0.5)
        self.y0, self.y1 = (y0, y1) if y1 > y0 else (y0 - 0.5, y0 + 0.5)
        self.w, self.h = width, height
        top, right, bottom, left = MARGIN
        self.left, self.right, self.top, self.bottom = left, width - right, top, height - bottom
        self.parts: list[str] = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">',
            f"<title>{_e(label)}</title>",
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
            f'<text x="{left}" y="{TITLE_Y}" class="pt">{_e(fit(title, width - left - 6, 12, True))}</text>',
            f'<text x="{(left + self.right) / 2:.0f}" y="{height - 8}" class="pl" text-anchor="middle">'
            f"{_e(xlabel)}</text>",
            f'<text transform="translate(13 {(top + self.bottom) / 2:.0f}) rotate(-90)" class="pl" '
            f'text-anchor="middle">{_e(ylabel)}</text>',
        ]

    def ends(self, left: str, right: str) -> None:
        """Words at both ends of the x-axis label's row, e.g. what dominates at small and at large x."""
        y = self.h - 8
        self.parts.append(f'<text x="{self.left}" y="{y}" class="an">{_e(left)}</text>')
        self.parts.append(f'<text x="{self.right}" y="{y}" class="an" text-anchor="end">{_e(right)}</text>')

    def legend(self, items: Sequence[tuple[str, str]], right: str = "") -> None:
        """A row between the title and the plot: each item a line sample (an SVG stroke style) and its text;
        ``right`` is a text flush with the plot's right edge. Nothing drawn in the plot area is labelled in
        place, so no label can sit on the data."""
        x, y = float(self.left), LEGEND_Y
        for style, text in items:
            self.parts.append(f'<line x1="{_f(x)}" y1="{y - 3.5}" x2="{_f(x + 16)}" y2="{y - 3.5}" {style}/>')
            self.parts.append(f'<text x="{_f(x + 20)}" y="{y}" class="an">{_e(text)}</text>')
            x += 20 + text_width(text, 10) + 14
        if right:
            self.parts.append(f'<text x="{self.right}" y="{y}" class="an" text-anchor="end">{_e(right)}</text>')

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def py(self, y: float) -> float:
        return self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def axes(self, xticks: Sequence[tuple[float, str]], yticks: Sequence[tuple[float, str]]) -> None:
        p = self.parts
        for x, text in xticks:
            X = self.px(x)
            p.append(f'<line x1="{_f(X)}" y1="{self.top}" x2="{_f(X)}" y2="{self.bottom}" class="grid"/>')
            p.append(f'<text x="{_f(X)}" y="{self.bottom + 16}" class="tk" text-anchor="middle">'
                     f"{_e(text)}</text>")
        for y, text in yticks:
            Y = self.py(y)
            p.append(f'<line x1="{self.left}" y1="{_f(Y)}" x2="{self.right}" y2="{_f(Y)}" class="grid"/>')
            p.append(f'<text x="{self.left - 4}" y="{_f(Y + 3.5)}" class="tk" text-anchor="end">'
                     f"{_e(text)}</text>")
        p.append(f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
                 f'height="{self.bottom - self.top}" class="frame"/>')

    def svg(self) -> str:
        return "".join(self.parts) + "</svg>"


def _decade_ticks(lo: float, hi: float, most: int = 7) -> list[tuple[float, str]]:
    """Ticks at powers of ten between ``lo`` and ``hi`` (log10 units), thinned to at most ``most``."""
    first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    if last < first:
        return []
    stride = max(1, math.ceil((last - first + 1) / most))
    return [(float(k), _pow10(k)) for k in range(first, last + 1) if k % stride == 0]


@quiet
def v_curve(steps: Sequence[float], errors: Sequence[float], *, chosen: float, bound: float | None = None,
            name: str = "", dtype: str = "") -> str:
    """Error of the central difference against the analytic value, versus the step (log-log).

    The curve falls to the right of the minimum as truncation error (``O(h^2)``) shrinks and rises to the
    left as round-off (``eps |f| / h``) grows; a vertical line marks the step the check used and a dotted
    line the bound the element was held to.
    """
    h = np.asarray(steps, dtype=float)
    err = np.asarray(errors, dtype=float)
    good = np.isfinite(h) & (h > 0) & np.isfinite(err)
    h, err = h[good], err[good]
    title = f"error vs step: {name}" + (f" ({dtype})" if dtype else "")
    label = f"V curve of {name}: |central difference - analytic| against the step"
    if h.size == 0:
        return Frame((0, 1), (0, 1), title=title, xlabel="step h", ylabel="|error|", label=label).svg()
    positive = err[err > 0]
    floor = (positive.min() / 10.0) if positive.size else 1e-16
    if bound is not None and bound > 0 and math.isfinite(bound):
        floor = min(floor, bound / 10.0)
    ly = np.log10(np.maximum(err, floor))
    lx = np.log10(h)
    ys = [*ly]
    if bound is not None and bound > 0 and math.isfinite(bound):
        ys.append(math.log10(bound))
    y0, y1 = math.floor(min(ys) - 0.25), math.ceil(max(ys) + 0.25)  # the data never touches the frame
    fr = Frame((float(lx.min()), float(lx.max())), (y0, y1), title=title, xlabel="step h (log scale)",
               ylabel="|numeric - analytic|", label=label)
    fr.axes(_decade_ticks(fr.x0, fr.x1), _decade_ticks(y0, y1))
    fr.ends("\u2190 round-off", "truncation \u2192")
    p = fr.parts
    legend = []
    if chosen > 0 and math.isfinite(chosen):
        X = fr.px(math.log10(chosen))
        style = f'stroke="{INK}" stroke-width="1" stroke-dasharray="5 3"'
        p.append(f'<line x1="{_f(X)}" y1="{fr.top}" x2="{_f(X)}" y2="{fr.bottom}" {style}/>')
        legend.append((style, f"chosen h = {fmt(chosen)}"))
    if bound is not None and bound > 0 and math.isfinite(bound):
        Y = fr.py(math.log10(bound))
        style = f'stroke="{GREEN}" stroke-width="1.5" stroke-dasharray="2 3"'
        p.append(f'<line x1="{fr.left}" y1="{_f(Y)}" x2="{fr.right}" y2="{_f(Y)}" {style}/>')
        legend.append((style, f"bound {fmt(bound)}"))
    fr.legend(legend)
    pts = " ".join(f"{_f(fr.px(x))},{_f(fr.py(y))}" for x, y in zip(lx, ly, strict=True))
    p.append(f'<polyline points="{pts}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    for x, y, s, e in zip(lx, ly, h, err, strict=True):
        fill = BLUE if e > 0 else "#fff"
        p.append(f'<circle cx="{_f(fr.px(x))}" cy="{_f(fr.py(y))}" r="2.6" fill="{fill}" stroke="{BLUE}">'
                 f"<title>h = {fmt(s)}: |error| = {fmt(e)}</title></circle>")
    return fr.svg()


@quiet
def histogram(ratios: np.ndarray, *, name: str = "", per_element: bool = True,
              nonfinite: tuple[int, int] = (0, 0)) -> str:
    """Histogram of log10(|analytic - numeric| / bound); elements right of 1 are beyond their bound.

    ``nonfinite`` counts the elements whose value is NaN or infinite, which have no ratio to place, and how many of
    them failed: a bar of their own right of the axis, marked NaN/inf, counts them (red: failed, brown: not judged
    wrong), and the failed ones count as beyond the bound.
    """
    r = np.asarray(ratios, dtype=float)
    r = r[np.isfinite(r)]
    title = f"error / bound: {name}"
    xlabel = "|a - n| / bound" if per_element else "|a - n| / bound of the worst listed element"
    label = f"histogram of elementwise error over bound for {name}"
    if r.size == 0 and not nonfinite[0]:
        return Frame((0, 1), (0, 1), title=title, xlabel=xlabel, ylabel="elements", label=label).svg()
    exact = int(np.sum(r <= 0))
    lr = np.log10(r[r > 0]) if np.any(r > 0) else np.empty(0)
    lo = math.floor(min(lr.min(), -1.0)) if lr.size else -1.0
    lo = max(lo, -12.0)
    hi = math.ceil(max(lr.max(), 0.0) + 1e-9) if lr.size else 1.0
    hi = max(hi, lo + 2.0)
    width = 0.5 if hi - lo <= 12 else 1.0
    edges = np.arange(lo, hi + width / 2, width)
    counts, _ = np.histogram(np.clip(lr, lo, hi), bins=edges)
    counts[0] += exact
    top = max(int(counts.max()), nonfinite[0], 1)
    right_end = hi + 2.5 * width if nonfinite[0] else hi  # (room for the NaN/inf bar, apart from the axis)
    fr = Frame((lo, right_end), (0, top * 1.12), title=title, xlabel=xlabel, ylabel="elements", label=label)
    ystep = max(1, math.ceil(top / 4))
    fr.axes(_decade_ticks(lo, hi), [(float(k), str(k)) for k in range(0, top + 1, ystep)])
    p = fr.parts
    for c, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
        if c == 0:
            continue
        x, xe = fr.px(a) + 0.5, fr.px(b) - 0.5
        y = fr.py(float(c))
        fill = RED if a >= 0 else GREEN
        p.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(xe - x)}" height="{_f(fr.bottom - y)}" '
                 f'fill="{fill}" fill-opacity="0.85"><title>{c} element(s) with ratio in '
                 f"[{fmt(10.0 ** a)}, {fmt(10.0 ** b)})</title></rect>")
    X = fr.px(0.0)
    p.append(f'<line x1="{_f(X)}" y1="{fr.top}" x2="{_f(X)}" y2="{fr.bottom}" stroke="{INK}" '
             'stroke-width="1.5" stroke-dasharray="5 3"/>')
    # above the tallest bar (bars reach 1/1.12 of the height), beside the line, on the side with room
    right = X + 4 + text_width("bound", 10) <= fr.right - 2
    p.append(f'<text x="{_f(X + 4 if right else X - 4)}" y="{fr.top + 12}" class="an" '
             f'text-anchor="{"start" if right else "end"}">bound</text>')
    legend = _nonfinite_bar(fr, hi, width, nonfinite) if nonfinite[0] else []
    n_over = int(np.sum(r > 1)) + nonfinite[1]
    fr.legend(legend, right=f"{n_over} of {r.size + nonfinite[0]} beyond the bound")
    return fr.svg()


def _nonfinite_bar(fr: Frame, hi: float, width: float, nonfinite: tuple[int, int]) -> list[tuple[str, str]]:
    """Draw the bar of the elements with a NaN or infinite value right of the axis (which ends at ``hi``), past a
    dotted break: red for those that failed, brown above for the others; return its legend item."""
    bad, failed = nonfinite
    X = fr.px(hi + width / 2)
    fr.parts.append(f'<line x1="{_f(X)}" y1="{fr.top}" x2="{_f(X)}" y2="{fr.bottom}" stroke="{GREY}" '
                    'stroke-width="1" stroke-dasharray="2 3"/>')
    x, xe = fr.px(hi + width) + 0.5, fr.px(hi + 2 * width) - 0.5
    base = 0
    for count, fill, what in ((failed, RED, "failed"), (bad - failed, BROWN, "not judged wrong")):
        if count:
            y0, y1 = fr.py(float(base)), fr.py(float(base + count))
            fr.parts.append(f'<rect x="{_f(x)}" y="{_f(y1)}" width="{_f(xe - x)}" height="{_f(y0 - y1)}" '
                            f'fill="{fill}" stroke="{INK}" stroke-width="1"><title>{count} element(s) with a NaN or '
                            f"infinite value: {what}</title></rect>")
            base += count
    swatch = f'stroke="{RED if failed else BROWN}" stroke-width="7"'
    return [(swatch, f"NaN/inf: {bad} (bar at the right)")]


def _block_reduce(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Max over blocks so that ``a`` fits ``rows x cols`` cells (NaN only where a whole block is NaN)."""
    r = math.ceil(a.shape[0] / rows)
    c = math.ceil(a.shape[1] / cols)
    if r == 1 and c == 1:
        return a
    R, C = math.ceil(a.shape[0] / r), math.ceil(a.shape[1] / c)
    padded = np.full((R * r, C * c), np.nan)
    padded[: a.shape[0], : a.shape[1]] = a
    blocks = padded.reshape(R, r, C, c).transpose(0, 2, 1, 3).reshape(R, C, r * c)
    out = np.full((R, C), np.nan)
    has = ~np.all(np.isnan(blocks), axis=2)
    out[has] = np.nanmax(blocks[has], axis=1)
    return out


#: Where a heatmap's cells start (left, top), in pixels.
_HEAT_ORIGIN = (58, 38)


@quiet
def heatmap(values: np.ndarray, *, name: str = "", shape: tuple[int, ...] = (), max_cells: int = 64,
            marked: Sequence[tuple[int, int]] = (), flags: np.ndarray | None = None) -> str:
    """Heatmap of ``values`` (2-D, e.g. |analytic - numeric|) on a log colour scale; NaN cells are grey.

    Larger arrays are reduced to at most ``max_cells`` per side by the maximum over blocks. ``marked``
    cells (row, column in ``values``) get an outline. ``flags`` (shaped as ``values``) marks the cells whose value
    is NaN or infinite: :data:`NONFINITE_FAILED` red and crossed out, :data:`NONFINITE_OTHER` brown, both named in
    a legend under the plot (grey would say "not checked", and a colour of the scale a size they do not have).
    """
    a = np.asarray(values, dtype=float)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"heatmap takes a non-empty 2-D array, got shape {a.shape}")
    red = _block_reduce(a, max_cells, max_cells)
    has_flags = flags is not None and np.shape(flags) == a.shape
    flag = _block_reduce(np.asarray(flags, dtype=float), max_cells, max_cells) if has_flags else np.zeros(red.shape)
    R, C = red.shape
    cell = max(3.0, min(24.0, 300.0 / C, 300.0 / R))
    left, top = _HEAT_ORIGIN
    bh = max(R * cell, 60.0)
    legend = _flag_legend(flag)
    box = (int(max(left + C * cell + 100, 260)), int(top + bh + 24 + (16 if legend else 0)))
    lo, hi = _log_range(red)
    p = _heatmap_head(box, a.shape, red.shape, name, shape)
    steps = (math.ceil(a.shape[0] / R), math.ceil(a.shape[1] / C))
    p += _cells(red, flag, a.shape, steps, cell, (lo, hi))
    for i, j in marked:
        bi, bj = i // steps[0], j // steps[1]
        if 0 <= bi < R and 0 <= bj < C:
            p.append(f'<rect x="{_f(left + bj * cell)}" y="{_f(top + bi * cell)}" width="{_f(cell)}" '
                     f'height="{_f(cell)}" fill="none" stroke="{INK}" stroke-width="1.2"/>')
    p.append(f'<rect x="{left}" y="{top}" width="{_f(C * cell)}" height="{_f(R * cell)}" class="frame"/>')
    p += _index_labels(a.shape, red.shape, cell)
    p += _colour_bar(left + C * cell + 14, bh, lo, hi)
    x = float(left)
    for fill, text in legend:  # under the plot, where nothing else is drawn
        p.append(f'<rect x="{_f(x)}" y="{_f(top + bh + 28)}" width="10" height="10" fill="{fill}"/>')
        if fill == RED:
            p.append(_cross(x, top + bh + 28, 10))
        p.append(f'<text x="{_f(x + 14)}" y="{_f(top + bh + 37)}" class="tk">{_e(text)}</text>')
        x += 14 + text_width(text, 10) + 12
    return "".join(p) + "</svg>"


def _heatmap_head(box: tuple[int, int], full: tuple[int, ...], reduced: tuple[int, ...], name: str,
                  shape: tuple[int, ...]) -> list[str]:
    """The opening of a heatmap's SVG, ``box`` (width, height) wide: background, title, and the shape shown."""
    (width, height), left = box, _HEAT_ORIGIN[0]
    (rows, cols), (R, C) = full, reduced
    desc = "x".join(str(s) for s in shape) if shape else f"{rows}x{cols}"
    note = "" if (R, C) == (rows, cols) else f", max over {math.ceil(rows / R)}x{math.ceil(cols / C)} blocks"
    label = f"heatmap of |analytic - numeric| for {name}"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}"><title>{_e(label)}</title>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="{left}" y="{TITLE_Y}" class="pt">{_e(fit(f"|a - n|: {name}", width - left - 6, 12, True))}</text>',
        f'<text x="{left}" y="30" class="tk">{_e(fit(f"shape {desc}{note}", width - left - 6, 10))}</text>',
    ]


def _log_range(red: np.ndarray) -> tuple[float, float]:
    """The colour scale's ends, in log10 units: the finite positive values' range, at least 1 and at most 12 wide."""
    fin = red[np.isfinite(red) & (red > 0)]
    hi = math.log10(fin.max()) if fin.size else 0.0
    lo = math.log10(fin.min()) if fin.size else hi - 1
    lo = max(lo, hi - 12)
    return (hi - 1 if hi - lo < 1 else lo), hi


def _flag_legend(flag: np.ndarray) -> list[tuple[str, str]]:
    """The legend items (colour, text) of the flagged cells a heatmap shows."""
    items = [(RED, "NaN or inf, failed"), (BROWN, "NaN or inf, not judged wrong")]
    return [item for code, item in zip((NONFINITE_FAILED, NONFINITE_OTHER), items, strict=True) if (flag == code).any()]


def _cells(red: np.ndarray, flag: np.ndarray, full: tuple[int, ...], steps: tuple[int, int], cell: float,
           scale: tuple[float, float]) -> list[str]:
    """A heatmap's cells: a colour of the log scale, grey where NaN (not checked), red crossed out or brown where
    flagged (a NaN or infinite value), each with its place and value as a tooltip."""
    (left, top), (rows, cols), (lo, hi) = _HEAT_ORIGIN, full, scale
    out = []
    for (i, j), v in np.ndenumerate(red):
        code = flag[i, j]
        if code == NONFINITE_FAILED or code == NONFINITE_OTHER:
            fill = RED if code == NONFINITE_FAILED else BROWN
        elif not np.isfinite(v):
            fill = "#d0d3d6"
        else:
            fill = color(0.0) if v <= 0 else color((math.log10(v) - lo) / (hi - lo))
        if steps == (1, 1):
            where = f"[{i}, {j}]"
        else:
            r_end, c_end = min(rows, (i + 1) * steps[0]) - 1, min(cols, (j + 1) * steps[1]) - 1
            where = f"rows {i * steps[0]}-{r_end}, cols {j * steps[1]}-{c_end}"
        what = {NONFINITE_FAILED: " (NaN or inf: failed)", NONFINITE_OTHER: " (NaN or inf)"}.get(code, "")
        x, y = left + j * cell, top + i * cell
        out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(cell)}" height="{_f(cell)}" fill="{fill}">'
                   f"<title>{_e(where)}: {fmt(v)}{what}</title></rect>")
        if code == NONFINITE_FAILED and cell >= 5:
            out.append(_cross(x, y, cell))
    return out


def _cross(x: float, y: float, size: float) -> str:
    """A white cross over the square of ``size`` at (``x``, ``y``): a cell whose NaN or infinite value failed."""
    a, b = 1.0, size - 1.0
    return (f'<path d="M{_f(x + a)} {_f(y + a)}L{_f(x + b)} {_f(y + b)}M{_f(x + a)} {_f(y + b)}L{_f(x + b)} '
            f'{_f(y + a)}" stroke="#fff" stroke-width="1.2"/>')


def _index_labels(full: tuple[int, ...], reduced: tuple[int, ...], cell: float) -> list[str]:
    """The first and last row and column indices beside a heatmap, the last only where it has room beside the
    first."""
    (left, top), (rows, cols), (R, C) = _HEAT_ORIGIN, full, reduced
    p = []
    if rows > 1:
        p.append(f'<text x="{left - 4}" y="{top + 9}" class="tk" text-anchor="end">0</text>')
        if R * cell >= 22:
            p.append(f'<text x="{left - 4}" y="{_f(top + R * cell)}" class="tk" text-anchor="end">'
                     f"{rows - 1}</text>")
    p.append(f'<text x="{left}" y="{_f(top + R * cell + 12)}" class="tk">0</text>')
    if cols > 1 and C * cell >= text_width("0", 10) + text_width(str(cols - 1), 10) + 6:
        p.append(f'<text x="{_f(left + C * cell)}" y="{_f(top + R * cell + 12)}" class="tk" '
                 f'text-anchor="end">{cols - 1}</text>')
    return p


def _colour_bar(bx: float, bh: float, lo: float, hi: float) -> list[str]:
    """A heatmap's colour bar at ``bx``, ``bh`` high, from 10**lo to 10**hi."""
    top, n = _HEAT_ORIGIN[1], 24
    p = [f'<rect x="{_f(bx)}" y="{_f(top + bh * (1 - (k + 1) / n))}" width="12" height="{_f(bh / n + 0.5)}" '
         f'fill="{color((k + 0.5) / n)}"/>' for k in range(n)]
    p.append(f'<rect x="{_f(bx)}" y="{top}" width="12" height="{_f(bh)}" class="frame"/>')
    p.append(f'<text x="{_f(bx + 15)}" y="{top + 8}" class="tk">{_e(fmt(10.0 ** hi))}</text>')
    p.append(f'<text x="{_f(bx + 15)}" y="{_f(top + bh)}" class="tk">{_e(fmt(10.0 ** lo))}</text>')
    return p


def as_matrix(a: np.ndarray) -> np.ndarray | None:
    """A 2-D view for the heatmap: 2-D as is, 1-D as one row, N-D as (prod(shape[:-1]), shape[-1])."""
    if a.ndim == 0 or a.size == 0:
        return None
    if a.ndim == 1:
        return a.reshape(1, -1)
    return a.reshape(-1, a.shape[-1])
