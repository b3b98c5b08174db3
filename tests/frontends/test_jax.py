"""backcheck.jax beside jax.test_util.check_grads; buggy custom_vjp / custom_jvp rules; pytrees; x64."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from backcheck.errors import BadInputError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
logsumexp = pytest.importorskip("jax.scipy.special").logsumexp
check_grads = pytest.importorskip("jax.test_util").check_grads
bj = pytest.importorskip("backcheck.jax")


@pytest.fixture
def x64() -> Iterator[None]:
    """jax's x64 mode for one test, restored afterwards."""
    assert not bj.x64_enabled()
    with jax.enable_x64(True):
        yield
    assert not bj.x64_enabled()


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _away(a: np.ndarray, gap: float = 0.2) -> np.ndarray:
    return np.where(a >= 0, a + gap, a - gap)


def _distinct(rng: np.random.Generator, *shape: int) -> np.ndarray:
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.05).reshape(shape)


def _mlp(params: dict, x: jnp.ndarray) -> jnp.ndarray:
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"]


def _conv(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    return jax.lax.conv_general_dilated(x, w, window_strides=(1, 1), padding="SAME")


# name -> (fn, make(rng) -> args as float64 numpy trees)
FUNCS = {
    "tanh": (jnp.tanh, lambda r: (r.normal(size=(3, 4)),)),
    "sin_exp": (lambda x: jnp.sin(x) * jnp.exp(-(x**2)), lambda r: (r.normal(size=5),)),
    "matmul": (jnp.matmul, lambda r: (r.normal(size=(3, 4)), r.normal(size=(4, 2)))),
    "einsum": (
        lambda a, b: jnp.einsum("bij,jk->bik", a, b),
        lambda r: (r.normal(size=(2, 2, 3)), r.normal(size=(3, 2))),
    ),
    "softmax": (lambda x: jax.nn.softmax(x, axis=-1), lambda r: (r.normal(size=(3, 4)),)),
    "log_softmax": (lambda x: jax.nn.log_softmax(x, axis=-1), lambda r: (r.normal(size=(3, 4)),)),
    "gelu": (jax.nn.gelu, lambda r: (r.normal(size=6),)),
    "relu": (jax.nn.relu, lambda r: (_away(r.normal(size=6)),)),
    "silu_elu": (lambda x: jax.nn.silu(x) + jax.nn.elu(x), lambda r: (_away(r.normal(size=6)),)),
    "softplus_sigmoid": (lambda x: jax.nn.softplus(x) * jax.nn.sigmoid(x), lambda r: (r.normal(size=6),)),
    "logsumexp": (lambda x: logsumexp(x, axis=-1), lambda r: (r.normal(size=(3, 4)),)),
    "norm": (lambda x: jnp.linalg.norm(x, axis=-1), lambda r: (r.normal(size=(3, 4)),)),
    "cumsum_cumprod": (
        lambda x: jnp.cumsum(x, 1) + jnp.cumprod(x, 1),
        lambda r: (_away(r.normal(size=(2, 4))),),
    ),
    "where": (
        lambda x, y: jnp.where(x > 0, x * y, y**2),
        lambda r: (_away(r.normal(size=5)), r.normal(size=5)),
    ),
    "take_along_axis": (
        lambda x: jnp.take_along_axis(x, jnp.array([[0, 2], [1, 1], [3, 0]]), axis=1),
        lambda r: (r.normal(size=(3, 4)),),
    ),
    "solve": (
        lambda a, b: jnp.linalg.solve(a + 3 * jnp.eye(3), b),
        lambda r: (r.normal(size=(3, 3)), r.normal(size=(3, 2))),
    ),
    "slogdet": (lambda a: jnp.linalg.slogdet(a + 3 * jnp.eye(3))[1], lambda r: (r.normal(size=(3, 3)),)),
    "conv": (_conv, lambda r: (r.normal(size=(1, 2, 4, 4)), r.normal(size=(3, 2, 3, 3)))),
    "max_sort": (lambda x: jnp.max(x, axis=1) + jnp.sort(x, axis=1)[:, 1], lambda r: (_distinct(r, 3, 4),)),
    "standardize": (lambda x: jax.nn.standardize(x, axis=-1), lambda r: (r.normal(size=(2, 5)),)),
    "arctan2": (jnp.arctan2, lambda r: (r.normal(size=4), _away(r.normal(size=4)))),
    "mlp_pytree": (
        _mlp,
        lambda r: (
            {"w1": r.normal(size=(3, 4)), "b1": r.normal(size=4), "w2": r.normal(size=(4, 2))},
            r.normal(size=(5, 3)),
        ),
    ),
}


def _args(name: str, dtype: type) -> tuple:
    _, make = FUNCS[name]
    raw = make(_rng(sum(map(ord, name))))
    return jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a, dtype=dtype)), raw)


