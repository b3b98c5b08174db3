"""Habits of real custom autograd Functions the torch frontend must read right: parameter gradients accumulated
inside a backward, float labels beside float32 inputs, tensors left out of a check, targets a backward gives
None, Functions with a jvp only, and backwards that clip their incoming gradient."""

from __future__ import annotations

import pytest

from backcheck.errors import BadInputError, UserFunctionError
from backcheck.report import Report

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
torch.set_num_threads(1)
F = torch.nn.functional


def _r(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _kinds(report: Report) -> list[str]:
    return [f.kind for f in report.findings]


# -- gradients a backward accumulates into parameters' .grad ------------------------------------------------


class Recompute(torch.autograd.Function):
    """Manual checkpointing: the forward runs ``module`` without a graph; the backward recomputes it and calls
    ``torch.autograd.backward``, so the module's parameter gradients land in their ``.grad`` (times ``scale``:
    1 is right)."""

    @staticmethod
    def forward(ctx, x, module, scale):
        ctx.module, ctx.scale = module, scale
        ctx.save_for_backward(x)
        with torch.no_grad():
            return module(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        x = x.detach().requires_grad_()
        with torch.enable_grad():
            y = ctx.module(x)
        torch.autograd.backward(y, g * ctx.scale)
        return x.grad / ctx.scale, None, None


class Checkpointed(torch.nn.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.inner = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Recompute.apply(x, self.inner, self.scale)


def _marked(dtype: torch.dtype) -> tuple[Checkpointed, list[torch.Tensor]]:
    """A checkpointed net whose parameters' .grad holds 7s already, and those .grad tensors."""
    torch.manual_seed(0)
    net = Checkpointed().to(dtype)
    for p in net.parameters():
        p.grad = torch.full_like(p, 7.0)
    return net, [p.grad for p in net.parameters()]


def _kept(net: Checkpointed, grads: list[torch.Tensor]) -> bool:
    """Whether the parameters' .grad are the same tensors, still all 7s (nothing accumulated into them)."""
    same = all(p.grad is g for p, g in zip(net.parameters(), grads, strict=True))
    return same and all(bool(torch.all(p.grad == 7.0)) for p in net.parameters())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_parameter_gradients_accumulated_inside_backward_are_checked(dtype: torch.dtype) -> None:
    net, grads = _marked(dtype)
    report = bt.check_module(net, _r(1, 5, 3, dtype=dtype))
    assert report.ok, str(report)
    names = ["x", "inner.0.weight", "inner.0.bias", "inner.2.weight", "inner.2.bias"]
    assert [lf.name for lf in report.leaves] == names
    assert any("accumulates gradients into the .grad" in n for n in report.notes), report.notes
    assert _kept(net, grads)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_module_checked_as_a_function_keeps_its_parameters_grad(dtype: torch.dtype) -> None:
    # its parameters are constants of the check; the backward pass accumulates into their .grad
    net, grads = _marked(dtype)
    assert bt.check(net, _r(1, 5, 3, dtype=dtype)).ok
    assert _kept(net, grads)


def test_wrong_parameter_gradients_accumulated_inside_backward_fail() -> None:
    torch.manual_seed(0)
    report = bt.check_module(Checkpointed(scale=1.5).double(), _r(2, 5, 3))
    assert report.status == "fail", str(report)
    assert report.leaf("x").status == "pass"
    assert all(lf.status == "fail" for lf in report.leaves[1:]), str(report)


class AssignsGrad(torch.autograd.Function):
    """``x @ w`` whose backward writes ``w.grad`` itself (times ``scale``) and returns no gradient for ``w``."""

    @staticmethod
    def forward(ctx, x, w, scale):
        ctx.save_for_backward(x, w)
        ctx.scale = scale
        return x @ w.detach()

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        w.grad = ctx.scale * (x.t() @ g)
        return g @ w.t(), None, None


@pytest.mark.parametrize(("scale", "status"), [(1.0, "pass"), (0.9, "fail")])
def test_gradient_a_backward_assigns_to_a_parameter_is_checked(scale: float, status: str) -> None:
    w = _r(3, 4, 2).requires_grad_()
    report = bt.check(lambda x: AssignsGrad.apply(x, w, scale), _r(4, 3, 4), params=[w])
    assert report.leaf("params[0]").status == status, str(report)
    assert report.leaf("x").status == "pass"
    assert w.grad is None


# -- unchecked float arguments in the float64 runs ----------------------------------------------------------


class LabelledBCE(torch.autograd.Function):
    """Binary cross-entropy with logits whose backward builds its gradient in place in the label's dtype;
    records the dtypes of (logits, labels) each pass sees."""

    seen: dict[str, set] = {"forward": set(), "backward": set()}

    @staticmethod
    def forward(ctx, x, y):
        LabelledBCE.seen["forward"].add((x.dtype, y.dtype))
        ctx.save_for_backward(x, y)
        return F.softplus(x) - x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        LabelledBCE.seen["backward"].add((x.dtype, y.dtype))
        d = y * -1.0
        d.add_(torch.sigmoid(x))  # in place: the label's dtype
        return d * g, None


def test_float32_label_is_widened_with_the_checked_input_in_the_float64_runs() -> None:
    LabelledBCE.seen = {"forward": set(), "backward": set()}
    x = _r(5, 6, 5, dtype=torch.float32).requires_grad_()
    y = (_r(6, 6, 5) > 0).float()
    y_before = y.clone()
    report = bt.check_function(LabelledBCE, x, y)
    assert report.ok, str(report)
    wide, narrow = (torch.float64, torch.float64), (torch.float32, torch.float32)
    assert LabelledBCE.seen["backward"] == {wide, narrow}, LabelledBCE.seen  # the float64 run of the backward
    assert LabelledBCE.seen["forward"] == {wide, narrow}, LabelledBCE.seen  # the numeric side alike
    assert y.dtype == torch.float32 and torch.equal(y, y_before)


def test_float32_label_in_a_list_argument_is_widened_too() -> None:
    seen = set()

    def loss(x: torch.Tensor, extra: list) -> torch.Tensor:
        seen.add(extra[0].dtype)
        return (torch.sigmoid(x) * extra[0]).sum()

    report = bt.check(loss, _r(7, 4, dtype=torch.float32).requires_grad_(), [_r(8, 4, dtype=torch.float32)])
    assert report.ok, str(report)
    assert seen == {torch.float32, torch.float64}, seen


# -- tensors a check leaves out -----------------------------------------------------------------------------


class Linear(torch.autograd.Function):
    """PyTorch's LinearFunction; ``bias_sum=False`` is the bug of a bias gradient not summed over the batch."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return x @ w.t() + b

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, g.t() @ x, g[0]  # bug: not summed


def test_float_inputs_left_out_by_requires_grad_are_named() -> None:
    x = _r(9, 5, 3).requires_grad_()
    report = bt.check_function(Linear, x, _r(10, 4, 3), _r(11, 4))
    assert report.ok and [lf.name for lf in report.leaves] == ["x"], str(report)
    note = [n for n in report.notes if n.startswith("not checked:")]
    assert len(note) == 1 and "w, b" in note[0] and "requires_grad_()" in note[0], report.notes
    assert bt.check_function(Linear, x.detach(), _r(10, 4, 3), _r(11, 4)).status == "fail"


def test_closure_parameters_that_require_grad_are_named() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 4).double()
    report = bt.check(lambda t: Linear.apply(t, lin.weight, lin.bias), _r(12, 5, 3))
    note = [n for n in report.notes if n.startswith("not checked:")]
    assert len(note) == 1 and "lin.weight, lin.bias" in note[0] and "params=" in note[0], report.notes
    full = bt.check(lambda t: Linear.apply(t, lin.weight, lin.bias), _r(12, 5, 3), params=lin)
    assert full.leaf("bias").status == "fail" and not any(n.startswith("not checked:") for n in full.notes), str(full)


def test_a_module_checked_as_a_function_names_its_parameters_in_order() -> None:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    report = bt.check(mlp, _r(28, 5, 3))
    note = [n for n in report.notes if n.startswith("not checked:")]
    assert len(note) == 1 and note[0].startswith("not checked: 0.weight, 0.bias, 2.weight, 2.bias:"), report.notes
    assert "check_module" in note[0]
    assert not any(n.startswith("not checked:") for n in bt.check_module(mlp, _r(28, 5, 3)).notes)


def test_nothing_left_out_gives_no_note() -> None:
    report = bt.check(lambda x, w: torch.tanh(x @ w), _r(13, 3, 4), _r(14, 4, 2))
    assert report.ok and not any(n.startswith("not checked:") for n in report.notes), report.notes


# -- inputs a backward gives None (targets, or a term forgotten) -----------------------------------------------


class TargetBCE(torch.autograd.Function):
    """A loss Function over float targets: no gradient (None) for the target; ``wrong`` scales the logits'."""

    @staticmethod
    def forward(ctx, logits, target, wrong=1.0):
        ctx.save_for_backward(logits, target)
        ctx.wrong = wrong
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")

    @staticmethod
    def backward(ctx, g):
        logits, target = ctx.saved_tensors
        return ctx.wrong * (torch.sigmoid(logits) - target) * g, None, None


def _target() -> torch.Tensor:
    return (_r(16, 4, 5) > 0).double()


def test_target_the_backward_gives_none_fails_saying_how_to_check_the_others() -> None:
    report = bt.check_function(TargetBCE, _r(15, 4, 5), _target())
    assert report.status == "fail" and report.leaf("logits").status == "pass", str(report)
    note = report.leaf("target").note
    assert report.leaf("target").status == "fail" and "TargetBCE.backward returns None for target" in note, note
    assert "mark logits with requires_grad_()" in note and "missing its gradient" in note
    marked = bt.check_function(TargetBCE, _r(15, 4, 5).requires_grad_(), _target())
    assert marked.ok and [lf.name for lf in marked.leaves] == ["logits"], str(marked)
    assert bt.check_function(TargetBCE, _r(15, 4, 5).requires_grad_(), _target(), 1.01).status == "fail"


def test_marked_target_the_backward_gives_none_fails_saying_why() -> None:
    report = bt.check_function(TargetBCE, _r(15, 4, 5).requires_grad_(), _target().requires_grad_())
    leaf = report.leaf("target")
    assert leaf.status == "fail" and "TargetBCE.backward returns None for target" in leaf.note, str(report)
    assert "leave target unmarked" in leaf.note


def test_zero_gradient_the_output_does_not_need_keeps_its_pass() -> None:
    forward, backward = (lambda ctx, x, w: x + 0 * w), (lambda ctx, g: (g, None))  # w: no gradient, rightly
    Masked = type(
        "Masked", (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )
    report = bt.check_function(Masked, _r(26, 3), _r(27, 3))
    assert report.ok and report.leaf("w").note == "", str(report)


class NoGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2.0

    @staticmethod
    def backward(ctx, g):
        return None


def test_the_only_input_given_none_still_fails() -> None:
    report = bt.check_function(NoGradient, _r(17, 4))
    assert report.status == "fail" and report.leaf("x").status == "fail", str(report)
    assert "NoGradient.backward returns None for x" in report.leaf("x").note


# -- a Function with a jvp only -----------------------------------------------------------------------------


class ExpJvp(torch.autograd.Function):
    """exp with forward mode only (PyTorch's forward-mode AD tutorial)."""

    @staticmethod
    def forward(ctx, x):
        result = torch.exp(x)
        ctx.result = result
        return result

    @staticmethod
    def jvp(ctx, t):
        return t * ctx.result


class ExpJvpWrong(ExpJvp):
    """Its jvp 1% off."""

    @staticmethod
    def jvp(ctx, t):
        return 1.01 * t * ctx.result


def test_function_with_only_a_jvp_is_checked_in_forward_mode() -> None:
    report = bt.check_function(ExpJvp, _r(18, 3, 4))
    assert report.ok, str(report)
    assert report.leaf("x").status == "skipped" and "no reverse mode" in report.leaf("x").note
    assert report.leaf("jvp:x").status == "pass" and report.leaf("jvp:x").n_checked == 12
    bad = bt.check_function(ExpJvpWrong, _r(18, 3, 4), forward_mode=True)
    assert bad.status == "fail" and bad.leaf("jvp:x").status == "fail", str(bad)


def test_jvp_only_function_without_forward_mode_says_how() -> None:
    with pytest.raises(UserFunctionError, match="forward_mode=True"):
        bt.check(lambda t: ExpJvp.apply(t), _r(19, 3))


# -- backwards that are not linear in their cotangent -------------------------------------------------------


def _clipping(lo: float, hi: float) -> type:
    class Clip(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g.clamp(lo, hi)

    return Clip


class Normalize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g / g.norm()


@pytest.mark.parametrize("threshold", [0.75, 2.0])  # below the cotangent's size, and within 4 times it
def test_backward_that_clips_its_cotangent_fails_at_the_default_cotangent(threshold: float) -> None:
    clip = _clipping(-threshold, threshold)
    report = bt.check(lambda t: torch.sin(clip.apply(t)), torch.tensor([0.1, 3.0, 6.2, 1.0], dtype=torch.float64))
    assert report.status == "fail" and "nonlinear backward" in _kinds(report), str(report)
    message = next(f.message for f in report.findings if f.kind == "nonlinear backward")
    assert "not linear in its cotangent" in message and "clips" in message


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_backward_that_normalizes_its_cotangent_fails(dtype: torch.dtype) -> None:
    report = bt.check(lambda t: Normalize.apply(t) * 3.0, _r(20, 6, dtype=dtype))
    assert report.status == "fail" and "nonlinear backward" in _kinds(report), str(report)


class Decayed(torch.autograd.Function):
    """The identity whose backward adds a weight decay: affine in its cotangent, not linear."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g + 1e-3 * x


def test_backward_that_adds_a_term_independent_of_its_cotangent_is_not_linear() -> None:
    report = bt.check(lambda t: torch.sin(Decayed.apply(t)), _r(25, 6))
    message = next(f.message for f in report.findings if f.kind == "nonlinear backward")
    assert "weight decay" in message, str(report)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_backward_that_rounds_a_scaled_cotangent_differently_is_linear(dtype: torch.dtype) -> None:
    x = _r(21, 6, 5, dtype=dtype) * 4
    x[0, 2] = 1e3 if dtype == torch.float32 else 1e4  # logcumsumexp's log-space backward rounds with |x|
    report = bt.check(lambda t: torch.logcumsumexp(t, 0), x.requires_grad_())
    assert "nonlinear backward" not in _kinds(report), str(report)
    assert bt.check(lambda t: torch.sin(_clipping(-1e9, 1e9).apply(t)), _r(22, 5)).ok


# -- errors that say where they happened and what to do ------------------------------------------------------


class TwoOutputs(torch.autograd.Function):
    """``(2x, 3x)`` whose backward assumes both gradients are defined (grads not materialized)."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, g1, g2):
        return 2 * g1 + 3 * g2


def test_backward_that_crashes_on_an_undefined_gradient_says_which_output_was_alone() -> None:
    report = bt.check_function(TwoOutputs, _r(23, 3))
    assert report.status == "fail" and report.leaves[0].status == "pass"
    (found,) = report.findings
    assert found.kind == "undefined gradient" and "the gradient of out[0] alone" in found.message
    assert "TypeError" in found.message


class DoubleInPlace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.mark_dirty(x)
        return x.mul_(2)

    @staticmethod
    def backward(ctx, g):
        return 2 * g


def test_in_place_forward_on_an_input_is_told_to_check_a_copy() -> None:
    x = _r(24, 3)
    with pytest.raises(UserFunctionError, match=r"DoubleInPlace\.apply\(t\.clone\(\)\)"):
        bt.check_function(DoubleInPlace, x)
    with pytest.raises(UserFunctionError, match=r"fn\(t\.clone\(\)\)"):
        bt.check(torch.relu_, x)
    assert torch.equal(x, _r(24, 3))
    assert bt.check(lambda t: DoubleInPlace.apply(t.clone()), x).ok


class ScaleInPlace(torch.autograd.Function):  # a quantizer's habit: the tensor, then numbers and an inplace flag
    @staticmethod
    def forward(ctx, x, scale, shift, inplace):
        ctx.scale = scale
        if inplace:
            ctx.mark_dirty(x)
            return x.mul_(scale).add_(shift)
        return x * scale + shift

    @staticmethod
    def backward(ctx, g):
        return g * ctx.scale, None, None, None


def test_in_place_forward_with_more_arguments_is_told_a_call_that_keeps_them() -> None:
    x = _r(24, 3)
    with pytest.raises(UserFunctionError, match=r"ScaleInPlace\.apply\(\*\(v\.clone\(\) if torch\.is_tensor") as info:
        bt.check_function(ScaleInPlace, x, 3.0, 0.5, True)
    call = str(info.value).split("differentiates through: ")[1].split("<the same arguments>")[0]
    names = {"backcheck": __import__("backcheck.torch"), "torch": torch, "ScaleInPlace": ScaleInPlace, "x": x}
    suggested = eval(call + "x, 3.0, 0.5, True)", names)  # the hint, run as written
    assert suggested.ok, suggested
    assert torch.equal(x, _r(24, 3))


class _BCEWithLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return torch.clamp(x, min=0) - x * y + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * (torch.sigmoid(x) - y) * _BCEWithLogits.scale, None

    scale = 1.0


def test_constant_names_inputs_passed_through_as_the_numpy_checks_do() -> None:
    x, y = _r(30, 4, 3), (_r(31, 4, 3) > 0).double()
    report = bt.check_function(_BCEWithLogits, x, y, constant=["y"])
    assert report.ok and [lf.name for lf in report.leaves] == ["x"], str(report)
    assert bt.check(lambda x, y: _BCEWithLogits.apply(x, y), x, y, constant="y").ok
    _BCEWithLogits.scale = 1.01
    try:
        assert bt.check_function(_BCEWithLogits, x, y, constant=["y"]).status == "fail"
    finally:
        _BCEWithLogits.scale = 1.0
    with pytest.raises(BadInputError, match="'z'"):
        bt.check_function(_BCEWithLogits, x, y, constant=["z"])


def test_a_lazy_module_not_created_yet_is_a_typed_error_and_stays_lazy() -> None:
    lazy = torch.nn.Sequential(torch.nn.LazyLinear(3), torch.nn.Tanh()).double()
    x = _r(40, 2, 4)
    with pytest.raises(BadInputError, match="lazy"):
        bt.check_module(lazy, x)
    with pytest.raises(BadInputError, match="lazy"):
        bt.check(lazy, x)
    assert lazy(x).shape == (2, 3)  # still usable: it creates its parameters on this first call
    assert bt.check_module(lazy, x).ok


def test_tensors_inside_a_dict_argument_are_inputs() -> None:
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")

    class Scaled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return g * w, 2 * g * x  # w's gradient twice too large

    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 4, dtype=torch.float64, generator=gen), torch.randn(3, 4, dtype=torch.float64, generator=gen)
    before = (x.clone(), w.clone())
    right = bt.check(lambda batch: batch["x"] * batch["w"], {"x": x, "w": w})
    assert right.status == "pass" and [lf.name for lf in right.leaves] == ["batch['x']", "batch['w']"], right
    wrong = bt.check(lambda batch: Scaled.apply(batch["x"], batch["w"]), {"x": x, "w": w})
    assert wrong.status == "fail" and [lf.name for lf in wrong.leaves if lf.status == "fail"] == ["batch['w']"]
    assert torch.equal(x, before[0]) and torch.equal(w, before[1])


def test_a_tensor_requiring_grad_nested_deeper_is_refused_by_name() -> None:
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(BadInputError, match=r"d\['p'\]\['x'\] is a tensor that requires grad"):
        bt.check(lambda d: d["p"]["x"] * d["w"], {"p": {"x": x}, "w": w})
    mask = torch.ones(3, 4, dtype=torch.float64)  # a tensor without requires_grad deeper in: passed through
    assert bt.check(lambda d: d["w"] * d["cfg"]["mask"], {"w": w, "cfg": {"mask": mask}}).status == "pass"
