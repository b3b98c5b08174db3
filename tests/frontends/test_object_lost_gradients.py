"""check_object never leaves out as a buffer a parameter whose gradient backward writes in another shape or kind
(a transposed dW, an int-rounded db), forgets, or a stepping backward never steps; it reaches layers held in
containers of containers (a dict of lists of layers) and refuses, by name, networks nested past its depth. Each
of these passed, the parameter left out with a note 'such as buffers'."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, GradientStructureError


class Dense:
    def __init__(self, n_in, n_out, seed=0, bug=None, style="attr"):
        rng = np.random.default_rng(seed)
        W, b = rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)
        self.bug, self.style = bug, style
        if style == "attr":
            self.W, self.b = W, b
        else:
            self.parameters = {"W": W, "b": b}
            self.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}

    def _wb(self):
        return (self.W, self.b) if self.style == "attr" else (self.parameters["W"], self.parameters["b"])

    def forward(self, X):
        self.X = X
        W, b = self._wb()
        return X @ W + b

    def backward(self, d):
        W, _ = self._wb()
        dW, db = self.X.T @ d, d.sum(0)
        if self.bug == "transposed":
            dW = dW.T
        elif self.bug == "rounded":
            db = np.round(db).astype(int)
        elif self.bug == "doubled":
            db = 2 * db
        elif self.bug == "listed":  # a habit, right: kept as a list of floats
            db = db.tolist()
        if self.style == "attr":
            if self.bug != "forgot":
                self.dW = dW
            self.db = db
        else:
            self.gradients["W"], self.gradients["b"] = dW, db
        return d @ W.T


class Tanh:
    def forward(self, X):
        self.out = np.tanh(X)
        return self.out

    def backward(self, d):
        return d * (1 - self.out**2)


X = np.random.default_rng(1).normal(size=(5, 3))


@pytest.mark.parametrize("style", ["attr", "dict"])
@pytest.mark.parametrize("bug", ["transposed", "rounded"])
def test_a_gradient_of_another_shape_or_dtype_is_a_structure_error_naming_where_it_was_read(bug, style):
    with pytest.raises(GradientStructureError) as info:
        backcheck.check_object(Dense(3, 2, bug=bug, style=style), X)
    message = str(info.value)
    assert ("W" if bug == "transposed" else "b") in message and "gradient in self." in message, message


def test_a_gradient_kept_as_a_list_of_floats_is_read_as_an_array():
    report = backcheck.check_object(Dense(3, 2, bug="listed"), X)
    assert report.status == "pass" and [lf.name for lf in report.leaves] == ["X", "W", "b"], report


def test_a_bias_gradient_without_its_axis_of_size_one_is_checked():
    layer = Dense(3, 2, bug="doubled")
    layer.b = layer.b[None, :]  # (1, 2), its gradient d.sum(0) of shape (2,)
    report = backcheck.check_object(layer, X)
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == ["b"], report


class Stepping(Dense):
    def backward(self, d, learning_rate):
        self.b -= learning_rate * d.sum(0)  # W never stepped
        return d @ self.W.T


@pytest.mark.parametrize("layer", [Dense(3, 2, bug="forgot"), Stepping(3, 2)], ids=["forgot", "never_stepped"])
def test_a_parameter_forward_reads_without_a_gradient_leaves_the_check_inconclusive(layer):
    report = backcheck.check_object(layer, X)
    assert report.status == "inconclusive", report
    found = [f for f in report.findings if f.kind == "unchecked gradient"]
    assert len(found) == 1 and "self.W" in found[0].message, report.findings


class Norm:
    """An eval-mode normalization: forward reads running statistics no backward gives a gradient."""

    def __init__(self):
        self.gamma, self.beta = np.ones(3), np.zeros(3)
        self.running_mean, self.running_var = np.full(3, 0.1), np.full(3, 2.0)

    def forward(self, X):
        self.xh = (X - self.running_mean) / np.sqrt(self.running_var)
        return self.gamma * self.xh + self.beta

    def backward(self, d):
        self.dgamma, self.dbeta = (d * self.xh).sum(0), d.sum(0)
        return d * self.gamma / np.sqrt(self.running_var)


def test_running_statistics_forward_reads_stay_buffers():
    report = backcheck.check_object(Norm(), X)
    assert report.status == "pass" and not report.findings, report
    assert [lf.name for lf in report.leaves] == ["X", "gamma", "beta"], report


class Blocks:
    def __init__(self):
        self.blocks = {"enc": [Dense(3, 4, 1), Tanh()], "dec": [[Dense(4, 2, 2, bug="doubled")]]}

    def forward(self, X):
        for layer in [*self.blocks["enc"], *self.blocks["dec"][0]]:
            X = layer.forward(X)
        return X

    def backward(self, d):
        for layer in reversed([*self.blocks["enc"], *self.blocks["dec"][0]]):
            d = layer.backward(d)
        return d


def test_layers_in_containers_of_containers_are_found_and_nameable():
    report = backcheck.check_object(Blocks(), X)
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == ["blocks['dec'][0][0].b"], report
    named = backcheck.check_object(Blocks(), X, params=["blocks[enc][0].W", "blocks[dec][0][0].b"])
    assert [lf.name for lf in named.leaves] == ["X", "blocks['enc'][0].W", "blocks['dec'][0][0].b"], named
    assert [lf.name for lf in named.leaves if lf.status == "fail"] == ["blocks['dec'][0][0].b"], named


class Net:
    def __init__(self, layers):
        self.layers = layers

    def forward(self, X):
        for layer in self.layers:
            X = layer.forward(X)
        return X

    def backward(self, d):
        for layer in reversed(self.layers):
            d = layer.backward(d)
        return d


def _nested(layer, depth):
    for _ in range(depth):
        layer = Net([layer])
    return layer


def test_a_wrong_layer_deep_in_a_network_fails_and_past_the_depth_limit_is_refused():
    from backcheck.frontends.slots import NESTED_DEPTH

    report = backcheck.check_object(Net([Dense(3, 4, 1), _nested(Dense(4, 2, 2, bug="doubled"), 9)]), X)
    assert [lf.name.rsplit(".", 1)[1] for lf in report.leaves if lf.status == "fail"] == ["b"], report
    with pytest.raises(BadInputError, match="nested more than"):
        backcheck.check_object(Net([_nested(Dense(3, 2, 2), NESTED_DEPTH + 1)]), X)


class CachedStepping:
    """Steps its parameters in backward and keeps a cache dict that starts as {'X': None} (filled by forward)."""

    def __init__(self, factor=1.0):
        rng = np.random.default_rng(0)
        self.params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
        self.cache, self.factor = {"X": None}, factor

    def forward(self, X):
        self.cache["X"] = X
        return X @ self.params["W"] + self.params["b"]

    def backward(self, dZ, lr):
        dX = dZ @ self.params["W"].T
        self.params["W"] = self.params["W"] - lr * self.factor * (self.cache["X"].T @ dZ)
        self.params["b"] = self.params["b"] - lr * dZ.sum(0)
        return dX


def test_a_stepping_layer_with_a_cache_entry_none_before_forward_is_checked():
    # (reading whether forward reads the None entry raised numpy's TypeError, told as a bad argument)
    assert backcheck.check_object(CachedStepping(), X).status == "pass"
    bad = backcheck.check_object(CachedStepping(factor=1.1), X)
    assert [lf.name for lf in bad.leaves if lf.status == "fail"] == ["W"], bad


class Masked:
    """forward(a, b, mask) -> backward returns (da, db): one gradient per differentiated input."""

    def __init__(self, with_weight=False, bug=1.0):
        self.w = np.random.default_rng(2).normal(size=2) if with_weight else None
        self.bug = bug

    def forward(self, a, b, m):
        self.a, self.b, self.m = a, b, m
        out = np.where(m, 0.0, a @ b)
        return out * self.w if self.w is not None else out

    def backward(self, d):
        if self.w is not None:
            self.dw = (d * np.where(self.m, 0.0, self.a @ self.b)).sum(0)
            d = d * self.w
        d = np.where(self.m, 0.0, d)
        return d @ self.b.T, self.bug * (self.a.T @ d)


@pytest.mark.parametrize("with_weight", [False, True])
def test_gradients_of_the_differentiated_inputs_alone_are_placed_beside_a_mask(with_weight):
    # (one gradient per differentiated input, a mask beside them, was refused as too few values)
    rng = np.random.default_rng(0)
    a, b, m = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.random((3, 2)) > 0.5
    for mask in (m, m.astype(int)):
        report = backcheck.check_object(Masked(with_weight), a, b, mask)
        assert report.status == "pass", report
    bad = backcheck.check_object(Masked(with_weight, bug=1.5), a, b, m)
    assert [lf.name for lf in bad.leaves if lf.status == "fail"] == ["b"], bad


class EvalNormCamel(Norm):
    def __init__(self):
        super().__init__()
        self.runningMean, self.runningVar = self.running_mean, self.running_var
        del self.running_mean, self.running_var

    def forward(self, X):
        self.xh = (X - self.runningMean) / np.sqrt(self.runningVar)
        return self.gamma * self.xh + self.beta

    def backward(self, d):
        self.dgamma, self.dbeta = (d * self.xh).sum(0), d.sum(0)
        return d * self.gamma / np.sqrt(self.runningVar)


def test_buffer_words_are_read_in_camel_case_names_too():
    report = backcheck.check_object(EvalNormCamel(), X)
    assert report.status == "pass" and not report.findings, report


class SoftmaxDense:
    """softmax(x @ W + b): a softmax does not move with a uniform shift of b, but does with b."""

    def __init__(self, bias_rule="right"):
        rng = np.random.default_rng(0)
        self.W, self.b, self.bias_rule = rng.normal(size=(3, 4)), 0.3 * rng.normal(size=4), bias_rule

    def forward(self, x):
        self.x = x
        z = x @ self.W + self.b
        e = np.exp(z - z.max(1, keepdims=True))
        self.p = e / e.sum(1, keepdims=True)
        return self.p

    def backward(self, d):
        dz = self.p * (d - (d * self.p).sum(1, keepdims=True))
        self.dW = self.x.T @ dz
        if self.bias_rule != "forgot":
            self.db = dz.sum(0) * (3.0 if self.bias_rule == "wrong" else 1.0)
        return dz @ self.W.T


def test_a_bias_before_a_softmax_is_read_by_forward():
    # (whether forward reads an array was told by moving it by one constant everywhere, which a softmax ignores:
    # the bias was left out as a link to another layer or a buffer, right, wrong or forgotten alike)
    x = np.random.default_rng(1).normal(size=(5, 3))
    assert backcheck.check_object(SoftmaxDense(), x).status == "pass"
    assert [lf.name for lf in backcheck.check_object(SoftmaxDense("wrong"), x).leaves if lf.status == "fail"] == ["b"]
    assert backcheck.check_object(SoftmaxDense("forgot"), x).status == "inconclusive"
    y = np.array([0, 2, 1, 1, 0])
    for bug, status in ((None, "pass"), ("doubled", "fail"), ("forgot", "inconclusive")):
        report = backcheck.check_object(Classifier(bug), x, y)
        assert report.status == status, report
        assert "layers[1].b" in [lf.name for lf in report.leaves] or bug == "forgot", report


class SoftmaxCE:
    def forward(self, x, y):
        e = np.exp(x - x.max(1, keepdims=True))
        self.y, self.p = y, e / e.sum(1, keepdims=True)
        return -np.mean(np.log(self.p[np.arange(len(y)), y]))

    def backward(self, d=1.0):
        g = self.p.copy()
        g[np.arange(len(self.y)), self.y] -= 1
        return d * g / len(self.y)


class Classifier:
    """Two dense layers and a softmax cross-entropy: the last bias is read through a softmax alone."""

    def __init__(self, bug):
        self.layers, self.loss = [Dense(3, 4, 1), Dense(4, 3, 2, bug=bug)], SoftmaxCE()
        self.layers[1].b = 0.3 * self.layers[1].b

    def forward(self, x, y):
        for layer in self.layers:
            x = layer.forward(x)
        return self.loss.forward(x, y)

    def backward(self, d=1.0):
        d = self.loss.backward(d)
        for layer in reversed(self.layers):
            d = layer.backward(d)
        return d


class EvalNormReturns:
    """An eval-mode normalization returning (dX, dgamma, dbeta), its statistics read by forward as mu and sigma2."""

    def __init__(self, factor=1.0):
        self.gamma, self.beta = np.array([1.0, 0.5, 2.0]), np.zeros(3)
        self.mu, self.sigma2, self.factor = np.full(3, 0.1), np.full(3, 2.0), factor

    def forward(self, X):
        self.xh = (X - self.mu) / np.sqrt(self.sigma2)
        return self.gamma * self.xh + self.beta

    def backward(self, d):
        return d * self.gamma / np.sqrt(self.sigma2), self.factor * (d * self.xh).sum(0), d.sum(0)


class PositionalTable:
    """A parameter-free layer adding a fixed table."""

    def __init__(self):
        self.pe = np.sin(np.arange(12.0)).reshape(4, 3)

    def forward(self, X):
        return X + self.pe

    def backward(self, d):
        return d


def test_returned_gradients_beside_statistics_forward_reads_and_a_table_alone_are_read():
    # (the return value's three values were counted against five slots, and refused; a layer holding only a
    # positional table was refused for want of its gradient)
    x = np.random.default_rng(3).normal(size=(4, 3))
    report = backcheck.check_object(EvalNormReturns(), x)
    assert report.status == "pass" and [lf.name for lf in report.leaves] == ["X", "gamma", "beta"], report
    bad = backcheck.check_object(EvalNormReturns(factor=1.5), x)
    assert [lf.name for lf in bad.leaves if lf.status == "fail"] == ["gamma"], bad
    table = backcheck.check_object(PositionalTable(), x)
    assert table.status == "pass" and any("not checked: pe" in n for n in table.notes), table


class Stages:
    def __init__(self, depth, bug=None, data_depth=0):
        held = Dense(3, 2, 3, bug=bug)
        for _ in range(depth):
            held = [held]
        self.stages = held
        data = [1.0, 2.0]
        for _ in range(data_depth):
            data = [data]
        self.config = data  # nested plain data: no layers in it

    def _layer(self):
        held = self.stages
        while isinstance(held, list):
            held = held[0]
        return held

    def forward(self, X):
        return self._layer().forward(X)

    def backward(self, d):
        return self._layer().backward(d)


def test_layers_in_containers_are_found_or_refused_by_name_never_passed_over():
    from backcheck.frontends.slots import CONTAINER_DEPTH

    report = backcheck.check_object(Stages(4, bug="doubled", data_depth=CONTAINER_DEPTH + 2), X)
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == ["stages[0][0][0][0].b"], report
    with pytest.raises(BadInputError, match="containers nested more than"):
        backcheck.check_object(Stages(CONTAINER_DEPTH + 1), X)


class Parameter:
    """A micro-framework's parameter: its value and its gradient on one object."""

    def __init__(self, data):
        self.data, self.grad = data, np.zeros_like(data)


class ParamDense:
    def __init__(self, seed, factor=1.0):
        rng = np.random.default_rng(seed)
        self.W, self.b, self.factor = Parameter(rng.normal(size=(3, 3))), Parameter(np.zeros(3)), factor

    def forward(self, x):
        self.x = x
        return x @ self.W.data + self.b.data

    def backward(self, d):
        self.W.grad += self.factor * (self.x.T @ d)
        self.b.grad += d.sum(0)
        return d @ self.W.data.T


def test_parameter_objects_holding_data_and_grad_are_found():
    # (found no parameters: only the inputs were checked, a 3x wrong dW passed)
    x = np.random.default_rng(4).normal(size=(5, 3))
    layer = ParamDense(0)
    before = layer.W.data.copy()
    report = backcheck.check_object(layer, x)
    assert report.status == "pass" and [lf.name for lf in report.leaves] == ["x", "W[data]", "b[data]"], report
    assert np.array_equal(layer.W.data, before) and not layer.W.grad.any()
    net = Net([ParamDense(1), ParamDense(2, factor=3.0)])
    bad = backcheck.check_object(net, x)
    assert [lf.name for lf in bad.leaves if lf.status == "fail"] == ["layers[1].W[data]"], bad
