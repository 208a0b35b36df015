"""solarmap: map solar farms in Sentinel-2 imagery and explain the model's decisions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("solarmap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
