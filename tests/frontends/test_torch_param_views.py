"""Views of a parameter kept beside it: weights tied once in __init__ (``self.wT = self.w.T``, whose autograd path
leads back to w), or a detached alias (``self.wT = self.w.detach().T``, whose path autograd never sees). The
check moves parameters in storage of its own; the views stayed behind, the differences saw a function without
their path, and a right gradient through a view failed while a detached alias's missing path passed. The
views now follow their parameter's moves (as in place, as torch.autograd.gradcheck perturbs)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import backcheck.torch as bt  # noqa: E402

D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _Tied(torch.nn.Module):
    def __init__(self, detached: bool = False, held: str = "attribute") -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4, dtype=D, generator=_gen(0)))
        view = self.w.detach().T if detached else self.w.T
        if held == "list":
            self.views = [view]
        else:
            self.wT = view

    def forward(self, x):
        wT = self.views[0] if hasattr(self, "views") else self.wT
        return torch.tanh(x @ self.w) + x @ wT


def _x() -> torch.Tensor:
    return torch.randn(3, 4, dtype=D, generator=_gen(1))


@pytest.mark.parametrize("held", ["attribute", "list"])
def test_a_view_of_a_parameter_made_once_moves_with_it(held: str) -> None:
    m = _Tied(held=held)
    r = bt.check_module(m, _x())
    assert r.status == "pass", r


@pytest.mark.parametrize("held", ["attribute", "list"])
def test_a_detached_alias_whose_path_autograd_misses_fails(held: str) -> None:
    r = bt.check_module(_Tied(detached=True, held=held), _x())
    assert r.status == "fail" and r.leaf("w").status == "fail", r


def test_the_module_and_its_views_are_left_as_they_were() -> None:
    m = _Tied(detached=True)
    w, before, ptr = m.w, m.w.detach().clone(), m.w.untyped_storage().data_ptr()
    bt.check_module(m, _x())
    assert m.w is w and torch.equal(m.w.detach(), before) and m.w.untyped_storage().data_ptr() == ptr
    assert m.wT.untyped_storage().data_ptr() == ptr and torch.equal(m.wT, before.T)


def test_a_view_held_by_a_closure_beside_a_module_parameter_moves_too() -> None:
    lin = torch.nn.Linear(4, 4, bias=False).double()
    tied = lin.weight.T  # (decoder = encoder transposed, made once)
    x = _x()
    r = bt.check(lambda x: (torch.tanh(lin(x)) @ tied).sum(), x, params=lin)
    assert r.status == "pass", r


def test_a_view_follows_values_laid_out_otherwise_too() -> None:
    from backcheck.frontends.torch._tensors import Swap

    w = torch.randn(3, 4, dtype=D, generator=_gen(2))
    view = w.T
    swap = Swap([w])
    swap.follow([view])
    other = torch.randn(4, 3, dtype=D, generator=_gen(3)).T  # (a transposed, non-contiguous 3 x 4)
    swap.set([other])
    assert torch.equal(view, other.T)
    swap.restore()
    assert view.untyped_storage().data_ptr() == w.untyped_storage().data_ptr() and torch.equal(view, w.T)
