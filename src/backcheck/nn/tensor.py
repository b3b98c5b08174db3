"""The autograd core: :class:`Tensor`, the :class:`Function` base class of every op, and ``no_grad``.

Backpropagation is the chain rule applied over a DAG.  Each op is a :class:`Function` subclass with a
``forward`` and a ``backward`` written side by side.  ``forward`` receives a :class:`Context` (the
graph node) and plain numpy arrays, stores what its backward needs as *named attributes* on the
context (``ctx.x = x``) and returns a numpy array.  ``backward`` receives the context and the
gradient of the loss with respect to the op's output and returns the *local* gradient for each input
(``None`` for an input that does not need one).

Everything every op would otherwise repeat is done once, here, in the base machinery:

* unbroadcasting: a returned gradient whose shape is the broadcast output shape is summed back to
  the input's shape (and an impossible reduction raises :class:`~backcheck.nn.errors.ShapeError`
  naming the op and both shapes);
* dtype: a gradient is cast back to its input's dtype;
* skipping inputs that do not require a gradient (``ctx.needs_input_grad`` tells the op which);
* gradient accumulation for tensors used more than once;
* freeing: once a node's backward has run, its saved state and its links to its inputs are
  dropped (unless ``retain_graph=True``), so a second backward through it raises
  :class:`~backcheck.nn.errors.GraphError`.

:meth:`Tensor.backward` walks the graph iteratively (no recursion, so a chain of 100,000 ops is
fine) in a deterministic reverse topological order, in time linear in the size of the graph.

Gradient arrays are treated as immutable by the engine: it never writes into an array it did not
allocate itself, and the arrays it stores in ``.grad`` may share memory with each other.  Replace
``.grad`` (``p.grad = p.grad * 0.5``) rather than modifying it in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.nn.errors import DTypeError, GraphError, ShapeError

__all__ = [
    "Tensor",
    "Function",
    "Context",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "as_tensor",
    "tensor",
    "default_dtype",
    "set_default_dtype",
]

ArrayLike = Any

_GRAD_ENABLED = True
_DEFAULT_DTYPE: np.dtype = np.dtype(np.float32)
_GRAD_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_grad_enabled() -> bool:
    """Return whether ops currently record a graph (False inside :func:`no_grad`)."""
    return _GRAD_ENABLED


@contextlib.contextmanager
def _grad_mode(enabled: bool) -> Iterator[None]:
    global _GRAD_ENABLED
    previous = _GRAD_ENABLED
    _GRAD_ENABLED = enabled
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager under which ops record no graph (outputs never require grad).

    Examples
    --------
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


def default_dtype() -> np.dtype:
    """The dtype given to Python floats and lists of floats (float32 unless changed)."""
    return _DEFAULT_DTYPE


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype given to Python floats and lists of floats: float32 or float64."""
    global _DEFAULT_DTYPE
    dt = np.dtype(dtype)
    if dt not in _GRAD_DTYPES:
        raise DTypeError(f"set_default_dtype: expected float32 or float64, got {dt}")
    _DEFAULT_DTYPE = dt


class Context:
    """One node of the graph: the op that ran, its inputs, and the state its backward needs.

    Attributes set by the engine are ``op`` (the :class:`Function` subclass), ``parents`` (the input
    tensors), ``needs_input_grad`` (one bool per input) and ``freed``.  An op stores its own saved
    state as ordinary named attributes (``ctx.mask = x > 0``); the engine deletes them all once the
    node's backward has run, unless the graph is retained.
    """

    __slots__ = ("op", "parents", "needs_input_grad", "freed", "__dict__")

    def __init__(self, op: type[Function], needs_input_grad: tuple[bool, ...]) -> None:
        self.op = op
        self.parents: tuple[Tensor, ...] = ()
        self.needs_input_grad = needs_input_grad
        self.freed = False

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


