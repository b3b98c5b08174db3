"""Forward mode of the side under test: ``<dout, J e_i>`` for every input element by torch's forward-mode AD (a
custom Function's ``jvp``), and a probe of the rule's linearity in its tangent.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from backcheck.bits import dot
from backcheck.frontends.common import jvp_linearity_finding, tangent_coefficients
from backcheck.frontends.torch._analytic import analytic_tensors
from backcheck.frontends.torch._session import Session
from backcheck.frontends.torch._tensors import parts
from backcheck.report import Finding
from backcheck.tree import format_index


def forward(sess: Session, point: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """``<dout, J e_i>`` for every input element by forward-mode AD (a custom Function's ``jvp``)."""
    return forward_probed(sess, point)[0]


def forward_probed(sess: Session, point: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, Finding | None]:
    """:func:`forward`, and at the original point (``point`` None) one more pass, with the unit tangents scaled by
    :func:`~backcheck.frontends.common.tangent_coefficients` and summed, that probes the rule's linearity in its
    tangent: a 'nonlinear jvp' finding when it gives another output tangent than the same sum of theirs."""
    torch = sess.torch
    import torch.autograd.forward_ad as fwAD

    with warnings.catch_warnings(), fwAD.dual_level():
        # the first make_dual loads torch's jvp decompositions, which use the deprecated torch.jit.script
        warnings.simplefilter("ignore", DeprecationWarning)
        fwAD.make_dual(torch.zeros(1), torch.zeros(1))

    base = analytic_tensors(sess, point)
    units = [(k, unit, j) for k, s in enumerate(sess.slots) for unit in _units(s) for j in range(s.tensor.numel())]
    coef = tangent_coefficients(len(units))
    probe_tangents = [torch.zeros_like(b) for b in base]
    expected: np.ndarray | None = None
    size: np.ndarray | None = None
    res = []
    with sess.storage(), torch.no_grad():
        for c, (k, unit, j) in zip(coef, units, strict=True):
            tangent = torch.zeros_like(base[k])
            tangent.view(-1)[j] = unit
            probe_tangents[k].view(-1)[j] += c * unit
            outs, tans = _pushed(sess, base, {k: tangent})
            res.append(_dot(tans, outs, sess.douts))
            if point is None:
                full = _tangent_values(tans, outs)
                expected = c * full if expected is None else expected + c * full
                size = abs(c) * np.abs(full) if size is None else size + abs(c) * np.abs(full)
        found = None
        if point is None and expected is not None and size is not None:
            outs, tans = _pushed(sess, base, dict(enumerate(probe_tangents)))
            names = [v for n, o in zip(sess.out_names, outs, strict=True) for v in _value_names(n, o)]
            eps = max((float(torch.finfo(o.dtype).eps) for o in outs if isinstance(o, torch.Tensor)), default=0.0)
            found = jvp_linearity_finding(sess.fname, _tangent_values(tans, outs), expected, size, eps, names)
    return np.asarray(res, dtype=np.float64), found


def _units(s: Any) -> tuple[complex, ...] | tuple[float, ...]:
    return (1.0, 1j) if s.is_complex else (1.0,)


def _pushed(sess: Session, base: list[Any], tangents: dict[int, Any]) -> tuple[list[Any], list[Any]]:
    """The float outputs at ``base`` and their tangents, the slots ``tangents`` names carrying theirs."""
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        ins = {
            q.pos: (fwAD.make_dual(base[m], tangents[m]) if m in tangents else base[m])
            for m, q in enumerate(sess.slots)
        }
        outs = sess.float_outputs(sess.call(ins))
        tans = [fwAD.unpack_dual(o).tangent if isinstance(o, sess.torch.Tensor) else None for o in outs]
    return outs, tans


def _n_values(o: Any) -> int:
    """How many real values an output holds (a complex element two)."""
    if not hasattr(o, "numel"):
        return 0
    return int(o.numel()) * (2 if o.is_complex() else 1)


def _value_names(name: str, o: Any) -> list[str]:
    """The names of an output's real values, in :func:`_tangent_values`' order."""
    if not _n_values(o):
        return []
    at = [name + format_index(k) for k in np.ndindex(*o.shape)]
    return [f"{a}.{p}" for a in at for p in ("real", "imag")] if o.is_complex() else at


def _tangent_values(tangents: list[Any], outs: list[Any]) -> np.ndarray:
    """Every real value of the outputs' tangents as one float64 vector (0 for an output without one)."""
    vals = []
    for t, o in zip(tangents, outs, strict=True):
        if t is None:
            vals.append(np.zeros(_n_values(o)))
            continue
        ps = parts(t.to(o.dtype))
        vals.append(np.stack([p.reshape(-1).astype(np.float64) for p in ps], axis=1).reshape(-1))
    return np.concatenate(vals) if vals else np.zeros(0)


def _dot(tangents: list[Any], outs: list[Any], douts: list[Any]) -> float:
    total = 0.0
    for t, o, d in zip(tangents, outs, douts, strict=True):
        if t is None:
            continue
        for tp, dp in zip(parts(t.to(o.dtype)), parts(d), strict=True):
            total += dot(tp.reshape(-1).astype(np.float64), dp.reshape(-1).astype(np.float64))
    return total
