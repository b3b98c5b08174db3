"""Nested containers of arrays: a dict / list / tuple / namedtuple of leaves, walked in a fixed order,
flattened to named leaves and rebuilt around new leaves (the user's container read only for its kind).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def children(obj: Any) -> list[tuple[Any, str, Any]]:
    """(key, path suffix, child) of a container, in a deterministic order."""
    if isinstance(obj, Mapping):
        return [(k, f"[{k!r}]", v) for k, v in obj.items()]
    if is_namedtuple(obj):
        return [(f, f".{f}", getattr(obj, f)) for f in obj._fields]
    return [(i, f"[{i}]", v) for i, v in enumerate(obj)]


def rebuild(template: Any, values: list[Any], keys: Any = None) -> Any:
    """A new container of ``template``'s kind holding ``values`` (under ``keys`` for a mapping: by default its own)."""
    if isinstance(template, Mapping):
        out = dict(zip(template.keys() if keys is None else keys, values, strict=True))
        try:
            kind: Any = type(template)  # (a Mapping subclass built from a dict: OrderedDict, a config's own)
            return out if kind is dict else kind(out)
        except TypeError:
            return out
    if is_namedtuple(template):
        return type(template)(*values)
    if isinstance(template, tuple):
        return tuple(values)
    return list(values)


def build_node(node: tuple[Any, list[tuple[Any, Any]]], values: list[Any]) -> Any:
    """A new container for a node of :attr:`Tree.structure`, its keys as they were when the tree was built (the
    user's container is only read for its kind: the function under test may have edited it since)."""
    kind = type(node[0])
    if kind is list or kind is tuple:
        return values if kind is list else tuple(values)
    return rebuild(node[0], values, [key for key, _ in node[1]])


def is_container(obj: Any) -> bool:
    return isinstance(obj, (Mapping, list, tuple))


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """The leaves of a tree (anything not a dict, list or tuple), depth first, named by their paths.

    ``flatten({'a': [x, y]}, 'out')`` is ``[("out['a'][0]", x), ("out['a'][1]", y)]``.
    """
    if not is_container(obj):
        return [(prefix, obj)]
    return [item for _, suffix, child in children(obj) for item in flatten(child, prefix + suffix)]


def rebuild_like(template: Any, leaves: list[Any]) -> Any:
    """A tree of ``template``'s structure holding ``leaves`` (in :func:`flatten`'s order)."""
    it = iter(leaves)

    def build(t: Any) -> Any:
        if not is_container(t):
            return next(it)
        return rebuild(t, [build(child) for _, _, child in children(t)])

    return build(template)


def map_leaves(fn: Any, obj: Any) -> Any:
    """``obj`` with ``fn`` applied to every leaf."""
    return rebuild_like(obj, [fn(x) for _, x in flatten(obj)])


def describe(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__
