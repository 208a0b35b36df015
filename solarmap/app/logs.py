"""Logging set-up for the command line (library code only creates loggers)."""

from __future__ import annotations

import logging

from rich.logging import RichHandler


def configure_logging(verbosity: int) -> None:
    """Configure the root logger: -1 quiet (warnings), 0 info, 1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = RichHandler(show_time=False, show_path=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for noisy in ("rasterio", "fiona", "pyogrio", "matplotlib", "urllib3", "PIL", "distributed"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
