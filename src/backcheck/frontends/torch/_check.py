"""A torch check as the core contract: set-up, the analytic side, then :func:`backcheck.run.run`.

``check_torch(target, knobs)`` is what ``check``, ``check_function``, ``check_module`` and ``blame`` call. It
builds a :class:`~backcheck.contract.Contract` whose evaluator is already at its baseline (the numeric dtype is
chosen by trying it), runs it, and, for a function with several differentiable outputs, runs one more contract
per output: that output alone, the others' gradients undefined (``None``), as autograd leaves them when they
do not reach the loss.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import backcheck.frontends.torch._analytic as side
from backcheck.bits import BFLOAT16_EPS, machine_eps
from backcheck.calls import call_user, first_line, require_callable
from backcheck.contract import Analytic, Contract, Section
from backcheck.errors import BackcheckError, BadInputError, NondeterministicError, UserFunctionError
from backcheck.evaluate import Output
from backcheck.findings import error_notes, mutation_finding
from backcheck.frontends.common import (
    AUTO_MIN_ELEMENTS,
    JVP_PREFIX,
    CachedEvaluator,
    linearity_finding,
    settle_linearity,
    wide_disagreement,
)
from backcheck.frontends.torch._buffers import own_buffers, rebind_all, written_buffers
from backcheck.frontends.torch._in_place import first_call
from backcheck.frontends.torch._jvp import forward, forward_probed
from backcheck.frontends.torch._outputs import (
    NONE_GRAD_HINT,
    AloneRaised,
    alone_finding,
    masks_held,
    merge_alone,
    output_eps,
    refuse_nonfinite,
    through_narrow_outputs,
)
from backcheck.frontends.torch._session import Session
from backcheck.frontends.torch._setup import (
    TorchEvaluator,
    choose_outputs,
    input_slots,
    numeric_side,
    param_slots,
    parse_dout,
)
from backcheck.frontends.torch._tensors import (
    dtype_name,
    np_dtype,
    own_storage,
    parts,
    reachable_tensors,
    real_of,
    torch_module,
)
from backcheck.frontends.torch._unchecked import declared, unchecked_notes
from backcheck.frontends.torch._vmap import prefetch
from backcheck.options import Options
from backcheck.outputs import computed_dtype
from backcheck.randomness import FrozenRandom, find_generators, replay_note
from backcheck.report import Finding, Report
from backcheck.run import run
from backcheck.strategies import defers_repeat
from backcheck.tree import Tree

#: A float32 (or narrower) backward pass whose result differs from its float64 run by more than this many
#: units of its dtype's epsilon (of the largest gradient element) is ill-conditioned at the point, and the
#: report says so: its rounding alone is that large, whatever the formula. The backward passes of ordinary
#: layers (matmul, conv, norms, attention on small tensors) stay within a few dozen units; an SVD backward at
#: singular values 1e-3 apart is at several hundred.
ILL_CONDITIONED_ULPS = 128.0


@dataclass(frozen=True)
class Target:
    """What is checked: ``fn(*args, **kwargs)``, the inputs' names, and the parameters it reads."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    title: str = "f"
    kind: str = "torch"
    params: Any = None  # an nn.Module, a dict or a list of tensors fn reads through a closure
    module: Any = None  # the nn.Module that is fn itself (vmap batches its parameters with functional_call)
    consts: tuple[Any, ...] = ()  # tensors cast with the numeric dtype (a module's buffers)
    constant: tuple[str, ...] = ()  # inputs passed through unperturbed, by name (constant=)


@dataclass(frozen=True)
class Knobs:
    """How it is checked: the core's options and the torch frontend's own."""

    options: Options
    dout: Any = None
    numeric_dtype: Any = "auto"
    vectorized: bool | str = "auto"
    forward_mode: bool = False
    forward_note: str = ""


def check_torch(target: Target, knobs: Knobs) -> Report:
    """Check ``target`` as ``knobs`` say; the user's tensors and parameters are unchanged afterwards. Under
    ``torch.inference_mode()`` (where autograd records nothing, and ``enable_grad`` cannot turn it on) the check
    runs with inference mode off, as it does with grad enabled under ``no_grad``."""
    with torch_module().inference_mode(False):
        return _check_torch(target, knobs)


