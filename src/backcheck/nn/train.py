"""A small training loop: :func:`fit` with progress output and a gradient-check hook.

The hook is how per-layer gradient checking plugs in: with ``check='first'`` (or ``'every:N'``)
and a ``check_fn``, ``fit`` calls ``check_fn(model, xb, yb)`` on the first batch (or every N-th
step, counting from step 0) with the model in training mode, before that step's own forward and
backward, and stores ``(step, result)`` in ``History.checks``.  A check function typically uses
:meth:`Module.capture` and :meth:`Module.vjp` (see :mod:`backcheck.nn.modules`).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.nn.data import Digits, batches
from backcheck.nn.errors import ArgumentError, NonFiniteLossError, ShapeError
from backcheck.nn.losses import cross_entropy
from backcheck.nn.module import Module, random_state_kept
from backcheck.nn.optim import Adam, Optimizer
from backcheck.nn.perf import tune_malloc
from backcheck.nn.tensor import Tensor, no_grad
from backcheck.nn.validate import flag, integer, number

__all__ = ["History", "fit", "evaluate", "parse_check"]

CheckFn = Callable[[Module, np.ndarray, np.ndarray], Any]


@dataclass
class History:
    """What :func:`fit` observed.

    Attributes
    ----------
    loss, accuracy : list of float
        Mean training loss and training accuracy (on the batches as trained) per epoch.
    test_accuracy : list of float
        Test accuracy after each epoch (empty without test data).
    checks : list of (int, object)
        ``(step, check_fn result)`` for every gradient check run.
    seconds : float
        Wall time of the whole fit.
    steps : int
        Optimizer steps taken.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    checks: list[tuple[int, Any]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0

    @property
    def final_test_accuracy(self) -> float | None:
        """Test accuracy after the last epoch, if there was test data."""
        return self.test_accuracy[-1] if self.test_accuracy else None


def parse_check(check: str) -> int | None:
    """Translate ``'first'`` / ``'every:N'`` / ``'never'`` into a period (0 = first step only, None = never).

    Examples
    --------
    >>> parse_check("every:5"), parse_check("first"), parse_check("never")
    (5, 0, None)
    """
    if check == "never":
        return None
    if check == "first":
        return 0
    if isinstance(check, str) and check.startswith("every:"):
        try:
            n = int(check[len("every:") :])
        except ValueError:
            n = 0
        if n > 0:
            return n
    raise ArgumentError(
        f"fit: check must be 'first', 'never' or 'every:N' with N > 0, got {check!r}",
        "e.g. check='every:100' checks every layer's backward pass on every 100th step",
        argument="check",
        allowed="'first', 'never' or 'every:N' with N > 0",
        value=check,
    )


def evaluate(model: Module, X: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Accuracy of ``argmax(model(X))`` against ``y`` in eval mode (the mode is restored after).

    Examples
    --------
    >>> from backcheck.nn.modules import MLP
    >>> 0.0 <= evaluate(MLP([64, 10]), np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64)) <= 1.0
    True
    """
    batch_size = integer("evaluate", "batch_size", batch_size, minimum=1)
    if len(X) != len(y):
        raise ShapeError(f"evaluate: X has {len(X)} samples but y has {len(y)}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    correct = 0
    try:
        with no_grad():
            for start in range(0, len(X), batch_size):
                logits = model(Tensor(X[start : start + batch_size])).data
                correct += int((logits.argmax(axis=1) == y[start : start + batch_size]).sum())
    finally:
        for m, mode in modes:
            m.training = mode
    return correct / max(len(X), 1)


class _Reporter:
    """Progress output: a rich bar on a terminal, else one compact line per epoch."""

    def __init__(self, enabled: bool, epochs: int, steps_per_epoch: int) -> None:
        self.enabled, self.epochs = enabled, epochs
        self.bar: Any = None
        self.task: Any = None
        if enabled and sys.stdout.isatty():
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            except ImportError:
                pass
            else:
                self.bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(),
                    transient=False,
                )
                self.task = self.bar.add_task("training", total=epochs * steps_per_epoch, info="")
                self.bar.start()

    def step(self, epoch: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(
                self.task, advance=1, description=f"epoch {epoch + 1}/{self.epochs}", info=f"loss {loss:.4f}"
            )

    def epoch(self, epoch: int, hist: History, elapsed: float) -> None:
        if not self.enabled:
            return
        test = f"  test {hist.test_accuracy[-1]:.4f}" if hist.test_accuracy else ""
        line = (
            f"epoch {epoch + 1}/{self.epochs}  loss {hist.loss[-1]:.4f}  acc {hist.accuracy[-1]:.4f}"
            f"{test}  ({elapsed:.1f}s)"
        )
        if self.bar is not None:
            self.bar.console.print(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def fit(
    model: Module,
    data: Digits | Sequence[np.ndarray],
    epochs: int = 10,
    optimizer: Optimizer | None = None,
    batch_size: int = 64,
    check: str = "first",
    progress: bool = True,
    seed: int = 0,
    check_fn: CheckFn | None = None,
    loss_fn: Callable[[Tensor, np.ndarray], Tensor] = cross_entropy,
    lr_schedule: Callable[[int], float] | None = None,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    blas_threads: int | None = None,
    tune_allocator: bool = False,
) -> History:
    """Train ``model`` with mini-batches and return a :class:`History`.

    Parameters
    ----------
    model : Module
        Maps a batch of inputs (N, ...) to logits (N, C).
    data : Digits or (X_train, y_train[, X_test, y_test])
    epochs : int
    optimizer : Optimizer, optional
        Defaults to ``Adam(model.parameters(), lr=1e-3)``.
    batch_size : int
    check : {'first', 'every:N', 'never'}
        When to call ``check_fn``: on the first batch only, every N steps (steps 0, N, 2N, ...),
        or never.
    progress : bool
        Show a rich progress bar on a terminal, else print one line per epoch.
    seed : int
        Seed of the shuffling.
    check_fn : callable, optional
        ``check_fn(model, xb, yb) -> result``; called in training mode, results kept in
        ``History.checks``. Default: :func:`backcheck.nn.check.blame`, every layer's backward pass
        checked by backcheck at that batch's real inputs and upstream gradients.
    loss_fn : callable
        ``loss_fn(logits, labels) -> scalar Tensor``; cross-entropy by default.
    lr_schedule : callable, optional
        ``lr_schedule(epoch) -> lr`` applied at the start of each epoch.
    augment : callable, optional
        ``augment(xb, rng) -> xb`` applied to each training batch with the fit's seeded
        generator, e.g. :func:`~backcheck.nn.data.random_shift`.
    blas_threads : int, optional
        Limit numpy's BLAS to this many threads during the fit (needs ``threadpoolctl``, which
        scikit-learn installs; ignored without it).  Small models train faster on one thread.
    tune_allocator : bool
        Call :func:`backcheck.nn.perf.tune_malloc` first (keeps freed buffers for reuse; about twice as fast
        for convolutions). Off by default: it changes a setting of the whole process.

    Returns
    -------
    History

    Examples
    --------
    >>> from backcheck.nn.modules import MLP
    >>> X, y = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32), np.arange(32) % 2
    >>> h = fit(MLP([4, 8, 2]), (X, y), epochs=2, batch_size=8, progress=False)
    >>> len(h.loss)
    2
    """
    if not isinstance(model, Module):
        raise ArgumentError(
            f"fit: model must be a Module, got {type(model).__name__}",
            "e.g. fit(nn.MLP([64, 128, 10]), data)",
            argument="model",
            allowed="a Module",
            value=model,
        )
    plan = _FitPlan(
        epochs=integer("fit", "epochs", epochs, minimum=0),
        batch_size=integer("fit", "batch_size", batch_size, minimum=1),
        period=parse_check(check),
        progress=flag("fit", "progress", progress),
        seed=integer("fit", "seed", seed, minimum=0),
        check_fn=_callable("check_fn", check_fn, optional=True),
        loss_fn=_callable("loss_fn", loss_fn),
        lr_schedule=_callable("lr_schedule", lr_schedule, optional=True),
        augment=_callable("augment", augment, optional=True),
    )
    X, y, X_test, y_test = _split(data)
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise ArgumentError(
            f"fit: optimizer must be None or an Optimizer, got {type(optimizer).__name__}",
            "e.g. optimizer=nn.Adam(model.parameters(), lr=1e-3)",
            argument="optimizer",
            allowed="None or an Optimizer",
            value=optimizer,
        )
    opt = optimizer if optimizer is not None else Adam(model.parameters(), lr=1e-3)
    if blas_threads is not None:
        integer("fit", "blas_threads", blas_threads, minimum=1)
    if flag("fit", "tune_allocator", tune_allocator):
        tune_malloc()
    with contextlib.ExitStack() as stack:
        if blas_threads is not None:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                pass
            else:
                stack.enter_context(threadpool_limits(limits=blas_threads, user_api="blas"))
        return _fit(model, (X, y, X_test, y_test), opt, plan)


@dataclass(frozen=True)
class _FitPlan:
    """The checked settings of one :func:`fit`."""

    epochs: int
    batch_size: int
    period: int | None
    progress: bool
    seed: int
    check_fn: CheckFn | None
    loss_fn: Callable[[Tensor, np.ndarray], Tensor]
    lr_schedule: Callable[[int], float] | None
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None


def _callable(name: str, fn: Any, optional: bool = False) -> Any:
    if fn is None and optional:
        return None
    if not callable(fn):
        allowed = "a callable" + (" or None" if optional else "")
        raise ArgumentError(f"fit: {name} must be {allowed}, got {fn!r}", argument=name, allowed=allowed, value=fn)
    return fn


def _split(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(X, y, X_test, y_test)`` from Digits or a 2- or 4-sequence, with matching lengths."""
    if isinstance(data, Digits):
        parts: tuple[Any, ...] = (data.X_train, data.y_train, data.X_test, data.y_test)
    elif isinstance(data, Sequence) and len(data) in (2, 4):
        parts = (*data, None, None) if len(data) == 2 else tuple(data)
    else:
        raise ArgumentError(
            f"fit: data must be Digits or (X, y) or (X, y, X_test, y_test), got {type(data).__name__}"
            + (f" of {len(data)} items" if isinstance(data, Sequence) else ""),
            "e.g. fit(model, (X_train, y_train), ...) with numpy arrays",
            argument="data",
            allowed="Digits or a sequence of 2 or 4 arrays",
            value=data,
        )
    for a, b, what in ((parts[0], parts[1], "training"), (parts[2], parts[3], "test")):
        if a is not None and b is not None and len(a) != len(b):
            raise ShapeError(f"fit: the {what} inputs have {len(a)} samples but the labels {len(b)}")
    return parts[0], parts[1], parts[2], parts[3]


