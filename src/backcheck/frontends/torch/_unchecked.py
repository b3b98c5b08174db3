"""What a check would leave out unasked, told from the autograd graph of the native call at the original point.

Two things: tensors the outputs depend on through autograd that are not checked (a closure's ``nn.Linear``
parameters not passed as ``params``, float inputs left out because another input requires grad), said in a
note; and checked inputs whose every consumer in the graph is a custom ``autograd.Function``, whose backward
then decides alone whether they get a gradient (a loss Function returns None for its target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backcheck.frontends.torch._session import Session
from backcheck.frontends.torch._tensors import dtype_name, is_diff_tensor, torch_module

#: Leaves listed by name in a note at most; the rest are counted.
LISTED = 6


def _walk(outs: Sequence[Any]) -> tuple[list[Any], dict[int, list[Any]]]:
    """The leaves a backward pass from ``outs`` reaches, and per leaf (by id) the graph nodes that consume it."""
    stack: list[Any] = [o.grad_fn for o in outs if getattr(o, "grad_fn", None) is not None]
    seen: set[int] = set()
    leaves: dict[int, Any] = {}
    consumers: dict[int, list[Any]] = {}
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        for nxt, _ in node.next_functions:
            var = getattr(nxt, "variable", None)
            if var is not None:
                leaves[id(var)] = var
                consumers.setdefault(id(var), []).append(node)
            stack.append(nxt)
    return list(leaves.values()), consumers


def declared(sess: Session, outs: Sequence[Any], targets: Sequence[Any]) -> dict[str, str]:
    """Per checked input consumed only by custom Functions: their names (``BCEWithLogits``).

    Such an input's gradient is whatever those backwards return for it; None (or zeros) there is the Function
    saying it does not differentiate that input: a label, a target, a fixed kernel.
    """
    _, consumers = _walk(outs)
    found = {}
    for slot, t in zip(sess.slots, targets, strict=True):
        nodes = consumers.get(id(t), [])
        if slot.kind == "input" and nodes and all(hasattr(n, "_forward_cls") for n in nodes):
            found[slot.name] = ", ".join(dict.fromkeys(n._forward_cls.__name__ for n in nodes))
    return found


def _known_names(fn: Any, args: Sequence[Any], names: Sequence[str]) -> dict[int, str]:
    """Names for tensors ``fn`` may reach: a module's parameters by their paths, closure and global variables."""
    torch = torch_module()
    places: list[tuple[str, Any]] = []
    if isinstance(fn, torch.nn.Module):
        places.append(("", fn))
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        places.append(("self.", owner))
    code = getattr(fn, "__code__", None)
    if code is not None:
        cells = getattr(fn, "__closure__", None) or ()
        places += [(n + ".", c.cell_contents) for n, c in zip(code.co_freevars, cells, strict=False) if _filled(c)]
        glob = getattr(fn, "__globals__", {})
        places += [(n + ".", glob[n]) for n in code.co_names if n in glob]
    places += [(n + ".", a) for n, a in zip(names, args, strict=False)]
    known: dict[int, str] = {}
    for prefix, obj in places:
        if isinstance(obj, torch.nn.Module):
            for pn, p in obj.named_parameters():
                known.setdefault(id(p), prefix + pn)
        elif isinstance(obj, torch.Tensor):
            known.setdefault(id(obj), prefix[:-1])
    return known


def _filled(cell: Any) -> bool:
    try:
        _ = cell.cell_contents  # an empty cell (a variable not assigned yet) raises ValueError
    except ValueError:
        return False
    return True


def _listed(names: list[str]) -> str:
    more = len(names) - LISTED
    return ", ".join(names[:LISTED]) + (f" and {more} more" if more > 0 else "")


def unchecked_notes(sess: Session, target: Any, outs: Sequence[Any], targets: Sequence[Any]) -> list[str]:
    """Notes naming the tensors left out: graph leaves that require grad, and float inputs without it."""
    notes = []
    checked = {id(t) for t in targets} | {id(t) for t in sess.param_swap.tensors}
    leaves, _ = _walk(outs)
    left = [t for t in leaves if t.requires_grad and id(t) not in checked]
    if left:
        known = _known_names(target.fn, target.args, target.names)
        order = {k: n for n, k in enumerate(known)}
        left.sort(key=lambda t: order.get(id(t), len(order)))
        named = [known.get(id(t), f"a {dtype_name(t.dtype)} tensor of shape {tuple(t.shape)}") for t in left]
        one = len(named) == 1
        module = isinstance(target.fn, torch_module().nn.Module)
        own = " (check_module checks a module's own parameters)" if module else ""
        it, needs, outside = ("it", "it requires", "it is not an input") if one else ("them", "they require", "")
        outside = outside or "they are not inputs"
        notes.append(
            f"not checked: {_listed(named)}: the output depends on {it} through autograd ({needs} grad), but "
            f"{outside} of the check; pass params=<the module> (or a list or dict of tensors) to check {it} too{own}."
        )
    if any(s.tensor.requires_grad for s in sess.input_slots):
        given = [(n, a) for n, a in zip(target.names, target.args, strict=False)] + list(target.kwargs.items())
        mine = {id(s.tensor) for s in sess.input_slots}
        rest = [str(n) for n, a in given if is_diff_tensor(a) and id(a) not in mine]
        rest += [
            f"{n}[{j}]"
            for n, a in given
            if type(a) in (list, tuple)
            for j, t in enumerate(a)
            if is_diff_tensor(t) and id(t) not in mine
        ]
        if rest:
            one = len(rest) == 1
            notes.append(
                f"not checked: {_listed(rest)} ({'a float input' if one else 'float inputs'} without requires_grad; "
                "when some inputs require grad, only those are checked: call "
                f"{rest[0] + '.requires_grad_()' if one else '.requires_grad_() on them'} to check "
                f"{'it' if one else 'them'} too)."
            )
    return notes
