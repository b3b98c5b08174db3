"""Layer-by-layer gradient checks of backcheck.nn models: every layer passes, a wrong one is blamed."""

import numpy as np
import pytest

from backcheck.nn import MLP, Linear, Module, Sequential, SmallCNN, fit
from backcheck.nn.check import Blame, BlameRow, blame, check_module
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


def test_a_row_of_a_failing_layer_names_its_worst_element_and_exceeds_its_bound():
    x, y = data()
    table = blame(Sequential(Linear(6, 8), WrongTanhLayer(), Linear(8, 3)), x, y)
    row = table.row("1")
    assert row.status == "fail" and row.kind == row.type == "WrongTanhLayer"
    assert row.worst.startswith("input[") and row.worst_ratio > 1 and row.max_rel_err > 1e-3
    assert row.n_checked > 0 and row.n_evals == row.report.n_evals
    assert table.row("0").worst_ratio < 1
    assert table.to_dict()["rows"][1]["worst"] == row.worst


def test_one_blame_type_judges_rows_by_status():
    import backcheck.blame
    import backcheck.nn.check

    assert backcheck.nn.check.Blame is backcheck.blame.Blame and backcheck.nn.check.BlameRow is BlameRow
    rows = [BlameRow("a", "T", "pass"), BlameRow("b", "T", "unused", message="its output does not reach the loss.")]
    assert Blame("net", rows).ok and Blame("net", rows).first_failing is None
    unsure = Blame("net", [*rows, BlameRow("c", "T", "inconclusive")])
    assert not unsure.ok and unsure.first_failing is None and "inconclusive" in str(unsure)
    broken = Blame("net", [*rows, BlameRow("c", "T", "error", message="ValueError: bad"), BlameRow("d", "T", "fail")])
    assert not broken.ok and broken.first_failing.name == "c"
    text = str(broken)
    assert "first failing layer: c" in text and "c: ValueError: bad" in text and "b: its output" in text
    assert [line.split()[0] for line in text.splitlines() if "<-- first failing" in line] == ["c"]
    assert broken.to_dict()["first_failing"] == "c" and broken.to_dict()["rows"][0]["report"] is None
    with pytest.raises(KeyError, match="'z'.*'a'"):
        broken.row("z")


def test_a_layer_checked_along_random_directions_says_so_in_the_table():
    """Large layers are checked along random directions (no element is judged one by one): the table's
    'checked' column says 'directions' and the element columns '-', not 0 elements and an error of 0."""
    x = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    table = blame(MLP([64, 128, 10]), x, np.arange(64) % 10)
    assert table.ok, str(table)
    along = [r for r in table.rows if r.checked == "directions"]
    assert along and all(r.n_checked == 0 for r in along)
    lines = {line.split()[0]: line.split() for line in str(table).splitlines()[2:]}
    assert all(lines[r.name][3:6] == ["directions", "-", "-"] for r in along), str(table)
