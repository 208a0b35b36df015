"""Is a scene like the data a model was trained on? Its band statistics against the training's.

A model is not to be trusted on a scene whose band statistics lie far outside those of its
training pixels. A checkpoint carries those statistics as ``metadata["training_stats"]``, in the
format of a prepared folder's ``stats.json`` (reflectance 0-1, lists in band order)::

    {"bands": [...], "mean": [...], "std": [...], "p02": [...], "p98": [...], "pixels": n}

While prediction reads a scene window by window, :class:`SceneStatistics` accumulates the same
kind of statistics over the scene's valid pixels, each pixel once (no second pass over the
file), and :func:`assess` compares the two in three ways:

- **level**: per band, how far the scene's median lies outside the training ``[p02, p98]``
  range, in training standard deviations;
- **shape**: the same after the scene's overall brightness is divided out, so that a scene which
  is only brighter or darker than the training data (another region, season or sun angle) is
  told apart from one whose spectrum has another shape (snow, desert, a band scaled wrongly or
  out of order). The brightness is the median over bands of the ratio of the scene's band mean
  to the training's: band ratios with the median band as the reference, which one faulty band
  cannot move (a single reference band, such as B03, would pass its own fault on to every band);
- **spread**: the share of valid scene pixels outside the training ``[p02, p98]`` box in any
  band, which catches a scene whose median is ordinary but much of which is not.

The thresholds (:data:`FAR_STD`, :data:`OUTSIDE_SHARE_MAX`) are stated with their reasons
below; measured on the 26 real Austrian chips of ``shared/realdata``, each against the
statistics of the other 25, the score (above 1 warns) stays between 0.01 and 0.75, while
against the training statistics of the synthetic demo region every one of them warns (median
score 2.1). The demo's unseen synthetic region scores 0.35 against its training region.

This is a core module: it imports nothing but ``solarmap``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from solarmap.errors import CheckpointError, InputError

__all__ = [
    "FAR_STD",
    "METADATA_KEY",
    "OOD_CHECKS",
    "OUTSIDE_SHARE_MAX",
    "SAMPLE_PIXELS",
    "OodCheck",
    "SceneStatistics",
    "TrainingStats",
    "assess",
    "sampling_step",
    "training_stats",
    "warning_line",
]

#: Key of a checkpoint's metadata that holds the statistics of its training pixels.
METADATA_KEY: Final = "training_stats"
#: What ``--ood-check`` takes: warn (log and record a warning), or off (skip the check).
OodCheck = Literal["warn", "off"]
OOD_CHECKS: Final[tuple[str, ...]] = ("warn", "off")

#: A band is far outside when its scene median (level), or its median with the brightness
#: divided out (shape), lies more than this many training standard deviations beyond the
#: training ``[p02, p98]`` range. That range already holds 96 % of the training pixels, so a
#: median beyond it means more than half of the scene is brighter (or darker) than 98 % of the
#: training pixels in that band; the further standard deviation keeps the ordinary differences
#: between two regions a model was trained and used on below the mark.
FAR_STD: Final = 1.0
#: A scene is far outside when more than this share of its valid pixels lies outside the
#: training ``[p02, p98]`` box in some band. Each band leaves 4 % of the training pixels outside
#: its range, so at most 10 × 4 % = 40 % of the training pixels themselves lie outside the box
#: in any of ten bands (fewer, as bands go together): a share above one half does not happen
#: for pixels like the training's.
OUTSIDE_SHARE_MAX: Final = 0.5
#: The histograms the scene medians are read from: bins of 0.001 reflectance on [-0.2, 1.8),
#: values beyond it counted in the end bins. A median is off by at most half a bin, 0.0005
#: reflectance, a small fraction of any band's training standard deviation.
HIST_RANGE: Final = (-0.2, 1.8)
HIST_BINS: Final = 2000
#: About how many pixels of a scene :class:`SceneStatistics` looks at: larger scenes are
#: sampled on a regular grid (every few rows and columns), which bounds the cost of the check
#: per scene whatever its size (0.3 s measured on a busy 2-core machine, for 2048² and 4096²
#: px scenes alike); a million pixels pin the medians and shares far more finely than the
#: thresholds need.
SAMPLE_PIXELS: Final = 2**20

_FIX = "retrain it with this solarmap version, or pass --ood-check off"


@dataclass(frozen=True)
class TrainingStats:
    """Per-band statistics of a model's training pixels (reflectance 0-1), ``float64[B]``."""

    bands: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    p02: np.ndarray
    p98: np.ndarray
    pixels: int


def _numbers(value: Any, n: int, what: str) -> np.ndarray:
    ok = isinstance(value, list) and len(value) == n
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not ok or not all(math.isfinite(v) for v in value):
        raise ValueError(f"{what} is not a list of {n} finite numbers")
    return np.asarray(value, dtype=np.float64)


