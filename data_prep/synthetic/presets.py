"""Climate and landscape presets: what a synthetic region looks like, region by region.

A :class:`Preset` bundles everything that makes one kind of region: where it is (CRS, origin,
date), the land-cover mix (:class:`LandMix`), the range of every end-member spectrum, how green
the vegetation is in each month, the solar plants (:class:`PanelMix`: panel types, tilt and
row spacing, the ground between the rows, plant sizes, the fence strip OSM maps around them,
access roads, rooftop plants), the haze and illumination of a scene
(:class:`SkyMix`), partly built plants and the non-solar look-alikes around them
(:class:`LookAlikeMix`). :data:`PRESETS` holds them by name.

This module is plain data and depends on nothing else in the generator.

Where the spectra come from (reflectance 0-1, bands B02 B03 B04 B05 B06 B07 B08 B8A B11 B12):

- ``AT_*``: measured here on the real Sentinel-2 L2A chips over 26 Austrian solar plants in
  ``shared/realdata/austria-s2-2022`` (one clear date near 1 July 2022, ``mask_<id>.tif`` for
  solar, 5,620 solar and 12,001 background pixels). Per chip, the median of each class; a range
  is the 25th to 75th percentile of those 26 per-chip medians (the scene-to-scene spread).
  Background classes split by NDVI (B08, B04): vegetated > 0.6, mixed 0.3-0.6, bare < 0.3.
- ``IN_*``: measured medians of Sentinel-2 L2A chips over Indian solar plants (panels and the
  background around them).
- Panels: unmixed from both: a solar pixel is ``c * panel + (1 - c) * ground``, with the
  ground the chips' own background and ``c`` the panel cover of a typical plant (Austria:
  ground-cover ratio 0.45 at 25 degrees tilt, c = 0.41; India: 0.6 at 15 degrees, c = 0.58).
  Austria gives 0.093 0.089 0.089 0.100 0.110 0.101 0.083 0.125 0.219 0.136, India 0.097
  0.086 0.084 0.090 0.087 0.087 0.072 0.092 0.235 0.135: the same to within 0.01 in the
  visible, B05 and B12 and 0.035 elsewhere. About 0.09 and flat from B02 to B8A, with a SWIR
  peak (B11 0.22-0.24, B12 0.135) from the frames, glass and backsheet.
- Spectra no chip here covers (snow, water, sand, rock, forest, plastic, roofs) are typical
  published Sentinel-2 L2A surface reflectances of those materials; each says so.

Measured relations every preset keeps (Austria, per-chip medians; India in brackets): solar
pixels are bluer than their background (B02 1.47x (1.34x), B03 1.01x (1.02x); B02/B03 0.80
against 0.54 (0.98 against 0.75)), darker in the red edge and NIR (B08 0.75x (0.59x)), and
relatively bright in SWIR (B11 1.05x (1.08x); B11/B08 0.82 against 0.56 (1.68 against 0.93)).
Absolute levels move between the two regions by more than the solar/background difference
(background B08 0.35 against 0.22); the ratios hold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

__all__ = [
    "AT_PLANT_HA_ALPHA",
    "AT_PLANT_HA_MEDIAN",
    "PRESETS",
    "PRESET_ENDMEMBERS",
    "PRESET_NAMES",
    "LandMix",
    "LookAlikeMix",
    "PanelMix",
    "Preset",
    "PresetName",
    "SkyMix",
    "SpectrumRange",
]

#: Reflectance in the ten bands, in :data:`~solarmap.bands.BANDS` order.
Band10 = tuple[float, float, float, float, float, float, float, float, float, float]
#: The lowest and highest spectrum an end-member takes in a scene (each scene draws one
#: between them).
SpectrumRange = tuple[Band10, Band10]

PresetName = Literal["deccan", "central-europe", "alpine", "desert", "rice-paddy"]
#: The preset names, in the order the help lists them.
PRESET_NAMES: Final[tuple[str, ...]] = get_args(PresetName)

#: End-members of a preset region (the spectra every preset gives a range for).
PRESET_ENDMEMBERS: Final[tuple[str, ...]] = (
    "vegetation", "dry_grass", "bare_soil", "red_soil", "dark_soil", "water", "turbid_water",
    "asphalt", "gravel", "settlement", "bright_roof", "metal_roof", "snow", "grass", "pad",
    "forest", "rock", "panel_mono", "panel_poly", "panel_thin", "greenhouse", "dark_roof",
    "industrial_roof", "graded_soil",
)  # fmt: skip
#: The panel end-members among them.
PANEL_TYPES: Final[tuple[str, ...]] = ("panel_mono", "panel_poly", "panel_thin")


@dataclass(frozen=True)
class LandMix:
    """The land-cover mix of a region. The defaults are the generator's original landscape
    (semi-arid southern India, dry season).

    Attributes:
        crop_share: Mean share of parcels under a crop (the rest sparse or bare).
        crop_share_range: Lowest and highest local share of cropped parcels.
        crop_green: Green share of a cropped parcel: lowest, and the span above it.
        sparse_green: Green share of a sparse parcel: lowest, and the span above it.
        sparse_share: Share of parcels with sparse cover, beyond the cropped ones.
        parcel_height_px: Range of field-strip heights (10 m pixels).
        parcel_width_px: Range of parcel widths along a strip (pixels).
        parcel_turn: Largest rotation of the parcel grid (radians).
        red_soil: Mean share of red soil in bare ground.
        scrub_cut: Threshold of the scrub field (higher: less scrub).
        water_share: Range of the share of the region under tanks and lakes.
        km2_per_village: Region area per village.
        forest_share: Share of the region under forest (0: none).
        rock_share: Share under bare rock and scree (0: none).
        snow_share: Share under snow, on the highest ground (0: none).
        wet_share: Share of parcels flooded (rice paddies; 0: none).
        tree_in_village: Largest tree share in a village pixel.
    """

    crop_share: float = 0.45
    crop_share_range: tuple[float, float] = (0.2, 0.75)
    crop_green: tuple[float, float] = (0.55, 0.45)
    sparse_green: tuple[float, float] = (0.2, 0.3)
    sparse_share: float = 0.2
    parcel_height_px: tuple[float, float] = (15.0, 45.0)
    parcel_width_px: tuple[float, float] = (12.0, 60.0)
    parcel_turn: float = 0.35
    red_soil: float = 0.5
    scrub_cut: float = 0.8
    water_share: tuple[float, float] = (0.01, 0.03)
    km2_per_village: float = 12.0
    forest_share: float = 0.0
    rock_share: float = 0.0
    snow_share: float = 0.0
    wet_share: float = 0.0
    tree_in_village: float = 0.35


@dataclass(frozen=True)
class PanelMix:
    """The solar plants of a region.

    Attributes:
        types: Weight of each panel type (:data:`PANEL_TYPES`): mono- and polycrystalline
            silicon, thin film. A plant has one type (a second in a third of plants, built in
            phases).
        tilt_deg: Range of the module tilt (degrees from horizontal); higher latitudes tilt
            more.
        gcr: Range of the ground-cover ratio: module slant length over row pitch. The share
            of the ground under panels seen from above is ``gcr * cos(tilt)``.
        module_m: Range of the slant length of a row of modules (metres).
        ground: Weight of each cover of the ground between the rows (``bare_soil``,
            ``dark_soil``, ``gravel``, ``grass``, ``dry_grass``).
        aligned_rows: Share of plants whose rows follow the plant's outline rather than run
            east-west.
        farm_ha: Range of the panel footprints of ground-mounted plants (hectares; the
            largest also at most 6 % of the region).
        farm_ha_alpha: Their size distribution within ``farm_ha``: a power law, the share of
            plants larger than ``a`` falling as ``a ** -farm_ha_alpha`` (0: log-uniform).
        fence_m: Range of the strip between the panel footprint and the fence (metres, one
            draw per plant): OSM maps the fence, so the plant's OSM outline is its footprint
            grown by this much.
        road_share: Share of ground-mounted plants with internal access roads: of plants
            under 5 ha, and of larger ones (at 10 m many small plants show none).
        rooftop_share: Share of the plants that are arrays on large industrial or
            agricultural roofs.
        rooftop_ha: Range of the arrays of rooftop plants (hectares, log-uniform).
    """

    types: Mapping[str, float]
    tilt_deg: tuple[float, float]
    gcr: tuple[float, float]
    module_m: tuple[float, float]
    ground: Mapping[str, float]
    aligned_rows: float
    farm_ha: tuple[float, float]
    farm_ha_alpha: float
    fence_m: tuple[float, float]
    road_share: tuple[float, float]
    rooftop_share: float
    rooftop_ha: tuple[float, float]


@dataclass(frozen=True)
class SkyMix:
    """Haze and illumination of a scene: ``observed = gain * surface + haze``.

    The measured spectra are what the correction gave, residual haze and all, so the offset
    is what one scene leaves beyond the typical: positive under haze the correction missed,
    negative where it took too much (L2A often over-corrects blue).

    Attributes:
        gain: Range of the per-scene gain (sun angle, residual BRDF and terrain effects).
        haze_b02: Range of the haze (path-reflectance) offset in B02 that the atmospheric
            correction left.
        haze_exponent: Range of the exponent ``a`` of the offset's fall with wavelength,
            ``(wavelength / 492 nm) ** -a`` (1 for coarse dust, 2 and more for fine haze).
    """

    gain: tuple[float, float]
    haze_b02: tuple[float, float]
    haze_exponent: tuple[float, float]


@dataclass(frozen=True)
class LookAlikeMix:
    """Plants that are partly built, and things that are not solar but look like it.

    Attributes:
        partial_share: Share of plants partly built: some blocks panels, the rest bare
            graded soil (only the built part is solar).
        near_farm_share: Share of plants with a look-alike next to them.
        per_km2: Look-alikes per km^2 elsewhere, by kind (``greenhouse``: plastic-covered
            fields and tunnels; ``dark_roof``; ``industrial_roof``: metallic or bright;
            ``graded_land``: bare graded ground).
    """

    partial_share: float
    near_farm_share: float
    per_km2: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """One kind of region.

    Attributes:
        name: The preset's name (a :data:`PresetName`).
        summary: One line for help texts and tables.
        epsg: The projected CRS (UTM zone of the region).
        origin: Upper-left corner (easting, northing) of seed 0.
        walk_km: How far seeds walk east, then north, before they repeat (km).
        date: Default acquisition date (ISO).
        land: The land-cover mix.
        spectra: Range of every end-member in :data:`PRESET_ENDMEMBERS`.
        greenness: How green the vegetation is in each month (January first, 0-1, at
            mid-month; dates between are interpolated).
        panels: The solar plants.
        sky: Haze and illumination.
        lookalikes: Partly built plants and non-solar look-alikes.
    """

    name: str
    summary: str
    epsg: int
    origin: tuple[float, float]
    walk_km: tuple[float, float]
    date: str
    land: LandMix
    spectra: Mapping[str, SpectrumRange]
    greenness: tuple[float, ...]
    panels: PanelMix
    sky: SkyMix
    lookalikes: LookAlikeMix

    def greenness_on(self, date: str) -> float:
        """Greenness (0-1) of the vegetation on an ISO ``date``: the monthly values,
        interpolated linearly between mid-months.

        Raises:
            ValueError: if ``date`` is not an ISO date.
        """
        d = dt.date.fromisoformat(date)
        pos = (d.timetuple().tm_yday - 15.0) / (365.0 / 12.0)  # 0 at mid-January
        i = int(pos // 1) % 12
        t = pos - pos // 1
        return (1.0 - t) * self.greenness[i] + t * self.greenness[(i + 1) % 12]


# --------------------------------------------------------------------------- spectra


def _around(spectrum: Band10, rel: float) -> SpectrumRange:
    """The range ``spectrum * (1 -/+ rel)``."""
    lo = tuple(round(v * (1.0 - rel), 4) for v in spectrum)
    hi = tuple(round(v * (1.0 + rel), 4) for v in spectrum)
    return lo, hi  # type: ignore[return-value]


def _scaled(r: SpectrumRange, gain: Band10) -> SpectrumRange:
    """A range with every band multiplied by ``gain``."""
    lo = tuple(round(v * g, 4) for v, g in zip(r[0], gain, strict=True))
    hi = tuple(round(v * g, 4) for v, g in zip(r[1], gain, strict=True))
    return lo, hi  # type: ignore[return-value]


# Measured, Austria (see the module docstring): 25th and 75th percentile of per-chip medians.
#: Vegetated background (NDVI > 0.6): crops and meadows in July.
AT_VEGETATION: Final[SpectrumRange] = (
    (0.029, 0.061, 0.032, 0.098, 0.275, 0.338, 0.362, 0.363, 0.181, 0.090),
    (0.037, 0.067, 0.042, 0.110, 0.303, 0.381, 0.401, 0.405, 0.210, 0.108),
)
#: Mixed background (NDVI 0.3-0.6): ripening cereals, stubble, dry grass.
AT_MIXED: Final[SpectrumRange] = (
    (0.066, 0.091, 0.089, 0.130, 0.228, 0.260, 0.259, 0.280, 0.209, 0.136),
    (0.076, 0.107, 0.109, 0.151, 0.264, 0.297, 0.302, 0.318, 0.239, 0.161),
)
#: Bare background (NDVI < 0.3): bare fields, yards, graded ground.
AT_BARE: Final[SpectrumRange] = (
    (0.094, 0.126, 0.136, 0.163, 0.207, 0.221, 0.204, 0.230, 0.222, 0.158),
    (0.134, 0.164, 0.181, 0.193, 0.257, 0.274, 0.282, 0.305, 0.270, 0.200),
)
#: Solar pixels, for checking the mixture (median of per-chip medians; pooled over all solar
#: pixels the median is 0.053 0.076 0.056 0.112 0.248 0.290 0.293 0.312 0.211 0.120).
AT_SOLAR: Final[Band10] = (0.057, 0.074, 0.057, 0.104, 0.220, 0.251, 0.255, 0.273, 0.204, 0.113)
#: Background pixels (median of per-chip medians; pooled 0.039 0.069 0.048 0.113 0.272 0.326
#: 0.336 0.350 0.202 0.110).
AT_BACKGROUND: Final[Band10] = (
    0.036, 0.067, 0.043, 0.111, 0.277, 0.334, 0.352, 0.362, 0.196, 0.103,
)  # fmt: skip

# Measured, India: medians of chips over solar plants.
IN_SOLAR: Final[Band10] = (0.083, 0.085, 0.085, 0.103, 0.126, 0.135, 0.133, 0.146, 0.224, 0.140)
IN_BACKGROUND: Final[Band10] = (
    0.062, 0.083, 0.087, 0.122, 0.185, 0.207, 0.224, 0.227, 0.208, 0.148,
)  # fmt: skip

# Measured, Austria: plant sizes, from the OSM solar polygons of Austria
# (``osm_solar_polygons_austria.geojson`` beside the chips: 2,130 polygons, areas in EPSG:3035).
# 2,029 are under 0.1 ha (rooftop arrays and single generators; of those of 0.01-0.1 ha, 88 %
# are near-rectangular: area over the minimum rotated rectangle above 0.95); 58 are of 0.1 to
# 0.5 ha (median 0.22 ha, 53 % near-rectangular: mostly arrays on large roofs); 43 are of 0.5 ha
# or more (9 % near-rectangular: the ground-mounted plants): median 1.15 ha, quartiles 0.80 and
# 2.48 ha, 10th to 90th percentile 0.60 to 6.3 ha, largest 13.0 ha. The 26 chips frame 26 of
# these 43 (median 1.16 ha). Their sizes follow a power law: the share larger than ``a`` falls as
# ``a ** -alpha``, alpha 0.93 +- 0.14 by maximum likelihood above 0.5 ha (0.83 above 0.3 ha,
# 1.06 above 1 ha); alpha 0.8 on 0.5-15 ha gives quartiles 0.70, 1.10 and 2.26 ha and a 90th
# percentile of 5.0 ha.
#: Median OSM outline of the ground-mounted Austrian plants (hectares; see above).
AT_PLANT_HA_MEDIAN: Final = 1.15
#: Power-law exponent of their sizes (see above).
AT_PLANT_HA_ALPHA: Final = 0.9

#: Per-band factor that brings the generator's original southern-India end-members to the
#: measured Indian background: first ``IN_BACKGROUND`` over the median background pixel (land
#: cover vegetation or bare soil, clear sky) of the original generator (seeds 1 and 3: 0.056
#: 0.085 0.098 0.142 0.227 0.264 0.287 0.306 0.294 0.204), then adjusted once so that the
#: deccan preset's own background median (seed 1, 512 px, its season and haze included: 0.061
#: 0.082 0.087 0.121 0.187 0.209 0.227 0.227 0.208 0.146) meets ``IN_BACKGROUND``; its solar
#: median is then 0.087 0.092 0.094 0.112 0.138 0.147 0.147 0.159 0.226 0.147 (``IN_SOLAR``:
#: 0.083 0.085 0.085 0.103 0.126 0.135 0.133 0.146 0.224 0.140).
_DECCAN_GAIN: Final[Band10] = (0.98, 0.92, 0.77, 0.80, 0.86, 0.86, 0.86, 0.80, 0.69, 0.64)

# Panels (see the module docstring): the unmixed end-member (about 0.095 0.088 0.086 0.095
# 0.100 0.095 0.085 0.105 0.230 0.135) is the mean of the three types; polycrystalline cells are
# bluer and a little brighter, thin film (CdTe) darker and flatter with less SWIR.
_PANELS: Final[dict[str, SpectrumRange]] = {
    "panel_mono": (
        (0.080, 0.076, 0.074, 0.080, 0.085, 0.082, 0.074, 0.090, 0.200, 0.118),
        (0.095, 0.090, 0.088, 0.095, 0.100, 0.097, 0.088, 0.106, 0.235, 0.140),
    ),
    "panel_poly": (
        (0.096, 0.087, 0.080, 0.086, 0.090, 0.087, 0.079, 0.095, 0.210, 0.124),
        (0.114, 0.101, 0.093, 0.100, 0.105, 0.102, 0.093, 0.111, 0.245, 0.146),
    ),
    "panel_thin": (
        (0.066, 0.064, 0.063, 0.068, 0.072, 0.072, 0.067, 0.080, 0.165, 0.098),
        (0.080, 0.077, 0.076, 0.082, 0.087, 0.087, 0.081, 0.096, 0.200, 0.118),
    ),
}

#: Materials whose spectra are the same everywhere: typical published Sentinel-2 L2A surface
#: reflectances, with a spread of 10-20 % between scenes.
_COMMON: Final[dict[str, SpectrumRange]] = {
    **_PANELS,
    # Clear and turbid water: low everywhere, falling from blue to SWIR.
    "water": _around((0.06, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.01, 0.005, 0.003), 0.2),
    "turbid_water": _around((0.08, 0.10, 0.09, 0.07, 0.04, 0.03, 0.025, 0.02, 0.008, 0.004), 0.2),
    # Asphalt and gravel roads.
    "asphalt": _around((0.09, 0.10, 0.11, 0.12, 0.13, 0.13, 0.14, 0.14, 0.16, 0.15), 0.15),
    "gravel": _around((0.14, 0.17, 0.20, 0.22, 0.24, 0.26, 0.27, 0.28, 0.32, 0.27), 0.12),
    # Fresh snow: very bright in the visible and NIR, dark in SWIR (ice absorbs).
    "snow": (
        (0.78, 0.78, 0.76, 0.73, 0.71, 0.69, 0.67, 0.65, 0.07, 0.05),
        (0.92, 0.92, 0.90, 0.87, 0.85, 0.83, 0.81, 0.79, 0.14, 0.11),
    ),
    # Roofs: bright (concrete, light tiles), blue-painted metal; a concrete apron (spurious).
    "bright_roof": _around((0.22, 0.24, 0.26, 0.27, 0.28, 0.29, 0.30, 0.30, 0.32, 0.28), 0.12),
    "metal_roof": _around((0.13, 0.12, 0.09, 0.10, 0.11, 0.11, 0.11, 0.11, 0.12, 0.10), 0.12),
    "pad": _around((0.30, 0.32, 0.34, 0.35, 0.36, 0.36, 0.37, 0.37, 0.38, 0.35), 0.08),
    # Look-alikes. Plastic greenhouses and tunnels (white and translucent polyethylene over
    # crops): bright and nearly flat in the visible, a little bluish, NIR from the crop under
    # the film, SWIR lower.
    "greenhouse": (
        (0.17, 0.18, 0.18, 0.20, 0.23, 0.25, 0.26, 0.27, 0.22, 0.16),
        (0.28, 0.28, 0.27, 0.29, 0.32, 0.33, 0.34, 0.35, 0.29, 0.22),
    ),
    # Dark flat roofs (bitumen, dark sheets): dark and rising slowly to SWIR, without the
    # panels' blue and SWIR peaks.
    "dark_roof": (
        (0.045, 0.050, 0.055, 0.060, 0.066, 0.070, 0.075, 0.080, 0.095, 0.085),
        (0.075, 0.080, 0.085, 0.090, 0.096, 0.100, 0.105, 0.110, 0.140, 0.120),
    ),
    # Galvanised steel and white membranes on industrial halls: bright, flat, lower in SWIR.
    "industrial_roof": (
        (0.22, 0.23, 0.24, 0.25, 0.26, 0.27, 0.27, 0.28, 0.25, 0.20),
        (0.40, 0.41, 0.42, 0.42, 0.43, 0.43, 0.43, 0.44, 0.38, 0.30),
    ),
    # Bare rock and scree (limestone, gneiss): moderately bright, flat, high in SWIR.
    "rock": _around((0.13, 0.16, 0.18, 0.20, 0.22, 0.23, 0.24, 0.25, 0.30, 0.25), 0.15),
    # Temperate forest in summer (mixed, conifer-heavy): darker than crops in every band.
    "forest": _around((0.020, 0.040, 0.022, 0.068, 0.190, 0.235, 0.255, 0.265, 0.130, 0.060), 0.12),
    # Dark wet soil.
    "dark_soil": _around((0.05, 0.07, 0.09, 0.11, 0.13, 0.15, 0.16, 0.17, 0.22, 0.18), 0.12),
}

# The generator's original end-members (southern India, published spectra), for deccan.
_ORIGINAL: Final[dict[str, Band10]] = {
    "vegetation": (0.03, 0.06, 0.04, 0.10, 0.25, 0.32, 0.35, 0.37, 0.22, 0.11),
    "dry_grass": (0.06, 0.085, 0.10, 0.14, 0.20, 0.23, 0.25, 0.27, 0.33, 0.23),
    "bare_soil": (0.10, 0.14, 0.18, 0.21, 0.24, 0.26, 0.28, 0.30, 0.36, 0.30),
    "red_soil": (0.07, 0.10, 0.16, 0.20, 0.23, 0.25, 0.27, 0.29, 0.35, 0.29),
    "dark_soil": (0.05, 0.07, 0.09, 0.11, 0.13, 0.15, 0.16, 0.17, 0.22, 0.18),
    "settlement": (0.10, 0.11, 0.13, 0.15, 0.18, 0.20, 0.21, 0.22, 0.25, 0.21),
    "grass": (0.035, 0.07, 0.045, 0.12, 0.30, 0.38, 0.42, 0.44, 0.26, 0.13),
}


def _deccan(name: str, rel: float = 0.07) -> SpectrumRange:
    return _scaled(_around(_ORIGINAL[name], rel), _DECCAN_GAIN)


_DECCAN_SPECTRA: Final[dict[str, SpectrumRange]] = {
    **_COMMON,
    **{n: _deccan(n) for n in _ORIGINAL},
    # Graded plant ground: the red and bare soils, compacted and dry (10 % brighter).
    "graded_soil": _scaled(_deccan("bare_soil"), (1.1,) * 10),
}

_EUROPE_SPECTRA: Final[dict[str, SpectrumRange]] = {
    **_COMMON,
    "vegetation": AT_VEGETATION,  # crops and meadows (measured)
    "grass": AT_VEGETATION,  # mown grass under the rows (measured: the vegetated background)
    "dry_grass": AT_MIXED,  # ripening cereals, stubble (measured)
    "bare_soil": AT_BARE,  # bare fields (measured)
    # Brown loam, a little redder and darker than the bare background (measured, -10 % in
    # the visible).
    "red_soil": _scaled(AT_BARE, (0.85, 0.88, 0.95, 0.97, 0.97, 0.97, 0.97, 0.97, 1.0, 1.0)),
    # Villages: red tiles, plaster and gardens (the bare background, redder).
    "settlement": _scaled(AT_BARE, (0.9, 0.85, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 1.0, 1.0)),
    "graded_soil": _scaled(AT_BARE, (1.1,) * 10),
}

_ALPINE_SPECTRA: Final[dict[str, SpectrumRange]] = {
    **_EUROPE_SPECTRA,
    # Mountain forest: more conifers, darker than the lowland mix.
    "forest": _around((0.018, 0.035, 0.019, 0.060, 0.170, 0.210, 0.230, 0.240, 0.115, 0.052), 0.12),
}

# Hot desert (Thar, Sahara): published sand and desert-pavement spectra; bright, red-sloped,
# highest in SWIR.
_SAND: Final[SpectrumRange] = (
    (0.12, 0.17, 0.24, 0.28, 0.31, 0.33, 0.34, 0.36, 0.45, 0.40),
    (0.17, 0.23, 0.32, 0.36, 0.39, 0.41, 0.42, 0.44, 0.55, 0.50),
)
_DESERT_SPECTRA: Final[dict[str, SpectrumRange]] = {
    **_COMMON,
    "bare_soil": _SAND,
    # Reddish dune sand.
    "red_soil": (
        (0.10, 0.15, 0.24, 0.29, 0.32, 0.34, 0.35, 0.37, 0.47, 0.42),
        (0.14, 0.20, 0.30, 0.35, 0.38, 0.40, 0.41, 0.43, 0.55, 0.50),
    ),
    # Gravel plain and desert pavement (darker varnished stones).
    "dark_soil": _around((0.08, 0.11, 0.15, 0.18, 0.20, 0.22, 0.23, 0.24, 0.30, 0.27), 0.12),
    # Irrigated crops (the measured Austrian vegetation) and dry grass and scrub (original).
    "vegetation": AT_VEGETATION,
    "grass": AT_VEGETATION,
    "dry_grass": _around(_ORIGINAL["dry_grass"], 0.1),
    "settlement": _around((0.14, 0.17, 0.21, 0.24, 0.26, 0.27, 0.28, 0.29, 0.35, 0.31), 0.12),
    "graded_soil": _scaled(_SAND, (1.05,) * 10),
}

# Humid rice paddies (lower Bengal): lush rice (the measured vegetation, its NIR 10 % lower:
# wet, open canopy), grey alluvial silt, turbid paddy water.
_SILT: Final[SpectrumRange] = _around(
    (0.08, 0.11, 0.13, 0.16, 0.19, 0.21, 0.22, 0.24, 0.28, 0.22), 0.12
)
_PADDY_SPECTRA: Final[dict[str, SpectrumRange]] = {
    **_COMMON,
    "vegetation": _scaled(AT_VEGETATION, (1.0, 1.0, 1.0, 1.0, 0.92, 0.9, 0.9, 0.9, 0.95, 1.0)),
    "grass": AT_VEGETATION,
    "dry_grass": AT_MIXED,
    "bare_soil": _SILT,
    "red_soil": _SILT,
    "settlement": _around(_ORIGINAL["settlement"], 0.1),
    "graded_soil": _scaled(_SILT, (1.1,) * 10),
}


# --------------------------------------------------------------------------- presets


# The fence strip (PanelMix.fence_m): mappers trace a plant's fence on aerial imagery, and the
# fence runs some metres outside the outer panel rows (a service track, the clearance against the
# fence's shade). For the Deccan, the desert and the rice paddies the strip is an estimate from
# OSM practice (wider at large plants: perimeter roads, drainage, fire breaks), not a
# measurement. For central Europe and the Alps it is measured on the Austrian chips, narrower
# than such estimates (3-15 m): across the OSM outline of the 25 ground-mounted plants, the edge
# of the panels' contrast (B08 - 2.5 B02, an error function fitted to it against the signed
# distance of the pixel centres to the outline) lies 0.40 px inside the outline (-0.54 to +0.32
# px with B08, NDVI or B02 alone); the central-europe preset gives 0.45 px inside with a strip of
# 1-6 m, 1.08 px with 3-15 m.


def _per_km2(**kinds: float) -> dict[str, float]:
    """Look-alikes per km^2, by kind."""
    return kinds


#: The presets, by name.
PRESETS: Final[dict[str, Preset]] = {
    "deccan": Preset(
        name="deccan",
        summary="semi-arid Deccan plateau (Karnataka), dry season: fields, red soils, tanks",
        epsg=32643,
        origin=(700000.0, 1560000.0),
        walk_km=(120.0, 1000.0),
        date="2022-03-15",
        land=LandMix(),
        spectra=_DECCAN_SPECTRA,
        # Kharif crops green from the monsoon (Jul-Oct), rabi into February, dry Mar-May.
        greenness=(0.85, 0.8, 0.7, 0.5, 0.45, 0.6, 0.85, 0.95, 1.0, 1.0, 0.95, 0.9),
        panels=PanelMix(
            types={"panel_poly": 0.5, "panel_mono": 0.35, "panel_thin": 0.15},
            tilt_deg=(10.0, 18.0),
            gcr=(0.5, 0.7),
            module_m=(3.8, 4.6),
            ground={"dry_grass": 0.4, "bare_soil": 0.25, "dark_soil": 0.2, "gravel": 0.15},
            aligned_rows=0.3,
            farm_ha=(1.0, 200.0),
            farm_ha_alpha=0.0,
            fence_m=(5.0, 25.0),
            road_share=(0.5, 0.9),
            rooftop_share=0.05,
            rooftop_ha=(0.1, 1.0),
        ),
        sky=SkyMix(gain=(0.94, 1.06), haze_b02=(-0.004, 0.012), haze_exponent=(1.0, 1.6)),
        lookalikes=LookAlikeMix(
            partial_share=0.15,
            near_farm_share=0.3,
            per_km2=_per_km2(greenhouse=0.05, dark_roof=0.3, industrial_roof=0.3, graded_land=0.2),
        ),
    ),
    "central-europe": Preset(
        name="central-europe",
        summary="temperate central Europe (eastern Austria), July: large fields, forest, villages",
        epsg=32633,
        origin=(600000.0, 5370000.0),
        walk_km=(120.0, 60.0),
        date="2022-07-01",
        land=LandMix(
            crop_share=0.7,
            crop_share_range=(0.4, 0.9),
            crop_green=(0.8, 0.2),
            sparse_green=(0.35, 0.35),
            sparse_share=0.25,
            parcel_height_px=(12.0, 40.0),
            parcel_width_px=(20.0, 70.0),
            parcel_turn=0.6,
            red_soil=0.3,
            scrub_cut=1.1,
            water_share=(0.003, 0.012),
            km2_per_village=8.0,
            forest_share=0.18,
            tree_in_village=0.5,
        ),
        spectra=_EUROPE_SPECTRA,
        # Winter bare and brown, green from April, cereals ripening in July, harvest in August.
        greenness=(0.15, 0.2, 0.35, 0.65, 0.95, 1.0, 0.85, 0.6, 0.55, 0.45, 0.3, 0.2),
        panels=PanelMix(
            types={"panel_mono": 0.75, "panel_poly": 0.2, "panel_thin": 0.05},
            tilt_deg=(20.0, 30.0),
            gcr=(0.38, 0.52),
            module_m=(3.4, 4.6),
            # Mostly mown grass: the real chips' per-plant solar medians in B04 lie at 0.043 to
            # 0.076 (10th to 90th percentile), and rows on dry grass show about 0.09, on
            # gravel 0.16, so few plants stand on those.
            ground={"grass": 0.9, "dry_grass": 0.08, "gravel": 0.02},
            aligned_rows=0.45,
            # The measured power law of the Austrian plants, from footprints of 0.45 ha (OSM
            # outlines, with the fence strip, of about 0.55 ha). Eight regions (512 px, 30
            # plants) give OSM outlines of median 1.17 ha, quartiles 0.79 and 2.16 ha, 10th to
            # 90th percentile 0.63 to 4.2 ha (measured: 1.15, 0.80, 2.48, 0.60 to 6.3 ha).
            farm_ha=(0.45, 15.0),
            farm_ha_alpha=AT_PLANT_HA_ALPHA,
            fence_m=(1.0, 6.0),
            road_share=(0.2, 0.7),
            # About a third: the Austrian polygons of 0.1-0.5 ha, mostly roof arrays, outnumber
            # the ground-mounted plants above 0.5 ha (58 against 43).
            rooftop_share=0.35,
            rooftop_ha=(0.1, 0.8),
        ),
        sky=SkyMix(gain=(0.95, 1.05), haze_b02=(-0.006, 0.008), haze_exponent=(1.4, 2.2)),
        lookalikes=LookAlikeMix(
            partial_share=0.1,
            near_farm_share=0.35,
            per_km2=_per_km2(greenhouse=0.3, dark_roof=0.4, industrial_roof=0.5, graded_land=0.15),
        ),
    ),
    "alpine": Preset(
        name="alpine",
        summary="alpine valleys (Salzburg), June: meadows, forest, rock, snow on the peaks",
        epsg=32633,
        origin=(350000.0, 5250000.0),
        walk_km=(80.0, 40.0),
        date="2022-06-15",
        land=LandMix(
            crop_share=0.75,
            crop_share_range=(0.45, 0.95),
            crop_green=(0.85, 0.15),
            sparse_green=(0.4, 0.3),
            sparse_share=0.15,
            parcel_height_px=(8.0, 25.0),
            parcel_width_px=(10.0, 35.0),
            parcel_turn=0.8,
            red_soil=0.2,
            scrub_cut=1.2,
            water_share=(0.004, 0.015),
            km2_per_village=10.0,
            forest_share=0.35,
            rock_share=0.12,
            snow_share=0.1,
            tree_in_village=0.4,
        ),
        spectra=_ALPINE_SPECTRA,
        # Snow until April in the valleys, meadows green May to September.
        greenness=(0.05, 0.05, 0.15, 0.4, 0.8, 1.0, 1.0, 0.9, 0.75, 0.5, 0.2, 0.05),
        panels=PanelMix(
            types={"panel_mono": 0.8, "panel_poly": 0.15, "panel_thin": 0.05},
            tilt_deg=(20.0, 32.0),
            gcr=(0.4, 0.55),
            module_m=(2.2, 4.2),
            ground={"grass": 0.85, "gravel": 0.15},
            aligned_rows=0.6,
            # As central Europe (the same Austrian measurement), smaller in the valleys.
            farm_ha=(0.3, 8.0),
            farm_ha_alpha=AT_PLANT_HA_ALPHA,
            fence_m=(1.0, 6.0),
            road_share=(0.15, 0.6),
            rooftop_share=0.3,
            rooftop_ha=(0.1, 0.6),
        ),
        sky=SkyMix(gain=(0.9, 1.1), haze_b02=(-0.005, 0.006), haze_exponent=(1.6, 2.4)),
        lookalikes=LookAlikeMix(
            partial_share=0.1,
            near_farm_share=0.3,
            per_km2=_per_km2(greenhouse=0.05, dark_roof=0.4, industrial_roof=0.3, graded_land=0.1),
        ),
    ),
    "desert": Preset(
        name="desert",
        summary="hot desert (Thar, western Rajasthan), spring: bright sand, gravel, sparse scrub",
        epsg=32642,
        origin=(740000.0, 3060000.0),
        walk_km=(150.0, 150.0),
        date="2022-04-10",
        land=LandMix(
            crop_share=0.06,
            crop_share_range=(0.0, 0.2),
            sparse_share=0.12,
            parcel_height_px=(20.0, 60.0),
            parcel_width_px=(20.0, 80.0),
            red_soil=0.45,
            scrub_cut=0.9,
            water_share=(0.0005, 0.002),
            km2_per_village=30.0,
            tree_in_village=0.1,
        ),
        spectra=_DESERT_SPECTRA,
        # Brief green after the July-August rains; irrigated winter crops.
        greenness=(0.5, 0.4, 0.25, 0.15, 0.1, 0.1, 0.35, 0.6, 0.5, 0.3, 0.35, 0.45),
        panels=PanelMix(
            types={"panel_poly": 0.4, "panel_mono": 0.35, "panel_thin": 0.25},
            tilt_deg=(18.0, 26.0),
            gcr=(0.5, 0.68),
            module_m=(3.8, 4.6),
            ground={"bare_soil": 0.55, "gravel": 0.45},
            aligned_rows=0.2,
            farm_ha=(2.0, 200.0),
            farm_ha_alpha=0.0,
            fence_m=(5.0, 25.0),
            road_share=(0.6, 0.95),
            rooftop_share=0.03,
            rooftop_ha=(0.1, 1.0),
        ),
        sky=SkyMix(gain=(0.95, 1.07), haze_b02=(0.0, 0.025), haze_exponent=(0.6, 1.2)),
        lookalikes=LookAlikeMix(
            partial_share=0.25,
            near_farm_share=0.3,
            per_km2=_per_km2(
                greenhouse=0.02, dark_roof=0.1, industrial_roof=0.15, graded_land=0.35
            ),
        ),
    ),
    "rice-paddy": Preset(
        name="rice-paddy",
        summary="humid rice paddies (lower Bengal), monsoon: small flooded fields, ponds, groves",
        epsg=32645,
        origin=(590000.0, 2580000.0),
        walk_km=(100.0, 100.0),
        date="2022-08-20",
        land=LandMix(
            crop_share=0.7,
            crop_share_range=(0.4, 0.9),
            crop_green=(0.75, 0.25),
            sparse_green=(0.3, 0.3),
            sparse_share=0.15,
            parcel_height_px=(3.0, 9.0),
            parcel_width_px=(3.0, 12.0),
            parcel_turn=0.5,
            red_soil=0.1,
            scrub_cut=1.0,
            water_share=(0.03, 0.07),
            km2_per_village=3.0,
            wet_share=0.45,
            tree_in_village=0.6,
        ),
        spectra=_PADDY_SPECTRA,
        # Aman rice (Jul-Nov), boro rice (Jan-Apr), fallow in between.
        greenness=(0.6, 0.75, 0.8, 0.55, 0.4, 0.45, 0.7, 0.9, 1.0, 0.95, 0.7, 0.5),
        panels=PanelMix(
            types={"panel_mono": 0.55, "panel_poly": 0.4, "panel_thin": 0.05},
            tilt_deg=(15.0, 23.0),
            gcr=(0.45, 0.6),
            module_m=(3.4, 4.6),
            ground={"grass": 0.6, "bare_soil": 0.3, "gravel": 0.1},
            aligned_rows=0.35,
            farm_ha=(0.5, 60.0),
            farm_ha_alpha=0.0,
            fence_m=(3.0, 15.0),
            road_share=(0.4, 0.85),
            rooftop_share=0.05,
            rooftop_ha=(0.1, 0.8),
        ),
        sky=SkyMix(gain=(0.93, 1.05), haze_b02=(-0.002, 0.018), haze_exponent=(1.4, 2.0)),
        lookalikes=LookAlikeMix(
            partial_share=0.15,
            near_farm_share=0.3,
            per_km2=_per_km2(greenhouse=0.1, dark_roof=0.5, industrial_roof=0.3, graded_land=0.2),
        ),
    ),
}
