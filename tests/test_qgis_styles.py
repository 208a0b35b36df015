"""Every output opens styled in real QGIS, as a planner opens it, and draws.

The outputs are made by the project's own functions on tiny generated inputs: ``prepare``
(image and mask COGs, chips and labels GeoPackages), ``predict_scene`` with a known-answer
detector (probability COG, polygons), ``explain_scene`` (attribution COG, targets, superpixels)
and the synthetic region (scene, SCL, land cover, truth). QGIS runs in Debian's system
interpreter (``python3-qgis``; the project's virtualenv cannot import it) through
``tests/qgis_open_layers.py``, offscreen; when it is missing the test installs it with apt-get
(bounded by :data:`INSTALL_SECONDS`) and skips only when that cannot be done.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from shapely.geometry import box
from torch import nn

from attribute.audit import audit_run
from attribute.explain import ExplainConfig, explain_scene
from attribute.targets import Target
from data_prep.prepare import PrepareConfig, prepare
from data_prep.sentinel2 import open_scene
from data_prep.synthetic import RegionConfig, generate_region
from solarmap.bands import BANDS
from solarmap.geo import read_vector
from solarmap.model import Checkpoint, ModelConfig
from solarmap.predict import PredictConfig, predict_scene
from tests.conftest import box_polygon_4326, write_float_scene, write_labels
from train.dataset import read_stats

#: The interpreter QGIS's Python bindings are built for.
QGIS_PYTHON = Path("/usr/bin/python3")
#: Debian packages that bring QGIS's Python bindings and its data providers.
QGIS_PACKAGES = ("python3-qgis", "qgis-providers")
#: Longest the test waits for apt-get to install QGIS (it takes a few minutes on a fresh host).
INSTALL_SECONDS = 600
SCRIPT = Path(__file__).with_name("qgis_open_layers.py")
#: Largest share of white pixels a rendered layer may have (outlines draw few pixels).
MAX_WHITE = 0.995


class B08Detector(nn.Module):
    """``logit = -40 (B08 - 0.265)``: vegetation (B08 ≈ 0.35) is not solar, the panels of
    :func:`write_float_scene` (B08 ≈ 0.18) are, each with probability ≈ 0.97."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(len(BANDS), 1, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, BANDS.index("B08")] = -40.0
            self.conv.bias.fill_(40.0 * 0.265)  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _detector(training_stats: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        model=B08Detector().eval(),
        config=ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8)),
        bands=BANDS,
        mean=[0.0] * len(BANDS),
        std=[1.0] * len(BANDS),
        threshold=0.5,
        chip_size=64,
        metadata={"path": "b08-detector", "training_stats": training_stats},
    )


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each output layer: ``{name: {"path", "kind", "layer" (vectors), "expect"}}``."""
    root = tmp_path_factory.mktemp("styled")
    scene = write_float_scene(root / "scene.tif", size=(128, 160), solar_box=(30, 40, 80, 110))
    labels = write_labels(root / "labels.geojson", [box_polygon_4326(30, 40, 80, 110)])
    prep = prepare([scene], labels, root / "prepared", config=PrepareConfig(chip_size=32))
    sid = prep.scenes[0].scene_id
    ckpt = _detector(read_stats(root / "prepared"))  # as if trained on the prepared scene
    with open_scene(scene) as s:
        pred = predict_scene(s, ckpt, root / "pred", config=PredictConfig(window=64, overlap=16))
        farm = read_vector(pred.polygons).geometry.iloc[0]
        x0, y0, x1, y1 = farm.bounds
        explain_scene(
            s,
            ckpt,
            [Target(1, "polygon", box(x0 + 50, y0 + 50, x1 - 50, y1 - 50))],
            root / "ex",
            config=ExplainConfig(
                methods=("input_x_gradient", "kernel_shap"),
                reductions=("sum", "max_abs"),
                options={"n_segments": 16, "shap_samples": 32},
            ),
        )
        audit_run(s, ckpt, root / "ex", root / "audit")
    region = generate_region(root / "region", RegionConfig(seed=7, size=128))
    sd = root / "prepared" / "scenes" / sid
    vec, ras = "vector", "raster"
    return {
        "detections": {"kind": vec, "path": pred.polygons, "layer": "solar"},
        "probability": {"kind": ras, "path": pred.probability},
        "chips": {"kind": vec, "path": root / "prepared" / "chips.gpkg", "layer": "chips"},
        "labels": {"kind": vec, "path": sd / "labels.gpkg", "layer": "labels"},
        "image": {"kind": ras, "path": sd / "image.tif"},
        "mask": {"kind": ras, "path": sd / "mask.tif"},
        "attribution": {"kind": ras, "path": root / "ex" / "target_1" / "attribution.tif"},
        "targets": {"kind": vec, "path": root / "ex" / "targets.gpkg", "layer": "targets"},
        "superpixels": {
            "kind": vec,
            "path": root / "ex" / "target_1" / "superpixels_kernel_shap.gpkg",
            "layer": "superpixels",
        },
        "audit": {"kind": vec, "path": root / "audit" / "audit.gpkg", "layer": "audit"},
        "region_scene": {"kind": ras, "path": region.scene},
        "region_scl": {"kind": ras, "path": region.scl},
        "region_landcover": {"kind": ras, "path": region.landcover},
        "region_truth": {"kind": vec, "path": region.truth, "layer": "farms"},
    }


# --------------------------------------------------------------------------- without QGIS


def test_every_output_carries_its_style(outputs: dict[str, dict[str, Any]]) -> None:
    for name, o in outputs.items():
        path = Path(o["path"])
        if o["kind"] == "raster":
            qml = path.with_suffix(".qml")
            assert qml.exists(), f"{name}: no {qml.name} beside {path.name}"
            assert "<rasterrenderer" in qml.read_text()
            with rasterio.open(path) as ds:
                assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", name
        else:
            with sqlite3.connect(path) as db:
                rows = db.execute(
                    "SELECT f_table_name, useAsDefault, styleQML FROM layer_styles"
                ).fetchall()
            assert [(t, d) for t, d, _ in rows] == [(o["layer"], 1)], name
            assert "<renderer-v2" in rows[0][2]
            assert len(read_vector(path)) > 0, f"{name}: empty layer"


def test_band_metadata_of_image_and_probability(outputs: dict[str, dict[str, Any]]) -> None:
    with rasterio.open(outputs["image"]["path"]) as ds:
        assert ds.units == ("reflectance",) * len(BANDS)
        tags = [ds.tags(i) for i in range(1, ds.count + 1)]
    assert [t["BAND"] for t in tags] == list(BANDS)
    assert [float(t["WAVELENGTH_NM"]) for t in tags][:3] == [492.4, 559.8, 664.6]
    assert tags[BANDS.index("B12")]["WAVELENGTH_NM_S2B"] == "2185.7"
    with rasterio.open(outputs["probability"]["path"]) as ds:
        band = ds.tags(1)
        assert ds.descriptions == ("solar_probability",) and ds.units == ("probability",)
    assert (band["VALID_MIN"], band["VALID_MAX"], band["THRESHOLD"]) == ("0", "1", "0.5")
    assert "solar farm" in band["MEANING"]


@pytest.mark.skipif(not shutil.which("gdalinfo"), reason="GDAL's command-line tools are absent")
def test_gdal_tools_show_band_metadata_and_layer_styles(
    outputs: dict[str, dict[str, Any]],
) -> None:
    def run(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout

    image = run("gdalinfo", str(outputs["image"]["path"]))
    assert "Unit Type: reflectance" in image and "WAVELENGTH_NM=832.8" in image
    assert "LAYOUT=COG" in image
    prob = run("gdalinfo", str(outputs["probability"]["path"]))
    assert "Description = solar_probability" in prob and "VALID_MAX=1" in prob
    layers = run("ogrinfo", "-ro", "-q", str(outputs["detections"]["path"]))
    assert "solar (Polygon)" in layers and "layer_styles" in layers


def _gdal_sample(name: str) -> list[str] | None:
    """The command of one of GDAL's validation samples (system ``python3-gdal``), if present."""
    if not QGIS_PYTHON.exists():
        return None
    module = f"osgeo_utils.samples.{name}"
    probe = [str(QGIS_PYTHON), "-c", f"import {module}"]
    found = subprocess.run(probe, capture_output=True, timeout=60, env=_env()).returncode == 0
    return [str(QGIS_PYTHON), "-m", module] if found else None


