"""The side under test: torch.autograd's reverse-mode gradient (and forward-mode jvp) of ``<dout, fn(*inputs)>``.

Gradients are what ``loss.backward()`` would leave in ``.grad``: ``torch.autograd.grad``'s, plus what the
backward pass accumulates into the checked tensors' ``.grad`` itself (a backward that recomputes a submodule
and calls ``torch.autograd.backward``); a graph that refuses ``torch.autograd.grad`` (a reentrant
``torch.utils.checkpoint``) is driven with ``.backward()`` and read from ``.grad``. The ``.grad`` of the
checked tensors, of every leaf the graph shows before the backward pass, and of the swapped parameters and
constants is put back afterwards; a tensor read through a closure inside a backward (not passed as ``params``)
keeps what the backward pass accumulated into its ``.grad``. The backward pass is also run repeatedly over one
graph, to catch a backward that writes into its saved tensors, and with scaled cotangents, to catch one that
is not linear in its cotangent (clipping it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.calls import call_user, first_line
from backcheck.errors import BackcheckError
from backcheck.findings import mutation_finding
from backcheck.frontends.common import LINEAR_PROBES, LINEAR_ROOT, LINEAR_ULPS, wide_refused
from backcheck.frontends.torch._session import Session
from backcheck.frontends.torch._tensors import cast, dense, equal_values, laid_out, parts, real_of, torch_module
from backcheck.report import Finding
from backcheck.tree import Tree

if TYPE_CHECKING:
    import torch

#: The cotangent of the second of the repeated backward passes is the first one times this: a power of two, so
#: a backward that is linear in its cotangent (every correct one) gives exactly twice the first gradient.
REPEAT_SCALE = 2.0
#: Repeated backward passes that differ by less than this many units of the gradient dtype's epsilon (of the
#: largest element) differ by rounding (a reduction in another order), not by changed state.
REPEAT_ULPS = 64.0


def call_native(sess: Session, tensors: list[torch.Tensor]) -> tuple[Any, list[torch.Tensor]]:
    """Run ``fn`` with autograd on, the slots' tensors as leaves. Returns (out, targets)."""
    torch = sess.torch
    targets = []
    ins: dict[Any, Any] = {}
    for s, t in zip(sess.slots, tensors, strict=True):
        if s.kind == "param":
            s.tensor.data = t.detach()
            targets.append(s.tensor)
        else:
            leaf = laid_out(t.detach(), s.tensor).requires_grad_(True)
            ins[s.pos] = leaf
            targets.append(leaf)
    with torch.enable_grad():
        out = sess.call(ins)
    return out, targets


