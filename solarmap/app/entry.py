"""The console script and ``python -m solarmap``: signal handlers first, then the commands."""

from __future__ import annotations

import sys

from solarmap.app.signals import Interrupted, signals_unwind


def run() -> None:
    """Console-script entry point: the handlers first, then the commands."""
    with signals_unwind():
        try:
            from solarmap.app.cli import main

            code = main()
        except Interrupted as err:  # while the commands were imported, or main unwound
            print("solarmap: interrupted", file=sys.stderr)
            code = 128 + err.signum
    sys.exit(code)
