"""The analytic side of :func:`~backcheck.check_layer`: ``backward`` called as training calls it, right after the
forward pass that made its cache (on the random streams as that pass left them), watched for writes into its
arguments and into the inputs its cache holds, and called once more with a scaled ``dout`` to see that it is
linear in it."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.calls import arg_names, call_user, first_line
from backcheck.containers import flatten, rebuild_like
from backcheck.contract import Analytic, Section
from backcheck.errors import BadInputError, GradientStructureError, UserFunctionError
from backcheck.extended import extended_run
from backcheck.findings import changed_elements, dout_written, mutation_finding, unchecked_gradients
from backcheck.frontends.common import LINEAR_PROBES, linearity_finding, mutable_input
from backcheck.frontends.hints import constant_hint, outputs_sentence, pair_hint
from backcheck.report import Finding

#: The upstream gradient's scale for the linearity probe (one more backward call: the first of the probes).
LINEAR_SCALE = LINEAR_PROBES[0]
#: How deep the arrays reachable from a layer's inputs are watched (a list of arrays, a config dict's).
WATCH_DEPTH = 3


def runs_forward(backward: Any) -> bool:
    """A backward that runs the forward pass itself before its own work (check_object's, backcheck.nn's): it needs
    the random streams as they were before the forward pass, not as that pass left them."""
    return bool(getattr(backward, "runs_forward", False))


@dataclass
class Call:
    """One backward call: what it returned, the arrays reachable from the inputs it wrote into (through the cache,
    or inside its arguments: ``(name, shape, flat indices)``), how to call it again at the same state with another
    ``dout``, and whether it drew from the replayed random streams."""

    raw: Any
    written: list[tuple[str, tuple[int, ...], np.ndarray]]
    again: Callable[[Any], Any]
    draws: bool = False  # backward drew from the replayed random streams itself


def backward_call(layer: Any, dout: Any, args: list[Any], watch: bool = False) -> Call:
    """``backward(dout, ...)`` at the inputs ``args``, after the forward pass as in training: with a cache,
    ``backward(dout, forward(*args)[1])``; without one, a forward pass first when the random streams are
    replayed (backward draws where forward stopped) or a config input may be written by it. ``watch``: record
    backward's writes and draws, and keep a copy of the cache for :attr:`Call.again`."""
    if layer.cache:
        return _through_cache(layer, dout, args, watch)
    own = not runs_forward(layer.backward)  # (one that runs its forward itself: those writes are forward's)
    replayed = layer.frozen is not None and own
    if replayed or any(mutable_input(v) for v in layer.fixed.values()):
        # a config dict or object: backward sees what this call's forward pass wrote into it, as in training
        call_user(layer.forward, tuple(_copies(args)), f"{layer.fname} (run before its backward pass)")
    state = layer.frozen.now() if watch and replayed else None
    # arrays inside its arguments (a list input's, a config dict's), as the forward pass left them; the arguments
    # themselves are compared by the caller
    inside = [(n, a) for n, a in reachable(args, layer.names) if "[" in n] if watch and own else []
    before = [a.copy() for _, a in inside]
    _same_draws(layer)
    raw = layer.backward(dout, *args)
    written = [hit for (n, a), b in zip(inside, before, strict=True) if (hit := changed_elements(n, b, a)) is not None]
    draws = state is not None and state.moved()
    return Call(raw, written, lambda d: backward_call(layer, d, _copies(layer.args(layer.tree.fresh()))).raw, draws)


def split_cache(out: Any, fname: str) -> tuple[Any, Any]:
    """(outputs, cache) of a forward pass under ``cache=True``: ``(out, cache)``, or ``(out_1, ..., out_k, cache)``
    for a layer of several outputs (CS231n's ``lstm_step_forward -> (next_h, next_c, cache)``), whose outputs are
    the tuple before the cache; a typed error else."""
    if isinstance(out, tuple) and len(out) >= 2:
        return (out[0] if len(out) == 2 else out[:-1]), out[-1]
    raise BadInputError(
        f"with cache=True, {fname} must return (out, cache), or (out_1, ..., out_k, cache); it returned a "
        f"{type(out).__name__}{f' of {len(out)}' if isinstance(out, tuple) else ''}.",
        "drop cache=True if forward returns only its output.",
    )


