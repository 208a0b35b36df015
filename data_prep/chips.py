"""Chip windows, a leak-free spatial split, balanced sampling and normalisation statistics.

The split works on spatial blocks, never on single chips: every chip belongs to the block that
holds its centre (blocks are squares in map units, keyed by CRS), all chips of a block share one
split, and chips that would still overlap a chip of another split are dropped. Two images of the
same place (two dates, or a date and a median) therefore always land in the same split.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from rasterio.windows import Window

from solarmap.bands import BANDS
from solarmap.errors import InputError

log = logging.getLogger(__name__)

Split = Literal["train", "val", "test"]
SPLITS: Final[tuple[Split, ...]] = ("train", "val", "test")
#: When two chips of different splits overlap, the one from the split earlier here is dropped.
_DROP_ORDER: Final[tuple[Split, ...]] = ("train", "val", "test")


def _starts(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)  # last chip flush with the edge: full coverage
    return starts


def chip_windows(
    height: int, width: int, *, size: int = 256, stride: int | None = None
) -> list[Window]:
    """Chip windows covering a ``height × width`` grid, row-major.

    Windows are ``size × size``. A grid smaller than ``size`` along an axis gets one window that
    extends past the edge (read it boundless and pad); small scenes are padded, not dropped.

    Raises:
        InputError: on a non-positive size or stride.
    """
    stride = size if stride is None else stride
    if size <= 0 or stride <= 0:
        raise InputError(f"chip size and stride must be positive, got {size} and {stride}")
    if height <= 0 or width <= 0:
        raise InputError(f"grid must be non-empty, got {height}×{width}")
    return [
        Window(col, row, size, size)
        for row in _starts(height, size, stride)
        for col in _starts(width, size, stride)
    ]


def _overlap_pairs(bounds: np.ndarray, crs_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of footprints that overlap with positive area (same CRS only)."""
    import shapely

    boxes = shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
    tree = shapely.STRtree(boxes)
    left, right = tree.query(boxes, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    ix0 = np.maximum(bounds[left, 0], bounds[right, 0])
    ix1 = np.minimum(bounds[left, 2], bounds[right, 2])
    iy0 = np.maximum(bounds[left, 1], bounds[right, 1])
    iy1 = np.minimum(bounds[left, 3], bounds[right, 3])
    real = (ix1 > ix0) & (iy1 > iy0) & (crs_codes[left] == crs_codes[right])
    return left[real], right[real]


@dataclass(frozen=True)
class SplitResult:
    """Split labels per chip (``"train"``/``"val"``/``"test"`` or ``"dropped"``) and block ids."""

    split: np.ndarray
    block: np.ndarray


def spatial_split(
    bounds: np.ndarray,
    crs_codes: Sequence[str],
    *,
    block_size_m: float,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    weights: np.ndarray | None = None,
    seed: int = 0,
) -> SplitResult:
    """Assign chips to train/val/test by spatial blocks so that no information leaks.

    Args:
        bounds: ``float[N, 4]`` chip footprints (minx, miny, maxx, maxy) in their CRS.
        crs_codes: CRS of each chip (e.g. ``"EPSG:32633"``); blocks never mix CRSs.
        block_size_m: block side in map units (metres for UTM).
        fractions: target shares of train, val and test (by chip weight).
        weights: per-chip weight for the shares (default 1 each).
        seed: shuffles the block order.

    Returns:
        Split per chip (``"dropped"`` for chips removed because they overlapped another split)
        and the block id of each chip.

    Raises:
        InputError: on fractions that are negative or do not sum to 1.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or not math.isclose(fr.sum(), 1.0, abs_tol=1e-6):
        raise InputError(f"split fractions must be three shares summing to 1, got {fractions}")
    if block_size_m <= 0:
        raise InputError(f"block size must be positive, got {block_size_m}")
    n = len(bounds)
    codes = np.asarray(crs_codes, dtype=object)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    cx = (bounds[:, 0] + bounds[:, 2]) / 2
    cy = (bounds[:, 1] + bounds[:, 3]) / 2
    bx = np.floor(cx / block_size_m).astype(np.int64)
    by = np.floor(cy / block_size_m).astype(np.int64)
    block = np.array([f"{c}/{x}/{y}" for c, x, y in zip(codes, bx, by, strict=True)], dtype=object)

    uniq, inverse = np.unique(block.astype(str), return_inverse=True)
    block_weight = np.bincount(inverse, weights=w, minlength=len(uniq))
    order = np.random.default_rng(seed).permutation(len(uniq))
    assigned = np.empty(len(uniq), dtype=object)
    totals = np.zeros(3)
    # Greedy: give each block (in shuffled order) to the split furthest below its target share.
    # The first blocks seed the small splits so val and test are never empty when blocks allow.
    for rank, b in enumerate(order):
        if rank < 3 and len(uniq) >= 3:
            k = [2, 1, 0][rank] if fr[[2, 1, 0][rank]] > 0 else int(np.argmax(fr))
        else:
            target = fr * (totals.sum() + block_weight[b])
            k = int(np.argmax(target - totals))
        assigned[b] = SPLITS[k]
        totals[k] += block_weight[b]
    split = assigned[inverse].astype(object)

    # Chips of neighbouring blocks can still overlap; drop the lower-priority one of each pair.
    left, right = _overlap_pairs(bounds, codes)
    if len(left):
        rank_of = {s: i for i, s in enumerate(_DROP_ORDER)}
        for i, j in zip(left, right, strict=True):
            si, sj = split[i], split[j]
            if si == sj or "dropped" in (si, sj):
                continue
            victim = i if rank_of[si] < rank_of[sj] else j
            split[victim] = "dropped"
        log.info("dropped %d chips that overlapped another split", int((split == "dropped").sum()))
    return SplitResult(split=split.astype(str), block=block.astype(str))


def balanced_selection(
    split: np.ndarray,
    positive: np.ndarray,
    *,
    negative_ratio: float = 1.0,
    balance: Sequence[str] = ("train",),
    seed: int = 0,
) -> np.ndarray:
    """Choose chips for use: all positives, and at most ``negative_ratio`` negatives per positive.

    Only splits named in ``balance`` are subsampled; the others keep every chip so evaluation
    sees the region as it is. Dropped chips are never selected. Returns ``bool[N]``.
    """
    if negative_ratio < 0:
        raise InputError(f"negative ratio must be >= 0, got {negative_ratio}")
    rng = np.random.default_rng(seed)
    selected = split != "dropped"
    for name in balance:
        in_split = split == name
        neg = np.flatnonzero(in_split & ~positive)
        n_pos = int((in_split & positive).sum())
        keep = min(len(neg), max(1, math.ceil(negative_ratio * n_pos)) if len(neg) else 0)
        drop = rng.permutation(neg)[keep:]
        selected[drop] = False
    return selected


class BandStatistics:
    """Streaming per-band statistics over valid pixels: mean, std, and percentiles of a sample.

    Means and variances accumulate in float64 (exact over any number of windows); percentiles
    come from a seeded uniform sample of at most ``max_samples`` pixels.
    """

    def __init__(self, n_bands: int = len(BANDS), *, max_samples: int = 500_000, seed: int = 0):
        self.n = 0
        self.sum = np.zeros(n_bands)
        self.sumsq = np.zeros(n_bands)
        self.max_samples = max_samples
        self._rng = np.random.default_rng(seed)
        self._samples: list[np.ndarray] = []
        self._sampled = 0

    def update(self, reflectance: np.ndarray, valid: np.ndarray) -> None:
        """Add ``float[B, H, W]`` pixels where ``valid`` (``bool[H, W]``) is true."""
        px = reflectance[:, valid].astype(np.float64)  # [B, n]
        px = px[:, np.isfinite(px).all(axis=0)]
        if px.shape[1] == 0:
            return
        self.n += px.shape[1]
        self.sum += px.sum(axis=1)
        self.sumsq += (px * px).sum(axis=1)
        take = min(px.shape[1], max(1, self.max_samples // 16))
        idx = self._rng.choice(px.shape[1], size=take, replace=False)
        self._samples.append(px[:, idx].astype(np.float32))
        self._sampled += take
        if self._sampled > 2 * self.max_samples:  # keep memory bounded: thin the pool
            pool = np.concatenate(self._samples, axis=1)
            keep = self._rng.choice(pool.shape[1], self.max_samples, replace=False)
            self._samples, self._sampled = [pool[:, keep]], self.max_samples

    def result(self) -> dict[str, Any]:
        """Per-band ``mean``, ``std``, ``p02``, ``p98`` (lists in band order) and pixel count."""
        if self.n == 0:
            raise InputError("no valid training pixels to compute band statistics from")
        mean = self.sum / self.n
        var = np.maximum(self.sumsq / self.n - mean**2, 0.0)
        sample = np.concatenate(self._samples, axis=1)
        if sample.shape[1] > self.max_samples:
            sample = sample[:, self._rng.choice(sample.shape[1], self.max_samples, replace=False)]
        p02, p98 = np.percentile(sample, [2, 98], axis=1)
        return {
            "bands": list(BANDS),
            "mean": mean.round(6).tolist(),
            "std": np.sqrt(var).round(6).tolist(),
            "p02": p02.round(6).tolist(),
            "p98": p98.round(6).tolist(),
            "pixels": int(self.n),
        }


def merge_statistics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One set of band statistics for several prepared folders (each :meth:`BandStatistics.result`
    output): pixel-weighted mean and std (exact, from each part's mean and variance), and the
    widest percentile range (the lowest ``p02``, the highest ``p98``), so that a scene within
    any of the parts counts as within the whole.

    Raises:
        InputError: when ``parts`` is empty or a part lacks a key.
    """
    if not parts:
        raise InputError("no band statistics to merge")
    try:
        n = np.array([float(p.get("pixels", 1)) for p in parts])
        mean = np.array([p["mean"] for p in parts], np.float64)
        std = np.array([p["std"] for p in parts], np.float64)
        w = n[:, None] / n.sum() if n.sum() > 0 else np.full((len(parts), 1), 1 / len(parts))
        m = (w * mean).sum(axis=0)
        var = (w * (std**2 + mean**2)).sum(axis=0) - m**2
        out: dict[str, Any] = {
            "bands": parts[0]["bands"],
            "mean": m.round(6).tolist(),
            "std": np.sqrt(np.maximum(var, 0.0)).round(6).tolist(),
            "pixels": int(n.sum()),
        }
        if all("p02" in p and "p98" in p for p in parts):
            out["p02"] = np.min([p["p02"] for p in parts], axis=0).round(6).tolist()
            out["p98"] = np.max([p["p98"] for p in parts], axis=0).round(6).tolist()
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"band statistics to merge lack {err}") from err
    return out


def chip_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame of chip rows with the index's column order."""
    cols = [
        "chip_id", "scene_id", "image", "mask", "row_off", "col_off", "height", "width",
        "crs", "split", "block", "solar_fraction", "valid_fraction", "positive", "selected",
    ]  # fmt: skip
    df = pd.DataFrame(rows)
    return df[[c for c in cols if c in df.columns]]