def test_there_are_at_least_20_functions() -> None:
    assert len(FUNCS) >= 20


#: The same jitted functions for jax's own check_grads (jit makes it about twice as fast).
JITTED = {name: jax.jit(fn) for name, (fn, _) in FUNCS.items()}


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_float64_agrees_with_check_grads(name: str, x64: None) -> None:
    args = _args(name, np.float64)
    report = bj.check(FUNCS[name][0], *args)
    assert report.ok, str(report)
    assert {lf.dtype for lf in report.leaves} == {"float64"}
    check_grads(JITTED[name], args, order=1, modes=("rev",))  # raises if jax's own check fails


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_float32_no_false_alarm(name: str, x64: None) -> None:
    # float32 analytic gradients against float64 finite differences; the numeric evaluation compiled by the
    # float64 test above is reused (same function, shapes and dtypes), only the float32 vjp is compiled
    report = bj.check(FUNCS[name][0], *_args(name, np.float32))
    assert report.ok, str(report)
    assert {lf.dtype for lf in report.leaves} == {"float32"}
    assert any("float64" in n for n in report.notes)


@pytest.mark.parametrize(
    "name",
    [
        "softmax",
        "conv",
        "mlp_pytree",
        "solve",
        "max_sort",
        "logsumexp",
        "cumsum_cumprod",
        "standardize",
        "norm",
        "silu_elu",
    ],
)
def test_float32_no_false_alarm_with_float32_numerics(name: str) -> None:
    # x64 off: by default the differences run in float64 (x64 mode for them only); asked, in float32
    report = bj.check(FUNCS[name][0], *_args(name, np.float32), vectorized=False, numeric_dtype="float32")
    assert report.ok, str(report)
    assert not any("float64" in n for n in report.notes), report.notes
    default = bj.check(FUNCS[name][0], *_args(name, np.float32), vectorized=False)
    assert default.ok, str(default)
    assert any("x64 mode was on for the finite differences only" in n for n in default.notes), default.notes


def test_check_grads_and_backcheck_both_fail_a_wrong_rule(x64: None) -> None:
    x = jnp.linspace(-1.0, 1.0, 5)
    assert not bj.check(lambda x: wrong_sign(x).sum(), x).ok
    with pytest.raises(AssertionError):
        check_grads(wrong_sign, (x,), order=1, modes=("rev",))


# ------------------------------------------------------------------------------------------------------------
# buggy custom_vjp rules: the report names the wrong input and element
# ------------------------------------------------------------------------------------------------------------
@jax.custom_vjp
def wrong_sign(x):
    return jnp.sin(x)


wrong_sign.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (-jnp.cos(x) * g,))


def _matmul_rule(grad_w):
    @jax.custom_vjp
    def matmul(x, w):
        return x @ w

    matmul.defvjp(lambda x, w: (x @ w, (x, w)), lambda res, g: (g @ res[1].T, grad_w(res[0], g)))
    return matmul


good_matmul = _matmul_rule(lambda x, g: x.T @ g)
no_transpose = _matmul_rule(lambda x, g: (x.T @ g).T)
one_wrong = _matmul_rule(lambda x, g: (x.T @ g).at[2, 0].multiply(1.5))


@jax.custom_vjp
def sum_squares(x):
    return jnp.sum(x**2)


sum_squares.defvjp(lambda x: (jnp.sum(x**2), x), lambda x, g: (2 * x * g / x.size,))  # mean, not sum


def _xw(seed: int, dtype: type = np.float64) -> tuple[jnp.ndarray, jnp.ndarray]:
    r = _rng(seed)
    return jnp.asarray(r.normal(size=(4, 3)).astype(dtype)), jnp.asarray(r.normal(size=(3, 3)).astype(dtype))


