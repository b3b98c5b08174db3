"""``blame``: every leaf submodule of a network checked alone, at its real inputs and upstream gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.blame import Blame, BlameRow
from backcheck.calls import arg_names, call_user, first_line, function_name, require_callable
from backcheck.errors import BadInputError, NotScalarError
from backcheck.frontends.torch._check import Knobs, Target, check_torch
from backcheck.frontends.torch._setup import default_dout
from backcheck.frontends.torch._tensors import Swap, flatten, is_diff_tensor, torch_module
from backcheck.options import Options
from backcheck.randomness import kept_random


def blame(
    module: Any,
    *inputs: Any,
    loss_fn: Callable[[Any], Any] | None = None,
    strategy: str | None = None,
    samples: int | None = None,
    seed: int = 0,
    numeric_dtype: Any = "auto",
    vectorized: bool | str = "auto",
) -> Blame:
    """Find the submodule whose backward pass is wrong: check every leaf submodule in isolation.

    One forward and backward pass through ``module`` records, with hooks, each leaf submodule's actual
    inputs and the upstream gradient of its output; then each is checked alone (its parameters and its
    float inputs) at those inputs with that upstream gradient, like :func:`check_module`. The module's
    parameters, buffers and ``.grad`` are unchanged afterwards.

    Parameters
    ----------
    module : nn.Module
    *inputs
        The network's inputs.
    loss_fn : callable, optional
        ``loss_fn(output) -> scalar tensor``; default ``<dout, output>`` with a seeded normal ``dout``.
    strategy, samples, seed, numeric_dtype, vectorized
        As in :func:`check` (for each submodule's check).

    Returns
    -------
    Blame
        ``str(blame)`` is a table; ``blame.first_failing`` the first failing submodule in forward order.

    Examples
    --------
    >>> import torch
    >>> import backcheck.torch as bt
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    >>> result = bt.blame(net, torch.randn(2, 3, dtype=torch.float64))
    >>> [r.name for r in result.rows], result.first_failing is None
    (['0', '1', '2'], True)
    """
    torch = torch_module()
    if not isinstance(module, torch.nn.Module):
        raise BadInputError(f"blame takes an nn.Module, not a {type(module).__name__}.", "pass the model.")
    if loss_fn is not None:
        require_callable(loss_fn, "loss_fn", "pass loss_fn(output) -> scalar tensor, or leave it out.")
    options = Options.make(strategy=strategy, samples=samples, seed=seed)
    knobs = Knobs(options, numeric_dtype=numeric_dtype, vectorized=vectorized)
    with kept_random(module, inputs, loss_fn):  # (dropout in the recording pass draws from torch's generator)
        calls = _record(module, inputs, loss_fn, options)
    counts: dict[str, int] = {}
    rows = []
    for rec in calls:
        counts[rec["name"]] = counts.get(rec["name"], 0) + 1
        label = rec["name"] if counts[rec["name"]] == 1 else f"{rec['name']} (call {counts[rec['name']]})"
        rows.append(_row(rec, label, knobs))
    return Blame(type(module).__name__, rows, unit="submodule call")


def _record(module: Any, inputs: tuple[Any, ...], loss_fn: Any, options: Options) -> list[dict[str, Any]]:
    """One forward and backward pass; per leaf submodule call: its inputs and its outputs' upstream gradients."""
    torch = torch_module()
    leaves = [(n, m) for n, m in module.named_modules() if not list(m.children())]
    calls: list[dict[str, Any]] = []
    pending: dict[int, list[dict[str, Any]]] = {}
    handles = []

    def make_pre_hook(name: str) -> Callable[..., None]:
        def pre_hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            # before forward, so an in-place submodule (ReLU(inplace=True)) has not yet overwritten its input
            args = tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args)
            rec = {"name": name, "module": mod, "kwargs": dict(kwargs), "grads": {}, "outs": [], "args": args}
            calls.append(rec)
            pending.setdefault(id(mod), []).append(rec)

        return pre_hook

    def post_hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        rec = pending[id(mod)].pop()
        outs = [t for _, t in flatten(out) if is_diff_tensor(t)]
        rec["outs"] = [torch.zeros_like(t.detach()) for t in outs]
        for k, t in enumerate(outs):
            if t.requires_grad:
                t.register_hook(lambda gr, k=k, rec=rec: rec["grads"].__setitem__(k, gr.detach().clone()))

    swap = Swap(list(module.parameters()) + list(module.buffers()))
    try:
        swap.set([t.detach().clone() for t in swap.saved])  # batch-norm statistics update private copies
        for name, m in leaves:
            handles.append(m.register_forward_pre_hook(make_pre_hook(name or type(m).__name__), with_kwargs=True))
            handles.append(m.register_forward_hook(post_hook, with_kwargs=True))
        ins = [a.detach().clone().requires_grad_(True) if is_diff_tensor(a) else a for a in inputs]
        with torch.enable_grad():
            out = call_user(module, tuple(ins), type(module).__name__)
            if loss_fn is not None:
                loss = _loss(call_user(loss_fn, (out,), function_name(loss_fn, "loss_fn")), "loss_fn")
            else:
                loss = _loss(_default_loss(out, options), f"{type(module).__name__}'s output")
            targets = [t for t in [*ins, *module.parameters()] if isinstance(t, torch.Tensor) and t.requires_grad]
            torch.autograd.grad(loss, targets, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        swap.restore()
    return calls


def _loss(loss: Any, what: str) -> Any:
    """``loss`` when it is a one-element float tensor that depends on the module; otherwise a typed error."""
    torch = torch_module()
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else f"a {type(loss).__name__}"
        raise NotScalarError(
            f"{what} gave {got}, not a one-element tensor.",
            "return a scalar tensor computed from the module's output, e.g. loss_fn=lambda out: out.pow(2).sum().",
        )
    if not loss.dtype.is_floating_point or not loss.requires_grad:
        why = f"of dtype {loss.dtype}" if not loss.dtype.is_floating_point else "that does not depend on the module"
        raise BadInputError(
            f"{what} gave a loss {why}: no gradient flows back to the module's submodules.",
            "compute a float loss from the module's output with differentiable operations (no .long(), "
            ".detach() or torch.no_grad()).",
        )
    return loss


def _default_loss(out: Any, options: Options) -> Any:
    torch = torch_module()
    outs = [(n, t) for n, t in flatten(out) if is_diff_tensor(t)]
    if not outs:
        raise BadInputError(
            "the module's output has no floating-point tensor to take a default loss of.",
            "pass loss_fn=... that computes a scalar tensor from the output.",
        )
    us = default_dout(outs, options.rng("dout"))
    terms = [
        torch.sum(t * torch.from_numpy(np.asarray(u)).to(t.device, t.dtype)).real
        for (_, t), u in zip(outs, us, strict=True)
    ]
    return sum(terms)


def _row(rec: dict[str, Any], label: str, knobs: Knobs) -> BlameRow:
    """The check of one recorded call, as a row."""
    mtype = type(rec["module"]).__name__
    if not rec["grads"]:
        return BlameRow(label, mtype, "unused", message="its output does not reach the loss.")
    douts = [rec["grads"].get(k, z) for k, z in enumerate(rec["outs"])]
    if not any(bool(torch_module().any(d != 0)) for d in douts):
        return BlameRow(
            label,
            mtype,
            "unused",
            message="its upstream gradient is zero at these inputs (its output does not move the loss here), so "
            "there is nothing to compare.",
        )
    mod, kwargs = rec["module"], rec["kwargs"]
    ins = tuple(a.detach().clone() if is_diff_tensor(a) else a for a in rec["args"])
    # keyword arguments of the call (masks, flags) are passed through, not checked
    fn = mod if not kwargs else (lambda *a: mod(*a, **kwargs))
    target = Target(
        fn, ins, names=tuple(arg_names(mod.forward, len(ins))), title=mtype, kind="module", params=mod, module=fn
    )
    try:
        report = check_torch(target, Knobs(knobs.options, douts, knobs.numeric_dtype, knobs.vectorized))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # one submodule's error does not stop the others
        return BlameRow(label, mtype, "error", message=f"{type(exc).__name__}: {first_line(exc)}")
    return BlameRow.of(label, mtype, report)
