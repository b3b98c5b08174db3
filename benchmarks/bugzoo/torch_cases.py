"""The zoo's torch cases (custom autograd.Functions) through backcheck.torch and torch.autograd.gradcheck.

Each case of :mod:`backcheck.zoo.torch_functions` is checked in float64 and float32: the correct function is
expected to pass, every bug to fail. backcheck runs ``backcheck.torch.check(fn, *inputs)`` with its defaults
(fail unless ``report.ok``); gradcheck runs with its defaults (eps 1e-6, atol 1e-5, rtol 1e-3, its
reentrancy and undefined-gradient checks on) and ``raise_exception=False``, on inputs that require grad
(float32 inputs as they are: gradcheck warns, users do it anyway). A checker that raises scores 'error'.

Run:  python benchmarks/bugzoo/torch_cases.py [--list] [--dtype float64|float32|both] [--cases NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``backcheck`` importable from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import numpy as np
import torch

import backcheck.torch as bt
from backcheck.zoo.torch_functions import CASES, TorchCase

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def runs(cases: Iterable[TorchCase], dtypes: Iterable[str]) -> list[tuple[str, str, str, Callable[..., Any], Any]]:
    """``(id, expected, dtype, fn, inputs)`` for the correct function and every bug of each case."""
    out = []
    for dtype in dtypes:
        for case in cases:
            inputs = case.make_inputs(np.random.default_rng(0), DTYPES[dtype])
            out.append((f"{case.name}/correct/{dtype}", "pass", dtype, case.fn, inputs))
            out.extend((f"{case.name}/bug:{b.name}/{dtype}", "fail", dtype, b.fn, inputs) for b in case.bugs)
    return out


def backcheck_verdict(fn: Callable[..., Any], inputs: tuple[Any, ...]) -> str:
    return "pass" if bt.check(fn, *inputs).ok else "fail"


def gradcheck_verdict(fn: Callable[..., Any], inputs: tuple[Any, ...]) -> str:
    wrt = tuple(t.detach().clone().requires_grad_(True) for t in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return "pass" if torch.autograd.gradcheck(fn, wrt, raise_exception=False) else "fail"


CHECKERS = {"backcheck.torch": backcheck_verdict, "torch gradcheck": gradcheck_verdict}


def verdict(checker: Callable[..., str], fn: Callable[..., Any], inputs: tuple[Any, ...]) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        result = checker(fn, inputs)
    except Exception as exc:  # a checker crashing on a case is a result, not a crash of the benchmark
        result = f"error ({type(exc).__name__})"
    return result, time.perf_counter() - started


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="list the cases and their bugs, and exit")
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    p.add_argument("--cases", nargs="+", metavar="NAME", help="case names (default: all)")
    args = p.parse_args(list(argv) if argv is not None else None)
    chosen = [c for c in CASES if args.cases is None or c.name in args.cases]
    if args.list:
        for c in chosen:
            print(f"{c.name} ({c.family}): {c.description}")
            for b in c.bugs:
                print(f"  bug:{b.name}: {b.description}")
        return 0
    torch.set_num_threads(1)
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    rows = [["case", "expected", *CHECKERS]]
    right = dict.fromkeys(CHECKERS, 0)
    todo = runs(chosen, dtypes)
    for cid, expected, _dtype, fn, inputs in todo:
        row = [cid, expected]
        for name, checker in CHECKERS.items():
            got, seconds = verdict(checker, fn, inputs)
            right[name] += got == expected
            row.append(f"{got}{'' if got == expected else ' (wrong)'} {seconds:.3f}s")
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    print("right: " + ", ".join(f"{n} {k}/{len(todo)}" for n, k in right.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
