"""The search: Hypothesis draws points of the input space, ``check_layer`` judges each, failures are shrunk."""

from __future__ import annotations

import copy
import functools
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.errors import BadInputError, GradientStructureError, NonFiniteError, UserFunctionError
from backcheck.explore.draw import Case, Space, draw_case
from backcheck.explore.result import ExploreResult, Outcome, describe, reference, test_source
from backcheck.explore.space import Array, Mask


@dataclass(frozen=True)
class Budget:
    """When the search stops (whichever comes first) and how much shrinking may cost."""

    points: int = 100
    evals: int | None = None
    seconds: float | None = None
    shrink_points: int = 100
    shrink_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("points", "evals", "shrink_points"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise BadInputError(f"{name}={v!r} is not a non-negative integer.", f"e.g. {name}=100.")
        for name in ("seconds", "shrink_seconds"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and v > 0):
                raise BadInputError(f"{name}={v!r} is not a positive number of seconds.", f"e.g. {name}=5.")


class _Stop(BaseException):
    """Ends the Hypothesis run when a budget is spent. Hypothesis treats an ``Exception`` as a failure to
    shrink; a ``BaseException`` (like KeyboardInterrupt) ends the run at once, which is what a budget means."""


class _Found(Exception):
    """Raised inside the Hypothesis test at a failing point; Hypothesis shrinks it."""

    def __init__(self, case: Case, outcome: Outcome) -> None:
        super().__init__("failing point")
        self.case, self.outcome = case, outcome


def _finite(tree: Any) -> bool:
    if isinstance(tree, Mapping):
        return all(_finite(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return all(_finite(v) for v in tree)
    a = np.asarray(tree)
    return a.dtype.kind not in "fc" or bool(np.all(np.isfinite(a)))


def _named(bound: functools.partial[Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """A partial carrying its function's name, so reports name the layer."""
    bound.__name__ = getattr(fn, "__name__", "layer")  # type: ignore[attr-defined]
    return bound


class Judge:
    """Judges points with ``check_layer``, remembering each verdict (a shrunk case is never re-checked)."""

    def __init__(self, forward: Callable[..., Any], backward: Callable[..., Any], cache: bool,
                 check_options: Mapping[str, Any]) -> None:
        self.forward, self.backward, self.cache = forward, backward, cache
        self.check_options = dict(check_options)
        self.seen: dict[Any, Outcome] = {}

    def bind(self, case: Case) -> tuple[Callable[..., Any], Callable[..., Any]]:
        if not case.hyper:
            return self.forward, self.backward
        fwd = _named(functools.partial(self.forward, **case.hyper), self.forward)
        return fwd, self.backward if self.cache else _named(functools.partial(self.backward, **case.hyper),
                                                            self.backward)

    def _precheck(self, case: Case, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> Outcome | None:
        """The forward at the point (outside the domain if it raises or is not finite), then the backward."""
        args = copy.deepcopy(list(case.inputs.values()))
        try:
            out = fwd(*args)
        except Exception as exc:  # the forward refusing a point puts it outside the layer's domain
            return Outcome("invalid", error=f"forward raised {type(exc).__name__}: {exc}")
        value = out[0] if self.cache else out
        if not _finite(value):
            return Outcome("invalid", error="forward returned NaN or Inf")
        if not isinstance(value, (np.ndarray, np.generic, float)):
            return None
        dout = np.ones_like(np.asarray(value))
        try:
            grads = bwd(dout, out[1]) if self.cache else bwd(dout, *args)
        except Exception as exc:  # a backward that crashes where its forward works is a bug
            return Outcome("fail", error=f"backward raised {type(exc).__name__}: {exc}")
        if not _finite(grads):
            return Outcome("fail", error="backward returned NaN or Inf where the forward is finite")
        return None

    def __call__(self, case: Case) -> Outcome:
        key = case.key
        if key in self.seen:
            return self.seen[key]
        fwd, bwd = self.bind(case)
        with warnings.catch_warnings():  # overflow at a point outside the domain is counted, not printed
            warnings.simplefilter("ignore", RuntimeWarning)
            outcome = self._judge(case, fwd, bwd)
        self.seen[key] = outcome
        return outcome

    def _judge(self, case: Case, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> Outcome:
        from backcheck import check_layer

        outcome = self._precheck(case, fwd, bwd)
        if outcome is None:
            try:
                report = check_layer(fwd, bwd, tuple(case.inputs.values()), cache=self.cache,
                                     names=list(case.inputs), progress=False, **self.check_options)
            except NonFiniteError as exc:  # a perturbed evaluation left the domain
                outcome = Outcome("invalid", error=str(exc).splitlines()[0])
            except (GradientStructureError, UserFunctionError) as exc:  # the backward's structure, or a crash
                outcome = Outcome("fail", error=f"{type(exc).__name__}: {exc}")
            else:
                kind = {"pass": "pass", "fail": "fail"}.get(report.status, "inconclusive")
                kinks = sum(leaf.n_kinks for leaf in report.leaves)
                outcome = Outcome(kind, report, evals=report.n_evals, kinks=kinks)
        return outcome


class _Bar:
    """A rich progress bar, imported on first use; silent when rich is missing or progress is off."""

    def __init__(self, title: str, total: int | None, enabled: bool | None) -> None:
        self.on = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = None
        self.title, self.total = title, total

    def update(self, done: int, note: str) -> None:
        if not self.on:
            return
        if self.bar is None:
            try:
                from rich.console import Console
                from rich.progress import Progress
            except ImportError:
                self.on = False
                return
            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"explore {self.title}", total=self.total)
        self.bar.update(self.task, completed=done, description=f"explore {self.title}: {note}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class Search:
    """One exploration: the Hypothesis loop, budgets, counts and the result."""

    def __init__(self, judge: Judge, space: Space, budget: Budget, seed: int, title: str) -> None:
        self.judge, self.space, self.budget, self.seed, self.title = judge, space, budget, seed, title
        self.result = ExploreResult(title=title, status="pass", seed=seed)
        self.started = time.perf_counter()
        self.shrink_started: float | None = None
        self.best: tuple[Case, Outcome] | None = None

    def _spent(self) -> str:
        """The budget that is used up ('' if none)."""
        r, b, now = self.result, self.budget, time.perf_counter()
        if self.shrink_started is not None:
            if r.shrinks >= b.shrink_points:
                return "shrink points"
            if b.shrink_seconds is not None and now - self.shrink_started > b.shrink_seconds:
                return "shrink seconds"
            return ""
        if r.points >= b.points:
            return "points"
        if b.evals is not None and r.evals >= b.evals:
            return "evaluations"
        if b.seconds is not None and now - self.started > b.seconds:
            return "seconds"
        return ""

    def probe(self, case: Case) -> Outcome:
        """Judge a point, counting it; raise :class:`_Stop` when a budget is spent."""
        known = case.key in self.judge.seen
        spent = "" if known else self._spent()
        if spent:
            if self.shrink_started is None:
                self.result.stopped_by = spent
            raise _Stop(spent)
        outcome = self.judge(case)
        if outcome.kind == "fail":
            self.best = (case, outcome)  # Hypothesis only tries cases smaller than its best: the last is the least
        if known:
            return outcome
        r = self.result
        r.points += 1
        r.evals += outcome.evals
        if self.shrink_started is not None:
            r.shrinks += 1
            return outcome
        if outcome.kind == "pass":
            r.passed += 1
            r.kinks += outcome.kinks > 0
        elif outcome.kind == "inconclusive":
            r.inconclusive += 1
            if r.first_inconclusive is None:
                r.first_inconclusive, r.inconclusive_report = case, outcome.report
        elif outcome.kind == "invalid":
            r.invalid += 1
            r.invalid_example = r.invalid_example or f"{describe(case)}: {outcome.error}"
        else:
            r.passed_before = r.passed
            self.shrink_started = time.perf_counter()
        return outcome

    def run(self, shrink: bool, progress: bool | None) -> ExploreResult:
        from hypothesis import HealthCheck, Phase, Verbosity, assume, given, settings
        from hypothesis import seed as hseed
        from hypothesis import strategies as st
        from hypothesis.errors import Unsatisfiable

        self.started = time.perf_counter()  # the first run's import of Hypothesis is not the search's time
        bar = _Bar(self.title, self.budget.points, progress)
        space = self.space

        def point(data: Any) -> None:
            case = draw_case(st, data, space, assume)  # drawn before any budget test: the draws stay replayable
            outcome = self.probe(case)
            r = self.result
            bar.update(r.points, f"{r.passed} passed" + (", shrinking" if self.shrink_started else ""))
            if outcome.kind == "fail":
                raise _Found(case, outcome)

        phases = (Phase.generate, Phase.shrink) if shrink else (Phase.generate,)
        runner = hseed(self.seed)(settings(
            max_examples=max(1, self.budget.points), deadline=None, database=None, derandomize=False,
            phases=phases, suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
            report_multiple_bugs=False, print_blob=False,
        )(given(st.data())(point)))
        try:
            runner()
        except _Found as found:
            self._failed(found.case, found.outcome)
        except _Stop:
            if self.best is not None:  # shrinking ran out of budget: the smallest failing case so far
                self._failed(*self.best)
        except Unsatisfiable:
            self.result.notes.append("no point of the description could be checked (see the domain example)")
        finally:
            bar.close()
        r = self.result
        if r.case is None and not r.stopped_by and r.points >= self.budget.points:
            r.stopped_by = "points"
        if r.case is None:
            r.status = "inconclusive" if r.inconclusive or not r.passed else "pass"
            if not r.passed:
                r.notes.append("no point passed: every point drawn was outside the layer's domain or inconclusive")
        r.seconds = time.perf_counter() - self.started
        return r

    def _failed(self, case: Case, outcome: Outcome) -> None:
        r = self.result
        r.status, r.case, r.report, r.error = "fail", case, outcome.report, outcome.error
        refs = [reference(self.judge.forward, "forward"), reference(self.judge.backward, "backward")]
        options = {"cache": self.judge.cache, **self.judge.check_options}
        r.test = test_source(case, refs, options, self.title, self.seed)


@dataclass(frozen=True)
class Plan:
    """What :func:`backcheck.explore` was asked, checked: the layer, its space, the budget, the check's options."""

    forward: Callable[..., Any]
    backward: Callable[..., Any]
    space: Space
    cache: bool
    budget: Budget
    seed: int
    shrink: bool
    progress: bool | None
    check_options: Mapping[str, Any]
    title: str | None = None
    source: tuple[Any, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise BadInputError(f"seed={self.seed!r} is not an integer.", "give an int, e.g. seed=0.")
        if self.space.dtype.kind != "f":
            raise BadInputError(f"dtype={self.space.dtype} is not a float dtype.", "use float64 or float32.")


def run_explore(plan: Plan) -> ExploreResult:
    """The body of :func:`backcheck.explore`: search, then the result with its test."""
    inputs = plan.space.inputs
    options = dict(plan.check_options)
    if any(isinstance(s, Mask) and np.dtype(s.dtype).kind == "f" for s in inputs.values()):
        options["wrt"] = [n for n, s in inputs.items() if isinstance(s, Array)]  # a float mask is not checked
    judge = Judge(plan.forward, plan.backward, plan.cache, options)
    fname, bname = getattr(plan.forward, "__name__", "forward"), getattr(plan.backward, "__name__", "backward")
    name = plan.title or f"{fname} / {bname}"
    result = Search(judge, plan.space, plan.budget, plan.seed, name).run(plan.shrink, plan.progress)
    if plan.source is not None and result.case is not None:
        test_options = {"cache": plan.cache, **judge.check_options}
        result.test = test_source(result.case, list(plan.source), test_options, name, plan.seed)
    return result
