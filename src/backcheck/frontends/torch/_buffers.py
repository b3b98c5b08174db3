"""A module that writes its own buffers at every call: named when the check finds it changing between calls."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from backcheck.errors import NondeterministicError
from backcheck.frontends.torch._tensors import torch_module


def written_buffers(target: Any, exc: NondeterministicError) -> NondeterministicError:
    """``exc``, or where the module under check writes its own buffers at each call (spectral_norm's power
    iteration in training mode, a batch norm's running statistics read back), an error that names them: the
    function changes between calls for that reason, not for a random draw. Told by one call on copies of the
    inputs, the buffers put back afterwards."""
    torch = torch_module()
    module = target.module
    if not isinstance(module, torch.nn.Module) or not any(True for _ in module.buffers()):
        return exc
    saved = [(n, b, b.detach().clone()) for n, b in module.named_buffers() if b is not None]
    try:
        with torch.no_grad():
            module(*copy.deepcopy(target.args), **copy.deepcopy(dict(target.kwargs)))
        now = dict(module.named_buffers())
        moved = [n for n, b, was in saved if now.get(n) is not b or not torch.equal(now[n].detach(), was)]
    except Exception:  # noqa: BLE001 - a module that cannot be called so: the error as it was
        return exc
    finally:
        _put_back(module, saved)
    if not moved:
        return exc
    return NondeterministicError(
        f"{target.title} writes its buffers {', '.join(moved)} at every call (a power iteration, running "
        "statistics read back), so it computes another function at each evaluation; nothing random is involved.",
        "check it in eval mode (module.eval()), where it leaves its buffers alone, or check the function it "
        "computes with the buffers fixed.",
    )


def _put_back(module: Any, saved: list[tuple[str, Any, Any]]) -> None:
    """The user's buffers as they were: the same tensors (:func:`rebind`) holding the same values."""
    rebind(module, [(name, b) for name, b, _ in saved])
    with torch_module().no_grad():
        for _, b, was in saved:
            b.copy_(was)


def rebind(module: Any, buffers: list[tuple[str, Any]]) -> None:
    """Put each of ``buffers`` (name, tensor) back on ``module`` where a forward rebound the name to another tensor
    (``self.seen = self.seen + ...``): the user's module keeps its own tensors."""
    for name, b in buffers:
        owner, _, attr = name.rpartition(".")
        sub = module.get_submodule(owner) if owner else module
        if getattr(sub, attr, None) is not b:
            sub._buffers[attr] = b  # (registered as it was, without register_buffer's checks of the name)


def own_buffers(*candidates: Any) -> list[tuple[Any, list[tuple[str, Any]]]]:
    """Each module among ``candidates`` (once) with its buffers as they are, and each of their submodules with its
    plain attributes (:class:`_Attributes`): for :func:`rebind_all` after a check."""
    torch = torch_module()
    modules = {id(m): m for m in candidates if isinstance(m, torch.nn.Module)}
    subs = {id(s): s for m in modules.values() for s in m.modules()}
    return [(m, list(m.named_buffers())) for m in modules.values()] + [(_Attributes(s), []) for s in subs.values()]


def rebind_all(own: list[tuple[Any, list[tuple[str, Any]]]]) -> None:
    """:func:`rebind` for each module :func:`own_buffers` listed, and its plain attributes put back."""
    for module, buffers in own:
        if isinstance(module, _Attributes):
            module.put_back()
        else:
            rebind(module, buffers)


class _Attributes:
    """A module's plain attributes (``self.last = out.detach()``, a recurrent ``self.h``, a list it appends to, a
    private ``self._hist``), as a forward run during the check may set them: the same objects put back afterwards,
    tensors and numpy arrays (alone or as the items of a list or dict) holding what they held, lists and dicts
    their items, and attributes the check's calls created removed; and its training flag, which a forward may
    switch (``self.eval()`` inside it). torch's other own attributes (hooks, parameters) are its own."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.training = getattr(module, "training", None)
        own = _module_internals()
        self.saved = {k: v for k, v in vars(module).items() if k not in own}
        self.values = {k: _held(v) for k, v in self.saved.items()}
        self.items = {
            k: [(item, _held(item)) for item in (v.values() if isinstance(v, dict) else v)]
            for k, v in self.saved.items()
            if isinstance(v, (list, dict))
        }

    def put_back(self) -> None:
        if self.training is not None and getattr(self.module, "training", None) != self.training:
            self.module.training = self.training  # (this module's alone: each submodule has its own record)
        now = vars(self.module)
        own = _module_internals()
        for k in [k for k in now if k not in own and k not in self.saved]:
            del now[k]
        for k, v in self.saved.items():
            now[k] = v
            _restore(v, self.values[k])
            if isinstance(v, list) and _moved(v, self.values[k]):
                v[:] = self.values[k]
            elif isinstance(v, dict) and _moved(list(v.items()), list(self.values[k].items())):
                v.clear()
                v.update(self.values[k])
            for item, was in self.items.get(k, ()):
                _restore(item, was)


def _module_internals() -> frozenset[str]:
    """The attributes torch's own Module keeps in its ``__dict__`` (hooks, parameters, buffers, submodules)."""
    return frozenset(vars(torch_module().nn.Module()))


def _held(v: Any) -> Any:
    """What ``v`` holds, to be put back: a copy of a dense tensor's or a numeric numpy array's values, a list's or
    a dict's items; None for anything else (a sparse, meta or nested tensor, an array of strings: left alone)."""
    torch = torch_module()
    if isinstance(v, torch.Tensor):
        plain = v.layout == torch.strided and v.device.type != "meta" and not getattr(v, "is_nested", False)
        return v.detach().clone() if plain and type(v) is torch.Tensor else None
    if isinstance(v, np.ndarray):
        return v.copy() if v.dtype.kind in "biufc" else None
    if isinstance(v, list):
        return list(v)
    if isinstance(v, dict):
        return dict(v)
    return None


def _restore(v: Any, was: Any) -> None:
    """A tensor's or a numpy array's values put back in place where they changed (a list or dict: its caller)."""
    torch = torch_module()
    try:
        if isinstance(v, torch.Tensor) and isinstance(was, torch.Tensor):
            if not (v.shape == was.shape and v.dtype == was.dtype and torch.equal(v.detach(), was)):
                with torch.no_grad():
                    v.set_(was) if v.shape != was.shape or v.dtype != was.dtype else v.copy_(was)
        elif isinstance(v, np.ndarray) and isinstance(was, np.ndarray) and v.flags.writeable:
            if v.shape == was.shape and not np.array_equal(v, was, equal_nan=v.dtype.kind in "fc"):
                v[...] = was
    except Exception:  # noqa: BLE001 - a kind torch cannot compare or copy: left as the check left it
        return


def _moved(now: list[Any], was: list[Any]) -> bool:
    """Whether a list's items (or a dict's) are other objects than they were (compared by identity: tensors)."""
    return len(now) != len(was) or any(
        (a is not b) if not isinstance(a, tuple) else (a[0] != b[0] or a[1] is not b[1])
        for a, b in zip(now, was, strict=True)
    )
