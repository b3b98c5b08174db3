"""Reports as JSON, in a documented and versioned layout (``docs/report-schema.json``).

The document is an envelope around :meth:`Report.to_dict` of each report::

    {"schema": "backcheck.reports", "schema_version": 1, "backcheck_version": "0.1.0",
     "status": "fail", "reports": [{"schema": "backcheck.report", "schema_version": 1, ...}, ...]}

Non-finite numbers are written as ``null``, so the output is strict JSON (RFC 8259) that every parser reads.

Examples
--------
>>> import json, numpy as np, backcheck
>>> from backcheck.render.json import to_json
>>> doc = json.loads(to_json(backcheck.check(lambda x: np.sum(x ** 2), np.ones(2), lambda x: 2 * x)))
>>> doc["status"], doc["reports"][0]["leaves"][0]["status"]
('pass', 'pass')
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck._version import __version__ as version
from backcheck.render._data import as_list, label_list, overall_status, quiet, reason, write_text

if TYPE_CHECKING:
    from backcheck.report import Report

#: Name and version of the envelope; the version changes when a field changes meaning or is removed.
ENVELOPE = "backcheck.reports"
ENVELOPE_VERSION = 1


def _clean(obj: Any) -> Any:
    """Replace non-finite floats by None and numpy scalars by Python ones, recursively."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return str(obj)


@quiet
def to_document(reports: Report | Sequence[Report], labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON document as a Python dict (see the module docstring)."""
    items = as_list(reports)
    dicts = [r.to_dict() for r in items]
    for d, r in zip(dicts, items, strict=True):
        d["reason"] = reason(r)
    if labels is not None:
        names = label_list(labels, items, ())
        for d, name in zip(dicts, names, strict=True):
            d["label"] = name
    return _clean({
        "schema": ENVELOPE, "schema_version": ENVELOPE_VERSION, "backcheck_version": version,
        "status": overall_status(items), "reports": dicts,
    })


def to_json(reports: Report | Sequence[Report], *, labels: Sequence[str] | None = None,
            indent: int | None = 2) -> str:
    """Serialize one report or several as a JSON text (strict JSON: no NaN or Infinity)."""
    return json.dumps(to_document(reports, labels), indent=indent, allow_nan=False)


def write_json(reports: Report | Sequence[Report], path: str | os.PathLike[str], *,
               labels: Sequence[str] | None = None) -> Path:
    """Write :func:`to_json` to ``path`` (UTF-8); return the path."""
    return write_text(path, to_json(reports, labels=labels) + "\n", "JSON report")
