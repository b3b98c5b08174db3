"""Cross-check of the zoo against torch in float64: forward values and torch.autograd gradients.

The finite-difference tests prove each backward matches its own forward; this file also pins the
forwards to the standard definitions (conv padding, GELU's tanh form, GRU gate conventions, ...).
"""

from __future__ import annotations

import numpy as np
import pytest

from backcheck.zoo import LAYERS

torch = pytest.importorskip("torch")
TORCH_CASES = pytest.importorskip("backcheck.zoo.torch_functions").CASES

F = torch.nn.functional
torch.set_num_threads(1)

KEEP, LAMBDA = 0.6, 0.1


def _lstm(x, h, c, wx, wh, b):
    hd = h.shape[1]
    i, f, o, g = (slice(k * hd, (k + 1) * hd) for k in range(4))
    order = [i, f, g, o]  # torch orders the gates (i, f, g, o), the zoo (i, f, o, g)
    w_ih = torch.cat([wx[:, s] for s in order], dim=1).T
    w_hh = torch.cat([wh[:, s] for s in order], dim=1).T
    b_ih = torch.cat([b[s] for s in order])
    h1, c1 = torch.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, torch.zeros_like(b_ih))
    return torch.cat([h1, c1], dim=1)


def _svm(x, y):
    return F.multi_margin_loss(x, y) * x.shape[1]  # torch also divides by the number of classes


REFERENCES = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "prelu": F.prelu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "softplus": F.softplus,
    "elu": lambda x: F.elu(x, alpha=0.5),
    "softmax": lambda x: F.softmax(x, dim=-1),
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "hardtanh": F.hardtanh,
    "softmax_cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
    "svm_hinge": _svm,
    "hinge_binary": lambda x, y: torch.clamp(1 - y * x, min=0).mean(),
    "bce_with_logits": F.binary_cross_entropy_with_logits,
    "huber": lambda p, t: F.huber_loss(p, t, delta=1.0),
    "l1": F.l1_loss,
    "affine": lambda x, w, b: x.reshape(x.shape[0], -1) @ w + b,
    "bilinear": F.bilinear,
    "embedding": F.embedding,
    "mlp_relu": lambda x, w1, b1, w2, b2: F.relu(x @ w1 + b1) @ w2 + b2,
    "maxout": lambda x, w, b: (x @ w + b).reshape(x.shape[0], -1, 2).amax(-1),
    "conv2d": lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
    "conv2d_relu": lambda x, w, b: F.relu(F.conv2d(x, w, b, padding=1)),
    "conv1d": lambda x, w, b: F.conv1d(x, w, b, padding=1),
    "depthwise_conv2d": lambda x, w: F.conv2d(x, w[:, None], padding=1, groups=x.shape[1]),
    "maxpool2d": lambda x: F.max_pool2d(x, 3, 2),
    "maxpool2d_ties": lambda x: F.max_pool2d(torch.repeat_interleave(x, 2, dim=-1), 2, 2),
    "avgpool2d": lambda x: F.avg_pool2d(x, 2),
    "global_avgpool": lambda x: F.adaptive_avg_pool2d(x, 1)[:, :, 0, 0],
    "global_maxpool": lambda x: F.adaptive_max_pool2d(x, 1)[:, :, 0, 0],
    "sort": lambda x: torch.sort(x, dim=-1).values,
    "batchnorm_train": lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
    "layernorm": lambda x, g, b: F.layer_norm(x, x.shape[-1:], g, b, eps=1e-5),
    "groupnorm": lambda x, g, b: F.group_norm(x, 2, g, b, eps=1e-5),
    "l2_normalize": lambda x: F.normalize(x, dim=-1),
    "rnn_step": lambda x, h, wx, wh, b: torch.rnn_tanh_cell(x, h, wx.T, wh.T, b, torch.zeros_like(b)),
    "rnn_relu_step": lambda x, h, wx, wh, b: torch.rnn_relu_cell(x, h, wx.T, wh.T, b, torch.zeros_like(b)),
    "lstm_step": _lstm,
    "gru_step": lambda x, h, wx, wh, b: torch.gru_cell(x, h, wx.T, wh.T, b, torch.zeros_like(b)),
    "attention": F.scaled_dot_product_attention,
    "masked_attention": lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
    "matmul": torch.matmul,
    "batched_matmul": torch.bmm,
    "trace": lambda a: torch.diagonal(a, dim1=-2, dim2=-1).sum(-1),
    "det": torch.linalg.det,
    "logdet": lambda a: torch.linalg.slogdet(a).logabsdet,
    "inverse": torch.linalg.inv,
    "solve": torch.linalg.solve,
    "cholesky": lambda a: torch.linalg.cholesky(0.5 * (a + a.mT)),
    "frobenius_norm": torch.linalg.matrix_norm,
    "dropout": lambda x, m: x * m / KEEP,
    "weight_decay_l2": lambda w: 0.5 * LAMBDA * (w * w).sum(),
    "weight_decay_l1": lambda w: LAMBDA * w.abs().sum(),
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "pow": torch.pow,
    "divide": torch.div,
    "maximum": torch.maximum,
    "abs": torch.abs,
    "where": torch.where,
}


