"""backcheck.jax on what JAX users write: dtype-strict float32 rules, Python floats and keyword arrays,
custom_vjp with mode='both', masked and log-domain inputs, points next to a domain edge, bfloat16, 0-d and
empty inputs. Every correct rule passes, and the same rule with a bug fails, named."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from backcheck.errors import BadInputError, NonFiniteError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")


@pytest.fixture
def x64() -> Iterator[None]:
    """jax's x64 mode for one test, restored afterwards."""
    assert not bj.x64_enabled()
    with jax.enable_x64(True):
        yield
    assert not bj.x64_enabled()


def _vjp_rule(f: Callable, grad: Callable) -> Callable:
    """``f`` with the custom_vjp rule ``grad(*args, g) -> tuple of cotangents``."""
    rule = jax.custom_vjp(f)
    rule.defvjp(lambda *a: (f(*a), a), lambda a, g: grad(*a, g))
    return rule


# ------------------------------------------------------------------------------------------------------------
# the rule under test runs as the user runs it: float32 with x64 off, even when the numeric side is float64
# ------------------------------------------------------------------------------------------------------------
def _strict_sin(factor_at_1: float) -> Callable:
    @jax.custom_jvp
    def f(x):
        return jnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        scale = jnp.ones(x.shape).at[1].set(factor_at_1)  # float32 with x64 off, float64 with it on
        return jnp.sin(x), jnp.cos(x) * t * scale

    return f


@pytest.mark.parametrize("mode", ["rev", "fwd", "both"])
def test_dtype_strict_float32_rule_with_float64_numerics(mode: str) -> None:
    x = np.linspace(0.1, 0.9, 4, dtype=np.float32)
    with jax.enable_x64(True), pytest.raises(TypeError, match="corresponding shapes and dtypes"):
        jax.jvp(_strict_sin(1.0), (jnp.asarray(x),), (jnp.ones(4, jnp.float32),))  # the rule is dtype-strict
    report = bj.check(lambda x: _strict_sin(1.0)(x).sum(), x, numeric_dtype="float64", mode=mode)
    assert report.ok, str(report)
    assert {lf.dtype for lf in report.leaves} == {"float32"}
    assert any("x64 mode was on for the finite differences only" in n for n in report.notes)
    assert not bj.x64_enabled()
    bad = bj.check(lambda x: _strict_sin(1.5)(x).sum(), x, numeric_dtype="float64", mode=mode)
    assert bad.status == "fail"
    for lf in bad.leaves:
        assert lf.n_mismatch == 1 and lf.worst[0].index == (1,)


# ------------------------------------------------------------------------------------------------------------
# Python floats, keyword arrays, 0-d and empty inputs
# ------------------------------------------------------------------------------------------------------------
cube = _vjp_rule(lambda x: x**3, lambda x, g: (3 * x**2 * g,))
cube_wrong = _vjp_rule(lambda x: x**3, lambda x, g: (2 * x**2 * g,))


def _scaled(x, s):
    return cube_wrong(s) * jnp.sum(jnp.sin(x))


def test_python_float_is_a_0d_parameter() -> None:
    assert float(jax.grad(cube)(2.0)) == pytest.approx(12.0)  # what jax itself accepts
    report = bj.check(cube, 2.0)
    assert report.ok and [(lf.name, lf.shape, lf.dtype) for lf in report.leaves] == [("x", (), "float32")]
    np.testing.assert_allclose(report.analytic["x"], 12.0, rtol=4 * np.finfo(np.float32).eps)
    wrong = bj.check(cube_wrong, 2.0)
    assert wrong.leaf("x").status == "fail" and wrong.leaf("x").worst[0].name == "x"


