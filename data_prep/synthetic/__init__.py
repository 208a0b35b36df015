"""A synthetic Sentinel-2 L2A-like demo region, so the whole pipeline runs offline.

:func:`generate_region` writes one square region: a 10-band L2A-like scene (uint16 digital
numbers with the L2A offset), its 20 m scene classification (SCL), OSM labels as OSM XML (tagged
the way OpenStreetMap tags solar plants and panel rows, and as incomplete as real OSM), the
complete ground truth of every solar farm, and a land-cover map for audits.

The landscape is built from smooth random fields: warped field parcels at different greenness
over several soils, scrub, water bodies, settlements with mixed roofs and metal sheds, roads and
tracks. Solar farms are unions of slightly rotated rectangular blocks with internal access roads
and east-west panel rows, rendered at 2 m and averaged to 10 m so that every 10 m pixel mixes
panels and the ground between the rows, as in real imagery. Reflectances are linear mixtures of
published Sentinel-2 surface-reflectance spectra, with per-field and per-farm variation,
spatially correlated and per-pixel noise, 20 m bands at 20 m, clouds with their shadows and a
no-data strip at a swath edge.

That is the original region (southern India, dry season). ``RegionConfig.preset`` picks another
climate and landscape (:data:`PRESET_NAMES`: deccan, central-europe, alpine, desert,
rice-paddy; :mod:`~data_prep.synthetic.presets`), each with its own place and date, season,
land cover, measured or published spectral ranges, plants (panel types, tilt and ground-cover
ratio, the ground between rows, sizes, a fence strip that OSM maps around them, optional access
roads, arrays on large roofs), haze and illumination, the sensor's blur, irregular farm outlines
at any angle, partly built farms and non-solar look-alikes (``lookalikes.gpkg``).
``RegionConfig.footprints`` draws the farms' outlines from a file of real solar-farm polygons.

Example:
    >>> files = generate_region(Path("demo"), RegionConfig(seed=1, size=512))  # doctest: +SKIP
    >>> files.scene  # doctest: +SKIP
    PosixPath('demo/scene.tif')

The package has one module per job: :mod:`~data_prep.synthetic.config` (the validated
:class:`RegionConfig`), :mod:`~data_prep.synthetic.landscape`, :mod:`~data_prep.synthetic.farms`,
:mod:`~data_prep.synthetic.spectra` (end-members, mixing, sensor),
:mod:`~data_prep.synthetic.atmosphere` (haze, clouds, shadows, SCL),
:mod:`~data_prep.synthetic.footprints` (real outlines), :mod:`~data_prep.synthetic.lookalikes`,
:mod:`~data_prep.synthetic.osm_xml` and :mod:`~data_prep.synthetic.write`, on top of the
shared :mod:`~data_prep.synthetic.grid` and :mod:`~data_prep.synthetic.fields`, and the plain
data of :mod:`~data_prep.synthetic.presets`.
"""

from __future__ import annotations

from typing import Final

from data_prep.synthetic.atmosphere import SCL_WRITTEN
from data_prep.synthetic.config import (
    DEFAULT_ORIGIN,
    GENERATOR_VERSION,
    RegionConfig,
    RegionConfigError,
    SpuriousCue,
)
from data_prep.synthetic.landscape import LANDCOVER_CLASSES
from data_prep.synthetic.presets import PRESET_NAMES, PresetName
from data_prep.synthetic.spectra import SPECTRA
from data_prep.synthetic.write import RegionFiles, generate_region
from solarmap.bands import L2A_BOA_ADD_OFFSET, L2A_QUANTIFICATION, SCL_CLASSES

__all__ = [
    "BOA_ADD_OFFSET",
    "BOA_QUANTIFICATION_VALUE",
    "DEFAULT_ORIGIN",
    "GENERATOR_VERSION",
    "LANDCOVER_CLASSES",
    "PRESET_NAMES",
    "SCL_CLASSES",
    "SCL_WRITTEN",
    "SPECTRA",
    "PresetName",
    "RegionConfig",
    "RegionConfigError",
    "RegionFiles",
    "SpuriousCue",
    "generate_region",
]

#: L2A encoding, named as in the scene tags: reflectance = (DN + BOA_ADD_OFFSET) /
#: BOA_QUANTIFICATION_VALUE (:mod:`solarmap.bands`).
BOA_ADD_OFFSET: Final = L2A_BOA_ADD_OFFSET
BOA_QUANTIFICATION_VALUE: Final = L2A_QUANTIFICATION
