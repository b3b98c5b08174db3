"""Set-up of a torch check: which tensors are checked, which outputs, the cotangent, and the numeric dtype."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backcheck.bits import BFLOAT16_EPS
from backcheck.calls import first_line, flat_outputs
from backcheck.errors import (
    BackcheckError,
    BadInputError,
    GradientStructureError,
    NonFiniteError,
    ParamsError,
    UserFunctionError,
)
from backcheck.evaluate import Evaluator, Output
from backcheck.frontends.common import CachedEvaluator, zero_dout_error
from backcheck.frontends.torch._session import Session
from backcheck.frontends.torch._tensors import (
    Slot,
    dtype_name,
    is_diff_tensor,
    items,
    np_dtype,
    parts,
    real_of,
    refuse_sparse,
    torch_module,
)
from backcheck.outputs import nudge_ulp, same_function_tolerance, within_spread
from backcheck.tree import Tree


class TorchEvaluator(CachedEvaluator):
    """A :class:`CachedEvaluator` that remembers directions only when a second section (forward mode) will ask
    for them again: remembering copies every direction's displacements, a few passes over a large array."""

    remember_directions = True

    def direction(self, *args: Any, **kwargs: Any) -> tuple[np.ndarray, list]:
        if not self.remember_directions:
            return Evaluator.direction(self, *args, **kwargs)
        return super().direction(*args, **kwargs)


def input_slots(args: Sequence[Any], kwargs: Mapping[str, Any], names: list[str]) -> list[Slot]:
    """The checked inputs: those with ``requires_grad``, or every float (and complex) tensor when none has it.

    Tensors inside a list or tuple argument (``torch.cat([x, y])``'s TensorList) or a dict argument (``f(batch)``
    with ``batch = {"x": x, "w": w}``) are inputs too, named ``tensors[1]`` (``batch['x']``) and placed by
    ``(argument, index or key)``; when none has ``requires_grad`` they are checked only if no argument is itself a
    float tensor.
    """
    given: list[tuple[int | str, str, Any]] = [(k, names[k], a) for k, a in enumerate(args)]
    given += [(k, k, a) for k, a in kwargs.items()]
    found: list[tuple[Any, str, Any, bool]] = []  # (place, name, tensor, inside a list), in argument order
    for k, n, a in given:
        refuse_sparse(a, f"input {n}")
        if is_diff_tensor(a):
            found.append((k, n, a, False))
        elif items(a) is not None:
            for j, t in items(a):
                label = f"{n}[{j!r}]" if type(a) is dict else f"{n}[{j}]"
                refuse_sparse(t, f"input {label}")
                if is_diff_tensor(t):
                    found.append(((k, j), label, t, True))
                elif items(t) is not None:
                    _refuse_nested(t, label)
    marked = [f for f in found if f[2].requires_grad]
    top = [f for f in found if not f[3]]
    return [Slot(n, a, "input", k) for k, n, a, _ in (marked or top or found)]


def _refuse_nested(x: Any, label: str, depth: int = 0) -> None:
    """:class:`BadInputError` for a tensor that requires grad two or more levels inside an argument: it would be
    passed through unchecked, its gradient never compared (tensors without requires_grad there, masks inside a
    config, are passed through)."""
    if depth > 4:
        return
    for j, t in items(x) or ():
        inner = f"{label}[{j!r}]" if type(x) is dict else f"{label}[{j}]"
        if is_diff_tensor(t) and t.requires_grad:
            raise BadInputError(
                f"input {inner} is a tensor that requires grad two or more levels inside its argument; backcheck.torch "
                "checks the tensors of an argument and of the lists and dicts directly in it, so its gradient would "
                "never be compared.",
                "pass the tensors one level deep ({'x': x, 'w': w}) or as arguments of their own.",
            )
        if items(t) is not None:
            _refuse_nested(t, inner, depth + 1)


def param_slots(params: Any, names_taken: set[str]) -> tuple[list[Slot], list[Any], Any]:
    """(parameter slots, constant tensors to cast alongside, the module if params is one)."""
    torch = torch_module()
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
        refuse_sparse(p, f"parameter {n}")
        if not is_diff_tensor(p):
            raise BadInputError(
                f"parameter {n} is not a floating-point tensor ({type(p).__name__}).",
                "pass only float or complex tensors as params.",
            )
        name = str(n) if str(n) not in names_taken else f"param:{n}"
        slots.append(Slot(name, p, "param", k, key=str(n)))
    _refuse_shared(slots)
    return slots, consts, module


