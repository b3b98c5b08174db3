"""Float32 kernels of data far from 0 beside its spread: how often right rules fail and wrong ones pass.

A batch norm, a layer norm and an unbiased variance, each computed in float32 forward and backward (the
arithmetic of a float32 model, whatever it is handed), on 8x3 inputs ``offset + spread * N(0, 1)`` at offsets 100
to 1e4 and spreads 1 to 0.01, several seeds each; the rule right, 1% too large and 5% too large. A right rule
should never fail; 5% off (the size a pass vouches for) should never pass; 1% off may pass (below it).

    python benchmarks/offsets.py [--seeds 6]
"""

from __future__ import annotations

import argparse
import collections
import warnings

import numpy as np

import backcheck

F32 = np.float32
SETTINGS = [(100.0, 1.0), (100.0, 0.1), (1e3, 1.0), (1e3, 0.1), (1e4, 1.0), (100.0, 0.01)]
RULES = {"right": 1.0, "1% off": 1.01, "5% off": 1.05}


def c32(a):
    return np.asarray(a, F32)


def batchnorm(x):
    xc = x - x.mean(0)
    return xc / np.sqrt((xc**2).mean(0) + F32(1e-5))


def batchnorm_backward(d, x):
    n, xc = x.shape[0], x - x.mean(0)
    istd = 1 / np.sqrt((xc**2).mean(0) + F32(1e-5))
    xh = xc * istd
    return istd / n * (n * d - d.sum(0) - xh * (d * xh).sum(0))


def layernorm(x):
    xc = x - x.mean(-1, keepdims=True)
    return xc / np.sqrt((xc**2).mean(-1, keepdims=True) + F32(1e-5))


def layernorm_backward(d, x):
    m, xc = x.shape[-1], x - x.mean(-1, keepdims=True)
    std = np.sqrt((xc**2).mean(-1, keepdims=True) + F32(1e-5))
    xh = xc / std
    return (m * d - d.sum(-1, keepdims=True) - xh * (d * xh).sum(-1, keepdims=True)) / (m * std)


def variance(x):
    return x.var(-1, ddof=1)


def variance_backward(d, x):
    return d[..., None] * 2 * (x - x.mean(-1, keepdims=True)) / (x.shape[-1] - 1)


KERNELS = {
    "batch norm": (batchnorm, batchnorm_backward),
    "layer norm": (layernorm, layernorm_backward),
    "variance": (variance, variance_backward),
}


def sweep(seeds: int) -> dict[str, collections.Counter]:
    """The verdicts per rule over every kernel, setting and seed."""
    tally = {rule: collections.Counter() for rule in RULES}
    for f, b in KERNELS.values():
        for offset, spread in SETTINGS:
            for seed in range(seeds):
                x = c32(offset + spread * np.random.default_rng(seed).standard_normal((8, 3)))
                for rule, scale in RULES.items():
                    report = backcheck.check_layer(
                        lambda x, f=f: c32(f(c32(x))),
                        lambda d, x, b=b, s=scale: c32(F32(s) * b(c32(d), c32(x))),
                        x,
                    )
                    tally[rule][report.status] += 1
    return tally


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=6, help="seeds per kernel and setting (default 6)")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    tally = sweep(args.seeds)
    total = len(KERNELS) * len(SETTINGS) * args.seeds
    print(f"float32 kernels far from 0: {len(KERNELS)} kernels x {len(SETTINGS)} settings x {args.seeds} seeds")
    print("| rule | pass | inconclusive | fail |")
    print("|---|---|---|---|")
    for rule in RULES:
        c = tally[rule]
        print(f"| {rule} | {c['pass']} / {total} | {c['inconclusive']} / {total} | {c['fail']} / {total} |")


if __name__ == "__main__":
    main()
