"""Shared fixtures: tiny georeferenced scenes and label files made on the fly."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from solarmap.bands import BANDS

# Exported ONNX graphs go to a folder of this test session, not the user's cache.
os.environ.setdefault("SOLARMAP_CACHE_DIR", tempfile.mkdtemp(prefix="solarmap-test-cache-"))

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
AUSTRIA = REALDATA / "austria-s2-2022"

needs_realdata = pytest.mark.skipif(not AUSTRIA.exists(), reason="shared/realdata is absent")

#: Upper-left corner of the tiny test scenes (UTM 43N, southern India).
ORIGIN = (700000.0, 1560000.0)
CRS = "EPSG:32643"


def write_float_scene(
    path: Path,
    *,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
    crs: str | None = CRS,
    count: int = len(BANDS),
    descriptions: tuple[str, ...] | None = BANDS,
    solar_box: tuple[int, int, int, int] | None = (20, 30, 60, 80),
    nan_band: int | None = None,
    all_nodata: bool = False,
    origin: tuple[float, float] = ORIGIN,
    more_solar: tuple[tuple[int, int, int, int], ...] = (),
) -> Path:
    """A float32 scene (reflectance × 10000) with an optional dark solar rectangle.

    ``solar_box`` is (row0, col0, row1, col1) in pixels.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    veg = np.array([0.03, 0.06, 0.04, 0.10, 0.25, 0.32, 0.35, 0.37, 0.22, 0.11])
    pv = np.array([0.07, 0.08, 0.08, 0.10, 0.15, 0.17, 0.18, 0.19, 0.17, 0.11])
    data = np.broadcast_to(veg[: min(count, 10), None, None], (min(count, 10), h, w)).copy()
    if count > 10:
        data = np.concatenate([data, np.full((count - 10, h, w), 0.1)])
    boxes = ([solar_box] if solar_box is not None else []) + list(more_solar)
    for r0, c0, r1, c1 in boxes if count >= 10 else []:
        data[:10, r0:r1, c0:c1] = pv[:, None, None]
    data = (data + rng.normal(0, 0.005, data.shape)) * 10000
    if nan_band is not None:
        data[nan_band] = np.nan
    if all_nodata:
        data[:] = np.nan
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": count,
        "dtype": "float32",
        "transform": Affine(10, 0, origin[0], 0, -10, origin[1]),
    }
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.float32))
        if descriptions:
            for i, d in enumerate(descriptions[:count], start=1):
                dst.set_band_description(i, d)
        dst.update_tags(scale="reflectance*10000", DATETIME="2022-03-15")
    return path


def box_polygon_4326(
    row0: int, col0: int, row1: int, col1: int, *, origin: tuple[float, float] = ORIGIN
) -> Any:
    """The pixel box (row0, col0, row1, col1) of the tiny scene as a lon/lat polygon."""
    import geopandas as gpd
    from shapely.geometry import box

    x0, y0 = origin
    poly = box(x0 + col0 * 10, y0 - row1 * 10, x0 + col1 * 10, y0 - row0 * 10)
    return gpd.GeoSeries([poly], crs=CRS).to_crs("EPSG:4326").iloc[0]


def write_labels(path: Path, polygons: list[Any], crs: str = "EPSG:4326") -> Path:
    """A GeoJSON/GeoPackage label file of the given polygons."""
    import geopandas as gpd

    gdf = gpd.GeoDataFrame({"id": list(range(len(polygons)))}, geometry=polygons, crs=crs)
    gdf.to_file(path)
    return path


@pytest.fixture
def tiny_scene(tmp_path: Path) -> Path:
    """A 96×128 float scene with a 40×50 px solar rectangle."""
    return write_float_scene(tmp_path / "scene.tif")


@pytest.fixture
def tiny_labels(tmp_path: Path) -> Path:
    """GeoJSON labels matching :func:`tiny_scene`'s solar rectangle."""
    return write_labels(tmp_path / "labels.geojson", [box_polygon_4326(20, 30, 60, 80)])


@pytest.fixture
def scene_factory(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny scene with options (see :func:`write_float_scene`)."""
    counter = iter(range(10_000))

    def make(**kwargs: Any) -> Path:
        return write_float_scene(tmp_path / f"scene_{next(counter)}.tif", **kwargs)

    return make


def reordered_checkpoint(src: Path, dst: Path) -> Path:
    """A copy of the checkpoint ``src`` at ``dst`` whose bands are listed in another order."""
    import json

    import torch

    from solarmap.model import load_checkpoint, save_checkpoint

    meta = json.loads((src / "checkpoint.json").read_text())
    meta["bands"] = [*meta["bands"][1:], meta["bands"][0]]
    with torch.no_grad():
        save_checkpoint(dst, load_checkpoint(src).model, meta)
    return dst


def scene_training_stats(scene: Path) -> dict[str, Any]:
    """The statistics of a scene's valid pixels as a checkpoint's ``training_stats`` (the
    format of a prepared folder's stats.json): a model "trained" on exactly that scene."""
    from data_prep.chips import BandStatistics
    from data_prep.sentinel2 import open_scene

    stats = BandStatistics(seed=0)
    with open_scene(scene) as src:
        stats.update(*src.read(allow_full=True))
    return stats.result()


def checkpoint_with_training_stats(src: Path, dst: Path, stats: dict[str, Any] | None) -> Path:
    """The checkpoint ``src`` saved at ``dst`` (may be ``src``) with ``stats`` as its training
    statistics, or without any (``None``: as written before checkpoints carried them)."""
    import json

    import torch

    from solarmap.model import load_checkpoint, save_checkpoint

    meta = json.loads((src / "checkpoint.json").read_text())
    meta.pop("training_stats", None)
    with torch.no_grad():
        model = load_checkpoint(src).model
        save_checkpoint(dst, model, meta | ({"training_stats": stats} if stats else {}))
    return dst


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved checkpoint of a small random U-Net (encoder depth 3), threshold 0.5."""
    from solarmap.model import ModelConfig, random_checkpoint

    cfg = ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8))
    return random_checkpoint(tmp_path_factory.mktemp("ckpt"), cfg, chip_size=64)


@pytest.fixture(scope="session")
def trained_unet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The default U-Net trained for about 40 s on a 512 px synthetic region.

    Returns ``(checkpoint_dir, scene_tif, truth_gpkg)`` of that region: small, but the real
    architecture with weights shaped by training, not random ones.
    """
    from data_prep.prepare import PrepareConfig, prepare
    from data_prep.synthetic import RegionConfig, generate_region
    from train.fit import TrainConfig, train

    root = tmp_path_factory.mktemp("trained")
    region = generate_region(root / "region", RegionConfig(seed=5, size=512, n_farms=6))
    prepare(
        [region.scene],
        region.osm,
        root / "prepared",
        config=PrepareConfig(chip_size=128, stride=64, block_size=128, seed=0),
    )
    train(
        root / "prepared",
        root / "checkpoint",
        config=TrainConfig(epochs=12, max_minutes=0.7, patience=12, seed=0),
    )
    return root / "checkpoint", region.scene, region.truth
