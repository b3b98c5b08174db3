"""A pass whose elements were judged one by one in a sample only says so: "none of 256 sampled elements (of N)
wrong by more than ...", the share of wrong elements the sample would have met, and floor_kind 'sample' (it said
"no element wrong by more than", of the whole array, while one wrong element among the others went unseen)."""

from __future__ import annotations

import json

import numpy as np

import backcheck
from backcheck.render._data import floor_sentence


def _masked_softmax():
    rng = np.random.default_rng(1)
    z = rng.normal(size=100_000)
    z[::5] = -np.inf  # masks: directions through them are not defined, the array is judged in a sample
    w = rng.normal(size=z.size)

    def probs(z):
        e = np.exp(z - z[np.isfinite(z)].max())
        return e / e.sum()

    return (lambda z: float(np.sum(w * probs(z)))), (lambda z: probs(z) * (w - np.sum(w * probs(z)))), z


def test_a_sampled_pass_states_its_sample():
    f, g, x = _masked_softmax()
    report = backcheck.check(f, x, g)
    leaf = report.leaves[0]
    assert report.status == "pass" and leaf.floor_kind == "sample", report
    assert leaf.n_checked < leaf.n_elements
    sentence = floor_sentence(leaf)
    assert sentence.startswith(f"pass: none of {leaf.n_checked} sampled elements (of {leaf.n_elements})"), sentence
    assert "may go unseen" in sentence and "2.7%" in sentence  # 1 - 0.001 ** (1 / 256)
    assert json.loads(json.dumps(report.to_dict()))["leaves"][0]["floor_kind"] == "sample"


def test_a_full_check_keeps_its_element_floor():
    report = backcheck.check(lambda x: float(np.sum(np.sin(x))), np.linspace(-1, 1, 50), np.cos)
    assert report.leaves[0].floor_kind == "element"
    assert floor_sentence(report.leaves[0]).startswith("pass: no element wrong by more than")


def test_a_localized_failure_is_no_sample():
    # group testing found the one wrong element among 1e5: one element checked, but nothing was sampled
    x = np.random.default_rng(0).normal(size=100_000)

    def grad(x):
        d = np.cos(x)
        d[12345] *= 1.01
        return d

    report = backcheck.check(lambda x: float(np.sum(np.sin(x))), x, grad)
    assert report.status == "fail" and report.leaves[0].n_checked < report.leaves[0].n_elements, report
    assert report.leaves[0].floor_kind == "element", report.leaves[0].floor_kind


def test_a_share_of_the_array_is_written_without_an_exponent():
    # a sample of one element said "1e+02% of the array or more"
    from backcheck.render._data import _percent

    assert [_percent(s) for s in (1.0, 0.999, 0.5234, 0.0052, 1e-5)] == ["100%", "100%", "52%", "0.52%", "0.001%"]
