"""Numerics at the edge of the float range: ops whose result is representable give it without numpy warnings,
checked against torch (float64) where torch itself stays finite, and against the limits where it does not."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.nn import Tensor
from backcheck.nn import functional as F

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
given, settings = hypothesis.given, hypothesis.settings

EXTREME = np.array([[1.7e308, -1.7e308, 0.0, 1e-300], [-1.7e308, 1.7e308, 3.0, -5.0], [2.0, -1.0, 0.5, 0.25]])


def _torch_pair(fn_bc, fn_torch, x, g):
    """Forward and input gradient of the engine and of torch (float64) at ``x`` with upstream ``g``."""
    xt = Tensor(x.copy(), requires_grad=True)
    out = fn_bc(xt)
    out.backward(np.broadcast_to(g, out.shape).copy())
    tt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tout = fn_torch(tt)
    tout.backward(torch.from_numpy(np.broadcast_to(g, tuple(tout.shape)).copy()))
    return (out.data, xt.grad), (tout.detach().numpy(), tt.grad.numpy())


LABELS = np.array([0, 2, 1])
STABLE_OPS = {
    "softmax": (lambda x: F.softmax(x), lambda x: torch.softmax(x, -1)),
    "log_softmax": (lambda x: F.log_softmax(x), lambda x: torch.log_softmax(x, -1)),
    "logsumexp": (lambda x: F.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, 1)),
    "cross_entropy": (
        lambda x: F.cross_entropy(x, LABELS, reduction="none"),
        lambda x: torch.nn.functional.cross_entropy(x, torch.from_numpy(LABELS), reduction="none"),
    ),
    "gelu": (lambda x: F.gelu(x), lambda x: torch.nn.functional.gelu(x)),
    "gelu_tanh": (lambda x: F.gelu(x, "tanh"), lambda x: torch.nn.functional.gelu(x, approximate="tanh")),
    "softplus": (lambda x: F.softplus(x, beta=2.0), lambda x: torch.nn.functional.softplus(x, beta=2.0)),
    "sigmoid": (lambda x: F.sigmoid(x), torch.sigmoid),
}


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", sorted(STABLE_OPS))
def test_extreme_inputs_give_torchs_result_without_numpy_warnings(name):
    fn_bc, fn_torch = STABLE_OPS[name]
    g = np.array([1.0, -2.0, 0.5, 3.0]) if name not in ("logsumexp", "cross_entropy") else np.array([1.0, -2.0, 0.5])
    (out, grad), (tout, tgrad) = _torch_pair(fn_bc, fn_torch, EXTREME, g)
    if name.startswith("gelu"):  # torch's own gelu gradient overflows to NaN at +-1.7e308; the limits are 1 and 0
        tgrad = np.where(np.isnan(tgrad), g * (EXTREME > 0), tgrad)
    rtol = 8 * np.finfo(np.float64).eps * EXTREME.shape[1]  # a reduction over one row at most
    np.testing.assert_allclose(out, tout, rtol=rtol, atol=0, err_msg="forward")
    # gradients are sums of terms of the size of the upstream gradient, which may cancel
    np.testing.assert_allclose(grad, tgrad, rtol=rtol, atol=rtol * np.abs(g).max(), err_msg="gradient")


@pytest.mark.filterwarnings("error")
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1.0, 1e150, 1e300, 1.7e308]), st.integers(2, 9))
def test_softmax_family_matches_torch_at_any_scale(seed, scale, classes):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(4, classes)) * scale
    g = rng.standard_normal((4, classes))
    rtol = 8 * np.finfo(np.float64).eps * classes
    for fn_bc, fn_torch in (STABLE_OPS["softmax"], STABLE_OPS["log_softmax"]):
        (out, grad), (tout, tgrad) = _torch_pair(fn_bc, fn_torch, x, g)
        np.testing.assert_allclose(out, tout, rtol=rtol, atol=1e-300)
        np.testing.assert_allclose(grad, tgrad, rtol=rtol, atol=rtol * np.abs(g).sum())
    labels = rng.integers(0, classes, size=4)
    loss = F.cross_entropy(Tensor(x), labels, reduction="none").data
    tloss = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(labels), reduction="none")
    np.testing.assert_allclose(loss, tloss.numpy(), rtol=rtol, atol=1e-300)
