"""Restricted occlusion: known answers on the linear model, agreement with Captum, cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import Occlusion

from attribute.occlusion import cost_occlusion, occlusion
from attribute.targets import RegionTarget
from solarmap.errors import InputError
from tests.attribute.conftest import WINDOW, LinearSegmenter

BOX = (20, 24, 40, 44)


class BatchRecorder:
    """Wraps ``f`` and records the size of every batch it is called with."""

    def __init__(self, f: RegionTarget) -> None:
        self.f = f
        self.sizes: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return self.f(x)


def test_tile_deltas_match_the_linear_model(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    """Each non-overlapping tile's value is sum over its region pixels of w·(x − b)."""
    baseline = torch.linspace(-0.5, 0.5, 10)
    f = RegionTarget(linear_model, region)
    out = occlusion(f, window_input, window=4, baseline=baseline, region_bbox=BOX, context_px=4)
    full_b = baseline.view(1, 10, 1, 1).expand_as(window_input)
    contrib = linear_model.region_ig(window_input, full_b, region).sum(axis=0)  # [H, W]
    tiles = contrib.reshape(WINDOW // 4, 4, WINDOW // 4, 4).sum(axis=(1, 3))
    expected = np.kron(tiles, np.ones((4, 4)))
    r0, c0, r1, c1 = out.extra["swept_bbox"]
    assert (r0, c0, r1, c1) == (16, 20, 44, 48)
    np.testing.assert_allclose(
        out.maps["occlusion"][r0:r1, c0:c1], expected[r0:r1, c0:c1], rtol=1e-4, atol=1e-3
    )
    outside = np.ones((WINDOW, WINDOW), dtype=bool)
    outside[r0:r1, c0:c1] = False
    assert np.all(out.maps["occlusion"][outside] == 0)
    assert out.per_band is None and out.maps["occlusion"].dtype == np.float32


def small_conv_net() -> torch.nn.Module:
    """A seeded non-linear segmenter with a 5 px receptive field (fast on CPU)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(10, 6, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(6, 1, 3, padding=1),
            torch.nn.Tanh(),
        )
    return net.eval()


def test_restricted_sweep_equals_captum_full_occlusion() -> None:
    """Non-linear model: the crop gives Captum's values where all covering windows lie in it."""
    size = 40
    x = torch.randn(1, 10, size, size, generator=torch.Generator().manual_seed(3))
    box = (16, 18, 24, 25)
    region = np.zeros((size, size), dtype=bool)
    region[box[0] : box[2], box[1] : box[3]] = True
    f = RegionTarget(small_conv_net(), region)
    ours = occlusion(f, x, window=8, stride=4, region_bbox=box, context_px=8, batch_size=32)
    assert ours.extra["swept_bbox"] == [8, 8, 32, 36]
    with torch.no_grad():
        full = (
            Occlusion(f)
            .attribute(
                x, sliding_window_shapes=(10, 8, 8), strides=(10, 4, 4), perturbations_per_eval=32
            )[0, 0]
            .numpy()
        )
    r0, c0, r1, c1 = box
    np.testing.assert_allclose(
        ours.maps["occlusion"][r0:r1, c0:c1], full[r0:r1, c0:c1], rtol=1e-4, atol=1e-4
    )
    # Non-overlapping tiles are aligned to Captum's grid: the whole crop agrees.
    tiles = occlusion(f, x, window=8, region_bbox=box, context_px=4, batch_size=32)
    with torch.no_grad():
        full8 = (
            Occlusion(f)
            .attribute(
                x, sliding_window_shapes=(10, 8, 8), strides=(10, 8, 8), perturbations_per_eval=32
            )[0, 0]
            .numpy()
        )
    a0, a1, b0, b1 = tiles.extra["swept_bbox"]
    assert (b0 - a0) * (b1 - a1) < size * size
    np.testing.assert_allclose(
        tiles.maps["occlusion"][a0:b0, a1:b1], full8[a0:b0, a1:b1], rtol=1e-4, atol=1e-4
    )
    # Whole-window sweep reproduces Captum everywhere, at Captum's cost.
    whole = occlusion(f, x, window=8, batch_size=32)
    np.testing.assert_allclose(whole.maps["occlusion"], full8, rtol=1e-4, atol=1e-4)
    assert whole.cost.forward == 1 + 5 * 5


def test_uneven_edges_follow_captum_truncated_windows(
    linear_model: LinearSegmenter,
) -> None:
    """Window sizes that do not divide the window: the last (truncated) positions agree too."""
    x = torch.randn(1, 10, 30, 30, generator=torch.Generator().manual_seed(1))
    region = np.zeros((30, 30), dtype=bool)
    region[18:30, 20:30] = True
    f = RegionTarget(linear_model, region)
    ours = occlusion(f, x, window=7, stride=5, region_bbox=(20, 22, 30, 30), context_px=6)
    with torch.no_grad():
        full = (
            Occlusion(f)
            .attribute(x, sliding_window_shapes=(10, 7, 7), strides=(10, 5, 5))[0, 0]
            .numpy()
        )
    np.testing.assert_allclose(
        ours.maps["occlusion"][20:30, 22:30], full[20:30, 22:30], rtol=1e-4, atol=1e-3
    )


def test_cost_scales_with_context_and_matches_spent(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f = RegionTarget(linear_model, region)
    small = cost_occlusion((WINDOW, WINDOW), window=4, region_bbox=(28, 30, 32, 34), context_px=4)
    large = cost_occlusion((WINDOW, WINDOW), window=4, region_bbox=BOX, context_px=4)
    wider = cost_occlusion((WINDOW, WINDOW), window=4, region_bbox=BOX, context_px=12)
    whole = cost_occlusion((WINDOW, WINDOW), window=4)
    assert small.forward < large.forward < wider.forward < whole.forward
    assert whole.forward == 1 + 16 * 16
    # The lead's measurement: Captum's 8×8 occlusion of 256² px is 1,025 evaluations.
    assert cost_occlusion((256, 256), window=8).forward == 1025
    recorder = BatchRecorder(f)
    out = occlusion(recorder, window_input, window=4, region_bbox=BOX, context_px=4, batch_size=5)
    assert out.cost == large
    assert out.cost.backward == 0
    assert sum(recorder.sizes) == large.forward
    assert max(recorder.sizes) <= 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 80}, "does not fit"),
        ({"window": 4, "stride": 5}, "stride"),
        ({"region_bbox": (10, 10, 70, 20)}, "region_bbox"),
        ({"region_bbox": (10, 10, 10, 20)}, "region_bbox"),
        ({"context_px": -1}, "context_px"),
        ({"batch_size": 0}, "batch_size"),
        ({"baseline": torch.zeros(3)}, "baseline"),
    ],
)
def test_bad_options_raise_input_error(
    linear_model: LinearSegmenter,
    window_input: torch.Tensor,
    region: np.ndarray,
    kwargs: dict[str, object],
    match: str,
) -> None:
    f = RegionTarget(linear_model, region)
    with pytest.raises(InputError, match=match):
        occlusion(f, window_input, **kwargs)  # type: ignore[arg-type]


def test_wrong_input_shape_raises(linear_model: LinearSegmenter, region: np.ndarray) -> None:
    f = RegionTarget(linear_model, region)
    with pytest.raises(InputError, match=r"Tensor\[1, 10, H, W\]"):
        occlusion(f, torch.zeros(2, 10, WINDOW, WINDOW))
