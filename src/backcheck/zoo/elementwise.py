"""Elementwise operations: exp, log, sqrt, pow, divide, maximum, abs and where."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import away_from_zero, randn, uniform
from backcheck.zoo._registry import Bug, Grads, Layer, one_wrong_element, scale_bug

# --- exp ------------------------------------------------------------------------------------------


def exp_forward(x: np.ndarray) -> np.ndarray:
    """exp(x)."""
    return np.exp(x)


def exp_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """dout * exp(x): the derivative is the output itself."""
    return (dout * np.exp(x),)


def _exp_from_input(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * x,)


def _exp_inplace(dout: np.ndarray, x: np.ndarray) -> Grads:
    np.exp(x, out=x)  # reuses the input buffer for the output ...
    return (dout * np.exp(x),)  # ... and then applies exp a second time


def _exp_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": randn(rng, (4, 5), dtype)}


EXP = Layer(
    name="exp",
    family="elementwise",
    forward=exp_forward,
    backward=exp_backward,
    make_inputs=_exp_inputs,
    bugs=(
        Bug("derivative_from_input", _exp_from_input, "gross", "Multiplies dout by x instead of exp(x)."),
        Bug(
            "inplace_exp",
            _exp_inplace,
            "gross",
            "Computes exp into x's own buffer (mutating the caller's x) and then takes exp of that again.",
            mutates=True,
        ),
        scale_bug(exp_backward, 5),
    ),
)


# --- log ------------------------------------------------------------------------------------------


def log_forward(x: np.ndarray) -> np.ndarray:
    """log(x) for x > 0."""
    return np.log(x)


def log_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """dout / x."""
    return (dout / x,)


def _log_multiplied(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * x,)


def _positive_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": uniform(rng, (4, 5), dtype, 0.5, 2.0)}


LOG = Layer(
    name="log",
    family="elementwise",
    forward=log_forward,
    backward=log_backward,
    make_inputs=_positive_inputs,
    bugs=(
        Bug(
            "multiplied_not_divided",
            _log_multiplied,
            "gross",
            "Multiplies dout by x instead of dividing by it.",
        ),
        scale_bug(log_backward, 3),
    ),
)


# --- sqrt -----------------------------------------------------------------------------------------


def sqrt_forward(x: np.ndarray) -> np.ndarray:
    """sqrt(x) for x > 0."""
    return np.sqrt(x)


def sqrt_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """dout / (2 sqrt(x))."""
    return (dout * 0.5 / np.sqrt(x),)


def _sqrt_missing_half(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout / np.sqrt(x),)


def _sqrt_inverted(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout * 0.5 * np.sqrt(x),)


SQRT = Layer(
    name="sqrt",
    family="elementwise",
    forward=sqrt_forward,
    backward=sqrt_backward,
    make_inputs=_positive_inputs,
    bugs=(
        Bug("missing_half", _sqrt_missing_half, "gross", "Forgets the 1/2 of d sqrt(x) = 1 / (2 sqrt(x))."),
        Bug("inverted_derivative", _sqrt_inverted, "gross", "Multiplies by sqrt(x) / 2 instead of dividing."),
    ),
)


# --- pow ------------------------------------------------------------------------------------------


def pow_forward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y elementwise, with x > 0 and y a differentiable exponent."""
    return np.power(x, y)


