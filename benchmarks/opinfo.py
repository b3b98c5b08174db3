"""PyTorch's own operators through backcheck.torch and torch.autograd.gradcheck, sample by sample.

Every OpInfo of ``torch.testing._internal.common_methods_invocations.op_db`` that supports autograd and
``--dtype`` (float64 by default, or float32) on the CPU gives its first ``--max-samples`` samples
(``sample_inputs('cpu', dtype, requires_grad=True)``). Each sample is checked as a user would check the
operator, with backcheck's defaults::

    backcheck.torch.check(fn, sample.input, *sample.args, **sample.kwargs)

where ``fn`` calls the operator and applies the sample's ``output_process_fn_grad`` (torch's own test suite
applies it before gradcheck: it drops outputs whose gradient is not defined, such as singular vectors' signs).
backcheck checks the tensors that require grad, also inside lists (``torch.cat``'s TensorList), and reduces the
outputs with its default cotangent. gradcheck runs with its defaults on the same tensors and the same function.

In float32 (``--dtype float32``) backcheck checks the float32 sample with its defaults (``numeric_dtype='auto'``:
it differences float64 copies where the operator computes the same function from them). gradcheck needs
float64, so it runs on the float64 copy of the same sample (the same values, float32 tensors and dtype
arguments widened); and where backcheck fails or crashes in float32, it checks that float64 copy too (the
record's ``backcheck64``), so that a float32 'fail' where both pass in float64 is a false alarm of float32's.

These operators' gradients are correct, so a backcheck 'fail' where gradcheck passes is a false alarm, a raw
exception from inside backcheck a crash, and 'inconclusive' is acceptable with its stated reason. Samples are
taken round-robin (the first sample of every operator, then the second...) until ``--budget`` seconds have gone,
so a short budget still covers every operator once; ``--timeout`` bounds each of a sample's two checks.

Run:  python benchmarks/opinfo.py [--ops NAME ...] [--max-samples 4] [--budget 240] [--timeout 10] [--json PATH]
                                  [--dtype {float64,float32}] [--inplace] [--progress]

``--inplace`` checks the operators' in-place variants instead, on a copy of the input (``x.clone().add_(y)``).

Needs ``expecttest`` (``pip install backcheck[bench]``): torch's testing package imports it.
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import json
import signal
import statistics
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``backcheck`` importable from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch
from torch.autograd.gradcheck import GradcheckError

import backcheck.torch as bt
from backcheck.errors import BackcheckError

#: backcheck.torch.check's own keywords: a sample keyword of the same name is bound in ``fn`` instead.
CHECK_KEYWORDS = frozenset(
    (
        "dout params strategy samples atol rtol step seed numeric_dtype forward_mode vectorized curves random "
        "constant"
    ).split()
)
#: Words of a leaf's note that name the reason of an inconclusive verdict (the first that matches).
REASONS = (
    ("jump", "jump"),
    ("kink", "kink"),
    ("tie", "kink"),
    ("noise", "noise"),
    ("noisy", "noise"),
    ("overflow", "overflow"),
    ("pole", "pole"),
    ("nothing", "nothing compared"),
    ("was compared", "nothing compared"),
)

#: Words of a report's notes that say why a leaf's bounds could not vouch for its elements (its own note, "agree
#: only within ...", lists every possible cause).
LOOSE = (
    ("is another function than", "float64 is another function, differences in the inputs' dtype"),
    ("returns float16", "float16 output"),
    ("computes in float32", "float32 kernel"),
    ("ill-conditioned", "ill-conditioned backward"),
)


#: Operators whose float64 gradient is really wrong by more than its rounding, though by less than gradcheck's
#: tolerances: a backcheck 'fail' there is a finding, not a false alarm (each checked by hand).
KNOWN_WRONG = {
    "nn.functional.hardsigmoid": "the float64 backward multiplies by 1/6 rounded to float32 (3e-8 relative)",
}


class Timeout(BaseException):
    """One sample's checks took longer than --timeout. Not an Exception: the checkers' own fallbacks (``except
    Exception``: a vmap batch falls back to serial calls, a backward refusing float64 is judged without its float64
    run) would swallow it and carry on, changing the verdict's basis and overrunning the timeout."""