def _check_torch(target: Target, knobs: Knobs) -> Report:
    require_callable(target.fn, "fn", "pass the function (or nn.Module) to check first: check(fn, *inputs).")
    _refuse_lazy(target)
    slots = _unless_constant(input_slots(target.args, target.kwargs, list(target.names)), target)
    pslots, consts, module = param_slots(target.params, {s.name for s in slots})
    if not slots + pslots:
        arrays = [str(n) for n, a in zip(target.names, target.args, strict=False) if isinstance(a, np.ndarray)]
        raise BadInputError(
            f"none of {target.title}'s inputs is a floating-point tensor, and no params were given"
            + (f" ({', '.join(arrays)}: a numpy array, which backcheck.torch does not perturb)." if arrays else "."),
            "pass float tensors (integer tensors are passed through unperturbed)"
            + ("; torch.from_numpy(a) makes one, or backcheck.check checks a numpy function." if arrays else "."),
        )
    if knobs.forward_mode and pslots:
        raise BadInputError(
            "forward_mode=True checks the inputs' jvp; it does not support params.",
            "check the parameters with forward_mode=False.",
        )
    random, found = knobs.options.random, (slots, pslots, consts, module)
    start = _frozen(target)  # the generators as the user left them: so they are again afterwards
    own = own_buffers(target.module, target.params)  # (a forward may rebind one: put back afterwards)
    try:
        return _check_session(target, knobs, found, start if random == "freeze" else None)
    except NondeterministicError as exc:
        if random != "auto":
            raise written_buffers(target, exc) from None
        # random (dropout, sampling): checked again with the same random stream at every call
        start.restore()
        try:
            return _check_session(target, knobs, found, start)
        except NondeterministicError as again:
            start.restore()
            raise written_buffers(target, again) from None
    finally:
        start.restore()
        rebind_all(own)


def _refuse_lazy(target: Target) -> None:
    """A typed error for a module whose lazy parameters (nn.LazyLinear) do not exist yet: the check would
    create them on the user's own module, and its storage swaps would leave them broken."""
    torch = torch_module()
    for m in (target.module, target.params):
        if not isinstance(m, torch.nn.Module):
            continue
        lazy = [n for n, p in m.named_parameters() if torch.nn.parameter.is_lazy(p)]
        if lazy:
            raise BadInputError(
                f"{target.title}'s parameters {', '.join(lazy[:3])} are lazy and not created yet (a LazyLinear or "
                "LazyConv before its first call).",
                "call the module once on an input of the right shape (module(x)) to create them, then check it.",
            )


def _unless_constant(slots: list[Any], target: Target) -> list[Any]:
    """The checked inputs but those ``constant=`` names (a name that is no float input is a typed error)."""
    if not target.constant:
        return slots
    names = {s.name for s in slots} | set(target.names) | set(target.kwargs)
    unknown = [n for n in target.constant if n not in names and not any(s.name.startswith(n + "[") for s in slots)]
    if unknown:
        raise BadInputError(
            f"constant= names {', '.join(map(repr, unknown))}, which is no input of {target.title} (its inputs: "
            f"{', '.join(sorted(map(str, names)))}).",
            "name the inputs as the function's signature does.",
        )
    return [s for s in slots if s.name not in target.constant and s.name.split("[")[0] not in target.constant]


def _frozen(target: Target) -> FrozenRandom:
    """torch's and numpy's global generators, and every generator ``fn`` or its arguments reach, frozen."""
    reach = (target.fn, *target.args, *target.kwargs.values(), target.params, target.module)
    return FrozenRandom(find_generators(*reach), legacy=True, torch=True)


