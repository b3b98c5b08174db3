"""The guide's explore section (docs/guide.md, section 11) says what its code prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"


def test_the_guide_section_shows_the_shrunk_case_it_prints():
    section = GUIDE.read_text(encoding="utf-8").split("## 11. Searching the inputs")[1]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    shown = re.findall(r"^```text\n(.*?)^```", section, re.S | re.M)[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(blocks), str(GUIDE), "exec"), {"__name__": "guide"})
    printed = out.getvalue()
    assert printed.startswith("pass\nbackcheck explore FAIL: maxpool1d / maxpool1d_backward\n")
    for line in ("  dims N=1 L=1; hyper k=2 pad=1; x(1, 1)", "    x[0, 0]         0  0.518201   0.518",
                 "    forward = functools.partial(maxpool1d, k=2, pad=1)"):
        assert line in printed and line in shown
    assert printed.rstrip().endswith("{'k': 2, 'pad': 1}")
