"""A fused linear + tanh layer with a hand-written backward (and jvp), checked by backcheck.

Run: ``python examples/custom_torch_function.py``. It prints three reports: the correct Function passes; a copy
with the classic bug (the weight gradient not transposed) fails and names the wrong elements of ``w``; a copy
that computes ``1 - y**2`` in place on its saved output gives the right gradient once and a wrong one on any
second backward pass over the same graph (``retain_graph``, double backward), and fails with "backward changes
saved state".
"""

from __future__ import annotations

import torch

import backcheck.torch as bt


class FusedLinearTanh(torch.autograd.Function):
    """``y = tanh(x @ w + b)`` for ``x (n, k)``, ``w (k, m)``, ``b (m,)``; backward reuses the output."""

    generate_vmap_rule = True  # with setup_context below, torch.func.vmap can batch the numeric evaluations

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ w + b)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, w, _b = inputs
        ctx.save_for_backward(x, w, output)
        ctx.save_for_forward(x, w, output)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, w, y = ctx.saved_tensors
        grad_z = grad_y * (1 - y * y)  # tanh' = 1 - tanh**2
        return grad_z @ w.T, x.T @ grad_z, grad_z.sum(0)

    @staticmethod
    def jvp(ctx, dx: torch.Tensor, dw: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
        x, w, y = ctx.saved_tensors
        return (1 - y * y) * (dx @ w + x @ dw + db)


class FusedLinearTanhBuggy(FusedLinearTanh):
    """The same layer with the weight gradient transposed the wrong way (w is square here, so it runs)."""

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, w, y = ctx.saved_tensors
        grad_z = grad_y * (1 - y * y)
        return grad_z @ w.T, (x.T @ grad_z).T, grad_z.sum(0)


class FusedLinearTanhInPlace(FusedLinearTanh):
    """The same layer computing tanh' in place on the saved output: right once, wrong on any later backward."""

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, w, y = ctx.saved_tensors
        grad_z = grad_y * y.mul_(y).neg_().add_(1)  # y now holds 1 - y**2: the saved output is gone
        return grad_z @ w.T, x.T @ grad_z, grad_z.sum(0)


def main() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=g)
    w = torch.randn(4, 4, generator=g) * 0.5
    b = torch.randn(4, generator=g) * 0.1
    print(bt.check_function(FusedLinearTanh, x, w, b))  # float32 gradients, float64 finite differences
    print()
    print(bt.check_function(FusedLinearTanhBuggy, x, w, b, forward_mode=False))
    print()
    print(bt.check_function(FusedLinearTanhInPlace, x, w, b=b, forward_mode=False))  # inputs by keyword too


if __name__ == "__main__":
    main()
