"""Grad-CAM on named layers: a known answer at the linear model's output, a tiny U-Net, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from attribute.gradcam import cost_gradcam, gradcam, resolve_layer, suggested_layers
from attribute.targets import RegionTarget
from solarmap.errors import InputError
from tests.attribute.conftest import WINDOW, LinearSegmenter


def test_known_answer_at_the_output_layer(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    """At the logits layer: weight = mean gradient = |R| / (H·W); CAM = relu(weight · logits)."""
    f = RegionTarget(linear_model, region)
    out = gradcam(linear_model, f, window_input, layer="conv")
    weight = region.sum() / region.size
    expected = np.maximum(weight * linear_model.logits(window_input), 0.0)
    np.testing.assert_allclose(out.maps["gradcam"], expected, rtol=1e-4, atol=1e-5)
    assert out.extra == {"layer": "conv", "layer_shape": [WINDOW, WINDOW]}
    assert out.cost == cost_gradcam()


@pytest.mark.parametrize(
    "layer", ["decoder.blocks.0", "decoder.blocks.2", "encoder.model.blocks.1"]
)
def test_tiny_unet_maps_have_the_window_shape_and_are_non_negative(
    tiny_unet: nn.Module, window_input: torch.Tensor, region: np.ndarray, layer: str
) -> None:
    f = RegionTarget(tiny_unet, region)
    out = gradcam(tiny_unet, f, window_input, layer=layer)
    heat = out.maps["gradcam"]
    assert heat.shape == (WINDOW, WINDOW) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0.0
    assert out.per_band is None and out.method == "gradcam"
    assert out.cost.forward == 1 and out.cost.backward == 1
    h, w = out.extra["layer_shape"]
    assert WINDOW % h == 0 and WINDOW % w == 0
    if layer == "decoder.blocks.0":
        assert h < WINDOW  # a coarse layer really is upsampled
    assert window_input.grad is None  # the caller's tensor is left alone


def test_unknown_layer_lists_valid_names(
    tiny_unet: nn.Module, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f = RegionTarget(tiny_unet, region)
    with pytest.raises(InputError, match=r"unknown layer 'decoder\.nope'.*decoder\.blocks\.0"):
        gradcam(tiny_unet, f, window_input, layer="decoder.nope")
    with pytest.raises(InputError, match="unknown layer"):
        resolve_layer(tiny_unet, "")
    names = dict(tiny_unet.named_modules())
    assert all(n in names for n in suggested_layers(tiny_unet))


def test_layer_with_several_outputs_is_refused(
    tiny_unet: nn.Module, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f = RegionTarget(tiny_unet, region)
    with pytest.raises(InputError, match="not a 2-D map"):
        gradcam(tiny_unet, f, window_input, layer="encoder")


def test_wrong_input_shape(tiny_unet: nn.Module, region: np.ndarray) -> None:
    f = RegionTarget(tiny_unet, region)
    with pytest.raises(InputError, match="Tensor"):
        gradcam(tiny_unet, f, torch.zeros(1, 3, WINDOW, WINDOW), layer="decoder.blocks.0")
