"""Linear layers: affine (CS231n style), bilinear, embedding lookup, a small relu MLP and maxout."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from backcheck.zoo._common import randn, resample
from backcheck.zoo._registry import Bug, Grads, Layer, scale_bug

# --- affine ---------------------------------------------------------------------------------------


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x of shape (N, d1, d2) is flattened to (N, D), then x @ w + b."""
    return x.reshape(x.shape[0], -1) @ w + b


def affine_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    """dx = dout w^T (reshaped back), dw = x^T dout, db = sum of dout over the batch."""
    x2 = x.reshape(x.shape[0], -1)
    return (dout @ w.T).reshape(x.shape), x2.T @ dout, np.sum(dout, axis=0)


def _affine_missing_transpose(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    x2 = x.reshape(x.shape[0], -1)
    return (dout @ w).reshape(x.shape), x2.T @ dout, np.sum(dout, axis=0)


def _affine_bias_not_summed(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    x2 = x.reshape(x.shape[0], -1)
    return (dout @ w.T).reshape(x.shape), x2.T @ dout, np.sum(dout, axis=1)


def _affine_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    # N == D == M == 6: square shapes let transpose and axis mistakes run silently, as they do in practice.
    return {"x": randn(rng, (6, 2, 3), dtype), "w": randn(rng, (6, 6), dtype), "b": randn(rng, (6,), dtype)}


AFFINE = Layer(
    name="affine",
    family="linear",
    forward=affine_forward,
    backward=affine_backward,
    make_inputs=_affine_inputs,
    bugs=(
        Bug(
            "missing_transpose",
            _affine_missing_transpose,
            "gross",
            "dx = dout @ w instead of dout @ w.T (runs silently because w is square).",
        ),
        Bug(
            "bias_not_summed",
            _affine_bias_not_summed,
            "gross",
            "db sums dout over the output axis instead of over the batch (same length, so no shape error).",
        ),
        scale_bug(affine_backward, 5),
    ),
)


# --- bilinear -------------------------------------------------------------------------------------


def bilinear_forward(x1: np.ndarray, x2: np.ndarray, w: np.ndarray) -> np.ndarray:
    """out[n, k] = x1[n] @ w[k] @ x2[n]."""
    return np.einsum("ni,kij,nj->nk", x1, w, x2)


def bilinear_backward(dout: np.ndarray, x1: np.ndarray, x2: np.ndarray, w: np.ndarray) -> Grads:
    """Each input's gradient contracts dout with the other two factors."""
    dx1 = np.einsum("nk,kij,nj->ni", dout, w, x2)
    dx2 = np.einsum("nk,kij,ni->nj", dout, w, x1)
    dw = np.einsum("nk,ni,nj->kij", dout, x1, x2)
    return dx1, dx2, dw


def _bilinear_missing_transpose(dout: np.ndarray, x1: np.ndarray, x2: np.ndarray, w: np.ndarray) -> Grads:
    dx1, _, dw = bilinear_backward(dout, x1, x2, w)
    return dx1, np.einsum("nk,kji,ni->nj", dout, w, x1), dw


def _bilinear_swapped_inputs(dout: np.ndarray, x1: np.ndarray, x2: np.ndarray, w: np.ndarray) -> Grads:
    _, dx2, dw = bilinear_backward(dout, x1, x2, w)
    return np.einsum("nk,kij,nj->ni", dout, w, x1), dx2, dw


def _bilinear_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x1": randn(rng, (4, 3), dtype),
        "x2": randn(rng, (4, 3), dtype),
        "w": randn(rng, (2, 3, 3), dtype),
    }


BILINEAR = Layer(
    name="bilinear",
    family="linear",
    forward=bilinear_forward,
    backward=bilinear_backward,
    make_inputs=_bilinear_inputs,
    bugs=(
        Bug(
            "missing_transpose",
            _bilinear_missing_transpose,
            "gross",
            "dx2 contracts x1 with w[k] instead of w[k].T.",
        ),
        Bug("swapped_inputs", _bilinear_swapped_inputs, "gross", "dx1 is computed from x1 where x2 belongs."),
    ),
)


# --- embedding ------------------------------------------------------------------------------------


def embedding_forward(ids: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row lookup w[ids]; ids (N, T) int64, w (V, D)."""
    return w[ids]


def embedding_backward(dout: np.ndarray, ids: np.ndarray, w: np.ndarray) -> Grads:
    """Scatter-add dout into the rows of w; repeated ids accumulate."""
    dw = np.zeros_like(w)
    np.add.at(dw, ids, dout)
    return None, dw


def _embedding_assign(dout: np.ndarray, ids: np.ndarray, w: np.ndarray) -> Grads:
    dw = np.zeros_like(w)
    dw[ids] = dout  # with repeated ids only the last write survives
    return None, dw


def _embedding_first_sequence(dout: np.ndarray, ids: np.ndarray, w: np.ndarray) -> Grads:
    dw = np.zeros_like(w)
    np.add.at(dw, ids[0], dout[0])
    return None, dw


def _embedding_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    ids = rng.integers(0, 5, (3, 4)).astype(np.int64)
    ids[1, 2] = ids[0, 0]  # make sure some ids repeat
    ids[2, 1] = ids[0, 0]
    return {"ids": ids, "w": randn(rng, (5, 3), dtype)}


EMBEDDING = Layer(
    name="embedding",
    family="linear",
    forward=embedding_forward,
    backward=embedding_backward,
    make_inputs=_embedding_inputs,
    bugs=(
        Bug(
            "assign_not_add",
            _embedding_assign,
            "gross",
            "dw[ids] = dout assigns instead of accumulating, so repeated ids lose all but one gradient.",
        ),
        Bug(
            "first_sequence_only",
            _embedding_first_sequence,
            "gross",
            "Scatters the gradient of the first sequence only, forgetting the batch loop.",
        ),
        scale_bug(embedding_backward, 5),
    ),
)


# --- two-layer relu MLP ---------------------------------------------------------------------------


def mlp_relu_forward(
    x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray
) -> np.ndarray:
    """relu(x @ w1 + b1) @ w2 + b2."""
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def _mlp_backward(
    dout: np.ndarray,
    x: np.ndarray,
    w1: np.ndarray,
    b1: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
    transpose: bool = True,
    mask: bool = True,
) -> Grads:
    z = x @ w1 + b1
    h = np.maximum(z, 0)
    dh = dout @ (w2.T if transpose else w2)
    dz = dh * (z > 0) if mask else dh
    return dz @ w1.T, x.T @ dz, np.sum(dz, axis=0), h.T @ dout, np.sum(dout, axis=0)


def mlp_relu_backward(
    dout: np.ndarray, x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray
) -> Grads:
    """Chain rule through both affine layers; the relu passes where z > 0."""
    return _mlp_backward(dout, x, w1, b1, w2, b2)


def _mlp_missing_transpose(
    dout: np.ndarray, x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray
) -> Grads:
    return _mlp_backward(dout, x, w1, b1, w2, b2, transpose=False)


def _mlp_missing_mask(
    dout: np.ndarray, x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray
) -> Grads:
    return _mlp_backward(dout, x, w1, b1, w2, b2, mask=False)


def _mlp_draw(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (5, 4), dtype),
        "w1": randn(rng, (4, 6), dtype, scale=0.7),
        "b1": randn(rng, (6,), dtype, scale=0.3),
        "w2": randn(rng, (6, 6), dtype, scale=0.7),
        "b2": randn(rng, (6,), dtype, scale=0.3),
    }


def _mlp_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    def ok(inp):
        z = inp["x"] @ inp["w1"] + inp["b1"]
        return bool(np.min(np.abs(z)) > 0.02 and np.mean(z > 0) > 0.25 and np.mean(z < 0) > 0.25)

    return resample(rng, lambda: _mlp_draw(rng, dtype), ok)


def _mlp_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _mlp_inputs(rng, dtype)
    inputs["x"][0] = 0  # row 0 of x @ w1 + b1 is then exactly b1 ...
    inputs["b1"][:3] = 0  # ... so three hidden units sit exactly at the relu kink
    return inputs


MLP_RELU = Layer(
    name="mlp_relu",
    family="linear",
    forward=mlp_relu_forward,
    backward=mlp_relu_backward,
    make_inputs=_mlp_inputs,
    kinks=_mlp_kinks,
    bugs=(
        Bug(
            "missing_transpose",
            _mlp_missing_transpose,
            "gross",
            "Backpropagates into the hidden layer with dout @ w2 instead of dout @ w2.T.",
        ),
        Bug(
            "missing_relu_mask",
            _mlp_missing_mask,
            "gross",
            "Forgets to multiply by the relu derivative between the two layers.",
        ),
        scale_bug(mlp_relu_backward, 3),
    ),
)


# --- maxout ---------------------------------------------------------------------------------------

MAXOUT_PIECES = 2


def _maxout_pre(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    z = x @ w + b
    return z.reshape(x.shape[0], -1, MAXOUT_PIECES)


def maxout_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Maximum over groups of MAXOUT_PIECES affine pieces: (x @ w + b) viewed as (N, M, pieces)."""
    return np.max(_maxout_pre(x, w, b), axis=-1)


def _maxout_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, route: str = "argmax"
) -> Grads:
    z = _maxout_pre(x, w, b)
    if route == "argmax":  # first maximal piece gets the gradient (a valid subgradient at ties)
        onehot = np.arange(MAXOUT_PIECES) == np.argmax(z, axis=-1)[..., None]
    elif route == "all":
        onehot = np.ones(z.shape, dtype=bool)
    else:
        onehot = np.arange(MAXOUT_PIECES) == np.zeros(z.shape[:-1], dtype=np.int64)[..., None]
    dz = (dout[..., None] * onehot).reshape(x.shape[0], -1)
    return dz @ w.T, x.T @ dz, np.sum(dz, axis=0)


def maxout_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    """Route dout to the maximal piece of each group, then backpropagate through the affine map."""
    return _maxout_backward(dout, x, w, b)


def _maxout_all_pieces(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _maxout_backward(dout, x, w, b, route="all")


def _maxout_first_piece(dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Grads:
    return _maxout_backward(dout, x, w, b, route="first")


def _maxout_draw(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "x": randn(rng, (4, 3), dtype),
        "w": randn(rng, (3, 6), dtype),
        "b": randn(rng, (6,), dtype, scale=0.5),
    }


def _maxout_inputs(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    def ok(inp):
        z = _maxout_pre(inp["x"], inp["w"], inp["b"])
        first = np.argmax(z, axis=-1) == 0
        return bool(np.min(np.abs(z[..., 0] - z[..., 1])) > 0.02 and 0.2 < np.mean(first) < 0.8)

    return resample(rng, lambda: _maxout_draw(rng, dtype), ok)


def _maxout_kinks(rng: np.random.Generator, dtype: DTypeLike) -> dict[str, np.ndarray]:
    inputs = _maxout_inputs(rng, dtype)
    inputs["x"][0] = 0  # row 0 of the pre-activations is exactly b ...
    inputs["b"][0] = inputs["b"][1] = 2.0  # ... and the two pieces of unit 0 tie at the maximum
    return inputs


MAXOUT = Layer(
    name="maxout",
    family="linear",
    forward=maxout_forward,
    backward=maxout_backward,
    make_inputs=_maxout_inputs,
    kinks=_maxout_kinks,
    bugs=(
        Bug(
            "gradient_to_all_pieces",
            _maxout_all_pieces,
            "gross",
            "Sends the gradient to every piece of the group instead of the maximal one.",
        ),
        Bug(
            "gradient_to_first_piece",
            _maxout_first_piece,
            "gross",
            "Always routes the gradient to the first piece, whichever piece was the maximum.",
        ),
    ),
)

LAYERS: tuple[Layer, ...] = (AFFINE, BILINEAR, EMBEDDING, MLP_RELU, MAXOUT)
