"""Gradient cases: functions marked with ``@backcheck.case``, found and run by ``backcheck check FILE.py``.

A case is a function without arguments. It returns one of:

- a :class:`~backcheck.report.Report` (the case ran its own check);
- a dict for :func:`~backcheck.check_layer`: ``{"forward": f, "backward": b, "inputs": (x, w, b), ...}``;
- a dict for :func:`~backcheck.check`: ``{"f": loss, "params": params, "grad": grad, ...}``;
- with ``@backcheck.case(forward=..., backward=...)``, the inputs of that layer pair (a tuple, one array,
  or a dict by parameter name); ``forward`` and ``backward`` are functions or names looked up in the
  module that defines the case, as in a CS231n ``layers.py`` (``cache=True`` for ``forward -> (out, cache)``
  and ``backward(dout, cache)``).

Other keys of the dict, and keyword arguments of the decorator, are passed on to the check (``dout``,
``wrt``, ``strategy``, ``samples``, ``atol``, ``rtol``, ``step``, ``seed``, ``upcast``, ``curves``).

Examples
--------
>>> import numpy as np, backcheck
>>> def affine_forward(x, w, b):
...     return x @ w + b, (x, w)
>>> def affine_backward(dout, cache):
...     x, w = cache
...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
>>> @backcheck.case(forward=affine_forward, backward=affine_backward, cache=True)
... def affine():
...     rng = np.random.default_rng(0)
...     return rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=2)
>>> from backcheck.cases import collect, run_case
>>> [c.name for c in collect({"affine": affine})]
['affine']
>>> run_case(collect({"affine": affine})[0]).ok
True
"""

from __future__ import annotations

import fnmatch
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.errors import CaseError

if TYPE_CHECKING:
    from backcheck.report import Report

#: The attribute a decorated function carries.
ATTRIBUTE = "__backcheck_case__"
#: Keyword arguments a case may pass on to check / check_layer.
OPTIONS = ("dout", "wrt", "strategy", "samples", "atol", "rtol", "step", "seed", "upcast", "curves")


@dataclass(frozen=True)
class Case:
    """A gradient case: the decorated function and how to turn what it returns into a check."""

    name: str
    func: Callable[[], Any]
    forward: str | Callable[..., Any] | None = None
    backward: str | Callable[..., Any] | None = None
    cache: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_pair(self) -> bool:
        """True for a named forward/backward pair whose function returns only the inputs."""
        return self.forward is not None

    @property
    def where(self) -> str:
        """``file:line`` of the decorated function."""
        try:
            return f"{inspect.getsourcefile(self.func)}:{inspect.getsourcelines(self.func)[1]}"
        except (OSError, TypeError):
            return getattr(self.func, "__module__", "?")


