"""explore on backcheck.zoo, from each layer's input space alone (backcheck.zoo.spaces): every wrong backward
is found, including the edge layers' (wrong only at pad=0, with padding, at three tied maxima, for T > 1),
and no correct backward raises an alarm. Budgets are in points, so every run here is reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.errors import BackcheckError
from backcheck.zoo import EDGE_LAYERS, LAYERS
from backcheck.zoo.spaces import SPACES, explore_layer

pytest.importorskip("hypothesis")

#: Points for a correct layer of LAYERS, for an edge layer, and the most a bug may need to be found.
CORRECT_POINTS, EDGE_POINTS, BUG_POINTS = 10, 20, 40

ALL = [*LAYERS, *EDGE_LAYERS]
BUGS = [pytest.param(layer.name, bug.name, id=f"{layer.name}-{bug.name}") for layer in ALL for bug in layer.bugs]


def test_every_zoo_layer_has_an_input_space():
    assert sorted(SPACES) == sorted(layer.name for layer in ALL)


@pytest.mark.parametrize("name", [layer.name for layer in ALL])
def test_no_false_alarm_on_the_correct_backward(name):
    points = EDGE_POINTS if name in {layer.name for layer in EDGE_LAYERS} else CORRECT_POINTS
    result = explore_layer(name, max_points=points, shrink=False, progress=False)
    assert result.status != "fail", result
    assert result.passed >= 1, result  # the space is not all outside the layer's domain


@pytest.mark.parametrize("name, bug", BUGS)
def test_every_wrong_backward_is_found(name, bug):
    # a bug that hides but at a tie of three inside a window of 2 or more needs a few more draws
    points = 60 if name in {layer.name for layer in EDGE_LAYERS} else BUG_POINTS
    result = explore_layer(name, bug, max_points=points, shrink=False, progress=False)
    assert result.status == "fail", result


@pytest.mark.parametrize(
    "name, bug, smallest",
    [
        ("conv2d_pad", "crop_with_negative_index", lambda c: c.hyper["pad"] == 0),
        ("maxpool2d_pad", "argmax_not_unpadded", lambda c: c.hyper["pad"] == 1 and c.dims["N"] == 1),
        ("rnn_seq", "gradient_not_carried", lambda c: c.dims["T"] == 2 and c.dims["H"] == 1),
    ],
)
def test_edge_bugs_shrink_to_the_input_that_matters_and_the_test_reproduces_them(name, bug, smallest):
    result = explore_layer(name, bug, max_points=BUG_POINTS, progress=False)
    assert result.status == "fail" and smallest(result.case), result
    namespace: dict = {}
    exec(compile(result.test, "<explored>", "exec"), namespace)
    test = next(v for k, v in namespace.items() if k.startswith("test_"))
    with pytest.raises((AssertionError, BackcheckError)):
        test()


def test_a_correct_edge_layer_is_explored_beyond_its_convenient_point():
    """The spaces vary what the bugs depend on: several paddings, strides and sequence lengths are drawn."""
    seen: dict[str, set] = {"pad": set(), "T": set()}
    from backcheck.zoo import get

    conv, rnn = get("conv2d_pad"), get("rnn_seq")

    def conv_forward(x, w, b, stride=1, pad=1):
        seen["pad"].add(pad)
        return conv.forward(x, w, b, stride=stride, pad=pad)

    def rnn_forward(x, h0, wx, wh, b):
        seen["T"].add(x.shape[1])
        return rnn.forward(x, h0, wx, wh, b)

    from backcheck.explore import explore

    explore(conv_forward, conv.backward, **SPACES["conv2d_pad"], max_points=15, progress=False)
    explore(rnn_forward, rnn.backward, **SPACES["rnn_seq"], max_points=15, progress=False)
    assert seen["pad"] >= {0, 1} and len(seen["T"]) >= 2 and min(seen["T"]) == 1
    assert np.isfinite(min(seen["T"]))


@pytest.mark.parametrize("name, points", [
    pytest.param("conv2d_relu", 20, id="conv2d_relu"),  # a whole filter's pre-activations at the ReLU kink
    pytest.param("l2_normalize", 20, id="l2_normalize"),  # x = 0, where x / sqrt(|x|^2 + 1e-12) bends on 1e-6
    # several pre-activations within 1e-6 of the ReLU kink, crossed by one input at different distances
    pytest.param("rnn_relu_step", 40, id="rnn_relu_step"),
])
def test_no_false_alarm_with_a_larger_budget(name, points):
    """Correct backward passes at the points a larger budget finds: kinks at, and just off, the point."""
    result = explore_layer(name, max_points=points, shrink=False, progress=False)
    assert result.status != "fail", result
