"""How Python and numpy read a tensor, as they read torch's: iteration over rows, ``np.asarray``, ``float``,
``int`` and format specs (a mixin of :class:`~backcheck.nn.tensor.Tensor`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.nn.errors import GraphError

__all__ = ["Conversions"]


class Conversions:
    """Tensor's conversions; it reads ``data``, ``requires_grad``, ``item()`` and indexing."""

    __slots__ = ()

    if TYPE_CHECKING:  # Tensor's
        data: np.ndarray
        requires_grad: bool

        def item(self) -> Any: ...

        def __getitem__(self, index: Any) -> Any: ...

    def __iter__(self) -> Iterator[Any]:
        """The rows along the first axis, each ``self[i]`` (recorded in the graph as indexing is)."""
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(t)``: the data. Refused for a tensor that requires grad, as torch refuses it: numpy's
        functions record no op, so its gradient would be lost without a word."""
        if self.requires_grad:
            raise GraphError(
                "numpy cannot take a tensor that requires grad (np.asarray, np.concatenate, ...): the gradient "
                "would not flow through numpy's functions",
                "use the tensor's own ops (backcheck.nn.functional.cat, ...) to keep the gradient, or "
                "t.detach().numpy() / t.data for the values alone",
            )
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __format__(self, spec: str) -> str:
        """A one-element tensor formats as its value (``f"{loss:.3f}"``); any tensor without a spec as its repr."""
        if not spec:
            return str(self)
        return format(self.item(), spec)
