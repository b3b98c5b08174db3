"""Gradient checks of backcheck.nn modules, layer by layer: the bug's address, not only "the model is wrong".

:func:`check_module` checks one module's backward pass (its inputs and parameters) at given inputs.
:func:`blame` runs one forward and backward pass of a whole model, captures every layer's real inputs and
upstream gradient, checks each layer in isolation, and returns a table with one row per layer and the first
failing layer marked. ``fit(check='first')`` calls it on the first batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.frontends.layers import check_layer
from backcheck.nn.module import Module
from backcheck.nn.ops.nnfunc import cross_entropy
from backcheck.nn.tensor import Tensor
from backcheck.report import Report


def check_module(
    module: Module,
    *inputs: Any,
    dout: np.ndarray | None = None,
    params: Mapping[str, np.ndarray] | None = None,
    **options: Any,
) -> Report:
    """Check ``module``'s backward pass for its float inputs and its parameters, named as the module names them.

    Parameters
    ----------
    module : Module
    *inputs : numpy.ndarray
        Positional inputs (integer inputs such as labels are passed through).
    dout : numpy.ndarray, optional
        Upstream gradient; default a seeded standard normal array.
    params : dict, optional
        Parameter values to check at (default: the module's current values); nothing is modified.
    **options
        Passed to :func:`backcheck.check_layer` (strategy, atol, rtol, seed, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from backcheck.nn import Linear
    >>> from backcheck.nn.check import check_module
    >>> check_module(Linear(3, 2), np.ones((4, 3))).ok
    True
    """
    current = {n: p.data for n, p in module.named_parameters()}
    pvalues = {n: np.array((params or {}).get(n, v), copy=True) for n, v in current.items()}
    pnames = list(pvalues)
    n_in = len(inputs)
    in_names = ["input"] if n_in == 1 else [f"input{k}" for k in range(n_in)]

    def forward(*arrays: Any) -> np.ndarray:
        return module.pure_forward(*arrays[:n_in], params=dict(zip(pnames, arrays[n_in:], strict=True)))

    def backward(d: np.ndarray, *arrays: Any) -> tuple[Any, ...]:
        in_grads, p_grads = module.vjp(list(arrays[:n_in]), d, params=dict(zip(pnames, arrays[n_in:], strict=True)))
        return (*in_grads, *(p_grads[n] for n in pnames))

    forward.__name__ = f"{type(module).__name__}.forward"
    backward.__name__ = f"{type(module).__name__}.backward"
    return check_layer(
        forward, backward, (*inputs, *pvalues.values()), dout=dout, names=[*in_names, *pnames], **options
    )


@dataclass
class BlameRow:
    """One layer's verdict in a :class:`Blame` table."""

    name: str
    kind: str
    report: Report

    @property
    def status(self) -> str:
        return self.report.status

    @property
    def worst_ratio(self) -> float:
        """The largest |analytic - numeric| / bound over the layer's elements (above 1 means wrong)."""
        ratios = [e.abs_err / e.bound for lf in self.report.leaves for e in lf.worst if e.bound > 0]
        return max(ratios, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "worst_ratio": self.worst_ratio,
            "report": self.report.to_dict(),
        }


@dataclass
class Blame:
    """Every layer of a model checked in isolation at the values of one real forward and backward pass."""

    rows: list[BlameRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.report.ok for r in self.rows)

    @property
    def first_failing(self) -> BlameRow | None:
        return next((r for r in self.rows if not r.report.ok), None)

    def row(self, name: str) -> BlameRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer named {name!r}; the layers are {[r.name for r in self.rows]}")

    def __str__(self) -> str:
        first = self.first_failing
        lines = [f"{'':2}{'layer':<16}{'type':<14}{'verdict':<10}{'evaluations':>12}{'worst |diff|/bound':>20}"]
        for r in self.rows:
            mark = "> " if r is first else "  "
            lines.append(f"{mark}{r.name:<16}{r.kind:<14}{r.status:<10}{r.report.n_evals:>12}{r.worst_ratio:>20.3g}")
        lines.append("all layers pass" if first is None else f"first failing layer: {first.name}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_failing
        return {"ok": self.ok, "first_failing": first.name if first else None, "rows": [r.to_dict() for r in self.rows]}


def blame(
    model: Module,
    x: np.ndarray,
    y: Any = None,
    loss_fn: Callable[[Tensor, Any], Tensor] = cross_entropy,
    **options: Any,
) -> Blame:
    """Check every layer of ``model`` at the inputs and upstream gradient it really sees on ``(x, y)``.

    One forward pass and one backward pass of ``loss_fn(model(x), y)`` are captured; each leaf module
    (one without submodules) is then checked in isolation with :func:`check_module`, the dropout masks of
    that pass replayed. The model's parameters, gradients and running statistics are left as they were.

    Examples
    --------
    >>> import numpy as np
    >>> from backcheck.nn import MLP
    >>> from backcheck.nn.check import blame
    >>> table = blame(MLP([4, 8, 3]), np.random.default_rng(0).normal(size=(5, 4)), np.array([0, 1, 2, 0, 1]))
    >>> table.ok
    True
    """
    grads = {n: p.grad for n, p in model.named_parameters()}
    state = {n: np.array(v, copy=True) for n, v in model.state_dict().items()}
    try:
        with model.capture() as records:
            out = model(Tensor(np.asarray(x)))
            loss = loss_fn(out, y) if y is not None else loss_fn(out, None)
            loss.backward()
        rows = []
        for name, rec in records.items():
            module = rec.module
            if any(True for _ in module.children()) or rec.grad_output is None:
                continue
            float_inputs = [i for i in rec.inputs if isinstance(i, np.ndarray)]
            if not float_inputs:
                continue
            with module.replay():
                report = check_module(module, *rec.inputs, dout=rec.grad_output, params=rec.params, **options)
            rows.append(BlameRow(name or type(module).__name__, type(module).__name__, report))
        return Blame(rows)
    finally:
        model.load_state_dict(state)
        for n, p in model.named_parameters():
            p.grad = grads[n]


def check_grad_of_grad(
    fn: Callable[..., Tensor], *inputs: np.ndarray, dout: np.ndarray | None = None, seed: int = 0, **options: Any
) -> Report:
    """Check the double backward of engine ops: gradients from :func:`backcheck.nn.higher.grad`, differentiated.

    First the first-order gradient that the ops' tensor rules give is checked against finite differences
    of ``fn``; then the derivative of that gradient (a Hessian-vector product, by :func:`grad` applied
    twice) against finite differences of the gradient, with :func:`backcheck.check_hvp`. A rule that is
    right to first order but treats saved values as constants fails the second check.

    Parameters
    ----------
    fn : callable
        ``fn(*tensors) -> Tensor`` built from engine ops.
    *inputs : numpy.ndarray
        The point (float arrays).
    dout : numpy.ndarray, optional
        The cotangent of ``fn``'s output; default a seeded standard normal array.

    Examples
    --------
    >>> import numpy as np
    >>> from backcheck.nn.check import check_grad_of_grad
    >>> check_grad_of_grad(lambda a, b: (a @ b).tanh(), np.ones((2, 3)) / 3, np.ones((3, 2)) / 2).ok
    True
    """
    from backcheck.nn.higher import grad
    from backcheck.second_order import check_hvp

    arrays = [np.asarray(x) for x in inputs]
    out0 = fn(*[Tensor(a) for a in arrays])
    u = dout if dout is not None else np.random.default_rng(seed + 11).standard_normal(out0.shape).astype(out0.dtype)

    def tensors(params: Any) -> list[Tensor]:
        return [Tensor(np.array(p, copy=True), requires_grad=True) for p in params]

    def first_order(params: Any) -> list[np.ndarray]:
        ts = tensors(params)
        return [g.numpy().copy() for g in grad(fn(*ts), ts, u)]

    def second_order(params: Any, v: Any) -> list[np.ndarray]:
        ts = tensors(params)
        gs = grad(fn(*ts), ts, u)
        total = gs[0].__mul__(Tensor(np.asarray(v[0]))).sum()
        for g, vi in zip(gs[1:], v[1:], strict=True):
            total = total + (g * Tensor(np.asarray(vi))).sum()
        return [h.numpy().copy() for h in grad(total, ts)]

    def forward(*xs: np.ndarray) -> np.ndarray:
        return fn(*[Tensor(x) for x in xs]).numpy().copy()

    def backward(d: np.ndarray, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        ts = tensors(xs)
        return tuple(g.numpy().copy() for g in grad(fn(*ts), ts, d))

    first = check_layer(forward, backward, tuple(arrays), dout=u, **options)
    if not first.ok:
        first.notes.insert(0, "the first-order gradient from the ops' tensor rules is wrong already")
        return first
    report = check_hvp(None, first_order, second_order, list(arrays), seed=seed, **options)
    report.notes.insert(
        0,
        "second order: the derivative of <v, gradient> from the ops' tensor rules, checked "
        "against finite differences of that gradient (the first order passed).",
    )
    return report