def _refuse_shared(slots: list[Slot]) -> None:
    """:class:`ParamsError` naming two parameters that are one tensor (or views of the same memory, laid out
    alike): the check gives every parameter storage of its own, and one tensor cannot hold two."""
    seen: dict[tuple[Any, ...], Slot] = {}
    for s in slots:
        t = s.tensor
        if not t.numel():
            continue  # empty tensors hold no memory to share
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        first = seen.setdefault(key, s)
        if first is not s:
            raise ParamsError(
                f"params {first.key!r} and {s.key!r} are the same tensor: perturbing one moves the other, so their "
                "gradients cannot be checked apart.",
                "pass the tensor once (the gradient of a parameter used twice is the sum over its uses), or pass a "
                "clone where they are meant to be separate parameters.",
            )


def choose_outputs(sess: Session, out0: Any) -> tuple[list[tuple[str, Any]], str]:
    """The outputs that enter the check, and a note on the float outputs left out.

    Float outputs that autograd does not differentiate (``ctx.mark_non_differentiable``, batch norm's saved
    statistics, anything computed without grad) have no gradient to check, so they are left out of both
    sides; when no float output is differentiable they all stay in, and a missing gradient fails.
    """
    flat0 = flat_outputs(out0, "out", f"{sess.fname}'s output")
    for n, t in flat0:
        refuse_sparse(t, f"{sess.fname}'s output {n}")
    floats = [is_diff_tensor(t) for _, t in flat0]
    grads = [f and bool(t.requires_grad) for f, (_, t) in zip(floats, flat0, strict=True)]
    sess.out_mask = grads if any(grads) else floats
    left = [n for (n, _), f, g in zip(flat0, floats, grads, strict=True) if f and not g and any(grads)]
    outs = [(n, t) for (n, t), keep in zip(flat0, sess.out_mask, strict=True) if keep]
    sess.half_outputs = {k for k, (_, t) in enumerate(outs) if _fits_half(t)}
    if not outs:
        raise BadInputError(f"{sess.fname} returned no floating-point tensor.", "return a float tensor.")
    note = ""
    if left:
        note = (
            f"{', '.join(left)} {'is' if len(left) == 1 else 'are'} not differentiable (autograd does not track "
            f"{'it' if len(left) == 1 else 'them'}: ctx.mark_non_differentiable, saved statistics, or computed "
            "without grad), so only the differentiable outputs are checked."
        )
    if sess.half_outputs:
        halves = ", ".join(outs[k][0] for k in sorted(sess.half_outputs))
        note = (note + " " if note else "") + (
            f"{halves} (bfloat16) enter the numeric side as float16, which holds their values exactly (numpy has "
            "no bfloat16); the bounds take bfloat16's rounding."
        )
    return outs, note


def _fits_half(t: Any) -> bool:
    """A real bfloat16 tensor whose values float16 holds exactly: numpy has no bfloat16, and as float16 the
    core sees a rounding 8 times finer than bfloat16's instead of 65536 times (as float32)."""
    torch = torch_module()
    if t.dtype != torch.bfloat16:
        return False
    t = t.detach()
    return bool(torch.equal(t.to(torch.float16).to(torch.bfloat16), t))


def named_dtype(numeric_dtype: Any) -> Any:
    """The torch dtype a ``numeric_dtype`` option names ('auto' and 'native' stay strings); typed error else."""
    torch = torch_module()
    if numeric_dtype in ("auto", "native"):
        return numeric_dtype
    named = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16}
    named.update({d: d for d in (torch.float64, torch.float32, torch.float16)})
    if numeric_dtype not in named:
        raise BadInputError(
            f"numeric_dtype={numeric_dtype!r} is not supported.",
            "use 'auto', 'native', 'float64', 'float32' or 'float16'.",
        )
    return named[numeric_dtype]


def candidates(slots: list[Slot], numeric_dtype: Any) -> list[Any]:
    """The numeric dtypes to try, widest first."""
    torch = torch_module()
    chosen = named_dtype(numeric_dtype)
    lowest = min((real_of(s.dtype) for s in slots), key=lambda d: torch.finfo(d).bits)
    if chosen == "auto":
        return [torch.float64, torch.float32] + ([torch.float16] if lowest == torch.float16 else [])
    if chosen == "native":
        return [torch.float32] if lowest == torch.bfloat16 else [lowest]
    return [chosen]


def default_dout(outs: list[tuple[str, Any]], rng: np.random.Generator) -> list[np.ndarray]:
    """Ones for a single real scalar output (the gradient itself is checked), else standard normal draws."""
    if len(outs) == 1 and outs[0][1].numel() == 1 and not outs[0][1].is_complex():
        return [np.ones(tuple(outs[0][1].shape))]
    us = []
    for _, t in outs:
        u = rng.standard_normal(tuple(t.shape))
        us.append(u + 1j * rng.standard_normal(tuple(t.shape)) if t.is_complex() else u)
    return us


