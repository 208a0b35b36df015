"""Windowed reads of a scene that may stick out of it, and what a scene must offer to be read.

Prediction (sliding windows at the scene's edges) and attribution (a target's window, centred
on a target near an edge) both read boxes of the scene grid that can extend past the scene;
:func:`read_padded` is that one read. Any object with the :class:`SceneSource` shape can be
read (``data_prep.sentinel2.Scene`` is one); this core module imports no stage package.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from rasterio.windows import Window


class SceneSource(Protocol):
    """What prediction and attribution need of a scene (``data_prep.sentinel2.Scene`` has it).

    ``info`` has ``crs``, ``transform``, ``width``, ``height``, ``bands`` (``tuple[str, ...]``),
    ``scene_id`` (``str``), ``date`` (``str | None``) and ``source`` (``Path``).
    """

    @property
    def info(self) -> Any: ...

    def read(
        self, window: Window | None = None, *, allow_full: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(float32[B, h, w]`` reflectance 0-1 with NaN for no data, ``bool[h, w]`` valid)."""
        ...


def read_padded(scene: SceneSource, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Read a box of the scene grid that may stick out of the scene on any side.

    Only the part inside the scene is read. Pixels outside the scene, pixels the scene marks
    invalid (no data, cloud, shadow) and pixels NaN in any band are invalid, and NaN in every
    band (the model's normalisation turns NaN into the band mean).

    Args:
        scene: the scene.
        window: integer offsets and size on the scene grid; offsets may be negative.

    Returns:
        ``(float32[B, height, width]`` reflectance, ``bool[height, width]`` valid).
    """
    info = scene.info
    h, w = int(window.height), int(window.width)
    r0, c0 = int(window.row_off), int(window.col_off)
    x = np.full((len(info.bands), h, w), np.nan, dtype=np.float32)
    valid = np.zeros((h, w), dtype=bool)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, info.height), min(c0 + w, info.width)
    if rr1 > rr0 and cc1 > cc0:
        data, ok = scene.read(Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
        x[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = data
        valid[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = ok
    valid &= np.isfinite(x).all(axis=0)
    x[:, ~valid] = np.nan
    return x, valid


__all__ = ["SceneSource", "read_padded"]
