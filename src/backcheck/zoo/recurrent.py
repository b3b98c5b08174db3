"""Single recurrent steps: vanilla tanh RNN, relu RNN, LSTM and GRU (weights as explicit inputs)."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn, resample, sigmoid
from backcheck.zoo._registry import Bug, Grads, Layer, one_wrong_element, scale_bug

# --- vanilla RNN step -----------------------------------------------------------------------------


def rnn_step_forward(
    x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """h = tanh(x @ wx + h_prev @ wh + b)."""
    return np.tanh(x @ wx + h_prev @ wh + b)


def _rnn_grads(
    da: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
    wx: np.ndarray,
    wh: np.ndarray,
    transpose: bool = True,
    sum_bias: bool = True,
) -> Grads:
    dh_prev = da @ (wh.T if transpose else wh)
    db = np.sum(da, axis=0) if sum_bias else np.mean(da, axis=0)
    return da @ wx.T, dh_prev, x.T @ da, h_prev.T @ da, db


def rnn_step_backward(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    """da = dout * (1 - h**2), then the affine backward for both inputs."""
    h = rnn_step_forward(x, h_prev, wx, wh, b)
    return _rnn_grads(dout * (1 - h * h), x, h_prev, wx, wh)


def _rnn_from_input(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    a = x @ wx + h_prev @ wh + b
    return _rnn_grads(dout * (1 - a * a), x, h_prev, wx, wh)


def _rnn_missing_transpose(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    h = rnn_step_forward(x, h_prev, wx, wh, b)
    return _rnn_grads(dout * (1 - h * h), x, h_prev, wx, wh, transpose=False)


def _rnn_bias_not_summed(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    h = rnn_step_forward(x, h_prev, wx, wh, b)
    return _rnn_grads(dout * (1 - h * h), x, h_prev, wx, wh, sum_bias=False)


def _rnn_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (4, 3), dtype),
        "h_prev": randn(rng, (4, 5), dtype, scale=0.5),
        "wx": randn(rng, (3, 5), dtype, scale=0.5),
        "wh": randn(rng, (5, 5), dtype, scale=0.5),
        "b": randn(rng, (5,), dtype, scale=0.3),
    }


RNN_STEP = Layer(
    name="rnn_step",
    family="recurrent",
    forward=rnn_step_forward,
    backward=rnn_step_backward,
    make_inputs=_rnn_inputs,
    bugs=(
        Bug(
            "derivative_from_input",
            _rnn_from_input,
            "gross",
            "Uses 1 - a**2 with a the pre-activation (the input of tanh) instead of 1 - h**2.",
        ),
        Bug(
            "missing_transpose",
            _rnn_missing_transpose,
            "gross",
            "dh_prev = da @ wh instead of da @ wh.T (silent because wh is square).",
        ),
        Bug(
            "bias_not_summed",
            _rnn_bias_not_summed,
            "gross",
            "Averages the bias gradient over the batch instead of summing it.",
        ),
        scale_bug(rnn_step_backward, 5),
    ),
)


# --- relu RNN step --------------------------------------------------------------------------------


def rnn_relu_step_forward(
    x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """h = relu(x @ wx + h_prev @ wh + b)."""
    return np.maximum(x @ wx + h_prev @ wh + b, 0)


def rnn_relu_step_backward(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    """da = dout where the pre-activation is positive, then the affine backward."""
    a = x @ wx + h_prev @ wh + b
    return _rnn_grads(dout * (a > 0), x, h_prev, wx, wh)


def _rnn_relu_mask_from_dout(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    return _rnn_grads(dout * (dout > 0), x, h_prev, wx, wh)


def _rnn_relu_missing_transpose(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    a = x @ wx + h_prev @ wh + b
    return _rnn_grads(dout * (a > 0), x, h_prev, wx, wh, transpose=False)


def _rnn_relu_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    def ok(inp):
        a = inp["x"] @ inp["wx"] + inp["h_prev"] @ inp["wh"] + inp["b"]
        return bool(np.min(np.abs(a)) > 0.02 and 0.25 < np.mean(a > 0) < 0.75)

    return resample(rng, lambda: _rnn_inputs(rng, dtype), ok)


def _rnn_relu_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _rnn_relu_inputs(rng, dtype)
    inputs["x"][0] = 0
    inputs["h_prev"][0] = 0  # row 0 of the pre-activation is exactly b ...
    inputs["b"][:2] = 0  # ... so two units of example 0 sit exactly at the relu kink
    return inputs


RNN_RELU_STEP = Layer(
    name="rnn_relu_step",
    family="recurrent",
    forward=rnn_relu_step_forward,
    backward=rnn_relu_step_backward,
    make_inputs=_rnn_relu_inputs,
    kinks=_rnn_relu_kinks,
    bugs=(
        Bug(
            "mask_from_dout",
            _rnn_relu_mask_from_dout,
            "gross",
            "Builds the relu mask from dout > 0 instead of the pre-activation.",
        ),
        Bug(
            "missing_transpose",
            _rnn_relu_missing_transpose,
            "gross",
            "dh_prev = da @ wh instead of da @ wh.T.",
        ),
        one_wrong_element(rnn_relu_step_backward, which=3),
    ),
)


# --- LSTM step ------------------------------------------------------------------------------------


def _lstm_gates(
    x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a = x @ wx + h_prev @ wh + b
    hd = h_prev.shape[1]
    i, f, o = sigmoid(a[:, :hd]), sigmoid(a[:, hd : 2 * hd]), sigmoid(a[:, 2 * hd : 3 * hd])
    g = np.tanh(a[:, 3 * hd :])
    return a, i, f, o, g


def lstm_step_forward(
    x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """One LSTM step with gates (i, f, o, g); returns concatenate([h, c], axis=1) of shape (N, 2H)."""
    _, i, f, o, g = _lstm_gates(x, h_prev, wx, wh, b)
    c = f * c_prev + i * g
    return np.concatenate([o * np.tanh(c), c], axis=1)


def _lstm_backward(
    dout: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    wx: np.ndarray,
    wh: np.ndarray,
    b: np.ndarray,
    bug: str | None = None,
) -> Grads:
    a, i, f, o, g = _lstm_gates(x, h_prev, wx, wh, b)
    hd = h_prev.shape[1]
    c = f * c_prev + i * g
    tc = np.tanh(c)
    dh, dc = dout[:, :hd], dout[:, hd:]
    if bug != "missing_cell_path":
        dc = dc + dh * o * (1 - tc * tc)  # c also reaches the output through h = o tanh(c)
    di, df, do, dg = dc * g, dc * (c if bug == "forget_uses_c_next" else c_prev), dh * tc, dc * i
    if bug == "derivative_from_input":
        ai, af, ao = a[:, :hd], a[:, hd : 2 * hd], a[:, 2 * hd : 3 * hd]
        da = np.concatenate(
            [di * ai * (1 - ai), df * af * (1 - af), do * ao * (1 - ao), dg * (1 - g * g)], axis=1
        )
    else:
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g * g)], axis=1)
    return da @ wx.T, da @ wh.T, dc * f, x.T @ da, h_prev.T @ da, np.sum(da, axis=0)


def lstm_step_backward(
    dout: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    wx: np.ndarray,
    wh: np.ndarray,
    b: np.ndarray,
) -> Grads:
    """Backward through h = o tanh(c), c = f c_prev + i g and the four gate nonlinearities."""
    return _lstm_backward(dout, x, h_prev, c_prev, wx, wh, b)


def _lstm_missing_cell_path(
    dout: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    wx: np.ndarray,
    wh: np.ndarray,
    b: np.ndarray,
) -> Grads:
    return _lstm_backward(dout, x, h_prev, c_prev, wx, wh, b, bug="missing_cell_path")


def _lstm_from_input(
    dout: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    wx: np.ndarray,
    wh: np.ndarray,
    b: np.ndarray,
) -> Grads:
    return _lstm_backward(dout, x, h_prev, c_prev, wx, wh, b, bug="derivative_from_input")


def _lstm_forget_uses_c_next(
    dout: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    wx: np.ndarray,
    wh: np.ndarray,
    b: np.ndarray,
) -> Grads:
    return _lstm_backward(dout, x, h_prev, c_prev, wx, wh, b, bug="forget_uses_c_next")


def _lstm_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (3, 4), dtype),
        "h_prev": randn(rng, (3, 3), dtype, scale=0.5),
        "c_prev": randn(rng, (3, 3), dtype),
        "wx": randn(rng, (4, 12), dtype, scale=0.5),
        "wh": randn(rng, (3, 12), dtype, scale=0.5),
        "b": randn(rng, (12,), dtype, scale=0.3),
    }


LSTM_STEP = Layer(
    name="lstm_step",
    family="recurrent",
    forward=lstm_step_forward,
    backward=lstm_step_backward,
    make_inputs=_lstm_inputs,
    bugs=(
        Bug(
            "missing_cell_path",
            _lstm_missing_cell_path,
            "gross",
            "Forgets that c also reaches the output through h = o * tanh(c).",
        ),
        Bug(
            "derivative_from_input",
            _lstm_from_input,
            "gross",
            "Computes the sigmoid derivatives from the pre-activations (a * (1 - a)) instead of the gates.",
        ),
        Bug(
            "forget_uses_c_next",
            _lstm_forget_uses_c_next,
            "gross",
            "Multiplies the forget-gate gradient by the new cell state instead of c_prev.",
        ),
    ),
)


# --- GRU step -------------------------------------------------------------------------------------


def _gru_parts(
    x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    hd = h_prev.shape[1]
    ax = x @ wx + b
    ah = h_prev @ wh
    r = sigmoid(ax[:, :hd] + ah[:, :hd])
    z = sigmoid(ax[:, hd : 2 * hd] + ah[:, hd : 2 * hd])
    hn = ah[:, 2 * hd :]
    n = np.tanh(ax[:, 2 * hd :] + r * hn)
    return r, z, n, hn


def gru_step_forward(
    x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """GRU step (PyTorch convention): n = tanh(x Wn + b_n + r * (h Wh_n)), h = (1 - z) n + z h_prev."""
    _, z, n, _ = _gru_parts(x, h_prev, wx, wh, b)
    return (1 - z) * n + z * h_prev


def _gru_backward(
    dout: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
    wx: np.ndarray,
    wh: np.ndarray,
    b: np.ndarray,
    bug: str | None = None,
) -> Grads:
    r, z, n, hn = _gru_parts(x, h_prev, wx, wh, b)
    dn = dout * (1 - z)
    dz = dout * ((n - h_prev) if bug == "wrong_sign" else (h_prev - n))
    dan = dn * (1 - n * n)
    dr = dan * hn
    dhn = dan if bug == "reset_gate_not_applied" else dan * r
    dar = dr * r * (1 - r)
    daz = dz * z * (1 - z)
    dax = np.concatenate([dar, daz, dan], axis=1)
    dah = np.concatenate([dar, daz, dhn], axis=1)
    dh_prev = dah @ wh.T
    if bug != "missing_direct_path":
        dh_prev = dh_prev + dout * z
    return dax @ wx.T, dh_prev, x.T @ dax, h_prev.T @ dah, np.sum(dax, axis=0)


def gru_step_backward(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    """Backward through the interpolation, the candidate n and the reset/update gates."""
    return _gru_backward(dout, x, h_prev, wx, wh, b)


def _gru_missing_direct(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    return _gru_backward(dout, x, h_prev, wx, wh, b, bug="missing_direct_path")


def _gru_wrong_sign(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    return _gru_backward(dout, x, h_prev, wx, wh, b, bug="wrong_sign")


def _gru_reset_not_applied(
    dout: np.ndarray, x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> Grads:
    return _gru_backward(dout, x, h_prev, wx, wh, b, bug="reset_gate_not_applied")


def _gru_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (3, 4), dtype),
        "h_prev": randn(rng, (3, 3), dtype, scale=0.7),
        "wx": randn(rng, (4, 9), dtype, scale=0.5),
        "wh": randn(rng, (3, 9), dtype, scale=0.5),
        "b": randn(rng, (9,), dtype, scale=0.3),
    }


GRU_STEP = Layer(
    name="gru_step",
    family="recurrent",
    forward=gru_step_forward,
    backward=gru_step_backward,
    make_inputs=_gru_inputs,
    bugs=(
        Bug(
            "missing_direct_path",
            _gru_missing_direct,
            "gross",
            "Forgets the direct path h = ... + z * h_prev when computing dh_prev.",
        ),
        Bug(
            "wrong_sign",
            _gru_wrong_sign,
            "gross",
            "Uses dz = dout * (n - h_prev): the update-gate sign is flipped.",
        ),
        Bug(
            "reset_gate_not_applied",
            _gru_reset_not_applied,
            "gross",
            "Backpropagates into h_prev @ wh_n without multiplying by the reset gate r.",
        ),
    ),
)

LAYERS: tuple[Layer, ...] = (RNN_STEP, RNN_RELU_STEP, LSTM_STEP, GRU_STEP)