def _graph_leaves(outs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The leaf tensors whose ``.grad`` a backward pass from ``outs`` accumulates into."""
    stack: list[Any] = [o.grad_fn for o in outs if o.grad_fn is not None]
    seen: set[int] = set()
    leaves = []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if hasattr(node, "variable"):
            leaves.append(node.variable)
        stack.extend(nxt for nxt, _ in node.next_functions)
    return leaves


def _guarded(sess: Session, pairs: list[tuple[Any, Any]], targets: list[Any]) -> list[Any]:
    """The tensors whose ``.grad`` a backward pass may write: the targets, the graph's leaves, the parameters
    and constants the check swaps (a backward that recomputes a submodule reaches them through ``ctx``)."""
    found = [*targets, *_graph_leaves([o for o, _ in pairs]), *sess.param_swap.tensors, *sess.const_swap.tensors]
    return list({id(t): t for t in found}.values())


def _grads_kept(sess: Session, touched: list[Any], run: Callable[[], list[Any]]) -> list[Any]:
    """``run()`` with the ``.grad`` of ``touched`` set to None first and put back afterwards."""
    swapped = {id(t) for t in [*sess.param_swap.tensors, *sess.const_swap.tensors]}
    saved = [(t, t.grad) for t in touched]
    try:
        for t in touched:
            t.grad = None
        return run()
    finally:
        for t, g in saved:
            # a parameter's own .grad goes back with its own storage (Session.restore): its dtype may differ now
            t.grad = None if id(t) in swapped else g


def grads(sess: Session, outs: list[Any], douts: Sequence[Any], targets: list[Any], retain: bool) -> list[Any]:
    """``d<douts, outs>/d targets`` as ``loss.backward()`` leaves it in ``.grad``; a None cotangent leaves its
    output's gradient undefined.

    The gradient flowing through the graph comes from ``torch.autograd.grad``, plus what the backward pass
    accumulates into the targets' ``.grad`` itself (a custom backward that recomputes a submodule and calls
    ``torch.autograd.backward`` on it: manual checkpointing, reversible layers). A graph that refuses
    ``torch.autograd.grad`` (a reentrant ``torch.utils.checkpoint``) is driven with ``.backward()``.
    """
    torch = sess.torch
    pairs = [(o, d) for o, d in zip(outs, douts, strict=True) if d is not None and o.requires_grad]
    if not pairs:
        return [None] * len(targets)
    os, given = [o for o, _ in pairs], [d for _, d in pairs]
    ds = [d.clone() for d in given]  # a backward that writes into its grad_output writes into a private copy
    # (the inputs before the pass: only while no write is known yet, and every input is a target)
    watch = not sess.backward_writes and len(targets) == len(sess.slots)
    before = _watched(sess, targets) if watch else []

    def through_graph() -> list[Any]:
        got = torch.autograd.grad(os, targets, ds, allow_unused=True, retain_graph=retain)
        side = [None if t.grad is None else dense(t.grad.detach()).clone() for t in targets]
        sess.side_grads.update(sess.slots[k].name for k, s in enumerate(side) if s is not None)
        res = [s if g is None else (g if s is None else dense(g) + s) for g, s in zip(got, side, strict=True)]
        sess.undefined = {sess.slots[k].name for k, r in enumerate(res) if r is None}
        return res

    def accumulated() -> list[Any]:
        torch.autograd.backward(os, ds, retain_graph=retain)
        res = [None if t.grad is None else t.grad.detach().clone() for t in targets]
        sess.undefined = {sess.slots[k].name for k, r in enumerate(res) if r is None}
        return res

    touched = _guarded(sess, pairs, targets)
    try:
        res = _grads_kept(sess, touched, through_graph)
    except RuntimeError as exc:
        if "use_reentrant" not in str(exc):
            raise
        res = _grads_kept(sess, touched, accumulated)
    which = [k for k, (o, d) in enumerate(zip(outs, douts, strict=True)) if d is not None and o.requires_grad]
    _note_writes(sess, [(d, c, k) for k, d, c in zip(which, given, ds, strict=True)], before, targets)
    return res


def _watched(sess: Session, targets: list[Any]) -> list[Any]:
    """The checked tensors as they are before a backward pass, to find its writes: the user's own tensor where
    a target equals it (no copy of a large input), else a copy."""
    torch = sess.torch
    out = []
    for s, t in zip(sess.slots, targets, strict=True):
        mine, t = sess.original(s), t.detach()
        alike = mine.dtype == t.dtype and mine.shape == t.shape and mine.layout == t.layout == torch.strided
        out.append(mine if alike and equal_values(mine, t) else t.clone())
    return out


def _note_writes(sess: Session, cotangents: list[tuple[Any, Any, Any]], before: list[Any], after: list[Any]) -> None:
    """Remember (in :attr:`Session.backward_writes`, until a write is found) what a backward pass wrote into: the
    cotangents it was given (``(given, passed, k)``: the check's, the copy passed, the output's position) or the
    inputs it saved (``before`` and ``after`` the pass)."""
    if sess.backward_writes:
        return
    for given, passed, k in cotangents:
        idx = _changed(given, passed)
        if idx.size:
            of = f" of {sess.out_names[k]}" if len(sess.out_names) > 1 and k < len(sess.out_names) else ""
            sess.backward_writes.append(("grad_output", f"grad_output{of}", tuple(given.shape), idx))
    if len(after) != len(sess.slots):
        return  # one input alone (reverse_alone): the full passes watch the inputs
    for s, b, a in zip(sess.slots, before, after, strict=True):
        idx = _changed(b, a.detach())
        if idx.size:
            sess.backward_writes.append(("input", s.name, tuple(b.shape), idx))


def write_findings(sess: Session, findings: list[Finding]) -> None:
    """A failing 'mutation' finding in ``findings`` for each of :attr:`Session.backward_writes`; a write into an
    input that a 'saved state' finding names already (its gradient changed on a second pass) is said there."""
    for what, name, shape, idx in sess.backward_writes:
        state = [f for f in findings if f.kind == "saved state" and f.where == name and what == "input"]
        if state:
            k = findings.index(state[0])
            findings[k] = dataclasses.replace(
                state[0],
                message=state[0].message + f" It wrote into {name} itself ({idx.size} element(s)): "
                "ctx.saved_tensors are the forward's inputs, so the caller's tensor changes too.",
            )
            continue
        base = mutation_finding(
            f"the backward pass of {sess.fname}", [(name, shape, idx)], "argument" if what == "grad_output" else what
        )
        why = (
            " autograd hands a backward the caller's cotangent itself (the tensor passed to .backward() or "
            "torch.autograd.grad, or the gradient shared by every branch that reads the output), so a write into "
            "grad_output changes the caller's tensor and the other branches' gradients; clone it first, or compute "
            "out of place (g * mask, not g[mask] = 0)."
            if what == "grad_output"
            else " ctx.saved_tensors are the forward's inputs themselves (and a closure may hold the caller's own "
            "tensor), so the caller's tensor changes, and so does every later use of it (the next step's forward, "
            "another backward over the graph); compute out of place, or save a clone."
        )
        findings.append(dataclasses.replace(base, message=base.message + why))


def _changed(a: Any, b: Any) -> np.ndarray:
    """The flat positions where ``b`` is not ``a`` (NaN where NaN was is unchanged); all of them when its shape,
    dtype or layout changed."""
    torch = torch_module()
    if a.shape != b.shape or a.dtype != b.dtype or a.layout != b.layout or a.layout != torch.strided:
        return np.zeros(0, dtype=np.int64) if a.layout != torch.strided else np.arange(max(a.numel(), 1))
    if a.dtype == torch.complex32:  # (no comparison is implemented for it on the CPU: widened exactly)
        a, b = a.to(torch.complex64), b.to(torch.complex64)
    if equal_values(a, b):
        return np.zeros(0, dtype=np.int64)
    diff = a != b
    if a.is_floating_point() or a.is_complex():
        diff &= ~(torch.isnan(a) & torch.isnan(b))
    return torch.nonzero(diff.reshape(-1)).reshape(-1).cpu().numpy()


def flat(sess: Session, gradients: Sequence[Any]) -> np.ndarray:
    """Gradients per slot as one float64 vector in the report tree's order (zeros where undefined)."""
    torch = sess.torch
    out: list[np.ndarray] = []
    for s, gr in zip(sess.slots, gradients, strict=True):
        if gr is None:
            gr = torch.zeros(s.tensor.shape, dtype=s.dtype, device=s.tensor.device)
        out.extend(p.reshape(-1).astype(np.float64, copy=False) for p in parts(gr))  # parts are private copies
    if len(out) == 1:
        return out[0]
    return np.concatenate(out) if out else np.zeros(0)


