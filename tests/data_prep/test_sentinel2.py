"""Reading Sentinel-2 L2A scenes: the three forms, encodings, SCL masking, windows and errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

from data_prep import sentinel2
from data_prep.sentinel2 import (
    SCL_CLASSES,
    SCL_INVALID,
    Scene,
    SceneOptions,
    open_scene,
    read_scene,
)
from solarmap.bands import BANDS, NATIVE_RESOLUTION_M
from solarmap.errors import InputError, InputFileError
from tests.data.make_safe import (
    NODATA_COLS,
    ORIGIN,
    PRODUCT,
    Truth,
    make_band_folder,
    make_geotiff,
    make_safe,
    scene_truth,
    write_raster,
)

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
AUSTRIA = REALDATA / "austria-s2-2022"
needs_austria = pytest.mark.skipif(not AUSTRIA.exists(), reason="shared/realdata is absent")

TEN_M = [i for i, b in enumerate(BANDS) if NATIVE_RESOLUTION_M[b] == 10]
TWENTY_M = [i for i, b in enumerate(BANDS) if NATIVE_RESOLUTION_M[b] == 20]
#: Largest difference bilinear resampling of the 20 m block means makes on the smooth fixture.
RESAMPLING_TOL = 0.01


@pytest.fixture(scope="module")
def truth() -> Truth:
    return scene_truth()


@pytest.fixture(scope="module")
def safe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_safe(tmp_path_factory.mktemp("safe"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_band_folder(tmp_path_factory.mktemp("folder"))[0]


@pytest.fixture(scope="module")
def geotiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_geotiff(tmp_path_factory.mktemp("geotiff"))[0]


def halo() -> np.ndarray:
    """The 10 m column next to the no-data strip, blended with no data by 20 m resampling."""
    mask = np.zeros((64, 64), dtype=bool)
    mask[:, NODATA_COLS] = True
    return mask


def assert_matches_truth(
    refl: np.ndarray, valid: np.ndarray, truth: Truth, *, resampled: bool
) -> None:
    """10 m bands exactly, 20 m bands within resampling tolerance when they were resampled."""
    assert refl.dtype == np.float32 and refl.shape == (10, 64, 64)
    assert valid.dtype == np.bool_ and valid.shape == (64, 64)
    expected = truth.reflectance.copy()
    expected_valid = truth.valid.copy()
    if resampled:  # blended with no data: NaN in the 20 m bands, the pixel invalid
        expected[TWENTY_M] = np.where(halo(), np.nan, expected[TWENTY_M])
        expected_valid &= ~halo()
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_allclose(refl[TEN_M], expected[TEN_M], atol=1e-6, equal_nan=True)
    if resampled:
        assert np.array_equal(np.isnan(refl[TWENTY_M]), np.isnan(expected[TWENTY_M]))
        err = np.nanmax(np.abs(refl[TWENTY_M] - expected[TWENTY_M]))
        assert 0 < err < RESAMPLING_TOL  # resampled, yet close
    else:
        np.testing.assert_allclose(refl[TWENTY_M], expected[TWENTY_M], atol=1e-6, equal_nan=True)


# --- the three forms ---------------------------------------------------------------------------


def test_safe_reads_reflectance_and_metadata(safe: Path, truth: Truth) -> None:
    refl, valid, info = read_scene(safe)
    assert_matches_truth(refl, valid, truth, resampled=True)
    assert info.form == "safe" and info.source == safe
    assert info.scene_id == PRODUCT and info.date == "2022-03-15"
    assert info.crs.to_epsg() == 32643
    assert info.transform == Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1])
    assert (info.width, info.height, info.shape, info.res) == (64, 64, (64, 64), (10.0, 10.0))
    assert info.bounds == (ORIGIN[0], ORIGIN[1] - 640, ORIGIN[0] + 640, ORIGIN[1])
    assert info.bands == BANDS and info.has_scl
    assert info.scale == (1e-4,) * 10 and info.offset == pytest.approx((-0.1,) * 10)
    assert info.encoding == "L2A DN, offset -1000, quantification 10000"


def test_safe_opens_from_its_metadata_file(safe: Path) -> None:
    with open_scene(safe / "MTD_MSIL2A.xml") as scene:
        assert scene.info.form == "safe" and scene.info.source == safe


def test_safe_before_baseline_04_has_no_offset(tmp_path: Path, truth: Truth) -> None:
    refl, valid, info = read_scene(make_safe(tmp_path, offset=False))
    assert_matches_truth(refl, valid, truth, resampled=True)
    assert info.offset == (0.0,) * 10 and "offset 0," in info.encoding
    assert info.date == "2021-03-15"


@pytest.mark.parametrize(("ext", "naming"), [("jp2", "l2a"), ("tif", "short")])
def test_band_folder_reads_like_safe(
    tmp_path: Path, safe: Path, truth: Truth, ext: str, naming: str
) -> None:
    path, _ = make_band_folder(tmp_path, ext=ext, naming=naming)  # type: ignore[arg-type]
    refl, valid, info = read_scene(path)
    assert_matches_truth(refl, valid, truth, resampled=True)
    safe_refl, safe_valid, _ = read_scene(safe)
    np.testing.assert_array_equal(refl, safe_refl)  # same files, same resampling
    np.testing.assert_array_equal(valid, safe_valid)
    assert info.form == "folder" and info.has_scl
    assert info.offset == pytest.approx((-0.1,) * 10)
    if naming == "l2a":
        assert info.scene_id == "T43PGQ_20220315T050701" and info.date == "2022-03-15"
        assert "assumed from sensing date 2022-03-15" in info.encoding
    else:
        assert info.scene_id == path.name and info.date is None
        assert info.encoding == "L2A DN, offset -1000, quantification 10000"


def test_geotiff_reads_exactly(geotiff: Path, truth: Truth, safe: Path) -> None:
    refl, valid, info = read_scene(geotiff)
    assert_matches_truth(refl, valid, truth, resampled=False)
    assert info.form == "geotiff" and info.scene_id == "T43PGQ_2022-03-15"
    assert info.date == "2022-03-15" and info.has_scl
    assert info.encoding == "L2A DN, offset -1000, quantification 10000"
    # The 10 m bands of every form agree exactly, the 20 m bands within resampling tolerance.
    safe_refl, _, _ = read_scene(safe)
    np.testing.assert_array_equal(
        refl[TEN_M][:, :, NODATA_COLS + 1 :], safe_refl[TEN_M][:, :, NODATA_COLS + 1 :]
    )
    assert np.nanmax(np.abs(refl - safe_refl)) < RESAMPLING_TOL


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("dn", "L2A DN, offset -1000, quantification 10000 (assumed from sensing date 2022-03-15)"),
        ("gdal_scale", "GDAL scale 0.0001, offset -0.1"),
        ("float10000", "float reflectance x10000"),
        ("float10000_untagged", "float reflectance x10000"),
        ("float01", "float reflectance 0-1"),
    ],
)
def test_geotiff_encodings(tmp_path: Path, truth: Truth, encoding: str, expected: str) -> None:
    path, _ = make_geotiff(tmp_path, encoding=encoding)  # type: ignore[arg-type]
    refl, valid, info = read_scene(path)
    assert info.encoding == expected
    assert_matches_truth(refl, valid, truth, resampled=False)


def test_integer_dn_without_date_assumes_no_offset(
    tmp_path: Path, truth: Truth, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = make_geotiff(tmp_path, encoding="dn", name="scene.tif")
    with caplog.at_level(logging.WARNING, logger="data_prep.sentinel2"):
        refl, _, info = read_scene(path)
    assert info.date is None and info.offset == (0.0,) * 10
    assert "assuming L2A DN" in caplog.text and "no date or processing baseline" in caplog.text
    data = ~truth.nodata
    np.testing.assert_allclose(refl[:, data], truth.reflectance[:, data] + 0.1, atol=1e-6)


@pytest.mark.parametrize(
    ("tags", "date", "offset"),
    [
        ({"DATETIME": "2021-06-01T10:00:00Z"}, "2021-06-01", 0.0),  # before 2022-01-25
        ({"SENSING_TIME": "2022-02-01T10:00:00Z"}, "2022-02-01", -0.1),
        ({"PROCESSING_BASELINE": "04.00"}, None, -0.1),
    ],
)
def test_offset_from_date_or_baseline_tags(
    tmp_path: Path, tags: dict[str, str], date: str | None, offset: float
) -> None:
    path, _ = make_geotiff(tmp_path, encoding="dn", name="scene.tif")
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**tags)
    with open_scene(path) as scene:
        assert scene.info.date == date
        assert scene.info.offset == pytest.approx((offset,) * 10)


# --- windows -----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["safe", "folder", "geotiff"])
def test_windowed_reads_equal_the_full_read(form: str, request: pytest.FixtureRequest) -> None:
    with open_scene(request.getfixturevalue(form)) as scene:
        full_refl, full_valid = scene.read()
        refl = np.full_like(full_refl, -1.0)
        valid = np.zeros_like(full_valid)
        for w in scene.windows(24):
            rows, cols = w.toslices()
            refl[:, rows, cols], valid[rows, cols] = scene.read(w)
        np.testing.assert_array_equal(refl, full_refl)
        np.testing.assert_array_equal(valid, full_valid)
        odd = Window(13, 7, 20, 31)  # starts half-way into a 20 m pixel
        r, v = scene.read(odd)
        np.testing.assert_array_equal(r, full_refl[:, 7:38, 13:33])
        np.testing.assert_array_equal(v, full_valid[7:38, 13:33])


def test_windows_are_row_major_tiles(geotiff: Path) -> None:
    with open_scene(geotiff) as scene:
        got = [(w.col_off, w.row_off, w.width, w.height) for w in scene.windows(24)]
        assert scene.info.shape == (64, 64)
        with pytest.raises(InputError, match="window size 0"):
            scene.windows(0)
    assert got == [
        (c, r, 24 if c < 48 else 16, 24 if r < 48 else 16) for r in (0, 24, 48) for c in (0, 24, 48)
    ]


# --- band order --------------------------------------------------------------------------------


def test_bands_are_reordered_by_descriptions(
    tmp_path: Path, truth: Truth, caplog: pytest.LogCaptureFixture
) -> None:
    order = ["B12", "B8A", "B02", "B05", "B03", "B11", "B04", "B07", "B06", "B08"]
    spelled = ["b12", "b8a", "B2", "B05", "B3", "B11", "b04", "B7", "B6", "B8"]
    path, _ = make_geotiff(tmp_path, order=order, descriptions=spelled)
    with caplog.at_level(logging.INFO, logger="data_prep.sentinel2"):
        refl, valid, _ = read_scene(path)
    assert "reordering" in caplog.text
    assert_matches_truth(refl, valid, truth, resampled=False)


def test_missing_descriptions_assume_contract_order(
    tmp_path: Path, truth: Truth, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = make_geotiff(tmp_path, descriptions=False)
    with caplog.at_level(logging.WARNING, logger="data_prep.sentinel2"):
        refl, valid, _ = read_scene(path)
    assert "no band descriptions; assuming contract order" in caplog.text
    assert_matches_truth(refl, valid, truth, resampled=False)


@pytest.mark.parametrize(
    "descriptions",
    [
        ["B01", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"],  # unknown band
        ["B02", "B02", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"],  # B03 missing
        ["B02", "", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"],  # one undescribed
        ["blue", "green", "red", "re1", "re2", "re3", "nir", "nir2", "swir1", "swir2"],
    ],
)
def test_unknown_band_order_is_refused(tmp_path: Path, descriptions: list[str]) -> None:
    path, _ = make_geotiff(tmp_path, descriptions=descriptions, scl="none")
    with pytest.raises(
        InputError, match=r"unknown band order \(.*\); expected band descriptions B02"
    ):
        open_scene(path)


def test_wrong_band_count_is_refused(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "rgb.tif", np.ones((3, 16, 16), np.uint16))
    with pytest.raises(InputError, match=r"rgb.tif: has 3 bands; expected 10 \(B02"):
        open_scene(path)


@pytest.mark.parametrize(
    ("name", "band"),
    [
        ("B02.tif", "B02"),
        ("b8a.tif", "B8A"),
        ("B8.tif", "B08"),
        ("T43PGQ_20220315T050701_B8A_20m.jp2", "B8A"),
        ("T43PGQ_20220315T050701_B08_10m.jp2", "B08"),
        ("T31UBU_20220315T050701_B12_20m.jp2", "B12"),  # "UBU" is not a band token
        ("T43PGQ_20220315T050701_B01_60m.jp2", None),
        ("T43PGQ_20220315T050701_B09_60m.jp2", None),
        ("B10.tif", None),
        ("T43PGQ_20220315T050701_TCI_10m.jp2", None),
        ("T43PGQ_20220315T050701_AOT_20m.jp2", None),
        ("T43PGQ_20220315T050701_WVP_20m.jp2", None),
        ("B012.tif", None),
        ("sub02_B03.tif", "B03"),  # "b02" inside a word is not a band token
    ],
)
def test_band_token_in_file_names(name: str, band: str | None) -> None:
    assert sentinel2._band_of_name(name) == band


# --- validity: SCL and no data -----------------------------------------------------------------


def test_scl_masks_clouds_and_keeps_snow(geotiff: Path, truth: Truth) -> None:
    refl, valid, _ = read_scene(geotiff)
    data = ~truth.nodata
    for code in (1, 3, 8, 9, 10):  # saturated, shadow, cloud medium/high, cirrus
        where = (truth.scl10 == code) & data
        assert where.any(), SCL_CLASSES[code]
        assert not valid[where].any(), SCL_CLASSES[code]
        assert np.isfinite(refl[:, where]).all()  # cloudy pixels keep their reflectance
    for code in (2, 4, 5, 6, 11):  # dark area, vegetation, bare, water, snow
        where = (truth.scl10 == code) & data
        assert where.any() and valid[where].all(), SCL_CLASSES[code]
    assert {0, 1, 3, 8, 9, 10} == SCL_INVALID and len(SCL_CLASSES) == 12


def test_scl_sibling_argument_and_absence(tmp_path: Path, truth: Truth) -> None:
    path, _ = make_geotiff(tmp_path, scl="none")
    _, valid, info = read_scene(path)
    assert not info.has_scl
    np.testing.assert_array_equal(valid, ~truth.nodata)  # only no data is invalid
    scl10 = write_raster(tmp_path / "classes.tif", truth.scl10)
    _, valid, info = read_scene(path, scl=scl10)
    assert info.has_scl
    np.testing.assert_array_equal(valid, truth.valid)
    sibling, _ = make_geotiff(tmp_path / "ten", scl="10m")
    _, valid, info = read_scene(sibling)
    assert info.has_scl
    np.testing.assert_array_equal(valid, truth.valid)


def test_nodata_in_one_band_invalidates_the_pixel(tmp_path: Path) -> None:
    data = np.full((10, 16, 16), 0.2, dtype=np.float32)
    data[3, 4, 5] = np.nan
    data[7, 9, 2] = np.inf
    data[0, 12, 12] = -9999
    path = write_raster(tmp_path / "float.tif", data, nodata=-9999, descriptions=BANDS)
    refl, valid, info = read_scene(path)
    assert info.encoding == "float reflectance 0-1"
    bad = ~np.isfinite(data) | (data == -9999)
    np.testing.assert_array_equal(valid, ~bad.any(axis=0))
    np.testing.assert_array_equal(np.isnan(refl), bad)  # NaN only in the band without data
    np.testing.assert_allclose(refl[~bad], 0.2)


# --- real data ---------------------------------------------------------------------------------


@pytest.mark.realdata
@needs_austria
@pytest.mark.parametrize(
    ("name", "epsg", "date"),
    [
        ("s2_102_2022-06-30.tif", 32632, "2022-06-30"),
        ("s2_1309_2022-07-02.tif", 32633, "2022-07-02"),
        ("s2_1309_median_AprSep2022.tif", 32633, None),
    ],
)
def test_real_chips(name: str, epsg: int, date: str | None) -> None:
    path = AUSTRIA / name
    refl, valid, info = read_scene(path)
    assert info.form == "geotiff" and info.scene_id == path.stem and info.date == date
    assert info.crs.to_epsg() == epsg and info.res == (10.0, 10.0)
    assert info.encoding == "float reflectance x10000" and not info.has_scl
    assert min(info.shape) >= 13 and max(info.shape) <= 61
    assert valid.all()
    assert np.nanmin(refl) > -0.05 and np.nanmax(refl) < 1.0 and np.nanmedian(refl) > 0.01
    with rasterio.open(path) as ds:
        np.testing.assert_allclose(refl, ds.read() / 10000, rtol=1e-6)


# --- errors ------------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nowhere\.tif: scene not found"):
        open_scene(tmp_path / "nowhere.tif")


def test_not_a_raster(tmp_path: Path) -> None:
    path = tmp_path / "scene.tif"
    path.write_text("not an image")
    with pytest.raises(InputFileError, match=r"scene\.tif: not a raster GDAL can read"):
        open_scene(path)


def test_zipped_product(tmp_path: Path) -> None:
    path = tmp_path / f"{PRODUCT}.zip"
    path.write_bytes(b"PK")
    with pytest.raises(InputFileError, match="unzip it"):
        open_scene(path)


def test_no_crs(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "plain.tif", np.ones((10, 8, 8), np.uint16), crs=None)
    with pytest.raises(InputError, match=r"plain\.tif: has no CRS; assign one with gdal_edit\.py"):
        open_scene(path)


def test_full_read_of_a_large_scene_needs_allow_full(tmp_path: Path) -> None:
    path = tmp_path / "large.tif"
    profile = {
        "driver": "GTiff", "width": 4100, "height": 4100, "count": 10, "dtype": "uint16",
        "crs": "EPSG:32643", "transform": Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]),
        "tiled": True, "blockxsize": 256, "blockysize": 256, "SPARSE_OK": True,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        # one block of data, the rest unwritten: a sparse file of zeros (no data)
        dst.write(np.full((10, 256, 256), 1500, np.uint16), window=Window(0, 0, 256, 256))
    with open_scene(path) as scene:
        with pytest.raises(InputError, match=r"4100x4100 pixels.*read it in windows"):
            scene.read()
        refl, valid = scene.read(Window(4000, 4000, 100, 100))
    assert refl.shape == (10, 100, 100) and not valid.any() and np.isnan(refl).all()


def test_allow_full_lifts_the_size_limit(geotiff: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentinel2, "MAX_FULL_READ_PIXELS", 32 * 32)
    with open_scene(geotiff) as scene:
        with pytest.raises(InputError, match="read it in windows"):
            scene.read()
        refl, _ = scene.read(allow_full=True)
    assert refl.shape == (10, 64, 64)


def test_window_outside_the_scene(geotiff: Path) -> None:
    with open_scene(geotiff) as scene:
        for bad in (Window(60, 0, 8, 8), Window(-1, 0, 8, 8), Window(0, 0, 0, 8)):
            with pytest.raises(InputError, match="is not inside the scene"):
                scene.read(bad)


def test_closed_scene_cannot_be_read(geotiff: Path) -> None:
    scene = open_scene(geotiff)
    assert isinstance(scene, Scene)
    scene.close()
    with pytest.raises(ValueError, match="scene is closed"):
        scene.read()


def test_folder_with_missing_bands(tmp_path: Path) -> None:
    path, _ = make_band_folder(tmp_path)
    for f in [*path.glob("*_B05_*"), *path.glob("*_B8A_*")]:
        f.unlink()
    with pytest.raises(InputError, match="missing bands B05, B8A; give one file per band"):
        open_scene(path)


def test_folder_with_two_files_for_a_band(tmp_path: Path) -> None:
    path, _ = make_band_folder(tmp_path, ext="tif", naming="short")
    (path / "B02.tif").rename(path / "scene_B02.tif")
    write_raster(path / "other_B02.tif", np.ones((64, 64), np.uint16))
    with pytest.raises(InputError, match=r"several files for B02 \(.*\); keep one per band"):
        open_scene(path)


def test_folder_bands_must_share_crs(tmp_path: Path, truth: Truth) -> None:
    path, _ = make_band_folder(tmp_path, ext="tif", naming="short")
    write_raster(path / "B03.tif", truth.dn("B03"), crs="EPSG:32644")
    with pytest.raises(InputError, match=r"B03.tif: CRS .* differs from B02.tif"):
        open_scene(path)


def test_folder_bands_must_share_extent(tmp_path: Path, truth: Truth) -> None:
    path, _ = make_band_folder(tmp_path, ext="tif", naming="short")
    shifted = Affine(20, 0, ORIGIN[0] + 20, 0, -20, ORIGIN[1])
    write_raster(path / "B05.tif", truth.dn("B05"), transform=shifted)
    with pytest.raises(InputError, match=r"B05.tif: extent .* differs from B02.tif"):
        open_scene(path)


def test_scl_must_share_extent(geotiff: Path, tmp_path: Path, truth: Truth) -> None:
    small = write_raster(tmp_path / "scl.tif", truth.scl[:10, :10], res=20)
    with pytest.raises(InputError, match=r"scl\.tif: extent"):
        open_scene(geotiff, scl=small)


def test_safe_with_missing_band(tmp_path: Path) -> None:
    safe = make_safe(tmp_path)
    next(safe.glob("GRANULE/*/IMG_DATA/R20m/*_B11_20m.jp2")).unlink()
    with pytest.raises(InputError, match=r"missing bands B11 \(R20m\)"):
        open_scene(safe)


def test_safe_with_corrupt_metadata(tmp_path: Path) -> None:
    safe = make_safe(tmp_path)
    (safe / "MTD_MSIL2A.xml").write_text("<unclosed")
    with pytest.raises(InputError, match=r"MTD_MSIL2A\.xml: not valid XML"):
        open_scene(safe)


# --- checks at open and the scene options ----------------------------------------------------


def _refl_scene(path: Path, *, res: float = 10, dtype: str = "float32", k: float = 1.0) -> Path:
    """A 64×64 scene of plausible reflectance (0.05 to 0.4) times ``k``, pixels ``res`` wide."""
    rng = np.random.default_rng(0)
    data = (rng.uniform(0.05, 0.4, (len(BANDS), 64, 64)) * k).astype(dtype)
    transform = Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1])
    return write_raster(path, data, descriptions=BANDS, transform=transform)


def test_scale_option_reads_8_bit_bands(tmp_path: Path) -> None:
    path = _refl_scene(tmp_path / "u8.tif", dtype="uint8", k=255)
    with pytest.raises(InputError, match=r"8-bit values.*--scale"):
        open_scene(path)
    refl, _, info = read_scene(path, options=SceneOptions(scale=1 / 255))
    with rasterio.open(path) as src:
        np.testing.assert_allclose(refl, src.read() / 255, rtol=1e-6)
    assert "--scale" in info.encoding


@pytest.mark.parametrize("scale", [0, -1, float("nan"), float("inf")])
def test_scale_option_must_be_positive(scale: float) -> None:
    with pytest.raises(InputError, match="--scale"):
        SceneOptions(scale=scale)


def test_pixels_far_from_10_m_need_allow_resolution(tmp_path: Path) -> None:
    for res in (1.0, 60.0, 10_000.0):
        path = _refl_scene(tmp_path / f"r{res:g}.tif", res=res)
        with pytest.raises(InputError, match="--allow-resolution"):
            open_scene(path)
        with open_scene(path, options=SceneOptions(allow_resolution=True)) as scene:
            assert scene.info.res == (res, res)
    for res in (8.0, 12.0):  # near 10 m: read as it is
        open_scene(_refl_scene(tmp_path / f"ok{res:g}.tif", res=res)).close()


def test_offset_applied_twice_is_refused(tmp_path: Path) -> None:
    path = _refl_scene(tmp_path / "twice.tif")
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(BOA_ADD_OFFSET="-1000", BOA_QUANTIFICATION_VALUE="10000")
    with pytest.raises(InputError, match=r"BOA_ADD_OFFSET=-1000.*median reflectance -0\.1"):
        open_scene(path)


def test_warnings_of_a_refused_scene_are_held_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = np.zeros((len(BANDS), 32, 32), np.uint16)  # no descriptions: a warning; all no data
    path = write_raster(tmp_path / "nd.tif", data)
    with caplog.at_level(logging.WARNING), pytest.raises(InputError, match="no valid pixel"):
        open_scene(path)
    assert not caplog.records
    data[:, 4:8, 4:8] = 1500
    with caplog.at_level(logging.WARNING):
        open_scene(write_raster(tmp_path / "some.tif", data)).close()
    assert any("no band descriptions" in r.getMessage() for r in caplog.records)


def test_a_damaged_block_names_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(500, 4000, (len(BANDS), 1100, 1100), dtype=np.uint16)
    path = write_raster(tmp_path / "dn.tif", data, descriptions=BANDS, tags={"BOA_ADD_OFFSET": 0})
    tiled = tmp_path / "tiled.tif"
    rasterio.shutil.copy(
        path, tiled, driver="GTiff", TILED="YES", BLOCKXSIZE=64, BLOCKYSIZE=64, COMPRESS="DEFLATE"
    )
    with rasterio.open(tiled) as ds:  # the corner tile: out of the way of the checks at open
        start = int(ds.get_tag_item("BLOCK_OFFSET_17_17", "TIFF", bidx=1)) + 16
    raw = bytearray(tiled.read_bytes())
    raw[start : start + 256] = rng.integers(0, 256, 256, np.uint8).tobytes()
    tiled.write_bytes(bytes(raw))
    with open_scene(tiled) as scene:
        scene.read(Window(0, 0, 64, 64))
        with pytest.raises(InputFileError, match=r"tiled\.tif: the file is damaged or truncated"):
            scene.read(Window(1088, 1088, 12, 12))


@pytest.mark.parametrize("form", ["geotiff", "safe"])
def test_overview_is_the_scene_decimated_with_no_data_kept(
    form: str, geotiff: Path, safe: Path
) -> None:
    path = geotiff if form == "geotiff" else safe
    with open_scene(path) as scene:
        full, _ = scene.read()
        small = scene.read_overview(["B12", "B08", "B04"], max_side=16)
        assert small.shape == (3, 16, 16) and small.dtype == np.float32
        every = scene.read_overview(max_side=1000)  # never larger than the scene
        with pytest.raises(InputError, match="no band B01"):
            scene.read_overview(["B01"])
        with pytest.raises(InputError, match="too small"):
            scene.read_overview(max_side=0)
    assert every.shape == full.shape
    np.testing.assert_allclose(every[TEN_M], full[TEN_M], atol=1e-6, equal_nan=True)
    # The 10 m band B08 at the centre pixel of each 4 x 4 block (nearest neighbour)
    b08 = BANDS.index("B08")
    np.testing.assert_allclose(small[1], full[b08][2::4, 2::4], atol=1e-6, equal_nan=True)
    # The no-data strip on the left stays no data, the rest has data
    assert np.isnan(small[1][:, 0]).all() and np.isfinite(small[1][:, -1]).all()
