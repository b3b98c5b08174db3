"""backcheck.torch on Functions as torch runs them: repeated backward, autograd state, checkpoints, outputs.

The Functions are this project's own (most live in backcheck.zoo.torch_functions, the zoo's torch cases);
each is checked in float64 and float32.
"""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.errors import BadInputError, UserFunctionError
from backcheck.report import Finding, Report

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
checkpoint = pytest.importorskip("torch.utils.checkpoint").checkpoint
zoo = pytest.importorskip("backcheck.zoo.torch_functions")
torch.set_num_threads(1)
DTYPES = [torch.float64, torch.float32]


def _r(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _state(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.kind == "saved state"]


# ------------------------------------------------------------------------------------------------------------
# 1. a backward that writes into its saved state
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "good, bad",
    [
        (zoo.ScaledTanh, zoo.ScaledTanhInPlace),
        (zoo.CubeLoss, zoo.CubeLossPowInPlace),
        (zoo.Softmax, zoo.SoftmaxInPlace),
    ],
    ids=["scaled_buffer", "pow_saved_input", "softmax_mul_"],
)
def test_backward_that_changes_saved_state_fails(good, bad, dtype: torch.dtype) -> None:
    x = _r(1, 3, 4, dtype=dtype)
    ok = bt.check_function(good, x)
    assert ok.ok and not _state(ok), str(ok)
    report = bt.check_function(bad, x)
    assert report.status == "fail", str(report)
    (finding,) = _state(report)
    assert finding.message.startswith("backward changes saved state") and "for x " in finding.message
    assert finding.elements and finding.elements[0].startswith("x[")
    assert "saved state" in str(report)
    # the gradient of the first backward pass is right: only the finding fails the report
    assert all(lf.status == "pass" for lf in report.leaves), str(report)


