"""A network kept as a plain list of layer objects (``network = [Dense(3, 4), Tanh(), Dense(4, 1)]``, run by a
loop over it), checked by :func:`~backcheck.check_object` as one layer: forward through the list in order,
backward through it in reverse, each layer's backward given the learning rate where it takes one, and each
layer's result read off it where it keeps it instead of returning it (``self.output``, ``self.dinputs``)."""

from __future__ import annotations

from typing import Any

from backcheck.errors import BadInputError
from backcheck.frontends.hints import OUTPUT_NAMES
from backcheck.frontends.object_kept import DINPUT_NAMES
from backcheck.frontends.object_steps import learning_rate_of
from backcheck.frontends.slots import attributes, is_float_array


def layer_list(obj: Any, forward: str, backward: str) -> bool:
    """Whether ``obj`` is a list or tuple of layer objects, each with the methods ``forward`` and ``backward``."""
    return (
        isinstance(obj, (list, tuple))
        and len(obj) > 0
        and all(callable(getattr(layer, forward, None)) and callable(getattr(layer, backward, None)) for layer in obj)
    )


def as_network(layers: list[Any] | tuple[Any, ...], forward: str, backward: str, inputs: int) -> tuple[Any, str]:
    """The list as one layer object (its layers the same objects, held as ``layers``), and a note saying so;
    :class:`BadInputError` where it is given other than one input (``inputs``), which its first layer takes."""
    if inputs != 1:
        raise BadInputError(
            f"check_object got a list of {len(layers)} layers and {inputs} inputs; a list is run as a network of "
            "one input, each layer's output the next one's input.",
            "pass the network's one input: check_object(layers, x); for a first layer of several inputs, check a "
            "network object whose forward takes them.",
        )
    stepped = [k for k, layer in enumerate(layers) if learning_rate_of(getattr(layer, backward)) is not None]
    net = (SteppedNetwork if stepped else Network)(list(layers), forward, backward, stepped)
    takes = " (with a learning rate where it takes one)" if stepped else ""
    note = (
        f"the {len(layers)} layers of the list are checked as one network: forward through them in order, "
        f"backward through them in reverse{takes}; their parameters are named layers[k].name."
    )
    return net, note


class Network:
    """Layers run in sequence: ``forward(input)`` through each in order, ``backward(dout)`` in reverse."""

    def __init__(self, layers: list[Any], forward: str, backward: str, stepped: list[int]) -> None:
        self.layers = layers
        self._names = (forward, backward)
        self._stepped = frozenset(stepped)

    def forward(self, input: Any) -> Any:
        for layer in self.layers:
            input = _kept(layer, getattr(layer, self._names[0])(input), OUTPUT_NAMES)
        return input

    def backward(self, dout: Any) -> Any:
        return self._back(dout, None)

    def _back(self, dout: Any, rate: Any) -> Any:
        for k in reversed(range(len(self.layers))):
            method = getattr(self.layers[k], self._names[1])
            dout = _kept(self.layers[k], method(dout, rate) if k in self._stepped else method(dout), DINPUT_NAMES)
        return dout


def _kept(layer: Any, returned: Any, names: tuple[str, ...]) -> Any:
    """What a layer's call returned, or where it returns None (or itself), the float array it keeps the result on
    under one of ``names`` (``self.output`` and ``self.dinputs`` of "Neural Networks from Scratch")."""
    if returned is not None and returned is not layer:
        return returned
    kept = {a.lower().replace("_", ""): v for a, v in attributes(layer).items() if is_float_array(v)}
    return next((kept[name] for name in names if name in kept), returned)


class SteppedNetwork(Network):
    """A :class:`Network` whose layers (some of them) step their own parameters: ``backward(dout, learning_rate)``."""

    def backward(self, dout: Any, learning_rate: Any) -> Any:  # type: ignore[override]
        return self._back(dout, learning_rate)
