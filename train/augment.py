"""Training augmentation: spectral (per-band gain and offset, brightness, haze) and geometric
(flips and quarter turns), on reflectance chips, vectorised in numpy.

Spectral augmentation stands in for what changes between regions, dates and sensors while the
panels stay panels: the absolute levels of the bands (per-band gain: calibration, BRDF and
illumination; per-band offset: residual atmospheric correction), the whole scene's brightness
(sun elevation, slope) and haze, an additive path reflectance that falls with wavelength
(Ångström-like, ``(λ / 490 nm)^-ANGSTROM``: strongest in blue, negligible in SWIR).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

from solarmap.bands import BANDS, CENTRAL_WAVELENGTH_NM
from solarmap.errors import InputError

#: Wavelength exponent of the haze path reflectance (between Rayleigh's 4 and large aerosols'
#: ~0.5; 1.5 is a common continental aerosol value).
ANGSTROM: Final = 1.5
#: Haze relative to B02, per band: ``(λ / λ_B02)^-ANGSTROM``.
HAZE_SHAPE: Final = np.array(
    [(CENTRAL_WAVELENGTH_NM[b] / CENTRAL_WAVELENGTH_NM["B02"]) ** -ANGSTROM for b in BANDS],
    dtype=np.float32,
)[:, None, None]
#: Upper limits of the options (beyond them chips stop looking like Sentinel-2 scenes).
LIMITS: Final = {"gain": 0.5, "offset": 0.1, "brightness": 0.5, "haze": 0.2}


@dataclass(frozen=True)
class Augment:
    """How training chips are varied; every amount is a standard deviation or a maximum.

    Attributes:
        gain: per-band multiplicative jitter, ``x_b * (1 + N(0, gain))``.
        offset: per-band additive jitter in reflectance, ``x_b + N(0, offset)``.
        brightness: whole-chip multiplicative jitter, ``x * (1 + N(0, brightness))``.
        haze: the most path reflectance added in B02 (uniform from 0), falling with wavelength.
        geometric: random flips and quarter turns (the dihedral group; panel rows have no
            preferred direction in a chip once regions differ in row orientation).
    """

    gain: float = 0.03
    offset: float = 0.0
    brightness: float = 0.0
    haze: float = 0.0
    geometric: bool = True

    def __post_init__(self) -> None:
        for name, top in LIMITS.items():
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not 0.0 <= float(value) <= top or math.isnan(float(value)):
                raise InputError(
                    f"--{name} {value}: give a number from 0 to {top:g} (0 turns it off)"
                )
        if not isinstance(self.geometric, bool):
            raise InputError(f"geometric augmentation {self.geometric!r}: give true or false")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    def apply(
        self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment reflectance ``float32[10, H, W]`` and its mask ``uint8[H, W]``.

        Draws happen only for the amounts that are on, so turning an option off leaves the
        others' draws as they were.
        """
        bands = x.shape[0]
        if self.gain > 0:
            x = x * (1 + rng.normal(0, self.gain, (bands, 1, 1)))
        if self.offset > 0:
            x = x + rng.normal(0, self.offset, (bands, 1, 1))
        if self.brightness > 0:
            x = x * (1 + rng.normal(0, self.brightness))
        if self.haze > 0:
            x = x + rng.uniform(0, self.haze) * HAZE_SHAPE[:bands]
        if self.geometric:
            k = int(rng.integers(4))
            x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
        return x, y
