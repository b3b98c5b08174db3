"""check_object: stateful layer objects checked without an adapter (numpy-ml dicts, dW attributes, an update
inside backward), the caller's object never changed."""

from __future__ import annotations

import copy
import importlib.util
import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, GradientStructureError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("stateful_layers", EXAMPLES / "stateful_layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ex = _example()

CASES = [
    (ex.Dense, set()),
    (ex.DenseBuggy, {"b"}),
    (ex.SGDLinear, set()),
    (ex.SGDLinearBuggy, {"b"}),
    (ex.SGDLinearLateInput, {"x"}),
]


def failing(report: backcheck.Report) -> set[str]:
    return {leaf.name for leaf in report.leaves if leaf.status == "fail"}


def state(obj: Any) -> dict[str, Any]:
    """Every attribute of ``obj``, arrays copied (with their dtype), dicts of arrays too."""
    return copy.deepcopy(vars(obj))


def assert_same_state(before: dict[str, Any], obj: Any) -> None:
    now = vars(obj)
    assert set(now) == set(before), f"attributes added or removed: {set(now) ^ set(before)}"
    for name, was in before.items():
        value = now[name]
        if isinstance(was, dict):
            assert set(value) == set(was), name
            pairs = [(f"{name}[{k!r}]", was[k], value[k]) for k in was]
        else:
            pairs = [(name, was, value)]
        for label, a, b in pairs:
            if isinstance(a, np.ndarray):
                assert b.dtype == a.dtype and b.shape == a.shape, label
                assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), f"{label} changed"  # bit-identical
            else:
                assert a == b, label


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("cls", "wrong"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_examples_pass_or_name_the_wrong_array(cls: type, wrong: set[str], dtype: type) -> None:
    layer = cls(5, 3, dtype=dtype)
    x = np.random.default_rng(1).normal(size=(8, 5)).astype(dtype)
    before = state(layer)
    report = backcheck.check_object(layer, x)
    assert [leaf.name for leaf in report.leaves] == [("X" if "Dense" in cls.__name__ else "x"), "W", "b"]
    assert all(str(leaf.dtype) == np.dtype(dtype).name for leaf in report.leaves)
    assert failing(report) == wrong, str(report)
    assert report.status == ("pass" if not wrong else "fail"), str(report)
    for leaf in report.leaves:
        if leaf.name in wrong:
            assert leaf.worst and all(e.name.startswith(leaf.name + "[") for e in leaf.worst)
    assert_same_state(before, layer)  # no stored input, no gradient, no update leaked into the caller's object


def test_example_script_prints_two_passes_and_three_named_failures(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "stateful_layers.py"), run_name="__main__")
    reports = capsys.readouterr().out.strip().split("\n\n")
    # (a header may name a finding: 'backcheck FAIL (nonlinear backward in x)')
    assert [r.split(":")[0].split(" (")[0] for r in reports] == ["backcheck PASS", "backcheck FAIL"] * 2 + [
        "backcheck FAIL"
    ]
    assert "nonlinear backward in x" in reports[4].splitlines()[0]  # dx from the weights after the update
    assert "DenseBuggy.forward / DenseBuggy.backward" in reports[1] and "b: worst elements" in reports[1]
    assert "self.gradients['W']" in reports[0]
    assert "updates W, b (an optimizer step inside backward)" in reports[2] and "gradient in self.dW" in reports[2]
    assert "b: worst elements" in reports[3] and "x: worst elements" in reports[4]


def test_accumulated_gradients_on_the_object_do_not_count() -> None:
    layer = ex.Dense(4, 2)
    x = np.random.default_rng(2).normal(size=(6, 4))
    layer.forward(x)
    layer.backward(np.ones((6, 2)))  # the user's object now holds gradients and a stored input
    before = state(layer)
    report = backcheck.check_object(layer, x)
    assert report.ok, str(report)
    assert_same_state(before, layer)


def test_parameters_left_identical_objects() -> None:
    layer = ex.SGDLinear(3, 2)
    W, b = layer.W, layer.b
    backcheck.check_object(layer, np.ones((2, 3)))
    assert layer.W is W and layer.b is b
    assert not hasattr(layer, "dW") and not hasattr(layer, "x")


