"""Surface reflectance: end-member spectra, their mixing weights, the sensor's blur and noise.

Reflectances are linear mixtures of end-member spectra (a :class:`Palette`), weighted by the
cover fractions of the landscape and the farms, with per-field and per-farm variation, spatially
correlated and per-pixel noise, the instrument's blur (:class:`Psf`) and the 20 m bands seen at
20 m. Without a preset the palette is the fixed :data:`SPECTRA` and the blur the fixed
:data:`ORIGINAL_PSF`; a preset region draws each of its end-members from the preset's measured
or published range (:mod:`~data_prep.synthetic.presets`) and its blur (:func:`psf_for`), once
per scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from data_prep.synthetic.config import RegionConfig
from data_prep.synthetic.farms import PANEL_MATERIALS, Farm
from data_prep.synthetic.fields import FloatMap, block_mean, rng_for
from data_prep.synthetic.landscape import Land
from data_prep.synthetic.presets import PRESET_ENDMEMBERS
from solarmap.bands import BANDS, NATIVE_RESOLUTION_M

__all__ = [
    "ENDMEMBERS",
    "ENDMEMBER_INDEX",
    "ENDMEMBER_SPECTRA",
    "ORIGINAL_PALETTE",
    "ORIGINAL_PSF",
    "SPECTRA",
    "FarmMix",
    "Palette",
    "Psf",
    "add_sensor_noise",
    "endmember_weights",
    "farm_mix",
    "palette_for",
    "psf_for",
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


@dataclass(frozen=True)
class Palette:
    """The end-members of one region: names and spectra ``[10 bands, K]``."""

    names: tuple[str, ...]
    spectra: NDArray[np.float32]

    @property
    def index(self) -> dict[str, int]:
        """Position of each end-member in :attr:`names`."""
        return {name: i for i, name in enumerate(self.names)}


#: The palette of a region without a preset: :data:`SPECTRA`.
ORIGINAL_PALETTE: Final = Palette(ENDMEMBERS, ENDMEMBER_SPECTRA)
#: How far each band may stray from the end-member's common position in its range.
_BAND_JITTER: Final = 0.15


def palette_for(config: RegionConfig) -> Palette:
    """The end-members of a region: :data:`ORIGINAL_PALETTE` without a preset; with one,
    each end-member drawn from the preset's range once per scene (one position in the range
    for all bands, so the shape of the spectrum holds, each band jittered a little)."""
    spec = config.preset_spec
    if spec is None:
        return ORIGINAL_PALETTE
    rng = rng_for(config, "spectra")
    cols = []
    for name in PRESET_ENDMEMBERS:
        lo, hi = (np.asarray(v, np.float64) for v in spec.spectra[name])
        t = np.clip(rng.uniform() + _BAND_JITTER * rng.uniform(-1.0, 1.0, len(BANDS)), 0.0, 1.0)
        cols.append(lo + t * (hi - lo))
    return Palette(PRESET_ENDMEMBERS, np.array(cols, dtype="f4").T)


@dataclass(frozen=True)
class FarmMix:
    """What every farm is made of: shares ``[n_farms + 1, M]`` of ``M`` materials (end-member
    names), indexed by farm index + 1 (row 0, outside farms, is zero). Panel materials are
    shares of the panel cover, the others of the ground between the rows."""

    names: tuple[str, ...]
    on_panel: tuple[bool, ...]
    shares: NDArray[np.float32]


@dataclass(frozen=True)
class Psf:
    """The instrument's point spread function: Gaussian sigmas, each in its bands' own pixels.

    Attributes:
        sigma_10m: Sigma of the 10 m bands (10 m pixels).
        sigma_20m: Sigma of the 20 m bands (20 m pixels); ``None``: no blur beyond the
            average over their 20 m pixels.
    """

    sigma_10m: float
    sigma_20m: float | None = None


_PSF_SIGMA_PX: Final = 0.45
#: The blur of a region without a preset: sigma 0.45 px on the 10 m bands (with the pixel's
#: own aperture an MTF of ~0.2 at Nyquist), none on the 20 m bands beyond their 20 m pixels.
ORIGINAL_PSF: Final = Psf(_PSF_SIGMA_PX)
#: Range of the per-scene sigma of a preset region, the same in every band group's own pixels.
#: The MSI's MTF at Nyquist, about 0.15-0.3, is a Gaussian of sigma 0.39-0.54 px times the
#: pixel's own aperture (2/pi at Nyquist); the range reaches 0.7 px because the edges of the real
#: chips are softer still (misregistration between image and OSM, tracing error) and this is
#: the generator's only blur. Measured across plant outlines (the signed distance of each pixel
#: centre to the OSM outline; the contrast B08 - 2.5 B02 scaled from the plant's inside to the
#: land beyond 2.5 px; an error function fitted): the 25 real Austrian chips of ground-mounted
#: plants give an edge sigma of 0.77 px pooled and 0.51 px per plant (median) in the 10 m bands,
#: 1.16 px pooled in the 20 m bands (B8A - B11); the central-europe preset gave 0.45, 0.29 and
#: 0.81 px with the fixed 0.45 px (and no fence strip), and gives 0.58, 0.43 and 1.25 px with
#: this range (six scenes of 512 px, sigmas 0.47-0.69). The real chips' 20 m bands are 2 x 2
#: blocks on the 10 m grid (nearest), as :func:`resample_20m_bands` makes them.
_PRESET_PSF_SIGMA_PX: Final = (0.45, 0.7)
#: Rows beyond a strip needed by the point spread function (3 sigma), at least.
_PSF_HALO_ROWS: Final = 2
_PSF_TRUNCATE: Final = 3.0
_BANDS_20M: Final = tuple(i for i, b in enumerate(BANDS) if NATIVE_RESOLUTION_M[b] == 20)
_BANDS_10M: Final = tuple(i for i, b in enumerate(BANDS) if NATIVE_RESOLUTION_M[b] == 10)


def psf_for(config: RegionConfig) -> Psf:
    """The blur of a region: :data:`ORIGINAL_PSF` without a preset; with one, a sigma drawn
    once per scene from the preset range, for the 10 m bands in 10 m pixels and for the 20 m
    bands in 20 m pixels."""
    if config.preset_spec is None:
        return ORIGINAL_PSF
    sigma = float(rng_for(config, "spectra", 1).uniform(*_PRESET_PSF_SIGMA_PX))
    return Psf(sigma, sigma)


def _halo_rows(psf: Psf) -> int:
    """Rows beyond a strip that ``psf`` reaches: its widest kernel's radius in 10 m pixels."""
    widest = max(psf.sigma_10m, 2.0 * psf.sigma_20m if psf.sigma_20m is not None else 0.0)
    return max(_PSF_HALO_ROWS, int(_PSF_TRUNCATE * widest + 0.5))


