"""Data-stage benchmark: `solarmap prepare` time and peak memory against scene size.

Writes a large L2A-like scene window by window (uint16 DN with the L2A offset; fields of
vegetation and soil with dark rectangular "farms"), plus GeoJSON labels, then runs
``solarmap prepare`` in a child process and prints wall time, throughput and the child's peak
RSS. Peak RSS should stay nearly flat as the scene grows: reading, labelling and writing are
windowed.

    python benchmarks/bench_prepare.py [--sizes 2048 4096 8192] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from shapely.geometry import box

from solarmap.bands import BANDS

VEG = np.array([0.03, 0.06, 0.04, 0.10, 0.25, 0.32, 0.35, 0.37, 0.22, 0.11])
PV = np.array([0.07, 0.08, 0.08, 0.10, 0.15, 0.17, 0.18, 0.19, 0.17, 0.11])
ORIGIN = (600000.0, 1600000.0)


def write_scene(path: Path, size: int, *, block: int = 1024) -> list[tuple[int, int, int, int]]:
    """Write a size×size scene; return farm boxes (row0, col0, row1, col1)."""
    rng = np.random.default_rng(0)
    farms = []
    for r in range(0, size - 200, 700):
        for c in range(0, size - 200, 900):
            farms.append((r + 100, c + 150, r + 100 + int(rng.integers(30, 120)),
                          c + 150 + int(rng.integers(30, 160))))  # fmt: skip
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 10, "dtype": "uint16",
        "crs": "EPSG:32643", "transform": Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]),
        "tiled": True, "blockxsize": 512, "blockysize": 512, "nodata": 0, "BIGTIFF": "YES",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.update_tags(BOA_ADD_OFFSET=-1000, BOA_QUANTIFICATION_VALUE=10000)
        for i, b in enumerate(BANDS, start=1):
            dst.set_band_description(i, b)
        for r0 in range(0, size, block):
            for c0 in range(0, size, block):
                h, w = min(block, size - r0), min(block, size - c0)
                refl = np.broadcast_to(VEG[:, None, None], (10, h, w)).copy()
                for fr0, fc0, fr1, fc1 in farms:
                    a, b_ = max(fr0 - r0, 0), min(fr1 - r0, h)
                    c, d = max(fc0 - c0, 0), min(fc1 - c0, w)
                    if a < b_ and c < d:
                        refl[:, a:b_, c:d] = PV[:, None, None]
                refl += rng.normal(0, 0.01, refl.shape)
                dn = np.clip(refl * 10000 + 1000, 1, 65535).astype(np.uint16)
                dst.write(dn, window=Window(c0, r0, w, h))
    return farms


def write_labels(path: Path, farms: list[tuple[int, int, int, int]]) -> None:
    x0, y0 = ORIGIN
    polys = [
        box(x0 + c0 * 10, y0 - r1 * 10, x0 + c1 * 10, y0 - r0 * 10) for r0, c0, r1, c1 in farms
    ]
    gpd.GeoDataFrame(geometry=polys, crs="EPSG:32643").to_crs(4326).to_file(path)


def run(size: int, work: Path) -> dict[str, float]:
    scene, labels, out = (
        work / f"scene_{size}.tif",
        work / f"labels_{size}.geojson",
        work / f"out_{size}",
    )
    write_labels(labels, write_scene(scene, size))
    cmd = [sys.executable, "-m", "solarmap", "-q", "prepare", "--scene", str(scene),
           "--labels", str(labels), "--out", str(out), "--overwrite"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    km2 = size * size * 100 / 1e6
    return {"size": size, "wall_s": wall, "km2": km2, "km2_per_s": km2 / wall,
            "peak_rss_mb": peak_mb, "peak_before_mb": before / 1024}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"{'pixels':>12} {'km²':>8} {'wall s':>8} {'km²/s':>8} {'peak RSS MB':>12}")
        for size in args.sizes:
            r = run(size, work)
            print(f"{size:>7}²     {r['km2']:8.0f} {r['wall_s']:8.1f} {r['km2_per_s']:8.1f} "
                  f"{r['peak_rss_mb']:12.0f}")  # fmt: skip
    print("peak RSS is the maximum over child processes so far (ru_maxrss): a flat column means")
    print("memory does not grow with the scene.")


if __name__ == "__main__":
    main()
