"""The equal-area CRS and polygonizing a mask (one home for predict and evaluate); output
folders and files: atomic, with the umask's permissions, and one-line errors naming the folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS, Transformer

from solarmap.errors import InputError
from solarmap.geo import (
    atomic_path,
    equal_area_crs,
    output_dir,
    polygonize_mask,
    write_json,
    write_vector,
)


def test_equal_area_crs_is_centred_on_the_box_in_either_crs() -> None:
    utm = (500000.0, 5300000.0, 510000.0, 5310000.0)  # 10 km in UTM 33N
    crs = equal_area_crs(utm, "EPSG:32633")
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(
        505000.0, 5305000.0
    )
    laea = "+proj=laea +lat_0={:.6f} +lon_0={:.6f} +x_0=0 +y_0=0 +datum=WGS84 +units=m"
    assert crs == CRS.from_proj4(laea.format(lat, lon))
    assert crs.axis_info[0].unit_name == "metre"
    assert equal_area_crs((lon - 1, lat - 1, lon + 1, lat + 1)) == crs  # lon/lat box, same centre
    assert equal_area_crs(None) == CRS.from_proj4(laea.format(0, 0))


def test_polygonize_mask_is_4_connected_with_holes_and_follows_the_transform() -> None:
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = True  # corner neighbours, and (1, 1) touches the ring's corner
    mask[2:6, 2:6] = True
    mask[3:5, 3:5] = False  # a hole
    four = polygonize_mask(mask, Affine.identity())
    assert len(four) == 3
    ring = max(four, key=lambda p: p.area)
    assert ring.area == 12 and len(ring.interiors) == 1
    assert len(polygonize_mask(mask, Affine.identity(), connectivity=8)) == 1
    (moved,) = polygonize_mask(mask[:1, :1], Affine(10, 0, 100, 0, -10, 50))
    assert moved.bounds == (100.0, 40.0, 110.0, 50.0)
    assert polygonize_mask(np.zeros((3, 3), bool), Affine.identity()) == []


# --- output folders and files: errors that name the folder, permissions of any new file ---


def test_output_dir_in_a_folder_that_cannot_be_written_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: object, mode: int = 0o777) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    for target in (tmp_path / "out", tmp_path / "new" / "out"):
        with pytest.raises(InputError) as err, output_dir(target):
            pytest.fail("the block must not run")
        message = str(err.value)
        assert message.startswith(f"{target.parent}: cannot write there (Permission denied)")
        assert "--out" in message and "\n" not in message
    monkeypatch.undo()
    assert not list(tmp_path.iterdir())


def test_output_dir_where_a_file_stands_in_the_way(tmp_path: Path) -> None:
    blocker = tmp_path / "some_file"
    blocker.write_text("x")
    for target in (blocker / "sub", blocker / "sub" / "deeper"):
        with (
            pytest.raises(InputError, match=rf"^{blocker}: is a file, not a folder"),
            output_dir(target),
        ):
            pytest.fail("the block must not run")
    with (
        pytest.raises(InputError, match="is a file, not an output folder"),
        output_dir(blocker, overwrite=True),
    ):
        pytest.fail("the block must not run")
    with pytest.raises(InputError, match=rf"^{blocker}: is a file"):
        write_json(blocker / "x.json", {})


def test_output_dir_never_replaces_a_folder_holding_its_input(tmp_path: Path) -> None:
    region = tmp_path / "region"
    region.mkdir()
    (region / "scene.tif").write_text("x")
    with (
        pytest.raises(InputError, match="holds the input"),
        output_dir(region, overwrite=True, inputs=[region / "scene.tif"]),
    ):
        pytest.fail("the block must not run")
    assert (region / "scene.tif").exists()
    with output_dir(region, overwrite=True, inputs=[tmp_path / "elsewhere.tif"]) as tmp:
        (tmp / "new.txt").write_text("y")
    assert sorted(p.name for p in region.iterdir()) == ["new.txt"]


def test_files_written_atomically_honour_the_umask(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    old = os.umask(0o027)
    try:
        with output_dir(tmp_path / "out") as tmp:
            write_json(tmp / "a.json", {"a": 1})
            with atomic_path(tmp / "w.safetensors") as part:
                save_file({"w": np.zeros(3, np.float32)}, str(part))  # writes 0600 itself
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "a.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "w.safetensors").stat().st_mode) == 0o640


def test_date_columns_are_written_as_date_fields(tmp_path: Path) -> None:
    import datetime as dt

    import geopandas as gpd
    import pyogrio
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame(
        {"id": [1, 2, 3], "date": [dt.date(2022, 3, 15), "2021-07-01", None]},
        geometry=[box(0, 0, 1, 1), box(1, 1, 2, 2), box(2, 2, 3, 3)],
        crs="EPSG:32643",
    )
    for frame, n in ((gdf, 3), (gdf.iloc[:0], 0)):
        path = write_vector(frame, tmp_path / f"d{n}.gpkg", layer="solar", date_columns=["date"])
        info = pyogrio.read_info(path, layer="solar")
        assert dict(zip(info["fields"], info["ogr_types"], strict=True))["date"] == "OFTDate"
        assert info["features"] == n and info["crs"] == "EPSG:32643"
    back = gpd.read_file(tmp_path / "d3.gpkg")
    assert [str(v)[:10] for v in back["date"][:2]] == ["2022-03-15", "2021-07-01"]
    assert back["date"].isna().tolist() == [False, False, True]
    assert pyogrio.read_info(tmp_path / "d3.gpkg")["geometry_type"] == "Polygon"
    with pytest.raises(InputError, match="not a date"):
        write_vector(gdf.assign(date="soon"), tmp_path / "bad.gpkg", date_columns=["date"])
    assert not (tmp_path / "bad.gpkg").exists()


def test_jsonable_turns_numpy_and_tensors_into_json_types() -> None:
    import json
    import math

    import numpy as np
    import torch

    from solarmap.geo import jsonable

    obj = {1: np.float32(0.5), "a": (np.arange(2), torch.tensor([1.5])), "r": math.inf}
    assert jsonable(obj) == {"1": 0.5, "a": [[0, 1], [1.5]], "r": math.inf}
    assert jsonable(obj, nonfinite_as_none=True)["r"] is None
    json.dumps(jsonable(obj, nonfinite_as_none=True), allow_nan=False)
