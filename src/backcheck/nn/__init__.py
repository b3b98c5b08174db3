"""backcheck.nn: a compact numpy backprop engine with hand-written backward passes.

Quick tour::

    from backcheck import nn
    from backcheck.nn import functional as F

    x = nn.Tensor(np.random.rand(4, 3), requires_grad=True)
    loss = (F.relu(x) ** 2).mean()
    loss.backward()          # x.grad now holds d loss / d x

    model = nn.MLP([64, 128, 10])
    data = nn.load_digits()
    history = nn.fit(model, data, epochs=10, optimizer=nn.Adam(model.parameters(), lr=1e-3))

Layout (imports point one way: each module imports only those listed before it):
:mod:`~backcheck.nn.errors` and :mod:`~backcheck.nn.validate` (typed errors, argument checks),
:mod:`~backcheck.nn.autograd` (grad mode, graph nodes, the backward walk), :mod:`~backcheck.nn.tensor`
(Tensor, Function), :mod:`~backcheck.nn.ops` (the primitive ops, forward and backward side by side),
:mod:`~backcheck.nn.functional`, :mod:`~backcheck.nn.module` (Module, Parameter, capture and replay),
:mod:`~backcheck.nn.layers`, :mod:`~backcheck.nn.models` (all three gathered in
:mod:`~backcheck.nn.modules`), :mod:`~backcheck.nn.losses`, :mod:`~backcheck.nn.optim`,
:mod:`~backcheck.nn.data`, :mod:`~backcheck.nn.train`.

Bad arguments raise :class:`ArgumentError` (or :class:`ShapeError`, :class:`DTypeError`, ...) naming the
argument and its allowed range; all are :class:`backcheck.errors.BadInputError`.
"""

from backcheck.nn import functional
from backcheck.nn.data import Digits, batches, load_digits
from backcheck.nn.errors import (
    ArgumentError,
    DTypeError,
    GraphError,
    IndexRangeError,
    LabelError,
    NNError,
    NonFiniteLossError,
    ShapeError,
    StateDictError,
)
from backcheck.nn.losses import CrossEntropyLoss, MSELoss, cross_entropy, mse_loss
from backcheck.nn.modules import (
    GELU,
    MLP,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Capture,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Module,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    SmallCNN,
    Softmax,
    Tanh,
    manual_seed,
)
from backcheck.nn.optim import SGD, Adam, AdamW, Optimizer, clip_grad_norm_
from backcheck.nn.tensor import (
    Context,
    Function,
    Tensor,
    default_dtype,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_default_dtype,
)
from backcheck.nn.train import History, evaluate, fit

__all__ = [
    "GELU",
    "MLP",
    "SGD",
    "Adam",
    "AdamW",
    "ArgumentError",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Capture",
    "Context",
    "Conv2d",
    "CrossEntropyLoss",
    "DTypeError",
    "Digits",
    "Dropout",
    "Embedding",
    "Flatten",
    "Function",
    "GraphError",
    "History",
    "Identity",
    "IndexRangeError",
    "LabelError",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "NNError",
    "NonFiniteLossError",
    "Optimizer",
    "Parameter",
    "ReLU",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "SmallCNN",
    "Softmax",
    "StateDictError",
    "Tanh",
    "Tensor",
    "batches",
    "clip_grad_norm_",
    "cross_entropy",
    "default_dtype",
    "enable_grad",
    "evaluate",
    "fit",
    "functional",
    "is_grad_enabled",
    "load_digits",
    "manual_seed",
    "mse_loss",
    "no_grad",
    "set_default_dtype",
]
