"""Checking at scale and in the small: backcheck against torch.autograd.gradcheck, measured in one run on the
same functions, float64, one BLAS thread for numpy and one thread for torch.

    python benchmarks/scaling.py [--markdown] [--sizes 1e3 1e4 1e5 1e6] [--repeats 5] [--profile]

First the targets of the issue "the cheapest trustworthy verdict", each with PASS or MISS:

(a) strategy='auto' on a correct gradient of ``f(x) = sum(sin(x) * c)`` with 1e6 parameters against
    ``gradcheck(fast_mode=True)`` on the same function in torch: seconds of each and their ratio (<= 1),
    backcheck's evaluations (<= 8) and its overhead beyond the user's code (CPU seconds of the check outside
    ``f`` and its gradient, timed inside them, < 0.05 s; the wall time of the check minus evaluations x one
    evaluation's time minus one call of the gradient is printed beside it: it also counts what the user's own
    calls cost beyond their best time apart, the page faults of their temporaries); best of ``--repeats`` runs
    of each. Each time is also given in evaluations of its own function (numpy's sine is slower than torch's:
    the ratio compares libraries as much as checkers). And ``backcheck.torch``'s default check
    (strategy auto) of the torch function against the same gradcheck (<= 1), best of ``--repeats`` runs;
    and the same check asked to catch what gradcheck's relative tolerance catches (``detect=1e-3``): its
    default (an RMS error of 10 bounds, at 0.999) needs three directions where gradcheck's fast mode takes one,
    so this row compares the same work.
(b) the fixed cost of a tiny check (``sum(x**3)``, 3 elements) against gradcheck on the same function: the
    median of 200 checks of each; backcheck under 1 ms, and the ratio <= 1.
(c) full mode, vectorized (``vectorized=True``, a batched loss), against gradcheck's slow mode at N = 1e4 on the
    MLP loss below: gradcheck's time over backcheck's >= 10, best of ``--repeats`` runs of each.
(d) full mode on smooth correct layers of a few dozen elements (backcheck.zoo): evaluations against the 2N of
    the classic loop; the worst layer's ratio <= 1.3.

Then one table over problem sizes: a two-layer MLP loss (tanh hidden layer, softmax cross-entropy over a batch
of 1 example by default), every strategy, the classic elementwise loop and gradcheck's two modes.

``--markdown`` prints the same results as markdown tables (for the README); ``--profile`` adds where the CPU time
of (a) (numpy and torch) and (b) goes, function by function and line by line (sampled). ``--only a b`` measures
just those targets.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import backcheck
from backcheck.zoo import SMOOTH_LAYERS  # (d): smooth layers (no kinks, ties or jumps at their inputs)

#: Set before numpy loads (the script runs itself again when they are not), so that BLAS uses one thread.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CLASSES = 10
#: (a): gradcheck's default relative tolerance; backcheck asked to catch errors of this size (``detect=``) does
#: the work gradcheck's fast mode does (one direction), with a tighter bound than gradcheck's.
GRADCHECK_RTOL = 1e-3
BATCH = 1  # examples in the MLP loss; --batch changes it
#: (a): parameters of the sine function.
SINE_N = 10**6
#: (b): checks timed of each kind (after WARMUP), and their median taken.
TINY_REPEATS = 200
WARMUP = 20
#: (c): parameters of the MLP loss.
VECTOR_N = 10**4
#: (d): only layers of this many elements (a few dozen) count.
LAYER_SIZES = (10, 100)
ROOT = Path(__file__).resolve().parent.parent


def say(*parts: object) -> None:
    """Progress, on stderr (stdout carries the results alone)."""
    print(*parts, file=sys.stderr, flush=True)


def _torch() -> Any:
    import torch

    torch.set_num_threads(1)
    return torch


# -- the functions ------------------------------------------------------------------------------------------
def make(n_target: int, seed: int = 0):
    """A 2-layer MLP loss with about ``n_target`` parameters: numpy (plain and batched) and torch versions."""
    torch = _torch()
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


@dataclass
class Sine:
    """``f(x) = sum(sin(x) * c)`` in numpy and torch; ``inside`` adds up the CPU seconds spent in the numpy ``f``
    and its gradient (the user's code)."""

    x: np.ndarray
    c: np.ndarray
    inside: float = 0.0

    @classmethod
    def make(cls, n: int, seed: int = 0) -> Sine:
        rng = np.random.default_rng(seed)
        return cls(rng.normal(size=n), rng.normal(size=n))

    def loss(self) -> Callable[[np.ndarray], float]:
        c = self.c

        def sine_loss(x):
            t = time.thread_time()
            out = float(np.sum(np.sin(x) * c))
            self.inside += time.thread_time() - t
            return out

        return sine_loss

    def grad(self, x: np.ndarray) -> np.ndarray:
        t = time.thread_time()
        out = np.cos(x) * self.c
        self.inside += time.thread_time() - t
        return out

    def torch_args(self) -> tuple[Callable[[Any], Any], tuple[Any, ...]]:
        torch = _torch()
        ct = torch.from_numpy(self.c)

        def torch_sine_loss(x):
            return (torch.sin(x) * ct).sum()

        return torch_sine_loss, (torch.from_numpy(self.x.copy()).requires_grad_(),)


def cube(x):
    return float(np.sum(x**3))


def cube_grad(x):
    return 3 * x**2


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


def timed(fn: Callable[[], Any], repeat: int = 2) -> tuple[Any, float]:
    """The last result and the best time of ``repeat`` runs (the first run also warms caches, for every method
    alike)."""
    out, wall, _cpu = timed_cpu(fn, repeat)
    return out, wall


def timed_cpu(fn: Callable[[], Any], repeat: int) -> tuple[Any, float, float]:
    """The last result, the best wall-clock time and the best CPU time (this thread) of ``repeat`` runs."""
    wall = cpu = float("inf")
    out = None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.thread_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.thread_time() - c)
    return out, wall, cpu


