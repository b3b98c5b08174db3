"""explore over a custom torch.autograd.Function and a jax custom_vjp rule, through numpy adapters."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.explore import Array, Choice, explore
from backcheck.explore.adapters import jax_layer, torch_layer

pytest.importorskip("hypothesis")
torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")


class RowMax(torch.autograd.Function):
    """max over the last axis; the gradient goes to the first maximum of each row."""

    @staticmethod
    def forward(ctx, x):
        idx = torch.argmax(x, dim=-1, keepdim=True)
        ctx.save_for_backward(x, idx)
        return torch.gather(x, -1, idx).squeeze(-1)

    @staticmethod
    def backward(ctx, g):
        x, idx = ctx.saved_tensors
        return torch.zeros_like(x).scatter(-1, idx, g.unsqueeze(-1))


class RowMaxAllTies(torch.autograd.Function):
    """The same max, but every element equal to the maximum gets the full gradient: wrong only at ties."""

    @staticmethod
    def forward(ctx, x):
        out = torch.amax(x, dim=-1)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        return (x == out.unsqueeze(-1)).to(x.dtype) * g.unsqueeze(-1)


def row_max(x):
    return RowMax.apply(x)


def row_max_all_ties(x):
    return RowMaxAllTies.apply(x)


@jax.custom_vjp
def softplus(x, beta):
    return jnp.logaddexp(0.0, beta * x) / beta


def _softplus_fwd(x, beta):
    return softplus(x, beta), (x, beta)


def _softplus_bwd(res, g):
    x, beta = res
    return g * jax.nn.sigmoid(beta * x), None


softplus.defvjp(_softplus_fwd, _softplus_bwd)


@jax.custom_vjp
def softplus_bad(x, beta):
    return jnp.logaddexp(0.0, beta * x) / beta


def _softplus_bad_bwd(res, g):
    x, beta = res
    return g * jax.nn.sigmoid(x), None  # forgets beta inside the sigmoid: right only for beta = 1


softplus_bad.defvjp(_softplus_fwd, _softplus_bad_bwd)


def jax_softplus(x, beta):
    return softplus(x, beta)


def jax_softplus_bad(x, beta):
    return softplus_bad(x, beta)


ROWS = {"x": Array("N", "D")}
BETA = {"beta": Choice(1.0, 2.0, 0.5)}


def test_torch_custom_function_passes_at_ties_and_kinks():
    result = explore(*torch_layer(row_max), ROWS, max_points=12, progress=False)
    assert result.status != "fail", result
    assert result.passed >= 1


def test_torch_custom_function_wrong_only_at_ties_is_found_at_a_tie():
    result = explore(*torch_layer(row_max_all_ties), ROWS, max_points=40, progress=False)
    assert result.status == "fail", result
    x = result.case.inputs["x"]
    assert any(np.sum(row == row.max()) >= 2 for row in x.reshape(-1, x.shape[-1]))


def test_jax_custom_vjp_passes():
    result = explore(*jax_layer(jax_softplus), {"x": Array("N")}, hyper=BETA, max_points=8, progress=False)
    assert result.status != "fail", result
    assert result.passed >= 1


def test_jax_custom_vjp_wrong_for_one_hyper_parameter_is_found():
    result = explore(*jax_layer(jax_softplus_bad), {"x": Array("N")}, hyper=BETA, max_points=30, progress=False)
    assert result.status == "fail", result
    assert result.case.hyper["beta"] != 1.0 and result.case.dims["N"] == 1
    assert "beta=" in result.test