def test_saved_state_names_the_input_whose_gradient_changed() -> None:
    class TwoInputs(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return g * w, x.mul_(g)  # writes into the saved x: w's gradient changes on a second backward

    report = bt.check_function(TwoInputs, _r(2, 5), _r(3, 5))
    (finding,) = _state(report)
    assert "gradient for w " in finding.message and finding.where == "w"


# ------------------------------------------------------------------------------------------------------------
# 2. evaluated as under autograd: needs_input_grad, is_grad_enabled; the first cause of a failure
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_numeric_side_runs_as_under_autograd(dtype: torch.dtype) -> None:
    x, w = _r(4, 3, 4, dtype=dtype), _r(5, 3, 4, dtype=dtype)
    report = bt.check(zoo.sample, x, w)
    assert report.ok, str(report)
    # float64 was not refused (vmap's batches, which take the inference path, may be: a note says so)
    assert not any("raised" in n and "vmap" not in n for n in report.notes), report.notes
    assert bt.check_function(zoo.Bilinear, x, w).ok
    only_w = bt.check(zoo.sample, x, w.clone().requires_grad_())
    assert [lf.name for lf in only_w.leaves] == ["w"] and only_w.ok


def test_first_cause_is_reported_when_the_fallback_fails_too() -> None:
    calls = {"n": 0}

    def picky(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if x.dtype == torch.float64:
            raise TypeError("this kernel takes float32 only")
        if calls["n"] > 1:
            raise ValueError("a later failure")
        return torch.sin(x)

    with pytest.raises(UserFunctionError, match="TypeError on float64") as info:
        bt.check(picky, _r(6, 4, dtype=torch.float32))
    assert isinstance(info.value.__cause__, TypeError)
    assert str(info.value).index("TypeError") < str(info.value).index("ValueError")


# ------------------------------------------------------------------------------------------------------------
# 3. reentrant checkpoints
# ------------------------------------------------------------------------------------------------------------
class WrongTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y)  # should be 1 - y**2


class Block(torch.nn.Module):
    def __init__(self, act) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return checkpoint(lambda t: self.act(self.lin(t)), x, use_reentrant=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reentrant_checkpoint_is_driven_with_backward(dtype: torch.dtype) -> None:
    x, w = _r(7, 2, 4, dtype=dtype), _r(8, 4, 3, dtype=dtype)
    report = bt.check(lambda x, w: checkpoint(lambda a, b: torch.tanh(a @ b), x, w, use_reentrant=True), x, w)
    assert report.ok, str(report)
    bad = bt.check(lambda x: checkpoint(WrongTanh.apply, x, use_reentrant=True), x)
    assert bad.leaf("x").status == "fail"

    block = Block(torch.tanh).to(dtype)
    block.lin.weight.grad = torch.ones_like(block.lin.weight)
    grad_before = block.lin.weight.grad.clone()
    weight_before = block.lin.weight.detach().clone()
    assert bt.check_module(block, x).ok
    assert torch.equal(block.lin.weight.grad, grad_before) and block.lin.bias.grad is None
    assert torch.equal(block.lin.weight, weight_before)
    wrong = bt.check_module(Block(WrongTanh.apply).to(dtype), x)
    assert wrong.status == "fail" and wrong.leaf("lin.weight").status == "fail"


# ------------------------------------------------------------------------------------------------------------
# 4. old-style Functions under vmap: a silent fallback, or one full sentence
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_old_style_function_falls_back_without_noise(dtype: torch.dtype) -> None:
    x = _r(9, 3, 4, dtype=dtype)
    auto = bt.check_function(zoo.ScaledTanh, x)
    assert auto.ok and not any("vmap" in n for n in auto.notes), auto.notes
    asked = bt.check_function(zoo.ScaledTanh, x, vectorized=True)
    said = [n for n in asked.notes if "vmap" in n]
    assert len(said) == 1 and "without setup_context" in said[0] and "one point at a time" in said[0]
    assert said[0].endswith(".") and "..." not in said[0]
    assert asked.n_evals == auto.n_evals and asked.ok


# ------------------------------------------------------------------------------------------------------------
# 5. an ill-conditioned float32 backward: SVD-based rotation at near-degenerate singular values
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_ill_conditioned_backward_is_judged_through_its_float64_run(dtype: torch.dtype) -> None:
    (a,) = zoo.near_degenerate(np.random.default_rng(0), dtype)
    (well,) = zoo.near_degenerate(np.random.default_rng(0), torch.float64, gap=0.3)
    assert torch.autograd.gradcheck(zoo.SVDRotation.apply, (well.requires_grad_(),))
    own = bt.check(lambda a: (lambda u, s, vh: u @ vh)(*torch.linalg.svd(a)), a)  # torch's own SVD backward
    assert own.ok, str(own)  # (how far its float32 gradient lands depends on the machine's LAPACK)
    for report in (bt.check_function(zoo.SVDRotation, a),):
        assert report.ok, str(report)
        if dtype == torch.float32:
            # judged through its float64 run: the elements float32 puts off are named as ill-conditioned, or
            # (where this machine's float32 SVD lands nearer) as off through rounding in its own dtype alone
            through = ("ill-conditioned", "float64 run"), ("rounding in the gradient's own dtype", "in float64")
            assert any(all(w in n for w in words) for words in through for n in report.notes), report.notes
    wrong = bt.check_function(zoo.SVDRotationWrong, a)
    assert wrong.status == "fail" and wrong.leaf("a").n_mismatch > 0


# ------------------------------------------------------------------------------------------------------------
# calling convention, 0-d inputs, outputs autograd does not differentiate, undefined output gradients
# ------------------------------------------------------------------------------------------------------------
def test_inputs_positional_and_by_keyword() -> None:
    x, w, b = _r(12, 3, 4), _r(13, 4, 2), _r(14, 2)

    def layer(x: torch.Tensor, w: torch.Tensor, *, bias: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.tanh(x @ w + bias)

    report = bt.check(layer, x, w, bias=b, scale=2.0)
    assert report.ok and [lf.name for lf in report.leaves] == ["x", "w", "bias"]
    wrong = bt.check(lambda x, w, bias: torch.tanh(x @ w + bias.detach()), x, w, bias=b)
    assert wrong.leaf("bias").status == "fail" and wrong.leaf("w").status == "pass"
    assert (
        bt.check(lambda x, w: torch.tanh(x @ w), (x, w)).n_evals
        == bt.check(lambda x, w: torch.tanh(x @ w), x, w).n_evals
    )
    assert bt.check_module(torch.nn.Linear(4, 2).double(), input=x).ok
    with pytest.raises(BadInputError):
        bt.check(torch.sin, x, strategy="everything")


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_dimensional_inputs(dtype: torch.dtype) -> None:
    x, w = torch.tensor(0.7, dtype=dtype), _r(15, 3, dtype=dtype)
    report = bt.check(lambda x, w: torch.sin(x) * w, x, w)
    assert report.ok and report.leaf("x").shape == () and report.leaf("x").n_checked == 1, str(report)
    assert bt.check(lambda x: x**3, x).ok
    wrong = bt.check(lambda x, w: torch.sin(x.detach()) * w + 0 * x, x, w)
    assert wrong.leaf("x").status == "fail"


@pytest.mark.parametrize("dtype", DTYPES)
def test_outputs_autograd_does_not_differentiate_are_left_out(dtype: torch.dtype) -> None:
    (x,) = zoo.distinct_rows(np.random.default_rng(0), dtype)
    report = bt.check_function(zoo.MaxWithIndex, x)
    assert report.ok, str(report)
    assert any("out[1] is not differentiable" in n for n in report.notes), report.notes
    w, b = _r(16, 5, dtype=dtype), _r(17, 5, dtype=dtype)
    xs = _r(18, 4, 5, dtype=dtype)
    for fn in (
        lambda x, w, b: torch.native_layer_norm(x, (5,), w, b, 1e-5),  # (out, mean, rstd)
        lambda x, w, b: torch.native_batch_norm(x, w, b, None, None, True, 0.1, 1e-5),  # (out, mean, invstd)
    ):
        got = bt.check(fn, xs, w, b)
        assert got.ok, str(got)
        assert any("out[1], out[2] are not differentiable" in n for n in got.notes), got.notes


@pytest.mark.parametrize("dtype", DTYPES)
def test_each_output_alone_with_the_others_undefined(dtype: torch.dtype) -> None:
    x = _r(19, 3, 4, dtype=dtype)
    report = bt.check_function(zoo.NormPair, x)
    assert report.ok, str(report)
    assert [lf.name for lf in report.leaves] == ["x", "out[0] alone:x", "out[1] alone:x"]
    bad = bt.check_function(zoo.NormPairDropsY, x)
    assert bad.leaf("x").status == "pass"  # both cotangents given: the bug is not on this path
    assert bad.leaf("out[0] alone:x").status == "fail" and bad.leaf("out[1] alone:x").status == "pass"
    assert bad.status == "fail"


class ShiftBy(torch.autograd.Function):
    """x + 0 * w: w's gradient is torch's ZeroTensor."""

    @staticmethod
    def forward(ctx, x, w):
        return x + 0 * w

    @staticmethod
    def backward(ctx, g):
        return g, torch._efficientzerotensor(g.shape[-1:], dtype=g.dtype)


def test_zero_tensor_and_sparse_gradients_are_dense() -> None:
    x = _r(20, 3, 4)
    report = bt.check_function(ShiftBy, x, _r(22, 4))
    assert report.ok and report.leaf("w").n_checked == 4, str(report)
    emb = torch.nn.Embedding(6, 3, sparse=True).double()
    idx = torch.tensor([0, 2, 2, 5])
    got = bt.check_module(emb, idx)
    assert got.ok and got.leaf("weight").n_checked == 18, str(got)
    with pytest.raises(BadInputError, match="sparse"):
        bt.check(lambda x: torch.sparse.sum(x * 2), x.to_sparse())
    with pytest.raises(BadInputError, match="sparse"):
        bt.check(lambda x: (x * 2).to_sparse(), x)


def test_undefined_gradient_of_a_zero_cotangent_checks_nothing_more() -> None:
    x = _r(21, 3, 2)
    dout = (torch.ones(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64))
    report = bt.check(lambda x: (torch.sin(x), torch.cos(x)), x, dout=dout)
    assert [lf.name for lf in report.leaves] == ["x", "out[0] alone:x"]
    np.testing.assert_allclose(report.analytic["x"], torch.cos(x).numpy(), rtol=1e-12)


class TanhWrongInFloat32(torch.autograd.Function):
    """tanh whose float32 backward is 0.1% off (a float32-only kernel bug); its float64 backward is right."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        out = g * (1 - y * y)
        return out * (1 + 1e-3) if out.dtype == torch.float32 else out


def test_float64_run_does_not_excuse_a_float32_only_bug() -> None:
    x = _r(23, 3, 4, dtype=torch.float32)
    report = bt.check_function(TanhWrongInFloat32, x)
    assert report.status == "fail" and report.leaf("x").n_mismatch > 0, str(report)
    assert any("judged at its own dtype's resolution, not through the float64 run" in n for n in report.notes)
    assert bt.check_function(TanhWrongInFloat32, x.double()).ok


def test_another_function_in_float64_is_evaluated_in_its_own_dtype() -> None:
    def noisy_scale(x: torch.Tensor) -> torch.Tensor:
        r = torch.rand(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)  # other draws in float64
        return torch.tanh(x) * (1 + r)

    report = bt.check(noisy_scale, _r(24, 3, 4, dtype=torch.float32))
    assert report.status in ("pass", "inconclusive") and report.status != "fail", str(report)
    assert any("is another function than at its inputs' own dtype" in n for n in report.notes), report.notes
    assert not any("off only through rounding" in n for n in report.notes)