def _blame_check(loss_fn: Callable[[Tensor, np.ndarray], Tensor]) -> CheckFn:
    """The default check: every layer's backward pass checked at this batch's values (backcheck.nn.check)."""

    def check_layers(model: Module, xb: np.ndarray, yb: np.ndarray) -> Any:
        from backcheck.nn.check import blame

        return blame(model, xb, yb, loss_fn=loss_fn)

    return check_layers


def _non_finite(
    value: float, xb: np.ndarray, epoch: tuple[int, int], batch: tuple[int, int], step: int
) -> NonFiniteLossError:
    """The error for a NaN or infinite loss, saying where it appeared and whether the batch itself is to blame."""
    bad = int(np.size(xb) - np.count_nonzero(np.isfinite(xb))) if np.asarray(xb).dtype.kind == "f" else 0
    cause = (
        f"this batch's inputs hold {bad} NaN or infinite values"
        if bad
        else "this batch's inputs are finite, so the model's outputs or the loss overflowed"
    )
    hint = (
        "clean the data (np.isfinite(X).all() must be True)"
        if bad
        else "lower the learning rate, clip gradients with nn.clip_grad_norm_, or check the loss function"
    )
    return NonFiniteLossError(
        f"fit: the training loss is {value} at step {step} (epoch {epoch[0] + 1}/{epoch[1]}, batch "
        f"{batch[0] + 1}/{batch[1]}); {cause}. Training stopped before this step's update",
        hint,
        loss=value,
        epoch=epoch[0],
        batch=batch[0],
        step=step,
    )


