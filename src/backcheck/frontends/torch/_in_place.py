"""A forward that writes into an input in place: autograd refuses it for an input it differentiates, and the
user is told a call that checks it on copies."""

from __future__ import annotations

from typing import Any

import backcheck.frontends.torch._analytic as side
from backcheck.calls import call_user
from backcheck.errors import UserFunctionError
from backcheck.frontends.torch._session import Session

#: torch's errors for an in-place operation on a leaf that requires grad (an in-place forward on an input) say
#: both of these ("is being used in an in-place operation", "has been used in an in-place operation")
IN_PLACE_ON_LEAF = ("leaf Variable that requires grad", "in-place operation")


def first_call(sess: Session, title: str, kind: str, arity: int) -> tuple[Any, list[Any]]:
    """The native call at the original point; an in-place forward on an input is told how to be checked (``title``,
    ``kind`` and ``arity``: the function checked, whether it is an autograd Function, its number of arguments)."""
    try:
        return call_user(side.call_native, (sess, [sess.original(s).clone() for s in sess.slots]), sess.fname)
    except UserFunctionError as exc:
        cause = exc.__cause__
        if not (isinstance(cause, RuntimeError) and all(w in str(cause) for w in IN_PLACE_ON_LEAF)):
            raise
        raise UserFunctionError(
            exc.message,
            f"{sess.fname} writes into its input in place, which autograd refuses for an input it differentiates; "
            f"check it on a copy, which autograd differentiates through: {_on_a_copy(title, kind, arity)}.",
        ) from cause


def _on_a_copy(title: str, kind: str, arity: int) -> str:
    """The call that checks the function on copies of its tensors (each argument kept, in its place)."""
    fn = f"{title}.apply" if kind == "function" else "fn"
    if arity <= 1:
        return f"backcheck.torch.check(lambda t: {fn}(t.clone()), x)"
    return (
        f"backcheck.torch.check(lambda *a: {fn}(*(v.clone() if torch.is_tensor(v) else v for v in a)), "
        "<the same arguments>)"
    )