def test_correct_rule_passes(x64: None) -> None:
    assert bj.check(good_matmul, *_xw(1)).ok


def test_wrong_sign(x64: None) -> None:
    report = bj.check(wrong_sign, jnp.linspace(-1.0, 1.0, 5))
    assert report.leaf("x").status == "fail" and report.leaf("x").n_mismatch == 5


def test_missing_transpose(x64: None) -> None:
    report = bj.check(no_transpose, *_xw(2))
    assert report.leaf("x").status == "pass"
    w = report.leaf("w")
    assert w.status == "fail" and w.n_mismatch == 6
    assert all(e.index[0] != e.index[1] for e in w.worst if e.status == "mismatch")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_wrong_element(dtype: type, x64: None) -> None:
    report = bj.check(one_wrong, *_xw(3, dtype))
    w = report.leaf("w")
    assert report.leaf("x").status == "pass"
    assert w.n_mismatch == 1 and w.worst[0].name == "w[2, 0]" and w.worst[0].index == (2, 0)


def test_one_wrong_element_float32_numerics() -> None:
    report = bj.check(one_wrong, *_xw(3, np.float32))
    assert report.leaf("w").n_mismatch == 1 and report.leaf("w").worst[0].index == (2, 0)


def test_mean_instead_of_sum(x64: None) -> None:
    report = bj.check(sum_squares, jnp.asarray(_rng(4).normal(size=(2, 3))))
    x = report.leaf("x")
    assert x.status == "fail" and x.n_mismatch == 6
    assert x.worst[0].analytic / x.worst[0].numeric == pytest.approx(1 / 6)


def test_pytree_names_the_wrong_leaf_and_element(x64: None) -> None:
    def model(params, x):
        return jnp.tanh(one_wrong(x, params["w"]) + params["b"])

    r = _rng(5)
    params = {"b": jnp.asarray(r.normal(size=3)), "w": jnp.asarray(r.normal(size=(3, 3)))}
    report = bj.check(model, params, jnp.asarray(r.normal(size=(4, 3))))
    assert [lf.name for lf in report.leaves] == ["params['b']", "params['w']", "x"]
    assert report.leaf("params['b']").status == "pass" and report.leaf("x").status == "pass"
    w = report.leaf("params['w']")
    assert w.n_mismatch == 1 and w.worst[0].name == "params['w'][2, 0]"
    only_params = bj.check(model, params, jnp.asarray(r.normal(size=(4, 3))), argnums=0)
    assert [lf.name for lf in only_params.leaves] == ["params['b']", "params['w']"]


# ------------------------------------------------------------------------------------------------------------
# custom_jvp rules, forward and both modes
# ------------------------------------------------------------------------------------------------------------
def _sin_rule(factor_at_1: float):
    @jax.custom_jvp
    def f(x):
        return jnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return jnp.sin(x), jnp.cos(x) * t * jnp.where(jnp.arange(x.size) == 1, factor_at_1, 1.0)

    return f


def test_custom_jvp_forward_and_both(x64: None) -> None:
    x = jnp.linspace(0.1, 0.9, 4)
    assert bj.check(_sin_rule(1.0), x, mode="both").ok
    bad = _sin_rule(1.5)
    fwd = bj.check(bad, x, mode="fwd")
    assert fwd.leaf("x").n_mismatch == 1 and fwd.leaf("x").worst[0].index == (1,)
    both = bj.check(bad, x, mode="both")
    assert [lf.name for lf in both.leaves] == ["x", "jvp:x"]
    assert both.leaf("jvp:x").worst[0].name == "jvp:x[1]" and both.leaf("x").n_mismatch == 1  # vjp = jvp^T
    assert both.n_evals < 2 * fwd.n_evals