def _check_session(target: Target, knobs: Knobs, found: tuple[Any, ...], frozen: FrozenRandom | None) -> Report:
    """One check of ``target`` with its random streams replayed at every call when ``frozen`` is given."""
    started = time.perf_counter()
    slots, pslots, consts, module = found
    sess = Session(target.fn, target.args, target.kwargs, slots + pslots)
    sess.fname = target.title
    sess.module = module if module is not None and module is target.module else None
    sess.param_swap.follow(reachable_tensors([module, target.module, target.fn]))  # (views of a parameter)
    sess.set_consts([*consts, *target.consts])
    sess.frozen = frozen
    try:
        contract, grad_eps = _contract(sess, target, knobs)
        report = run(contract, knobs.options)
        alone, raised = [], []
        for c in _alone_contracts(sess, contract, knobs, grad_eps):
            try:
                alone.append(run(c, knobs.options))
            except AloneRaised as exc:
                raised.append(alone_finding(target.title, exc))
    finally:
        sess.restore()
    report = merge_alone(report, alone) if alone else report
    report.findings.extend(raised[:1])  # (one says it: the same backward raised for each output)
    settle_linearity(report, contract.tree, target.title)
    if knobs.options.atol is None and knobs.options.rtol is None:  # (with the user's own tolerance, no hint of one)
        report.notes.extend(error_notes(report, contract.tree, target.title))
    for lf in report.leaves:
        if lf.status == "fail" and lf.name in sess.dead_notes and "zero gradient everywhere" in lf.note:
            lf.note = sess.dead_notes[lf.name]
    if frozen is not None:
        report.notes.append(replay_note(target.title, frozen))
    report.seconds = time.perf_counter() - started  # the whole check: the outputs checked alone too
    return report


def _contract(sess: Session, target: Target, knobs: Knobs) -> tuple[Contract, np.ndarray | None]:
    """Set-up at the original point: outputs, cotangent, the report tree, the numeric side, the analytic side."""
    fname = sess.fname
    sess.use_native()
    out0, targets = first_call(sess, target.title, target.kind, len(target.args) + len(target.kwargs))
    if not sess.params and not sess.const_swap.tensors:  # nothing swaps storage under the graph: keep it
        sess.graph = (out0, targets)
    outs, out_note = choose_outputs(sess, out0)
    sess.declared = declared(sess, [t for _, t in outs], targets)
    left_out = unchecked_notes(sess, target, [t for _, t in outs], targets)
    refuse_nonfinite(outs, fname)
    sess.douts, sess.u_parts = parse_dout(knobs.dout, outs, knobs.options.rng("dout"), fname)
    sess.out_names = [n for n, _ in outs]
    sess.part_names = [pn for n, t in outs for pn in ([f"{n}.real", f"{n}.imag"] if t.is_complex() else [n])]
    sess.part_shapes = [tuple(t.shape) for _, t in outs for _ in range(2 if t.is_complex() else 1)]
    rep_tree, grad_eps, labels = _report_tree(sess)
    repeat = not defers_repeat(knobs.options.strategy, rep_tree.size)
    _, ev, notes = numeric_side(sess, rep_tree, knobs.numeric_dtype, sess.output_parts(out0), repeat)
    notes.extend(masks_held(outs, ev, fname))
    notes.extend(rep_tree.notes())  # (input entries of +-inf or NaN: masks, left out)
    grad_eps = through_narrow_outputs(rep_tree, grad_eps, output_eps([t for _, t in outs]), ev.out_eps)
    ev.remember_directions = knobs.forward_mode  # the forward-mode section asks for the same directions
    if out_note:
        notes.append(out_note)
    notes.extend(left_out)
    vmap, vmap_note = _vmap_plan(sess, rep_tree, knobs)
    if vmap_note:
        notes.append(vmap_note)
    findings = (mutation_finding(fname, ev.mutated),) if ev.mutated else ()
    analytic = _Side(sess, rep_tree, ev, knobs, grad_eps)
    contract = Contract(
        title=target.title,
        kind=target.kind,
        tree=rep_tree,
        point=ev.tree,
        call=sess.numeric_call,
        output=ev.output,
        analytic=analytic.sections,
        fname=fname,
        evaluator=ev,
        prefetch=(lambda e, o: prefetch(sess, e, o, knobs.vectorized)) if vmap else None,
        findings=findings,
        notes=tuple(notes),
        dtype_labels=labels,
    )
    return contract, grad_eps


