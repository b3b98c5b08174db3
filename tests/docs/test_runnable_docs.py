"""README.md and docs/guide.md run: each file's python blocks, in order, as one script in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(markdown: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in order (```bash, ```text and bare fences are left out)."""
    return FENCE.findall(markdown)


def run_blocks(markdown: str, name: str, tmp_path: Path) -> str:
    """Run the python blocks of ``markdown`` one after the other as one script; return its standard output."""
    blocks = python_blocks(markdown)
    script = tmp_path / "blocks.py"
    script.write_text(
        "\n\n".join(f"# --- {name}, python block {k + 1}\n{block}" for k, block in enumerate(blocks)),
        encoding="utf-8",
    )
    env = dict(os.environ, MPLBACKEND="Agg", NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"the python blocks of {name} failed:\n{proc.stderr[-6000:]}"
    return proc.stdout


def test_python_blocks_are_the_python_fences_only() -> None:
    text = "```bash\nmake demo\n```\n```python\nx = 1\n```\nprose\n```text\nout\n```\n```python\nprint(x)\n```\n"
    assert python_blocks(text) == ["x = 1\n", "print(x)\n"]


def test_blocks_share_one_namespace_and_a_failing_block_fails(tmp_path: Path) -> None:
    assert run_blocks("```python\nx = 41\n```\n\n```python\nprint(x + 1)\n```\n", "ok.md", tmp_path) == "42\n"
    with pytest.raises(AssertionError, match="NameError: name 'MyFunction' is not defined"):
        run_blocks("```python\nprint(MyFunction)\n```\n", "sketch.md", tmp_path)


def test_readme_python_blocks_run_in_order(tmp_path: Path) -> None:
    pytest.importorskip("torch")  # the PyTorch and JAX section
    pytest.importorskip("jax")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(python_blocks(readme)) >= 2
    lines = run_blocks(readme, "README.md", tmp_path).splitlines()
    # Quickstart: the tanh loss passes; the affine layer's bias gradient (not summed over the batch) fails
    assert lines[0] == "True pass"
    table = lines[lines.index(next(line for line in lines if line.startswith("backcheck FAIL: affine_forward"))) :]
    verdicts = {row.split()[0]: row.split("float64")[1].split()[0] for row in table[2:5]}
    assert verdicts == {"x": "pass", "w": "pass", "b": "FAIL"}, "\n".join(table)
    # PyTorch and JAX: the custom Function, the module, blame (no failing submodule) and the custom_vjp rule
    assert lines[-4:] == ["True", "True", "None", "True"]


def test_guide_python_blocks_run_in_order(tmp_path: Path) -> None:
    guide = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
    assert len(python_blocks(guide)) >= 10
    out = run_blocks(guide, "docs/guide.md", tmp_path)
    assert "h = 0.001: forward error 4.2e-04, central error 9.0e-08" in out
    assert "classic relative error 5e-06\nfail W[3, 7]\n" in out  # one wrong element of 2500, named
    assert "\nfail\nfail\n" in out  # float32: 0.1% off fails, refined in float32 and when upcast
    assert "it is random" in out  # the unseeded dropout is refused with a NondeterministicError
    assert re.search(r"^fail \d+ \['W\[1, 23\]'\]$", out, re.M), out  # auto strategy: the one wrong element