def test_python_float_beside_arrays_is_constant_unless_chosen(x64: None) -> None:
    beside = bj.check(_scaled, jnp.linspace(0.1, 1.0, 3), 2.0)
    assert beside.ok and [lf.name for lf in beside.leaves] == ["x"]
    assert any("s were passed through as constants" in n for n in beside.notes)
    chosen = bj.check(_scaled, jnp.linspace(0.1, 1.0, 3), 2.0, argnums=(0, 1))
    assert chosen.leaf("x").status == "pass" and chosen.leaf("s").status == "fail"


def _matmul_wrong_at(i: int, j: int) -> Callable:
    return _vjp_rule(lambda x, w: x @ w, lambda x, w, g: (g @ w.T, (x.T @ g).at[i, j].multiply(1.5)))


def _model(x, w=None, b=None):
    return jnp.tanh(_matmul_wrong_at(2, 0)(x, w) + b)


def test_keyword_arrays_are_checked_by_name(x64: None) -> None:
    r = np.random.default_rng(0)
    x, w, b = r.normal(size=(4, 3)), r.normal(size=(3, 3)), r.normal(size=3)
    report = bj.check(_model, x, w=w, b=b)
    assert sorted(lf.name for lf in report.leaves) == ["b", "w", "x"]
    assert report.leaf("x").status == "pass" and report.leaf("b").status == "pass"
    assert report.leaf("w").n_mismatch == 1 and report.leaf("w").worst[0].name == "w[2, 0]"
    only_w = bj.check(_model, x, w=w, b=b, argnums="w")
    assert [lf.name for lf in only_w.leaves] == ["w"] and only_w.leaf("w").n_mismatch == 1
    tree = bj.check(lambda x, params: jnp.sum(jnp.tanh(x @ params["w"])), x, params={"w": w})
    assert tree.ok and [lf.name for lf in tree.leaves] == ["x", "params['w']"]
    with pytest.raises(BadInputError, match="wieght= is neither an option"):
        bj.check(_model, x, wieght=w, b=b)


def test_0d_inputs(x64: None) -> None:
    for x in (jnp.asarray(0.7), np.float64(0.7), np.asarray(0.7)):
        report = bj.check(cube, x)
        assert report.ok and report.leaf("x").shape == () and report.leaf("x").n_checked == 1
        assert bj.check(cube_wrong, x).leaf("x").status == "fail"


def test_empty_inputs(x64: None) -> None:
    def f(x, e):
        return jnp.sum(cube_wrong(x)) + jnp.sum(e**2)

    report = bj.check(f, jnp.linspace(0.5, 1.0, 3), jnp.ones((0, 2)))
    e = report.leaf("e")
    assert e.status == "pass" and (e.n_elements, e.n_checked) == (0, 0) and "empty" in e.note
    assert report.leaf("x").n_mismatch == 3 and report.status == "fail"
    only_empty = bj.check(lambda e: jnp.sum(e**2), jnp.ones((0, 2)))
    assert only_empty.ok and [lf.name for lf in only_empty.leaves] == ["e"]
    assert any("trivially" in n for n in only_empty.notes)


def test_custom_vjp_mode_both_checks_reverse(x64: None) -> None:
    report = bj.check(cube_wrong, jnp.linspace(0.5, 1.0, 3), mode="both")
    assert [lf.name for lf in report.leaves] == ["x"] and report.leaf("x").n_mismatch == 3
    assert any("forward mode was not checked" in n for n in report.notes)


# ------------------------------------------------------------------------------------------------------------
# non-finite outputs and inputs
# ------------------------------------------------------------------------------------------------------------
def test_minus_inf_output_is_reported_as_minus_inf() -> None:
    zeros = np.zeros(3)
    with pytest.raises(NonFiniteError, match=r"= -inf"):
        bj.check(jnp.log, zeros, dout=-np.ones(3))  # phi = <dout, out> is +inf: the output itself is -inf
    with pytest.raises(NonFiniteError, match=r"= -inf"):
        bj.check(lambda x: jnp.sum(jnp.log(x)), zeros)


def _masked(shape: tuple[int, ...], where: list[tuple[int, ...]], seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=shape)
    for idx in where:
        x[idx] = -np.inf
    return x


