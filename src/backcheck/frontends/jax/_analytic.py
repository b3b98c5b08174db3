"""The side under test: ``jax.vjp`` (reverse mode, ``custom_vjp`` rules) and ``jax.jvp`` (forward mode,
``custom_jvp`` rules), at the inputs' own dtypes, in the x64 mode the user runs jax in.

Both give the gradient of ``phi = <dout, fn(*args)>`` as one flat float64 vector in the trees' order:
reverse mode pulls ``dout`` back; forward mode pushes every basis tangent forward (``jax.vmap`` over
batches of them) and dots the results with ``dout``, with one more tangent (the unit tangents scaled and
summed) that probes the rule's linearity in its tangent. Non-finite input entries are not coordinates: their
entries are 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backcheck.calls import call_user, first_line
from backcheck.errors import BadInputError, UserFunctionError
from backcheck.frontends.common import jvp_linearity_finding, tangent_coefficients, wide_refused
from backcheck.frontends.jax._inputs import Inputs, Outputs
from backcheck.frontends.jax._trace import Runner
from backcheck.report import Finding
from backcheck.tree import Tree, format_index

#: Basis tangents pushed through ``jax.jvp`` per compiled call in forward mode.
FWD_BATCH = 64
#: What jax says when forward mode meets a custom_vjp function.
_NO_JVP = "can't apply forward-mode autodiff (jvp) to a custom_vjp function"


class Sides:
    """``reverse(point)`` and ``forward(point)``: the claimed gradient at the original point (None) or at
    another point given as one array per leaf (a nearby re-check)."""

    def __init__(self, run: Runner, inputs: Inputs, outs: Outputs, tree: Tree, fname: str):
        self.run, self.inputs, self.outs, self.tree, self.fname = run, inputs, outs, tree, fname
        self.u = outs.u
        #: the dtypes of the reverse-mode gradient's parts at the original point (a rule may return float32
        #: for a float64 input: judged at the coarser resolution)
        self.grad_dtypes: list[np.dtype] = []
        #: the 'nonlinear jvp' finding of the forward pass at the original point, if any
        self.jvp_finding: Finding | None = None
        self.keep = np.concatenate(
            [
                np.ones(d.size, bool) if m is None else ~m.reshape(-1)
                for d, m in zip(inputs.diff, inputs.masks, strict=True)
            ]
        )
        # the masks that are +-inf (not NaN: padding keeps NaN in, NaN out), and those where a gradient was not
        # finite (see backcheck.findings.masked_gradient)
        self.infinite = np.concatenate([np.isinf(np.asarray(d, dtype=np.float64)).reshape(-1) for d in inputs.diff])
        self.masked_nonfinite = np.empty(0, dtype=np.intp)

    def _point(self, point: Sequence[np.ndarray] | None) -> list[Any]:
        if point is None:
            return self.inputs.diff
        out = []
        for p, d, m in zip(point, self.inputs.diff, self.inputs.masks, strict=True):
            v = np.asarray(p).astype(d.dtype)
            out.append(v if m is None else np.where(m, np.asarray(d), v).astype(d.dtype))
        return out

    def _flat(self, parts: Sequence[Any]) -> np.ndarray:
        g = np.concatenate([np.asarray(p).astype(np.float64).reshape(-1) for p in parts])
        bad = np.flatnonzero(self.infinite & ~np.isfinite(g))
        if bad.size:
            self.masked_nonfinite = np.union1d(self.masked_nonfinite, bad)
        return np.where(self.keep, g, 0.0)

    def reverse(self, point: Sequence[np.ndarray] | None = None) -> np.ndarray:
        try:
            grads = call_user(self.run.rev, (self._point(point), self.outs.cot), f"jax.vjp of {self.fname}")
        except UserFunctionError as exc:
            if exc.__cause__ is None or not _untransposable(exc.__cause__):
                raise
            raise UserFunctionError(
                f"jax cannot derive reverse mode (jax.vjp) for {self.fname}: jax builds it by transposing forward "
                "mode (a custom_jvp rule's jvp, a loop's derivative), and this one cannot be transposed (for "
                "example a while_loop, or an iterative solver built on one such as gmres or cg, applied to the "
                "tangents; a loop with dynamic bounds; a cond or stop_gradient on the tangents under vmap). jax raised "
                f"{type(exc.__cause__).__name__}: {first_line(exc.__cause__)}",
                "check the rule in forward mode with mode='fwd', where it runs as written; for reverse mode, give "
                "the function a custom_vjp rule, or solve for the tangent with jax.lax.custom_linear_solve, which "
                "jax can transpose.",
            ) from exc.__cause__
        if point is None:
            self.grad_dtypes = [np.asarray(p).dtype for p in grads]
        return self._flat(grads)

    def reverse_scaled(self, times: float) -> np.ndarray:
        """The reverse pass at the original point with the cotangent ``times`` larger, scaled back."""
        cot = [np.asarray(c) * np.asarray(times, dtype=np.asarray(c).dtype) for c in self.outs.cot]
        grads = call_user(self.run.rev, (self.inputs.diff, cot), f"jax.vjp of {self.fname}")
        return self._flat(grads) / times

    def rounding_spread(self, g0: np.ndarray, times: int = 4) -> np.ndarray:
        """How far the native gradient moves when every input moves by a unit in the last place, per element
        (the rounding of a rule that computes in a coarser dtype inside, float16 beside a float32 input)."""
        from backcheck.frontends.jax._numeric import nudge

        gen = np.random.default_rng(0)
        spread = np.zeros_like(g0)
        for _ in range(times):
            moved = [nudge(d, gen) for d in self.inputs.diff]
            grads = call_user(self.run.rev, (moved, self.outs.cot), f"jax.vjp of {self.fname}")
            spread = np.maximum(spread, np.abs(self._flat(grads) - g0))
        return spread

    def reverse_wide(self) -> np.ndarray | str | None:
        """The same reverse pass run in float64 at the original point (x64 mode); None when it answers in another
        dtype, or a sentence naming the function and its exception when it raises there."""
        diff = [np.asarray(d).astype(np.float64) for d in self.inputs.diff]
        cot = [np.asarray(c).astype(np.float64) for c in self.outs.cot]
        try:
            grads = self.run.rev_wide(diff, cot)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a rule that refuses float64 is judged at its own dtype only
            return wide_refused(f"jax.vjp of {self.fname}", exc)
        if any(np.asarray(p).dtype != np.float64 for p in grads):
            return None
        return self._flat(grads)

    def forward(self, point: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """``<dout, jvp(e_i)>`` for every element; at the original point, one more tangent probes the rule's
        linearity (see :func:`~backcheck.frontends.common.tangent_coefficients`): its finding, if any, is left in
        :attr:`jvp_finding`."""
        prim = self._point(point)
        n = self.tree.size
        probe = Probe(n, self.outs, self.keep) if point is None else None
        rows_total = n + (probe is not None)
        res = np.empty(n)
        for start in range(0, rows_total, FWD_BATCH):
            rows = np.arange(start, min(start + FWD_BATCH, rows_total))
            unit = rows[rows < n]
            basis = np.zeros((FWD_BATCH, n))
            basis[np.arange(unit.size), unit] = 1.0
            if probe is not None and unit.size < rows.size:
                basis[unit.size] = probe.coef
            tangents = [
                basis[:, lf.offset : lf.offset + lf.size].reshape((FWD_BATCH, *lf.shape)).astype(d.dtype)
                for lf, d in zip(self.tree.leaves, self.inputs.diff, strict=True)
            ]
            touts = call_user(self.run.fwd, (prim, tangents), f"jax.jvp of {self.fname}")
            total = np.zeros(FWD_BATCH)
            full = []
            for t, u, m in zip(touts, self.u, self.outs.masks, strict=True):
                t64 = np.asarray(t).astype(np.float64).reshape(FWD_BATCH, -1)
                if m is not None:
                    t64 = np.where(m.reshape(1, -1), 0.0, t64)
                total += t64 @ u.reshape(-1)
                full.append(t64)
            res[unit] = total[: unit.size]
            if probe is not None:
                probe.add(np.concatenate(full, axis=1), unit, unit.size < rows.size, _eps(touts))
        if probe is not None:
            self.jvp_finding = probe.finding(self.fname)
        return np.where(self.keep, res, 0.0)

    def forward_or_why(self, mode: str) -> tuple[np.ndarray | None, str]:
        """Forward mode at the original point; for mode 'both' on a function forward mode cannot enter (a
        custom_vjp rule), None and the reason instead."""
        try:
            return self.forward(), ""
        except UserFunctionError as exc:
            if _NO_JVP not in str(exc.__cause__):
                raise
            if mode == "fwd":
                raise BadInputError(
                    f"{self.fname} contains a custom_vjp function, which jax cannot differentiate in forward "
                    "mode (jvp).",
                    "check it with mode='rev' (the default); forward mode needs custom_jvp rules.",
                ) from exc
            return None, (
                f"forward mode was not checked: {self.fname} contains a custom_vjp function, which jax cannot "
                "differentiate in forward mode (jvp); reverse mode was checked."
            )


class Probe:
    """The tangent that probes a forward-mode rule's linearity, and the same combination of the unit tangents'
    output tangents, gathered batch by batch (every output element, not only their dot with ``dout``)."""

    def __init__(self, n: int, outs: Outputs, keep: np.ndarray):
        self.coef = np.where(keep, tangent_coefficients(n), 0.0)  # not a non-finite input's element
        self.names = [
            name + format_index(k)
            for name, shape in zip(outs.names, outs.shapes, strict=True)
            for k in np.ndindex(*shape)
        ]
        self.expected = np.zeros(len(self.names))
        self.size = np.zeros(len(self.names))
        self.probe: np.ndarray | None = None
        self.eps = 0.0

    def add(self, full: np.ndarray, unit: np.ndarray, has_probe: bool, eps: float) -> None:
        """One batch's output tangents (rows: the unit tangents ``unit``, then the probe's if ``has_probe``)."""
        c = self.coef[unit]
        rows = np.where(c[:, None] != 0, full[: unit.size], 0.0)
        with np.errstate(invalid="ignore", over="ignore"):
            self.expected += c @ rows
            self.size += np.abs(c) @ np.abs(rows)
        if has_probe:
            self.probe = full[unit.size]
        self.eps = max(self.eps, eps)

    def finding(self, fname: str) -> Finding | None:
        if self.probe is None or self.probe.size != self.expected.size:
            return None
        return jvp_linearity_finding(fname, self.probe, self.expected, self.size, self.eps, self.names)


def _eps(touts: Sequence[Any]) -> float:
    """The coarsest machine epsilon of the output tangents' dtypes."""
    import jax.numpy as jnp

    return max((float(jnp.finfo(np.asarray(t).dtype).eps) for t in touts), default=0.0)


