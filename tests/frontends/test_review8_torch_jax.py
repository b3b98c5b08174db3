"""Review 8 (torch and jax frontends): a backward's linearity in the sign of its cotangent, the numbers of the
'nonlinear backward' message, forward-mode rules nonlinear in their tangent."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")
bt = pytest.importorskip("backcheck.torch")
CubeLossPowInPlace = pytest.importorskip("backcheck.zoo.torch_functions").CubeLossPowInPlace

X = [0.3, -1.2, 2.0]


# -- 1. a backward that keeps the positive part (or the size) of its cotangent ------------------------------------
class LogSumExpGuided(torch.autograd.Function):
    """logsumexp (a scalar) whose backward drops negative cotangents (guided backpropagation)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.logsumexp(x, 0)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g.clamp(min=0) * torch.exp(x - y)


class SumSin(torch.autograd.Function):
    """sum(sin x), right."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin().sum()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.cos()


class SumSinAbsG(SumSin):
    """sum(sin x) whose backward uses |g|."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.abs() * x.cos()


@pytest.mark.parametrize("fn", [LogSumExpGuided, SumSinAbsG])
def test_torch_positive_part_backward_fails_nonlinear(fn):
    x = torch.tensor(X, dtype=torch.float64)
    r = bt.check_function(fn, x)
    assert r.status == "fail"
    assert [f.kind for f in r.findings] == ["nonlinear backward"]
    assert "times -4" in r.findings[0].message


def test_torch_linear_backward_still_passes():
    r = bt.check_function(SumSin, torch.tensor(X, dtype=torch.float64))
    assert r.status == "pass", r


def _guided_lse():
    @jax.custom_vjp
    def lse(x):
        return jax.nn.logsumexp(x)

    lse.defvjp(lambda x: (lse(x), x), lambda x, g: (jnp.maximum(g, 0.0) * jax.nn.softmax(x),))
    return lse


def _abs_sin():
    @jax.custom_vjp
    def s(x):
        return jnp.sum(jnp.sin(x))

    s.defvjp(lambda x: (s(x), x), lambda x, g: (jnp.abs(g) * jnp.cos(x),))
    return s


@pytest.mark.parametrize("make", [_guided_lse, _abs_sin])
def test_jax_positive_part_backward_fails_nonlinear(make):
    r = bj.check(make(), jnp.array(X))
    assert r.status == "fail"
    assert "nonlinear backward" in [f.kind for f in r.findings]


def test_jax_linear_rule_passes():
    @jax.custom_vjp
    def s(x):
        return jnp.sum(jnp.sin(x))

    s.defvjp(lambda x: (s(x), x), lambda x, g: (g * jnp.cos(x),))
    assert bj.check(s, jnp.array(X)).status == "pass"


# -- 2. the 'nonlinear backward' message quotes the scale it names --------------------------------------------------
def _quoted(message: str) -> tuple[float, float, float]:
    """(scale, scaled-back value, value at the cotangent itself) as the message quotes them."""
    m = re.search(r"times (-?)(1/)?([0-9.]+) gives.*?\(x\[0\]: (\S+) against (\S+)\)", message)
    assert m is not None, message
    size = float(m.group(3))
    scale = (1 / size if m.group(2) else size) * (-1 if m.group(1) else 1)
    return scale, float(m.group(4)), float(m.group(5))


class SumForgetsG(torch.autograd.Function):
    """sum(x) whose backward forgets grad_output: scaled back by k it gives 1/k."""

    @staticmethod
    def forward(ctx, x):
        return x.sum()

    @staticmethod
    def backward(ctx, g):
        return torch.ones(3, dtype=torch.float64)


def test_torch_nonlinear_message_quotes_its_own_scale():
    r = bt.check_function(SumForgetsG, torch.tensor(X, dtype=torch.float64))
    (f,) = [f for f in r.findings if f.kind == "nonlinear backward"]
    scale, got, first = _quoted(f.message)
    assert first == pytest.approx(1.0, rel=1e-12)
    assert got == pytest.approx(1.0 / scale, rel=1e-5)  # the message prints 6 digits


