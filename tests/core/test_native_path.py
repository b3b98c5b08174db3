"""A backward whose own-dtype path differs from its float64 run by more than rounding is judged at its own dtype:
the float64 run vouches for the formula, not for another computation."""

import numpy as np

import backcheck


def _tanh_backward(offset):
    def backward(d, x):
        g = d * (1 - np.tanh(x) ** 2)
        if g.dtype != np.float64:  # a fast narrow kernel with a bug of its own
            g = g + np.asarray(offset, dtype=g.dtype)
        return g

    return backward


def test_a_bug_only_in_the_float32_path_fails_in_check_layer_and_check():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    d = rng.normal(size=(3, 4)).astype(np.float32)
    assert backcheck.check_layer(np.tanh, _tanh_backward(0.0), (x,), dout=d).status == "pass"
    r = backcheck.check_layer(np.tanh, _tanh_backward(0.3), (x,), dout=d)
    assert r.status == "fail" and r.leaves[0].n_mismatch == x.size, r
    w = rng.normal(size=6).astype(np.float32)

    def grad(w, offset=0.3):
        return (1 - np.tanh(w) ** 2) + (np.float32(offset) if w.dtype == np.float32 else 0.0)

    assert backcheck.check(lambda w: np.sum(np.tanh(w)), w, grad).status == "fail"
    assert backcheck.check(lambda w: np.sum(np.tanh(w)), w, lambda w: grad(w, 0.0)).status == "pass"


def test_a_float16_path_bug_beyond_its_rounding_fails():
    # (a float16 gradient may differ from its float64 run by a few epsilons of unit-sized intermediates,
    # 16 x 2**-10: 0.3 is far beyond)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4)).astype(np.float16)
    d = rng.normal(size=(3, 4)).astype(np.float16)
    assert backcheck.check_layer(np.tanh, _tanh_backward(0.0), (x,), dout=d).status != "fail"
    assert backcheck.check_layer(np.tanh, _tanh_backward(0.3), (x,), dout=d).status == "fail"


def test_a_float16_point_of_small_integers_is_differenced_in_float64_too():
    # x * x at 1 and 2 is exact in float16, so f gives the same value to the bit from the float64 copies; one unit
    # up it rounds in float16: f computes the same function there, and a rule 10% off fails as at 1.3 and 2.7
    for values in ([1.0, 2.0], [1.3, 2.7]):
        x = np.array(values, dtype=np.float16)
        assert backcheck.check(lambda x: np.sum(x * x), x, lambda x: 2 * x).status == "pass"
        assert backcheck.check(lambda x: np.sum(x * x), x, lambda x: 2.2 * x).status == "fail"
