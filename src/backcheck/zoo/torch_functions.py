"""The zoo's torch cases: custom ``torch.autograd.Function`` s with correct and wrong backward passes.

They cover what only a framework frontend can get wrong: a backward that writes into its saved tensors (right
once, wrong on any second backward over the graph), code that takes another path when autograd is off, a
reentrant checkpoint, an old-style Function (no ``setup_context``), an ill-conditioned float32 backward (an SVD
at near-degenerate singular values), outputs autograd does not differentiate, and a backward that mishandles
an undefined output gradient. Each :class:`TorchCase` has a correct ``fn`` and a few :class:`TorchBug` s;
``make_inputs(rng, dtype)`` draws the point (a numpy Generator, a torch dtype).

Importing this module imports torch; ``backcheck.zoo`` itself does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["CASES", "TorchBug", "TorchCase", "get"]


@dataclass(frozen=True)
class TorchBug:
    """A wrong version of a case's function (usually the same forward with a wrong backward)."""

    name: str
    fn: Callable[..., object]
    description: str


@dataclass(frozen=True)
class TorchCase:
    """A function built on custom Functions, the point to check it at, and its realistic bugs."""

    name: str
    family: str
    fn: Callable[..., object]
    make_inputs: Callable[[np.random.Generator, torch.dtype], tuple[torch.Tensor, ...]]
    bugs: tuple[TorchBug, ...]
    description: str


def _randn(rng: np.random.Generator, dtype: torch.dtype, *shape: int) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape)).to(dtype)


# ---------------------------------------------------------------------------------------------------------
# backward passes that write into their saved state
# ---------------------------------------------------------------------------------------------------------
class ScaledTanh(torch.autograd.Function):
    """tanh with its derivative saved as a buffer in the forward pass."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(1 - y * y)
        return y

    @staticmethod
    def backward(ctx, g):
        (slope,) = ctx.saved_tensors
        return slope * g


class ScaledTanhInPlace(ScaledTanh):
    @staticmethod
    def backward(ctx, g):
        (slope,) = ctx.saved_tensors
        slope *= g  # the saved buffer now holds slope * g: right once, wrong on any later backward
        return slope


class CubeLoss(torch.autograd.Function):
    """sum(x**3) / 3, whose gradient is x**2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x**3).sum() / 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x.clone().pow_(2) * g


class CubeLossPowInPlace(CubeLoss):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x.pow_(2) * g  # squares the saved input itself


class Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        p = torch.softmax(x, -1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        return p * (g - (g * p).sum(-1, keepdim=True))


class SoftmaxInPlace(Softmax):
    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        dot = (g * p).sum(-1, keepdim=True)
        return p.mul_(g - dot)  # probs.mul_(...) on the saved probabilities


# ---------------------------------------------------------------------------------------------------------
# autograd state: needs_input_grad and grad mode
# ---------------------------------------------------------------------------------------------------------
class Bilinear(torch.autograd.Function):
    """x * w, saving only what the inputs that need a gradient use, and returning None for the others."""

    @staticmethod
    def forward(ctx, x, w):
        need_x, need_w = ctx.needs_input_grad
        ctx.save_for_backward(w if need_x else None, x if need_w else None)
        return x * w

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return (g * w if ctx.needs_input_grad[0] else None), (g * x if ctx.needs_input_grad[1] else None)


class BilinearSwapped(Bilinear):
    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return (g * x if ctx.needs_input_grad[0] else None), (g * w if ctx.needs_input_grad[1] else None)


def _inference_kernel(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.float32:
        raise RuntimeError("expected scalar type Float but found Double")
    return x * w


def sample(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Autograd's path when a gradient is wanted; a float32-only inference kernel otherwise."""
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return Bilinear.apply(x, w)
    return _inference_kernel(x, w)


def sample_swapped(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return BilinearSwapped.apply(x, w)
    return _inference_kernel(x, w)


# ---------------------------------------------------------------------------------------------------------
# a reentrant checkpoint; an old-style Function
# ---------------------------------------------------------------------------------------------------------
class Tanh(torch.autograd.Function):
    """tanh, old style (forward takes ctx; no setup_context), backward from the saved output."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class TanhWrong(Tanh):
    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y)  # should be 1 - y**2


def checkpointed_layer(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """tanh(x @ w) under a reentrant checkpoint (torch.autograd.grad refuses it)."""
    return checkpoint(lambda a, b: Tanh.apply(a @ b), x, w, use_reentrant=True)


def checkpointed_layer_wrong(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return checkpoint(lambda a, b: TanhWrong.apply(a @ b), x, w, use_reentrant=True)


# ---------------------------------------------------------------------------------------------------------
# an ill-conditioned float32 backward: an SVD at near-degenerate singular values
# ---------------------------------------------------------------------------------------------------------
class SVDRotation(torch.autograd.Function):
    """The rotation ``U V^T`` of a square matrix, its backward through U and V (the textbook SVD backward)."""

    @staticmethod
    def forward(ctx, a):
        u, s, vh = torch.linalg.svd(a)
        ctx.save_for_backward(u, s, vh)
        return u @ vh

    @staticmethod
    def grad(u, s, vh, g, sign):
        v = vh.mT
        s2 = s * s
        eye = torch.eye(s.shape[0], dtype=s.dtype)
        f = torch.where(eye.bool(), torch.zeros_like(eye), 1 / (s2[None, :] - s2[:, None] + eye))
        j, k = f * (u.mT @ g @ v), f * (v.mT @ g.mT @ u)
        S = torch.diag(s)
        return u @ ((j + sign * j.mT) @ S + S @ (k + k.mT)) @ vh

    @staticmethod
    def backward(ctx, g):
        return SVDRotation.grad(*ctx.saved_tensors, g, 1.0)


class SVDRotationWrong(SVDRotation):
    @staticmethod
    def backward(ctx, g):
        return SVDRotation.grad(*ctx.saved_tensors, g, -1.0)  # a sign slip in the symmetrization


def near_degenerate(rng: np.random.Generator, dtype: torch.dtype, gap: float = 1e-3) -> tuple[torch.Tensor]:
    """A 3 x 3 matrix with singular values 1, 1 - gap and 0.5."""
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    w, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return (torch.from_numpy(q @ np.diag([1.0, 1.0 - gap, 0.5]) @ w.T).to(dtype),)


# ---------------------------------------------------------------------------------------------------------
# outputs: one autograd does not differentiate; undefined output gradients
# ---------------------------------------------------------------------------------------------------------
class MaxWithIndex(torch.autograd.Function):
    """Row maxima and their positions (as floats, marked non-differentiable)."""

    @staticmethod
    def forward(ctx, x):
        values, index = x.max(-1)
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        pos = index.to(x.dtype)
        ctx.mark_non_differentiable(pos)
        return values, pos

    @staticmethod
    def backward(ctx, g, _g_pos):
        (index,) = ctx.saved_tensors
        return torch.zeros(ctx.shape, dtype=g.dtype).scatter(-1, index[:, None], g[:, None])


class MaxWithIndexAll(MaxWithIndex):
    @staticmethod
    def backward(ctx, g, _g_pos):
        return g[:, None].expand(ctx.shape).clone()  # routes the gradient to every element of the row


def distinct_rows(rng: np.random.Generator, dtype: torch.dtype) -> tuple[torch.Tensor]:
    """A 3 x 5 matrix of values at least 0.1 apart (no ties)."""
    return (torch.from_numpy((rng.permutation(15).reshape(3, 5) - 7.0) * 0.1).to(dtype),)


class NormPair(torch.autograd.Function):
    """(x / |x|, |x|) per row; the backward handles an undefined gradient of either output."""

    @staticmethod
    def forward(ctx, x):
        n = x.norm(dim=-1, keepdim=True)
        y = x / n
        ctx.save_for_backward(y, n)
        ctx.set_materialize_grads(False)
        return y, n.squeeze(-1)

    @staticmethod
    def backward(ctx, gy, gn):
        y, n = ctx.saved_tensors
        gx = torch.zeros_like(y)
        if gy is not None:
            gx = gx + (gy - (gy * y).sum(-1, keepdim=True) * y) / n
        if gn is not None:
            gx = gx + gn[:, None] * y
        return gx


class NormPairDropsY(NormPair):
    @staticmethod
    def backward(ctx, gy, gn):
        y, n = ctx.saved_tensors
        if gn is None:
            return torch.zeros_like(y)  # forgets the first output's contribution when the second is unused
        gx = gn[:, None] * y
        if gy is not None:
            gx = gx + (gy - (gy * y).sum(-1, keepdim=True) * y) / n
        return gx


# ---------------------------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------------------------
CASES: tuple[TorchCase, ...] = (
    TorchCase(
        "scaled_tanh",
        "saved state",
        ScaledTanh.apply,
        lambda rng, dt: (_randn(rng, dt, 3, 4),),
        (TorchBug("buffer_scaled_in_place", ScaledTanhInPlace.apply, "slope *= grad_output on the saved slope"),),
        "tanh whose derivative is saved as a buffer in the forward pass.",
    ),
    TorchCase(
        "cube_loss",
        "saved state",
        CubeLoss.apply,
        lambda rng, dt: (_randn(rng, dt, 3, 4),),
        (TorchBug("pow_on_saved_input", CubeLossPowInPlace.apply, "x.pow_(2) on ctx.saved_tensors"),),
        "sum(x**3) / 3, a scalar loss.",
    ),
    TorchCase(
        "softmax",
        "saved state",
        Softmax.apply,
        lambda rng, dt: (_randn(rng, dt, 3, 5),),
        (TorchBug("probs_mul_", SoftmaxInPlace.apply, "probs.mul_(...) on the saved probabilities"),),
        "softmax over the last axis, backward from the saved probabilities.",
    ),
    TorchCase(
        "grad_mode_dispatch",
        "autograd state",
        sample,
        lambda rng, dt: (_randn(rng, dt, 3, 4), _randn(rng, dt, 3, 4)),
        (TorchBug("swapped_gradients", sample_swapped, "each input gets the other's gradient"),),
        "x * w through a Function reading ctx.needs_input_grad when a gradient is wanted, a float32-only "
        "inference kernel otherwise.",
    ),
    TorchCase(
        "reentrant_checkpoint",
        "checkpoint",
        checkpointed_layer,
        lambda rng, dt: (_randn(rng, dt, 2, 4), _randn(rng, dt, 4, 3)),
        (TorchBug("tanh_derivative_wrong", checkpointed_layer_wrong, "1 - y instead of 1 - y**2"),),
        "tanh(x @ w) under torch.utils.checkpoint(use_reentrant=True).",
    ),
    TorchCase(
        "old_style_tanh",
        "old-style",
        Tanh.apply,
        lambda rng, dt: (_randn(rng, dt, 4, 5),),
        (TorchBug("tanh_derivative_wrong", TanhWrong.apply, "1 - y instead of 1 - y**2"),),
        "tanh as an old-style Function (no setup_context, so torch.func.vmap cannot batch it).",
    ),
    TorchCase(
        "svd_rotation_near_degenerate",
        "ill-conditioned",
        SVDRotation.apply,
        near_degenerate,
        (TorchBug("symmetrization_sign", SVDRotationWrong.apply, "J - J^T instead of J + J^T"),),
        "U V^T of a matrix with singular values 1e-3 apart: its float32 backward rounds to about 1e-4.",
    ),
    TorchCase(
        "max_with_index",
        "outputs",
        MaxWithIndex.apply,
        distinct_rows,
        (TorchBug("routed_to_every_element", MaxWithIndexAll.apply, "the gradient goes to the whole row"),),
        "row maxima and their positions, the positions a float output marked non-differentiable.",
    ),
    TorchCase(
        "norm_pair",
        "outputs",
        NormPair.apply,
        lambda rng, dt: (_randn(rng, dt, 3, 4),),
        (TorchBug("drops_y_when_norm_unused", NormPairDropsY.apply, "returns zeros when |x|'s gradient is None"),),
        "(x / |x|, |x|) per row, with set_materialize_grads(False).",
    ),
)

_BY_NAME = {case.name: case for case in CASES}


def get(name: str) -> TorchCase:
    """The torch case called ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no torch case named {name!r}; the cases are {sorted(_BY_NAME)}") from None
