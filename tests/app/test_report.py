"""`solarmap report`: one self-contained HTML page of a prediction, its metrics, an audit with
faithfulness curves and a sanity check, opened in a real headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from solarmap.app.cli import main
from solarmap.app.report import ReportConfig, find_runs, write_report
from tests.app.browser import find_chromium, load_page


@pytest.fixture(scope="module")
def runs(trained_unet: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """predict + evaluate, audit (2 objects, with faithfulness) and sanity of the trained U-Net."""
    ckpt, scene, truth = trained_unet
    root = tmp_path_factory.mktemp("report")
    pred, audit, sanity = root / "prediction", root / "audit", root / "sanity"
    base = ["-q"]
    assert main([*base, "predict", "--scene", str(scene), "--checkpoint", str(ckpt),
                 "--out", str(pred)]) == 0  # fmt: skip
    assert main([*base, "evaluate", "--prediction", str(pred), "--truth", str(truth)]) == 0
    target = str(pred / "polygons.gpkg")
    assert main([*base, "audit", "--scene", str(scene), "--checkpoint", str(ckpt), "--target",
                 target, "--top", "2", "--faithfulness", "--out", str(audit)]) == 0  # fmt: skip
    assert main([*base, "sanity", "--scene", str(scene), "--checkpoint", str(ckpt), "--target",
                 target, "--top", "1", "--noise-samples", "1", "--methods",
                 "saliency,gradcam", "--out", str(sanity)]) == 0  # fmt: skip
    return {"root": root, "pred": pred, "audit": audit, "sanity": sanity, "ckpt": ckpt,
            "scene": scene, "labels": scene.parent / "labels.osm"}  # fmt: skip


class _Page(HTMLParser):
    """The tags, image sources, links and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.meta: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if "href" in a:
            self.links.append(a["href"] or "")
        if tag == "meta":
            self.meta.append(a)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_the_report_holds_every_part_of_the_runs(runs: dict, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = write_report(
        [runs["pred"], runs["audit"], runs["sanity"]],
        out,
        config=ReportConfig(labels=runs["labels"]),
    )
    assert [r.kind for r in res.runs] == ["predict", "audit", "sanity"]  # the audit's
    # explanation belongs to the audit, not listed again
    page = _parse(out)
    text = " ".join(page.text)
    for heading in ("Prediction", "Metrics and PR curve", "Audit", "Faithfulness",
                    "Sanity checks", "Checkpoint", "Configuration of each run"):  # fmt: skip
        assert any(h.startswith(heading) for h in res.sections), heading
        assert heading in text
    # Self-contained: every picture inlined as a PNG, nothing to fetch, no script
    assert "script" not in page.tags
    assert any("Content-Security-Policy" in (m.get("http-equiv") or "") for m in page.meta)
    assert all(link.startswith("#") for link in page.links)
    assert len(page.images) >= 3 + 1 + 2 + 3 + 2  # scene x3, PR, 2 objects, curves
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    # The checkpoint's hash is that of its weights file
    digest = hashlib.sha256((runs["ckpt"] / "model.safetensors").read_bytes()).hexdigest()
    assert digest in text
    # Each audited object with its verdict, the metrics, the sanity rows
    audit = json.loads((runs["audit"] / "audit.json").read_text())
    for o in audit["objects"]:
        assert f"Object {o['id']}:" in text and o["verdict"] in text
    metrics = json.loads((runs["pred"] / "metrics.json").read_text())
    assert f"{metrics['pixel']['iou']:.3f}" in text
    assert "edge_detector (control)" in text and "gradcam" in text
    # OSM names of the labels under the largest detections
    from data_prep.osm import clean_labels, read_labels

    osm = clean_labels(read_labels(runs["labels"]))
    dets = gpd.read_file(runs["pred"] / "polygons.gpkg", layer="solar")
    hit = dets.sjoin(osm.to_crs(dets.crs), predicate="intersects")["name"].dropna()
    assert len(hit) and any(name in text for name in hit)
    assert not res.notes


def test_text_from_inputs_is_escaped(runs: dict, tmp_path: Path) -> None:
    hostile = '<img src=x onerror=alert(1)> & "quoted"'
    pred = tmp_path / hostile
    shutil.copytree(runs["pred"], pred)
    dets = gpd.read_file(pred / "polygons.gpkg", layer="solar")
    labels = gpd.GeoDataFrame(
        {"power": ["plant"], "plant:source": ["solar"], "name": ['<script>alert("osm")</script>']},
        geometry=[dets.loc[dets["area_m2"].idxmax(), "geometry"]],
        crs=dets.crs,
    ).to_crs("EPSG:4326")
    labels.to_file(tmp_path / "labels.geojson")
    out = tmp_path / "r.html"
    write_report([pred], out, config=ReportConfig(labels=tmp_path / "labels.geojson",
                                                  title="<b>title</b>"))  # fmt: skip
    html_text = out.read_text()
    for raw in ("<img src=x", "<script>", "<b>title"):
        assert raw not in html_text
    assert "&lt;script&gt;alert(&quot;osm&quot;)&lt;/script&gt;" in html_text
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;" in html_text
    page = _parse(out)
    assert page.tags.count("img") == len(page.images) and "script" not in page.tags


def test_a_moved_scene_is_said_and_found_with_scene(runs: dict, tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    shutil.copytree(runs["pred"], pred)
    record = json.loads((pred / "predict.json").read_text())
    record["scene"]["source"] = "gone/scene.tif"
    (pred / "predict.json").write_text(json.dumps(record))
    res = write_report([pred], tmp_path / "a.html")
    assert any("pass --scene" in n for n in res.notes)
    assert 'alt="false-colour quicklook' not in (tmp_path / "a.html").read_text()
    assert 'alt="probability map' in (tmp_path / "a.html").read_text()
    res = write_report([pred], tmp_path / "b.html", config=ReportConfig(scene=runs["scene"]))
    assert not res.notes and 'alt="false-colour quicklook' in (tmp_path / "b.html").read_text()
    # the same output twice needs --overwrite; with it, the file is replaced
    assert main(["-q", "report", "--run", str(pred), "--out", str(tmp_path / "b.html")]) == 2
    assert main(["-q", "report", "--run", str(pred), "--scene", str(runs["scene"]),
                 "--out", str(tmp_path / "b.html"), "--overwrite"]) == 0  # fmt: skip


def test_a_demo_folder_brings_its_prediction_and_subfolder_runs(runs: dict, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    demo.mkdir()
    shutil.copytree(runs["pred"], demo / "prediction")
    shutil.copytree(runs["sanity"], demo / "sanity")
    (demo / "summary.json").write_text(json.dumps({"seconds": {"total": 1.5}}))
    found = find_runs([demo])
    assert [r.kind for r in found] == ["demo", "predict", "sanity"]


def test_the_browser_check_catches_a_broken_page(tmp_path: Path) -> None:
    """The check below can fail: a blocked fetch and a script error are seen."""
    if find_chromium() is None:
        pytest.skip("no chromium on this machine (make test installs it where it can)")
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; img-src data:\"></head><body>"
        "<img src='http://127.0.0.1:9/x.png'><script>throw new Error('x')</script></body></html>"
    )
    load = load_page(bad)
    assert load.loaded and len(load.errors) >= 1
    assert any("Content Security Policy" in e for e in load.errors)
    assert load.images[0]["naturalWidth"] == 0


def test_the_report_opens_in_a_real_browser_with_its_pictures(runs: dict, tmp_path: Path) -> None:
    if find_chromium() is None:
        pytest.skip("no chromium on this machine (make test installs it where it can)")
    from PIL import Image

    out = tmp_path / "report.html"
    write_report([runs["pred"], runs["audit"], runs["sanity"]], out)
    load = load_page(out)
    assert load.loaded
    assert load.errors == []
    assert len(load.images) >= 9
    assert all(im["complete"] and im["naturalWidth"] > 0 for im in load.images), load.images
    shot = np.asarray(Image.open(io.BytesIO(load.screenshot)).convert("RGB"))
    assert shot.shape[1] == 1280
    for im in load.images:  # non-blank pixels where each picture is laid out
        x0, y0 = int(im["x"]), int(im["y"])
        x1, y1 = int(im["x"] + im["width"]), int(im["y"] + im["height"])
        assert x1 - x0 > 50 and y1 - y0 > 50, im
        crop = shot[y0:y1, x0:x1].reshape(-1, 3)
        assert len(np.unique(crop, axis=0)) > 16, im["alt"]
        assert crop.std() > 5, im["alt"]
    # and outside the pictures, the page is mostly white paper
    assert (shot[:40].reshape(-1, 3) > 240).all(axis=1).mean() > 0.8


def test_a_concepts_run_shows_its_names_thumbnails_and_detections(tmp_path: Path) -> None:
    from attribute.concept_run import concepts_run
    from attribute.concepts import ConceptConfig
    from attribute.targets import Target
    from data_prep.sentinel2 import open_scene
    from data_prep.synthetic import RegionConfig, generate_region
    from tests.attribute.test_concepts import planted_checkpoint

    region = generate_region(tmp_path / "region", RegionConfig(
        seed=3, size=256, spurious="pad", cloud_fraction=0.0, nodata_fraction=0.0))  # fmt: skip
    farm = gpd.read_file(region.truth, layer="farms").geometry.iloc[0]
    run = tmp_path / "concepts"
    with open_scene(region.scene) as scene:
        res = concepts_run([scene], planted_checkpoint(), run, targets=[Target(7, "polygon", farm)],
                           config=ConceptConfig(layer="pool", top_k=3))  # fmt: skip
    out = tmp_path / "report.html"
    written = write_report([run], out)
    assert any(h.startswith("Concepts:") for h in written.sections)
    page = _parse(out)
    text = " ".join(page.text)
    named = [f for f in res.features if f.names]
    assert named and all(f"feature {f.feature}: {'; '.join(f.names)}" in text for f in named)
    assert "Detections by their features" in text
    assert len([s for s in page.images if s.startswith("data:image/png;base64,")]) >= len(named)