def parse_dout(
    dout: Any, outs: list[tuple[str, Any]], rng: np.random.Generator, fname: str
) -> tuple[list[Any], list[np.ndarray]]:
    """(torch douts in the output dtypes, numpy cotangent parts in float64); ``rng`` draws the default."""
    torch = torch_module()
    if dout is None:
        given = [torch.from_numpy(np.asarray(u)) for u in default_dout(outs, rng)]
    else:
        given = [t for _, t in flat_outputs(dout, "dout", "dout")]
        if len(given) != len(outs):
            raise GradientStructureError(
                f"dout has {len(given)} tensor(s), but {fname} returns {len(outs)} differentiable output(s) "
                f"({', '.join(n for n, _ in outs)}).",
                "pass one upstream gradient per differentiable float output, in order.",
            )
        given = [_dout_tensor(g, name) for (name, _), g in zip(outs, given, strict=True)]
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
        masked = torch.isinf(o.detach()) if not o.is_complex() else torch.zeros(o.shape, dtype=torch.bool)
        if not bool(torch.all(torch.isfinite(g) | masked.to(g.device))):
            raise NonFiniteError(f"dout for {name} contains NaN or Inf.", "pass a finite upstream gradient dout.")
        d = g.detach().to(device=o.device, dtype=o.dtype).clone()
        if bool(masked.any()):
            d[masked] = 0  # a masked entry (-inf) gets no gradient, as a softmax after the mask
        douts.append(d)
    if sum(d.numel() for d in douts) and not any(bool(torch.any(d != 0)) for d in douts):
        masked = any(not o.is_complex() and bool(torch.isinf(o.detach()).any()) for _, o in outs)
        # (an empty output has no element to be zero)
        raise zero_dout_error(fname, masked=masked)
    return douts, [p.astype(np.float64) for d in douts for p in parts(d)]


def _dout_tensor(g: Any, name: str) -> Any:
    """A user's dout entry as a tensor (numbers and numpy arrays converted), or GradientStructureError."""
    torch = torch_module()
    if isinstance(g, torch.Tensor) and g.layout != torch.strided and not g.is_nested and g.device.type != "meta":
        return g.to_dense()  # a sparse cotangent is the dense one it stands for
    if isinstance(g, torch.Tensor):
        refuse_sparse(g, f"dout for {name}")
        return g
    try:
        return torch.as_tensor(np.asarray(g))
    except (TypeError, ValueError, RuntimeError):
        raise GradientStructureError(
            f"dout for {name} is a {type(g).__name__} that is not a tensor of numbers.",
            "pass a float tensor of the output's shape.",
        ) from None


def numeric_tree(sess: Session, real: Any, rep_tree: Tree) -> Tree:
    """The tree the numeric side perturbs: the report tree itself when its dtypes are ``real`` already."""
    if {real_of(s.dtype) for s in sess.slots} == {real}:
        return rep_tree
    arrays = {
        ln: p.astype(np_dtype(real))
        for s in sess.slots
        for ln, p in zip(s.leaf_names, parts(sess.original(s)), strict=True)
    }
    return Tree(arrays, "inputs", in_place=False, bare_keys=True)


def _another_function(sess: Session, output: Output, got: list[np.ndarray], native: list[np.ndarray], real: Any) -> str:
    """A reason not to use ``real`` when ``fn`` computes another function in it than at its own dtype."""
    torch = sess.torch
    lowest = max((torch.finfo(real_of(s.dtype)).eps for s in sess.slots), default=0.0)
    if torch.finfo(real).eps >= lowest:
        return ""
    phi, scale, _ = output.reduce(got)
    phi_n, scale_n, _ = output.reduce(native)
    if abs(phi - phi_n) <= same_function_tolerance(lowest) * max(scale, scale_n):
        return ""
    moved = _nudged_native(sess)
    if moved is not None and within_spread(phi, phi_n, output.reduce(moved)[0], lowest):
        return ""  # within the native run's own rounding, measured (a batch norm of values near 1e4 in float32)
    return (
        f"{sess.fname} in {dtype_name(real)} is another function than at its inputs' own dtype (<dout, output> "
        f"{phi:.6g} against {phi_n:.6g} at the original point, beyond rounding)"
    )


