"""Band and band-group ablation against the linear model's analytic drops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribute.ablation import band_ablation, cost_band_ablation
from attribute.base import CountingFn, baseline_tensor
from attribute.targets import RegionTarget
from solarmap.bands import BAND_GROUPS, BANDS
from solarmap.errors import InputError
from tests.attribute.conftest import LinearSegmenter

BASELINE = torch.tensor([0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 1.0, 0.2, -1.0, 0.4])


def analytic_deltas(model: LinearSegmenter, x: torch.Tensor, region: np.ndarray) -> np.ndarray:
    """``delta_j = w_j · Σ_region (x_j − b_j)``."""
    diff = x[0].double().numpy() - BASELINE.double().numpy()[:, None, None]
    return model.w * (diff * region[None]).sum(axis=(1, 2))


def test_band_deltas_match_the_linear_model(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f = RegionTarget(linear_model, region)
    out = band_ablation(f, window_input, baseline=BASELINE, batch_size=4)
    table = out.extra["table"]
    assert [row["band"] for row in table] == list(BANDS)
    expected = analytic_deltas(linear_model, window_input, region)
    got = np.array([row["delta"] for row in table])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    shares = np.array([row["share"] for row in table])
    np.testing.assert_allclose(shares, np.abs(expected) / np.abs(expected).sum(), rtol=1e-4)
    assert shares.sum() == pytest.approx(1.0)
    assert out.method == "band_ablation" and out.per_band is None and out.maps == {}
    assert out.cost == cost_band_ablation() and out.cost.forward == 11


def test_group_deltas_add_up_their_bands(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f = RegionTarget(linear_model, region)
    out = band_ablation(f, window_input, baseline=BASELINE, groups=True)
    per_band = dict(zip(BANDS, analytic_deltas(linear_model, window_input, region), strict=True))
    table = out.extra["table"]
    assert [row["group"] for row in table] == list(BAND_GROUPS)
    for row in table:
        expected = sum(per_band[b] for b in BAND_GROUPS[row["group"]])
        assert row["delta"] == pytest.approx(expected, rel=1e-4, abs=1e-3)
    assert out.extra["groups"]["swir"] == ["B11", "B12"]
    assert out.method == "group_ablation"
    assert out.cost == cost_band_ablation(groups=True) and out.cost.forward == 5


def test_scalar_baseline_and_batches(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    sizes: list[int] = []
    f = RegionTarget(linear_model, region)

    def recorded(x: torch.Tensor) -> torch.Tensor:
        sizes.append(int(x.shape[0]))
        return f(x)

    out = band_ablation(recorded, window_input, baseline=0.0, batch_size=3)
    xs = window_input[0].double().numpy()
    expected = linear_model.w * (xs * region[None]).sum(axis=(1, 2))
    np.testing.assert_allclose(
        [r["delta"] for r in out.extra["table"]], expected, rtol=1e-4, atol=1e-3
    )
    assert max(sizes) <= 3 and sum(sizes) == out.cost.forward == 11


def test_baseline_shapes() -> None:
    x = torch.zeros(1, 10, 4, 5)
    assert baseline_tensor(1.5, x).shape == x.shape
    per_band = baseline_tensor(torch.arange(10.0), x)
    assert per_band[0, 7, 3, 4] == 7.0
    assert baseline_tensor(np.ones((10, 4, 5)), x).shape == x.shape
    with pytest.raises(InputError, match="baseline"):
        baseline_tensor(torch.zeros(10, 4), x)
    with pytest.raises(InputError, match="NaN"):
        baseline_tensor(float("nan"), x)


def test_bad_inputs_raise(linear_model: LinearSegmenter, region: np.ndarray) -> None:
    f = RegionTarget(linear_model, region)
    with pytest.raises(InputError, match="Tensor"):
        band_ablation(f, torch.zeros(1, 9, 64, 64))
    with pytest.raises(InputError, match="batch_size"):
        band_ablation(f, torch.zeros(1, 10, 64, 64), batch_size=0)
    with pytest.raises(InputError, match="one scalar per input"):
        CountingFn(lambda x: x.sum())(torch.zeros(2, 10, 4, 4))
