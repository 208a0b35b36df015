"""Surface reflectance: end-member spectra, their mixing weights, the sensor's blur and noise.

Reflectances are linear mixtures of published Sentinel-2 surface-reflectance spectra, weighted
by the cover fractions of the landscape and the farms, with per-field and per-farm variation,
spatially correlated and per-pixel noise, and the 20 m bands seen at 20 m.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from data_prep.synthetic.config import RegionConfig
from data_prep.synthetic.farms import Farm
from data_prep.synthetic.fields import FloatMap, block_mean, rng_for
from data_prep.synthetic.landscape import Land
from solarmap.bands import BANDS, NATIVE_RESOLUTION_M

__all__ = [
    "ENDMEMBERS",
    "ENDMEMBER_INDEX",
    "ENDMEMBER_SPECTRA",
    "SPECTRA",
    "add_sensor_noise",
    "endmember_weights",
    "farm_mix",
    "resample_20m_bands",
    "surface_reflectance",
]

#: Surface reflectance (0-1) of the end-members, bands in :data:`BANDS` order. Vegetation, bare
#: soil, water, asphalt, settlement and snow follow published Sentinel-2 L2A values; panels are
#: dark, nearly flat and slightly blue (glass over silicon, with a small red-edge/NIR rise from
#: frames and the backsheet between cells); grass is the mown, lush cover kept under panel rows;
#: the others are plausible variants for per-field variety. Farm ground mixes grass, dry grass
#: and soil; with ~45 % panel cover the solar-pixel median falls near the median of real solar
#: pixels (Austria, 2022), blue up and NIR down against the vegetation around.
SPECTRA: Final[dict[str, tuple[float, ...]]] = {
    "vegetation": (0.03, 0.06, 0.04, 0.10, 0.25, 0.32, 0.35, 0.37, 0.22, 0.11),
    "dry_grass": (0.06, 0.085, 0.10, 0.14, 0.20, 0.23, 0.25, 0.27, 0.33, 0.23),
    "bare_soil": (0.10, 0.14, 0.18, 0.21, 0.24, 0.26, 0.28, 0.30, 0.36, 0.30),
    "red_soil": (0.07, 0.10, 0.16, 0.20, 0.23, 0.25, 0.27, 0.29, 0.35, 0.29),
    "dark_soil": (0.05, 0.07, 0.09, 0.11, 0.13, 0.15, 0.16, 0.17, 0.22, 0.18),
    "water": (0.06, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.01, 0.005, 0.003),
    "turbid_water": (0.08, 0.10, 0.09, 0.07, 0.04, 0.03, 0.025, 0.02, 0.008, 0.004),
    "asphalt": (0.09, 0.10, 0.11, 0.12, 0.13, 0.13, 0.14, 0.14, 0.16, 0.15),
    "gravel": (0.14, 0.17, 0.20, 0.22, 0.24, 0.26, 0.27, 0.28, 0.32, 0.27),
    "settlement": (0.10, 0.11, 0.13, 0.15, 0.18, 0.20, 0.21, 0.22, 0.25, 0.21),
    "bright_roof": (0.22, 0.24, 0.26, 0.27, 0.28, 0.29, 0.30, 0.30, 0.32, 0.28),
    "metal_roof": (0.13, 0.12, 0.09, 0.10, 0.11, 0.11, 0.11, 0.11, 0.12, 0.10),
    "snow": (0.85, 0.85, 0.83, 0.80, 0.78, 0.76, 0.74, 0.72, 0.10, 0.08),
    "grass": (0.035, 0.07, 0.045, 0.12, 0.30, 0.38, 0.42, 0.44, 0.26, 0.13),
    "panel": (0.080, 0.080, 0.070, 0.075, 0.090, 0.105, 0.115, 0.120, 0.125, 0.095),
    "panel_alt": (0.095, 0.090, 0.075, 0.078, 0.092, 0.108, 0.118, 0.124, 0.130, 0.100),
    "pad": (0.30, 0.32, 0.34, 0.35, 0.36, 0.36, 0.37, 0.37, 0.38, 0.35),
}

#: End-member names, in the order of the columns of :data:`ENDMEMBER_SPECTRA`.
ENDMEMBERS: Final[tuple[str, ...]] = tuple(SPECTRA)
#: Position of each end-member in :data:`ENDMEMBERS`.
ENDMEMBER_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(ENDMEMBERS)}
#: The spectra as a matrix ``[10 bands, K end-members]``.
ENDMEMBER_SPECTRA: Final = np.array([SPECTRA[n] for n in ENDMEMBERS], dtype="f4").T

_PSF_SIGMA_PX: Final = 0.45
#: Rows beyond a strip needed by the point spread function (3 sigma).
_PSF_HALO_ROWS: Final = 2
_BANDS_20M: Final = tuple(i for i, b in enumerate(BANDS) if NATIVE_RESOLUTION_M[b] == 20)
_BANDS_10M: Final = tuple(i for i, b in enumerate(BANDS) if NATIVE_RESOLUTION_M[b] == 10)

#: End-member weights of one layer, from the cover maps of a strip.
_Parts = Callable[[dict[str, FloatMap]], dict[str, FloatMap]]


def farm_mix(farms: list[Farm]) -> NDArray[np.float32]:
    """Ground and panel mix of every farm ``[n_farms + 1, 3]``, indexed by farm index + 1.

    Columns: grass share and dry-grass share of the ground between the rows, share of the
    alternative panel spectrum. Row 0 (outside farms) is zero.
    """
    params = np.zeros((len(farms) + 1, 3), "f4")
    for f in farms:
        params[f.index + 1] = (f.ground_green, min(f.ground_dry, 1 - f.ground_green), f.panel_alt)
    return params


def endmember_weights(
    land: Land, farm_params: NDArray[np.float32], rows: slice
) -> NDArray[np.float32]:
    """End-member weights ``[K, h, W]`` of a strip of rows.

    Layers are composited in order (land, water, settlement, tracks, roads, snow, farms, pads),
    each covering a fraction of the pixel. Walking the layers from the top down with the
    running share ``keep`` that is still visible costs a few operations per layer instead of K.
    """
    maps = {k: v[rows] for k, v in land.maps.items()}
    farm_index = land.farm_index[rows]
    weights = np.zeros((len(ENDMEMBERS), *maps["green"].shape), "f4")
    # Each layer: the map of its cover, and the end-members it is made of (made only when the
    # layer covers something in the strip).
    layers: list[tuple[str, _Parts]] = [
        ("water", _water_parts),
        ("settle", _settlement_parts),
        ("track", lambda m: {"gravel": m["track"]}),
        ("asphalt", lambda m: {"asphalt": m["asphalt"]}),
        ("snow", lambda m: {"snow": m["snow"]}),
        ("foot", lambda m: _farm_parts(m, farm_index, farm_params)),
        ("pad", lambda m: {"pad": m["pad"]}),
    ]
    keep = np.ones_like(maps["green"])
    for key, parts in reversed(layers):
        cover = maps[key]
        if not cover.any():
            continue
        for name, w in parts(maps).items():
            weights[ENDMEMBER_INDEX[name]] += keep * w
        keep *= 1.0 - cover
    # The land underneath: vegetation, dry grass and three soils.
    g, d = maps["green"], maps["dry"]
    soil = np.clip(1.0 - g - d, 0.0, 1.0) * keep
    weights[ENDMEMBER_INDEX["vegetation"]] += g * keep
    weights[ENDMEMBER_INDEX["dry_grass"]] += d * keep
    weights[ENDMEMBER_INDEX["red_soil"]] += soil * maps["red"]
    weights[ENDMEMBER_INDEX["dark_soil"]] += soil * maps["dark"]
    weights[ENDMEMBER_INDEX["bare_soil"]] += soil * (1.0 - maps["red"] - maps["dark"])
    return weights


def _water_parts(maps: dict[str, FloatMap]) -> dict[str, FloatMap]:
    f, t = maps["water"], maps["turbid"]
    return {"water": f * (1 - t), "turbid_water": f * t}


def _settlement_parts(maps: dict[str, FloatMap]) -> dict[str, FloatMap]:
    f, b, mt, tr = maps["settle"], maps["bright_roof"], maps["metal_roof"], maps["tree"]
    rest = np.clip(1.0 - b - mt - tr, 0.0, 1.0)
    return {
        "settlement": f * rest,
        "bright_roof": f * b,
        "metal_roof": f * mt,
        "vegetation": f * tr,
    }


def _farm_parts(
    maps: dict[str, FloatMap], farm_index: NDArray[np.int32], farm_params: NDArray[np.float32]
) -> dict[str, FloatMap]:
    """Panels, farm roads (gravel) and the ground between the rows, mixed per farm."""
    ff = maps["foot"]
    idx = farm_index + 1
    gg, gd, alt = farm_params[idx, 0], farm_params[idx, 1], farm_params[idx, 2]
    fp = np.minimum(maps["panel"], ff)
    fr = np.minimum(maps["froad"], ff - fp)
    ground = np.clip(ff - fp - fr, 0.0, 1.0)
    return {
        "panel": fp * (1.0 - alt),
        "panel_alt": fp * alt,
        "gravel": fr,
        "grass": ground * gg,
        "dry_grass": ground * gd,
        "bare_soil": ground * np.clip(1.0 - gg - gd, 0.0, 1.0),
    }


def surface_reflectance(
    land: Land, farm_params: NDArray[np.float32], r0: int, r1: int
) -> NDArray[np.float32]:
    """Surface reflectance ``[10, h, W]`` of rows ``r0:r1`` as the instrument sees it.

    The instrument's point spread function: a Gaussian of sigma 0.45 px (MTF ~0.2 at Nyquist)
    on the 10 m bands (20 m bands are averaged over 2 x 2 pixels by
    :func:`resample_20m_bands`), with a few halo rows so strips join seamlessly. It also damps
    the moire between panel rows and the 10 m grid.
    """
    H, W = land.band.shape
    h = r1 - r0
    a0, a1 = max(0, r0 - _PSF_HALO_ROWS), min(H, r1 + _PSF_HALO_ROWS)
    wts = endmember_weights(land, farm_params, slice(a0, a1))
    surface = (ENDMEMBER_SPECTRA @ wts.reshape(len(ENDMEMBERS), -1)).reshape(-1, a1 - a0, W)
    del wts
    refl = np.ascontiguousarray(surface[:, r0 - a0 : r0 - a0 + h])
    for i in _BANDS_10M:
        blurred = ndimage.gaussian_filter(surface[i], _PSF_SIGMA_PX, mode="nearest", truncate=3.0)
        refl[i] = blurred[r0 - a0 : r0 - a0 + h]
    del surface
    refl *= 1.0 + 0.025 * land.maps["illum"][r0:r1]
    return refl


def add_sensor_noise(config: RegionConfig, refl: FloatMap, strip: int) -> None:
    """Sensor and within-pixel noise, in place: 1.2 % of the signal plus 0.0015 reflectance."""
    rng = rng_for(config, "noise", strip)
    sd = np.sqrt((0.012 * refl) ** 2 + np.float32(0.0015**2))
    refl += sd * rng.standard_normal(refl.shape, dtype="f4")


def resample_20m_bands(refl: FloatMap) -> None:
    """20 m bands, in place: seen at 20 m and resampled (nearest) onto the 10 m grid."""
    for i in _BANDS_20M:
        refl[i] = np.repeat(np.repeat(block_mean(refl[i], 2), 2, axis=0), 2, axis=1)
