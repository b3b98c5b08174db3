"""Layers whose forward jumps: a step, a sign, a quantizer, atan2 across its branch cut and at the origin, and
a nearest-codeword projection at a tie.

Away from the jumps each is differentiable, so a correct backward passes there and a wrong one fails
(``make_inputs`` keeps every element well away from the jumps). At a jump (``jumps``) no derivative exists: a
check must say inconclusive there whatever the backward claims, never pass (a bound as large as the jump lets
any claim through) and never fail on the claimed value. The bugs are the rules people write for these
functions: straight-through estimators (the identity for a function whose derivative is 0), a derivative that
forgets a sign, atan2's partial derivatives swapped.

Kept out of ``LAYERS`` (whose kinks are continuous) in ``JUMP_LAYERS``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import away_from_zero, distinct
from backcheck.zoo._registry import Bug, Grads, Layer

# --- a step plus a smooth part --------------------------------------------------------------------


def step_forward(x: np.ndarray) -> np.ndarray:
    """(x > 0) + 0.5 x^2: a unit step at 0 on a smooth background."""
    return (x > 0).astype(x.dtype) + 0.5 * x * x


def step_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """The step's derivative is 0 away from 0: dout * x."""
    return (dout * x,)


def _step_straight_through(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * (x + 1),)


def _step_sigmoid_surrogate(dout: np.ndarray, x: np.ndarray) -> Grads:
    s = 1 / (1 + np.exp(-x / 0.5))
    return (dout * (x + s * (1 - s) / 0.5),)


def _step_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": away_from_zero(rng, (3, 4), dtype, margin=0.2)}