def test_both_modes_on_custom_vjp_checks_reverse_and_says_why_not_forward(x64: None) -> None:
    both = bj.check(good_matmul, *_xw(6), mode="both")
    assert both.ok and [lf.name for lf in both.leaves] == ["x", "w"]
    assert any("forward mode was not checked" in n and "custom_vjp" in n for n in both.notes)
    assert not any("without jit" in n for n in both.notes)  # the refusal is jax's rule, not a jit failure
    wrong = bj.check(one_wrong, *_xw(6), mode="both")
    assert wrong.leaf("w").n_mismatch == 1 and wrong.leaf("w").worst[0].name == "w[2, 0]"
    with pytest.raises(BadInputError, match="mode='rev'"):
        bj.check(good_matmul, *_xw(6), mode="fwd")


# ------------------------------------------------------------------------------------------------------------
# jit, vectorization, x64, inputs untouched
# ------------------------------------------------------------------------------------------------------------
def test_jitted_function_and_compile_reuse(x64: None) -> None:
    f = jax.jit(lambda x, w: jnp.tanh(x @ w))
    x, w = _xw(7)
    first = bj.check(f, x, w)
    assert first.ok and first.title == "<lambda>" or first.ok
    again = bj.check(f, x, w)
    assert again.ok and again.n_evals == first.n_evals


def test_function_jit_cannot_trace_runs_eagerly(x64: None) -> None:
    def head(x, n):
        return jnp.sin(x[: int(n)])  # int(n) needs a concrete value: jit cannot trace it

    report = bj.check(head, jnp.linspace(0.1, 1.0, 4), np.array(3), vectorized=False)
    assert report.ok and any("without jit" in n for n in report.notes)
    assert [lf.name for lf in report.leaves] == ["x"]


@pytest.mark.parametrize("name", ["mlp_pytree", "max_sort", "conv"])
def test_vectorized_equals_serial(name: str, x64: None) -> None:
    fn = FUNCS[name][0]
    args = _args(name, np.float32)
    vec, ser = bj.check(fn, *args, vectorized=True), bj.check(fn, *args, vectorized=False)
    assert any("jax.vmap" in n for n in vec.notes) and not any("jax.vmap" in n for n in ser.notes)
    assert vec.n_evals == ser.n_evals
    assert [(lf.name, lf.status, lf.counts) for lf in vec.leaves] == [
        (lf.name, lf.status, lf.counts) for lf in ser.leaves
    ]


def test_vectorized_equals_serial_on_failure(x64: None) -> None:
    vec, ser = bj.check(one_wrong, *_xw(8)), bj.check(one_wrong, *_xw(8), vectorized=False)
    assert vec.n_evals == ser.n_evals and vec.leaf("w").counts == ser.leaf("w").counts


def test_numeric_float64_turns_x64_on_for_one_check_only() -> None:
    report = bj.check(one_wrong, *_xw(9, np.float32), numeric_dtype="float64")
    assert not bj.x64_enabled()
    assert any("x64 mode was on for the finite differences only" in n for n in report.notes)
    assert report.leaf("w").n_mismatch == 1 and report.leaf("w").dtype == "float32"


def test_numpy_inputs_untouched(x64: None) -> None:
    r = _rng(10)
    x, w = r.normal(size=(4, 3)), r.normal(size=(3, 3))
    xb, wb = x.copy(), w.copy()
    bj.check(no_transpose, x, w)
    assert np.array_equal(x, xb) and np.array_equal(w, wb)


def test_dout_scalar_and_integer_leaves(x64: None) -> None:
    x = jnp.asarray(_rng(11).normal(size=(3, 2)))
    report = bj.check(
        lambda x, k, scale: (jnp.sin(x) * scale, jnp.argmax(x, axis=1) + k), x, 2, 3.0, dout=jnp.ones((3, 2))
    )
    assert [lf.name for lf in report.leaves] == ["x"] and report.ok
    np.testing.assert_allclose(report.analytic["x"], 3.0 * np.cos(np.asarray(x)), rtol=1e-12)
    scalar = bj.check(lambda x: jnp.sum(x**2), x)
    np.testing.assert_allclose(scalar.analytic["x"], 2 * np.asarray(x), rtol=1e-12)


def test_bad_arguments() -> None:
    with pytest.raises(BadInputError):
        bj.check(lambda i: i * 2, jnp.arange(3))
    with pytest.raises(BadInputError):
        bj.check(jnp.sin, jnp.ones(2), mode="sideways")
    with pytest.raises(BadInputError):
        bj.check(jnp.sin, jnp.ones(2), argnums=3)
