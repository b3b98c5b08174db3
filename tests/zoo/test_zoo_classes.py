"""The zoo's layers for the hard classes (float32-only kernels, tie groups, tiny elements, masked inputs, a
seed argument, jumps) and its whole models: the correct backwards against float64 differences, the
recorded bug sizes, and backcheck's verdicts on each."""

from __future__ import annotations

import copy
import functools
import inspect

import numpy as np
import pytest

import backcheck
from backcheck import zoo
from backcheck.zoo import FLOAT32_LAYERS, HABIT_LAYERS, JUMP_LAYERS, MODELS, float32_kernels

NEW_LAYERS = (*FLOAT32_LAYERS, *HABIT_LAYERS, *JUMP_LAYERS)
TIE_LAYERS = {"maxpool_tie2", "maxpool_tie3", "maxpool_tie4", "rowmax_ties"}
TINY_LAYERS = {"normalize_tiny_rows", "long_product", "wide_softmax"}


def by_name(items):
    return pytest.mark.parametrize("layer", items, ids=[x.name for x in items])


def fresh(inputs: dict) -> dict:
    return {k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v)) for k, v in inputs.items()}


def point(layer, dtype=np.float64, seed=0, at="make_inputs") -> dict:
    return getattr(layer, at)(np.random.default_rng(seed), dtype)


def upstream(layer, inputs: dict, seed: int = 0) -> np.ndarray:
    out = np.asarray(layer.forward(*fresh(inputs).values()))
    return np.random.default_rng([seed, 7]).standard_normal(out.shape)


def floats(inputs: dict) -> list[str]:
    return [k for k, v in inputs.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]


def difference(layer, inputs: dict, dout: np.ndarray, name: str, direction: np.ndarray, h: float) -> float:
    """Central difference of <dout, forward> along ``direction`` in input ``name`` (the step h times it).

    The outputs are subtracted before they are weighted and summed, so a tiny change in one output is not
    lost in the rounding of a large sum.
    """
    up, down = fresh(inputs), fresh(inputs)
    up[name] = inputs[name] + h * direction
    down[name] = inputs[name] - h * direction
    out_up = np.asarray(layer.forward(*up.values()), dtype=np.float64)
    out_down = np.asarray(layer.forward(*down.values()), dtype=np.float64)
    return float(np.sum((out_up - out_down) * dout)) / (2 * h)


def grads_of(backward, dout, inputs: dict) -> dict:
    got = backward(dout.copy(), *fresh(inputs).values())
    return dict(zip(inputs, got, strict=True))


def tie_groups(x: np.ndarray, layer_name: str) -> list[np.ndarray]:
    """Flat-index groups of elements tied at the maximum of their window (pools) or row (rowmax)."""
    if layer_name == "rowmax_ties":
        idx = np.arange(x.size).reshape(x.shape)
        groups = [idx[r][x[r] == x[r].max()] for r in range(x.shape[0])]
    else:
        n, c, h, w = x.shape
        idx = np.arange(x.size).reshape(x.shape)
        groups = []
        for a in range(n):
            for b in range(c):
                for i in range(0, h, 2):
                    for j in range(0, w, 2):
                        win, ids = x[a, b, i : i + 2, j : j + 2].reshape(-1), idx[a, b, i : i + 2, j : j + 2]
                        groups.append(ids.reshape(-1)[win == win.max()])
    return [g for g in groups if g.size > 1]


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------


def test_the_new_layers_are_registered_apart_from_layers():
    assert len({x.name for x in NEW_LAYERS}) == len(NEW_LAYERS) == 4 + 10 + 5
    for layer in NEW_LAYERS:
        assert zoo.get(layer.name) is layer and layer.name not in zoo.names() and layer not in zoo.LAYERS
    assert {m.name for m in MODELS} >= {"mlp_relu_near_kink", "patch_convnet_tie2", "patch_convnet_tie4"}
    assert zoo.get_model("patch_convnet_tie3").name == "patch_convnet_tie3"
    with pytest.raises(KeyError, match="mlp_relu_near_kink"):
        zoo.get_model("mlp_relu_near_kinks")


@by_name(NEW_LAYERS)
def test_signatures_bugs_and_determinism(layer):
    fwd = list(inspect.signature(layer.forward).parameters)
    assert list(inspect.signature(layer.backward).parameters) == ["dout", *fwd]
    inputs = point(layer)
    assert list(inputs) == fwd
    again = point(layer)
    np.testing.assert_array_equal(layer.forward(*fresh(inputs).values()), layer.forward(*fresh(again).values()))
    assert layer.bugs and len({b.name for b in layer.bugs}) == len(layer.bugs)
    for bug in layer.bugs:
        assert bug.severity in {"gross", "subtle"} and bug.description.strip().endswith(".")
        assert list(inspect.signature(bug.backward).parameters) == ["dout", *fwd], bug.name


