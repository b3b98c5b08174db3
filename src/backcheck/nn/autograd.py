"""The graph machinery under :class:`~backcheck.nn.tensor.Tensor`: grad mode, graph nodes and the backward walk.

Backpropagation is the chain rule applied over a DAG.  Every recorded op leaves a :class:`Context` (one
node) on its output tensor: the op, its input tensors and the state its backward needs.
:func:`run_backward` walks the graph iteratively (no recursion, so a chain of 100,000 ops is fine) in a
deterministic reverse topological order, in time linear in the size of the graph, and does once what
every op would otherwise repeat:

* unbroadcasting: a returned gradient whose shape is the broadcast output shape is summed back to
  the input's shape (and an impossible reduction raises :class:`~backcheck.nn.errors.ShapeError`
  naming the op and both shapes);
* dtype: a gradient is cast back to its input's dtype;
* skipping inputs that do not require a gradient;
* gradient accumulation for tensors used more than once;
* freeing: once a node's backward has run, its saved state and its links to its inputs are
  dropped (unless ``retain_graph=True``), so a second backward through it raises
  :class:`~backcheck.nn.errors.GraphError`.

The walk runs with numpy's floating-point warnings off: a backward pass follows IEEE arithmetic (an
infinite gradient stays infinite) without printing warnings from inside the engine.

This module knows tensors only by their attributes (``data``, ``grad``, ``requires_grad``, ``_ctx``,
``_hooks``), so it does not import :mod:`backcheck.nn.tensor`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.nn.errors import GraphError, ShapeError

if TYPE_CHECKING:
    from backcheck.nn.tensor import Function, Tensor

__all__ = [
    "GRAD_MODE",
    "Context",
    "is_grad_enabled",
    "no_grad",
    "enable_grad",
    "topo_order",
    "unbroadcast",
    "run_backward",
    "modified",
]


class _GradMode(threading.local):
    """Whether ops record a graph; read by every op, so one attribute on one object, per thread (as torch's grad
    mode: a ``no_grad()`` evaluation in one thread leaves another thread's training step recording)."""

    def __init__(self) -> None:
        self.enabled = True


GRAD_MODE = _GradMode()


def is_grad_enabled() -> bool:
    """Return whether ops currently record a graph (False inside :func:`no_grad`)."""
    return GRAD_MODE.enabled


@contextlib.contextmanager
def _grad_mode(enabled: bool) -> Iterator[None]:
    previous = GRAD_MODE.enabled
    GRAD_MODE.enabled = enabled
    try:
        yield
    finally:
        GRAD_MODE.enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager under which ops record no graph (outputs never require grad).

    Examples
    --------
    >>> from backcheck.nn import Tensor
    >>> w = Tensor([1.0, 2.0], requires_grad=True)
    >>> with no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """
    return _grad_mode(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager re-enabling graph recording inside a :func:`no_grad` block."""
    return _grad_mode(True)


class _Writes:
    """The writes in place counted so far (one number for the process: an op records it, one store)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


WRITES = _Writes()


class Context:
    """One node of the graph: the op that ran, its inputs, and the state its backward needs.

    Attributes set by the engine are ``op`` (the :class:`~backcheck.nn.tensor.Function` subclass),
    ``parents`` (the input tensors), ``needs_input_grad`` (one bool per input) and ``freed``.  An op
    stores its own saved state as ordinary named attributes (``ctx.mask = x > 0``); the engine deletes
    them all once the node's backward has run, unless the graph is retained.
    """

    __slots__ = ("op", "parents", "needs_input_grad", "freed", "epoch", "__dict__")

    def __init__(self, op: type[Function], needs_input_grad: tuple[bool, ...]) -> None:
        self.op = op
        self.parents: tuple[Tensor, ...] = ()
        self.needs_input_grad = needs_input_grad
        self.freed = False
        self.epoch = WRITES.n  # the writes in place counted when the op ran (see :func:`modified`)

    if TYPE_CHECKING:  # saved state is set as arbitrary named attributes

        def __setattr__(self, name: str, value: Any) -> None: ...

    def __getattr__(self, name: str) -> Any:
        # only called when ``name`` is not set: a missing or freed piece of saved state
        state = "was freed after backward" if self.freed else "was never saved by forward"
        raise AttributeError(f"{self.op.name}: saved state {name!r} {state}")

    def free(self) -> None:
        """Drop the saved state and the links to the inputs."""
        self.__dict__.clear()
        self.parents = ()
        self.freed = True

    def saved(self) -> dict[str, Any]:
        """The op's named saved state (an empty dict once freed)."""
        return dict(self.__dict__)

    def __repr__(self) -> str:
        state = "freed" if self.freed else ", ".join(sorted(self.__dict__))
        return f"<Context {self.op.name} [{state}]>"


def modified(t: Tensor) -> None:
    """Count a write into ``t.data`` in place (an optimizer step, ``load_state_dict``): a graph whose op read
    ``t`` before it refuses to backward through the new values, as torch's version counters do. ``t._version``
    keeps the count at its last write; an op keeps the count when it ran, so a backward compares them only
    where some write happened since (never within an ordinary training step). Writes made with numpy
    directly into the array are not seen."""
    WRITES.n += 1
    t._version = WRITES.n


def check_versions(ctx: Context) -> None:
    """:class:`GraphError` where an input of the node was written in place after the op read it."""
    for k, parent in enumerate(ctx.parents):
        if getattr(parent, "_version", 0) > ctx.epoch:
            raise GraphError(
                f"backward: input {k} of op '{ctx.op.name}' (shape {parent.data.shape}) was modified in place "
                "after the op used it (an optimizer step, load_state_dict, an in-place operator such as +=): "
                "its gradient would be computed from the new values",
                "call backward() before optimizer.step() or load_state_dict(), or run the forward again after "
                "the update (torch refuses it too)",
            )


FREED_MSG = (
    "backward: trying to backward through the graph a second time (the saved state of op '{op}' "
    "was freed by the first backward); pass retain_graph=True to the first backward"
)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...], op: str) -> np.ndarray:
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ShapeError(f"{op}: backward returned a gradient of shape {grad.shape} for an input of shape {shape}")
    axes = tuple(range(extra)) + tuple(i + extra for i, s in enumerate(shape) if s == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if extra:
        grad = grad.reshape(grad.shape[extra:])
    if grad.shape != shape:
        raise ShapeError(
            f"{op}: backward returned a gradient of shape {grad.shape} that does not reduce to the input shape {shape}"
        )
    return grad


def topo_order(root: Tensor) -> list[Tensor]:
    """Tensors reachable from ``root`` through grad-requiring edges, each after all its consumers.

    Iterative depth-first post-order (no recursion), reversed.  Deterministic: parents are visited
    in argument order.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None:
            for parent in reversed(ctx.parents):
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order


def _store_leaf(node: Tensor, g: np.ndarray, handed: set[int]) -> None:
    """Add ``g`` into a leaf's ``.grad``, never storing an array the caller may still write into (and always an
    array: numpy's arithmetic on 0-d arrays gives scalars)."""
    if not g.flags.writeable or g.base is not None or id(g) in handed:
        g = np.array(g)
    handed.add(id(g))
    node.grad = g if node.grad is None else np.asarray(node.grad + g)


def _local_grads(ctx: Context, g: np.ndarray) -> tuple[np.ndarray | None, ...]:
    op = ctx.op
    local = op.backward(ctx, g)
    if not isinstance(local, tuple):
        local = (local,)
    if len(local) != len(ctx.parents):
        raise GraphError(f"{op.name}: backward returned {len(local)} gradients for {len(ctx.parents)} inputs")
    return local


def _hooked(node: Tensor, g: np.ndarray) -> np.ndarray:
    """``g`` after the tensor's hooks, each of which may replace it by a gradient of the same shape; the hook of
    ``retain_grad`` (marked ``retains_grad``) runs after all the others, as torch's, so ``.grad`` is hooked."""
    hooks = node._hooks or ()
    retains = [hook for hook in hooks if getattr(hook, "retains_grad", False)]
    for hook in hooks:
        if retains and hook in retains:
            continue
        new = hook(g)
        if new is None:
            continue
        new = np.asarray(new)
        if new.shape != node.data.shape:
            name = getattr(hook, "__qualname__", type(hook).__name__)
            raise ShapeError(
                f"backward: hook {name} returned a gradient of shape {new.shape} for a tensor of shape "
                f"{node.data.shape}",
                "a hook returns None (to keep the gradient) or a gradient of the tensor's own shape",
            )
        g = new
    for hook in retains:
        hook(g)
    return g


def run_backward(root: Tensor, g: np.ndarray, retain_graph: bool) -> None:
    """Accumulate ``d root / d leaf`` (with upstream gradient ``g``) into ``.grad`` of every leaf."""
    grads: dict[int, np.ndarray] = {id(root): g}
    owned: set[int] = set()  # ids of accumulation buffers this call allocated (safe to add into)
    handed: set[int] = set()  # ids of arrays already stored in some leaf's .grad
    with np.errstate(all="ignore"):
        for node in topo_order(root):
            if id(node) not in grads:
                continue
            g = grads.pop(id(node))
            if node._hooks:
                g = _hooked(node, g)
            ctx = node._ctx
            if ctx is None:
                _store_leaf(node, g, handed)
                continue
            if ctx.freed:
                raise GraphError(FREED_MSG.format(op=ctx.op.name))
            if ctx.epoch != WRITES.n:
                check_versions(ctx)
            for parent, pg in zip(ctx.parents, _local_grads(ctx, g), strict=True):
                if pg is None or not parent.requires_grad:
                    continue
                if type(pg) is not np.ndarray:
                    pg = np.asarray(pg)  # (an op's arithmetic on 0-d arrays returns numpy scalars)
                pdata = parent.data
                if pg.shape != pdata.shape:
                    pg = unbroadcast(pg, pdata.shape, ctx.op.name)
                if pg.dtype != pdata.dtype:
                    pg = pg.astype(pdata.dtype)
                key = id(parent)
                acc = grads.get(key)
                if acc is None:
                    grads[key] = pg
                elif key in owned:
                    acc += pg  # in place: every owned buffer is an array, 0-d ones too
                else:
                    grads[key] = np.asarray(acc + pg)  # (a 0-d sum is a scalar, which += would rebind)
                    owned.add(key)
            if not retain_graph:
                ctx.free()
