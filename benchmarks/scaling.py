"""Checking at scale: seconds and evaluations of each strategy against torch.autograd.gradcheck, measured
in one run on the same two-layer MLP loss (tanh hidden layer, softmax cross-entropy over a batch of 1
examples by default), float64, one thread for numpy's and torch's BLAS alike.

    python benchmarks/scaling.py [--sizes 1e3 1e4 1e5 1e6] [--full-limit 2e4]

Prints one table and the ratios the targets are stated in:
- full mode against its lower bound 2N x (one evaluation of the plain Python loss);
- vectorized full mode against torch gradcheck's slow mode at N = 1e4;
- auto mode's overhead beyond its evaluations on a correct 1e6-parameter gradient.
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one BLAS thread, as torch below

import numpy as np  # noqa: E402 - the thread settings above must come first
import torch  # noqa: E402

import backcheck  # noqa: E402

CLASSES = 10
BATCH = 1  # examples in the loss; --batch changes it


def make(n_target: int, seed: int = 0):
    """A 2-layer MLP loss with about ``n_target`` parameters: numpy (plain and batched) and torch versions."""
    hidden = int((-11 + np.sqrt(121 + 4 * (n_target - CLASSES))) / 2)
    dim = hidden
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(BATCH, dim))
    y = rng.integers(0, CLASSES, size=BATCH)
    params = {
        "W1": rng.normal(size=(dim, hidden)) / np.sqrt(dim),
        "b1": np.zeros(hidden),
        "W2": rng.normal(size=(hidden, CLASSES)) / np.sqrt(hidden),
        "b2": np.zeros(CLASSES),
    }

    def loss(p):
        h = np.tanh(X @ p["W1"] + p["b1"])
        s = h @ p["W2"] + p["b2"]
        s = s - s.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(BATCH), y]))

    def loss_batched(p):  # every array with a leading batch axis B
        # (n, d) @ (B, d, h) -> (B, n, h): one matrix product per row, reading each row's W1 once
        h = np.tanh(np.matmul(X, p["W1"]) + p["b1"][:, None, :])
        s = np.matmul(h, p["W2"]) + p["b2"][:, None, :]
        s = s - s.max(axis=2, keepdims=True)
        return np.mean(np.log(np.exp(s).sum(axis=2)) - s[:, np.arange(BATCH), y], axis=1)

    def grad(p):
        z = X @ p["W1"] + p["b1"]
        h = np.tanh(z)
        s = h @ p["W2"] + p["b2"]
        e = np.exp(s - s.max(axis=1, keepdims=True))
        ds = e / e.sum(axis=1, keepdims=True)
        ds[np.arange(BATCH), y] -= 1
        ds /= BATCH
        dz = (ds @ p["W2"].T) * (1 - h**2)
        return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ ds, "b2": ds.sum(0)}

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def torch_loss(W1, b1, W2, b2):
        h = torch.tanh(Xt @ W1 + b1)
        return torch.nn.functional.cross_entropy(h @ W2 + b2, yt)

    n = sum(v.size for v in params.values())
    return n, params, loss, loss_batched, grad, torch_loss


def classic_loop(f, p, h=1e-5):
    """The classic elementwise check (perturb each element, central difference), as course notes write it."""
    out = {}
    for k, x in p.items():
        g = np.zeros_like(x)
        it = np.nditer(x, flags=["multi_index"])
        while not it.finished:
            i = it.multi_index
            old = x[i]
            x[i] = old + h
            fp = f(p)
            x[i] = old - h
            fm = f(p)
            x[i] = old
            g[i] = (fp - fm) / (2 * h)
            it.iternext()
        out[k] = g
    return out


def timed(fn, repeat=2):
    """The result and the best time of ``repeat`` runs (the first run also warms caches, for every method alike)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def measure_size(size: int, full_limit: float, ratios: dict) -> dict:
    """Every method on one problem size; returns the table row and adds to ``ratios``."""
    n, p, loss, loss_b, grad, tloss = make(size)
    one = timed(lambda: loss(p), repeat=20)[1]
    row: dict = {"N": n, "one eval (ms)": one * 1e3}
    r, s = timed(lambda: backcheck.check(loss, p, grad, strategy="auto"))
    row["auto"] = (s, r.n_evals, r.status)
    r, s = timed(lambda: backcheck.check(loss, p, grad, strategy="projected"))
    row["projected"] = (s, r.n_evals, r.status)
    r, s = timed(lambda: backcheck.check(loss, p, grad, strategy="sparse", samples=100))
    row["sparse(100)"] = (s, r.n_evals, r.status)
    if size >= 1e6:
        ratios["auto overhead beyond evaluations at 1e6 (s)"] = row["auto"][0] - row["auto"][1] * one
    if n <= full_limit:
        r, s = timed(lambda: backcheck.check(loss, p, grad, strategy="full"))
        row["full"] = (s, r.n_evals, r.status)
        ratios.setdefault("full / (2N x one eval)", []).append(s / (2 * n * one))
        r, s = timed(lambda: backcheck.check(loss_b, p, grad, strategy="full", vectorized=True))
        row["full vectorized"] = (s, r.n_evals, r.status)
        _, s = timed(lambda: classic_loop(loss, p))
        row["classic loop"] = (s, 2 * n, "-")
        tp = [torch.from_numpy(v.copy()).requires_grad_() for v in p.values()]
        ok, s = timed(lambda: torch.autograd.gradcheck(tloss, tp, raise_exception=False))
        row["torch gradcheck"] = (s, 2 * n, "pass" if ok else "fail")
        ok, s = timed(lambda: torch.autograd.gradcheck(tloss, tp, fast_mode=True, raise_exception=False))
        row["torch gradcheck fast"] = (s, None, "pass" if ok else "fail")
        if abs(n - 1e4) / 1e4 < 0.3:
            ratios["torch gradcheck slow / backcheck full vectorized at 1e4"] = (
                row["torch gradcheck"][0] / row["full vectorized"][0]
            )
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e3, 1e4, 1e5, 1e6])
    ap.add_argument("--full-limit", type=float, default=2e4, help="largest N for elementwise methods")
    ap.add_argument("--batch", type=int, default=BATCH, help="examples in the MLP loss")
    args = ap.parse_args()
    globals()["BATCH"] = args.batch
    print(f"2-layer MLP loss, {args.batch} example(s), float64, 1 BLAS thread")
    torch.set_num_threads(1)
    rows = []
    ratios: dict = {}
    for size in args.sizes:
        row = measure_size(int(size), args.full_limit, ratios)
        rows.append(row)
        print(
            f"N={row['N']}: "
            + ", ".join(
                f"{k} {v[0]:.3g}s/{v[1]} evals" if isinstance(v, tuple) else f"{k} {v:.3g}"
                for k, v in row.items()
                if k != "N"
            ),
            flush=True,
        )
    methods = [
        "full",
        "full vectorized",
        "sparse(100)",
        "projected",
        "auto",
        "classic loop",
        "torch gradcheck",
        "torch gradcheck fast",
    ]
    print("\n| N | one eval | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for row in rows:
        cells = []
        for m in methods:
            v = row.get(m)
            cells.append("-" if v is None else f"{v[0]:.3g} s ({v[1]} ev)" if v[1] else f"{v[0]:.3g} s")
        print(f"| {row['N']} | {row['one eval (ms)']:.3g} ms | " + " | ".join(cells) + " |")
    print()
    for k, v in ratios.items():
        if isinstance(v, list):
            print(f"{k}: " + ", ".join(f"{x:.2f}" for x in v) + "  (target <= 1.3)")
        elif "torch" in k:
            print(f"{k}: {v:.1f}x  (target >= 10)")
        else:
            print(f"{k}: {v:.3f}  (target < 1 s)")


if __name__ == "__main__":
    main()
