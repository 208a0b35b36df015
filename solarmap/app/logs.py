"""Logging set-up for the command line (library code only creates loggers).

Logs go to stderr, results to stdout. On a terminal they are drawn by rich; otherwise (pipes,
files, CI) they are plain lines, one per record and never wrapped, so scripts can grep them.
"""

from __future__ import annotations

import logging
import os
import sys

from rich.logging import RichHandler

from solarmap.progress import progress_console


def configure_logging(verbosity: int) -> None:
    """Configure the root logger: -1 quiet (warnings), 0 info, 1 debug, 2+ debug of the
    libraries too."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(
            console=progress_console(),
            show_time=False,
            show_path=False,
            markup=False,
            rich_tracebacks=False,
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    lib_level = level if verbosity >= 2 else max(level, logging.WARNING)
    # distributed configures its own loggers when imported (INFO, not propagated), from dask's
    # config, which this sets for this process and the worker processes it starts
    os.environ["DASK_LOGGING__DISTRIBUTED"] = logging.getLevelName(lib_level).lower()
    for noisy in ("rasterio", "fiona", "pyogrio", "matplotlib", "urllib3", "PIL", "distributed"):
        logging.getLogger(noisy).setLevel(level if verbosity >= 2 else max(level, logging.WARNING))
