"""The torch modules of solarmap models beyond the bare U-Net.

:class:`BandFeatures` is the front layer: it turns the normalised input (the contract bands
normalised with the checkpoint's statistics, the one input every solarmap model takes) into the
channels a network sees: the bands as normalised, or standardised per input window, and spectral
indices (:mod:`solarmap.indices`). :func:`attach_front` puts it before an smp U-Net as a forward
pre-hook, so the U-Net keeps its own module names (``decoder.blocks.0`` for Grad-CAM) and its
weights their keys. :class:`SpectralNet` is the spectral baseline: the front layer and a per-pixel
logistic regression (a 1x1 convolution). :class:`PriorUnet` is a U-Net on top of that baseline:
its logit is the frozen spectral logit plus the U-Net's, so it starts as the spectral model and
learns where spatial context corrects it.

The module imports torch and segmentation-models-pytorch; :mod:`solarmap.model` imports it only
when it builds a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

import segmentation_models_pytorch as smp
import torch
from torch import nn

from solarmap.bands import BANDS
from solarmap.errors import InputError
from solarmap.indices import CHIP_STD_FLOOR, BandNorm, check_indices, index_values

#: The front layer's attribute name on a model.
FRONT: str = "band_features"
#: The spectral prior's attribute name on a :class:`PriorUnet`.
PRIOR: str = "spectral_prior"


class BandFeatures(nn.Module):
    """Normalised input ``Tensor[N, 10, H, W]`` → network channels ``Tensor[N, C, H, W]``.

    Reflectance is recovered as ``x * std + mean`` with the checkpoint's normalisation, held as
    buffers that are not saved with the weights (the checkpoint metadata is their one home).

    Raises:
        InputError: for an unknown ``norm``, bad indices, or neither bands nor indices.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        norm: BandNorm = "dataset",
        indices: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if norm not in get_args(BandNorm):
            raise InputError(f"band normalisation {norm!r}: choose {', '.join(get_args(BandNorm))}")
        self.norm, self.indices = norm, check_indices(indices)
        if norm == "none" and not self.indices:
            raise InputError("a model needs the bands or at least one index as input")
        shape = (1, len(BANDS), 1, 1)
        self.register_buffer("mean", torch.tensor(list(mean)).reshape(shape), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)).reshape(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        refl = x * self.std + self.mean
        if self.norm == "dataset":
            parts.append(x)
        elif self.norm == "chip":
            # Over the window's valid pixels only: no-data (and the padding of a window that
            # sticks out of the scene) reaches the model as 0 in every band (see
            # Checkpoint.normalise), which a real pixel is not.
            valid = (x != 0).any(dim=1, keepdim=True).to(x.dtype)
            n = valid.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
            m = (refl * valid).sum(dim=(2, 3), keepdim=True) / n
            var = (((refl - m) * valid) ** 2).sum(dim=(2, 3), keepdim=True) / n
            s = var.sqrt().clamp_min(CHIP_STD_FLOOR)
            parts.append((refl - m) / s * valid)
        if self.indices:
            parts.append(index_values(refl, self.indices))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def extra_repr(self) -> str:
        return f"norm={self.norm}, indices={list(self.indices)}"


def attach_front(model: nn.Module, front: BandFeatures) -> nn.Module:
    """Run ``front`` on the input of ``model`` (a forward pre-hook); returns ``model``.

    The front is registered as the sub-module :data:`FRONT`, whose buffers are not saved, so the
    model's state dict keeps the keys of the bare network.
    """
    model.add_module(FRONT, front)

    def _front(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (getattr(module, FRONT)(args[0]), *args[1:])

    model.register_forward_pre_hook(_front)
    return model


class SpectralNet(nn.Module):
    """The spectral baseline: indices → one logit per pixel (``Tensor[N, 1, H, W]``).

    A logistic regression on the indices of each pixel, as a 1x1 convolution ``head``, so it
    has the U-Net's input and output contract.
    """

    #: The front layer (the input's indices), registered under the name :data:`FRONT`.
    band_features: BandFeatures

    def __init__(self, front: BandFeatures) -> None:
        super().__init__()
        if front.norm != "none":
            raise InputError("a spectral model takes indices only (band normalisation none)")
        self.band_features = front
        self.head = nn.Conv2d(len(front.indices), 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.band_features(x))


class PriorUnet(smp.Unet):
    """An smp U-Net whose logit is a residual on a spectral baseline's (``Tensor[N, 1, H, W]``).

    The spectral prior (:class:`SpectralNet`, sub-module :data:`PRIOR`) is fitted before the
    U-Net trains and then frozen; the segmentation head starts at zero, so the untrained model
    is the spectral baseline. The U-Net's own module names and weight keys are those of a bare
    smp U-Net; the prior adds ``spectral_prior.head.*``. A front layer, when the U-Net has one,
    is the sub-module :data:`FRONT` and runs inside :meth:`forward` (not as a pre-hook: the prior
    needs the input as given).
    """

    spectral_prior: SpectralNet

    def set_prior(self, prior: SpectralNet, front: BandFeatures | None) -> None:
        """Install the prior (frozen) and the U-Net's front layer, and zero the head."""
        self.add_module(PRIOR, prior)
        if front is not None:
            self.add_module(FRONT, front)
        for p in prior.parameters():
            p.requires_grad_(False)
        for m in self.segmentation_head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        front = self._modules.get(FRONT)
        return super().forward(x if front is None else front(x)) + self.spectral_prior(x)
