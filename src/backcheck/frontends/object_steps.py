"""Layer objects whose backward takes a learning rate and steps the parameters itself.

``backward(self, output_gradient, learning_rate)``, which computes the input's gradient, subtracts
``learning_rate * dW`` from ``self.weights`` and keeps no ``dW``, is a common design of layers written from
scratch. :func:`~backcheck.check_object` calls such a backward with a learning rate of 1 and reads each parameter's
gradient off its step: its value before backward minus its value after. A step that is no plain gradient step
(momentum's later steps, Adam's normalized one) is not linear in ``dout``, and the check's linearity test says so;
a step that does not grow with ``dout`` at all (Adam's first, a sign) leaves its parameter inconclusive: no
gradient can be read off it, right or wrong.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from backcheck.containers import flatten, is_namedtuple, rebuild_like
from backcheck.errors import ArgumentError
from backcheck.findings import Finding
from backcheck.frontends.common import Nonlinear
from backcheck.frontends.slots import GRAD_DICTS, Slot, Stepped, attributes, grad_names, is_float_array

#: Names of backward's second parameter that make it a learning rate (compared in lower case, without '_'); not
#: ``alpha`` nor ``rate``, which name a leaky slope or a dropout rate as often.
LEARNING_RATES = frozenset({"learningrate", "learnrate", "lr", "eta", "stepsize", "lrate"})
#: The learning rate such a backward is called with: a step of 1 is the gradient itself, as exactly as the
#: parameter's dtype holds ``x - g``.
STEP = 1.0


def learning_rate_of(method: Callable[..., Any]) -> str | None:
    """The name of ``method``'s learning-rate parameter (its second, after the upstream gradient, by name), or None
    (a backward of ``dout`` alone, or one whose other parameters cannot be filled)."""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) < 2 or params[1].kind not in positional:
        return None
    rest = [p for p in params[2:] if p.default is inspect.Parameter.empty and p.kind in positional]
    if rest or params[1].name.lower().replace("_", "") not in LEARNING_RATES:
        return None
    return params[1].name


def unfilled(method: Callable[..., Any]) -> str | None:
    """The name of a parameter ``method`` requires after dout that is no learning rate (``backward(self, g,
    alpha)``), which check_object cannot fill; None where there is none (or the signature cannot be read)."""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params[1:] if p.default is inspect.Parameter.empty and p.kind in positional]
    if not required or learning_rate_of(method) is not None:
        return None
    return required[0].name


def call_backward(
    method: Callable[..., Any],
    dout: Any,
    stepped: bool,
    extra: tuple[Any, ...] = (),
    free: bool = False,
    unit: float = 1.0,
) -> Any:
    """``method(dout, *extra)`` (``extra``: forward's inputs it takes again), or ``method(dout, STEP)`` for a
    backward that takes a learning rate, or for a loss's backward that takes no dout (``backward(self)``, or
    ``free``: only forward's inputs, ``backward(self, label_tensor)``), ``method(*extra)`` with its returned
    gradients times the scalar dout (its stored ones: :func:`dout_scale`)."""
    if free or takes_no_dout(method):
        ret = method(*extra)
        if ret is None:
            return ret
        parts = [g for _, g in flatten(ret, "ret")]
        _gradients_only(method, parts)
        scale = dout_scale(method, dout, free, unit)
        return rebuild_like(ret, [scale * np.asarray(g) for g in parts])
    return method(dout, STEP) if stepped else method(dout, *extra)


def _gradients_only(method: Callable[..., Any], parts: list[Any]) -> None:
    """:class:`ArgumentError` where a backward called without a dout (a loss's) returns something that is no
    array of numbers: a layer that returns itself, its upstream gradient kept on an attribute it reads."""
    for g in parts:
        if isinstance(g, (np.ndarray, np.generic, int, float)) and np.asarray(g).dtype.kind in "biuf":
            continue
        name = getattr(method, "__qualname__", "backward")
        what = "the layer itself" if g is getattr(method, "__self__", None) else f"a {type(g).__qualname__}"
        raise ArgumentError(
            f"{name} takes no dout, so it is read as a loss's backward, whose returned arrays are its gradients; "
            f"it returned {what}.",
            "check_object passes the upstream gradient as backward's first argument (backward(dout), or "
            "backward(dout, lr)); a layer that reads it from an attribute (self.delta) and returns itself needs a "
            "wrapper whose backward(dout) sets that attribute, calls it and returns the input's gradient.",
        )


def takes_no_dout(method: Callable[..., Any]) -> bool:
    """Whether ``method`` (a bound backward) takes no argument at all: a loss layer's ``backward(self)``."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return not any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


def dout_scale(method: Callable[..., Any], dout: Any, free: bool = False, unit: float = 1.0) -> float:
    """The scalar a no-dout backward's gradients are multiplied by (the loss's dout); 1 for any other backward.
    For one loss per sample, a dout the same for each over ``unit``, the one the user gave: the weight of the sum
    (ones) or mean (1 / n) that ``backward()`` differentiates, as the user says. ``free``: it takes forward's
    inputs and no dout (``backward(self, label_tensor)``)."""
    if not (free or takes_no_dout(method)):
        return 1.0
    parts = [np.asarray(x) for _, x in flatten(dout, "dout")]
    if len(parts) > 1:  # (a loss beside other outputs, whose douts are 0: see object_probe.loss_dout)
        parts = [x for x in parts if x.size == 1] if all(x.size == 1 or not x.any() for x in parts) else parts
    if len(parts) == 1 and parts[0].size > 1 and np.all(parts[0] == parts[0].reshape(-1)[0]):
        return float(parts[0].reshape(-1)[0]) / unit  # (one loss per sample: unit is the dout the user gave)
    if len(parts) != 1 or parts[0].size != 1:
        raise ArgumentError(
            f"{getattr(method, '__qualname__', 'backward')} takes no dout, so it is read as a loss's backward; but "
            "forward's output is not one number.",
            "give backward a dout parameter (backward(self, dout)), or check a layer whose output is the scalar loss; "
            "for one loss per sample, pass dout=np.ones(n) if backward() differentiates their sum (np.full(n, 1 / n) "
            "for their mean).",
        )
    return float(parts[0].reshape(()))


def _forward_moved(spec: Any, template: Any, slot: Slot, inputs: tuple[Any, ...]) -> tuple[Any, Any] | None:
    """A fresh copy of the layer whose array ``slot`` moved (by a quarter to three quarters of its size, at least
    that of 1, a different share at every element), after its forward pass at ``inputs``, and that pass's output;
    None where ``slot`` holds no float array (None before forward fills it, as a cache entry). Raises what the
    user's forward raises."""
    value = slot.get(template)
    if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
        return None
    obj = spec.make(template, [slot], [_moved(value)], inputs)
    return obj, spec.call_forward(obj, copy.deepcopy(inputs))


def read_by_forward(spec: Any, template: Any, slot: Slot, inputs: tuple[Any, ...], out: Any) -> bool:
    """Whether ``forward``'s output at ``inputs`` (``out``) moves when the array ``slot`` of the layer moves
    (:func:`_forward_moved`): a parameter does; an optimizer's state kept on the layer (momentum, Adam's moments),
    which a stepping backward updates too, does not. A forward that raises there reads it."""
    try:
        moved = _forward_moved(spec, template, slot, inputs)
    except Exception:  # noqa: BLE001 - the user's forward at a moved value: it reads it
        return True
    if moved is None:
        return False
    now, then = flatten(moved[1], "out"), flatten(out, "out")
    return len(now) != len(then) or any(not np.array_equal(a, b) for (_, a), (_, b) in zip(now, then, strict=True))


def carried_by_forward(spec: Any, template: Any, slot: Slot, inputs: tuple[Any, ...], after: np.ndarray) -> bool:
    """Whether the array forward leaves in ``slot`` moves with the one it held before (``after``: what forward
    left there from the layer as it is): a parameter forward rebinds to a value of its own (``self.W =
    self.W.astype(X.dtype)``, a clip) does; a stored input (``self.x = x``), which forward overwrites whatever it
    held, does not, nor anything forward computes afresh. A forward that raises there tells nothing: False."""
    try:
        moved = _forward_moved(spec, template, slot, inputs)
    except Exception:  # noqa: BLE001 - no conclusion from a call that raises
        return False
    now = None if moved is None else slot.get(moved[0])
    return isinstance(now, np.ndarray) and now.shape == np.shape(after) and not np.array_equal(now, after)


#: The most arrays :func:`unseen_reads` moves (one forward pass each).
UNSEEN_LIMIT = 16


def unseen_reads(spec: Any, template: Any, inputs: tuple[Any, ...], probe: Any) -> list[str]:
    """Float arrays of a layer in which no parameter was found that its forward pass reads (its output moves
    with them): arrays in a list or tuple of an attribute (``self.params = [(W, dW), (b, db)]``, a pair's first
    item) and arrays on its class (``W = np.zeros(...)`` in the class body), by label. Their gradients are never
    compared; a check of the inputs alone vouches for nothing of theirs. ``probe``: one forward and backward pass
    (its output, and the attributes backward left: a scalar's gradient made there, ``self.dalpha``)."""
    found, out = [], probe.out
    for label, put in _held_elsewhere(template, probe.after)[:UNSEEN_LIMIT]:
        try:
            obj = spec.fresh(put(copy.deepcopy(template)))
        except Exception:  # noqa: BLE001 - (a copy that cannot be moved so, a class that refuses a subclass: untold)
            continue
        try:
            again = spec.call_forward(obj, copy.deepcopy(inputs))
        except Exception:  # noqa: BLE001 - a forward that fails at a moved value reads it
            found.append(label)
            continue
        now, then = flatten(again, "out"), flatten(out, "out")
        if len(now) != len(then) or any(not np.array_equal(a, b) for (_, a), (_, b) in zip(now, then, strict=True)):
            found.append(label)
    return found


def _moved(value: np.ndarray) -> np.ndarray:
    """``value`` moved by a quarter to three quarters of its size (at least 1), a different share per element (a
    uniform shift is invisible to a softmax or a normalization)."""
    share = np.random.default_rng(0).uniform(0.25, 0.75, value.shape)
    return (value + share * np.maximum(np.abs(value), 1.0)).astype(value.dtype)


def _held_elsewhere(obj: Any, after: dict[str, Any]) -> list[tuple[str, Callable[[Any], Any]]]:
    """(label, how to move it on a copy of ``obj``) of what :func:`unseen_reads` tries: the float arrays in the
    lists, tuples and dicts of its attributes (``self.params = [(W, dW), ...]``, ``self.params = {'fc1': {'W': W}}``,
    a list of per-layer dicts), learnable scalars kept as Python floats (an attribute with a gradient beside it:
    ``self.alpha`` and ``self.dalpha``, there or as ``after`` a backward pass left it) and float arrays on its
    class."""
    out: list[tuple[str, Callable[[Any], Any]]] = []
    attrs = attributes(obj)
    for a, v in attrs.items():
        if isinstance(v, (float, np.floating)) and _has_gradient({**after, **attrs}, a):
            out.append((a, functools.partial(_put_path, path=(a,))))
        elif isinstance(v, (list, tuple, dict)):
            for path in _arrays_in(v, (), UNSEEN_DEPTH):
                label = a + "".join(f"[{k!r}]" if isinstance(k, str) else f"[{k}]" for k in path)
                out.append((label, functools.partial(_put_path, path=(a, *path))))
    for klass in type(obj).__mro__[:-1]:
        for name, x in vars(klass).items():
            if is_float_array(x) and name not in attrs and all(name != lb for lb, _ in out):
                out.append((name, functools.partial(_put_class, name=name, x=x)))
    return out


#: How many levels of lists, tuples and dicts :func:`_held_elsewhere` looks into.
UNSEEN_DEPTH = 3


def _arrays_in(v: Any, path: tuple[Any, ...], depth: int) -> list[tuple[Any, ...]]:
    """The paths (keys and positions) of the float arrays in ``v``, a list, tuple or dict of at most
    :data:`UNSEEN_LIMIT` items, down to ``depth`` levels."""
    if depth <= 0 or len(v) > UNSEEN_LIMIT:
        return []
    items = v.items() if isinstance(v, dict) else enumerate(v)
    out: list[tuple[Any, ...]] = []
    for k, x in items:
        if is_float_array(x):
            out.append((*path, k))
        elif isinstance(x, (list, tuple, dict)):
            out += _arrays_in(x, (*path, k), depth - 1)
    return out


def _has_gradient(attrs: dict[str, Any], name: str) -> bool:
    """Whether an attribute has a gradient kept beside it where check_object looks for a parameter's
    (``dalpha``, ``grad_alpha``, ``grads['alpha']``: :func:`~backcheck.frontends.slots.grad_names`)."""
    return any(b in attrs for b in grad_names(name)) or any(
        isinstance(attrs.get(g), dict) and name in attrs[g] for g in GRAD_DICTS
    )


def _put_path(obj: Any, path: tuple[Any, ...]) -> Any:
    """``obj`` (a copy) with the value at ``path`` (an attribute, then keys and positions) moved."""
    setattr(obj, path[0], _moved_at(getattr(obj, path[0]), path[1:]))
    return obj


def _moved_at(value: Any, path: tuple[Any, ...]) -> Any:
    """``value`` with its item at ``path`` moved (a tuple rebuilt, a list or dict of the copy written)."""
    if not path:
        if isinstance(value, (float, np.floating)):
            return float(value) + 0.5 * max(abs(float(value)), 1.0)
        return _moved(np.asarray(value))
    key, rest = path[0], path[1:]
    if isinstance(value, tuple):
        items = list(value)
        items[key] = _moved_at(items[key], rest)
        return type(value)(*items) if is_namedtuple(value) else type(value)(items)
    value[key] = _moved_at(value[key], rest)
    return value


def _put_class(obj: Any, name: str, x: np.ndarray) -> Any:
    """``obj`` (a copy) of a subclass of its class whose attribute ``name`` is moved: the class is left alone."""
    obj.__class__ = type(type(obj).__name__, (type(obj),), {name: _moved(x)})
    return obj


def before_step(obj: Any, places: list[Any]) -> dict[Slot, np.ndarray]:
    """The values of the parameters whose gradient is read off their step (``Stepped`` places), before backward."""
    return {w.slot: np.array(w.slot.get(obj), dtype=np.float64) for w in places if isinstance(w, Stepped)}


def read_step(w: Stepped, obj: Any, before: dict[Slot, np.ndarray]) -> np.ndarray:
    """A parameter's gradient from its step: its value before backward minus after, over the learning rate."""
    return (before[w.slot] - np.asarray(w.slot.get(obj), dtype=np.float64)) / STEP


def resting_note(rested: dict[str, float], bname: str) -> list[str]:
    """Where a stepping backward moved parameters for a dout of zeros: that step was taken off before comparing,
    as what the step holds besides the gradient, and a term of the gradient that does not follow dout hides
    there too."""
    moved = {name: most for name, most in rested.items() if most}
    if not moved:
        return []
    said = ", ".join(f"{name} (up to {most:.3g})" for name, most in moved.items())
    return [
        f"{bname} steps {said} for a dout of zeros: that step was taken off the step for each dout before reading "
        "the gradient, as what a step holds besides it (a weight decay, a velocity of earlier steps); a term of "
        "the gradient that does not follow dout (a constant added to dW) hides there as well. Store the gradient "
        "on the object before the step (self.dW = ...) to check it whole."
    ]


def stepped_note(report: Any, bname: str, name: str, stepped: list[str]) -> str:
    """What the report says of a backward called with a learning rate; a 'nonlinear backward' finding is told
    that the step may be no plain gradient step, and where it lies in stepped parameters alone, they are
    inconclusive instead (:func:`_unreadable_steps`)."""
    unreadable = _unreadable_steps(report, bname, stepped)
    for found in report.findings if stepped and not unreadable else ():
        if found.kind == "nonlinear backward":
            found.message += (
                f" The gradients of {', '.join(stepped)} were read off {bname}'s own step: a step that is no plain "
                f"gradient step (Adam's, normalized by the gradient's size; momentum's) does not follow dout; store "
                "the gradient on the object before the step (self.dW = ...) to check it."
            )
    read = f": the gradients of {', '.join(stepped)} were read off their step (before minus after)" if stepped else ""
    return f"{bname} takes a learning rate ({name}); it was called with {name}={STEP:g}{read}." + _scaled_steps(
        report, name, stepped
    )


def _scaled_steps(report: Any, name: str, stepped: list[str]) -> str:
    """A sentence for stepped parameters that fail with every element off by one factor: a step that is that many
    times the gradient (Nesterov's 1 + mu, a schedule of the rate inside backward) reads so, as a gradient off by
    it does; '' where there is none."""
    failing = {lf.name for lf in report.leaves if lf.status == "fail"} & set(stepped)
    if not failing:
        return ""
    said = []
    pairs = zip(report.leaves, flatten(report.analytic, "a"), flatten(report.numeric, "n"), strict=False)
    for lf, (_, a), (_, n) in pairs:
        a, n = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(n, dtype=np.float64).reshape(-1)
        seen = np.isfinite(n) & (np.abs(n) > 1e-12 * float(np.max(np.abs(n), initial=0.0)))
        if lf.name not in failing or a.shape != n.shape or seen.sum() < 2:
            continue
        ratio = a[seen] / n[seen]
        if np.ptp(ratio) <= SAME_FACTOR * abs(float(np.median(ratio))):
            said.append(f"{lf.name} ({float(np.median(ratio)):.4g})")
    if not said:
        return ""
    return (
        f" Every element of {', '.join(said)} is off by one factor: a step that is that many times the gradient "
        f"(Nesterov's 1 + mu, a schedule of {name} inside backward) reads so, as a gradient off by it does; store the "
        "gradient on the object before the step (self.dW = ...) to tell them apart."
    )


#: Ratios of analytic to numeric values that agree to this share are one factor.
SAME_FACTOR = 1e-3


def _unreadable_steps(report: Any, bname: str, stepped: list[str]) -> list[str]:
    """The stepped parameters whose step does not grow with dout (an optimizer's: Adam's first step is the
    gradient over its own size, the same for dout scaled) where the backward is linear in dout everywhere else:
    no gradient can be read off such a step, right or wrong, so those parameters are inconclusive and the
    'nonlinear backward' finding is dropped. A nonlinearity in a returned gradient (one computed after the
    step), or a step that grows with dout otherwise than in proportion (a wrong rule quadratic in dout), keeps
    the finding."""
    found = next((f for f in report.findings if isinstance(f, Nonlinear) and f.probes is not None), None)
    if found is None or not stepped:
        return []
    bounds = [np.asarray(b, dtype=np.float64).reshape(-1) for _, b in flatten(report.bound, "bound")]
    sizes = [lf.n_elements for lf in report.leaves]
    if [b.size for b in bounds] != sizes or sum(sizes) != found.gaps.size:
        return []
    g1, scaled = found.probes
    moved, start = [], 0
    for lf, b in zip(report.leaves, bounds, strict=True):
        at = slice(start, start + b.size)
        start += b.size
        with np.errstate(invalid="ignore"):
            beyond = ~(found.gaps[at] <= np.nan_to_num(b, nan=0.0)) & np.isfinite(found.gaps[at])
        if not np.any(beyond):
            continue
        if lf.name not in stepped or not all(_flat(g1[at][beyond], t * gk[at][beyond], t) for t, gk in scaled):
            return []
        moved.append(lf)
    if not moved:
        return []
    report.findings.remove(found)
    for lf in moved:
        report.undecide(
            lf.name,
            f"{lf.name}'s gradient was read off {bname}'s own step, and that step does not follow dout (scaled, "
            "it does not scale with it): an optimizer's step (Adam's, normalized by the gradient's size) is no "
            "gradient, right or wrong; store the gradient on the object before the step (self.dW = ...) to check it.",
        )
    return [lf.name for lf in moved]


#: A step for ``t`` times dout that is at most ``|t|`` to this power times the largest step for dout, at every
#: element, does not grow with dout: a normalized step (Adam's, RMSprop's, a sign; Adam's bias-corrected moments
#: after a few steps reach 2x its largest step for dout at t = -4), not a gradient step (4x) nor a rule wrong by a
#: power of dout (16x).
FLAT_DEGREE = 0.75


def _flat(step: np.ndarray, step_t: np.ndarray, t: float) -> bool:
    """Whether the step for ``t`` times dout stays within ``|t| ** FLAT_DEGREE`` of the largest step for dout, at
    every element and whatever its sign: a step bounded whatever dout is (Adam's moments from earlier steps can
    all but cancel one element's step for dout, and not for -4 dout), where a rule wrong by a power of dout, or
    a gradient step, grows with it."""
    top = float(np.max(np.abs(step))) if step.size else 0.0
    if np.array_equal(step_t, step):
        return False  # the same step whatever dout is: it ignores dout (a weight decay alone, a constant step)
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.abs(step_t) <= abs(t) ** FLAT_DEGREE * top))


