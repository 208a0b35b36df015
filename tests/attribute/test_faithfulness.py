"""Deletion and insertion curves: a map that orders pixels as the model needs them beats a
random order, its reverse does worse, in pixels and superpixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from attribute.faithfulness import bootstrap, curves, fill_window, summarise
from solarmap.bands import BANDS
from solarmap.errors import InputError

B08 = BANDS.index("B08")


class NirModel(nn.Module):
    """Solar where B08 is low, pixel by pixel (so the true evidence map is known)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 8 * (0.0 - x[:, B08 : B08 + 1])


@pytest.fixture
def scene() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0.5, 0.2, (1, 10, 48, 48)).astype(np.float32))
    region = np.zeros((48, 48), dtype=bool)
    region[12:36, 12:36] = True
    x[0, B08][torch.from_numpy(region)] = torch.from_numpy(
        rng.uniform(-1.5, 0.5, int(region.sum())).astype(np.float32)
    )  # panels of mixed strength
    truth = -x[0, B08].numpy()  # the evidence each pixel gives
    return x, region, truth


def test_a_faithful_map_deletes_faster_and_inserts_faster_than_random(scene) -> None:  # type: ignore[no-untyped-def]
    x, region, truth = scene
    valid = np.ones((48, 48), dtype=bool)
    good = curves(NirModel(), x, truth, region, valid, random_orders=3)
    bad = curves(NirModel(), x, -truth, region, valid, random_orders=3)
    g, b = good.aucs(), bad.aucs()
    assert good.fractions[0] == 0 and good.fractions[-1] == 1 and good.deletion[0] == 1.0
    assert g["deletion"] < 0.5 * g["random_deletion"]
    assert g["insertion"] > g["random_insertion"]
    assert b["deletion"] > g["random_deletion"] > g["deletion"]
    # superpixels (square blocks) are removed whole, ranked by their mean value
    segments = (np.arange(48)[:, None] // 8) * 6 + np.arange(48)[None, :] // 8
    sp = curves(NirModel(), x, truth, region, valid, unit="superpixel", segments=segments)
    assert sp.aucs()["deletion"] < sp.aucs()["random_deletion"]
    assert np.all(np.isin(np.round(sp.fractions * 48 * 48), np.arange(0, 48 * 48 + 1, 64)))
    rows = summarise({"truth": [good, good], "reverse": [bad]})
    assert rows[0]["deletion_ratio"] < 0.5 < 1 < rows[1]["deletion_ratio"]
    assert rows[0]["deletion_low"] <= rows[0]["deletion_auc"] <= rows[0]["deletion_high"]


def test_fills_are_band_aware_and_inputs_checked(scene) -> None:  # type: ignore[no-untyped-def]
    x, region, truth = scene
    med = torch.arange(10, dtype=torch.float32)
    filled = fill_window(x, "median", median=med)
    assert torch.equal(filled[0, :, 5, 5], med)
    blur = fill_window(x, "blur")
    assert blur.shape == x.shape and not torch.equal(blur, x)
    valid = np.ones((48, 48), dtype=bool)
    with pytest.raises(InputError, match="fill"):
        curves(NirModel(), x, truth, region, valid, fill="rgb")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="segments"):
        curves(NirModel(), x, truth, region, valid, unit="superpixel")
    with pytest.raises(InputError, match="non-empty"):
        curves(NirModel(), x, truth, np.zeros((48, 48), dtype=bool), valid)
    b = bootstrap([1.0, 2.0, 3.0, 4.0])
    assert b["low"] < b["mean"] == 2.5 < b["high"] and b == bootstrap([1.0, 2.0, 3.0, 4.0])
