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

Failure sections
----------------
When a test fails after backcheck checks that did not pass (``assert report.ok``, say), the failure shows their
tables in a "backcheck" section, with or without the options below. For that the plugin wraps, for the session,
``backcheck.check``, ``check_layer`` (and so ``assert_grad``, ``assert_layer``) and the checks of the torch and jax
frontends, as they are imported, and keeps the reports of the running test that did not pass, until it ends.

Options
-------
``--backcheck-report=PATH``
    Collect every report of the session (the fixtures', and every call of the functions above made during the
    tests) and write them at the end to one HTML file (or JSON when PATH ends with ``.json``). Under pytest-xdist
    (``-n``) each worker sends its reports to the controller when it finishes, and the controller writes the one
    file, the checks in the order of the tests.
``--backcheck-curves``
    With ``--backcheck-report``, record the error-versus-step curve of each tensor's worst element
    (44 more evaluations per tensor), drawn in the HTML report.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import pickle
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
#: The key of a pytest-xdist worker's output that carries its reports to the controller.
SENT = "backcheck_reports"


#: Each recording wrapper and the function it wraps.
_ORIGINALS: dict[Callable[..., Any], Callable[..., Any]] = {}
#: The recorder of each running session, the innermost last: a pytester session runs inside another, in one process,
#: and the checks of its tests are its own. The wrappers are installed while any runs.
_SESSIONS: list[Recorder] = []
#: Each recorded function, by (module, name): the original and its wrapper.
_WRAPPED: dict[tuple[str, str], tuple[Callable[..., Any], Callable[..., Any]]] = {}
#: Every module attribute replaced by a wrapper, with the function it held.
_REPLACED: list[tuple[ModuleType, str, Callable[..., Any]]] = []
#: How many modules were loaded when :func:`patch` last looked through them.
_SCANNED = [-1]
#: How deep in recorded calls each thread is: ``assert_grad`` calling ``check`` is one report.
_DEPTH = threading.local()


def original(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function itself, or the function a recording wrapper wraps."""
    return _ORIGINALS.get(fn, fn)


class Recorder:
    """The reports of a session: those of the running test that did not pass (for its failure section), and with
    ``keep`` (``--backcheck-report``) every report, with the test's place in the collection and its id."""

    def __init__(self, keep: bool = False, curves: bool = False) -> None:
        self.keep, self.curves = keep, curves
        self.entries: list[tuple[int, str, Report]] = []  # (place of the test, -1 outside one; label; report)
        self._seen: set[int] = set()
        self.item: pytest.Item | None = None
        self.places: dict[str, int] = {}  # each collected test's place, by id
        self.written: Path | None = None
        self.unwritten: BackcheckError | None = None  # why the report could not be written

    # -- collecting -----------------------------------------------------------------------------------
    def add(self, report: Report) -> None:
        item = self.item
        if item is not None and not report.ok:
            mine = item.stash.setdefault(_ITEM_REPORTS, [])
            if not any(r is report for r in mine):
                mine.append(report)
        if not self.keep or id(report) in self._seen:
            return
        self._seen.add(id(report))  # (every kept report stays alive: its id is its own)
        if item is None:
            self.entries.append((-1, "(outside a test)", report))
        else:
            self.entries.append((self.places.get(item.nodeid, len(self.places)), item.nodeid, report))

    @property
    def reports(self) -> list[Report]:
        return [r for _, _, r in self.entries]

    def labels(self) -> list[str]:
        counts: dict[str, int] = {}
        for _, label, _ in self.entries:
            counts[label] = counts.get(label, 0) + 1
        seen: dict[str, int] = {}
        out = []
        for _, label, _ in self.entries:
            seen[label] = seen.get(label, 0) + 1
            out.append(f"{label} [{seen[label]}]" if counts[label] > 1 else label)
        return out

    # -- pytest-xdist ---------------------------------------------------------------------------------
    def parcel(self) -> list[list[Any]]:
        """The entries as a pytest-xdist worker sends them to the controller: plain lists, each report pickled."""
        return [[place, label, _pickled(report)] for place, label, report in self.entries]

    def receive(self, parcel: list[list[Any]]) -> None:
        """Take in the entries a worker sent (:meth:`parcel`), and keep every entry in the order of the tests.
        Checks made outside the tests (at collection, which every worker repeats) are taken from one worker."""
        outside = any(place < 0 for place, _, _ in self.entries)
        for place, label, data in parcel:
            if place >= 0 or not outside:
                self.entries.append((place, label, pickle.loads(data)))
        self.entries.sort(key=lambda entry: entry[0])

    def write(self, path: str) -> Path:
        if path.endswith(".json"):
            from backcheck.render.json import write_json

            return write_json(self.reports, path, labels=self.labels())
        from backcheck.render.html import write_html

        return write_html(self.reports, path, title="backcheck: gradient checks of the test session",
                          labels=self.labels())


def _pickled(report: Report) -> bytes:
    """``report`` pickled for a worker's message; without its per-element arrays where they do not pickle (an
    object of the user's in them), so that the check is still in the session's report."""
    try:
        return pickle.dumps(report)
    except Exception:
        return pickle.dumps(dataclasses.replace(report, _numeric=None, _analytic=None, _bound=None, _status=None))


# -- wrapping the public functions ----------------------------------------------------------------------
def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A wrapper of ``fn`` that gives the report it returns to the innermost session's recorder."""
    from backcheck.report import Report

    try:
        takes_curves = "curves" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_curves = False

    @functools.wraps(fn)
    def recording(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        recorder = _SESSIONS[-1] if _SESSIONS else None
        depth = getattr(_DEPTH, "depth", 0)
        if depth == 0 and recorder is not None and recorder.curves and takes_curves:
            kwargs.setdefault("curves", True)
        _DEPTH.depth = depth + 1
        try:
            result = fn(*args, **kwargs)
        finally:
            _DEPTH.depth = depth
        if depth == 0 and recorder is not None and isinstance(result, Report):
            recorder.add(result)
        return result

    _ORIGINALS[recording] = fn
    return recording


def patch() -> None:
    """Wrap the recorded functions of every loaded backcheck module, and their re-exports. Run before each test,
    it costs a look at ``len(sys.modules)`` when no module was loaded since."""
    fresh = False
    for modname, names in RECORDED.items():
        module = sys.modules.get(modname)
        for name in names if module is not None else ():
            fn = getattr(module, name, None)
            if (modname, name) in _WRAPPED or fn is None or fn in _ORIGINALS:
                continue
            _WRAPPED[modname, name] = (fn, _wrap(fn))
            fresh = True
    if not fresh and len(sys.modules) == _SCANNED[0]:
        return
    _SCANNED[0] = len(sys.modules)
    by_id = {id(fn): wrapper for fn, wrapper in _WRAPPED.values()}
    for modname, module in list(sys.modules.items()):
        if module is None or not (modname == "backcheck" or modname.startswith("backcheck.")):
            continue
        for attr, value in list(vars(module).items()):
            wrapper = by_id.get(id(value))
            if wrapper is not None:
                setattr(module, attr, wrapper)
                _REPLACED.append((module, attr, value))


def unpatch() -> None:
    """Put every recorded function back where a wrapper replaced it, and stop patching imports."""
    for module, attr, fn in reversed(_REPLACED):
        setattr(module, attr, fn)
    _REPLACED.clear()
    for _, wrapper in _WRAPPED.values():
        _ORIGINALS.pop(wrapper, None)
    _WRAPPED.clear()
    _SCANNED[0] = -1
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PatchOnImport)]


