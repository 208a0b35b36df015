"""Grad-CAM on a named layer of the U-Net (Captum :class:`~captum.attr.LayerGradCam`).

The layer's activations are weighted by the spatial mean of the target's gradient per channel,
summed over channels and rectified (``relu_attributions=True``), then upsampled bilinearly to the
window (:meth:`captum.attr.LayerAttribution.interpolate`). Everything is Captum's; this module
resolves the layer by its dotted name and shapes the result. (LIME lives in
:mod:`attribute.shapley`, beside the other superpixel methods.)
"""

from __future__ import annotations

import logging
import re

import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from attribute.base import (
    Attribution,
    Cost,
    CountingFn,
    Method,
    Option,
    ScalarFn,
    check_window,
)
from solarmap.errors import InputError
from solarmap.networks import FRONT

log = logging.getLogger(__name__)


def suggested_layers(model: nn.Module, *, limit: int = 8) -> list[str]:
    """A few layer names worth explaining: the encoder stages and decoder blocks first."""
    names = [n for n, _ in model.named_modules() if n]
    stages = [n for n in names if re.fullmatch(r"(.+\.)?(blocks|layer\d+|stages?)\.\d+", n)]
    shallow = [n for n in names if "." not in n and not any(s.startswith(n) for s in stages)]
    return (stages + shallow)[:limit]


def resolve_layer(model: nn.Module, layer: str) -> nn.Module:
    """The sub-module called ``layer`` (a dotted name from ``model.named_modules()``).

    Raises:
        InputError: for an unknown name, listing a few valid ones.
    """
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise InputError(
            f"unknown layer {layer!r}; give a name from model.named_modules(), e.g. "
            f"{', '.join(suggested_layers(model))}"
        )
    return modules[layer]


def cost_gradcam() -> Cost:
    """Passes :func:`gradcam` spends: one forward and one backward."""
    return Cost(forward=1, backward=1)


def gradcam(model: nn.Module, f: ScalarFn, x: torch.Tensor, *, layer: str) -> Attribution:
    """Grad-CAM of ``f`` at ``layer``, upsampled to the window.

    Args:
        model: the U-Net ``f`` calls (to find ``layer`` in); use it in eval mode.
        f: explained function, ``Tensor[N, 10, H, W]`` → ``Tensor[N]``, differentiable.
        x: normalised window ``Tensor[1, 10, H, W]``.
        layer: dotted module name, e.g. ``"decoder.blocks.0"`` or an encoder stage.

    Returns:
        :class:`Attribution` ``"gradcam"`` with ``maps["gradcam"]`` ``float32[H, W] >= 0``;
        ``extra``: ``layer``, ``layer_shape`` (the map's size at the layer, ``[h, w]``).

    Raises:
        InputError: for a wrong input shape, an unknown layer, or a layer whose output is not a
            single ``[N, C, h, w]`` tensor.
    """
    h, w = check_window(x)
    module = resolve_layer(model, layer)
    fn = CountingFn(f)
    inputs = x.detach().clone().requires_grad_(True)
    attr = LayerGradCam(fn, module).attribute(inputs, relu_attributions=True)
    # A layer returning several feature maps (e.g. the whole encoder) gives a tuple.
    if not isinstance(attr, torch.Tensor) or attr.ndim != 4:
        shape = tuple(attr.shape) if isinstance(attr, torch.Tensor) else type(attr).__name__
        raise InputError(
            f"layer {layer!r} gives Grad-CAM of shape {shape}, not a 2-D map; choose a "
            f"convolutional layer, e.g. {', '.join(suggested_layers(model))}"
        )
    layer_shape = [int(attr.shape[-2]), int(attr.shape[-1])]
    up = LayerAttribution.interpolate(attr.detach(), (h, w), interpolate_mode="bilinear")
    # Bilinear interpolation of non-negative values stays non-negative; clamp float round-off.
    heat = up[0, 0].clamp(min=0).float().cpu().numpy()
    log.debug("Grad-CAM at %s: layer map %s upsampled to %dx%d", layer, layer_shape, h, w)
    return Attribution(
        method="gradcam",
        maps={"gradcam": heat},
        cost=Cost(forward=fn.forward, backward=1),
        extra={"layer": layer, "layer_shape": layer_shape},
    )


#: Grad-CAM's layer when none is asked: the first decoder block (coarse; later blocks are finer).
DEFAULT_LAYER = "decoder.blocks.0"
#: The layer of a model without a decoder (a spectral baseline): its front layer's indices.
SPECTRAL_LAYER = FRONT


def default_layer(model: nn.Module) -> str:
    """:data:`DEFAULT_LAYER` where the model has it, else its front layer (a spectral model,
    whose only map-shaped activations are its per-pixel indices)."""
    names = {n for n, _ in model.named_modules()}
    return DEFAULT_LAYER if DEFAULT_LAYER in names or FRONT not in names else SPECTRAL_LAYER


#: The options this module owns.
OPTIONS: tuple[Option, ...] = (
    Option(
        "gradcam_layer",
        None,
        f"Grad-CAM: layer name (default {DEFAULT_LAYER}; {SPECTRAL_LAYER} for a spectral model).",
    ),
)

#: The methods this module gives the registry.
METHODS: tuple[Method, ...] = (
    Method(
        name="gradcam",
        family="gradient",
        summary="Grad-CAM at a decoder layer, upsampled; 1 forward + 1 backward pass",
        cost=lambda ctx: cost_gradcam(),
        run=lambda ctx, f, x: gradcam(
            ctx.model, f, x, layer=ctx.settings["gradcam_layer"] or default_layer(ctx.model)
        ),
        options=("gradcam_layer",),
    ),
)
