"""The set-up around the suite: `make demo` / `make test` and their stamps, .ci/run's exit status, and the
conftest rule that a test skipped for a missing dependency fails under `make test` (BACKCHECK_REQUIRE_ALL=1).

The Makefile is exercised for real, in a copy, with a stand-in for Python that records what it is asked to do
(create the venv, pip install, run the demo or pytest), so no package is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$* | THREADS=$OMP_NUM_THREADS,$OPENBLAS_NUM_THREADS | REQUIRE_ALL=${BACKCHECK_REQUIRE_ALL:-}" >> "$FAKE_LOG"
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
if [ "$1 $2" = "-m pip" ]; then exit "${FAKE_PIP_STATUS:-0}"; fi
if [ "$1 $2" = "-m pytest" ]; then exit "${FAKE_PYTEST_STATUS:-0}"; fi
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the Makefile, pyproject.toml and .ci/run, with a recording python and a chromium on PATH."""
    work = tmp_path / "project"
    (work / ".ci").mkdir(parents=True)
    for rel in ("Makefile", "pyproject.toml", ".ci/run"):
        shutil.copy2(ROOT / rel, work / rel)
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, text in (("python3", FAKE_PYTHON), ("chromium", "#!/bin/sh\nexit 0\n")):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    return work


def _env(project: Path, **extra: str) -> dict[str, str]:
    # set when the suite runs under make
    inherited = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "BACKCHECK_REQUIRE_ALL", "JOBS")
    inherited += ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in inherited}
    tools = project.parent / "tools"
    env.update(PATH=f"{tools}{os.pathsep}{env['PATH']}", PYTHON=str(tools / "python3"), FAKE_LOG=str(project / "log"))
    env.update(extra)
    return env


