"""The options of backcheck.check reach torch's and jax's entry points too: floor, detect and confidence are
validated and used (not passed to the function as inputs); a keyword that is neither an option nor a
parameter of the function is a typed error naming it; and a torch check under inference_mode runs with
autograd on, as one under no_grad does."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.errors import BadInputError


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    return torch


def _three(report) -> bool:
    """Whether the report's note says three directions were asked for (measured, or vouched for by fewer)."""
    said = " ".join(report.notes)
    return "3 random directions agree" in said or "vouches as 3 directions would" in said


def test_torch_check_takes_detect_and_confidence(torch) -> None:
    import backcheck.torch as bt

    x = torch.randn(2000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fn = lambda x: torch.sin(x).sum()  # noqa: E731
    default = bt.check(fn, x, strategy="projected")
    one = bt.check(fn, x, strategy="projected", confidence=0.9)
    assert default.status == one.status == "pass"
    # the number of directions follows the confidence asked for: 3 by default (or 2 well within their bounds that
    # vouch as 3 would), 1 at 0.9 (2 evaluations each)
    assert default.n_evals - one.n_evals in (2, 4) and _three(default)
    assert any("0.9" in n for n in one.notes), one.notes


def test_torch_check_takes_floor(torch) -> None:
    """A floor the differences reach passes; one below float64's rounding cannot be vouched for."""
    import backcheck.torch as bt

    x = torch.linspace(-2, 2, 7, dtype=torch.float64)
    reached = bt.check(lambda x: torch.tanh(x).sum(), x, floor=1e-8)
    assert reached.status == "pass", reached
    assert reached.leaves[0].floor_rel < 1e-7
    assert bt.check(lambda x: torch.tanh(x).sum(), x, floor=1e-15).status == "inconclusive"


@pytest.mark.parametrize("option", [{"detect": 0}, {"confidence": 1.0}, {"floor": -5.0}])
def test_torch_options_out_of_range_are_typed_errors_even_for_a_function_taking_kwargs(torch, option) -> None:
    import backcheck.torch as bt

    def fn(x, **kw):
        return torch.tanh(x).sum()

    with pytest.raises(BadInputError, match=next(iter(option))):
        bt.check(fn, torch.ones(3, dtype=torch.float64), **option)


def test_a_misspelt_torch_option_names_itself(torch) -> None:
    import backcheck.torch as bt

    with pytest.raises(BadInputError, match="stratgy= is neither an option of backcheck.torch.check"):
        bt.check(lambda x: x.sum(), torch.ones(3, dtype=torch.float64), stratgy="full")
    # a keyword input the function takes still goes to it
    r = bt.check(lambda x, scale: (scale * x).sum(), torch.ones(3, dtype=torch.float64), scale=2.0)
    assert r.status == "pass", r


def test_a_misspelt_module_keyword_names_itself_and_the_modules_own_options(torch) -> None:
    import backcheck.torch as bt

    lin = torch.nn.Linear(3, 2).double()
    with pytest.raises(BadInputError, match="confidense= is neither an option of backcheck.torch.check_module") as e:
        bt.check_module(lin, torch.ones(4, 3, dtype=torch.float64), confidense=0.9)
    assert "confidence" in e.value.hint and "forward_mode" not in e.value.hint  # (check's option, not the module's)


def test_a_misspelt_function_keyword_names_itself(torch) -> None:
    import backcheck.torch as bt

    class Scale(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale=2.0):
            ctx.scale = scale
            return x * scale

        @staticmethod
        def backward(ctx, g):
            return g * ctx.scale, None

    x = torch.ones(3, dtype=torch.float64)
    with pytest.raises(BadInputError, match="stratgy= is neither an option of backcheck.torch.check_function"):
        bt.check_function(Scale, x, stratgy="full")
    assert bt.check_function(Scale, x, scale=3.0).status == "pass"  # a keyword forward takes goes to it


def test_torch_check_under_inference_mode_checks_with_autograd_on(torch) -> None:
    import backcheck.torch as bt

    x = torch.randn(3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        right = bt.check(lambda x: torch.tanh(x).sum(), x)
        wrong = bt.check(lambda x: torch.tanh(x).detach().sum() + 0 * x.sum(), x)
        assert torch.is_inference_mode_enabled()  # the user's mode is as it was
    assert right.status == "pass", right
    assert wrong.status == "fail", wrong
    assert not x.requires_grad


def test_jax_check_takes_floor_detect_and_confidence(x64) -> None:
    import jax.numpy as jnp

    import backcheck.jax as bj

    x = jnp.asarray(np.random.default_rng(0).normal(size=2000))
    default = bj.check(lambda x: jnp.sin(x).sum(), x, strategy="projected")
    one = bj.check(lambda x: jnp.sin(x).sum(), x, strategy="projected", confidence=0.9)
    assert default.status == one.status == "pass"
    assert default.n_evals - one.n_evals in (2, 4) and _three(default)
    t = jnp.linspace(-2.0, 2.0, 7)
    reached = bj.check(lambda x: jnp.tanh(x).sum(), t, floor=1e-8)
    assert reached.status == "pass" and reached.leaves[0].floor_rel < 1e-7, reached
    assert bj.check(lambda x: jnp.tanh(x).sum(), t, floor=1e-15).status == "inconclusive"
    with pytest.raises(BadInputError, match="detect"):
        bj.check(lambda x: jnp.sin(x).sum(), x, detect=0)


def test_jax_an_option_named_like_a_parameter_of_f_is_said_to_be_the_option() -> None:
    jnp = pytest.importorskip("jax.numpy")
    bj = pytest.importorskip("backcheck.jax")

    def f(a, mode="sq"):
        return jnp.sum(a**2) if mode == "sq" else jnp.sum(a)

    with pytest.raises(BadInputError, match="has a parameter mode too") as info:
        bj.check(f, jnp.linspace(-1.0, 1.0, 6), mode="sq")
    assert "positionally" in info.value.hint
    assert bj.check(f, jnp.linspace(-1.0, 1.0, 6), "sq").status == "pass"


def test_jax_argnums_at_an_argument_with_no_float_array_names_it() -> None:
    jnp = pytest.importorskip("jax.numpy")
    bj = pytest.importorskip("backcheck.jax")

    def f(a, n):
        return jnp.sum(a * n)

    with pytest.raises(BadInputError) as info:
        bj.check(f, jnp.linspace(-1.0, 1.0, 6), 3, argnums=1)
    assert info.value.message.startswith("argnums=1 names n, and none"), info.value.message
    with pytest.raises(BadInputError) as info:
        bj.check(lambda n: jnp.sum(n), 3)
    assert info.value.message.startswith("none of"), info.value.message


def test_a_misspelt_option_is_an_argument_error_at_every_entry_point(torch) -> None:
    # (check_object and the torch and jax checks raised BadInputError, not the TypeError an ArgumentError is; a
    # builtin's unknown signature let bt.check(torch.sin, x, stratgy=...) reach torch.sin, told as its error)
    import numpy as np

    import backcheck
    import backcheck.jax as bj
    import backcheck.torch as bt
    from backcheck.errors import ArgumentError

    class Layer:
        def forward(self, x):
            return np.tanh(x)

        def backward(self, d):
            return d

    x = torch.ones(3, dtype=torch.float64)
    calls = [
        lambda: backcheck.check(np.sum, np.ones(3), np.ones_like, stratgy="full"),
        lambda: backcheck.check_layer(np.tanh, lambda d, x: d, (np.ones(3),), stratgy="full"),
        lambda: backcheck.assert_grad(np.sum, np.ones(3), np.ones_like, stratgy="full"),
        lambda: backcheck.assert_layer(np.tanh, lambda d, x: d, (np.ones(3),), stratgy="full"),
        lambda: backcheck.check_object(Layer(), np.ones(3), stratgy="full"),
        lambda: bt.check(torch.sin, x, stratgy="full"),
        lambda: bt.check(lambda t: t.sin(), x, stratgy="full"),
        lambda: bj.check(lambda t: t.sum(), np.ones(3), stratgy="full"),
    ]
    for call in calls:
        with pytest.raises(ArgumentError, match=r"did you mean strategy=\?"):
            call()


def test_assert_entry_points_name_themselves_in_argument_errors() -> None:
    # (assert_grad and assert_layer said 'check() got an unexpected keyword argument', naming a call the user
    # did not write, and hinted check's positional arguments)
    import inspect

    import numpy as np

    import backcheck
    from backcheck.errors import ArgumentError

    cases = [
        (lambda: backcheck.assert_grad(np.sum, np.ones(3), np.ones_like, stratgy="full"), "assert_grad"),
        (lambda: backcheck.assert_grad(np.sum, np.ones(3)), "assert_grad"),
        (lambda: backcheck.assert_layer(np.tanh, lambda d, x: d, (np.ones(3),), sead=1), "assert_layer"),
    ]
    for call, name in cases:
        with pytest.raises(ArgumentError) as info:
            call()
        assert info.value.message.startswith(f"{name}() "), info.value.message
        assert info.value.hint is not None and info.value.hint.startswith(f"call {name}("), info.value.hint
        assert "check(" not in info.value.message + info.value.hint, info.value
    # their signatures are the checks' (a misspelt option's nearest name comes from there, as do editors' hints)
    assert inspect.signature(backcheck.assert_grad) == inspect.signature(backcheck.check)
    assert inspect.signature(backcheck.assert_layer) == inspect.signature(backcheck.check_layer)
    # an argument error raised further in keeps its own words (it names no call of check's)
    with pytest.raises(backcheck.errors.BadInputError, match="^(?!assert_grad)"):
        backcheck.assert_grad(lambda x: np.sum(x), "not an array", np.ones_like)


def test_a_builtins_own_keywords_near_an_option_reach_it(torch) -> None:
    # out= lies near dout=: torch's own error about it is the user's, not a misspelt option
    import backcheck.torch as bt
    from backcheck.errors import ArgumentError, UserFunctionError

    x, y = torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    with pytest.raises(UserFunctionError, match="out="):
        bt.check(torch.add, x, y, out=torch.empty(3, dtype=torch.float64))
    for typo, meant in (("strategie", "strategy"), ("sead", "seed")):
        with pytest.raises(ArgumentError, match=f"did you mean {meant}="):
            bt.check(torch.sin, x, **{typo: 1})
