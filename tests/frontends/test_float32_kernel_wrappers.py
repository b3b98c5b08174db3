"""The usual mixed-precision wrapper, ``f(x.float()).to(x.dtype)`` with a matching backward, checked on float32
tensors: the numeric side's float64 copies of float32 inputs are float32-exact, and so are the outputs, which a
ReLU's copies are too; asked again off float32's grid, the kernel still returns float32-exact values and is
differenced as the float32 computation it is. Its backward's float64 run, float32 inside as well, is no wider
run. Right rules failed (tanh-GELU, 5 of 6 seeds) or stayed inconclusive (softplus, 5% off too)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
Function = torch.autograd.Function

C = 0.7978845608


def _gelu_parts(xf):
    t = torch.tanh(C * (xf + 0.044715 * xf**3))
    return 0.5 * xf * (1 + t), 0.5 * (1 + t) + 0.5 * xf * (1 - t * t) * C * (1 + 3 * 0.044715 * xf * xf)


def kernel(value_and_slope, scale=1.0):
    class Kernel(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return value_and_slope(x.float())[0].to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return (g.float() * scale * value_and_slope(x.float())[1]).to(x.dtype)

    return Kernel


def _softplus_parts(xf):
    return torch.nn.functional.softplus(xf), torch.sigmoid(xf)


def _x(seed):
    return torch.tensor(2.0 * np.random.default_rng(seed).normal(size=(4, 6)), dtype=torch.float32)


@pytest.mark.parametrize("parts", [_gelu_parts, _softplus_parts], ids=["gelu", "softplus"])
@pytest.mark.parametrize("seed", range(6))
def test_a_right_float32_kernel_passes(parts, seed):
    report = bt.check_function(kernel(parts), _x(seed).requires_grad_())
    assert report.status == "pass", report
    assert any("computes in float32" in n for n in report.notes), report.notes


@pytest.mark.parametrize("parts", [_gelu_parts, _softplus_parts], ids=["gelu", "softplus"])
@pytest.mark.parametrize("seed", range(3))
def test_a_float32_kernel_five_percent_off_fails(parts, seed):
    report = bt.check_function(kernel(parts, 1.05), _x(seed).requires_grad_())
    assert report.status == "fail", report


def test_a_relu_of_float32_inputs_is_no_float32_kernel():
    x = _x(0).requires_grad_()
    report = bt.check(torch.relu, x)
    assert report.status == "pass", report
    assert not any("computes in float32" in n for n in report.notes), report.notes


def test_a_jax_rule_in_float32_inside_passes():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    bj = pytest.importorskip("backcheck.jax")

    @jax.custom_vjp
    def gelu(x):
        xf = x.astype(jnp.float32)
        return (0.5 * xf * (1 + jnp.tanh(C * (xf + 0.044715 * xf**3)))).astype(x.dtype)

    def fwd(x):
        return gelu(x), x

    def bwd(x, g):
        xf = x.astype(jnp.float32)
        t = jnp.tanh(C * (xf + 0.044715 * xf**3))
        d = 0.5 * (1 + t) + 0.5 * xf * (1 - t * t) * C * (1 + 3 * 0.044715 * xf * xf)
        return ((g.astype(jnp.float32) * d).astype(x.dtype),)

    gelu.defvjp(fwd, bwd)
    for seed in range(3):
        report = bj.check(gelu, _x(seed).numpy())
        assert report.status == "pass", report
