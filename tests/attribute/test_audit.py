"""The spurious-cue audit: zones, band profile, counterfactuals, flags, outputs and bad input.

Three hand-made models with known reliance on one scene: a farm of dark panels and, 60 m
below it (beyond the 30 m ring), a bright pad. ``PanelModel`` calls a pixel solar by its own
NIR (it rests on the panels); ``PadModel`` also needs the pad somewhere in its view (it rests
on the context); ``RedModel`` calls it solar by red alone, a band that does not separate panels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from shapely.geometry import box
from torch import nn

from attribute.audit import (
    AuditConfig,
    band_profile,
    compare_checkpoints,
    explain_and_audit,
    zone_shares,
    zones,
)
from attribute.explain import ExplainConfig
from attribute.targets import Target
from data_prep.sentinel2 import open_scene
from solarmap.bands import BANDS
from solarmap.errors import CheckpointError, InputError
from solarmap.model import Checkpoint, ModelConfig
from tests.conftest import ORIGIN, write_float_scene

B02, B04, B08 = BANDS.index("B02"), BANDS.index("B04"), BANDS.index("B08")
FARM = (40, 40, 80, 100)  # rows 40-79, cols 40-99
PAD = (86, 40, 92, 100)  # 60-120 m below the farm: beyond a 30 m ring


class PanelModel(nn.Module):
    """Solar where NIR is low (panels 0.18, vegetation 0.35, the pad 0.6)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 40 * (0.27 - x[:, B08 : B08 + 1])


class PadModel(PanelModel):
    """Solar where NIR is low *and* a bright pad (B02 > 0.3) is in view."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = 40 * (x[:, B02 : B02 + 1].amax(dim=(-2, -1), keepdim=True) - 0.3)
        return torch.minimum(super().forward(x), pad.expand(-1, -1, *x.shape[-2:]))


class RedModel(nn.Module):
    """Solar where red is high (panels 0.08, vegetation 0.04): a band that does not separate."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 200 * (x[:, B04 : B04 + 1] - 0.06)


