"""pytest plugin, registered through the ``pytest11`` entry point (``-p no:backcheck`` turns it off).

Fixtures
--------
``backcheck``
    The backcheck module: ``backcheck.assert_layer(forward, backward, inputs)`` fails the test with the
    report's table (the worst elements) as the message.
``gradcheck``
    A helper that checks, records and asserts: ``gradcheck.layer(forward, backward, inputs, ...)`` and
    ``gradcheck.grad(f, params, grad, ...)`` return the :class:`~backcheck.report.Report` when it passes and
    fail the test with the table otherwise; ``gradcheck.reports`` holds every report of the test.

Options
-------
``--backcheck-report=PATH``
    Collect every report of the session (the fixtures', and every call of ``backcheck.check``,
    ``check_layer``, ``assert_grad``, ``assert_layer`` and of the torch and jax frontends made during the
    tests) and write them at the end to one HTML file (or JSON when PATH ends with ``.json``).
``--backcheck-curves``
    With ``--backcheck-report``, record the error-versus-step curve of each tensor's worst element
    (44 more evaluations per tensor), drawn in the HTML report.

When a test fails after backcheck checks that did not pass (``assert report.ok``, say), the failure
shows their tables in a "backcheck" section.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from backcheck.errors import BackcheckError
    from backcheck.report import Report

#: The functions whose reports are recorded: the module that defines them, and their names.
RECORDED: dict[str, tuple[str, ...]] = {
    "backcheck.api": ("check",),
    "backcheck.frontends.layers": ("check_layer",),
    "backcheck.frontends.torch": ("check", "check_function", "check_module"),
    "backcheck.frontends.jax": ("check",),
}


#: Each recording wrapper and the function it wraps.
_ORIGINALS: dict[Callable[..., Any], Callable[..., Any]] = {}


def original(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function itself, or the function a recording wrapper wraps."""
    return _ORIGINALS.get(fn, fn)