def pow_backward(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> Grads:
    """dx = y x^(y-1), dy = x^y log x."""
    return dout * y * np.power(x, y - 1), dout * np.power(x, y) * np.log(x)


def _pow_off_by_one(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> Grads:
    return dout * y * np.power(x, y), dout * np.power(x, y) * np.log(x)


def _pow_missing_log(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> Grads:
    return dout * y * np.power(x, y - 1), dout * np.power(x, y)


def _pow_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": uniform(rng, (3, 4), dtype, 0.5, 2.0), "y": uniform(rng, (3, 4), dtype, -1.5, 2.5)}


POW = Layer(
    name="pow",
    family="elementwise",
    forward=pow_forward,
    backward=pow_backward,
    make_inputs=_pow_inputs,
    bugs=(
        Bug("power_rule_off_by_one", _pow_off_by_one, "gross", "Writes y x^y instead of y x^(y - 1)."),
        Bug(
            "missing_log",
            _pow_missing_log,
            "gross",
            "Differentiates x^y in y as x^y, forgetting the log x factor.",
        ),
    ),
)


# --- divide ---------------------------------------------------------------------------------------


def divide_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b."""
    return a / b


def divide_backward(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    """da = dout / b, db = -dout a / b^2."""
    return dout / b, -dout * a / (b * b)


def _divide_wrong_sign(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    return dout / b, dout * a / (b * b)


def _divide_missing_square(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    return dout / b, -dout * a / b


def _divide_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    b = away_from_zero(rng, (3, 4), np.float64, margin=0.5)
    return {"a": randn(rng, (3, 4), dtype), "b": np.clip(b, -2.0, 2.0).astype(dtype)}


DIVIDE = Layer(
    name="divide",
    family="elementwise",
    forward=divide_forward,
    backward=divide_backward,
    make_inputs=_divide_inputs,
    bugs=(
        Bug(
            "wrong_sign", _divide_wrong_sign, "gross", "db = +dout a / b^2: the minus sign of d(1/b) is lost."
        ),
        Bug("missing_square", _divide_missing_square, "gross", "db = -dout a / b instead of -dout a / b^2."),
        one_wrong_element(divide_backward, which=1),
    ),
)


# --- maximum --------------------------------------------------------------------------------------


def maximum_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise max(a, b)."""
    return np.maximum(a, b)


def maximum_backward(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    """The larger operand gets dout; at a tie, a gets it (a valid subgradient)."""
    take_a = a >= b
    return dout * take_a, dout * ~take_a


def _maximum_b_unmasked(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    return dout * (a >= b), dout.copy()


def _maximum_swapped(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    take_a = a >= b
    return dout * ~take_a, dout * take_a


def _maximum_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    a = rng.standard_normal((4, 5))
    b = a + away_from_zero(rng, (4, 5), np.float64, margin=0.05)
    return {"a": a.astype(dtype), "b": b.astype(dtype)}


def _maximum_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _maximum_inputs(rng, dtype)
    inputs["b"].reshape(-1)[::3] = inputs["a"].reshape(-1)[::3]
    return inputs


MAXIMUM = Layer(
    name="maximum",
    family="elementwise",
    forward=maximum_forward,
    backward=maximum_backward,
    make_inputs=_maximum_inputs,
    kinks=_maximum_kinks,
    bugs=(
        Bug(
            "b_unmasked",
            _maximum_b_unmasked,
            "gross",
            "Masks the gradient of a but passes dout to b everywhere.",
        ),
        Bug("swapped_masks", _maximum_swapped, "gross", "The smaller operand receives the gradient."),
    ),
)


# --- abs ------------------------------------------------------------------------------------------


def abs_forward(x: np.ndarray) -> np.ndarray:
    """|x|."""
    return np.abs(x)


def abs_backward(dout: np.ndarray, x: np.ndarray) -> Grads:
    """dout * sign(x) (subgradient 0 at x == 0)."""
    return (dout * np.sign(x),)


def _abs_missing_sign(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (dout.copy(),)


def _abs_wrong_sign(dout: np.ndarray, x: np.ndarray) -> Grads:
    return (-dout * np.sign(x),)


def _abs_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"x": away_from_zero(rng, (4, 5), dtype)}


def _abs_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    x = randn(rng, (4, 5), dtype)
    x.reshape(-1)[::4] = 0
    return {"x": x}


ABS = Layer(
    name="abs",
    family="elementwise",
    forward=abs_forward,
    backward=abs_backward,
    make_inputs=_abs_inputs,
    kinks=_abs_kinks,
    bugs=(
        Bug("missing_sign", _abs_missing_sign, "gross", "Returns dout unchanged, as if |x| were x."),
        Bug("wrong_sign", _abs_wrong_sign, "gross", "Returns -dout * sign(x)."),
    ),
)


# --- where ----------------------------------------------------------------------------------------


def where_forward(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """where(cond, a, b) with a boolean (non-differentiable) condition."""
    return np.where(cond, a, b)


def where_backward(dout: np.ndarray, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    """a receives dout where cond holds, b elsewhere; cond gets None."""
    return None, np.where(cond, dout, 0), np.where(cond, 0, dout)


def _where_inverted(dout: np.ndarray, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    return None, np.where(cond, 0, dout), np.where(cond, dout, 0)


def _where_both(dout: np.ndarray, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    return None, dout.copy(), dout.copy()


def _where_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    cond = rng.random((4, 5)) < 0.5
    cond[0, :2] = (True, False)
    return {"cond": cond, "a": randn(rng, (4, 5), dtype), "b": randn(rng, (4, 5), dtype)}


WHERE = Layer(
    name="where",
    family="elementwise",
    forward=where_forward,
    backward=where_backward,
    make_inputs=_where_inputs,
    bugs=(
        Bug(
            "mask_inverted",
            _where_inverted,
            "gross",
            "Routes the gradient to the branch that was not selected.",
        ),
        Bug("both_branches", _where_both, "gross", "Both branches receive the full gradient."),
    ),
)

LAYERS: tuple[Layer, ...] = (EXP, LOG, SQRT, POW, DIVIDE, MAXIMUM, ABS, WHERE)
