"""check_layer and check_object on hand-written numpy layers: backward called as training calls it (after the
forward pass, on the random streams as that pass left them), linear in dout, not writing through the cache into
forward's inputs; and the messages for gradients out of order, torch tensors, a tuple dout and a layer object that
ran forward before the check."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, GradientStructureError, UserFunctionError

RNG = np.random.default_rng(11)
X = RNG.normal(size=(5, 4))
W = RNG.normal(size=(4, 3))


def _global_state():
    return np.random.get_state()


def _same_state(a, b):
    return all(np.array_equal(u, v) if isinstance(u, np.ndarray) else u == v for u, v in zip(a, b, strict=True))


# -- 1. backward runs on the random stream as its forward pass left it --------------------------------------------
def noisy_forward(x):
    return x * (1.0 + 0.25 * np.random.standard_normal(x.shape))


def noisy_backward_redraws(dout, x):
    return dout * (1.0 + 0.25 * np.random.standard_normal(x.shape))  # another draw than forward's


def noisy_forward_cached(x):
    noise = 1.0 + 0.25 * np.random.standard_normal(x.shape)
    return x * noise, noise


def test_a_backward_that_draws_its_own_noise_from_the_global_stream_fails_and_the_state_is_kept():
    np.random.seed(3)
    before = _global_state()
    r = backcheck.check_layer(noisy_forward, noisy_backward_redraws, (X,))
    assert r.status == "fail" and r.leaf("x").status == "fail", r
    assert any("draws from the random stream itself" in n for n in r.notes), r.notes
    assert _same_state(_global_state(), before)
    # the cache convention: backward reading the noise from its cache passes, redrawing it fails
    good = backcheck.check_layer(noisy_forward_cached, lambda d, noise: d * noise, (X,), cache=True)
    assert good.ok and not any("draws from the random stream itself" in n for n in good.notes), good.notes
    redraw = backcheck.check_layer(
        noisy_forward_cached, lambda d, noise: noisy_backward_redraws(d, noise), (X,), cache=True
    )
    assert redraw.status == "fail"
    assert _same_state(_global_state(), before)


def test_a_backward_that_draws_again_from_a_generator_argument_fails_and_the_generator_is_kept():
    def fwd(x, w, gen):
        keep = gen.random(x.shape) < 0.6
        return (x * keep) @ w

    def bwd_redraws(dout, x, w, gen):
        keep = gen.random(x.shape) < 0.6  # the next draw in training, not forward's
        return (dout @ w.T) * keep, (x * keep).T @ dout, None

    def fwd_cached(x, w, gen):
        keep = gen.random(x.shape) < 0.6
        return (x * keep) @ w, (x, w, keep)

    def bwd_cached(dout, cache):
        x, w, keep = cache
        return (dout @ w.T) * keep, (x * keep).T @ dout, None

    gen = np.random.default_rng(8)
    state = gen.bit_generator.state
    r = backcheck.check_layer(fwd, bwd_redraws, (X, W, gen))
    assert r.status == "fail" and r.leaf("x").status == "fail", r
    assert gen.bit_generator.state == state
    good = backcheck.check_layer(fwd_cached, bwd_cached, (X, W, gen), cache=True)
    assert good.ok, good
    assert gen.bit_generator.state == state


class NoisyScale:
    """y = x * w * noise, the noise drawn in forward from the layer's own generator."""

    def __init__(self, redraw=False):
        self.w = np.linspace(0.5, 1.5, 4)
        self.rng = np.random.default_rng(4)
        self.redraw = redraw

    def forward(self, x):
        self.x, self.noise = x, 1.0 + 0.25 * self.rng.standard_normal(x.shape)
        return x * self.w * self.noise

    def backward(self, dout):
        noise = 1.0 + 0.25 * self.rng.standard_normal(dout.shape) if self.redraw else self.noise
        self.dw = np.sum(dout * self.x * noise, axis=0)
        return dout * self.w * noise


