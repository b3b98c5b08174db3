"""Evaluations spread over a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.

Each task carries a private copy of the point, the function and a chunk of (element, step) pairs, and
returns the function's values there: the same arithmetic as a serial run, so the results are identical.
The function must be picklable (defined at module level) and must use its argument, since a worker cannot
see arrays the main process perturbs.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from backcheck.errors import BackcheckError, BadInputError, EvaluationError, NotScalarError, UserFunctionError

__all__ = ["EvaluationError", "run_pairs"]


def _chunk_values(
    f: Callable[[Any], Any], point: Any, pairs: Sequence[tuple[int, float]]
) -> tuple[list[float], list[float]]:
    """Worker side: ``f`` at ``point`` with one element moved by one step, for each (element, step)."""
    from backcheck.tree import Tree

    # a private copy per task: tasks on threads of one process must never share a perturbed point
    tree = Tree(point, "params", in_place=False)
    values, disps = [], []
    for i, s in pairs:
        leaf, local = tree.locate(i)
        flat = leaf.work.reshape(-1)
        x0 = flat[local]
        xk = leaf.dtype.type(float(x0) + s)
        flat[local] = xk
        try:
            out = f(tree.current())
        finally:
            flat[local] = x0
        try:
            values.append(float(np.asarray(out, dtype=np.float64).reshape(())))
        except (TypeError, ValueError):
            raise NotScalarError(
                f"{getattr(f, '__name__', 'f')} returned a {type(out).__name__} in a worker, not one real number.",
                "return a float loss at every point.",
            ) from None
        disps.append(float(xk) - float(x0))
    return values, disps


def run_pairs(
    executor: Any,
    f: Callable[[Any], Any],
    point: Any,
    pairs: list[tuple[int, float]],
    fname: str,
    n_chunks: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate all (element, step) pairs on ``executor``; return values and actual displacements in order."""
    try:
        if not isinstance(executor, ThreadPoolExecutor):  # (threads share the function: nothing to pickle)
            pickle.dumps(f)
    except Exception as exc:
        raise BadInputError(
            f"executor= needs a picklable function, and {fname} cannot be pickled ({type(exc).__name__}: {exc}).",
            "define the function at module level (not a lambda or a closure), or run without executor=.",
        ) from exc
    workers = _workers(executor)
    n_chunks = n_chunks or max(1, min(len(pairs), 4 * workers))
    bounds = np.linspace(0, len(pairs), n_chunks + 1).astype(int)
    futures = _submit(
        executor, [(f, point, pairs[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a], fname
    )
    values: list[float] = []
    disps: list[float] = []
    for fut in futures:
        try:
            v, d = fut.result()
        except (KeyboardInterrupt, SystemExit, BackcheckError):
            for other in futures:
                other.cancel()
            raise
        except Exception as exc:
            for other in futures:
                other.cancel()
            if type(exc).__name__ in ("BrokenProcessPool", "KilledWorker", "CancelledError"):
                raise EvaluationError(
                    f"a worker evaluating {fname} died ({type(exc).__name__}: {exc}).",
                    "the function may crash its process (out of memory, a segfault in an extension); your "
                    "arrays are intact. Run without executor= to see the error in this process.",
                ) from exc
            raise UserFunctionError(
                f"{fname} raised {type(exc).__name__}: {exc}\n  in a worker of the executor.",
                "the original exception is chained above; your arrays are intact.",
            ) from exc
        values.extend(v)
        disps.extend(d)
    return np.asarray(values), np.asarray(disps)


def _submit(executor: Any, tasks: list[tuple[Any, ...]], fname: str) -> list[Any]:
    """One future per task, or :class:`EvaluationError` when the executor refuses them (shut down, broken) or
    answers with something that is not a future; futures already submitted are cancelled."""
    futures: list[Any] = []
    try:
        for task in tasks:
            fut = executor.submit(_chunk_values, *task)
            if not callable(getattr(fut, "result", None)):
                raise TypeError(f"submit returned a {type(fut).__name__}, not a future")
            futures.append(fut)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        for fut in futures:
            fut.cancel()
        raise EvaluationError(
            f"the executor did not take the evaluations of {fname} ({type(exc).__name__}: {exc}).",
            "pass a running concurrent.futures.Executor or dask Client (not one shut down), or run without "
            "executor=; your arrays are intact.",
        ) from exc
    return futures


def _workers(executor: Any) -> int:
    n = getattr(executor, "_max_workers", None)
    if n:
        return int(n)
    info = getattr(executor, "scheduler_info", None)
    if callable(info):
        try:
            return max(1, len(info().get("workers", {})))
        except Exception:  # noqa: BLE001 - a client without a scheduler answer still works with one chunk
            return 1
    return 2
