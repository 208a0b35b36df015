"""Errors raised for user mistakes.

Each error also derives from the matching built-in so callers can catch either. The command
line turns any :class:`SolarmapError` into one line on stderr and exit code 2. Messages say what
was wrong and what to do about it.
"""

from __future__ import annotations


def first_line(err: BaseException, *, limit: int | None = None) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type's
    name when it has none: what a one-line error quotes of the library error behind it."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


class SolarmapError(Exception):
    """Base class of every error solarmap raises for bad input or bad state."""


class InputError(SolarmapError, ValueError):
    """An input file or argument has the wrong content (bands, CRS, values, options)."""


class InputFileError(SolarmapError, FileNotFoundError):
    """An input file is missing or cannot be opened as the expected kind of file."""


class LabelError(InputError):
    """Labels are empty, unusable, or do not overlap the scene."""


class OutputExistsError(SolarmapError, FileExistsError):
    """An output folder exists already and overwriting was not asked for."""


class CheckpointError(SolarmapError, ValueError):
    """A checkpoint is corrupt, unsafe, or does not match the data."""
