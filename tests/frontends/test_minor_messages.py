"""Messages that pointed the wrong way: a bfloat16 gradient hinted at integer arrays, a jax argnums name for a
positional argument spoke of positions alone, floor=-1 and floor=0 gave two rules, and a gradient that does not
flow at all (0 everywhere) was called '0 times the numeric derivative: one constant factor (a sign, a 1/N...)'."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, GradientStructureError

X = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)


def f(x):
    return float(np.sum(np.tanh(x)))


def g(x):
    return 1 - np.tanh(x) ** 2


def test_a_bfloat16_gradient_is_told_to_cast() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(GradientStructureError) as info:
        backcheck.check(f, X, lambda x: g(x).astype(ml_dtypes.bfloat16))
    assert "astype(np.float32)" in info.value.hint and "integer" not in info.value.hint


@pytest.mark.parametrize("floor", [-1, 0, 1, 2.5])
def test_every_floor_out_of_range_gets_one_rule(floor) -> None:
    with pytest.raises(BadInputError, match=r"must lie between 0 and 1 \(a relative error\)"):
        backcheck.check(f, X, g, floor=floor)


def test_a_jax_argnums_name_of_a_positional_argument_says_names_are_keywords(x64: None) -> None:
    import jax.numpy as jnp

    import backcheck.jax as bj

    with pytest.raises(BadInputError) as info:
        bj.check(lambda a, b: jnp.sum(a * b), jnp.ones(2), jnp.ones(2), argnums="b")
    assert "A name selects a keyword argument only" in info.value.hint


def test_a_gradient_that_does_not_flow_is_no_factor() -> None:
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    report = bt.check(lambda t: torch.from_numpy(np.tanh(t.detach().numpy())), torch.ones(4, 3, dtype=torch.float64))
    assert report.status == "fail", report
    assert not [n for n in report.notes if "times the numeric derivative" in n], report.notes


def test_a_dout_written_as_a_nested_list_of_numbers_is_one_array() -> None:
    # it was read as ten outputs: 'dout has 10 array(s), but forward returns 1'
    x = np.ones((5, 2))
    dout = np.arange(10.0).reshape(5, 2)
    report = backcheck.check_layer(lambda v: v * 2, lambda d, v: d * 2, (x,), dout.tolist())
    assert report.status == "pass", report
    wrong = backcheck.check_layer(lambda v: v * 2, lambda d, v: d * 3, (x,), dout.tolist())
    assert wrong.status == "fail"
    with pytest.raises(GradientStructureError, match="dout has 2 array"):  # (two arrays for one output: refused)
        backcheck.check_layer(lambda v: v * 2, lambda d, v: d * 2, (x,), [dout, dout])