@dataclass
class Record:
    """One sample of one operator: both checkers' outcomes and seconds."""

    op: str
    sample: int
    shapes: str
    backcheck: str = ""  # pass | inconclusive | fail | typed error | crash | timeout
    detail: str = ""  # the reason, the error, or the failing leaves
    backcheck_s: float = 0.0
    gradcheck: str = ""  # pass | fail | error | timeout
    gradcheck_detail: str = ""
    gradcheck_s: float = 0.0
    backcheck64: str = ""  # float32 runs: backcheck on the float64 copy, where float32 failed or crashed
    detail64: str = ""
    notes: list[str] = field(default_factory=list)


def op_name(op: Any) -> str:
    return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def selected_ops(patterns: list[str] | None, dtype: torch.dtype = torch.float64) -> list[Any]:
    """The OpInfos with autograd and ``dtype`` on the CPU, those ``patterns`` match (fnmatch) if given."""
    from torch.testing._internal.common_methods_invocations import op_db

    ops = [o for o in op_db if o.supports_autograd and dtype in o.supported_dtypes("cpu")]
    if patterns:
        ops = [o for o in ops if any(fnmatch.fnmatch(op_name(o), p) or o.name == p for p in patterns)]
    return ops


class InPlace:
    """An OpInfo's in-place variant on a copy of the input, as a user checks ``x.clone().add_(y)``."""

    def __init__(self, op: Any) -> None:
        self.base = op
        self.name, self.variant_test_name = op.name + "_", op.variant_test_name
        self.gradcheck_wrapper = op.gradcheck_wrapper

        def inplace(x: Any, *args: Any, **kwargs: Any) -> Any:
            return op.inplace_variant(x.clone(), *args, **kwargs)

        inplace.__name__ = self.name
        self.op = inplace

    def sample_inputs(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for s in self.base.sample_inputs(*args, **kwargs):  # an in-place op cannot broadcast its input
            if isinstance(s.input, torch.Tensor) and not s.broadcasts_input:
                yield s


def widened(s: Any) -> Any:
    """The float64 copy of a float32 sample: the same values, tensors requiring grad as before, dtype arguments
    (``sum(dtype=torch.float32)``) widened too."""

    def wide(t: Any) -> Any:
        if isinstance(t, torch.dtype):
            return torch.float64 if t == torch.float32 else t
        if t.dtype != torch.float32:
            return t
        return t.detach().to(torch.float64).requires_grad_(t.requires_grad)

    return s.transform(wide)


def describe(x: Any) -> str:
    """A sample's arguments in short: shapes of tensors (``*`` when they require grad), values of the rest."""
    if isinstance(x, torch.Tensor):
        return f"{list(x.shape)}{'*' if x.requires_grad else ''}"
    if isinstance(x, (list, tuple)):
        inner = ", ".join(describe(v) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner})"
    text = repr(x)
    return text if len(text) <= 24 else text[:21] + "..."


def sample_text(s: Any) -> str:
    parts = [describe(s.input), *(describe(a) for a in s.args)]
    parts += [f"{k}={describe(v)}" for k, v in s.kwargs.items()]
    return ", ".join(parts)


def differentiable(x: Any) -> list[torch.Tensor]:
    """The tensors that require grad in an argument, inside lists and tuples too, in order."""
    if isinstance(x, torch.Tensor):
        return [x] if x.requires_grad else []
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in differentiable(v)]
    return []


def substituted(x: Any, new: Iterator[torch.Tensor]) -> Any:
    """``x`` with its tensors that require grad replaced, in order, by ``new``'s."""
    if isinstance(x, torch.Tensor):
        return next(new) if x.requires_grad else x
    if isinstance(x, (list, tuple)):
        return type(x)(substituted(v, new) for v in x)
    return x


