"""Spectral indices of the contract bands: normalized differences and band ratios.

An index is named ``nd:A:B`` (the normalized difference ``(A - B) / (A + B)``) or ``ratio:A:B``
(the log ratio ``ln(A / B)``), with ``A`` and ``B`` contract bands. Both are independent of a
per-pixel gain (illumination, a whole-scene brightness shift), which is why they transfer
between regions where absolute reflectances do not: the panel/background contrast lives in
band *shapes* (panels are bluer than their surroundings, lower in red-edge/NIR than vegetation,
relatively high in SWIR against NIR).

The front layer of every solarmap model (:class:`solarmap.model.BandFeatures`) computes them
from the normalised input, so predict, evaluate and every attribution method see one input
contract however the model was built.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal, get_args

from solarmap.bands import BANDS
from solarmap.errors import InputError

if TYPE_CHECKING:  # only index_values needs torch: the names and checks are cheap to import
    import torch

IndexKind = Literal["nd", "ratio"]
#: How the bands reach the network: ``dataset`` (normalised with the training statistics, as
#: given), ``chip`` (standardised per band over each input window: only shapes and contrasts
#: within the window remain) or ``none`` (indices only).
BandNorm = Literal["dataset", "chip", "none"]

#: The small set of indices the spectral logistic baseline uses by default: the band pairs
#: that separate panels from ground in the measured medians of the generalization issue (blue
#: rise: B02/B03, B02 vs B08; SWIR/NIR: B11 vs B08; red-edge/NIR drop: B05 vs B08) and NDVI.
SPECTRAL_INDICES: Final[tuple[str, ...]] = (
    "ratio:B02:B03",
    "nd:B02:B08",
    "nd:B11:B08",
    "nd:B05:B08",
    "nd:B08:B04",
    "nd:B11:B12",
)
#: Reflectance floor before a ratio (L2A reflectances are slightly negative at times).
FLOOR: Final = 1e-3
#: Smallest per-chip standard deviation a band is divided by (a flat window stays finite).
CHIP_STD_FLOOR: Final = 1e-3


def parse_index(name: str) -> tuple[IndexKind, int, int]:
    """``(kind, i, j)`` of an index name, ``i``/``j`` the band positions in the contract.

    Raises:
        InputError: unless ``name`` is ``nd:A:B`` or ``ratio:A:B`` with two different contract
            bands.
    """
    parts = str(name).split(":")
    kinds = get_args(IndexKind)
    ok = len(parts) == 3 and parts[0] in kinds and parts[1] in BANDS and parts[2] in BANDS
    if not ok or parts[1] == parts[2]:
        raise InputError(
            f"index {name!r}: give nd:A:B (normalized difference) or ratio:A:B (log ratio) with "
            f"two different bands of {', '.join(BANDS)}, e.g. nd:B11:B08"
        )
    return parts[0], BANDS.index(parts[1]), BANDS.index(parts[2])  # type: ignore[return-value]


def check_indices(names: Sequence[str]) -> tuple[str, ...]:
    """The index names as a tuple, each parsed once (see :func:`parse_index`).

    Raises:
        InputError: for a malformed name or one given twice.
    """
    out = tuple(str(n) for n in names)
    for n in out:
        parse_index(n)
    if len(set(out)) != len(out):
        raise InputError(f"indices {', '.join(out)}: an index is listed twice")
    return out


def all_normalized_differences() -> tuple[str, ...]:
    """Every ``nd:A:B`` over the contract bands with A before B (45 indices; the reversed
    pair and the log ratio of the same pair rank pixels the same way, up to the sign)."""
    return tuple(f"nd:{a}:{b}" for a, b in itertools.combinations(BANDS, 2))


def index_values(reflectance: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """``Tensor[N, K, H, W]`` indices of ``Tensor[N, 10, H, W]`` reflectance (0-1)."""
    import torch

    parsed = [parse_index(n) for n in names]
    i = torch.tensor([p[1] for p in parsed], dtype=torch.long, device=reflectance.device)
    j = torch.tensor([p[2] for p in parsed], dtype=torch.long, device=reflectance.device)
    ratio = torch.tensor([p[0] == "ratio" for p in parsed], device=reflectance.device)
    r = reflectance.clamp_min(FLOOR)
    a, b = r.index_select(1, i), r.index_select(1, j)
    nd = (a - b) / (a + b)
    lr = torch.log(a) - torch.log(b)
    return torch.where(ratio[None, :, None, None], lr, nd)
