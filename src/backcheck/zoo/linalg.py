"""Linear algebra: (batched) matmul, trace, det, log|det|, inverse, solve, Cholesky and Frobenius norm."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn
from backcheck.zoo._registry import Bug, Grads, Layer, scale_bug


def _t(a: np.ndarray) -> np.ndarray:
    """Transpose the last two axes."""
    return np.swapaxes(a, -1, -2)


def _well_conditioned(rng: np.random.Generator, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """Random square matrices near 2 I (nonsymmetric, comfortably invertible, positive determinant)."""
    n = shape[-1]
    return (2.0 * np.eye(n) + 0.4 * rng.standard_normal(shape)).astype(dtype)


# --- matmul ---------------------------------------------------------------------------------------


def matmul_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b with a (3, 4) and b (4, 4)."""
    return a @ b


def matmul_backward(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    """da = dout b^T, db = a^T dout."""
    return dout @ b.T, a.T @ dout


def _matmul_missing_transpose(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    return dout @ b, a.T @ dout


def _matmul_transposed_weight_grad(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    return dout @ b.T, dout.T @ a


def _matmul_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"a": randn(rng, (3, 4), dtype), "b": randn(rng, (4, 4), dtype)}


MATMUL = Layer(
    name="matmul",
    family="linalg",
    forward=matmul_forward,
    backward=matmul_backward,
    make_inputs=_matmul_inputs,
    bugs=(
        Bug(
            "missing_transpose",
            _matmul_missing_transpose,
            "gross",
            "da = dout @ b instead of dout @ b.T (b is square).",
        ),
        Bug(
            "transposed_weight_grad",
            _matmul_transposed_weight_grad,
            "gross",
            "db = dout.T @ a, the transpose of the right answer a.T @ dout.",
        ),
        scale_bug(matmul_backward, 5),
    ),
)


# --- batched matmul -------------------------------------------------------------------------------


def batched_matmul_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched a @ b with a, b of shape (B, n, n)."""
    return a @ b


def batched_matmul_backward(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    """Transpose only the last two axes: da = dout b^T, db = a^T dout per batch element."""
    return dout @ _t(b), _t(a) @ dout


def _bmm_dot_t(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    return dout @ b.T, a.T @ dout  # .T reverses *all* axes, including the batch axis


def _bmm_batch_summed(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    db = np.sum(_t(a) @ dout, axis=0)
    return dout @ _t(b), np.broadcast_to(db, b.shape).copy()


def _bmm_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    # B == n: .T on a 3-d array then still has the right shape
    return {"a": randn(rng, (3, 3, 3), dtype), "b": randn(rng, (3, 3, 3), dtype)}


BATCHED_MATMUL = Layer(
    name="batched_matmul",
    family="linalg",
    forward=batched_matmul_forward,
    backward=batched_matmul_backward,
    make_inputs=_bmm_inputs,
    bugs=(
        Bug(
            "transpose_reverses_batch_axis",
            _bmm_dot_t,
            "gross",
            "Uses .T on 3-d arrays, which also moves the batch axis (silent when all sizes are equal).",
        ),
        Bug(
            "batch_summed",
            _bmm_batch_summed,
            "gross",
            "Treats b as shared across the batch: sums its gradient over the batch and broadcasts it.",
        ),
    ),
)


# --- trace ----------------------------------------------------------------------------------------


def trace_forward(a: np.ndarray) -> np.ndarray:
    """Trace of each matrix: (B, n, n) -> (B,)."""
    return np.trace(a, axis1=-2, axis2=-1)


def trace_backward(dout: np.ndarray, a: np.ndarray) -> Grads:
    """dout times the identity."""
    return (dout[:, None, None] * np.eye(a.shape[-1], dtype=a.dtype),)


def _trace_ones(dout: np.ndarray, a: np.ndarray) -> Grads:
    return (dout[:, None, None] * np.ones_like(a),)


def _trace_dout_summed(dout: np.ndarray, a: np.ndarray) -> Grads:
    return (np.sum(dout) * np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype), a.shape),)


def _trace_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"a": randn(rng, (3, 4, 4), dtype)}


TRACE = Layer(
    name="trace",
    family="linalg",
    forward=trace_forward,
    backward=trace_backward,
    make_inputs=_trace_inputs,
    bugs=(
        Bug(
            "ones_instead_of_identity",
            _trace_ones,
            "gross",
            "Returns dout times a matrix of ones instead of the identity.",
        ),
        Bug(
            "dout_summed_over_batch",
            _trace_dout_summed,
            "gross",
            "Uses sum(dout) for every matrix instead of each matrix's own dout.",
        ),
    ),
)


# --- determinant ----------------------------------------------------------------------------------


def det_forward(a: np.ndarray) -> np.ndarray:
    """Determinant of each matrix: (B, n, n) -> (B,)."""
    return np.linalg.det(a)


def det_backward(dout: np.ndarray, a: np.ndarray) -> Grads:
    """Jacobi's formula: d det(a) / da = det(a) inv(a)^T."""
    return ((dout * np.linalg.det(a))[:, None, None] * _t(np.linalg.inv(a)),)


def _det_missing_transpose(dout: np.ndarray, a: np.ndarray) -> Grads:
    return ((dout * np.linalg.det(a))[:, None, None] * np.linalg.inv(a),)


def _det_missing_det(dout: np.ndarray, a: np.ndarray) -> Grads:
    return (dout[:, None, None] * _t(np.linalg.inv(a)),)


def _square_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"a": _well_conditioned(rng, (3, 3, 3), dtype)}


DET = Layer(
    name="det",
    family="linalg",
    forward=det_forward,
    backward=det_backward,
    make_inputs=_square_inputs,
    bugs=(
        Bug("missing_transpose", _det_missing_transpose, "gross", "Uses inv(a) instead of inv(a)^T."),
        Bug(
            "missing_det_factor",
            _det_missing_det,
            "gross",
            "Returns the gradient of log det (inv(a)^T), forgetting the factor det(a).",
        ),
    ),
)


# --- log |det| ------------------------------------------------------------------------------------


def logdet_forward(a: np.ndarray) -> np.ndarray:
    """log |det(a)| of each matrix: (B, n, n) -> (B,)."""
    return np.linalg.slogdet(a)[1]


def logdet_backward(dout: np.ndarray, a: np.ndarray) -> Grads:
    """d log|det a| / da = inv(a)^T."""
    return (dout[:, None, None] * _t(np.linalg.inv(a)),)


def _logdet_missing_transpose(dout: np.ndarray, a: np.ndarray) -> Grads:
    return (dout[:, None, None] * np.linalg.inv(a),)


def _logdet_wrong_sign(dout: np.ndarray, a: np.ndarray) -> Grads:
    return (-dout[:, None, None] * _t(np.linalg.inv(a)),)


LOGDET = Layer(
    name="logdet",
    family="linalg",
    forward=logdet_forward,
    backward=logdet_backward,
    make_inputs=_square_inputs,
    bugs=(
        Bug("missing_transpose", _logdet_missing_transpose, "gross", "Uses inv(a) instead of inv(a)^T."),
        Bug(
            "wrong_sign",
            _logdet_wrong_sign,
            "gross",
            "Returns -inv(a)^T, mixing it up with the gradient of inv.",
        ),
        scale_bug(logdet_backward, 3),
    ),
)


# --- inverse --------------------------------------------------------------------------------------


def inverse_forward(a: np.ndarray) -> np.ndarray:
    """Matrix inverse of each matrix in a (B, n, n) batch."""
    return np.linalg.inv(a)


def inverse_backward(dout: np.ndarray, a: np.ndarray) -> Grads:
    """d inv(a) = -inv(a) da inv(a), so the gradient is -inv(a)^T dout inv(a)^T."""
    ai_t = _t(np.linalg.inv(a))
    return (-(ai_t @ dout @ ai_t),)


def _inverse_missing_transpose(dout: np.ndarray, a: np.ndarray) -> Grads:
    ai = np.linalg.inv(a)
    return (-(ai @ dout @ ai),)


def _inverse_wrong_sign(dout: np.ndarray, a: np.ndarray) -> Grads:
    ai_t = _t(np.linalg.inv(a))
    return (ai_t @ dout @ ai_t,)


def _inverse_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"a": _well_conditioned(rng, (2, 3, 3), dtype)}


