"""The band contract: which Sentinel-2 L2A bands solarmap uses, in which order.

Every scene, chip, checkpoint and attribution map carries these ten bands in this order. The
Sentinel-2 L2A constants that the scene reader and the synthetic generator share (how digital
numbers encode reflectance, the scene classification classes) live here too.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import IntEnum
from typing import Final, Literal

#: The ten Sentinel-2 L2A bands, in contract order.
BANDS: Final[tuple[str, ...]] = (
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
)  # fmt: skip

#: Native resolution of each band in metres (20 m bands are resampled onto the 10 m grid).
NATIVE_RESOLUTION_M: Final[dict[str, int]] = {
    "B02": 10, "B03": 10, "B04": 10, "B08": 10,
    "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20,
}  # fmt: skip

Spacecraft = Literal["S2A", "S2B"]

#: Central wavelength in nanometres of each band on each Sentinel-2 spacecraft (the MSI
#: spectral response functions), for band metadata, plots and band tables.
CENTRAL_WAVELENGTHS_NM: Final[dict[Spacecraft, dict[str, float]]] = {
    "S2A": {
        "B02": 492.4, "B03": 559.8, "B04": 664.6, "B05": 704.1, "B06": 740.5,
        "B07": 782.8, "B08": 832.8, "B8A": 864.7, "B11": 1613.7, "B12": 2202.4,
    },
    "S2B": {
        "B02": 492.1, "B03": 559.0, "B04": 664.9, "B05": 703.8, "B06": 739.1,
        "B07": 779.7, "B08": 832.9, "B8A": 864.0, "B11": 1610.4, "B12": 2185.7,
    },
}  # fmt: skip
#: Central wavelength in nanometres (Sentinel-2A), for plots and band tables.
CENTRAL_WAVELENGTH_NM: Final[dict[str, float]] = CENTRAL_WAVELENGTHS_NM["S2A"]
#: Unit of the reflectance bands solarmap writes (surface reflectance, 0–1).
REFLECTANCE_UNITS: Final = "reflectance"

BandGroup = Literal["visible", "red-edge", "nir", "swir"]

#: Band groups used for group ablation and spectral importance tables.
BAND_GROUPS: Final[dict[BandGroup, tuple[str, ...]]] = {
    "visible": ("B02", "B03", "B04"),
    "red-edge": ("B05", "B06", "B07"),
    "nir": ("B08", "B8A"),
    "swir": ("B11", "B12"),
}

#: True colour (red, green, blue).
RGB: Final[tuple[str, str, str]] = ("B04", "B03", "B02")
#: False colour used for superpixels and quicklooks: SWIR2, NIR, red. Solar panels stand out
#: against vegetation and soil in it.
FALSE_COLOR: Final[tuple[str, str, str]] = ("B12", "B08", "B04")


#: L2A digital numbers: ``reflectance = (DN + L2A_BOA_ADD_OFFSET) / L2A_QUANTIFICATION``.
L2A_QUANTIFICATION: Final = 10000
#: The L2A ``BOA_ADD_OFFSET`` from processing baseline :data:`L2A_OFFSET_BASELINE` on (0 before).
L2A_BOA_ADD_OFFSET: Final = -1000
#: The first processing baseline with :data:`L2A_BOA_ADD_OFFSET`.
L2A_OFFSET_BASELINE: Final = 4.0
#: The day processing baseline 04.00 (with :data:`L2A_BOA_ADD_OFFSET`) went live.
L2A_OFFSET_SINCE: Final = dt.date(2022, 1, 25)
#: The processing baseline in a product name: ``..._N0400_...`` is baseline 04.00.
_BASELINE_IN_NAME: Final = re.compile(r"_N(\d{2})(\d{2})_")


def baseline_in_name(name: str) -> float | None:
    """The processing baseline a product name states (``S2A_MSIL2A_..._N0400_R...`` → 4.0),
    or ``None`` when it states none."""
    if m := _BASELINE_IN_NAME.search(name):
        return int(m.group(1)) + int(m.group(2)) / 100
    return None


def l2a_offset_dn(baseline: float) -> float:
    """The L2A ``BOA_ADD_OFFSET`` (DN) of a processing baseline: -1000 from 04.00 on, else 0."""
    return float(L2A_BOA_ADD_OFFSET) if baseline >= L2A_OFFSET_BASELINE else 0.0


class SclClass(IntEnum):
    """The twelve classes of the L2A scene classification layer (SCL), by value."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA_PIXELS = 2
    CLOUD_SHADOW = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW = 11