class Function:
    """Base class of every differentiable op.

    Subclasses set ``name`` and implement two static methods::

        class Mul(Function):
            name = "mul"

            @staticmethod
            def forward(ctx, a, b):
                ctx.a, ctx.b = a, b
                return a * b

            @staticmethod
            def backward(ctx, grad):
                return grad * ctx.b, grad * ctx.a

    ``forward(ctx, *arrays, **params)`` gets numpy arrays (one per input tensor) and non-tensor
    keyword parameters and returns a numpy array.  ``backward(ctx, grad)`` returns a tuple with one
    entry per input: the local gradient (any shape the input broadcasts to), or ``None``.
    Call an op with ``Op.apply(*tensors, **params)``.
    """

    name: str = "function"

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        """Run the op on tensors and, if any input requires grad, record it in the graph."""
        if _GRAD_ENABLED:
            needs = tuple([t.requires_grad for t in inputs])
            record = True in needs
        else:
            needs = (False,) * len(inputs)
            record = False
        ctx = Context(cls, needs)
        data = cls.forward(ctx, *[t.data for t in inputs], **params)
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        out._hooks = None
        out.name = None
        if record:
            ctx.parents = inputs
            out.requires_grad = True
            out._ctx = ctx
        else:
            out.requires_grad = False
            out._ctx = None
        return out


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...], op: str) -> np.ndarray:
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ShapeError(
            f"{op}: backward returned a gradient of shape {grad.shape} for an input of shape {shape}"
        )
    axes = tuple(range(extra)) + tuple(
        i + extra for i, s in enumerate(shape) if s == 1 and grad.shape[i + extra] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if extra:
        grad = grad.reshape(grad.shape[extra:])
    if grad.shape != shape:
        raise ShapeError(
            f"{op}: backward returned a gradient of shape {grad.shape} that does not reduce to "
            f"the input shape {shape}"
        )
    return grad


def _topo_order(root: Tensor) -> list[Tensor]:
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


def _to_array(data: ArrayLike, dtype: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        arr = data if dtype is None else data.astype(dtype, copy=False)
    elif isinstance(data, Tensor):
        arr = data.data if dtype is None else data.data.astype(dtype, copy=False)
    else:
        arr = np.asarray(data, dtype=dtype)
        python_floats = isinstance(data, float | list | tuple) and not isinstance(data, np.generic)
        if dtype is None and python_floats and arr.dtype == np.float64 and _DEFAULT_DTYPE != np.float64:
            arr = arr.astype(_DEFAULT_DTYPE)
    return arr


class Tensor:
    """A numpy array with an autograd history.

    Parameters
    ----------
    data : array_like
        The values.  A numpy array keeps its dtype (and is not copied); Python floats and lists of
        floats become :func:`default_dtype` (float32), Python ints become int64.
    requires_grad : bool, default False
        Record ops on this tensor so :meth:`backward` can compute ``.grad``.  Only float32 and
        float64 tensors may require grad.
    dtype : dtype, optional
        Convert the data to this dtype.
    name : str, optional
        A label shown in the repr.

    Attributes
    ----------
    data : numpy.ndarray
        The values.
    grad : numpy.ndarray or None
        The accumulated gradient (same shape and dtype as ``data``) after :meth:`backward`.
    requires_grad : bool
        Whether gradients flow to this tensor.

    Examples
    --------
    >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_hooks", "name", "__weakref__")
    __array_ufunc__ = None  # make ``ndarray <op> Tensor`` defer to Tensor's reflected operators

    data: np.ndarray
    grad: np.ndarray | None
    requires_grad: bool
    _ctx: Context | None
    _hooks: list[Callable[[np.ndarray], np.ndarray | None]] | None
    name: str | None

    def __init__(
        self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None, name: str | None = None
    ) -> None:
        arr = _to_array(data, dtype)
        if requires_grad and arr.dtype not in _GRAD_DTYPES:
            raise DTypeError(
                f"Tensor: only float32 and float64 tensors can require grad, got dtype {arr.dtype}"
            )
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._hooks = None
        self.name = name

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the data."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the data."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return self.data.size

    @property
    def op(self) -> type[Function] | None:
        """The op that produced this tensor (``None`` for leaves and tensors made without grad)."""
        return None if self._ctx is None else self._ctx.op

    @property
    def ctx(self) -> Context | None:
        """The graph node that produced this tensor, with the op's named saved state."""
        return self._ctx

    @property
    def is_leaf(self) -> bool:
        """True if the tensor was not produced by a recorded op."""
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        extra = ""
        if self._ctx is not None:
            extra = f", op={self._ctx.op.name}"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        if self.name:
            extra += f", name={self.name!r}"
        body = np.array2string(self.data, precision=4, threshold=20, separator=", ")
        return f"Tensor({body}, dtype={self.data.dtype}{extra})"

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The underlying numpy array (not a copy)."""
        return self.data

    def item(self) -> Any:
        """The single value of a one-element tensor as a Python scalar."""
        if self.data.size != 1:
            raise ShapeError(f"item: only one-element tensors can be converted, got shape {self.data.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        """The data as nested Python lists."""
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A tensor sharing the data, cut from the graph (never requires grad)."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (leaves only) and return ``self``."""
        if flag and self.data.dtype not in _GRAD_DTYPES:
            raise DTypeError(
                "requires_grad_: only float32 and float64 tensors can require grad, "
                f"got dtype {self.data.dtype}"
            )
        if not flag and self._ctx is not None:
            raise GraphError(
                "requires_grad_: cannot turn off requires_grad of a non-leaf tensor; use detach()"
            )
        self.requires_grad = bool(flag)
        return self

    def zero_grad(self) -> None:
        """Reset ``.grad`` to ``None``."""
        self.grad = None

    # ------------------------------------------------------------------ hooks
    def register_hook(self, hook: Callable[[np.ndarray], np.ndarray | None]) -> None:
        """Call ``hook(grad)`` when the gradient w.r.t. this tensor is complete during backward.

        The hook may return a replacement gradient.  It must not modify ``grad`` in place.
        """
        if not self.requires_grad:
            raise GraphError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)

    def retain_grad(self) -> None:
        """Store the gradient of a non-leaf tensor in ``.grad`` during backward."""
        if self._ctx is None:
            return

        def _store(grad: np.ndarray) -> None:
            self.grad = grad if self.grad is None else self.grad + grad

        self.register_hook(_store)

    # ------------------------------------------------------------------ backward
    def backward(self, grad: ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Accumulate into ``.grad`` of every leaf the gradient of this tensor.

        Parameters
        ----------
        grad : array_like, optional
            Gradient of the final objective w.r.t. this tensor, same shape.  May be omitted only
            when this tensor has exactly one element (it is then 1).
        retain_graph : bool, default False
            Keep the saved state so that backward can run through the graph again.

        Raises
        ------
        GraphError
            If this tensor does not require grad, if ``grad`` is omitted for a tensor with more
            than one element, or if part of the graph was already freed by an earlier backward.
        ShapeError
            If ``grad`` does not have this tensor's shape.
        """
        if not self.requires_grad:
            raise GraphError("backward: tensor does not require grad and has no graph")
        if grad is None:
            if self.data.size != 1:
                raise GraphError(
                    f"backward: a gradient can be created implicitly only for a one-element output; "
                    f"got shape {self.data.shape}, pass grad= explicitly"
                )
            g = np.ones_like(self.data)
        else:
            g = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=self.data.dtype, copy=True)
            if g.shape != self.data.shape:
                raise ShapeError(
                    f"backward: grad has shape {g.shape} but the tensor has shape {self.data.shape}"
                )
        if self._ctx is not None and self._ctx.freed:
            raise GraphError(_FREED_MSG.format(op=self._ctx.op.name))

        grads: dict[int, np.ndarray] = {id(self): g}
        owned: set[int] = set()  # ids of accumulation buffers this call allocated (safe to add into)
        handed: set[int] = set()  # ids of arrays already stored in some leaf's .grad
        for node in _topo_order(self):
            if id(node) not in grads:
                continue
            g = grads.pop(id(node))
            if node._hooks:
                for hook in node._hooks:
                    new = hook(g)
                    if new is not None:
                        g = new
            ctx = node._ctx
            if ctx is None:
                if not g.flags.writeable or g.base is not None or id(g) in handed:
                    g = g.copy()
                handed.add(id(g))
                node.grad = g if node.grad is None else node.grad + g
                continue
            if ctx.freed:
                raise GraphError(_FREED_MSG.format(op=ctx.op.name))
            op = ctx.op
            local = op.backward(ctx, g)
            if not isinstance(local, tuple):
                local = (local,)
            parents = ctx.parents
            if len(local) != len(parents):
                raise GraphError(
                    f"{op.name}: backward returned {len(local)} gradients for {len(parents)} inputs"
                )
            for parent, pg in zip(parents, local, strict=True):
                if pg is None or not parent.requires_grad:
                    continue
                pdata = parent.data
                if pg.shape != pdata.shape:
                    pg = _unbroadcast(pg, pdata.shape, op.name)
                if pg.dtype != pdata.dtype:
                    pg = pg.astype(pdata.dtype)
                key = id(parent)
                acc = grads.get(key)
                if acc is None:
                    grads[key] = pg
                elif key in owned:
                    acc += pg
                else:
                    grads[key] = acc + pg
                    owned.add(key)
            if not retain_graph:
                ctx.free()

    # ------------------------------------------------------------------ operators
    def __add__(self, other: ArrayLike) -> Tensor:
        return _ew.add(self, other)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _ew.add(other, self)

    def __sub__(self, other: ArrayLike) -> Tensor:
        return _ew.sub(self, other)

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _ew.sub(other, self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        return _ew.mul(self, other)

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _ew.mul(other, self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return _ew.div(self, other)

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _ew.div(other, self)

    def __pow__(self, other: ArrayLike) -> Tensor:
        return _ew.pow(self, other)

    def __rpow__(self, other: ArrayLike) -> Tensor:
        return _ew.pow(other, self)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return _linalg.matmul(self, other)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _linalg.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ew.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ew.abs(self)

    # comparisons return tensors that never require grad
    def __lt__(self, other: ArrayLike) -> Tensor:  # type: ignore[override]
        return Tensor(self.data < _raw(other))

    def __le__(self, other: ArrayLike) -> Tensor:  # type: ignore[override]
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other: ArrayLike) -> Tensor:  # type: ignore[override]
        return Tensor(self.data > _raw(other))

    def __ge__(self, other: ArrayLike) -> Tensor:  # type: ignore[override]
        return Tensor(self.data >= _raw(other))

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]
        return Tensor(self.data == _raw(other))

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]
        return Tensor(self.data != _raw(other))

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return bool(self.data)

    def __getitem__(self, index: Any) -> Tensor:
        return _shape.getitem(self, index)

    # ------------------------------------------------------------------ methods
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes by default)."""
        return _reduce.sum(self, axis, keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes by default)."""
        return _reduce.mean(self, axis, keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; the gradient is split evenly among tied maxima."""
        return _reduce.max(self, axis, keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis``; the gradient is split evenly among tied minima."""
        return _reduce.min(self, axis, keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        """Same data in a new shape (``-1`` allowed once)."""
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return _shape.reshape(self, shape)

    def transpose(self, *axes: int) -> Tensor:
        """Reverse the axes (no argument), swap two axes (``transpose(0, 1)``, as torch) or apply a
        permutation given as one tuple (``transpose((2, 0, 1))``)."""
        nd = self.data.ndim
        if not axes:
            perm: tuple[int, ...] = tuple(range(nd - 1, -1, -1))
        elif len(axes) == 1 and isinstance(axes[0], tuple | list):
            perm = tuple(axes[0])
        elif len(axes) == 2:
            a, b = (ax % nd for ax in axes)
            order = list(range(nd))
            order[a], order[b] = order[b], order[a]
            perm = tuple(order)
        else:
            perm = tuple(axes)
        return _shape.permute(self, perm)

    def permute(self, *axes: int) -> Tensor:
        """Permute the axes."""
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return _shape.permute(self, tuple(axes))

    @property
    def T(self) -> Tensor:  # noqa: N802
        """The tensor with its axes reversed."""
        return _shape.permute(self, tuple(range(self.data.ndim - 1, -1, -1)))

    def flatten(self, start_dim: int = 0) -> Tensor:
        """Collapse the axes from ``start_dim`` on into one."""
        start = start_dim % max(self.data.ndim, 1)
        return _shape.reshape(self, self.data.shape[:start] + (-1,))

    def astype(self, dtype: Any) -> Tensor:
        """Cast to ``dtype`` (differentiable between float dtypes)."""
        return _ew.cast(self, dtype)

    def exp(self) -> Tensor:
        return _ew.exp(self)

    def log(self) -> Tensor:
        return _ew.log(self)

    def sqrt(self) -> Tensor:
        return _ew.sqrt(self)

    def abs(self) -> Tensor:
        return _ew.abs(self)

    def tanh(self) -> Tensor:
        return _ew.tanh(self)

    def sigmoid(self) -> Tensor:
        return _ew.sigmoid(self)

    def relu(self) -> Tensor:
        return _ew.relu(self)

    def clip(self, lo: float | None = None, hi: float | None = None) -> Tensor:
        return _ew.clip(self, lo, hi)

    def softmax(self, axis: int = -1) -> Tensor:
        return _nnf.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return _nnf.log_softmax(self, axis)

    def logsumexp(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return _reduce.logsumexp(self, axis, keepdims)

    def argmax(self, axis: int | None = None) -> Tensor:
        """Indices of the maxima (never requires grad)."""
        return Tensor(self.data.argmax(axis=axis))


_FREED_MSG = (
    "backward: trying to backward through the graph a second time (the saved state of op '{op}' "
    "was freed by the first backward); pass retain_graph=True to the first backward"
)


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def as_tensor(x: ArrayLike, like: Tensor | None = None) -> Tensor:
    """Return ``x`` as a :class:`Tensor` (unchanged if it already is one).

    Python scalars take the dtype of ``like`` when ``like`` is a float tensor, so ``x * 2.0`` stays
    float32 for a float32 ``x``.
    """
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, int | float) and not isinstance(x, bool):
        if like.data.dtype.kind == "f":
            return Tensor(np.asarray(x, dtype=like.data.dtype))
    return Tensor(x)


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Create a :class:`Tensor` (a copy of ``data``).

    Examples
    --------
    >>> tensor([1.0, 2.0], requires_grad=True).shape
    (2,)
    """
    return Tensor(np.array(_to_array(data, dtype), copy=True), requires_grad=requires_grad)


# Ops import Tensor and Function from this module, so they are imported last.
from backcheck.nn.ops import elementwise as _ew  # noqa: E402
from backcheck.nn.ops import linalg as _linalg  # noqa: E402
from backcheck.nn.ops import nnfunc as _nnf  # noqa: E402
from backcheck.nn.ops import reduce as _reduce  # noqa: E402
from backcheck.nn.ops import shape as _shape  # noqa: E402
