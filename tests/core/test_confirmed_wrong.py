"""An array with enough mismatches confirmed one by one fails: its other suspects are judged from their refined
differences alone (backcheck.judgement.CONFIRMED_WRONG), at a fraction of the evaluations, naming the same elements."""

import numpy as np
import pytest

import backcheck
import backcheck.judgement


def _softplus32(x: np.ndarray):
    x32 = x.astype(np.float32)
    return np.log1p(np.exp(x32)).astype(np.float32), x32


def _softplus_backward(off_on_negatives: float):
    def backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        s = 1.0 / (1.0 + np.exp(-x))
        return (dout * s * np.where(x < 0, 1.0 + off_on_negatives, 1.0)).astype(np.float32)

    return backward


def _check(off: float, seed: int = 3):
    x = np.random.default_rng(seed).standard_normal((8, 16)).astype(np.float32)
    return backcheck.check_layer(_softplus32, _softplus_backward(off), (x,), cache=True), x


def _unconfirmed(monkeypatch: pytest.MonkeyPatch, off: float):
    monkeypatch.setattr(backcheck.judgement, "CONFIRMED_WRONG", 10**9)
    try:
        return _check(off)[0]
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("off", [0.05, 0.01])
def test_a_wrong_float32_rule_names_the_same_elements_for_a_fraction_of_the_evaluations(monkeypatch, off):
    every = _unconfirmed(monkeypatch, off)
    report, x = _check(off)
    assert report.status == every.status == "fail"
    wrong = np.asarray(report.element_status) == "mismatch"
    named = np.asarray(every.element_status) == "mismatch"
    assert wrong.sum() >= named.sum() and (wrong & named).sum() >= 0.95 * named.sum()
    assert not (wrong & (x >= 0)).any(), "a right element (x >= 0) taken as wrong"
    assert report.n_evals * 2 < every.n_evals, (report.n_evals, every.n_evals)
    note = next(n for n in report.notes if "taken from their refined differences alone" in n)
    assert note.startswith("x: ") and "first 8" in note


def test_a_right_rule_never_meets_the_cap(monkeypatch):
    every = _unconfirmed(monkeypatch, 0.0)
    report, _ = _check(0.0)
    assert report.status == every.status == "pass"
    assert report.n_evals == every.n_evals
    assert not any("taken from their refined differences alone" in n for n in report.notes)


def test_a_gross_float64_error_is_named_alike_and_needs_no_note(monkeypatch):
    def forward(x):
        return np.tanh(x), x

    def backward(dout, x):
        return dout * (1 - np.tanh(x) ** 2) * 1.5

    x = np.random.default_rng(0).standard_normal((6, 6))
    monkeypatch.setattr(backcheck.judgement, "CONFIRMED_WRONG", 10**9)
    every = backcheck.check_layer(forward, backward, (x,), cache=True)
    monkeypatch.undo()
    report = backcheck.check_layer(forward, backward, (x,), cache=True)
    assert report.status == every.status == "fail"
    assert report.leaves[0].n_mismatch == every.leaves[0].n_mismatch == x.size
    assert report.n_evals <= every.n_evals
    assert not any("taken from their refined differences alone" in n for n in report.notes)


def test_mismatches_excused_after_judgement_send_the_array_back_to_be_judged_in_full(monkeypatch):
    # a mean of confident logits: judgement calls dozens of elements wrong by their differences' modelled rounding,
    # and the rounding of the backward pass measured afterwards excuses all but those taken plainly (they failed a
    # right gradient); with too few confirmed mismatches left standing, the array is judged again in full
    import torch

    import backcheck.torch as bt

    g = torch.Generator().manual_seed(0)
    y = (torch.rand(37, generator=g) > 0.5).double()
    z = (torch.randn(37, generator=g, dtype=torch.float64) + 24) * (2 * y - 1)

    def loss(z):
        return torch.nn.functional.binary_cross_entropy_with_logits(z, y)

    monkeypatch.setattr(backcheck.judgement, "CONFIRMED_WRONG", 10**9)
    every = bt.check(loss, z)
    monkeypatch.undo()
    report = bt.check(loss, z)
    assert report.status == every.status != "fail"
    assert report.leaf("z").n_mismatch == 0
    assert report.n_evals > every.n_evals  # (judged twice)
    assert not any("taken from their refined differences alone" in n for n in report.notes)
