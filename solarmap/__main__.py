"""``python -m solarmap``."""

from solarmap.cli import run

run()
