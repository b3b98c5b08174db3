"""Optimizers step for step against torch.optim in float64 (to 1e-12), and clip_grad_norm_."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck import nn
from backcheck.nn import Tensor

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (4,), (2, 2, 2)]


def _params(seed: int):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _run(make_ours, make_theirs, steps: int, seed: int = 0) -> None:
    ours, theirs = _params(seed)
    opt, topt = make_ours(ours), make_theirs(theirs)
    rng = np.random.default_rng(seed + 100)
    for step in range(steps):
        grads = [rng.standard_normal(s) for s in SHAPES]
        # gradients through a real backward on both sides: loss = sum(g * p**2) / 2 + sum(g * p)
        opt.zero_grad()
        topt.zero_grad()
        loss = sum(((p * p) * (g * 0.5) + p * g).sum() for p, g in zip(ours, grads, strict=True))
        loss.backward()
        tloss = sum(
            ((p * p) * (torch.from_numpy(g) * 0.5) + p * torch.from_numpy(g)).sum()
            for p, g in zip(theirs, grads, strict=True)
        )
        tloss.backward()
        if step == 1:
            ours[1].grad = None  # a parameter without a gradient is skipped by both
            theirs[1].grad = None
        opt.step()
        topt.step()
        for p, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(
                p.data, t.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=f"after step {step + 1}"
            )


SGD_CASES = [
    {"lr": 0.1},
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.1, "momentum": 0.8, "dampening": 0.3},
    {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
]


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("steps", [1, 5])
def test_sgd_matches_torch(kwargs, steps):
    _run(lambda ps: nn.SGD(ps, **kwargs), lambda ps: torch.optim.SGD(ps, **kwargs), steps)


ADAM_CASES = [
    {"lr": 1e-2},
    {"lr": 1e-1, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "amsgrad": True},
]


@pytest.mark.parametrize("kwargs", ADAM_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("steps", [1, 6])
def test_adam_matches_torch(kwargs, steps):
    _run(lambda ps: nn.Adam(ps, **kwargs), lambda ps: torch.optim.Adam(ps, **kwargs), steps)


@pytest.mark.parametrize(
    "kwargs", [{"lr": 1e-2}, {"lr": 1e-2, "weight_decay": 0.3}, {"lr": 5e-2, "amsgrad": True}]
)
@pytest.mark.parametrize("steps", [1, 6])
def test_adamw_matches_torch(kwargs, steps):
    _run(lambda ps: nn.AdamW(ps, **kwargs), lambda ps: torch.optim.AdamW(ps, **kwargs), steps)


@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0), (0.2, float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    ours, theirs = _params(3)
    rng = np.random.default_rng(4)
    for p, t in zip(ours, theirs, strict=True):
        g = rng.standard_normal(p.shape)
        p.grad = g.copy()
        t.grad = torch.from_numpy(g.copy())
    total = nn.clip_grad_norm_(ours, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


def test_optimizer_rejects_bad_parameters():
    with pytest.raises(ValueError, match="params must be a non-empty iterable of tensors"):
        nn.SGD([], lr=0.1)
    with pytest.raises(nn.DTypeError, match="must be a Tensor that requires grad"):
        nn.Adam([Tensor(np.ones(2))])
    with pytest.raises(ValueError, match="Nesterov"):
        nn.SGD([Tensor(np.ones(2), requires_grad=True)], lr=0.1, nesterov=True)
