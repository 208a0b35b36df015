"""Contrastive concept naming: planted detectors are named by what they detect, the parts have
known answers, and bad input fails with one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from attribute.concept_run import concepts_run
from attribute.concepts import (
    Channels,
    ConceptConfig,
    concept_readers,
    concept_shares,
    counterfactual_tiles,
    feature_contributions,
    layer_names,
    name_features,
    probe_tiles,
)
from data_prep.sentinel2 import open_scene
from data_prep.synthetic import RegionConfig, generate_region
from solarmap.bands import BANDS
from solarmap.errors import InputError
from solarmap.model import Checkpoint
from tests.attribute.conftest import identity_checkpoint
from tests.conftest import AUSTRIA, needs_realdata

B02, B04, B08 = BANDS.index("B02"), BANDS.index("B04"), BANDS.index("B08")
#: The planted detectors, in their channel order: what each one must be named first.
PLANTED = ("water", "spurious pad", "cropland / vegetation")


class Planted(nn.Module):
    """Three detectors over reflectance, pooled to 1/4 of the input (layer ``pool``):
    water (NIR below 0.08), a bright pad (blue above 0.2: soils and roofs stay below 0.11),
    vegetation (NIR minus red above 0.15); then a 1x1 head. A fourth channel is never on."""

    def __init__(self) -> None:
        super().__init__()
        self.detect = nn.Conv2d(10, 4, 1)
        self.act = nn.ReLU()
        self.pool = nn.AvgPool2d(4)
        self.head = nn.Conv2d(4, 1, 1)
        w = torch.zeros(4, 10)
        b = torch.zeros(4)
        w[0, B08], b[0] = -50.0, 4.0
        w[1, B02], b[1] = 50.0, -10.0
        w[2, B08], w[2, B04], b[2] = 20.0, -20.0, -3.0
        b[3] = -1.0
        with torch.no_grad():
            self.detect.weight.copy_(w[:, :, None, None])
            self.detect.bias.copy_(b)
            self.head.weight.copy_(torch.tensor([0.5, -1.0, 2.0, 1.0])[None, :, None, None])
            self.head.bias.fill_(-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.act(self.detect(x)))
        return functional.interpolate(self.head(h), scale_factor=4, mode="nearest")


class HandFeatures(nn.Module):
    """Its layer ``feat`` is the first ``n`` input bands, rectified: features set by hand."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.feat = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feat(x[:, : self.n].clamp(min=0))[:, :1]


def planted_checkpoint() -> Checkpoint:
    """The planted model on reflectance itself (normalisation mean 0, std 1)."""
    return identity_checkpoint(Planted())


