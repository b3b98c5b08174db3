"""A gradient that is NaN (or inf) at input entries of -inf (a mask before a softmax): f cannot move along such an
entry, so its derivative there is 0, and the NaN makes every gradient computed from it upstream NaN (``dQ = dS @ K``
in attention). Such entries are left out of the comparison; a non-finite gradient there passed in every frontend.
It fails now, naming the entries; a right rule (0 there) passes, and a NaN input entry (padding) keeps its own
convention (NaN in, NaN out)."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def softmax_backward(dout: np.ndarray, s: np.ndarray, masked: float = 0.0) -> np.ndarray:
    p = softmax(s)
    ds = p * (dout - (dout * p).sum(-1, keepdims=True))
    return np.where(np.isinf(s), masked, ds)


def scores() -> np.ndarray:
    s = np.random.default_rng(0).normal(size=(3, 4))
    s[0, 2:] = -np.inf
    s[1, 3] = -np.inf
    return s


def _finding(report: backcheck.Report) -> backcheck.report.Finding:
    found = [f for f in report.findings if f.kind == "non-finite gradient"]
    assert len(found) == 1, report.findings
    return found[0]


@pytest.mark.parametrize("masked", [np.nan, np.inf])
def test_a_layer_whose_gradient_is_not_finite_at_its_masks_fails_naming_them(masked: float) -> None:
    s = scores()
    report = backcheck.check_layer(softmax, lambda d, x: softmax_backward(d, x, masked), (s,))
    assert report.status == "fail", report
    assert _finding(report).elements == ["s[0, 2]", "s[0, 3]", "s[1, 3]"]
    right = backcheck.check_layer(softmax, softmax_backward, (s,))
    assert right.status == "pass" and not right.findings, right


def test_a_loss_whose_gradient_is_nan_at_its_masks_fails() -> None:
    s, w = scores(), np.random.default_rng(1).normal(size=(3, 4))

    def loss(x: np.ndarray) -> float:
        return float(np.sum(softmax(x) * w))

    assert backcheck.check(loss, s, lambda x: softmax_backward(w, x)).status == "pass"
    report = backcheck.check(loss, s, lambda x: softmax_backward(w, x, np.nan))
    assert report.status == "fail" and _finding(report).elements[0] == "x[0, 2]", report


def test_a_nan_input_entry_keeps_nan_in_nan_out() -> None:
    x = np.array([0.5, np.nan, -1.0])

    def f(v: np.ndarray) -> float:
        return float(np.nansum(v**2))

    report = backcheck.check(f, x, lambda v: 2 * v)  # NaN where the input is NaN: not a mask
    assert report.status == "pass" and not report.findings, report


def test_torch_and_jax_fail_a_nan_at_masked_logits(x64: None) -> None:
    torch = pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp

    import backcheck.jax as bj
    import backcheck.torch as bt

    class Softmax(torch.autograd.Function):
        @staticmethod
        def forward(ctx, s):
            p = torch.softmax(s, -1)
            ctx.save_for_backward(s, p)
            return p

        @staticmethod
        def backward(ctx, g):
            s, p = ctx.saved_tensors
            ds = p * (g - (g * p).sum(-1, keepdim=True))
            return torch.where(torch.isinf(s), torch.full_like(ds, float("nan")), ds)

    report = bt.check_function(Softmax, torch.from_numpy(scores()))
    assert report.status == "fail" and _finding(report).elements == ["s[0, 2]", "s[0, 3]", "s[1, 3]"], report
    assert any("+-inf" in n for n in report.notes), report.notes
    assert bt.check(lambda t: torch.softmax(t, -1), torch.from_numpy(scores())).status == "pass"

    @jax.custom_vjp
    def jsoftmax(s):
        return jax.nn.softmax(s, -1)

    def fwd(s):
        p = jax.nn.softmax(s, -1)
        return p, (s, p)

    def bwd(res, g):
        s, p = res
        ds = p * (g - (g * p).sum(-1, keepdims=True))
        return (jnp.where(jnp.isinf(s), jnp.nan, ds),)

    jsoftmax.defvjp(fwd, bwd)
    report = bj.check(jsoftmax, jnp.asarray(scores()))
    assert report.status == "fail" and len(_finding(report).elements) == 3, report
