"""benchmarks/offsets.py's sweep runs and counts every check once; a rule 5% off never passes there."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import offsets  # noqa: E402


def test_one_seed_of_the_sweep():
    tally = offsets.sweep(1)
    each = len(offsets.KERNELS) * len(offsets.SETTINGS)
    assert set(tally) == set(offsets.RULES) and all(sum(c.values()) == each for c in tally.values())
    assert tally["5% off"]["pass"] == 0 and tally["right"]["pass"] > 0, tally
