"""Session-wide set-up: hypothesis profiles, pytester, jax's compilation cache, and the rule that `make test`
runs every test.

Tests of optional parts (torch, jax, dask, matplotlib, hypothesis, ...) import them with
``pytest.importorskip``, so ``pytest tests/core`` runs on a bare install (numpy and pytest). ``make test``
installs every optional dependency and sets ``BACKCHECK_REQUIRE_ALL=1``: then a test skipped because a module
could not be imported is an error, so a missing dependency can never pass silently as a skip.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

PREFIX = "backcheck-tests-jax-"


def _jax_compilation_cache() -> None:
    """One persistent XLA compilation cache per test process, removed when it exits: a check traces the
    function under test anew (its closures may have changed since the last check), and the programs it compiles
    are often the very ones an earlier test compiled (the same function at the same shapes, right and wrong
    rules). Looked up by the program itself, a repeated one loads instead of compiling (the 33 test files that
    use jax, on 2 workers: 179 s to 153 s). Set through the environment before any test imports jax (no test
    module imports it here). A process of its own keeps two workers from reading each other's half-written
    entries: a worker inherits the controller's environment, and its own cache replaces the one inherited. A
    cache the user set is kept."""
    if PREFIX not in os.environ.get("JAX_COMPILATION_CACHE_DIR", PREFIX):
        return
    path = tempfile.mkdtemp(prefix=PREFIX)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"


_jax_compilation_cache()

try:
    from hypothesis import HealthCheck, settings
except ModuleNotFoundError:  # a bare install: the tests that use hypothesis skip themselves (importorskip)
    pass
else:
    settings.register_profile(
        "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
    )
    settings.register_profile("dev", max_examples=50, deadline=None)
    settings.register_profile("thorough", max_examples=500, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# pytester drives the pytest plugin tests (tests/plugin); it must be declared in the top-level conftest
pytest_plugins = ["pytester"]

REQUIRE_ALL = "BACKCHECK_REQUIRE_ALL"
# the reasons pytest.importorskip gives: the module is missing, or older than its minversion
_MISSING_MARKERS = ("could not import ", ", required is: ")


def _require_all() -> bool:
    return os.environ.get(REQUIRE_ALL, "") not in ("", "0")


def _missing_dependency(reason: str) -> bool:
    return any(marker in reason for marker in _MISSING_MARKERS)


def _as_error(reason: str) -> str:
    return (
        f"{reason.strip()}\n{REQUIRE_ALL}=1 (set by `make test`): every optional dependency must be installed, "
        "so this skip is an error. Install the test environment: pip install -e '.[test]'"
    )


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module that skips itself at import (``pytest.importorskip`` at the top) fails to collect instead."""
    report = yield
    if _require_all() and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if _missing_dependency(reason):
            report.outcome = "failed"
            report.longrepr = _as_error(reason)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A test (or fixture) that skips itself for a module it cannot import fails instead."""
    report = yield
    excinfo = call.excinfo
    if _require_all() and report.skipped and excinfo is not None and excinfo.errisinstance(pytest.skip.Exception):
        reason = str(getattr(excinfo.value, "msg", excinfo.value))
        if _missing_dependency(reason):
            report.outcome = "failed"
            report.longrepr = _as_error(reason)
    return report
