"""Progress bars for long loops, drawn on stderr with :mod:`rich.progress`.

Bars are shown only on an interactive terminal and never after ``set_quiet(True)``.
Bars opened inside another bar become extra rows of the same display, so an
experiment's bar can run inside ``ottokit reproduce``'s bar.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ProgressBar", "is_quiet", "progress_bar", "set_quiet"]

_quiet = False
_active: Progress | None = None


def set_quiet(quiet: bool) -> None:
    """Turn all progress bars off (``True``) or back to automatic (``False``)."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    """Whether :func:`set_quiet` has turned progress bars off."""
    return _quiet


class ProgressBar:
    """Handle on one bar; without a display behind it, it only counts."""

    def __init__(
        self, total: float | None, progress: Progress | None = None, task: TaskID | None = None
    ) -> None:
        self.total = total
        self.completed = 0.0
        self._progress = progress
        self._task = task

    @property
    def shown(self) -> bool:
        """Whether the bar is drawn on screen."""
        return self._progress is not None

    def advance(self, n: float = 1) -> None:
        """Mark ``n`` more steps as done."""
        self.completed += n
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.completed)

    def update(
        self,
        *,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
    ) -> None:
        """Set the number of steps done, the total, or the description."""
        if completed is not None:
            self.completed = float(completed)
        if total is not None:
            self.total = total
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=self.completed, total=self.total, description=description
            )


@contextmanager
def progress_bar(
    total: float | None, description: str, *, enabled: bool | None = None
) -> Iterator[ProgressBar]:
    """Show a bar of ``total`` steps labelled ``description`` while the block runs.

    ``enabled=None`` shows it when stderr is a terminal; ``set_quiet(True)`` always
    hides it. Use ``bar.advance()`` per step or ``bar.update(completed=k)``.
    """
    if enabled is None:
        enabled = _stderr_is_tty()
    if _quiet or not enabled:
        yield ProgressBar(total)
        return

    global _active
    if _active is not None:
        outer = _active
        task = outer.add_task(description, total=total)
        try:
            yield ProgressBar(total, outer, task)
        finally:
            outer.remove_task(task)
        return

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = progress.add_task(description, total=total)
    _active = progress
    try:
        with progress:
            yield ProgressBar(total, progress, task)
    finally:
        _active = None


def _stderr_is_tty() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())
