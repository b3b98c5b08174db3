"""What an exploration found: counts of points, the smallest failing case, and that case as a pytest test."""

from __future__ import annotations

import functools
import pprint
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.explore.draw import Case

if TYPE_CHECKING:
    from backcheck.report import Report

#: Arrays with at most this many elements are printed as literals; larger ones by the code that built them.
LITERAL_MAX = 32


@dataclass
class Outcome:
    """The verdict at one point: 'pass', 'fail', 'inconclusive' or 'invalid' (outside the layer's domain)."""

    kind: str
    report: Report | None = None
    error: str = ""
    evals: int = 0
    kinks: int = 0


@dataclass
class ExploreResult:
    """The result of :func:`backcheck.explore`.

    Attributes
    ----------
    status : str
        'fail' (a point where the check fails, or where the backward raises or returns NaN), 'pass' (every
        point passed or sat on a kink), 'inconclusive' (no failure, but some points could not be judged).
    case : Case or None
        The smallest failing case found (shrunk): ``case.dims``, ``case.hyper``, ``case.inputs``.
    report : Report or None
        The check's report at that case (None when the backward raised there; see ``error``).
    error : str
        At a failing case without a report: what the backward did (raised, returned NaN).
    passed_before : int
        Points that passed before the first failing one was found.
    points, passed, inconclusive, invalid, kinks : int
        Points checked (search and shrinking), passed, inconclusive, outside the layer's domain (its forward
        raised or returned NaN/Inf there, or ``where`` refused them), and passed points with kinks.
    shrinks : int
        Points checked while shrinking the first failing case.
    first_inconclusive : Case or None
        One inconclusive point, with ``inconclusive_report``.
    test : str
        The failing case as a ready-to-paste pytest test ('' when nothing failed).
    """

    title: str
    status: str
    seed: int
    points: int = 0
    passed: int = 0
    passed_before: int = 0
    inconclusive: int = 0
    invalid: int = 0
    kinks: int = 0
    shrinks: int = 0
    evals: int = 0
    seconds: float = 0.0
    stopped_by: str = ""
    case: Case | None = None
    report: Report | None = None
    error: str = ""
    first_inconclusive: Case | None = None
    inconclusive_report: Report | None = None
    invalid_example: str = ""
    test: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return str(self)

    def summary(self) -> str:
        head = f"backcheck explore {self.status.upper()}: {self.title}"
        counts = (f"{self.points} points in {self.seconds:.3g} s ({self.evals} evaluations; seed {self.seed}): "
                  f"{self.passed} passed ({self.kinks} with kinks), {self.inconclusive} inconclusive, "
                  f"{self.invalid} outside the domain")
        if self.stopped_by:
            counts += f"; stopped by the {self.stopped_by} budget"
        return f"{head}\n  {counts}"

    def __str__(self) -> str:
        parts = [self.summary()]
        if self.case is not None:
            parts.append(f"  failing point found after {self.passed_before} passing points, then shrunk "
                         f"({self.shrinks} points tried):")
            parts.append("  " + describe(self.case))
            parts.append(str(self.report) if self.report is not None else f"  {self.error}")
            parts.append("A test that reproduces it:\n\n" + self.test)
        elif self.first_inconclusive is not None:
            parts.append("  an inconclusive point: " + describe(self.first_inconclusive))
            if self.inconclusive_report is not None:
                parts.append(str(self.inconclusive_report))
        if self.invalid_example:
            parts.append(f"  outside the domain, e.g.: {self.invalid_example}")
        parts.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(parts)


def describe(case: Case) -> str:
    """One line: dimensions, hyper-parameters and shapes of a case."""
    dims = " ".join(f"{k}={v}" for k, v in case.dims.items())
    hyper = " ".join(f"{k}={v!r}" for k, v in case.hyper.items())
    shapes = ", ".join(f"{k}{s}" for k, s in case.shapes().items())
    return "; ".join(p for p in (f"dims {dims}" if dims else "", f"hyper {hyper}" if hyper else "", shapes) if p)


def reference(fn: Callable[..., Any], role: str) -> tuple[list[str], str]:
    """Import lines and an expression naming ``fn`` in a test file (a placeholder when it has no import path)."""
    if isinstance(fn, functools.partial):
        imports, expr = reference(fn.func, role)
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()]
        return ["import functools", *imports], f"functools.partial({expr}, {', '.join(args)})"
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if module and module != "__main__" and qualname.isidentifier():
        return [f"from {module} import {qualname}"], qualname
    name = getattr(fn, "__name__", "")
    name = name if name.isidentifier() else role
    return [], f"{name}  # TODO: import or define {name} here"


def _literal(name: str, value: np.ndarray) -> str:
    dtype = "bool" if value.dtype == np.bool_ else f"np.{value.dtype.name}"
    body = pprint.pformat(value.tolist(), width=100, compact=True)
    body = body.replace("\n", "\n" + " " * (len(name) + 17))
    return f"{name} = np.array({body}, dtype={dtype})"


def test_source(case: Case, refs: Sequence[tuple[list[str], str]], options: Mapping[str, Any], title: str,
                seed: int) -> str:
    """The failing case as a pytest test: ``assert_layer`` at that point fails until the backward is fixed."""
    lines = {line for r in refs for line in r[0]} | ({"import functools"} if case.hyper else set())
    std = sorted(x for x in lines if x.startswith("import"))
    own = sorted(x for x in lines if x.startswith("from"))
    imports = [*std, *([""] if std else []), "import numpy as np", "", "import backcheck", *own]
    body: list[str] = []
    for name, value in case.inputs.items():
        if isinstance(value, np.ndarray) and value.size <= LITERAL_MAX:
            body.append(_literal(name, value))
        else:
            body.extend(case.sources[name])
    (_, fwd), (_, bwd) = refs
    cache = bool(options.get("cache"))
    if case.hyper:
        kw = ", ".join(f"{k}={v!r}" for k, v in case.hyper.items())
        fwd = f"functools.partial({fwd.split('  #')[0]}, {kw})" + (f"  #{fwd.split('  #')[1]}" if "  #" in fwd else "")
        if not cache:
            bwd = f"functools.partial({bwd.split('  #')[0]}, {kw})" + (
                f"  #{bwd.split('  #')[1]}" if "  #" in bwd else "")
    body += [f"forward = {fwd}", f"backward = {bwd}"]
    args = ", ".join(case.inputs) + ("," if len(case.inputs) == 1 else "")
    opts = "".join(f", {k}={v!r}" for k, v in options.items() if v is not None and v is not False)
    body.append(f"backcheck.assert_layer(forward, backward, ({args}){opts})")
    fname = "".join(c if c.isalnum() else "_" for c in title.split(" ")[0]).strip("_").lower() or "layer"
    head = [*imports, "", "",
            f"def test_{fname}_explored():",
            f'    """Smallest failing case found by backcheck.explore (seed {seed}); fails until the backward '
            'is fixed."""']
    return "\n".join(head + ["    " + line for line in body]) + "\n"
