"""The sparse autoencoder: it learns a sparse code of its layer, its probes have known answers,
and it is saved, loaded, named and refused like the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from attribute.concept_run import concepts_run
from attribute.concepts import ConceptConfig, ProbeSet, concept_readers, probe_tiles
from attribute.sae import (
    SaeConfig,
    auc_matrix,
    cell_labels,
    concept_probes,
    load_sae,
    save_sae,
    train_sae,
)
from data_prep.sentinel2 import open_scene
from data_prep.synthetic import RegionConfig, generate_region
from solarmap.errors import InputError
from tests.attribute.test_concepts import planted_checkpoint
from train.evaluate import roc_auc


class Dictionary(nn.Module):
    """A layer (``feat``) whose 8 channels at each position are a mix of 16 fixed unit atoms,
    weighted by the 16 input channels (sparse inputs make sparse mixes)."""

    def __init__(self, atoms: torch.Tensor) -> None:
        super().__init__()
        self.mix = nn.Conv2d(16, 8, 1, bias=False)
        with torch.no_grad():
            self.mix.weight.copy_(atoms.t()[:, :, None, None])
        self.feat = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feat(self.mix(x)).sum(1, keepdim=True)


def _sparse_probe(n: int = 64, t: int = 8, seed: int = 0) -> tuple[ProbeSet, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(16, 8, generator=g)
    atoms /= atoms.norm(dim=1, keepdim=True)
    on = torch.rand(n, 16, t, t, generator=g) < 2 / 16  # about 2 atoms a position
    x = on * (0.5 + torch.rand(n, 16, t, t, generator=g))
    probe = ProbeSet(x, np.ones((n, t, t), bool), np.zeros((n, 1, t, t), bool), ["none"],
                     np.zeros((n, 3, t, t), np.float32))  # fmt: skip
    return probe, atoms


@pytest.mark.parametrize("k", [0, 3])
def test_the_autoencoder_learns_a_sparse_code_of_sparse_activations(k: int) -> None:
    probe, atoms = _sparse_probe()
    model = Dictionary(atoms).eval()
    cfg = SaeConfig(expansion=4, k=k, l1=0.2, steps=1500, lr=3e-3)
    res = train_sae(model, probe, layer="feat", config=cfg)
    assert res.sae.n_features == 32
    assert res.fvu < 0.1, res.metrics()
    assert res.l0 < 16  # of 32 codes, where every one of the 8 channels is non-zero
    if k:
        assert res.l0 <= k
    assert 0 <= res.dead < 0.5
    again = train_sae(model, probe, layer="feat", config=cfg)
    assert again.fvu == pytest.approx(res.fvu)  # seeded


def test_auc_matrix_is_the_mann_whitney_auc_of_every_column() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 5, (200, 3)).astype(float)  # ties on purpose
    labels = rng.random((200, 2)) < 0.3
    got = auc_matrix(values, labels)
    for f in range(3):
        for k in range(2):
            want = roc_auc(values[:, f], labels[:, k].astype(np.uint8))
            assert got[f, k] == pytest.approx(want)
    assert np.isnan(auc_matrix(values, np.zeros((200, 1), bool))).all()


def test_cell_labels_are_the_concepts_covering_a_cells_share() -> None:
    concepts = np.zeros((1, 2, 4, 4), dtype=bool)
    concepts[0, 0, :2, :2] = True  # the whole top-left cell
    concepts[0, 1, 2, 2] = True  # a quarter of the bottom-right cell
    valid = np.ones((1, 4, 4), bool)
    valid[0, 0, 2:] = False  # top-right cell half valid
    probe = ProbeSet(torch.zeros(1, 10, 4, 4), valid, concepts, ["a", "b"],
                     np.zeros((1, 3, 4, 4), np.float32))  # fmt: skip
    lab = cell_labels(probe, (2, 2), min_cover=0.25)
    # positions in (row, column) order: top-left, top-right, bottom-left, bottom-right
    np.testing.assert_array_equal(lab, [[1, 0], [0, 0], [0, 0], [0, 1]])
    assert not cell_labels(probe, (2, 2), min_cover=0.5)[3, 1]


@pytest.fixture(scope="module")
def probe_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    cfg = RegionConfig(seed=4, size=512, spurious="pad", cloud_fraction=0.0, nodata_fraction=0.0)
    region = generate_region(tmp_path_factory.mktemp("sae"), cfg)
    ck = planted_checkpoint()
    with open_scene(region.scene) as scene:
        probe = probe_tiles([scene], concept_readers([scene], "landcover"), ck.normalise,
                            tile_px=64)  # fmt: skip
    return probe, ck


def test_probes_find_the_planted_water_channel_and_a_water_code(probe_and_model: Any) -> None:
    probe, ck = probe_and_model
    model = ck.freeze()
    res = train_sae(model, probe, layer="pool", config=SaeConfig(expansion=4, steps=800))
    out = concept_probes(model, probe, res, min_cover=0.25)
    rows = {r["concept"]: r for r in out["per_concept"]}
    assert rows["water"]["best_channel"] == 0  # the planted water detector
    assert rows["water"]["best_channel_auc"] > 0.9
    assert rows["water"]["best_sae_feature_auc"] > 0.9  # a code carries it too
    assert rows["water"]["probe_channels_auc"] > 0.9 and rows["water"]["probe_sae_auc"] > 0.9
    assert out["channels"] == 4 and out["sae_features"] == 16
    assert out["channels_at_good"] >= 1 and out["sae_features_at_good"] >= 1
    assert {b["feature"] for b in out["best_channels"]} <= set(range(4))


def test_saved_and_loaded_autoencoders_give_the_same_codes(
    probe_and_model: Any, tmp_path: Path
) -> None:
    probe, ck = probe_and_model
    model = ck.freeze()
    cfg = SaeConfig(expansion=2, k=2, steps=50)
    res = train_sae(model, probe, layer="pool", config=cfg)
    save_sae(res, tmp_path / "sae", cfg)
    back = load_sae(tmp_path / "sae")
    a = torch.rand(2, 4, 3, 3)
    torch.testing.assert_close(back.maps(a), res.sae.maps(a))
    meta = json.loads((tmp_path / "sae" / "sae.json").read_text())
    assert meta["features"] == 8 and meta["layer"] == "pool" and meta["config"]["k"] == 2


def test_a_run_with_the_autoencoder_names_its_codes(probe_and_model: Any, tmp_path: Path) -> None:
    _, ck = probe_and_model
    region = generate_region(tmp_path / "r", RegionConfig(seed=4, size=384, spurious="pad",
                                                           cloud_fraction=0.0,
                                                           nodata_fraction=0.0))  # fmt: skip
    out = tmp_path / "out"
    with open_scene(region.scene) as scene:
        res = concepts_run([scene], ck, out, config=ConceptConfig(layer="pool", top_k=4),
                           sae=SaeConfig(expansion=2, steps=300))  # fmt: skip
    assert res.sae is not None and res.sae.features
    for name in ("sae.safetensors", "sae.json", "features.csv", "concept_scores.csv", "probes.csv",
                 "regions.gpkg"):  # fmt: skip
        assert (out / "sae" / name).is_file(), name
    record = json.loads((out / "concepts.json").read_text())["sae"]
    assert record["features"] == 8 and 0 <= record["fvu"] < 1
    assert record["channels_at_good"] >= 0 and "per_concept" in record


def test_too_few_positions_and_bad_settings_are_refused(probe_and_model: Any) -> None:
    probe, ck = probe_and_model
    model = ck.freeze()
    cut = (slice(0, 1), slice(None), slice(0, 8), slice(0, 8))
    few = ProbeSet(probe.x[cut], probe.valid[:1, :8, :8], probe.concepts[cut], probe.names,
                   probe.rgb[cut])  # fmt: skip
    with pytest.raises(InputError, match="positions at pool"):
        train_sae(model, few, layer="pool")
    with pytest.raises(InputError, match="--sae-k -1"):
        SaeConfig(k=-1)
    with pytest.raises(InputError, match="--sae-steps 0"):
        SaeConfig(steps=0)