def test_outputs_pass_gdal_validators(outputs: dict[str, dict[str, Any]]) -> None:
    """GDAL's GeoPackage and COG validators accept every output, ``layer_styles`` included."""
    gpkg, cog = _gdal_sample("validate_gpkg"), _gdal_sample("validate_cloud_optimized_geotiff")
    if gpkg is None or cog is None:
        pytest.skip("GDAL's Python validation samples (python3-gdal) are absent")
    for name, o in outputs.items():
        cmd = gpkg if o["kind"] == "vector" else cog
        done = subprocess.run(
            [*cmd, str(o["path"])], capture_output=True, text=True, timeout=120, env=_env()
        )
        assert done.returncode == 0, f"{name}: {(done.stderr or done.stdout)[-800:]}"


# --------------------------------------------------------------------------- in QGIS


def _qgis_importable() -> bool:
    if not QGIS_PYTHON.exists():
        return False
    check = [str(QGIS_PYTHON), "-c", "import qgis.core"]
    try:
        return subprocess.run(check, capture_output=True, timeout=120, env=_env()).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _install_qgis() -> str | None:
    """Install QGIS with apt-get; ``None`` when it can be imported after, else why not."""
    apt = shutil.which("apt-get")
    if apt is None:
        return "apt-get is not available"
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None or subprocess.run([sudo, "-n", "true"], capture_output=True).returncode:
            return "installing QGIS needs root or password-less sudo"
        prefix = [sudo, "-n"]
    apt_cmd = [*prefix, apt, "-o", "DPkg::Lock::Timeout=120", "-y"]
    install = [*apt_cmd, "install", "--no-install-recommends", *QGIS_PACKAGES]
    deadline = time.monotonic() + INSTALL_SECONDS
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    why = ""
    for steps in ([install], [[*apt_cmd, "update"], install]):  # the package lists may be stale
        for cmd in steps:
            try:
                done = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=max(1.0, deadline - time.monotonic()),
                )
            except subprocess.TimeoutExpired:
                return f"apt-get took over {INSTALL_SECONDS} s to install {' '.join(QGIS_PACKAGES)}"
            if done.returncode:
                lines = (done.stderr or done.stdout).strip().splitlines()
                why = lines[-1] if lines else f"exit {done.returncode}"
                break
        else:
            return None if _qgis_importable() else "QGIS installed but `import qgis` fails"
    return f"apt-get could not install {' '.join(QGIS_PACKAGES)}: {why}"


