"""Fixtures the front door's tests share."""

from __future__ import annotations

# QGIS in Debian's interpreter, installed when missing (the survey's layers are opened in it)
from tests.test_qgis_styles import qgis_python  # noqa: F401