def test_every_layer_has_a_reference():
    assert {layer.name for layer in LAYERS} == set(REFERENCES)


@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
def test_forward_and_backward_match_torch(layer):
    rng = np.random.default_rng(3)
    inputs = layer.make_inputs(rng, np.float64)
    out = np.asarray(layer.forward(*inputs.values()))
    dout = 1.0 if layer.loss else rng.standard_normal(out.shape)
    grads = layer.backward(dout, *(v.copy() for v in inputs.values()))

    tensors = [torch.tensor(v, requires_grad=np.issubdtype(v.dtype, np.floating)) for v in inputs.values()]
    if layer.name == "hinge_binary":  # torch will not multiply int64 labels by float64 scores
        tensors[1] = tensors[1].double()
    t_out = REFERENCES[layer.name](*tensors)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)

    wrt = [t for t in tensors if t.requires_grad]
    t_grads = iter(torch.autograd.grad(t_out, wrt, grad_outputs=torch.as_tensor(dout, dtype=torch.float64)))
    for (name, a), g in zip(inputs.items(), grads, strict=True):
        if not np.issubdtype(a.dtype, np.floating):
            continue
        ref = next(t_grads).numpy()
        np.testing.assert_allclose(
            g,
            ref,
            rtol=1e-9,
            atol=1e-12 * max(1.0, float(np.max(np.abs(ref)))),
            err_msg=f"{layer.name}: d{name}",
        )


# ------------------------------------------------------------------------------------------------------------
# the zoo's torch cases: custom autograd.Functions with correct and wrong backward passes
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.name for c in TORCH_CASES])
def test_torch_case_correct_passes_and_every_bug_fails(case, dtype):
    import backcheck.torch as bt

    inputs = case.make_inputs(np.random.default_rng(0), dtype)
    report = bt.check(case.fn, *inputs)
    assert report.ok, str(report)
    assert {lf.dtype for lf in report.leaves} == {str(dtype).removeprefix("torch.")}
    for bug in case.bugs:
        wrong = bt.check(bug.fn, *inputs)
        assert wrong.status == "fail", f"{case.name}/{bug.name}\n{wrong}"
        if case.family == "saved state":
            assert [f.kind for f in wrong.findings] == ["saved state"], str(wrong)
        else:
            assert any(lf.status == "fail" for lf in wrong.leaves), str(wrong)


def test_torch_cases_cover_every_family_and_are_listed():
    import subprocess
    import sys
    from pathlib import Path

    families = {c.family for c in TORCH_CASES}
    assert families == {"saved state", "autograd state", "checkpoint", "old-style", "ill-conditioned", "outputs"}
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bugzoo" / "torch_cases.py"
    out = subprocess.run([sys.executable, str(script), "--list"], capture_output=True, text=True, check=True)
    for case in TORCH_CASES:
        assert f"{case.name} ({case.family})" in out.stdout
        assert all(f"bug:{b.name}" in out.stdout for b in case.bugs)