def _cached_backward(layer: Any, dout: Any, cache: Any, several: bool) -> Any:
    """``backward(dout, cache)``, or ``backward(dout_1, ..., dout_k, cache)`` for a layer of several outputs; the
    cache where backward's parameters name it among the douts (Karpathy's LSTM gist and its forks:
    ``backward(dH, cache, dhn=None)``, the last hidden state's dout after the cache)."""
    _same_draws(layer)
    if not several:
        return layer.backward(dout, cache)
    at = cache_position(layer.backward, len(dout) + 1)
    douts = list(dout)
    return layer.backward(*douts[:at], cache, *douts[at:])


#: Parameter names that say a backward takes the cache there.
CACHE_NAMES = ("cache", "caches", "cached", "ctx")


def cache_position(fn: Any, n: int) -> int:
    """Where among ``n`` positional arguments ``fn`` takes the cache: the position of its parameter named as one
    (:data:`CACHE_NAMES`), else the last."""
    named = [k for k, name in enumerate(arg_names(fn, n)) if name.lower() in CACHE_NAMES]
    return named[0] if len(named) == 1 else n - 1


def _same_draws(layer: Any) -> None:
    """The random streams as the check found them, before a backward call, where forward's are not replayed: a
    backward that draws (a random subgradient at a kink) then draws the same at every call."""
    if layer.frozen is None and getattr(layer, "own_draws", None) is not None:
        layer.own_draws.restore()


def _through_cache(layer: Any, dout: Any, args: list[Any], watch: bool) -> Call:
    out = call_user(layer.forward, tuple(args), f"{layer.fname} (run for the cache its backward takes)")
    several = isinstance(out, tuple) and len(out) > 2
    cache = split_cache(out, layer.fname)[1]
    seen = reachable(args, layer.names) if watch else []
    before = [a.copy() for _, a in seen]
    spare, state = None, None
    if watch:
        try:
            spare = copy.deepcopy(cache)  # the cache as forward left it, for the second call
        except Exception:  # noqa: BLE001 - a cache that refuses the copy: the second call runs forward again
            spare = None
        state = layer.frozen.now() if layer.frozen is not None else None
    raw = _cached_backward(layer, dout, cache, several)
    written = [hit for (n, a), b in zip(seen, before, strict=True) if (hit := changed_elements(n, b, a)) is not None]
    draws = state is not None and state.moved()

    def again(d: Any) -> Any:
        if spare is None:
            return backward_call(layer, d, _copies(layer.args(layer.tree.fresh()))).raw
        if state is not None:
            state.restore()
        return _cached_backward(layer, d, spare, several)

    return Call(raw, written, again, draws)


def _copies(args: list[Any]) -> list[Any]:
    return [x.copy() if isinstance(x, np.ndarray) else x for x in args]


