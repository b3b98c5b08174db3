"""Modules: parameter containers with a ``forward``, as in ``torch.nn``.

Parameters are found by walking a module's attributes (including lists and tuples of modules or
parameters) in definition order; nothing is registered under string keys.  Names are dotted paths
such as ``layers.0.weight``.  Buffers (numpy arrays saved in the state dict, e.g. batch-norm running
statistics) are the attributes named in the class attribute ``buffer_names``.

Per-layer gradient checking
---------------------------
Two tools let a checker test each layer on the real data of a training step:

* :meth:`Module.capture` records, for every named submodule, the input arrays, the output and the
  gradient that flowed into the output during the next forward + backward::

      with model.capture() as records:
          loss = cross_entropy(model(x), y)
          loss.backward()
      rec = records["layers.0"]        # rec.inputs, rec.output, rec.grad_output, rec.params

* :meth:`Module.replay` makes a module a pure function of its inputs and parameters that
  reproduces the captured pass: dropout reuses its last mask and batch norm uses batch statistics
  without updating its running statistics.  :meth:`Module.pure_forward` and :meth:`Module.vjp` run a
  module that way with given parameter arrays, which is all a finite-difference checker needs::

      layer = model.get_submodule("layers.0")
      out = layer.pure_forward(*rec.inputs, params=rec.params)
      input_grads, param_grads = layer.vjp(rec.inputs, rec.grad_output, params=rec.params)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from backcheck.nn import functional as F
from backcheck.nn.errors import DTypeError, ShapeError, StateDictError
from backcheck.nn.tensor import Tensor, enable_grad, no_grad

__all__ = [
    "Parameter",
    "Module",
    "Capture",
    "Linear",
    "Conv2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "Dropout",
    "Embedding",
    "Sequential",
    "Flatten",
    "Identity",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "GELU",
    "LeakyReLU",
    "Softmax",
    "MaxPool2d",
    "AvgPool2d",
    "MLP",
    "SmallCNN",
    "manual_seed",
]

_INIT_RNG = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Seed the generator used to initialize parameters when a layer gets no ``rng``."""
    global _INIT_RNG
    _INIT_RNG = np.random.default_rng(seed)


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return _INIT_RNG if rng is None else rng


