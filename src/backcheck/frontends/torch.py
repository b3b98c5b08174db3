"""PyTorch frontend: check what ``torch.autograd`` computes (custom ``autograd.Function`` backward and jvp
rules, ``nn.Module`` parameters) against finite differences of the same function.

A function ``fn(*inputs) -> tensor or tuple of tensors`` is reduced to the core contract by a cotangent
``dout``: the checked scalar is ``phi = <dout, fn(*inputs)>``, whose gradient torch claims to be
``torch.autograd.grad(fn(*inputs), inputs, dout)``.  The analytic side runs at the tensors' own dtype and
device; the numeric side perturbs float64 numpy copies through the core :class:`~backcheck.tree.Tree` and
:class:`~backcheck.evaluate.Evaluator`, and evaluates ``fn`` on float64 tensors (on the same device) when it
allows it.  The user's tensors are never written: inputs are copied, and module parameters and buffers are
pointed at private storage while a check runs and at their own storage again afterwards (also when ``fn``
raises).

Complex tensors are checked as two real arrays, ``z.real`` and ``z.imag``.  For a real loss ``phi`` torch
returns the conjugate Wirtinger gradient ``z.grad = dphi/dRe(z) + i dphi/dIm(z)`` (twice ``dphi/dconj(z)``);
backcheck compares its real part with the numeric ``dphi/dRe(z)`` and its imaginary part with the numeric
``dphi/dIm(z)``.  A complex output ``y`` with cotangent ``v`` contributes
``Re(sum(conj(v) * y)) = <Re v, Re y> + <Im v, Im y>`` to ``phi``, torch's own convention for
``grad_outputs``.

This module imports torch on first use only; what it shares with the jax frontend lives in
:mod:`backcheck.frontends.common`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.api import check_finite, mutation_finding
from backcheck.errors import (
    BackcheckError,
    BadInputError,
    GradientStructureError,
    NonFiniteError,
    UserFunctionError,
)
from backcheck.evaluate import Output
from backcheck.frontends.common import (
    AUTO_MIN_ELEMENTS,
    JVP_PREFIX,
    CachedEvaluator,
    Section,
    VectorizeError,
    arg_names,
    default_cotangent,
    first_line,
    prefetch_first_differences,
    report_sections,
)
from backcheck.numeric.grad import function_name
from backcheck.report import Finding, Report
from backcheck.tree import Tree

if TYPE_CHECKING:
    import torch

__all__ = [
    "check",
    "check_function",
    "check_module",
    "blame",
    "Blame",
    "BlameRow",
]

#: Machine epsilon of bfloat16 (8 bits of significand), a dtype numpy lacks.
BFLOAT16_EPS = 2.0**-7


# ==========================================================================================================
# torch
# ==========================================================================================================
def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError("backcheck.torch needs PyTorch: pip install backcheck[torch]") from exc
    return torch


def _np_dtype(real: torch.dtype) -> Any:
    torch = _torch()
    return {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}.get(real)


def _real_of(dtype: torch.dtype) -> torch.dtype:
    torch = _torch()
    return {
        torch.complex128: torch.float64,
        torch.complex64: torch.float32,
        torch.complex32: torch.float16,
    }.get(dtype, dtype)


def _complex_of(real: torch.dtype) -> torch.dtype:
    torch = _torch()
    return {torch.float64: torch.complex128, torch.float32: torch.complex64, torch.float16: torch.complex32}[real]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _to_numpy(t: torch.Tensor, np_dtype: Any = None) -> np.ndarray:
    """A private float numpy copy of a real tensor (bfloat16 goes through float32)."""
    torch = _torch()
    t = t.detach().resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16 or _np_dtype(t.dtype) is None:
        t = t.to(torch.float32)
    arr = t.cpu().numpy().copy()
    return arr.astype(np_dtype) if np_dtype is not None else arr


def _parts(t: torch.Tensor, np_dtype: Any = None) -> list[np.ndarray]:
    """A tensor as real numpy arrays: itself, or its real and imaginary parts."""
    torch = _torch()
    if t.is_complex():
        ri = torch.view_as_real(t.detach().resolve_conj().resolve_neg())
        return [_to_numpy(ri[..., 0], np_dtype), _to_numpy(ri[..., 1], np_dtype)]
    return [_to_numpy(t, np_dtype)]


def _flatten(out: Any, prefix: str = "out") -> list[tuple[str, Any]]:
    if isinstance(out, Mapping):
        return [item for k, v in out.items() for item in _flatten(v, f"{prefix}[{k!r}]")]
    if isinstance(out, (list, tuple)):
        return [item for k, v in enumerate(out) for item in _flatten(v, f"{prefix}[{k}]")]
    return [(prefix, out)]


def _is_diff_tensor(x: Any) -> bool:
    torch = _torch()
    return isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())


@dataclass
class _Slot:
    """One differentiable tensor: an input of ``fn`` or a parameter it reads."""

    name: str
    tensor: Any  # the user's own tensor, never written
    kind: str  # 'input' | 'param'
    pos: int  # index into the inputs, or into the parameters
    key: str = ""  # a parameter's name in its module (for functional_call)
    dtype: Any = None  # the native dtype (a parameter's .data is swapped while a check runs)

    def __post_init__(self) -> None:
        if self.dtype is None:
            self.dtype = self.tensor.dtype

    @property
    def is_complex(self) -> bool:
        return bool(self.dtype.is_complex)

    @property
    def leaf_names(self) -> list[str]:
        return [f"{self.name}.real", f"{self.name}.imag"] if self.is_complex else [self.name]


class _Swap:
    """Point tensors (module parameters and buffers) at other storage; put their own storage back."""

    def __init__(self, tensors: Sequence[torch.Tensor]):
        seen: set[int] = set()
        self.tensors = []
        for t in tensors:
            if id(t) not in seen:
                seen.add(id(t))
                self.tensors.append(t)
        self.saved = [t.data for t in self.tensors]

    def current(self) -> list[torch.Tensor]:
        return [t.data for t in self.tensors]

    def set(self, values: Sequence[torch.Tensor]) -> None:
        for t, v in zip(self.tensors, values, strict=True):
            t.data = v

    def restore(self) -> None:
        self.set(self.saved)


class _TorchCheck:
    """Everything one torch check needs: the slots, the two sides, and the storage swaps."""

    def __init__(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[Any],
        slots: list[_Slot],
        consts: Sequence[torch.Tensor],
        module: Any,
        fname: str,
    ):
        torch = _torch()
        self.torch = torch
        self.fn, self.inputs, self.slots, self.module, self.fname = fn, list(inputs), slots, module, fname
        self.params = [s for s in slots if s.kind == "param"]
        self.input_slots = [s for s in slots if s.kind == "input"]
        self.param_swap = _Swap([s.tensor for s in self.params])
        # closure parameters without requires_grad are differentiated too; their flag is put back afterwards
        self.grad_off = [t for t in self.param_swap.tensors if not t.requires_grad]
        for t in self.grad_off:
            t.requires_grad_(True)
        self.const_swap = _Swap(consts)
        self.pristine = {
            k: a.detach().clone()
            for k, a in enumerate(inputs)
            if isinstance(a, torch.Tensor) and k not in {s.pos for s in self.input_slots}
        }
        self.numeric_real: Any = None  # a torch.dtype once chosen
        self.out_mask: list[bool] = []
        self.u_parts: list[np.ndarray] = []
        self.douts: list[Any] = []
        self.part_names: list[str] = []
        self.part_shapes: list[tuple[int, ...]] = []

    # -- storage ---------------------------------------------------------------------------------------------
    def original(self, slot: _Slot) -> torch.Tensor:
        """The user's own values of a slot (a parameter's own storage, whatever it points at now)."""
        if slot.kind == "input":
            return slot.tensor.detach()
        return self.param_swap.saved[self.params.index(slot)].detach()

    def restore(self) -> None:
        self.param_swap.restore()
        self.const_swap.restore()
        for t in self.grad_off:
            t.requires_grad_(False)

    def use_native(self) -> None:
        """Parameters and constants on private native-dtype copies (the analytic side)."""
        self.param_swap.set([t.detach().clone() for t in self.param_swap.saved])
        self.const_swap.set([t.detach().clone() for t in self.const_swap.saved])

    def use_numeric(self, real: torch.dtype) -> None:
        """Constants on private copies in the numeric dtype; parameters are set at every evaluation."""
        self.numeric_real = real
        self.const_swap.set([self._cast(t, real) for t in self.const_swap.saved])

    def _cast(self, t: torch.Tensor, real: torch.dtype) -> torch.Tensor:
        if t.is_complex():
            return t.detach().to(_complex_of(real)).clone()
        if t.is_floating_point():
            return t.detach().to(real).clone()
        return t.detach().clone()

    @contextmanager
    def native(self) -> Iterator[None]:
        """Switch to the analytic side for a while (from inside the numeric side)."""
        params, consts = self.param_swap.current(), self.const_swap.current()
        try:
            self.use_native()
            yield
        finally:
            self.param_swap.set(params)
            self.const_swap.set(consts)

    # -- building tensors ------------------------------------------------------------------------------------
    def _assemble(self, slot: _Slot, parts: list[Any], real: torch.dtype) -> torch.Tensor:
        torch = self.torch
        dev = slot.tensor.device
        ts = [
            (p if isinstance(p, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(p))).to(device=dev, dtype=real)
            for p in parts
        ]
        return torch.complex(ts[0], ts[1]) if slot.is_complex else ts[0]

    def _split(self, values: Sequence[Any]) -> list[list[Any]]:
        out, k = [], 0
        for slot in self.slots:
            n = 2 if slot.is_complex else 1
            out.append(list(values[k : k + n]))
            k += n
        return out

    def args_with(self, by_slot: Mapping[int, Any]) -> list[Any]:
        args = []
        for k, a in enumerate(self.inputs):
            if k in by_slot:
                args.append(by_slot[k])
            elif k in self.pristine:
                args.append(self.pristine[k].clone())
            else:
                args.append(a)
        return args

    # -- outputs ---------------------------------------------------------------------------------------------
    def float_outputs(self, out: Any) -> list[Any]:
        flat = _flatten(out)
        if len(flat) != len(self.out_mask):
            raise GradientStructureError(
                f"{self.fname} returned {len(flat)} output(s) here but {len(self.out_mask)} at the original point.",
                "a function must return the same structure at every call.",
            )
        return [t for (_, t), keep in zip(flat, self.out_mask, strict=True) if keep]

    def output_parts(self, out: Any) -> list[np.ndarray]:
        return [p for t in self.float_outputs(out) for p in _parts(t)]

    # -- the numeric side ------------------------------------------------------------------------------------
    def numeric_call(self, current: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        real = self.numeric_real
        assert real is not None
        tensors = [
            self._assemble(s, ps, real) for s, ps in zip(self.slots, self._split(list(current.values())), strict=True)
        ]
        self.param_swap.set([t for s, t in zip(self.slots, tensors, strict=True) if s.kind == "param"])
        args = self.args_with({s.pos: t for s, t in zip(self.slots, tensors, strict=True) if s.kind == "input"})
        with torch.no_grad():
            out = self.fn(*args)
        return self.output_parts(out)

    def batch_call(self, tree: Tree) -> Callable[[np.ndarray], list[np.ndarray]]:
        """``X (points x elements) -> output parts (points x ...)`` with ``torch.func.vmap``."""
        torch = self.torch
        from torch.func import functional_call, vmap

        def batch(X: np.ndarray) -> list[np.ndarray]:
            real = self.numeric_real
            assert real is not None
            B = X.shape[0]
            leaves = [X[:, lf.offset : lf.offset + lf.size].reshape((B, *lf.shape)) for lf in tree.leaves]
            tensors = [self._assemble(s, ps, real) for s, ps in zip(self.slots, self._split(leaves), strict=True)]
            ins = {s.pos: t for s, t in zip(self.slots, tensors, strict=True) if s.kind == "input"}
            pars = {s.key: t for s, t in zip(self.slots, tensors, strict=True) if s.kind == "param"}
            in_pos = list(ins)

            def one(in_vals: list[Any], par_vals: dict[str, Any]) -> tuple[Any, ...]:
                args = self.args_with(dict(zip(in_pos, in_vals, strict=True)))
                out = functional_call(self.module, par_vals, tuple(args)) if par_vals else self.fn(*args)
                return tuple(self.float_outputs(out))

            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*performance drop.*")  # a missing batching rule
                outs = vmap(one, randomness="error")([ins[k] for k in in_pos], pars)
            parts = [p for t in outs for p in _parts(t)]
            for p, (name, shape) in zip(parts, zip(self.part_names, self.part_shapes, strict=True), strict=True):
                if p.shape != (B, *shape):
                    raise VectorizeError(f"output {name} has shape {p.shape[1:]} under vmap, {shape} serially")
            return parts

        return batch

    # -- the analytic side -----------------------------------------------------------------------------------
    def _analytic_tensors(self, point: Sequence[np.ndarray] | None) -> list[torch.Tensor]:
        if point is None:
            return [self.original(s).clone() for s in self.slots]
        return [
            self._assemble(s, ps, _real_of(s.dtype)).to(s.dtype)
            for s, ps in zip(self.slots, self._split(list(point)), strict=True)
        ]

    def call_native(self, tensors: list[torch.Tensor]) -> tuple[Any, list[Any]]:
        """Run ``fn`` with autograd on, the slots' tensors as leaves. Returns (out, targets)."""
        torch = self.torch
        targets = []
        ins: dict[int, Any] = {}
        for s, t in zip(self.slots, tensors, strict=True):
            if s.kind == "param":
                s.tensor.data = t.detach()
                targets.append(s.tensor)
            else:
                leaf = t.detach().requires_grad_(True)
                ins[s.pos] = leaf
                targets.append(leaf)
        with torch.enable_grad():
            out = self.fn(*self.args_with(ins))
        return out, targets

    def reverse(self, point: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """The gradient of ``phi`` by torch.autograd, flat (real and imaginary parts apart)."""
        torch = self.torch
        with self.native():
            out, targets = self.call_native(self._analytic_tensors(point))
            outs = self.float_outputs(out)
            pairs = [(o, d) for o, d in zip(outs, self.douts, strict=True) if o.requires_grad]
            if pairs:
                grads = torch.autograd.grad([o for o, _ in pairs], targets, [d for _, d in pairs], allow_unused=True)
            else:
                grads = (None,) * len(targets)
        flat: list[np.ndarray] = []
        for s, gr in zip(self.slots, grads, strict=True):
            if gr is None:
                gr = torch.zeros(s.tensor.shape, dtype=s.dtype, device=s.tensor.device)
            flat.extend(p.reshape(-1).astype(np.float64) for p in _parts(gr))
        return np.concatenate(flat)

    def forward(self, point: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """``<dout, J e_i>`` for every input element by forward-mode AD (a custom Function's ``jvp``)."""
        torch = self.torch
        import torch.autograd.forward_ad as fwAD

        with warnings.catch_warnings(), fwAD.dual_level():
            # the first make_dual loads torch's jvp decompositions, which use the deprecated torch.jit.script
            warnings.simplefilter("ignore", DeprecationWarning)
            fwAD.make_dual(torch.zeros(1), torch.zeros(1))

        base = self._analytic_tensors(point)
        res = []
        with self.native(), torch.no_grad():
            for k, s in enumerate(self.slots):
                units = (1.0, 1j) if s.is_complex else (1.0,)
                for unit in units:
                    for j in range(s.tensor.numel()):
                        tangent = torch.zeros_like(base[k])
                        tangent.view(-1)[j] = unit
                        with fwAD.dual_level():
                            ins = {
                                q.pos: (fwAD.make_dual(base[m], tangent) if m == k else base[m])
                                for m, q in enumerate(self.slots)
                            }
                            outs = self.float_outputs(self.fn(*self.args_with(ins)))
                            tans = [fwAD.unpack_dual(o).tangent if isinstance(o, torch.Tensor) else None for o in outs]
                        total = 0.0
                        for t, o, d in zip(tans, outs, self.douts, strict=True):
                            if t is None:
                                continue
                            for tp, dp in zip(_parts(t.to(o.dtype)), _parts(d), strict=True):
                                total += float(
                                    np.dot(tp.reshape(-1).astype(np.float64), dp.reshape(-1).astype(np.float64))
                                )
                        res.append(total)
        return np.asarray(res, dtype=np.float64)


def _select(inputs: Sequence[Any], names: list[str]) -> list[_Slot]:
    floating = [(k, a) for k, a in enumerate(inputs) if _is_diff_tensor(a)]
    marked = [(k, a) for k, a in floating if a.requires_grad]
    return [_Slot(names[k], a, "input", k) for k, a in (marked or floating)]


def _param_slots(params: Any, names_taken: set[str]) -> tuple[list[_Slot], list[Any], Any]:
    """(parameter slots, constant tensors to cast alongside, the module if params is one)."""
    torch = _torch()
    if params is None:
        return [], [], None
    if isinstance(params, torch.nn.Module):
        named = [(n, p) for n, p in params.named_parameters() if p.requires_grad]
        consts = [p for _, p in params.named_parameters() if not p.requires_grad] + list(params.buffers())
        module = params
    elif isinstance(params, Mapping):
        named, consts, module = list(params.items()), [], None
    elif isinstance(params, (list, tuple)):
        named, consts, module = [(f"params[{k}]", p) for k, p in enumerate(params)], [], None
    else:
        raise BadInputError(
            f"params is a {type(params).__name__}; expected an nn.Module, a dict of tensors or a list of tensors.",
            "pass params=dict(model.named_parameters()), or the module.",
        )
    slots = []
    for k, (n, p) in enumerate(named):
        if not _is_diff_tensor(p):
            raise BadInputError(
                f"parameter {n} is not a floating-point tensor ({type(p).__name__}).",
                "pass only float or complex tensors as params.",
            )
        name = str(n) if str(n) not in names_taken else f"param:{n}"
        slots.append(_Slot(name, p, "param", k, key=str(n)))
    return slots, consts, module


def _candidates(slots: list[_Slot], numeric_dtype: Any) -> list[Any]:
    torch = _torch()
    natives = [_real_of(s.dtype) for s in slots]
    lowest = min(natives, key=lambda d: torch.finfo(d).bits)
    if numeric_dtype == "auto":
        return [torch.float64, torch.float32] + ([torch.float16] if lowest == torch.float16 else [])
    if numeric_dtype == "native":
        if lowest == torch.bfloat16:
            return [torch.float32]
        return [lowest]
    named = {
        "float64": torch.float64,
        "float32": torch.float32,
        "float16": torch.float16,
        torch.float64: torch.float64,
        torch.float32: torch.float32,
        torch.float16: torch.float16,
    }
    if numeric_dtype not in named:
        raise BadInputError(
            f"numeric_dtype={numeric_dtype!r} is not supported.",
            "use 'auto', 'native', 'float64', 'float32' or 'float16'.",
        )
    return [named[numeric_dtype]]


def _parse_dout(dout: Any, outs: list[tuple[str, Any]], seed: int, fname: str) -> tuple[list[Any], list[np.ndarray]]:
    """(torch douts in the output dtypes, numpy cotangent parts in float64)."""
    torch = _torch()
    if dout is None:
        shapes = [tuple(t.shape) for _, t in outs]
        us = default_cotangent(shapes, seed, [bool(t.is_complex()) for _, t in outs])
        given = [torch.from_numpy(np.asarray(u)) for u in us]
    else:
        given = [t for _, t in _flatten(dout, "dout")]
        if len(given) != len(outs):
            raise GradientStructureError(
                f"dout has {len(given)} tensor(s), but {fname} returns {len(outs)} differentiable output(s) "
                f"({', '.join(n for n, _ in outs)}).",
                "pass one upstream gradient per float output, in order.",
            )
        given = [g if isinstance(g, torch.Tensor) else torch.as_tensor(np.asarray(g)) for g in given]
    douts = []
    for (name, o), g in zip(outs, given, strict=True):
        if tuple(g.shape) != tuple(o.shape):
            raise GradientStructureError(
                f"dout for {name} has shape {tuple(g.shape)}, but {name} has shape {tuple(o.shape)}.",
                "dout must have the shape of its output.",
            )
        if not (g.is_floating_point() or g.is_complex()):
            raise GradientStructureError(
                f"dout for {name} has dtype {g.dtype}; it must be float.", "pass a float tensor."
            )
        douts.append(g.detach().to(device=o.device, dtype=o.dtype).clone())
    parts = [p.astype(np.float64) for d in douts for p in _parts(d)]
    return douts, parts


def _check(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    names: list[str] | None = None,
    title: str | None = None,
    kind: str = "torch",
    dout: Any = None,
    params: Any = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: int = 0,
    numeric_dtype: Any = "auto",
    forward_mode: bool = False,
    forward_note: str = "",
    vectorized: bool | str = "auto",
    curves: bool = False,
) -> Report:
    torch = _torch()
    started = time.perf_counter()
    if vectorized not in (True, False, "auto"):
        raise BadInputError(f"vectorized={vectorized!r}.", "use True, False or 'auto'.")
    fname = title or function_name(fn)
    if isinstance(fn, torch.nn.Module) and title is None:
        fname = type(fn).__name__
    if not isinstance(inputs, (list, tuple)):
        inputs = (inputs,)
    inputs = tuple(inputs)
    if names is None:
        names = arg_names(fn.forward if isinstance(fn, torch.nn.Module) else fn, len(inputs))
    slots = _select(inputs, names)
    pslots, consts, module = _param_slots(params, {s.name for s in slots})
    if module is None and isinstance(fn, torch.nn.Module):
        consts = list(fn.parameters()) + list(fn.buffers())
    slots = slots + pslots
    if not slots:
        raise BadInputError(
            f"none of {fname}'s inputs is a floating-point tensor, and no params were given.",
            "pass float tensors (integer tensors are passed through unperturbed).",
        )
    if forward_mode and pslots:
        raise BadInputError(
            "forward_mode=True checks the inputs' jvp; it does not support params.",
            "check the parameters with forward_mode=False.",
        )
    tc = _TorchCheck(fn, inputs, slots, consts, module if module is not None and module is fn else None, fname)
    findings: list[Finding] = []
    notes: list[str] = []
    try:
        # the original point, on the analytic side: output structure, dout, the reverse-mode gradient
        tc.use_native()
        out0, _ = _call(tc.call_native, ([tc.original(s).clone() for s in slots],), fname)
        flat0 = _flatten(out0)
        tc.out_mask = [_is_diff_tensor(t) for _, t in flat0]
        outs = [(n, t) for (n, t), keep in zip(flat0, tc.out_mask, strict=True) if keep]
        if not outs:
            raise BadInputError(f"{fname} returned no floating-point tensor.", "return a float tensor.")
        for n, t in outs:
            if not bool(torch.all(torch.isfinite(t.detach()))):
                raise NonFiniteError(
                    f"{fname}'s output {n} contains NaN or Inf at the original point.",
                    "check the inputs and the function for log(0), 0/0 or overflow.",
                )
        tc.douts, tc.u_parts = _parse_dout(dout, outs, seed, fname)
        tc.part_names = [pn for n, t in outs for pn in ([f"{n}.real", f"{n}.imag"] if t.is_complex() else [n])]
        tc.part_shapes = [tuple(t.shape) for _, t in outs for _ in range(2 if t.is_complex() else 1)]
        g = _call(tc.reverse, (), f"torch.autograd.grad through {fname}")
        g_fwd = _call(tc.forward, (), f"forward-mode AD through {fname}") if forward_mode else None

        # the trees: reported at the analytic dtype, perturbed at the numeric dtype
        rep_arrays, stand_in = {}, []
        for s in slots:
            np_dt = _np_dtype(_real_of(s.dtype))
            if np_dt is None:  # bfloat16: numpy has no such dtype
                np_dt = np.float16
                stand_in.append(s.name)
            for ln, p in zip(s.leaf_names, _parts(tc.original(s)), strict=True):
                rep_arrays[ln] = p.astype(np_dt)
        rep_tree = Tree(rep_arrays, "inputs", in_place=False, bare_keys=True)
        check_finite(rep_tree, g, f"gradient torch.autograd computes through {fname}")
        if g_fwd is not None:
            check_finite(rep_tree, g_fwd, f"forward-mode (jvp) derivative of {fname}")

        real, ev, why = _numeric_side(tc, slots, rep_tree, numeric_dtype, fname)
        notes.extend(why)
        if ev.mutated:
            findings.append(mutation_finding(fname, ev.mutated))
        grad_eps = None
        if stand_in:
            grad_eps = np.concatenate(
                [
                    np.full(
                        lf.size,
                        BFLOAT16_EPS
                        if lf.name.split(".")[0] in stand_in or lf.name in stand_in
                        else float(np.finfo(lf.dtype).eps),
                    )
                    for lf in rep_tree.leaves
                ]
            )
            notes.append(
                f"{', '.join(stand_in)} are bfloat16, which numpy lacks: they are stored as float16 for the "
                "report and their gradients are judged at bfloat16's resolution (eps 2**-7)."
            )

        can_vmap = not pslots or tc.module is not None
        if vectorized is True and not can_vmap:
            notes.append(
                "vectorized=True needs the parameters of an nn.Module that is fn itself (check_module); "
                "the function was evaluated one point at a time."
            )
        elif vectorized and can_vmap and (vectorized is True or rep_tree.size >= AUTO_MIN_ELEMENTS):
            ok = prefetch_first_differences(
                ev,
                strategy=strategy,
                samples=samples,
                seed=seed,
                step=step,
                batch=tc.batch_call(ev.tree),
                notes=notes,
                what="vectorized evaluation (torch.func.vmap)",
            )
            if ok:
                notes.append(f"first differences evaluated in batches with torch.func.vmap ({ev.n_prefetched} points).")

        sections = [Section(g, tc.reverse)]
        if g_fwd is not None:
            sections.append(
                Section(
                    g_fwd,
                    tc.forward,
                    JVP_PREFIX,
                    forward_note
                    or f"forward mode checked too: the leaves {JVP_PREFIX}<name> compare "
                    "forward-mode AD (a custom Function's jvp) with the same finite differences.",
                )
            )
        report = report_sections(
            grad_eps=grad_eps,
            title=fname,
            kind=kind,
            tree=rep_tree,
            ev=ev,
            sections=sections,
            strategy=strategy,
            samples=samples,
            atol=atol,
            rtol=rtol,
            step=step,
            seed=seed,
            findings=findings,
            notes=notes,
            started=started,
            curves=curves,
        )
    finally:
        tc.restore()
    dtypes = {ln: _dtype_name(_real_of(s.dtype)) for s in slots for ln in s.leaf_names}
    for lf in report.leaves:
        base = lf.name[len(JVP_PREFIX) :] if lf.name.startswith(JVP_PREFIX) else lf.name
        if base in dtypes:
            lf.dtype = dtypes[base]
    return report


def _call(fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> Any:
    try:
        return fn(*args)
    except (KeyboardInterrupt, SystemExit, BackcheckError):
        raise
    except Exception as exc:
        raise UserFunctionError(
            f"{what} raised {type(exc).__name__}: {exc}",
            "the original exception is chained above; every input tensor is unchanged.",
        ) from exc


def _numeric_side(
    tc: _TorchCheck, slots: list[_Slot], rep_tree: Tree, numeric_dtype: Any, fname: str
) -> tuple[Any, CachedEvaluator, list[str]]:
    """Choose the numeric dtype (float64 where fn allows it), build the evaluator, evaluate the point."""
    torch = tc.torch
    cands = _candidates(slots, numeric_dtype)
    forced = numeric_dtype != "auto"
    natives = {_real_of(s.dtype) for s in slots}
    reasons: list[str] = []
    for k, real in enumerate(cands):
        np_dt = _np_dtype(real)
        same = natives == {real}
        arrays = {
            ln: p.astype(np_dt) for s in slots for ln, p in zip(s.leaf_names, _parts(tc.original(s)), strict=True)
        }
        tree = rep_tree if same else Tree(arrays, "inputs", in_place=False, bare_keys=True)
        output = Output.cotangent(fname, tc.u_parts, tc.part_names, tc.part_shapes, lambda o: o)
        ev = CachedEvaluator(tree, tc.numeric_call, output, fname)
        tc.use_numeric(real)
        last = k == len(cands) - 1
        try:
            parts = tc.numeric_call(tree.current())
            tree.restore()
            wrong = [(n, p.dtype) for n, p in zip(tc.part_names, parts, strict=True) if p.dtype != np.dtype(np_dt)]
            if wrong and not (forced or last):
                reasons.append(f"{fname} returns {wrong[0][1]} for {_dtype_name(real)} inputs ({wrong[0][0]})")
                continue
        except (KeyboardInterrupt, SystemExit, BackcheckError):
            raise
        except Exception as exc:  # noqa: BLE001 - a function that refuses this dtype tries the next one
            tree.restore()
            if forced or last:
                raise UserFunctionError(
                    f"{fname} raised {type(exc).__name__} on {_dtype_name(real)} inputs: {exc}",
                    "the original exception is chained above; every input tensor is unchanged.",
                ) from exc
            reasons.append(f"{fname} raised {type(exc).__name__} on {_dtype_name(real)} inputs: {first_line(exc)}")
            continue
        ev.baseline()
        notes = []
        if reasons:
            notes.append("; ".join(reasons) + f", so the numeric side is evaluated in {_dtype_name(real)}.")
        if real != torch.float64 and not forced:
            notes.append(
                f"finite differences in {_dtype_name(real)} resolve only about "
                f"{torch.finfo(real).eps ** (2 / 3):.1g} of a derivative; a subtle error can pass."
            )
        return real, ev, notes
    raise AssertionError("unreachable")  # pragma: no cover


# ----------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------
def check(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    dout: Any = None,
    params: Any = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: int = 0,
    numeric_dtype: Any = "auto",
    forward_mode: bool | None = None,
    vectorized: bool | str = "auto",
    curves: bool = False,
) -> Report:
    """Check torch autograd's gradient of ``fn`` (including custom Functions inside it) by finite differences.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs) -> tensor`` or a tuple / list / dict of tensors (integer outputs are ignored).
    inputs : tensor or sequence
        The point. The tensors with ``requires_grad`` are checked, or every floating (and complex) tensor
        when none has it; other arguments are passed through unchanged. Names come from ``fn``'s signature.
    dout : tensor or sequence of tensors, optional
        The upstream gradient, one per float output. Default: 1 for a single scalar output (then the
        gradient itself is checked), else a seeded standard normal tensor in each output's dtype.
    params : nn.Module, dict or list of tensors, optional
        Tensors ``fn`` reads through a closure (a model's parameters), checked under their names
        (``fc1.weight[3, 7]``). While the check runs they point at private storage; afterwards they point at
        their own storage again, bit for bit unchanged, also when ``fn`` raises.
    strategy, samples, atol, rtol, step, seed, curves
        As in :func:`backcheck.check`.
    numeric_dtype : {'auto', 'native', 'float64', 'float32', 'float16'} or torch.dtype
        The dtype of the numeric side. 'auto' tries float64 and falls back to the inputs' own dtype when
        ``fn`` raises or returns another dtype (report.notes says so). The analytic gradient is always
        computed, and judged, at the inputs' own dtype and device.
    forward_mode : bool, optional
        Also check forward-mode AD (``torch.autograd.forward_ad``, a custom Function's ``jvp``): its
        directional derivatives appear as the leaves ``jvp:<name>``. Default False for ``check``.
    vectorized : bool or 'auto'
        Evaluate the first differences in batches with ``torch.func.vmap``; any vmap failure (a custom
        Function without ``setup_context``, ``.item()``, randomness) falls back to one point at a time.
        Verdicts and evaluation counts are the same either way.

    Returns
    -------
    Report

    Examples
    --------
    >>> import torch
    >>> import backcheck.torch as bt
    >>> x = torch.randn(3, 4, dtype=torch.float64)
    >>> w = torch.randn(4, 2, dtype=torch.float64)
    >>> bt.check(lambda x, w: torch.tanh(x @ w), (x, w)).ok
    True
    """
    return _check(
        fn,
        inputs,
        dout=dout,
        params=params,
        strategy=strategy,
        samples=samples,
        atol=atol,
        rtol=rtol,
        step=step,
        seed=seed,
        numeric_dtype=numeric_dtype,
        forward_mode=bool(forward_mode),
        vectorized=vectorized,
        curves=curves,
    )


def check_function(
    function: type[torch.autograd.Function],
    *inputs: Any,
    dout: Any = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: int = 0,
    numeric_dtype: Any = "auto",
    forward_mode: bool | None = None,
    vectorized: bool | str = "auto",
    curves: bool = False,
) -> Report:
    """Check a custom ``torch.autograd.Function``: its ``backward`` and, if it has one, its ``jvp``.

    Parameters
    ----------
    function : subclass of torch.autograd.Function
        Called as ``function.apply(*inputs)``. Names come from its ``forward`` signature (``ctx`` dropped).
    *inputs
        The point (see :func:`check`).
    forward_mode : bool, optional
        Check the ``jvp`` too (leaves ``jvp:<name>``). Default: when the Function defines ``jvp``.
    dout, strategy, samples, atol, rtol, step, seed, numeric_dtype, vectorized, curves
        As in :func:`check`.

    Returns
    -------
    Report

    Examples
    --------
    >>> import torch
    >>> import backcheck.torch as bt
    >>> class Cube(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> bt.check_function(Cube, torch.randn(5, dtype=torch.float64)).ok
    True
    """
    torch = _torch()
    if not (isinstance(function, type) and issubclass(function, torch.autograd.Function)):
        raise BadInputError(
            f"check_function takes a torch.autograd.Function subclass, not {function!r}.",
            "for a plain function use backcheck.torch.check(fn, inputs).",
        )
    has_jvp = getattr(function, "jvp", None) is not torch.autograd.Function.jvp
    if forward_mode is True and not has_jvp:
        raise BadInputError(
            f"{function.__name__} defines no jvp staticmethod, so forward mode cannot be checked.",
            "define jvp(ctx, *tangents), or pass forward_mode=None.",
        )
    fwd = has_jvp if forward_mode is None else bool(forward_mode)
    names = arg_names(function.forward, len(inputs), skip_ctx=True)
    return _check(
        function.apply,
        inputs,
        names=names,
        title=function.__name__,
        kind="function",
        dout=dout,
        strategy=strategy,
        samples=samples,
        atol=atol,
        rtol=rtol,
        step=step,
        seed=seed,
        numeric_dtype=numeric_dtype,
        forward_mode=fwd,
        vectorized=vectorized,
        curves=curves,
        forward_note=f"forward mode checked too: the leaves {JVP_PREFIX}<name> compare "
        f"{function.__name__}.jvp with the same finite differences."
        if fwd
        else "",
    )


def check_module(
    module: Any,
    *inputs: Any,
    dout: Any = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: int = 0,
    numeric_dtype: Any = "auto",
    vectorized: bool | str = "auto",
    curves: bool = False,
) -> Report:
    """Check an ``nn.Module``'s gradients for its inputs and its parameters, by the parameters' own names.

    The parameters (those with ``requires_grad``) are perturbed through private storage under
    ``torch.no_grad``; afterwards every parameter and buffer points at its own storage again, bit for bit
    unchanged, also when ``forward`` raises (batch-norm running statistics included).

    Parameters
    ----------
    module : nn.Module
    *inputs
        The point; float inputs are checked too (those with ``requires_grad``, or all when none has it).
    dout, strategy, samples, atol, rtol, step, seed, numeric_dtype, vectorized, curves
        As in :func:`check`; vectorization uses ``torch.func.functional_call``.

    Returns
    -------
    Report
        Leaves such as ``x`` and ``fc1.weight``; elements such as ``fc1.weight[3, 7]``.

    Examples
    --------
    >>> import torch
    >>> import backcheck.torch as bt
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    >>> report = bt.check_module(mlp, torch.randn(5, 3, dtype=torch.float64))
    >>> report.ok, [lf.name for lf in report.leaves][1:3]
    (True, ['0.weight', '0.bias'])
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise BadInputError(
            f"check_module takes an nn.Module, not a {type(module).__name__}.",
            "for a function use backcheck.torch.check(fn, inputs).",
        )
    return _check(
        module,
        inputs,
        kind="module",
        dout=dout,
        params=module,
        strategy=strategy,
        samples=samples,
        atol=atol,
        rtol=rtol,
        step=step,
        seed=seed,
        numeric_dtype=numeric_dtype,
        vectorized=vectorized,
        curves=curves,
    )


# ----------------------------------------------------------------------------------------------------------
# blame
# ----------------------------------------------------------------------------------------------------------
@dataclass
class BlameRow:
    """The isolated check of one call of one leaf submodule."""

    name: str
    type: str
    status: str  # 'pass' | 'fail' | 'inconclusive' | 'unused' | 'error'
    n_checked: int = 0
    worst: str = ""
    max_rel_err: float = 0.0
    n_evals: int = 0
    message: str = ""
    report: Report | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "n_checked": self.n_checked,
            "worst": self.worst,
            "max_rel_err": self.max_rel_err,
            "n_evals": self.n_evals,
            "message": self.message,
            "report": self.report.to_dict() if self.report is not None else None,
        }


@dataclass
class Blame:
    """One row per leaf submodule call, in forward order; :attr:`first_failing` is the one to fix first."""

    title: str
    rows: list[BlameRow]

    @property
    def first_failing(self) -> BlameRow | None:
        return next((r for r in self.rows if r.status in ("fail", "error")), None)

    @property
    def ok(self) -> bool:
        return all(r.status in ("pass", "unused") for r in self.rows)

    def row(self, name: str) -> BlameRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no submodule named {name!r}; the rows are {[r.name for r in self.rows]}")

    def to_dict(self) -> dict[str, Any]:
        first = self.first_failing
        return {
            "title": self.title,
            "ok": self.ok,
            "first_failing": first.name if first else None,
            "rows": [r.to_dict() for r in self.rows],
        }

    def __str__(self) -> str:
        first = self.first_failing
        head = f"backcheck blame: {self.title} ({len(self.rows)} submodule call(s); " + (
            f"first failing: {first.name})" if first else "all pass)"
        )
        table = [["submodule", "type", "verdict", "checked", "worst element", "max rel err", "evals", ""]]
        for r in self.rows:
            table.append(
                [
                    r.name,
                    r.type,
                    r.status if r.status in ("pass", "unused") else r.status.upper(),
                    str(r.n_checked),
                    r.worst,
                    f"{r.max_rel_err:.3g}",
                    str(r.n_evals),
                    "<-- first failing" if r is first else "",
                ]
            )
        widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
        lines = [head] + [
            "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table
        ]
        lines += [f"  {r.name}: {r.message}" for r in self.rows if r.message]
        return "\n".join(lines)


def blame(
    module: Any,
    *inputs: Any,
    loss_fn: Callable[[Any], Any] | None = None,
    strategy: str | None = None,
    samples: int | None = None,
    seed: int = 0,
    numeric_dtype: Any = "auto",
    vectorized: bool | str = "auto",
) -> Blame:
    """Find the submodule whose backward pass is wrong: check every leaf submodule in isolation.

    One forward and backward pass through ``module`` records, with hooks, each leaf submodule's actual
    inputs and the upstream gradient of its output; then each is checked alone (its parameters and its
    float inputs) at those inputs with that upstream gradient, like :func:`check_module`. The module's
    parameters, buffers and ``.grad`` are unchanged afterwards.

    Parameters
    ----------
    module : nn.Module
    *inputs
        The network's inputs.
    loss_fn : callable, optional
        ``loss_fn(output) -> scalar tensor``; default ``<dout, output>`` with a seeded normal ``dout``.
    strategy, samples, seed, numeric_dtype, vectorized
        As in :func:`check` (for each submodule's check).

    Returns
    -------
    Blame
        ``str(blame)`` is a table; ``blame.first_failing`` the first failing submodule in forward order.

    Examples
    --------
    >>> import torch
    >>> import backcheck.torch as bt
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    >>> result = bt.blame(net, torch.randn(2, 3, dtype=torch.float64))
    >>> [r.name for r in result.rows], result.first_failing is None
    (['0', '1', '2'], True)
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise BadInputError(f"blame takes an nn.Module, not a {type(module).__name__}.", "pass the model.")
    leaves = [(n, m) for n, m in module.named_modules() if not list(m.children())]
    calls: list[dict[str, Any]] = []
    pending: dict[int, list[dict[str, Any]]] = {}
    handles = []

    def make_pre_hook(name: str) -> Callable[..., None]:
        def pre_hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            # before forward, so an in-place submodule (ReLU(inplace=True)) has not yet overwritten its input
            rec = {
                "name": name,
                "module": mod,
                "kwargs": dict(kwargs),
                "grads": {},
                "outs": [],
                "args": tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args),
            }
            calls.append(rec)
            pending.setdefault(id(mod), []).append(rec)

        return pre_hook

    def post_hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        rec = pending[id(mod)].pop()
        outs = [t for _, t in _flatten(out) if _is_diff_tensor(t)]
        rec["outs"] = [torch.zeros_like(t.detach()) for t in outs]
        for k, t in enumerate(outs):
            if t.requires_grad:
                t.register_hook(lambda gr, k=k, rec=rec: rec["grads"].__setitem__(k, gr.detach().clone()))

    swap = _Swap(list(module.parameters()) + list(module.buffers()))
    try:
        swap.set([t.detach().clone() for t in swap.saved])  # batch-norm statistics update private copies
        for name, m in leaves:
            handles.append(m.register_forward_pre_hook(make_pre_hook(name or type(m).__name__), with_kwargs=True))
            handles.append(m.register_forward_hook(post_hook, with_kwargs=True))
        ins = [a.detach().clone().requires_grad_(True) if _is_diff_tensor(a) else a for a in inputs]
        with torch.enable_grad():
            out = module(*ins)
            if loss_fn is not None:
                loss = loss_fn(out)
            else:
                outs = [t for _, t in _flatten(out) if _is_diff_tensor(t)]
                us = default_cotangent([tuple(t.shape) for t in outs], seed, [bool(t.is_complex()) for t in outs])
                loss = sum(
                    torch.sum(t * torch.from_numpy(np.asarray(u)).to(t.device, t.dtype)).real
                    for t, u in zip(outs, us, strict=True)
                )
            targets = [t for t in [*ins, *module.parameters()] if isinstance(t, torch.Tensor) and t.requires_grad]
            torch.autograd.grad(loss, targets, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        swap.restore()

    counts: dict[str, int] = {}
    rows = []
    for rec in calls:
        counts[rec["name"]] = counts.get(rec["name"], 0) + 1
        label = rec["name"] if counts[rec["name"]] == 1 else f"{rec['name']} (call {counts[rec['name']]})"
        mtype = type(rec["module"]).__name__
        if not rec["grads"]:
            rows.append(BlameRow(label, mtype, "unused", message="its output does not reach the loss."))
            continue
        douts = [rec["grads"].get(k, z) for k, z in enumerate(rec["outs"])]
        try:
            report = _blame_one(
                rec["module"],
                rec["args"],
                rec["kwargs"],
                douts,
                strategy,
                samples,
                seed,
                numeric_dtype,
                vectorized,
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - one submodule's error does not stop the others
            rows.append(BlameRow(label, mtype, "error", message=f"{type(exc).__name__}: {first_line(exc)}"))
            continue
        wrong = [e for lf in report.leaves for e in lf.worst if e.status in ("mismatch", "dead")]
        worst = (
            wrong[0]
            if wrong
            else max((e for lf in report.leaves for e in lf.worst), key=lambda e: e.rel_err, default=None)
        )
        rows.append(
            BlameRow(
                label,
                mtype,
                report.status,
                sum(lf.n_checked for lf in report.leaves),
                worst.name if worst else "",
                max((lf.max_rel_err for lf in report.leaves), default=0.0),
                report.n_evals,
                report=report,
            )
        )
    return Blame(type(module).__name__, rows)


def _blame_one(
    mod: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    douts: list[Any],
    strategy: str | None,
    samples: int | None,
    seed: int,
    numeric_dtype: Any,
    vectorized: bool | str,
) -> Report:
    ins = tuple(a.detach().clone() if _is_diff_tensor(a) else a for a in args)
    if not kwargs:
        return check_module(
            mod,
            *ins,
            dout=douts,
            strategy=strategy,
            samples=samples,
            seed=seed,
            numeric_dtype=numeric_dtype,
            vectorized=vectorized,
        )
    return _check(
        lambda *a: mod(*a, **kwargs),
        ins,
        names=arg_names(mod.forward, len(ins)),
        title=type(mod).__name__,
        kind="module",
        dout=douts,
        params=mod,
        strategy=strategy,
        samples=samples,
        seed=seed,
        numeric_dtype=numeric_dtype,
        vectorized=vectorized,
    )