def _env(config: Path | None = None) -> dict[str, str]:
    """The system interpreter's environment: no virtualenv, QGIS offscreen, its settings in
    ``config`` (not the home folder)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    if config is not None:
        runtime = config / "runtime"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        env["QGIS_CUSTOM_CONFIG_PATH"] = str(config)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


@pytest.fixture(scope="module")
def qgis_python() -> Path:
    """The system interpreter with QGIS, installed if need be; skips when it cannot be."""
    if not _qgis_importable():
        why = _install_qgis()
        if why is not None:
            pytest.skip(f"QGIS is not available: {why}")
    return QGIS_PYTHON


def _drawn_share(png: Path) -> tuple[float, int]:
    """Share of the image that is not white background, and how many colours it uses."""
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    drawn = (rgb < 250).any(axis=1).mean()
    return float(drawn), len(np.unique(rgb, axis=0))


#: The renderer each output must end up with in QGIS.
EXPECTED = {
    "detections": "graduatedSymbol",
    "probability": "singlebandpseudocolor",
    "chips": "categorizedSymbol",
    "labels": "singleSymbol",
    "image": "multibandcolor",
    "mask": "paletted",
    "attribution": "singlebandpseudocolor",
    "targets": "singleSymbol",
    "superpixels": "graduatedSymbol",
    "audit": "categorizedSymbol",
    "region_scene": "multibandcolor",
    "region_scl": "paletted",
    "region_landcover": "paletted",
    "region_truth": "singleSymbol",
}


def open_in_qgis(
    qgis_python: Path, layers: dict[str, dict[str, Any]], tmp_path: Path
) -> dict[str, Any]:
    """Open each layer (``{name: {"kind", "path", "layer"}}``) in QGIS as a planner does, with
    and without its default style, and render it to ``tmp_path/<name>.png``; what QGIS found."""
    spec = [
        {"name": name, "kind": o["kind"], "path": str(o["path"]), "layer": o.get("layer"),
         "png": str(tmp_path / f"{name}.png")}
        for name, o in layers.items()
    ]  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run(
        [str(qgis_python), str(SCRIPT), str(tmp_path / "spec.json"), str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(tmp_path / "qgis-config"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((tmp_path / "out.json").read_text())  # type: ignore[no-any-return]


def assert_drawn_with(found: dict[str, Any], name: str, renderer: str, png: Path) -> None:
    """QGIS loaded the layer's default style, with ``renderer``, and it drew something."""
    got = found[name]
    assert "error" not in got, f"{name}: {got.get('error')}"
    assert got["loaded"], f"{name}: QGIS found no default style ({got['message']})"
    assert got["styled"]["renderer"] == renderer, f"{name}: {got['styled']}"
    drawn, colours = _drawn_share(png)
    assert drawn > 1 - MAX_WHITE and colours >= 2, f"{name}: rendered blank ({drawn:.1%})"


