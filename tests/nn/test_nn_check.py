"""Layer-by-layer gradient checks of backcheck.nn models: every layer passes, a wrong one is blamed."""

import numpy as np

from backcheck.nn import MLP, Linear, Module, Sequential, SmallCNN, fit
from backcheck.nn.check import blame, check_module
from backcheck.nn.modules import BatchNorm1d, Dropout, ReLU
from backcheck.nn.tensor import Function


class WrongTanh(Function):
    name = "wrong_tanh"

    @staticmethod
    def forward(ctx, x):
        ctx.y = np.tanh(x)
        return ctx.y

    @staticmethod
    def backward(ctx, grad):
        return (grad * (1 - ctx.y),)  # the square is missing


class WrongTanhLayer(Module):
    def forward(self, x):
        return WrongTanh.apply(x)


def data(n=16, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, classes, size=n)


def test_every_layer_of_an_mlp_with_dropout_and_batchnorm_passes():
    x, y = data()
    model = Sequential(Linear(6, 8), BatchNorm1d(8), ReLU(), Dropout(0.5), Linear(8, 3))
    before = {n: v.copy() for n, v in model.state_dict().items()}
    table = blame(model, x, y)
    assert table.ok and table.first_failing is None, str(table)
    assert [r.kind for r in table.rows] == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    after = model.state_dict()
    assert all(np.array_equal(before[n], after[n]) for n in before)  # running statistics untouched


def test_the_first_failing_layer_is_marked():
    x, y = data()
    model = Sequential(Linear(6, 8), WrongTanhLayer(), Linear(8, 3))
    table = blame(model, x, y)
    assert not table.ok
    assert table.first_failing.name == "1" and table.first_failing.kind == "WrongTanhLayer"
    assert table.row("0").status == "pass" and table.row("2").status == "pass"
    marked = [line for line in str(table).splitlines() if "<-- first failing" in line]
    assert len(marked) == 1 and marked[0].split()[:2] == ["1", "WrongTanhLayer"], str(table)
    assert "first failing layer: 1" in str(table)
    report = table.first_failing.report
    assert report.leaf("input").status == "fail"


def test_check_module_names_parameters_as_the_module_does():
    layer = Linear(3, 2)
    report = check_module(layer, np.random.default_rng(0).normal(size=(4, 3)))
    assert report.ok and [lf.name for lf in report.leaves] == ["input", "weight", "bias"]


def test_small_cnn_in_float32_passes_layer_by_layer():
    x = np.random.default_rng(0).normal(size=(4, 1, 8, 8)).astype(np.float32)
    table = blame(SmallCNN(), x, np.array([0, 1, 2, 3]))
    assert table.ok, str(table)


def test_fit_checks_the_layers_on_the_first_batch_by_default():
    x, y = data(64)
    model = MLP([6, 8, 3])
    hist = fit(model, (x, y), epochs=2, batch_size=16, progress=False)
    assert len(hist.checks) == 1 and hist.checks[0][0] == 0
    assert hist.checks[0][1].ok
    hist = fit(
        Sequential(Linear(6, 8), WrongTanhLayer(), Linear(8, 3)),
        (x, y),
        epochs=1,
        batch_size=16,
        check="every:2",
        progress=False,
    )
    assert [step for step, _ in hist.checks] == [0, 2] and not hist.checks[0][1].ok
    table = hist.checks[0][1].to_dict()
    assert table["ok"] is False and table["first_failing"] == "1"
    assert [(row["name"], row["status"].lower()) for row in table["rows"]][:2] == [("0", "pass"), ("1", "fail")]