def _make(project: Path, target: str, **extra: str) -> tuple[list[str], str]:
    """Run ``make target``; return the commands the stand-in python received during it, and make's output."""
    log = project / "log"
    before = log.read_text().splitlines() if log.exists() else []
    proc = subprocess.run(["make", target], cwd=project, env=_env(project, **extra), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return log.read_text().splitlines()[len(before) :], proc.stdout


def _installs(calls: list[str]) -> list[str]:
    return [c.split(" -e ")[1].split(" |")[0] for c in calls if c.startswith("-m pip install")]


def test_make_demo_installs_only_the_demo_extra_and_says_so(project: Path) -> None:
    calls, out = _make(project, "demo")
    assert calls[0].startswith("-m venv .venv")
    assert _installs(calls) == [".[demo]"]
    assert calls[-1].startswith("-m backcheck demo")
    assert "installing backcheck and the demo extra (numpy, scikit-learn, rich)" in out
    again, _ = _make(project, "demo")
    assert _installs(again) == [] and again[-1].startswith("-m backcheck demo")  # installed once


def test_make_test_after_make_demo_installs_the_test_extra_and_requires_every_dependency(project: Path) -> None:
    _make(project, "demo")
    calls, _ = _make(project, "test")
    assert _installs(calls) == [".[demo,test]"]
    pytest_calls = [c for c in calls if c.startswith("-m pytest")]
    assert len(pytest_calls) == 1 and pytest_calls[0].endswith("REQUIRE_ALL=1")
    demo, _ = _make(project, "demo")
    assert _installs(demo) == []  # the test environment holds the demo's


def test_make_test_runs_one_single_threaded_worker_per_cpu_at_most_four(project: Path) -> None:
    calls, _ = _make(project, "test")
    (run,) = [c for c in calls if c.startswith("-m pytest")]
    assert f" -n {min(len(os.sched_getaffinity(0)), 4)} " in run, run  # (nproc: the CPUs this process may use)
    assert "THREADS=1,1 " in run, run
    calls, _ = _make(project, "test", JOBS="0")  # one process, as before workers
    (run,) = [c for c in calls if c.startswith("-m pytest")]
    assert " -n 0 " in run, run


def test_editing_pyproject_installs_again(project: Path) -> None:
    _make(project, "test")
    with open(project / "pyproject.toml", "a") as f:
        f.write("\n# an edit\n")
    demo, _ = _make(project, "demo")
    assert _installs(demo) == [".[demo]"]
    test, _ = _make(project, "test")
    assert _installs(test) == [".[demo,test]"]
    assert sorted(p.name for p in (project / ".venv").glob(".installed-*")) == sorted(
        f".installed-{kind}-{_checksum(project / 'pyproject.toml')}" for kind in ("demo", "test")
    )


def _checksum(path: Path) -> str:
    out = subprocess.run(["cksum"], stdin=path.open("rb"), capture_output=True, text=True, check=True).stdout
    return out.split()[0]


@pytest.mark.parametrize("status", [0, 1, 5])
def test_ci_run_exits_with_pytests_status(project: Path, status: int) -> None:
    proc = subprocess.run(
        [str(project / ".ci" / "run")], env=_env(project, FAKE_PYTEST_STATUS=str(status)), capture_output=True
    )
    assert proc.returncode == status
    assert any(c.startswith("-m pytest") for c in (project / "log").read_text().splitlines())


def test_ci_run_fails_when_the_install_fails(project: Path) -> None:
    proc = subprocess.run([str(project / ".ci" / "run")], env=_env(project, FAKE_PIP_STATUS="3"), capture_output=True)
    assert proc.returncode != 0
    assert not any(c.startswith("-m pytest") for c in (project / "log").read_text().splitlines())


# ------------------------------------------------------------------------------------------------------------
# BACKCHECK_REQUIRE_ALL: a skip for a missing module is an error under `make test`, and only then

MODULE_LEVEL = """
import pytest

pytest.importorskip("backcheck_no_such_module")


def test_never_collected():
    assert False
"""

TEST_LEVEL = """
import pytest


@pytest.fixture
def needs_it():
    return pytest.importorskip("backcheck_no_such_module_either")


def test_inside():
    pytest.importorskip("backcheck_no_such_module")


def test_through_a_fixture(needs_it):
    pass


def test_too_old():
    pytest.importorskip("pytest", minversion="999")


def test_skipped_for_another_reason():
    pytest.skip("not on this platform")


def test_passes():
    assert True
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    return pytester


def test_missing_modules_skip_without_the_variable(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKCHECK_REQUIRE_ALL", raising=False)
    inner.makepyfile(test_module_level=MODULE_LEVEL, test_test_level=TEST_LEVEL)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=5)


def test_a_module_skipping_itself_for_a_missing_module_fails_collection(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKCHECK_REQUIRE_ALL", "1")
    inner.makepyfile(test_module_level=MODULE_LEVEL)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*could not import 'backcheck_no_such_module'*", "*BACKCHECK_REQUIRE_ALL=1*"])


def test_tests_skipping_for_a_missing_module_fail_and_other_skips_stay(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKCHECK_REQUIRE_ALL", "1")
    inner.makepyfile(test_test_level=TEST_LEVEL)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1, failed=2, errors=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random(
        [
            "FAILED *test_inside*",
            "FAILED *test_too_old*",
            "ERROR *test_through_a_fixture*",
            "SKIPPED *not on this platform*",
        ]
    )


def test_the_variable_set_to_0_requires_nothing(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKCHECK_REQUIRE_ALL", "0")
    inner.makepyfile(test_test_level=TEST_LEVEL)
    inner.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1, skipped=4)


# ------------------------------------------------------------------------------------------------------------
# A bare install: the optional modules made unimportable in a fresh interpreter

OPTIONAL = "torch,jax,jaxlib,dask,distributed,matplotlib,scipy,sklearn,rich,hypothesis,jsonschema,playwright"

BARE = """
import sys

OPTIONAL = set(sys.argv[1].split(","))


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
import pytest

sys.exit(pytest.main(sys.argv[2:]))
"""


def _collect_bare(tmp_path: Path, target: str, require_all: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "bare.py"
    script.write_text(BARE)
    env = {k: v for k, v in os.environ.items() if k != "BACKCHECK_REQUIRE_ALL"}
    env["BACKCHECK_REQUIRE_ALL"] = require_all
    args = ["-p", "no:hypothesispytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-rs", target]
    return subprocess.run(
        [sys.executable, str(script), OPTIONAL, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_every_test_module_collects_or_skips_itself_without_the_optional_dependencies(tmp_path: Path) -> None:
    proc = _collect_bare(tmp_path, "tests", "0")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert any("tests/frontends/test_torch.py" in line for line in skipped)  # the blocking is real
    assert all("could not import" in line for line in skipped), "\n".join(skipped)
    assert " tests/core/test_check.py" not in "\n".join(skipped) and "tests/core/test_check.py::" in proc.stdout


def test_a_bare_install_under_make_test_is_an_error(tmp_path: Path) -> None:
    proc = _collect_bare(tmp_path, "tests/core", "1")
    assert proc.returncode == pytest.ExitCode.INTERRUPTED  # collection errors: make test stops
    assert "could not import 'hypothesis'" in proc.stdout and "BACKCHECK_REQUIRE_ALL=1" in proc.stdout