def test_a_layer_object_with_its_noise_on_itself_passes_and_one_that_redraws_fails():
    assert backcheck.check_object(NoisyScale(), X).ok
    assert backcheck.check_object(NoisyScale(redraw=True), X).status == "fail"


# -- 2. backward linear in dout -----------------------------------------------------------------------------------
def tanh_forward(x, w):
    return np.tanh(x @ w)


def tanh_backward(dout, x, w):
    dz = dout * (1 - np.tanh(x @ w) ** 2)
    return dz @ w.T, x.T @ dz


def test_a_backward_that_normalizes_its_gradient_fails_as_nonlinear_naming_the_input():
    def normalized(dout, x, w):
        dx, dw = tanh_backward(dout, x, w)
        return dx, dw / max(1.0, float(np.linalg.norm(dw)))  # a norm clip inside backward

    r = backcheck.check_layer(tanh_forward, normalized, (X, W))
    found = [f for f in r.findings if f.kind == "nonlinear backward"]
    assert r.status == "fail" and len(found) == 1, r
    assert found[0].where == "w" and "x" not in found[0].message.split("gradient for ")[1].split(" than")[0]
    assert "optimizer" in found[0].message and "regularizers to the loss" in found[0].message


class DecayedDense:
    def __init__(self, decay):
        self.W = W.copy()
        self.decay = decay

    def forward(self, x):
        self.x = x
        return x @ self.W

    def backward(self, dout):
        self.dW = self.x.T @ dout + self.decay * self.W  # weight decay inside backward
        return dout @ self.W.T


def test_weight_decay_inside_a_layer_objects_backward_fails_as_nonlinear_and_none_passes():
    r = backcheck.check_object(DecayedDense(0.5), X)
    found = [f for f in r.findings if f.kind == "nonlinear backward"]
    assert found and found[0].where == "W" and r.leaf("x").status == "pass", r
    assert backcheck.check_object(DecayedDense(0.0), X).ok


def test_correct_float32_and_cached_layers_pass_with_one_more_backward_call_at_a_scaled_dout():
    x32, w32 = X.astype(np.float32), W.astype(np.float32)
    seen = []

    def counted(dout, x, w):
        seen.append(dout.copy())
        return tanh_backward(dout, x, w)

    r = backcheck.check_layer(tanh_forward, counted, (x32, w32))
    assert r.ok and not r.findings, r
    scaled = [d for d in seen if np.array_equal(d, -4 * seen[0])]
    assert len(scaled) == 1 and scaled[0].dtype == np.float32

    def ln_forward(x, g):
        mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
        xh = (x - mu) / np.sqrt(var + 1e-5)
        return g * xh, (xh, g, var)

    def ln_backward(dout, cache):
        xh, g, var = cache
        n = xh.shape[1]
        dxh = dout * g
        dx = (n * dxh - dxh.sum(1, keepdims=True) - xh * (dxh * xh).sum(1, keepdims=True)) / (n * np.sqrt(var + 1e-5))
        return dx, (dout * xh).sum(0)

    for dtype in (np.float64, np.float32):
        r = backcheck.check_layer(ln_forward, ln_backward, (X.astype(dtype), W[:, 0].astype(dtype)), cache=True)
        assert r.ok and not r.findings, r


