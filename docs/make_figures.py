"""Draw the figures of docs/guide.md from real runs of backcheck: ``python docs/make_figures.py``.

Writes small PNGs into docs/img/ (matplotlib, Agg backend). Every number plotted comes from a check or
from the finite differences themselves; nothing is sketched by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backcheck
from backcheck.render._data import leaf_data
from backcheck.zoo import get

OUT = Path(__file__).resolve().parent / "img"
STYLE = {"figure.dpi": 100, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False}


def save(fig: plt.Figure, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    fig.savefig(path, dpi=100, bbox_inches="tight", pil_kwargs={"optimize": True})
    plt.close(fig)
    print(f"{path.relative_to(OUT.parent.parent)}: {path.stat().st_size // 1024} KB")
    return path


def loss(x: np.ndarray) -> float:
    return float(np.sum(np.sin(3 * x) * np.exp(x)))


def loss_grad(x: np.ndarray) -> np.ndarray:
    return (3 * np.cos(3 * x) + np.sin(3 * x)) * np.exp(x)


def wide_sweep(x: np.ndarray, i: int, dtype: type, exact: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward and central difference errors of element ``i`` at steps 1e-12 .. 1 (evaluated in ``dtype``)."""
    steps = np.logspace(-12, 0, 61)
    fwd, cen = [], []
    base = x.astype(dtype)
    f0 = np.sum(np.sin(3 * base) * np.exp(base), dtype=dtype)
    for h in steps:
        xp, xm = base.copy(), base.copy()
        xp[i] += dtype(h)
        xm[i] -= dtype(h)
        hp, hm = float(xp[i]) - float(base[i]), float(base[i]) - float(xm[i])  # the steps actually taken
        fp = np.sum(np.sin(3 * xp) * np.exp(xp), dtype=dtype)
        fm = np.sum(np.sin(3 * xm) * np.exp(xm), dtype=dtype)
        fwd.append(abs((float(fp) - float(f0)) / hp - exact) if hp > 0 else np.nan)
        cen.append(abs((float(fp) - float(fm)) / (hp + hm) - exact) if hp + hm > 0 else np.nan)
    return steps, np.array(fwd), np.array(cen)


def figure_v_curves() -> Path:
    """The V curve in float64 and float32: forward (O(h)) and central (O(h^2)) differences."""
    x = np.linspace(-1.0, 1.0, 7)
    i = 2
    exact = float(loss_grad(x)[i])
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.1), sharey=True)
    for ax, dtype in zip(axes, (np.float64, np.float32), strict=True):
        steps, fwd, cen = wide_sweep(x, i, dtype, exact)
        report = backcheck.check(loss, x.astype(dtype), lambda p: loss_grad(p).astype(p.dtype), curves=True)
        curve = report.curves[0]
        ax.loglog(steps, np.maximum(fwd, 1e-17), color="#b0b0b0", lw=1.5, label="forward difference, O(h)")
        ax.loglog(steps, np.maximum(cen, 1e-17), color="#2c6fbb", lw=1.8, label="central difference, O(h²)")
        ax.loglog(curve.steps, np.maximum(curve.errors, 1e-17), "o", ms=3, color="#c8372d",
                  label="backcheck's curve (report.curves)")
        ax.axvline(curve.chosen, color="k", ls="--", lw=1)
        ax.text(curve.chosen / 1.5, 3e-16, f"chosen h = {curve.chosen:.1g}", fontsize=8, ha="right")
        ax.set_title(f"{np.dtype(dtype).name}: error of d/dx{i} vs step h")
        ax.set_xlabel("step h")
        ax.set_ylim(1e-16, 10)
        ax.text(0.02, 0.94, "← round-off ∝ ε|f|/h", fontsize=8, transform=ax.transAxes)
        ax.text(0.98, 0.94, "truncation ∝ h² →", fontsize=8, transform=ax.transAxes, ha="right")
    axes[0].set_ylabel("|numeric − analytic|")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    return save(fig, "v_curve.png")


def figure_kink() -> Path:
    """ReLU at 0: the one-sided differences disagree at every step; at a smooth point they converge."""
    steps = np.logspace(-8, 0, 33)

    def relu_sum(v: float) -> float:
        return float(np.maximum(v, 0.0))

    def softplus(v: float) -> float:
        return float(np.log1p(np.exp(v)))

    fig, axes = plt.subplots(1, 2, figsize=(8.0, 2.9))
    for ax, (fn, x0, title) in zip(axes, ((relu_sum, 0.0, "ReLU at x = 0 (a kink)"),
                                          (softplus, 0.0, "softplus at x = 0 (smooth)")), strict=True):
        right = [(fn(x0 + h) - fn(x0)) / h for h in steps]
        left = [(fn(x0) - fn(x0 - h)) / h for h in steps]
        central = [(fn(x0 + h) - fn(x0 - h)) / (2 * h) for h in steps]
        ax.semilogx(steps, right, color="#c8372d", lw=1.8, label="right: (f(x+h) − f(x)) / h")
        ax.semilogx(steps, left, color="#2e8b57", lw=1.8, label="left: (f(x) − f(x−h)) / h")
        ax.semilogx(steps, central, color="#2c6fbb", lw=1.2, ls="--", label="central")
        ax.set_title(title)
        ax.set_xlabel("step h")
        ax.set_ylim(-0.1, 1.1)
    axes[0].set_ylabel("slope estimate")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    return save(fig, "kink.png")


def figure_histogram() -> Path:
    """|analytic − numeric| / bound for every element of a correct and of a subtly wrong layer."""
    layer = get("layernorm")
    x = tuple(layer.make_inputs(np.random.default_rng(0), np.float64).values())
    bug = next(b for b in layer.bugs if b.name == "scale_1e-5")
    good = backcheck.check_layer(layer.forward, layer.backward, x)
    bad = backcheck.check_layer(layer.forward, bug.backward, x)
    fig, ax = plt.subplots(figsize=(6.4, 2.9))
    bins = np.arange(-6, 6.01, 0.25)
    for report, colour, name in ((good, "#2e8b57", "correct backward"),
                                 (bad, "#c8372d", "every gradient 1 + 1e-5 times too large")):
        ratios = np.concatenate([d.ratios()[0] for d in leaf_data(report) if d.has_arrays])
        ratios = np.log10(np.clip(ratios, 1e-6, None))
        ax.hist(ratios, bins=bins, color=colour, alpha=0.7, label=f"{name}: {report.status}")
    ax.axvline(0, color="k", ls="--", lw=1)
    ax.text(0.08, ax.get_ylim()[1] * 0.5, "bound", fontsize=8)
    ax.set_xlabel("log10( |analytic − numeric| / bound )")
    ax.set_ylabel("elements")
    ax.set_title("layer normalization: every element against its error bound")
    ax.legend(fontsize=7.5, loc="upper left")
    fig.tight_layout()
    return save(fig, "histogram.png")


def main() -> int:
    plt.switch_backend("Agg")  # files only, no display
    plt.rcParams.update(STYLE)
    paths = [figure_v_curves(), figure_kink(), figure_histogram()]
    too_big = [p for p in paths if p.stat().st_size > 80 * 1024]
    if too_big:
        print(f"larger than 80 KB: {too_big}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
