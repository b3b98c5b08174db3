"""Tests of backcheck.zoo: the registry contract, correct backwards against central differences,
bugs that really differ (and mutate when they say so), float32 discipline and kinks."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from backcheck.zoo import LAYERS, Bug, Layer, get, names

FAMILIES = {
    "activation",
    "loss",
    "linear",
    "conv",
    "pooling",
    "normalization",
    "recurrent",
    "attention",
    "linalg",
    "elementwise",
    "regularization",
}
REQUIRED_BUG_KINDS = {
    "missing_transpose",
    "bias_not_summed",
    "wrong_sign",
    "missing_1_over_n",
    "missing_mean_term",
    "missing_variance_term",
    "derivative_from_input",
    "padding_off_by_one",
    "ties_to_every_element",
    "mask_missing",
    "eps_wrong_place",
    "one_wrong_element",
    "scale_1e-3",
    "scale_1e-5",
}
# Kinks where a coordinate-wise subgradient check applies (no several kinks coupled through one input).
COORDINATEWISE_KINKS = {
    "relu",
    "leaky_relu",
    "prelu",
    "elu",
    "hardtanh",
    "svm_hinge",
    "hinge_binary",
    "huber",
    "l1",
    "maxout",
    "maxpool2d",
    "maxpool2d_ties",
    "global_maxpool",
    "sort",
    "frobenius_norm",
    "weight_decay_l1",
    "maximum",
    "abs",
}
# Huber's threshold is a C1 point (the second derivative jumps): one-sided first differences agree there.
C1_KINKS = {"huber"}
SEEDS = (0, 1, 2)
H = 1e-6

KINKED = [layer for layer in LAYERS if layer.kinks is not None]


def by_name(layers):
    return pytest.mark.parametrize("layer", layers, ids=[layer.name for layer in layers])


def is_diff(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.floating)


def make_case(layer: Layer, seed: int, dtype=np.float64, kinks: bool = False):
    """Inputs (dict) and an upstream gradient: random of the output's shape, or 1.0 for losses."""
    rng = np.random.default_rng(seed)
    inputs = (layer.kinks if kinks else layer.make_inputs)(rng, dtype)
    if layer.loss:
        return inputs, 1.0
    out = layer.forward(*inputs.values())
    return inputs, rng.standard_normal(np.shape(out)).astype(dtype)


def copies(inputs: dict) -> dict:
    return {k: v.copy() for k, v in inputs.items()}


def call_backward(backward, dout, inputs):
    """Run a backward on private copies so the caller's arrays are never touched."""
    d = dout.copy() if isinstance(dout, np.ndarray) else dout
    return backward(d, *copies(inputs).values())


def objective(layer: Layer, inputs: dict, dout) -> float:
    return float(np.sum(np.asarray(layer.forward(*inputs.values()), dtype=np.float64) * dout))


def shifted(inputs: dict, name: str, i: int, delta: float) -> dict:
    new = dict(inputs)
    a = inputs[name].copy()
    a.reshape(-1)[i] += delta
    new[name] = a
    return new


def central_difference(layer: Layer, inputs: dict, dout) -> dict:
    """Plain numpy central differences of sum(forward * dout) for every float input."""
    grads = {}
    for name, a in inputs.items():
        if not is_diff(a):
            continue
        g = np.zeros(a.shape)
        for i in range(a.size):
            up = objective(layer, shifted(inputs, name, i, H), dout)
            down = objective(layer, shifted(inputs, name, i, -H), dout)
            g.reshape(-1)[i] = (up - down) / (2 * H)
        grads[name] = g
    return grads


def one_sided(layer: Layer, inputs: dict, dout, name: str, i: int, h: float = 1e-7):
    f0 = objective(layer, inputs, dout)
    right = (objective(layer, shifted(inputs, name, i, h), dout) - f0) / h
    left = (f0 - objective(layer, shifted(inputs, name, i, -h), dout)) / h
    return left, right


def relative_error(bug_grads, grads) -> float:
    """Largest, over inputs, of max|bug - correct| / max|correct|."""
    worst = 0.0
    for gb, g in zip(bug_grads, grads, strict=True):
        if g is None:
            continue
        scale = max(float(np.max(np.abs(g))), 1e-12)
        worst = max(worst, float(np.max(np.abs(np.asarray(gb, dtype=np.float64) - g))) / scale)
    return worst


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------