class UpdateOnly:
    """Takes the SGD step inside backward and keeps no gradient: nothing to check the weights against."""

    def __init__(self) -> None:
        self.W = np.linspace(-1, 1, 6).reshape(3, 2)
        self.lr = 0.1

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.W

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = g @ self.W.T
        self.W -= self.lr * (self.x.T @ g)
        return dx


def test_update_without_gradient_is_a_typed_error_naming_the_parameter() -> None:
    with pytest.raises(BadInputError, match=r"updates the parameter self\.W \(an optimizer step") as info:
        backcheck.check_object(UpdateOnly(), np.ones((2, 3)))
    assert info.value.hint is not None and "self.dW" in info.value.hint and "grads=" in info.value.hint


class Renamed:
    """Gradients where nothing is searched: ``self.slope_kernel``; weights ``self.kernel``."""

    def __init__(self) -> None:
        self.kernel = np.linspace(-1, 1, 6).reshape(3, 2)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.sin(x @ self.kernel)

    def backward(self, g: np.ndarray) -> np.ndarray:
        dz = g * np.cos(self.x @ self.kernel)
        self.slope_kernel = self.x.T @ dz
        return dz @ self.kernel.T


def test_missing_gradient_names_the_parameter_and_where_it_looked() -> None:
    x = np.random.default_rng(3).normal(size=(4, 3))
    with pytest.raises(BadInputError, match=r"no gradient of self\.kernel .*self\.dkernel") as info:
        backcheck.check_object(Renamed(), x, params=["kernel"])
    assert "grads=" in (info.value.hint or "")
    report = backcheck.check_object(Renamed(), x, grads="slope_{}")
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x", "kernel"], str(report)
    assert backcheck.check_object(Renamed(), x, grads={"kernel": "slope_kernel"}).ok


def test_missing_parameter_attribute_is_named() -> None:
    with pytest.raises(BadInputError, match=r"SGDLinear's parameter self\.Wx is missing") as info:
        backcheck.check_object(ex.SGDLinear(3, 2), np.ones((2, 3)), params=["Wx", "b"])
    assert "['W', 'b']" in (info.value.hint or "")
    with pytest.raises(BadInputError, match="SGDLinear has no attribute 'weights'"):
        backcheck.check_object(ex.SGDLinear(3, 2), np.ones((2, 3)), params="weights")
    with pytest.raises(BadInputError, match="SGDLinear has no method 'fprop'"):
        backcheck.check_object(ex.SGDLinear(3, 2), np.ones((2, 3)), forward="fprop")
    with pytest.raises(BadInputError, match=r"unknown keyword\(s\) \['sample'\]"):
        backcheck.check_object(ex.SGDLinear(3, 2), np.ones((2, 3)), sample=3)


class ReturnsAll:
    """``backward`` returns ``(dx, dW, db)``; ``forward`` keeps a mask constant and a dropout generator."""

    def __init__(self) -> None:
        rng = np.random.default_rng(4)
        self.W, self.b = rng.normal(size=(3, 2)), rng.normal(size=2)
        self.scale = np.array([1.0, 2.0])  # a constant: no gradient anywhere
        self.rng = np.random.default_rng(5)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.keep = self.rng.random(x.shape) < 0.7  # a fresh dropout mask every call
        self.x = x * self.keep
        return (self.x @ self.W + self.b) * self.scale

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        gz = g * self.scale
        return (gz @ self.W.T) * self.keep, self.x.T @ gz, gz.sum(axis=0)


class StoresGradients(ReturnsAll):
    def backward(self, g: np.ndarray) -> np.ndarray:
        dx, self.dW, self.db = super().backward(g)
        return dx


def test_gradients_returned_by_backward() -> None:
    layer = ReturnsAll()
    rng_state = copy.deepcopy(layer.rng.bit_generator.state)
    report = backcheck.check_object(layer, np.random.default_rng(6).normal(size=(5, 3)), params=["W", "b"])
    assert report.ok, str(report)
    assert [leaf.name for leaf in report.leaves] == ["x", "W", "b"]
    assert any("gradient in backward()[1]" in n for n in report.notes), report.notes
    assert layer.rng.bit_generator.state == rng_state  # the layer's generator was copied, never drawn from
    with pytest.raises(BadInputError, match="no gradient of self.W"):  # three returned, for x, W, b and scale
        backcheck.check_object(layer, np.ones((5, 3)))


