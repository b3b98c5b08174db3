"""Gradient checks for PyTorch: ``torch.autograd`` (custom Functions, modules) against finite differences.

>>> import torch
>>> import backcheck.torch as bt
>>> bt.check(torch.sin, torch.linspace(0, 1, 5, dtype=torch.float64)).ok
True
"""

try:
    import torch  # noqa: F401 - imported to fail early with a clear message
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "backcheck.torch needs PyTorch, which is not installed: pip install backcheck[torch]"
    ) from exc

from backcheck.frontends.torch import Blame, BlameRow, blame, check, check_function, check_module

__all__ = ["check", "check_function", "check_module", "blame", "Blame", "BlameRow"]