#: End-member weights of one layer, from the cover maps of a strip.
_Parts = Callable[[dict[str, FloatMap]], dict[str, FloatMap]]


def farm_mix(farms: list[Farm]) -> FarmMix:
    """What every farm is made of (:attr:`~data_prep.synthetic.farms.Farm.materials`), as one
    table for the whole region."""
    names: list[str] = []
    for f in farms:
        names.extend(n for n in f.materials if n not in names)
    shares = np.zeros((len(farms) + 1, len(names)), "f4")
    for f in farms:
        for j, name in enumerate(names):
            shares[f.index + 1, j] = f.materials.get(name, 0.0)
    on_panel = tuple(n in PANEL_MATERIALS for n in names)
    return FarmMix(tuple(names), on_panel, shares)


def endmember_weights(
    land: Land, mix: FarmMix, rows: slice, palette: Palette = ORIGINAL_PALETTE
) -> NDArray[np.float32]:
    """End-member weights ``[K, h, W]`` of a strip of rows, ``K`` the palette's end-members.

    Layers are composited in order (land, forest, rock, flooded paddies, water, settlement,
    look-alikes, tracks, roads, snow, farms, pads), each covering a fraction of the pixel; the
    layers of presets only are skipped where the region has none. Walking the layers from the
    top down with the running share ``keep`` that is still visible costs a few operations per
    layer instead of K.
    """
    maps = {k: v[rows] for k, v in land.maps.items()}
    farm_index = land.farm_index[rows]
    farm_layer = "fence" if "fence" in maps else "foot"  # preset farms: the fenced ground
    index = palette.index
    weights = np.zeros((len(palette.names), *maps["green"].shape), "f4")
    # Each layer: the map of its cover, and the end-members it is made of (made only when the
    # layer covers something in the strip).
    layers: list[tuple[str, _Parts]] = [
        ("forest", lambda m: {"forest": m["forest"]}),
        ("rock", lambda m: {"rock": m["rock"]}),
        ("wet", lambda m: {"turbid_water": m["wet"]}),
        ("water", _water_parts),
        ("settle", _settlement_parts),
        *((layer, _single(layer, _LOOKALIKE_ENDMEMBER[layer])) for layer in _LOOKALIKE_ORDER),
        ("track", lambda m: {"gravel": m["track"]}),
        ("asphalt", lambda m: {"asphalt": m["asphalt"]}),
        ("snow", lambda m: {"snow": m["snow"]}),
        (farm_layer, lambda m: _farm_parts(m, farm_index, mix, cover=farm_layer)),
        ("pad", lambda m: {"pad": m["pad"]}),
    ]
    keep = np.ones_like(maps["green"])
    for key, parts in reversed(layers):
        cover = maps.get(key)
        if cover is None or not cover.any():
            continue
        for name, w in parts(maps).items():
            weights[index[name]] += keep * w
        keep *= 1.0 - cover
    # The land underneath: vegetation, dry grass and three soils.
    g, d = maps["green"], maps["dry"]
    soil = np.clip(1.0 - g - d, 0.0, 1.0) * keep
    weights[index["vegetation"]] += g * keep
    weights[index["dry_grass"]] += d * keep
    weights[index["red_soil"]] += soil * maps["red"]
    weights[index["dark_soil"]] += soil * maps["dark"]
    weights[index["bare_soil"]] += soil * (1.0 - maps["red"] - maps["dark"])
    return weights


