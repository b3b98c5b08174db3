"""Outputs with masked entries (-inf, as masked_fill before a softmax leaves them): the entries are left out of
phi, their dout is 0 (a softmax after the mask gives them no gradient), and they must stay masked."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import NonFiniteError

RNG = np.random.default_rng(0)
X, W = RNG.normal(size=(3, 3)), RNG.normal(size=(3, 3))
MASK = np.tril(np.ones((3, 3), bool))


def scores(x, w):
    return np.where(MASK, x @ w, -np.inf)


def masked_backward(d, x, w):
    d = np.where(MASK, d, 0.0)
    return d @ w.T, x.T @ d


def plain_backward(d, x, w):  # right too: the masked entries' dout is 0
    return d @ w.T, x.T @ d


def transposed_backward(d, x, w):  # the bug: w instead of w.T
    d = np.where(MASK, d, 0.0)
    return d @ w, x.T @ d


@pytest.mark.parametrize("backward", [masked_backward, plain_backward])
def test_a_right_backward_of_masked_scores_passes_and_the_mask_is_named(backward):
    before = (X.copy(), W.copy())
    report = backcheck.check_layer(scores, backward, (X, W))
    assert report.status == "pass", report
    assert any("masked entries" in n and "out (3 of 9)" in n for n in report.notes), report.notes
    assert np.array_equal(X, before[0]) and np.array_equal(W, before[1])


def test_a_wrong_backward_of_masked_scores_fails():
    report = backcheck.check_layer(scores, transposed_backward, (X, W))
    assert report.status == "fail", report
    assert report.leaves[0].n_mismatch > 0


def test_a_given_dout_is_taken_with_its_masked_entries_set_to_zero():
    dout = RNG.normal(size=(3, 3))
    kept = dout.copy()
    report = backcheck.check_layer(scores, plain_backward, (X, W), dout)
    assert report.status == "pass", report
    assert np.array_equal(dout, kept)  # the user's array is not changed


def test_a_masked_softmax_passes():
    def attention(s):
        s = np.where(MASK, s, -np.inf)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def attention_backward(d, s):
        p = attention(s)
        return p * (d - (d * p).sum(axis=1, keepdims=True))

    assert backcheck.check_layer(attention, attention_backward, (X,)).status == "pass"


def test_nan_and_all_infinite_outputs_are_still_refused():
    with pytest.raises(NonFiniteError, match="NaN"):
        backcheck.check_layer(lambda x: np.where(MASK, x, np.nan), lambda d, x: d, (X,))
    with pytest.raises(NonFiniteError, match="all infinite"):
        backcheck.check_layer(lambda x: x * 0 - np.inf, lambda d, x: d * 0, (X,))


def test_torch_masked_fill_scores_and_their_softmax():
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    mask = torch.tril(torch.ones(4, 4, dtype=torch.bool))
    x = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert bt.check(lambda s: s.masked_fill(~mask, float("-inf")), x).status == "pass"
    assert bt.check(lambda s: torch.softmax(s.masked_fill(~mask, float("-inf")), -1), x).status == "pass"

    class Doubled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, s):
            return s.masked_fill(~mask, float("-inf"))

        @staticmethod
        def backward(ctx, g):
            return 2 * g.masked_fill(~mask, 0)

    assert bt.check(Doubled.apply, x).status == "fail"


def test_an_overflow_is_no_mask_and_is_refused_as_before():
    # exp(800) is inf: its entry's gradient is dout * inf, not 0 as a mask's; a typed error, never a verdict
    x = np.array([1.0, 2.0, 800.0, -1.0])
    with np.errstate(over="ignore"), pytest.raises(NonFiniteError, match="overflow"):
        backcheck.check_layer(np.exp, lambda d, x: d * np.exp(x), (x,))
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    with pytest.raises(NonFiniteError, match="overflow"):
        bt.check(torch.exp, torch.tensor(x))
    with pytest.raises(NonFiniteError, match="overflows to inf"):  # exp(100) is inf in float32 only
        bt.check(torch.exp, torch.tensor([1.0, 2.0, 100.0, -1.0], dtype=torch.float32))


def test_douts_at_masked_entries_are_set_to_zero_and_said_so():
    dout = np.zeros((3, 3))
    dout[~MASK] = 1.0  # nonzero only where the output is masked
    with pytest.raises(backcheck.errors.BadInputError, match="outside the output's masked"):
        backcheck.check_layer(scores, plain_backward, (X, W), dout)
    dout = RNG.normal(size=(3, 3))
    dout[~MASK] = np.nan  # whatever sits there is set to 0
    assert backcheck.check_layer(scores, plain_backward, (X, W), dout).status == "pass"


def test_torch_names_the_masked_entries_and_leaks_no_warning():
    torch = pytest.importorskip("torch")
    import warnings

    import backcheck.torch as bt

    mask = torch.tril(torch.ones(4, 5, dtype=torch.bool))
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), requires_grad=True)  # float32
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = bt.check(lambda s: s.masked_fill(~mask, float("-inf")), x)
    assert report.status == "pass", report
    assert any("masked entries" in n and "out (10 of 20)" in n for n in report.notes), report.notes
