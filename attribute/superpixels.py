"""Superpixels: the players of the superpixel Shapley methods, and their polygons.

SLIC (:func:`skimage.segmentation.slic`) runs on a percentile-stretched false-colour composite
(SWIR2, NIR, red by default: solar panels stand out against vegetation and soil in it), as
scikit-image recommends: a three-band image converted to CIELAB, where the default compactness
of 10 balances colour against distance.
:func:`adjacency` gives the superpixel graph L-/C-Shapley walk on, and
:func:`segments_to_polygons` turns per-superpixel values into ranked map polygons
(:func:`rasterio.features.shapes`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from affine import Affine
from skimage.segmentation import slic

from solarmap.bands import BANDS, FALSE_COLOR, band_indices
from solarmap.errors import InputError

log = logging.getLogger(__name__)

#: Percentiles of the contrast stretch applied to each composite band before SLIC.
STRETCH_PERCENTILES = (2.0, 98.0)
#: Times :func:`slic_segments` retries with 10× the compactness when SLIC makes fewer than a
#: quarter of the superpixels asked (noise-dominated windows).
COMPACTNESS_RETRIES = 2


def false_color_composite(x: np.ndarray, *, bands: Sequence[str] = FALSE_COLOR) -> np.ndarray:
    """``float[10, H, W]`` (reflectance or normalised) → stretched ``float64[H, W, len(bands)]``.

    The composite is stretched linearly to ``[0, 1]`` (clipped) between the 2nd and 98th
    percentiles of all its values together, so it does not depend on the input's scale
    (reflectance, ×10000, or any common affine change); NaN becomes 0. One stretch for the three
    bands, not one per band: a per-band stretch inflates the noise of a band that is flat in the
    window to full contrast, and SLIC then follows the noise.

    Raises:
        InputError: for a wrong shape or an unknown band name.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[0] != len(BANDS):
        raise InputError(
            f"superpixel input has shape {arr.shape}; give the window as [{len(BANDS)}, H, W]"
        )
    try:
        idx = band_indices(list(bands))
    except KeyError as err:
        raise InputError(f"superpixel bands {tuple(bands)}: {err.args[0]}") from err
    comp = np.moveaxis(arr[idx], 0, -1)
    finite = np.isfinite(comp)
    if not finite.any():
        raise InputError("superpixel input holds no finite value; give a window with data")
    lo, hi = (float(v) for v in np.percentile(comp[finite], STRETCH_PERCENTILES))
    scale = hi - lo if hi > lo else 1.0
    with np.errstate(invalid="ignore"):
        out = np.clip((comp - lo) / scale, 0.0, 1.0)
    return np.where(finite, out, 0.0)


def slic_segments(
    x_reflectance_or_normalised: np.ndarray,
    *,
    n_segments: int = 64,
    compactness: float = 10.0,
    bands: tuple[str, ...] = FALSE_COLOR,
    seed: int = 0,
) -> np.ndarray:
    """SLIC superpixels of a window.

    Args:
        x_reflectance_or_normalised: the window ``float[10, H, W]`` in contract band order
            (reflectance or normalised input: the composite is percentile-stretched).
        n_segments: approximate number of superpixels wanted (SLIC is asked again in
            proportion when it makes fewer than 85 % of them).
        compactness: SLIC's colour/space balance; 10 suits the CIELAB space a three-band
            composite is converted to (higher → squarer superpixels). Raised tenfold (at most
            twice, with a warning) when SLIC makes fewer than a quarter of ``n_segments``.
        bands: the composite's bands; three bands are converted to CIELAB first.
        seed: recorded for a uniform interface only: scikit-image's SLIC starts from a regular
            grid and is deterministic, so the result does not depend on it.

    Returns:
        ``int32[H, W]`` labels ``0..K-1``, contiguous, each superpixel 4-connected.

    Raises:
        InputError: for a wrong shape, unknown bands or ``n_segments < 1``.
    """
    del seed  # SLIC is deterministic (grid initialisation); see the docstring
    if n_segments < 1:
        raise InputError(f"n_segments {n_segments} < 1; ask for at least one superpixel")
    comp = false_color_composite(x_reflectance_or_normalised, bands=bands)
    c = float(compactness)

    def run(asked: int, compact: float) -> tuple[np.ndarray, int]:
        lab = slic(
            comp,
            n_segments=int(asked),
            compactness=compact,
            channel_axis=-1,
            start_label=0,
            convert2lab=comp.shape[-1] == 3,
            enforce_connectivity=True,
        )
        return lab, int(np.unique(lab).size)

    for attempt in range(COMPACTNESS_RETRIES + 1):
        labels, made = run(n_segments, c)
        if made * 4 >= n_segments or attempt == COMPACTNESS_RETRIES:
            break
        # A noise-dominated window: SLIC's clusters fragment into specks that the connectivity
        # step merges away. More weight on distance gives grid-like superpixels instead.
        log.warning(
            "SLIC made %d superpixels of %d asked at compactness %g; retrying at %g",
            made,
            n_segments,
            c,
            c * 10,
        )
        c *= 10
    if made < 0.85 * n_segments:
        # SLIC's connectivity step merges fragments away, so it often makes two thirds of the
        # superpixels asked (43 of 64 on a demo window); ask once more in proportion and keep
        # whichever count is closer to the request.
        again, made_again = run(round(n_segments * n_segments / made), c)
        if abs(made_again - n_segments) < abs(made - n_segments):
            labels, made = again, made_again
    _, contiguous = np.unique(labels, return_inverse=True)
    segments = contiguous.reshape(labels.shape).astype(np.int32)
    log.debug("SLIC: %d superpixels asked, %d made", n_segments, int(segments.max()) + 1)
    return segments


