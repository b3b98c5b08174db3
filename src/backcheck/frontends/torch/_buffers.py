"""A module that writes its own buffers at every call: named when the check finds it changing between calls."""

from __future__ import annotations

import copy
from typing import Any

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
    saved = [(n, b, b.detach().clone()) for n, b in module.named_buffers()]
    try:
        with torch.no_grad():
            module(*copy.deepcopy(target.args), **copy.deepcopy(dict(target.kwargs)))
        moved = [n for n, b, was in saved if not torch.equal(b.detach(), was)]
    except Exception:  # noqa: BLE001 - a module that cannot be called so: the error as it was
        return exc
    finally:
        with torch.no_grad():
            for _, b, was in saved:  # (the user's buffers as they were)
                b.copy_(was)
    if not moved:
        return exc
    return NondeterministicError(
        f"{target.title} writes its buffers {', '.join(moved)} at every call (a power iteration, running "
        "statistics read back), so it computes another function at each evaluation; nothing random is involved.",
        "check it in eval mode (module.eval()), where it leaves its buffers alone, or check the function it "
        "computes with the buffers fixed.",
    )