def test_searched_attributes_without_gradient_are_left_out_with_a_note() -> None:
    x = np.random.default_rng(6).normal(size=(5, 3))
    report = backcheck.check_object(StoresGradients(), x)
    assert [leaf.name for leaf in report.leaves] == ["x", "W", "b"], str(report)
    assert any("not checked: scale" in n for n in report.notes), report.notes
    # forward reads self.scale, which has no gradient: a buffer or a forgotten gradient, so nothing vouches for it
    assert report.status == "inconclusive" and "self.scale" in report.findings[0].message, str(report)
    assert backcheck.check_object(StoresGradients(), x, params=["W", "b"]).ok


class Lazy:
    """numpy-ml style lazy initialisation: the parameters exist after the first forward pass."""

    def __init__(self, n_out: int) -> None:
        self.n_out = n_out
        self.parameters: dict[str, Any] = {"W": None}
        self.gradients: dict[str, Any] = {}

    def forward(self, X: np.ndarray) -> np.ndarray:
        if self.parameters["W"] is None:
            self.parameters["W"] = np.random.default_rng(7).normal(size=(X.shape[1], self.n_out))
            self.gradients["W"] = np.zeros_like(self.parameters["W"])
        self.X = X
        return np.tanh(X @ self.parameters["W"])

    def backward(self, dLdy: np.ndarray) -> np.ndarray:
        dz = dLdy * (1 - np.tanh(self.X @ self.parameters["W"]) ** 2)
        self.gradients["W"] += self.X.T @ dz
        return dz @ self.parameters["W"].T


def test_lazily_created_parameters_are_created_on_a_copy() -> None:
    layer = Lazy(2)
    report = backcheck.check_object(layer, np.ones((3, 4)) / 3)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["X", "W"], str(report)
    assert any("first forward pass" in n for n in report.notes)
    assert layer.parameters == {"W": None} and layer.gradients == {} and not hasattr(layer, "X")


class TwoInputs:
    """``forward(x, y)`` with integer labels: softmax cross-entropy over ``x @ W``."""

    def __init__(self) -> None:
        self.W = np.random.default_rng(8).normal(size=(3, 4))

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        z = x @ self.W
        p = np.exp(z - z.max(axis=1, keepdims=True))
        self.p, self.x, self.y = p / p.sum(axis=1, keepdims=True), x, y
        return -np.log(self.p[np.arange(len(y)), y]).mean()

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, None]:
        dz = self.p.copy()
        dz[np.arange(len(self.y)), self.y] -= 1
        dz *= dout / len(self.y)
        self.dW = self.x.T @ dz
        return dz @ self.W.T, None


def test_integer_inputs_pass_through_and_options_reach_check_layer() -> None:
    x, y = np.random.default_rng(9).normal(size=(5, 3)), np.array([0, 3, 1, 2, 3])
    report = backcheck.check_object(TwoInputs(), x, y)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x", "W"], str(report)
    only_w = backcheck.check_object(TwoInputs(), x, y, wrt=["W"], strategy="sparse", samples=4)
    assert [leaf.name for leaf in only_w.leaves] == ["W"] and only_w.strategy == "sparse"
    assert only_w.leaves[0].n_checked == 4


