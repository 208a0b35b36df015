"""`explain`: georeferenced attribution outputs, targets in map coordinates, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import box

from attribute.explain import ExplainConfig, explain_scene
from attribute.targets import Target, parse_targets
from data_prep.sentinel2 import open_scene
from solarmap.app.cli import main
from solarmap.errors import InputError
from tests.attribute.conftest import linear_checkpoint
from tests.conftest import CRS, ORIGIN, reordered_checkpoint, write_float_scene


def test_attribution_is_on_the_window_grid_and_finds_the_feature(bright_scene, tmp_path) -> None:
    path, (fx, fy) = bright_scene
    x0, y0 = ORIGIN
    target = Target(1, "polygon", box(x0 + 500, y0 - 800, x0 + 1100, y0 - 400))
    cfg = ExplainConfig(methods=("saliency", "input_x_gradient"), reductions=("max_abs",))
    with open_scene(path) as scene:
        res = explain_scene(scene, linear_checkpoint(), [target], tmp_path / "ex", config=cfg)
        scene_tr = scene.info.transform
    summary = json.loads((tmp_path / "ex" / "target_1" / "target.json").read_text())
    col, row, w, h = summary["window"]
    assert w % 8 == 0 and h % 8 == 0  # grown to the model's multiple
    with rasterio.open(tmp_path / "ex" / "target_1" / "attribution.tif") as src:
        assert src.crs.to_string() == CRS
        assert src.transform == window_transform(Window(col, row, w, h), scene_tr)
        assert src.descriptions == ("saliency:max_abs", "input_x_gradient:max_abs")
        ixg = src.read(2)
        r, c = np.unravel_index(np.nanargmax(ixg), ixg.shape)
        mx, my = src.xy(r, c)
    assert abs(mx - fx) <= 10 and abs(my - fy) <= 10  # the feature, where it is on the map
    assert res.targets[0]["costs"]["saliency"] == {"forward": 1, "backward": 1}
    table = (tmp_path / "ex" / "target_1" / "bands.csv").read_text()
    assert "B8A" in table
    assert (tmp_path / "ex" / "target_1" / "quicklook.png").read_bytes()[:4] == b"\x89PNG"
    index = gpd.read_file(tmp_path / "ex" / "targets.gpkg")
    assert list(index["id"]) == [1] and index.crs.to_string() == CRS


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_targets_from_files_and_points(tmp_path: Path) -> None:
    x0, y0 = ORIGIN
    poly = gpd.GeoDataFrame(geometry=[box(x0, y0 - 100, x0 + 100, y0)], crs=CRS).to_crs(4326)
    poly.to_file(tmp_path / "p.geojson")
    (t,) = parse_targets(str(tmp_path / "p.geojson"), scene_crs=CRS)
    assert t.kind == "polygon" and abs(t.geom.bounds[0] - x0) < 0.01
    (p,) = parse_targets(f"{x0 + 5},{y0 - 5}", scene_crs=CRS)
    assert p.kind == "pixel"
    preds = gpd.GeoDataFrame(
        {"id": [3, 4], "area_m2": [1e4, 5e4], "mean_prob": [0.9, 0.8], "max_prob": [1, 1]},
        geometry=[box(x0, y0 - 100, x0 + 100, y0), box(x0, y0 - 300, x0 + 200, y0 - 50)],
        crs=CRS,
    )
    preds.to_file(tmp_path / "pred.gpkg", layer="solar")
    top = parse_targets(str(tmp_path / "pred.gpkg"), scene_crs=CRS, top=1)
    assert [(t.id, t.kind) for t in top] == [(4, "object")]
    gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(tmp_path / "nocrs.gpkg")
    with pytest.raises(InputError, match="no CRS"):
        parse_targets(str(tmp_path / "nocrs.gpkg"), scene_crs=CRS)


def test_bad_options() -> None:
    with pytest.raises(InputError, match="unknown method"):
        ExplainConfig(methods=("saliency", "magic"))
    with pytest.raises(InputError):
        ExplainConfig(reductions=("median",))
    with pytest.raises(InputError):
        ExplainConfig(baseline="noise")  # type: ignore[arg-type]


def _cli(scene: Path, ckpt: Path, target: str, out: Path, *extra: str) -> list[str]:
    return [
        "-q",
        "explain",
        "--scene",
        str(scene),
        "--checkpoint",
        str(ckpt),
        "--target",
        target,
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.filterwarnings("ignore:'crs' was not provided")  # written so on purpose
def test_cli_explain_point_and_errors(tiny_checkpoint, tmp_path, capsys) -> None:
    scene = write_float_scene(tmp_path / "s.tif")
    x0, y0 = ORIGIN
    inside = f"{x0 + 555},{y0 - 405}"
    assert (
        main(
            _cli(
                scene,
                tiny_checkpoint,
                inside,
                tmp_path / "ok",
                "--methods",
                "saliency,integrated_gradients",
            )
        )
        == 0
    )
    capsys.readouterr()
    with rasterio.open(tmp_path / "ok" / "target_0" / "attribution.tif") as src:
        assert "integrated_gradients:max_abs" in src.descriptions
        ig = src.tags(src.descriptions.index("integrated_gradients:sum") + 1)
        sal = src.tags(src.descriptions.index("saliency:max_abs") + 1)
        assert src.tags()["TARGET_REDUCTION"] == "sum" and "REDUCTION" not in src.tags()
    assert (ig["METHOD"], ig["REDUCTION"], ig["BASELINE"]) == (
        "integrated_gradients",
        "sum",
        "median",
    )
    gate = json.loads((tmp_path / "ok" / "target_0" / "target.json").read_text())["extra"]
    assert int(ig["STEPS"]) == gate["integrated_gradients"]["steps"]
    assert float(ig["COMPLETENESS_ERROR"]) == pytest.approx(
        gate["integrated_gradients"]["completeness_error"]
    )
    assert (sal["METHOD"], sal["REDUCTION"], sal["FAMILY"]) == ("saliency", "max_abs", "gradient")
    assert "BASELINE" not in sal
    nocrs = tmp_path / "nocrs.geojson"
    gpd.GeoDataFrame(geometry=[box(x0, y0 - 100, x0 + 100, y0)]).to_file(nocrs)
    cases = {
        "outside": (f"{x0 - 5000},{y0 + 5000}", (), "outside", tiny_checkpoint),
        "method": (inside, ("--methods", "saliency,telepathy"), "telepathy", tiny_checkpoint),
        "reduction": (inside, ("--reductions", "median"), "median", tiny_checkpoint),
        "no_crs": (str(nocrs), (), "CRS", tiny_checkpoint),
        "budget": (
            inside, ("--methods", "saliency,kernel_shap", "--shap-samples", "3"), "shap",
            tiny_checkpoint,
        ),
        "superpixels": (
            inside, ("--methods", "kernel_shap", "--n-segments", "1"), "segment", tiny_checkpoint
        ),
        "batch": (inside, ("--batch-size", "0"), "batch", tiny_checkpoint),
        "bands": (
            inside, (), "differ", reordered_checkpoint(tiny_checkpoint, tmp_path / "reordered")
        ),
    }  # fmt: skip
    for name, (target, extra, word, ckpt) in cases.items():
        out = tmp_path / name
        assert main(_cli(scene, ckpt, target, out, *extra)) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0] and "Traceback" not in err[0], (name, err)
        assert not out.exists()


def test_perturbation_and_superpixel_methods_write_tables_and_polygons(
    bright_scene, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    path, _ = bright_scene
    x0, y0 = ORIGIN
    target = Target(7, "polygon", box(x0 + 500, y0 - 800, x0 + 1100, y0 - 400))
    cfg = ExplainConfig(
        methods=("band_ablation", "group_ablation", "occlusion", "l_shapley", "kernel_shap"),
        options={"n_segments": 16, "shap_samples": 64},
    )
    caplog.set_level(logging.INFO, logger="attribute.explain")
    with open_scene(path) as scene:
        res = explain_scene(scene, linear_checkpoint(), [target], tmp_path / "ex", config=cfg)
    folder = tmp_path / "ex" / "target_7"
    spent = res.targets[0]["costs"]
    for name in cfg.methods:  # the cost stated before running is the cost spent
        stated = f"{name} costs {spent[name]['forward']} forward + 0 backward passes"
        assert stated in caplog.text, name
    with rasterio.open(folder / "attribution.tif") as src:
        occ = src.tags(src.descriptions.index("occlusion") + 1)
    assert (occ["METHOD"], occ["BASELINE"], occ["WINDOW"]) == ("occlusion", "median", "8")
    table = (folder / "bands.csv").read_text()
    assert "group_ablation" in table and "swir" in table and "B12" in table
    for name in ("l_shapley", "kernel_shap"):
        polys = gpd.read_file(folder / f"superpixels_{name}.gpkg")
        assert polys.crs.to_string() == CRS and polys["rank"].min() == 1
    with rasterio.open(folder / "attribution.tif") as src:
        assert {"occlusion", "l_shapley", "kernel_shap"} <= set(src.descriptions)


def test_baselines_reach_the_methods(
    bright_scene, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="attribute.explain")
    path, _ = bright_scene
    x0, y0 = ORIGIN
    target = Target(2, "polygon", box(x0 + 500, y0 - 800, x0 + 1100, y0 - 400))
    with pytest.raises(InputError):
        ExplainConfig(options={"ig_baseline": "noise"})
    deltas = {}
    for name in ("zero", "blur", "context"):
        caplog.clear()
        cfg = ExplainConfig(methods=("integrated_gradients", "band_ablation"), baseline=name)
        with open_scene(path) as scene:
            res = explain_scene(scene, linear_checkpoint(), [target], tmp_path / name, config=cfg)
        # what each baseline means to the model is recorded, and a solar-looking one warned of
        refs = res.targets[0]["references"]
        assert refs["perturbation"]["baseline"] == name
        assert refs["perturbation"]["methods"] == ["band_ablation"]
        assert refs["integrated_gradients"]["baseline"] == "median"
        for what, ref in refs.items():
            assert ref["f_x"] == pytest.approx(res.targets[0]["f_x"])
            want = (ref["f_x"] - ref["f_reference"]) / abs(ref["f_x"])
            assert ref["share"] == pytest.approx(want)
            warned = f"baseline of {what.replace('_', ' ')} is not clearly non-solar"
            assert (warned in caplog.text) == (not ref["non_solar"]), (name, what)
        saved = json.loads((tmp_path / name / "target_2" / "target.json").read_text())
        assert saved["references"] == refs
        extra = res.targets[0]["extra"]
        assert extra["integrated_gradients"]["baseline"] == "median"  # IG's own default
        assert extra["integrated_gradients"]["converged"]
        rows = json.loads((tmp_path / name / "target_2" / "bands.json").read_text())
        deltas[name] = [r["delta"] for r in rows if r["method"] == "band_ablation"]
        spent = res.targets[0]["costs"]["integrated_gradients"]
        # The gate's cap is stated as a cap, and what it spent is logged after it ran.
        assert "integrated_gradients costs at most 326 forward + 324 backward" in caplog.text
        assert f"spent {spent['forward']} forward + {spent['backward']} backward" in caplog.text
    assert not np.allclose(deltas["zero"], deltas["blur"])  # the perturbation baseline counts
    assert not np.allclose(deltas["zero"], deltas["context"])


def test_every_method_explains_a_spectral_model(bright_scene, tmp_path: Path) -> None:
    """A spectral baseline is a real model kind: every registered method runs on it (but
    attention relevance, which needs a transformer encoder and is left out)."""
    from attribute.registry import REGISTRY
    from data_prep.prepare import PrepareConfig, prepare
    from solarmap.model import ModelConfig, load_checkpoint
    from tests.conftest import box_polygon_4326, write_labels
    from train.fit import TrainConfig, train

    path, _ = bright_scene
    labels = write_labels(tmp_path / "l.geojson", [box_polygon_4326(40, 50, 80, 110)])
    prepare([path], labels, tmp_path / "p", config=PrepareConfig(chip_size=32, block_size=32))
    model = ModelConfig(kind="spectral", indices=("ratio:B02:B03", "nd:B11:B08"))
    train(tmp_path / "p", tmp_path / "spec", config=TrainConfig(model=model))
    x0, y0 = ORIGIN
    target = Target(1, "polygon", box(x0 + 500, y0 - 800, x0 + 1100, y0 - 400))
    cfg = ExplainConfig(methods=tuple(REGISTRY), options={"n_segments": 16, "shap_samples": 64})
    with open_scene(path) as scene:
        explain_scene(
            scene, load_checkpoint(tmp_path / "spec"), [target], tmp_path / "ex", config=cfg
        )
    with rasterio.open(tmp_path / "ex" / "target_1" / "attribution.tif") as src:
        described = {d.split(":")[0] for d in src.descriptions}
    skipped = ("band_ablation", "group_ablation", "attention_relevance")
    spatial = {n for n in REGISTRY if n not in skipped}
    assert spatial <= described
    assert "attention_relevance" not in described
    table = (tmp_path / "ex" / "target_1" / "bands.csv").read_text()
    assert "band_ablation" in table and "group_ablation" in table
