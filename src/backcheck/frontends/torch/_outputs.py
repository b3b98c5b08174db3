"""The outputs a torch check compares: masked entries (-inf), outputs narrower than the inputs (bfloat16 under
autocast), and what a backward pass that raises with one output's gradient alone is found to be."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.bits import BFLOAT16_EPS, machine_eps
from backcheck.calls import first_line
from backcheck.errors import NonFiniteError, UserFunctionError
from backcheck.frontends.hints import masked_note
from backcheck.frontends.torch._tensors import real_of, torch_module
from backcheck.report import Finding, Report
from backcheck.tree import Tree
from backcheck.verdict import RES_FACTOR


def refuse_nonfinite(outs: Sequence[tuple[str, Any]], fname: str) -> None:
    """A typed error where an output holds NaN, or every output entry is infinite: +-inf entries of a real output
    are a mask, left out (see ``parse_dout`` and :meth:`backcheck.outputs.Output.cotangent`)."""
    torch = torch_module()
    for n, t in outs:
        if bool(torch.any(torch.isnan(t.detach()))) or (t.is_complex() and not bool(torch.all(torch.isfinite(t)))):
            raise NonFiniteError(
                f"{fname}'s output {n} contains NaN or Inf at the original point.",
                "check the inputs and the function for log(0), 0/0 or overflow.",
            )
    if sum(t.numel() for _, t in outs) and not any(bool(torch.any(torch.isfinite(t.detach()))) for _, t in outs):
        raise NonFiniteError(
            f"{fname}'s outputs are all infinite at the original point: nothing is left to check.",
            "check the inputs and the function for overflow; a mask (-inf) may cover some entries only.",
        )


def masks_held(outs: Sequence[tuple[str, Any]], ev: Any, fname: str) -> list[str]:
    """A note naming the outputs' masked (infinite) entries; a typed error where the numeric side finds them
    finite (an overflow of the inputs' dtype, exp(100) in float32, that float64 does not have: no mask)."""
    torch = torch_module()
    counts = [(n, int(torch.isinf(t.detach()).sum()), t.numel()) for n, t in outs]
    note = masked_note(counts)
    if note and not any(m is not None for m in ev.output.masks):
        n, k, size = next(c for c in counts if c[1])
        raise NonFiniteError(
            f"{fname}'s output {n} ({k} of {size}) overflows to inf at the original point, where the same function "
            "in a wider dtype is finite: no mask, an overflow of the inputs' dtype.",
            "check the inputs and the function for overflow (exp of large inputs); scale them, or check in float64.",
        )
    return [note] if note else []


#: A gradient that passed through a narrower output's dtype is granted this many of its epsilons of rounding
#: (the backward rounds there once or a few times: autocast's bfloat16 matmul accumulates in float32).
NARROW_OUTPUT_ULPS = 4.0


def output_eps(outs: Sequence[Any]) -> float:
    """The machine epsilon of the narrowest checked output (bfloat16's where one is)."""
    torch = torch_module()
    return max(
        (BFLOAT16_EPS if real_of(t.dtype) == torch.bfloat16 else float(torch.finfo(real_of(t.dtype)).eps)) for t in outs
    )


def through_narrow_outputs(tree: Tree, grad_eps: np.ndarray | None, native: float, numeric: float) -> np.ndarray | None:
    """``grad_eps``, widened where the gradient passed through outputs narrower than the numeric side's.

    A function that returns bfloat16 or float16 from wider inputs (autocast, ``x.bfloat16()``) runs its backward
    pass from a cotangent in that dtype, and rounds there, whatever dtype it hands back; where the numeric side
    computes in float32 or float64 (autocast leaves float64 alone), its differences resolve finer than that
    rounding, which is granted: :data:`NARROW_OUTPUT_ULPS` epsilons of the narrowest output (``native``). Where
    the numeric side returns the narrow dtype too, its own rounding already bounds every comparison."""
    if not numeric < machine_eps(np.float16) <= native:
        return grad_eps
    own = grad_eps if grad_eps is not None else tree.per_leaf([machine_eps(lf.dtype) for lf in tree.leaves])
    return np.maximum(own, native * NARROW_OUTPUT_ULPS / RES_FACTOR)  # (grad_eps is granted RES_FACTOR times)


#: The hint of a backward pass that raised on None: an output's gradient autograd leaves undefined.
NONE_GRAD_HINT = (
    "a backward pass gets None for an output whose gradient is undefined (an output that does not reach the loss, "
    "under ctx.set_materialize_grads(False)): test each grad_output for None before using it."
)


class AloneRaised(UserFunctionError):
    """The backward pass raised with one output's cotangent alone (the others undefined), where it ran with all."""

    def __init__(self, message: str, hint: str | None, alone: str) -> None:
        super().__init__(message, hint)
        self.alone = alone


def alone_finding(fname: str, exc: AloneRaised) -> Finding:
    cause = exc.__cause__
    what = f"{type(cause).__name__}: {first_line(cause)}" if cause is not None else first_line(exc)
    return Finding(
        "undefined gradient",
        f"the backward pass of {fname} raised {what}, with the gradient of {exc.alone} alone, where it runs with "
        "every output's, so a loss of one output raises it too: " + NONE_GRAD_HINT,
        where=fname,
    )


def merge_alone(main: Report, alone: Sequence[Report]) -> Report:
    """The main report with the leaves, findings and notes of the outputs checked alone."""
    notes = list(dict.fromkeys([*main.notes, *(n for r in alone for n in r.notes)]))
    return dataclasses.replace(
        main,
        leaves=[*main.leaves, *(lf for r in alone for lf in r.leaves)],
        findings=[*main.findings, *(f for r in alone for f in r.findings)],
        curves=[*main.curves, *(c for r in alone for c in r.curves)],
        notes=notes,
        n_evals=main.n_evals + sum(r.n_evals for r in alone),
        seconds=main.seconds + sum(r.seconds for r in alone),
    )
