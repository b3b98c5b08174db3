"""docs/: every python block of the guide runs, and the figures exist and are small."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / "guide.md").read_text(encoding="utf-8"), re.S)


def test_guide_code_runs(capsys: pytest.CaptureFixture[str]) -> None:
    matplotlib.use("Agg")
    blocks = _blocks()
    assert len(blocks) >= 10
    namespace: dict = {"__name__": "guide"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/guide.md python block {k + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "h = 0.001: forward error 4.2e-04, central error 9.0e-08" in out


def test_guide_images_exist_and_are_small() -> None:
    text = (DOCS / "guide.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 3
    for rel in images:
        path = DOCS / rel
        assert path.exists(), f"{rel} is missing: run python docs/make_figures.py"
        assert path.stat().st_size < 80 * 1024
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