def median_time(fn: Callable[[], Any], repeat: int = TINY_REPEATS) -> tuple[Any, float]:
    """The last result and the median time of ``repeat`` runs after ``WARMUP`` untimed ones."""
    for _ in range(WARMUP):
        fn()
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


# -- the targets --------------------------------------------------------------------------------------------
@dataclass
class Target:
    label: str
    measured: str
    goal: str
    met: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.met else "MISS"


def target_large(repeats: int) -> list[Target]:
    """(a): auto on a correct 1e6-parameter gradient against gradcheck's fast mode on the same function."""
    torch = _torch()
    say(f"(a) sum(sin(x) * c), N = {SINE_N:.0e}: auto against gradcheck(fast_mode=True), best of {repeats}")
    sine = Sine.make(SINE_N)
    loss = sine.loss()
    _, one = timed(lambda: loss(sine.x), repeat=20)
    _, one_grad = timed(lambda: sine.grad(sine.x), repeat=20)
    fn, args = sine.torch_args()
    with torch.no_grad():
        _, one_torch = timed(lambda: float(fn(args[0])), repeat=20)
    best, report, cpu, best_cpu = float("inf"), None, float("inf"), float("inf")
    for _ in range(repeats):
        sine.inside = 0.0
        t, c = time.perf_counter(), time.thread_time()
        r = backcheck.check(loss, sine.x, sine.grad, strategy="auto")
        s, spent = time.perf_counter() - t, time.thread_time() - c
        best_cpu = min(best_cpu, spent)
        cpu = min(cpu, spent - sine.inside)
        if s < best:
            best, report = s, r
    assert report is not None
    ok, theirs, theirs_cpu = timed_cpu(
        lambda: torch.autograd.gradcheck(fn, args, fast_mode=True, raise_exception=False), repeats
    )
    bt_report, bt_best, bt_cpu = timed_cpu(lambda: _torch_check(fn, args[0]), repeats)
    like, like_best, like_cpu = timed_cpu(lambda: _torch_check(fn, args[0], detect=GRADCHECK_RTOL), repeats)
    remainder = best - report.n_evals * one - one_grad  # wall time beyond the user's code, timed apart
    say(f"    backcheck {best:.3g} s ({report.status}, {report.n_evals} evaluations of {one * 1e3:.3g} ms; CPU outside "
        f"f and its gradient {cpu:.3g} s), gradcheck fast {theirs:.3g} s ({'pass' if ok else 'fail'}; one evaluation "
        f"in torch {one_torch * 1e3:.3g} ms)")  # fmt: skip
    say(f"    backcheck.torch {bt_best:.3g} s ({bt_report.status}, {bt_report.strategy}, {bt_report.n_evals} "
        "evaluations)")  # fmt: skip
    say(f"    backcheck.torch detect={GRADCHECK_RTOL:g} {like_best:.3g} s ({like.status}, {like.n_evals} evaluations; "
        f"catches {_caught(like)})")  # fmt: skip
    if report.status != "pass" or bt_report.status != "pass" or like.status != "pass" or not ok:
        say("    warning: a correct gradient did not pass")
    return [
        Target(
            "(a) auto / gradcheck fast_mode, correct gradient, N=1e6",
            f"{best:.3g} s / {theirs:.3g} s = {best / theirs:.3g}x (CPU time: {best_cpu / theirs_cpu:.3g}x; one "
            f"evaluation: numpy {one * 1e3:.2g} ms, torch {one_torch * 1e3:.2g} ms; in evaluations of its own "
            f"function each: {best / one:.3g} and {theirs / one_torch:.3g})",
            "<= 1x",
            best <= theirs,
        ),
        Target("(a) evaluations of auto at N=1e6", f"{report.n_evals} ({report.status})", "<= 8", report.n_evals <= 8),
        Target(
            "(a) backcheck.torch auto / gradcheck fast_mode, same torch function, N=1e6",
            f"{bt_best:.3g} s / {theirs:.3g} s = {bt_best / theirs:.3g}x (CPU time: {bt_cpu / theirs_cpu:.3g}x; "
            f"{bt_report.n_evals} evaluations, {bt_report.status})",
            "<= 1x",
            bt_best <= theirs and bt_report.strategy == "auto",
        ),
        Target(
            f"(a) backcheck.torch at gradcheck's detection (detect={GRADCHECK_RTOL:g}) / gradcheck fast_mode, N=1e6",
            f"{like_best:.3g} s / {theirs:.3g} s = {like_best / theirs:.3g}x (CPU time: {like_cpu / theirs_cpu:.3g}x; "
            f"{like.n_evals} evaluations, {like.status}; it catches {_caught(like)})",
            "<= 1x",
            like_best <= theirs and like.status == "pass",
        ),
        Target(
            "(a) auto's overhead beyond the user's code at N=1e6",
            f"{cpu:.3g} s CPU outside f and its gradient (wall: {best:.3g} s - {report.n_evals} x {one * 1e3:.3g} ms "
            f"- one gradient call {one_grad * 1e3:.3g} ms = {remainder:.3g} s)",
            "< 0.05 s",
            cpu < 0.05,
        ),
    ]


