"""The backcheck command: case discovery, options, outputs and exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import backcheck
from backcheck.cases import CaseError, cast_floats, collect, matches, run_case
from backcheck.cli import main

CASES = '''
import numpy as np
import backcheck


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return (dout @ w.T).reshape(x.shape), x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    return dout * (cache > 0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_backward_buggy(dout, x):
    return dout * sigmoid(x)  # forgot (1 - s)


@backcheck.case(forward="affine_forward", backward="affine_backward", cache=True)
def affine():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 2, 2)), rng.normal(size=(4, 5)), rng.normal(size=5)


@backcheck.case(forward="relu_forward", backward="relu_backward", cache=True)
def relu():
    return {"x": np.linspace(-1.05, 1.0, 6).reshape(2, 3)}


@backcheck.case
def tanh_loss():
    W = np.random.default_rng(2).normal(size=(3, 3))
    return {"f": lambda W: np.sum(np.tanh(W) ** 2), "params": W,
            "grad": lambda W: 2 * np.tanh(W) * (1 - np.tanh(W) ** 2)}


@backcheck.case(name="own_report")
def returns_a_report():
    return backcheck.check(lambda x: np.sum(x ** 3), np.arange(1.0, 4.0), lambda x: 3 * x ** 2)
'''

BUGGY = '''
@backcheck.case
def sigmoid_layer():
    return {"forward": sigmoid, "backward": sigmoid_backward_buggy, "inputs": (np.linspace(-2, 2, 5),)}
'''

BROKEN = '''
def helper(d):
    return d["missing"]


@backcheck.case
def broken():
    return helper({})
'''


def write(tmp_path: Path, *parts: str, name: str = "layers.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent("\n".join(parts)))
    return path


def test_all_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, CASES)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    for name in ("affine", "relu", "tanh_loss", "own_report"):
        assert f"\n{name}\n" in out
    assert "affine_forward / affine_backward" in out
    assert "4 case(s): 4 passed, 0 failed, 0 error(s)" in out


def test_mismatch_exits_1_and_writes_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, CASES, BUGGY)
    (tmp_path / "out").mkdir()
    html, js = tmp_path / "out" / "r.html", tmp_path / "r.json"
    assert main(["check", str(path), "--html", str(html), "--json", str(js)]) == 1
    out = capsys.readouterr().out
    assert "worst elements" in out and "5 case(s): 4 passed, 1 failed, 0 error(s)" in out
    doc = json.loads(js.read_text())
    assert [r["label"] for r in doc["reports"]] == ["affine", "relu", "tanh_loss", "own_report", "sigmoid_layer"]
    assert doc["status"] == "fail"
    page = html.read_text()
    assert "sigmoid_layer" in page and "V curve of" in page  # --html records the error-versus-step curves


def test_select_with_k_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, CASES, BUGGY)
    assert main(["check", str(path), "-k", "aff", "-k", "relu", "-q"]) == 0
    out = capsys.readouterr().out
    assert "PASS  affine" in out and "PASS  relu" in out and "sigmoid" not in out
    assert main(["check", str(path), "-k", "sig*", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sigmoid_layer  (") and "layers.py:" in out
    assert main(["check", str(path), "-k", "nothing"]) == 2
    assert "no case matches -k nothing" in capsys.readouterr().err


def test_dtype_and_strategy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, CASES)
    js = tmp_path / "r.json"
    code = main(["check", str(path), "-k", "affine", "-k", "tanh", "--dtype", "float32", "--strategy", "sparse",
                 "--samples", "4", "--json", str(js)])
    assert code == 0, capsys.readouterr()
    doc = json.loads(js.read_text())
    assert {lf["dtype"] for r in doc["reports"] for lf in r["leaves"]} == {"float32"}
    assert {r["strategy"] for r in doc["reports"]} == {"sparse"}
    assert all(lf["n_checked"] <= 4 for r in doc["reports"] for lf in r["leaves"])


def test_error_in_user_code_exits_2_with_brief_traceback(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, CASES, BROKEN)
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert "4 passed, 0 failed, 1 error(s)" in captured.out
    err = captured.err
    assert "ERROR broken: KeyError" in err
    assert f'File "{path}", line' in err and "in helper" in err and "KeyError: 'missing'" in err
    assert "backcheck/cli.py" not in err and "backcheck/cases.py" not in err


def test_error_inside_a_checked_function(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '''
        import numpy as np
        import backcheck

        def forward(x):
            return np.sum(x ** 2) / undefined_name

        @backcheck.case
        def bad_forward():
            return {"f": forward, "params": np.ones(3), "grad": lambda x: 2 * x}
        ''')
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "NameError: name 'undefined_name' is not defined" in err
    assert "in forward" in err and "forward raised NameError" in err


def test_import_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "import numpy as np\n\nx = 1 / 0\n", name="bad_import.py")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "importing" in err and "ZeroDivisionError" in err and "line 3" in err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = write(tmp_path, "x = 1\n", name="empty.py")
    assert main(["check", str(empty)]) == 2
    assert "no @backcheck.case functions" in capsys.readouterr().err
    assert main(["check", str(empty), "--dtype", "float16"]) == 2
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    path = write(tmp_path, CASES, name="ok_cases.py")
    assert main(["check", str(path), "-k", "affine", "--strategy", "nonsense"]) == 2
    assert "strategy" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--samples", "-5"], ["--samples", "0"], ["--samples", "many"],
                                    ["--strategy", "nonsense"], ["--seed", "-1"]])
def test_bad_option_is_one_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       option: list[str]) -> None:
    """A bad option is refused once, before any case runs, not once per case."""
    path = write(tmp_path, CASES)
    assert main(["check", str(path), *option]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no case ran
    assert captured.err.count(f"argument {option[0]}") == 1, captured.err
    assert "ERROR" not in captured.err and captured.err.startswith("usage: backcheck check")


@pytest.mark.parametrize("flag", ["--html", "--json"])
def test_report_into_a_missing_folder_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       flag: str) -> None:
    path = write(tmp_path, CASES)
    missing = tmp_path / "no_such_folder"
    assert main(["check", str(path), flag, str(missing / "report.out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"the folder {missing} does not exist" in captured.err
    assert not missing.exists()  # not created behind the user's back
    assert main(["check", str(path), flag, str(tmp_path)]) == 2  # a folder, not a file name
    assert f"{tmp_path} is a folder" in capsys.readouterr().err


def test_syntax_error_shows_the_users_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "import numpy as np\n\n\ndef f(:\n    pass\n", name="syntax.py")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback (last frames of your code):" in err
    assert f'File "{path}", line 4' in err and "SyntaxError" in err and "def f(:" in err
    assert "importlib" not in err and "<frozen" not in err


def test_error_in_a_module_the_case_file_imports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    helper = write(tmp_path, "x = 1\ny = {}['nope']\n", name="helper_mod_raises.py")
    broken = write(tmp_path, "def g(:\n", name="helper_mod_syntax.py")
    for mod, where, what in ((helper, "line 2", "KeyError"), (broken, "line 1", "SyntaxError")):
        path = write(tmp_path, f"import numpy as np\nimport {mod.stem}\n", name=f"uses_{mod.stem}.py")
        assert main(["check", str(path)]) == 2
        err = capsys.readouterr().err
        assert f'File "{path}", line 2, in <module>' in err, err  # the case file's import line
        assert f'File "{mod}", {where}' in err and what in err, err  # and where the helper went wrong
        assert "importlib" not in err and "<frozen" not in err


def test_malformed_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '''
        import numpy as np
        import backcheck

        @backcheck.case
        def returns_number():
            return 3

        @backcheck.case
        def unknown_key():
            return {"f": np.sum, "params": np.ones(2), "grad": np.ones(2), "colour": "red"}

        @backcheck.case(forward="no_such_forward", backward="nope")
        def unknown_names():
            return (np.ones(2),)
        ''')
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "returned a int" in err and "unknown key(s) colour" in err and "'no_such_forward' is not a function" in err


def test_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path, CASES, name="a_cases.py")
    b = write(tmp_path, CASES, BUGGY, name="b_cases.py")
    assert main(["check", str(a), str(b), "-k", "b_cases.py::sig", "-q"]) == 1
    assert "FAIL  b_cases.py::sigmoid_layer" in capsys.readouterr().out


def test_demo_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    import backcheck.demo

    monkeypatch.setattr(backcheck.demo, "main", lambda: 7)
    assert main(["demo"]) == 7


def test_python_dash_m(tmp_path: Path) -> None:
    path = write(tmp_path, CASES)
    proc = subprocess.run([sys.executable, "-m", "backcheck", "check", str(path), "-k", "relu", "-q"],
                          capture_output=True, text=True, timeout=120, env={"NO_COLOR": "1", "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert "PASS  relu" in proc.stdout
    version = subprocess.run([sys.executable, "-m", "backcheck", "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"backcheck {backcheck.__version__}"


# -- the decorator and helpers, directly ----------------------------------------------------------------

def test_decorator_keeps_the_function() -> None:
    @backcheck.case(strategy="sparse", samples=3)
    def inputs() -> tuple:
        return (np.ones(2),)

    assert isinstance(inputs(), tuple)  # the decorated function is returned unchanged
    (c,) = collect({"inputs": inputs, "other": 3})
    assert c.name == "inputs" and c.options == {"strategy": "sparse", "samples": 3} and not c.is_pair
    with pytest.raises(CaseError, match="both forward= and backward="):
        backcheck.case(forward="f")
    with pytest.raises(CaseError, match="unknown option"):
        backcheck.case(tolerance=1)


def test_pair_with_function_objects_and_options() -> None:
    def fwd(x: np.ndarray) -> np.ndarray:
        return np.sin(x)

    def bwd(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        return dout * np.cos(x)

    @backcheck.case(forward=fwd, backward=bwd, seed=5)
    def sine() -> dict:
        return {"inputs": (np.linspace(0, 1, 4),), "dout": np.ones(4)}

    report = run_case(collect({"sine": sine})[0], dtype=np.float32)
    assert report.ok and report.leaves[0].dtype == "float32"


def test_helpers() -> None:
    tree = {"a": np.ones(2), "b": [np.zeros(1, dtype=np.float64), np.arange(3)], "c": 1.5}
    cast = cast_floats(tree, np.float32)
    assert cast["a"].dtype == np.float32 and cast["b"][0].dtype == np.float32
    assert cast["b"][1].dtype == np.arange(3).dtype and cast["c"] == 1.5
    assert matches("affine_layer", "AFF") and matches("affine", "aff*") and not matches("relu", "aff*")


def test_case_error_is_the_one_in_errors() -> None:
    import backcheck.errors

    assert CaseError is backcheck.errors.CaseError
    with pytest.raises(backcheck.errors.CaseError):
        backcheck.case(forward="f")


def test_case_files_in_two_folders_each_import_their_own_helpers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # both files' cases ran against the first folder's layers.py (cached in sys.modules): a buggy layer passed,
    # exit 0, and both rows read cases.py::affine
    rules = {"stuA": "dout.sum(0)", "stuB": "dout[0]"}  # stuB forgets to sum the bias gradient over the batch
    for who, db in rules.items():
        (tmp_path / who).mkdir()
        (tmp_path / who / "layers.py").write_text(
            "def affine_forward(x, w, b):\n    return x @ w + b\n\n\n"
            f"def affine_backward(dout, x, w, b):\n    return dout @ w.T, x.T @ dout, {db}\n"
        )
        (tmp_path / who / "cases.py").write_text(
            "import numpy as np\nimport backcheck\nfrom layers import affine_backward, affine_forward\n\n\n"
            "@backcheck.case(forward=affine_forward, backward=affine_backward)\ndef affine():\n"
            "    rng = np.random.default_rng(0)\n"
            "    return rng.normal(size=(5, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)\n"
        )
    assert main(["check", *(str(tmp_path / who / "cases.py") for who in rules), "-q"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"PASS\s+\S*stuA/cases\.py::affine", out), out
    assert re.search(r"FAIL\s+\S*stuB/cases\.py::affine", out), out


def test_json_on_standard_output_holds_nothing_the_cases_print(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # what a case file printed came before the JSON on standard output, which no longer parsed (exit 0)
    path = tmp_path / "printing.py"
    path.write_text(
        "import numpy as np\nimport backcheck\n\nprint('loading my layers')\n\n\n@backcheck.case\ndef tanh_ok():\n"
        "    print('building the case')\n    W = np.random.default_rng(0).normal(size=(3, 4))\n"
        "    return {'f': lambda W: np.sum(np.tanh(W)), 'params': W, 'grad': lambda W: 1 - np.tanh(W) ** 2}\n"
    )
    assert main(["check", str(path), "--json", "-", "-q"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["schema"] == "backcheck.reports"
    assert "loading my layers" in captured.err and "building the case" in captured.err


def test_the_summary_counts_inconclusive_cases_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an inconclusive case was counted 'failed' in the summary line (the HTML said inconclusive)
    path = tmp_path / "jump.py"
    path.write_text(
        "import numpy as np\nimport backcheck\n\n\n@backcheck.case\ndef sign_at_zero():\n"
        "    x = np.array([0.0, 1.0, -2.0])\n"
        "    return {'f': lambda x: float(np.sum(np.sign(x))), 'params': x, 'grad': lambda x: np.zeros_like(x)}\n"
    )
    code = main(["check", str(path), "-q"])
    out = capsys.readouterr().out
    assert "INCONCLUSIVE" in out, out
    assert code == 1 and "0 passed, 0 failed, 1 inconclusive, 0 error(s)" in out, out