class Parameter(Tensor):
    """A leaf tensor that is a trainable parameter of a module (``requires_grad=True``)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None) -> None:
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)
        if self.data.dtype.kind != "f":
            raise DTypeError(f"Parameter: parameters must be float32 or float64, got dtype {self.data.dtype}")

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


@dataclass
class Capture:
    """What one module saw during a captured forward and backward pass.

    Attributes
    ----------
    name : str
        Dotted name of the module in the captured model ('' for the model itself).
    module : Module
    inputs : tuple
        Copies of the positional inputs (numpy arrays for tensors, other values as given).
    output : numpy.ndarray
        Copy of the output.
    grad_output : numpy.ndarray or None
        Gradient of the loss w.r.t. the output, filled in during backward.
    params : dict of str to numpy.ndarray
        Copies of the module's parameters at forward time, by name relative to the module.
    training : bool
        The module's mode during the pass.
    """

    name: str
    module: Module
    inputs: tuple[Any, ...]
    output: np.ndarray
    grad_output: np.ndarray | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)
    training: bool = True


class _CaptureSession:
    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self.records: dict[str, Capture] = {}

    def call(self, module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        out = module.forward(*args, **kwargs)
        name = self.names.get(id(module))
        if name is None or name in self.records or not isinstance(out, Tensor):
            return out
        rec = Capture(
            name=name,
            module=module,
            inputs=tuple(a.data.copy() if isinstance(a, Tensor) else a for a in args),
            output=out.data.copy(),
            params={n: p.data.copy() for n, p in module.named_parameters()},
            training=module.training,
        )
        if out.requires_grad:

            def _record(grad: np.ndarray) -> None:
                rec.grad_output = grad.copy() if rec.grad_output is None else rec.grad_output + grad

            out.register_hook(_record)
        self.records[name] = rec
        return out


class Module:
    """Base class of layers and models.

    Subclasses assign parameters and submodules as attributes in ``__init__`` (calling
    ``super().__init__()`` first) and implement ``forward``.

    Examples
    --------
    >>> class Affine(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = Parameter(np.ones(3))
    ...     def forward(self, x):
    ...         return x * self.scale
    >>> [name for name, _ in Affine().named_parameters()]
    ['scale']
    """

    buffer_names: ClassVar[tuple[str, ...]] = ()
    _capture: _CaptureSession | None = None
    _replaying: bool = False

    def __init__(self) -> None:
        self.training = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        session = self._capture
        if session is None:
            return self.forward(*args, **kwargs)
        return session.call(self, args, kwargs)

    # ------------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct submodules (attributes, and items of list/tuple attributes) with their names."""
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def children(self) -> Iterator[Module]:
        """Direct submodules."""
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module ('' or ``prefix``) and every submodule, depth first, each once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{n}" if name else n, m) for n, m in mod.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        """This module and every submodule."""
        for _, m in self.named_modules():
            yield m

    def get_submodule(self, name: str) -> Module:
        """The submodule with dotted ``name`` ('' for this module)."""
        for n, m in self.named_modules():
            if n == name:
                return m
        raise KeyError(f"get_submodule: no submodule named {name!r} in {type(self).__name__}")

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, Parameter):
                yield name, value
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if isinstance(item, Parameter):
                        yield f"{name}.{i}", item

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """All parameters with dotted names such as ``layers.0.weight``, each once."""
        seen: set[int] = set()
        for mod_name, mod in self.named_modules(prefix):
            for pname, p in mod._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{pname}" if mod_name else pname), p

    def parameters(self) -> list[Parameter]:
        """All parameters, in definition order."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """Buffers (arrays listed in ``buffer_names``) with dotted names."""
        for mod_name, mod in self.named_modules():
            for bname in mod.buffer_names:
                value = getattr(mod, bname, None)
                if value is not None:
                    yield (f"{mod_name}.{bname}" if mod_name else bname), value

    def num_parameters(self) -> int:
        """Total number of parameter elements."""
        return int(sum(p.data.size for p in self.parameters()))

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every submodule; returns ``self``."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``); returns ``self``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None."""
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy values into the parameters and buffers in place (keeping their dtypes).

        Raises
        ------
        StateDictError
            On missing or unexpected keys (when ``strict``) or a shape mismatch.
        """
        targets: dict[str, np.ndarray] = {n: p.data for n, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise StateDictError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                f"for {type(self).__name__}"
            )
        for name, dest in targets.items():
            if name not in state:
                continue
            src = np.asarray(state[name].data if isinstance(state[name], Tensor) else state[name])
            if src.shape != dest.shape:
                raise StateDictError(
                    f"load_state_dict: {name} has shape {src.shape} in the state dict "
                    f"but {dest.shape} in the module"
                )
            np.copyto(dest, src, casting="unsafe")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the state dict to an ``.npz`` file."""
        np.savez(path, **self.state_dict())  # type: ignore[arg-type]

    def load(self, path: str | os.PathLike[str], strict: bool = True) -> None:
        """Load a state dict saved by :meth:`save`."""
        with np.load(path) as f:
            self.load_state_dict({k: f[k] for k in f.files}, strict=strict)

    # ------------------------------------------------------------------ capture and replay
    @contextlib.contextmanager
    def capture(self) -> Iterator[dict[str, Capture]]:
        """Record inputs, outputs and output gradients of every submodule during the block.

        Only the first call of each module inside the block is recorded.  The dict yielded is
        filled as the block runs (``grad_output`` during backward).
        """
        mods = list(self.named_modules())
        session = _CaptureSession({id(m): name for name, m in mods})
        for _, m in mods:
            m._capture = session
        try:
            yield session.records
        finally:
            for _, m in mods:
                m.__dict__.pop("_capture", None)

    @contextlib.contextmanager
    def replay(self) -> Iterator[Module]:
        """Make forward a pure function that reproduces the last pass.

        Inside the block, :class:`Dropout` reuses its last mask and batch norm in training mode
        normalizes with batch statistics but leaves its running statistics untouched.
        """
        mods = list(self.modules())
        previous = [m.__dict__.get("_replaying") for m in mods]
        for m in mods:
            m._replaying = True
        try:
            yield self
        finally:
            for m, prev in zip(mods, previous, strict=True):
                if prev is None:
                    m.__dict__.pop("_replaying", None)
                else:
                    m._replaying = prev

    @contextlib.contextmanager
    def _params_swapped(self, params: Mapping[str, np.ndarray] | None) -> Iterator[dict[str, Parameter]]:
        named = dict(self.named_parameters())
        saved = {n: (p.data, p.grad) for n, p in named.items()}
        try:
            for name, arr in (params or {}).items():
                if name not in named:
                    raise StateDictError(f"{type(self).__name__}: no parameter named {name!r}")
                if np.shape(arr) != named[name].data.shape:
                    raise ShapeError(
                        f"{type(self).__name__}: parameter {name} needs shape {named[name].data.shape}, "
                        f"got {np.shape(arr)}"
                    )
                named[name].data = np.asarray(arr)
            for p in named.values():
                p.grad = None
            yield named
        finally:
            for n, p in named.items():
                p.data, p.grad = saved[n]

    def pure_forward(self, *inputs: Any, params: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Forward as a pure function of ``inputs`` and ``params`` (under :meth:`replay`, no graph).

        Parameters
        ----------
        *inputs : numpy.ndarray
            Positional inputs, e.g. ``Capture.inputs``.
        params : dict of str to numpy.ndarray, optional
            Values for some or all parameters (names relative to this module); others keep
            their current values.  Nothing is modified.

        Returns
        -------
        numpy.ndarray
            The output.
        """
        with self._params_swapped(params), self.replay(), no_grad():
            out = self(*[Tensor(x) if isinstance(x, np.ndarray) else x for x in inputs])
        return out.data.copy()

    def vjp(
        self, inputs: Sequence[Any], grad_output: np.ndarray, params: Mapping[str, np.ndarray] | None = None
    ) -> tuple[list[np.ndarray | None], dict[str, np.ndarray]]:
        """Gradients of ``sum(forward(inputs) * grad_output)`` computed by this engine's backward.

        Runs under :meth:`replay`, like :meth:`pure_forward`, and leaves the parameters' ``.grad``
        untouched.

        Returns
        -------
        input_grads : list
            One gradient per input (None for non-float inputs).
        param_grads : dict of str to numpy.ndarray
            Gradient for every parameter (zeros if unused).
        """
        tensors = [
            Tensor(np.array(x, copy=True), requires_grad=True)
            if isinstance(x, np.ndarray) and x.dtype.kind == "f"
            else (Tensor(x) if isinstance(x, np.ndarray) else x)
            for x in inputs
        ]
        with self._params_swapped(params) as named, self.replay(), enable_grad():
            out = self(*tensors)
            if out.requires_grad:
                out.backward(np.asarray(grad_output, dtype=out.data.dtype))
            pgrads = {
                n: (p.grad.copy() if p.grad is not None else np.zeros_like(p.data)) for n, p in named.items()
            }
        igrads = [
            (t.grad if t.grad is not None else np.zeros_like(t.data))
            if isinstance(t, Tensor) and t.requires_grad
            else None
            for t in tensors
        ]
        return igrads, pgrads

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """One-line description of the module's own settings."""
        return ""

    def __repr__(self) -> str:
        kids = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not kids:
            return head + ")"
        lines = [head]
        for name, m in kids:
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"


# ---------------------------------------------------------------------- layers
def _uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype: Any) -> Parameter:
    return Parameter(rng.uniform(-bound, bound, size=shape).astype(dtype))


class Linear(Module):
    """``y = x @ weight.T + bias`` with torch's default init ``U(-1/sqrt(in), 1/sqrt(in))``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    dtype : numpy dtype, default float32
    rng : numpy.random.Generator, optional

    Shapes: input (..., in_features), output (..., out_features).

    Examples
    --------
    >>> Linear(3, 2)(Tensor(np.ones((4, 3), dtype=np.float32))).shape
    (4, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        g = _rng(rng)
        bound = 1.0 / np.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = _uniform(g, bound, (out_features, in_features), dtype)
        self.bias = _uniform(g, bound, (out_features,), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution layer (see :func:`backcheck.nn.functional.conv2d`).

    Input (N, in_channels, H, W), output (N, out_channels, Ho, Wo); weight
    (out_channels, in_channels, k, k) initialized ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` like torch.

    Examples
    --------
    >>> Conv2d(1, 4, 3, padding=1)(Tensor(np.zeros((2, 1, 8, 8), dtype=np.float32))).shape
    (2, 4, 8, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        g = _rng(rng)
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        bound = 1.0 / np.sqrt(in_channels * kh * kw)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.weight = _uniform(g, bound, (out_channels, in_channels, kh, kw), dtype)
        self.bias = _uniform(g, bound, (out_channels,), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class _BatchNorm(Module):
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    _ndims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.track_running_stats = track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if affine else None
        self.running_mean = np.zeros(num_features, dtype=dtype) if track_running_stats else None
        self.running_var = np.ones(num_features, dtype=dtype) if track_running_stats else None
        self.num_batches_tracked = np.zeros((), dtype=np.int64) if track_running_stats else None

    def forward(self, x: Tensor) -> Tensor:
        if x.data.ndim not in self._ndims:
            raise ShapeError(
                f"{type(self).__name__}: expected an input with {self._ndims} dimensions, got shape {x.shape}"
            )
        use_batch = self.training or self.running_mean is None
        update = self.training and self.running_mean is not None and not self._replaying
        if update and self.num_batches_tracked is not None:
            self.num_batches_tracked += 1
        return F.batch_norm(
            x,
            self.running_mean if update or not use_batch else None,
            self.running_var if update or not use_batch else None,
            self.weight,
            self.bias,
            training=use_batch,
            momentum=self.momentum,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs; torch's running-statistics convention."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs, per channel; torch's running-statistics convention."""

    _ndims = (4,)


class LayerNorm(Module):
    """Layer norm over the trailing ``normalized_shape`` axes, with elementwise scale and shift."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(np.ones(shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype=dtype)) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    """Inverted dropout with its own seeded generator.

    The mask of the last training forward is kept in ``last_mask``; under :meth:`Module.replay` it
    is reused, so the layer is a deterministic function of its input.  In eval mode the input is
    returned unchanged.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = np.random.default_rng(seed)
        self.last_mask: np.ndarray | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self._replaying:
            if self.last_mask is None or self.last_mask.shape != x.data.shape:
                raise ShapeError(
                    f"Dropout.replay: no stored mask for an input of shape {x.data.shape} "
                    f"(last mask: {None if self.last_mask is None else self.last_mask.shape})"
                )
            mask = self.last_mask
        else:
            mask = F.dropout_mask(x.data.shape, self.p, self.rng, x.data.dtype)
            self.last_mask = mask
        return F.dropout(x, self.p, mask=mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Embedding(Module):
    """Lookup table: integer indices of shape S give vectors of shape S + (embedding_dim,)."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(_rng(rng).standard_normal((num_embeddings, embedding_dim)).astype(dtype))

    def forward(self, indices: Any) -> Tensor:
        return F.embedding(indices, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Sequential(Module):
    """Chain of modules; children are named by position (``0``, ``1``, ...).

    Examples
    --------
    >>> net = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    >>> [n for n, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        self.layers = list(layers)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, m in enumerate(self.layers):
            yield str(i), m

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def append(self, layer: Module) -> Sequential:
        self.layers.append(layer)
        return self

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


class _Elementwise(Module):
    fn: ClassVar[Callable[..., Tensor]]

    def forward(self, x: Tensor) -> Tensor:
        return type(self).fn(x)


class ReLU(_Elementwise):
    """``max(x, 0)``."""

    fn = staticmethod(F.relu)


class Tanh(_Elementwise):
    """Hyperbolic tangent."""

    fn = staticmethod(F.tanh)


class Sigmoid(_Elementwise):
    """Logistic sigmoid."""

    fn = staticmethod(F.sigmoid)


class Identity(Module):
    """Returns its input."""

    def forward(self, x: Any) -> Any:
        return x


class GELU(Module):
    """GELU, exact (``approximate='none'``) or tanh-approximated."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)


class LeakyReLU(Module):
    """``x if x > 0 else negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)


class Softmax(Module):
    """Softmax along ``dim``."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)


class Flatten(Module):
    """Collapse axes ``start_dim..`` into one: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim)


class MaxPool2d(Module):
    """Max pooling (see :func:`backcheck.nn.functional.max_pool2d`)."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(Module):
    """Average pooling (see :func:`backcheck.nn.functional.avg_pool2d`)."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


# ---------------------------------------------------------------------- ready-made models
_ACTIVATIONS: dict[str, Callable[[], Module]] = {
    "relu": ReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "gelu": GELU,
    "leaky_relu": LeakyReLU,
}


def _activation(activation: str | Callable[[], Module]) -> Module:
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
        return _ACTIVATIONS[activation]()
    return activation()


class MLP(Module):
    """Multi-layer perceptron ``Linear -> activation -> ... -> Linear``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``(64, 128, 10)`` gives two Linear layers.
    activation : str or callable returning a Module
        'relu', 'tanh', 'sigmoid', 'gelu', 'leaky_relu', or a module class such as ``ReLU``.
    dropout : float
        Dropout probability after each hidden activation (0 disables).
    flatten : bool
        Flatten inputs of shape (N, ...) to (N, -1) first (so images can be fed directly).
    dtype, rng
        Parameter dtype and initialization generator.

    Examples
    --------
    >>> MLP([64, 32, 10])(Tensor(np.zeros((5, 1, 8, 8), dtype=np.float32))).shape
    (5, 10)
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | Callable[[], Module] = "relu",
        dropout: float = 0.0,
        flatten: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output width, got {list(sizes)}")
        layers: list[Module] = [Flatten()] if flatten else []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(Linear(a, b, dtype=dtype, rng=rng))
            if i < len(sizes) - 2:
                layers.append(_activation(activation))
                if dropout:
                    layers.append(Dropout(dropout, seed=i))
        self.sizes = tuple(sizes)
        self.layers = Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class SmallCNN(Module):
    """A small convolutional net for 8x8 single-channel images (e.g. scikit-learn's digits).

    ``conv3x3(1, c1) -> BN -> ReLU -> conv3x3(c1, c2) -> BN -> ReLU -> maxpool2 -> flatten
    -> Linear(c2 * 16, hidden) -> ReLU -> Linear(hidden, num_classes)``.

    Shapes: input (N, 1, 8, 8), output (N, num_classes) logits.

    Examples
    --------
    >>> SmallCNN()(Tensor(np.zeros((2, 1, 8, 8), dtype=np.float32))).shape
    (2, 10)
    """

    def __init__(
        self,
        num_classes: int = 10,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 64,
        batchnorm: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        c1, c2 = channels

        def norm(c: int) -> Module:
            return BatchNorm2d(c, dtype=dtype) if batchnorm else Identity()

        self.features = Sequential(
            Conv2d(1, c1, 3, padding=1, dtype=dtype, rng=rng),
            norm(c1),
            ReLU(),
            Conv2d(c1, c2, 3, padding=1, dtype=dtype, rng=rng),
            norm(c2),
            ReLU(),
            MaxPool2d(2),
        )
        self.classifier = Sequential(
            Flatten(),
            Linear(c2 * 16, hidden, dtype=dtype, rng=rng),
            ReLU(),
            Linear(hidden, num_classes, dtype=dtype, rng=rng),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