def test_backward_returning_the_wrong_number_of_input_gradients_is_named() -> None:
    class One(TwoInputs):
        def backward(self, dout: np.ndarray) -> Any:
            return super().backward(dout)[0]

    class Pair(TwoInputs):  # two float inputs, one gradient returned
        def forward(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
            return super().forward(x * s, np.array([0, 3, 1, 2, 3]))

        def backward(self, dout: np.ndarray) -> Any:
            return super().backward(dout)[0]

    x, y = np.random.default_rng(9).normal(size=(5, 3)), np.array([0, 3, 1, 2, 3])
    report = backcheck.check_object(One(), x, y)  # one float input: the bare gradient is x's
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x", "W"], str(report)
    with pytest.raises(GradientStructureError, match=r"Pair\.backward returned a ndarray for 2 inputs \(x, s\)"):
        backcheck.check_object(Pair(), x, np.ones((5, 3)))


def test_no_parameters_checks_the_inputs_with_a_note() -> None:
    class Relu:
        def forward(self, x: np.ndarray) -> np.ndarray:
            self.mask = x > 0
            self.out = x * self.mask  # a float activation kept by forward: state, not a parameter
            return self.out

        def backward(self, g: np.ndarray) -> np.ndarray:
            return g * self.mask

    class WrongRelu(Relu):
        def backward(self, g: np.ndarray) -> np.ndarray:
            return g

    x = np.array([[-1.0, 0.5], [2.0, -0.3]])
    for params in (None, ()):
        report = backcheck.check_object(Relu(), x, params=params)
        assert report.ok and [leaf.name for leaf in report.leaves] == ["x"], str(report)
    assert any("found no parameters on Relu" in n for n in backcheck.check_object(Relu(), x).notes)
    assert failing(backcheck.check_object(WrongRelu(), x)) == {"x"}


def test_readme_block_names_the_bias(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Layer objects that keep state") :]
    block = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    exec(compile(block, "README.md (check_object)", "exec"), {})
    assert capsys.readouterr().out == "['b']\n"


class NumpyMLDense:
    """As numpy-ml's FullyConnected: lazy parameters, every input appended to ``self.X``, ``flush_gradients``."""

    def __init__(self, n_out: int) -> None:
        self.n_out, self.is_initialized = n_out, False
        self.parameters: dict[str, Any] = {"W": None, "b": None}
        self.X: list[np.ndarray] = []
        self.gradients: dict[str, Any] = {}

    def _init_params(self, n_in: int) -> None:
        rng = np.random.default_rng(10)
        self.parameters = {"W": rng.normal(size=(n_in, self.n_out)), "b": rng.normal(size=self.n_out)}
        self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}
        self.is_initialized = True

    def forward(self, X: np.ndarray) -> np.ndarray:
        if not self.is_initialized:
            self._init_params(X.shape[1])
        self.X.append(X)
        return np.tanh(X @ self.parameters["W"] + self.parameters["b"])

    def backward(self, dLdy: Any) -> Any:
        dLdy = dLdy if isinstance(dLdy, list) else [dLdy]
        dX = []
        for dy, x in zip(dLdy, self.X, strict=False):  # as numpy-ml: extra stored inputs are ignored
            dz = dy * (1 - np.tanh(x @ self.parameters["W"] + self.parameters["b"]) ** 2)
            dX.append(dz @ self.parameters["W"].T)
            self.gradients["W"] += x.T @ dz
            self.gradients["b"] += dz.sum(axis=0)
        return dX[0] if len(self.X) == 1 else dX

    def flush_gradients(self) -> None:
        self.X = []
        self.gradients = {k: np.zeros_like(v) for k, v in self.gradients.items()}


def test_numpy_ml_layer_with_a_reset_method() -> None:
    layer = NumpyMLDense(2)
    x = np.random.default_rng(11).normal(size=(4, 3))
    report = backcheck.check_object(layer, x, reset="flush_gradients")
    assert report.ok and [leaf.name for leaf in report.leaves] == ["X", "W", "b"], str(report)
    assert layer.X == [] and not layer.is_initialized and layer.parameters == {"W": None, "b": None}
    calls: list[int] = []

    def reset(obj: NumpyMLDense) -> None:
        calls.append(len(obj.X))
        obj.flush_gradients()

    assert backcheck.check_object(layer, x, reset=reset, strategy="sparse", samples=3).ok
    assert calls and set(calls) == {1}  # every copy held the input of the forward pass that created the weights
    with pytest.raises(BadInputError, match="NumpyMLDense has no method 'flush'"):
        backcheck.check_object(layer, x, reset="flush")


class TwoInputsBuggy(TwoInputs):
    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, None]:
        dx, _ = super().backward(dout)
        self.dW = self.dW * len(self.y)  # bug: the weights' gradient is not averaged over the batch
        return dx, None