@pytest.mark.timeout(INSTALL_SECONDS + 300)
def test_qgis_opens_every_output_with_the_style_written(
    outputs: dict[str, dict[str, Any]], qgis_python: Path, tmp_path: Path
) -> None:
    # A planner's copy: QGIS may write .aux.xml statistics beside the rasters it opens.
    layers = {}
    for name, o in outputs.items():
        src = Path(o["path"])
        dst = tmp_path / "layers" / name / src.name
        dst.parent.mkdir(parents=True)
        shutil.copy2(src, dst)
        if src.with_suffix(".qml").exists():
            shutil.copy2(src.with_suffix(".qml"), dst.with_suffix(".qml"))
        layers[name] = {**o, "path": dst}
    found = open_in_qgis(qgis_python, layers, tmp_path)
    assert found["qgis"].startswith("3.")

    assert set(EXPECTED) == set(outputs)
    for name, renderer in EXPECTED.items():
        assert_drawn_with(found, name, renderer, tmp_path / f"{name}.png")

    # What QGIS shows without the style, and what the style changes.
    assert found["detections"]["default"]["renderer"] == "singleSymbol"
    assert found["probability"]["default"]["renderer"] == "singlebandgray"
    det = found["detections"]["styled"]
    assert det["attribute"] == "mean_prob" and len(det["ranges"]) == 5
    assert det["ranges"][0][1] > 0.5 >= det["ranges"][0][0] and det["ranges"][-1][1] == 1.0
    assert det["labels"] and "ha" in det["label_expression"] and "ha" in det["map_tip"]
    prob = found["probability"]["styled"]
    assert (prob["min"], prob["max"]) == (0.0, 1.0)
    values = [v for v, *_ in prob["items"]]
    assert 0.5 in values and any(0.4999 < v < 0.5 for v in values)  # the step at the threshold
    chips = found["chips"]["styled"]
    assert chips["attribute"] == "split" and chips["categories"][:3] == ["train", "val", "test"]
    image = found["image"]["styled"]
    assert image["bands"] == [BANDS.index(b) + 1 for b in ("B08", "B04", "B03")]
    assert found["image"]["default"]["bands"] != image["bands"]
    lo, hi = image["stretch"][0]
    assert 0.15 < lo < hi < 0.40  # B08 reflectance of panels and vegetation, 2-98 %
    att = found["attribution"]["styled"]
    assert att["min"] == -att["max"] < 0
    sp = found["superpixels"]["styled"]
    assert sp["attribute"] == "value" and sp["ranges"][0][0] == -sp["ranges"][-1][1]
    targets = found["targets"]["styled"]
    assert targets["fill_style"] == "no" and targets["labels"]
    assert [c[2] for c in found["mask"]["styled"]["classes"]][:2] == ["background", "solar"]


def test_without_apt_get_the_qgis_test_says_why_it_skips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert _install_qgis() == "apt-get is not available"
