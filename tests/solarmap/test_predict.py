"""Sliding-window prediction and polygons: known-answer models on tiny in-memory scenes."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.windows import Window
from torch import nn

from solarmap.bands import BANDS
from solarmap.errors import CheckpointError, InputError, OutputExistsError
from solarmap.model import Checkpoint, ModelConfig, build_model
from solarmap.predict import (
    POLYGON_COLUMNS,
    PredictConfig,
    predict_scene,
    probability_to_polygons,
)
from tests.conftest import ORIGIN, scene_training_stats, write_float_scene

UTM = CRS.from_epsg(32643)
GRID = Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1])
#: Band the known-answer models look at, and their weight and bias: prob = sigmoid(A x + B).
K, A, B = 2, 20.0, -10.0


@dataclass(frozen=True)
class Info:
    crs: Any
    transform: Affine
    width: int
    height: int
    bands: tuple[str, ...] = BANDS
    scene_id: str = "S2_TEST"
    date: str | None = "2022-03-15"
    source: Path = Path("memory.tif")


@dataclass
class ArrayScene:
    """An in-memory scene that reads like ``data_prep.sentinel2.Scene`` and logs its reads."""

    data: np.ndarray  # float32[B, H, W]
    valid: np.ndarray  # bool[H, W]
    bands: tuple[str, ...] = BANDS
    reads: list[tuple[int, int, int, int]] = field(default_factory=list)
    date: str | None = "2022-03-15"

    @property
    def info(self) -> Info:
        _, h, w = self.data.shape
        return Info(crs=UTM, transform=GRID, width=w, height=h, bands=self.bands, date=self.date)

    def read(
        self, window: Window | None = None, *, allow_full: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        _, H, W = self.data.shape
        if window is None:
            window = Window(0, 0, W, H)
        c, r, w, h = (int(v) for v in (window.col_off, window.row_off, window.width, window.height))
        if c < 0 or r < 0 or c + w > W or r + h > H or w < 1 or h < 1:
            raise InputError(f"window {window} is not inside the scene")
        self.reads.append((r, c, h, w))
        return self.data[:, r : r + h, c : c + w].copy(), self.valid[r : r + h, c : c + w].copy()


def make_scene(h: int, w: int, *, seed: int = 0) -> ArrayScene:
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.0, 1.0, (len(BANDS), h, w)).astype(np.float32)
    return ArrayScene(data=data, valid=np.ones((h, w), dtype=bool))


#: Training statistics of :func:`make_scene`'s data: every band uniform on [0, 1].
UNIFORM_STATS = {
    "bands": list(BANDS),
    "mean": [0.5] * len(BANDS),
    "std": [math.sqrt(1 / 12)] * len(BANDS),
    "p02": [0.0] * len(BANDS),  # the whole range: the known-answer scenes go to 0 and 1
    "p98": [1.0] * len(BANDS),
    "pixels": 0,
}


def make_checkpoint(
    model: nn.Module, *, threshold: float = 0.5, stats: dict[str, Any] | None = UNIFORM_STATS
) -> Checkpoint:
    """A checkpoint around any module, with identity normalisation (mean 0, std 1) and
    training statistics ``stats`` (none: ``None``)."""
    return Checkpoint(
        model=model.eval(),
        config=ModelConfig(),  # multiple 32
        bands=BANDS,
        mean=[0.0] * len(BANDS),
        std=[1.0] * len(BANDS),
        threshold=threshold,
        chip_size=64,
        metadata={"path": "stub"} | ({"training_stats": stats} if stats is not None else {}),
    )


def linear_model() -> nn.Module:
    """1x1 conv: logit = A * band K + B."""
    conv = nn.Conv2d(len(BANDS), 1, kernel_size=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, K] = A
        assert conv.bias is not None
        conv.bias.fill_(B)
    return conv


def box_model() -> nn.Module:
    """9x9 mean of band K with zero padding: values near a window's edge depend on position."""
    conv = nn.Conv2d(len(BANDS), 1, kernel_size=9, padding=4, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, K] = 2.0 / 81
    return conv


def expected(scene: ArrayScene) -> np.ndarray:
    p = 1 / (1 + np.exp(-(A * scene.data[K].astype(np.float64) + B)))
    return np.where(scene.valid, p, np.nan)


