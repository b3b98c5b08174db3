"""A leaf report's details (error maxima, relative difference, worst elements) are computed on first access:
the same values whichever is read first, carried by copies and pickles, and never overwriting an assignment."""

import copy
import math
import pickle

import numpy as np
import pytest

import backcheck
from backcheck.report import DETAILS


def _layer_report():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))

    def wrong(dout, x, w):
        dx, dw = dout @ w.T, x.T @ dout
        dw[1, 0] += 1e-3  # one wrong element
        return dx, dw

    return backcheck.check_layer(lambda x, w: x @ w, wrong, (x, w))


def _details(lf):
    return [
        lf.max_abs_err,
        lf.max_rel_err,
        lf.rel_diff,
        [e.to_dict() for e in lf.worst],
        [e.to_dict() for e in lf.kinks],
    ]


def test_details_are_the_same_whichever_is_read_first():
    first = _layer_report()
    assert first.status == "fail"
    expected = [_details(lf) for lf in first.leaves]
    for name in DETAILS:
        again = _layer_report()
        for lf in again.leaves:
            getattr(lf, name)  # read this one first
        assert [_details(lf) for lf in again.leaves] == expected
    w = first.leaf("w")
    assert w.worst[0].index == (1, 0) and w.worst[0].status == "mismatch"
    assert math.isclose(w.max_abs_err, 1e-3, rel_tol=1e-3)


def test_copies_and_pickles_carry_the_details():
    report = _layer_report()
    for lf in report.leaves:
        for clone in (copy.copy(lf), copy.deepcopy(lf), pickle.loads(pickle.dumps(lf))):
            assert clone.to_dict() == lf.to_dict()
            assert _details(clone) == _details(lf)
    assert pickle.loads(pickle.dumps(report)).to_dict() == report.to_dict()


def test_a_detail_assigned_before_it_is_computed_is_kept():
    lf = _layer_report().leaf("w")
    lf.worst = []
    assert lf.max_abs_err > 0  # computes the details
    assert lf.worst == []
    with pytest.raises(AttributeError, match="not_a_field"):
        _ = lf.not_a_field  # any other name stays an attribute error