def analytic_tensors(sess: Session, point: Sequence[np.ndarray] | None) -> list[torch.Tensor]:
    """The slots' tensors at the native dtype: the original point, or a point of the numeric tree."""
    if point is None:
        return [sess.original(s).clone() for s in sess.slots]
    return [
        sess.assemble(s, ps, real_of(s.dtype)).to(s.dtype)
        for s, ps in zip(sess.slots, sess.split(list(point)), strict=True)
    ]


def reverse(sess: Session, point: Sequence[np.ndarray] | None = None, douts: Sequence[Any] | None = None) -> np.ndarray:
    """The gradient of ``phi`` by torch.autograd, flat (real and imaginary parts apart)."""
    with sess.storage():
        out, targets = call_native(sess, analytic_tensors(sess, point))
        return flat(sess, grads(sess, sess.float_outputs(out), sess.douts if douts is None else douts, targets, False))


def reverse_wide(sess: Session, douts: Sequence[Any] | None = None) -> np.ndarray | str | None:
    """The same backward pass run in float64 at the original point; None when it answers in another dtype, or a
    sentence naming the function and its exception when it raises there."""
    torch = sess.torch
    wide = torch.float64
    try:
        with sess.storage(wide):
            out, targets = call_native(sess, [cast(sess.original(s), wide) for s in sess.slots])
            ds = [None if d is None else cast(d, wide) for d in (sess.douts if douts is None else douts)]
            got = grads(sess, sess.float_outputs(out), ds, targets, False)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a backward pass that refuses float64 is judged at its own dtype only
        return wide_refused(sess.fname, exc)
    if any(g is not None and real_of(g.dtype) != wide for g in got):
        return None
    return flat(sess, got)


