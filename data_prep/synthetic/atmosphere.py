"""The sky over a synthetic region: haze, clouds and their shadows, and the scene classification.

:func:`make_haze` draws a preset scene's illumination gain and the haze the atmospheric
correction left (a path-reflectance offset, strongest in blue); :func:`apply_haze` applies
them. :func:`make_sky` draws cloud opacity and cloud-shadow strength; :func:`apply_sky` lays
them over the surface reflectance. The scene classification (SCL) is made as Sen2Cor would: surface
classes from the clear surface (:func:`classify_surface`), then shadows, cirrus and clouds on
top (:func:`classify_sky`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from data_prep.synthetic.config import RegionConfig
from data_prep.synthetic.fields import FloatMap, block_mean, rng_for, smooth_field
from data_prep.synthetic.grid import Grid
from solarmap.bands import BANDS, CENTRAL_WAVELENGTH_NM, SclClass

__all__ = [
    "CLOUD_SPECTRUM",
    "SCL_WRITTEN",
    "Haze",
    "apply_haze",
    "apply_sky",
    "classify_sky",
    "classify_surface",
    "make_haze",
    "make_sky",
]

#: The scene classification classes (:data:`~solarmap.bands.SCL_CLASSES`) the generator writes
#: in ``scene_SCL.tif`` (20 m, uint8).
SCL_WRITTEN: Final[tuple[int, ...]] = tuple(
    int(c)
    for c in (
        SclClass.NO_DATA,
        SclClass.CLOUD_SHADOW,
        SclClass.VEGETATION,
        SclClass.NOT_VEGETATED,
        SclClass.WATER,
        SclClass.CLOUD_MEDIUM_PROBABILITY,
        SclClass.CLOUD_HIGH_PROBABILITY,
        SclClass.THIN_CIRRUS,
        SclClass.SNOW,
    )
)

#: Reflectance (0-1) of thick cloud, bands in :data:`~solarmap.bands.BANDS` order.
CLOUD_SPECTRUM: Final = np.array([0.45, 0.44, 0.43, 0.44, 0.45, 0.46, 0.47, 0.47, 0.34, 0.24], "f4")
_SHADOW_SHIFT_PX: Final = 40  # cloud shadows fall this many pixels north and west (sun in the SE)
#: Central wavelengths of the bands (nm), for the haze's fall with wavelength.
_WAVELENGTH_NM: Final = np.array([CENTRAL_WAVELENGTH_NM[b] for b in BANDS])
#: How much the haze varies across a scene (relative standard deviation).
_HAZE_PATCHINESS: Final = 0.3


@dataclass(frozen=True)
class Haze:
    """A scene's illumination and haze: ``observed = gain * surface + offset * patches``.

    Attributes:
        gain: The per-scene gain.
        offset: Path-reflectance offset per band ``[10]``, falling with wavelength.
        patches: How thick the haze is across the scene ``[H, W]`` (mean 1).
    """

    gain: float
    offset: NDArray[np.float32]
    patches: FloatMap


def make_haze(config: RegionConfig, grid: Grid) -> Haze | None:
    """The gain and haze of a preset scene (``None`` without a preset): the gain and the B02
    offset drawn from the preset's ranges, the offset in band ``b`` falling as
    ``(wavelength_b / wavelength_B02) ** -a``, patchy over tens of kilometres."""
    spec = config.preset_spec
    if spec is None:
        return None
    rng = rng_for(config, "haze")
    sky = spec.sky
    gain = float(rng.uniform(*sky.gain))
    b02 = float(rng.uniform(*sky.haze_b02))
    exponent = float(rng.uniform(*sky.haze_exponent))
    offset = (b02 * (_WAVELENGTH_NM / _WAVELENGTH_NM[0]) ** -exponent).astype("f4")
    patches = np.clip(1.0 + _HAZE_PATCHINESS * smooth_field(rng, (grid.H, grid.W), 200), 0.2, 2.0)
    return Haze(gain, offset, patches.astype("f4"))


def apply_haze(refl: FloatMap, haze: Haze, rows: slice) -> None:
    """Scale ``refl`` ``[10, h, W]`` (rows ``rows`` of the scene) by the gain and add the
    haze, in place."""
    refl *= np.float32(haze.gain)
    refl += haze.offset[:, None, None] * haze.patches[rows][None]


def make_sky(config: RegionConfig, grid: Grid) -> tuple[FloatMap, FloatMap]:
    """Cloud opacity and cloud-shadow strength ``[H, W]``, both 0-1."""
    H, W = grid.H, grid.W
    if config.cloud_fraction <= 0:
        z = np.zeros((H, W), "f4")
        return z, z.copy()
    rng = rng_for(config, "sky")
    d = _SHADOW_SHIFT_PX
    shape = (H + d, W + d)  # clouds just off the south-east edge still cast shadows inside
    f = smooth_field(rng, shape, 30) + 0.35 * smooth_field(rng, shape, 6)
    sd = float(f.std())
    thr = float(np.quantile(f[:H:2, :W:2], 1.0 - config.cloud_fraction))
    a_pad = np.clip(0.1 + 0.9 * (f - thr) / (0.8 * sd), 0.0, 1.0)
    a_pad[f < thr - 0.05 * sd] = 0.0
    core = np.clip((a_pad - 0.3) / 0.4, 0.0, 1.0)
    shadow = ndimage.gaussian_filter(core[d : d + H, d : d + W], 1.5)
    return a_pad[:H, :W].astype("f4"), shadow.astype("f4")


def apply_sky(refl: FloatMap, cloud: FloatMap, shadow: FloatMap, illum: FloatMap) -> None:
    """Darken ``refl`` ``[10, h, W]`` under cloud shadows and blend in the clouds, in place."""
    if shadow.any():
        refl *= 1.0 - 0.65 * shadow
    if cloud.any():
        refl *= 1.0 - cloud
        refl += cloud * (1.0 + 0.15 * illum) * CLOUD_SPECTRUM[:, None, None]


def classify_surface(refl: FloatMap, landcover20: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Surface SCL ``[h/2, W/2]`` at 20 m from the clear-sky reflectance ``[10, h, W]``.

    Vegetation where NDVI > 0.4, not vegetated elsewhere, water and snow from the land cover
    (``landcover20``, the land cover on the 20 m grid).
    """
    red20 = block_mean(refl[BANDS.index("B04")], 2)
    nir20 = block_mean(refl[BANDS.index("B08")], 2)
    ndvi = (nir20 - red20) / np.maximum(nir20 + red20, 1e-4)
    scl = np.where(ndvi > 0.4, SclClass.VEGETATION, SclClass.NOT_VEGETATED).astype(np.uint8)
    scl[landcover20 == 3] = SclClass.WATER  # land cover water
    scl[landcover20 == 6] = SclClass.SNOW  # land cover snow
    return scl


def classify_sky(scl: NDArray[np.uint8], cloud: FloatMap, shadow: FloatMap) -> None:
    """Mark cloud shadows, thin cirrus and clouds in ``scl`` ``[h/2, W/2]``, in place."""
    a20, s20 = block_mean(cloud, 2), block_mean(shadow, 2)
    scl[(s20 >= 0.3) & (a20 < 0.1)] = SclClass.CLOUD_SHADOW
    scl[a20 >= 0.1] = SclClass.THIN_CIRRUS
    scl[a20 >= 0.3] = SclClass.CLOUD_MEDIUM_PROBABILITY
    scl[a20 >= 0.55] = SclClass.CLOUD_HIGH_PROBABILITY
