"""Reasonable forms of options met rather than refused, and misuse named in a typed error: a step array shaped
like the parameter (or one per input of a layer), a closure run on a thread pool, freeze_rng given something that
is no function, a case function that takes arguments."""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import pytest

import backcheck
from backcheck.cases import collect, run_case
from backcheck.errors import BadInputError, CaseError

X = np.random.default_rng(0).normal(size=(3, 4))


def _sin_sum(a):
    return float(np.sum(np.sin(a)))


@pytest.mark.parametrize("shape", [(3, 4), (12,)])
def test_a_step_array_of_the_parameters_shape_or_flat(shape):
    assert backcheck.check(_sin_sum, X, np.cos, step=np.full(shape, 1e-5)).status == "pass"
    assert backcheck.check(_sin_sum, X, lambda a: 1.01 * np.cos(a), step=np.full(shape, 1e-5)).status == "fail"


def test_a_step_array_of_another_size_is_refused_with_the_count():
    with pytest.raises(BadInputError, match="12 numbers"):
        backcheck.check(_sin_sum, X, np.cos, step=np.full((2, 4), 1e-5))


def test_one_step_array_per_input_of_a_layer():
    x, w = np.ones((5, 3)), np.random.default_rng(1).normal(size=(3, 2))
    steps = [np.full(x.shape, 1e-5), np.full(w.shape, 1e-6)]
    report = backcheck.check_layer(lambda x, w: np.tanh(x @ w), _tanh_backward, (x, w), step=steps)
    assert report.status == "pass", report


def _tanh_backward(d, x, w):
    dz = d * (1 - np.tanh(x @ w) ** 2)
    return dz @ w.T, x.T @ dz


def test_a_closure_on_a_thread_pool_needs_no_pickling():
    scale = 2.0
    with cf.ThreadPoolExecutor(2) as ex:
        report = backcheck.check(lambda a: scale * _sin_sum(a), X, lambda a: scale * np.cos(a), executor=ex)
    assert report.status == "pass", report


def test_freeze_rng_names_what_it_got_instead_of_a_function():
    with pytest.raises(BadInputError, match="got int 3"):
        backcheck.freeze_rng(3)


def test_a_case_that_takes_arguments_is_a_case_error():
    @backcheck.case
    def needs_x(x):
        return {}

    with pytest.raises(CaseError, match="takes arguments"):
        run_case(collect({"needs_x": needs_x})[0])


def test_a_generator_bound_as_a_default_argument_is_replayed():
    gen = np.random.default_rng(5)

    def f(a, rng=gen):
        return float(np.sum(np.sin(a)) + rng.random())  # a draw at every call, the same one replayed

    state = gen.bit_generator.state
    assert backcheck.check(f, X, np.cos).status == "pass"
    assert gen.bit_generator.state == state  # the user's stream is left where it was


def test_a_float64_input_beyond_float32_range_under_jax_without_x64_is_named(recwarn):
    jax = pytest.importorskip("jax")
    bj = pytest.importorskip("backcheck.jax")
    was = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)  # (the default: float64 inputs computed in float32)
    try:
        with pytest.raises(BadInputError, match=r"holds 1e\+300.*beyond the range of float32"):
            bj.check(lambda a: a * 2, np.array([1e300, -1e300]))
    finally:
        jax.config.update("jax_enable_x64", was)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("odd", [np.random.default_rng(0), "layer1"])
def test_a_non_parameter_inside_params_is_told_to_stay_out_of_them(odd):
    from backcheck.errors import ParamsError

    with pytest.raises(ParamsError, match="out of params") as info:
        backcheck.check(lambda p: 0.0, {"w": X, "extra": odd}, lambda p: p)
    assert "extra" in info.value.message


def test_a_torch_tensor_inside_params_is_pointed_to_the_torch_frontend():
    torch = pytest.importorskip("torch")
    from backcheck.errors import ParamsError

    with pytest.raises(ParamsError, match="backcheck.torch"):
        backcheck.check(lambda p: 0.0, {"w": torch.ones(3)}, lambda p: p)


def test_a_case_missing_keys_says_what_kind_of_check_it_describes():
    @backcheck.case
    def half():
        return {"f": _sin_sum, "params": X}

    with pytest.raises(CaseError, match="describes a scalar-function check but lacks grad"):
        run_case(collect({"half": half})[0])


def test_a_step_array_of_the_right_size_but_another_shape_is_refused():
    with pytest.raises(BadInputError, match=r"shape \(4, 3\)"):
        backcheck.check(_sin_sum, X, np.cos, step=np.full((4, 3), 1e-5))