def check_segments(segments: np.ndarray, shape: tuple[int, int] | None = None) -> int:
    """Validate labels ``int[H, W]`` numbered ``0..K-1`` without gaps; return ``K``.

    Raises:
        InputError: for a wrong shape, negative labels or gaps in the numbering.
    """
    seg = np.asarray(segments)
    if seg.ndim != 2 or not np.issubdtype(seg.dtype, np.integer):
        raise InputError(
            f"segments must be an integer [H, W] label image, got {seg.dtype}{seg.shape}"
        )
    if shape is not None and seg.shape != tuple(shape):
        raise InputError(f"segments are {seg.shape} but the window is {tuple(shape)}; segment it")
    present = np.unique(seg)
    k = int(present.size)
    if present[0] != 0 or present[-1] != k - 1:
        raise InputError(
            "segment labels must run 0..K-1 without gaps; relabel with np.unique(return_inverse)"
        )
    return k


def adjacency(segments: np.ndarray) -> list[set[int]]:
    """4-neighbour adjacency of superpixels: ``adj[i]`` = labels touching ``i`` (never ``i``).

    Raises:
        InputError: for labels that are not ``0..K-1``.
    """
    seg = np.asarray(segments)
    k = check_segments(seg)
    # Pairs of differing labels across every horizontal and vertical pixel edge.
    a = np.concatenate([seg[:, :-1].ravel(), seg[:-1, :].ravel()])
    b = np.concatenate([seg[:, 1:].ravel(), seg[1:, :].ravel()])
    diff = a != b
    pairs = np.unique(np.stack([a[diff], b[diff]], axis=1), axis=0)
    adj: list[set[int]] = [set() for _ in range(k)]
    for i, j in pairs.tolist():  # one iteration per distinct superpixel pair, not per pixel
        adj[i].add(j)
        adj[j].add(i)
    return adj


def paint(segments: np.ndarray, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-superpixel values painted onto the label image → ``float32[H, W]``."""
    return np.asarray(values, dtype=np.float32)[np.asarray(segments)]


def segments_to_polygons(
    segments: np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    transform: Affine,
    crs: Any,
) -> Any:
    """One polygon per superpixel with its value and importance rank.

    Args:
        segments: ``int[H, W]`` labels ``0..K-1`` on the window's grid.
        values: ``K`` values, one per superpixel.
        transform: the window's affine transform.
        crs: the window's CRS (anything :mod:`pyproj` accepts).

    Returns:
        ``GeoDataFrame`` with columns ``segment``, ``value``, ``rank`` (1 = largest
        ``|value|``, ties broken by label) and ``geometry`` (a (Multi)Polygon per superpixel),
        sorted by segment.

    Raises:
        InputError: when the number of values differs from the number of superpixels.
    """
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    seg = np.asarray(segments).astype(np.int32)
    k = check_segments(seg)
    vals = np.asarray(values, dtype=np.float64).ravel()
    if vals.size != k:
        raise InputError(f"{vals.size} values for {k} superpixels; give one value per superpixel")
    parts = [(int(v), shape(g)) for g, v in shapes(seg, transform=transform, connectivity=4)]
    frame = gpd.GeoDataFrame(
        {"segment": [p[0] for p in parts]}, geometry=[p[1] for p in parts], crs=crs
    )
    frame = frame.dissolve(by="segment", as_index=False).sort_values("segment")
    order = np.argsort(-np.abs(vals), kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(1, k + 1)
    ids = frame["segment"].to_numpy()
    frame["value"] = vals[ids]
    frame["rank"] = rank[ids]
    return frame[["segment", "value", "rank", "geometry"]].reset_index(drop=True)
