"""A catalogue of numpy layers with correct and realistically wrong backward passes.

Each :class:`Layer` has a pure ``forward``, a correct ``backward``, a ``make_inputs`` factory and a
few :class:`Bug` s: wrong backwards of the kind students and engineers actually write.
"""

from backcheck.zoo._registry import LAYERS, Bug, Layer, get, names

__all__ = ["LAYERS", "Bug", "Layer", "get", "names"]
