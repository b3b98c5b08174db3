"""The bug zoo benchmark's machinery on a few layers: structure of the results, backcheck's verdicts, and
proof that each peer wrapper really can fail a wrong backward (a broken wrapper would pass everything)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.bugzoo import peers, run  # noqa: E402
from benchmarks.bugzoo.cases import make_cases  # noqa: E402

for _peer in ("jax", "scipy", "torch"):  # the benchmark's peers (make test installs them; never skipped there)
    pytest.importorskip(_peer)

LAYERS = ["affine", "relu", "softmax_cross_entropy", "maxpool2d_ties"]
CHECKERS = ["backcheck", "torch_gradcheck", "torch_gradcheck_fast", "cs231n", "cs231n@1e-4"]
RESULT_KEYS = {"verdict", "seconds", "error", "detail", "metric", "warnings", "right"}


@pytest.fixture(scope="module")
def results():
    cases = make_cases(LAYERS, ["float64", "float32"], seeds=[0])
    return run.run_benchmark(cases, CHECKERS)


def by_id(results, case_id):
    return next(r for r in results["cases"] if r["id"] == case_id)


def test_results_have_the_documented_structure(results):
    assert results["schema"] == "backcheck.bugzoo" and results["schema_version"] == 1
    assert list(results["checkers"]) == CHECKERS
    cases = results["cases"]
    # 4 layers x 2 dtypes: 4 correct, 2 kink cases (relu, maxpool2d_ties), 2 + 3 + 4 + 2 = 11 bugs
    assert len(cases) == 2 * (4 + 2 + 11)
    assert {r["kind"] for r in cases} == {"correct", "kink", "bug"}
    for r in cases:
        assert r["expected"] == ("fail" if r["kind"] == "bug" else "pass")
        assert (r["bug"] is None) == (r["kind"] != "bug") == (r["severity"] is None) == (r["bug_size"] is None)
        assert set(r["results"]) == set(CHECKERS)
        for res in r["results"].values():
            assert RESULT_KEYS <= set(res)
            assert res["verdict"] in ("pass", "fail", "error") and res["seconds"] >= 0
            assert (res["error"] is not None) == (res["verdict"] == "error")
            assert res["right"] == (None if res["verdict"] == "error" else res["verdict"] == r["expected"])
    for dtype in ("float64", "float32"):
        for name in CHECKERS:
            s = results["summary"][dtype][name]
            rows = [r for r in cases if r["dtype"] == dtype]
            gross = [r["results"][name] for r in rows if r["severity"] == "gross"]
            assert s["gross"]["of"] + sum(x["verdict"] == "error" for x in gross) == len(gross)
            assert s["gross"]["count"] == sum(x["verdict"] == "fail" for x in gross)
            assert s["false_alarms_kinks"]["of"] <= 2 and s["cases"] == len(rows)
    assert set(results["targets"]) == {"float64", "float32"}
    json.dumps(results)  # serializable as written to results.json


def test_backcheck_is_right_on_every_case_of_the_subset(results):
    for dtype in ("float64", "float32"):
        s = results["summary"][dtype]["backcheck"]
        assert s["errors"] == 0
        assert s["gross"]["count"] == s["gross"]["of"] == 9
        assert s["subtle"]["count"] == s["subtle"]["of"] == 2
        assert s["false_alarms_ordinary"]["count"] == 0 and s["false_alarms_ordinary"]["of"] == 4
        assert s["false_alarms_kinks"]["count"] == 0 and s["false_alarms_kinks"]["of"] == 2
        assert results["targets"][dtype]["catches_every_bug"] and results["targets"][dtype]["zero_false_alarms"]
    assert results["backcheck_problems"] == []


def test_the_peer_wrappers_really_detect_a_gross_bug_and_pass_a_correct_layer(results):
    bug = by_id(results, "affine/bug:missing_transpose/float64")["results"]
    good = by_id(results, "affine/correct/float64")["results"]
    loss_bug = by_id(results, "softmax_cross_entropy/bug:forgot_minus_one/float64")["results"]
    loss_good = by_id(results, "softmax_cross_entropy/correct/float64")["results"]
    for name in CHECKERS:
        assert bug[name]["verdict"] == "fail", (name, bug[name])
        assert good[name]["verdict"] == "pass", (name, good[name])
        assert loss_bug[name]["verdict"] == "fail", (name, loss_bug[name])  # scalar output, integer labels
        assert loss_good[name]["verdict"] == "pass", (name, loss_good[name])
    for dtype in ("float64", "float32"):  # no wrapper crashes on these layers
        for name in CHECKERS:
            assert results["summary"][dtype][name]["errors"] == 0, (dtype, name)


def test_peers_show_their_known_weaknesses(results):
    # the naive checks cry wolf exactly at relu's kink; gradcheck misses a 1e-5 scale error in float64
    kink = by_id(results, "relu/correct@kink/float64")["results"]
    assert kink["cs231n"]["verdict"] == "fail" and kink["torch_gradcheck"]["verdict"] == "fail"
    scale = by_id(results, "affine/bug:scale_1e-5/float64")
    assert scale["bug_size"] == pytest.approx(1e-5, rel=1e-3)
    assert scale["results"]["torch_gradcheck"]["verdict"] == "pass"
    assert scale["results"]["cs231n"]["verdict"] == "fail" and scale["results"]["cs231n@1e-4"]["verdict"] == "pass"
    # gradcheck on float32 tensors with its float64 defaults fails even correct layers, and warns
    f32 = by_id(results, "affine/correct/float32")["results"]["torch_gradcheck"]
    assert f32["verdict"] == "fail" and any("double precision" in w for w in f32["warnings"])


def test_cs231n_helpers():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    df = np.array([[1.0, 2.0], [-1.0, 0.5]])
    num = peers.eval_numerical_gradient_array(lambda: x**3, x, df)
    assert np.allclose(num, 3 * x**2 * df, rtol=1e-8) and x[1, 1] == 3.0  # restored after moving it
    assert peers.max_relative_error(np.array([1.0, 0.0]), np.array([1.1, 0.0])) == pytest.approx(0.1 / 1.1)
    assert peers.max_relative_error(np.array([0.0]), np.array([1e-12])) == 1.0


def test_the_cli_writes_results_and_the_jax_and_scipy_wrappers_detect_a_gross_bug(tmp_path):
    # a subprocess: jax_enable_x64 must be switched on in the benchmark's process only, not in pytest's
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bugzoo" / "run.py"),
            "--layers",
            "affine",
            "--dtype",
            "float64",
            "--kinds",
            "correct",
            "bug",
            "--checkers",
            "jax_check_grads",
            "scipy_check_grad",
            "-q",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "scipy check_grad" in proc.stdout
    data = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "RESULTS.md").read_text().startswith("### ")
    rows = {r["id"]: r["results"] for r in data["cases"]}
    for name in ("jax_check_grads", "scipy_check_grad"):
        assert rows["affine/correct/float64"][name]["verdict"] == "pass", rows["affine/correct/float64"][name]
        assert rows["affine/bug:missing_transpose/float64"][name]["verdict"] == "fail"
        assert rows["affine/bug:bias_not_summed/float64"][name]["verdict"] == "fail"
