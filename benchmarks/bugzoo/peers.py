"""The checkers of the bug zoo benchmark, each wrapped the way a user would wrap a numpy layer for it.

Every checker is a function ``run(case) -> Outcome`` with a verdict ``'pass'`` or ``'fail'``; an exception
raised by a checker (a wrapper the peer cannot run, a crash inside the peer) is recorded by the runner as
``'error'``, which counts as neither pass nor fail.

backcheck
    ``backcheck.check_layer(forward, backward, inputs)`` with its defaults; fail unless ``report.ok``
    (an ``inconclusive`` report also fails: ``assert_layer`` would raise). A whole model is checked as users
    check one, ``backcheck.check(loss, params, grad)`` over its parameter dict; the peers get it as a loss
    layer of its parameters (:func:`backcheck.zoo.models.as_layer`).
backcheck_sharp (the detection-floor column only)
    The same with ``floor=1e-9``: elements whose bound is wider are refined until an error of 1e-9 would fail.
torch_gradcheck, torch_gradcheck_fast
    ``torch.autograd.gradcheck`` (slow mode, then ``fast_mode=True``) with its default tolerances
    (eps=1e-6, atol=1e-5, rtol=1e-3) and ``raise_exception=False``, on a ``torch.autograd.Function`` whose
    forward calls the numpy forward on ``t.detach().numpy()`` and whose backward calls the numpy backward
    with the upstream gradient. Integer and boolean inputs are passed as tensors that do not require grad.
    float32 cases run on float32 tensors with the defaults (gradcheck warns; users do it anyway).
jax_check_grads
    ``jax.test_util.check_grads(f, float_inputs, order=1, modes=['rev'])`` with its default tolerances
    (eps=1e-4; atol = rtol = 1e-5 in float64, 2e-3 in float32), where ``f`` is a ``jax.custom_vjp`` whose
    fwd and bwd call the numpy code through ``jax.pure_callback``. Integer and boolean inputs are closed
    over. ``jax_enable_x64`` is switched on in the benchmark process (:func:`setup`), never on import.
scipy_check_grad
    ``scipy.optimize.check_grad(phi, grad, x0)`` on the scalar ``phi(x) = <dout, forward(x)>`` of all float
    inputs packed into one vector ``x0`` (in the case's dtype), with ``grad = backward(dout, x)`` packed
    alike and ``dout`` seeded standard normal. check_grad returns the 2-norm of (analytic - forward
    difference with step 1.49e-8); we fail the case when that norm exceeds ``SCIPY_RTOL[dtype] *
    max(1, |grad|)``: 1e-6 in float64 (the threshold users write in ``assert check_grad(...) < 1e-6``,
    made relative for large gradients), 1e-2 in float32 (float32's forward differences are good to ~1e-3
    at best).
cs231n, cs231n@1e-4
    The CS231n elementwise check written from its description (``eval_numerical_gradient_array``): each
    element of each float input in turn is moved by h = 1e-5 in place and the centered difference
    ``sum((f(x+h) - f(x-h)) * dout) / 2h`` is its numeric gradient; the verdict is the maximum relative
    error ``|a - n| / max(|a|, |n|)`` (0 where both are 0) over all elements. The course notes call
    ``> 1e-7`` suspicious in float64 (``cs231n``) and ``< 1e-4`` "usually okay for objectives with kinks"
    (``cs231n@1e-4``, the looser threshold users fall back on). The same thresholds in float32: the notes
    say to use double precision, and users who do not get what this shows. Both variants share one run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cases import Case, grads_by_name

SCIPY_RTOL = {"float64": 1e-6, "float32": 1e-2}
CS231N_H = 1e-5
CS231N_STRICT = 1e-7
CS231N_LOOSE = 1e-4


@dataclass
class Outcome:
    """A checker's verdict on one case, with a short human-readable detail and the checker's own metric."""

    verdict: str  # 'pass' | 'fail'
    detail: str = ""
    metric: float | None = None
    text: str | None = None  # the full report, kept for backcheck's misses and false alarms
    seconds: float | None = None  # set by checkers that share one run between variants
    status: str | None = None  # backcheck's own verdict: 'pass' | 'fail' | 'inconclusive'


@dataclass
class Checker:
    name: str
    label: str
    run: Callable[[Case], Outcome]
    setup: Callable[[], None] = field(default=lambda: None)
    how: str = ""


# ----------------------------------------------------------------------------------------- backcheck
def run_backcheck(case: Case, **options: Any) -> Outcome:
    import functools

    import backcheck

    if case.model is not None:
        loss = functools.partial(case.model.loss, batch=case.batch)
        grad = functools.partial(case.model_grad, batch=case.batch)
        report = backcheck.check(loss, case.fresh(), grad, **options)
    else:
        report = backcheck.check_layer(case.forward, case.backward, tuple(case.fresh().values()), **options)
    leaves = ", ".join(f"{lf.name}:{lf.status}" for lf in report.leaves)
    findings = "; ".join(f.kind for f in report.findings)
    detail = f"{report.status} ({leaves}{'; findings: ' + findings if findings else ''})"
    return Outcome("pass" if report.ok else "fail", detail, text=str(report), status=report.status)


def run_backcheck_sharp(case: Case) -> Outcome:
    return run_backcheck(case, floor=1e-9)


# ----------------------------------------------------------------------------------------- torch
def setup_torch() -> None:
    import torch

    torch.set_num_threads(1)  # tiny problems, 2 shared cores: no thread pool churn, stable timings


def torch_function(case: Case) -> tuple[Callable[..., Any], list[Any]]:
    """The case's numpy layer as a torch.autograd.Function, and the tensors to call it with."""
    import torch

    names, float_names = case.names, case.float_names
    given = case.fresh()
    # inputs that are not arrays (a random Generator) are closed over, used as the layer uses them
    fixed = {n: x for n, x in given.items() if not isinstance(x, np.ndarray)}
    tensor_names = [n for n in names if n not in fixed]

    def full(arrays: list[Any]) -> list[Any]:
        by_name = dict(zip(tensor_names, arrays, strict=True))
        return [by_name[n] if n in by_name else fixed[n] for n in names]

    class NumpyLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):  # noqa: ANN001, ANN205 - torch's signature
            ctx.save_for_backward(*tensors)
            out = case.forward(*full([t.detach().numpy() for t in tensors]))
            return torch.as_tensor(np.array(out))  # a contiguous copy; 0-d stays 0-d

        @staticmethod
        def backward(ctx, grad_out):  # noqa: ANN001, ANN205
            arrays = full([t.detach().numpy() for t in ctx.saved_tensors])
            grads = grads_by_name(case.backward(grad_out.detach().numpy(), *arrays), names, float_names)
            return tuple(
                torch.as_tensor(np.array(grads[n])) if n in float_names and grads[n] is not None else None
                for n in tensor_names
            )

    tensors = [torch.from_numpy(given[n]).requires_grad_(n in float_names) for n in tensor_names]
    return NumpyLayer.apply, tensors