def rounding_spread(sess: Session, douts: Sequence[Any] | None, g0: np.ndarray, times: int = 4) -> np.ndarray:
    """How far the native gradient moves when every input moves by one unit in the last place, per element.

    An ill-conditioned backward pass (an SVD at near-degenerate singular values) rounds differently at each
    such point, so its gradient moves by about its own rounding error; a well-conditioned one, or one that
    is wrong by design, moves by a few units in the last place. ``g0``: the native gradient at the point.
    """
    torch = sess.torch
    gen = torch.Generator().manual_seed(0)
    base = analytic_tensors(sess, None)
    spread = np.zeros_like(g0)
    for _ in range(times):
        moved = [_nudged(t, gen) for t in base]
        with sess.storage():
            out, targets = call_native(sess, moved)
            ds = sess.douts if douts is None else douts
            g = flat(sess, grads(sess, sess.float_outputs(out), ds, targets, False))
        spread = np.maximum(spread, np.abs(g - g0))
    return spread


def _nudged(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``t`` with every element moved by about one unit in the last place, up or down at random."""
    torch = torch_module()
    real = torch.view_as_real(t) if t.is_complex() else t
    sign = torch.where(torch.rand(real.shape, generator=gen) < 0.5, -1.0, 1.0).to(real.dtype)
    moved = real + real * sign * torch.finfo(real.dtype).eps
    return torch.view_as_complex(moved.contiguous()) if t.is_complex() else moved


Runs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[float, np.ndarray]]]


def linear_scales(sess: Session) -> list[float]:
    """The cotangent scales the linearity of the backward is tested at, each on a fresh graph: 2 (the repeat's
    scale), then ``LINEAR_PROBES`` (common.py says why those)."""
    return [REPEAT_SCALE, *LINEAR_PROBES]


def repeat_backward(sess: Session) -> Runs | str:
    """Three backward passes over one graph: with ``dout``, ``2 dout``, ``dout`` again; and each cotangent scale of
    :func:`linear_scales` on a fresh graph.

    Returns the first three gradients (the second halved), which a backward that leaves its saved state alone
    gives equal, and the fresh graphs' (scaled back, with their scales): the first is the reference of the
    second pass, since a backward that is not linear in its cotangent's rounding (logcumsumexp's works in log
    space) rounds ``2 dout`` differently; all of them equal the first gradient up to rounding for a backward
    that is linear in its cotangent. Or a sentence saying why they could not be computed. The forward pass
    runs with identity saved-tensor hooks, so autograd's version counter does not stop a backward whose saved
    tensors changed: the changed gradients themselves show which input is affected.
    """
    torch = sess.torch
    what = "a second backward pass over the same graph"
    try:
        with sess.storage():
            with torch.autograd.graph.saved_tensors_hooks(_same, _same):
                out, targets = _forward(sess)
            outs = sess.float_outputs(out)
            double = [REPEAT_SCALE * d for d in sess.douts]
            drawn = sess.frozen.now() if sess.frozen is not None else None  # (the streams after the forward)
            g1 = flat(sess, grads(sess, outs, sess.douts, targets, True))
            sess.backward_draws = drawn is not None and drawn.moved()
            g2 = flat(sess, grads(sess, outs, double, targets, True))
            g3 = flat(sess, grads(sess, outs, sess.douts, targets, False))
            scaled = []
            for k in linear_scales(sess):
                out, targets = _forward(sess)
                what = f"the backward pass with the cotangent times {k:g}"
                gk = flat(sess, grads(sess, sess.float_outputs(out), [k * d for d in sess.douts], targets, False))
                scaled.append((k, gk / k))
    except (KeyboardInterrupt, SystemExit, BackcheckError):
        raise  # the forward's own error (UserFunctionError), or a typed one, is the user's to see
    except Exception as exc:  # reported as a note: the main check has run the backward already
        return (
            f"{what} of {sess.fname} raised {type(exc).__name__} ({first_line(exc)}), so saved state and "
            "linearity in the cotangent were not checked"
        )
    return g1, g2 / REPEAT_SCALE, g3, scaled[0][1], scaled


def _forward(sess: Session) -> tuple[Any, list[torch.Tensor]]:
    """:func:`call_native` at the original point, as the user's call: an exception it raises is a
    :class:`~backcheck.errors.UserFunctionError` naming the function (a forward that ran before and raises now)."""
    return call_user(call_native, (sess, analytic_tensors(sess, None)), sess.fname)


def _same(t: Any) -> Any:
    return t


def reverse_repeated(sess: Session) -> tuple[np.ndarray, bool] | None:
    """The gradient from the graph kept at the original point (:attr:`Session.graph`), with one more backward pass
    over that graph, with the cotangent times the large scale of :func:`linear_scales` (a power of two); and
    whether it gave exactly that multiple of the first gradient.

    Exactly that multiple tells three things at once: the backward left its saved state alone, it is
    deterministic (a random one, or one that changes its state, misses an exact factor but by chance) and it is
    linear in its cotangent's scale (a power of two scales every rounding exactly; a backward that clips its
    cotangent, at a threshold within a few times the cotangent's size, does not). A pass with ``dout``
    again would tell nothing more.

    This saves the forward passes of :func:`reverse` and :func:`repeat_backward` when the backward leaves its
    saved state alone and is linear in its cotangent's scale (a power of two scales every rounding exactly),
    which is the common case. False means they did not (or a pass raised): :func:`repeat_backward` then tells
    what changed. None when no graph was kept or its first backward pass raised: :func:`reverse` runs it
    again on a fresh graph, as the error it raises is the user's.
    """
    graph, sess.graph = sess.graph, None
    if graph is None:
        return None
    out, targets = graph
    outs = sess.float_outputs(out)
    try:
        first = grads(sess, outs, sess.douts, targets, True)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # the fresh graph raises it again, as the user's error
        return None
    g = flat(sess, first)
    try:
        times = linear_scales(sess)[1]
        again = grads(sess, outs, [times * d for d in sess.douts], targets, False)
        return g, _agree(first, again, times)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # a saved tensor changed (autograd's version counter) or the graph refuses a second pass
        return g, False


def _agree(first: Sequence[Any], again: Sequence[Any], times: float = 1.0) -> bool:
    """Whether every gradient of ``again`` is exactly ``times`` the one of ``first`` (undefined where it is)."""
    return all(
        (a is None and b is None) or (a is not None and b is not None and _equal(a, b, times))
        for a, b in zip(first, again, strict=True)
    )


def _equal(a: torch.Tensor, b: torch.Tensor, times: float = 1.0) -> bool:
    """Whether ``b`` equals ``times * a`` (NaN never does: a gradient with NaN goes the long way)."""
    a, b = dense(a.detach()), dense(b.detach())
    return a.shape == b.shape and a.dtype == b.dtype and equal_values(a, b, times)


def _tensor_names(leaves: list[str]) -> str:
    """The tensors of some leaves, once each (a complex tensor's two parts are one tensor)."""
    return ", ".join(dict.fromkeys(n.removesuffix(".real").removesuffix(".imag") for n in leaves))


def state_finding(fname: str, tree: Tree, runs: Runs, eps: np.ndarray, draws: bool = False) -> Finding | None:
    """A failing finding when repeated backward passes over one graph disagree beyond rounding.

    The second pass (cotangent doubled) is compared with the same cotangent on a fresh graph, the third with
    the first. ``draws``: the backward pass drew from a random stream the function reaches, which says why.
    """
    g1, g2, g3, ref2, _ = runs
    changed = np.zeros(g1.size, dtype=bool)
    for leaf in tree.leaves:
        sl = slice(leaf.offset, leaf.offset + leaf.size)
        scale = float(np.max(np.abs(g1[sl]), initial=0.0))
        tol = REPEAT_ULPS * eps[sl] * scale
        changed[sl] = _apart(g2[sl], ref2[sl], tol) | _apart(g3[sl], g1[sl], tol)
    where = np.flatnonzero(changed)
    if not where.size:
        return None
    i = int(where[np.argmax(np.maximum(np.abs(g2 - ref2), np.abs(g3 - g1))[where])])
    leaf, _ = tree.locate(i)
    names = [tree.element_name(int(k)) for k in where[:5]]
    hit = [lf.name for lf in tree.leaves if changed[lf.offset : lf.offset + lf.size].any()]
    return Finding(
        kind="saved state",
        message=(
            f"backward {'draws anew' if draws else 'changes saved state'}: a second backward pass over the same "
            f"graph of {fname} gives another "
            f"gradient for {_tensor_names(hit)} ({tree.element_name(i)}: {g1[i]:.6g} the first time, "
            f"{g2[i]:.6g} with the cotangent doubled (halved back; {ref2[i]:.6g} on a fresh graph), {g3[i]:.6g} "
            "with the first cotangent again). " + (_DRAWS if draws else _WRITES)
        ),
        where=leaf.name,
        elements=names,
    )


def _apart(a: np.ndarray, b: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Where two runs' gradients differ beyond ``tol``: NaN in both, or the same infinity, is no difference (a
    gradient that is NaN at every pass is wrong, not changed by the passes); NaN in one alone is."""
    with np.errstate(invalid="ignore"):
        return ~((np.abs(a - b) <= tol) | (a == b) | (np.isnan(a) & np.isnan(b)))


_WRITES = (
    "The backward pass writes into a tensor it saved in the forward pass, so retain_graph, double backward and "
    "torch.autograd.functional.jacobian give wrong gradients; write into a copy instead."
)
_DRAWS = (
    "The backward pass draws from a random stream the function reaches (a Generator argument, torch's default "
    "generator): a new mask or noise at each pass, not the forward's, so its gradient is that of another draw; "
    "save what the forward drew (ctx.save_for_backward(mask)) and use it in backward."
)


#: The most checked inputs whose gradients are also computed one at a time, the other inputs not requiring grad
#: (one forward and backward pass each): beyond it the check does not pay for them.
ALONE_MAX = 8


def reverse_alone(sess: Session, k: int) -> np.ndarray | None:
    """The gradient of ``phi`` for the input slot ``k`` alone, flat (None when undefined), from a forward pass
    where it is the only input that requires grad, as a user who differentiates only that input runs it (the
    other inputs plain tensors; parameters as ever, requiring grad)."""
    torch = sess.torch
    undefined, side_grads = sess.undefined, set(sess.side_grads)
    try:
        with sess.storage():
            ins: dict[Any, Any] = {}
            for j, (s, t) in enumerate(zip(sess.slots, analytic_tensors(sess, None), strict=True)):
                if s.kind == "param":
                    s.tensor.data = t.detach()
                else:
                    ins[s.pos] = laid_out(t.detach(), s.tensor).requires_grad_(j == k)
            with torch.enable_grad():
                out = sess.call(ins)
            (got,) = grads(sess, sess.float_outputs(out), sess.douts, [ins[sess.slots[k].pos]], False)
    finally:
        sess.undefined, sess.side_grads = undefined, side_grads  # (grads() names slots by position: not these)
    if got is None:
        return None
    return np.concatenate([p.reshape(-1).astype(np.float64) for p in parts(dense(got.detach()))])


def alone_finding(
    fname: str, tree: Tree, name: str, sl: slice, full: np.ndarray, alone: np.ndarray | None, eps: np.ndarray
) -> Finding | None:
    """A failing finding when the gradient of the tensor ``name`` (the elements ``sl`` of the tree) differs with
    only it requiring grad (``alone``; None: undefined) from its part of the gradient ``full`` with every checked
    tensor requiring grad, beyond what another order of the same arithmetic rounds to (the cube root of epsilon
    of its largest element, as for a backward's linearity): a backward that reads ``ctx.needs_input_grad`` for
    the wrong input gives no gradient, or another, to a user whose other inputs are fixed."""
    mine = full[sl]
    other = np.zeros_like(mine) if alone is None else alone
    with np.errstate(invalid="ignore"):
        gap = np.where(np.isnan(mine) & np.isnan(other), 0.0, np.abs(other - mine))
    scale = max(float(np.max(np.abs(mine), initial=0.0)), float(np.max(np.abs(other), initial=0.0)))
    tol = np.maximum(LINEAR_ULPS * eps[sl], eps[sl] ** LINEAR_ROOT) * scale
    bad = np.flatnonzero(~(gap <= tol))
    if not bad.size:
        return None
    j = int(bad[np.argmax(np.where(np.isfinite(gap[bad]), gap[bad], np.inf))])
    i = sl.start + j
    got = "no gradient (None)" if alone is None else "another gradient"
    return Finding(
        kind="missing gradient",
        message=(
            f"gradient depends on which inputs require grad: with only {name} requiring grad (the other inputs "
            f"fixed, as a hyperparameter tensor or a frozen weight is), the backward pass of {fname} gives {name} "
            f"{got} ({tree.element_name(i)}: {other[j]:.6g} against {mine[j]:.6g} with every checked input "
            "requiring grad). A backward that reads ctx.needs_input_grad for the wrong input (computing one "
            "input's gradient under another's entry) gives such a user a missing or wrong gradient; compute each "
            "input's gradient under its own ctx.needs_input_grad entry."
        ),
        where=name,
        elements=[tree.element_name(sl.start + int(b)) for b in bad[:5]],
    )