#: What jax says when it cannot transpose a linearized computation (a custom_jvp rule whose jvp runs a while_loop).
_NO_TRANSPOSE = ("open an issue at", "transpose rule", "reverse-mode differentiation does not work")


def _untransposable(cause: BaseException | None) -> bool:
    """Whether jax's error says it cannot build reverse mode (transpose), not that the user's rule raised."""
    if not isinstance(cause, (NotImplementedError, ValueError)):
        return False
    text = str(cause).lower()
    return any(w in text for w in _NO_TRANSPOSE) or (isinstance(cause, NotImplementedError) and "transpose" in text)


def sections_of(sides: Sides, mode: str, section: Callable[..., Any], prefix: str) -> tuple[list[Any], list[str]]:
    """The sections to judge for ``mode`` (built with ``section(g, at, prefix, note)``) and notes."""
    sections, notes = [], []
    refused: UserFunctionError | None = None
    if mode in ("rev", "both"):
        try:
            sections.append(section(sides.reverse(), sides.reverse, "", ""))
        except UserFunctionError as exc:
            if mode == "rev":
                raise
            refused = exc  # (reverse mode transposes the forward rule: told below when that rule is not linear)
    if mode in ("fwd", "both"):
        g_fwd, why = sides.forward_or_why(mode)
        if g_fwd is None:
            notes.append(why)
        elif mode == "fwd":
            note = "the analytic side is forward mode: <dout, jax.jvp(fn, e_i)> for every element (custom_jvp rules)."
            sections.append(section(g_fwd, sides.forward, "", note))
        else:
            note = (
                f"forward mode checked too: the leaves {prefix}<name> compare jax.jvp (custom_jvp rules) with the "
                "same finite differences."
            )
            sections.append(section(g_fwd, sides.forward, prefix, note))
    if refused is not None:
        cause = refused.__cause__ if refused.__cause__ is not None else refused
        if sides.jvp_finding is not None:
            notes.append(
                f"reverse mode was not checked: jax builds it by transposing the forward-mode rule, which is not "
                f"linear in its tangent (the nonlinear jvp finding), and jax.vjp raised {type(cause).__name__}."
            )
        elif sections and _untransposable(cause):  # (forward mode was checked: its verdict stands, said so)
            notes.append(
                f"reverse mode was not checked: jax cannot transpose this function's forward-mode rule to build it "
                f"(jax.vjp raised {type(cause).__name__}: {first_line(cause)}), so jax.grad cannot differentiate it "
                "either; the check is of forward mode alone."
            )
        else:
            raise refused
    return sections, notes