def _caught(report: Any) -> str:
    """What a pass of a projected check vouches for: the RMS error its directions catch, relative to the gradient."""
    return f"RMS errors of {report.leaves[0].floor_rel:.2g} of the gradient, at 0.999"


def _torch_check(fn: Callable[[Any], Any], x: Any, **options: Any) -> Any:
    """backcheck.torch's default check of ``fn`` at ``x`` (strategy auto at this size), with ``options``."""
    import backcheck.torch as bt

    return bt.check(fn, x, **options)


def target_tiny() -> list[Target]:
    """(b): the fixed cost of a check of 3 elements, against gradcheck on the same function."""
    torch = _torch()
    say(f"(b) sum(x**3), 3 elements: median of {TINY_REPEATS} checks of each")
    x = np.array([0.3, -1.2, 0.7])
    r, ours = median_time(lambda: backcheck.check(cube, x, cube_grad))
    xt = torch.from_numpy(x.copy()).requires_grad_()

    def tcube(t):
        return (t**3).sum()

    ok, slow = median_time(lambda: torch.autograd.gradcheck(tcube, (xt,), raise_exception=False))
    _, fast = median_time(lambda: torch.autograd.gradcheck(tcube, (xt,), fast_mode=True, raise_exception=False))
    say(f"    backcheck {ours * 1e3:.3g} ms ({r.status}, {r.n_evals} evaluations), gradcheck {slow * 1e3:.3g} ms "
        f"({'pass' if ok else 'fail'}), gradcheck fast_mode {fast * 1e3:.3g} ms")  # fmt: skip
    return [
        Target("(b) a tiny check (sum(x**3), 3 elements), median", f"{ours * 1e3:.3g} ms", "< 1 ms", ours < 1e-3),
        Target(
            "(b) tiny check: backcheck / gradcheck (default, slow mode)",
            f"{ours * 1e3:.3g} ms / {slow * 1e3:.3g} ms = {ours / slow:.3g}x (fast_mode: {fast * 1e3:.3g} ms, "
            f"{ours / fast:.3g}x)",
            "<= 1x",
            ours <= slow,
        ),
    ]