def test_an_executor_gives_the_serial_verdicts() -> None:
    from concurrent.futures import ThreadPoolExecutor

    x, y = np.random.default_rng(12).normal(size=(5, 3)).astype(np.float32), np.array([0, 3, 1, 2, 3])
    serial = backcheck.check_object(TwoInputsBuggy(), x, y)
    with ThreadPoolExecutor(2) as pool:  # the layer travels with the functions
        spread = backcheck.check_object(TwoInputsBuggy(), x, y, executor=pool)
    assert [(lf.name, lf.status, lf.counts) for lf in spread.leaves] == [
        (lf.name, lf.status, lf.counts) for lf in serial.leaves
    ]
    assert failing(spread) == {"W"}
    # a class pickle cannot import: threads share it, nothing to pickle (processes refuse it: test_scale.py)
    alone = backcheck.check_object(ex.SGDLinear(3, 2), np.ones((2, 3)))
    with ThreadPoolExecutor(1) as pool:
        threaded = backcheck.check_object(ex.SGDLinear(3, 2), np.ones((2, 3)), executor=pool)
    assert [(lf.name, lf.status) for lf in threaded.leaves] == [(lf.name, lf.status) for lf in alone.leaves]


def test_docstring_example_runs() -> None:
    import doctest

    import backcheck.frontends.objects as objects

    result = doctest.testmod(objects, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_a_stored_input_from_an_earlier_call_is_state_not_a_parameter() -> None:
    layer = ex.SGDLinear(3, 2)
    x = np.random.default_rng(13).normal(size=(4, 3))
    layer.x = x.copy()  # as if forward had run on this very input
    report = backcheck.check_object(layer, x)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x", "W", "b"], str(report)
    assert any(n.startswith("x: set by forward") for n in report.notes), report.notes


class _DictDense:
    def __init__(self, W, b):
        self.parameters = {"W": W, "b": b}
        self.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}

    def forward(self, X):
        self.X = X
        return np.tanh(X @ self.parameters["W"] + self.parameters["b"])

    def backward(self, d):
        dz = d * (1 - self.forward(self.X) ** 2)
        self.gradients["W"] += 3 * self.X.T @ dz  # W's gradient 3x too large
        self.gradients["b"] += dz.sum(0)
        return dz @ self.parameters["W"].T


def test_a_gradient_named_in_grads_is_never_left_out_silently():
    rng = np.random.default_rng(0)
    layer, x = _DictDense(rng.normal(size=(3, 2)), rng.normal(size=2)), rng.normal(size=(4, 3))
    assert backcheck.check_object(layer, x).status == "fail"
    with pytest.raises(backcheck.BadInputError, match=r"no gradient of self.parameters\['W'\].*self.nope"):
        backcheck.check_object(layer, x, grads={"W": "nope"})
    with pytest.raises(backcheck.BadInputError, match="grads= names Q, which is not a parameter of _DictDense"):
        backcheck.check_object(layer, x, grads={"Q": "nope"})


def test_a_second_weight_is_not_taken_for_the_first_ones_gradient_in_a_hint():
    class TwoWeights:
        def __init__(self):
            rng = np.random.default_rng(0)
            self.W, self.W2 = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))

        def forward(self, x):
            self.x, self.h = x, x @ self.W
            return self.h @ self.W2

        def backward(self, d):
            dh = d @ self.W2.T
            self.dW = self.x.T @ dh
            self.W2 -= 0.1 * (self.h.T @ d)  # an optimizer step: W2's gradient is lost
            return dh @ self.W.T

    with pytest.raises(backcheck.errors.BadInputError) as info:
        backcheck.check_object(TwoWeights(), np.ones((2, 3)))
    assert "self.W2" in str(info.value) and "gradient of self.W" not in str(info.value)


@pytest.mark.parametrize(
    "grad_name, param_name",
    [("grad_a", "a"), ("grad_r", "r"), ("delta_e", "e"), ("grads_s", "s"), ("dW", "W"), ("W_grad", "W"), ("gb", "_b")],
)
def test_a_gradient_is_named_by_its_marker_at_either_end_of_the_parameters_name(grad_name, param_name):
    """The parameter's name is taken from the end it stands at, not from inside the marker (grad_a's 'a')."""
    from dataclasses import dataclass

    from backcheck.frontends.object_probe import _gradient_of

    @dataclass(frozen=True)
    class Named:
        name: str

    param, grad, other = Named(param_name), Named(grad_name), Named(param_name + "2")
    probe = type("Probe", (), {"where": [param, other, grad], "shapes": {param: (3,), other: (3,), grad: (3,)}})()
    assert _gradient_of(grad, probe) == param
    assert _gradient_of(other, probe) is None  # W2 beside W: another parameter, no gradient