def test_jax_nonlinear_message_quotes_its_own_scale():
    @jax.custom_vjp
    def s(x):
        return jnp.sum(jnp.sin(x))

    s.defvjp(lambda x: (s(x), x), lambda x, g: (jnp.cos(x),))  # forgets g
    x = jnp.array(X)
    r = bj.check(s, x)
    (f,) = [f for f in r.findings if f.kind == "nonlinear backward"]
    scale, got, first = _quoted(f.message)
    c = float(np.cos(np.asarray(x, dtype=np.float64)[0]))
    tol = 1e-5 + 10 * float(np.finfo(np.asarray(x).dtype).eps)
    assert first == pytest.approx(c, rel=tol)
    assert got == pytest.approx(c / scale, rel=tol)


def test_scale_names():
    from backcheck.frontends.common import scale_name

    assert [scale_name(t) for t in (4.0, -4.0, 0.25, -0.25, 2.0)] == ["4", "-4", "1/4", "-1/4", "2"]


# -- 1b. forward mode: a rule nonlinear in its tangent ---------------------------------------------------------------
def _jvp_rule(tangent_use):
    @jax.custom_jvp
    def f(x):
        return jnp.sin(x)

    @f.defjvp
    def _(p, t):
        (x,), (tx,) = p, t
        return jnp.sin(x), jnp.cos(x) * tangent_use(tx)

    return f


@pytest.mark.parametrize("use", [jnp.abs, lambda t: t * t, lambda t: jnp.clip(t, -1.0, 1.0)])
@pytest.mark.parametrize("shape", [(3,), (70,)])  # one batch of tangents, and the probe in a batch of its own
def test_jax_jvp_nonlinear_in_tangent_fails(use, shape):
    x = jnp.linspace(-2.0, 2.0, int(np.prod(shape))).reshape(shape) + 0.1
    r = bj.check(_jvp_rule(use), x, mode="fwd")
    assert r.status == "fail"
    assert "nonlinear jvp" in [f.kind for f in r.findings], r


def test_jax_linear_jvp_rule_passes_both_modes():
    x = jnp.array(X)
    assert bj.check(_jvp_rule(lambda t: t), x, mode="fwd").status == "pass"
    r = bj.check(lambda x: jnp.tanh(x) @ jnp.ones((3, 2)), x, mode="both")
    assert r.status == "pass" and not r.findings


class SinJvp(torch.autograd.Function):
    use = staticmethod(lambda t: t)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.x = x
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.cos()

    @staticmethod
    def jvp(ctx, t):
        return ctx.x.cos() * SinJvp.use(t)


class SinAbsTangent(SinJvp):
    @staticmethod
    def jvp(ctx, t):
        return ctx.x.cos() * t.abs()


class SinSquaredTangent(SinJvp):
    @staticmethod
    def jvp(ctx, t):
        return ctx.x.cos() * t * t


@pytest.mark.parametrize("fn", [SinAbsTangent, SinSquaredTangent])
def test_torch_jvp_nonlinear_in_tangent_fails(fn):
    r = bt.check_function(fn, torch.tensor(X, dtype=torch.float64), forward_mode=True)
    assert r.status == "fail"
    (f,) = [f for f in r.findings if f.kind == "nonlinear jvp"]
    assert "out[" in f.elements[0]


def test_torch_linear_jvp_passes():
    r = bt.check_function(SinJvp, torch.tensor(X, dtype=torch.float64), forward_mode=True)
    assert r.status == "pass", r
    assert not r.findings


# -- 3. a backward that writes into grad_output or into its saved input ------------------------------------------
class ReluZeroDout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        gi = g * (x > 0).to(g.dtype)
        g.zero_()
        return gi


