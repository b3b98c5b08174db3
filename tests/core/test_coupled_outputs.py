"""Outputs whose true change rounds away at the element's own step (a confident softmax's largest probability,
moved by the change of a tiny one) bound the element's difference by their rounding, where a wider move of the
element shows it moves them; an elementwise unit's other outputs never move, and its own moved clearly."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.zoo import FLOAT32_LAYERS
from backcheck.zoo.activations import _softmax_wrong_axis, softmax_backward, softmax_forward


def _confident(seed: int, margin: float) -> np.ndarray:
    """Logits of 4 rows of 5 classes, one per row ``margin`` above the others (probabilities of exp(-margin))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 5))
    x[np.arange(4), rng.integers(0, 5, 4)] += margin
    return x


@pytest.mark.parametrize("margin", [30.0, 40.0])
def test_a_correct_confident_softmax_backward_never_fails(margin: float) -> None:
    # (at margin 30 one point in four failed: the largest probability moved by its rounding only at the default
    # step, and an element's difference missed its change; at 40, the largest logit's own element, whose larger
    # move leaves the largest probability at 1)
    statuses = [
        backcheck.check_layer(softmax_forward, softmax_backward, (_confident(seed, margin),)).status
        for seed in range(16)
    ]
    assert "fail" not in statuses, statuses


def test_a_moderately_confident_softmax_still_passes_and_its_bug_fails() -> None:
    x = _confident(0, 10.0)
    assert backcheck.check_layer(softmax_forward, softmax_backward, (x,)).status == "pass"
    assert backcheck.check_layer(softmax_forward, _softmax_wrong_axis, (x,)).status == "fail"


def test_a_confident_softmax_bug_above_the_outputs_rounding_still_fails() -> None:
    # the wrong axis mixes rows: its errors are of the other rows' probabilities, beyond every output's rounding
    failed = [
        backcheck.check_layer(softmax_forward, _softmax_wrong_axis, (_confident(seed, 30.0),)).status == "fail"
        for seed in range(8)
    ]
    assert sum(failed) >= 6, failed


def test_a_correct_confident_softmax_in_torch_never_fails() -> None:
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")
    statuses = [
        bt.check(lambda x: torch.softmax(x, -1), torch.tensor(_confident(seed, 30.0), requires_grad=True)).status
        for seed in range(10)
    ]
    assert "fail" not in statuses, statuses


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_elementwise_float32_kernel_is_not_taken_for_coupled(seed: int) -> None:
    """A float32 GELU's outputs in its tail move with their own element only: its bugs keep failing wherever
    the wider moves of the coupling test reach (their errors are far above its outputs' rounding)."""
    layer = next(x for x in FLOAT32_LAYERS if x.name == "gelu_f32")
    inputs = layer.make_inputs(np.random.default_rng(seed), np.float32)
    assert backcheck.check_layer(layer.forward, layer.backward, tuple(inputs.values())).status != "fail"
    for bug in layer.bugs:
        if bug.size is not None and bug.size >= 1e-3:
            report = backcheck.check_layer(layer.forward, bug.backward, tuple(inputs.values()))
            assert report.status == "fail", (bug.name, str(report))
