"""`backcheck check`: a report that cannot be written, and a case file that calls sys.exit(), end in a message and
the usage/error exit status (2), never in a traceback or in a success that checked nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from backcheck.cli import EXIT_ERROR, main

OK_CASE = """
import numpy as np
import backcheck


@backcheck.case
def square():
    return dict(f=lambda x: np.sum(x ** 2), params=np.ones(3), grad=lambda x: 2 * x)
"""


def _write(tmp_path: Path, text: str, name: str = "cases.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("option", ["--html", "--json"])
def test_a_report_that_cannot_be_written_is_a_message_and_exit_2(tmp_path, capsys, option):
    path = _write(tmp_path, OK_CASE)
    target = tmp_path / "report.out"  # its folder exists, but it links into a folder that does not
    target.symlink_to(tmp_path / "missing" / "report.out")
    assert main(["check", str(path), option, str(target)]) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert "could not write the" in err and "Hint:" in err and "Traceback" not in err
    assert "1 case(s): 1 passed, 0 failed, 0 error(s)" in out and "report:" not in out


def test_a_report_name_too_long_to_look_at_is_a_usage_error(tmp_path, capsys):
    path = _write(tmp_path, OK_CASE)
    assert main(["check", str(path), "--html", str(tmp_path / ("x" * 300 + ".html"))]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "too long" in err and "Traceback" not in err


def test_a_case_file_that_exits_at_import_is_an_error_not_a_success(tmp_path, capsys):
    path = _write(tmp_path, "import sys\nsys.exit(0)\n")
    assert main(["check", str(path)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "sys.exit(0)" in err and "no case was checked" in err and "Hint:" in err


def test_a_case_that_calls_sys_exit_is_counted_as_an_error(tmp_path, capsys):
    path = _write(tmp_path, OK_CASE + "\n\n@backcheck.case\ndef quits():\n    raise SystemExit(0)\n")
    assert main(["check", str(path)]) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert "ERROR quits: SystemExit" in err
    assert "2 case(s): 1 passed, 0 failed, 1 error(s)" in out


def test_json_to_standard_output_is_the_json_alone(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, OK_CASE)
    assert main(["check", str(path), "--json", "-"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)  # standard output holds the JSON report and nothing else
    assert data["status"] == "pass" and data["reports"][0]["status"] == "pass"
    assert "1 case(s): 1 passed" in err and not (tmp_path / "-").exists()


@pytest.mark.parametrize("kind", ["folder", "device"])
def test_a_path_that_is_no_file_is_named_for_what_it_is(tmp_path, capsys, kind):
    target = str(tmp_path) if kind == "folder" else "/dev/null"
    assert main(["check", target]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert ("is a folder" if kind == "folder" else "is not a regular file") in err and "no such file" not in err


def test_html_to_standard_output_is_refused(tmp_path, capsys):
    path = _write(tmp_path, OK_CASE)
    assert main(["check", str(path), "--html", "-"]) == EXIT_ERROR
    assert "--json only" in capsys.readouterr().err
