"""Layers with a hand-written backward pass: ``forward(*inputs)`` and ``backward(dout, *inputs)``.

Also the CS231n convention, ``forward(*inputs) -> (out, cache)`` and ``backward(dout, cache) -> grads`` (for a
layer of several outputs, ``forward -> (out_1, ..., out_k, cache)`` and ``backward(dout_1, ..., dout_k, cache)``).
The layer is reduced to the core contract by a cotangent ``dout``: the checked scalar is
``<dout, forward(*inputs)>``, whose gradient is exactly what ``backward(dout, ...)`` claims to return.
check_layer works on private copies: the caller's arrays are never written.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backcheck.bits import dot, foreign_float, foreign_float_error
from backcheck.calls import (
    arg_names,
    call_user,
    called_as,
    flat_outputs,
    function_name,
    require_callable,
    typed_arguments,
)
from backcheck.containers import flatten, rebuild_like
from backcheck.contract import Contract
from backcheck.errors import BadInputError, GradientMismatch
from backcheck.evaluate import Output
from backcheck.findings import error_notes
from backcheck.frontends.common import (
    Nonlinear,
    float_dict,
    float_input,
    float_list,
    private_copy,
    python_float,
    settle_linearity,
)
from backcheck.frontends.hints import cache_error, check_outputs, cotangents, masked_note, order_error, torch_inputs
from backcheck.frontends.layer_backward import Backward, backward_call, match_grads, runs_forward, split_cache
from backcheck.frontends.upcast import upcast_point
from backcheck.options import Options
from backcheck.randomness import FrozenRandom, find_generators, keeps_random, replay_note
from backcheck.report import Report
from backcheck.run import run
from backcheck.tree import Tree
from backcheck.verdict import JUMP


@keeps_random  # the user's random streams are left as they were found
@typed_arguments
def check_layer(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    inputs: Any,
    dout: Any = None,
    *,
    cache: bool = False,
    wrt: Sequence[str] | None = None,
    constant: Sequence[str] | None = None,
    strategy: str | None = None,
    samples: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    step: Any = None,
    seed: Any = 0,
    upcast: bool | None = None,
    curves: bool = False,
    random: str = "auto",
    names: Sequence[str] | None = None,
    vectorized: bool = False,
    max_batch_bytes: int | None = None,
    executor: Any = None,
    progress: bool | None = None,
    strict_dtype: bool = False,
    floor: float | None = None,
    detect: float | None = None,
    confidence: float = 0.999,
) -> Report:
    """Check a layer's backward pass against finite differences of its forward pass.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> out`` (an array, or a tuple/list/dict of arrays); with ``cache=True``,
        ``forward(*inputs) -> (out, cache)``, or ``(out_1, ..., out_k, cache)`` for several outputs (CS231n's
        ``lstm_step_forward``).
    backward : callable
        ``backward(dout, *inputs) -> grads``; with ``cache=True``, ``backward(dout, cache) -> grads``, or
        ``backward(dout_1, ..., dout_k, cache)``.
        ``grads`` holds one gradient per input (``None`` for inputs that are not differentiable, such as
        integer labels), or one per differentiated input, or a single array when one input is differentiated
        (labels, masks and config beside it).
    inputs : array or sequence of arrays
        The point. Names in reports come from ``forward``'s parameter names. Integer and boolean inputs,
        dicts, lists and other objects (CS231n's ``bn_param``) are passed through unperturbed: every evaluation
        gets a fresh deep copy of them as they were given, so the caller's are never written and what one
        evaluation's forward writes into them (running statistics) never reaches another; without ``cache``,
        ``backward`` is called after a forward pass on the same copies, so it sees what that pass wrote. A bare
        Python ``float`` beside float arrays (a dropout probability, a margin, ``eps``) is a hyperparameter,
        passed through unperturbed, unless ``backward`` returns a gradient for it or ``wrt=`` names it
        (``np.float64`` scalars and 0-d arrays are always differentiated). A list or tuple of float arrays is
        one input, differentiated whole (``forward(X)`` with ``X = [a, b]``).
    dout : array or tree like ``out``, optional
        The upstream gradient. Default: a seeded standard normal array of ``out``'s shape and dtype. One zero
        everywhere is refused (it compares nothing).
    wrt : sequence of str, optional
        Check only these inputs (by name).
    constant : sequence of str, optional
        Float inputs that are constants of the layer (a mask, a fixed weight): passed through unperturbed, and
        ``backward`` may return None for them. A float input whose gradient is None and that is not declared
        here fails the check with a 'missing gradient' finding.
    strategy, samples, atol, rtol, step, seed
        As in :func:`backcheck.check`.
    upcast : bool, optional
        Evaluate the forward pass on float64 copies of the inputs for the numeric side. The default
        (None) does so when an input is float32 or float16 and ``forward`` returns float64 for float64
        inputs; the analytic gradient is still computed, and judged, at the inputs' own dtype.
    curves : bool
        Record the error-versus-step curve of each input's worst element (``report.curves``).
    random : {'auto', 'freeze', 'error'}
        As in :func:`backcheck.check`: a random forward pass (dropout drawing its own mask) is checked with
        the same random stream replayed at every forward pass; ``backward`` is called after a forward pass, on
        the stream as that pass left it, as in training, so it must take the mask from its cache (or its
        inputs' state), not draw it again.
    names : sequence of str, optional
        The inputs' names in the report (default: ``forward``'s parameter names).
    vectorized : bool
        ``forward`` accepts its float inputs with a leading batch axis (labels and other fixed inputs as
        they are) and returns outputs with that axis: the first differences are then evaluated many points
        per call, in chunks of at most ``max_batch_bytes`` of inputs (default about 2 MB, as in
        :func:`backcheck.check`). ``backward`` is called unbatched.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Spread the first differences over its workers, as in :func:`backcheck.check` (``forward`` must be
        picklable: defined at module level).
    progress : bool, optional
        A progress bar on checks longer than about a second, as in :func:`backcheck.check`.
    strict_dtype : bool
        Refuse gradients in another float dtype than their input (``np.zeros(x.shape)`` for a float32 ``x``);
        by default they are judged at the coarser of the two dtypes, with a note.

    floor : float, optional
        The detection floor asked for, relative (``floor=1e-9``): an element wrong by that fraction of its
        gradient must fail. Elements whose bound is wider are refined on a Richardson table; where the
        function's noise forbids the floor, they are inconclusive. Every report states the floor it reached.
    detect, confidence : float, optional
        For 'projected' and 'auto': the RMS error, relative to the gradient, that the random directions must
        catch (default: ten times what one direction resolves) and the confidence to catch it with (default
        0.999); the number of directions follows (three by default). The report states both.

    Returns
    -------
    Report

    Examples
    --------
    >>> import numpy as np
    >>> import backcheck
    >>> def affine_forward(x, w, b):
    ...     return x @ w + b
    >>> def affine_backward(dout, x, w, b):
    ...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
    >>> rng = np.random.default_rng(0)
    >>> x, w, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    >>> backcheck.check_layer(affine_forward, affine_backward, (x, w, b)).ok
    True
    """
    options = Options.pick(locals())
    layer = Layer.make(forward, backward, inputs, cache=cache, names=names, wrt=wrt, constant=constant)
    contract = layer.contract(dout, options)
    report = run(contract, options)
    bname = function_name(layer.backward, "backward")
    settle_linearity(report, contract.tree, bname)
    _settle_at_jumps(report, contract.tree, bname)
    report.notes.extend(error_notes(report, contract.tree, bname))
    return report


def _settle_at_jumps(report: Report, tree: Tree, bname: str) -> None:
    """Drop a 'nonlinear backward' finding (for a note) whose gaps beyond their elements' bounds all lie at jumps
    of the forward pass, where no derivative exists and whatever the rule claims is not judged."""
    for found in [f for f in report.findings if isinstance(f, Nonlinear) and f.gaps is not None]:
        status = [np.asarray(a).reshape(-1) for _, a in flatten(report.element_status)]
        flat = np.concatenate(status) if status else np.empty(0, dtype=str)
        if flat.size != tree.size or not np.any(flat == JUMP):
            continue
        with np.errstate(invalid="ignore"):
            beyond = ~(found.gaps <= tree.pack(report.bound, "report")) & np.isfinite(found.gaps)
        if np.any(beyond & (flat != JUMP)):
            continue
        report.findings.remove(found)
        report.notes.append(
            f"{bname}'s gradient for a scaled dout, scaled back, differs from its gradient for dout only at jumps of "
            "the forward pass, where no derivative exists and what the rule claims is not judged; elsewhere it is "
            "linear in dout."
        )


class LayerPhi:
    """``phi = <dout, forward(*inputs)>`` as a picklable callable of the differentiable inputs, for workers."""

    def __init__(self, layer: Layer, output: Output) -> None:
        self.forward, self.names, self.fixed, self.cache = layer.forward, layer.names, dict(layer.fixed), layer.cache
        # the output's cotangent and base point (filled at the baseline, before any task is sent)
        self.u, self.base = output.weights, output.base
        self.__name__ = function_name(layer.forward, "forward")

    def __call__(self, current: Mapping[str, Any]) -> float:
        out = self.forward(*[current[n] if n in current else private_copy(self.fixed[n]) for n in self.names])
        out = split_cache(out, self.__name__)[0] if self.cache else out
        parts = [np.asarray(x, dtype=np.float64).reshape(-1) for _, x in flatten(out, "out")]
        if self.base:  # as Output.reduce computes it: relative to the base point's outputs
            parts = [p - b for p, b in zip(parts, self.base, strict=True)]
        return float(sum(dot(uu, p) for uu, p in zip(self.u, parts, strict=True)))


@dataclass(frozen=True)
class Layer:
    """A layer as the checker sees it: the functions, the inputs by name, and which are differentiated."""

    forward: Callable[..., Any]
    backward: Callable[..., Any]
    cache: bool
    names: tuple[str, ...]
    diff_names: tuple[str, ...]
    fixed: Mapping[str, Any]  # inputs passed through unperturbed (labels, masks, constants)
    tree: Tree
    constant: frozenset[str]
    maybe: tuple[str, ...] = ()  # bare Python floats, differentiated only if backward returns their gradient
    frozen: FrozenRandom | None = None  # the random streams every forward pass replays (random='auto'/'freeze')
    #: the streams as the check found them, restored before every backward call where forward draws nothing: a
    #: backward that draws (a random subgradient at a kink) gives one rule at every dout
    own_draws: FrozenRandom | None = None

    @classmethod
    def make(
        cls,
        forward: Callable[..., Any],
        backward: Callable[..., Any],
        inputs: Any,
        *,
        cache: bool = False,
        names: Sequence[str] | None = None,
        wrt: Sequence[str] | None = None,
        constant: Sequence[str] | None = None,
    ) -> Layer:
        fname = function_name(forward, "forward")
        if isinstance(inputs, Mapping):
            raise BadInputError(
                "inputs is a dict; check_layer takes the inputs positionally, in forward's parameter order.",
                "pass a tuple, e.g. inputs=(x, w, b).",
            )
        if not isinstance(inputs, (list, tuple)):
            inputs = (inputs,)
        for what, fn in (("forward", forward), ("backward", backward)):
            require_callable(fn, what, f"pass the layer's {what} function.")
        if names is not None and len(names) != len(inputs):
            raise BadInputError(f"names has {len(names)} entries for {len(inputs)} inputs.", "give one name per input.")
        names = list(names) if names is not None else arg_names(forward, len(inputs))
        odd = [n for n in names if not isinstance(n, str) or not n]
        if odd:
            raise BadInputError(
                f"names {names} holds {odd[0]!r}, which is no name.", "give every input a name: names=['x', 'w', 'b']."
            )
        if len(set(names)) != len(names):
            raise BadInputError(f"names {names} repeat a name.", "give every input a name of its own.")
        wrt, constant = names_option("wrt", wrt, names), names_option("constant", constant, names)
        for what, given in (("wrt", wrt), ("constant", constant)):
            unknown = [w for w in given or () if w not in names]
            if unknown:
                raise BadInputError(
                    f"{what} names {unknown}, which are not inputs of {fname}: {names}.", f"choose from {names}."
                )
        skip = set(constant or ())
        by_name = dict(zip(names, inputs, strict=True))
        # an ml_dtypes float array (numpy reads some as kind 'f') is no input the check can perturb: alone, a typed
        # error; beside float ones, its gradient is reported unchecked
        foreign = [n for n, x in by_name.items() if isinstance(x, np.ndarray) and foreign_float(x.dtype)]
        diff = [
            n
            for n, x in by_name.items()
            if (float_input(x) or float_list(x) or float_dict(x)) and (wrt is None or n in wrt) and n not in skip
        ]
        diff = [n for n in diff if n not in foreign]
        tensors = torch_inputs(fname, names, inputs)
        if tensors is not None:
            raise tensors
        if not diff and foreign:
            raise foreign_float_error(foreign[0], by_name[foreign[0]].dtype)
        if not diff:
            raise BadInputError(
                f"none of {fname}'s inputs ({', '.join(names)}) is a float array to differentiate.",
                "pass float arrays (integer labels and masks are passed through unperturbed).",
            )
        # bare Python floats beside arrays are hyperparameters until backward returns a gradient for them
        # ... and so are dicts of arrays (a config of running statistics), until it returns one for them (a cell's
        # parameters)
        maybe = [n for n in diff if (python_float(by_name[n]) or float_dict(by_name[n])) and wrt is None]
        if len(maybe) < len(diff):
            diff = [n for n in diff if n not in maybe]
        else:
            maybe = []
        return cls._of(forward, backward, cache, names, diff, by_name, frozenset(skip), tuple(maybe))

    @classmethod
    def _of(
        cls,
        forward: Callable[..., Any],
        backward: Callable[..., Any],
        cache: bool,
        names: Sequence[str],
        diff: Sequence[str],
        by_name: Mapping[str, Any],
        constant: frozenset[str],
        maybe: tuple[str, ...] = (),
    ) -> Layer:
        # the inputs passed through are private copies: the caller's dicts and arrays are never written
        fixed = {n: private_copy(x) for n, x in by_name.items() if n not in diff}
        tree = Tree({n: by_name[n] for n in diff}, "inputs", in_place=False, bare_keys=True)
        draws = FrozenRandom(find_generators(backward, *fixed.values()))
        return cls(forward, backward, cache, tuple(names), tuple(diff), fixed, tree, constant, maybe, own_draws=draws)

    def claim(self, maybe: Sequence[str]) -> Layer:
        """This layer with the undecided Python floats ``maybe`` differentiated too (in input order)."""
        by_name = {**self.fixed, **self.tree.obj}
        diff = [n for n in self.names if n in self.diff_names or n in maybe]
        return Layer._of(self.forward, self.backward, self.cache, self.names, diff, by_name, self.constant)

    @property
    def listed(self) -> bool:
        """The one differentiated input is a list of arrays (``forward(X)`` with ``X = [a, b]``)."""
        return len(self.diff_names) == 1 and isinstance(self.tree.obj[self.diff_names[0]], (list, tuple))

    @property
    def keyed(self) -> dict[str, list[str]]:
        """The keys of each differentiated input that is a dict of arrays (a cell's ``parameters``)."""
        return {n: list(v) for n, v in self.tree.obj.items() if isinstance(v, Mapping)}

    # -- calling the layer ---------------------------------------------------------------------------------
    def args(self, current: Mapping[str, Any]) -> list[Any]:
        """The arguments at ``current``: every input passed through is a fresh copy of its value at the start, so
        what one evaluation writes into a config dict (running statistics) never reaches another one."""
        return [current[n] if n in current else private_copy(self.fixed[n]) for n in self.names]

    def out(self, current: Mapping[str, Any]) -> Any:
        """The forward pass's output (without the cache) at ``current``."""
        out = self.forward(*self.args(current))
        return split_cache(out, self.fname)[0] if self.cache else out

    @property
    def fname(self) -> str:
        return function_name(self.forward, "forward")

    def grads(self, dout: Any, args: list[Any]) -> Any:
        """What ``backward`` returns for ``dout`` at the inputs ``args`` (through the cache if there is one),
        called after the forward pass, as in training (see :func:`backward_call`)."""
        return backward_call(self, dout, args).raw

    def pack(
        self, raw: Any, bname: str, tree: Tree | None = None, strict_dtype: bool = False
    ) -> tuple[np.ndarray, list[str], dict[str, np.dtype]]:
        """The flat gradient of the differentiated inputs, the names whose gradient is None (zeros), and the
        gradients' dtypes where they differ from their input's."""
        tree = tree or self.tree
        grads = match_grads(raw, list(self.names), list(self.diff_names), bname, self.listed, self.keyed)
        shapes = {n: np.shape(v) for n, v in {**self.fixed, **tree.obj}.items() if isinstance(v, np.ndarray)}
        swapped = order_error(grads, shapes, [n for n in self.names if n in shapes], bname)
        if swapped is not None:
            raise swapped
        missing = [n for n, gr in grads.items() if gr is None]
        filled = {n: (gr if gr is not None else _zeros_like(tree.obj[n])) for n, gr in grads.items()}
        g, dtypes = tree.pack_dtypes(filled, "gradient", strict_dtype=strict_dtype)
        return g, missing, dtypes

    # -- the contract --------------------------------------------------------------------------------------
    def contract(self, dout: Any, options: Options) -> Contract:
        fname = function_name(self.forward, "forward")
        try:
            out0 = call_user(lambda: self.out(self.tree.current()), (), fname)
            changed = self.tree.changed()
        finally:
            self.tree.restore()
        if out0 is None:
            raise BadInputError(
                f"{fname} returned None (dtype object); a layer's output must be float.",
                "return the layer's output (a forward pass left as a TODO returns None).",
            )
        bname = function_name(self.backward, "backward")
        ints = integer_outputs(out0, self.backward, self.cache)
        if ints:  # (argmax, pool indices beside the output: no dout for them, as torch gives them none)
            keep = tuple(k for k in range(len(out0)) if k not in ints)
            layer = dataclasses.replace(self, forward=FloatOutputs(self.forward, keep, fname, self.cache))
            contract = layer.contract(_float_douts(dout, out0, keep), options)
            return dataclasses.replace(contract, notes=(*contract.notes, _integer_note(fname, bname, out0, ints)))
        wrong_convention = None if self.cache else cache_error(fname, bname, self.backward, out0, len(self.names))
        if wrong_convention is not None:
            raise wrong_convention
        parts = [(n, np.asarray(p)) for n, p in flat_outputs(out0, "out", f"{fname}'s output")]
        check_outputs(parts, fname, out0)
        u = cotangents(dout, parts, options.rng("dout"), fname)
        # (a write into the inputs is reported by the evaluator, which sees every evaluation's)
        layer, notes = self._decide(out0, u)
        notes += tuple(n for n in [masked_note([(n, int(np.isinf(p).sum()), p.size) for n, p in parts])] if n)
        return self._build(layer, out0, parts, u, options, bool(changed), replayed=False, notes=notes)

    def _decide(self, out0: Any, u: list[np.ndarray]) -> tuple[Layer, tuple[str, ...]]:
        """Differentiate the bare Python floats (``p=0.5``) for which ``backward`` returns a gradient; the others
        are hyperparameters, passed through unperturbed."""
        if not self.maybe:
            return self, ()
        d = [x.copy() for x in u]
        dout = rebuild_like(out0, d) if len(u) > 1 or isinstance(out0, (list, tuple, Mapping)) else d[0]
        try:
            raw = self.grads(dout, self.args(self.tree.fresh()))
        except Exception:  # the analytic side calls backward again and reports its error
            raw = None
        claimed = []
        if isinstance(raw, (list, tuple)) and len(raw) == len(self.names):
            claimed = [n for n, g in zip(self.names, raw, strict=True) if n in self.maybe and g is not None]
        elif isinstance(raw, Mapping):  # (keyed by name, d and the name, or a dict input's keys)
            claimed = [n for n in self.maybe if _keys_claim(raw, n, self.fixed.get(n, self.tree.obj.get(n)))]
        left = [n for n in self.maybe if n not in claimed]
        floats = [n for n in left if not isinstance(self.fixed.get(n, self.tree.obj.get(n)), Mapping)]
        notes: tuple[str, ...] = ()
        if floats:
            bname = function_name(self.backward, "backward")
            notes = (
                f"{', '.join(floats)}: Python float(s), passed through unperturbed as hyperparameters ({bname} "
                "returned no gradient for them); name them in wrt=[...] to check them.",
            )
        return (self.claim(claimed) if claimed else self), notes

    @staticmethod
    def _build(
        layer: Layer,
        out0: Any,
        parts: list[tuple[str, np.ndarray]],
        u: list[np.ndarray],
        options: Options,
        writes: bool,
        replayed: bool,
        notes: tuple[str, ...] = (),
    ) -> Contract:
        fname = function_name(layer.forward, "forward")
        bname = function_name(layer.backward, "backward")
        point, refused = layer._point(parts, options)
        notes = (*notes, *([refused] if refused and refused not in notes else []))
        side = Backward(layer, out0, u, point, bname, options.strict_dtype)
        side.forward_writes = writes
        names, shapes = [n for n, _ in parts], [p.shape for _, p in parts]
        # (at every evaluation: one array, the common case, is its own list of outputs)
        arrays = lambda o: [o] if type(o) is np.ndarray else [x for _, x in flatten(o)]  # noqa: E731
        output = Output.cotangent(fname, u, names, shapes, arrays)

        def replay() -> tuple[Contract, str]:
            # every forward pass replays the same streams; backward runs on them as the forward pass that made its
            # cache left them, as in training (a backward that runs its forward itself replays them too)
            frozen = FrozenRandom(find_generators(layer.forward, layer.backward, *layer.fixed.values()))
            backward = frozen.wrap(layer.backward) if runs_forward(layer.backward) else layer.backward
            again = dataclasses.replace(layer, forward=frozen.wrap(layer.forward), backward=backward, frozen=frozen)
            note = replay_note(fname, frozen) + (
                f" {bname} was called after the forward pass, on the stream as that pass left it, as in training."
            )
            return Layer._build(again, out0, parts, u, options, writes, replayed=True, notes=notes), note

        def call(current: Mapping[str, Any]) -> Any:
            if options.vectorized:
                out = layer.out({n: np.asarray(v)[None] for n, v in current.items()})
                return rebuild_like(out, [np.asarray(x)[0] for _, x in flatten(out, "out")])
            return layer.out(current)

        return Contract(
            title=f"{fname} / {bname}",
            kind="layer",
            tree=layer.tree,
            point=point,
            call=call,
            output=output,
            analytic=side.analytic,
            fname=fname,
            batch_call=_RowsPhi(layer, output),
            remote=LayerPhi(layer, output),
            replay=None if replayed else replay,
            notes=(*layer.tree.notes(), *notes),
        )

    def _point(self, parts: list[tuple[str, np.ndarray]], options: Options) -> tuple[Tree, str]:
        """Where the numeric side is evaluated: float64 copies when the forward pass keeps float64 for them (and
        a note when it raised on them)."""
        return upcast_point(self.tree, self.out, parts, options.upcast)


class _RowsPhi:
    """``phi`` for every row of a batch (``vectorized=True``): forward on inputs with a leading batch axis."""

    def __init__(self, layer: Layer, output: Output) -> None:
        self.layer, self.output = layer, output

    def __call__(self, rows: Mapping[str, Any]) -> np.ndarray:
        return self.output.rows([np.asarray(x) for _, x in flatten(self.layer.out(rows), "out")])


def _keys_claim(raw: Mapping[Any, Any], name: str, value: Any) -> bool:
    """Whether a backward's dict of gradients holds one for input ``name``: under its name, ``d`` and its name,
    or (a dict input) under one of its keys or ``d`` and it (the others missing are named then)."""
    if raw.get(name) is not None or raw.get("d" + name) is not None:
        return True
    return isinstance(value, Mapping) and any(raw.get(k, raw.get("d" + k)) is not None for k in value)


def names_option(what: str, given: Any, names: Sequence[str]) -> list[str] | None:
    """``wrt=`` / ``constant=`` as a list of input names: a lone name is one name, an int an input's position
    (``constant=[3]`` the fourth input); else BadInputError."""
    if given is None:
        return None
    try:
        listed = [given] if isinstance(given, (str, int, np.integer)) else list(given)
    except TypeError:
        raise BadInputError(
            f"{what}={given!r} is not a list of input names.", f"pass {what}=['x'] (forward's parameter names)."
        ) from None
    return [_by_position(what, w, names) for w in listed]


def _by_position(what: str, w: Any, names: Sequence[str]) -> Any:
    """The name of input position ``w`` (an int, not a bool), or ``w`` itself."""
    if not isinstance(w, (int, np.integer)) or isinstance(w, bool):
        return w
    if not -len(names) <= w < len(names):
        raise BadInputError(
            f"{what} names input position {w}, but there are {len(names)} inputs ({names}).",
            f"give a position from 0 to {len(names) - 1}, or a name.",
        )
    return names[int(w)]


def _zeros_like(x: Any) -> Any:
    return rebuild_like(x, [np.zeros(np.shape(v), np.asarray(v).dtype) for _, v in flatten(x)])


def assert_layer(*args: Any, **kwargs: Any) -> Report:
    """Like :func:`check_layer`, but raise :class:`GradientMismatch` unless the check passes."""
    with called_as("check_layer", "assert_layer"):
        report = check_layer(*args, **kwargs)
    if not report.ok:
        raise GradientMismatch(report)
    return report


assert_layer.__signature__ = inspect.signature(check_layer)  # type: ignore[attr-defined]


class FloatOutputs:
    """``forward`` with its integer outputs (argmax, pool indices) left out: the outputs ``backward`` has douts
    for, a bare array where one is left (a class, so that an executor can pickle it with the layer)."""

    def __init__(self, forward: Callable[..., Any], keep: tuple[int, ...], name: str, cache: bool = False) -> None:
        self.forward, self.keep, self.__name__, self.cache = forward, keep, name, cache

    def __call__(self, *args: Any) -> Any:
        out = self.forward(*args)
        kept = [out[k] for k in self.keep] + ([out[-1]] if self.cache else [])  # (the cache stays last)
        return kept[0] if len(kept) == 1 else list(kept) if isinstance(out, list) else tuple(kept)


def integer_outputs(out: Any, backward: Callable[..., Any], cache: bool = False) -> tuple[int, ...]:
    """Positions of integer (or boolean) arrays among the outputs ``out`` (before the cache, with ``cache``) of a
    forward that returns several, beside at least one float one; none for an ``(out, cache)`` pair whose backward
    takes ``(dout, cache)`` without ``cache`` (cache=True forgotten: said so by
    :func:`backcheck.frontends.hints.cache_error`'s hint)."""
    if not isinstance(out, (list, tuple)) or len(out) < 2:
        return ()
    ints = tuple(k for k, p in enumerate(out) if isinstance(p, (np.ndarray, np.generic)) and p.dtype.kind in "iub")
    floats = [p for p in out if isinstance(p, (np.ndarray, np.generic)) and p.dtype.kind == "f"]
    if not ints or not floats or len(ints) + len(floats) < len(out):
        return ()
    forgotten = not cache and len(out) == 2 and arg_names(backward, 2)[1:] == ["cache"]
    return () if forgotten else ints


def _float_douts(dout: Any, out: Any, keep: tuple[int, ...]) -> Any:
    """``dout`` given for every output (None at the integer ones) kept for the float outputs alone."""
    if isinstance(dout, (list, tuple)) and len(dout) == len(out):
        kept = [dout[k] for k in keep]
        return kept[0] if len(kept) == 1 else tuple(kept)
    return dout


def _integer_note(fname: str, bname: str, out: Any, ints: tuple[int, ...]) -> str:
    said = ", ".join(f"out[{k}] ({np.asarray(out[k]).dtype})" for k in ints)
    return (
        f"{fname}'s integer output(s) {said} (indices, not values) are left out: {bname} is given the douts of "
        "the float outputs alone (a bare array where one is left)."
    )