def read_prob(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


SMALL = PredictConfig(window=64, overlap=16, batch_size=3)


def test_grid_cog_tags_and_known_answer_without_seams(tmp_path: Path) -> None:
    scene = make_scene(200, 300)
    scene.valid[50:70, 100:180] = False  # a cloud
    scene.data[:, 150:155, 10:20] = np.nan  # no data in the reflectance only
    res = predict_scene(scene, make_checkpoint(linear_model()), tmp_path / "out", config=SMALL)

    with rasterio.open(res.probability) as ds:
        assert ds.crs == UTM
        assert ds.transform == GRID
        assert (ds.height, ds.width) == (200, 300)
        assert ds.count == 1 and ds.dtypes[0] == "float32"
        assert math.isnan(ds.nodata)
        assert ds.descriptions == ("solar_probability",)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        tags = ds.tags()
        prob = ds.read(1)
    assert tags["SCENE_ID"] == "S2_TEST"
    assert tags["DATETIME"] == "2022-03-15"
    assert float(tags["THRESHOLD"]) == 0.5
    assert tags["CHECKPOINT"] == "stub"
    assert "SOLARMAP_VERSION" in tags

    want = expected(scene)
    want[150:155, 10:20] = np.nan
    assert np.array_equal(np.isnan(prob), np.isnan(want))
    np.testing.assert_allclose(prob, want, atol=2e-6, equal_nan=True)
    # Streaming: no read is taller than a window or covers the whole scene.
    assert scene.reads and max(h for _, _, h, _ in scene.reads) <= SMALL.window
    assert set(res.seconds) == {
        "read",
        "read_wait",
        "forward",
        "blend",
        "write",
        "polygonize",
        "ood",
    }
    assert all(v >= 0 for v in res.seconds.values())

    record = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert record["config"]["window"] == 64
    assert record["scene"]["scene_id"] == "S2_TEST"
    assert record["checkpoint"]["id"] == "stub"
    assert record["counts"]["valid_pixels"] == int((~np.isnan(want)).sum())
    assert record["counts"]["windows"] == 4 * 6  # rows 0 48 96 136, cols 0 48 .. 192 236


def test_blending_hides_window_seams(tmp_path: Path) -> None:
    scene = make_scene(200, 300)
    scene.data[K] = 1.0  # constant input: an ideal model gives a constant map
    ckpt = make_checkpoint(box_model())

    def max_jump(overlap: int, name: str) -> float:
        cfg = PredictConfig(window=64, overlap=overlap, batch_size=4)
        prob = read_prob(predict_scene(scene, ckpt, tmp_path / name, config=cfg).probability)
        inner = prob[8:-8, 8:-8]  # the scene border keeps the zero-padding dip: ignore it
        return max(float(np.abs(np.diff(inner, axis=a)).max()) for a in (0, 1))

    hard = max_jump(0, "hard")
    blended = max_jump(16, "blended")
    assert hard > 0.02  # the stub really has edge effects
    assert blended < 0.25 * hard


def test_keep_writes_that_part_with_the_pixels_of_the_whole_run(tmp_path: Path) -> None:
    """A kept part (a survey tile in its halo) has the pixels the whole scene's run has there,
    on its own grid, and polygons of that part only."""
    scene = make_scene(200, 300)
    ckpt = make_checkpoint(box_model())
    cfg = PredictConfig(window=64, overlap=16, batch_size=4)
    whole = predict_scene(scene, ckpt, tmp_path / "whole", config=cfg)
    keep = (40, 24, 200, 150)
    part = predict_scene(scene, ckpt, tmp_path / "part", config=PredictConfig(
        window=64, overlap=16, batch_size=4, keep=keep))  # fmt: skip
    c, r, w, h = keep
    np.testing.assert_array_equal(read_prob(part.probability), read_prob(whole.probability)[
        r : r + h, c : c + w])  # fmt: skip
    with rasterio.open(part.probability) as a, rasterio.open(whole.probability) as b:
        assert a.transform == b.transform * Affine.translation(c, r)
    with pytest.raises(InputError, match="outside"):
        predict_scene(scene, ckpt, tmp_path / "x", config=PredictConfig(keep=(250, 0, 100, 10)))
    with pytest.raises(InputError, match="keep"):
        PredictConfig(keep=(0, 0, 0, 10))


def test_rectangle_across_windows_and_strips_is_one_polygon(tmp_path: Path) -> None:
    scene = make_scene(260, 300)
    scene.data[K] = 0.0
    scene.data[K, 30:170, 40:250] = 1.0  # 140 x 210 px across windows and strips
    scene.data[K, 200:240, 20:30] = 1.0  # a U: two arms joined at the bottom
    scene.data[K, 200:240, 60:70] = 1.0
    scene.data[K, 235:245, 20:70] = 1.0
    res = predict_scene(scene, make_checkpoint(linear_model()), tmp_path / "out", config=SMALL)

    import geopandas as gpd

    gdf = gpd.read_file(res.polygons, layer="solar")
    assert res.n_polygons == len(gdf) == 2
    assert list(gdf.columns) == [*POLYGON_COLUMNS, "geometry"]
    assert gdf.crs == UTM
    p_hi = 1 / (1 + math.exp(-(A + B)))
    for strip in (1024, 37, 7):  # one strip, seams through both shapes, many seams
        polys = probability_to_polygons(
            res.probability, threshold=0.5, scene_id="S2_TEST", date="2022-03-15", strip=strip
        )
        assert len(polys) == 2, strip
        rect, u_shape = polys.iloc[0], polys.iloc[1]
        assert rect.area_m2 == pytest.approx(140 * 210 * 100, rel=0.01)
        u_pixels = 2 * 40 * 10 + 10 * 50 - 2 * 5 * 10  # arms + bar - overlap
        assert u_shape.area_m2 == pytest.approx(u_pixels * 100, rel=0.01)
        assert rect.geometry.area == pytest.approx(140 * 210 * 100)  # UTM, exact pixels
        assert rect.mean_prob == pytest.approx(p_hi, abs=1e-5)
        assert rect.max_prob == pytest.approx(p_hi, abs=1e-5)
        assert list(polys["id"]) == [1, 2]
        assert set(polys.scene_id) == {"S2_TEST"} and set(polys.date) == {dt.date(2022, 3, 15)}
    x = ORIGIN[0] + 10 * (40 + 250) / 2
    y = ORIGIN[1] - 10 * (30 + 170) / 2
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)
    assert gdf.iloc[0].centroid_lon == pytest.approx(lon, abs=1e-5)
    assert gdf.iloc[0].centroid_lat == pytest.approx(lat, abs=1e-5)