def _torch_gradcheck(case: Case, fast: bool) -> Outcome:
    from torch.autograd import gradcheck

    # fast mode projects on vectors from a private torch.Generator() with its default seed (uniform, positive
    # entries): its verdicts do not depend on the global seed or on the order of the cases
    fn, tensors = torch_function(case)
    ok = gradcheck(fn, tuple(tensors), raise_exception=False, fast_mode=fast)
    return Outcome("pass" if ok else "fail", "gradcheck returned " + str(bool(ok)))


def run_torch_gradcheck(case: Case) -> Outcome:
    return _torch_gradcheck(case, fast=False)


def run_torch_gradcheck_fast(case: Case) -> Outcome:
    return _torch_gradcheck(case, fast=True)


# ----------------------------------------------------------------------------------------- jax
def setup_jax() -> None:
    import logging

    import jax

    jax.config.update("jax_enable_x64", True)  # float64 cases; benchmark process only
    # a callback that raises is logged with its traceback before the error reaches us; we record it anyway
    logging.getLogger("jax._src.callback").setLevel(logging.CRITICAL)


def jax_function(case: Case) -> tuple[Callable[..., Any], list[np.ndarray]]:
    """The case's numpy layer as a jax.custom_vjp of its float inputs (pure_callback), and those inputs."""
    import jax

    arrays = case.fresh()
    names, float_names = case.names, case.float_names
    fixed = {n: x for n, x in arrays.items() if n not in float_names}
    out0 = np.asarray(case.forward(*case.fresh().values()))
    out_spec = jax.ShapeDtypeStruct(out0.shape, out0.dtype)
    float_specs = [jax.ShapeDtypeStruct(arrays[n].shape, arrays[n].dtype) for n in float_names]

    def full(xs: tuple[Any, ...]) -> list[Any]:
        given = dict(zip(float_names, xs, strict=True))
        return [np.asarray(given[n]) if n in given else fixed[n] for n in names]

    def np_forward(*xs: Any) -> np.ndarray:
        return np.asarray(case.forward(*full(xs)), dtype=out0.dtype)

    def np_backward(g: Any, *xs: Any) -> tuple[np.ndarray, ...]:
        grads = grads_by_name(case.backward(np.asarray(g), *full(xs)), names, float_names)
        return tuple(
            np.zeros(s.shape, s.dtype) if grads[n] is None else np.asarray(grads[n], dtype=s.dtype)
            for n, s in zip(float_names, float_specs, strict=True)
        )

    @jax.custom_vjp
    def f(*xs: Any) -> Any:
        return jax.pure_callback(np_forward, out_spec, *xs)

    def f_fwd(*xs: Any) -> tuple[Any, tuple[Any, ...]]:
        return f(*xs), xs

    def f_bwd(res: tuple[Any, ...], g: Any) -> tuple[Any, ...]:
        return tuple(jax.pure_callback(np_backward, tuple(float_specs), g, *res))

    f.defvjp(f_fwd, f_bwd)
    return f, [arrays[n] for n in float_names]


