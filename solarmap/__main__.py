"""``python -m solarmap``."""

from solarmap.app.entry import run

run()
