"""One torch check's state: the slots, the user's function and arguments, storage swaps, and the numeric side.

The numeric side evaluates ``fn`` as torch runs it under autograd: grad mode on, the checked tensors leaves
that require grad, the outputs detached afterwards. A Function that reads ``ctx.needs_input_grad``, or code
that takes another path under ``torch.no_grad``, is then evaluated on the path its backward belongs to.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.errors import GradientStructureError
from backcheck.frontends.common import VectorizeError
from backcheck.frontends.torch._tensors import (
    Slot,
    Swap,
    cast,
    flatten,
    items,
    laid_out,
    parts,
    real_of,
    torch_module,
)
from backcheck.randomness import FrozenRandom
from backcheck.tree import Tree

if TYPE_CHECKING:
    import torch


class Session:
    """Everything one torch check needs: the slots, the two sides' storage, and how to call ``fn``."""

    def __init__(self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], slots: list[Slot]):
        torch = torch_module()
        self.torch = torch
        self.fn, self.args, self.kwargs, self.slots = fn, tuple(args), dict(kwargs), slots
        self.fname = "f"
        self.module: Any = None  # the nn.Module that is fn itself, whose parameters vmap can batch
        self.params = [s for s in slots if s.kind == "param"]
        self.input_slots = [s for s in slots if s.kind == "input"]
        self.param_swap = Swap([s.tensor for s in self.params])
        self.user_grads = [(t, t.grad) for t in self.param_swap.tensors]  # put back by restore()
        self.const_swap = Swap([])
        # closure parameters without requires_grad are differentiated too; their flag is put back afterwards
        self.grad_off = [t for t in self.param_swap.tensors if not t.requires_grad]
        for t in self.grad_off:
            t.requires_grad_(True)
        taken = {s.pos for s in self.input_slots}
        given = [*enumerate(self.args), *self.kwargs.items()]
        self.pristine = {k: a.detach().clone() for k, a in given if isinstance(a, torch.Tensor) and k not in taken}
        self.numeric_real: Any = None  # a torch.dtype once chosen
        #: the dtype the unchecked float arguments (labels, targets, masks) are widened to, None: as given
        self.arg_real: Any = None
        #: (outputs, leaves) of the native call at the original point, whose graph the analytic side may use
        self.graph: tuple[Any, list[Any]] | None = None
        #: the checked outputs of the native call at the original point, served to the next numeric call (the
        #: baseline's first, at that point in that dtype) instead of calling ``fn`` again
        self.primed: list[np.ndarray] | None = None
        self.out_mask: list[bool] = []  # which flattened outputs enter the check
        self.half_outputs: set[int] = set()  # checked bfloat16 outputs whose values float16 holds exactly
        self.bfloat16_out = False  # whether the last outputs made numpy arrays of held bfloat16 values
        self.u_parts: list[np.ndarray] = []
        self.douts: list[Any] = []
        self.out_names: list[str] = []
        self.part_names: list[str] = []
        self.part_shapes: list[tuple[int, ...]] = []
        #: the random streams replayed before every call of ``fn`` (a random function, checked with one stream)
        self.frozen: FrozenRandom | None = None
        #: the slots whose ``.grad`` the backward pass itself accumulated into (counted in their gradient)
        self.side_grads: set[str] = set()
        #: whether the checked inputs were chosen by the user (requires_grad) rather than all float tensors
        self.marked = any(s.tensor.requires_grad for s in self.input_slots)
        #: checked inputs consumed only by custom Functions, with those Functions' names (see _unchecked)
        self.declared: dict[str, str] = {}
        #: a leaf's note replacing the generic one when it fails with no gradient at all
        self.dead_notes: dict[str, str] = {}
        #: the slots whose gradient the last backward pass left undefined (None)
        self.undefined: set[str] = set()
        #: why reverse mode is not checked (a Function with a jvp and no backward), or ""
        self.no_reverse = ""
        #: the first backward pass's writes into its cotangent or its inputs, as ``(what, name, shape, flat
        #: indices)`` (what: 'grad_output' or 'input'), found by :func:`._analytic.grads`
        self.backward_writes: list[tuple[str, str, tuple[int, ...], np.ndarray]] = []
        #: whether a backward pass drew from a random stream the function reaches (a dropout drawing its mask again)
        self.backward_draws = False

    def set_consts(self, consts: Sequence[torch.Tensor]) -> None:
        self.const_swap = Swap(consts)
        mine = {id(t) for t, _ in self.user_grads}
        # a backward pass may write their .grad too (a module's parameters, recomputed inside a backward)
        self.user_grads += [(t, t.grad) for t in self.const_swap.tensors if id(t) not in mine]

    # -- storage ---------------------------------------------------------------------------------------------
    def original(self, slot: Slot) -> torch.Tensor:
        """The user's own values of a slot (a parameter's own storage, whatever it points at now)."""
        if slot.kind == "input":
            return slot.tensor.detach()
        return self.param_swap.saved[self.params.index(slot)].detach()

    def restore(self) -> None:
        self.param_swap.restore()
        self.const_swap.restore()
        for t, g in self.user_grads:
            t.grad = g
        for t in self.grad_off:
            t.requires_grad_(False)

    def use_native(self) -> None:
        """Parameters and constants on private native-dtype copies (the analytic side)."""
        self.param_swap.set([t.detach().clone() for t in self.param_swap.saved])
        self.const_swap.set([t.detach().clone() for t in self.const_swap.saved])
        self.arg_real = None

    def use_numeric(self, real: torch.dtype) -> None:
        """Constants on private copies in the numeric dtype; parameters are set at every evaluation."""
        self.numeric_real = real
        self.const_swap.set([cast(t, real) for t in self.const_swap.saved])
        self.arg_real = real

    @contextmanager
    def storage(self, real: torch.dtype | None = None) -> Iterator[None]:
        """Parameters and constants on private copies for a while: native (None) or cast to ``real``, the
        unchecked float arguments widened to ``real`` too."""
        params, consts, args = self.param_swap.current(), self.const_swap.current(), self.arg_real
        try:
            if real is None:
                self.use_native()
            else:
                self.param_swap.set([cast(t, real) for t in self.param_swap.saved])
                self.const_swap.set([cast(t, real) for t in self.const_swap.saved])
                self.arg_real = real
            yield
        finally:
            self.param_swap.set(params)
            self.const_swap.set(consts)
            self.arg_real = args

    # -- building tensors and calls --------------------------------------------------------------------------
    def assemble(self, slot: Slot, values: list[Any], real: torch.dtype) -> torch.Tensor:
        """A slot's tensor from its real parts (numpy or torch), in ``real`` on the slot's device."""
        torch = self.torch
        dev = slot.tensor.device
        ts = []
        for p in values:
            if not isinstance(p, torch.Tensor):
                p = torch.from_numpy(p if p.flags.c_contiguous else np.ascontiguousarray(p).reshape(p.shape))
            ts.append(p.to(device=dev, dtype=real))
        return torch.complex(ts[0], ts[1]) if slot.is_complex else ts[0]

    def split(self, values: Sequence[Any]) -> list[list[Any]]:
        """Per slot, its parts among ``values`` (one per leaf: two for a complex slot)."""
        out, k = [], 0
        for slot in self.slots:
            n = 2 if slot.is_complex else 1
            out.append(list(values[k : k + n]))
            k += n
        return out

    def args_with(self, by_slot: Mapping[Any, Any]) -> tuple[list[Any], dict[str, Any]]:
        """``fn``'s positional and keyword arguments with the slots' tensors in their places."""

        def pick(k: int | str, a: Any) -> Any:
            if k in by_slot:
                return by_slot[k]
            if k in self.pristine:
                return self.widened(self.pristine[k], fresh=True)
            pairs = items(a)
            if pairs and any(isinstance(t, self.torch.Tensor) for _, t in pairs):
                # a TensorList (or a dict of tensors): its checked tensors in their places, the others widened
                new = [(j, by_slot.get((k, j), self.widened(t))) for j, t in pairs]
                return dict(new) if type(a) is dict else type(a)(t for _, t in new)
            return a

        return [pick(k, a) for k, a in enumerate(self.args)], {k: pick(k, a) for k, a in self.kwargs.items()}

    def widened(self, t: Any, fresh: bool = False) -> Any:
        """An unchecked argument as ``fn`` gets it: a float tensor narrower than :attr:`arg_real` as a private
        copy in that dtype (a float32 label in the float64 runs), else itself (a private copy if ``fresh``)."""
        if not isinstance(t, self.torch.Tensor) or not self.narrower(t, self.arg_real):
            return t.clone() if fresh else t
        return cast(t, self.arg_real)

    def narrower(self, t: Any, real: Any) -> bool:
        """Whether ``t`` is a float (or complex) tensor whose real dtype has fewer bits than ``real``."""
        torch = self.torch
        if real is None or not isinstance(t, torch.Tensor) or not (t.is_floating_point() or t.is_complex()):
            return False
        return bool(torch.finfo(real_of(t.dtype)).bits < torch.finfo(real).bits)

    def widens(self, real: Any) -> bool:
        """Whether some unchecked float argument is narrower than ``real`` (so a call in ``real`` widens it)."""
        given = [*self.args, *self.kwargs.values()]
        tensors = [t for a in given for _, t in (items(a) or [(None, a)])]
        return any(self.narrower(t, real) for t in tensors if not any(t is s.tensor for s in self.input_slots))

    def call(self, by_slot: Mapping[Any, Any]) -> Any:
        args, kwargs = self.args_with(by_slot)
        if self.frozen is not None:
            self.frozen.restore()
        return self.fn(*args, **kwargs)

    # -- outputs ---------------------------------------------------------------------------------------------
    def float_outputs(self, out: Any) -> list[Any]:
        flat = flatten(out)
        if len(flat) != len(self.out_mask):
            raise GradientStructureError(
                f"{self.fname} returned {len(flat)} output(s) here but {len(self.out_mask)} at the original point.",
                "a function must return the same structure at every call.",
            )
        return [t for (_, t), keep in zip(flat, self.out_mask, strict=True) if keep]

    def output_parts(self, out: Any) -> list[np.ndarray]:
        """The checked outputs as numpy arrays; bfloat16 ones as float16, whose rounding is nearer theirs (an
        output the numeric side computes in a wider dtype keeps it)."""
        half, bf16 = self.half_outputs, self.torch.bfloat16
        outs = self.float_outputs(out)
        self.bfloat16_out = any(real_of(t.dtype) == bf16 for t in outs)
        return [p for k, t in enumerate(outs) for p in parts(t, np.float16 if k in half and t.dtype == bf16 else None)]

    # -- the numeric side ------------------------------------------------------------------------------------
    def numeric_call(self, current: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """``fn`` at a point of the numeric tree, as under autograd; its checked outputs as numpy arrays."""
        if self.primed is not None:
            got, self.primed = self.primed, None
            return got
        torch = self.torch
        real = self.numeric_real
        assert real is not None
        with torch.enable_grad():
            tensors = [
                (
                    laid_out(self.assemble(s, ps, real), s.tensor) if s.kind == "input" else self.assemble(s, ps, real)
                ).requires_grad_(True)
                for s, ps in zip(self.slots, self.split(list(current.values())), strict=True)
            ]
            self.param_swap.set([t for s, t in zip(self.slots, tensors, strict=True) if s.kind == "param"])
            out = self.call({s.pos: t for s, t in zip(self.slots, tensors, strict=True) if s.kind == "input"})
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
            tensors = [
                self.assemble(s, ps, real).requires_grad_(True)
                for s, ps in zip(self.slots, self.split(leaves), strict=True)
            ]
            ins = {s.pos: t for s, t in zip(self.slots, tensors, strict=True) if s.kind == "input"}
            pars = {s.key: t for s, t in zip(self.slots, tensors, strict=True) if s.kind == "param"}
            in_pos = list(ins)

            def one(in_vals: list[Any], par_vals: dict[str, Any]) -> tuple[Any, ...]:
                by_slot = dict(zip(in_pos, in_vals, strict=True))
                if par_vals:
                    args, kwargs = self.args_with(by_slot)
                    out = functional_call(self.module, par_vals, tuple(args), kwargs)
                else:
                    out = self.call(by_slot)
                return tuple(self.float_outputs(out))

            with torch.enable_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*performance drop.*")  # a missing batching rule
                outs = vmap(one, randomness="error")([ins[k] for k in in_pos], pars)
            got = [p for t in outs for p in parts(t)]
            for p, name, shape in zip(got, self.part_names, self.part_shapes, strict=True):
                if p.shape != (B, *shape):
                    raise VectorizeError(f"output {name} has shape {p.shape[1:]} under vmap, {shape} serially")
            return got

        return batch
