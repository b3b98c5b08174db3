"""How a gradient the user gives is read against its parameters: one array against its leaf (kind, dtype, shape),
and a dict of gradients against the parameters' keys (the ``d``-prefixed keys of course code: ``dW1`` for
``W1``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.containers import describe, is_container
from backcheck.errors import GradientStructureError

if TYPE_CHECKING:
    from backcheck.tree import Leaf


def matched_keys(
    given: Mapping[Any, Any], keys: list[Any], name: str, keyed: dict[str, list[str]]
) -> Mapping[Any, Any]:
    """``given``, a dict of gradients for parameters keyed ``keys``, read under ``d`` + each key where it holds
    none of the keys and some of those (``{"dW1": ..., "db1": ..., "dA1": ...}`` for ``{"W1", "b1"}``, as
    deeplearning.ai's backward passes return, with the activations' gradients beside them); the keys left out
    are recorded in ``keyed`` under ``name``, for a note, and a ``d`` key missing is a
    :class:`GradientStructureError` naming it. Else ``given`` as it is."""
    wanted = [f"d{k}" for k in keys] if all(isinstance(k, str) for k in keys) else []
    if not wanted or any(k in given for k in keys) or not any(w in given for w in wanted):
        return given
    missing = [w for w in wanted if w not in given]
    if missing:
        raise GradientStructureError(
            f"the gradient for {name} is keyed d + the parameters' keys (dW1 for W1), but has no "
            f"{', '.join(repr(w) for w in missing)}.",
            f"return every parameter's gradient: {wanted} (or keyed as the parameters: {keys}).",
        )
    keyed[name] = [str(k) for k in given if k not in wanted]
    return {k: given[w] for k, w in zip(keys, wanted, strict=True)}


def keys_note(name: str, left: list[str], what: str) -> str:
    """The note on a dict of gradients read under ``d``-prefixed keys (:func:`matched_keys`)."""
    out = f"the {what} for {name} was read under d-prefixed keys (dW1 for W1)"
    return out + (f"; {', '.join(left)} left out (no parameter of that name)." if left else ".")


def gradient_leaf(other: Any, leaf: Leaf, what: str, strict_dtype: bool = False) -> np.ndarray:
    if other is None:
        raise GradientStructureError(
            f"the {what} for {leaf.name} is None.",
            f"return an array of shape {leaf.shape} (zeros if it is zero).",
        )
    if is_container(other):
        pair = isinstance(other, (tuple, list)) and len(other) == 2 and np.shape(other[1]) == leaf.shape  # (loss, dx)
        pair = pair and np.size(other[0]) == 1
        raise GradientStructureError(
            f"the {what} for {leaf.name} is a {describe(other)}, but {leaf.name} is a single array "
            f"of shape {leaf.shape}.",
            "return one array per parameter array, in the parameters' structure."
            + (" It looks like (loss, dx): pass lambda x: grad(x)[1] as the gradient." if pair else ""),
        )
    if not isinstance(other, (np.ndarray, np.generic, float, int)):
        raise GradientStructureError(
            f"the {what} for {leaf.name} is a {describe(other)}, not a numpy array.",
            "convert it with np.asarray(...) (or .detach().numpy() for a torch tensor).",
        )
    arr = np.asarray(other)
    if arr.dtype.kind != "f":
        # ml_dtypes' bfloat16 and float8 types are numpy dtypes of another kind: a float, cast, not an integer
        extended = arr.dtype.kind == "V" and "float" in arr.dtype.name
        raise GradientStructureError(
            f"the {what} for {leaf.name} has dtype {arr.dtype}; a gradient must be a float array "
            f"like {leaf.name} ({leaf.dtype}).",
            f"cast it to a numpy float: g.astype(np.float32) (ml_dtypes' {arr.dtype} is no numpy float type)."
            if extended
            else "check for an integer or boolean array where a float one was meant (e.g. np.zeros_like(labels)).",
        )
    if (
        arr.shape != leaf.shape
        and not (leaf.shape == () and arr.size == 1)
        and not same_but_ones(arr.shape, leaf.shape)
    ):
        raise GradientStructureError(
            f"the {what} for {leaf.name} has shape {arr.shape}, but {leaf.name} has shape {leaf.shape}.",
            "a gradient has the shape of its parameter; look for a missing sum over the batch axis "
            "or a missing transpose.",
        )
    if strict_dtype and not isinstance(leaf.source, float) and arr.dtype != leaf.dtype:
        raise GradientStructureError(
            f"the {what} for {leaf.name} has dtype {arr.dtype}, but {leaf.name} has dtype {leaf.dtype}.",
            f"compute the gradient in {leaf.dtype}, as the forward pass does (or cast it with .astype), or "
            "drop strict_dtype=True to judge it at the coarser of the two dtypes.",
        )
    return arr


def same_but_ones(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether two shapes hold the same elements in the same order but for axes of size 1 (a bias stored as
    ``(1, D)`` and its gradient summed to ``(D,)``)."""
    return a != b and tuple(n for n in a if n != 1) == tuple(n for n in b if n != 1)
