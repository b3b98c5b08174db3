"""What a layer object's ``backward`` returns, laid out flat for check_object: the inputs' gradients, then one per
parameter, from a list (``(dX, [dW, db])``), a dict keyed by the parameters' names (``(dX, {"W": dW})``) or
everything in one dict (``{"x": dx, "W": dW}``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backcheck.frontends.slots import Slot, is_float_array


def flat_return(ret: Any, n_in: int, slots: Sequence[Slot], input_names: Sequence[str] = ()) -> Any:
    """``backward``'s return value with the parameters' gradients returned as one list after the inputs'
    (``(dX, [dW, db])``), as one dict keyed by the parameters' names (``(dX, {"W": dW, "b": db})``), or everything
    as one dict keyed by the inputs' and parameters' names (``{"x": dx, "W": dW}``) laid out flat, ``(dX, dW, db)``
    (None for a parameter the dict leaves out), and an empty one after the inputs' of a layer without parameters
    left out (``(dX, [])``); else as it is."""
    if isinstance(ret, Mapping) and any(k in input_names for k in ret) and _names_all(ret, slots, input_names):
        return (*(ret.get(n) for n in input_names), *(_entry(ret, s) for s in slots))
    if not (isinstance(ret, (tuple, list)) and len(ret) >= 2):
        return ret
    last = ret[-1]
    if not slots and len(ret) == n_in + 1 and isinstance(last, (tuple, list, Mapping)) and not last:
        return tuple(ret[:-1])  # ((dX, []) of a layer without parameters, beside its siblings' (dX, [dW, db]))
    if not slots:
        return ret
    if isinstance(last, Mapping) and last and _names_all(last, slots, ()):
        return (*ret[:-1], *(_entry(last, s) for s in slots))
    if len(ret) == n_in + 1 and isinstance(last, (tuple, list)) and len(last) == len(slots):
        if all(is_float_array(g) for g in last):
            return (*ret[:-1], *last)
    return ret


def _returned_names(s: Slot) -> tuple[str, ...]:
    """The keys a returned dict may give ``s``'s gradient under: its name, its attribute's or its dict key."""
    return (s.name, s.attr if s.key is None else str(s.key))


def _names_all(ret: Mapping[Any, Any], slots: Sequence[Slot], input_names: Sequence[str]) -> bool:
    """Whether every key of ``ret`` names an input or a parameter (and its values are float arrays or None)."""
    known = {*input_names, *(n for s in slots for n in _returned_names(s))}
    return all(k in known and (v is None or is_float_array(v)) for k, v in ret.items())


def _entry(ret: Mapping[Any, Any], s: Slot) -> Any:
    return next((ret[n] for n in _returned_names(s) if n in ret), None)
