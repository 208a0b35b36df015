"""Known-answer models and windows shared by the attribution tests.

:class:`LinearSegmenter` is a 1×1 ``Conv2d(10 → 1)`` with fixed weights: the logit of pixel
``p`` is ``w · x_p + b``. For the target ``f(x) = Σ_{p ∈ R} logit_p(x)`` (a region sum) every
attribution has a closed form:

- gradient: ``∂f/∂x_{j,p} = w_j`` for ``p ∈ R``, 0 elsewhere;
- input × gradient: ``x_{j,p} · w_j`` on ``R``;
- integrated gradients and exact Shapley values (features = single band-pixels, or any grouping
  of them, replaced by a baseline ``x′``): ``(x_{j,p} − x′_{j,p}) · w_j`` on ``R`` (summed over
  a group's members), because the model is additive.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from solarmap.bands import BANDS
from solarmap.model import Checkpoint, ModelConfig, build_model
from tests.conftest import ORIGIN, write_float_scene

#: Weights of :class:`LinearSegmenter`, one per band, all different and of both signs.
LINEAR_WEIGHTS: tuple[float, ...] = (0.5, -1.0, 2.0, 0.25, -0.5, 1.5, -2.0, 0.75, 1.0, -0.25)
LINEAR_BIAS = 0.3

#: Size of the test windows (a multiple of the tiny U-Net's 8).
WINDOW = 64


class LinearSegmenter(nn.Module):
    """``Tensor[N, 10, H, W]`` → logits ``Tensor[N, 1, H, W]`` with ``logit_p = w · x_p + b``."""

    def __init__(
        self, weights: Sequence[float] = LINEAR_WEIGHTS, bias: float = LINEAR_BIAS
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(len(weights), 1, kernel_size=1, bias=True)
        self.bias = float(bias)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(weights, dtype=torch.float32).view(1, -1, 1, 1))
            self.conv.bias.fill_(bias)  # type: ignore[union-attr]  # bias=True above
        self.eval()

    @property
    def w(self) -> np.ndarray:
        """The weights, ``float64[10]``."""
        return self.conv.weight.detach().double().flatten().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def logits(self, x: torch.Tensor) -> np.ndarray:
        """Analytic logits ``float64[H, W]`` of one window ``Tensor[1, 10, H, W]``."""
        xs = x[0].detach().double().numpy()
        return np.tensordot(self.w, xs, axes=1) + self.bias

    def region_value(self, x: torch.Tensor, region: np.ndarray, *, mean: bool = False) -> float:
        """Analytic ``f(x)``: sum (or mean) of the logits over the region."""
        vals = self.logits(x)[np.asarray(region, dtype=bool)]
        return float(vals.mean() if mean else vals.sum())

    def region_gradient(self, region: np.ndarray, *, mean: bool = False) -> np.ndarray:
        """Analytic ``∂f/∂x``, ``float64[10, H, W]``: ``w_j`` on the region, 0 elsewhere."""
        r = np.asarray(region, dtype=np.float64)
        g = self.w[:, None, None] * r[None]
        return g / r.sum() if mean else g

    def region_ig(self, x: torch.Tensor, baseline: torch.Tensor, region: np.ndarray) -> np.ndarray:
        """Analytic integrated gradients (= exact Shapley values), ``float64[10, H, W]``."""
        diff = (x - baseline)[0].detach().double().numpy()
        return diff * self.region_gradient(region)


def make_window(
    seed: int = 0, *, size: int = WINDOW, scales: Sequence[float] | None = None
) -> torch.Tensor:
    """A seeded normalised window ``Tensor[1, 10, size, size]``.

    Each band has its own offset and scale (``scales``, default 0.25 … 2.5) so per-band
    statistics differ.
    """
    rng = np.random.default_rng(seed)
    n = len(BANDS)
    sc = np.linspace(0.25, 2.5, n) if scales is None else np.asarray(scales, dtype=float)
    offset = np.linspace(-1.0, 1.0, n)
    data = rng.normal(size=(n, size, size)) * sc[:, None, None] + offset[:, None, None]
    return torch.from_numpy(data.astype(np.float32))[None]


def box_region(size: int = WINDOW, box: tuple[int, int, int, int] = (20, 24, 40, 44)) -> np.ndarray:
    """``bool[size, size]`` with the box ``(row0, col0, row1, col1)`` set."""
    r0, c0, r1, c1 = box
    region = np.zeros((size, size), dtype=bool)
    region[r0:r1, c0:c1] = True
    return region


@pytest.fixture
def linear_model() -> LinearSegmenter:
    """The known-answer linear segmenter (eval mode)."""
    return LinearSegmenter()


@pytest.fixture
def window_input() -> torch.Tensor:
    """A seeded window ``Tensor[1, 10, 64, 64]`` with different statistics per band."""
    return make_window(0)


@pytest.fixture
def region() -> np.ndarray:
    """A 20×20 px box region in a 64×64 window."""
    return box_region()


@pytest.fixture(scope="session")
def tiny_unet() -> nn.Module:
    """A small real U-Net (random but seeded weights), eval mode; input multiple of 8."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8)))
    return model.eval()


def linear_checkpoint(bands: tuple[str, ...] = BANDS) -> Checkpoint:
    """A checkpoint around :class:`LinearSegmenter` (known gradients), identity normalisation."""
    return identity_checkpoint(LinearSegmenter(), bands)


def identity_checkpoint(model: nn.Module, bands: tuple[str, ...] = BANDS) -> Checkpoint:
    """A checkpoint around a hand-made ``model`` that sees reflectance itself (normalisation
    mean 0, std 1)."""
    return Checkpoint(
        model=model.eval(),
        config=ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8)),
        bands=bands,
        mean=[0.0] * 10,
        std=[1.0] * 10,
        threshold=0.5,
        chip_size=64,
    )


@pytest.fixture
def bright_scene(tmp_path: Path) -> tuple[Path, tuple[float, float]]:
    """A scene with a bright 2×2 feature at a known map coordinate inside the target box."""
    path = write_float_scene(tmp_path / "s.tif", size=(120, 160), solar_box=(40, 50, 80, 110))
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[:, 61:63, 90:92] *= 8  # rows 61-62, cols 90-91
        dst.write(data)
    x = ORIGIN[0] + 91 * 10.0  # the shared corner of the 2×2 feature
    y = ORIGIN[1] - 62 * 10.0
    return path, (x, y)