def _vmap_plan(sess: Session, tree: Tree, knobs: Knobs) -> tuple[bool, str]:
    """Whether to try torch.func.vmap for the first differences, and a note when asked for and impossible."""
    if not knobs.vectorized:
        return False, ""
    if sess.frozen is not None:  # a random stream replayed at every call: one call at a time
        return False, (
            "the function is random and its random stream is replayed at every call, which vmap's batches would"
            " not do; the function was evaluated one point at a time."
        ) if knobs.vectorized is True else ""
    if sess.params and sess.module is None:
        if knobs.vectorized is True:
            return False, (
                "vectorized=True needs the parameters of an nn.Module that is fn itself (check_module); the "
                "function was evaluated one point at a time."
            )
        return False, ""
    if sess.param_swap.aliases:  # views of a parameter kept beside it: vmap's batched parameters leave them behind
        return False, (
            "views of a parameter kept beside it (self.wT = self.w.T) move with it one point at a time only; the "
            "function was evaluated so."
        ) if knobs.vectorized is True else ""
    views = [s.name for s in sess.input_slots if not own_storage(s.tensor, contiguous=False)]
    if views:  # vmap's batched copies would not keep the storage around a view (torch.as_strided reads it)
        if knobs.vectorized is True:
            return False, (
                f"{', '.join(views)} {'is a view' if len(views) == 1 else 'are views'} into a larger storage, "
                "which vmap's batches would not keep; the function was evaluated one point at a time."
            )
        return False, ""
    return knobs.vectorized is True or tree.size >= AUTO_MIN_ELEMENTS, ""


def _report_tree(sess: Session) -> tuple[Tree, np.ndarray | None, dict[str, str]]:
    """The tree the report speaks of (the slots at their own dtypes), bfloat16's epsilon, and dtype labels."""
    arrays, stand_in, labels = {}, [], {}
    for s in sess.slots:
        dt = np_dtype(real_of(s.dtype))
        if dt is None:  # bfloat16: numpy has no such dtype
            dt = np.float16
            stand_in.extend(s.leaf_names)
        for ln, p in zip(s.leaf_names, parts(sess.original(s)), strict=True):
            arrays[ln] = p.astype(dt, copy=False)  # parts are private copies: the tree may perturb them in place
            labels[ln] = dtype_name(real_of(s.dtype))
    tree = Tree(arrays, "inputs", in_place=True, bare_keys=True)
    grad_eps = None
    if stand_in:
        grad_eps = np.concatenate(
            [np.full(lf.size, BFLOAT16_EPS if lf.name in stand_in else machine_eps(lf.dtype)) for lf in tree.leaves]
        )
    return tree, grad_eps, labels


