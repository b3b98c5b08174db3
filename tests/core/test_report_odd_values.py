"""A report's numbers for elements with a NaN side, and check_layer's names= holding something no name."""

from __future__ import annotations

import json

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError
from backcheck.render.json import to_json


def test_an_element_with_a_nan_analytic_side_has_no_relative_error():
    x = np.random.default_rng(5).normal(size=(3, 4))
    r = backcheck.check(lambda x: np.sum(x**2), x, lambda x: np.where(x > 0, np.nan, 2 * x))
    assert r.status == "fail"
    e = r.mismatches[0]
    assert np.isnan(e.analytic) and np.isnan(e.rel_err), (e.analytic, e.rel_err)
    worst = json.loads(to_json(r))["reports"][0]["leaves"][0]["worst"]
    assert all(w["rel_err"] is None for w in worst if w["analytic"] is None), worst


@pytest.mark.parametrize("names", [[1, 2], ["x", None], [b"x", "w"], ["x", ""]])
def test_names_that_are_no_names_are_refused_by_name(names):
    with pytest.raises(BadInputError, match="which is no name"):
        backcheck.check_layer(lambda x, w: x * w, lambda d, x, w: (d * w, d * x), (np.ones(3), np.ones(3)), names=names)
