"""Burn solar labels onto a scene grid as a uint8 training mask.

Mask values: 0 background, 1 solar, 255 ignore (invalid pixels and the optional boundary ring).
Pixels are burned when their centre falls inside a polygon (GDAL's default rule), which is the
rule the reference masks of the real Austrian chips were made with.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import numpy as np
from affine import Affine
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from scipy import ndimage

from solarmap.errors import InputError

log = logging.getLogger(__name__)

BACKGROUND: Final = 0
SOLAR: Final = 1
IGNORE: Final = 255
#: What each value of a mask means.
MASK_CLASSES: Final[dict[int, str]] = {
    BACKGROUND: "background",
    SOLAR: "solar",
    IGNORE: "ignore (no data, cloud, boundary)",
}


def rasterize_labels(
    labels: Any,
    *,
    transform: Affine,
    shape: tuple[int, int],
    valid: np.ndarray | None = None,
    boundary: int = 0,
    all_touched: bool = False,
) -> np.ndarray:
    """Rasterize label polygons onto a grid.

    Args:
        labels: GeoDataFrame (or sequence of shapely geometries) in the grid's CRS.
        transform: affine transform of the grid (a window's transform for windowed work).
        shape: ``(height, width)`` of the grid.
        valid: optional ``bool[H, W]``; invalid pixels become 255 (ignore).
        boundary: width in pixels of an ignore ring on each side of every polygon edge, so
            that mixed edge pixels do not teach the model noise. 0 turns it off.
        all_touched: burn every pixel a polygon touches instead of the centre rule.

    Returns:
        ``uint8[H, W]`` mask with 0 background, 1 solar, 255 ignore.

    Raises:
        InputError: if ``boundary`` is negative or ``valid`` has the wrong shape.
    """
    if boundary < 0:
        raise InputError(f"boundary ring must be >= 0 pixels, got {boundary}")
    height, width = shape
    if valid is not None and valid.shape != (height, width):
        raise InputError(f"valid mask shape {valid.shape} does not match grid {shape}")
    geoms = list(getattr(labels, "geometry", labels))
    geoms = [g for g in geoms if g is not None and not g.is_empty]

    # Rasterize on a grid padded by the ring width so the ring is right at window edges too.
    pad = boundary
    padded_transform = transform @ Affine.translation(-pad, -pad)
    padded_shape = (height + 2 * pad, width + 2 * pad)
    if geoms:
        burned = rasterize(
            ((g, SOLAR) for g in geoms),
            out_shape=padded_shape,
            transform=padded_transform,
            fill=BACKGROUND,
            all_touched=all_touched,
            dtype="uint8",
        )
    else:
        burned = np.zeros(padded_shape, dtype=np.uint8)

    mask = burned
    if boundary > 0:
        solar = burned == SOLAR
        structure = ndimage.generate_binary_structure(2, 2)  # square: the ring has corners
        grown = ndimage.binary_dilation(solar, structure, iterations=boundary)
        shrunk = ndimage.binary_erosion(solar, structure, iterations=boundary, border_value=1)
        mask = burned.copy()
        mask[grown & ~shrunk] = IGNORE
    mask = np.ascontiguousarray(mask[pad : pad + height, pad : pad + width])
    if valid is not None:
        mask[~valid] = IGNORE
    return mask


def rasterize_window(
    labels: Any,
    *,
    scene_transform: Affine,
    window: Window,
    valid: np.ndarray | None = None,
    boundary: int = 0,
) -> np.ndarray:
    """Rasterize labels for one window of a scene grid (see :func:`rasterize_labels`)."""
    return rasterize_labels(
        labels,
        transform=window_transform(window, scene_transform),
        shape=(int(window.height), int(window.width)),
        valid=valid,
        boundary=boundary,
    )
