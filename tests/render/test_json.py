"""JSON output: strict JSON, valid against the documented schema docs/report-schema.json."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from backcheck.render.json import ENVELOPE_VERSION, to_document, to_json, write_json
from backcheck.report import SCHEMA_VERSION, Report

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report-schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_real_reports_validate(validator: jsonschema.Draft202012Validator, all_reports: list[Report]) -> None:
    doc = json.loads(to_json(all_reports, labels=[f"case {k}" for k in range(len(all_reports))]))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    assert doc["status"] == "fail"
    assert [r["label"] for r in doc["reports"]] == [f"case {k}" for k in range(len(all_reports))]
    assert any(r["curves"] for r in doc["reports"])
    assert any(r["findings"] for r in doc["reports"])
    assert any(lf["status"] == "skipped" for r in doc["reports"] for lf in r["leaves"])


def test_versions_match_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["properties"]["schema_version"]["const"] == ENVELOPE_VERSION
    assert schema["$defs"]["report"]["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_non_finite_numbers_become_null(validator: jsonschema.Draft202012Validator, failing: Report) -> None:
    leaf = replace(failing.leaves[0], max_rel_err=math.inf, rel_diff=math.nan)
    weird = replace(failing, leaves=[leaf, *failing.leaves[1:]])
    text = to_json(weird)
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["reports"][0]["leaves"][0]["max_rel_err"] is None
    validator.validate(doc)


def test_single_report_and_write(tmp_path: Path, passing32: Report) -> None:
    doc = to_document(passing32)
    assert doc["schema"] == "backcheck.reports" and doc["status"] == "pass" and len(doc["reports"]) == 1
    out = write_json([passing32], tmp_path / "a" / "r.json")
    assert json.loads(out.read_text())["reports"][0]["title"] == passing32.title
    assert to_document([])["status"] == "empty"


def test_a_finding_is_named_in_the_reason(validator: jsonschema.Draft202012Validator, mutating: Report,
                                          failing: Report) -> None:
    doc = to_document([mutating, failing])
    validator.validate(doc)
    assert [r["reason"] for r in doc["reports"]] == ["mutation: backward wrote into x", ""]
