"""Progress of long computations: one callback protocol for engines, notebooks and the command line.

A long-running function accepts ``progress=None``; when given, it calls ``progress(done, total, **info)``
as work completes: ``done`` units of ``total`` (``total`` None while unknown), and ``info`` names what
else is worth showing (``stage="merging"``, ``regions=1234``, ...). Any callable with that signature
works: ``print``-like loggers, a list's ``append``, a notebook widget, or :class:`ProgressBar`, a rich
bar with counts and time remaining (a terminal or a notebook)::

    from relulab.progress import ProgressBar
    with ProgressBar("starts") as bar:
        find_critical_points(problem, 200, progress=bar)

Engines call :func:`notify`, which does nothing without a callback and never lets a failing display
interrupt the computation it reports on.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Progress", "notify", "accepts_progress", "ProgressBar", "Recorder"]


class Progress(Protocol):
    """``progress(done, total, **info)``: ``done`` of ``total`` units finished (``total`` None if unknown)."""

    def __call__(self, done: int, total: int | None = None, **info: Any) -> None: ...


def notify(progress: Progress | None, done: int, total: int | None = None, **info: Any) -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, **info)


def accepts_progress(fn: Callable) -> bool:
    """Whether ``fn`` takes a ``progress`` keyword (so callers wire progress where engines offer it)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    # only a named parameter counts: a **kwargs catch-all may pass the keyword on to something that refuses it
    return "progress" in params


class Recorder:
    """A callback that keeps every call as ``(done, total, info)``: for tests and for looking back."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None, dict]] = []

    def __call__(self, done: int, total: int | None = None, **info: Any) -> None:
        self.calls.append((done, total, info))


def _info_text(info: dict) -> str:
    parts = []
    for key, value in info.items():
        if key == "stage" or value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, int):
            value = f"{value:,}"
        parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


class ProgressBar:
    """A progress callback that draws a bar on stderr (rich): the description and stage, ``done/total``
    with the unit, elapsed time, time remaining (from the rate so far) and the ``info`` counts.

    Use as a context manager; outside one, or with ``enabled=False``, it draws nothing. Redraws are
    limited to ``refresh_per_second`` so that engines may report as often as they like.
    """

    def __init__(self, description: str, unit: str = "", *, enabled: bool = True, console=None,
                 transient: bool = True, refresh_per_second: float = 8.0) -> None:
        self.description = description
        self.unit = unit
        self.enabled = enabled
        self._console = console
        self._transient = transient
        self._refresh = refresh_per_second
        self._bar = None
        self._task = None
        self._last = 0.0

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn(self.unit), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                             TextColumn("{task.fields[info]}"), console=self._console, transient=self._transient,
                             refresh_per_second=self._refresh)
        self._bar.__enter__()
        self._task = self._bar.add_task(self.description, total=None, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def __call__(self, done: int, total: int | None = None, **info: Any) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if total is not None and done < total and now - self._last < 1.0 / self._refresh:
            return  # redraw at most a few times a second
        self._last = now
        stage = info.get("stage")
        description = f"{self.description}: {stage}" if stage else self.description
        try:
            self._bar.update(self._task, completed=done, total=total, description=description, info=_info_text(info))
        except Exception:  # a display problem must not stop the computation  # noqa: BLE001
            self._bar = None
