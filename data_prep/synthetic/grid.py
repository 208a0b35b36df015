"""The 10 m pixel grid of a synthetic region: size, corner, CRS and transform."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS
from rasterio.transform import Affine

from data_prep.synthetic.config import PIXEL_M, RegionConfig


@dataclass
class Grid:
    """The scene grid: ``H`` x ``W`` pixels of :data:`PIXEL_M` from the corner ``(x0, y0)``."""

    H: int
    W: int
    x0: float
    y0: float
    crs: CRS
    transform: Affine

    @classmethod
    def of(cls, config: RegionConfig) -> Grid:
        x0, y0 = config.resolved_origin
        return cls(
            H=config.size,
            W=config.size,
            x0=x0,
            y0=y0,
            crs=CRS.from_epsg(config.resolved_epsg),
            transform=Affine(PIXEL_M, 0.0, x0, 0.0, -PIXEL_M, y0),
        )

    def world(self, px: NDArray[np.float64]) -> NDArray[np.float64]:
        """Pixel (col, row) continuous coordinates ``[N, 2]`` to world (x, y)."""
        return np.column_stack((self.x0 + PIXEL_M * px[:, 0], self.y0 - PIXEL_M * px[:, 1]))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.H * PIXEL_M, self.x0 + self.W * PIXEL_M, self.y0)
