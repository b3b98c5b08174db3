"""Malformed and extreme input to backcheck.torch, backcheck.jax and backcheck.nn's check: a typed error that
names the culprit, or a sensible verdict; never a bare torch/jax/numpy/Python exception; the user's tensors
and parameters bitwise unchanged."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from backcheck import BackcheckError, BadInputError, GradientStructureError, NonFiniteError, UserFunctionError

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bt = pytest.importorskip("backcheck.torch")
bj = pytest.importorskip("backcheck.jax")


def snapshot(obj: Any) -> Any:
    """Dtype, shape, strides, grad flag and bits of a tensor / array (or a tree of them)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        bits = torch.empty(t.shape, dtype=t.dtype).copy_(t).view(-1).view(torch.uint8) if t.numel() else t
        return ("torch", t.dtype, tuple(t.shape), t.stride(), obj.requires_grad, bits.tolist())
    if isinstance(obj, jax.Array):
        return ("jax", str(obj.dtype), obj.shape, np.asarray(obj).tobytes())
    if isinstance(obj, np.ndarray):
        return ("numpy", obj.dtype, obj.shape, obj.strides, np.ascontiguousarray(obj).tobytes())
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [snapshot(v) for v in obj]
    return repr(obj)


def outcome(call: Any, *watched: Any) -> Any:
    before = [snapshot(w) for w in watched]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call()
    except BackcheckError as exc:
        result = exc
    assert [snapshot(w) for w in watched] == before, "the user's input was changed"
    return result


def typed(call: Any, error: type, *culprits: str, watched: tuple[Any, ...] = ()) -> BackcheckError:
    exc = outcome(call, *watched)
    assert isinstance(exc, error), f"expected {error.__name__}, got {exc!r}"
    for culprit in culprits:
        assert culprit in str(exc), f"{culprit!r} not named in: {exc}"
    assert exc.hint
    return exc


def T(*shape: int, dtype: Any = None) -> Any:
    n = int(np.prod(shape))
    return torch.arange(1.0, 1.0 + n, dtype=dtype or torch.float64).reshape(*shape)


@pytest.fixture(autouse=True)
def _x64() -> Any:
    with jax.enable_x64(True):
        yield


# -- torch ------------------------------------------------------------------------------------------------------
TORCH_INPUTS = [
    ("float64", lambda: T(4), "pass"),
    ("float32", lambda: T(4, dtype=torch.float32), "pass"),
    ("0-d", lambda: torch.tensor(0.5, dtype=torch.float64), "pass"),
    ("non-contiguous", lambda: T(4, 4)[:, ::2], "pass"),
    ("expanded (stride 0)", lambda: T(4)[None].expand(3, 4), "pass"),
    ("transposed", lambda: T(3, 2).t(), "pass"),
    ("channels_last", lambda: T(1, 2, 3, 3).to(memory_format=torch.channels_last), "pass"),
    ("requires_grad leaf", lambda: T(4).requires_grad_(), "pass"),
    ("non-leaf", lambda: T(4).requires_grad_() * 2, "pass"),
    ("complex", lambda: T(4).to(torch.complex128), "pass"),
    ("subnormal", lambda: torch.tensor([5e-324, 1.0], dtype=torch.float64), "pass"),
]


@pytest.mark.parametrize("make, status", [r[1:] for r in TORCH_INPUTS], ids=[r[0] for r in TORCH_INPUTS])
def test_torch_inputs_of_every_layout_are_checked_and_left_unchanged(make: Any, status: str) -> None:
    x = make()
    report = outcome(lambda: bt.check(torch.sin, x), x)
    assert report.status == status, str(report)


@pytest.mark.parametrize(
    "x",
    [torch.arange(4), torch.ones(4, dtype=torch.bool), np.arange(1.0, 5.0), [1.0, 2.0], None, 1.5, "a"],
    ids=["int tensor", "bool tensor", "numpy array", "list", "None", "float", "str"],
)
def test_torch_inputs_without_a_float_tensor_are_refused(x: Any) -> None:
    typed(lambda: bt.check(torch.sin, x), BadInputError, "floating-point tensor")


def test_a_numpy_array_given_to_the_torch_check_is_named_with_the_way_out() -> None:
    with pytest.raises(BadInputError, match="a numpy array") as caught:
        bt.check(torch.sin, np.arange(1.0, 5.0))
    assert "torch.from_numpy" in caught.value.hint and "backcheck.check" in caught.value.hint


