"""The band contract: which Sentinel-2 L2A bands solarmap uses, in which order.

Every scene, chip, checkpoint and attribution map carries these ten bands in this order.
"""

from __future__ import annotations

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

#: Central wavelength in nanometres (Sentinel-2A), for plots and band tables.
CENTRAL_WAVELENGTH_NM: Final[dict[str, float]] = {
    "B02": 492.4, "B03": 559.8, "B04": 664.6, "B05": 704.1, "B06": 740.5,
    "B07": 782.8, "B08": 832.8, "B8A": 864.7, "B11": 1613.7, "B12": 2202.4,
}  # fmt: skip

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
