"""Progress bars for long work.

Library code wraps long loops in :func:`track`; bars are shown only when the command line turns
them on (and never in quiet mode, nor off a terminal), so library users and tests see no output.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

_enabled = False
_console = Console(stderr=True)


def set_progress(enabled: bool) -> None:
    """Turn progress bars on or off for this process; they are only ever drawn on a terminal
    (a pipe or a log file gets the log lines alone)."""
    global _enabled
    _enabled = enabled and _console.is_terminal


def progress_console() -> Console:
    """The stderr console the bars are drawn on (log handlers share it, printing above)."""
    return _console


def progress_enabled() -> bool:
    """Whether progress bars are shown."""
    return _enabled


def make_progress(*extra_columns: TextColumn) -> Progress:
    """A rich progress display on stderr with solarmap's columns (disabled when bars are off)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_console,
        transient=False,
        disable=not _enabled,
    )


def track(iterable: Iterable[T], description: str, *, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar when bars are on; plain iteration otherwise."""
    if not _enabled:
        yield from iterable
        return
    with make_progress() as progress:
        yield from progress.track(iterable, total=total, description=description)
