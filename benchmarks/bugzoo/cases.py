"""The cases of the bug zoo benchmark: one layer, one backward pass, one point, one dtype.

For each layer of :mod:`backcheck.zoo` and each dtype there is

- ``correct``: the correct backward at the layer's ordinary inputs (``make_inputs``);
- ``kink``: the correct backward exactly at a kink or tie (``kinks``), for the layers that have one;
- ``jump``: the correct backward exactly where the forward jumps (``jumps``), for the layers that have one;
- ``bug``: every wrong backward (``layer.bugs``) at the ordinary inputs.

A correct case is expected to pass (a failure is a false alarm), a bug case to fail (a pass is a miss), and a
jump case not to pass (no derivative exists there: a pass vouches for nothing; backcheck should say
inconclusive). Every checker gets private copies of the inputs (:meth:`Case.fresh`), so a backward that writes
into its arguments (``Bug.mutates``) cannot spoil the next checker's run.

Cases belong to a ``group``: ``zoo`` (``backcheck.zoo.LAYERS``, the table and targets of the benchmark) or one
of the hard classes reported beside it: ``float32`` (kernels computing in float32 whatever they are handed),
``ties``, ``tiny``, ``masked``, ``generator`` (``HABIT_LAYERS``), ``jumps`` and ``models`` (whole-model losses
over a parameter dict, checked by backcheck with ``backcheck.check``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck import zoo
from backcheck.zoo import Bug, Layer, Model
from backcheck.zoo.models import as_layer

KINDS = ("correct", "kink", "jump", "bug")
GROUPS = ("zoo", "float32", "ties", "tiny", "masked", "generator", "jumps", "models")
_HABIT_GROUPS = {
    "maxpool_tie2": "ties",
    "maxpool_tie3": "ties",
    "maxpool_tie4": "ties",
    "rowmax_ties": "ties",
    "normalize_tiny_rows": "tiny",
    "long_product": "tiny",
    "wide_softmax": "tiny",
    "masked_softmax": "masked",
    "masked_logsumexp": "masked",
    "dropout_rng": "generator",
}

# A float32 bug is "above float32's resolution" when its gradient error (``Case.bug_size``) is at least 1e-6
# of the gradient's largest element (about 8 units in the last place of float32, eps = 1.19e-7) and at least
# 10 times the round-off of the correct backward computed in float32 at the same point (``Case.roundoff``).
# Every bug of the zoo is above it at seed 0 (the smallest: the 1 + 1e-5 scale errors and batch norm's misplaced
# eps, 4.9e-6, against round-off of about 2e-7).
FLOAT32_RESOLUTION = 1e-6
RESOLUTION_FACTOR = 10.0

# The layers of ``--quick``: one or more of each family, several with kinks and subtle bugs.
QUICK_LAYERS = (
    "relu",
    "tanh",
    "softmax",
    "softmax_cross_entropy",
    "svm_hinge",
    "affine",
    "mlp_relu",
    "conv2d",
    "maxpool2d",
    "maxpool2d_ties",
    "batchnorm_train",
    "lstm_step",
    "attention",
    "inverse",
    "weight_decay_l1",
    "exp",
    "maximum",
)
# ... and of the hard classes: one or more of each
QUICK_CLASS_LAYERS = ("gelu_f32", "logsumexp_f32", "maxpool_tie3", "wide_softmax", "masked_logsumexp", "dropout_rng",
                      "sign", "patch_convnet_tie4")


def group_of(name: str) -> str:
    """The group of a layer or model name (see the module's docstring)."""
    if name in {m.name for m in zoo.MODELS}:
        return "models"
    if name in {layer.name for layer in zoo.FLOAT32_LAYERS}:
        return "float32"
    if name in {layer.name for layer in zoo.JUMP_LAYERS}:
        return "jumps"
    return _HABIT_GROUPS.get(name, "zoo")


def copy_value(x: Any) -> Any:
    """A private copy of one input: arrays copied, anything else (a random Generator) deep-copied with its state."""
    return np.array(x, copy=True) if isinstance(x, (np.ndarray, np.generic)) else copy.deepcopy(x)


@dataclass
class Case:
    """One check to run: ``backward`` of ``layer`` at ``inputs`` in ``dtype``."""

    layer: Layer
    dtype: str
    kind: str  # 'correct' | 'kink' | 'bug'
    seed: int
    inputs: dict[str, np.ndarray]
    bug: Bug | None = None
    #: for a whole model: the model and its batch (``inputs`` are its parameters; ``layer`` is its loss layer)
    model: Model | None = None
    batch: dict[str, Any] | None = None
    _bug_size: float | None = field(default=None, repr=False)
    _roundoff: float | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        what = {"correct": "correct", "kink": "correct@kink", "jump": "correct@jump"}.get(self.kind)
        what = what or f"bug:{self.bug.name}"
        return f"{self.layer.name}/{what}/{self.dtype}" + (f"/seed{self.seed}" if self.seed else "")

    @property
    def backward(self) -> Callable[..., Any]:
        return self.bug.backward if self.bug is not None else self.layer.backward

    @property
    def forward(self) -> Callable[..., Any]:
        return self.layer.forward

    @property
    def group(self) -> str:
        return group_of(self.layer.name)

    @property
    def model_grad(self) -> Callable[..., Any]:
        """A model case's gradient under test, ``grad(params, batch) -> dict``."""
        assert self.model is not None
        if self.bug is None:
            return self.model.grad
        return next(b.backward for b in self.model.bugs if b.name == self.bug.name)

    @property
    def expected(self) -> str:
        """'fail' for a wrong backward and at a jump (must not pass), 'pass' for a correct one."""
        return "fail" if self.kind in ("bug", "jump") else "pass"

    @property
    def severity(self) -> str | None:
        return self.bug.severity if self.bug is not None else None

    @property
    def mutates(self) -> bool:
        return bool(self.bug is not None and self.bug.mutates)

    @property
    def names(self) -> list[str]:
        return list(self.inputs)

    @property
    def float_names(self) -> list[str]:
        """The differentiable inputs (float arrays); integer labels and boolean masks are passed through."""
        return [n for n, x in self.inputs.items() if isinstance(x, np.ndarray) and x.dtype.kind == "f"]

    def fresh(self) -> dict[str, Any]:
        """Private copies of the inputs, in forward's parameter order (a Generator with its state)."""
        return {n: copy_value(x) for n, x in self.inputs.items()}

    def dout(self, out: Any) -> np.ndarray:
        """The fixed, seeded upstream gradient of the peers that take one (scipy, CS231n): standard normal."""
        out = np.asarray(out)
        rng = np.random.default_rng([self.seed, 4242])
        return np.asarray(rng.standard_normal(out.shape), dtype=out.dtype)

    @property
    def bug_size(self) -> float | None:
        """How wrong the bug's gradient is: max over inputs of max|g_bug - g| / max|g| (None if correct).

        Measured on float64 copies of the case's inputs with the seeded ``dout``, so it is the size of the bug
        itself, not float32 round-off. 0 means the bug only mutates its arguments.
        """
        if self.bug is None:
            return None
        if self._bug_size is None:
            wide = self._wide()
            self._bug_size = self._gap(self.bug.backward, wide, self.layer.backward, wide)
        return self._bug_size

    @property
    def roundoff(self) -> float | None:
        """How accurately the case's dtype computes the *correct* gradient here (None in float64).

        max over inputs of max|g(dtype) - g(float64)| / max|g(float64)| for the correct backward at the same
        point and ``dout``: the float32 gradient's own resolution, which a bug must exceed to be visible at all.
        """
        if self.dtype == "float64":
            return None
        if self._roundoff is None:
            self._roundoff = self._gap(self.layer.backward, self.inputs, self.layer.backward, self._wide())
        return self._roundoff

    def _wide(self) -> dict[str, np.ndarray]:
        return {n: (x.astype(np.float64) if n in self.float_names else copy_value(x)) for n, x in self.inputs.items()}

    def _gap(
        self,
        backward: Callable[..., Any],
        at: dict[str, np.ndarray],
        reference: Callable[..., Any],
        ref_at: dict[str, np.ndarray],
    ) -> float:
        """max over float inputs of max|backward(at) - reference(ref_at)| / max|reference(ref_at)|."""
        d = self.dout(self.forward(*self._copy(ref_at).values()))
        ref = grads_by_name(reference(d.copy(), *self._copy(ref_at).values()), self.names, self.float_names)
        got = grads_by_name(
            backward(d.astype(at[self.float_names[0]].dtype), *self._copy(at).values()),
            self.names,
            self.float_names,
        )
        gap = 0.0
        for n in self.float_names:
            g = np.zeros(ref_at[n].shape) if ref[n] is None else np.asarray(ref[n], dtype=np.float64)
            b = np.zeros(ref_at[n].shape) if got[n] is None else np.asarray(got[n], dtype=np.float64)
            if g.shape != b.shape:
                return float("inf")
            scale = float(np.max(np.abs(g), initial=0.0))
            diff = float(np.max(np.abs(b - g), initial=0.0))
            gap = max(gap, diff / scale if scale > 0 else (float("inf") if diff > 0 else 0.0))
        return gap

    def above_resolution(self) -> bool:
        """A bug visible in the case's dtype: in float32, bug_size >= 1e-6 and >= 10 x the gradient's roundoff."""
        if self.bug is None or self.dtype == "float64":
            return True
        size, noise = self.bug_size or 0.0, self.roundoff or 0.0
        return size >= max(FLOAT32_RESOLUTION, RESOLUTION_FACTOR * noise)

    @staticmethod
    def _copy(arrays: dict[str, Any]) -> dict[str, Any]:
        return {n: copy_value(x) for n, x in arrays.items()}


def grads_by_name(raw: Any, names: Sequence[str], float_names: Sequence[str]) -> dict[str, Any]:
    """A backward's gradients by float input name: it returns one per input, one per float input, or one."""
    if not isinstance(raw, (tuple, list)):
        raw = (raw,)
    if len(raw) == len(names):
        by_name = dict(zip(names, raw, strict=True))
    elif len(raw) == len(float_names):
        by_name = dict(zip(float_names, raw, strict=True))
    else:
        raise ValueError(f"backward returned {len(raw)} gradient(s) for {len(names)} input(s) {list(names)}")
    return {n: by_name.get(n) for n in float_names}


def all_names(classes: bool = True) -> list[str]:
    """The names of every layer of ``zoo.LAYERS`` and, with ``classes``, of the hard classes and the models."""
    names = [layer.name for layer in zoo.LAYERS]
    if classes:
        names += [x.name for x in (*zoo.FLOAT32_LAYERS, *zoo.HABIT_LAYERS, *zoo.JUMP_LAYERS, *zoo.MODELS)]
    return names


def make_cases(
    layers: Iterable[str] | None = None,
    dtypes: Iterable[str] = ("float64", "float32"),
    seeds: Iterable[int] = (0,),
    kinds: Iterable[str] = KINDS,
) -> list[Case]:
    """Every case of the named layers and models (default: the zoo's ``LAYERS``) for each seed and dtype.

    A case id is ``layer/correct|correct@kink|correct@jump|bug:<name>/dtype``, with ``/seed<n>`` appended for
    seeds other than 0.
    """
    chosen = list(layers) if layers is not None else all_names(classes=False)
    models = {m.name: m for m in zoo.MODELS}
    kinds = tuple(kinds)
    cases: list[Case] = []
    for seed in seeds:
        for dtype in dtypes:
            dt = np.dtype(dtype)
            for name in chosen:
                if name in models:
                    cases += _model_cases(models[name], dt.name, seed, kinds)
                    continue
                layer = zoo.get(name)
                point = layer.make_inputs(np.random.default_rng(seed), dt)
                if "correct" in kinds:
                    cases.append(Case(layer, dt.name, "correct", seed, point))
                for kind, make in (("kink", layer.kinks), ("jump", layer.jumps)):
                    if kind in kinds and make is not None:
                        cases.append(Case(layer, dt.name, kind, seed, make(np.random.default_rng(seed), dt)))
                if "bug" in kinds:
                    cases.extend(Case(layer, dt.name, "bug", seed, point, bug) for bug in layer.bugs)
    return cases


def _model_cases(model: Model, dtype: str, seed: int, kinds: tuple[str, ...]) -> list[Case]:
    params, batch = model.make(np.random.default_rng(seed), np.dtype(dtype))
    layer = as_layer(model, batch, list(params))
    found = [Case(layer, dtype, "correct", seed, params, model=model, batch=batch)] if "correct" in kinds else []
    if "bug" in kinds:
        found += [Case(layer, dtype, "bug", seed, params, bug, model=model, batch=batch) for bug in layer.bugs]
    return found
