"""What a check is about, whatever the framework: the function at a point, and the gradient claimed for it.

Every entry point (:func:`backcheck.check`, :func:`backcheck.check_layer`, the torch and jax frontends,
backcheck.nn's checks) translates user code into a :class:`Contract` and hands it, with the user's
:class:`~backcheck.options.Options`, to :func:`backcheck.run.run`, the one place that orchestrates.

- ``tree`` holds the user's arrays as the analytic side sees them: names, shapes, dtypes; the report speaks
  of these. ``point`` is where the function is evaluated: ``tree`` itself, or a float64 copy of it when the
  numeric side is evaluated wider than the analytic one.
- ``call(point.current())`` runs the user's function; ``output`` reduces its value to the scalar
  ``phi = <u, y>`` (``u = 1`` for a loss, ``dout`` for a layer).
- ``analytic()`` runs the side under test after the baseline (and after randomness is replayed, if it
  had to be) and returns its :class:`Section` s: the reverse-mode gradient and, for frameworks with forward
  mode, the jvp; each is judged against the same numeric side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backcheck.evaluate import Evaluator, Output
from backcheck.report import Finding
from backcheck.tree import Tree


@dataclass(frozen=True)
class Section:
    """One analytic side of a report, as a flat vector in the tree's order.

    ``at(values)`` recomputes it at another point, given as one array per leaf of the evaluated point (used to
    re-check elements at kinks nearby); ``prefix`` names the section's leaves (``jvp:x``); ``g_wide`` is the
    same backward pass run in float64, when the numeric side is wider than the gradient's dtype;
    ``grad_eps`` overrides the per-element machine epsilon of the analytic dtype (bfloat16, which numpy
    lacks); ``extended()`` runs a float64 backward pass in long double on first need (see
    :mod:`backcheck.extended`).
    """

    g: np.ndarray
    at: Callable[[list[np.ndarray]], np.ndarray] | None = None
    prefix: str = ""
    note: str = ""
    g_wide: np.ndarray | None = None
    grad_eps: np.ndarray | None = None
    extended: Callable[[], np.ndarray | None] | None = None


@dataclass(frozen=True)
class Analytic:
    """What the side under test gave: its sections, and what running it found."""

    sections: tuple[Section, ...]
    findings: tuple[Finding, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Contract:
    """A check, framework-free. Built by a frontend; run by :func:`backcheck.run.run`.

    Attributes
    ----------
    title, kind : str
        The report's title (``forward / backward``) and kind (``check``, ``layer``, ``torch``, ``jax``).
    tree, point : Tree
        The leaves as the analytic side sees them, and where the function is evaluated (see module doc).
    call : callable
        ``call(point.current()) -> raw output``.
    output : Output
        Reduces a raw output to ``phi``.
    analytic : callable
        ``analytic() -> Analytic``, run once after the baseline.
    fname : str
        The function's name, for messages.
    batch_call : callable, optional
        ``phi`` of a tree whose arrays have a leading batch axis (``vectorized=True``), one value per row.
    remote : callable, optional
        A picklable ``phi(point)`` for executor workers (which cannot see arrays perturbed here).
    replay : callable, optional
        ``replay() -> (contract, note)``: the same contract with the function's random streams replayed at
        every evaluation; None when the frontend cannot replay.
    evaluator : Evaluator, optional
        An evaluator the frontend built itself (frameworks that choose the numeric dtype by trying); None
        to let :func:`run` build one with the backend the options ask for.
    prefetch : callable, optional
        ``prefetch(ev, options) -> note or ''``: evaluates the first differences in a framework's own batched
        way before the strategy asks for them.
    findings, notes : tuple
        What set-up found (a forward pass that writes into its inputs) and said.
    evaluations : int
        Evaluations of the function a frontend made while building the contract (counted in the report).
    dtype_labels : mapping
        Dtype names for leaves whose dtype numpy lacks (``bfloat16``), by leaf name.
    """

    title: str
    kind: str
    tree: Tree
    point: Tree
    call: Callable[[Any], Any]
    output: Output
    analytic: Callable[[], Analytic]
    fname: str = "f"
    batch_call: Callable[[Any], Any] | None = None
    remote: Callable[[Any], Any] | None = None
    replay: Callable[[], tuple[Contract, str]] | None = None
    evaluator: Evaluator | None = None
    prefetch: Callable[[Evaluator, Any], str] | None = None
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    dtype_labels: Mapping[str, str] = field(default_factory=dict)
    root: str = "inputs"
    #: evaluations the frontend made before the check (deciding where to evaluate), counted in the report
    evaluations: int = 0
    #: f's output at ``point`` where the frontend evaluated it there on the way, with its random streams as the
    #: check found them: the baseline's first call (None: the baseline makes it)
    at_point: Any = None

    @property
    def widened(self) -> bool:
        """Whether the numeric side is evaluated on a wider copy of the point than the analytic side sees."""
        return self.point is not self.tree
