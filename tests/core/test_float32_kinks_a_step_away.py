"""A float32 function with kinks a fraction of a step from the point (a clip's bounds beside data near 1e3, whose
float32 steps are about 5): at 2**-10 of the step its differences drown in float32's rounding, so the finer
steps tried first are a few halvings below the step, where the kink is crossed no more. Right rules pass (they
failed, read across the kink); wrong ones still fail where they are wrong."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

OFF = np.float32(1000)
LO, HI = np.float32(1001), np.float32(1004)
W = np.random.default_rng(0).normal(size=6).astype(np.float32)


def f(x):
    x = np.asarray(x, np.float32)
    return np.float32(((x - OFF) ** 2).sum() / np.float32(10) + (W * np.clip(x, LO, HI)).sum())


def grad(x, wrong_at=None):
    x = np.asarray(x, np.float32)
    g = (2 * (x - OFF) / np.float32(10) + W * ((x > LO) & (x < HI))).astype(np.float32)
    if wrong_at is not None:
        g[wrong_at] += np.float32(0.1)  # (a tenth of the typical gradient)
    return g


# the data a half or a whole unit from the bounds (none on them: those are kinks at the point)
POINTS = {"halves": [0.5, 3.5, 2.5, 5.5, 1.5, 4.5], "wholes": [0.0, 2.0, 2.5, 5.0, 0.0, 3.0]}


@pytest.mark.parametrize("strategy", ["full", "auto"])
@pytest.mark.parametrize("point", list(POINTS))
def test_right_rules_beside_kinks_a_step_away_pass(point, strategy):
    x = (OFF + np.array(POINTS[point])).astype(np.float32)
    report = backcheck.check(f, x, grad, strategy=strategy)
    assert report.status == "pass", report


@pytest.mark.parametrize("at", [0, 2, 3])
@pytest.mark.parametrize("point", list(POINTS))
def test_wrong_rules_beside_kinks_a_step_away_fail_where_wrong(point, at):
    x = (OFF + np.array(POINTS[point])).astype(np.float32)
    report = backcheck.check(f, x, lambda x: grad(x, at), strategy="full")
    assert report.status == "fail", report
    assert [e.index for e in report.mismatches] == [(at,)], report