def test_a_loss_layer_whose_backward_ignores_a_dout_of_ones_still_passes():
    labels = np.array([0, 2, 1, 1, 0])

    def loss(x, y):
        z = x - x.max(1, keepdims=True)
        return -np.mean(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))

    def loss_grad(dout, x, y):
        p = np.exp(x - x.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        return p / len(y), None

    assert backcheck.check_layer(loss, loss_grad, (X[:, :3], labels), dout=np.float64(1.0)).ok


# -- 3. a backward that writes through the cache into forward's input ---------------------------------------------
def test_a_backward_writing_into_the_cached_input_is_a_mutation_and_the_callers_input_is_kept():
    def fwd(x, w):
        return x @ w, {"x": x, "w": w}

    def bwd(dout, cache):
        x, w = cache["x"], cache["w"]
        dw = x.T @ dout
        x *= 0.0  # "free" the cached input: it is the caller's x
        return dout @ w.T, dw

    x0 = X.copy()
    r = backcheck.check_layer(fwd, bwd, (X, W), cache=True)
    found = [f for f in r.findings if f.kind == "mutation"]
    assert r.status == "fail" and found and found[0].where == "bwd", r
    assert "through the cache" in found[0].message and "x" in found[0].elements[0]
    assert np.array_equal(X, x0)

    def bwd_own(dout, cache):  # writes only into what it owns: no finding
        x, w = cache["x"], cache["w"]
        dx = dout @ w.T
        dx *= 1.0
        return dx, x.T @ dout

    assert backcheck.check_layer(fwd, bwd_own, (X, W), cache=True).ok


def test_writes_inside_a_list_input_or_a_config_dict_are_backwards_only_when_backward_makes_them():
    def fwd(xs, w, cfg):
        cfg["running"] = 0.9 * cfg["running"] + 0.1 * xs[0].mean(0)  # forward's own write into its config
        return (xs[0] + xs[1]) @ w

    def bwd(dout, xs, w, cfg):
        dxs = dout @ w.T
        return [dxs, dxs.copy()], (xs[0] + xs[1]).T @ dout, None

    def bwd_writes(dout, xs, w, cfg):
        grads = bwd(dout, xs, w, cfg)
        xs[1] -= xs[0]  # reuses the input list's array as scratch
        return grads

    cfg = {"running": np.zeros(4)}
    assert backcheck.check_layer(fwd, bwd, ([X, 2 * X], W, cfg)).ok
    r = backcheck.check_layer(fwd, bwd_writes, ([X, 2 * X], W, cfg))
    found = [f for f in r.findings if f.kind == "mutation"]
    assert r.status == "fail" and found and "xs[1]" in found[0].message, r
    assert np.array_equal(cfg["running"], np.zeros(4))


# -- 4. a layer object that ran forward before the check ----------------------------------------------------------
class Remembering:
    """Keeps every forward input in a list and differentiates at the first one (as numpy-ml's layers do)."""

    def __init__(self):
        self.W = W.copy()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x)
        return np.tanh(x @ self.W)

    def backward(self, dout):
        x = self.inputs[0]
        dz = dout * (1 - np.tanh(x @ self.W) ** 2)
        self.dW = x.T @ dz
        return dz @ self.W.T

    def clear(self):
        self.inputs = []


def test_a_layer_object_that_ran_forward_before_the_check_fails_with_a_note_on_reset():
    used = Remembering()
    used.forward(RNG.normal(size=X.shape))
    r = backcheck.check_object(used, X)
    assert r.status == "fail"
    note = [n for n in r.notes if "reset=" in n]
    assert len(note) == 1 and "self.inputs[0]" in note[0], r.notes
    assert backcheck.check_object(used, X, reset="clear").ok
    fresh = backcheck.check_object(Remembering(), X)
    assert fresh.ok and not any("reset=" in n for n in fresh.notes)


# -- 5. gradients out of order -------------------------------------------------------------------------------------
def test_gradients_returned_out_of_order_are_said_to_be_and_a_wrong_shape_is_not():
    def swapped(dout, x, w):
        dx, dw = tanh_backward(dout, x, w)
        return dw, dx

    with pytest.raises(GradientStructureError) as info:
        backcheck.check_layer(tanh_forward, swapped, (X, W))
    assert "w's shape" in info.value.hint and "out of order" in info.value.hint
    assert "shape of w" in info.value.message

    def unsummed(dout, x, w):
        dx, dw = tanh_backward(dout, x, w)
        return dx, dw[None] * np.ones((2, 1, 1))

    with pytest.raises(GradientStructureError) as info:
        backcheck.check_layer(tanh_forward, unsummed, (X, W))
    assert "out of order" not in info.value.hint


