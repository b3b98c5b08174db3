"""A function whose value stands exactly still at every step the check takes: below its resolution (a float32 loss
that cancels to 0), inconclusive; flat for real (a ReLU of negative inputs), a rule claiming a change fails."""

import numpy as np
import pytest

import backcheck


def confident(seed, margin=25.0, rows=6, classes=7):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, classes))
    y = rng.integers(0, classes, size=rows)
    z[np.arange(rows), y] += margin
    return z, y


def ce_forward(z, y):
    """Cross-entropy computed as lse - z_y: in float32 it cancels to exactly 0 when every row is confident."""
    m = z.max(-1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(-1))
    return np.mean(lse - z[np.arange(len(y)), y])


def ce_backward(d, z, y):
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return d * p / len(y), None


@pytest.mark.parametrize("seed", range(3))
def test_a_float32_loss_that_cancels_to_zero_is_inconclusive_not_wrong(seed):
    z, y = confident(seed)
    z32 = z.astype(np.float32)
    assert ce_forward(z32, y) == 0.0  # the premise: f stands still wherever the check's steps move it
    layer = backcheck.check_layer(ce_forward, ce_backward, (z32, y))
    assert layer.status == "inconclusive", layer
    loss = backcheck.check(lambda z: ce_forward(z, y), z32, lambda z: ce_backward(np.float32(1), z, y)[0])
    assert loss.status == "inconclusive", loss


@pytest.mark.parametrize("seed", range(3))
def test_a_rule_claiming_a_visible_change_of_a_still_float32_loss_fails(seed):
    z, y = confident(seed)
    z32 = z.astype(np.float32)

    def wrong(d, z, y):
        g, _ = ce_backward(d, z, y)
        return g + np.float32(1e-2) * d, None  # a change of 1e-2 per unit: far above the loss's resolution

    assert backcheck.check_layer(ce_forward, wrong, (z32, y)).status == "fail"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_forgotten_mask_where_every_input_is_negative_fails(dtype):
    x = -np.abs(np.random.default_rng(0).normal(size=20)).astype(dtype) - 0.1

    def relu_sum(x):
        return float(np.sum(np.maximum(x, 0)))

    assert backcheck.check(relu_sum, x, lambda x: np.ones_like(x)).status == "fail"
    assert backcheck.check(relu_sum, x, lambda x: np.zeros_like(x)).status == "pass"


def test_torch_cross_entropy_of_a_confident_float32_batch_is_not_a_false_alarm():
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    z, y = confident(0)
    labels = torch.tensor(y)
    report = bt.check(lambda t: torch.nn.functional.cross_entropy(t, labels), torch.tensor(z, dtype=torch.float32))
    assert report.status == "inconclusive", report