_RECORDER = pytest.StashKey[Recorder]()
_ITEM_REPORTS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backcheck", "gradient checks (backcheck)")
    group.addoption("--backcheck-report", metavar="PATH", default=None,
                    help="write every backcheck report of the session to PATH (HTML, or JSON for *.json)")
    group.addoption("--backcheck-curves", action="store_true", default=False,
                    help="with --backcheck-report, record error-versus-step curves for the HTML plots")


def pytest_configure(config: pytest.Config) -> None:
    """Start the session's recorder. Nothing is imported: backcheck's modules are patched as they load (a session
    that never checks a gradient pays for a finder that looks at four module names)."""
    config.addinivalue_line("markers", "backcheck: a test of gradients checked with backcheck")
    keep = bool(config.getoption("--backcheck-report", None))
    recorder = Recorder(keep=keep, curves=keep and bool(config.getoption("--backcheck-curves", False)))
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
    _SESSIONS.append(recorder)
    patch()
    config.stash[_RECORDER] = recorder


class _PatchOnImport:
    """A finder that patches a recorded frontend the moment it is first imported (``import backcheck.torch``
    inside a test body, whose checks the next test's re-patching came too late for); every other import is
    left to the finders after it."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in RECORDED:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _PatchingLoader(spec.loader)  # (a loader may serve many modules)
                return spec
        return None


class _PatchingLoader:
    """``inner``'s loading of one module, then the patch of it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        if _SESSIONS:
            patch()

    def __getattr__(self, name: str) -> Any:  # (resource readers, get_source: the inner loader's)
        return getattr(self.inner, name)


def _recorder(config: pytest.Config) -> Recorder | None:
    return config.stash.get(_RECORDER, None)


def pytest_collection_finish(session: pytest.Session) -> None:
    recorder = _recorder(session.config)
    if recorder is not None and recorder.keep:
        recorder.places = {item.nodeid: k for k, item in enumerate(session.items)}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    recorder = _recorder(item.config)
    if recorder is not None:
        patch()  # frontends imported since (backcheck.torch, backcheck.jax)
        recorder.item = item
    try:
        yield
    finally:
        if recorder is not None:
            recorder.item = None
        if _ITEM_REPORTS in item.stash:
            del item.stash[_ITEM_REPORTS]  # (the failure section is made: the test's reports go with it)


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
    if recorder is None or not recorder.keep:
        return
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller writes the file
        config.workeroutput[SENT] = recorder.parcel()  # type: ignore[attr-defined]
        return
    from backcheck.errors import BackcheckError

    try:
        recorder.written = recorder.write(str(config.getoption("--backcheck-report")))
    except BackcheckError as exc:  # said in the summary in one line, and the run fails: the report was asked for
        recorder.unwritten = exc
        if session.exitstatus == 0:
            session.exitstatus = 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller, as a worker finishes: take in the reports it sent."""
    recorder = _recorder(node.config)
    parcel = getattr(node, "workeroutput", {}).get(SENT)
    if recorder is not None and parcel:
        recorder.receive(parcel)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    recorder = _recorder(config)
    if recorder is not None and recorder.unwritten is not None:
        exc = recorder.unwritten
        terminalreporter.write_line(f"backcheck: the report could not be written: {exc.message} Hint: {exc.hint}")
        return
    if recorder is None or recorder.written is None:
        return
    failed = sum(not r.ok for r in recorder.reports)
    n = len(recorder.entries)
    terminalreporter.write_line(f"backcheck: {n} gradient check(s), {failed} not passing; report written to "
                                f"{recorder.written}")


def pytest_unconfigure(config: pytest.Config) -> None:
    recorder = _recorder(config)
    if recorder is not None:
        _SESSIONS[:] = [r for r in _SESSIONS if r is not recorder]
        if not _SESSIONS:
            unpatch()
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
