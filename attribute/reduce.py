"""From band-resolved attributions ``[10, H, W]`` to maps ``[H, W]`` and band tables.

Gradient methods explain every band of every pixel. A map needs one value per pixel, chosen by
name:

- ``max_abs``: ``M(x) = max_j |a_j(x)|`` (Simonyan et al.'s saliency map over channels),
- ``mean_abs``: ``mean_j |a_j(x)|``,
- ``l2``: ``sqrt(sum_j a_j(x)^2)``,
- ``sum``: ``sum_j a_j(x)``, signed (for methods with completeness, such as integrated
  gradients, the pixel's share of ``f(x) - f(x')``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final, Literal, get_args

import numpy as np
import torch

from solarmap.bands import BANDS
from solarmap.errors import InputError

log = logging.getLogger(__name__)

ReductionName = Literal["max_abs", "mean_abs", "l2", "sum"]

#: The reductions :func:`reduce_bands` knows, in the order the CLI lists them.
REDUCTIONS: Final[tuple[ReductionName, ...]] = get_args(ReductionName)


def _as_numpy(per_band: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(per_band, torch.Tensor):
        per_band = per_band.detach().cpu().numpy()
    arr = np.asarray(per_band)
    if arr.ndim != 3:
        raise InputError(
            f"band attribution has shape {arr.shape}; give an array [bands, H, W] "
            "(drop the batch axis first)"
        )
    return arr


def check_reductions(names: Sequence[str]) -> tuple[ReductionName, ...]:
    """Validate reduction names (before an expensive method runs).

    Raises:
        InputError: for an unknown name, listing the valid ones.
    """
    if isinstance(names, str):  # a lone name is a common slip: ("max_abs") is a str
        names = (names,)
    bad = [n for n in names if n not in REDUCTIONS]
    if bad:
        raise InputError(
            f"unknown band reduction {', '.join(map(repr, bad))}; "
            f"choose from {', '.join(REDUCTIONS)}"
        )
    return tuple(names)  # type: ignore[arg-type]  # checked against REDUCTIONS above


def reduce_bands(per_band: np.ndarray | torch.Tensor, name: ReductionName) -> np.ndarray:
    """Reduce a band-resolved attribution to one value per pixel.

    Args:
        per_band: ``[B, H, W]`` attribution (numpy or torch, any float dtype).
        name: one of :data:`REDUCTIONS`.

    Returns:
        ``float32[H, W]``.

    Raises:
        InputError: for an unknown reduction name or an array that is not 3-D.
    """
    (reduction,) = check_reductions((name,))
    a = _as_numpy(per_band).astype(np.float64, copy=False)
    if reduction == "max_abs":
        out = np.abs(a).max(axis=0)
    elif reduction == "mean_abs":
        out = np.abs(a).mean(axis=0)
    elif reduction == "l2":
        out = np.sqrt(np.square(a).sum(axis=0))
    else:  # "sum"
        out = a.sum(axis=0)
    return out.astype(np.float32)


def named_maps(
    method: str, per_band: np.ndarray | torch.Tensor, reductions: Sequence[ReductionName]
) -> dict[str, np.ndarray]:
    """Maps ``{"<method>:<reduction>": float32[H, W]}`` for :attr:`Attribution.maps`.

    Raises:
        InputError: for an unknown reduction name.
    """
    return {f"{method}:{r}": reduce_bands(per_band, r) for r in check_reductions(reductions)}


def band_importance(
    per_band: np.ndarray | torch.Tensor,
    region: np.ndarray | torch.Tensor | None = None,
    *,
    bands: Sequence[str] = BANDS,
) -> dict[str, float]:
    """Share of each band in the total absolute attribution over a region.

    Args:
        per_band: ``[B, H, W]`` attribution.
        region: ``bool[H, W]`` pixels to sum over; ``None`` sums over the whole window.
        bands: band names, one per leading entry of ``per_band``.

    Returns:
        ``{band: sum |a_band| over the region / sum over all bands}``; the values sum to 1
        (all zero when the attribution is zero everywhere in the region).

    Raises:
        InputError: when the band count or the region's shape does not match.
    """
    a = np.abs(_as_numpy(per_band).astype(np.float64, copy=False))
    if a.shape[0] != len(bands):
        raise InputError(
            f"attribution has {a.shape[0]} bands but {len(bands)} band names were given"
        )
    if region is not None:
        if isinstance(region, torch.Tensor):
            region = region.detach().cpu().numpy()
        mask = np.asarray(region, dtype=bool)
        if mask.shape != a.shape[1:]:
            raise InputError(
                f"region has shape {mask.shape} but the attribution is {a.shape[1:]}; "
                "give a region on the attribution's grid"
            )
        totals = a[:, mask].sum(axis=1)
    else:
        totals = a.reshape(a.shape[0], -1).sum(axis=1)
    grand = float(totals.sum())
    if grand == 0.0:
        log.warning("attribution is zero over the region; band importance is all zero")
        return dict.fromkeys(bands, 0.0)
    return {b: float(t / grand) for b, t in zip(bands, totals, strict=True)}
