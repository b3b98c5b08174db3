"""The module system: :class:`Module` (parameter containers with a ``forward``, as in ``torch.nn``),
:class:`Parameter`, and per-layer capture and replay.

The layers are in :mod:`backcheck.nn.layers`, the ready-made models in :mod:`backcheck.nn.models`;
:mod:`backcheck.nn.modules` gathers them all.

Parameters are found by walking a module's attributes (including lists and tuples of modules or
parameters) in definition order; nothing is registered under string keys.  Names are dotted paths
such as ``layers.0.weight``.  Buffers (numpy arrays saved in the state dict, e.g. batch-norm running
statistics) are the attributes named in the class attribute ``buffer_names``.

Per-layer gradient checking
---------------------------
Two tools let a checker test each layer on the real data of a training step:

* :meth:`Module.capture` records, for every named submodule, the input arrays, the output and the
  gradient that flowed into the output during the next forward + backward::

      with model.capture() as records:
          loss = cross_entropy(model(x), y)
          loss.backward()
      rec = records["layers.0"]        # rec.inputs, rec.output, rec.grad_output, rec.params

* :meth:`Module.replay` makes a module a pure function of its inputs and parameters that
  reproduces the captured pass: dropout reuses its last mask and batch norm uses batch statistics
  without updating its running statistics.  :meth:`Module.pure_forward` and :meth:`Module.vjp` run a
  module that way with given parameter arrays, which is all a finite-difference checker needs::

      layer = model.get_submodule("layers.0")
      out = layer.pure_forward(*rec.inputs, params=rec.params)
      input_grads, param_grads = layer.vjp(rec.inputs, rec.grad_output, params=rec.params)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from backcheck.nn.autograd import enable_grad, modified, no_grad
from backcheck.nn.errors import DTypeError, ShapeError, StateDictError
from backcheck.nn.tensor import Tensor
from backcheck.nn.validate import generator, integer

__all__ = ["Parameter", "Module", "Capture", "manual_seed", "init_rng", "derived_rng", "random_state_kept"]


class _InitRNG:
    """The generator that initializes parameters when a layer gets no ``rng`` (see :func:`manual_seed`)."""

    __slots__ = ("rng",)

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)


_INIT = _InitRNG()


def manual_seed(seed: int) -> None:
    """Seed the generator used to initialize parameters when a layer gets no ``rng``, and from which a
    :class:`~backcheck.nn.layers.Dropout` made without ``seed`` or ``rng`` derives its own generator.

    Examples
    --------
    >>> manual_seed(0)
    """
    _INIT.rng = np.random.default_rng(integer("manual_seed", "seed", seed, minimum=0))


def init_rng(owner: str, rng: Any) -> np.random.Generator:
    """``rng`` if it is a Generator, else (None) the generator seeded by :func:`manual_seed`."""
    given = generator(owner, "rng", rng)
    return _INIT.rng if given is None else given


def derived_rng(owner: str, rng: Any) -> np.random.Generator:
    """A new generator spawned from ``rng`` (None: the one :func:`manual_seed` seeds), for a layer that draws
    random numbers while training (Dropout's masks).

    Spawning leaves the parent's stream where it was, so adding such a layer to a model does not change
    how the other layers are initialized; after the same :func:`manual_seed`, the n-th layer made gets
    the same generator.
    """
    given = generator(owner, "rng", rng)
    return (_INIT.rng if given is None else given).spawn(1)[0]


@contextlib.contextmanager
def random_state_kept(module: Module) -> Iterator[None]:
    """Run the block, then put back the state of every generator held by ``module`` or its submodules
    (Dropout's) and the masks they last drew: an extra forward pass (a gradient check) then leaves
    training exactly as it would have been without it."""
    mods = list(module.modules())
    states = [(g, g.bit_generator.state) for m in mods for g in vars(m).values() if isinstance(g, np.random.Generator)]
    masks = [(m, m.__dict__["last_mask"]) for m in mods if "last_mask" in m.__dict__]
    try:
        yield
    finally:
        for g, state in states:
            g.bit_generator.state = state
        for m, mask in masks:
            m.__dict__["last_mask"] = mask


class Parameter(Tensor):
    """A leaf tensor that is a trainable parameter of a module (``requires_grad=True``)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None) -> None:
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)
        if self.data.dtype.kind != "f":
            raise DTypeError(f"Parameter: parameters must be float32 or float64, got dtype {self.data.dtype}")

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


@dataclass
class Capture:
    """What one module saw during a captured forward and backward pass.

    Attributes
    ----------
    name : str
        Dotted name of the module in the captured model ('' for the model itself).
    module : Module
    inputs : tuple
        Copies of the positional inputs (numpy arrays for tensors, other values as given).
    output : numpy.ndarray
        Copy of the output.
    grad_output : numpy.ndarray or None
        Gradient of the loss w.r.t. the output, filled in during backward.
    params : dict of str to numpy.ndarray
        Copies of the module's parameters at forward time, by name relative to the module.
    training : bool
        The module's mode during the pass.
    """

    name: str
    module: Module
    inputs: tuple[Any, ...]
    output: np.ndarray
    grad_output: np.ndarray | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)
    training: bool = True


