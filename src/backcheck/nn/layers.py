"""Layers: the :class:`~backcheck.nn.module.Module` subclasses of :mod:`backcheck.nn`, as in ``torch.nn``.

Every constructor checks its arguments and raises :class:`~backcheck.nn.errors.ArgumentError` naming the
argument and its allowed range (``Linear: in_features must be an integer >= 1, got 0``); parameter
dtypes must be float32 or float64 (:class:`~backcheck.nn.errors.DTypeError` otherwise).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

import backcheck.nn.functional as F
from backcheck.nn.errors import ArgumentError, ShapeError
from backcheck.nn.module import Module, Parameter, derived_rng, init_rng, random_state_kept
from backcheck.nn.ops.conv import pool_geometry
from backcheck.nn.ops.norm import as_normalized_shape
from backcheck.nn.tensor import Tensor
from backcheck.nn.validate import choice, flag, float_dtype, int_pair, integer, number, probability

__all__ = [
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
]


def _uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype: Any) -> Parameter:
    return Parameter(rng.uniform(-bound, bound, size=shape).astype(dtype))


class Linear(Module):
    """``y = x @ weight.T + bias`` with torch's default init ``U(-1/sqrt(in), 1/sqrt(in))``.

    Parameters
    ----------
    in_features, out_features : int
        At least 1.
    bias : bool
    dtype : numpy dtype, default float32
        float32 or float64.
    rng : numpy.random.Generator, optional

    Shapes: input (..., in_features), float; output (..., out_features).

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
        hint = "the sizes of the last axis of the input and of the output"
        self.in_features = integer("Linear", "in_features", in_features, minimum=1, hint=hint)
        self.out_features = integer("Linear", "out_features", out_features, minimum=1, hint=hint)
        dt = float_dtype("Linear", "dtype", dtype)
        g = init_rng("Linear", rng)
        bound = 1.0 / np.sqrt(self.in_features)
        self.weight = _uniform(g, bound, (self.out_features, self.in_features), dt)
        self.bias = _uniform(g, bound, (self.out_features,), dt) if flag("Linear", "bias", bias) else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution layer (see :func:`backcheck.nn.functional.conv2d`).

    Input (N, in_channels, H, W), output (N, out_channels, Ho, Wo); weight
    (out_channels, in_channels, kh, kw) initialized ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` like torch.
    ``kernel_size`` and ``stride`` are at least 1, ``padding`` at least 0 (an int or a pair each).

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
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = integer("Conv2d", "in_channels", in_channels, minimum=1)
        self.out_channels = integer("Conv2d", "out_channels", out_channels, minimum=1)
        kh, kw = int_pair("Conv2d", "kernel_size", kernel_size, minimum=1)
        self.kernel_size = (kh, kw)
        self.stride = int_pair("Conv2d", "stride", stride, minimum=1)
        self.padding = int_pair("Conv2d", "padding", padding, minimum=0)
        dt = float_dtype("Conv2d", "dtype", dtype)
        g = init_rng("Conv2d", rng)
        bound = 1.0 / np.sqrt(self.in_channels * kh * kw)
        self.weight = _uniform(g, bound, (self.out_channels, self.in_channels, kh, kw), dt)
        self.bias = _uniform(g, bound, (self.out_channels,), dt) if flag("Conv2d", "bias", bias) else None

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
    _layout = ""

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
        owner = type(self).__name__
        self.num_features = c = integer(owner, "num_features", num_features, minimum=1)
        self.eps = number(owner, "eps", eps, low=0.0, interval="(]", hint="eps keeps 1 / sqrt(var + eps) finite")
        self.momentum = number(
            owner, "momentum", momentum, 0.0, 1.0, hint="the weight of the new batch in the running statistics"
        )
        self.track_running_stats = track = flag(owner, "track_running_stats", track_running_stats)
        affine = flag(owner, "affine", affine)
        dt = float_dtype(owner, "dtype", dtype)
        self.weight = Parameter(np.ones(c, dtype=dt)) if affine else None
        self.bias = Parameter(np.zeros(c, dtype=dt)) if affine else None
        self.running_mean = np.zeros(c, dtype=dt) if track else None
        self.running_var = np.ones(c, dtype=dt) if track else None
        self.num_batches_tracked = np.zeros((), dtype=np.int64) if track else None

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x.data.shape)
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

    def _check_input(self, shape: tuple[int, ...]) -> None:
        """A ShapeError naming the layer unless ``shape`` is one of its layouts with ``num_features`` channels."""
        me, c = f"{type(self).__name__}({self.num_features})", self.num_features
        if len(shape) not in self._ndims:
            raise ShapeError(
                f"{me}: expected an input of shape {self._layout}, got shape {shape}",
                "batch norm normalizes each channel (axis 1) over a batch: BatchNorm1d takes (N, C) or "
                "(N, C, L), BatchNorm2d takes (N, C, H, W)",
            )
        if shape[1] != c:
            raise ShapeError(
                f"{me}: expects {c} channels (axis 1), got an input of shape {shape} with {shape[1]}",
                "num_features must equal the channels of its input (the previous layer's out_features or out_channels)",
            )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs; torch's running-statistics convention.

    ``num_features >= 1``, ``eps > 0``, ``momentum`` in [0, 1].
    """

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs, per channel; torch's running-statistics convention.

    ``num_features >= 1``, ``eps > 0``, ``momentum`` in [0, 1].
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"


class LayerNorm(Module):
    """Layer norm over the trailing ``normalized_shape`` axes (each >= 1), with elementwise scale and shift."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.normalized_shape = as_normalized_shape("LayerNorm", normalized_shape)
        self.eps = number("LayerNorm", "eps", eps, low=0.0, interval="(]", hint="eps keeps 1 / sqrt(var + eps) finite")
        dt = float_dtype("LayerNorm", "dtype", dtype)
        affine = flag("LayerNorm", "elementwise_affine", elementwise_affine)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dt)) if affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dt)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    """Inverted dropout with its own seeded generator; ``p`` (the probability of zeroing) in [0, 1).

    The generator is ``np.random.default_rng(seed)`` when ``seed`` is given, else spawned from ``rng``
    or, without one, from the generator :func:`~backcheck.nn.module.manual_seed` seeds (so after the
    same ``manual_seed`` the masks are the same).  The mask of the last training forward is kept in
    ``last_mask``; under :meth:`Module.replay` it is reused, so the layer is a deterministic function of
    its input.  In eval mode the input is returned unchanged.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.p = probability("Dropout", "p", p, hint="p is the probability of zeroing an element; 0 disables dropout")
        if seed is not None:
            self.rng = np.random.default_rng(integer("Dropout", "seed", seed, minimum=0))
        else:
            self.rng = derived_rng("Dropout", rng)
        self.last_mask: np.ndarray | None = None

    #: under :func:`masks_drawn_when_missing`: a replay with no mask of the input's shape draws one (and keeps it)
    draw_missing: ClassVar[bool] = False

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self._replaying and (self.last_mask is None or self.last_mask.shape != x.data.shape):
            if not self.draw_missing:
                raise ShapeError(
                    f"Dropout.replay: no stored mask for an input of shape {x.data.shape} "
                    f"(last mask: {None if self.last_mask is None else self.last_mask.shape})",
                    "replay reuses the mask of the last training forward: run one at this shape first, or call "
                    "model.eval() to check without dropout",
                )
        if self._replaying and self.last_mask is not None and self.last_mask.shape == x.data.shape:
            mask = self.last_mask
        else:
            mask = F.dropout_mask(x.data.shape, self.p, self.rng, x.data.dtype)
            self.last_mask = mask
        return F.dropout(x, self.p, mask=mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"


@contextlib.contextmanager
def masks_drawn_when_missing(module: Module) -> Iterator[None]:
    """Inside the block, a Dropout of ``module`` replayed at a shape it has no mask for draws one (which later
    replays reuse) instead of refusing; afterwards the generators and the last masks are put back
    (:func:`~backcheck.nn.module.random_state_kept`), so training is as it would have been without the block."""
    drops = [m for m in module.modules() if isinstance(m, Dropout)]
    with random_state_kept(module):
        for d in drops:
            d.__dict__["draw_missing"] = True
        try:
            yield
        finally:
            for d in drops:
                d.__dict__.pop("draw_missing", None)


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
        self.num_embeddings = integer("Embedding", "num_embeddings", num_embeddings, minimum=1)
        self.embedding_dim = integer("Embedding", "embedding_dim", embedding_dim, minimum=1)
        dt = float_dtype("Embedding", "dtype", dtype)
        table = init_rng("Embedding", rng).standard_normal((self.num_embeddings, self.embedding_dim))
        self.weight = Parameter(table.astype(dt))

    def forward(self, indices: Any) -> Tensor:
        return F.embedding(indices, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


def _layer(owner: str, position: str, layer: Any) -> Module:
    if not isinstance(layer, Module):
        hint = "pass module instances, e.g. ReLU() rather than 'relu' or ReLU"
        if isinstance(layer, type) and issubclass(layer, Module):
            hint = f"pass an instance: {layer.__name__}() rather than the class"
        raise ArgumentError(
            f"{owner}: {position} must be a Module, got {layer!r} ({type(layer).__name__})",
            hint,
            argument=position,
            allowed="a Module",
            value=layer,
        )
    return layer


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
        self.layers = [_layer("Sequential", f"layer {i}", m) for i, m in enumerate(layers)]

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, m in enumerate(self.layers):
            yield str(i), m

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def append(self, layer: Module) -> Sequential:
        self.layers.append(_layer("Sequential.append", "layer", layer))
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
    """GELU, exact (``approximate='none'``) or tanh-approximated (``'tanh'``)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = choice("GELU", "approximate", approximate, ("none", "tanh"))

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)


class LeakyReLU(Module):
    """``x if x > 0 else negative_slope * x`` (``negative_slope`` finite)."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = number("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)


class Softmax(Module):
    """Softmax along ``dim``."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = integer("Softmax", "dim", dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)


class Flatten(Module):
    """Collapse axes ``start_dim..`` into one: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = integer("Flatten", "start_dim", start_dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim)


class _Pool2d(Module):
    pool: ClassVar[Callable[..., Tensor]]

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.kernel_size, self.stride, self.padding = pool_geometry(owner, kernel_size, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        return type(self).pool(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling (see :func:`backcheck.nn.functional.max_pool2d`); ``stride`` defaults to ``kernel_size``."""

    pool = staticmethod(F.max_pool2d)


class AvgPool2d(_Pool2d):
    """Average pooling (see :func:`backcheck.nn.functional.avg_pool2d`); ``stride`` defaults to ``kernel_size``."""

    pool = staticmethod(F.avg_pool2d)