def test_registry_size_and_unique_names():
    assert len(LAYERS) >= 42
    assert len(set(names())) == len(LAYERS) == len(names())
    assert names() == [layer.name for layer in LAYERS]
    assert all(isinstance(layer, Layer) for layer in LAYERS)


def test_every_family_is_covered_and_valid():
    assert {layer.family for layer in LAYERS} == FAMILIES


def test_bug_counts_and_fields():
    for layer in LAYERS:
        assert 2 <= len(layer.bugs) <= 5, layer.name
        assert len({bug.name for bug in layer.bugs}) == len(layer.bugs), layer.name
        for bug in layer.bugs:
            assert isinstance(bug, Bug)
            assert bug.severity in {"gross", "subtle"}, (layer.name, bug.name)
            assert bug.description.strip().endswith("."), (layer.name, bug.name)


def test_required_bug_kinds_present():
    slugs = {bug.name for layer in LAYERS for bug in layer.bugs}
    assert slugs >= REQUIRED_BUG_KINDS, REQUIRED_BUG_KINDS - slugs
    assert any(bug.mutates for layer in LAYERS for bug in layer.bugs)


def test_enough_layers_with_kinks():
    assert len(KINKED) >= 20


def test_get_and_close_matches():
    assert get("conv2d").name == "conv2d"
    with pytest.raises(KeyError, match="batchnorm_train"):
        get("batchnorm_trian")


@by_name(LAYERS)
def test_signatures_and_inputs(layer):
    fwd = list(inspect.signature(layer.forward).parameters)
    bwd = list(inspect.signature(layer.backward).parameters)
    inputs = layer.make_inputs(np.random.default_rng(0), np.float64)
    assert list(inputs) == fwd
    assert bwd == ["dout", *fwd]
    for bug in layer.bugs:
        assert len(inspect.signature(bug.backward).parameters) == len(bwd), bug.name
    for name, a in inputs.items():
        assert isinstance(a, np.ndarray), name
        assert a.size <= 200, name
        assert a.dtype in (np.float64, np.int64, np.bool_), name
    again = layer.make_inputs(np.random.default_rng(0), np.float64)
    assert all(np.array_equal(inputs[k], again[k]) for k in inputs), "make_inputs is not deterministic"
    out = layer.forward(*inputs.values())
    assert np.ndim(out) == 0 if layer.loss else np.ndim(out) >= 1


# ------------------------------------------------------------------------------------------------
# correct backwards
# ------------------------------------------------------------------------------------------------


@by_name(LAYERS)
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_backward_matches_central_differences(layer, seed):
    inputs, dout = make_case(layer, seed)
    grads = call_backward(layer.backward, dout, inputs)
    assert len(grads) == len(inputs)
    numeric = central_difference(layer, inputs, dout)
    for (name, a), g in zip(inputs.items(), grads, strict=True):
        if not is_diff(a):
            assert g is None, name
            continue
        assert g is not None and g.shape == a.shape, name
        num = numeric[name]
        scale = max(1.0, float(np.max(np.abs(num))))
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7 * scale, err_msg=f"{layer.name}: d{name}")


@by_name(LAYERS)
def test_correct_forward_and_backward_do_not_mutate(layer):
    inputs, dout = make_case(layer, 0)
    before = copies(inputs)
    d = dout.copy() if isinstance(dout, np.ndarray) else dout
    out1 = layer.forward(*inputs.values())
    layer.backward(d, *inputs.values())
    out2 = layer.forward(*inputs.values())
    for k in inputs:
        assert np.array_equal(inputs[k], before[k]), f"{layer.name} mutated {k}"
    if isinstance(dout, np.ndarray):
        assert np.array_equal(d, dout), f"{layer.name} mutated dout"
    assert np.array_equal(out1, out2), "forward is not deterministic"


# ------------------------------------------------------------------------------------------------
# bugs
# ------------------------------------------------------------------------------------------------


