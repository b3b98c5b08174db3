"""How many random directions a passing check measured, read off its notes: the sequential test stops after one
or two directions well within their bounds, so a correct gradient's cost is ``1 + 2 k`` for the ``k`` said."""

from __future__ import annotations

import re

AGREE = re.compile(r"^(.+?): (\d+) random directions? agrees?")


def agreeing(report) -> dict[str, int]:
    """Per array, the directions its note says agree."""
    return {m.group(1): int(m.group(2)) for m in map(AGREE.match, report.notes) if m}


def directions(report) -> int:
    """The directions measured over every array."""
    return sum(agreeing(report).values())