class ReluMaskDoutInPlace(ReluZeroDout):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        g[x < 0] = 0
        return g


class ReluScalesSaved(ReluZeroDout):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        gi = g * (x > 0).to(g.dtype)
        x.mul_(2.0)
        return gi


class ReluRight(ReluZeroDout):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype)


def _relu_point():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 4, dtype=torch.float64, generator=gen) - 0.5
    x[x.abs() < 0.05] = 0.3  # away from the kink
    d = torch.randn(3, 4, dtype=torch.float64, generator=gen)
    return x, d


@pytest.mark.parametrize(
    ("fn", "named", "count"),
    [(ReluZeroDout, "grad_output", 12), (ReluMaskDoutInPlace, "grad_output", None), (ReluScalesSaved, "input x", 12)],
)
@pytest.mark.parametrize("given_dout", [False, True])
def test_torch_backward_writes_are_mutations(fn, named, count, given_dout):
    x, d = _relu_point()
    x0, d0 = x.clone(), d.clone()
    r = bt.check_function(fn, x, dout=d) if given_dout else bt.check_function(fn, x)
    assert r.status == "fail"
    (f,) = [f for f in r.findings if f.kind == "mutation"]
    assert f"modified its {'argument ' if named == 'grad_output' else ''}{named} in place" in f.message
    if count is None:
        count = int((x < 0).sum()) if given_dout else None
    if count is not None:
        assert f"({count} element(s)" in f.message
    assert torch.equal(x, x0) and torch.equal(d, d0)  # the caller's tensors end unchanged


def test_torch_backward_that_leaves_its_arguments_alone_passes():
    x, d = _relu_point()
    assert bt.check_function(ReluRight, x, dout=d).status == "pass"
    lin = torch.nn.Linear(4, 2).double()
    assert bt.check(lin, x).status == "pass"


# -- 4. an all-zero dout compares nothing ---------------------------------------------------------------------------
class SquareWrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 5 * g * x  # wrong: 2 g x


def test_torch_zero_dout_is_a_bad_input():
    from backcheck.errors import BadInputError

    x = torch.linspace(0.3, 2.0, 6, dtype=torch.float64)
    for call in (
        lambda: bt.check_function(SquareWrong, x, dout=torch.zeros(6, dtype=torch.float64)),
        lambda: bt.check(SquareWrong.apply, x, dout=np.zeros(6)),
        lambda: bt.check(lambda a: (a * 2, a.sin()), x, dout=(torch.zeros(6), torch.zeros(6))),
    ):
        with pytest.raises(BadInputError, match="dout is zero everywhere") as info:
            call()
        assert "zero upstream gradient compares nothing" in info.value.hint
    # zero on one output only checks the other alone: still a check
    r = bt.check(lambda a: (a * 2, SquareWrong.apply(a)), x, dout=(torch.zeros(6), torch.ones(6)))
    assert r.status == "fail"


def test_jax_zero_dout_is_a_bad_input():
    from backcheck.errors import BadInputError

    @jax.custom_vjp
    def sq(x):
        return x * x

    sq.defvjp(lambda x: (x * x, x), lambda x, g: (5 * g * x,))
    x = jnp.linspace(0.3, 2.0, 6)
    with pytest.raises(BadInputError, match="dout is zero everywhere"):
        bj.check(sq, x, dout=jnp.zeros(6))
    with pytest.raises(BadInputError, match="dout is zero everywhere"):
        bj.check(lambda a: (sq(a), 2 * a), x, dout=(jnp.zeros(6), jnp.zeros(6)))
    assert bj.check(lambda a: (sq(a), 2 * a), x, dout=(jnp.ones(6), jnp.zeros(6))).status == "fail"


class Times0(torch.nn.Module):
    def forward(self, x):
        return x * 0.0


def test_blame_layer_with_zero_upstream_gradient_is_not_vouched_for():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3).double(), Times0())
    table = bt.blame(net, torch.randn(2, 3, dtype=torch.float64))
    (row,) = [r for r in table.rows if r.type == "Linear"]
    assert row.status == "unused" and "upstream gradient is zero" in row.message