class _Affine:
    def __init__(self, bias_factor=1.0):
        rng = np.random.default_rng(3)
        self.W, self.b, self.bias_factor = rng.normal(size=(3, 2)), rng.normal(size=2), bias_factor

    def forward(self, X):
        self.X = X
        return X @ self.W + self.b

    def backward(self, d):
        self.dW, self.db = self.X.T @ d, self.bias_factor * d.sum(0)
        return d @ self.W.T


@pytest.mark.parametrize("params", [["W"], "W"])
def test_params_naming_a_subset_says_which_parameters_stay_constants(params):
    x = np.random.default_rng(4).normal(size=(5, 3))
    report = backcheck.check_object(_Affine(bias_factor=3.0), x, params=params)
    assert report.status == "pass" and [lf.name for lf in report.leaves] == ["X", "W"], report
    said = [n for n in report.notes if n.startswith("not checked")]
    assert len(said) == 1 and "self.b" in said[0] and "constants in this check" in said[0], report.notes
    whole = backcheck.check_object(_Affine(bias_factor=3.0), x, params=["W", "b"])
    assert [lf.name for lf in whole.leaves if lf.status == "fail"] == ["b"], whole
    assert not [n for n in whole.notes if n.startswith("not checked")], whole.notes


class _Stack:
    def __init__(self):
        self.layers = [_Affine(), _Affine(bias_factor=2.0)]
        self.layers[1].W = self.layers[1].W[:2]  # (3, 2) -> (2, 2): the second layer takes the first's output

    def forward(self, X):
        for layer in self.layers:
            X = layer.forward(X)
        return X

    def backward(self, d):
        for layer in reversed(self.layers):
            d = layer.backward(d)
        return d


def test_params_naming_one_layers_weight_names_the_other_layers_parameters():
    x = np.random.default_rng(5).normal(size=(4, 3))
    report = backcheck.check_object(_Stack(), x, params="layers[0].W")
    assert [lf.name for lf in report.leaves] == ["X", "layers[0].W"], report
    said = " ".join(n for n in report.notes if n.startswith("not checked"))
    for other in ("layers[0].b", "layers[1].W", "layers[1].b"):
        assert other in said, report.notes


class _LossLayer:
    """A loss whose backward takes no dout (backward(self)), with a temperature it stores a gradient for."""

    def __init__(self, bug=1.0):
        self.T, self.bug = np.array([1.5]), bug

    def forward(self, x, y):
        z = x / self.T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        self.x, self.p, self.y = x, p, y
        return -np.log(p[np.arange(len(y)), y]).mean()

    def backward(self):
        dz = self.p.copy()
        dz[np.arange(len(self.y)), self.y] -= 1
        dz /= len(self.y)
        self.dT = np.array([-(dz * self.x).sum() / self.T[0] ** 2])
        return self.bug * dz / self.T


def test_a_loss_whose_backward_takes_no_dout_is_checked_as_a_loss():
    # (it was called with a dout and raised the user's TypeError)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    report = backcheck.check_object(_LossLayer(), x, y)
    assert report.status == "pass" and [lf.name for lf in report.leaves] == ["x", "T"], report
    bad = backcheck.check_object(_LossLayer(bug=1.2), x, y)
    assert [lf.name for lf in bad.leaves if lf.status == "fail"] == ["x"], bad


def test_a_backward_without_dout_on_a_layer_of_many_outputs_says_why_it_cannot_be_read():
    from backcheck.errors import ArgumentError

    class Tanh:
        def forward(self, x):
            self.out = np.tanh(x)
            return self.out

        def backward(self):
            return 1 - self.out**2

    with pytest.raises(ArgumentError, match="takes no dout"):
        backcheck.check_object(Tanh(), np.ones((2, 3)))
