"""PyTorch frontend: check what ``torch.autograd`` computes (custom ``autograd.Function`` backward and jvp
rules, ``nn.Module`` parameters) against finite differences of the same function.

A function ``fn(*inputs) -> tensor or tuple of tensors`` is reduced to the core contract by a cotangent
``dout``: the checked scalar is ``phi = <dout, fn(*inputs)>``, whose gradient torch claims to be
``torch.autograd.grad(fn(*inputs), inputs, dout)``.  The analytic side runs at the tensors' own dtype and
device; the numeric side perturbs float64 numpy copies through the core :class:`~backcheck.tree.Tree` and
:class:`~backcheck.evaluate.Evaluator`, and evaluates ``fn`` on float64 tensors (on the same device) when it
allows it.  The user's tensors are never written: inputs are copied, and module parameters and buffers are
pointed at private storage while a check runs and at their own storage again afterwards (also when ``fn``
raises).

Complex tensors are checked as two real arrays, ``z.real`` and ``z.imag``.  For a real loss ``phi`` torch
returns the conjugate Wirtinger gradient ``z.grad = dphi/dRe(z) + i dphi/dIm(z)`` (twice ``dphi/dconj(z)``);
backcheck compares its real part with the numeric ``dphi/dRe(z)`` and its imaginary part with the numeric
``dphi/dIm(z)``.  A complex output ``y`` with cotangent ``v`` contributes
``Re(sum(conj(v) * y)) = <Re v, Re y> + <Im v, Im y>`` to ``phi``, torch's own convention for
``grad_outputs``.

The numeric side runs ``fn`` as torch runs it under autograd (grad mode on, the checked tensors requiring
grad, the outputs detached afterwards). The backward pass also runs again over one graph, to catch a backward
that writes into its saved tensors, and with its cotangent scaled by powers of two (one negative), to catch one
that is not linear in it (clipping it, or keeping its positive part); the cotangent and the inputs are compared
before and after each backward pass, to catch a backward that writes into them; with 2 to 8 checked inputs,
each input's gradient is also computed with only it requiring grad, to catch a backward that reads
``ctx.needs_input_grad`` for the wrong input; a function with several differentiable outputs is also checked
one output at a time, the others' gradients undefined. The gradient checked is what ``loss.backward()`` leaves
in ``.grad``: a backward that accumulates parameter gradients itself (manual checkpointing) is counted.

This package imports torch on first use only. Layout: ``_tensors`` (dtypes, numpy copies, storage swaps),
``_session`` (one check's state and the numeric side), ``_analytic`` (autograd's side), ``_jvp`` (its forward
mode), ``_setup`` (slots, outputs, cotangent, numeric dtype), ``_vmap`` (batched first differences), ``_check``
(the contract and :func:`backcheck.run.run`), ``_blame``.

>>> import torch
>>> import backcheck.torch as bt
>>> bt.check(torch.sin, torch.linspace(0, 1, 5, dtype=torch.float64)).ok
True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.calls import arg_names, function_name, typed_arguments
from backcheck.errors import BadInputError
from backcheck.frontends.common import JVP_PREFIX, check_keywords
from backcheck.frontends.torch._blame import Blame, BlameRow, blame
from backcheck.frontends.torch._check import Knobs, Target, check_torch
from backcheck.frontends.torch._setup import named_dtype
from backcheck.frontends.torch._tensors import torch_module
from backcheck.options import Options
from backcheck.report import Report

if TYPE_CHECKING:
    import torch

__all__ = ["check", "check_function", "check_module", "blame", "Blame", "BlameRow"]


#: The options of backcheck.check the torch entry points take as they are (validated by Options).
OPTION_NAMES = (
    "strategy",
    "samples",
    "atol",
    "rtol",
    "step",
    "seed",
    "curves",
    "random",
    "floor",
    "detect",
    "confidence",
)


def _option_values(values: dict[str, Any]) -> dict[str, Any]:
    """The options among an entry point's own keywords (``_option_values(locals())``)."""
    return {k: values[k] for k in OPTION_NAMES}


def _knobs(
    options: dict[str, Any], dout: Any, numeric_dtype: Any, vectorized: Any, forward_mode: bool, note: str = ""
) -> Knobs:
    """The options validated once, at the entry (typed errors naming the option)."""
    if vectorized not in (True, False, "auto"):
        raise BadInputError(f"vectorized={vectorized!r} is not True, False or 'auto'.", "use True, False or 'auto'.")
    named_dtype(numeric_dtype)  # a typed error for an unknown dtype
    return Knobs(Options.make(**options), dout, numeric_dtype, vectorized, forward_mode, note)


