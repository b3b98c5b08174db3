"""numpy ``forward`` / ``backward`` pairs of torch and jax functions, for :func:`backcheck.explore`.

``torch_layer(fn)`` runs ``fn`` (a custom ``torch.autograd.Function``'s ``apply``, or any function of
tensors) and takes the backward from autograd; ``jax_layer(fn)`` takes it from ``jax.vjp`` (so a
``custom_vjp`` rule is what gets checked). Integer and boolean inputs pass through as tensors without
gradient; hyper-parameters are keyword arguments. torch and jax are imported on first call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np


def _is_float(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def torch_layer(fn: Callable[..., Any]) -> tuple[Callable[..., np.ndarray], Callable[..., tuple[Any, ...]]]:
    """``(forward, backward)`` on numpy arrays for a torch function (e.g. ``MyFunction.apply``)."""

    def tensors(arrays: tuple[Any, ...], grad: bool) -> list[Any]:
        import torch

        return [torch.tensor(a, requires_grad=grad and _is_float(a)) if isinstance(a, np.ndarray) else a
                for a in arrays]

    def forward(*arrays: Any, **hyper: Any) -> np.ndarray:
        import torch

        with torch.no_grad():
            return fn(*tensors(arrays, False), **hyper).detach().numpy().copy()

    def backward(dout: np.ndarray, *arrays: Any, **hyper: Any) -> tuple[Any, ...]:
        import torch

        ts = tensors(arrays, True)
        out = fn(*ts, **hyper)
        out.backward(torch.as_tensor(np.asarray(dout, dtype=out.detach().numpy().dtype)))
        return tuple(None if not _is_float(a) else t.grad.numpy().copy() if t.grad is not None else np.zeros_like(a)
                     for a, t in zip(arrays, ts, strict=True))

    forward.__name__ = backward.__name__ = getattr(fn, "__name__", "torch_fn")
    return forward, backward


def jax_layer(fn: Callable[..., Any]) -> tuple[Callable[..., np.ndarray], Callable[..., tuple[Any, ...]]]:
    """``(forward, backward)`` on numpy arrays for a jax function; the backward is its ``jax.vjp``.

    float64 inputs run with jax's x64 mode switched on for the call (and restored after it).
    """

    def x64(arrays: tuple[Any, ...]) -> Any:
        import jax

        wide = any(_is_float(a) and a.dtype == np.float64 for a in arrays)
        return jax.enable_x64(True) if wide and not jax.config.read("jax_enable_x64") else contextlib.nullcontext()

    def forward(*arrays: Any, **hyper: Any) -> np.ndarray:
        import jax.numpy as jnp

        with x64(arrays):
            return np.array(fn(*[jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in arrays], **hyper))

    def backward(dout: np.ndarray, *arrays: Any, **hyper: Any) -> tuple[Any, ...]:
        import jax
        import jax.numpy as jnp

        floats = [k for k, a in enumerate(arrays) if _is_float(a)]

        def of_floats(*xs: Any) -> Any:
            args: list[Any] = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in arrays]
            for k, x in zip(floats, xs, strict=True):
                args[k] = x
            return fn(*args, **hyper)

        with x64(arrays):
            out, vjp = jax.vjp(of_floats, *[jnp.asarray(arrays[k]) for k in floats])
            grads = vjp(jnp.asarray(dout, dtype=out.dtype))
            by_index = {k: np.array(g) for k, g in zip(floats, grads, strict=True)}
        return tuple(by_index.get(k) for k in range(len(arrays)))

    forward.__name__ = backward.__name__ = getattr(fn, "__name__", "jax_fn")
    return forward, backward
