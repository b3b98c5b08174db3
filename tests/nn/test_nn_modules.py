"""Modules against torch.nn in float64; parameter discovery; state dicts; capture and replay."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck import nn
from backcheck.nn import Tensor
from backcheck.nn import functional as F

torch = pytest.importorskip("torch")
tnn = pytest.importorskip("torch.nn")
hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
given, settings = hypothesis.given, hypothesis.settings
seeds = pytest.importorskip("nn_testutil").seeds  # the shared helpers (they import torch and hypothesis)

FEW = settings(max_examples=15, deadline=None)
F64 = np.float64


def to_torch(bc: nn.Module, th: tnn.Module, rename: dict[str, str] | None = None) -> None:
    """Copy backcheck parameters and buffers into a torch module (names mapped by ``rename``)."""
    rename = rename or {}
    state = {rename.get(k, k): torch.from_numpy(np.array(v)) for k, v in bc.state_dict().items()}
    th.load_state_dict(state, strict=True)


def compare_step(
    bc: nn.Module,
    th: tnn.Module,
    x: np.ndarray,
    seed: int,
    rename: dict[str, str] | None = None,
    input_grad: bool = True,
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> None:
    """One forward and backward on the same data; outputs, input and parameter gradients must match."""
    rename = rename or {}
    xb = Tensor(x.copy(), requires_grad=input_grad)
    xt = torch.tensor(x, requires_grad=input_grad) if input_grad else torch.from_numpy(x)
    out, tout = bc(xb), th(xt)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol, err_msg="output")
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    if input_grad:
        np.testing.assert_allclose(xb.grad, xt.grad.numpy(), rtol=rtol, atol=atol, err_msg="input grad")
    tparams = dict(th.named_parameters())
    for name, p in bc.named_parameters():
        tp = tparams[rename.get(name, name)]
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    bc.zero_grad()
    th.zero_grad()


@FEW
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4), st.booleans(), seeds)
def test_linear_matches_torch(fin, fout, n, bias, seed):
    bc = nn.Linear(fin, fout, bias=bias, dtype=F64, rng=np.random.default_rng(seed))
    th = tnn.Linear(fin, fout, bias=bias, dtype=torch.float64)
    to_torch(bc, th)
    compare_step(bc, th, np.random.default_rng(seed).standard_normal((n, fin)), seed)


@FEW
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1), seeds)
def test_conv2d_matches_torch(cin, cout, k, stride, padding, seed):
    bc = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dtype=F64, rng=np.random.default_rng(seed))
    th = tnn.Conv2d(cin, cout, k, stride=stride, padding=padding, dtype=torch.float64)
    to_torch(bc, th)
    compare_step(bc, th, np.random.default_rng(seed).standard_normal((2, cin, 5, 4)), seed)


@pytest.mark.parametrize("kind", ["1d", "1d-seq", "2d"])
def test_batchnorm_train_and_eval_and_running_stats_match_torch(kind):
    rng = np.random.default_rng(0)
    c = 3
    shape = {"1d": (6, c), "1d-seq": (4, c, 5), "2d": (4, c, 3, 3)}[kind]
    bc = (nn.BatchNorm2d if kind == "2d" else nn.BatchNorm1d)(c, momentum=0.3, dtype=F64)
    th = (tnn.BatchNorm2d if kind == "2d" else tnn.BatchNorm1d)(c, momentum=0.3, dtype=torch.float64)
    bc.weight.data[:] = rng.standard_normal(c)
    bc.bias.data[:] = rng.standard_normal(c)
    to_torch(bc, th)
    for step in range(3):  # training steps update the running statistics
        compare_step(bc, th, rng.standard_normal(shape) * 2 + step, seed=step)
    np.testing.assert_allclose(bc.running_mean, th.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bc.running_var, th.running_var.numpy(), rtol=1e-12)
    assert int(bc.num_batches_tracked) == int(th.num_batches_tracked) == 3
    bc.eval()
    th.eval()
    before = bc.running_mean.copy()
    compare_step(bc, th, rng.standard_normal(shape), seed=9)
    np.testing.assert_array_equal(bc.running_mean, before)  # eval does not update


@FEW
@given(st.sampled_from([(4,), (2, 4)]), seeds, st.booleans())
def test_layernorm_matches_torch(norm_shape, seed, affine):
    bc = nn.LayerNorm(norm_shape, elementwise_affine=affine, dtype=F64)
    th = tnn.LayerNorm(norm_shape, elementwise_affine=affine, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    if affine:
        bc.weight.data[:] = rng.standard_normal(norm_shape)
        bc.bias.data[:] = rng.standard_normal(norm_shape)
    to_torch(bc, th)
    compare_step(bc, th, rng.standard_normal((3, *norm_shape)), seed)


def test_embedding_matches_torch():
    bc = nn.Embedding(7, 3, dtype=F64)
    th = tnn.Embedding(7, 3, dtype=torch.float64)
    to_torch(bc, th)
    idx = np.array([[1, 2, 1], [6, 0, 1]])
    out, tout = bc(idx), th(torch.from_numpy(idx))
    np.testing.assert_allclose(out.data, tout.detach().numpy())
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(bc.weight.grad, th.weight.grad.numpy(), rtol=1e-12)


class TorchSmallCNN(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(1, 16, 3, padding=1),
            tnn.BatchNorm2d(16),
            tnn.ReLU(),
            tnn.Conv2d(16, 32, 3, padding=1),
            tnn.BatchNorm2d(32),
            tnn.ReLU(),
            tnn.MaxPool2d(2),
        )
        self.classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(512, 64), tnn.ReLU(), tnn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def test_small_cnn_matches_torch_end_to_end():
    bc = nn.SmallCNN(dtype=F64, rng=np.random.default_rng(0))
    th = TorchSmallCNN().double()
    to_torch(bc, th)
    x = np.random.default_rng(1).standard_normal((4, 1, 8, 8))
    compare_step(bc, th, x, seed=2, input_grad=True)
    y = np.array([1, 2, 3, 4])
    loss = nn.cross_entropy(bc(Tensor(x)), y)
    tloss = tnn.functional.cross_entropy(th(torch.from_numpy(x)), torch.from_numpy(y))
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)


def test_mlp_matches_torch_with_each_activation():
    for act, tact in [
        ("relu", tnn.ReLU()),
        ("tanh", tnn.Tanh()),
        ("gelu", tnn.GELU()),
        ("sigmoid", tnn.Sigmoid()),
        ("leaky_relu", tnn.LeakyReLU()),
    ]:
        bc = nn.MLP([5, 4, 3], activation=act, dtype=F64, rng=np.random.default_rng(0))
        th = tnn.Sequential(tnn.Flatten(), tnn.Linear(5, 4), tact, tnn.Linear(4, 3)).double()
        rename = {
            "layers.1.weight": "1.weight",
            "layers.1.bias": "1.bias",
            "layers.3.weight": "3.weight",
            "layers.3.bias": "3.bias",
        }
        to_torch(bc, th, {k: v for k, v in rename.items()})
        compare_step(bc, th, np.random.default_rng(1).standard_normal((3, 5)) + 0.05, seed=0, rename=rename)


# ---------------------------------------------------------------------- module mechanics
def test_parameters_are_found_by_walking_attributes_lists_and_sequential():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = [nn.Linear(2, 3), nn.Linear(3, 3)]
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(3, 1))
            self.scale = nn.Parameter(np.ones(1, np.float32))
            self.extra = [nn.Parameter(np.zeros(2, np.float32))]
            self.shared = self.blocks[0]  # shared module counted once
            self.note = "a string attribute"

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return self.head(x) * self.scale

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "scale",
        "extra.0",
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
        "head.1.weight",
        "head.1.bias",
    ]
    assert len(net.parameters()) == 8
    assert net.num_parameters() == 1 + 2 + 6 + 3 + 9 + 3 + 3 + 1
    assert [n for n, _ in net.named_modules()][:3] == ["", "blocks.0", "blocks.1"]
    assert net.get_submodule("head.1") is net.head[1]
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(Tensor(np.ones((2, 2), np.float32))).sum().backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if n != "extra.0")
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert "Linear(2, 3, bias=True)" in repr(net)


def test_state_dict_save_load_round_trip(tmp_path):
    a = nn.SmallCNN(rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 1, 8, 8)).astype(np.float32)
    a(Tensor(x))  # updates batch-norm running statistics
    path = tmp_path / "model.npz"
    a.save(path)
    b = nn.SmallCNN(rng=np.random.default_rng(5))
    assert not np.allclose(a.state_dict()["features.0.weight"], b.state_dict()["features.0.weight"])
    b.load(path)
    sa, sb = a.state_dict(), b.state_dict()
    assert (
        sa.keys() == sb.keys() and "features.1.running_var" in sa and "features.1.num_batches_tracked" in sa
    )
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
        assert sa[k].dtype == sb[k].dtype
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(Tensor(x)).data, b(Tensor(x)).data)


def test_dropout_module_seeded_and_eval_identity():
    d1, d2 = nn.Dropout(0.5, seed=3), nn.Dropout(0.5, seed=3)
    x = Tensor(np.ones((20, 5), np.float32))
    np.testing.assert_array_equal(d1(x).data, d2(x).data)
    assert d1.last_mask is not None
    d1.eval()
    assert d1(x) is x


# ---------------------------------------------------------------------- capture and replay
def _model_and_batch():
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 8, dtype=F64, rng=np.random.default_rng(0)),
        nn.BatchNorm1d(8, dtype=F64),
        nn.Tanh(),
        nn.Dropout(0.3, seed=1),
        nn.Linear(8, 3, dtype=F64, rng=np.random.default_rng(1)),
    )
    rng = np.random.default_rng(2)
    return model, rng.standard_normal((6, 1, 4, 4)), rng.integers(0, 3, 6)


def test_capture_records_inputs_outputs_and_output_gradients():
    model, x, y = _model_and_batch()
    with model.capture() as records:
        logits = model(Tensor(x))
        logits.retain_grad()
        loss = nn.cross_entropy(logits, y)
        loss.backward()
    assert set(records) == {"", "0", "1", "2", "3", "4", "5"}
    np.testing.assert_array_equal(records["1"].inputs[0], x.reshape(6, 16))
    np.testing.assert_array_equal(records[""].output, logits.data)
    np.testing.assert_allclose(records["5"].grad_output, logits.grad)
    assert records["1"].params.keys() == {"weight", "bias"} and records["1"].training
    assert model._capture is None  # capture is switched off after the block


def test_vjp_reproduces_the_training_gradients_and_replay_is_pure():
    model, x, y = _model_and_batch()
    with model.capture() as records:
        nn.cross_entropy(model(Tensor(x)), y).backward()
    bn = model[2]
    running = bn.running_mean.copy()
    for name in ("1", "2", "5"):
        rec = records[name]
        layer = model.get_submodule(name)
        out = layer.pure_forward(*rec.inputs, params=rec.params)
        np.testing.assert_allclose(out, rec.output, rtol=1e-12)
        _, pgrads = layer.vjp(rec.inputs, rec.grad_output, params=rec.params)
        for pname, p in layer.named_parameters():
            np.testing.assert_allclose(pgrads[pname], p.grad, rtol=1e-10, atol=1e-12)
    # the whole model replays its pass (same dropout mask, batch statistics) without side effects
    np.testing.assert_allclose(model.pure_forward(x), records[""].output, rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, running)
    assert all(p.grad is not None for p in model.parameters())  # vjp left .grad alone


def test_vjp_agrees_with_finite_differences_of_pure_forward():
    model, x, y = _model_and_batch()
    with model.capture() as records:
        nn.cross_entropy(model(Tensor(x)), y).backward()
    rec = records["2"]  # batch norm in training mode: the hard case
    layer = model.get_submodule("2")
    (gx,), pgrads = layer.vjp(rec.inputs, rec.grad_output, params=rec.params)
    eps = 1e-6
    w = rec.params["weight"]
    for i in range(w.size):
        plus, minus = dict(rec.params), dict(rec.params)
        plus["weight"], minus["weight"] = w.copy(), w.copy()
        plus["weight"][i] += eps
        minus["weight"][i] -= eps
        fd = (
            (layer.pure_forward(*rec.inputs, params=plus) - layer.pure_forward(*rec.inputs, params=minus))
            * rec.grad_output
        ).sum() / (2 * eps)
        assert fd == pytest.approx(pgrads["weight"][i], rel=1e-5, abs=1e-8)
    xin = rec.inputs[0]
    for idx in [(0, 0), (3, 5)]:
        xp, xm = xin.copy(), xin.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fd = (
            (layer.pure_forward(xp, params=rec.params) - layer.pure_forward(xm, params=rec.params))
            * rec.grad_output
        ).sum() / (2 * eps)
        assert fd == pytest.approx(gx[idx], rel=1e-5, abs=1e-8)


def test_replay_without_a_stored_mask_is_an_error():
    d = nn.Dropout(0.5)
    with d.replay(), pytest.raises(nn.ShapeError, match="no stored mask"):
        d(Tensor(np.ones(3)))


def test_functional_dropout_is_deterministic_with_a_seeded_generator():
    a = F.dropout(Tensor(np.ones(100)), 0.5, rng=np.random.default_rng(7))
    b = F.dropout(Tensor(np.ones(100)), 0.5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.data, b.data)
