"""Shared by the attribution benchmarks: a trained checkpoint and one window around an object.

Not a benchmark itself. ``load_window`` reads the window of a detected object from a scene,
either the object plus its context (what ``solarmap explain`` reads) or a fixed square around
the object's centre, and builds the object target on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rasterio.windows import Window

from attribute.targets import RegionTarget, read_target, target_window
from data_prep.sentinel2 import open_scene
from solarmap.geo import read_vector
from solarmap.model import Checkpoint, load_checkpoint


@dataclass
class ExplainWindow:
    """One object's window, ready for attribution."""

    checkpoint: Checkpoint
    x: torch.Tensor  # [1, 10, H, W] normalised
    reflectance: Any  # float32[10, H, W]
    f: RegionTarget
    zero: torch.Tensor  # [10] normalised zero reflectance
    bbox: tuple[int, int, int, int]  # the object's pixel bbox in the window (ends exclusive)
    area_ha: float


def add_window_arguments(ap: Any) -> None:
    """The ``--checkpoint/--scene/--predictions/--rank`` options (defaults: `solarmap demo`)."""
    ap.add_argument("--checkpoint", type=Path, default=Path("demo-out/checkpoint"))
    ap.add_argument("--scene", type=Path, default=Path("demo-out/unseen-region/scene.tif"))
    ap.add_argument("--predictions", type=Path, default=Path("demo-out/prediction/polygons.gpkg"))
    ap.add_argument("--rank", type=int, default=0, help="object by area, 0 = largest that fits")


def load_window(
    checkpoint: Path, scene_path: Path, predictions: Path, *, size: int | None, rank: int = 0
) -> ExplainWindow:
    """The ``rank``-th largest object (among those that fit in ``size`` with a 32 px margin).

    ``size=None`` reads the object plus context as ``solarmap explain`` does; an int reads a
    ``size``×``size`` window centred on the object.
    """
    ck = load_checkpoint(checkpoint)
    ck.freeze()
    polys = read_vector(predictions).sort_values("area_m2", ascending=False)
    with open_scene(scene_path) as scene:
        info = scene.info
        res = abs(info.transform.a)
        if size is not None:
            b = polys.geometry.bounds
            fits = ((b.maxx - b.minx) / res <= size - 64) & ((b.maxy - b.miny) / res <= size - 64)
            polys = polys[fits.to_numpy()]
        row = polys.iloc[rank]
        geom = row.geometry
        win = target_window(scene, ck, geom)
        if size is not None:
            r_mid = int(win.row_off + win.height // 2)
            c_mid = int(win.col_off + win.width // 2)
            r0 = min(max(r_mid - size // 2, 0), info.height - size)
            c0 = min(max(c_mid - size // 2, 0), info.width - size)
            win = Window(c0, r0, size, size)
        tw = read_target(scene, ck, "object", geom, window=win)
    f = tw.f
    region = f.region_numpy()
    rows, cols = region.nonzero()
    bbox = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    return ExplainWindow(
        ck, tw.x, tw.reflectance, f, ck.zero_reflectance(), bbox, float(row["area_m2"]) / 1e4
    )
