"""backcheck.torch on PyTorch's own operators, called the way torch's OpInfo samples call them.

The samples are built here by hand after ``torch.testing._internal.common_methods_invocations.op_db`` (which
needs expecttest, not in the test environment): TensorList arguments (cat, stack, multi_dot, einsum), views
into a larger storage (as_strided's partial views), backward passes that work in log space (logcumsumexp),
bfloat16 outputs, sparse inputs, 0-d tensors, integer and boolean arguments, tuple outputs with integer parts,
in-place operators and non-contiguous inputs. ``benchmarks/opinfo.py`` runs the whole op_db.
"""

from __future__ import annotations

import pytest

from backcheck.errors import BadInputError

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
torch.set_num_threads(1)


def _r(seed: int, *shape: int, grad: bool = True) -> torch.Tensor:
    t = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return t.requires_grad_(grad)


def _names(report: object) -> list[str]:
    return [lf.name for lf in report.leaves]  # type: ignore[attr-defined]


class TwiceOnSecond(torch.autograd.Function):
    """``cat([a, b])`` whose backward doubles b's gradient: wrong for b only."""

    @staticmethod
    def forward(ctx: object, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b])

    @staticmethod
    def backward(ctx: object, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = g.shape[0] // 2
        return g[:n], 2 * g[n:]


# ------------------------------------------------------------------------------------------------------------
# TensorList arguments: the tensors in a list are inputs, and check(torch.cat, [x, y]) is not spread
# ------------------------------------------------------------------------------------------------------------
def test_tensor_lists_are_inputs() -> None:
    a, b, c = _r(1, 5, 5), _r(2, 5, 5), _r(3, 5, 2)
    report = bt.check(torch.cat, [a, b], dim=-1)  # op_db's cat sample: ([5, 5], [5, 5]), dim=-1
    assert report.ok and _names(report) == ["inputs[0][0]", "inputs[0][1]"], str(report)
    assert report.leaf("inputs[0][1]").n_checked == 25
    for fn in (torch.stack, torch.hstack, torch.vstack, torch.column_stack):  # one required argument: not spread
        assert bt.check(fn, [a, b]).ok, fn
    assert bt.check(torch.linalg.multi_dot, [a, b, c]).ok
    assert _names(bt.check(torch.hstack, [c])) == ["inputs[0][0]"]  # a list of one tensor
    assert _names(bt.check(torch.sin, (c,))) == ["inputs[0]"]  # one tensor, spread
    report = bt.check(lambda tensors, equation: torch.einsum(equation, tensors), [a, c], "ij,jk->ik")
    assert report.ok and _names(report) == ["tensors[0]", "tensors[1]"]
    assert bt.check(torch.meshgrid, [_r(4, 3), _r(5, 2)], indexing="ij").ok  # two outputs, each alone too

    def stacked(tensors: list[torch.Tensor]) -> torch.Tensor:  # a Python function of one list
        return torch.stack(tensors).sin()

    assert bt.check(stacked, [a, b]).ok
    # the tuple form still spreads for functions of several tensors
    assert _names(bt.check(torch.add, (a, b))) == ["inputs[0]", "inputs[1]"]
    assert _names(bt.check(lambda x, w: x @ w, (a, c))) == ["x", "w"]


def test_tensor_list_blames_the_wrong_tensor() -> None:
    a, b = _r(6, 4), _r(7, 4)
    report = bt.check(lambda ts: TwiceOnSecond.apply(*ts), [a, b])
    assert report.leaf("ts[0]").status == "pass" and report.leaf("ts[1]").status == "fail", str(report)
    assert report.leaf("ts[1]").n_mismatch == 4


def test_tensor_lists_only_requires_grad_ones_and_untouched() -> None:
    a, b, w = _r(8, 3), _r(9, 3, grad=False), _r(10, 3, grad=False)
    before = [a.detach().clone(), b.clone()]
    report = bt.check(lambda ts, w: torch.cat(ts) * torch.cat([w, w]), [a, b], w)
    assert report.ok and _names(report) == ["ts[0]"]
    assert torch.equal(a.detach(), before[0]) and torch.equal(b, before[1]) and a.grad is None
    # none requires grad: the float arguments are checked, the lists' tensors only when there is none
    plain = [t.detach() for t in (a, b)]
    assert _names(bt.check(lambda ts, w: torch.cat(ts) * torch.cat([w, w]), plain, w)) == ["w"]
    assert _names(bt.check(lambda ts: torch.cat(ts).exp(), (plain,))) == ["ts[0]", "ts[1]"]


# ------------------------------------------------------------------------------------------------------------
# views, non-contiguous inputs, in-place operators
# ------------------------------------------------------------------------------------------------------------
def test_view_into_a_larger_storage_keeps_it() -> None:
    base = torch.randn(20, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    x = base[5:15].requires_grad_(True)  # op_db's as_strided.partial_views sample
    kept = base.clone()
    report = bt.check(torch.as_strided, x, (2, 2), (1, 2), storage_offset=10)
    assert report.ok and report.leaf("inputs[0]").n_checked == 10, str(report)
    assert torch.equal(base, kept)
    report = bt.check(torch.as_strided, x, (2, 2), (1, 2), storage_offset=10, vectorized=True)
    assert report.ok and any("view into a larger storage" in n for n in report.notes), report.notes
    # a wrong gradient through the same view still fails
    wrong = bt.check(lambda v: torch.as_strided(v, (2, 2), (1, 2), storage_offset=10) * v.detach()[:4].view(2, 2), x)
    assert wrong.status == "fail"


def test_non_contiguous_and_in_place() -> None:
    x = _r(12, 6, 4).detach().t().requires_grad_(True)  # [4, 6], strides (1, 4)
    assert not x.is_contiguous()
    assert bt.check(lambda v: v.sin() @ v.t(), x).ok
    assert bt.check(lambda v: v.clone().mul_(3).tanh_(), x).ok  # in-place on a copy
    assert bt.check(lambda v: v[::2, 1::3].exp(), x).ok  # a strided view of the input


# ------------------------------------------------------------------------------------------------------------
# 0-d tensors, integer and boolean arguments, tuple outputs with integer parts
# ------------------------------------------------------------------------------------------------------------
def test_scalars_integers_booleans_and_tuples() -> None:
    x, s = _r(13, 4, 5), _r(14)
    assert bt.check(torch.mul, x, s).ok  # a 0-d input: op_db's mul sample ([4, 5], [])
    idx = torch.tensor([[0, 2], [1, 1], [4, 0], [3, 3]])
    report = bt.check(torch.gather, x, 1, idx)
    assert report.ok and _names(report) == ["inputs[0]"]
    mask = x.detach() > 0
    assert bt.check(torch.where, mask, x, s).ok
    assert bt.check(torch.masked_select, x, mask).ok
    report = bt.check(torch.max, x, 1)  # (values, indices): the integer indices are left out
    assert report.ok and [lf.name for lf in report.leaves] == ["inputs[0]"]
    assert bt.check(torch.linalg.slogdet, _r(15, 3, 3)).ok  # (sign, logabsdet): sign is not differentiable


# ------------------------------------------------------------------------------------------------------------
# a backward in log space, bfloat16 outputs, sparse inputs
# ------------------------------------------------------------------------------------------------------------
def test_logcumsumexp_is_no_saved_state_finding() -> None:
    x = _r(16, 5, 5, 5, grad=False) * 4
    x[0, 2, 0] = 1e4  # op_db's logcumsumexp sample: [5, 5, 5] with large elements, dim 0
    x.requires_grad_(True)
    for seed in range(3):
        report = bt.check(torch.logcumsumexp, x, 0, seed=seed)
        assert report.ok and not report.findings, str(report)


class SavesAndDoubles(torch.autograd.Function):
    """exp(x) whose backward scales its saved output in place: the second pass over the graph is wrong."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        y = x.exp()
        ctx.save_for_backward(y)  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(ctx: object, g: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return g * y.mul_(1.5) / 1.5


def test_saved_state_still_found() -> None:
    report = bt.check_function(SavesAndDoubles, _r(17, 6))
    assert report.status == "fail" and [f.kind for f in report.findings] == ["saved state"], str(report)


class CastWrong(torch.autograd.Function):
    """x.bfloat16() whose backward is twice the identity."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.bfloat16()

    @staticmethod
    def backward(ctx: object, g: torch.Tensor) -> torch.Tensor:
        return 2 * g.double()


def test_bfloat16_output() -> None:
    x = _r(18, 2, 3)  # op_db's bfloat16 sample: x.bfloat16() on float64 [2, 3]
    report = bt.check(lambda v: v.bfloat16(), x)
    assert report.status != "fail", str(report)
    assert any("bfloat16" in n and "float16" in n for n in report.notes), report.notes
    assert bt.check_function(CastWrong, x).status == "fail"


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_sparse_inputs_are_not_supported() -> None:
    dense = _r(19, 5, 5, grad=False)
    for sparse in (dense.to_sparse_csr().requires_grad_(True), dense.to_sparse().requires_grad_(True)):
        with pytest.raises(BadInputError, match="not supported"):
            bt.check(torch.mm, sparse, _r(20, 5, 3))
        with pytest.raises(BadInputError, match="not supported"):
            bt.check(lambda ts: torch.cat(ts), [sparse, dense])
