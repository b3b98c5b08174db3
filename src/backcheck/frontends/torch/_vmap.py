"""First differences in batches with ``torch.func.vmap``, with the serial path as the fallback."""

from __future__ import annotations

import numpy as np

from backcheck.backends import FRAMEWORK_BATCH_BYTES, rows_per_call
from backcheck.calls import first_line
from backcheck.evaluate import Evaluator
from backcheck.frontends.common import CachedEvaluator, VectorizeError
from backcheck.frontends.torch._session import Session
from backcheck.numeric.steps import default_steps
from backcheck.options import Options
from backcheck.strategies import resolve

#: What a vmap failure says about the function, by a phrase of torch's message.
CAUSES = (
    ("setup_context", "it calls a custom autograd.Function without setup_context (an old-style Function)"),
    ("randomness", "it draws random numbers"),
    ("item()", "it reads a tensor's value in Python (.item(), data-dependent control flow)"),
    ("data-dependent", "it reads a tensor's value in Python (.item(), data-dependent control flow)"),
)


def prefetch(sess: Session, ev: Evaluator, options: Options, vectorized: bool | str) -> str:
    """Evaluate the first differences of a full check with vmap; a note when asked for and not possible.

    Only the full strategy differences every element; the others ask for few points, or for directions.
    When vmap cannot evaluate the function, the check falls back to one point at a time, with the same
    verdicts and evaluation counts: silently under ``vectorized='auto'``, with one sentence under ``True``.
    """
    if not isinstance(ev, CachedEvaluator) or resolve(options.strategy, ev.tree.size) != "full":
        return ""
    idx = np.arange(ev.tree.size)
    steps = default_steps(ev.tree, options.step)
    budget = ev.max_batch_bytes or FRAMEWORK_BATCH_BYTES
    chunk = max(8, rows_per_call(8 * ev.tree.size, budget))  # float64 rows of the point
    try:
        n = ev.prefetch(idx, steps, sess.batch_call(ev.tree), chunk)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # any failure of the fast path falls back to the serial one
        text = str(exc)
        cause = next((why for key, why in CAUSES if key in text), "")
        if vectorized is not True and (cause or _vmap_limit(exc)):
            return ""  # what vmap cannot do is no news under 'auto'; the function's own error is
        cause = cause or f"it raised {type(exc).__name__}: {first_line(exc)}"
        return (
            f"torch.func.vmap cannot evaluate {sess.fname} in batches ({cause}), so it was evaluated one point "
            "at a time; the verdicts are the same."
        )
    return f"first differences evaluated in batches with torch.func.vmap ({n} points)."


#: Words of torch's messages for what vmap cannot batch (an operator without a batching rule, an in-place write
#: into an unbatched tensor, a Python read of a batched value), as opposed to an error of the function itself.
VMAP_WORDS = ("vmap", "batch", "functorch", "functionalize", "storage", "data pointer", ".numpy()")


def _vmap_limit(exc: Exception) -> bool:
    """Whether ``exc`` says what vmap cannot do (or the batch disagreed with the serial call), rather than being
    an error the function raises on its own."""
    text = str(exc).lower()
    return isinstance(exc, VectorizeError) or any(w in text for w in VMAP_WORDS)