@by_name(LAYERS)
def test_every_bug_changes_the_gradient_and_severity_is_honest(layer):
    errors = {bug.name: [] for bug in layer.bugs}
    for seed in SEEDS:
        inputs, dout = make_case(layer, seed)
        grads = call_backward(layer.backward, dout, inputs)
        for bug in layer.bugs:
            bug_grads = call_backward(bug.backward, dout, inputs)
            assert len(bug_grads) == len(grads), bug.name
            for gb, g in zip(bug_grads, grads, strict=True):
                assert (gb is None) == (g is None), bug.name
                if g is not None:
                    assert np.shape(gb) == g.shape, bug.name
            errors[bug.name].append(relative_error(bug_grads, grads))
    for bug in layer.bugs:
        worst, best = max(errors[bug.name]), min(errors[bug.name])
        assert best > 1e-7, f"{layer.name}/{bug.name} does not change the gradient ({errors[bug.name]})"
        if bug.severity == "gross":
            assert best >= 1e-2, f"{layer.name}/{bug.name} is labelled gross but errs by {best:.2e}"
        else:
            assert worst < 1e-2, f"{layer.name}/{bug.name} is labelled subtle but errs by {worst:.2e}"


@by_name(LAYERS)
def test_bugs_mutate_exactly_when_they_say_so(layer):
    inputs, dout = make_case(layer, 0)
    for bug in layer.bugs:
        mine = copies(inputs)
        d = dout.copy() if isinstance(dout, np.ndarray) else dout
        bug.backward(d, *mine.values())
        changed = [k for k in inputs if not np.array_equal(mine[k], inputs[k])]
        if isinstance(dout, np.ndarray) and not np.array_equal(d, dout):
            changed.append("dout")
        if bug.mutates:
            assert changed, f"{layer.name}/{bug.name} says it mutates but does not"
        else:
            assert not changed, f"{layer.name}/{bug.name} mutates {changed} without saying so"


# ------------------------------------------------------------------------------------------------
# float32
# ------------------------------------------------------------------------------------------------


@by_name(LAYERS)
def test_float32_stays_float32(layer):
    inputs, dout = make_case(layer, 0, np.float32)
    for name, a in inputs.items():
        assert a.dtype in (np.float32, np.int64, np.bool_), name
    out = layer.forward(*inputs.values())
    assert np.asarray(out).dtype == np.float32
    for backward in (layer.backward, *(bug.backward for bug in layer.bugs)):
        for name, g in zip(inputs, call_backward(backward, dout, inputs), strict=True):
            if g is not None:
                assert g.dtype == np.float32, f"{layer.name}: {backward.__name__} gives d{name} as {g.dtype}"
    # float32 results track float64 ones
    inputs64 = {k: v.astype(np.float64) if is_diff(v) else v for k, v in inputs.items()}
    out64 = layer.forward(*inputs64.values())
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-4 * max(1.0, float(np.max(np.abs(out64)))))


# ------------------------------------------------------------------------------------------------
# kinks
# ------------------------------------------------------------------------------------------------