def _attention(q, k, mask):
    return jax.nn.softmax(q @ k.T + mask, axis=-1)


log1mexp_ok = _vjp_rule(lambda x: jnp.log(-jnp.expm1(-x)), lambda x, g: (g / jnp.expm1(x),))
log1mexp_wrong = _vjp_rule(lambda x: jnp.log(-jnp.expm1(-x)), lambda x, g: (g / x,))  # the small-x slope
stable_lse = _vjp_rule(
    lambda x: jax.scipy.special.logsumexp(x, axis=-1),
    lambda x, g: (g[..., None] * jax.nn.softmax(x, axis=-1),),
)
lse_wrong = _vjp_rule(
    lambda x: jax.scipy.special.logsumexp(x, axis=-1),
    lambda x, g: (jnp.mean(g) * jax.nn.softmax(x, axis=-1),),  # one number for every row instead of g[i]
)

# name -> (fn, args); the -inf entries are masks
MASKED = {
    "softmax": (lambda x: jax.nn.softmax(x, axis=-1), (_masked((3, 4), [(0, 1), (2, 0), (2, 3)]),)),
    "logsumexp": (lambda x: jax.scipy.special.logsumexp(x, axis=-1), (_masked((3, 4), [(1, 2)]),)),
    "log_softmax": (lambda x: jax.nn.log_softmax(x, axis=-1), (_masked((2, 5), [(0, 0), (1, 4)]),)),
    "logaddexp": (
        jnp.logaddexp,
        (np.array([0.3, -np.inf, 1.2, -np.inf, -0.5]), np.array([0.3, 0.7, -np.inf, -np.inf, -0.5])),
    ),
    "attention": (
        _attention,
        (_masked((3, 2), [], 1), _masked((4, 2), [], 2), np.triu(np.full((3, 4), -np.inf), k=2)),
    ),
    "custom_vjp_logsumexp": (stable_lse, (_masked((3, 4), [(0, 0), (1, 3)]),)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(MASKED))
def test_masked_entries_are_left_out(name: str, dtype: type, x64: None) -> None:
    fn, raw = MASKED[name]
    args = [np.asarray(a, dtype=dtype) for a in raw]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy warning leaks from -inf entries
        report = bj.check(fn, *args)
    assert report.ok, str(report)
    status = report.element_status
    for lf, a in zip(report.leaves, args, strict=True):
        finite = np.isfinite(a)
        assert lf.n_checked == finite.sum() and lf.n_elements == a.size
        assert np.all(status[lf.name][~finite] == "") and np.all(status[lf.name][finite] != "")
    if not all(np.isfinite(a).all() for a in args):
        assert any("left out of the check" in n for n in report.notes)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_masked_wrong_rule_fails(dtype: type, x64: None) -> None:
    x = _masked((3, 4), [(0, 0), (1, 3)]).astype(dtype)
    report = bj.check(lse_wrong, x)
    lf = report.leaf("x")
    assert lf.status == "fail" and lf.n_checked == 10
    assert all(np.isfinite(x[e.index]) for e in lf.worst)


@pytest.mark.parametrize("dtype, near", [(np.float32, 1e-3), (np.float64, 3e-6)])
def test_point_next_to_a_pole_gets_a_step_inside_the_domain(dtype: type, near: float, x64: None) -> None:
    x = np.array([near, 0.5, 2.0], dtype=dtype)
    report = bj.check(log1mexp_ok, x, numeric_dtype="native")
    assert report.ok, str(report)
    edge = [n for n in report.notes if "edge of" in n]
    assert len(edge) == 1 and "x[0]" in edge[0] and "x[1]" not in edge[0] and "shrunk" in edge[0]
    wrong = bj.check(log1mexp_wrong, x, numeric_dtype="native")
    # 1/x for 1/expm1(x) is wrong everywhere: by x/2 relative, 5e-4 at x[0] (above float32's 2.5e-4 floor)
    mismatched = {e.index for e in wrong.leaf("x").worst if e.status == "mismatch"}
    assert wrong.leaf("x").n_mismatch >= 2 and mismatched >= {(1,), (2,)}


def test_point_on_the_edge_is_differenced_from_its_finite_side(x64: None) -> None:
    # no step keeps x - h inside the domain at x[0] = 0: the right side alone gives the slope (0 there)
    pow15 = _vjp_rule(lambda x: jnp.sum(x * jnp.sqrt(x)), lambda x, g: (1.5 * g * jnp.sqrt(x),))  # finite at 0
    report = bj.check(pow15, np.array([0.0, 1.0]))
    assert report.ok and any("edge of" in n and "x[0]" in n for n in report.notes), str(report)
    off = _vjp_rule(lambda x: jnp.sum(x * jnp.sqrt(x)), lambda x, g: (1.5 * g * jnp.sqrt(x) + 0.1 * (x == 0),))
    assert [e.name for e in bj.check(off, np.array([0.0, 1.0])).mismatches] == ["x[0]"]
    # NaN on both sides (an isolated point of the domain): still a typed error naming the element
    isolated = _vjp_rule(
        lambda x: jnp.sum(x) + jnp.where(x[0] == 0, 0.0, jnp.nan), lambda x, g: (g * jnp.ones_like(x),)
    )
    with pytest.raises(NonFiniteError, match=r"x\[0\]"):
        bj.check(isolated, np.array([0.0, 1.0]))


# ------------------------------------------------------------------------------------------------------------
# bfloat16 at bfloat16's resolution
# ------------------------------------------------------------------------------------------------------------
# the derivative x computed as the difference of two larger bfloat16 products: its rounding is bfloat16's
half_square = _vjp_rule(lambda x: jnp.sum(x * x) / 2, lambda x, g: (g * (x * 101 - x * 100),))


@pytest.mark.parametrize("seed", range(3))
def test_bfloat16_is_judged_at_its_own_resolution(seed: int) -> None:
    x = jnp.asarray(np.random.default_rng(seed).uniform(0.5, 2.0, size=16), dtype=jnp.bfloat16)
    report = bj.check(half_square, x)
    lf = report.leaf("x")
    # bfloat16's own rounding is about 1% of each element: beyond float16's resolution, never a failure; where
    # its bound is too wide to see errors that matter the verdict is inconclusive, and says why
    assert report.status != "fail" and lf.n_mismatch == 0, str(report)
    assert report.ok or "cannot see smaller errors" in lf.note, str(report)
    assert lf.dtype == "bfloat16" and lf.max_rel_err > 64 * 2.0**-10  # beyond float16's resolution
    assert any("bfloat16's resolution" in n for n in report.notes)
    flipped = _vjp_rule(lambda x: jnp.sum(x * x) / 2, lambda x, g: (-g * x,))
    assert bj.check(flipped, x).leaf("x").n_mismatch == 16


def _float32_rule(scale: float) -> Callable[..., Any]:
    @jax.custom_vjp
    def f(x: Any) -> Any:
        return jnp.sum(jnp.sin(x))

    def fwd(x: Any) -> Any:
        return f(x), x

    def bwd(x: Any, g: Any) -> Any:
        return ((scale * g * jnp.cos(x)).astype(jnp.float32),)  # float32 for a float64 input

    f.defvjp(fwd, bwd)
    return f


def test_a_float32_gradient_for_a_float64_input_is_judged_at_float32s_resolution(x64: None) -> None:
    x = np.random.default_rng(0).standard_normal(7)
    report = bj.check(_float32_rule(1.0), x)
    assert report.ok, str(report)
    assert any("float32 for a float64 input" in n for n in report.notes)
    wrong = bj.check(_float32_rule(1.0 + 1e-3), x)  # a formula error above float32's resolution still fails
    assert wrong.status == "fail"
