"""Tensors as the torch frontend sees them: dtypes, numpy copies, output trees, and the storage swaps that keep
the user's parameters untouched while a check runs. Imports torch on first use only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from backcheck.errors import BadInputError

if TYPE_CHECKING:
    import torch


def torch_module() -> Any:
    """torch itself, imported on first use."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError("backcheck.torch needs PyTorch: pip install backcheck[torch]") from exc
    return torch


def np_dtype(real: torch.dtype) -> Any:
    torch = torch_module()
    return {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}.get(real)


def real_of(dtype: torch.dtype) -> torch.dtype:
    torch = torch_module()
    return {
        torch.complex128: torch.float64,
        torch.complex64: torch.float32,
        torch.complex32: torch.float16,
    }.get(dtype, dtype)


def complex_of(real: torch.dtype) -> torch.dtype:
    torch = torch_module()
    return {torch.float64: torch.complex128, torch.float32: torch.complex64, torch.float16: torch.complex32}[real]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def cast(t: torch.Tensor, real: torch.dtype) -> torch.Tensor:
    """A private copy of ``t`` in the real dtype ``real`` (its complex counterpart for a complex tensor)."""
    if t.is_complex():
        return t.detach().to(complex_of(real)).clone()
    if t.is_floating_point():
        return t.detach().to(real).clone()
    return t.detach().clone()


def dense(t: torch.Tensor) -> torch.Tensor:
    """A strided tensor with the values of ``t``: sparse gradients and torch's ZeroTensor become plain ones."""
    torch = torch_module()
    if t.layout != torch.strided:
        t = t.to_dense()
    if t._is_zerotensor():
        t = torch.zeros(t.shape, dtype=t.dtype, device=t.device)
    return t


def own_storage(t: torch.Tensor, contiguous: bool = True) -> bool:
    """Whether ``t`` is alone in its storage (not a view into a larger one), and contiguous if asked."""
    size = t.untyped_storage().nbytes() // max(t.element_size(), 1)
    return (bool(t.is_contiguous()) or not contiguous) and t.storage_offset() == 0 and size == t.numel()


