"""The bug zoo on the hard classes (float32-only kernels, ties, tiny elements, masks, generator arguments, jumps,
whole models) and the smallest-single-element-error study: case construction, counting, the peers' wrappers on
a Generator argument and a whole model, and the CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.bugzoo import classes, floors, run  # noqa: E402
from benchmarks.bugzoo.cases import all_names, group_of, make_cases  # noqa: E402

for _peer in ("jax", "scipy", "torch"):  # the benchmark's peers (make test installs them; never skipped there)
    pytest.importorskip(_peer)

LAYERS = ["gelu_f32", "maxpool_tie3", "sign", "dropout_rng", "patch_convnet_tie2"]
CHECKERS = ["backcheck", "torch_gradcheck", "cs231n"]


@pytest.fixture(scope="module")
def results():
    return run.run_benchmark(make_cases(LAYERS, ["float64", "float32"]), CHECKERS)


def test_every_class_has_cases_and_its_group():
    names = all_names()
    assert {group_of(n) for n in names} == {"zoo", *classes.CLASS_GROUPS}
    assert all_names(classes=False) == [n for n in names if group_of(n) == "zoo"]
    cases = make_cases(["sign", "patch_convnet_tie4", "dropout_rng"], ["float32"])
    kinds = {(c.layer.name, c.kind) for c in cases}
    assert ("sign", "jump") in kinds and ("sign", "correct") in kinds and ("sign", "bug") in kinds
    model_cases = [c for c in cases if c.model is not None]
    assert model_cases and all(c.group == "models" and c.layer.loss for c in model_cases)
    assert {c.id for c in model_cases} == {"patch_convnet_tie4/correct/float32",
                                           "patch_convnet_tie4/bug:ties_to_every_element/float32"}
    dropout = next(c for c in cases if c.layer.name == "dropout_rng" and c.kind == "correct")
    a, b = dropout.fresh(), dropout.fresh()
    assert a["x"] is not b["x"] and a["seed"] == b["seed"]  # private copies of the same point
    assert dropout.float_names == ["x"]


def test_the_size_buckets_of_float32_bugs():
    assert [classes.size_bucket(s) for s in (2.3e-2, 6.5e-4, 1.4e-3, 1.1e-4, None)] == [
        "1e-2", "1e-3", "1e-3", "1e-4", "1e-2"]


def test_class_counts_add_up(results):
    for dtype in ("float64", "float32"):
        for name in CHECKERS:
            cells = results["classes"][dtype][name]
            assert cells["float32 1e-2"]["of"] + cells["float32 1e-3"]["of"] + cells["float32 1e-4"]["of"] == 3
            assert cells["ties"]["of"] == 1 and cells["generator"]["of"] <= 3 and cells["passes at jumps"]["of"] <= 1
            assert cells["models' bugs"]["of"] <= 1
    assert results["summary"] == {}  # no case of the zoo's LAYERS: the main table is empty, the classes are not


def test_backcheck_is_right_on_the_subset_and_inconclusive_at_the_jump(results):
    for r in results["cases"]:
        res = r["results"]["backcheck"]
        if r["kind"] == "jump":
            assert res["status"] == "inconclusive" and res["right"] is True, res
        elif not (r["group"] == "float32" and r["recorded_size"] is not None and r["recorded_size"] < 5e-4):
            assert res["right"] is True, (r["id"], res.get("report"))
    for dtype in ("float64", "float32"):
        cells = results["classes"][dtype]["backcheck"]
        assert cells["passes at jumps"]["count"] == 0 and cells["models' false alarms"]["count"] == 0
        assert cells["ties"]["count"] == 1 and cells["models' bugs"]["count"] == 1


def test_the_peer_wrappers_run_a_generator_argument_and_a_whole_model(results):
    for r in results["cases"]:
        if r["layer"] in ("dropout_rng", "patch_convnet_tie2"):
            for name in ("torch_gradcheck", "cs231n"):
                assert r["results"][name]["verdict"] != "error", (r["id"], name, r["results"][name])
    bug = next(r for r in results["cases"] if r["id"] == "patch_convnet_tie2/bug:ties_to_every_element/float64")
    assert all(bug["results"][n]["verdict"] == "fail" for n in CHECKERS)


def test_markdown_has_the_classes_table(results):
    text = "\n".join(classes.markdown_lines(results))
    assert "**Hard classes**" in text and "| backcheck.check_layer |" in text and "passes at jumps" in text


def test_floor_of_takes_the_smallest_error_caught_with_every_larger_one():
    assert floors.floor_of({1: "fail", 2: "fail", 3: "pass", 4: "fail"}) == pytest.approx(1e-2)
    assert floors.floor_of({1: "pass", 2: "fail"}) is None
    wrong = floors.one_element_wrong(lambda d, x: (d * 2 * x,), 3)
    g = wrong(np.ones(5), np.ones(5))[0]
    np.testing.assert_allclose(g, [2, 2, 2 * (1 + 1e-3), 2, 2], rtol=1e-15)


def test_the_floor_study_orders_the_checkers():
    out = floors.run_floors(["tanh"], ["cs231n", "backcheck", "backcheck_sharp"])
    got = {name: entry["worst"] for name, entry in out["checkers"].items()}
    assert all(entry["layers"]["tanh"]["correct"] == "pass" for entry in out["checkers"].values())
    assert got["backcheck_sharp"] <= 1e-9 and got["backcheck"] <= 1e-4 and got["cs231n"] <= 1e-4
    assert got["backcheck_sharp"] < got["backcheck"]
    assert "| backcheck (floor=1e-9) |" in "\n".join(floors.markdown_lines(out))


def test_the_cli_reports_the_classes_and_the_floors():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bugzoo" / "run.py"), "--layers", "sign", "affine_f32",
         "--dtype", "float64", "--checkers", "backcheck", "cs231n", "--no-write", "-q"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "hard classes, float64" in proc.stdout and "Smallest single-element error caught" in proc.stdout
