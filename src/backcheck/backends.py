"""How an evaluator evaluates many points at once: its backend, and the one memory budget of every batched path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Most points one vectorized call evaluates, whatever the memory budget allows.
MAX_ROWS = 512


def rows_per_call(row_bytes: int, budget: int) -> int:
    """Points per vectorized call: as many rows of ``row_bytes`` as ``budget`` bytes hold (an even number, at
    least 2, at most :data:`MAX_ROWS`). The one memory budget of every batched path (numpy and frameworks)."""
    return int(min(MAX_ROWS, max(2, int(budget // max(row_bytes, 1)) // 2 * 2)))


@dataclass(frozen=True)
class Backend:
    """How an :class:`Evaluator` evaluates many first differences: serially (the default), vectorized
    (``batch_call``: phi of a tree whose arrays carry a leading batch axis, in chunks of at most
    ``max_batch_bytes``), or on an executor (``executor`` with ``remote = (phi, private copy of the point)``).
    """

    batch_call: Callable[[Any], Any] | None = None
    #: rows that stay in cache beat fewer, larger calls
    max_batch_bytes: int = 16 * 2**20
    executor: Any = None
    remote: tuple[Callable[[Any], Any], Any] | None = None


__all__ = ["MAX_ROWS", "Backend", "rows_per_call"]