def laid_out(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` at ``like``'s place in a copy of ``like``'s whole storage (cast to ``values``' dtype).

    An input that is a view (``base[5:15]``, a transpose) keeps its strides, its storage offset and the
    storage around it, which functions that read the storage (``torch.as_strided``) see; a contiguous tensor
    that owns its storage, or one whose elements overlap (``expand``), is ``values`` itself.
    """
    torch = torch_module()
    if own_storage(like):
        return values
    whole = torch.empty(0, dtype=like.dtype, device=like.device).set_(like.untyped_storage())
    out = whole.detach().to(values.dtype).clone().as_strided(like.shape, like.stride(), like.storage_offset())
    try:
        out.copy_(values)
    except RuntimeError:  # overlapping elements: one value cannot be perturbed alone anyway
        return values
    return out


def to_numpy(t: torch.Tensor, dtype: Any = None) -> np.ndarray:
    """A private float numpy copy of a real tensor (bfloat16 goes through float32)."""
    torch = torch_module()
    t = dense(t.detach()).resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16 or np_dtype(t.dtype) is None:
        t = t.to(torch.float32)
    arr = t.cpu().numpy().copy()
    return arr.astype(dtype, copy=False) if dtype is not None else arr


def parts(t: torch.Tensor, dtype: Any = None) -> list[np.ndarray]:
    """A tensor as real numpy arrays: itself, or its real and imaginary parts."""
    torch = torch_module()
    if t.is_complex():
        ri = torch.view_as_real(dense(t.detach()).resolve_conj().resolve_neg())
        return [to_numpy(ri[..., 0], dtype), to_numpy(ri[..., 1], dtype)]
    return [to_numpy(t, dtype)]


def flatten(out: Any, prefix: str = "out") -> list[tuple[str, Any]]:
    """``(name, leaf)`` pairs of an output tree (tuples, lists, dicts), named like ``out[0]['h']``."""
    if isinstance(out, Mapping):
        return [item for k, v in out.items() for item in flatten(v, f"{prefix}[{k!r}]")]
    if isinstance(out, (list, tuple)):
        return [item for k, v in enumerate(out) for item in flatten(v, f"{prefix}[{k}]")]
    return [(prefix, out)]


def is_diff_tensor(x: Any) -> bool:
    torch = torch_module()
    return isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())


def refuse_sparse(t: Any, what: str) -> None:
    """Sparse (and other non-strided) tensors, nested tensors, and tensors on the meta device (shapes without
    values) are not supported as inputs or outputs: a typed error says so."""
    torch = torch_module()
    if isinstance(t, torch.Tensor) and t.is_nested:
        raise BadInputError(
            f"{what} is a nested tensor, which is not supported: backcheck.torch checks dense (strided) tensors only.",
            "check each of its tensors (t.unbind()) as an input of its own.",
        )
    if isinstance(t, torch.Tensor) and t.device.type == "meta":
        raise BadInputError(
            f"{what} is on the meta device: it has a shape but no values, so nothing can be differenced.",
            "pass a tensor with values (on the CPU or a GPU).",
        )
    if isinstance(t, torch.Tensor) and t.layout != torch.strided:
        raise BadInputError(
            f"{what} has layout {str(t.layout).replace('torch.', '')}, which is not supported: backcheck.torch "
            "checks dense (strided) tensors only.",
            "pass t.to_dense() (a sparse gradient returned by the backward pass is fine: it is made dense).",
        )


@dataclass
class Slot:
    """One differentiable tensor: an input of ``fn`` (by position or keyword) or a parameter it reads."""

    name: str
    tensor: Any  # the user's own tensor, never written
    kind: str  # 'input' | 'param'
    pos: Any  # a positional index or a keyword, (either, index in its list), or an index into the parameters
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


class Swap:
    """Point tensors (module parameters and buffers) at other storage; put their own storage back.

    Views of a swapped tensor's storage that the function reads besides it (``self.wT = self.w.T`` made once,
    tied weights; a detached alias) are :meth:`follow`-ed: pointed at the same elements of whatever it points at,
    so that they move with it as they would were it written in place (as ``torch.autograd.gradcheck`` does);
    left behind, they held the function still along their path and failed a right gradient through it.
    """

    def __init__(self, tensors: Sequence[torch.Tensor]):
        seen: set[int] = set()
        self.tensors = []
        for t in tensors:
            if id(t) not in seen:
                seen.add(id(t))
                self.tensors.append(t)
        self.saved = [t.data for t in self.tensors]
        #: (view, the swapped tensor's position, its first element's offset in it, the view's own data)
        self.aliases: list[tuple[Any, int, int, Any]] = []

    def follow(self, candidates: Sequence[Any]) -> None:
        """Take as aliases the tensors among ``candidates`` that view elements of a swapped contiguous tensor."""
        mine = {id(t) for t in self.tensors} | {id(a) for a, *_ in self.aliases}
        for a in candidates:
            if id(a) in mine or not _viewable(a):
                continue
            for k, t in enumerate(self.tensors):
                off = a.storage_offset() - t.storage_offset()
                same = _viewable(t) and t.is_contiguous() and a.dtype == t.dtype
                if same and a.untyped_storage().data_ptr() == t.untyped_storage().data_ptr() and _within(a, off, t):
                    self.aliases.append((a, k, off, a.data))
                    mine.add(id(a))
                    break

    def current(self) -> list[torch.Tensor]:
        return [t.data for t in self.tensors]

    def set(self, values: Sequence[torch.Tensor]) -> None:
        for t, v in zip(self.tensors, values, strict=True):
            t.data = v
        for a, k, off, _ in self.aliases:
            v = self.tensors[k].data
            v = v if v.is_contiguous() else v.contiguous()  # (its values at least, where it is laid out otherwise)
            a.data = v.as_strided(a.shape, a.stride(), v.storage_offset() + off)

    def restore(self) -> None:
        self.set(self.saved)
        for a, _, _, own in self.aliases:
            a.data = own


def _viewable(t: Any) -> bool:
    torch = torch_module()
    return isinstance(t, torch.Tensor) and t.layout == torch.strided and t.device.type != "meta"


def _within(a: Any, off: int, t: Any) -> bool:
    """Whether a view starting ``off`` elements into ``t`` (non-negative strides) reaches only ``t``'s elements."""
    if off < 0 or any(st < 0 for st in a.stride()) or t.numel() == 0:
        return False
    last = off + sum((n - 1) * st for n, st in zip(a.shape, a.stride(), strict=True) if n > 0)
    return a.numel() > 0 and last < t.numel()


def reachable_tensors(roots: Sequence[Any]) -> list[Any]:
    """The plain tensor attributes of the modules among ``roots`` and their submodules (alone, or in a list, tuple
    or dict attribute), and the tensors a function's closure holds: where views of a parameter may be kept."""
    torch = torch_module()
    found: list[Any] = []

    def take(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found.extend(x for x in v if isinstance(x, torch.Tensor))
        elif isinstance(v, dict):
            found.extend(x for x in v.values() if isinstance(x, torch.Tensor))

    for root in roots:
        if isinstance(root, torch.nn.Module):
            for m in root.modules():
                for k, v in vars(m).items():
                    if not k.startswith("_"):
                        take(v)
        for cell in getattr(root, "__closure__", None) or ():
            try:
                take(cell.cell_contents)
            except ValueError:  # (an empty cell)
                continue
    return found


def items(arg: Any) -> Any:
    """The ``(index or key, value)`` pairs of a list, tuple or dict argument, whose tensors are inputs too (a
    TensorList, a batch dict); None for any other argument."""
    if type(arg) in (list, tuple):
        return list(enumerate(arg))
    return list(arg.items()) if type(arg) is dict else None


#: Elements compared at a time by :func:`equal_values` when one side is scaled (its temporary stays in cache).
EQUAL_CHUNK = 1 << 15


def equal_values(a: torch.Tensor, b: torch.Tensor, times: float = 1.0) -> bool:
    """Whether ``b`` equals ``times * a`` element by element, as ``torch.equal`` says (NaN equals nothing), for two
    tensors of one shape and dtype. CPU tensors of numpy's dtypes are compared as numpy views (torch.equal and a
    chunked torch.mul cost several times numpy's pass over a large gradient); others by torch."""
    x, y = _numpy_view(a), _numpy_view(b)
    if x is None or y is None:
        torch = torch_module()
        a, b = a.detach().reshape(-1), b.detach().reshape(-1)
        if times == 1.0:
            return bool(torch.equal(a, b))
        buf = torch.empty(min(a.numel(), EQUAL_CHUNK), dtype=a.dtype, device=a.device)
        for k in range(0, a.numel(), EQUAL_CHUNK):
            sa = torch.mul(a[k : k + EQUAL_CHUNK], times, out=buf[: min(EQUAL_CHUNK, a.numel() - k)])
            if not bool(torch.equal(b[k : k + EQUAL_CHUNK], sa)):
                return False
        return True
    if times == 1.0:
        return bool(np.array_equal(x, y))
    buf = np.empty(min(x.size, EQUAL_CHUNK), dtype=x.dtype)
    for k in range(0, x.size, EQUAL_CHUNK):
        sa = np.multiply(x[k : k + EQUAL_CHUNK], times, out=buf[: min(EQUAL_CHUNK, x.size - k)])
        if not np.array_equal(y[k : k + EQUAL_CHUNK], sa):
            return False
    return True


#: torch dtypes numpy holds (a view of their memory needs no copy)
_NUMPY_KINDS = (
    "float64",
    "float32",
    "float16",
    "complex128",
    "complex64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
)


def _numpy_view(t: torch.Tensor) -> np.ndarray | None:
    """A flat numpy view of a strided CPU tensor of a dtype numpy holds (a copy where it is not contiguous), else
    None (bfloat16, complex32, a lazily conjugated or negated view, another device)."""
    t = t.detach()
    torch = torch_module()
    if t.device.type != "cpu" or t.layout != torch.strided or dtype_name(t.dtype) not in _NUMPY_KINDS:
        return None
    if t.is_conj() or t.is_neg():
        return None
    return t.numpy().reshape(-1)