class Recorder:
    """The reports of a session, each with the id of the test that made it."""

    def __init__(self, curves: bool = False) -> None:
        self.curves = curves
        self.entries: list[tuple[str, Report]] = []
        self._seen: set[int] = set()
        self.item: pytest.Item | None = None
        self._originals: dict[tuple[str, str], Callable[..., Any]] = {}
        self._wrappers: dict[tuple[str, str], Callable[..., Any]] = {}
        self._replaced: list[tuple[ModuleType, str, Callable[..., Any]]] = []
        self._local = threading.local()
        self.written: Path | None = None
        self.hook: Any = None  # the import finder that patches frontends imported later (_PatchOnImport)
        self.unwritten: BackcheckError | None = None  # why the report could not be written

    # -- collecting -----------------------------------------------------------------------------------
    def add(self, report: Report) -> None:
        if id(report) in self._seen:
            return
        self._seen.add(id(report))
        label = self.item.nodeid if self.item is not None else "(outside a test)"
        self.entries.append((label, report))
        if self.item is not None:
            self.item.stash.setdefault(_ITEM_REPORTS, []).append(report)

    def labels(self) -> list[str]:
        counts: dict[str, int] = {}
        for label, _ in self.entries:
            counts[label] = counts.get(label, 0) + 1
        seen: dict[str, int] = {}
        out = []
        for label, _ in self.entries:
            seen[label] = seen.get(label, 0) + 1
            out.append(f"{label} [{seen[label]}]" if counts[label] > 1 else label)
        return out

    # -- wrapping the public functions ------------------------------------------------------------------
    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        from backcheck.report import Report

        try:
            takes_curves = "curves" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            takes_curves = False
        recorder = self

        @functools.wraps(fn)
        def recording(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(recorder._local, "depth", 0)
            if depth == 0 and recorder.curves and takes_curves:
                kwargs.setdefault("curves", True)
            recorder._local.depth = depth + 1
            try:
                result = fn(*args, **kwargs)
            finally:
                recorder._local.depth = depth
            if depth == 0 and isinstance(result, Report):
                recorder.add(result)
            return result

        _ORIGINALS[recording] = fn
        return recording

    def patch(self) -> None:
        """Wrap the recorded functions of every loaded backcheck module, and their re-exports."""
        for modname, names in RECORDED.items():
            module = sys.modules.get(modname)
            if module is None:
                continue
            for name in names:
                key = (modname, name)
                fn = getattr(module, name, None)
                if key in self._originals or fn is None or fn in _ORIGINALS:
                    continue
                self._originals[key] = fn
                self._wrappers[key] = self._wrap(fn)
        by_id = {id(fn): self._wrappers[key] for key, fn in self._originals.items()}
        for modname, module in list(sys.modules.items()):
            if module is None or not (modname == "backcheck" or modname.startswith("backcheck.")):
                continue
            for attr, value in list(vars(module).items()):
                wrapper = by_id.get(id(value))
                if wrapper is not None:
                    setattr(module, attr, wrapper)
                    self._replaced.append((module, attr, value))

    def unpatch(self) -> None:
        for module, attr, fn in reversed(self._replaced):
            setattr(module, attr, fn)
        self._replaced.clear()
        for wrapper in self._wrappers.values():
            _ORIGINALS.pop(wrapper, None)

    def write(self, path: str) -> Path:
        reports = [r for _, r in self.entries]
        if path.endswith(".json"):
            from backcheck.render.json import write_json

            return write_json(reports, path, labels=self.labels())
        from backcheck.render.html import write_html

        return write_html(reports, path, title="backcheck: gradient checks of the test session",
                          labels=self.labels())


_RECORDER = pytest.StashKey[Recorder]()
_ITEM_REPORTS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backcheck", "gradient checks (backcheck)")
    group.addoption("--backcheck-report", metavar="PATH", default=None,
                    help="write every backcheck report of the session to PATH (HTML, or JSON for *.json)")
    group.addoption("--backcheck-curves", action="store_true", default=False,
                    help="with --backcheck-report, record error-versus-step curves for the HTML plots")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backcheck: a test of gradients checked with backcheck")
    path = config.getoption("--backcheck-report", None)
    if path:
        importlib.import_module("backcheck")  # loads the modules whose functions are recorded
        recorder = Recorder(curves=bool(config.getoption("--backcheck-curves", False)))
        recorder.patch()
        recorder.hook = _PatchOnImport(recorder)
        sys.meta_path.insert(0, recorder.hook)
        config.stash[_RECORDER] = recorder


class _PatchOnImport:
    """A finder that patches a recorded frontend the moment it is first imported (``import backcheck.torch``
    inside a test body, whose checks the next test's re-patching came too late for); every other import is
    left to the finders after it."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in RECORDED:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _PatchingLoader(spec.loader, self.recorder)  # (a loader may serve many modules)
                return spec
        return None


class _PatchingLoader:
    """``inner``'s loading of one module, then the recorder's patch of it."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self.inner, self.recorder = inner, recorder

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        self.recorder.patch()

    def __getattr__(self, name: str) -> Any:  # (resource readers, get_source: the inner loader's)
        return getattr(self.inner, name)


def _recorder(config: pytest.Config) -> Recorder | None:
    return config.stash.get(_RECORDER, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    recorder = _recorder(item.config)
    if recorder is not None:
        recorder.patch()  # frontends imported since (backcheck.torch, backcheck.jax)
        recorder.item = item
    try:
        yield
    finally:
        if recorder is not None:
            recorder.item = None


#: The package's folder: frames in it are backcheck's own, not the user's.
_PACKAGE = Path(__file__).resolve().parent


def _internal(tb: TracebackType) -> bool:
    """True for a traceback entry in backcheck's own code."""
    try:
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def hide_internal_frames(item: pytest.Item, excinfo: Any) -> None:
    """Unlink backcheck's own frames from the traceback of a backcheck error (a failed ``assert_layer``, a
    bad argument), so the failure ends at the user's line and shows neither backcheck's code nor the repr of
    every argument it was given. ``--fulltrace`` keeps them.

    The frames are unlinked from the exception's traceback itself (``tb_next`` is writable): pytest rebuilds
    its view of a traceback from these links when it cuts it to the test function.
    """
    from backcheck.errors import BackcheckError, GradientMismatch

    ours = (BackcheckError, GradientMismatch)
    if excinfo is None or not excinfo.errisinstance(ours) or item.config.getoption("fulltrace", False):
        return
    chain: list[TracebackType] = []
    tb: TracebackType | None = excinfo.tb
    while tb is not None:
        chain.append(tb)
        tb = tb.tb_next
    kept = [t for t in chain if not _internal(t)]
    if not kept or kept[0] is not chain[0] or len(kept) == len(chain):
        return  # raised from backcheck's own code alone, or nothing to hide
    for a, b in zip(kept[:-1], kept[1:], strict=True):
        a.tb_next = b
    kept[-1].tb_next = None
    excinfo.traceback = type(excinfo.traceback)(excinfo.tb)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    hide_internal_frames(item, call.excinfo)
    outcome: Any = yield
    rep = outcome.get_result()
    if call.when != "call" or not rep.failed:
        return
    raised = getattr(call.excinfo.value, "report", None) if call.excinfo is not None else None
    failing = [r for r in item.stash.get(_ITEM_REPORTS, []) if not r.ok and r is not raised]
    if failing:
        rep.sections.append(("backcheck", "\n\n".join(str(r) for r in failing)))


def pytest_report_header(config: pytest.Config) -> str | None:
    path = config.getoption("--backcheck-report", None)
    return f"backcheck: recording gradient checks to {path}" if path else None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    recorder = _recorder(config)
    if recorder is None:
        return
    path = str(config.getoption("--backcheck-report"))
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker:  # pytest-xdist: one file per worker
        p = Path(path)
        path = str(p.with_name(f"{p.stem}.{worker}{p.suffix}"))
    from backcheck.errors import BackcheckError

    try:
        recorder.written = recorder.write(path)
    except BackcheckError as exc:  # said in the summary in one line, and the run fails: the report was asked for
        recorder.unwritten = exc
        if session.exitstatus == 0:
            session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    recorder = _recorder(config)
    if recorder is not None and recorder.unwritten is not None:
        exc = recorder.unwritten
        terminalreporter.write_line(f"backcheck: the report could not be written: {exc.message} Hint: {exc.hint}")
        return
    if recorder is None or recorder.written is None:
        return
    failed = sum(not r.ok for _, r in recorder.entries)
    n = len(recorder.entries)
    terminalreporter.write_line(f"backcheck: {n} gradient check(s), {failed} not passing; report written to "
                                f"{recorder.written}")


def pytest_unconfigure(config: pytest.Config) -> None:
    recorder = _recorder(config)
    if recorder is not None:
        recorder.unpatch()
        if recorder.hook in sys.meta_path:
            sys.meta_path.remove(recorder.hook)
        del config.stash[_RECORDER]


class GradCheck:
    """The ``gradcheck`` fixture: check, record, and fail the test unless the check passes."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        self.reports: list[Report] = []

    def _done(self, report: Report) -> Report:
        __tracebackhide__ = True
        from backcheck.errors import GradientMismatch

        self.reports.append(report)
        recorder = _recorder(self._item.config)
        if recorder is not None:
            recorder.add(report)
        else:
            self._item.stash.setdefault(_ITEM_REPORTS, []).append(report)
        if not report.ok:
            raise GradientMismatch(report)
        return report

    def layer(self, forward: Callable[..., Any], backward: Callable[..., Any], inputs: Any, dout: Any = None,
              **options: Any) -> Report:
        """:func:`backcheck.check_layer`, asserted: returns the report, or fails the test with its table."""
        __tracebackhide__ = True
        from backcheck.frontends import layers

        return self._done(original(layers.check_layer)(forward, backward, inputs, dout, **options))

    def grad(self, f: Callable[[Any], Any], params: Any, grad: Any, **options: Any) -> Report:
        """:func:`backcheck.check`, asserted: returns the report, or fails the test with its table."""
        __tracebackhide__ = True
        from backcheck import api

        return self._done(original(api.check)(f, params, grad, **options))

    @property
    def last(self) -> Report:
        """The most recent report of this test."""
        if not self.reports:
            raise LookupError("no gradient check has run in this test yet")
        return self.reports[-1]


@pytest.fixture
def backcheck() -> ModuleType:
    """The backcheck module."""
    import backcheck as module

    return module


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest) -> GradCheck:
    """Check gradients, record the reports, and fail the test with the worst elements when a check fails."""
    return GradCheck(request.node)
