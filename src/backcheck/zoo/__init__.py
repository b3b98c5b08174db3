"""A catalogue of numpy layers with correct and realistically wrong backward passes.

Each :class:`Layer` has a pure ``forward``, a correct ``backward``, a ``make_inputs`` factory and a
few :class:`Bug` s: wrong backwards of the kind students and engineers actually write. In ``LAYERS``
every bug shows at ``make_inputs``; in ``EDGE_LAYERS`` (:mod:`backcheck.zoo.edges`) bugs show only at
particular inputs (zero padding, three tied maxima, more than one time step), and ``make_inputs`` hides
them. ``get`` finds a layer of either kind by name; ``names`` lists ``LAYERS``.

The family modules import the data model from ``_registry``, which imports nothing from the zoo; this
package imports the families and registers their layers.
"""

from backcheck.zoo import (
    activations,
    attention,
    conv,
    edges,
    elementwise,
    linalg,
    linear,
    losses,
    normalization,
    pooling,
    recurrent,
    regularization,
)
from backcheck.zoo._registry import Bug, Layer, get, register
from backcheck.zoo._registry import layers as _registered

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

register(LAYERS)
register(EDGE_LAYERS)
_EDGE_NAMES = frozenset(layer.name for layer in EDGE_LAYERS)


def names() -> list[str]:
    """Names of the layers in ``LAYERS``, in registry order."""
    return [layer.name for layer in _registered() if layer.name not in _EDGE_NAMES]


__all__ = ["EDGE_LAYERS", "LAYERS", "Bug", "Layer", "get", "names"]