def target_vectorized(repeats: int, known: dict) -> list[Target]:
    """(c): vectorized full mode against gradcheck's slow mode on the MLP loss at N = 1e4."""
    torch = _torch()
    say(f"(c) MLP loss, N = {VECTOR_N:.0e}: full vectorized against gradcheck slow mode, best of {repeats}")
    n, p, _loss, loss_b, grad, tloss = make(VECTOR_N)
    r, ours, ours_cpu = timed_cpu(lambda: backcheck.check(loss_b, p, grad, strategy="full", vectorized=True), repeats)
    tp = [torch.from_numpy(v.copy()).requires_grad_() for v in p.values()]
    ok, theirs, theirs_cpu = timed_cpu(lambda: torch.autograd.gradcheck(tloss, tp, raise_exception=False), repeats)
    known[(n, "full vectorized")] = (ours, r.n_evals, r.status)
    known[(n, "torch gradcheck")] = (theirs, 2 * n, "pass" if ok else "fail")
    say(f"    backcheck {ours:.3g} s ({r.status}, {r.n_evals} evaluations), gradcheck {theirs:.3g} s")
    return [
        Target(
            f"(c) gradcheck slow / full vectorized, MLP N={n}",
            f"{theirs:.3g} s / {ours:.3g} s = {theirs / ours:.3g}x (CPU time: {theirs_cpu / ours_cpu:.3g}x)",
            ">= 10x",
            theirs / ours >= 10,
        )
    ]


def target_layers() -> list[Target]:
    """(d): full mode's evaluations on smooth correct layers of a few dozen elements, against 2N."""
    from backcheck import zoo

    say("(d) full mode on smooth zoo layers: evaluations / 2N")
    rows = []
    for name in SMOOTH_LAYERS:
        layer = zoo.get(name)
        inputs = layer.make_inputs(np.random.default_rng(0), np.float64)
        n = sum(np.size(v) for v in inputs.values() if np.asarray(v).dtype.kind == "f")
        if not LAYER_SIZES[0] <= n <= LAYER_SIZES[1]:
            continue
        r = backcheck.check_layer(layer.forward, layer.backward, list(inputs.values()), strategy="full")
        rows.append((r.n_evals / (2 * n), name, n, r.n_evals, r.status))
    rows.sort()
    say(
        "    " + ", ".join(f"{name} {ev}/{2 * n}" + ("" if st == "pass" else f" ({st})") for _, name, n, ev, st in rows)
    )
    worst = rows[-1]
    median = statistics.median(r[0] for r in rows)
    sizes = f"{min(r[2] for r in rows)}-{max(r[2] for r in rows)}"
    return [
        Target(
            f"(d) full mode, {len(rows)} smooth layers of {sizes} elements: evaluations / 2N",
            f"worst {worst[0]:.3g} ({worst[1]}: {worst[3]} for N={worst[2]}), median {median:.3g}",
            "<= 1.3",
            worst[0] <= 1.3,
        )
    ]


