"""Shared helpers for the backcheck.nn tests: check an op against two oracles in float64, backcheck's own
checker (finite differences of the engine's forward) and torch.autograd."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

import backcheck
from backcheck.nn import Tensor

RTOL = 1e-9
ATOL = 1e-11

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def away_from_zero(a: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Push values at least ``margin`` away from 0 (for kinks such as relu and abs)."""
    return np.asarray(np.where(a >= 0, a + margin, a - margin), dtype=np.float64)


def distinct(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Values that are pairwise at least 0.1 apart (no ties for max, min, pooling)."""
    n = int(np.prod(shape)) if len(shape) else 1
    return (rng.permutation(n).astype(np.float64) * 0.1 - 0.05 * n + rng.uniform(0, 0.01)).reshape(shape)


def check_against_torch(
    bc_fn: Callable[..., Tensor],
    torch_fn: Callable[..., torch.Tensor],
    inputs: Sequence[Any],
    grad_seed: int = 0,
    rtol: float = RTOL,
    atol: float = ATOL,
    stateless_fn: Callable[..., Tensor] | None = None,
) -> None:
    """Compare outputs and input gradients of ``bc_fn`` and ``torch_fn`` on the same float64 data, then check
    the engine's backward pass with backcheck (through ``stateless_fn`` when ``bc_fn`` updates hidden state
    such as running statistics, which the checker's many evaluations would otherwise disturb).

    Float arrays in ``inputs`` require grad on both sides; anything else is passed as is (numpy
    integer arrays are converted to torch tensors for torch).  The upstream gradient is random.
    """
    # numpy scalars (a 0-d draw) are checked as 0-d arrays
    inputs = [np.asarray(a) if isinstance(a, np.generic) else a for a in inputs]
    bc_in: list[Any] = []
    th_in: list[Any] = []
    for a in inputs:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            bc_in.append(Tensor(a.copy(), requires_grad=True))
            th_in.append(torch.tensor(a, dtype=torch.float64, requires_grad=True))
        elif isinstance(a, np.ndarray):
            bc_in.append(a)
            th_in.append(torch.from_numpy(a))
        else:
            bc_in.append(a)
            th_in.append(a)
    out = bc_fn(*bc_in)
    tout = torch_fn(*th_in)
    assert out.shape == tuple(tout.shape), (out.shape, tuple(tout.shape))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    g = np.random.default_rng(grad_seed).standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    for i, (b, t) in enumerate(zip(bc_in, th_in, strict=True)):
        if isinstance(b, Tensor) and b.requires_grad:
            assert b.grad is not None, f"input {i} got no gradient"
            assert b.grad.shape == b.shape and b.grad.dtype == np.float64
            tg = t.grad.numpy() if t.grad is not None else np.zeros(b.shape)
            np.testing.assert_allclose(b.grad, tg, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")
    check_with_backcheck(stateless_fn or bc_fn, inputs, g)


def check_with_backcheck(bc_fn: Callable[..., Tensor], inputs: Sequence[Any], dout: np.ndarray) -> None:
    """The engine's backward pass of ``bc_fn`` against finite differences of its forward pass."""

    def wrap(arrays: Sequence[Any], grad: bool) -> list[Any]:
        return [Tensor(a, requires_grad=grad) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                for a in arrays]

    def forward(*arrays: Any) -> np.ndarray:
        return np.array(bc_fn(*wrap(arrays, False)).data, copy=True)

    def backward(d: np.ndarray, *arrays: Any) -> tuple[Any, ...]:
        tensors = wrap(arrays, True)
        bc_fn(*tensors).backward(d)
        return tuple(t.grad if isinstance(t, Tensor) else None for t in tensors)

    report = backcheck.check_layer(forward, backward, tuple(inputs), dout=dout)
    assert report.ok, str(report)
