"""A layer and its input description, bound but not run: what ``backcheck explore FILE.py`` collects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from backcheck.explore.result import ExploreResult


@dataclass(frozen=True)
class Target:
    """``explore(forward, backward, inputs, **options)``, ready to run (``target.run(max_points=50)``).

    Define targets at module level in a file and ``backcheck explore FILE.py`` explores each; in a test,
    ``target.check()`` raises :class:`~backcheck.explore.ExploreFailure` when a point fails.
    """

    forward: Callable[..., Any]
    backward: Callable[..., Any]
    inputs: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    def run(self, **overrides: Any) -> ExploreResult:
        from backcheck.explore import explore

        options = {**self.options, **overrides}
        if self.name and "title" not in options:
            options["title"] = self.name
        return explore(self.forward, self.backward, self.inputs, **options)

    def check(self, **overrides: Any) -> ExploreResult:
        from backcheck.explore import ExploreFailure

        result = self.run(**overrides)
        if result.status == "fail":
            raise ExploreFailure(result)
        return result


def collect(namespace: ModuleType | Mapping[str, Any]) -> list[tuple[str, Target]]:
    """The module-level targets of a module (or a dict), by variable name, in definition order."""
    items = vars(namespace) if isinstance(namespace, ModuleType) else namespace
    return [(name, t) for name, t in items.items() if isinstance(t, Target) and not name.startswith("_")]
