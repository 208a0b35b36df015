"""Random streams, smooth random fields and block reductions that every generator step shares."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from data_prep.synthetic.config import RegionConfig
from data_prep.synthetic.presets import PRESET_NAMES

FloatMap = NDArray[np.float32]

#: One independent random stream per component: changing how roads are drawn leaves the farms
#: alone.
STREAMS: Final = {
    "land": 1,
    "water": 2,
    "settle": 3,
    "roads": 4,
    "snow": 5,
    "farms": 6,
    "sky": 7,
    "noise": 8,
    "osm": 9,
    "nodata": 10,
    "terrain": 11,
    "spectra": 12,
    "haze": 13,
    "lookalikes": 14,
    "footprints": 15,
}
#: Added to a preset's position in the preset names to key its streams (beyond any farm index).
_PRESET_SALT: Final = 10**9


def rng_for(config: RegionConfig, stream: str, *extra: int) -> np.random.Generator:
    """The random generator of one component (a key of :data:`STREAMS`), and sub-streams.

    Each preset has streams of its own, so one seed is a different place in every preset.
    """
    key = [config.seed, STREAMS[stream], *extra]
    if config.preset is not None:
        key.append(_PRESET_SALT + PRESET_NAMES.index(config.preset))
    return np.random.default_rng(key)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> FloatMap:
    """Smooth Gaussian random field ``[H, W]`` with unit variance and correlation ~``scale`` px.

    Filtering white noise at full size with a wide kernel is slow for large scenes, so the field
    is made on a coarse grid and linearly interpolated to full size, one axis at a time (scipy's
    zoom is several times slower for this).
    """
    H, W = shape
    step = max(1, round(scale / 2))
    coarse = ndimage.gaussian_filter(rng.standard_normal((H // step + 3, W // step + 3)), 1.5)
    out = coarse[1 : H + 1, 1 : W + 1].astype("f4")
    if step > 1:
        out = _lerp_axis(_lerp_axis(coarse.astype("f4"), H, step, axis=0), W, step, axis=1)
    out -= out.mean()
    out /= max(float(out.std()), 1e-6)
    return out


def _lerp_axis(a: FloatMap, n: int, step: int, *, axis: int) -> FloatMap:
    """Linear interpolation of ``a`` along ``axis`` onto ``n`` samples ``step`` times denser."""
    pos = (np.arange(n, dtype=np.float64) + 0.5) / step + 0.5
    i0 = np.floor(pos).astype(np.intp)
    t = (pos - i0).astype("f4")
    if axis == 0:
        return a[i0] * (1 - t)[:, None] + a[i0 + 1] * t[:, None]
    return a[:, i0] * (1 - t)[None, :] + a[:, i0 + 1] * t[None, :]


def max_pool(mask: NDArray[np.bool_], f: int, *, fill: bool) -> NDArray[np.bool_]:
    """Any-true over ``f`` x ``f`` blocks; edges padded with ``fill`` to whole blocks."""
    h, w = -(-mask.shape[0] // f), -(-mask.shape[1] // f)
    padded = np.full((h * f, w * f), fill, dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return np.asarray(padded.reshape(h, f, w, f).any(axis=(1, 3)))


def block_mean(a: NDArray[Any], f: int) -> FloatMap:
    """Mean over ``f`` x ``f`` blocks of the last two axes (sizes divisible by ``f``)."""
    h, w = a.shape[-2] // f, a.shape[-1] // f
    acc = np.uint16 if a.dtype == np.uint8 and f * f * 255 < 2**16 else np.float32
    # Two contiguous sums are several times faster than one mean over two strided axes.
    s = a.reshape(*a.shape[:-2], h, f, w * f).sum(axis=-2, dtype=acc)
    s = s.reshape(*a.shape[:-2], h, w, f).sum(axis=-1, dtype=acc)
    return s.astype("f4") * np.float32(1.0 / (f * f))