def test_min_area_drops_small_polygons_and_empty_layer_keeps_schema(tmp_path: Path) -> None:
    scene = make_scene(100, 120)
    scene.data[K] = 0.0
    scene.data[K, 10:40, 10:50] = 1.0  # 1200 px = 120 000 m²
    scene.data[K, 70:73, 90:93] = 1.0  # 9 px = 900 m²
    ckpt = make_checkpoint(linear_model())
    all_polys = predict_scene(scene, ckpt, tmp_path / "all", config=SMALL)
    assert all_polys.n_polygons == 2
    cfg = PredictConfig(window=64, overlap=16, min_area_m2=1000.0)
    big = predict_scene(scene, ckpt, tmp_path / "big", config=cfg)
    assert big.n_polygons == 1

    import geopandas as gpd

    scene.data[K] = 0.0  # nothing reaches the threshold
    none = predict_scene(scene, ckpt, tmp_path / "none", config=SMALL)
    assert none.n_polygons == 0
    empty = gpd.read_file(none.polygons, layer="solar")
    assert len(empty) == 0
    assert list(empty.columns) == [*POLYGON_COLUMNS, "geometry"]
    assert empty.crs == UTM


@pytest.mark.parametrize("date", ["2022-03-15", None])
def test_polygon_date_is_a_date_field_null_without_a_scene_date(
    date: str | None, tmp_path: Path
) -> None:
    import geopandas as gpd
    import pandas as pd
    import pyogrio

    scene = make_scene(64, 64)
    scene.date = date
    scene.data[K] = 0.0
    scene.data[K, 10:30, 10:30] = 1.0
    ckpt = make_checkpoint(linear_model())
    found = predict_scene(scene, ckpt, tmp_path / "found", config=SMALL)
    scene.data[K] = 0.0
    empty = predict_scene(scene, ckpt, tmp_path / "empty", config=SMALL)
    for res, n in ((found, 1), (empty, 0)):
        info = pyogrio.read_info(res.polygons, layer="solar")
        assert dict(zip(info["fields"], info["ogr_types"], strict=True))["date"] == "OFTDate"
        assert info["geometry_type"] in ("Polygon", "Unknown") and info["features"] == n
    (value,) = gpd.read_file(found.polygons, layer="solar")["date"]
    if date is None:
        assert pd.isna(value)
    else:
        assert value.date() == dt.date(2022, 3, 15)


def test_scene_smaller_than_a_window_is_padded(tmp_path: Path) -> None:
    scene = make_scene(40, 50)
    res = predict_scene(scene, make_checkpoint(linear_model()), tmp_path / "out", config=SMALL)
    prob = read_prob(res.probability)
    assert prob.shape == (40, 50)
    np.testing.assert_allclose(prob, expected(scene), atol=2e-6)


