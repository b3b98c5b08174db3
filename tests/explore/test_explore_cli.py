"""``backcheck explore``: files of targets, a zoo layer, exit status, written tests."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator

import pytest

from backcheck.cli import main

pytest.importorskip("hypothesis")

TARGETS = textwrap.dedent(
    """
    import numpy as np
    import backcheck
    from backcheck.explore import Array


    def scale(x):
        return 3.0 * x


    def scale_backward(dout, x):
        return 3.0 * dout


    def scale_backward_batch_bug(dout, x):
        return 3.0 * dout[:1] * np.ones_like(x)  # right for one row only


    good = backcheck.explore.target(scale, scale_backward, inputs={"x": Array("N", "D")}, max_points=5)
    bad = backcheck.explore.target(scale, scale_backward_batch_bug, inputs={"x": Array("N", "D")}, max_points=30)
    """
)


@pytest.fixture(autouse=True)
def _restore_import_state() -> Iterator[None]:
    """The command imports the target file and puts its folder on sys.path: undo it after each test."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if not name.startswith(("backcheck", "numpy", "rich", "hypothesis")):
            del sys.modules[name]


@pytest.fixture
def targets(tmp_path):
    path = tmp_path / "layers_explore.py"
    path.write_text(TARGETS)
    return path


def test_a_passing_target_exits_0(targets, capsys):
    assert main(["explore", str(targets), "-k", "good"]) == 0
    assert "backcheck explore PASS: good" in capsys.readouterr().out


def test_a_failing_target_exits_1_and_writes_the_test(targets, tmp_path, capsys):
    written = tmp_path / "test_found.py"
    assert main(["explore", str(targets), "--test", str(written), "--seed", "1"]) == 1
    out = capsys.readouterr().out
    assert "backcheck explore FAIL: bad" in out and "N=2" in out
    source = written.read_text()
    assert "scale_backward_batch_bug" in source and "def test_bad_explored" in source
    namespace: dict = {}
    sys.path.insert(0, str(targets.parent))
    exec(compile(source, str(written), "exec"), namespace)
    with pytest.raises(AssertionError):
        namespace["test_bad_explored"]()


def test_list_and_quiet(targets, capsys):
    assert main(["explore", str(targets), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["good", "bad"]
    assert main(["explore", str(targets), "-q", "-k", "good", "--max-points", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 points" in out and "A test" not in out


def test_a_zoo_layer_and_its_bug(capsys):
    assert main(["explore", "--zoo", "rnn_seq", "--max-points", "4", "-q"]) == 0
    assert main(["explore", "--zoo", "rnn_seq", "--bug", "gradient_not_carried", "--max-points", "30"]) == 1
    out = capsys.readouterr().out
    assert "rnn_seq / gradient_not_carried" in out and "T=2" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explore"], "give FILE.py arguments or --zoo NAME"),
        (["explore", "--zoo", "no_such_layer"], "no zoo layer named"),
        (["explore", "--zoo", "rnn_seq", "--bug", "nope"], "has no bug 'nope'"),
        (["explore", "missing_file.py"], "no such file"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_file_without_targets_exits_2(tmp_path, capsys):
    path = tmp_path / "empty_explore.py"
    path.write_text("x = 1\n")
    assert main(["explore", str(path)]) == 2
    assert "no targets" in capsys.readouterr().err
