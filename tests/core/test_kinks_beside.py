"""A kink a little off the point (closer than the step, but not at it) is no kink of the point: the derivative
there is the near piece's slope, and the far one, a valid subgradient at a kink, is wrong (refinement
.beside_the_point)."""

import numpy as np
import pytest

import backcheck

X = np.array([1e-9, 2e-9, -3e-9])
Y = X - np.array([1e-12, -2e-12, 1.5e-12])  # |x - y| bends 1e-12 from the point, far inside the step


def l1(x):
    return float(np.sum(np.abs(x - Y)))


def test_a_sign_flipped_l1_gradient_beside_its_kink_fails_and_the_right_one_passes():
    right = backcheck.check(l1, X.copy(), lambda x: np.sign(x - Y))
    assert right.status == "pass", right
    assert right.leaf("x").n_kinks == 0
    wrong = backcheck.check(l1, X.copy(), lambda x: -np.sign(x - Y))
    assert wrong.status == "fail", wrong
    assert sorted(e.name for e in wrong.leaf("x").worst if e.status == "mismatch") == ["x[0]", "x[1]", "x[2]"]


def _relu_layer():
    rng = np.random.default_rng(3)
    w, x, c = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=3)
    b = -w @ x + np.array([1e-11, 0.7, -0.4])  # unit 0 is alive by 1e-11: each input moves it past its kink

    def f(x):
        return float(np.sum(np.maximum(w @ x + b, 0) * c))

    return f, (lambda x, cut=0.0: w.T @ (c * (w @ x + b > cut))), x


@pytest.mark.parametrize("cut, status", [(0.0, "pass"), (1e-9, "fail")])
def test_a_relu_just_alive_is_judged_by_its_slope_not_as_a_kink(cut, status):
    f, grad, x = _relu_layer()
    r = backcheck.check(f, x, lambda x: grad(x, cut))
    assert r.status == status, r
    if status == "fail":  # every input feeds the unit the threshold masked out
        assert r.leaf("x").n_mismatch == 4


def test_a_kink_at_the_point_stays_a_kink_and_both_slopes_pass():
    x = np.array([0.0, 1.5, -2.0, 0.0])
    for at_zero in (0.0, 1.0):
        r = backcheck.check(
            lambda x: float(np.sum(np.maximum(x, 0))), x.copy(), lambda x, c=at_zero: np.where(x > 0, 1.0, c) * (x >= 0)
        )
        assert r.status == "pass", r
        assert r.leaf("x").n_kinks == 2


FINE = np.array([-1.91076866e-10, 1.47064166e-11, -9.06943251e-11, 1.77538939e-10, 8.86849076e-11, 9.49349483e-11])


def test_a_function_bending_on_a_scale_below_the_step_is_no_meeting_of_kinks():
    def f(x):
        return float(np.sum(np.sin(x / 1e-10)))  # oscillates 1e4 times within the default step

    def grad(x, flip=1):
        return np.cos(x / 1e-10) / 1e-10 * np.where(np.arange(x.size) == 1, flip, 1)

    assert backcheck.check(f, FINE.copy(), grad).status == "pass"
    wrong = backcheck.check(f, FINE.copy(), lambda x: grad(x, -1))
    assert [e.name for e in wrong.leaf("x").worst if e.status == "mismatch"] == ["x[1]"]
