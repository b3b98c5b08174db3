"""How small an error in one element each checker finds: the detection-floor column of the bug zoo.

On a few smooth float64 layers of the zoo, one element of the correct gradient is made wrong by a relative
10^-k (k = 1 .. 12): the backward multiplies that element (the middle element of the first input; the same
column of the Jacobian whatever the upstream gradient, so the wrong backward is linear as a real one is) by
1 + 10^-k. A checker's floor on a layer is the smallest 10^-k it fails *together with every larger one*,
provided it passes the correct backward (a checker that fails the correct backward has no floor there: every
error "caught" would be a false alarm). The checkers: the classic threshold (CS231n's relative error 1e-7),
torch gradcheck and jax check_grads with their defaults, backcheck with its defaults and backcheck with
``floor=1e-9`` (the sharp numeric side on demand).

Run on its own:  python benchmarks/bugzoo/floors.py [--layers tanh softmax affine] [--checkers ...]
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks.bugzoo`` importable (imported in functions)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

FLOOR_LAYERS = ("tanh", "softmax", "affine", "layernorm")
QUICK_FLOOR_LAYERS = ("tanh",)
FLOOR_CHECKERS = ("cs231n", "torch_gradcheck", "jax_check_grads", "backcheck", "backcheck_sharp")
EXPONENTS = tuple(range(1, 13))


def one_element_wrong(backward: Callable[..., Any], exponent: int) -> Callable[..., Any]:
    """``backward`` with the middle element of its first gradient multiplied by 1 + 10**-exponent."""
    factor = 1.0 + 10.0**-exponent

    def wrong(dout: Any, *inputs: Any) -> Any:
        grads = list(backward(dout, *inputs))
        g = np.array(grads[0], copy=True)
        g.reshape(-1)[g.size // 2] *= factor
        grads[0] = g
        return tuple(grads)

    wrong.__signature__ = inspect.signature(backward)  # type: ignore[attr-defined]
    wrong.__name__ = f"{backward.__name__}_one_element_1e-{exponent}"
    return wrong


def _verdict(checker: Any, case: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return checker.run(case).verdict
        except Exception:  # a checker crashing on a case is a result
            return "error"


def floor_of(verdicts: dict[int, str]) -> float | None:
    """The smallest 10^-k failed with every larger error also failed; None if 10^-1 already passes."""
    found = None
    for k in sorted(verdicts):
        if verdicts[k] != "fail":
            break
        found = 10.0**-k
    return found


def run_floors(
    layers: Sequence[str] = FLOOR_LAYERS,
    checkers: Sequence[str] = FLOOR_CHECKERS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Per checker and layer: the correct backward's verdict, the verdict at each 10^-k, and the floor."""
    from benchmarks.bugzoo.cases import Case
    from benchmarks.bugzoo.peers import CHECKERS, FLOOR_ONLY

    from backcheck import zoo

    started = time.perf_counter()
    every = {**CHECKERS, **FLOOR_ONLY}
    chosen = [every[c] for c in checkers]
    for setup in {c.setup for c in chosen}:
        setup()
    out: dict[str, Any] = {"layers": list(layers), "exponents": list(EXPONENTS), "checkers": {}, "labels": {}}
    for checker in chosen:
        out["labels"][checker.name] = checker.label
        per: dict[str, Any] = {}
        for name in layers:
            layer = zoo.get(name)
            point = layer.make_inputs(np.random.default_rng(0), np.float64)
            correct = _verdict(checker, Case(layer, "float64", "correct", 0, point))
            verdicts = {}
            for k in EXPONENTS:
                bug = zoo.Bug(f"one_element_1e-{k}", one_element_wrong(layer.backward, k), "subtle", "One element.")
                verdicts[k] = _verdict(checker, Case(layer, "float64", "bug", 0, point, bug))
            per[name] = {
                "correct": correct,
                "verdicts": {str(k): v for k, v in verdicts.items()},
                "floor": floor_of(verdicts) if correct == "pass" else None,
            }
        floors = [per[n]["floor"] for n in layers]
        per_layer_ok = all(per[n]["correct"] == "pass" for n in layers) and None not in floors
        out["checkers"][checker.name] = {"layers": per, "worst": max(floors) if per_layer_ok else None}
        if progress:
            progress(f"floors: {checker.label}: " + ", ".join(f"{n} {_fmt(per[n])}" for n in layers))
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def _fmt(entry: dict[str, Any]) -> str:
    if entry["correct"] != "pass":
        return f"correct {entry['correct']}"
    return "none" if entry["floor"] is None else f"{entry['floor']:.0e}"


def worst_text(floors: dict[str, Any], name: str) -> str:
    """The checker's floor over every layer (the largest), for the main table's column."""
    entry = floors["checkers"].get(name)
    if entry is None:
        return "-"
    if entry["worst"] is None:
        wrong = [n for n, e in entry["layers"].items() if e["correct"] != "pass"]
        return "false alarm" if wrong else "none"
    return f"{entry['worst']:.0e}"


def markdown_lines(floors: dict[str, Any]) -> list[str]:
    layers = floors["layers"]
    lines = [
        "**Smallest single-element error caught** (float64; one element of the correct gradient wrong by a "
        "relative 10^-k, k = 1..12; the smallest caught with every larger one caught; *false alarm*: the "
        "checker fails the correct backward there)",
        "",
        "| checker | " + " | ".join(f"`{n}`" for n in layers) + " | all layers |",
        "|---|" + "|".join(["---:"] * (len(layers) + 1)) + "|",
    ]
    for name, entry in floors["checkers"].items():
        cells = [_fmt(entry["layers"][n]).replace("correct fail", "false alarm") for n in layers]
        lines.append(f"| {floors['labels'][name]} | " + " | ".join(cells) + f" | {worst_text(floors, name)} |")
    return lines


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", nargs="+", default=list(FLOOR_LAYERS))
    p.add_argument("--checkers", nargs="+", default=list(FLOOR_CHECKERS))
    args = p.parse_args(argv)
    floors = run_floors(args.layers, args.checkers, progress=lambda s: print(s, file=sys.stderr, flush=True))
    print("\n".join(markdown_lines(floors)))
    print(f"\n{floors['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
