"""examples/cs231n_layers.py through the command line: every case passes but the planted bug."""

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cs231n_layers.py"


def test_the_cli_finds_the_planted_bug_and_nothing_else(tmp_path):
    out = tmp_path / "r.json"
    run = subprocess.run([sys.executable, "-m", "backcheck", "check", str(EXAMPLE), "-q", "--json", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL  batchnorm_with_the_classic_bug" in run.stdout
    assert "5 case(s): 4 passed, 1 failed" in run.stdout
    doc = json.loads(out.read_text())
    failing = [r for r in doc["reports"] if r["status"] == "fail"]
    assert len(failing) == 1
    assert [lf["status"] for lf in failing[0]["leaves"]] == ["fail", "pass", "pass"]  # dx wrong; dgamma, dbeta right