class _Side:
    """The analytic side of one contract: reverse mode (and forward mode), for one cotangent."""

    def __init__(
        self, sess: Session, tree: Tree, ev: CachedEvaluator, knobs: Knobs, grad_eps: np.ndarray | None
    ) -> None:
        self.sess, self.tree, self.ev, self.knobs, self.grad_eps = sess, tree, ev, knobs, grad_eps
        self.douts: list[Any] | None = None  # None: the session's cotangent; else one per output, None = undefined
        self.repeat = True  # run the backward repeatedly over one graph (the main contract only)
        self.jvp_findings: list[Finding] = []  # the forward-mode rule's 'nonlinear jvp', if any

    def eps(self) -> np.ndarray:
        if self.grad_eps is not None:
            return self.grad_eps
        return np.concatenate([np.full(lf.size, float(np.finfo(lf.dtype).eps)) for lf in self.tree.leaves])

    def sections(self) -> Analytic:
        sess, fname, douts = self.sess, self.sess.fname, self.douts
        kept = side.reverse_repeated(sess) if self.repeat and douts is None else None
        if kept is not None:
            g, undefined = kept[0], set(sess.undefined)
        else:
            try:
                g = call_user(lambda: side.reverse(sess, None, douts), (), self._what())
            except UserFunctionError as exc:
                if douts is not None and not isinstance(exc.__cause__, NotImplementedError):
                    alone = ", ".join(n for n, d in zip(sess.out_names, douts, strict=True) if d is not None)
                    raise AloneRaised(first_line(exc), exc.hint, alone) from exc.__cause__
                if not isinstance(exc.__cause__, NotImplementedError):
                    if "NoneType" in str(exc.__cause__):  # a grad_output autograd leaves undefined, used anyway
                        raise UserFunctionError(exc.message, NONE_GRAD_HINT) from exc.__cause__
                    raise
                if not (self.knobs.forward_mode and douts is None):
                    raise UserFunctionError(
                        str(exc), "a function with forward mode only (a jvp): pass forward_mode=True to check it."
                    ) from exc.__cause__
                return self._forward_only(exc)
            undefined = set(sess.undefined)
        notes: list[str] = []
        wide = self._wide(g, notes)
        secs = [Section(g, lambda v: side.reverse(sess, v, douts), g_wide=wide, grad_eps=self.grad_eps)]
        if self.knobs.forward_mode and douts is None:
            secs.append(self._forward_section())
        findings: list[Finding] = []
        if self.repeat and not (kept is not None and kept[1]):  # passes that agreed exactly found nothing
            runs = side.repeat_backward(sess)
            if isinstance(runs, str):
                notes.append(runs + ".")
            else:
                found = side.state_finding(fname, self.tree, runs, self.eps(), sess.backward_draws)
                found = found or linearity_finding(fname, self.tree, runs[0], runs[4], self.eps())
                findings.extend([found] if found is not None else [])
        if self.repeat:
            findings.extend(self._alone(g, notes))
        if sess.side_grads:
            notes.append(
                f"the backward pass of {fname} accumulates gradients into the .grad of "
                f"{', '.join(sorted(sess.side_grads))} itself (a part recomputed and differentiated inside a "
                "backward: manual checkpointing, reversible layers); they are checked as loss.backward() leaves "
                ".grad: the gradient through the graph plus the accumulated one."
            )
        self._declared(undefined)
        findings.extend(self.jvp_findings)
        side.write_findings(sess, findings)
        return Analytic(tuple(secs), tuple(findings), notes=tuple(notes))

    def _alone(self, g: np.ndarray, notes: list[str]) -> list[Finding]:
        """Each checked input's gradient with only it requiring grad among the inputs, against its part of ``g``
        (two to :data:`~._analytic.ALONE_MAX` inputs; one forward and backward pass each): a finding per input
        whose gradient depends on which inputs require grad (a ``ctx.needs_input_grad`` slip).

        Parameters keep requiring grad: a module's parameters reached other than as a Function's inputs (a
        reentrant checkpoint, a backward recomputing a submodule) get no gradient through a Function none of whose
        inputs requires grad, by torch's design, which is another matter than a backward's slip."""
        sess, found, k_leaf = self.sess, [], 0
        if not 2 <= len(sess.input_slots) <= side.ALONE_MAX:
            return []
        for k, s in enumerate(sess.slots):
            leaves = self.tree.leaves[k_leaf : k_leaf + len(s.leaf_names)]
            k_leaf += len(leaves)
            sl = slice(leaves[0].offset, leaves[-1].offset + leaves[-1].size)
            if s.kind != "input" or sl.stop == sl.start:
                continue
            try:
                alone = side.reverse_alone(sess, k)
            except (KeyboardInterrupt, SystemExit, BackcheckError):
                raise
            except Exception as exc:  # noted: the gradient with every input requiring grad is what is checked
                notes.append(
                    f"with only {s.name} requiring grad, {sess.fname} raised {type(exc).__name__} "
                    f"({first_line(exc)}), so whether its gradient depends on which inputs require grad was not "
                    "checked."
                )
                continue
            hit = side.alone_finding(sess.fname, self.tree, s.name, sl, g, alone, self.eps())
            found.extend([hit] if hit is not None else [])
        return found

    def _what(self) -> str:
        """The analytic call, as an error names it: with the output checked alone, when it is."""
        what = f"torch.autograd.grad through {self.sess.fname}"
        if self.douts is None:
            return what
        alone = [n for n, d in zip(self.sess.out_names, self.douts, strict=True) if d is not None]
        return (
            f"{what}, checking {', '.join(alone)} alone (the other outputs' gradients undefined, None in a "
            "backward with ctx.set_materialize_grads(False), as autograd passes them when they do not reach the "
            "loss),"
        )

    def _forward_section(self) -> Section:
        sess, fname = self.sess, self.sess.fname
        g_fwd, found = call_user(lambda: forward_probed(sess), (), f"forward-mode AD through {fname}")
        self.jvp_findings = [found] if found is not None else []
        note = self.knobs.forward_note or (
            f"forward mode checked too: the leaves {JVP_PREFIX}<name> compare forward-mode AD (a custom "
            "Function's jvp) with the same finite differences."
        )
        return Section(g_fwd, lambda v: forward(sess, v), JVP_PREFIX, note, grad_eps=self.grad_eps)

    def _forward_only(self, exc: UserFunctionError) -> Analytic:
        """The analytic side of a function without reverse mode (a Function with a jvp and no backward):
        forward mode alone, the reverse-mode leaves skipped."""
        cause = first_line(exc.__cause__) if exc.__cause__ is not None else str(exc)
        why = (
            f"{self.sess.fname} has no reverse mode (torch.autograd.grad raised NotImplementedError: {cause}), so "
            f"only forward mode is checked: the leaves {JVP_PREFIX}<name>."
        )
        self.sess.no_reverse = why
        skipped = {lf.name: why for lf in self.tree.leaves}
        secs = (Section(np.zeros(self.tree.size), None, grad_eps=self.grad_eps), self._forward_section())
        return Analytic(secs, tuple(self.jvp_findings), skipped=skipped)

    def _declared(self, undefined: set[str]) -> None:
        """Notes for inputs that only custom Functions consume and whose backwards return None for them, told
        when such an input fails for want of any gradient (:attr:`Session.dead_notes`).

        Returning None is how a backward says it does not differentiate an input (a label, a target), and also
        what a forgotten term gives (a ``needs_input_grad`` branch left out): the check cannot tell which was
        meant, so the input still fails, and the note says how to check only the others. Like
        torch.autograd.gradcheck, a check whose inputs are marked with requires_grad checks only those.
        """
        sess, k = self.sess, 0
        names: list[tuple[str, str]] = []  # (leaf, its input)
        for s in sess.slots:
            leaves = self.tree.leaves[k : k + len(s.leaf_names)]
            k += len(leaves)
            if s.name in sess.declared and s.name in undefined:
                names.extend((lf.name, s.name) for lf in leaves)
        others = [s.name for s in sess.input_slots if s.name not in {n for _, n in names}]
        mark = f"mark {', '.join(others)} with requires_grad_()" if others else "mark the inputs to check"
        for leaf, name in names:
            how = (
                f"leave {name} unmarked (only the inputs with requires_grad are checked)"
                if sess.marked
                else f"{mark} and leave {name} as it is: only the inputs with requires_grad are checked then"
            )
            sess.dead_notes[leaf] = (
                f"{leaf} receives no gradient: {sess.declared[name]}.backward returns None for {name}, while the "
                f"output depends on it. If {name} is not differentiated (a label, a target), {how}. If it is "
                "meant to be differentiated, the backward is missing its gradient (a needs_input_grad branch left "
                "out returns None)."
            )

    def _wide(self, g: np.ndarray, notes: list[str]) -> np.ndarray | None:
        """The backward in float64, when the numeric side is float64 and the gradient is narrower.

        It judges the formula only where it is the same computation rounded differently: where the native
        gradient differs from it by more than the native gradient's own rounding varies (one unit in the last
        place of every input), the native gradient is judged on its own, and a note says so.
        """
        torch = self.sess.torch
        if self.ev.tree is self.tree or self.sess.numeric_real != torch.float64:
            return None
        wide = side.reverse_wide(self.sess, self.douts)
        if not isinstance(wide, np.ndarray):
            notes.extend([wide] if wide else [])
            return None
        if not wide.size or machine_eps(computed_dtype([wide], np.dtype(np.float64))) >= float(np.min(self.eps())):
            return None  # every value float32-exact for a float32 gradient: a backward that casts itself, no wider
        spread = call_user(side.rounding_spread, (self.sess, self.douts, g), self._what())
        eps = self.eps()
        why = wide_disagreement(self.tree, g, wide, eps, spread)
        if why:
            notes.append(why)
            return None
        notes.extend(_conditioning(self.tree, g, wide, eps))
        return wide


