"""Elements tied in value (a median or a sort of equal values): a correct backward routes the gradient to one of
the tied elements (a valid subgradient), which the one-sided slopes along one element cannot judge (the median of
three equal values does not move with one of them alone); moved with every element of their value, the gradients
must sum to the change, so a gradient routed to every tied element still fails."""

import numpy as np
import pytest

import backcheck

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")

# rows with a median tied 3 ways, tied 3 ways away from the median, and tied in pairs
X = np.array([[0.0, 1.0, 1.0, 1.0, 2.0], [3.0, 2.0, 2.0, 5.0, 2.0], [4.0, 1.0, 1.0, 0.0, 9.0]])


def median(x):
    return np.sort(x, -1)[:, x.shape[1] // 2]


def median_backward(dout, x, bug=None):
    k, rows = x.shape[1] // 2, np.arange(x.shape[0])
    if bug == "every_tie":  # the gradient to every element equal to the median
        return (x == np.sort(x, -1)[:, k : k + 1]) * dout[:, None]
    g = np.zeros_like(x)
    g[rows, np.argsort(x, -1, kind="stable")[:, k]] = dout
    return 2.0 * g if bug == "double" else g


def test_a_median_routed_to_one_of_three_tied_elements_passes():
    report = backcheck.check_layer(median, median_backward, X)
    assert report.status == "pass", report
    assert any("tie in value with other elements" in n for n in report.notes), report.notes


@pytest.mark.parametrize("bug", ["every_tie", "double"])
def test_a_wrong_median_backward_still_fails(bug):
    report = backcheck.check_layer(median, lambda d, x: median_backward(d, x, bug), X)
    assert report.status == "fail", report


def test_a_median_routed_to_every_tied_element_fails_at_the_tie():
    report = backcheck.check_layer(median, lambda d, x: median_backward(d, x, "every_tie"), X)
    wrong = {e.index for e in report.mismatches}
    assert wrong and wrong <= {(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 4)}, wrong


@pytest.mark.parametrize("seed", range(4))
def test_torch_sort_and_median_of_equal_values_pass(seed):
    x = torch.tensor([[1.0, 1.0, 1.0], [2.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    assert bt.check(lambda x: torch.sort(x, -1).values, x, seed=seed).status == "pass"
    y = torch.tensor([[0.0, 1.0, 1.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    assert bt.check(lambda y: torch.median(y, -1).values, y, seed=seed).status == "pass"


def test_a_smooth_wrong_gradient_at_tied_values_is_not_excused():
    x = np.array([[1.0, 1.0, 2.0], [2.0, 3.0, 3.0]])  # integer data: values tie everywhere
    report = backcheck.check_layer(lambda x: x**3, lambda d, x: d * 3 * x**2 * 1.01, x)
    assert report.status == "fail" and report.leaves[0].n_mismatch == x.size, report