def run_jax_check_grads(case: Case) -> Outcome:
    from jax.test_util import check_grads

    f, xs = jax_function(case)
    try:
        check_grads(f, xs, order=1, modes=["rev"])
    except AssertionError as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        return Outcome("fail", " | ".join(lines[:3])[:300])
    return Outcome("pass", "check_grads passed")


# ----------------------------------------------------------------------------------------- scipy
def run_scipy_check_grad(case: Case) -> Outcome:
    from scipy.optimize import check_grad

    arrays = case.fresh()
    names, float_names = case.names, case.float_names
    shapes = [arrays[n].shape for n in float_names]
    sizes = [int(np.prod(s)) for s in shapes]
    dtype = np.dtype(case.dtype)
    dout = case.dout(case.forward(*case.fresh().values()))

    def unpack(v: np.ndarray) -> list[Any]:
        parts, k = {}, 0
        for n, s, m in zip(float_names, shapes, sizes, strict=True):
            parts[n] = np.asarray(v[k : k + m], dtype=dtype).reshape(s).copy()
            k += m
        # integer labels copied; a Generator passed as it is, advancing from call to call as in user code
        return [parts[n] if n in parts else (arrays[n].copy() if isinstance(arrays[n], np.ndarray) else arrays[n])
                for n in names]

    def phi(v: np.ndarray) -> Any:
        return np.sum(dout * case.forward(*unpack(v)))

    def grad(v: np.ndarray) -> np.ndarray:
        grads = grads_by_name(case.backward(dout.copy(), *unpack(v)), names, float_names)
        return np.concatenate(
            [
                np.zeros(m, dtype) if grads[n] is None else np.asarray(grads[n]).reshape(-1)
                for n, m in zip(float_names, sizes, strict=True)
            ]
        )

    x0 = np.concatenate([arrays[n].reshape(-1) for n in float_names])
    err = float(check_grad(phi, grad, x0))
    gnorm = float(np.linalg.norm(grad(x0.copy())))
    limit = SCIPY_RTOL[case.dtype] * max(1.0, gnorm)
    verdict = "fail" if not err <= limit else "pass"
    return Outcome(verdict, f"error norm {err:.3g} vs limit {limit:.3g}", metric=err)


# ----------------------------------------------------------------------------------------- CS231n
def eval_numerical_gradient_array(
    f: Callable[[], Any], x: np.ndarray, df: np.ndarray, h: float = CS231N_H
) -> np.ndarray:
    """CS231n style: numeric gradient of sum(f() * df) with respect to x, moving x's elements in place."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        oldval = x[ix]
        x[ix] = oldval + h
        pos = np.array(f(), copy=True)
        x[ix] = oldval - h
        neg = np.array(f(), copy=True)
        x[ix] = oldval
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def max_relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(|a|, |n|) over all elements, counting elements where both are 0 as 0."""
    a, n = np.asarray(analytic, np.float64).ravel(), np.asarray(numeric, np.float64).ravel()
    den = np.maximum(np.abs(a), np.abs(n))
    num = np.abs(a - n)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    rel = np.where(np.isnan(rel), np.inf, rel)
    return float(np.max(rel, initial=0.0))