class CentredPanelModel(nn.Module):
    """:class:`PanelModel` on inputs centred on vegetation (normalised 0 is vegetation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 40 * (-0.085 - x[:, B08 : B08 + 1])


#: The vegetation spectrum of the test scene (tests.conftest.write_float_scene).
VEGETATION = [0.03, 0.06, 0.04, 0.10, 0.25, 0.32, 0.35, 0.37, 0.22, 0.11]


def checkpoint(
    model: nn.Module, bands: tuple[str, ...] = BANDS, mean: list[float] | None = None
) -> Checkpoint:
    return Checkpoint(
        model=model.eval(),
        config=ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8)),
        bands=bands,
        mean=mean or [0.0] * 10,
        std=[1.0] * 10,
        threshold=0.5,
        chip_size=64,
    )


@pytest.fixture
def pad_scene(tmp_path: Path) -> Path:
    path = write_float_scene(tmp_path / "s.tif", size=(256, 320), solar_box=FARM)
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        r0, c0, r1, c1 = PAD
        data[:, r0:r1, c0:c1] = 6000.0  # a bright pad: 0.6 in every band
        dst.write(data)
    return path


def farm_target() -> Target:
    r0, c0, r1, c1 = FARM
    x0, y0 = ORIGIN
    return Target(1, "polygon", box(x0 + 10 * c0, y0 - 10 * r1, x0 + 10 * c1, y0 - 10 * r0))


def test_zones_are_measured_in_metres_and_the_ring_must_leave_context() -> None:
    tr = Affine(10, 0, 0, 0, -10, 640)
    geom = box(200, 200, 440, 440)  # pixels 20-43 in a 64 px window
    z = zones(geom, transform=tr, shape=(64, 64), ring_m=30)
    assert (z == 0).sum() == 24 * 24
    assert z[20 + 5, 17] == 1 and z[25, 16] == 2  # 3 px of ring at 10 m
    assert z[17, 17] == 2  # a corner at 3*sqrt(2) px is beyond 30 m
    with pytest.raises(InputError, match="--ring-m 500: the ring is wider than the window"):
        zones(geom, transform=tr, shape=(64, 64), ring_m=500)


def test_zone_shares_and_band_profile() -> None:
    z = np.full((10, 10), 2, dtype=np.int8)
    z[4:6, 4:6] = 0
    z[3:7, 3] = 1
    values = np.zeros((10, 10))
    values[4:6, 4:6] = 1.0  # object: 4 px of mass 1
    values[3:7, 3] = 1.0  # ring: 4 px of mass 1
    values[0, 0] = -50.0  # negative evidence is not positive mass
    valid = np.ones((10, 10), dtype=bool)
    s = zone_shares(values, z, valid)
    assert s["share_object"] == pytest.approx(0.5) and s["share_ring"] == pytest.approx(0.5)
    assert s["share_context"] == 0 and s["density_object"] == pytest.approx(0.5 / 0.04)
    rows = [{"method": "ig", "band": b, "importance": 0.0} for b in BANDS]
    rows[BANDS.index("B04")]["importance"] = 3.0
    rows[BANDS.index("B08")]["importance"] = 1.0
    p = band_profile(rows, "ig")
    assert p["dominant_band"] == "B04" and p["dominant_group"] == "visible"
    assert p["non_separating"] == pytest.approx(0.75)
    assert band_profile(rows, "occlusion") == {}


@pytest.mark.parametrize(
    ("model", "flag", "verdict"),
    [
        (PanelModel(), None, "rests on the panels"),
        (PadModel(), "context_reliance", "rests on the land around it"),
        (RedModel(), "implausible_bands", "bands that do not separate panels (B04 leads)"),
    ],
)
def test_the_audit_tells_what_a_detection_rests_on(
    pad_scene: Path, tmp_path: Path, model: nn.Module, flag: str | None, verdict: str
) -> None:
    cfg = ExplainConfig(methods=("saliency", "integrated_gradients"))
    with open_scene(pad_scene) as scene:
        res = explain_and_audit(
            scene, checkpoint(model), [farm_target()], tmp_path / "a", explain_config=cfg
        )
    (a,) = res.objects
    assert verdict in a.verdict
    raised = {k for k, v in a.flags.items() if v} - {"unfaithful_map"}
    assert raised == ({flag} if flag else set())
    cf = a.counterfactual
    if isinstance(model, PadModel):
        assert cf["p_object"] > 0.9  # with the pad in view: solar
        assert cf["kept"] < 0.2 and cf["kept_bare"] < 0.2  # without it the farm is gone
    else:
        assert cf["kept"] > 0.95 and cf["kept_bare"] > 0.95 and cf["cue"] < 0.05
    assert not a.flags["unfaithful_map"]  # deleting the top pixels hurts more than random
    assert a.deletion["ratio"] > 1
    # the outputs: a styled GeoPackage with the figures as attributes, and the record
    gdf = gpd.read_file(tmp_path / "a" / "audit.gpkg", layer="audit")
    assert list(gdf["flagged"]) == [int(flag is not None)]
    assert gdf["verdict"][0] == a.verdict and "kept" in gdf and "share_ring" in gdf
    record = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert record["summary"]["objects"] == 1 and record["explanation"] == "explanation"
    assert (tmp_path / "a" / "explanation" / "target_1" / "attribution.tif").is_file()
    assert math.isclose(record["summary"]["reliance"], max(1 - cf["kept_bare"], cf["cue"]))


def test_compare_puts_two_models_side_by_side_and_refuses_other_bands(
    pad_scene: Path, tmp_path: Path
) -> None:
    cfg = ExplainConfig(methods=("saliency",))
    cks = {"a_panel": checkpoint(PanelModel()), "b_pad": checkpoint(PadModel())}
    with open_scene(pad_scene) as scene:
        res = compare_checkpoints(scene, cks, [farm_target()], tmp_path / "c", explain_config=cfg)
        assert res["b_pad"].summary["reliance"] > res["a_panel"].summary["reliance"] + 0.5
        rows = json.loads((tmp_path / "c" / "compare.json").read_text())["rows"]
        flagged = next(r for r in rows if r["figure"] == "flagged share")
        assert (flagged["a_panel"], flagged["b_pad"]) == (0.0, 1.0)
        header = (tmp_path / "c" / "compare.csv").read_text().splitlines()[0]
        assert header == "figure,a_panel,b_pad"
        other = checkpoint(PanelModel(), bands=tuple(reversed(BANDS)))
        with pytest.raises(CheckpointError, match="same bands"):
            compare_checkpoints(scene, {"a": cks["a_panel"], "b": other}, [farm_target()],
                                tmp_path / "d", explain_config=cfg)  # fmt: skip
    assert not (tmp_path / "d").exists()


def test_faithfulness_curves_of_every_map_in_an_audit(pad_scene: Path, tmp_path: Path) -> None:
    cfg = ExplainConfig(methods=("saliency", "input_x_gradient"))
    ck = checkpoint(CentredPanelModel(), mean=VEGETATION)
    with open_scene(pad_scene) as scene:
        res = explain_and_audit(
            scene, ck, [farm_target()], tmp_path / "f", explain_config=cfg,
            config=AuditConfig(faithfulness=True, faithfulness_steps=8),
        )  # fmt: skip
    rows = {r["map"]: r for r in res.summary["faithfulness"]}
    assert set(rows) == {"saliency:sum", "input_x_gradient:sum"}  # one per method, signed
    # input x gradient of a pixel-local model on centred inputs is the exact evidence of each
    # panel pixel against vegetation: deleting in its order kills the score far faster than
    # random, and inserting in it restores it faster
    ixg = rows["input_x_gradient:sum"]
    assert ixg["deletion_ratio"] < 0.5 and ixg["insertion_auc"] > ixg["random_insertion_auc"]
    for name in rows:
        png = tmp_path / "f" / f"faithfulness_{name.replace(':', '_')}.png"
        assert png.stat().st_size > 1000
    header = (tmp_path / "f" / "faithfulness.csv").read_text().splitlines()[0]
    assert header.startswith("map,objects,deletion_auc,deletion_low,deletion_high")


def test_audit_of_an_explain_run_and_its_bad_inputs(pad_scene: Path, tmp_path: Path) -> None:
    from attribute.audit import audit_run
    from attribute.explain import explain_scene

    ck = checkpoint(PanelModel())
    with open_scene(pad_scene) as scene:
        explain_scene(scene, ck, [farm_target()], tmp_path / "ex",
                      config=ExplainConfig(methods=("saliency",)))  # fmt: skip
        res = audit_run(scene, ck, tmp_path / "ex", tmp_path / "au", ids=[1])
        assert res.objects[0].map == "saliency:max_abs"  # the run's one map
        with pytest.raises(InputError, match="object 7 has no attribution run"):
            audit_run(scene, ck, tmp_path / "ex", tmp_path / "x", ids=[7])
        with pytest.raises(InputError, match="no explain run here"):
            audit_run(scene, ck, tmp_path, tmp_path / "x")
        with pytest.raises(InputError, match="--map occlusion"):
            audit_run(
                scene, ck, tmp_path / "ex", tmp_path / "x", config=AuditConfig(map="occlusion")
            )
        with pytest.raises(InputError, match="ring is wider"):
            audit_run(scene, ck, tmp_path / "ex", tmp_path / "x", config=AuditConfig(ring_m=5000))
    assert not (tmp_path / "x").exists()
    for bad in ({"ring_m": 0}, {"context_reliance": 1.5}, {"implausible_bands": 0},
                {"unfaithful_map": float("nan")}, {"delete_fraction": 1.0}):  # fmt: skip
        with pytest.raises(InputError):
            AuditConfig(**bad)  # type: ignore[arg-type]


class _FaintModel(PanelModel):
    """The panel model with its logit capped at 0.4: solar at p 0.6 at most."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(super().forward(x), max=0.4)