# -- 5. typed errors: a dict with keys of mixed types (jax), one tensor passed as two params (torch) ---------------
def test_jax_dict_with_mixed_key_types_is_a_bad_input():
    from backcheck.errors import BadInputError

    p = {"a": jnp.linspace(0.3, 2.0, 4), 3: jnp.ones(2)}
    with pytest.raises(BadInputError, match=r"the dict p \(keys 'a', 3\)") as info:
        bj.check(lambda p: jnp.sum(p["a"] ** 2) + jnp.sum(p[3] ** 3), p)
    assert "one type" in info.value.hint
    nested = {"w": [{"b": jnp.ones(2), 1: jnp.ones(2)}]}
    with pytest.raises(BadInputError, match=r"the dict q\['w'\]\[0\]"):
        bj.check(lambda q: jnp.sum(q["w"][0]["b"]), q=nested)
    with pytest.raises(BadInputError, match=r"the dict dout"):
        bj.check(lambda x: {"a": x, "b": 2 * x}, jnp.ones(3), dout={"a": jnp.ones(3), 0: jnp.ones(3)})


def test_torch_one_tensor_as_two_params_is_a_params_error():
    from backcheck.errors import ParamsError

    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 3, dtype=torch.float64, generator=gen)
    x = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    with pytest.raises(ParamsError, match="'w1' and 'w2' are the same tensor") as info:
        bt.check(lambda x: torch.tanh(x @ w) @ w, x, params={"w1": w, "w2": w})
    assert "once" in info.value.hint
    # passed once, the tensor is one parameter with the sum of its uses as gradient
    assert bt.check(lambda x: torch.tanh(x @ w) @ w, x, params={"w": w}).status == "pass"


def test_torch_saved_state_write_is_said_once_with_the_caller_tensor():
    x = torch.tensor([0.5, 1.5, -2.0], dtype=torch.float64)
    x0 = x.clone()
    r = bt.check_function(CubeLossPowInPlace, x)
    assert [f.kind for f in r.findings] == ["saved state"]
    assert "It wrote into x itself (3 element(s))" in r.findings[0].message
    assert torch.equal(x, x0)


class SinAbsTangentOnly(torch.autograd.Function):
    """sin with a jvp that uses |t|, and no backward: checked in forward mode alone."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x.sin()

    @staticmethod
    def jvp(ctx, t):
        return ctx.x.cos() * t.abs()


def test_torch_forward_only_jvp_nonlinear_in_tangent_fails():
    r = bt.check_function(SinAbsTangentOnly, torch.tensor(X, dtype=torch.float64), forward_mode=True)
    assert r.status == "fail"
    assert "nonlinear jvp" in [f.kind for f in r.findings]


# -- an empty output has no element to be zero: not a zero dout ---------------------------------------------------
def test_an_empty_output_is_no_zero_dout():
    assert bt.check(torch.sin, torch.zeros(1, 0, 3, dtype=torch.float64)).status == "pass"
    assert bj.check(jnp.sin, np.zeros((1, 0, 3))).status == "pass"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_an_empty_narrow_tensor_passes_with_nothing_to_be_wrong(dtype):
    # (its float64 backward, empty, crashed on the least epsilon of no element, told as a bad argument)
    assert bt.check(torch.sin, torch.zeros(0, 3, dtype=dtype)).status == "pass"
    assert bt.check_module(torch.nn.Linear(3, 2).to(dtype), torch.zeros(0, 3, dtype=dtype)).status == "pass"


def test_a_complex_half_output_is_compared_for_writes_without_an_error():
    # torch implements no comparison for complex32 on the CPU: the write check widens it exactly
    x = torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64)
    report = bt.check(lambda t: t.chalf(), x)
    assert report.status == "pass" and not report.findings, report