# -- the MLP table ------------------------------------------------------------------------------------------
METHODS = (
    "full", "full vectorized", "sparse(100)", "projected", "auto", "classic loop", "torch gradcheck",
    "torch gradcheck fast",
)  # fmt: skip


def measure_size(size: int, full_limit: float, repeats: int, known: dict) -> dict:
    """Every method on one problem size (reusing what the targets measured); one row of the table."""
    torch = _torch()
    n, p, loss, loss_b, grad, tloss = make(size)
    one = timed(lambda: loss(p), repeat=20)[1]
    row: dict = {"N": n, "one eval (ms)": one * 1e3}

    def ours(name: str, **kw: Any) -> None:
        f = loss_b if kw.get("vectorized") else loss
        r, s = timed(lambda: backcheck.check(f, p, grad, **kw), repeats)
        row[name] = (s, r.n_evals, r.status)

    ours("auto", strategy="auto")
    ours("projected", strategy="projected")
    ours("sparse(100)", strategy="sparse", samples=100)
    if n <= full_limit:
        ours("full", strategy="full")
        if (n, "full vectorized") not in known:
            ours("full vectorized", strategy="full", vectorized=True)
        _, s = timed(lambda: classic_loop(loss, p), repeats)
        row["classic loop"] = (s, 2 * n, "-")
        tp = [torch.from_numpy(v.copy()).requires_grad_() for v in p.values()]
        if (n, "torch gradcheck") not in known:
            ok, s = timed(lambda: torch.autograd.gradcheck(tloss, tp, raise_exception=False), repeats)
            row["torch gradcheck"] = (s, 2 * n, "pass" if ok else "fail")
        ok, s = timed(lambda: torch.autograd.gradcheck(tloss, tp, fast_mode=True, raise_exception=False), repeats)
        row["torch gradcheck fast"] = (s, None, "pass" if ok else "fail")
    row.update({m: v for (k, m), v in known.items() if k == n})
    return row


def _cell(v: tuple | None) -> str:
    if v is None:
        return "-"
    s, evals, status = v
    text = f"{s:.3g} s" + (f" ({evals} ev)" if evals else "")
    return text if status in ("pass", "-") else f"{text} {status}"


# -- output -------------------------------------------------------------------------------------------------
def header(load: float) -> str:
    torch = _torch()
    return (
        f"{_version()}; numpy {np.__version__}, torch {torch.__version__.split('+')[0]}, Python "
        f"{platform.python_version()}; float64; {_blas_threads()} BLAS thread(s), {torch.get_num_threads()} torch "
        f"thread(s); {os.cpu_count()} CPU(s), load average {load:.1f} at the start"
    )


def _version() -> str:
    """backcheck's version, and the commit measured (with uncommitted changes to src/, if any)."""
    here = Path(backcheck.__file__).resolve().parent
    if not here.is_relative_to(ROOT):
        return f"backcheck {backcheck.__version__} from {here}"
    git = ["git", "-C", str(ROOT)]
    try:
        rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return f"backcheck {backcheck.__version__}"
    changes = " + uncommitted changes" if dirty.stdout.strip() else ""
    return f"backcheck {backcheck.__version__} ({rev.stdout.strip()}{changes})"


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.environ.get("OPENBLAS_NUM_THREADS", "?")
    counts = {int(d["num_threads"]) for d in threadpool_info() if d.get("user_api") == "blas"}
    return "/".join(str(c) for c in sorted(counts)) or "?"


