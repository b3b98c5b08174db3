"""Inputs cast to a coarser dtype inside f (``x.astype(bfloat16)`` and back, ``x.bfloat16() @ w``, autocast): f is
a staircase along each element, 2**-8 of it wide in bfloat16, about as wide as a float32 element's step (in
float16, 2**-11: a tenth of it). The first differences fall on treads (a numeric derivative of 0) or across a
few stairs; a right rule is never failed for it (inconclusive, or passed where a wider step vouches), and a
wrong sign or a factor of 2 still fails."""

import numpy as np
import pytest

import backcheck as bc

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = ml_dtypes.bfloat16


def _cast(a, dtype):
    return a.astype(dtype).astype(np.float32)


def _family(name, seed, dtype=BF16):
    """``(x, f, grad)``: a float32 loss whose input is cast to ``dtype`` inside, and its right gradient."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(24).astype(np.float32)
    w = _cast(rng.standard_normal(24).astype(np.float32), dtype)
    m = _cast(rng.standard_normal((24, 5)).astype(np.float32), dtype)
    if name == "linear":
        return x, (lambda v: np.float32(np.sum(_cast(v, dtype) * w))), (lambda v: w)
    if name == "sin":
        return x, (lambda v: np.float32(np.sum(np.sin(_cast(v, dtype)) * w))), (lambda v: np.cos(_cast(v, dtype)) * w)
    if name == "matmul":
        z = lambda v: _cast(v, dtype) @ m  # noqa: E731
        return x, (lambda v: np.float32(np.sum(np.tanh(z(v))))), (lambda v: m @ (1 - np.tanh(z(v)) ** 2))
    # the output of tanh cast down: stairs in the value, not the input
    return x, (lambda v: np.float32(np.sum(_cast(np.tanh(v), dtype) * w))), (lambda v: (1 - np.tanh(v) ** 2) * w)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("family", ["linear", "sin", "matmul", "output"])
@pytest.mark.parametrize("dtype", [BF16, np.float16], ids=["bfloat16", "float16"])
def test_a_right_rule_through_a_cast_is_never_failed(dtype, family, seed):
    x, f, grad = _family(family, seed, dtype)
    kept = x.copy()
    report = bc.check(f, x, grad)
    assert report.status in ("pass", "inconclusive"), str(report)
    assert np.array_equal(x, kept)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("family", ["linear", "sin", "matmul"])
@pytest.mark.parametrize("dtype", [BF16, np.float16], ids=["bfloat16", "float16"])
def test_a_wrong_sign_through_a_cast_fails(dtype, family, seed):
    x, f, grad = _family(family, seed, dtype)
    report = bc.check(f, x, lambda v: -grad(v))
    assert report.status == "fail", str(report)
    assert report.leaves[0].n_mismatch > 0


@pytest.mark.parametrize("seed", range(8))
def test_a_doubled_rule_through_a_bfloat16_matmul_fails(seed):
    x, f, grad = _family("matmul", seed)
    assert bc.check(f, x, lambda v: 2 * grad(v)).status == "fail"


def test_a_wrong_rule_at_the_edge_of_a_dead_zone_still_fails():
    """Soft thresholding is flat on (-1, 1), not a staircase: an element just inside the zone, whose step crosses
    its edge on one side only, stands still at half the step, as on a tread; a wider step moves f on that side
    alone, and a straight-through rule (slope 1 in the zone) fails there."""
    h = float(np.cbrt(np.finfo(np.float32).eps))  # about a float32 element's step at a size of 1
    x = np.array([1 - 0.7 * h, -(1 - 0.7 * h), 2.5, -3.0], dtype=np.float32)

    def f(v):
        return np.float32(np.sum(np.sign(v) * np.maximum(np.abs(v) - 1, 0)))

    report = bc.check(f, x, lambda v: np.ones_like(v))
    assert report.status == "fail", str(report)
    assert report.leaves[0].n_mismatch >= 1


@pytest.mark.parametrize("seed", range(4))
def test_a_layer_rounding_its_inputs_to_bfloat16_is_no_step_function(seed):
    """check_layer differences float64 copies, at steps of 6e-6 of each element: none crosses a bfloat16 stair
    (2**-8 of it), so f stands still along every element, and moves where they all move by half their size. That
    is a rounding inside, not a straight-through rule of a step function: a finding says so, and no 'locally
    constant' finding fails the check (``round(x)``'s still does: tests/core/test_straight_through.py)."""
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((6, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)

    def forward(x, w, b):
        return _cast(x, BF16) @ _cast(w, BF16) + b

    def backward(dout, x, w, b):
        return dout @ _cast(w, BF16).T, _cast(x, BF16).T @ dout, dout.sum(0)

    report = bc.check_layer(forward, backward, (x, w, b))
    kinds = [f.kind for f in report.findings]
    assert "locally constant" not in kinds and "rounded inside" in kinds, str(report)
    assert report.status == "inconclusive", str(report)


def test_an_array_of_fewer_than_four_elements_rounded_inside_is_no_step_function():
    """The fine moves try every nonzero element of a smaller array: a gain of two cast to bfloat16 inside."""
    rng = np.random.default_rng(0)
    x, gain, b = rng.standard_normal((4, 2)), rng.standard_normal(2), rng.standard_normal(2)

    def forward(x, gain, b):
        return x * _cast(gain, BF16) + b

    def backward(dout, x, gain, b):
        return dout * _cast(gain, BF16), (dout * x).sum(0), dout.sum(0)

    report = bc.check_layer(forward, backward, (x, gain, b))
    rounded = [f for f in report.findings if f.kind == "rounded inside"]
    assert [f.elements for f in rounded] == [["gain"]], str(report)
    assert report.status == "inconclusive", str(report)
