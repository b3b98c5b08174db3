"""check_object on a network of layer objects (a list, a dict or attributes of layers, each with its own
parameters: tinynn's params/grads dicts, W/dW attributes, a backward that steps with a learning rate): every
layer's parameters are found through the network (``layers[2].b``) and checked; a wrong gradient in one layer
fails that layer's array alone. They passed, the input alone checked."""

import numpy as np
import pytest

import backcheck


class Dense:  # borgwang/tinynn's style: params and grads dicts
    def __init__(self, n_in, n_out, rng, bug=False):
        self.params = {"w": rng.uniform(-0.7, 0.7, (n_in, n_out)), "b": 0.1 * rng.standard_normal(n_out)}
        self.grads = {}
        self.bug = bug

    def forward(self, inputs):
        self.inputs = inputs
        return inputs @ self.params["w"] + self.params["b"]

    def backward(self, grad):
        self.grads["w"] = self.inputs.T @ grad
        self.grads["b"] = grad[0].copy() if self.bug else grad.sum(axis=0)  # the bug: not summed over the batch
        return grad @ self.params["w"].T


class Tanh:
    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, inputs):
        self.out = np.tanh(inputs)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out**2)


class Net:
    def __init__(self, layers):
        self.layers = layers

    def forward(self, inputs):
        for layer in self.layers:
            inputs = layer.forward(inputs)
        return inputs

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad


def _net(bug_at=None, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [(4, 6), (6, 5), (5, 3)]
    layers = []
    for k, (i, o) in enumerate(sizes):
        layers += [Dense(i, o, rng, bug=k == bug_at), Tanh()]
    return Net(layers[:-1]), rng.standard_normal((5, 4))


def test_every_layer_of_a_list_is_checked_and_a_right_network_passes():
    net, x = _net()
    before = [dict((k, v.copy()) for k, v in layer.params.items()) for layer in net.layers]
    report = backcheck.check_object(net, x)
    assert report.status == "pass", report
    names = [lf.name for lf in report.leaves]
    assert names == ["inputs", "layers[0].w", "layers[0].b", "layers[2].w", "layers[2].b", "layers[4].w", "layers[4].b"]
    for layer, was in zip(net.layers, before, strict=True):  # the user's network is left as it was
        for k, v in was.items():
            np.testing.assert_array_equal(layer.params[k], v)


@pytest.mark.parametrize("bug_at", [0, 1, 2])
def test_a_wrong_gradient_in_one_layer_fails_that_layers_array_alone(bug_at):
    net, x = _net(bug_at)
    report = backcheck.check_object(net, x)
    assert report.status == "fail", report
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == [f"layers[{2 * bug_at}].b"], report


def test_a_nested_parameter_can_be_named():
    net, x = _net(1)
    report = backcheck.check_object(net, x, params=["layers[2].params[b]", "layers[0].params['w']"])
    verdicts = {lf.name: lf.status for lf in report.leaves}
    assert verdicts == {"inputs": "pass", "layers[2].b": "fail", "layers[0].w": "pass"}, report


class Linear:  # W / dW attributes
    def __init__(self, n_in, n_out, rng):
        self.W = rng.standard_normal((n_in, n_out)) * 0.5
        self.dW = np.zeros_like(self.W)

    def forward(self, x):
        self.x = x
        return x @ self.W

    def backward(self, d):
        self.dW = self.x.T @ d
        return d @ self.W.T


class TwoLayer:  # layers held as attributes
    def __init__(self, rng):
        self.fc1, self.act, self.fc2 = Linear(3, 4, rng), Tanh(), Linear(4, 2, rng)

    def forward(self, x):
        return self.fc2.forward(self.act.forward(self.fc1.forward(x)))

    def backward(self, d):
        return self.fc1.backward(self.act.backward(self.fc2.backward(d)))


def test_layers_held_as_attributes_are_checked():
    rng = np.random.default_rng(3)
    report = backcheck.check_object(TwoLayer(rng), rng.standard_normal((4, 3)))
    assert report.status == "pass", report
    assert [lf.name for lf in report.leaves] == ["x", "fc1.W", "fc2.W"], report


def test_one_activation_object_used_twice_fails_the_layers_below_it():
    rng = np.random.default_rng(0)
    act = Tanh()  # its stored output is the second use's when the first one's backward reads it
    net = Net([Dense(4, 6, rng), act, Dense(6, 6, rng), act, Dense(6, 3, rng)])
    report = backcheck.check_object(net, rng.standard_normal((5, 4)))
    failing = {lf.name for lf in report.leaves if lf.status == "fail"}
    assert failing == {"inputs", "layers[0].w", "layers[0].b"}, report


class Scaled(Net):  # a parameter of its own beside its layers
    def __init__(self, layers):
        super().__init__(layers)
        self.scale = np.array([1.5])

    def forward(self, inputs):
        self.out = super().forward(inputs)
        return self.scale * self.out

    def backward(self, grad):
        self.dscale = np.array([np.sum(grad * self.out)])
        return super().backward(grad * self.scale)


def test_a_network_with_a_parameter_of_its_own_checks_its_layers_too():
    net, x = _net(bug_at=1)
    report = backcheck.check_object(Scaled(net.layers), x)
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == ["layers[2].b"], report
    assert "scale" in [lf.name for lf in report.leaves], report


class Block:  # a block of layers, nested in a block ... in a network
    def __init__(self, inner):
        self.layers = [inner]

    def forward(self, x):
        return self.layers[0].forward(x)

    def backward(self, d):
        return self.layers[0].backward(d)


def test_layers_nested_deep_and_back_references_are_found_once():
    rng = np.random.default_rng(5)
    inner = Linear(3, 2, rng)
    deep = Block(Block(Block(Block(Block(inner)))))
    inner.parent = deep  # a reference back up: searched once
    report = backcheck.check_object(deep, rng.standard_normal((4, 3)))
    assert report.status == "pass", report
    assert [lf.name for lf in report.leaves] == ["x", "layers[0]." * 5 + "W"], report
    last = backcheck.check_object(
        Net([Linear(3, 4, rng), Tanh(), Linear(4, 2, rng)]), rng.standard_normal((4, 3)), params=["layers[-1].W"]
    )
    assert [lf.name for lf in last.leaves] == ["inputs", "layers[-1].W"], last


def test_a_layers_links_to_other_layers_are_not_its_parameters():
    rng = np.random.default_rng(8)
    first, second = Linear(3, 4, rng), Linear(4, 2, rng)
    first.next, second.prev = second, first  # a doubly linked list of layers
    report = backcheck.check_object(first, rng.standard_normal((5, 3)))
    assert report.status == "pass", report
    assert [lf.name for lf in report.leaves] == ["x", "W"], report
    assert any("next.W" in n and "never reads" in n for n in report.notes), report.notes


def test_a_boxed_parameter_named_in_params_keeps_its_path():
    class Boxed:
        def __init__(self, rng, n_in, n_out):
            self.W = {"val": rng.standard_normal((n_in, n_out)), "grad": np.zeros((n_in, n_out))}

        def forward(self, x):
            self.x = x
            return x @ self.W["val"]

        def backward(self, d):
            self.W["grad"] = self.x.T @ d
            return d @ self.W["val"].T

    rng = np.random.default_rng(9)
    net = Net([Boxed(rng, 3, 2), Tanh(), Boxed(rng, 2, 2)])
    report = backcheck.check_object(net, rng.standard_normal((4, 3)), params=["layers[2].W[val]"])
    assert [lf.name for lf in report.leaves] == ["inputs", "layers[2].W[val]"], report