# ------------------------------------------------------------------------------------------------
# correct backwards against float64 differences
# ------------------------------------------------------------------------------------------------


@by_name(FLOAT32_LAYERS)
def test_float32_kernels_return_float32_for_both_dtypes(layer):
    for dtype in (np.float32, np.float64):
        inputs = point(layer, dtype)
        assert np.asarray(layer.forward(*inputs.values())).dtype == np.float32
        for backward in (layer.backward, *(b.backward for b in layer.bugs)):
            for g in backward(upstream(layer, inputs).astype(dtype), *inputs.values()):
                assert g.dtype == np.float32, backward.__name__


@by_name(FLOAT32_LAYERS)
def test_float32_kernels_math_in_float64_matches_central_differences(layer, monkeypatch):
    """The kernel's own code run in float64 matches differences; the float32 gradient tracks it."""
    inputs = point(layer)
    dout = upstream(layer, inputs)
    narrow = grads_of(layer.backward, dout, inputs)
    monkeypatch.setattr(float32_kernels, "F", np.float64)
    wide = grads_of(layer.backward, dout, inputs)
    for name in floats(inputs):
        a = inputs[name]
        num = np.array([difference(layer, inputs, dout, name, np.eye(a.size)[i].reshape(a.shape), 1e-6)
                        for i in range(a.size)]).reshape(a.shape)
        scale = float(np.max(np.abs(num)))
        np.testing.assert_allclose(wide[name], num, rtol=1e-6, atol=1e-7 * scale, err_msg=name)
        np.testing.assert_allclose(narrow[name], wide[name], rtol=0, atol=2e-6 * scale, err_msg=name)


@by_name([x for x in HABIT_LAYERS + JUMP_LAYERS if x.name not in TIE_LAYERS])
def test_correct_backward_matches_central_differences_elementwise(layer):
    """Each finite element against a central difference with a step relative to its own size."""
    inputs = point(layer)
    dout = upstream(layer, inputs)
    grads = grads_of(layer.backward, dout, inputs)
    # tiny elements are held to 1e-3 of their own size, with a step of 1e-4 of the input (outputs near 1 that
    # change by 1e-13 keep few digits); the others to 1e-5 of their size and 1e-7 of the tensor's largest
    tolerance = 1e-3 if layer.name in TINY_LAYERS else 1e-5
    for name in floats(inputs):
        a, g = inputs[name], np.asarray(grads[name], dtype=np.float64)
        floor = 0.0 if layer.name in TINY_LAYERS else 1e-7 * float(np.max(np.abs(g)))
        assert g.shape == a.shape
        assert np.all(g[~np.isfinite(a)] == 0), f"{name}: masked entries get no gradient"
        for i in np.flatnonzero(np.isfinite(a)):
            h = (1e-4 if layer.name in TINY_LAYERS else 1e-6) * max(abs(float(a.reshape(-1)[i])), 1e-300)
            e = np.zeros(a.size)
            e[i] = 1.0
            num = difference(layer, inputs, dout, name, e.reshape(a.shape), h)
            assert abs(g.reshape(-1)[i] - num) <= tolerance * abs(num) + floor, (name, i, g.reshape(-1)[i], num)


