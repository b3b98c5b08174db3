"""Drawing one point of an input space with Hypothesis.

Every input is built by a few lines of numpy code (a seeded generator, a scale, a domain, then edits that
put elements at kinks or tie them), executed as they are drawn: the same lines print the failing case, so
the printed test rebuilds exactly the arrays that failed. Hypothesis shrinks the draws, so the reported
case has the smallest dimensions, seed 0 where the values do not matter, and only the edits it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.errors import BadInputError
from backcheck.explore.space import (
    DEFAULT_DIM,
    KINK_OFFSETS,
    Array,
    Choice,
    Floats,
    Input,
    Integers,
    Ints,
    Labels,
    Mask,
    Params,
    as_dim_spec,
    dim_names,
    resolve,
)

#: Largest seed of the value generators (shrinks towards 0).
MAX_SEED = 2**16 - 1


@dataclass(frozen=True)
class Space:
    """A resolved description: inputs in forward's order, hyper-parameters (keyword arguments), dimensions."""

    inputs: Mapping[str, Input]
    hyper: Mapping[str, Any]
    dims: Mapping[str, Ints | Choice]
    where: Callable[[Mapping[str, Any]], bool] | None
    dtype: np.dtype

    @classmethod
    def build(cls, inputs: Mapping[str, Input], hyper: Mapping[str, Any] | None, dims: Mapping[str, Any] | None,
              where: Callable[[Mapping[str, Any]], bool] | None, dtype: Any) -> Space:
        given = dict(dims or {})
        names = dim_names(inputs)
        specs = {n: as_dim_spec(n, given.pop(n, DEFAULT_DIM)) for n in names}
        specs.update({n: as_dim_spec(n, v) for n, v in given.items()})  # dimensions used only by callables
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            raise BadInputError(f"dtype={dtype!r} is not a dtype.", "use float64 or float32.") from None
        return cls(dict(inputs), dict(hyper or {}), specs, where, resolved)


@dataclass
class Case:
    """One drawn point: dimensions, hyper-parameters, inputs, and the code lines that rebuild each input."""

    dims: dict[str, int]
    hyper: dict[str, Any]
    inputs: dict[str, Any]
    sources: dict[str, list[str]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[Any, ...]:
        return (tuple((n, tuple(lines)) for n, lines in self.sources.items()), repr(sorted(self.hyper.items())))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(np.shape(v)) for n, v in self.inputs.items() if isinstance(v, np.ndarray)}


