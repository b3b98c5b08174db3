"""Calling user code: names of functions and of their arguments, and one wrapper that names the culprit."""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from backcheck.errors import ArgumentError, BackcheckError, BadInputError, ParamsError, UserFunctionError

if TYPE_CHECKING:
    from backcheck.tree import Tree

F = TypeVar("F", bound=Callable[..., Any])


def typed_arguments(fn: F) -> F:
    """Make a public entry point raise :class:`ArgumentError` (a typed ``TypeError``) naming the argument when it
    is called with one it does not take or without one it needs; ``TypeError`` s from its body pass unchanged."""

    @functools.wraps(fn)
    def entry(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BackcheckError:
            raise
        except TypeError as exc:
            if exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
                raise _typed(fn, exc) from exc  # raised inside the entry point, not by the call itself
            raise ArgumentError(f"{exc}{_nearest(fn, str(exc))}", _arguments_hint(fn)) from None
        except AssertionError:
            raise  # (assert_* entry points fail with an AssertionError of their own)
        except Exception as exc:
            raise _typed(fn, exc) from exc

    # the signature is fn's, but no __wrapped__: tools that unwrap (the pytest plugin's patching) see one function
    public: Any = entry
    public.__signature__ = inspect.signature(fn)
    del public.__wrapped__
    return cast(F, public)


@contextlib.contextmanager
def called_as(inner: str, outer: str) -> Iterator[None]:
    """Inside an entry point ``outer`` that calls the entry point ``inner`` with its own arguments (``assert_grad``
    calling ``check``): a call ``inner`` refuses for its arguments is refused naming ``outer``, the call the user
    wrote."""
    own = f"{inner}("
    try:
        yield
    except ArgumentError as exc:
        if not exc.message.startswith(own + ")"):
            raise
        hint = exc.hint and exc.hint.replace(own, f"{outer}(")
        raise ArgumentError(exc.message.replace(own, f"{outer}(", 1), hint) from None


def _typed(fn: Callable[..., Any], exc: Exception) -> BackcheckError:
    """An exception that escaped the checks of an entry point's arguments, typed: the user's own code raised it
    (a property of a layer, a ``__getattr__`` that raises) or an argument is of a kind the entry point does not
    take (the message says what went wrong where)."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ is not None else None
    where = f" (in {frame.filename}, line {frame.lineno})" if frame is not None else ""
    if frame is not None and _user_file(frame.filename):
        return UserFunctionError(
            f"{fn.__name__}: the user's code raised {type(exc).__name__}: {exc}{where}",
            "the original exception is chained above.",
        )
    return BadInputError(
        f"{fn.__name__} could not use its arguments: {type(exc).__name__}: {exc}{where}",
        "an argument is of a kind it does not take (the original exception is chained above); " + _arguments_hint(fn),
    )


def _user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code: neither backcheck's nor an installed package's nor Python's."""
    path = os.path.abspath(filename)
    own = os.path.dirname(os.path.abspath(__file__))
    installed = ("site-packages", "dist-packages")
    return not (path.startswith(own) or any(p in path for p in installed) or path.startswith(sys.base_prefix))


def did_you_mean(name: str, options: Sequence[str]) -> str:
    """The end of a sentence on a keyword no option has: ``' (did you mean strategy=?).'`` naming the nearest
    option, or ``'.'`` where none is near."""
    close = difflib.get_close_matches(name, list(options), 1, 0.6)
    return f" (did you mean {close[0]}=?)." if close else "."


def _nearest(fn: Callable[..., Any], message: str) -> str:
    """:func:`did_you_mean` for the keyword Python's ``TypeError`` names, among ``fn``'s keyword parameters."""
    found = re.search(r"unexpected keyword argument '([^']+)'", message)
    if found is None:
        return "."
    params = inspect.signature(fn).parameters.values()
    return did_you_mean(found.group(1), [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)])


def _arguments_hint(fn: Callable[..., Any]) -> str:
    params = inspect.signature(fn).parameters.values()
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    star = [f"*{p.name}" for p in params if p.kind == p.VAR_POSITIONAL]
    options = sorted(p.name for p in params if p.kind == p.KEYWORD_ONLY)
    call = f"{fn.__name__}({', '.join(positional + star)}, ...)"
    return f"call {call}; its options are {', '.join(options)}." if options else f"call {call}."


def call_user(fn: Callable[..., Any], args: tuple[Any, ...], what: str, restore: Any = None) -> Any:
    """Call a user function; wrap its exception with the culprit named, restoring ``restore`` (a Tree) first."""
    try:
        return fn(*args)
    except (KeyboardInterrupt, SystemExit, BackcheckError):
        raise
    except Exception as exc:
        raise UserFunctionError(
            f"{what} raised {type(exc).__name__}: {exc}",
            "the original exception is chained above; every input array has been restored.",
        ) from exc
    finally:
        if restore is not None:
            restore.restore()


def params_tree(params: Any, root: str, **kwargs: Any) -> Tree:
    """The user's parameters as a :class:`~backcheck.tree.Tree`, or :class:`ParamsError` when they contain
    themselves (a list holding itself) or nest deeper than Python can walk."""
    from backcheck.tree import Tree

    try:
        return Tree(params, root, **kwargs)
    except RecursionError:
        raise ParamsError(
            f"{root} contains itself, or nests containers deeper than Python's recursion limit "
            f"({sys.getrecursionlimit()}).",
            "pass a tree of arrays without cycles: dicts, lists and tuples a few levels deep.",
        ) from None