def _in_model_dtype(model: Module, X: np.ndarray) -> np.ndarray:
    """Float data in the float dtype of the model's parameters (float64 data read by a float32 model would run
    every layer in float64, which torch refuses; fit casts it, as ``X.float()`` would)."""
    dtype = next((p.data.dtype for p in model.parameters() if p.data.dtype.kind == "f"), None)
    if dtype is None or X.dtype.kind != "f" or X.dtype == dtype:
        return X
    return X.astype(dtype)


def _fit(
    model: Module,
    data: tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None],
    opt: Optimizer,
    plan: _FitPlan,
) -> History:
    X, y, X_test, y_test = data
    X, X_test = _in_model_dtype(model, X), None if X_test is None else _in_model_dtype(model, X_test)
    check_fn, period, epochs = plan.check_fn, plan.period, plan.epochs
    if check_fn is None and period is not None:
        check_fn = _blame_check(plan.loss_fn)
    rng = np.random.default_rng(plan.seed)
    steps_per_epoch = -(-len(X) // plan.batch_size)
    hist = History()
    reporter = _Reporter(plan.progress, epochs, steps_per_epoch)
    start = time.perf_counter()
    step = 0
    try:
        for epoch in range(epochs):
            model.train()
            if plan.lr_schedule is not None:
                opt.lr = number("fit", f"lr_schedule({epoch})", plan.lr_schedule(epoch), low=0.0)
            total_loss, correct, seen = 0.0, 0, 0
            for batch, (xb, yb) in enumerate(batches(X, y, plan.batch_size, shuffle=True, rng=rng)):
                if plan.augment is not None:
                    xb = plan.augment(xb, rng)
                if check_fn is not None and period is not None and (step == 0 if period == 0 else step % period == 0):
                    model.train()
                    with random_state_kept(model):  # a check's forward must not change the training run
                        hist.checks.append((step, check_fn(model, xb, yb)))
                    model.train()  # whatever the check did, the step itself trains
                opt.zero_grad()
                logits = model(Tensor(xb))
                loss = plan.loss_fn(logits, yb)
                value = float(loss.data)
                if not math.isfinite(value):
                    raise _non_finite(value, xb, (epoch, epochs), (batch, steps_per_epoch), step)
                loss.backward()
                opt.step()
                total_loss += value * len(xb)
                correct += int((logits.data.argmax(axis=1) == yb).sum())
                seen += len(xb)
                step += 1
                reporter.step(epoch, value)
            hist.loss.append(total_loss / max(seen, 1))
            hist.accuracy.append(correct / max(seen, 1))
            if X_test is not None and y_test is not None and len(X_test):
                hist.test_accuracy.append(evaluate(model, X_test, y_test))
            reporter.epoch(epoch, hist, time.perf_counter() - start)
    finally:
        reporter.close()
    hist.seconds = time.perf_counter() - start
    hist.steps = step
    return hist
