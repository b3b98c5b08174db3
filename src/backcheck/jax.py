"""Gradient checks for JAX: ``jax.vjp`` / ``jax.jvp`` (``custom_vjp`` and ``custom_jvp`` rules) against
finite differences.

>>> import jax.numpy as jnp
>>> import backcheck.jax as bj
>>> bj.check(lambda x: jnp.sum(jnp.sin(x)), jnp.linspace(0.0, 1.0, 5)).ok
True
"""

try:
    import jax  # noqa: F401 - imported to fail early with a clear message
except ImportError as exc:  # pragma: no cover - exercised only without jax
    raise ImportError("backcheck.jax needs JAX, which is not installed: pip install backcheck[jax]") from exc

from backcheck.frontends.jax import check, x64_enabled

__all__ = ["check", "x64_enabled"]
