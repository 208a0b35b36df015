"""Attribution outputs in the scene's own coordinates.

No library writes attribution maps as georeferenced rasters, so this module does: each explained
window becomes a Cloud-Optimized GeoTIFF on exactly the window's grid (the scene's CRS and the
window transform), one band per method/reduction with the band description naming it. Superpixel
values are also written as polygons, per-band importance as CSV and JSON, and a PNG quicklook
panel for people.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from solarmap.bands import FALSE_COLOR, band_indices
from solarmap.errors import InputError
from solarmap.geo import atomic_path, write_cog, write_json, write_text
from solarmap.styles import attribution_style

log = logging.getLogger(__name__)


def write_attribution_cog(
    path: str | Path,
    maps: Mapping[str, np.ndarray],
    *,
    transform: Affine,
    crs: Any,
    tags: Mapping[str, Any] | None = None,
    band_tags: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write 2-D maps ``{description: float[H, W]}`` as one multi-band float32 COG, with
    ``band_tags`` (one mapping per map, in order) as each band's metadata, and a QGIS style
    beside it that shows the first map on a diverging ramp symmetric around 0.

    Raises:
        InputError: when there is no map or the maps differ in shape.
    """
    if not maps:
        raise InputError("no attribution map to write")
    shapes = {np.shape(m) for m in maps.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise InputError(f"attribution maps must share one 2-D shape, got {sorted(shapes)}")
    stack = np.stack([np.asarray(m, dtype=np.float32) for m in maps.values()])
    return write_cog(
        path,
        stack,
        crs=crs,
        transform=transform,
        nodata=float("nan"),
        descriptions=list(maps),
        tags=tags,
        band_tags=band_tags,
        overview_resampling="average",
        style=attribution_style(),
    )


def write_band_table(stem: str | Path, rows: Sequence[Mapping[str, Any]]) -> tuple[Path, Path]:
    """Write rows (e.g. per-band importance) as ``<stem>.csv`` and ``<stem>.json``."""
    stem = Path(stem)
    if not rows:
        raise InputError("empty band table")
    fields = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = write_text(stem.with_suffix(".csv"), buf.getvalue())
    json_path = write_json(stem.with_suffix(".json"), list(rows))
    return csv_path, json_path


def stretch_rgb(rgb: np.ndarray) -> np.ndarray:
    """Bands ``float[3, H, W]`` each stretched between its 2nd and 98th percentile of finite
    values, as an image ``float32[H, W, 3]`` in 0-1 (no data black)."""
    out = np.zeros_like(rgb, dtype=np.float32)
    for i in range(rgb.shape[0]):
        band = rgb[i]
        finite = band[np.isfinite(band)]
        if finite.size == 0:
            continue
        lo, hi = np.percentile(finite, [2, 98])
        out[i] = np.clip((band - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.nan_to_num(out).transpose(1, 2, 0)


def quicklook_png(
    path: str | Path,
    reflectance: np.ndarray,
    maps: Mapping[str, np.ndarray],
    *,
    region: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """A panel: false colour (B12, B08, B04) with the target outline, then each map.

    Signed maps use a diverging colour scale centred on 0; non-negative maps a sequential one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 1 + len(maps)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows), squeeze=False)
    fc = stretch_rgb(reflectance[band_indices(list(FALSE_COLOR))])
    panels = [("false colour B12/B08/B04", None), *maps.items()]
    for ax, (name, m) in zip(axes.flat, panels, strict=False):
        if m is None:
            ax.imshow(fc, interpolation="nearest")
        else:
            finite = m[np.isfinite(m)]
            signed = finite.size > 0 and finite.min() < 0 < finite.max()
            lim = float(np.nanpercentile(np.abs(m), 99)) if finite.size else 1.0
            lim = lim or 1.0
            if signed:
                im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            else:
                im = ax.imshow(m, cmap="magma", vmin=0, vmax=lim, interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if region is not None and region.any():
            ax.contour(region.astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return p