@by_name(KINKED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kink_inputs_are_valid_and_backward_is_finite(layer, dtype):
    inputs, dout = make_case(layer, 0, dtype, kinks=True)
    assert list(inputs) == list(inspect.signature(layer.forward).parameters)
    for (name, a), g in zip(inputs.items(), call_backward(layer.backward, dout, inputs), strict=True):
        if g is not None:
            assert g.dtype == dtype and g.shape == a.shape, name
            assert np.all(np.isfinite(g)), f"{layer.name}: d{name} not finite at the kink"
    assert np.all(np.isfinite(layer.forward(*inputs.values())))


@by_name([layer for layer in KINKED if layer.name not in C1_KINKS])
def test_kink_inputs_sit_on_a_kink(layer):
    """Some coordinate has different left and right derivatives."""
    inputs, dout = make_case(layer, 0, kinks=True)
    jumps = [
        abs(right - left)
        for name, a in inputs.items()
        if is_diff(a)
        for i in range(a.size)
        for left, right in [one_sided(layer, inputs, dout, name, i)]
    ]
    assert max(jumps) > 1e-3, f"{layer.name}: no kink found (largest jump {max(jumps):.2e})"


@by_name([layer for layer in KINKED if layer.name in COORDINATEWISE_KINKS])
def test_kink_backward_is_a_subgradient(layer):
    """Each partial derivative lies between the one-sided differences along its coordinate."""
    inputs, dout = make_case(layer, 0, kinks=True)
    grads = call_backward(layer.backward, dout, inputs)
    for (name, a), g in zip(inputs.items(), grads, strict=True):
        if g is None:
            continue
        for i in range(a.size):
            left, right = one_sided(layer, inputs, dout, name, i)
            lo, hi = min(left, right), max(left, right)
            tol = 1e-5 * max(1.0, abs(lo), abs(hi))
            assert lo - tol <= g.reshape(-1)[i] <= hi + tol, f"{layer.name}: d{name}[{i}] not in [{lo}, {hi}]"


def test_make_inputs_avoid_the_kinks():
    """Regular inputs are differentiable: left and right differences agree everywhere."""
    for layer in KINKED:
        inputs, dout = make_case(layer, 0)
        for name, a in inputs.items():
            if not is_diff(a):
                continue
            for i in range(a.size):
                left, right = one_sided(layer, inputs, dout, name, i)
                assert abs(right - left) < 1e-4 * max(1.0, abs(left)), f"{layer.name}: d{name}[{i}] at a kink"


# ---------------------------------------------------------------------------------------------
# edge layers (wrong only at particular inputs) and the registry's imports
# ---------------------------------------------------------------------------------------------


def test_registry_imports_nothing_from_the_zoo():
    """The families import the data model from _registry; _registry imports no family (no import cycle)."""
    import ast

    from backcheck.zoo import _registry

    tree = ast.parse(inspect.getsource(_registry))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("backcheck")], imported


def test_edge_layers_are_found_by_name_but_kept_apart():
    from backcheck.zoo import EDGE_LAYERS

    assert {layer.name for layer in EDGE_LAYERS} == {"conv2d_pad", "maxpool2d_pad", "maxpool2d_share", "rnn_seq"}
    for layer in EDGE_LAYERS:
        assert get(layer.name) is layer and layer.name not in names() and layer not in LAYERS
        assert layer.family in FAMILIES and layer.bugs


def _edge_check(layer, backward, hyper, make):
    import functools

    import backcheck

    inputs = tuple(make(np.random.default_rng(0), np.float64).values())
    return backcheck.check_layer(functools.partial(layer.forward, **hyper), functools.partial(backward, **hyper),
                                 inputs, names=list(inspect.signature(layer.forward).parameters)[: len(inputs)])


def _edge_cases():
    from backcheck.zoo import EDGE_LAYERS

    return [pytest.param(layer, id=layer.name) for layer in EDGE_LAYERS]


@pytest.mark.parametrize("layer", _edge_cases())
def test_edge_bugs_hide_at_the_convenient_point(layer):
    assert _edge_check(layer, layer.backward, {}, layer.make_inputs).ok
    for bug in layer.bugs:
        assert _edge_check(layer, bug.backward, {}, layer.make_inputs).ok, bug.name


@pytest.mark.parametrize("layer", _edge_cases())
def test_edge_bugs_show_at_their_trigger_and_the_correct_twin_passes_there(layer):
    from backcheck.errors import GradientStructureError
    from backcheck.zoo.edges import TRIGGERS

    hyper, make = TRIGGERS[layer.name]
    assert _edge_check(layer, layer.backward, hyper, make).ok
    for bug in layer.bugs:
        try:
            report = _edge_check(layer, bug.backward, hyper, make)
        except GradientStructureError:  # the pad=0 crop returns an empty gradient
            continue
        assert report.status == "fail", f"{bug.name}:\n{report}"


def test_edge_bug_at_three_tied_maxima_is_wrong_by_half():
    """The share bug is really wrong at a 3-way tie (the sum of the shares is 1.5) and right at a 2-way tie."""
    from backcheck.zoo.edges import TRIGGERS

    layer = get("maxpool2d_share")
    x = TRIGGERS["maxpool2d_share"][1](np.random.default_rng(0), np.float64)["x"]
    dout = np.ones(layer.forward(x).shape)
    assert layer.bugs[0].backward(dout, x)[0][0, 0, :2, :2].sum() == pytest.approx(1.5)
    x2 = x.copy()
    x2[0, 0, 1, 0] -= 1.0  # two tied maxima left
    assert layer.bugs[0].backward(dout, x2)[0][0, 0, :2, :2].sum() == pytest.approx(1.0)
