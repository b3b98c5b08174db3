"""The tensor: :class:`Tensor`, the :class:`Function` base class of every op, and ``as_tensor``.

Each op is a :class:`Function` subclass with a ``forward`` and a ``backward`` written side by side.
``forward`` receives a :class:`~backcheck.nn.autograd.Context` (the graph node) and plain numpy arrays,
stores what its backward needs as *named attributes* on the context (``ctx.x = x``) and returns a numpy
array.  ``backward`` receives the context and the gradient of the loss with respect to the op's output
and returns the *local* gradient for each input (``None`` for an input that does not need one).
Unbroadcasting, dtype casts, accumulation and freeing are done once for all ops by the backward walk of
:mod:`backcheck.nn.autograd`.

Gradient arrays are treated as immutable by the engine: it never writes into an array it did not
allocate itself, and the arrays it stores in ``.grad`` may share memory with each other.  Replace
``.grad`` (``p.grad = p.grad * 0.5``) rather than modifying it in place.

Tensor's operators and methods call the ops of :mod:`backcheck.nn.ops`, which import this module; they
reach them through ``_ops``, which imports an op family on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backcheck.nn.autograd import (
    FREED_MSG,
    GRAD_MODE,
    Context,
    enable_grad,
    is_grad_enabled,
    no_grad,
    run_backward,
)
from backcheck.nn.conversions import Conversions
from backcheck.nn.dtypes import DTYPE, GRAD_DTYPES, TENSOR_KINDS, default_dtype, set_default_dtype, to_array, weak_to
from backcheck.nn.errors import ArgumentError, DTypeError, GraphError, ShapeError
from backcheck.nn.validate import dim_of, flag

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

_GRAD_DTYPES = GRAD_DTYPES
_TENSOR_KINDS = TENSOR_KINDS
_DTYPE = DTYPE


class _Ops:
    """The op families of :mod:`backcheck.nn.ops`, each imported on first use (they import this module)."""

    _FAMILIES = ("elementwise", "inplace", "linalg", "nnfunc", "reduce", "shape")

    def __getattr__(self, family: str) -> Any:
        if family not in self._FAMILIES:
            raise AttributeError(family)
        module = importlib.import_module(f"backcheck.nn.ops.{family}")
        setattr(self, family, module)
        return module


_ops = _Ops()


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
        if GRAD_MODE.enabled:
            try:
                needs = tuple([t.requires_grad for t in inputs])
            except AttributeError:
                raise _not_tensors(cls.name, inputs) from None
            record = True in needs
        else:
            needs = (False,) * len(inputs)
            record = False
        ctx = Context(cls, needs)
        data = cls.forward(ctx, *[t.data for t in inputs], **params)
        out = Tensor.__new__(Tensor)
        out.data = data if type(data) is np.ndarray else np.asarray(data)  # (0-d arithmetic gives numpy scalars)
        out.grad = None
        out._hooks = None
        out.name = None
        out._version = 0
        if record:
            ctx.parents = inputs
            out.requires_grad = True
            out._ctx = ctx
        else:
            out.requires_grad = False
            out._ctx = None
        return out


def _not_tensors(name: str, inputs: Sequence[Any]) -> ArgumentError:
    """The error for an op applied to something other than tensors (a custom op given numpy arrays)."""
    k, bad = next((k, t) for k, t in enumerate(inputs) if not isinstance(t, Tensor))
    return ArgumentError(
        f"{name}: input {k} is a {type(bad).__name__}, not a Tensor",
        "wrap arrays with Tensor(...) or as_tensor(...) before Op.apply",
        argument=f"inputs[{k}]",
        allowed="a Tensor",
        value=bad,
    )


class Tensor(Conversions):
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

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_hooks", "name", "_version", "__weakref__")
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
        arr = to_array(data.data if isinstance(data, Tensor) else data, dtype)
        if type(requires_grad) is not bool:
            requires_grad = flag("Tensor", "requires_grad", requires_grad)
        if requires_grad and arr.dtype not in _GRAD_DTYPES:
            raise DTypeError(
                f"Tensor: only float32 and float64 tensors can require grad, got dtype {arr.dtype}",
                "convert the data first, e.g. Tensor(x.astype(np.float32), requires_grad=True)",
            )
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._hooks = None
        self.name = name
        self._version = 0  # the count of writes in place at its last one (autograd.modified)

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
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
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
                f"requires_grad_: only float32 and float64 tensors can require grad, got dtype {self.data.dtype}"
            )
        if not flag and self._ctx is not None:
            raise GraphError("requires_grad_: cannot turn off requires_grad of a non-leaf tensor; use detach()")
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
        """Store the gradient of a non-leaf tensor in ``.grad`` during backward (after its other hooks, as torch;
        a second call changes nothing)."""
        if self._ctx is None or any(getattr(h, "retains_grad", False) for h in self._hooks or ()):
            return

        def _store(grad: np.ndarray) -> None:
            self.grad = grad if self.grad is None else self.grad + grad

        _store.retains_grad = True  # type: ignore[attr-defined]
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
                raise ShapeError(f"backward: grad has shape {g.shape} but the tensor has shape {self.data.shape}")
        if self._ctx is not None and self._ctx.freed:
            raise GraphError(FREED_MSG.format(op=self._ctx.op.name))
        run_backward(self, g, retain_graph)

    # ------------------------------------------------------------------ operators
    def __add__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.add(self, other)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.add(other, self)

    def __sub__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.sub(self, other)

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.sub(other, self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.mul(self, other)

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.mul(other, self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.div(self, other)

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.div(other, self)

    def __pow__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.pow(self, other)

    def __rpow__(self, other: ArrayLike) -> Tensor:
        return _ops.elementwise.pow(other, self)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return _ops.linalg.matmul(self, other)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _ops.linalg.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ops.elementwise.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ops.elementwise.abs(self)

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
        return _ops.shape.getitem(self, index)

    # in place, as torch's (see :mod:`backcheck.nn.ops.inplace`): written into ``data`` where no graph records
    def __setitem__(self, index: Any, value: ArrayLike) -> None:
        _ops.inplace.setitem(self, index, value)

    def __iadd__(self, other: ArrayLike) -> Tensor:
        return _ops.inplace.update(self, other, "add")

    def __isub__(self, other: ArrayLike) -> Tensor:
        return _ops.inplace.update(self, other, "sub")

    def __imul__(self, other: ArrayLike) -> Tensor:
        return _ops.inplace.update(self, other, "mul")

    def __itruediv__(self, other: ArrayLike) -> Tensor:
        return _ops.inplace.update(self, other, "div")

    # ------------------------------------------------------------------ methods
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes by default)."""
        return _ops.reduce.sum(self, axis, keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes by default)."""
        return _ops.reduce.mean(self, axis, keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; the gradient is split evenly among tied maxima."""
        return _ops.reduce.max(self, axis, keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis``; the gradient is split evenly among tied minima."""
        return _ops.reduce.min(self, axis, keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        """Same data in a new shape (``-1`` allowed once)."""
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return _ops.shape.reshape(self, shape)

    def transpose(self, *axes: int) -> Tensor:
        """Reverse the axes (no argument), swap two axes (``transpose(0, 1)``, as torch) or apply a
        permutation given as one tuple (``transpose((2, 0, 1))``)."""
        nd = self.data.ndim
        if not axes:
            perm: tuple[int, ...] = tuple(range(nd - 1, -1, -1))
        elif len(axes) == 1 and isinstance(axes[0], tuple | list):
            perm = tuple(axes[0])
        elif len(axes) == 2:
            a, b = (dim_of("transpose", ax, nd) for ax in axes)
            order = list(range(nd))
            if nd:  # (a 0-d tensor takes dims 0 and -1, as torch, and stays as it is)
                order[a], order[b] = order[b], order[a]
            perm = tuple(order)
        else:
            perm = tuple(axes)
        return _ops.shape.permute(self, perm)

    def permute(self, *axes: int) -> Tensor:
        """Permute the axes."""
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return _ops.shape.permute(self, tuple(axes))

    @property
    def T(self) -> Tensor:
        """The tensor with its axes reversed."""
        return _ops.shape.permute(self, tuple(range(self.data.ndim - 1, -1, -1)))

    def flatten(self, start_dim: int = 0) -> Tensor:
        """Collapse the axes from ``start_dim`` on into one."""
        start = dim_of("flatten", start_dim, self.data.ndim)
        return _ops.shape.reshape(self, _ops.shape.flat_shape(self.data.shape, start))

    def astype(self, dtype: Any) -> Tensor:
        """Cast to ``dtype`` (differentiable between float dtypes)."""
        return _ops.elementwise.cast(self, dtype)

    def exp(self) -> Tensor:
        return _ops.elementwise.exp(self)

    def log(self) -> Tensor:
        return _ops.elementwise.log(self)

    def sqrt(self) -> Tensor:
        return _ops.elementwise.sqrt(self)

    def abs(self) -> Tensor:
        return _ops.elementwise.abs(self)

    def tanh(self) -> Tensor:
        return _ops.elementwise.tanh(self)

    def sigmoid(self) -> Tensor:
        return _ops.elementwise.sigmoid(self)

    def relu(self) -> Tensor:
        return _ops.elementwise.relu(self)

    def clip(self, lo: float | None = None, hi: float | None = None) -> Tensor:
        return _ops.elementwise.clip(self, lo, hi)

    def softmax(self, axis: int = -1) -> Tensor:
        return _ops.nnfunc.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return _ops.nnfunc.log_softmax(self, axis)

    def logsumexp(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return _ops.reduce.logsumexp(self, axis, keepdims)

    def unsqueeze(self, axis: int) -> Tensor:
        return _ops.shape.unsqueeze(self, axis)

    def squeeze(self, axis: int | None = None) -> Tensor:
        return _ops.shape.squeeze(self, axis)

    def var(self, axis: int | Sequence[int] | None = None, correction: int = 1, keepdims: bool = False) -> Tensor:
        """The variance with ``correction`` (torch's default: 1, the unbiased estimate)."""
        return _ops.reduce.var(self, axis, correction, keepdims)

    def std(self, axis: int | Sequence[int] | None = None, correction: int = 1, keepdims: bool = False) -> Tensor:
        return _ops.reduce.std(self, axis, correction, keepdims)

    def argmax(self, axis: int | None = None) -> Tensor:
        """Indices of the maxima (never requires grad)."""
        return Tensor(self.data.argmax(axis=axis))


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def as_tensor(x: ArrayLike, like: Tensor | None = None) -> Tensor:
    """Return ``x`` as a :class:`Tensor` (unchanged if it already is one).

    Python scalars take the dtype of ``like`` when ``like`` is a float tensor, so ``x * 2.0`` stays
    float32 for a float32 ``x``; so do integer and bool arrays, and 0-d float arrays beside a ``like`` with
    dimensions (:func:`backcheck.nn.dtypes.weak_to`).
    """
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, int | float) and not isinstance(x, bool):
        if like.data.dtype.kind == "f":
            return Tensor(np.asarray(x, dtype=like.data.dtype))
    if like is not None and isinstance(x, np.ndarray | np.generic):
        to = weak_to(np.asarray(x), like.data)  # an integer mask, a 0-d float64: like's float dtype (see dtypes)
        if to is not None:
            return Tensor(np.asarray(x, dtype=to))
    return Tensor(x)


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Create a :class:`Tensor` (a copy of ``data``).

    Examples
    --------
    >>> tensor([1.0, 2.0], requires_grad=True).shape
    (2,)
    """
    return Tensor(np.array(to_array(_raw(data), dtype), copy=True), requires_grad=requires_grad)