#: End-member of each look-alike layer (:data:`~data_prep.synthetic.landscape.LOOKALIKE_LAYERS`),
#: and the layers from the bottom up.
_LOOKALIKE_ENDMEMBER: Final = {
    "graded": "graded_soil",
    "greenhouse": "greenhouse",
    "dark_roof": "dark_roof",
    "industrial_roof": "industrial_roof",
}
_LOOKALIKE_ORDER: Final = tuple(_LOOKALIKE_ENDMEMBER)


def _single(layer: str, endmember: str) -> _Parts:
    """A layer made of one end-member."""
    return lambda m: {endmember: m[layer]}


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
    maps: dict[str, FloatMap], farm_index: NDArray[np.int32], mix: FarmMix, *, cover: str
) -> dict[str, FloatMap]:
    """Panels, farm roads (gravel) and the ground between the rows, mixed per farm, in the
    farm layer ``cover`` (``foot``, or ``fence`` for preset farms: the fence strip is ground
    too)."""
    ff = maps[cover]
    idx = farm_index + 1
    fp = np.minimum(maps["panel"], ff)
    fr = np.minimum(maps["froad"], ff - fp)
    ground = np.clip(ff - fp - fr, 0.0, 1.0)
    parts = {"gravel": fr}
    for j, (name, on_panel) in enumerate(zip(mix.names, mix.on_panel, strict=True)):
        w = (fp if on_panel else ground) * mix.shares[idx, j]
        parts[name] = parts[name] + w if name in parts else w
    return parts


def surface_reflectance(
    land: Land,
    mix: FarmMix,
    r0: int,
    r1: int,
    palette: Palette = ORIGINAL_PALETTE,
    *,
    psf: Psf = ORIGINAL_PSF,
) -> NDArray[np.float32]:
    """Surface reflectance ``[10, h, W]`` of rows ``r0:r1`` as the instrument sees it.

    The instrument's point spread function ``psf``: a Gaussian on the 10 m bands and, when it
    has one, on the 20 m bands (their sigma in 20 m pixels, applied on the 10 m grid before
    :func:`resample_20m_bands` averages them over 2 x 2 pixels), with a few halo rows so
    strips join seamlessly. It also damps the moire between panel rows and the 10 m grid.
    """
    H, W = land.band.shape
    h = r1 - r0
    halo = _halo_rows(psf)
    a0, a1 = max(0, r0 - halo), min(H, r1 + halo)
    wts = endmember_weights(land, mix, slice(a0, a1), palette)
    k = len(palette.names)
    surface = (palette.spectra @ wts.reshape(k, -1)).reshape(-1, a1 - a0, W)
    del wts
    refl = np.ascontiguousarray(surface[:, r0 - a0 : r0 - a0 + h])
    blurs = [(i, psf.sigma_10m) for i in _BANDS_10M]
    if psf.sigma_20m is not None:
        blurs += [(i, 2.0 * psf.sigma_20m) for i in _BANDS_20M]
    for i, sigma in blurs:
        blurred = ndimage.gaussian_filter(surface[i], sigma, mode="nearest", truncate=_PSF_TRUNCATE)
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
