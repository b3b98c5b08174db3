"""A module whose forward switches its own mode (``self.eval()`` inside forward) is left in the mode the check
found it in, each submodule's flag as it was, as the rest of what its forward keeps on itself."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import backcheck.torch as bt  # noqa: E402


class _FlipsMode(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3).double()
        self.drop = torch.nn.Dropout(0.0)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        self.eval()  # (a bad habit: the mode set inside forward)
        return self.drop(self.lin(x))


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_a_forward_that_sets_the_mode_leaves_it_as_it_was(mode: str) -> None:
    m = _FlipsMode().train(mode != "eval")
    if mode == "mixed":
        m.lin.eval()
    before = [s.training for s in m.modules()]
    x = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert bt.check_module(m, x).status == "pass"
    assert [s.training for s in m.modules()] == before
    assert m.calls == 0
