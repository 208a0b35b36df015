"""Bad scenes and scene options, each given to `solarmap prepare`, `predict` and `explain`.

The three commands read scenes through one reader (``data_prep.sentinel2.open_scene``), so a
bad scene must end as the same one line in each, before any work.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine

from solarmap.bands import BANDS
from tests.app.corpus.harness import Case, Inputs, ids, text_file
from tests.conftest import write_float_scene

INSIDE = "700555,1559595"  # a point inside the corpus scene (UTM 43N)


@dataclass(frozen=True)
class BadScene:
    """A bad scene (or scene option): ``make`` writes the scene under a fresh folder and
    returns its path and any extra options."""

    id: str
    make: Callable[[Inputs, Path], tuple[Path, list[str]]]
    words: tuple[str, ...]


def _rewrite(
    inputs: Inputs,
    path: Path,
    *,
    values: Callable[[np.ndarray], np.ndarray] = lambda a: a,
    dtype: str | None = None,
    transform: Affine | None = None,
    tags: dict[str, str] | None = None,
    **profile: Any,
) -> Path:
    """The corpus scene (float reflectance x10000) written again with other values or tags."""
    with rasterio.open(inputs.scene) as src:
        prof = dict(src.profile)
        data = src.read()
        descriptions = src.descriptions
    prof.update(dtype=dtype or prof["dtype"], **profile)
    if transform is not None:
        prof["transform"] = transform
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(values(data).astype(prof["dtype"]))
        for i, d in enumerate(descriptions, start=1):
            dst.set_band_description(i, d)
        dst.update_tags(**(tags if tags is not None else {"scale": "reflectance*10000"}))
    return path


def _truncated(inputs: Inputs, path: Path, *, driver: str) -> Path:
    """The first half of the bytes of a valid scene file: a download cut short."""
    whole = path.with_name("whole_" + path.name)
    if driver == "COG":  # header first, data after: opens, fails on reading
        rasterio.shutil.copy(inputs.scene, whole, driver="COG", COMPRESS="DEFLATE")
    else:  # a striped GeoTIFF whose header lies at the end
        whole.write_bytes(inputs.scene.read_bytes())
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    whole.unlink()
    return path


def _corrupt(inputs: Inputs, path: Path) -> Path:
    """A compressed scene whose data bytes are overwritten in the middle: it opens, its size is
    right, and the damage shows only when the block is decoded."""
    rasterio.shutil.copy(inputs.scene, path, driver="COG", COMPRESS="DEFLATE")
    with rasterio.open(path) as ds:
        start = int(ds.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1)) + 16
    data = bytearray(path.read_bytes())
    data[start : start + 4096] = np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _png(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, format="PNG")
    return path


def _scl(inputs: Inputs, path: Path, values: np.ndarray | int, **profile: Any) -> Path:
    """An SCL file on the corpus scene's grid."""
    with rasterio.open(inputs.scene) as src:
        prof = {**src.profile, "count": 1, "dtype": "uint8", **profile}
        shape = (src.height, src.width)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.broadcast_to(values, shape).astype(prof["dtype"]), 1)
    return path


