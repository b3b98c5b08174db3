"""Time one training step (forward, backward, optimizer update) in backcheck.nn and in PyTorch.

Same models (MLP 64-256-256-10 at batch 128, SmallCNN at batch 64), same float32 dtype, same
optimizer settings, same thread count for numpy's BLAS and torch, measured in the same run: the
two engines are timed in alternating rounds (warm-up, then the median over repeats of the mean
time of a block of steps), and each engine's fastest round is reported, which keeps noise from
other processes on a shared machine out of the ratio as far as possible.

The glibc malloc tuning of :func:`backcheck.nn.perf.tune_malloc` is applied to the whole process
(so to torch as well); set BACKCHECK_NO_MALLOC_TUNING=1 to measure without it.

Run:  python benchmarks/engine.py [--rounds 5] [--repeats 8] [--block 10] [--optim sgd|adam|both]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np


def numpy_threads() -> int:
    """Threads numpy's BLAS uses (via threadpoolctl when available)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else (os.cpu_count() or 1)


def time_steps(step: Callable[[], None], warmup: int, repeats: int, block: int) -> float:
    """Median over ``repeats`` of the mean seconds per step of ``block`` consecutive steps."""
    for _ in range(warmup):
        step()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(block):
            step()
        samples.append((time.perf_counter() - t0) / block)
    return statistics.median(samples)


# ---------------------------------------------------------------------- backcheck.nn
def bc_step(model_name: str, optim: str, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    from backcheck import nn

    nn.manual_seed(0)
    if model_name == "mlp":
        model: nn.Module = nn.MLP([64, 256, 256, 10])
    else:
        model = nn.SmallCNN()
    model.train()
    params = model.parameters()
    opt: nn.Optimizer = nn.SGD(params, lr=0.01, momentum=0.9) if optim == "sgd" else nn.Adam(params, lr=1e-3)
    xt = nn.Tensor(x)

    def step() -> None:
        opt.zero_grad()
        loss = nn.cross_entropy(model(xt), y)
        loss.backward()
        opt.step()

    return step


# ---------------------------------------------------------------------- torch
def torch_step(model_name: str, optim: str, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    import torch
    from torch import nn as tnn

    torch.manual_seed(0)
    if model_name == "mlp":
        model = tnn.Sequential(
            tnn.Flatten(),
            tnn.Linear(64, 256),
            tnn.ReLU(),
            tnn.Linear(256, 256),
            tnn.ReLU(),
            tnn.Linear(256, 10),
        )
    else:
        model = tnn.Sequential(
            tnn.Conv2d(1, 16, 3, padding=1),
            tnn.BatchNorm2d(16),
            tnn.ReLU(),
            tnn.Conv2d(16, 32, 3, padding=1),
            tnn.BatchNorm2d(32),
            tnn.ReLU(),
            tnn.MaxPool2d(2),
            tnn.Flatten(),
            tnn.Linear(32 * 16, 64),
            tnn.ReLU(),
            tnn.Linear(64, 10),
        )
    model.train()
    if optim == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = tnn.functional.cross_entropy

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8, help="blocks timed per round (median taken)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per engine (minimum taken)")
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--optim", choices=["sgd", "adam", "both"], default="both")
    args = parser.parse_args()

    import torch

    from backcheck.nn.perf import tune_malloc

    tuned = tune_malloc()  # process-wide, so it applies to both engines alike
    threads = numpy_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    cases = [("mlp", 128, 1.3), ("cnn", 64, 2.0)]
    optims = ["sgd", "adam"] if args.optim == "both" else [args.optim]
    print(
        f"threads: numpy BLAS {threads}, torch {torch.get_num_threads()}; torch {torch.__version__}, "
        f"numpy {np.__version__}; float32; malloc tuned: {tuned}"
    )
    header = f"{'model':<24}{'optim':<7}{'backcheck ms':>14}{'torch ms':>11}{'ratio':>8}{'target':>8}"
    print(header)
    print("-" * len(header))
    for name, batch, target in cases:
        x = rng.standard_normal((batch, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 10, size=batch).astype(np.int64)
        for optim in optims:
            # interleave the two engines so machine noise hits both alike
            bc_fn, th_fn = bc_step(name, optim, x, y), torch_step(name, optim, x, y)
            bc_times, th_times = [], []
            for _ in range(args.rounds):
                bc_times.append(time_steps(bc_fn, args.warmup, args.repeats, args.block))
                th_times.append(time_steps(th_fn, args.warmup, args.repeats, args.block))
            bc, th = min(bc_times), min(th_times)
            label = "MLP 64-256-256-10 b128" if name == "mlp" else "SmallCNN b64"
            ok = "ok" if bc / th <= target else "MISS"
            print(
                f"{label:<24}{optim:<7}{bc * 1e3:>14.3f}{th * 1e3:>11.3f}{bc / th:>7.2f}x{target:>6.1f}x {ok}"
            )


if __name__ == "__main__":
    main()