def wrapped(op: Any, s: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``fn(*args, **kwargs)`` as torch's tests differentiate the operator, and the keywords left to pass.

    ``fn`` calls the operator through its ``gradcheck_wrapper`` (which makes an input hermitian for eigh,
    normalizes ctc_loss's log-probabilities, seeds a random operator, masks a masked one) and applies the
    sample's output processing; it is the operator itself when both are identities and no sample keyword is
    named like one of backcheck's options (those are bound in ``fn``).
    """
    process, wrapper = s.output_process_fn_grad, op.gradcheck_wrapper
    bound = {k: v for k, v in s.kwargs.items() if k in CHECK_KEYWORDS}
    free = {k: v for k, v in s.kwargs.items() if k not in CHECK_KEYWORDS}
    plain = process.__qualname__.startswith("SampleInput.") and wrapper.__qualname__.startswith("OpInfo.")
    if plain and not bound:  # the identities SampleInput and OpInfo default to
        return op.op, free

    def fn(*args: Any, **kwargs: Any) -> Any:
        return process(wrapper(op.op, *args, **kwargs, **bound))

    fn.__name__ = op_name(op)
    return fn, free


def run_gradcheck(op: Any, s: Any, rec: Record) -> None:
    fn, free = wrapped(op, s)
    tensors = tuple(differentiable([s.input, *s.args, *free.values()]))

    def flat_fn(*ts: torch.Tensor) -> Any:
        it = iter(ts)
        args = substituted([s.input, *s.args], it)
        kwargs = dict(zip(free, substituted(list(free.values()), it), strict=True))
        return fn(*args, **kwargs)

    t0 = time.perf_counter()
    try:
        ok = torch.autograd.gradcheck(flat_fn, tensors, raise_exception=True)
        rec.gradcheck = "pass" if ok else "fail"
    except Timeout:
        rec.gradcheck = "timeout"
    except GradcheckError as exc:
        rec.gradcheck, rec.gradcheck_detail = "fail", first_line(exc)
    except Exception as exc:
        rec.gradcheck, rec.gradcheck_detail = "error", f"{type(exc).__name__}: {first_line(exc)}"
    rec.gradcheck_s = time.perf_counter() - t0


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def inconclusive_reason(report: Any) -> str:
    """Why a report is inconclusive, in a word: from its leaves' notes, else from their element counts."""
    leaves = [lf for lf in report.leaves if lf.status == "inconclusive"]
    noisy = [e for lf in leaves for e in lf.worst if e.status == "noisy"]
    if noisy and all(max(abs(e.analytic), abs(e.numeric)) < e.bound for e in noisy):
        return "gradient below rounding"  # (nearly) zero, or smaller than what the differences resolve
    if any("agree only within" in lf.note for lf in leaves):  # its note lists every cause: the report's notes tell
        return "bound too loose: " + next((why for word, why in LOOSE if any(word in n for n in report.notes)), "?")
    for lf in leaves:
        low = lf.note.lower()
        for word, reason in REASONS:
            if word in low:
                return reason
    for lf in leaves:
        for status in ("jump", "noisy"):
            if lf.counts.get(status):
                return "jump" if status == "jump" else "noise"
    if not report.leaves or all(lf.status == "skipped" for lf in report.leaves):
        return "nothing compared"
    return "unstated: " + "; ".join(lf.note[:120] for lf in leaves)


def run_backcheck(op: Any, s: Any, rec: Record) -> None:
    fn, free = wrapped(op, s)
    t0 = time.perf_counter()
    try:
        if fn is not op.op and isinstance(s.input, (list, tuple)) and not s.args and not free:
            report = bt.check(fn, (s.input,))  # the tuple form: fn takes *args, so a lone list would be spread
        else:
            report = bt.check(fn, s.input, *s.args, **free)
    except Timeout:
        rec.backcheck = "timeout"
    except BackcheckError as exc:
        rec.backcheck, rec.detail = "typed error", f"{type(exc).__name__}: {first_line(exc)}"
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        rec.backcheck = "crash"
        rec.detail = f"{type(exc).__name__}: {first_line(exc)} [{Path(where.filename).name}:{where.lineno}]"
    else:
        rec.backcheck = report.status
        rec.notes = list(report.notes)
        if report.status == "inconclusive":
            rec.detail = inconclusive_reason(report)
        elif report.status == "fail":
            bad = [lf for lf in report.leaves if lf.status == "fail"]
            rec.detail = "; ".join(
                f"{lf.name} {lf.n_mismatch}/{lf.n_checked} wrong, max rel {lf.max_rel_err:.2g}" for lf in bad
            ) or "; ".join(f"{f.kind}: {f.message[:200]}" for f in report.findings)
    rec.backcheck_s = time.perf_counter() - t0


def timed(run: Callable[[Any, Any, Record], None], op: Any, s: Any, rec: Record, timeout: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        run(op, s, rec)
    except Timeout:  # raised outside the checkers' own handlers
        rec.backcheck = rec.backcheck or "timeout"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def check_sample(op: Any, k: int, s: Any, timeout: float) -> Record:
    """gradcheck and backcheck on one sample; a float32 sample's gradcheck runs on its float64 copy, and so does
    a second backcheck where the float32 one fails or crashes."""
    rec = Record(op_name(op), k, sample_text(s))
    if not differentiable([s.input, *s.args, *s.kwargs.values()]):
        rec.backcheck = rec.gradcheck = "no input"
        return rec
    narrow = any(t.dtype == torch.float32 for t in differentiable([s.input, *s.args, *s.kwargs.values()]))
    wide = widened(s) if narrow else s
    timed(run_gradcheck, op, wide, rec, timeout)
    timed(run_backcheck, op, s, rec, timeout)
    if narrow and rec.backcheck in ("fail", "crash"):
        again = Record(rec.op, k, rec.shapes)
        timed(run_backcheck, op, wide, again, timeout)
        rec.backcheck64, rec.detail64 = again.backcheck, again.detail
    return rec


def samples_of(op: Any, limit: int, dtype: torch.dtype = torch.float64) -> list[Any]:
    try:
        return list(itertools.islice(op.sample_inputs("cpu", dtype, requires_grad=True), limit))
    except Exception:  # an operator whose samples cannot be built on this machine is left out
        return []


def run_all(
    ops: list[Any], limit: int, budget: float, timeout: float, progress: bool = False,
    dtype: torch.dtype = torch.float64,
) -> tuple[list[Record], int]:
    """Records round-robin over the operators until ``budget`` seconds; the number of samples not reached."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise Timeout()

    signal.signal(signal.SIGALRM, on_alarm)
    pending = [(op, samples_of(op, limit, dtype)) for op in ops]
    records: list[Record] = []
    start = time.perf_counter()
    left = 0
    for k in range(limit):
        for op, samples in pending:
            if k >= len(samples):
                continue
            if time.perf_counter() - start > budget:
                left += 1
                continue
            records.append(check_sample(op, k, samples[k], timeout))
            if progress:
                r = records[-1]
                print(f"{r.op}#{r.sample}: {r.backcheck} {r.backcheck_s:.2f}s, gradcheck {r.gradcheck} "
                      f"{r.gradcheck_s:.2f}s {r.detail[:100]}"
                      + (f" [float64: {r.backcheck64}]" if r.backcheck64 else ""), file=sys.stderr, flush=True)
    return records, left


BACKCHECK_ORDER = ("pass", "inconclusive", "fail", "typed error", "crash", "timeout")


def known(name: str) -> str:
    """Why an operator's gradient is known to be wrong ('' if it is not), its in-place variant's too."""
    return KNOWN_WRONG.get(name, KNOWN_WRONG.get(name.removesuffix("_"), ""))


def fail_kind(r: Record) -> str:
    if known(r.op):
        return "torch's gradient wrong beyond rounding"
    if r.gradcheck in ("fail", "error"):
        return "gradcheck fails too"
    if r.backcheck64 and r.backcheck64 != "pass":
        return f"false alarm (float64 copy: {r.backcheck64} too)"
    return "false alarm"


def table(records: list[Record]) -> str:
    """The outcomes, inconclusive ones by reason, and seconds against gradcheck (markdown)."""
    checked = [r for r in records if r.backcheck != "no input"]
    count = Counter(r.backcheck for r in checked)
    gc_count = Counter(r.gradcheck for r in checked)
    lines = ["| backcheck | samples | of which gradcheck fails or errs |", "|---|---|---|"]
    for status in BACKCHECK_ORDER:
        rs = [r for r in checked if r.backcheck == status]
        lines.append(f"| {status} | {len(rs)} | {sum(r.gradcheck in ('fail', 'error') for r in rs)} |")
        if status == "fail":
            kinds = Counter(fail_kind(r) for r in rs)
            lines += [f"| &nbsp;&nbsp;{kind} | {n} | |" for kind, n in kinds.most_common()]
        if status == "inconclusive":
            for reason, n in Counter(r.detail for r in rs).most_common():
                lines.append(f"| &nbsp;&nbsp;{reason} | {n} | |")
    timed = [r for r in checked if r.backcheck_s > 0 and r.gradcheck_s > 0]
    bsum, gsum = sum(r.backcheck_s for r in timed), sum(r.gradcheck_s for r in timed)
    ratio = statistics.median(r.backcheck_s / r.gradcheck_s for r in timed) if timed else float("nan")
    lines += [
        "",
        f"{len(checked)} samples of {len({r.op for r in checked})} operators; gradcheck: "
        + ", ".join(f"{k} {v}" for k, v in gc_count.most_common())
        + f"; backcheck {count.get('pass', 0)} pass.",
        f"seconds: backcheck {bsum:.1f}, gradcheck {gsum:.1f} (total ratio {bsum / max(gsum, 1e-9):.2f}, "
        f"median per-sample ratio {ratio:.2f}).",
    ]
    return "\n".join(lines)


def listing(records: list[Record]) -> str:
    """Every fail, crash, typed error and timeout: operator, sample shapes, message."""
    out = []
    for status in ("fail", "crash", "timeout", "typed error"):
        rs = [r for r in records if r.backcheck == status]
        if rs:
            out.append(f"\n{status} ({len(rs)}):")
            out += [
                f"  {r.op}#{r.sample} ({r.shapes}): {r.detail}"
                + (f"  [known: {known(r.op)}]" if status == "fail" and known(r.op) else "")
                + (f"  [gradcheck {r.gradcheck}: {r.gradcheck_detail[:120]}]" if r.gradcheck != "pass" else "")
                + (f"  [float64 copy: {r.backcheck64} {r.detail64[:120]}]" if r.backcheck64 else "")
                for r in rs
            ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", nargs="+", help="operator names or fnmatch patterns ('linalg.*', 'nn.functional.*')")
    p.add_argument("--max-samples", type=int, default=4, help="samples per operator (default 4)")
    p.add_argument("--budget", type=float, default=240.0, help="seconds for the whole run (default 240)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for each check of a sample (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", help="write every record to this file")
    p.add_argument("--progress", action="store_true", help="one line per sample on stderr as it is checked")
    p.add_argument("--inplace", action="store_true", help="the in-place variants instead, on a copy of the input")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="the samples' dtype (default float64; in float32 gradcheck runs on float64 copies)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    dtype = getattr(torch, args.dtype)
    ops = selected_ops(args.ops, dtype)
    if args.inplace:
        ops = [InPlace(o) for o in ops if o.inplace_variant is not None]
    if not ops:
        print("no operator matches", args.ops, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    records, left = run_all(ops, args.max_samples, args.budget, args.timeout, args.progress, dtype)
    print(f"torch {torch.__version__}; {args.dtype}; {len(ops)} operators, up to {args.max_samples} samples each; "
          f"{time.perf_counter() - t0:.0f} s" + (f"; {left} samples not reached within the budget" if left else ""))
    print(table(records))
    print(listing(records))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in records], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
