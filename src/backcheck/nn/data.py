"""Data: scikit-learn's bundled 8x8 digits (no download) and a mini-batch iterator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.nn.errors import ShapeError
from backcheck.nn.validate import integer, number

__all__ = ["Digits", "load_digits", "batches", "random_shift"]


@dataclass
class Digits:
    """A train/test split of images and integer labels.

    Attributes
    ----------
    X_train, X_test : numpy.ndarray, shape (N, 1, 8, 8), float32
    y_train, y_test : numpy.ndarray, shape (N,), int64
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.X_train, self.y_train, self.X_test, self.y_test))

    def subset(self, n_train: int, n_test: int | None = None) -> Digits:
        """The first ``n_train`` training (and ``n_test`` test) samples."""
        n_train = integer("Digits.subset", "n_train", n_train, minimum=0)
        n_test = len(self.X_test) if n_test is None else integer("Digits.subset", "n_test", n_test, minimum=0)
        return Digits(self.X_train[:n_train], self.y_train[:n_train], self.X_test[:n_test], self.y_test[:n_test])


def load_digits(test_fraction: float = 0.2, seed: int = 0, dtype: Any = np.float32) -> Digits:
    """scikit-learn's 1,797 handwritten digits as normalized images, split deterministically.

    Pixels (0..16) are scaled to [0, 1] and then standardized with the training set's mean and
    standard deviation (one scalar each).  The split is stratified by class, reproducible from
    ``seed``.

    Parameters
    ----------
    test_fraction : float
        Share of each class held out for testing.
    seed : int
        Seed of the split.
    dtype : numpy dtype
        Image dtype (float32 by default).

    Returns
    -------
    Digits
        Images of shape (N, 1, 8, 8) and int64 labels.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install backcheck[data]``).

    Examples
    --------
    >>> d = load_digits()
    >>> d.X_train.shape[1:], d.X_train.dtype, d.y_train.dtype
    ((1, 8, 8), dtype('float32'), dtype('int64'))
    """
    number("load_digits", "test_fraction", test_fraction, 0.0, 1.0, "[)")
    seed = integer("load_digits", "seed", seed, minimum=0)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_digits needs scikit-learn (it ships the digits data set); install the extra: "
            "pip install 'backcheck[data]'"
        ) from exc
    raw = _sk_load_digits()
    images = np.asarray(raw.images, dtype=np.float64) / 16.0
    labels = np.asarray(raw.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr = rng.permutation(np.concatenate(train_idx))
    te = rng.permutation(np.concatenate(test_idx))
    mean, std = images[tr].mean(), images[tr].std()
    x = ((images - mean) / std).astype(dtype)[:, None, :, :]
    return Digits(x[tr], labels[tr], x[te], labels[te])


def batches(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield mini-batches ``(X[idx], y[idx])``.

    Parameters
    ----------
    X : numpy.ndarray, shape (N, ...)
    y : numpy.ndarray, shape (N, ...)
    batch_size : int
    shuffle : bool
        Visit samples in a random order drawn from ``rng``.
    rng : numpy.random.Generator, optional
        Defaults to ``np.random.default_rng(0)`` (deterministic).
    drop_last : bool
        Skip a final incomplete batch.

    Examples
    --------
    >>> X, y = np.zeros((10, 2)), np.arange(10)
    >>> [len(yb) for _, yb in batches(X, y, 4)]
    [4, 4, 2]
    """
    n = len(X)
    if len(y) != n:
        raise ShapeError(f"batches: X has {n} samples but y has {len(y)}", "X and y need one row per sample")
    batch_size = integer("batches", "batch_size", batch_size, minimum=1)
    order = (rng if rng is not None else np.random.default_rng(0)).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield X[idx], y[idx]


def random_shift(X: np.ndarray, rng: np.random.Generator, max_shift: int = 1, fill: float | None = None) -> np.ndarray:
    """Shift every image by a random whole number of pixels (data augmentation).

    Parameters
    ----------
    X : numpy.ndarray, shape (N, C, H, W)
    rng : numpy.random.Generator
    max_shift : int
        Shifts are drawn uniformly from ``[-max_shift, max_shift]`` along H and W, per image.
    fill : float, optional
        Value of the pixels shifted in; defaults to the minimum of ``X`` (the background).

    Returns
    -------
    numpy.ndarray
        A new array of the same shape and dtype.

    Examples
    --------
    >>> X = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> random_shift(X, np.random.default_rng(0)).shape
    (1, 1, 4, 4)
    """
    if np.ndim(X) != 4:
        raise ShapeError(f"random_shift: X must be a batch of images (N, C, H, W), got shape {np.shape(X)}")
    n, _, h, w = X.shape
    m = integer("random_shift", "max_shift", max_shift, minimum=0)
    value = float(X.min()) if fill is None else fill
    padded = np.full((n, X.shape[1], h + 2 * m, w + 2 * m), value, dtype=X.dtype)
    padded[:, :, m : m + h, m : m + w] = X
    dy = np.asarray(rng.integers(0, 2 * m + 1, size=n))
    dx = np.asarray(rng.integers(0, 2 * m + 1, size=n))
    rows = (dy[:, None] + np.arange(h)[None, :])[:, None, :, None]
    cols = (dx[:, None] + np.arange(w)[None, :])[:, None, None, :]
    return padded[np.arange(n)[:, None, None, None], np.arange(X.shape[1])[None, :, None, None], rows, cols]