#: The learning rates a stepping backward is called with again, beside :data:`STEP`: its returned gradients must
#: not change with the rate, and each parameter's step must be affine in it (a velocity or a weight decay aside).
RATES = (0.5, 0.25)
#: Agreement asked of those calls, in units of the arrays' dtype epsilon times their largest value.
RATE_ULPS = 64


def rate_findings(spec: Any, made: Callable[[], Any], inputs: tuple[Any, ...], dout: Any, places: list[Any]) -> list:
    """Findings for a backward that takes a learning rate and uses it otherwise than for one step: returned
    gradients that change with the rate (computed from the stepped weights, or scaled by the rate), or a step
    that is not affine in it (the rate applied twice: ``lr * lr * dW``), told by calls at :data:`RATES` on fresh
    copies of the layer (``made()``); none where a call raises (the check reports on its own calls)."""
    runs = []
    for rate in (STEP, *RATES):
        try:
            obj = made()
            getattr(obj, spec.forward)(*copy.deepcopy(inputs))
            held = {w.slot: np.asarray(w.slot.get(obj)) for w in places}
            before = {w.slot: np.array(held[w.slot], dtype=np.float64) for w in places}
            ret = getattr(obj, spec.backward)(copy.deepcopy(dout), rate)
            steps = {w.slot: before[w.slot] - np.asarray(w.slot.get(obj), dtype=np.float64) for w in places}
            returned = [np.asarray(x) for _, x in flatten(ret, "ret")] if ret is not None else []
        except Exception:  # noqa: BLE001 - no conclusion from calls that raise
            return []
        runs.append((returned, steps))
    bname, out = f"{spec.cls}.{spec.backward}", []
    (g1, s1), (g2, s2), (g3, s3) = runs
    if len(g1) == len(g2) and any(not near(a, b) for a, b in zip(g1, g2, strict=True)):
        out.append(
            Finding(
                "learning rate",
                f"{bname} returns other gradients at {spec.step}={RATES[0]:g} than at {STEP:g}: a gradient it "
                "returns must not depend on the step it takes (one computed from the weights after their step, or "
                "scaled by the rate).",
                where=bname,
            )
        )
    bent = [w.slot.name for w in places if not _affine(s1[w.slot], s2[w.slot], s3[w.slot], held[w.slot])]
    if bent:
        out.append(
            Finding(
                "learning rate",
                f"{bname}'s step of {', '.join(bent)} does not grow in proportion to {spec.step} (at {STEP:g}, "
                f"{RATES[0]:g} and {RATES[1]:g}): a gradient step is {spec.step} times the gradient (plus what a "
                "velocity or a weight decay adds); the rate applied twice (lr * lr * dW) is not.",
                where=bname,
                elements=bent,
            )
        )
    return out