@pytest.mark.parametrize(
    "fn",
    [lambda x: None, lambda x: "a", lambda x: 1.0, lambda x: x.long(), lambda x: (), lambda x: (v for v in [x])],
    ids=["None", "str", "float", "int tensor", "empty tuple", "generator"],
)
def test_a_torch_function_returning_no_float_tensor_is_named(fn: Any) -> None:
    x = T(4)
    typed(lambda: bt.check(fn, x), BadInputError, "no floating-point tensor", watched=(x,))


def test_a_torch_function_raising_is_chained_and_the_module_restored() -> None:
    lin = torch.nn.Linear(3, 2).double()

    def fn(x: Any) -> Any:
        lin.weight.data.add_(1.0)
        raise RuntimeError("midway")

    err = typed(lambda: bt.check(fn, T(2, 3), params=lin), UserFunctionError, "midway", watched=(lin.weight, lin.bias))
    assert isinstance(err.__cause__, RuntimeError)


@pytest.mark.parametrize(
    "kwargs, error, culprit",
    [
        (dict(dout=torch.ones(3, dtype=torch.float64)), GradientStructureError, "(3,)"),
        (dict(dout=torch.ones(4, dtype=torch.long)), GradientStructureError, "int64"),
        (dict(numeric_dtype="x"), BadInputError, "numeric_dtype"),
        (dict(vectorized="x"), BadInputError, "vectorized"),
        (dict(strategy="x"), BadInputError, "strategy"),
        (dict(seed=1.5), BadInputError, "seed"),
        (dict(step=-1), BadInputError, "step"),
        (dict(step=1e-30), BadInputError, "[0] = 1"),
        (dict(step={"x": 1e-6}), BadInputError, "step="),
        (dict(params=3), BadInputError, "params"),
        (dict(params={"a": torch.arange(3)}), BadInputError, "a"),
        (dict(forward_mode="x"), BadInputError, "forward_mode"),
        (dict(forward_mode=1), BadInputError, "forward_mode"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_bad_torch_options_are_named(kwargs: dict[str, Any], error: type, culprit: str) -> None:
    x = T(4)
    typed(lambda: bt.check(torch.sin, x, **kwargs), error, culprit, watched=(x,))


# -- jax ----------------------------------------------------------------------------------------------------------
def J(dtype: Any = None) -> Any:
    return jnp.arange(1.0, 5.0, dtype=dtype or jnp.float64)


@pytest.mark.parametrize(
    "fn",
    [lambda x: "a", lambda x: (v for v in [x]), lambda x: {1}],
    ids=["str", "generator", "set"],
)
def test_a_jax_function_returning_junk_names_the_output(fn: Any) -> None:
    x = J()
    typed(lambda: bj.check(fn, x), BadInputError, "out[0]", watched=(x,))


@pytest.mark.parametrize(
    "kwargs, error, culprit",
    [
        (dict(dout="a"), GradientStructureError, "dout[0]"),
        (dict(dout=jnp.full(4, jnp.nan)), NonFiniteError, "dout"),
        (dict(dout=jnp.ones(3)), GradientStructureError, "(3,)"),
        (dict(argnums=1.5), BadInputError, "argnums=1.5"),
        (dict(argnums=5), BadInputError, "argnums=5"),
        (dict(mode="x"), BadInputError, "mode"),
        (dict(step=1e-30), BadInputError, "[0] = 1"),
        (dict(step={"x": 1e-6}), BadInputError, "step="),
        (dict(strategy="x"), BadInputError, "strategy"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_bad_jax_options_are_named(kwargs: dict[str, Any], error: type, culprit: str) -> None:
    x = J()
    typed(lambda: bj.check(jnp.sin, x, **kwargs), error, culprit, watched=(x,))


@pytest.mark.parametrize(
    "x",
    [jnp.arange(4), jnp.ones(4, bool), None, "a", np.array([1.0, 2.0], dtype=object)],
    ids=["int", "bool", "None", "str", "object array"],
)
def test_jax_inputs_without_a_float_array_are_refused(x: Any) -> None:
    typed(lambda: bj.check(jnp.sin, x), BadInputError, "floating-point array")


@pytest.mark.parametrize(
    "make",
    [lambda: J(), lambda: J(jnp.float32), lambda: jnp.array(0.5), lambda: np.arange(1.0, 5.0), lambda: 1.5],
    ids=["float64", "float32", "0-d", "numpy", "python float"],
)
def test_jax_inputs_are_checked_and_left_unchanged(make: Any) -> None:
    x = make()
    assert outcome(lambda: bj.check(jnp.sin, x), x).status == "pass"
    assert outcome(lambda: bj.check(lambda v: jax.lax.stop_gradient(v) * v, x), x).status == "fail"


# -- backcheck.nn ---------------------------------------------------------------------------------------------------
NN_BAD = [
    ("not a module", lambda lin: (3, (np.ones((4, 3)),), {}), BadInputError, "not a int"),
    ("params a str", lambda lin: (lin, (np.ones((4, 3)),), dict(params="abc")), BadInputError, "params is a str"),
    (
        "params misnamed",
        lambda lin: (lin, (np.ones((4, 3)),), dict(params={"wieght": np.ones((2, 3))})),
        BadInputError,
        "wieght",
    ),
    ("unknown option", lambda lin: (lin, (np.ones((4, 3)),), dict(foo=1)), BadInputError, "foo"),
    ("names set by check_module", lambda lin: (lin, (np.ones((4, 3)),), dict(names=["a"])), BadInputError, "names"),
    ("bad strategy", lambda lin: (lin, (np.ones((4, 3)),), dict(strategy="x")), BadInputError, "strategy"),
    ("dout NaN", lambda lin: (lin, (np.ones((4, 3)),), dict(dout=np.full((4, 2), np.nan))), NonFiniteError, "dout"),
    ("dout shape", lambda lin: (lin, (np.ones((4, 3)),), dict(dout=np.ones(3))), GradientStructureError, "(3,)"),
    ("lost step", lambda lin: (lin, (np.ones((4, 3)),), dict(step=1e-30)), BadInputError, "input[0, 0]"),
]


@pytest.mark.parametrize("make, error, culprit", [r[1:] for r in NN_BAD], ids=[r[0] for r in NN_BAD])
def test_bad_input_to_the_nn_check_is_named(make: Any, error: type, culprit: str) -> None:
    from backcheck.nn import Linear
    from backcheck.nn.check import check_module

    lin = Linear(3, 2)
    module, inputs, kwargs = make(lin)
    typed(lambda: check_module(module, *inputs, **kwargs), error, culprit, watched=(lin.weight.data, lin.bias.data))


def test_the_nn_check_at_given_parameter_values_leaves_the_module_alone() -> None:
    from backcheck.nn import Linear
    from backcheck.nn.check import check_module

    lin = Linear(3, 2)
    x = np.arange(12.0).reshape(4, 3)
    at = {"weight": np.full((2, 3), 0.5)}
    report = outcome(lambda: check_module(lin, x, params=at), lin.weight.data, lin.bias.data, x, at)
    assert report.status == "pass"


# -- after the fixes at the frontends' boundaries -------------------------------------------------------------------
@pytest.mark.parametrize(
    "dout, error, culprit",
    [
        ("a", GradientStructureError, "dout for out"),
        (object(), GradientStructureError, "dout for out"),
        (torch.full((4,), float("nan"), dtype=torch.float64), NonFiniteError, "dout for out"),
        (torch.full((4,), -float("inf"), dtype=torch.float64), NonFiniteError, "dout for out"),
        (np.full(4, np.nan), NonFiniteError, "dout for out"),
    ],
    ids=["str", "object", "NaN", "-inf", "numpy NaN"],
)
def test_a_torch_dout_that_is_not_finite_numbers_is_named(dout: Any, error: type, culprit: str) -> None:
    x = T(4)
    typed(lambda: bt.check(torch.sin, x, dout=dout), error, culprit, watched=(x,))


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
def test_nested_tensors_are_refused_by_name() -> None:
    nested = torch.nested.nested_tensor([T(2), T(3)])
    typed(lambda: bt.check(lambda a: a * 2, nested), BadInputError, "nested tensor")


def test_meta_tensors_are_refused_as_inputs_and_outputs() -> None:
    typed(lambda: bt.check(torch.sin, torch.empty(3, device="meta", dtype=torch.float64)), BadInputError, "meta")
    x = T(4)
    typed(lambda: bt.check(lambda v: torch.empty(4, device="meta"), x), BadInputError, "output", "meta", watched=(x,))


def test_a_dout_on_the_meta_device_is_refused_by_name_and_a_sparse_one_is_its_dense_self() -> None:
    x, w = T(3, 4), T(4, 2)

    def f(x, w):
        return torch.tanh(x @ w)

    meta = torch.ones(3, 2, device="meta", dtype=torch.float64)
    typed(lambda: bt.check(f, x, w, dout=meta), BadInputError, "dout for out", "meta", watched=(x, w))
    dense = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dense[0] = 0.0
    sparse = bt.check(f, x, w, dout=dense.to_sparse())
    assert sparse.status == "pass"
    assert [lf.max_abs_err for lf in sparse.leaves] == [lf.max_abs_err for lf in bt.check(f, x, w, dout=dense).leaves]


@pytest.mark.parametrize("fn", [3, None, "sin", np.ones(2)], ids=["int", "None", "str", "array"])
def test_a_function_that_is_not_one_is_named(fn: Any) -> None:
    x, xj = T(4), J()
    typed(lambda: bt.check(fn, x), BadInputError, "fn", "not a function", watched=(x,))
    typed(lambda: bj.check(fn, xj), BadInputError, "fn", "not a function", watched=(xj,))


@pytest.mark.parametrize(
    "call",
    [lambda: bt.check(), lambda: bt.check_function(), lambda: bt.check_module(), lambda: bj.check()],
    ids=["torch check", "torch check_function", "torch check_module", "jax check"],
)
def test_a_frontend_called_without_its_function_is_a_typed_error(call: Any) -> None:
    from backcheck import ArgumentError

    err = typed(call, ArgumentError, "missing")
    assert isinstance(err, TypeError)


# -- Hypothesis over torch layouts and dtypes ---------------------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
hnp = pytest.importorskip("hypothesis.extra.numpy")


class _Smooth(torch.autograd.Function):
    """0.5 x^2 + sin x with a hand-written backward that may be wrong at one element."""

    @staticmethod
    def forward(ctx: Any, x: Any, wrong_at: int) -> Any:
        ctx.save_for_backward(x)
        ctx.wrong_at = wrong_at
        return 0.5 * x * x + torch.sin(x)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        grad = (g * (x + torch.cos(x))).contiguous()
        if ctx.wrong_at >= 0:
            flat = grad.view(-1)
            flat[ctx.wrong_at] += 0.5 * max(1.0, float(flat.abs().max()))
        return grad, None


@st.composite
def torch_points(draw: Any) -> Any:
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    values = draw(hnp.arrays(np.float64, shape, elements=st.floats(-4.0, 4.0, allow_subnormal=False)))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0]))
    t = torch.from_numpy(values * scale).to(dtype)
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided", "flipped"]))
    if layout == "transposed" and t.dim() > 1:
        t = t.transpose(0, -1).contiguous().transpose(0, -1)
    elif layout == "strided":
        t = torch.repeat_interleave(t, 2, dim=-1)[..., ::2]
    elif layout == "flipped":
        t = torch.flip(t, dims=[0])
    return t


@hypothesis.given(torch_points(), st.data())
def test_any_torch_point_gets_an_honest_verdict_and_stays_unchanged(x: Any, data: Any) -> None:
    right = outcome(lambda: bt.check(lambda v: _Smooth.apply(v, -1), x), x)
    assert not isinstance(right, BackcheckError) and right.status != "fail", str(right)
    k = data.draw(st.integers(0, x.numel() - 1))
    wrong = outcome(lambda: bt.check(lambda v: _Smooth.apply(v, k), x), x)
    assert not isinstance(wrong, BackcheckError) and wrong.status != "pass", str(wrong)


def _smooth_jax(wrong_at: int) -> Any:
    @jax.custom_vjp
    def f(x: Any) -> Any:
        return 0.5 * x * x + jnp.sin(x)

    def fwd(x: Any) -> Any:
        return f(x), x

    def bwd(x: Any, g: Any) -> Any:
        grad = g * (x + jnp.cos(x))
        if wrong_at >= 0:
            flat = grad.reshape(-1)
            grad = flat.at[wrong_at].add(0.5 * jnp.maximum(1.0, jnp.max(jnp.abs(flat)))).reshape(grad.shape)
        return (grad,)

    f.defvjp(fwd, bwd)
    return f


@hypothesis.settings(max_examples=10)  # every example traces and compiles anew: a few cover the dtypes
@hypothesis.given(
    st.sampled_from([jnp.float64, jnp.float32, jnp.float16, jnp.bfloat16]),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4), elements=st.floats(-4.0, 4.0)),
    st.data(),
)
def test_any_jax_point_gets_an_honest_verdict_and_stays_unchanged(dtype: Any, values: np.ndarray, data: Any) -> None:
    x = jnp.asarray(values, dtype=dtype)
    right = outcome(lambda: bj.check(_smooth_jax(-1), x), x)
    assert not isinstance(right, BackcheckError) and right.status != "fail", str(right)
    k = data.draw(st.integers(0, x.size - 1))
    wrong = outcome(lambda: bj.check(_smooth_jax(k), x), x)
    assert not isinstance(wrong, BackcheckError) and wrong.status != "pass", str(wrong)


def _cyclic(x: Any) -> Any:
    loop: list[Any] = [x]
    loop.append(loop)
    return loop


def test_pytrees_that_contain_themselves_are_refused() -> None:
    x, xj = T(2), J()
    typed(lambda: bt.check(_cyclic, x), BadInputError, "output", "contains itself", watched=(x,))
    typed(lambda: bt.check(lambda v: 2 * v, x, dout=_cyclic(T(2))), BadInputError, "dout", watched=(x,))
    typed(lambda: bj.check(lambda a: a[0] * 2, _cyclic(xj)), BadInputError, "contains itself")
    typed(lambda: bj.check(lambda v: 2 * v, xj, dout=_cyclic(J())), BadInputError, "dout", watched=(xj,))


def _mlp_point() -> tuple[Any, np.ndarray, np.ndarray]:
    from backcheck.nn import MLP

    return MLP([4, 5, 3]), np.random.default_rng(0).normal(size=(5, 4)), np.array([0, 1, 2, 0, 1])


@pytest.mark.parametrize(
    "change, error, culprit",
    [
        (lambda m, x, y: (3, x, y, {}), BadInputError, "blame takes"),
        (lambda m, x, y: (m, x, y, dict(loss_fn=3)), BadInputError, "loss_fn is an int"),
        (lambda m, x, y: (m, x, y, dict(loss_fn=lambda o, t: 1 / 0)), UserFunctionError, "ZeroDivisionError"),
        (lambda m, x, y: (m, x, y, dict(loss_fn=lambda o, t: "loss")), BadInputError, "loss_fn returned a str"),
        (lambda m, x, y: (m, x, np.array([0, 1, 7, 0, 1]), {}), BadInputError, "label 7"),
        (lambda m, x, y: (m, x[:, :3], y, {}), BadInputError, "(5, 3)"),
        (lambda m, x, y: (m, x, y, dict(foo=1)), BadInputError, "foo"),
    ],
    ids=[
        "not a model",
        "loss_fn an int",
        "loss_fn raises",
        "loss_fn returns a str",
        "label out of range",
        "input of the wrong width",
        "unknown option",
    ],
)
def test_bad_input_to_nn_blame_is_named_and_the_model_restored(change: Any, error: type, culprit: str) -> None:
    from backcheck.nn.check import blame

    model, x, y = _mlp_point()
    m, xx, yy, kwargs = change(model, x, y)
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    typed(lambda: blame(m, xx, yy, **kwargs), error, culprit, watched=(x, y))
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "fn, inputs, error, culprit",
    [
        (3, (np.ones(3),), BadInputError, "fn is an int"),
        (lambda a: 1 / 0, (np.ones(3),), UserFunctionError, "ZeroDivisionError"),
        (lambda a: np.ones(3), (np.ones(3),), BadInputError, "returned a ndarray"),
        (lambda a: a * a, (), BadInputError, "no inputs"),
    ],
    ids=["not a function", "raises", "returns numpy", "no inputs"],
)
def test_bad_input_to_the_nn_double_backward_check_is_named(
    fn: Any, inputs: tuple[Any, ...], error: type, culprit: str
) -> None:
    from backcheck.nn.check import check_grad_of_grad

    typed(lambda: check_grad_of_grad(fn, *inputs), error, culprit, watched=inputs)