class _CaptureSession:
    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self.records: dict[str, Capture] = {}

    def call(self, module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        out = module.forward(*args, **kwargs)
        name = self.names.get(id(module))
        if name is None or name in self.records or not isinstance(out, Tensor):
            return out
        rec = Capture(
            name=name,
            module=module,
            inputs=tuple(a.data.copy() if isinstance(a, Tensor) else a for a in args),
            output=out.data.copy(),
            params={n: p.data.copy() for n, p in module.named_parameters()},
            training=module.training,
        )
        if out.requires_grad:

            def _record(grad: np.ndarray) -> None:
                rec.grad_output = grad.copy() if rec.grad_output is None else rec.grad_output + grad

            out.register_hook(_record)
        self.records[name] = rec
        return out


class Module:
    """Base class of layers and models.

    Subclasses assign parameters and submodules as attributes in ``__init__`` (calling
    ``super().__init__()`` first) and implement ``forward``.

    Examples
    --------
    >>> class Affine(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = Parameter(np.ones(3))
    ...     def forward(self, x):
    ...         return x * self.scale
    >>> [name for name, _ in Affine().named_parameters()]
    ['scale']
    """

    buffer_names: ClassVar[tuple[str, ...]] = ()
    _capture: _CaptureSession | None = None
    _replaying: bool = False

    def __init__(self) -> None:
        self.training = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        session = self._capture
        if session is None:
            return self.forward(*args, **kwargs)
        return session.call(self, args, kwargs)

    # ------------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct submodules (attributes, and items of list/tuple attributes) with their names."""
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def children(self) -> Iterator[Module]:
        """Direct submodules."""
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module ('' or ``prefix``) and every submodule, depth first, each once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{n}" if name else n, m) for n, m in mod.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        """This module and every submodule."""
        for _, m in self.named_modules():
            yield m

    def get_submodule(self, name: str) -> Module:
        """The submodule with dotted ``name`` ('' for this module)."""
        for n, m in self.named_modules():
            if n == name:
                return m
        raise KeyError(f"get_submodule: no submodule named {name!r} in {type(self).__name__}")

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, Parameter):
                yield name, value
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if isinstance(item, Parameter):
                        yield f"{name}.{i}", item

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """All parameters with dotted names such as ``layers.0.weight``, each once."""
        seen: set[int] = set()
        for mod_name, mod in self.named_modules(prefix):
            for pname, p in mod._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{pname}" if mod_name else pname), p

    def parameters(self) -> list[Parameter]:
        """All parameters, in definition order."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """Buffers (arrays listed in ``buffer_names``) with dotted names."""
        for mod_name, mod in self.named_modules():
            for bname in mod.buffer_names:
                value = getattr(mod, bname, None)
                if value is not None:
                    yield (f"{mod_name}.{bname}" if mod_name else bname), value

    def num_parameters(self) -> int:
        """Total number of parameter elements."""
        return int(sum(p.data.size for p in self.parameters()))

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every submodule; returns ``self``."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``); returns ``self``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None."""
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy values into the parameters and buffers in place (keeping their dtypes).

        Raises
        ------
        StateDictError
            On missing or unexpected keys (when ``strict``) or a shape mismatch.
        """
        params = dict(self.named_parameters())
        targets: dict[str, np.ndarray] = {n: p.data for n, p in params.items()}
        targets.update(dict(self.named_buffers()))
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise StateDictError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} for {type(self).__name__}",
                "the state dict comes from another architecture; pass strict=False to load the common keys",
            )
        for name, dest in targets.items():
            if name not in state:
                continue
            src = np.asarray(state[name].data if isinstance(state[name], Tensor) else state[name])
            if src.shape != dest.shape:
                raise StateDictError(
                    f"load_state_dict: {name} has shape {src.shape} in the state dict but {dest.shape} in the module"
                )
            if name in params and not np.array_equal(dest, src.astype(dest.dtype, copy=False), equal_nan=True):
                modified(params[name])  # a graph built before the load refuses to backward through new values
            np.copyto(dest, src, casting="unsafe")

    def save(self, path: str | os.PathLike[str] | Any) -> None:
        """Save the state dict in numpy's ``.npz`` format to exactly ``path`` (``"model.pt"`` too: numpy's
        ``savez`` would append ``.npz`` to a name without it), or to an open binary file."""
        if isinstance(path, str | os.PathLike):
            with open(path, "wb") as f:
                np.savez(f, **self.state_dict())  # type: ignore[arg-type]
        else:
            np.savez(path, **self.state_dict())  # type: ignore[arg-type]

    def load(self, path: str | os.PathLike[str] | Any, strict: bool = True) -> None:
        """Load a state dict saved by :meth:`save` (from ``path``, or ``path + ".npz"`` where only that exists, as
        :meth:`save` wrote it before it kept the path as given)."""
        if isinstance(path, str | os.PathLike) and not os.path.exists(path):
            suffixed = os.fspath(path) + ".npz"
            if not os.path.exists(suffixed):
                raise FileNotFoundError(f"load: no file {os.fspath(path)!r} (nor {suffixed!r})")
            path = suffixed
        with np.load(path) as f:
            self.load_state_dict({k: f[k] for k in f.files}, strict=strict)

    # ------------------------------------------------------------------ capture and replay
    @contextlib.contextmanager
    def capture(self) -> Iterator[dict[str, Capture]]:
        """Record inputs, outputs and output gradients of every submodule during the block.

        Only the first call of each module inside the block is recorded.  The dict yielded is
        filled as the block runs (``grad_output`` during backward).
        """
        mods = list(self.named_modules())
        session = _CaptureSession({id(m): name for name, m in mods})
        for _, m in mods:
            m._capture = session
        try:
            yield session.records
        finally:
            for _, m in mods:
                m.__dict__.pop("_capture", None)

    @contextlib.contextmanager
    def replay(self) -> Iterator[Module]:
        """Make forward a pure function that reproduces the last pass.

        Inside the block, :class:`Dropout` reuses its last mask and batch norm in training mode
        normalizes with batch statistics but leaves its running statistics untouched.
        """
        mods = list(self.modules())
        previous = [m.__dict__.get("_replaying") for m in mods]
        for m in mods:
            m._replaying = True
        try:
            yield self
        finally:
            for m, prev in zip(mods, previous, strict=True):
                if prev is None:
                    m.__dict__.pop("_replaying", None)
                else:
                    m._replaying = prev

    @contextlib.contextmanager
    def _params_swapped(self, params: Mapping[str, np.ndarray] | None) -> Iterator[dict[str, Parameter]]:
        named = dict(self.named_parameters())
        saved = {n: (p.data, p.grad) for n, p in named.items()}
        try:
            for name, arr in (params or {}).items():
                if name not in named:
                    raise StateDictError(f"{type(self).__name__}: no parameter named {name!r}")
                if np.shape(arr) != named[name].data.shape:
                    raise ShapeError(
                        f"{type(self).__name__}: parameter {name} needs shape {named[name].data.shape}, "
                        f"got {np.shape(arr)}"
                    )
                named[name].data = np.asarray(arr)
            for p in named.values():
                p.grad = None
            yield named
        finally:
            for n, p in named.items():
                p.data, p.grad = saved[n]

    def pure_forward(self, *inputs: Any, params: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Forward as a pure function of ``inputs`` and ``params`` (under :meth:`replay`, no graph).

        Parameters
        ----------
        *inputs : numpy.ndarray
            Positional inputs, e.g. ``Capture.inputs``.
        params : dict of str to numpy.ndarray, optional
            Values for some or all parameters (names relative to this module); others keep
            their current values.  Nothing is modified.

        Returns
        -------
        numpy.ndarray
            The output.
        """
        with self._params_swapped(params), self.replay(), no_grad():
            out = self(*[Tensor(x) if isinstance(x, np.ndarray) else x for x in inputs])
        return out.data.copy()

    def vjp(
        self, inputs: Sequence[Any], grad_output: np.ndarray, params: Mapping[str, np.ndarray] | None = None
    ) -> tuple[list[np.ndarray | None], dict[str, np.ndarray]]:
        """Gradients of ``sum(forward(inputs) * grad_output)`` computed by this engine's backward.

        Runs under :meth:`replay`, like :meth:`pure_forward`, and leaves the parameters' ``.grad``
        untouched.

        Returns
        -------
        input_grads : list
            One gradient per input (None for non-float inputs).
        param_grads : dict of str to numpy.ndarray
            Gradient for every parameter (zeros if unused).
        """
        tensors = [
            Tensor(np.array(x, copy=True), requires_grad=True)
            if isinstance(x, np.ndarray) and x.dtype.kind == "f"
            else (Tensor(x) if isinstance(x, np.ndarray) else x)
            for x in inputs
        ]
        with self._params_swapped(params) as named, self.replay(), enable_grad():
            out = self(*tensors)
            if out.requires_grad:
                out.backward(np.asarray(grad_output, dtype=out.data.dtype))
            pgrads = {n: (p.grad.copy() if p.grad is not None else np.zeros_like(p.data)) for n, p in named.items()}
        igrads = [
            (t.grad if t.grad is not None else np.zeros_like(t.data))
            if isinstance(t, Tensor) and t.requires_grad
            else None
            for t in tensors
        ]
        return igrads, pgrads

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """One-line description of the module's own settings."""
        return ""

    def __repr__(self) -> str:
        kids = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not kids:
            return head + ")"
        lines = [head]
        for name, m in kids:
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"
