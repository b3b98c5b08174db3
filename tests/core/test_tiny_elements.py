"""Tiny gradient elements are judged against what their own estimate can know, not their large neighbours."""

import numpy as np
import pytest

import backcheck


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(d, x):
    p = softmax(x)
    return p * (d - (p * d).sum(axis=-1, keepdims=True))


def wide_logits(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 8))
    x[:, :3] -= 18.0  # probabilities near 1e-8 beside ones near 1
    return x


@pytest.mark.parametrize("seed", range(4))
def test_a_wide_softmax_with_tiny_entries_10x_wrong_fails(seed):
    x = wide_logits(seed)
    assert backcheck.check_layer(softmax, softmax_backward, x, seed=seed).ok

    def tiny_wrong(d, x):
        g = softmax_backward(d, x)
        g[:, :3] *= 10.0  # wrong only where the gradient is about 1e-8 of the largest
        return g

    r = backcheck.check_layer(softmax, tiny_wrong, x, seed=seed)
    assert r.status == "fail", r
    assert {e.index[1] for e in r.leaves[0].worst if e.status == "mismatch"} <= {0, 1, 2}


def normalize(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def normalize_backward(d, x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    y = x / n
    return (d - y * (d * y).sum(axis=1, keepdims=True)) / n


def test_rows_of_tiny_norm_beside_ordinary_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5))
    x[0] *= 1e3  # this row's gradient is 1e3 smaller than the others'
    assert backcheck.check_layer(normalize, normalize_backward, x).ok

    def wrong_on_small(d, x):
        g = normalize_backward(d, x)
        g[0] *= 3.0
        return g

    r = backcheck.check_layer(normalize, wrong_on_small, x)
    assert r.status == "fail" and {e.index[0] for e in r.leaves[0].worst if e.status == "mismatch"} == {0}, r


def test_elements_far_below_their_tensors_scale_are_judged_by_their_own_estimate():
    """Fast and slow units in one tensor: the slow ones' gradients are 1e-12 of the fast ones'."""
    w = np.array([1e3, 1e3, 1e3, 1e3, 3e-9, 3e-9, 3e-9, 3e-9])
    x = np.linspace(0.2, 0.9, 8)

    def fwd(x):
        return np.sin(w * x)

    def bwd(d, x):
        return d * w * np.cos(w * x)

    assert backcheck.check_layer(fwd, bwd, x).ok

    def wrong_on_slow(d, x):
        g = bwd(d, x)
        g[4:] *= 10.0
        return g

    r = backcheck.check_layer(fwd, wrong_on_slow, x)
    assert r.status == "fail", r
    assert {e.index[0] for e in r.leaves[0].worst if e.status == "mismatch"} == {4, 5, 6, 7}


def softmax_rows(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_rows_backward(d, z):
    p = softmax_rows(z)
    return p * (d - np.sum(d * p, axis=-1, keepdims=True))


@pytest.mark.parametrize("seed", range(6))
def test_a_logit_far_below_its_row_is_judged_against_every_outputs_rounding(seed):
    # p = e^-25 of its row: moving its logit moves p itself, but the row's other probabilities change by p times
    # the step, far below their resolution, and round to nothing; the difference misses that coupling, which the
    # rounding of every output bounds (a larger step shows those outputs move), so a right rule is no mismatch
    z = np.random.default_rng(0).normal(size=(3, 5))
    z[:, 4] -= 25.0
    report = backcheck.check_layer(softmax_rows, softmax_rows_backward, (z,), seed=seed)
    assert report.ok, report

    def wrong(d, z):
        g = softmax_rows_backward(d, z)
        g[:, 1] *= 1.001
        return g

    assert backcheck.check_layer(softmax_rows, wrong, (z,), seed=seed).status == "fail"


# --- every element tiny: outputs whose true change rounds to nothing --------------------------------------------


def confident_logits(seed, margin=25.0, rows=6, classes=7):
    """One logit per row ``margin`` above the others: every probability but one near 1e-11, and every gradient
    element of <dout, softmax(z)> near 1e-11; moving a small logit changes the largest probability by 1e-17,
    below its rounding (1e-16), so that output stands still though it moves."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, classes))
    z[np.arange(rows), rng.integers(0, classes, size=rows)] += margin
    return z


@pytest.mark.parametrize("seed", range(3))
def test_a_confident_softmax_is_not_a_false_alarm_and_a_wrong_one_still_fails(seed):
    z = confident_logits(seed)
    right = backcheck.check_layer(softmax, softmax_backward, (z,), seed=seed)
    assert right.status in ("pass", "inconclusive"), right
    wrong = backcheck.check_layer(softmax, lambda d, z: 1.5 * softmax_backward(d, z), (z,), seed=seed)
    assert wrong.status == "fail", wrong


@pytest.mark.parametrize("seed", range(3))
def test_confident_rows_beside_ordinary_ones_pass(seed):
    z = np.concatenate([confident_logits(seed), np.random.default_rng(seed + 10).normal(size=(6, 7))])
    assert backcheck.check_layer(softmax, softmax_backward, (z,), seed=seed).status == "pass"
    assert backcheck.check_layer(softmax, lambda d, z: 1.01 * softmax_backward(d, z), (z,), seed=seed).status == "fail"


def test_torch_softmax_of_confident_logits_is_not_a_false_alarm():
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    z = torch.tensor(confident_logits(0), requires_grad=True)
    report = bt.check(lambda t: torch.softmax(t, -1), z)
    assert report.status in ("pass", "inconclusive") and not report.findings, report
    assert not any(e.status == "mismatch" for lf in report.leaves for e in lf.worst), report