def test_an_object_its_own_window_does_not_find_solar_is_flagged(
    pad_scene: Path, tmp_path: Path
) -> None:
    """Detected at 0.7 somewhere else (a larger view), but its window scores 0.6: what made the
    detection lies beyond the window, and the ratios to a sub-threshold score mean nothing."""
    cfg = ExplainConfig(methods=("saliency",))
    out = {}
    for t in (0.5, 0.7):
        with open_scene(pad_scene) as scene:
            res = explain_and_audit(
                scene, checkpoint(_FaintModel()), [farm_target()], tmp_path / f"t{t}",
                explain_config=cfg, config=AuditConfig(threshold=t),
            )  # fmt: skip
        out[t] = res
    (low,), (high,) = out[0.5].objects, out[0.7].objects
    assert 0.5 < low.counterfactual["p_object"] < 0.7
    assert low.counterfactual["detected_in_window"] == 1.0 and not low.flags["context_reliance"]
    assert high.counterfactual["detected_in_window"] == 0.0 and high.flags["context_reliance"]
    assert "is not solar in its own window" in high.verdict
    assert out[0.7].summary["reliance"] == 1.0 and out[0.5].summary["reliance"] < 0.1
    with pytest.raises(InputError, match="--threshold"):
        AuditConfig(threshold=1.5)