def training_stats(
    metadata: dict[str, Any], *, bands: tuple[str, ...], source: str
) -> TrainingStats:
    """The training statistics a checkpoint's metadata carries, checked.

    Args:
        metadata: the checkpoint's metadata.
        bands: the checkpoint's bands; the statistics must be of the same bands in that order.
        source: how to name the checkpoint in messages (its folder).

    Raises:
        InputError: if the metadata holds no training statistics (a checkpoint from before
            they were recorded): the check cannot run, and the message says how to go on.
        CheckpointError: if the statistics are malformed or for other bands.
    """
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        raise InputError(
            f"{source}: has no training statistics, which the out-of-distribution check "
            f"needs; {_FIX}"
        )
    try:
        if not isinstance(raw, dict):
            raise ValueError("they are not an object")
        if raw.get("bands") != list(bands):
            raise ValueError(f"they are for bands {raw.get('bands')!r}, not {', '.join(bands)}")
        mean, std, p02, p98 = (
            _numbers(raw.get(k), len(bands), k) for k in ("mean", "std", "p02", "p98")
        )
        pixels = raw.get("pixels")
        if not isinstance(pixels, int) or isinstance(pixels, bool) or pixels < 0:
            raise ValueError(f"pixels {pixels!r} is not a count")
        if (std <= 0).any() or (p02 > p98).any():
            raise ValueError("they need std > 0 and p02 <= p98 in every band")
    except ValueError as err:
        raise CheckpointError(f"{source}: training statistics: {err}; {_FIX}") from err
    return TrainingStats(tuple(bands), mean, std, p02, p98, pixels)


def sampling_step(height: int, width: int) -> int:
    """Take every ``step``-th row and column of a ``height × width`` scene, so that at most
    about :data:`SAMPLE_PIXELS` pixels are looked at (1 for scenes up to that size)."""
    return max(1, math.ceil(math.sqrt(height * width / SAMPLE_PIXELS)))