@pytest.fixture(scope="module")
def pad_region(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A clear region with water, and a bright pad around every mapped farm."""
    cfg = RegionConfig(seed=3, size=384, spurious="pad", cloud_fraction=0.0, nodata_fraction=0.0)
    return generate_region(tmp_path_factory.mktemp("concepts"), cfg)


def _probe(region: Any, ck: Checkpoint, tile_px: int = 64) -> Any:
    with open_scene(region.scene) as scene:
        return probe_tiles([scene], concept_readers([scene], "landcover"), ck.normalise,
                           tile_px=tile_px)  # fmt: skip


def test_planted_detectors_are_named_by_what_they_detect(pad_region: Any) -> None:
    ck = planted_checkpoint()
    probe = _probe(pad_region, ck)
    assert {"water", "spurious pad", "solar"} <= set(probe.names)
    cfg = ConceptConfig(features=(0, 1, 2), top_k=6)
    named, scores = name_features(ck.freeze(), probe, layer="pool", config=cfg)
    assert scores.shape == (len(probe), 4)
    for fn, want in zip(named, PLANTED, strict=True):
        assert fn.names and fn.names[0] == want, (fn.feature, fn.concepts[:3])
        top = next(c for c in fn.concepts if c["concept"] == want)
        assert top["counterfactual"] < 0.5 * top["score"]
    water = named[0]
    assert water.regions.shape[1:] == (64, 64) and water.regions.any(axis=(1, 2)).all()
    assert min(water.peak) > 0  # only tiles that activate it
    # the water detector's regions lie on water (the land cover's class 3)
    c = probe.names.index("water")
    assert concept_shares(water.regions, probe.concepts[water.top])[:, c].mean() > 0.5


def test_a_concept_as_present_in_the_counterfactuals_is_dropped() -> None:
    """Two concepts everywhere in the top regions; only one of them is absent from the
    counterfactual regions, so only it names the feature."""

    n, t = 12, 16
    x = torch.zeros(n, 10, t, t)
    x[:6, 0] = 1.0  # feature 0 on in the first six tiles
    x[:, 1] = 1.0  # feature 1 on everywhere, so every tile matches on it
    concepts = np.zeros((n, 2, t, t), dtype=bool)
    concepts[:, 0] = True  # "ground": in every tile
    concepts[:6, 1] = True  # "target": only where feature 0 fires
    from attribute.concepts import ProbeSet

    probe = ProbeSet(x, np.ones((n, t, t), bool), concepts, ["ground", "target"],
                     np.zeros((n, 3, t, t), np.float32))  # fmt: skip
    cfg = ConceptConfig(features=(0,), top_k=4, matched=1)
    (fn,), _ = name_features(HandFeatures(2).eval(), probe, layer="feat", config=cfg)
    rows = {c["concept"]: c for c in fn.concepts}
    assert rows["ground"]["score"] == pytest.approx(1.0)
    assert rows["ground"]["counterfactual"] == pytest.approx(1.0)
    assert not rows["ground"]["kept"]
    assert rows["target"]["kept"] and fn.names == ["target"]
    assert set(fn.top) <= set(range(6)) and not set(fn.counterfactual) & set(range(6))


def test_counterfactuals_are_the_nearest_low_tiles_each_once() -> None:
    z = np.array([[5.0, 0.0], [4.0, 1.0], [0.0, 0.1], [0.0, 0.9], [-1.0, 5.0], [-1.0, 0.2]])
    cf = counterfactual_tiles(z, 0, [0, 1])
    # low on feature 0: tiles 2-5; tile 0 (other 0.0) is nearest to 2, tile 1 (1.0) to 3
    assert cf == [2, 3]
    assert counterfactual_tiles(z, 0, [0, 0]) == [2, 5]  # the next nearest, not 2 twice


def test_concept_shares() -> None:
    regions = np.zeros((2, 4, 4), dtype=bool)
    regions[0, :2] = True  # 8 pixels
    concepts = np.zeros((2, 2, 4, 4), dtype=bool)
    concepts[0, 0, 0] = True  # 4 of them
    concepts[0, 1] = True
    shares = concept_shares(regions, concepts)
    np.testing.assert_allclose(shares, [[0.5, 1.0], [0.0, 0.0]])  # an empty region shares 0


def test_contributions_of_a_linear_head_are_weight_times_activation() -> None:
    model = Planted().eval()
    x = torch.rand(1, 10, 32, 32) * 0.4
    region = np.zeros((32, 32), dtype=bool)
    region[4:12, 8:24] = True
    got = feature_contributions(model, model.pool, x, region)
    with torch.no_grad():
        h = model.pool(model.act(model.detect(x)))[0]  # [4, 8, 8]
    up = h.repeat_interleave(4, 1).repeat_interleave(4, 2).numpy()  # nearest upsampling
    w = model.head.weight.detach().flatten().numpy()
    want = w * up[:, region].sum(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bad_layers_features_and_dead_features(pad_region: Any) -> None:
    ck = planted_checkpoint()
    model = ck.freeze()
    assert {"detect", "act", "pool", "head"} <= set(layer_names(model))
    probe = _probe(pad_region, ck)
    with pytest.raises(InputError, match="no such map-shaped layer; valid layers: detect"):
        name_features(model, probe, layer="decoder.blocks.9")
    with pytest.raises(InputError, match="out of range; pool has 4 channels"):
        name_features(model, probe, layer="pool", config=ConceptConfig(features=(7,)))
    with pytest.raises(InputError, match="no probe tile activates it"):
        name_features(model, probe, layer="pool", config=ConceptConfig(features=(3,)))
    assert Channels(4).maps(torch.ones(1, 4, 2, 2)).shape == (1, 4, 2, 2)
    assert ConceptConfig(features=(2, 0, 2)).features == (2, 0)  # each named once


def test_concepts_run_writes_tables_regions_thumbnails_and_explains_detections(
    pad_region: Any, tmp_path: Path
) -> None:
    ck = planted_checkpoint()
    truth = gpd.read_file(pad_region.truth)
    truth = truth[truth.area > 20_000].head(2)
    from attribute.targets import Target

    targets = [
        Target(int(i), "polygon", g) for i, g in zip(truth.index, truth.geometry, strict=True)
    ]
    out = tmp_path / "concepts"
    with open_scene(pad_region.scene) as scene:
        res = concepts_run([scene], ck, out, config=ConceptConfig(layer="pool", top_k=4),
                           targets=targets)  # fmt: skip
    for name in ("features.csv", "concept_scores.csv", "concepts.json", "regions.gpkg",
                 "detections.gpkg", "detections.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    assert len(list((out / "thumbs").glob("feature_*.png"))) == 3  # not the dead channel
    record = json.loads((out / "concepts.json").read_text())
    assert record["dead_features"] == [3]
    assert [f["names"][0] for f in record["features"]] == list(PLANTED)
    regions = gpd.read_file(out / "regions.gpkg")
    assert set(regions["feature"]) <= {0, 1, 2} and regions.crs is not None
    info = subprocess.run(["ogrinfo", "-so", "-al", str(out / "regions.gpkg")],
                          capture_output=True, text=True)  # fmt: skip
    assert info.returncode == 0 and "Feature Count" in info.stdout
    assert len(res.detections) == len(targets)
    for d in res.detections:
        # the features sorted by how much they push the detection's logit
        c = [f["contribution"] for f in d["features"]]
        assert c == sorted(c, reverse=True)


# --- concepts from OpenStreetMap --------------------------------------------------------------

#: OSM tags for land-cover classes of a generated region (the stand-in's "map" of it).
OSM_OF_CLASS = {3: {"natural": "water"}, 5: {"landuse": "residential"},
                8: {"surface": "concrete", "area": "yes"}, 7: {"power": "plant"}}  # fmt: skip


def _osm_elements(region: Any) -> list[dict[str, Any]]:
    """Overpass elements mapping the region's water, settlements, pads and farms."""
    import geopandas as gpd
    import rasterio

    from solarmap.geo import polygonize_mask
    from tests.data.make_osm import elements_from_polygons

    with rasterio.open(region.landcover) as src:
        lc, tr, crs = src.read(1), src.transform, src.crs
    items = []
    for cls, tags in OSM_OF_CLASS.items():
        polys = [p for p in polygonize_mask(lc == cls, tr) if p.area >= 400]
        lonlat = gpd.GeoSeries(polys, crs=crs).simplify(5).to_crs(4326)
        items += [(p, tags) for p in lonlat if p.geom_type == "Polygon"]
    return elements_from_polygons(items)


def test_osm_concepts_name_the_planted_water_detector_and_are_cached(
    pad_region: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.data.overpass_standin import OverpassStandin, point_osmnx_at

    monkeypatch.setenv("SOLARMAP_CACHE_DIR", str(tmp_path / "cache"))
    ck = planted_checkpoint()
    cfg = ConceptConfig(features=(0,), top_k=6)
    with OverpassStandin(_osm_elements(pad_region)) as server:
        point_osmnx_at(monkeypatch, server)
        with open_scene(pad_region.scene) as scene:
            probe = probe_tiles([scene], concept_readers([scene], "osm"), ck.normalise,
                                tile_px=64)  # fmt: skip
        asked = len(server.queries)
        assert asked >= 1 and "natural" in server.queries[0]
    assert {"natural=water", "landuse=residential", "power=plant"} <= set(probe.names)
    (water,), _ = name_features(ck.freeze(), probe, layer="pool", config=cfg)
    assert water.names[0] == "natural=water", water.concepts[:3]
    # offline now (the server is gone): the cached answer is read
    with open_scene(pad_region.scene) as scene:
        again = probe_tiles([scene], concept_readers([scene], "osm"), ck.normalise, tile_px=64)
    assert again.names == probe.names
    np.testing.assert_array_equal(again.concepts, probe.concepts)
    # offline with no cache: one clear error
    monkeypatch.setenv("SOLARMAP_CACHE_DIR", str(tmp_path / "empty"))
    with open_scene(pad_region.scene) as scene, pytest.raises(InputError, match="none cached"):
        concept_readers([scene], "osm")


def test_osm_concepts_from_a_file(pad_region: Any, tmp_path: Path) -> None:
    from tests.data.make_osm import write_osm_xml

    path = write_osm_xml(tmp_path / "area.osm", _osm_elements(pad_region))
    ck = planted_checkpoint()
    with open_scene(pad_region.scene) as scene:
        probe = probe_tiles([scene], concept_readers([scene], str(path)), ck.normalise,
                            tile_px=64)  # fmt: skip
    (pad,), _ = name_features(ck.freeze(), probe, layer="pool",
                              config=ConceptConfig(features=(1,), top_k=6))  # fmt: skip
    assert pad.names[0] == "surface=concrete", pad.concepts[:3]


# --- on real scenes ------------------------------------------------------------------------------


@needs_realdata
def test_on_the_real_austrian_chips_the_solar_carriers_fire_on_the_osm_plants(
    tmp_path: Path,
) -> None:
    """The shipped model over the real 2022 chips, concepts from the real OSM plant polygons
    (tagged ``power=plant``): the run writes its layers, and the features that carry the solar
    logit on the plants of a chip have top regions richer in plant pixels than the probe set."""
    from contextlib import ExitStack

    from shapely.geometry import box

    from attribute.targets import Target
    from solarmap.model import load_checkpoint, shipped_checkpoint

    plants = gpd.read_file(AUSTRIA / "osm_solar_polygons_austria.geojson")
    plants["power"] = "plant"
    tagged = tmp_path / "plants.gpkg"
    plants[["power", "geometry"]].to_file(tagged)
    ck = load_checkpoint(shipped_checkpoint())
    paths = sorted(AUSTRIA.glob("s2_*_median_AprSep2022.tif"))
    out = tmp_path / "out"
    with ExitStack() as stack:
        scenes = [stack.enter_context(open_scene(p)) for p in paths]
        biggest = max(
            range(len(scenes)), key=lambda i: scenes[i].info.width * scenes[i].info.height
        )
        scenes.insert(0, scenes.pop(biggest))  # detections are explained in the first scene
        first = scenes[0].info
        local = plants.to_crs(first.crs)
        inside = local[local.intersects(box(*first.bounds))]
        targets = [Target(int(i), "polygon", g.intersection(box(*first.bounds)))
                   for i, g in zip(inside.index, inside.geometry, strict=True)][:2]  # fmt: skip
        cfg = ConceptConfig(tile_px=32, min_valid=0.2, top_k=4)
        res = concepts_run(scenes, ck, out, config=cfg, concepts=str(tagged), targets=targets)
        probe = probe_tiles(scenes, concept_readers(scenes, str(tagged)), ck.normalise,
                            tile_px=32, min_valid=0.2)  # fmt: skip
    assert len(probe) >= 20 and probe.names == ["power=plant"]
    base = (probe.concepts[:, 0] & probe.valid).sum() / probe.valid.sum()
    for name in ("features.csv", "concept_scores.csv", "regions.gpkg", "detections.gpkg"):
        assert (out / name).is_file(), name
    assert res.detections
    carriers = [f["feature"] for f in res.detections[0]["features"][:3]]
    by_feature = {f.feature: f for f in res.features}
    shares = [next(c["score"] for c in by_feature[j].concepts) for j in carriers if j in by_feature]
    assert shares and max(shares) > base, (shares, base)


def test_a_pair_is_named_where_neither_feature_is_alone() -> None:
    """A concept where two features fire together, each also firing harder without it
    elsewhere: neither is named alone, the pair is."""
    from attribute.concepts import ProbeSet

    n, t = 24, 16
    x = torch.zeros(n, 10, t, t)
    x[:6, :2] = 1.0  # both fire where the target is
    x[6:9, 0] = 1.5  # feature 0 alone, harder, elsewhere
    x[9:12, 1] = 1.5  # feature 1 alone, harder, elsewhere
    x[:, 2] = 1.0  # feature 2 everywhere (what counterfactuals match on)
    concepts = np.zeros((n, 2, t, t), dtype=bool)
    concepts[:, 0] = True  # "ground"
    concepts[:6, 1] = True  # "target"
    probe = ProbeSet(x, np.ones((n, t, t), bool), concepts, ["ground", "target"],
                     np.zeros((n, 3, t, t), np.float32))  # fmt: skip
    alone = ConceptConfig(features=(0,), top_k=3, pairs=False)
    (single,), _ = name_features(HandFeatures(3).eval(), probe, layer="feat", config=alone)
    assert single.names == [] and single.partner is None
    (pair,), _ = name_features(HandFeatures(3).eval(), probe, layer="feat",
                               config=ConceptConfig(features=(0,), top_k=3))  # fmt: skip
    assert pair.partner == 1 and pair.label == "0+1"
    assert pair.names == ["target"] and set(pair.top) <= set(range(6))