INVERSE = Layer(
    name="inverse",
    family="linalg",
    forward=inverse_forward,
    backward=inverse_backward,
    make_inputs=_inverse_inputs,
    bugs=(
        Bug(
            "missing_transpose",
            _inverse_missing_transpose,
            "gross",
            "Uses -inv(a) dout inv(a), without transposes.",
        ),
        Bug(
            "wrong_sign",
            _inverse_wrong_sign,
            "gross",
            "Forgets the minus sign of d inv(a) = -inv(a) da inv(a).",
        ),
    ),
)


# --- solve ----------------------------------------------------------------------------------------


def solve_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x = solve(a, b) with a (4, 4) and b (4, 2)."""
    return np.linalg.solve(a, b)


def solve_backward(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    """db = solve(a^T, dout) and da = -db x^T."""
    x = np.linalg.solve(a, b)
    db = np.linalg.solve(a.T, dout)
    return -db @ x.T, db


def _solve_missing_transpose(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    x = np.linalg.solve(a, b)
    db = np.linalg.solve(a, dout)
    return -db @ x.T, db


def _solve_outer_reversed(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    x = np.linalg.solve(a, b)
    db = np.linalg.solve(a.T, dout)
    return -x @ db.T, db


def _solve_wrong_sign(dout: np.ndarray, a: np.ndarray, b: np.ndarray) -> Grads:
    x = np.linalg.solve(a, b)
    db = np.linalg.solve(a.T, dout)
    return db @ x.T, db


def _solve_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"a": _well_conditioned(rng, (4, 4), dtype), "b": randn(rng, (4, 2), dtype)}


SOLVE = Layer(
    name="solve",
    family="linalg",
    forward=solve_forward,
    backward=solve_backward,
    make_inputs=_solve_inputs,
    bugs=(
        Bug(
            "missing_transpose",
            _solve_missing_transpose,
            "gross",
            "db = solve(a, dout) instead of solve(a^T, dout).",
        ),
        Bug("outer_product_reversed", _solve_outer_reversed, "gross", "da = -x db^T instead of -db x^T."),
        Bug("wrong_sign", _solve_wrong_sign, "gross", "da = +db x^T: the minus sign is lost."),
    ),
)


# --- Cholesky -------------------------------------------------------------------------------------


def cholesky_forward(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of the symmetric part (a + a^T) / 2 (so every entry of a matters evenly)."""
    return np.linalg.cholesky(0.5 * (a + a.T))