def _step_jumps(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = away_from_zero(rng, (3, 4), dtype, margin=0.2)
    x[0, 1] = x[2, 2] = 0.0
    return {"x": x}


STEP = Layer(
    name="step",
    family="elementwise",
    forward=step_forward,
    backward=step_backward,
    make_inputs=_step_inputs,
    jumps=_step_jumps,
    bugs=(
        Bug("straight_through", _step_straight_through, "gross",
            "Differentiates the step as the identity (a straight-through estimator): 1 too much everywhere.",
            size=1.4),
        Bug("sigmoid_surrogate", _step_sigmoid_surrogate, "gross",
            "Uses the derivative of a sigmoid of temperature 0.5 as the step's (a surrogate gradient).", size=0.67),
    ),
)


# --- sign(x) (1 + x^2) ----------------------------------------------------------------------------


def sign_forward(x: np.ndarray) -> np.ndarray:
    """sign(x) (1 + x^2): jumps by 2 at 0."""
    return np.sign(x) * (1 + x * x)


def sign_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """sign(x) 2 x = 2 |x| away from 0."""
    return (dout * 2 * np.abs(x),)


def _sign_forgot_sign(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * 2 * x,)


def _sign_straight_through(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * (2 * np.abs(x) + 1),)


def _sign_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": away_from_zero(rng, (3, 4), dtype, margin=0.2)}


def _sign_jumps(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = away_from_zero(rng, (3, 4), dtype, margin=0.2)
    x[1, 3] = 0.0
    return {"x": x}


SIGN = Layer(
    name="sign",
    family="elementwise",
    forward=sign_forward,
    backward=sign_backward,
    make_inputs=_sign_inputs,
    jumps=_sign_jumps,
    bugs=(
        Bug("sign_forgotten", _sign_forgot_sign, "gross",
            "Differentiates 1 + x^2 and forgets the sign in front: wrong for every negative x.", size=1.95),
        Bug("straight_through", _sign_straight_through, "gross",
            "Adds the identity for sign(x) (a straight-through estimator).", size=0.7),
    ),
)


# --- a quantizer: floor(x / s) s + x^3 / 3 --------------------------------------------------------

QUANTUM = 0.25


def quantize_forward(x: np.ndarray) -> np.ndarray:
    """floor(x / 0.25) 0.25 + x^3 / 3: a staircase (jumps at multiples of 0.25) on a smooth background."""
    return np.floor(x / QUANTUM) * QUANTUM + x**3 / 3


def quantize_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """The staircase's derivative is 0 between its steps: dout * x^2."""
    return (dout * x * x,)


def _quantize_straight_through(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * (x * x + 1),)


def _quantize_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    steps = rng.integers(-6, 6, (3, 4))
    return {"x": ((steps + rng.uniform(0.3, 0.7, (3, 4))) * QUANTUM).astype(dtype)}  # mid-step


def _quantize_jumps(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = _quantize_inputs(rng, dtype)["x"]
    x[0, 0], x[2, 3] = 0.5, -0.75  # exactly on a step
    return {"x": x}


QUANTIZE = Layer(
    name="quantize",
    family="elementwise",
    forward=quantize_forward,
    backward=quantize_backward,
    make_inputs=_quantize_inputs,
    jumps=_quantize_jumps,
    bugs=(
        Bug("straight_through", _quantize_straight_through, "gross",
            "Passes the gradient straight through the rounding (quantization-aware training's estimator): "
            "1 too much everywhere.", size=0.78),
    ),
)


# --- atan2 ----------------------------------------------------------------------------------------


def atan2_forward(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """arctan2(y, x): jumps by 2 pi across the negative x axis; undefined limit at the origin."""
    return np.arctan2(y, x)


def _r2(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x^2 + y^2, with inf at the origin: the gradient there is taken as 0 (as frameworks do)."""
    r2 = x * x + y * y
    return np.where(r2 > 0, r2, np.inf)


def atan2_backward(dout: np.ndarray, y: np.ndarray, x: np.ndarray) -> Grads:
    """d/dy = x / r^2, d/dx = -y / r^2 (0 at the origin)."""
    r2 = _r2(y, x)
    return dout * x / r2, -dout * y / r2


def _atan2_swapped(dout: np.ndarray, y: np.ndarray, x: np.ndarray) -> Grads:
    r2 = _r2(y, x)
    return -dout * y / r2, dout * x / r2


def _atan2_as_atan(dout: np.ndarray, y: np.ndarray, x: np.ndarray) -> Grads:
    # the derivative of arctan(y / x) written as 1 / (1 + (y/x)^2) times d(y/x), with d(y/x)/dx's sign lost
    r2 = _r2(y, x)
    return dout * x / r2, dout * y / r2


def _atan2_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    angle = rng.uniform(-2.8, 2.8, (2, 4))  # away from the cut at +-pi
    radius = rng.uniform(0.5, 2.0, (2, 4))
    return {"y": (radius * np.sin(angle)).astype(dtype), "x": (radius * np.cos(angle)).astype(dtype)}


def _atan2_jumps(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _atan2_inputs(rng, dtype)
    inputs["y"][0, 0], inputs["x"][0, 0] = 0.0, -1.0  # on the branch cut
    inputs["y"][1, 2], inputs["x"][1, 2] = 0.0, 0.0  # the origin
    return inputs


ATAN2 = Layer(
    name="atan2",
    family="elementwise",
    forward=atan2_forward,
    backward=atan2_backward,
    make_inputs=_atan2_inputs,
    jumps=_atan2_jumps,
    bugs=(
        Bug("partials_swapped", _atan2_swapped, "gross",
            "Returns (-y / r^2, x / r^2): the two partial derivatives swapped.", size=1.5),
        Bug("sign_of_dx", _atan2_as_atan, "gross",
            "Gets d/dx as +y / r^2 (a sign lost in d(y/x)/dx).", size=2.0),
    ),
)


# --- nearest codeword (vector quantization) -------------------------------------------------------


def _nearest(z: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    dist = np.sum((z[:, None, :] - codebook[None, :, :]) ** 2, axis=-1)
    return np.argmin(dist, axis=-1)


def vq_forward(z: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Each row of z (N, D) replaced by its nearest codeword (K, D): jumps where two codewords tie."""
    return codebook[_nearest(z, codebook)]


def _vq_grad(dout: np.ndarray, z: np.ndarray, codebook: np.ndarray, straight: bool, mean: bool) -> Grads:
    k = _nearest(z, codebook)
    dc = np.zeros_like(codebook)
    np.add.at(dc, k, dout)
    if mean:
        counts = np.bincount(k, minlength=codebook.shape[0]).astype(codebook.dtype)
        dc = dc / np.maximum(counts, 1)[:, None]
    return (dout.copy() if straight else np.zeros_like(z)), dc


def vq_backward(dout: np.ndarray, z: np.ndarray, codebook: np.ndarray) -> Grads:
    """dz = 0 (piecewise constant in z); each codeword gets the sum of the gradients of the rows it replaced."""
    return _vq_grad(dout, z, codebook, straight=False, mean=False)


def _vq_straight_through(dout: np.ndarray, z: np.ndarray, codebook: np.ndarray) -> Grads:
    return _vq_grad(dout, z, codebook, straight=True, mean=False)


def _vq_mean(dout: np.ndarray, z: np.ndarray, codebook: np.ndarray) -> Grads:
    return _vq_grad(dout, z, codebook, straight=False, mean=True)


def _vq_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    codebook = np.round(distinct(rng, (4, 2), np.float64, spacing=0.6) * 256) / 256  # a grid float16 holds
    pick = np.array([0, 1, 1, 2, 3, 3, 3])
    z = codebook[pick] + rng.uniform(-0.1, 0.1, (7, 2))  # well inside each codeword's cell
    return {"z": z.astype(dtype), "codebook": codebook.astype(dtype)}


def _vq_jumps(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _vq_inputs(rng, np.float64)
    c = inputs["codebook"]
    inputs["z"][0] = (c[0] + c[1]) / 2  # equidistant from codewords 0 and 1 (grid points: exact in every dtype)
    return {k: v.astype(dtype) for k, v in inputs.items()}


VQ = Layer(
    name="nearest_codeword",
    family="elementwise",
    forward=vq_forward,
    backward=vq_backward,
    make_inputs=_vq_inputs,
    jumps=_vq_jumps,
    bugs=(
        Bug("straight_through", _vq_straight_through, "gross",
            "Copies dout to z (VQ-VAE's straight-through estimator): the projection's derivative in z is 0 "
            "(an error of any size against a gradient of 0).", size=None),
        Bug("codeword_gradient_averaged", _vq_mean, "gross",
            "Averages each codeword's gradient over the rows it replaced instead of summing them.", size=0.5),
    ),
)

#: Layers whose forward jumps at ``jumps``: inconclusive there, ordinary verdicts at ``make_inputs``.
LAYERS: tuple[Layer, ...] = (STEP, SIGN, QUANTIZE, ATAN2, VQ)
