"""A progress bar for long checks: appears after about a second, on a terminal, when rich is installed."""

from __future__ import annotations

import sys
import time
from typing import Any

#: Seconds a check runs before its progress bar appears.
DELAY = 1.0


class Progress:
    """Callable ``progress(done, total)``; silent until ``DELAY`` seconds have passed. Use as a context."""

    def __init__(self, title: str, enabled: bool | None = None) -> None:
        self.title = title
        self.started = time.perf_counter()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or time.perf_counter() - self.started < DELAY:
            return
        if self._bar is None:
            try:
                from rich.progress import Progress as RichProgress
            except ImportError:
                self.enabled = False
                return
            self._bar = RichProgress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task(f"backcheck: {self.title}", total=total)
        self._bar.update(self._task, completed=done, total=total)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