def reachable(values: list[Any], names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """The arrays reachable from ``values`` (an array, the arrays in a list, tuple or dict, a few levels deep),
    each once, named by their path from its input's name."""
    found: list[tuple[str, np.ndarray]] = []
    seen: set[int] = set()

    def visit(v: Any, label: str, level: int) -> None:
        if isinstance(v, np.ndarray):
            if id(v) not in seen:
                seen.add(id(v))
                found.append((label, v))
        elif level < WATCH_DEPTH and isinstance(v, (list, tuple)):
            for k, item in enumerate(v):
                visit(item, f"{label}[{k}]", level + 1)
        elif level < WATCH_DEPTH and isinstance(v, Mapping):
            for k, item in v.items():
                visit(item, f"{label}[{k!r}]", level + 1)

    for n, v in zip(names, values, strict=True):
        visit(v, n, 0)
    return found


class Backward:
    """The analytic side of a layer: ``backward`` at the point, checked for writes into its arguments and for
    linearity in ``dout``."""

    def __init__(self, layer: Any, out0: Any, u: list[np.ndarray], point: Any, bname: str, strict: bool) -> None:
        self.layer, self.out0, self.u, self.point, self.bname = layer, out0, u, point, bname
        self.strict = strict
        self.forward_writes = False  # the forward pass writes into its inputs: those writes are not backward's

    def dout(self, dtype: Any = None, scale: float = 1.0) -> Any:
        d = [x.astype(dtype) if dtype is not None else x.copy() for x in self.u]
        if scale != 1.0:
            d = [x * x.dtype.type(scale) for x in d]
        if len(self.u) > 1 or isinstance(self.out0, (list, tuple, Mapping)):
            return rebuild_like(self.out0, d)
        return d[0]

    def analytic(self) -> Analytic:
        layer, bname = self.layer, self.bname
        dout_arg = self.dout()
        bargs = _copies(layer.args(layer.tree.fresh()))
        inputs_before = _copies(bargs)
        try:
            first = call_user(lambda: backward_call(layer, dout_arg, bargs, watch=True), (), bname)
        except UserFunctionError as exc:
            cache = None if runs_forward(layer.backward) else layer.cache
            raise pair_hint(exc, self.out0, cache, (layer.fname, bname)) from exc.__cause__
        raw = first.raw
        findings = []
        for k, (before, now) in enumerate(zip(self.u, [x for _, x in flatten(dout_arg, "out")], strict=True)):
            hit = changed_elements("dout" if len(self.u) == 1 else f"dout[{k}]", before, now)
            if hit is not None:
                findings.append(dout_written(bname, hit))
        changed = []
        if not layer.cache:
            after = self._forward_alone(layer) if self.forward_writes else None
            for k, (n, before, now) in enumerate(zip(layer.names, inputs_before, bargs, strict=True)):
                hit = changed_elements(n, before, now) if isinstance(before, np.ndarray) else None
                if hit is not None and after is not None:
                    hit = _not_forwards(hit, after[k], now)
                if hit is not None:
                    changed.append(hit)
        findings += [mutation_finding(bname, [c], "argument") for c in changed]
        findings += self._unchecked(raw)
        if layer.cache:
            findings += [_through_cache_finding(bname, c) for c in first.written]
        else:
            findings += [mutation_finding(bname, [c], "argument") for c in first.written]
        try:
            g, missing, dtypes = layer.pack(raw, bname, strict_dtype=self.strict)
        except GradientStructureError as exc:
            raise self._stacked(exc, raw) from None
        skipped = {}
        for n in missing:
            skipped[n] = f"{bname} returned None for {n}: not checked."
            findings.append(
                Finding(
                    "missing gradient",
                    f"{bname} returned None for the float input {n}, whose gradient the output depends on "
                    "(or may). Return its gradient, or declare it with constant=[...] if it is a constant.",
                    where=bname,
                    elements=[n],
                )
            )
        grad_eps = layer.tree.grad_eps(dtypes)
        found, refused = self._linearity(first, g, grad_eps)
        findings += [found] if found is not None else []
        sec = Section(g, self.at, g_wide=self.wide(), grad_eps=grad_eps)
        if self.point is layer.tree and grad_eps is None:
            sec = dataclasses.replace(sec, extended=extended_run(self._extended, layer.tree))
        notes = tuple(layer.tree.dtype_notes(dtypes)) + ((refused,) if refused else ())
        if first.draws:
            notes += (
                f"{bname} draws from the random stream itself ({layer.frozen.describe()}): in training it runs after "
                "the forward pass, so its draw is not the forward pass's (a dropout mask drawn again is another "
                "mask). Keep what forward drew in the cache, or on the layer, for backward to use.",
            )
        return Analytic((sec,), tuple(findings), skipped, notes)

    def _unchecked(self, raw: Any) -> list[Finding]:
        """'unchecked gradient' findings for inputs passed through (not differentiated, not constant) for which
        backward, returning one gradient per input, returned one (:func:`~backcheck.findings.unchecked_gradients`)."""
        layer = self.layer
        if not isinstance(raw, (list, tuple)) or len(raw) != len(layer.names):
            return []
        passed = [k for k, n in enumerate(layer.names) if n not in layer.diff_names and n not in layer.constant]
        if not passed:
            return []
        names = [layer.names[k] for k in passed]
        return unchecked_gradients(self.bname, names, [layer.fixed[n] for n in names], [raw[k] for k in passed])

    def _stacked(self, exc: GradientStructureError, raw: Any) -> GradientStructureError:
        """A gradient of the wrong shape, with :func:`outputs_sentence` when it has a leading axis of as many
        elements as ``forward`` has outputs (backward computed with the stacked tuple of douts)."""
        layer = self.layer
        n = len(self.u)
        grads = raw if isinstance(raw, (list, tuple)) else [raw]
        shapes = [np.shape(layer.tree.obj[name]) for name in layer.diff_names]
        stacked = any(isinstance(gr, np.ndarray) and gr.shape[:1] == (n,) and gr.shape[1:] in shapes for gr in grads)
        cache = None if runs_forward(layer.backward) else layer.cache
        said = outputs_sentence(self.out0, cache, (layer.fname, self.bname)) if stacked else ""
        return GradientStructureError(exc.message, f"{exc.hint} {said}") if said else exc

    def _linearity(self, first: Call, g: np.ndarray, grad_eps: np.ndarray | None) -> tuple[Finding | None, str]:
        """A 'nonlinear backward' finding when ``backward`` with ``LINEAR_SCALE * dout`` gives, scaled back,
        another gradient than ``g`` (one more backward call); None when it does not, or cannot tell, and then a
        note where that call raised (a backward that refuses a negative upstream gradient)."""
        layer = self.layer
        try:
            raw = first.again(self.dout(scale=LINEAR_SCALE))
            scaled = layer.pack(raw, self.bname, strict_dtype=self.strict)[0] / LINEAR_SCALE
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a second call that fails tells nothing about linearity
            cause = exc.__cause__ if isinstance(exc, UserFunctionError) and exc.__cause__ is not None else exc
            said = exc.message if isinstance(exc, UserFunctionError) else ""  # (its own forward, re-run, named)
            who = said.split(" raised ")[0] if " raised " in said else self.bname
            return None, (
                f"{who} raised {type(cause).__name__} ({first_line(cause)}) when {self.bname} was called again with "
                f"{LINEAR_SCALE:g} times dout, so its linearity in dout was not checked."
            )
        if np.array_equal(scaled * LINEAR_SCALE, g) and all(np.all(x == 1) for x in self.u):
            return None, ""  # a loss layer's backward that ignores its dout of ones (backward(self, dout=1))
        eps = grad_eps
        if eps is None:
            eps = layer.tree.per_leaf([float(np.finfo(lf.dtype).eps) for lf in layer.tree.leaves])
        found = linearity_finding(self.bname, layer.tree, g, [(LINEAR_SCALE, scaled)], eps)
        if found is not None and np.array_equal(scaled * LINEAR_SCALE, g):
            found.message = (  # (not the advice on clipping: nothing depends on dout at all)
                f"backward ignores dout: {self.bname} returns the same gradient whatever dout is (for dout times "
                f"{LINEAR_SCALE:g} too), which a layer's backward pass cannot. A loss that returns its gradient "
                "beside it (CS231n's softmax_loss: (loss, dx)) is checked as two functions: "
                "check(lambda x: f(x)[0], x, lambda x: f(x)[1])."
            )
        return found, ""

    @staticmethod
    def _forward_alone(layer: Any) -> list[Any] | None:
        """The inputs as a forward pass alone leaves them (a layer object's backward runs its forward first)."""
        args = _copies(layer.args(layer.tree.fresh()))
        try:
            layer.forward(*args)
        except Exception:  # the analytic side reports backward's own errors; no attribution then
            return None
        return args

    def at(self, values: list[np.ndarray]) -> np.ndarray:
        """The analytic gradient at the point the evaluator has moved to (a nearby re-check), same dout."""
        layer = self.layer
        # (the inputs by their names, containers rebuilt around their arrays: a list [Q, K, V] or a dict of
        # parameters is one input of several leaves)
        leaves = layer.tree.leaves
        near = layer.tree.with_arrays(
            [np.asarray(v).astype(low.dtype).reshape(low.shape) for low, v in zip(leaves, values, strict=True)]
        )
        raw = call_user(layer.grads, (self.dout(), layer.args(near)), self.bname)
        return layer.pack(raw, self.bname, strict_dtype=self.strict)[0]

    def wide(self) -> np.ndarray | None:
        """The backward pass run on float64 copies (when the numeric side is), to tell rounding from bugs."""
        if self.point is self.layer.tree:
            return None
        layer = self.layer
        wide = self.point.fresh()
        try:
            raw = layer.grads(self.dout(np.float64), layer.args(wide))
            grads = match_grads(raw, list(layer.names), list(layer.diff_names), "backward", layer.listed, layer.keyed)
            if any(gr is not None and np.asarray(gr).dtype != np.float64 for gr in grads.values()):
                return None
            g = layer.pack(raw, "backward", self.point)[0]
            # a run that computes in float64 moves with inputs nudged below the native dtype's resolution; one that
            # casts them back (a cache of float32 copies) does not, and its float64 result holds float32's rounding
            nudged = self.point.fresh(self.point.values() * (1.0 + WIDE_NUDGE), np.float64)
            again = layer.pack(layer.grads(self.dout(np.float64), layer.args(nudged)), "backward", self.point)[0]
            return None if np.array_equal(g, again) and g.any() else g
        except Exception:  # noqa: BLE001 - a backward pass that refuses float64 is judged at its own dtype only
            return None

    def _extended(self, point: Any) -> Any:
        """The backward pass's gradients at ``point`` (long double copies, see :mod:`backcheck.extended`), with
        dout in long double: raw, as the backward returns them."""
        layer = self.layer
        return match_grads(
            layer.grads(self.dout(np.longdouble), layer.args(point)),
            list(layer.names),
            list(layer.diff_names),
            "backward",
            layer.listed,
            layer.keyed,
        )


#: The relative nudge of every input that a float64 run of the backward pass must see: below half of float32's
#: relative spacing (a cast to float32 rounds it away), far above float64's (a saturated sigmoid's 1 - s moves).
WIDE_NUDGE = 2.0**-26


def _through_cache_finding(bname: str, hit: tuple[str, tuple[int, ...], np.ndarray]) -> Finding:
    """A failing 'mutation' finding: ``backward`` wrote, through the cache, into an array of forward's inputs."""
    found = mutation_finding(bname, [hit], "input")
    name = hit[0]
    message = found.message.replace(f"{bname} modified its input", f"{bname} modified, through the cache, the input", 1)
    message += (
        f" The cache holds forward's {name} itself, not a copy: in training, this backward changes the caller's "
        f"{name}, and a second backward over the same cache gives another gradient."
    )
    return dataclasses.replace(found, message=message)


def _not_forwards(hit: tuple[str, Any, np.ndarray], after: Any, now: Any) -> tuple[str, Any, np.ndarray] | None:
    """The elements of ``hit`` (written during a backward call) that the forward pass alone does not leave as
    they are now: a backward that runs its forward first is not blamed for that forward's writes."""
    name, shape, idx = hit
    a, b = np.asarray(after), np.asarray(now)
    if a.shape != b.shape or a.dtype != b.dtype:
        return hit
    a, b = a.reshape(-1)[idx], b.reshape(-1)[idx]
    keep = idx[~((a == b) | ((a != a) & (b != b)))]
    return (name, shape, keep) if keep.size else None


def _by_key(
    raw: Mapping[Any, Any], diff_names: list[str], bname: str, keyed: Mapping[str, list[str]]
) -> dict[str, Any]:
    """The gradients of a backward that returns a dict keyed by the inputs' names or ``d`` and them
    (deeplearning.ai's ``{"dxt": ..., "da_prev": ..., "dWax": ...}``; a dict input's entries by their own keys)."""

    def entry(name: str) -> Any:
        return raw.get(name, raw.get("d" + name, _NONE))

    out: dict[str, Any] = {}
    for n in diff_names:
        got = entry(n)
        if got is _NONE and n in keyed:
            parts = {k: entry(k) for k in keyed[n]}
            got = parts if all(v is not _NONE for v in parts.values()) else _NONE
        if got is _NONE:
            keys = ", ".join(repr(k) for k in raw)
            raise GradientStructureError(
                f"{bname} returned a dict ({keys}) with no gradient of {n}: looked for {n!r}, {'d' + n!r}"
                + (f" and the entries of {n} ({', '.join(keyed[n])}, or d and them)" if n in keyed else "")
                + ".",
                f"key each input's gradient by its name or d and its name ({'d' + n!r}), or return a tuple in "
                "forward's parameter order.",
            )
        out[n] = got
    return out


_NONE = object()


def match_grads(
    raw: Any,
    names: list[str],
    diff_names: list[str],
    bname: str,
    listed: bool,
    keyed: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """``backward``'s result by input name (the differentiated inputs'), or :class:`GradientStructureError`.
    ``keyed``: the keys of the inputs that are dicts of arrays."""
    keyed = keyed or {}
    if isinstance(raw, Mapping):
        return _by_key(raw, diff_names, bname, keyed)
    # one differentiated input (labels, masks and config beside it): a bare gradient is its gradient
    if len(diff_names) == 1 and not isinstance(raw, (list, tuple)):
        return {diff_names[0]: raw}
    if not isinstance(raw, (list, tuple)):
        raise GradientStructureError(
            f"{bname} returned a {type(raw).__name__}; expected one gradient per input ({', '.join(names)}).",
            "return a tuple such as (dx, dw, db), with None for inputs that are not differentiable."
            + constant_hint(diff_names),
        )
    if len(raw) == len(names):
        by_name = dict(zip(names, raw, strict=True))
    elif len(raw) == len(diff_names):
        by_name = dict(zip(diff_names, raw, strict=True))
    elif listed:  # the one differentiated input is itself a list of arrays: this is its gradient
        by_name = {diff_names[0]: raw}
    else:
        raise GradientStructureError(
            f"{bname} returned {len(raw)} gradient(s), but the layer has {len(names)} input(s) "
            f"({', '.join(names)}), {len(diff_names)} of them differentiable.",
            "return one gradient per input, in forward's parameter order, with None for labels and masks."
            + (constant_hint(diff_names, len(raw)) if len(raw) < len(diff_names) else ""),
        )
    return {n: by_name.get(n) for n in diff_names}
