"""A catalogue of numpy layers with correct and realistically wrong backward passes.

Each :class:`Layer` has a pure ``forward``, a correct ``backward``, a ``make_inputs`` factory and a
few :class:`Bug` s: wrong backwards of the kind students and engineers actually write. In ``LAYERS``
every bug shows at ``make_inputs``; in ``EDGE_LAYERS`` (:mod:`backcheck.zoo.edges`) bugs show only at
particular inputs (zero padding, three tied maxima, more than one time step), and ``make_inputs`` hides
them. ``get`` finds a layer of either kind by name; ``names`` lists ``LAYERS``.

Kept apart from ``LAYERS`` too, each with correct and wrong backwards: ``FLOAT32_LAYERS``
(:mod:`~backcheck.zoo.float32_kernels`: kernels computing in float32 whatever they are handed, bugs of
1e-2, 1e-3 and 1e-4), ``HABIT_LAYERS`` (:mod:`~backcheck.zoo.habits`: tie groups of 2, 3 and 4, tiny
gradient elements, masked inputs, a generator argument), ``JUMP_LAYERS`` (:mod:`~backcheck.zoo.jumps`:
forwards that jump, with points at the jumps), ``CANCELLATION_LAYERS`` (:mod:`~backcheck.zoo.cancellation`: inner
values that are small differences of large terms, whose rounding is far above ``eps`` times the output) and
``MODELS`` (:mod:`~backcheck.zoo.models`: whole-model
losses over a parameter dict, ``get_model``).

The family modules import the data model from ``_registry``, which imports nothing from the zoo; this
package imports the families and registers their layers.
"""

from backcheck.zoo import (
    activations,
    attention,
    cancellation,
    conv,
    edges,
    elementwise,
    float32_kernels,
    habits,
    jumps,
    linalg,
    linear,
    losses,
    models,
    normalization,
    pooling,
    recurrent,
    regularization,
)
from backcheck.zoo._registry import Bug, Layer, get, register
from backcheck.zoo._registry import layers as _registered
from backcheck.zoo.models import Model, get_model

LAYERS: tuple[Layer, ...] = (
    *activations.LAYERS,
    *losses.LAYERS,
    *linear.LAYERS,
    *conv.LAYERS,
    *pooling.LAYERS,
    *normalization.LAYERS,
    *recurrent.LAYERS,
    *attention.LAYERS,
    *linalg.LAYERS,
    *regularization.LAYERS,
    *elementwise.LAYERS,
)
EDGE_LAYERS: tuple[Layer, ...] = edges.EDGE_LAYERS
FLOAT32_LAYERS: tuple[Layer, ...] = float32_kernels.LAYERS
HABIT_LAYERS: tuple[Layer, ...] = habits.LAYERS
JUMP_LAYERS: tuple[Layer, ...] = jumps.LAYERS
CANCELLATION_LAYERS: tuple[Layer, ...] = cancellation.LAYERS
MODELS: tuple[Model, ...] = models.MODELS

register(LAYERS)
for _apart in (EDGE_LAYERS, FLOAT32_LAYERS, HABIT_LAYERS, JUMP_LAYERS, CANCELLATION_LAYERS):
    register(_apart)
_ORDINARY = frozenset(layer.name for layer in LAYERS)
#: Names of the layers of ``LAYERS`` that are smooth at their inputs (no kinks, ties, jumps or random draws):
#: those whose correct backward a check must pass at any floor, and whose cost is about 2N evaluations.
SMOOTH_LAYERS: tuple[str, ...] = (
    "tanh", "sigmoid", "gelu", "softplus", "softmax", "log_softmax", "softmax_cross_entropy", "mse",
    "bce_with_logits", "affine", "bilinear", "matmul", "batchnorm_train", "layernorm", "groupnorm",
    "l2_normalize", "rnn_step", "gru_step", "attention", "exp", "log", "sqrt", "divide", "det", "inverse",
    "solve", "frobenius_norm", "avgpool2d",
)  # fmt: skip


def names() -> list[str]:
    """Names of the layers in ``LAYERS``, in registry order."""
    return [layer.name for layer in _registered() if layer.name in _ORDINARY]


__all__ = [
    "CANCELLATION_LAYERS",
    "EDGE_LAYERS",
    "FLOAT32_LAYERS",
    "HABIT_LAYERS",
    "JUMP_LAYERS",
    "LAYERS",
    "MODELS",
    "SMOOTH_LAYERS",
    "Bug",
    "Layer",
    "Model",
    "get",
    "get_model",
    "names",
]