def _band_folder_with_damaged_band(inputs: Inputs, folder: Path) -> Path:
    folder.mkdir()
    with rasterio.open(inputs.scene) as src:
        prof = {**src.profile, "count": 1}
        for i, band in enumerate(BANDS, start=1):
            with rasterio.open(folder / f"{band}.tif", "w", **prof) as dst:
                dst.write(src.read(i), 1)
                dst.update_tags(scale="reflectance*10000")
    data = (folder / "B05.tif").read_bytes()
    (folder / "B05.tif").write_bytes(data[: len(data) // 3])
    return folder


def _zip(inputs: Inputs, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.write(inputs.scene, "scene.tif")
    return path


def _plain(make: Callable[[Inputs, Path], Path], *extra: str):  # type: ignore[no-untyped-def]
    def build(i: Inputs, tmp: Path) -> tuple[Path, list[str]]:
        return make(i, tmp), list(extra)

    return build


def _with_scl(make_scl: Callable[[Inputs, Path], Path]):  # type: ignore[no-untyped-def]
    def build(i: Inputs, tmp: Path) -> tuple[Path, list[str]]:
        return i.scene, ["--scl", str(make_scl(i, tmp))]

    return build


def _options(*extra: str):  # type: ignore[no-untyped-def]
    def build(i: Inputs, tmp: Path) -> tuple[Path, list[str]]:
        return i.scene, list(extra)

    return build


BAD_SCENES: list[BadScene] = [
    # files that are not scenes
    BadScene("missing", _plain(lambda i, t: t / "nope.tif"), ("nope.tif", "not found")),
    BadScene("text-as-tif", _plain(lambda i, t: text_file(t / "x.tif")), ("x.tif", "not a raster")),
    BadScene("empty-file", _plain(lambda i, t: text_file(t / "e.tif", "")), ("e.tif", "empty")),
    BadScene(
        "truncated-cog",
        _plain(lambda i, t: _truncated(i, t / "cut.tif", driver="COG")),
        ("cut.tif", "damaged or truncated", "re-download"),
    ),
    BadScene(
        "truncated-striped",
        _plain(lambda i, t: _truncated(i, t / "cut.tif", driver="GTiff")),
        ("cut.tif", "damaged or truncated", "re-download"),
    ),
    BadScene(
        "corrupt-block",
        _plain(lambda i, t: _corrupt(i, t / "bad.tif")),
        ("bad.tif", "damaged or truncated", "re-download"),
    ),
    BadScene(
        "png-renamed-tif",
        _plain(lambda i, t: _png(t / "photo.tif")),
        ("photo.tif", "PNG", "not a GeoTIFF", "georeferencing"),
    ),
    BadScene("zipped", _plain(lambda i, t: _zip(i, t / "S2.zip")), ("S2.zip", "unzip")),
    BadScene(
        "empty-folder",
        _plain(lambda i, t: (t / "bands").mkdir() or t / "bands"),
        ("bands", "missing bands"),
    ),
    BadScene(
        "folder-with-truncated-band",
        _plain(lambda i, t: _band_folder_with_damaged_band(i, t / "bands")),
        ("B05.tif", "damaged or truncated"),
    ),
    # rasters that are not L2A scenes
    BadScene(
        "four-bands",
        _plain(lambda i, t: write_float_scene(t / "s4.tif", count=4)),
        ("s4.tif", "4 bands"),
    ),
    BadScene(
        "unknown-band-order",
        _plain(
            lambda i, t: write_float_scene(
                t / "bo.tif", descriptions=tuple(f"X{k}" for k in range(10))
            )
        ),
        ("bo.tif", "band order"),
    ),
    BadScene("no-crs", _plain(lambda i, t: write_float_scene(t / "nocrs.tif", crs=None)), ("CRS",)),
    BadScene(
        "rotated-grid",
        _plain(
            lambda i, t: _rewrite(
                i, t / "rot.tif", transform=Affine(10, 2, 700000.0, 2, -10, 1560000.0)
            )
        ),
        ("rot.tif", "rotated", "gdalwarp"),
    ),
    # silent garbage before: values that are no reflectance
    BadScene(
        "uint8",
        _plain(lambda i, t: _rewrite(i, t / "u8.tif", dtype="uint8", values=lambda a: a / 40)),
        ("u8.tif", "8-bit", "--scale"),
    ),
    BadScene(
        "offset-applied-twice",
        _plain(
            lambda i, t: _rewrite(
                i,
                t / "twice.tif",
                values=lambda a: a / 10000,
                tags={"BOA_ADD_OFFSET": "-1000", "BOA_QUANTIFICATION_VALUE": "10000"},
            )
        ),
        ("twice.tif", "BOA_ADD_OFFSET", "applied already"),
    ),
    BadScene(
        "assumed-offset-applied-already",
        _plain(
            lambda i, t: _rewrite(i, t / "dn.tif", dtype="uint16", tags={"DATETIME": "2022-06-01"})
        ),
        ("dn.tif", "assumed", "BOA_ADD_OFFSET"),
    ),
    BadScene(
        "x10000-tagged-0-1",
        _plain(lambda i, t: _rewrite(i, t / "big.tif", tags={"scale": "1"})),
        ("big.tif", "far above 1"),
    ),
    BadScene(
        "10km-pixels",
        _plain(
            lambda i, t: _rewrite(
                i, t / "km.tif", transform=Affine(10000, 0, 700000.0, 0, -10000, 1560000.0)
            )
        ),
        ("km.tif", "10 m", "--allow-resolution"),
    ),
    BadScene(
        "1m-pixels",
        _plain(
            lambda i, t: _rewrite(
                i, t / "m.tif", transform=Affine(1, 0, 700000.0, 0, -1, 1560000.0)
            )
        ),
        ("m.tif", "1 m x 1 m", "--allow-resolution"),
    ),
    BadScene(
        "all-nan",
        _plain(lambda i, t: write_float_scene(t / "nan.tif", all_nodata=True)),
        ("nan.tif", "no valid pixel"),
    ),
    BadScene(
        "all-nodata-value",
        _plain(lambda i, t: _rewrite(i, t / "nd.tif", values=lambda a: a * 0 - 9999, nodata=-9999)),
        ("nd.tif", "no valid pixel"),
    ),
    BadScene(
        "nan-band",
        _plain(lambda i, t: write_float_scene(t / "nb.tif", nan_band=0)),
        ("nb.tif", "B02", "NaN"),
    ),
    # scene classification
    BadScene("scl-missing", _with_scl(lambda i, t: t / "nope_SCL.tif"), ("nope_SCL.tif",)),
    BadScene(
        "scl-is-a-folder",
        _with_scl(lambda i, t: (t / "scl").mkdir() or t / "scl"),
        ("scl", "folder"),
    ),
    BadScene("scl-ten-bands", _with_scl(lambda i, t: i.scene), ("SCL file has 10 bands",)),
    BadScene(
        "scl-holds-reflectance",
        _with_scl(lambda i, t: _scl(i, t / "refl_SCL.tif", 3500, dtype="uint16")),
        ("refl_SCL.tif", "scene classes"),
    ),
    BadScene(
        "scl-all-cloud",
        _with_scl(lambda i, t: _scl(i, t / "cloud_SCL.tif", 9)),
        ("no valid pixel", "clearer scene"),
    ),
    BadScene(
        "scl-other-extent",
        _with_scl(
            lambda i, t: _scl(
                i, t / "far_SCL.tif", 4, transform=Affine(10, 0, 300000.0, 0, -10, 1000000.0)
            )
        ),
        ("far_SCL.tif", "extent"),
    ),
    # scene options
    BadScene("scale-zero", _options("--scale", "0"), ("--scale 0", "above 0")),
    BadScene("scale-negative", _options("--scale", "-0.0001"), ("--scale -0.0001",)),
    BadScene("scale-nan", _options("--scale", "nan"), ("--scale nan",)),
    BadScene("scale-inf", _options("--scale", "inf"), ("--scale inf",)),
    BadScene("scale-too-large", _options("--scale", "1"), ("--scale 1", "far above 1")),
]


def _command(cmd: str, bad: BadScene) -> Case:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        scene, extra = bad.make(i, tmp)
        if cmd == "prepare":
            rest = ["--labels", str(i.labels), "--chip-size", "32", "--block-size", "32"]
        elif cmd == "predict":
            rest = ["--checkpoint", str(i.checkpoint), "--window", "64", "--overlap", "16"]
        else:
            rest = ["--checkpoint", str(i.checkpoint), "--target", INSIDE]
        return ["-q", cmd, "--scene", str(scene), *rest, "--out", "OUT", *extra]

    return Case(f"{cmd}-{bad.id}", argv, bad.words)


CASES: list[Case] = [
    _command(cmd, bad) for bad in BAD_SCENES for cmd in ("prepare", "predict", "explain")
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_scene(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
