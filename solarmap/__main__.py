"""``python -m solarmap``."""

from solarmap.app.cli import run

run()