def _cholesky_grad(
    dout: np.ndarray, a: np.ndarray, halve_diag: bool = True, symmetrize: bool = True, transpose: bool = True
) -> Grads:
    """For A = L L^T: with P = tril(L^T dL) and its diagonal halved, S = L^-T P L^-1, dA = (S + S^T) / 2."""
    lo = cholesky_forward(a)
    p = np.tril(lo.T @ np.tril(dout))
    if halve_diag:
        p[np.diag_indices_from(p)] *= 0.5
    if transpose:
        s = np.linalg.solve(lo.T, np.linalg.solve(lo.T, p).T).T  # L^-T P L^-1
    else:
        s = np.linalg.solve(lo, np.linalg.solve(lo, p).T).T  # L^-1 P L^-T
    return (0.5 * (s + s.T) if symmetrize else s,)


def cholesky_backward(dout: np.ndarray, a: np.ndarray) -> Grads:
    """Gradient of the Cholesky factor, symmetrized to match the symmetrizing forward."""
    return _cholesky_grad(dout, a)


def _cholesky_diag_not_halved(dout: np.ndarray, a: np.ndarray) -> Grads:
    return _cholesky_grad(dout, a, halve_diag=False)


def _cholesky_not_symmetrized(dout: np.ndarray, a: np.ndarray) -> Grads:
    return _cholesky_grad(dout, a, symmetrize=False)


def _cholesky_missing_transpose(dout: np.ndarray, a: np.ndarray) -> Grads:
    return _cholesky_grad(dout, a, transpose=False)


def _cholesky_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    m = rng.standard_normal((4, 4))
    return {"a": (m @ m.T / 4 + np.eye(4)).astype(dtype)}


CHOLESKY = Layer(
    name="cholesky",
    family="linalg",
    forward=cholesky_forward,
    backward=cholesky_backward,
    make_inputs=_cholesky_inputs,
    bugs=(
        Bug(
            "diag_not_halved",
            _cholesky_diag_not_halved,
            "gross",
            "Takes the lower triangle of L^T dL without halving its diagonal.",
        ),
        Bug(
            "not_symmetrized",
            _cholesky_not_symmetrized,
            "gross",
            "Returns L^-T P L^-1 without symmetrizing it, though only the symmetric part of a is used.",
        ),
        Bug(
            "missing_transpose",
            _cholesky_missing_transpose,
            "gross",
            "Computes L^-1 P L^-T instead of L^-T P L^-1.",
        ),
    ),
)


# --- Frobenius norm -------------------------------------------------------------------------------


def frobenius_norm_forward(a: np.ndarray) -> np.ndarray:
    """Frobenius norm of each matrix: (B, m, n) -> (B,)."""
    return np.sqrt(np.sum(a * a, axis=(1, 2)))


def frobenius_norm_backward(dout: np.ndarray, a: np.ndarray) -> Grads:
    """dout * a / ||a||; at a == 0 (the cone's tip) the subgradient 0 is returned."""
    norm = frobenius_norm_forward(a)
    safe = np.where(norm > 0, norm, 1)
    return ((dout / safe)[:, None, None] * a,)


def _frob_missing_division(dout: np.ndarray, a: np.ndarray) -> Grads:
    return (dout[:, None, None] * a,)


def _frob_squared_norm(dout: np.ndarray, a: np.ndarray) -> Grads:
    return (2 * dout[:, None, None] * a,)


def _frob_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {"a": randn(rng, (3, 2, 4), dtype)}


def _frob_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _frob_inputs(rng, dtype)
    inputs["a"][0] = 0
    return inputs


FROBENIUS_NORM = Layer(
    name="frobenius_norm",
    family="linalg",
    forward=frobenius_norm_forward,
    backward=frobenius_norm_backward,
    make_inputs=_frob_inputs,
    kinks=_frob_kinks,
    bugs=(
        Bug(
            "missing_division",
            _frob_missing_division,
            "gross",
            "Forgets to divide by the norm: returns dout * a.",
        ),
        Bug(
            "squared_norm_derivative",
            _frob_squared_norm,
            "gross",
            "Uses the derivative 2 a of the squared norm instead of a / ||a||.",
        ),
        scale_bug(frobenius_norm_backward, 5),
    ),
)

LAYERS: tuple[Layer, ...] = (
    MATMUL,
    BATCHED_MATMUL,
    TRACE,
    DET,
    LOGDET,
    INVERSE,
    SOLVE,
    CHOLESKY,
    FROBENIUS_NORM,
)
