"""Train an MLP and a SmallCNN on scikit-learn's 8x8 digits with backcheck.nn.

Run ``python -m backcheck.nn.demo`` (needs scikit-learn: ``pip install 'backcheck[data]'``;
``rich`` for progress bars on a terminal).  With seed 0 the MLP reaches about 98% and the CNN about
99% test accuracy, in well under a minute on two cores.

Both use AdamW with a cosine learning-rate decay and random one-pixel shifts of the training
images; BLAS runs on one thread, which is faster for matrices this small.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from backcheck.nn.data import load_digits, random_shift
from backcheck.nn.modules import MLP, Module, SmallCNN, manual_seed
from backcheck.nn.optim import AdamW
from backcheck.nn.train import History, fit

__all__ = ["main", "train_mlp", "train_cnn"]


def _cosine(lr: float, epochs: int) -> Callable[[int], float]:
    return lambda epoch: lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def _show_blame(model: Module, xb: np.ndarray, yb: np.ndarray) -> object:
    """Check every layer's backward pass on this batch with backcheck, and print the table."""
    from backcheck.nn.check import blame

    started = time.perf_counter()
    table = blame(model, xb, yb)
    print(f"gradient check of every layer on the first batch ({time.perf_counter() - started:.1f}s):")
    print(table, flush=True)
    return table


def _train(
    model: Module, epochs: int, lr: float, progress: bool, seed: int, augment: bool, check: str = "first"
) -> History:
    data = load_digits(seed=seed)
    opt = AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    return fit(
        model,
        data,
        epochs=epochs,
        optimizer=opt,
        batch_size=32,
        check=check,
        check_fn=_show_blame if check != "never" else None,
        progress=progress,
        seed=seed,
        lr_schedule=_cosine(lr, epochs),
        augment=random_shift if augment else None,
        blas_threads=1,
        tune_allocator=True,
    )


def train_mlp(epochs: int = 60, progress: bool = True, seed: int = 0) -> tuple[Module, History]:
    """MLP 64-1024-10 with ReLU and dropout 0.5; returns the model and its history."""
    manual_seed(seed)
    model = MLP([64, 1024, 10], activation="relu", dropout=0.5)
    return model, _train(model, epochs, 1e-3, progress, seed, augment=False)


def train_cnn(epochs: int = 30, progress: bool = True, seed: int = 0) -> tuple[Module, History]:
    """The default :class:`SmallCNN`; returns the model and its history."""
    manual_seed(seed)
    model = SmallCNN()
    return model, _train(model, epochs, 3e-3, progress, seed, augment=True)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train both models, print their test accuracies and return them."""
    parser = argparse.ArgumentParser(prog="python -m backcheck.nn.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--mlp-epochs", type=int, default=60)
    parser.add_argument("--cnn-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch output")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results: dict[str, float] = {}
    for name, trainer, epochs in (
        ("MLP", train_mlp, args.mlp_epochs),
        ("SmallCNN", train_cnn, args.cnn_epochs),
    ):
        print(f"== {name} ({epochs} epochs)", flush=True)
        model, hist = trainer(epochs=epochs, progress=not args.quiet, seed=args.seed)
        acc = float(hist.final_test_accuracy or 0.0)
        results[name] = acc
        results[f"{name} layers pass"] = float(all(table.ok for _, table in hist.checks))
        print(
            f"{name}: test accuracy {acc:.4f} ({model.num_parameters():,} parameters, {hist.seconds:.1f}s)",
            flush=True,
        )
    total = time.perf_counter() - start
    print(
        f"final test accuracy: MLP {results['MLP']:.2%}, SmallCNN {results['SmallCNN']:.2%} "
        f"(total {total:.1f}s, numpy {np.__version__})"
    )
    return results


if __name__ == "__main__":
    main()