def _affine(s1: np.ndarray, s2: np.ndarray, s3: np.ndarray, w: np.ndarray) -> bool:
    """Whether steps at rates 1, 1/2 and 1/4 are affine in the rate, to the rounding of the parameter ``w`` they
    were taken off (each step is ``w`` less its value after, both rounded to ``w``'s dtype) and of the step."""
    eps = float(np.finfo(w.dtype).eps) if w.dtype.kind == "f" else float(np.finfo(np.float64).eps)
    tol = RATE_ULPS_STEP * eps * (np.abs(w.astype(np.float64)) + np.abs(s1))
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.abs((s1 - s2) - 2 * (s2 - s3)) <= tol + 1e-300))


#: The steps' agreement asked for, in units of the parameter's dtype epsilon times its size (and the step's):
#: four steps, each a difference of two values rounded to that dtype.
RATE_ULPS_STEP = 16


def near(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one computation agree to :data:`RATE_ULPS` of their dtype's epsilon at their size."""
    if a.shape != b.shape or a.dtype.kind not in "fc" or b.dtype.kind not in "fc":
        return a.shape == b.shape and bool(np.array_equal(a, b))
    eps = float(np.finfo(np.result_type(a.dtype, b.dtype)).eps)
    top = float(max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0)))
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.abs(a - b) <= RATE_ULPS * eps * top + 1e-300) or not np.isfinite(top))