def _constant(value: Any) -> tuple[str, ...]:
    """``constant=``: names of float inputs passed through unperturbed (a target, a mask), as one name or several."""
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else value
    try:
        out = tuple(names)
    except TypeError:
        out = (None,)
    if not all(isinstance(n, str) for n in out):
        raise BadInputError(
            f"constant={value!r} is not a list of input names.", "pass constant=['target'] (the inputs' names)."
        )
    return out


def _forward_mode(value: Any) -> bool | None:
    """``forward_mode=`` as given (True, False or None), or :class:`BadInputError` naming it."""
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise BadInputError(f"forward_mode={value!r} must be True, False or None.", "pass forward_mode=True.")
    return None if value is None else bool(value)


def _positional(fn: Callable[..., Any], inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The tuple form ``check(fn, (x, w))`` of the point is the same as ``check(fn, x, w)``, unless ``fn``
    takes the sequence itself: ``check(torch.cat, [x, y])`` calls ``torch.cat([x, y])``."""
    if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)) and not kwargs:
        return inputs if _takes_sequence(fn, inputs[0]) else tuple(inputs[0])
    return inputs


def _applied(fn: Any) -> Any:
    """The ``torch.autograd.Function`` subclass whose ``apply`` ``fn`` is (``check(MyFn.apply, x, w)``: its
    ``forward`` names the inputs, after ``ctx``), or None."""
    torch = torch_module()
    owner = getattr(fn, "__self__", None)
    is_function = isinstance(owner, type) and issubclass(owner, torch.autograd.Function)
    return owner if is_function and getattr(fn, "__name__", "") == "apply" else None


def _takes_sequence(fn: Callable[..., Any], seq: Any) -> bool:
    """Whether ``fn(seq)`` rather than ``fn(*seq)`` is meant.

    A function of torch's own (``torch.cat``, ``torch.stack``, ``torch.linalg.multi_dot``) whose one required
    argument is positional takes the sequence: its other parameters (``dim``, ``out``) are not tensors to
    spread. A Python function takes it when it can be called with the sequence and not with its items.
    """
    import inspect

    try:
        sig = inspect.signature(fn)
        own = False
    except (TypeError, ValueError):  # a builtin: torch documents its signature for overrides
        stand_in = _torch_signatures().get(fn)
        if stand_in is None:
            return False
        sig, own = inspect.signature(stand_in), True
    if own:
        params = list(sig.parameters.values())
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        required = [p for p in params if p.kind in positional and p.default is p.empty]
        if not required or params[0] is not required[0] or len(required) > 1:
            return False
        return len(seq) > 1 or required[0].name == "tensors"  # torch.cat([x]); torch.sin((x,)) is spread
    return _binds(sig, (seq,)) and not _binds(sig, tuple(seq))


@functools.lru_cache(maxsize=1)
def _torch_signatures() -> dict[Any, Callable[..., Any]]:
    """torch's functions with a Python stand-in of their signature (built once: about 1400 lambdas)."""
    from torch.overrides import get_testing_overrides

    return get_testing_overrides()


def _binds(sig: Any, args: tuple[Any, ...]) -> bool:
    try:
        sig.bind(*args)
    except TypeError:
        return False
    return True


@typed_arguments
def check(
    fn: Callable[..., Any],
    *inputs: Any,
    dout: Any = None,
    params: Any = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: Any = 0,
    numeric_dtype: Any = "auto",
    forward_mode: bool | None = None,
    vectorized: bool | str = "auto",
    curves: bool = False,
    random: str = "auto",
    constant: Any = None,
    floor: float | None = None,
    detect: float | None = None,
    confidence: float = 0.999,
    **kwargs: Any,
) -> Report:
    """Check torch autograd's gradient of ``fn`` (including custom Functions inside it) by finite differences.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs, **kwargs) -> tensor`` or a tuple / list / dict of tensors (integer outputs, and float
        outputs autograd does not differentiate, are left out; the report says so).
    *inputs, **kwargs
        The point, as ``fn`` takes it: ``check(fn, x, w, mask=m)`` calls ``fn(x, w, mask=m)``. The tensors with
        ``requires_grad`` are checked, or every floating (and complex) tensor when none has it (a note names
        what is left out, tensors requiring grad included); keyword tensors are checked too, under their
        keywords; other arguments are passed through (float ones widened in the float64 runs). Names come from
        ``fn``'s signature. Without keyword inputs, ``check(fn, (x, w))`` (the inputs as one tuple or list) is
        the same as ``check(fn, x, w)``, unless ``fn`` takes a sequence: ``check(torch.cat, [x, y])`` calls
        ``torch.cat([x, y])``. Tensors in a list, tuple or dict argument are inputs too (``tensors[1]``,
        ``batch['x']``); tensors deeper inside containers are passed through, not checked (one that requires grad
        there is a typed error: its gradient would never be compared).
        A keyword that is one of the options below is the option; pass such an input positionally.
    dout : tensor or sequence of tensors, optional
        The upstream gradient, one per differentiable output. Default: 1 for a single scalar output (then
        the gradient itself is checked), else a seeded standard normal tensor in each output's dtype.
    params : nn.Module, dict or list of tensors, optional
        Tensors ``fn`` reads through a closure (a model's parameters), checked under their names
        (``fc1.weight[3, 7]``). While the check runs they point at private storage; afterwards they point at
        their own storage again, bit for bit unchanged, also when ``fn`` raises.
    strategy, samples, atol, rtol, step, seed, curves
        As in :func:`backcheck.check`.
    constant : str or list of str, optional
        Float inputs passed through unperturbed and not checked (a target, a mask), by name: the other way to
        say what ``requires_grad`` on the checked inputs says.
    random : {'auto', 'freeze', 'error'}
        A random function (dropout, sampling): 'auto' checks it again, once it is seen to be random, with the
        same random stream replayed at every call (torch's and numpy's global generators, the ``random``
        module's, and the generators ``fn``, its arguments and its module reach); 'freeze' replays from the
        start; 'error' raises :class:`~backcheck.errors.NondeterministicError`. The report's notes say when
        a stream was replayed.
    numeric_dtype : {'auto', 'native', 'float64', 'float32', 'float16'} or torch.dtype
        The dtype of the numeric side. 'auto' tries float64 and falls back to the inputs' own dtype when
        ``fn`` raises or returns another dtype (report.notes says so). The analytic gradient is always
        computed, and judged, at the inputs' own dtype and device.
    forward_mode : bool, optional
        Also check forward-mode AD (``torch.autograd.forward_ad``, a custom Function's ``jvp``): its
        directional derivatives appear as the leaves ``jvp:<name>``. Default False for ``check``.
    vectorized : bool or 'auto'
        Evaluate the first differences in batches with ``torch.func.vmap``; where vmap cannot (a custom
        Function without ``setup_context``, ``.item()``, randomness) the function is evaluated one point at a
        time (with ``True``, a note says why). Verdicts and evaluation counts are the same either way.
    floor, detect, confidence
        As in :func:`backcheck.check`: the detection floor asked of every element; for random directions
        ('projected', 'auto'), the RMS error they must catch and the confidence to catch it with.

    Returns
    -------
    Report
        Besides the per-element verdicts: a 'saved state' finding when a second backward pass over the same
        graph gives another gradient, a 'nonlinear backward' finding for a backward that clips or normalizes
        its cotangent, a 'missing gradient' finding for an input whose gradient changes when it is the only
        input that requires grad (a ``ctx.needs_input_grad`` slip; checked for 2 to 8 inputs), and for several
        differentiable outputs the leaves ``<output> alone:<input>``, each output checked with the others'
        gradients undefined.

    Examples
    --------
    >>> import torch
    >>> import backcheck.torch as bt
    >>> x = torch.randn(3, 4, dtype=torch.float64)
    >>> w = torch.randn(4, 2, dtype=torch.float64)
    >>> bt.check(lambda x, w: torch.tanh(x @ w), x, w).ok
    True
    >>> bt.check(lambda x, w, scale: scale * torch.tanh(x @ w), x, w, scale=torch.tensor(2.0)).ok
    True
    """
    torch = torch_module()
    knobs = _knobs(
        _option_values(locals()),
        dout,
        numeric_dtype,
        vectorized,
        bool(_forward_mode(forward_mode)),
    )
    args = _positional(fn, inputs, kwargs)
    module = fn if isinstance(fn, torch.nn.Module) else None
    check_keywords(module.forward if module is not None else fn, kwargs, check, "backcheck.torch.check")
    owner = _applied(fn)
    title = type(fn).__name__ if module is not None else f"{owner.__name__}.apply" if owner else function_name(fn)
    consts: tuple[Any, ...] = ()
    if module is not None and params is None:
        consts = (*module.parameters(), *module.buffers())
    named = module.forward if module is not None else owner.forward if owner else fn
    names = arg_names(named, len(args), skip_ctx=owner is not None)
    target = Target(fn, args, kwargs, tuple(names), title, "torch", params, fn, consts, _constant(constant))
    return check_torch(target, knobs)


@typed_arguments
def check_function(
    function: type[torch.autograd.Function],
    *inputs: Any,
    dout: Any = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: Any = 0,
    numeric_dtype: Any = "auto",
    forward_mode: bool | None = None,
    vectorized: bool | str = "auto",
    curves: bool = False,
    random: str = "auto",
    constant: Any = None,
    floor: float | None = None,
    detect: float | None = None,
    confidence: float = 0.999,
    **kwargs: Any,
) -> Report:
    """Check a custom ``torch.autograd.Function``: its ``backward`` and, if it has one, its ``jvp``.

    Parameters
    ----------
    function : subclass of torch.autograd.Function
        Called as ``function.apply(*inputs, **kwargs)``. Names come from its ``forward`` signature (``ctx``
        dropped).
    *inputs, **kwargs
        The point (see :func:`check`).
    forward_mode : bool, optional
        Check the ``jvp`` too (leaves ``jvp:<name>``). Default: when the Function defines ``jvp``. A Function
        with a ``jvp`` and no ``backward`` is checked in forward mode alone, its reverse-mode leaves skipped.
    dout, strategy, samples, atol, rtol, step, seed, numeric_dtype, vectorized, curves, random, constant
        As in :func:`check`.
    floor, detect, confidence
        As in :func:`check`.

    Returns
    -------
    Report

    Examples
    --------
    >>> import torch
    >>> import backcheck.torch as bt
    >>> class Cube(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> bt.check_function(Cube, torch.randn(5, dtype=torch.float64)).ok
    True
    """
    torch = torch_module()
    if not (isinstance(function, type) and issubclass(function, torch.autograd.Function)):
        raise BadInputError(
            f"check_function takes a torch.autograd.Function subclass, not {function!r}.",
            "for a plain function use backcheck.torch.check(fn, *inputs).",
        )
    has_jvp = getattr(function, "jvp", None) is not torch.autograd.Function.jvp
    forward_mode = _forward_mode(forward_mode)
    if forward_mode is True and not has_jvp:
        raise BadInputError(
            f"{function.__name__} defines no jvp staticmethod, so forward mode cannot be checked.",
            "define jvp(ctx, *tangents), or pass forward_mode=None.",
        )
    fwd = has_jvp if forward_mode is None else bool(forward_mode)
    note = (
        f"forward mode checked too: the leaves {JVP_PREFIX}<name> compare {function.__name__}.jvp with the same "
        "finite differences."
    )
    knobs = _knobs(
        _option_values(locals()),
        dout,
        numeric_dtype,
        vectorized,
        fwd,
        note if fwd else "",
    )
    check_keywords(function.forward, kwargs, check_function, "backcheck.torch.check_function")
    names = arg_names(function.forward, len(inputs), skip_ctx=True)
    target = Target(
        function.apply, tuple(inputs), kwargs, tuple(names), function.__name__, "function", constant=_constant(constant)
    )
    return check_torch(target, knobs)


@typed_arguments
def check_module(
    module: Any,
    *inputs: Any,
    dout: Any = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: Any = 0,
    numeric_dtype: Any = "auto",
    vectorized: bool | str = "auto",
    curves: bool = False,
    random: str = "auto",
    constant: Any = None,
    floor: float | None = None,
    detect: float | None = None,
    confidence: float = 0.999,
    **kwargs: Any,
) -> Report:
    """Check an ``nn.Module``'s gradients for its inputs and its parameters, by the parameters' own names.

    The parameters (those with ``requires_grad``) are perturbed through private storage; afterwards every
    parameter and buffer points at its own storage again, bit for bit unchanged, also when ``forward``
    raises (batch-norm running statistics included), and their ``.grad`` is as it was.

    Parameters
    ----------
    module : nn.Module
    *inputs, **kwargs
        The point, as ``module`` takes it; float inputs are checked too (those with ``requires_grad``, or all
        when none has it).
    dout, strategy, samples, atol, rtol, step, seed, numeric_dtype, vectorized, curves, random, constant
        As in :func:`check`; vectorization uses ``torch.func.functional_call``.
    floor, detect, confidence
        As in :func:`check`.

    Returns
    -------
    Report
        Leaves such as ``x`` and ``fc1.weight``; elements such as ``fc1.weight[3, 7]``.

    Examples
    --------
    >>> import torch
    >>> import backcheck.torch as bt
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    >>> report = bt.check_module(mlp, torch.randn(5, 3, dtype=torch.float64))
    >>> report.ok, [lf.name for lf in report.leaves][1:3]
    (True, ['0.weight', '0.bias'])
    """
    torch = torch_module()
    if not isinstance(module, torch.nn.Module):
        raise BadInputError(
            f"check_module takes an nn.Module, not a {type(module).__name__}.",
            "for a function use backcheck.torch.check(fn, *inputs).",
        )
    knobs = _knobs(
        _option_values(locals()),
        dout,
        numeric_dtype,
        vectorized,
        False,
    )
    check_keywords(module.forward, kwargs, check_module, "backcheck.torch.check_module")
    names = arg_names(module.forward, len(inputs))
    target = Target(
        module,
        tuple(inputs),
        kwargs,
        tuple(names),
        type(module).__name__,
        "module",
        module,
        module,
        constant=_constant(constant),
    )
    return check_torch(target, knobs)