@by_name([x for x in HABIT_LAYERS if x.name in TIE_LAYERS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tie_layers_hold_their_ties_and_the_backward_is_the_group_derivative(layer, dtype):
    inputs = point(layer, dtype)
    x = inputs["x"]
    groups = tie_groups(x, layer.name)
    sizes = sorted({g.size for g in groups})
    expected = [2, 3, 4] if layer.name == "rowmax_ties" else [int(layer.name[-1])]
    assert sizes == expected, sizes
    wide = {"x": x.astype(np.float64)}
    dout = upstream(layer, wide)
    g = grads_of(layer.backward, dout, wide)["x"].reshape(-1)
    bug = grads_of(layer.bugs[0].backward, dout, wide)["x"].reshape(-1)
    tied = np.concatenate(groups)
    for group in groups:  # moving a tie group together is the direction in which the max is differentiable
        e = np.zeros(x.size)
        e[group] = 1.0
        num = difference(layer, wide, dout, "x", e.reshape(x.shape), 1e-6)
        assert abs(g[group].sum() - num) <= 1e-6 * max(1.0, abs(num))
        assert abs(bug[group].sum() - num) >= 0.5 * abs(num) > 0  # route-to-all: size times the group's share
    for i in np.setdiff1d(np.arange(x.size), tied):
        e = np.zeros(x.size)
        e[i] = 1.0
        num = difference(layer, wide, dout, "x", e.reshape(x.shape), 1e-6)
        assert abs(g[i] - num) <= 1e-6 * max(1.0, abs(num))


def _measured_size(layer, bug) -> float:
    inputs = point(layer)
    dout = np.random.default_rng([0, 4242]).standard_normal(np.shape(layer.forward(*fresh(inputs).values())))
    good, bad = grads_of(layer.backward, dout, inputs), grads_of(bug.backward, dout, inputs)
    worst = 0.0
    for name in floats(inputs):
        g, b = np.asarray(good[name], np.float64), np.asarray(bad[name], np.float64)
        worst = max(worst, float(np.max(np.abs(b - g))) / float(np.max(np.abs(g))))
    return worst


@by_name([x for x in NEW_LAYERS if x.name != "nearest_codeword"])
def test_recorded_bug_sizes_are_the_measured_ones(layer):
    for bug in layer.bugs:
        assert bug.size is not None, bug.name
        assert 0.5 <= _measured_size(layer, bug) / bug.size <= 2, (bug.name, _measured_size(layer, bug), bug.size)


def test_float32_kernel_bugs_come_at_1e2_1e3_and_1e4():
    for layer in FLOAT32_LAYERS:
        sizes = sorted(b.size for b in layer.bugs)
        assert 5e-5 <= sizes[0] < 5e-4 and 5e-4 <= sizes[1] < 5e-3 and 5e-3 <= sizes[2] < 5e-2, layer.name


# ------------------------------------------------------------------------------------------------
# verdicts
# ------------------------------------------------------------------------------------------------


def _check(layer, backward, inputs, **options):
    return backcheck.check_layer(layer.forward, backward, tuple(fresh(inputs).values()), **options)


@by_name([x for x in HABIT_LAYERS + JUMP_LAYERS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correct_passes_and_every_bug_fails(layer, dtype):
    inputs = point(layer, dtype)
    right = _check(layer, layer.backward, inputs)
    assert right.ok, right
    for bug in layer.bugs:
        bad = _check(layer, bug.backward, inputs)
        assert bad.status == "fail", f"{bug.name} ({bug.size}) did not fail:\n{bad}"


def test_a_seed_argument_draws_the_same_mask_in_forward_and_backward():
    layer = zoo.get("dropout_rng")
    assert _check(layer, layer.backward, point(layer)).ok
    other = next(b for b in layer.bugs if b.name == "mask_from_another_stream")
    assert _check(layer, other.backward, point(layer)).status == "fail"


def test_masked_entries_are_left_out_and_named():
    layer = zoo.get("masked_logsumexp")
    inputs = point(layer)
    r = _check(layer, layer.backward, inputs)
    assert r.ok and any("not coordinates to differentiate" in n for n in r.notes), r
    assert r.leaves[0].n_checked == int(np.isfinite(inputs["x"]).sum())


def _claiming(layer, inputs, value):
    """The correct backward, except that every element at a jump claims ``value``."""
    at_jump = {name: _jump_mask(layer, inputs, name) for name in floats(inputs)}

    def backward(dout, *args):
        grads = list(layer.backward(dout, *args))
        for k, name in enumerate(floats(inputs)):
            grads[k] = np.where(at_jump[name], value, grads[k]).astype(grads[k].dtype)
        return tuple(grads)

    return backward


def _jump_mask(layer, inputs, name):
    """The elements ``jumps`` moved onto a jump; on atan2's branch cut (y = 0, x = -1) only y jumps."""
    mask = inputs[name] != point(layer, inputs[name].dtype)[name]
    if layer.name == "atan2" and name == "x":
        mask &= inputs["x"] == 0
    return mask


@by_name(JUMP_LAYERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_at_a_jump_the_check_is_inconclusive_whatever_the_rule_claims(layer, dtype):
    inputs = point(layer, dtype, at="jumps")
    for backward in (layer.backward, *(_claiming(layer, inputs, v) for v in (0.0, 7.0, 123.0, 1e6))):
        r = _check(layer, backward, inputs)
        assert r.status == "inconclusive", r
        assert sum(lf.counts.get("jump", 0) for lf in r.leaves) >= 1, r


# ------------------------------------------------------------------------------------------------
# float32-only kernels (issue: gross errors pass when the function computes in float32)
# ------------------------------------------------------------------------------------------------

STRATEGIES = ["full", "projected", "auto"]
F32_BUGS = [pytest.param(layer, bug, id=f"{layer.name}-{bug.name}") for layer in FLOAT32_LAYERS for bug in layer.bugs]


@by_name(FLOAT32_LAYERS)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_kernel_correct_backward_passes(layer, dtype, strategy):
    r = _check(layer, layer.backward, point(layer, dtype), strategy=strategy)
    assert r.ok, r


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("layer", "bug"), [p for p in F32_BUGS if p.values[1].size >= 5e-4])
def test_float32_kernel_errors_of_1e3_and_above_fail(layer, bug, dtype, strategy):
    r = _check(layer, bug.backward, point(layer, dtype), strategy=strategy)
    assert r.status == "fail", f"{bug.name} (size {bug.size:.1e}) in {np.dtype(dtype).name}, {strategy}:\n{r}"


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("layer", "bug"), [p for p in F32_BUGS if p.values[1].size < 5e-4])
def test_float32_kernel_errors_of_1e4_fail_or_pass_above_the_stated_floor(layer, bug, dtype, strategy):
    """Never a plain pass whose stated floor is below the error it let through."""
    inputs = point(layer, dtype)
    r = _check(layer, bug.backward, inputs, strategy=strategy)
    if r.status == "fail":
        return
    dout = np.random.default_rng(0).standard_normal(np.shape(layer.forward(*fresh(inputs).values())))
    good, bad = grads_of(layer.backward, dout, inputs), grads_of(bug.backward, dout, inputs)
    for leaf, name in zip(r.leaves, floats(inputs), strict=True):
        g, b = np.asarray(good[name], np.float64), np.asarray(bad[name], np.float64)
        error = float(np.max(np.abs(b - g))) / float(np.sqrt(np.mean(g * g)))
        if error > 0 and leaf.status == "pass":
            assert leaf.floor_rel >= 1e-4 and leaf.floor_rel >= 0.5 * error, (name, error, leaf.floor_rel, str(r))


# ------------------------------------------------------------------------------------------------
# whole models
# ------------------------------------------------------------------------------------------------


def _model_check(model, grad, params, batch, **options):
    return backcheck.check(functools.partial(model.loss, batch=batch), params,
                           functools.partial(grad, batch=batch), **options)


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_model_gradient_matches_central_differences_in_float64(model):
    params, batch = model.make(np.random.default_rng(0), np.float64)
    g = model.grad(params, batch)
    for name, a in params.items():
        for i in range(a.size):
            up, down = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
            up[name].reshape(-1)[i] += 1e-6
            down[name].reshape(-1)[i] -= 1e-6
            num = (model.loss(up, batch) - model.loss(down, batch)) / 2e-6
            assert abs(g[name].reshape(-1)[i] - num) <= 1e-6 * max(1.0, abs(num)), (name, i)


def test_the_convnets_hold_ties_of_their_size_in_the_pooling_windows():
    from backcheck.zoo.models import _convnet_forward

    for size in (2, 3, 4):
        model = zoo.get_model(f"patch_convnet_tie{size}")
        params, batch = model.make(np.random.default_rng(0), np.float32)
        _, win, *_ = _convnet_forward(params, batch)
        counts = (win == win.max(axis=-1, keepdims=True)).sum(axis=-1)
        assert set(np.unique(counts[:, 0])) == {1, size}


def test_the_mlp_has_relu_inputs_within_float32s_step_of_the_kink():
    model = zoo.get_model("mlp_relu_near_kink")
    params, batch = model.make(np.random.default_rng(0), np.float32)
    z = batch["x"] @ params["w1"] + params["b1"]
    assert np.sum(np.abs(z) < 1e-4) >= 2 and not np.any(z == 0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_whole_models_correct_passes_and_every_bug_fails(model, dtype, seed):
    params, batch = model.make(np.random.default_rng(seed), dtype)
    right = _model_check(model, model.grad, params, batch)
    assert right.ok, right
    for bug in model.bugs:
        bad = _model_check(model, bug.backward, params, batch)
        assert bad.status == "fail", f"{bug.name}:\n{bad}"


def test_the_route_to_every_tie_bug_is_named_in_the_bias_of_the_tied_filter():
    model = zoo.get_model("patch_convnet_tie4")
    params, batch = model.make(np.random.default_rng(0), np.float32)
    bad = _model_check(model, model.bugs[0].backward, params, batch)
    assert bad.leaf("p['b']").status == "fail", bad
    assert "p['b'][0]" in {e.name for e in bad.leaf("p['b']").worst if e.status == "mismatch"}