def render(targets: list[Target], rows: list[dict], markdown: bool, load: float) -> str:
    out = [header(load), ""]
    if markdown:
        out += ["| target | measured | goal | |", "|---|---|---|---|"]
        out += [f"| {t.label} | {t.measured} | {t.goal} | **{t.verdict}** |" for t in targets]
    else:
        met = sum(t.met for t in targets)
        out.append(f"Targets: {met} of {len(targets)} met")
        width = max(len(t.label) for t in targets)
        out += [f"  {t.verdict}  {t.label:<{width}}  {t.measured}  (target {t.goal})" for t in targets]
    if rows:
        out += ["", f"2-layer MLP loss ({BATCH} example(s)): seconds (best of the repeats) and evaluations", ""]
        out.append("| N | one eval | " + " | ".join(METHODS) + " |")
        out.append("|---|---|" + "---|" * len(METHODS))
        for row in rows:
            cells = " | ".join(_cell(row.get(m)) for m in METHODS)
            out.append(f"| {row['N']} | {row['one eval (ms)']:.3g} ms | {cells} |")
        ratios = [row["full"][0] / (2 * row["N"] * row["one eval (ms)"] * 1e-3) for row in rows if row.get("full")]
        if ratios:
            out += ["", "full / (2N x one eval): " + ", ".join(f"{r:.2f}" for r in ratios)]
    return "\n".join(out)


# -- where the time goes ------------------------------------------------------------------------------------
#: This script's functions that the profile counts as lines of their own: the functions under test.
OWN_FUNCTIONS = ("sine_loss", "grad", "torch_sine_loss")


