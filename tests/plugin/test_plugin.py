"""The pytest plugin, run in inner pytest sessions (pytester): fixtures, failure messages, the report option (its
fixture `layers`, in conftest.py, writes the module the inner tests import)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import backcheck


def test_gradcheck_fixture_passes_and_fails_with_table(layers: pytest.Pytester) -> None:
    layers.makepyfile(test_fix='''
        from layers_mod import X, W, fwd, bwd, bad


        def test_ok(gradcheck):
            report = gradcheck.layer(fwd, bwd, (X, W))
            assert report.ok and gradcheck.last is report and gradcheck.reports == [report]


        def test_grad(gradcheck):
            import numpy as np
            assert gradcheck.grad(lambda x: np.sum(x ** 2), np.ones(3), lambda x: 2 * x).ok


        def test_bad(gradcheck):
            gradcheck.layer(fwd, bad, (X, W))


        def test_module_fixture(backcheck):
            backcheck.assert_layer(fwd, bad, (X, W))
        ''')
    result = layers.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*GradientMismatch: backcheck FAIL: fwd / bad*",
        "*w: worst elements (8 wrong of 8 checked)*",
        "*element*analytic*numeric*|diff|*bound*diff/bound*verdict*",
        "*w[[]*mismatch*",
    ])
    # the helper's own frames are hidden: the failure points at the test's line
    assert "def _done" not in result.stdout.str()


def test_report_option_collects_every_check(layers: pytest.Pytester) -> None:
    layers.makepyfile(test_rec='''
        import numpy as np
        import backcheck
        from layers_mod import X, W, fwd, bwd, bad, check_layer


        def test_fixture(gradcheck):
            gradcheck.layer(fwd, bwd, (X, W))


        def test_direct_calls():
            assert backcheck.check_layer(fwd, bwd, (X, W)).ok
            assert check_layer(fwd, bwd, (X, W)).ok
            backcheck.assert_grad(lambda x: np.sum(x ** 2), np.ones(3), lambda x: 2 * x)


        def test_failing():
            assert backcheck.check_layer(fwd, bad, (X, W)).ok
        ''')
    out = layers.path / "checks.html"
    result = layers.runpytest_inprocess("-p", "no:cacheprovider", f"--backcheck-report={out}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["backcheck: recording gradient checks to *checks.html",
                                 "backcheck: 5 gradient check(s), 1 not passing; report written to *checks.html"])
    # a plain `assert report.ok` failure shows the table in a backcheck section
    result.stdout.fnmatch_lines(["*- backcheck -*", "backcheck FAIL: fwd / bad*", "*worst elements*"])
    page = out.read_text()
    assert page.count('<section class="check') == 5
    assert "test_rec.py::test_fixture" in page and "test_rec.py::test_direct_calls [3]" in page
    assert "test_rec.py::test_failing" in page


def test_json_report_with_curves(layers: pytest.Pytester) -> None:
    layers.makepyfile(test_js='''
        import backcheck
        from layers_mod import X, W, fwd, bwd


        def test_one():
            assert backcheck.check_layer(fwd, bwd, (X, W)).ok
        ''')
    out = layers.path / "out" / "checks.json"
    result = layers.runpytest_inprocess("-p", "no:cacheprovider", f"--backcheck-report={out}",
                                        "--backcheck-curves")
    result.assert_outcomes(passed=1)
    doc = json.loads(out.read_text())
    (report,) = doc["reports"]
    assert report["label"] == "test_js.py::test_one" and report["status"] == "pass"
    assert len(report["curves"]) == 2  # one per tensor: x and w


def test_without_the_option_a_failure_still_shows_the_tables(layers: pytest.Pytester) -> None:
    # the docstring promised the section; it was recorded only with --backcheck-report
    layers.makepyfile(test_plain='''
        import backcheck
        from layers_mod import X, W, fwd, bwd, bad


        def test_failing():
            assert backcheck.check_layer(fwd, bwd, (X, W)).ok
            assert backcheck.check_layer(fwd, bad, (X, W)).ok


        def test_passing():
            assert backcheck.check_layer(fwd, bwd, (X, W)).ok
            assert False, "no check failed here"
        ''')
    before = set(layers.path.iterdir())
    result = layers.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*_ test_failing _*", "*- backcheck -*", "backcheck FAIL: fwd / bad*",
                                 "*w: worst elements (8 wrong of 8 checked)*", "*_ test_passing _*"])
    out = result.stdout.str()
    assert out.count("- backcheck -") == 1  # only the test whose check did not pass; its passing check not shown
    assert "backcheck PASS" not in out and "report written" not in out and "recording gradient checks" not in out
    assert {p.name for p in set(layers.path.iterdir()) - before} <= {"__pycache__"}  # no file without the option


def test_a_tests_reports_are_dropped_when_it_ends(layers: pytest.Pytester) -> None:
    """Without the option only the running test's reports that did not pass are kept, and only until it ends."""
    layers.makepyfile(test_mem='''
        import gc
        import weakref

        import backcheck
        from layers_mod import X, W, fwd, bad

        REFS = []


        def test_makes_a_failing_report_and_passes():
            REFS.append(weakref.ref(backcheck.check_layer(fwd, bad, (X, W))))
            assert REFS[0]() is not None


        def test_it_is_gone():
            gc.collect()
            assert REFS and REFS[0]() is None
        ''')
    layers.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_the_session_puts_the_functions_back(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wrapped='''
        import backcheck


        def test_wrapped_during_the_session():
            assert hasattr(backcheck.check, "__wrapped__") and backcheck.api.check is backcheck.check
        ''')
    script = pytester.makepyfile(run_session='''
        import pytest

        import backcheck

        before = (backcheck.check, backcheck.check_layer)
        assert pytest.main(["-q", "-p", "no:cacheprovider", "test_wrapped.py"]) == 0
        assert (backcheck.check, backcheck.check_layer) == before and backcheck.api.check is before[0]
        assert not hasattr(backcheck.check, "__wrapped__")
        print("restored")
        ''')
    result = pytester.runpython(script)
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["*1 passed*", "restored"])