def flat_outputs(obj: Any, prefix: str, what: str) -> list[tuple[str, Any]]:
    """``containers.flatten(obj, prefix)`` of a value the user handed over or returned (an output, a ``dout``), or
    :class:`BadInputError` naming ``what`` when it contains itself or nests deeper than Python can walk."""
    from backcheck.containers import flatten

    try:
        return flatten(obj, prefix)
    except RecursionError:
        raise BadInputError(
            f"{what} contains itself, or nests containers deeper than Python's recursion limit.",
            "return (or pass) arrays, or a few levels of dicts, lists and tuples of them, without cycles.",
        ) from None


def require_callable(fn: Any, what: str, hint: str) -> None:
    """Raise :class:`BadInputError` naming ``what`` when ``fn`` is not a function (before it is ever called)."""
    if not callable(fn):
        raise BadInputError(f"{what} is {kind_of(fn)}, not a function.", hint)


def kind_of(value: Any) -> str:
    """``value``'s type with its article, as a message says it ('an int', 'a str', 'None')."""
    if value is None:
        return "None"
    kind = type(value).__name__
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def function_name(f: Callable[..., Any], default: str = "f") -> str:
    """``f``'s name; for a lambda, its source text when it can be read (``lambda W: np.sum(W ** 2)``)."""
    name = getattr(f, "__name__", None) or type(f).__name__
    if name != "<lambda>":
        return name
    return _lambda_source(f) or default


#: Longest lambda source used as a name.
MAX_LAMBDA_NAME = 60


def _lambda_source(f: Callable[..., Any]) -> str:
    try:  # a wrapper (functools.wraps: a random stream replayed at each call) has its own code, one for all
        f = inspect.unwrap(f)
    except ValueError:  # (a cycle of __wrapped__)
        pass
    code = getattr(f, "__code__", None)
    if code is None:
        return _lambda_text(f)
    if code not in _LAMBDA_NAMES:  # reading the source file costs a millisecond: once per lambda
        if len(_LAMBDA_NAMES) > 4096:
            _LAMBDA_NAMES.clear()
        _LAMBDA_NAMES[code] = _lambda_text(f)
    return _LAMBDA_NAMES[code]


_LAMBDA_NAMES: dict[Any, str] = {}


def _lambda_text(f: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(f)
    except (OSError, TypeError):
        return ""
    start = text.find("lambda")
    if start < 0 or text.count("lambda") != 1:
        return ""  # several lambdas on one line: which one is ambiguous
    body = text[start:]
    colon = body.find(":")  # the parameters end here; their commas are not the lambda's end
    depth = 0
    for k, ch in enumerate(body):
        if k <= colon:
            continue
        if ch in "#;" and depth == 0:  # a comment, or the next statement on the line
            body = body[:k]
            break
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                body = body[:k]
                break
            depth -= 1
        elif ch == "," and depth == 0:
            body = body[:k]
            break
    body = " ".join(body.split())
    return body if len(body) <= MAX_LAMBDA_NAME else body[: MAX_LAMBDA_NAME - 3] + "..."


def first_parameter_name(f: Callable[..., Any], default: str = "params") -> str:
    """The name of ``f``'s first positional parameter (the report's root name for ``params``)."""
    code = getattr(f, "__code__", None)
    if inspect.isfunction(f) and code is not None and code.co_argcount > 0 and not hasattr(f, "__signature__"):
        return code.co_varnames[0]  # a plain function: no signature object needed
    names = arg_names(f, 1, default=default)
    return names[0] if names[0] != f"{default}[0]" else default


def arg_names(fn: Callable[..., Any], n: int, *, skip_ctx: bool = False, default: str = "inputs") -> list[str]:
    """Names of the first ``n`` positional arguments of ``fn`` (``default[k]`` where it has none)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    if skip_ctx and params and params[0].name == "ctx":
        params = params[1:]
    names: list[str] = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    star = next((j for j, p in enumerate(params) if p.kind == p.VAR_POSITIONAL), None)
    for k in range(n):
        if k < len(params) and params[k].kind in positional:
            names.append(params[k].name)
        elif star is not None and k >= star:
            names.append(f"{params[star].name}[{k - star}]")
        else:
            names.append(f"{default}[{k}]")
    return names


#: Longest exception message line shown in a one-line summary.
MAX_MESSAGE_LINE = 160


#: Where a check's second look at a narrow function asks it (see :func:`refusal_note`).
ONE_ULP_AWAY = "one unit in the last place from the point"


def refusal_note(fname: str, exc: BaseException, where: str, dtypes: Any) -> str:
    """The note on a function that raised where a check only asked whether it computes alike from float64 copies
    of its narrow arguments (of ``dtypes``: numpy dtypes): it is then differenced in their own dtype."""
    names = ", ".join(sorted({d.name for d in dtypes}))
    return (
        f"{fname} raised {type(exc).__name__} ({first_line(exc)}) {where}, so the finite differences run in its "
        f"arguments' own dtype ({names}; upcast=True insists on float64)."
    )


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, cut to :data:`MAX_MESSAGE_LINE` characters (for one-line notes)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= MAX_MESSAGE_LINE else line[: MAX_MESSAGE_LINE - 3] + "..."