class _Builder:
    """Runs code lines in a namespace holding numpy, remembering them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"np": np}

    def run(self, line: str) -> None:
        exec(line, self.ns)  # the lines are built here from numbers and names, never from user text
        self.lines.append(line)

    @property
    def value(self) -> Any:
        return self.ns[self.name]


def draw_hyper(st: Any, data: Any, spec: Any, label: str) -> Any:
    """A hyper-parameter value from its description (a plain value is a constant)."""
    if isinstance(spec, Ints):
        return data.draw(st.integers(spec.low, spec.high), label=label)
    if isinstance(spec, Choice):
        return data.draw(st.sampled_from(spec.values), label=label)
    if isinstance(spec, Floats):
        floats = st.floats(spec.low, spec.high, allow_nan=False, allow_infinity=False)
        return data.draw(st.one_of(st.sampled_from(spec.edges), floats) if spec.edges else floats, label=label)
    return spec


_DOMAIN_LINES = {
    "positive": "{n} = np.abs({n}) + 0.1",
    "nonzero": "{n} = np.where({n} >= 0, 1.0, -1.0) * (np.abs({n}) + 0.1 * {s!r})",
    "unit": "{n} = 0.05 + 0.9 / (1.0 + np.exp(-{n}))",
    "spd": "{n} = {n} @ np.swapaxes({n}, -1, -2) / {k} + np.eye({k})",
    "invertible": "{n} = {n} * (0.3 / np.sqrt({k})) + np.eye({k})",
}


def _edit_float(st: Any, data: Any, b: _Builder, spec: Array, kinks: tuple[float, ...]) -> None:
    """One edit: elements exactly at or near a kink, or a group of tied elements."""
    x = b.value
    n = x.size
    kinds = (["kink"] if kinks else []) + (["tie"] if spec.ties and n >= 2 and spec.domain in
                                           ("real", "positive", "nonzero") else [])
    if not kinds:
        return
    kind = data.draw(st.sampled_from(kinds), label=f"{b.name}: edit")
    if kind == "kink":
        count = data.draw(st.integers(1, n), label=f"{b.name}: elements at a kink")
        where = data.draw(st.lists(st.integers(0, n - 1), min_size=count, max_size=count, unique=True),
                          label=f"{b.name}: kink indices")
        k = data.draw(st.sampled_from(kinks), label=f"{b.name}: kink")
        off = data.draw(st.sampled_from(KINK_OFFSETS), label=f"{b.name}: offset")
        value = x.dtype.type(k + off * max(1.0, abs(k)))
    else:
        size = data.draw(st.integers(2, max(2, min(spec.max_tie, n))), label=f"{b.name}: tie size")
        where = data.draw(st.lists(st.integers(0, n - 1), min_size=size, max_size=size, unique=True),
                          label=f"{b.name}: tie indices")
        level = data.draw(st.sampled_from(("group", "top")), label=f"{b.name}: tie level")
        value = np.max(x.flat[where]) if level == "group" else np.max(x) + max(np.max(np.abs(x)), 1e-3) * 0.5
    b.run(f"{b.name}.flat[{sorted(where)!r}] = {float(value)!r}")


def _draw_float(st: Any, data: Any, name: str, spec: Array, shape: tuple[int, ...], dtype: np.dtype,
                env: Mapping[str, Any]) -> _Builder:
    b = _Builder(name)
    seed = data.draw(st.integers(0, MAX_SEED), label=f"{name}: seed")
    b.run(f"{name} = np.random.default_rng({seed}).standard_normal({shape!r})")
    scale = data.draw(st.sampled_from(spec.scales), label=f"{name}: scale")
    if scale != 1.0:
        b.run(f"{name} = {name} * {scale!r}")
    if spec.domain != "real":
        b.run(_DOMAIN_LINES[spec.domain].format(n=name, s=scale, k=shape[-1] if shape else 1))
    if dtype != np.float64:
        b.run(f"{name} = {name}.astype(np.{dtype.name})")
    kinks = tuple(float(k) for k in (spec.kinks(env) if callable(spec.kinks) else spec.kinks or ()))
    for _ in range(data.draw(st.integers(0, spec.edits), label=f"{name}: edits") if b.value.size else 0):
        _edit_float(st, data, b, spec, kinks)
    return b


def _draw_int(st: Any, data: Any, name: str, spec: Labels | Integers | Mask, shape: tuple[int, ...],
              env: Mapping[str, Any]) -> _Builder:
    b = _Builder(name)
    styles = ("random", "same", "one") if isinstance(spec, Mask) else ("random", "same")
    style = data.draw(st.sampled_from(styles), label=f"{name}: style")
    seed = data.draw(st.integers(0, MAX_SEED), label=f"{name}: seed") if style == "random" else 0
    rng = f"np.random.default_rng({seed})"
    if isinstance(spec, Mask):
        if style == "random":
            b.run(f"{name} = {rng}.random({shape!r}) < 0.5")
        else:
            full = style == "same" and data.draw(st.booleans(), label=f"{name}: all true")
            b.run(f"{name} = np.{'ones' if full else 'zeros'}({shape!r}, dtype=bool)")
            if style == "one" and b.value.size:
                where = data.draw(st.integers(0, b.value.size - 1), label=f"{name}: true entry")
                b.run(f"{name}.flat[{where}] = True")
        if spec.each_row and b.value.ndim:
            b.run(f"{name}[..., 0] |= ~{name}.any(axis=-1)")
        if spec.dtype != "bool":
            b.run(f"{name} = {name}.astype(np.{np.dtype(spec.dtype).name})")
        return b
    values: tuple[int, ...] = ()
    if isinstance(spec, Labels):
        low, high = 0, resolve(spec.classes, env, f"{name}.classes")
    else:
        low, high, values = resolve(spec.low, env, f"{name}.low"), resolve(spec.high, env, f"{name}.high"), spec.values
    if values:
        b.run(f"{name} = np.array({list(values)!r})[{rng}.integers(0, {len(values)}, {shape!r})]")
    elif style == "random":
        b.run(f"{name} = {rng}.integers({low}, {high}, {shape!r})")
    else:
        last = data.draw(st.booleans(), label=f"{name}: largest value")
        b.run(f"{name} = np.full({shape!r}, {high - 1 if last else low})")
    return b


def draw_case(st: Any, data: Any, space: Space, assume: Callable[[bool], Any]) -> Case:
    """Draw dimensions, hyper-parameters (rejecting those ``where`` refuses), then every input."""
    dims = {n: draw_hyper(st, data, spec, f"dim {n}") for n, spec in space.dims.items()}
    hyper = {n: draw_hyper(st, data, spec, n) for n, spec in space.hyper.items()}
    env: dict[str, Any] = {**dims, **hyper}
    for name, spec in space.inputs.items():
        if isinstance(spec, Params):
            env[name] = {k: draw_hyper(st, data, v, f"{name}[{k!r}]") for k, v in spec.items.items()}
    if space.where is not None:
        assume(bool(space.where(env)))
    case = Case(dims, hyper, {}, {})
    for name, spec in space.inputs.items():
        if isinstance(spec, Params):
            case.inputs[name] = env[name]
            case.sources[name] = [f"{name} = {env[name]!r}"]
            continue
        shape = tuple(resolve(d, env, name) for d in spec.shape)
        assume(all(s >= 0 for s in shape))
        if isinstance(spec, Array):
            b = _draw_float(st, data, name, spec, shape, space.dtype, env)
        else:
            b = _draw_int(st, data, name, spec, shape, env)
        case.inputs[name] = b.value
        case.sources[name] = b.lines
    return case