_CS231N_MEMO: dict[str, tuple[float, float]] = {}


def cs231n_error(case: Case) -> tuple[float, float]:
    """(max relative error, seconds) of the CS231n check on this case; run once, shared by both thresholds."""
    import time

    key = f"{case.id}@{case.seed}"
    if key in _CS231N_MEMO:
        return _CS231N_MEMO[key]
    started = time.perf_counter()
    arrays = case.fresh()
    dout = case.dout(case.forward(*arrays.values()))
    worst = 0.0
    numeric = {}
    for n in case.float_names:  # numeric first, as in the assignments' notebooks
        numeric[n] = eval_numerical_gradient_array(lambda: case.forward(*arrays.values()), arrays[n], dout)
    analytic = grads_by_name(case.backward(dout.copy(), *case.fresh().values()), case.names, case.float_names)
    for n in case.float_names:
        a = np.zeros_like(arrays[n]) if analytic[n] is None else analytic[n]
        if np.shape(a) != np.shape(numeric[n]):
            raise ValueError(f"gradient of {n} has shape {np.shape(a)}, input has {np.shape(numeric[n])}")
        worst = max(worst, max_relative_error(a, numeric[n]))
    _CS231N_MEMO[key] = result = (worst, time.perf_counter() - started)
    return result


def _cs231n(threshold: float) -> Callable[[Case], Outcome]:
    def run(case: Case) -> Outcome:
        err, seconds = cs231n_error(case)
        verdict = "fail" if not err <= threshold else "pass"
        return Outcome(verdict, f"max relative error {err:.3g} vs {threshold:g}", metric=err, seconds=seconds)

    return run


def clear_memo() -> None:
    _CS231N_MEMO.clear()


CHECKERS: dict[str, Checker] = {
    c.name: c
    for c in (
        Checker(
            "backcheck",
            "backcheck.check_layer",
            run_backcheck,
            how="`backcheck.check_layer(forward, backward, inputs)`, defaults; fails unless `report.ok`",
        ),
        Checker(
            "torch_gradcheck",
            "torch gradcheck",
            run_torch_gradcheck,
            setup_torch,
            how="`torch.autograd.gradcheck` on a `torch.autograd.Function` calling the numpy code, defaults "
            "(eps 1e-6, atol 1e-5, rtol 1e-3), float32 cases on float32 tensors",
        ),
        Checker(
            "torch_gradcheck_fast",
            "torch gradcheck fast",
            run_torch_gradcheck_fast,
            setup_torch,
            how="the same with `fast_mode=True` (one random projection)",
        ),
        Checker(
            "jax_check_grads",
            "jax check_grads",
            run_jax_check_grads,
            setup_jax,
            how="`jax.test_util.check_grads(f, args, order=1, modes=['rev'])` on a `jax.custom_vjp` calling "
            "the numpy code through `jax.pure_callback`, defaults (eps 1e-4; tolerance 1e-5 in float64, "
            "2e-3 in float32)",
        ),
        Checker(
            "scipy_check_grad",
            "scipy check_grad",
            run_scipy_check_grad,
            how="`scipy.optimize.check_grad` on phi(x) = <dout, forward(x)>; fails when the error norm "
            "exceeds 1e-6 (float64) or 1e-2 (float32) times max(1, |gradient|)",
        ),
        Checker(
            "cs231n",
            "CS231n (1e-7)",
            _cs231n(CS231N_STRICT),
            how="CS231n's elementwise centered difference (h = 1e-5); fails when the max relative error "
            "|a - n| / max(|a|, |n|) exceeds 1e-7",
        ),
        Checker(
            "cs231n@1e-4",
            "CS231n (1e-4)",
            _cs231n(CS231N_LOOSE),
            how='the same computation judged at 1e-4 ("usually okay for objectives with kinks")',
        ),
    )
}

#: Checkers run only in the detection-floor study (``floors.py``), not on every case.
FLOOR_ONLY: dict[str, Checker] = {
    "backcheck_sharp": Checker(
        "backcheck_sharp",
        "backcheck (floor=1e-9)",
        run_backcheck_sharp,
        how="`backcheck.check_layer(..., floor=1e-9)`: elements refined until an error of 1e-9 would fail",
    )
}
