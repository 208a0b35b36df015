"""``python -m solarmap``."""

from solarmap.app.signals import run

run()