def test_band_mismatch_is_refused(tmp_path: Path) -> None:
    scene = make_scene(64, 64)
    scene.bands = (*BANDS[:-2], BANDS[-1], BANDS[-2])
    with pytest.raises(CheckpointError, match="differ from the checkpoint"):
        predict_scene(scene, make_checkpoint(linear_model()), tmp_path / "out", config=SMALL)
    assert not (tmp_path / "out").exists()


def test_all_invalid_scene_leaves_no_output(tmp_path: Path) -> None:
    scene = make_scene(100, 90)
    scene.valid[:] = False
    parent = tmp_path / "runs"
    with pytest.raises(InputError, match="no valid pixel"):
        predict_scene(scene, make_checkpoint(linear_model()), parent / "out", config=SMALL)
    assert not (parent / "out").exists()
    assert list(parent.iterdir()) == []  # no half-written temporary folder either


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    scene = make_scene(64, 64)
    ckpt = make_checkpoint(linear_model())
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError):
        predict_scene(scene, ckpt, tmp_path / "out", config=SMALL)
    res = predict_scene(scene, ckpt, tmp_path / "out", config=SMALL, overwrite=True)
    assert res.probability.exists()


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 0}, {"overlap": 64, "window": 64}, {"overlap": -1}, {"batch_size": 0},
     {"threshold": 1.5}, {"threshold": 0.0}, {"min_area_m2": -1.0}, {"device": "warp-drive"},
     {"overlap": 500}, {"overlap": 17, "window": 64}, {"window": 10**5}, {"min_area_m2": math.inf},
     {"min_area_m2": math.nan}, {"batch_size": 1000, "window": 4096}, {"ood_check": "bogus"}],
)  # fmt: skip
def test_config_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        PredictConfig(**kwargs)


def test_window_must_fit_the_model(tmp_path: Path) -> None:
    cfg = PredictConfig(window=48, overlap=8)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="multiple of 32"):
        predict_scene(make_scene(64, 64), make_checkpoint(linear_model()), out, config=cfg)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_device_is_refused(tmp_path: Path) -> None:
    cfg = PredictConfig(window=64, overlap=16, device="cuda")
    out = tmp_path / "out"
    with pytest.raises(InputError, match="CUDA is not available"):
        predict_scene(make_scene(64, 64), make_checkpoint(linear_model()), out, config=cfg)
    assert not out.exists()


def test_polygons_refuse_bad_arguments(tmp_path: Path) -> None:
    res = predict_scene(make_scene(64, 64), make_checkpoint(linear_model()), tmp_path / "o")
    for threshold in (0.0, 1.0):
        with pytest.raises(InputError, match="threshold"):
            probability_to_polygons(res.probability, threshold=threshold)
    with pytest.raises(InputError, match="strip"):
        probability_to_polygons(res.probability, threshold=0.5, strip=0)


def test_real_unet_end_to_end_on_a_scene_file(tmp_path: Path) -> None:
    from data_prep.sentinel2 import open_scene

    config = ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8))
    torch.manual_seed(0)
    path = write_float_scene(tmp_path / "scene.tif", size=(96, 128))
    trained_on = write_float_scene(tmp_path / "training.tif", size=(96, 128), seed=1)
    ckpt = Checkpoint(
        model=build_model(config).eval(),
        config=config,
        bands=BANDS,
        mean=[0.1] * len(BANDS),
        std=[0.05] * len(BANDS),
        threshold=0.5,
        chip_size=64,
        metadata={
            "chip_size": 64,
            "threshold": 0.5,
            "training_stats": scene_training_stats(trained_on),
        },
    )
    with open_scene(path) as scene:
        res = predict_scene(
            scene, ckpt, tmp_path / "out", config=PredictConfig(window=64, overlap=16)
        )
        info = scene.info
    with rasterio.open(res.probability) as ds:
        assert (ds.height, ds.width) == (96, 128)
        assert ds.crs == info.crs and ds.transform == info.transform
        assert ds.tags()["CHECKPOINT"].startswith("sha256:")
        prob = ds.read(1)
    assert np.isfinite(prob).all()
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    assert res.polygons.exists()
    record = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert record["checkpoint"]["chip_size"] == 64
    assert record["scene"]["source"] == str(path)
    assert record["ood"]["warning"] is False  # a scene like the training one
    assert record["ood"]["pixels"] == 96 * 128 and record["ood"]["step"] == 1


# ------------------------------------------------------------------ out-of-distribution check