def _nudged_native(sess: Session) -> list[np.ndarray] | None:
    """The checked outputs at the inputs moved by one unit in the last place, up or down at random, in their
    own dtype (one dtype for every slot; None otherwise, or where the call raises)."""
    torch = sess.torch
    natives = {real_of(s.dtype) for s in sess.slots}
    if len(natives) != 1:
        return None
    (native,) = natives
    gen = np.random.default_rng(0)
    arrays = {}
    for s in sess.slots:
        for ln, p in zip(s.leaf_names, parts(sess.original(s)), strict=True):
            arrays[ln] = np.array(p, copy=True)
            nudge_ulp(arrays[ln], gen, float(torch.finfo(native).eps))
    tree = Tree(arrays, "inputs", in_place=False, bare_keys=True)
    real = sess.numeric_real
    sess.use_numeric(native)
    try:
        return sess.numeric_call(tree.current())
    except Exception:  # noqa: BLE001 - no measure: the native dtype it is
        return None
    finally:
        sess.use_numeric(real)


def _native_is(sess: Session, real: Any) -> bool:
    """Whether the numeric side in ``real`` calls ``fn`` exactly as the native call did: every checked tensor
    and every constant the check casts is in ``real`` already, and no unchecked float argument is widened."""
    floats = [t.dtype for t in sess.const_swap.saved if t.is_floating_point() or t.is_complex()]
    return all(real_of(d) == real for d in [*(s.dtype for s in sess.slots), *floats]) and not sess.widens(real)


def numeric_side(
    sess: Session, rep_tree: Tree, numeric_dtype: Any, native: list[np.ndarray], repeat: bool = True
) -> tuple[Any, TorchEvaluator, list[str]]:
    """Choose the numeric dtype (float64 where fn allows it), build the evaluator, evaluate the point.

    ``native`` holds the checked outputs at the inputs' own dtype; ``repeat`` as in :meth:`Evaluator.baseline`. A
    wider dtype is used only where ``fn`` runs in it, returns it, and computes the same function there: at the
    original point its value agrees with the native one up to the native dtype's rounding (a function that draws
    random numbers in its input's dtype, or takes another path for float64, is another function in float64). When
    every candidate dtype fails, the error names the first failure (the widest dtype's), with the later ones after
    it: a fallback's error is a consequence, not the cause.
    """
    torch = sess.torch
    cands = candidates(sess.slots, numeric_dtype)
    forced = numeric_dtype != "auto"
    reasons: list[str] = []
    first: Exception | None = None
    for k, real in enumerate(cands):
        tree = numeric_tree(sess, real, rep_tree)
        output = Output.cotangent(sess.fname, sess.u_parts, sess.part_names, sess.part_shapes, lambda o: o)
        ev = TorchEvaluator(tree, sess.numeric_call, output, sess.fname)
        sess.use_numeric(real)
        last = k == len(cands) - 1
        # the native call at the original point was this very call (after a failed candidate, the call is made:
        # its failure is reported with the first cause)
        same = not reasons and _native_is(sess, real)
        try:
            got = native if same else sess.numeric_call(tree.current())
        except (KeyboardInterrupt, SystemExit, BackcheckError):
            raise
        except Exception as exc:  # a function that refuses this dtype tries the next one
            first = first or exc
            reasons.append(f"{sess.fname} raised {type(exc).__name__} on {dtype_name(real)} inputs: {first_line(exc)}")
            if forced or last:
                raise UserFunctionError(
                    "; ".join(reasons) + ".",
                    "the first exception is chained above; every input tensor is unchanged.",
                ) from first
            continue
        finally:
            tree.restore()
        bf16 = {sess.out_names[k] for k in sess.half_outputs}  # (bfloat16 outputs enter as float16)
        wrong = [
            (n, "bfloat16" if n in bf16 and p.dtype == np.float16 else p.dtype)
            for n, p in zip(sess.part_names, got, strict=True)
            if p.dtype != np.dtype(np_dtype(real))
        ]
        if wrong and not (forced or last):
            reasons.append(f"{sess.fname} returns {wrong[0][1]} for {dtype_name(real)} inputs ({wrong[0][0]})")
            continue
        other = "" if forced or last else _another_function(sess, output, got, native, real)
        if other:
            reasons.append(other)
            continue
        # bfloat16 outputs held as float16 or float32 round as bfloat16 does: the evaluator's bounds take its epsilon
        ev.out_unit = BFLOAT16_EPS if sess.bfloat16_out else 0.0
        # the baseline's first call at the point is the native call, made already; its second call is made
        sess.primed = list(native) if same else None
        try:
            ev.baseline(repeat)
        finally:
            sess.primed = None
        notes = []
        if reasons:
            notes.append("; ".join(reasons) + f", so the numeric side is evaluated in {dtype_name(real)}.")
        if real != torch.float64 and not forced:
            notes.append(
                f"finite differences in {dtype_name(real)} resolve only about "
                f"{torch.finfo(real).eps ** (2 / 3):.1g} of a derivative; a subtle error can pass."
            )
        return real, ev, notes
    raise AssertionError("unreachable")  # pragma: no cover
