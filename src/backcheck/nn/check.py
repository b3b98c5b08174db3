"""Gradient checks of backcheck.nn modules, layer by layer: the bug's address, not only "the model is wrong".

:func:`check_module` checks one module's backward pass (its inputs and parameters) at given inputs.
:func:`blame` runs one forward and backward pass of a whole model, captures every layer's real inputs and
upstream gradient, checks each layer in isolation, and returns a table with one row per layer and the first
failing layer marked. ``fit(check='first')`` calls it on the first batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from backcheck.blame import Blame, BlameRow
from backcheck.calls import call_user, function_name, require_callable
from backcheck.errors import BadInputError
from backcheck.frontends.layers import check_layer
from backcheck.nn.layers import masks_drawn_when_missing
from backcheck.nn.module import Module, random_state_kept
from backcheck.nn.ops.nnfunc import cross_entropy
from backcheck.nn.tensor import Tensor
from backcheck.options import Options
from backcheck.report import Report

__all__ = ["Blame", "BlameRow", "blame", "check_grad_of_grad", "check_module"]


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
    current = _validated(module, params, options)
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
    # a training Dropout without a mask at these inputs' shapes (a fresh model, a short last batch) draws one
    with masks_drawn_when_missing(module):
        return check_layer(
            forward, backward, (*inputs, *pvalues.values()), dout=dout, names=[*in_names, *pnames], **options
        )


#: check_layer's arguments that check_module sets itself: not options a caller may pass through
_OWN_ARGUMENTS = ("forward", "backward", "inputs", "dout", "names")


def _validated(module: Any, params: Any, options: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The module's parameter values by name, once ``module``, ``params`` and ``options`` are known to be
    usable (:class:`BadInputError` naming the culprit otherwise)."""
    _require_module(module, "check_module")
    current = {n: p.data for n, p in module.named_parameters()}
    if params is not None and not isinstance(params, Mapping):
        raise BadInputError(
            f"params is a {type(params).__name__}; expected a dict of parameter values by name.",
            f"pass e.g. params={{'{next(iter(current), 'weight')}': array}}, or leave it out.",
        )
    unknown = sorted(map(str, set(params or {}) - set(current)))
    if unknown:
        raise BadInputError(
            f"params names {unknown}, which {type(module).__name__} does not have: {sorted(current)}.",
            "use the names of module.named_parameters().",
        )
    known = set(inspect.signature(check_layer).parameters) - set(_OWN_ARGUMENTS)
    bad = sorted(set(options) - known)
    if bad:
        raise BadInputError(
            f"check_module got the option(s) {bad}, which it does not take.", f"the options are {sorted(known)}."
        )
    return current


def _require_module(module: Any, entry: str) -> None:
    if not isinstance(module, Module):
        raise BadInputError(
            f"{entry} takes a backcheck.nn Module, not a {type(module).__name__}.",
            "pass a module such as Linear(3, 2); for a pair of functions use backcheck.check_layer.",
        )


def _tensor(value: Any, what: str) -> Tensor:
    """``value`` when it is an engine Tensor, or :class:`BadInputError` naming ``what`` returned it."""
    if not isinstance(value, Tensor):
        raise BadInputError(
            f"{what} returned a {type(value).__name__}, not a backcheck.nn Tensor.",
            "build it from engine ops on the tensors it is given, so that it can be differentiated.",
        )
    return value


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
    _require_module(model, "blame")
    require_callable(loss_fn, "loss_fn", "pass a function loss_fn(output, y) -> Tensor, e.g. cross_entropy.")
    grads = {n: p.grad for n, p in model.named_parameters()}
    state = {n: np.array(v, copy=True) for n, v in model.state_dict().items()}
    # the extra forward draws dropout masks: the generators are put back, so training is not disturbed
    with random_state_kept(model):
        try:
            with model.capture() as records:
                out = call_user(model, (Tensor(np.asarray(x)),), type(model).__name__)
                loss = _tensor(call_user(loss_fn, (out, y), function_name(loss_fn, "loss_fn")), "loss_fn")
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
                rows.append(BlameRow.of(name or type(module).__name__, type(module).__name__, report))
            return Blame(type(model).__name__, rows, unit="layer")
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
    twice) against finite differences of the gradient, by the core :func:`backcheck.check_grad_of_grad`. A
    rule that is right to first order but treats saved values as constants fails the second check.

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
    from backcheck.second_order import check_grad_of_grad as check_second_order

    require_callable(fn, "fn", "pass fn(*tensors) -> Tensor built from engine ops, then its inputs.")
    if not inputs:
        raise BadInputError("check_grad_of_grad got no inputs for fn.", "pass them after fn: check_grad_of_grad(fn, x)")
    arrays = [np.asarray(x) for x in inputs]
    out0 = _tensor(call_user(fn, tuple(Tensor(a) for a in arrays), function_name(fn, "fn")), "fn")
    rng = Options.make(seed=seed).rng("dout")
    u = dout if dout is not None else rng.standard_normal(out0.shape).astype(out0.dtype)

    def tensors(params: Any) -> list[Tensor]:
        return [Tensor(np.array(p, copy=True), requires_grad=True) for p in params]

    def backward(d: np.ndarray, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        ts = tensors(xs)
        return tuple(g.numpy().copy() for g in grad(fn(*ts), ts, d))

    def forward(*xs: np.ndarray) -> np.ndarray:
        return fn(*[Tensor(x) for x in xs]).numpy().copy()

    def first_order(params: Any) -> list[np.ndarray]:
        return list(backward(u, *params))

    def second_order(params: Any, v: Any) -> list[np.ndarray]:
        ts = tensors(params)
        gs = grad(fn(*ts), ts, u)
        total = (gs[0] * Tensor(np.asarray(v[0]))).sum()
        for g, vi in zip(gs[1:], v[1:], strict=True):
            total = total + (g * Tensor(np.asarray(vi))).sum()
        return [h.numpy().copy() for h in grad(total, ts)]

    first = check_layer(forward, backward, tuple(arrays), dout=u, seed=seed, **options)
    if not first.ok:
        first.notes.insert(0, "the first-order gradient from the ops' tensor rules is wrong already")
        return first
    report = check_second_order(first_order, second_order, list(arrays), seed=seed, **options)
    report.notes.insert(
        0,
        "second order: the derivative of <v, gradient> from the ops' tensor rules, checked "
        "against finite differences of that gradient (the first order passed).",
    )
    return report
