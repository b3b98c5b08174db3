"""The checker on every layer of backcheck.zoo: correct backward passes pass, wrong ones fail.

In float64 and float32, at ordinary points and exactly at kinks and ties, with the zoo's realistic bugs and
with generic perturbations of the correct gradient (sign flip, one wrong element, transpose, scale 1+1e-4).
"""

import numpy as np
import pytest

import backcheck
from backcheck import zoo

DTYPES = [np.float64, np.float32]
LAYERS = {layer.name: layer for layer in zoo.LAYERS}
KINKED = sorted(name for name, layer in LAYERS.items() if layer.kinks is not None)


def inputs(layer, dtype, seed=0):
    return tuple(layer.make_inputs(np.random.default_rng(seed), dtype).values())


def test_the_zoo_spans_at_least_15_kinds_and_20_kinked_layers():
    assert len({layer.family for layer in zoo.LAYERS}) >= 10
    assert len(LAYERS) >= 40 and len(KINKED) >= 20


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_correct_backward_passes_and_every_bug_fails(name, dtype):
    layer = LAYERS[name]
    x = inputs(layer, dtype)
    report = backcheck.check_layer(layer.forward, layer.backward, x)
    assert report.ok, report
    for bug in layer.bugs:
        bad = backcheck.check_layer(layer.forward, bug.backward, x)
        assert bad.status == "fail", f"{bug.name} ({bug.severity}) passed:\n{bad}"
        if bug.mutates:
            assert any(f.kind == "mutation" for f in bad.findings)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", KINKED)
def test_no_false_alarm_exactly_at_kinks_and_ties(name, dtype):
    layer = LAYERS[name]
    x = tuple(layer.kinks(np.random.default_rng(0), dtype).values())
    report = backcheck.check_layer(layer.forward, layer.backward, x)
    assert report.ok, report


def perturbed(backward, how):
    def wrong(dout, *args):
        grads = backward(dout, *args)
        single = not isinstance(grads, tuple)
        grads = [grads] if single else list(grads)
        k = next(i for i, g in enumerate(grads) if target(g, how))
        g = np.array(grads[k], copy=True)
        if how == "sign":
            g = -g
        elif how == "one_element":
            flat = g.reshape(-1)
            j = int(np.argmax(np.abs(flat)))
            flat[j] += flat[j] * 0.01 + np.abs(flat).mean() * 0.01
        elif how == "transpose":
            g = g.T.copy()
        else:
            g = (g * (1 + 1e-4)).astype(g.dtype)
        grads[k] = g
        return grads[0] if single else tuple(grads)

    return wrong


def target(g, how):
    """The gradient a perturbation applies to: any non-scalar one; for a transpose, a square asymmetric one."""
    if g is None or np.asarray(g).size < 2:
        return False
    if how == "transpose":
        return g.ndim == 2 and g.shape[0] == g.shape[1] and not np.allclose(g, g.T)
    return True


def has_target(name, how):
    layer = LAYERS[name]
    x = inputs(layer, np.float64)
    grads = layer.backward(np.ones_like(layer.forward(*x)), *x)
    return any(target(g, how) for g in (grads if isinstance(grads, tuple) else (grads,)))


SAMPLE = [
    "affine",
    "conv2d",
    "batchnorm_train",
    "softmax_cross_entropy",
    "lstm_step",
    "attention",
    "layernorm",
    "maxpool2d",
    "tanh",
    "matmul",
    "inverse",
    "gelu",
    "rnn_step",
    "gru_step",
    "solve",
    "bilinear",
    "mlp_relu",
    "rnn_relu_step",
]
CASES = [
    (name, how)
    for how in ["sign", "one_element", "transpose", "scale_1e-4"]
    for name in SAMPLE
    if has_target(name, how)
]


def test_the_generic_perturbations_cover_at_least_15_layer_kinds_each_and_8_transposes():
    hows = [how for _, how in CASES]
    assert hows.count("sign") >= 15 and hows.count("transpose") >= 8


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name,how", CASES)
def test_generic_perturbations_fail(name, how, dtype):
    layer = LAYERS[name]
    report = backcheck.check_layer(layer.forward, perturbed(layer.backward, how), inputs(layer, dtype))
    assert report.status == "fail", report


def test_the_wrong_element_is_named():
    layer = LAYERS["affine"]
    x = inputs(layer, np.float64)

    def one_wrong(dout, *args):
        dx, dw, db = layer.backward(dout, *args)
        dw = dw.copy()
        dw[3, 1] += 1e-3
        return dx, dw, db

    report = backcheck.check_layer(layer.forward, one_wrong, x)
    w = report.leaf("w")
    assert w.status == "fail" and w.n_mismatch == 1
    assert w.worst[0].name == "w[3, 1]" and w.worst[0].index == (3, 1)
    assert abs(w.worst[0].analytic - w.worst[0].numeric - 1e-3) < 1e-8
    assert [lf.status for lf in report.leaves] == ["pass", "fail", "pass"]
