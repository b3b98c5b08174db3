"""Ready-made models built from :mod:`backcheck.nn.layers`: :class:`MLP` and :class:`SmallCNN`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backcheck.nn.errors import ArgumentError
from backcheck.nn.layers import (
    GELU,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from backcheck.nn.module import Module
from backcheck.nn.tensor import Tensor
from backcheck.nn.validate import flag, float_dtype, generator, integer, probability

__all__ = ["MLP", "SmallCNN"]

_ACTIVATIONS: dict[str, Callable[[], Module]] = {
    "relu": ReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "gelu": GELU,
    "leaky_relu": LeakyReLU,
}


def _activation_factory(activation: Any) -> Callable[[], Module]:
    """A factory of activation modules (each hidden layer gets its own), checked before any layer is built."""
    if isinstance(activation, str) and activation in _ACTIVATIONS:
        return _ACTIVATIONS[activation]
    if callable(activation) and not isinstance(activation, str | Module):

        def make() -> Module:
            made = activation()
            if not isinstance(made, Module):
                raise _bad_activation(activation, f", which returned {made!r}")
            return made

        return make
    raise _bad_activation(activation, "")


def _bad_activation(activation: Any, detail: str) -> ArgumentError:
    allowed = f"one of {sorted(_ACTIVATIONS)} or a callable returning a Module"
    return ArgumentError(
        f"MLP: activation must be {allowed}, got {activation!r}{detail}",
        "e.g. activation='tanh' or activation=ReLU (the class: every hidden layer gets its own)",
        argument="activation",
        allowed=allowed,
        value=activation,
    )


def _sizes(sizes: Any) -> tuple[int, ...]:
    if isinstance(sizes, str) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        allowed = "a sequence of at least two integers >= 1"
        raise ArgumentError(
            f"MLP: sizes must be {allowed} (the input and output widths, with hidden ones between), got {sizes!r}",
            "e.g. MLP([64, 128, 10]) for 64 inputs, one hidden layer of 128 and 10 outputs",
            argument="sizes",
            allowed=allowed,
            value=sizes,
        )
    return tuple(integer("MLP", f"sizes[{i}]", s, minimum=1) for i, s in enumerate(sizes))


class MLP(Module):
    """Multi-layer perceptron ``Linear -> activation -> ... -> Linear``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths (each >= 1), input first: ``(64, 128, 10)`` gives two Linear layers.
    activation : str or callable returning a Module
        'relu', 'tanh', 'sigmoid', 'gelu', 'leaky_relu', or a module class such as ``ReLU``.
    dropout : float
        Dropout probability in [0, 1) after each hidden activation (0 disables).
    flatten : bool
        Flatten inputs of shape (N, ...) to (N, -1) first (so images can be fed directly).
    dtype, rng
        Parameter dtype (float32 or float64) and initialization generator (without one, the generator
        :func:`~backcheck.nn.module.manual_seed` seeds); the Dropout layers' generators are spawned from it.

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
        widths = _sizes(sizes)
        make_activation = _activation_factory(activation)
        p = probability("MLP", "dropout", dropout)
        dt = float_dtype("MLP", "dtype", dtype)
        generator("MLP", "rng", rng)
        layers: list[Module] = [Flatten()] if flag("MLP", "flatten", flatten) else []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(Linear(a, b, dtype=dt, rng=rng))
            if i < len(widths) - 2:
                layers.append(make_activation())
                if p:
                    layers.append(Dropout(p, rng=rng))  # from rng, else from manual_seed's generator
        self.sizes = widths
        self.layers = Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class SmallCNN(Module):
    """A small convolutional net for 8x8 single-channel images (e.g. scikit-learn's digits).

    ``conv3x3(1, c1) -> BN -> ReLU -> conv3x3(c1, c2) -> BN -> ReLU -> maxpool2 -> flatten
    -> Linear(c2 * 16, hidden) -> ReLU -> Linear(hidden, num_classes)``.

    Shapes: input (N, 1, 8, 8), output (N, num_classes) logits.  ``num_classes``, both ``channels``
    and ``hidden`` are at least 1.

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
        if not isinstance(channels, Sequence) or isinstance(channels, str) or len(channels) != 2:
            raise ArgumentError(
                f"SmallCNN: channels must be a pair of integers >= 1, got {channels!r}",
                "the output channels of the two convolutions, e.g. (16, 32)",
                argument="channels",
                allowed="a pair of integers >= 1",
                value=channels,
            )
        c1, c2 = (integer("SmallCNN", f"channels[{i}]", c, minimum=1) for i, c in enumerate(channels))
        num_classes = integer("SmallCNN", "num_classes", num_classes, minimum=1)
        hidden = integer("SmallCNN", "hidden", hidden, minimum=1)
        batchnorm = flag("SmallCNN", "batchnorm", batchnorm)
        dtype = float_dtype("SmallCNN", "dtype", dtype)

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