# -- 6. torch tensors ----------------------------------------------------------------------------------------------
def test_torch_tensors_given_to_check_layer_point_to_backcheck_torch_and_numpy():
    torch = pytest.importorskip("torch")
    for inputs in ((torch.from_numpy(X), torch.from_numpy(W)), (X, torch.from_numpy(W))):
        with pytest.raises(BadInputError) as info:
            backcheck.check_layer(tanh_forward, tanh_backward, inputs)
        assert "torch tensors" in info.value.message and "w" in info.value.message
        assert "backcheck.torch.check_function" in info.value.hint and ".numpy()" in info.value.hint


# -- 7. a backward given a tuple dout --------------------------------------------------------------------------------
def test_a_backward_that_fails_on_the_tuple_dout_of_a_forward_with_several_outputs_is_told_so():
    def three(x, w):
        z = x @ w
        return np.tanh(z), z, z**2

    def one_dout(dout, x, w):
        dz = dout * (1 - np.tanh(x @ w) ** 2)  # written for the first output's gradient alone
        return dz @ w.T, x.T @ dz

    with pytest.raises(GradientStructureError) as info:  # numpy stacked the tuple: a gradient of shape (3, 5, 4)
        backcheck.check_layer(three, one_dout, (X, W))
    assert "3 outputs" in info.value.hint and "tuple of 3 douts" in info.value.hint

    def reshaping(dout, x, w):
        return one_dout(dout.reshape(x.shape[0], -1), x, w)

    with pytest.raises(UserFunctionError) as info:  # a tuple has no reshape
        backcheck.check_layer(three, reshaping, (X, W))
    assert "3 outputs" in info.value.hint and "tuple of 3 douts" in info.value.hint

    def right(dout, x, w):  # a wrong shape of another kind: no word of the outputs
        return x.T @ dout[0], x.T @ dout[0]

    with pytest.raises(GradientStructureError) as info:
        backcheck.check_layer(three, right, (X, W))
    assert "douts" not in info.value.hint

    class TwoOut:
        def __init__(self):
            self.W = W.copy()

        def forward(self, x):
            self.x = x
            z = x @ self.W
            return np.tanh(z), z

        def backward(self, dout):
            dz = dout * (1 - np.tanh(self.x @ self.W) ** 2)
            self.dW = self.x.T @ dz
            return dz @ self.W.T

    with pytest.raises(BadInputError) as info:  # dW of shape (2, 4, 3): no gradient of W's shape
        backcheck.check_object(TwoOut(), X)
    assert "2 outputs" in info.value.hint and "cache=True" not in info.value.hint

    class TwoOutReshaping(TwoOut):
        def backward(self, dout):
            return super().backward(dout.reshape(self.x.shape[0], -1))

    with pytest.raises(UserFunctionError) as info:
        backcheck.check_object(TwoOutReshaping(), X)
    assert "2 outputs" in info.value.hint and "tuple of 2 douts" in info.value.hint


class StepInside:
    """Takes the SGD step inside backward, and computes the input's gradient from the updated weights."""

    def __init__(self):
        self.W = W.copy()

    def forward(self, x):
        self.x = x
        return x @ self.W

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.W -= 0.1 * self.dW
        return dout @ self.W.T


def test_a_gradient_computed_after_a_step_inside_backward_is_nonlinear_and_told_why():
    r = backcheck.check_object(StepInside(), X)
    found = [f for f in r.findings if f.kind == "nonlinear backward"]
    assert r.leaf("x").status == "fail" and r.leaf("W").status == "pass", r
    assert found and "updates W itself" in found[0].message


def test_stored_arrays_of_a_shape_several_inputs_share_name_them_all():
    class TwoRemembered:
        def __init__(self):
            self.seen = []

        def forward(self, q, k):
            self.seen.append((q, k))
            q0, k0 = self.seen[0]  # the first inputs ever seen: stale after a run before the check
            return q0 * k0

        def backward(self, dout):
            q0, k0 = self.seen[0]
            return dout * k0, dout * q0

    used = TwoRemembered()
    used.forward(RNG.normal(size=X.shape), X)
    r = backcheck.check_object(used, X, X + 1)
    note = [n for n in r.notes if "reset=" in n]
    assert r.status == "fail" and len(note) == 1 and "(q / k's shape)" in note[0], r.notes