def _check_options(options: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise CaseError(
            f"{where}: unknown option(s) {', '.join(unknown)}.", f"the options of a case are {', '.join(OPTIONS)}."
        )


def case(
    func: Callable[[], Any] | None = None,
    *,
    name: str | None = None,
    forward: str | Callable[..., Any] | None = None,
    backward: str | Callable[..., Any] | None = None,
    cache: bool = False,
    **options: Any,
) -> Any:
    """Mark a function as a gradient case for ``backcheck check FILE.py``.

    Use it bare (``@backcheck.case``) on a function returning a Report or a dict describing a check, or
    with arguments (``@backcheck.case(forward="affine_forward", backward="affine_backward", cache=True)``)
    on a function returning the inputs of that layer pair. The function is returned unchanged (it can
    still be called), with the case attached as ``func.__backcheck_case__``.

    Parameters
    ----------
    func : callable, optional
        The case function (when the decorator is used without parentheses).
    name : str, optional
        The case's name, default the function's name.
    forward, backward : callable or str, optional
        A layer pair; a string is looked up in the globals of the module defining the case.
    cache : bool
        The pair follows the CS231n cache convention.
    **options
        Passed on to the check (``strategy``, ``atol``, ``dout``, ...).
    """
    if (forward is None) != (backward is None):
        raise CaseError(
            "@backcheck.case needs both forward= and backward=, or neither.",
            "name the layer pair, e.g. forward='affine_forward', backward='affine_backward'.",
        )
    _check_options(options, "@backcheck.case")
    for what, ref in (("forward", forward), ("backward", backward)):
        if ref is not None and not (callable(ref) or isinstance(ref, str)):
            raise CaseError(
                f"@backcheck.case got {what}={ref!r}, which is neither a function nor a function's name.",
                f"pass {what}= the function itself or its name in the case's module, e.g. {what}='affine_{what}'.",
            )

    def mark(fn: Callable[[], Any]) -> Callable[[], Any]:
        if not callable(fn):
            raise CaseError(f"@backcheck.case decorates functions, not a {type(fn).__name__}.", None)
        setattr(fn, ATTRIBUTE, Case(name or fn.__name__, fn, forward, backward, cache, dict(options)))
        return fn

    return mark(func) if func is not None else mark


def collect(namespace: ModuleType | Mapping[str, Any]) -> list[Case]:
    """The cases defined in a module (or a dict of globals), in definition order."""
    items = vars(namespace) if isinstance(namespace, ModuleType) else namespace
    seen: set[int] = set()
    out = []
    for obj in list(items.values()):
        c = getattr(obj, ATTRIBUTE, None) if callable(obj) else None
        if isinstance(c, Case) and id(c) not in seen:
            seen.add(id(c))
            out.append(c)
    return out


def matches(name: str, pattern: str) -> bool:
    """``pattern`` is a glob (``*``, ``?``, ``[``) matching ``name``, or a substring of it (any case)."""
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern.lower() in name.lower()


def load_file(path: str | Path) -> ModuleType:
    """Import a Python file as a module (its directory first on ``sys.path``, like running it)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = (
        file.stem
        if file.stem.isidentifier() and file.stem not in sys.modules
        else (f"backcheck_cases_{abs(hash(str(file)))}")
    )
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CaseError(f"{path} cannot be imported as a Python module.", "pass a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    before = set(sys.modules)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        # modules it imported from its own folder (a layers.py beside it) are its own: forgotten, so that the
        # next file's folder gives its own module of that name (two students' folders checked in one run)
        for mod in set(sys.modules) - before:
            if str(getattr(sys.modules[mod], "__file__", "") or "").startswith(folder + os.sep):
                del sys.modules[mod]
    return module


def cast_floats(tree: Any, dtype: Any) -> Any:
    """A copy of ``tree`` with every float numpy array (and numpy float scalar) cast to ``dtype``."""
    if isinstance(tree, Mapping):
        items = {k: cast_floats(v, dtype) for k, v in tree.items()}
        factory: Any = type(tree)
        try:
            return factory(items)
        except TypeError:
            return items
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(cast_floats(v, dtype) for v in tree))
    if isinstance(tree, (list, tuple)):
        return type(tree)(cast_floats(v, dtype) for v in tree)
    if isinstance(tree, (np.ndarray, np.floating)) and np.asarray(tree).dtype.kind == "f":
        return np.asarray(tree).astype(dtype) if isinstance(tree, np.ndarray) else np.dtype(dtype).type(tree)
    return tree


def _resolve(ref: str | Callable[..., Any], c: Case, what: str) -> Callable[..., Any]:
    if callable(ref):
        return ref
    scope = getattr(c.func, "__globals__", {})
    fn = scope.get(ref)
    if fn is None:
        module = sys.modules.get(getattr(c.func, "__module__", "") or "")
        fn = getattr(module, ref, None)
    if not callable(fn):
        found = sorted(k for k, v in scope.items() if callable(v) and not k.startswith("_"))
        raise CaseError(
            f"case {c.name!r}: {what}={ref!r} is not a function defined in its module.",
            f"functions there: {', '.join(found[:12]) or 'none'}.",
        )
    return fn


def _inputs_by_name(forward: Callable[..., Any], given: Mapping[str, Any], c: Case) -> tuple[Any, ...]:
    try:
        params = [
            p.name
            for p in inspect.signature(forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = list(given)
    missing = [p for p in params if p not in given]
    extra = [k for k in given if k not in params]
    if extra or (missing and len(given) < len(params)):
        raise CaseError(
            f"case {c.name!r} returned inputs {list(given)}, but the forward function takes {params}.",
            "return the inputs as a tuple in forward's order, or a dict keyed by its parameter names.",
        )
    return tuple(given[p] for p in params if p in given)


def describe(c: Case) -> tuple[str, dict[str, Any]] | Report:
    """Call the case and return ('layer' | 'check', keyword arguments), or the Report it returned."""
    from backcheck.report import Report

    try:
        inspect.signature(c.func).bind()
    except TypeError:
        raise CaseError(
            f"case {c.name!r} takes arguments ({inspect.signature(c.func)}); a case is called with none.",
            "build the inputs inside the case function and return them (or a dict describing the check).",
        ) from None
    except ValueError:
        pass  # (no signature to read: a builtin; called as it is)
    result = c.func()
    if isinstance(result, Report):
        return result
    options = dict(c.options)
    if c.is_pair:
        assert c.forward is not None and c.backward is not None
        fwd, bwd = _resolve(c.forward, c, "forward"), _resolve(c.backward, c, "backward")
        if isinstance(result, Mapping) and "inputs" in result:
            spec = dict(result)
            inputs = spec.pop("inputs")
            _check_options(spec, f"case {c.name!r}")
            options.update(spec)
        else:
            inputs = result
        if isinstance(inputs, Mapping):
            inputs = _inputs_by_name(fwd, inputs, c)
        return "layer", {"forward": fwd, "backward": bwd, "inputs": inputs, "cache": c.cache, **options}
    if isinstance(result, Mapping):
        spec = dict(result)
        need: tuple[str, ...]
        extra_ok: tuple[str, ...]
        if "forward" in spec or "backward" in spec:
            need, kind = ("forward", "backward", "inputs"), "layer"
            extra_ok = (*OPTIONS, "cache")
        elif "f" in spec:
            need, kind = ("f", "params", "grad"), "check"
            extra_ok = OPTIONS
        else:
            raise CaseError(
                f"case {c.name!r} returned a dict with keys {sorted(spec)}.",
                "return {'forward', 'backward', 'inputs'} for a layer or {'f', 'params', 'grad'} "
                "for a scalar function.",
            )
        missing = [k for k in need if k not in spec]
        if missing:
            raise CaseError(
                f"case {c.name!r} describes a {_WHAT[kind]} check but lacks {', '.join(missing)}.",
                f"a {_WHAT[kind]} case needs the keys {', '.join(need)}.",
            )
        unknown = sorted(set(spec) - set(need) - set(extra_ok))
        if unknown:
            raise CaseError(
                f"case {c.name!r} returned unknown key(s) {', '.join(unknown)}.",
                f"allowed besides {', '.join(need)}: {', '.join(extra_ok)}.",
            )
        return kind, {**options, **spec}
    raise CaseError(
        f"case {c.name!r} returned a {type(result).__name__}; a case returns a Report or a dict describing a check.",
        "return {'forward': f, 'backward': b, 'inputs': (...)} or {'f': f, 'params': p, 'grad': g}, or use "
        "@backcheck.case(forward=..., backward=...) on a function returning the inputs.",
    )


#: A case's kind as the messages say it ('layer', or a gradient check of a scalar function).
_WHAT = {"layer": "layer", "check": "scalar-function"}


def run_case(
    c: Case,
    *,
    strategy: str | None = None,
    samples: int | None = None,
    dtype: Any = None,
    seed: int | None = None,
    curves: bool | None = None,
) -> Report:
    """Run one case; arguments given here override the case's own options.

    ``dtype`` casts every float array of the inputs (and of ``dout``, or of ``params`` and a precomputed
    ``grad``) before the check. A function that reads its parameters through a closure instead of its
    argument does not see the cast copies: use ``--dtype`` with cases whose functions take their inputs.
    """
    from backcheck.api import check
    from backcheck.frontends.layers import check_layer

    got = describe(c)
    if not isinstance(got, tuple):
        return got
    kind, kwargs = got
    overrides = {"strategy": strategy, "samples": samples, "seed": seed}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    if curves is not None and "curves" not in c.options:
        kwargs["curves"] = curves
    if dtype is not None:
        for key in ("inputs", "dout", "params"):
            if key in kwargs and kwargs[key] is not None:
                kwargs[key] = cast_floats(kwargs[key], dtype)
        if "grad" in kwargs and not callable(kwargs["grad"]):
            kwargs["grad"] = cast_floats(kwargs["grad"], dtype)
    if kind == "layer":
        return check_layer(**kwargs)
    return check(**kwargs)