def _conditioning(tree: Tree, g: np.ndarray, wide: np.ndarray, eps: np.ndarray) -> list[str]:
    """A note per tensor whose gradient's own rounding is large: the backward is ill-conditioned there."""
    notes = []
    for leaf in tree.leaves:
        sl = slice(leaf.offset, leaf.offset + leaf.size)
        scale = float(np.max(np.abs(wide[sl]), initial=0.0))
        if scale == 0.0:
            continue
        rel = float(np.max(np.abs(g[sl] - wide[sl]))) / scale
        ulps = rel / float(eps[leaf.offset])
        if ulps > ILL_CONDITIONED_ULPS and scale < float(eps[leaf.offset]):
            # a float64 run below the native dtype's rounding of unit-sized terms: a gradient of 0, rounded
            notes.append(
                f"the gradient of {leaf.name} is 0 up to rounding here: its float64 run is at most {scale:.2g}, its "
                f"result in its own dtype at most {float(np.max(np.abs(g[sl]))):.2g} (that dtype's rounding)."
            )
        elif ulps > ILL_CONDITIONED_ULPS:
            notes.append(
                f"the backward pass is ill-conditioned at this point: for {leaf.name} its result in its own dtype "
                f"differs from its float64 run by up to {rel:.2g} of the largest element ({ulps:.3g} times the "
                "dtype's epsilon), so its formula is judged through the float64 run and its rounding on its own."
            )
    return notes