class SceneStatistics:
    """Streaming per-band statistics of a scene's valid pixels, for :func:`assess`.

    Only pixels on every ``step``-th row and column of the scene grid are taken (all of them
    with ``step`` 1), wherever the windows fed to :meth:`update` fall. Counts and sums
    accumulate exactly (float64 across windows) and the median histograms (see
    :data:`HIST_RANGE`) in integers, so feeding a scene in any number of windows that cover
    each pixel once gives the one-shot answer. Also counts the pixels outside the training
    ``[p02, p98]`` box.
    """

    def __init__(self, training: TrainingStats, *, step: int = 1) -> None:
        if not isinstance(step, int) or step < 1:
            raise InputError(f"sampling step {step!r} is not a whole number >= 1")
        n = len(training.bands)
        self.training = training
        self.step = step
        self.pixels = 0
        self.sum = np.zeros(n)
        self.hist = np.zeros((n, HIST_BINS), dtype=np.int64)
        self.outside = 0  # pixels outside the box in any band
        self.band_outside = np.zeros(n, dtype=np.int64)
        self._low = training.p02.astype(np.float32)[:, None]
        self._high = training.p98.astype(np.float32)[:, None]

    def update(
        self, reflectance: np.ndarray, valid: np.ndarray, *, row: int = 0, col: int = 0
    ) -> None:
        """Add the pixels of one window.

        Args:
            reflectance: ``float32[B, H, W]`` reflectance 0-1, bands in the training's order.
            valid: ``bool[H, W]``, True where a pixel counts (finite in every band).
            row: scene row of the window's first row (places it on the sampling grid).
            col: scene column of the window's first column.

        Raises:
            InputError: if the shapes do not fit the training's bands.
        """
        n_bands = len(self.training.bands)
        if reflectance.ndim != 3 or reflectance.shape[0] != n_bands:
            raise InputError(
                f"reflectance of shape {reflectance.shape} is not [{n_bands}, H, W] (the "
                "training's bands)"
            )
        if valid.shape != reflectance.shape[1:]:
            raise InputError(f"valid mask {valid.shape} does not match {reflectance.shape}")
        k = self.step
        r0, c0 = (-row) % k, (-col) % k  # first window row and column on the grid
        px = reflectance[:, r0::k, c0::k][:, valid[r0::k, c0::k]]  # [B, n]
        if px.shape[1] == 0:
            return
        px = px.astype(np.float32, copy=False)
        self.pixels += px.shape[1]
        self.sum += px.sum(axis=1)  # pairwise in float32 within a window, float64 across
        out = (px < self._low) | (px > self._high)  # [B, n]
        self.band_outside += np.count_nonzero(out, axis=1)
        self.outside += int(np.count_nonzero(np.logical_or.reduce(out, axis=0)))
        lo, hi = HIST_RANGE
        idx = (px - np.float32(lo)) * np.float32(HIST_BINS / (hi - lo))
        idx = np.clip(idx, 0, HIST_BINS - 1, out=idx).astype(np.uint16)
        for b in range(n_bands):  # per band: bincount of small integers is fastest
            self.hist[b] += np.bincount(idx[b], minlength=HIST_BINS)

    def mean(self) -> np.ndarray:
        """``float64[B]`` band means (NaN before any pixel)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum / self.pixels

    def median(self) -> np.ndarray:
        """``float64[B]`` band medians, to the centre of the histogram bin that holds them."""
        lo, hi = HIST_RANGE
        width = (hi - lo) / HIST_BINS
        cum = np.cumsum(self.hist, axis=1)
        k = (cum < (self.pixels + 1) / 2).sum(axis=1)  # first bin holding the middle pixel
        return lo + (np.minimum(k, HIST_BINS - 1) + 0.5) * width


def _beyond(values: np.ndarray, t: TrainingStats) -> np.ndarray:
    """``float64[B]``: how far ``values`` lie outside ``[p02, p98]``, in training std (0 inside)."""
    return np.maximum(np.maximum(t.p02 - values, values - t.p98), 0.0) / t.std


def _brightness(scene_mean: np.ndarray, t: TrainingStats) -> float:
    """The scene's brightness relative to the training data: the median over bands of the
    ratio of band means (bands with a mean <= 0 on either side are left out; 1 without any)."""
    ok = (scene_mean > 0) & (t.mean > 0)
    return float(np.median(scene_mean[ok] / t.mean[ok])) if ok.any() else 1.0


def assess(stats: SceneStatistics) -> dict[str, Any]:
    """Compare a scene's statistics with its model's training statistics.

    Returns:
        The record :func:`~solarmap.predict.predict_scene` writes as ``"ood"``: ``warning``
        (the scene is far outside the training data), ``score`` (the worst of the level, shape
        and spread measures as a multiple of its threshold: above 1 warns), ``bands_outside``
        (bands far outside by level or shape; for a warning from the spread alone, the band
        with most pixels outside), ``brightness``, ``outside_share``, ``pixels``, the
        ``thresholds`` used, and per band the scene's ``median`` and ``mean``, the
        training's ``p02``, ``p98`` and ``std``, ``level`` and ``shape`` (std beyond the
        range) and ``outside_share``.

        ``pixels`` counts the valid pixels looked at (on the sampling grid of ``step``). With
        none of them (a scene almost wholly masked), the check is ``skipped``, with the
        ``reason``.
    """
    t = stats.training
    if stats.pixels == 0:
        reason = "no valid pixel on the sampling grid to compare with the training statistics"
        return {"check": "warn", "warning": False, "skipped": True, "reason": reason}
    median, mean = stats.median(), stats.mean()
    brightness = _brightness(mean, t)
    level = _beyond(median, t)
    shape = _beyond(median / brightness, t)
    share = stats.outside / stats.pixels
    band_share = stats.band_outside / stats.pixels
    score = max(float(level.max()) / FAR_STD, float(shape.max()) / FAR_STD)
    score = max(score, share / OUTSIDE_SHARE_MAX)
    warning = score > 1.0
    far = (level > FAR_STD) | (shape > FAR_STD)
    if warning and not far.any():
        far[int(np.argmax(band_share))] = True
    per_band = {
        band: {
            "median": round(float(median[b]), 4),
            "mean": round(float(mean[b]), 4),
            "train_p02": float(t.p02[b]),
            "train_p98": float(t.p98[b]),
            "train_std": float(t.std[b]),
            "level": round(float(level[b]), 3),
            "shape": round(float(shape[b]), 3),
            "outside_share": round(float(band_share[b]), 4),
        }
        for b, band in enumerate(t.bands)
    }
    return {
        "check": "warn",
        "warning": warning,
        "score": round(score, 3),
        "bands_outside": [band for band, out in zip(t.bands, far, strict=True) if out],
        "brightness": round(brightness, 3),
        "outside_share": round(share, 4),
        "pixels": int(stats.pixels),
        "step": stats.step,
        "thresholds": {"far_std": FAR_STD, "outside_share": OUTSIDE_SHARE_MAX},
        "bands": per_band,
    }


def warning_line(record: dict[str, Any], *, scene: str) -> str:
    """The one log line of an :func:`assess` record that warns: which bands, and why."""
    why = []
    for band in record["bands_outside"]:
        b = record["bands"][band]
        if b["level"] > FAR_STD:
            side = "above" if b["median"] > b["train_p98"] else "below"
            why.append(f"{band} {b['level']:.1f} std {side}")
        elif b["shape"] > FAR_STD:
            side = "above" if b["median"] / record["brightness"] > b["train_p98"] else "below"
            why.append(f"{band} {b['shape']:.1f} std {side} in shape")
        else:
            why.append(f"{band} with {b['outside_share']:.0%} of pixels outside")
    return (
        f"{scene}: outside the model's training data (score {record['score']:.2f}; "
        f"{', '.join(why)} the training range; {record['outside_share']:.0%} of valid pixels "
        f"outside it in some band; {record['brightness']:.2f}x as bright): do not trust this "
        "map without checking it"
    )
