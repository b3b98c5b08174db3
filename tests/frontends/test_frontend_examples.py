"""The torch and jax examples run and print the reports they promise."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_custom_torch_function_example(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "custom_torch_function.py"), run_name="__main__")
    out = capsys.readouterr().out
    passed, failed, in_place = out.split("\n\n", 2)
    assert passed.startswith("backcheck PASS: FusedLinearTanh") and "jvp:w" in passed
    assert failed.startswith("backcheck FAIL: FusedLinearTanhBuggy")
    assert "w[0, 1]" in failed and "mismatch" in failed
    assert "x      (5, 4)  float32     pass" in failed
    assert in_place.startswith("backcheck FAIL") and "FusedLinearTanhInPlace" in in_place
    assert "backward changes saved state" in in_place
    assert re.search(r"\n  b +\(4,\) +float32 +pass", in_place)  # the gradient itself is right the first time


def test_jax_custom_vjp_example(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "jax_custom_vjp.py"), run_name="__main__")
    out = capsys.readouterr().out
    passed, failed = out.split("\n\n", 1)
    assert passed.startswith("backcheck PASS: logsumexp") and "float64" in passed
    assert failed.startswith("backcheck FAIL: logsumexp_buggy") and "x[0, 2]" in failed
    assert not jax.config.jax_enable_x64  # the example turned x64 on for its checks only


def test_jax_log_domain_example(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "jax_log_domain.py"), run_name="__main__")
    masked, near_pole, near_pole32, small_x = capsys.readouterr().out.split("\n\n")
    assert masked.startswith("backcheck PASS: masked_softmax")
    assert re.search(r"logits\s+\(3, 4\)\s+float32\s+pass\s+12/12", masked)
    assert re.search(r"mask\s+\(3, 4\)\s+float32\s+pass\s+9/12", masked)  # 3 of its entries are -inf
    assert "left out of the check and its counts: mask (3)" in masked
    # float64 differences by default (x64 for the numeric side only): their step stays inside the domain
    assert near_pole.startswith("backcheck PASS: log1mexp") and "x[0] (" not in near_pole
    assert "x64 mode was on for the finite differences" in near_pole
    # float32 differences: x[0]'s step is shrunk inside the domain, and the report names it
    assert near_pole32.startswith("backcheck PASS: log1mexp") and "x[0] (" in near_pole32
    assert "x[1] (" not in near_pole32
    assert small_x.startswith("backcheck FAIL: log1mexp_small_x")
    # g / x is right only as x -> 0: 5e-4 off at x = 1e-3, which the float32 refinement sees too
    assert "x[2]" in small_x and "x[1]" in small_x and "3 wrong of 3 checked" in small_x


@pytest.mark.parametrize(
    "module", ["backcheck.torch", "backcheck.jax", "backcheck.frontends.torch", "backcheck.frontends.jax"]
)
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