def test_plugin_can_be_disabled(layers: pytest.Pytester) -> None:
    layers.makepyfile(test_off='''
        def test_needs_fixture(gradcheck):
            pass
        ''')
    result = layers.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:backcheck")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'gradcheck' not found*"])


FAILING_ASSERTS = '''
    import numpy as np
    import backcheck
    from backcheck import assert_layer
    from layers_mod import X, W, fwd, bad


    def test_assert_layer():
        backcheck.assert_layer(fwd, bad, (X, W))


    def test_imported_assert_layer():
        assert_layer(fwd, bad, (X, W), seed=1)


    def test_assert_grad():
        backcheck.assert_grad(lambda x: np.sum(x ** 2), np.ones(3), lambda x: 3 * x)


    def test_bad_option():
        backcheck.check_layer(fwd, bad, (X, W), strategy="nonsense")
    '''


@pytest.mark.parametrize("record", [False, True])
def test_a_failed_assert_shows_the_users_line_only(layers: pytest.Pytester, record: bool) -> None:
    """No frame of backcheck's own code, and so no repr of the arguments it was given (the arrays), with or
    without the recording wrappers of --backcheck-report."""
    layers.makepyfile(test_frames=FAILING_ASSERTS)
    extra = [f"--backcheck-report={layers.path / 'r.json'}"] if record else []
    result = layers.runpytest_inprocess("-p", "no:cacheprovider", *extra)
    result.assert_outcomes(failed=4)
    out = result.stdout.str()
    package = str(Path(backcheck.__file__).resolve().parent)
    assert package not in out and "backcheck/frontends" not in out and "backcheck/api.py" not in out
    assert "args = (" not in out and "kwargs = " not in out and "array([" not in out
    assert "def assert_layer" not in out and "raise GradientMismatch" not in out
    # each failure ends at the test's own line, with the table (or the typed error) under it
    result.stdout.fnmatch_lines([
        ">       backcheck.assert_layer(fwd, bad, (X, W))",
        "E       backcheck.errors.GradientMismatch: backcheck FAIL: fwd / bad*",
        "test_frames.py:8: GradientMismatch",
    ])
    result.stdout.fnmatch_lines([">       assert_layer(fwd, bad, (X, W), seed=1)", "E       *GradientMismatch*",
                                 "test_frames.py:12: GradientMismatch"])
    result.stdout.fnmatch_lines([">       backcheck.assert_grad(*", "E       *GradientMismatch*"])
    result.stdout.fnmatch_lines([">       backcheck.check_layer(fwd, bad, (X, W), strategy=\"nonsense\")",
                                 "E       backcheck.errors.BadInputError: *strategy*"])


def test_fulltrace_keeps_backcheck_frames(layers: pytest.Pytester) -> None:
    layers.makepyfile(test_frames=FAILING_ASSERTS)
    result = layers.runpytest_inprocess("-p", "no:cacheprovider", "--fulltrace", "-k", "test_assert_layer")
    result.assert_outcomes(failed=1)
    assert "raise GradientMismatch(report)" in result.stdout.str()


def test_an_unwritable_report_path_is_said_in_one_line_and_fails_the_run(layers: pytest.Pytester) -> None:
    layers.makepyfile(test_unw='''
        import numpy as np
        import backcheck


        def test_ok():
            assert backcheck.check(lambda a: float(np.sum(a ** 2)), np.ones(3), lambda a: 2 * a).ok
        ''')
    (layers.path / "blocker").write_text("a file, not a folder")
    out = layers.path / "blocker" / "r.html"
    result = layers.runpytest_inprocess("-p", "no:cacheprovider", f"--backcheck-report={out}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["backcheck: the report could not be written: *Hint: *"])
    assert result.ret == 1 and "Traceback" not in result.stdout.str()


def test_a_frontend_first_imported_inside_a_test_is_recorded(pytester: pytest.Pytester) -> None:
    # the frontends were patched at each test's start: a test that imported backcheck.torch first had its checks
    # missing from the report ('0 gradient check(s), 0 not passing') and no table beside its failure
    pytest.importorskip("torch")
    pytester.makepyfile(test_late='''
        def test_torch_first_here():
            import torch
            import backcheck.torch as bt

            class Sq(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x * x

                @staticmethod
                def backward(ctx, g):
                    (x,) = ctx.saved_tensors
                    return 3 * x * g  # (2 x)

            assert bt.check_function(Sq, torch.linspace(-1, 1, 4, dtype=torch.float64)).ok
        ''')
    out = pytester.path / "late.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--backcheck-report={out}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- backcheck -*", "backcheck FAIL: Sq*",
                                 "backcheck: 1 gradient check(s), 1 not passing; report written to *late.json"])