def _prefixed(tree: Tree, prefix: str) -> Tree:
    return Tree({prefix + lf.name: lf.original.copy() for lf in tree.leaves}, "inputs", in_place=False, bare_keys=True)


def _alone_contracts(sess: Session, main: Contract, knobs: Knobs, grad_eps: np.ndarray | None) -> list[Contract]:
    """One contract per differentiable output (when there are several): that output's cotangent alone."""
    if len(sess.douts) < 2 or sess.no_reverse:
        return []
    torch = sess.torch
    contracts = []
    offsets = np.cumsum([0] + [2 if d.is_complex() else 1 for d in sess.douts])
    for k, d in enumerate(sess.douts):
        if not bool(torch.any(d != 0)):
            continue  # a zero cotangent checks nothing
        prefix = f"{sess.out_names[k]} alone:"
        u = [p if offsets[k] <= j < offsets[k + 1] else np.zeros_like(p) for j, p in enumerate(sess.u_parts)]
        tree = _prefixed(main.tree, prefix)
        point = tree if main.point is main.tree else _prefixed(main.point, prefix)
        output = Output.cotangent(sess.fname, u, sess.part_names, sess.part_shapes, lambda o: o)
        ev = TorchEvaluator(point, sess.numeric_call, output, sess.fname)
        ev.remember_directions = False  # one section: no direction is asked for twice
        ev.baseline()
        one = _Side(sess, tree, ev, knobs, grad_eps)
        one.douts = [d if j == k else None for j in range(len(sess.douts))]
        one.repeat = False
        note = (
            f"each of the {len(sess.douts)} differentiable outputs is also checked alone (the leaves "
            "'<output> alone:<input>'), the other outputs' gradients undefined, as autograd leaves them when they "
            "do not reach the loss."
        )
        contracts.append(
            dataclasses.replace(
                main,
                tree=tree,
                point=point,
                output=output,
                analytic=one.sections,
                evaluator=ev,
                prefetch=None,
                findings=(),
                notes=(note,),
            )
        )
    return contracts