def spectral_checkpoint() -> Checkpoint:
    from tests.solarmap.test_ood import spectral_stats

    return make_checkpoint(linear_model(), stats=spectral_stats())


def spectral_array_scene(h: int = 130, w: int = 150) -> ArrayScene:
    from tests.solarmap.test_ood import spectral_scene

    return ArrayScene(data=spectral_scene(h, w), valid=np.ones((h, w), dtype=bool))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_scene_inside_the_training_data_does_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    res = predict_scene(spectral_array_scene(), spectral_checkpoint(), tmp_path / "o", config=SMALL)
    assert _warnings(caplog) == []
    record = json.loads((tmp_path / "o" / "predict.json").read_text())["ood"]
    assert record == res.ood
    assert record["check"] == "warn" and record["warning"] is False
    assert record["bands_outside"] == [] and record["score"] < 1


@pytest.mark.parametrize(
    ("change", "bands"),
    [
        ("scaled", ["B03", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]),
        ("shifted", ["B11", "B12"]),
    ],
)
def test_scene_far_outside_warns_and_names_the_bands(
    change: str, bands: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scene = spectral_array_scene()
    if change == "scaled":
        scene.data *= 2.5
    else:
        scene.data[[BANDS.index("B11"), BANDS.index("B12")]] += 0.15
    res = predict_scene(scene, spectral_checkpoint(), tmp_path / "o", config=SMALL)
    (line,) = _warnings(caplog)
    assert line.startswith("S2_TEST: outside the model's training data")
    assert all(b in line for b in bands) and "do not trust" in line
    record = json.loads((tmp_path / "o" / "predict.json").read_text())["ood"]
    assert record["warning"] is True and record["bands_outside"] == bands
    assert record["score"] > 1 and record == res.ood
    assert res.probability.exists()  # a warning, not a refusal


def test_scene_statistics_come_from_the_prediction_reads(tmp_path: Path) -> None:
    scene = make_scene(200, 300, seed=3)
    scene.valid[50:70, 100:180] = False
    scene.data[:, 150:155, 10:20] = np.nan
    scene.data[4, :, :40] = 1.5  # above the training range: some pixels outside
    res = predict_scene(scene, make_checkpoint(linear_model()), tmp_path / "o", config=SMALL)
    reads_on = len(scene.reads)

    ok = scene.valid & np.isfinite(scene.data).all(axis=0)
    px = scene.data[:, ok].astype(np.float64)
    ood = res.ood
    assert ood["pixels"] == int(ok.sum()) and ood["step"] == 1
    assert ood["outside_share"] == pytest.approx(((px < 0) | (px > 1)).any(axis=0).mean(), abs=1e-4)
    for b, band in enumerate(BANDS):
        assert ood["bands"][band]["mean"] == pytest.approx(px[b].mean(), abs=1e-4)
        assert ood["bands"][band]["median"] == pytest.approx(np.median(px[b]), abs=1e-3)
    # No second pass over the scene: the same reads as without the check.
    scene.reads.clear()
    off = PredictConfig(window=64, overlap=16, batch_size=3, ood_check="off")
    predict_scene(scene, make_checkpoint(linear_model()), tmp_path / "off", config=off)
    assert len(scene.reads) == reads_on


def test_ood_check_off_records_it_skipped(tmp_path: Path) -> None:
    cfg = PredictConfig(window=64, overlap=16, ood_check="off")
    ckpt = make_checkpoint(linear_model(), stats=None)  # needs no training statistics
    res = predict_scene(make_scene(64, 64), ckpt, tmp_path / "o", config=cfg)
    record = json.loads((tmp_path / "o" / "predict.json").read_text())
    assert record["ood"] == {"check": "off", "skipped": True} == res.ood
    assert record["config"]["ood_check"] == "off" and res.seconds["ood"] == 0


def test_checkpoint_without_training_statistics_is_refused_before_any_work(
    tmp_path: Path,
) -> None:
    scene = make_scene(64, 64)
    out = tmp_path / "o"
    with pytest.raises(InputError, match=r"stub: has no training statistics.*--ood-check off"):
        predict_scene(scene, make_checkpoint(linear_model(), stats=None), out, config=SMALL)
    assert not out.exists() and scene.reads == []
    broken = make_checkpoint(linear_model(), stats={**UNIFORM_STATS, "std": [0.0] * 10})
    with pytest.raises(CheckpointError, match="stub: training statistics"):
        predict_scene(scene, broken, out, config=SMALL)
    assert not out.exists() and scene.reads == []
