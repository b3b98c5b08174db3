"""Every module of :mod:`backcheck.nn` in one namespace, as ``torch.nn`` has them.

The module system (:class:`Module`, :class:`Parameter`, capture and replay) is in
:mod:`backcheck.nn.module`, the layers in :mod:`backcheck.nn.layers`, :class:`MLP` and :class:`SmallCNN`
in :mod:`backcheck.nn.models`; import from any of them or from here.
"""

from __future__ import annotations

from backcheck.nn.layers import (
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from backcheck.nn.models import MLP, SmallCNN
from backcheck.nn.module import Capture, Module, Parameter, manual_seed

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