class Sampler:
    """A sampling profiler on the process's CPU time (SIGPROF every millisecond of CPU): per sample, the line of
    backcheck (or of this script) that was running, numpy's internals counted to the line that called them, and
    every backcheck function on the stack. CPU time, because other processes' load on a shared machine changes
    wall-clock times by 2x from run to run."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, int], int] = {}
        self.functions: dict[str, int] = {}
        self.samples = 0

    def _tick(self, _sig: int, frame: Any) -> None:
        self.samples += 1
        leaf, seen = None, set()
        while frame is not None:
            name = frame.f_code.co_filename
            if "backcheck" in name or (name == __file__ and frame.f_code.co_name in OWN_FUNCTIONS):
                where = name.split("/backcheck/")[-1] if "/backcheck/" in name else Path(name).name
                seen.add(f"{where}:{frame.f_code.co_name}")
                leaf = leaf or (name, frame.f_lineno or 0)  # None while a frame is between lines
            frame = frame.f_back
        for key in seen:
            self.functions[key] = self.functions.get(key, 0) + 1
        if leaf:
            self.lines[leaf] = self.lines.get(leaf, 0) + 1

    def run(self, check: Callable[[], Any], runs: int) -> float:
        """CPU seconds per check of ``runs`` checks, sampled."""
        import signal

        old = signal.signal(signal.SIGPROF, self._tick)
        signal.setitimer(signal.ITIMER_PROF, 1e-3, 1e-3)
        t = time.process_time()
        try:
            for _ in range(runs):
                check()
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
            signal.signal(signal.SIGPROF, old)
        return (time.process_time() - t) / runs

    def tables(self, cpu: float, unit: float, top: int = 25) -> list[str]:
        import linecache

        name = "ms" if unit == 1e-3 else "s"
        share = cpu / max(self.samples, 1) / unit
        out = [f"| function (inclusive; {self.samples} samples) | CPU {name} |", "|---|---|"]
        out += [f"| {k} | {v * share:.3g} |" for k, v in sorted(self.functions.items(), key=lambda kv: -kv[1])[:top]]
        out += ["", f"| line (its own time and numpy's under it) | CPU {name} | source |", "|---|---|---|"]
        for (file, line), count in sorted(self.lines.items(), key=lambda kv: -kv[1])[:top]:
            where = file.split("/backcheck/")[-1] if "/backcheck/" in file else Path(file).name
            source = (linecache.getline(file, line) if line else "?").strip().replace("|", "\\|")[:90]
            out.append(f"| {where}:{line} | {count * share:.3g} | `{source}` |")
        return out


def profile() -> str:
    """Where the CPU time of (a) and (b) goes: sampled by function and by line."""
    out = []
    tiny = Sine(np.array([0.3, -1.2, 0.7]), np.ones(3))
    for title, sine, strategy, runs, unit in (
        (f"(a) auto, sum(sin(x) * c), N = {SINE_N:.0e}", Sine.make(SINE_N), "auto", 20, 1.0),
        ("(b) a tiny check: sum(sin(x) * 1), 3 elements", tiny, None, 5000, 1e-3),
    ):
        loss = sine.loss()

        def check(loss=loss, sine=sine, strategy=strategy):
            return backcheck.check(loss, sine.x, sine.grad, strategy=strategy)

        say(f"profiling {title}")
        check()
        sampler = Sampler()
        sine.inside = 0.0
        cpu = sampler.run(check, runs)
        name = "ms" if unit == 1e-3 else "s"
        out += [f"### {title}", "", f"per check: {cpu / unit:.3g} {name} CPU, of which in f (sine_loss) "
                f"{sine.inside / runs / unit:.3g} {name}", "", *sampler.tables(cpu, unit), ""]  # fmt: skip
    fn, args = Sine.make(SINE_N).torch_args()
    title = f"(a) backcheck.torch, auto, the same function in torch, N = {SINE_N:.0e}"
    say(f"profiling {title}")
    _torch_check(fn, args[0])
    sampler = Sampler()
    cpu = sampler.run(lambda: _torch_check(fn, args[0]), 20)
    out += [f"### {title}", "", f"per check: {cpu:.3g} s CPU (torch_sine_loss: the function itself)", "",
            *sampler.tables(cpu, 1.0), ""]  # fmt: skip
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------------------------
def _one_thread() -> None:
    """Run this script again with one BLAS thread: the variables only count before numpy loads."""
    if any(os.environ.get(v) != "1" for v in THREAD_VARS):
        env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="*", type=float, default=[1e3, 1e4, 1e5, 1e6], help="MLP table sizes")
    ap.add_argument("--full-limit", type=float, default=2e4, help="largest N for elementwise methods")
    ap.add_argument("--batch", type=int, default=BATCH, help="examples in the MLP loss")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each timed method (the best counts)")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for the README)")
    ap.add_argument(
        "--profile", action="store_true", help="also print where the CPU time of (a) and (b) goes (sampled)"
    )
    ap.add_argument("--only", choices=["a", "b", "c", "d"], nargs="*", help="measure only these targets")
    args = ap.parse_args()
    _one_thread()
    globals()["BATCH"] = args.batch
    started, load = time.perf_counter(), os.getloadavg()[0]
    known: dict = {}
    chosen = set(args.only or "abcd")
    targets: list[Target] = []
    if "a" in chosen:
        targets += target_large(args.repeats)
    if "b" in chosen:
        targets += target_tiny()
    if "c" in chosen:
        targets += target_vectorized(args.repeats, known)
    if "d" in chosen:
        targets += target_layers()
    rows = []
    for size in [] if args.only else args.sizes:
        say(f"MLP loss, N ~ {size:.0e}")
        rows.append(measure_size(int(size), args.full_limit, max(2, args.repeats // 2), known))
    print(render(targets, rows, args.markdown, load))
    if args.profile:
        print("\n" + profile())
    say(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