#: SCL value → class name (``3: "cloud shadow"``), all twelve classes.
SCL_CLASSES: Final[dict[int, str]] = {int(c): c.name.lower().replace("_", " ") for c in SclClass}
#: SCL classes of clouds: medium and high probability, thin cirrus.
SCL_CLOUD: Final[frozenset[int]] = frozenset(
    int(c)
    for c in (
        SclClass.CLOUD_MEDIUM_PROBABILITY,
        SclClass.CLOUD_HIGH_PROBABILITY,
        SclClass.THIN_CIRRUS,
    )
)
#: SCL classes that make a pixel invalid when a scene is read: no data, saturated or defective,
#: cloud shadows and :data:`SCL_CLOUD`. Snow stays valid.
SCL_INVALID: Final[frozenset[int]] = SCL_CLOUD | frozenset(
    int(c) for c in (SclClass.NO_DATA, SclClass.SATURATED_OR_DEFECTIVE, SclClass.CLOUD_SHADOW)
)


def band_index(name: str) -> int:
    """Position of a band in the contract order.

    Raises:
        KeyError: if ``name`` is not one of :data:`BANDS`.
    """
    try:
        return BANDS.index(name)
    except ValueError as err:
        raise KeyError(f"unknown band {name!r}; expected one of {', '.join(BANDS)}") from err


def band_indices(names: tuple[str, ...] | list[str]) -> list[int]:
    """Positions of several bands in the contract order."""
    return [band_index(n) for n in names]


def normalise_band_name(name: str) -> str:
    """Canonical band name: ``"b8a"`` → ``"B8A"``, ``"B2"`` → ``"B02"``, ``"B8"`` → ``"B08"``."""
    n = name.strip().upper()
    if n.startswith("B") and n[1:].isdigit() and len(n) == 2:
        n = f"B0{n[1:]}"
    return n


def spacecraft_of(scene_id: str) -> Spacecraft | None:
    """The spacecraft a Sentinel-2 product name starts with (``"S2B_MSIL2A_..."`` → ``"S2B"``),
    or ``None`` when the name names none solarmap knows."""
    head = scene_id.strip().upper()[:3]
    return "S2A" if head == "S2A" else "S2B" if head == "S2B" else None


def reflectance_band_tags(
    bands: tuple[str, ...] | list[str] = BANDS, *, scene_id: str = ""
) -> list[dict[str, str]]:
    """Metadata for each reflectance band of a raster: its unit and central wavelength.

    ``WAVELENGTH_NM`` is the central wavelength on the spacecraft named by ``scene_id``
    (Sentinel-2A when it names none, and ``SPACECRAFT`` says which was used);
    ``WAVELENGTH_NM_S2A`` and ``WAVELENGTH_NM_S2B`` give both.
    """
    craft = spacecraft_of(scene_id)
    used: Spacecraft = craft or "S2A"
    tags = []
    for name in bands:
        b = normalise_band_name(name)
        band_index(b)  # a band outside the contract raises
        tags.append(
            {
                "BAND": b,
                "UNITS": REFLECTANCE_UNITS,
                "WAVELENGTH_NM": f"{CENTRAL_WAVELENGTHS_NM[used][b]:g}",
                "WAVELENGTH_UNITS": "nm",
                "SPACECRAFT": used if craft else f"{used} (assumed; the scene id names none)",
                **{f"WAVELENGTH_NM_{c}": f"{w[b]:g}" for c, w in CENTRAL_WAVELENGTHS_NM.items()},
            }
        )
    return tags
