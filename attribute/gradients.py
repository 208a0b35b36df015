"""Gradient attributions: saliency, input × gradient and SmoothGrad.

``saliency`` and ``input_x_gradient`` wrap Captum's :class:`~captum.attr.Saliency` (with
``abs=False``, so the signed per-band gradients are kept; the absolute value is taken by the
band reductions of :mod:`attribute.reduce`) and :class:`~captum.attr.InputXGradient`.

``smoothgrad`` does its own sampling loop instead of Captum's
:class:`~captum.attr.NoiseTunnel`: the noise must scale with the standard deviation of *each
band* over the window (``x̃ = x + σ·ε·std_b(x)``, Smilkov et al. 2017 with σ 10–20 %, n ≈ 50),
while NoiseTunnel takes one scalar ``stdevs`` per input tensor (Captum 0.9,
``NoiseTunnel._add_noise_to_input`` repeats one float over the whole tensor) and draws from the
global RNG, so it can neither scale per band nor be seeded without touching global state. The
loop draws noise exactly as NoiseTunnel does (one normal draw of ``[batch, 10, H, W]`` per batch,
scaled), so with equal per-band scales the two agree sample for sample (tested); the gradients of
each noisy batch are still Captum's.

Every method has ``cost_<method>(...)`` giving the passes it will spend before it runs; the
:class:`~attribute.base.Attribution` it returns carries the passes counted while it ran
(:class:`CountingFn`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from captum.attr import InputXGradient, Saliency

from attribute.base import (
    Attribution,
    BaselineName,
    Cost,
    CountingFn,
    Method,
    MethodContext,
    Option,
    ScalarFn,
    check_input,
    make_baseline,
)
from attribute.integrated_gradients import Rule, check_ig_options, ig_attribute
from attribute.reduce import ReductionName, check_reductions, named_maps
from solarmap.errors import InputError

log = logging.getLogger(__name__)

SmoothMethod = Literal["saliency", "input_x_gradient", "integrated_gradients"]

#: Attribution.method of SmoothGrad over each inner method.
SMOOTHGRAD_NAMES: dict[str, str] = {
    "saliency": "smoothgrad",
    "input_x_gradient": "smoothgrad_input_x_gradient",
    "integrated_gradients": "smoothgrad_integrated_gradients",
}


def _leaf(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` that requires grad (Captum warns when it has to set this itself)."""
    return x.detach().clone().requires_grad_(True)


def _to_numpy(a: torch.Tensor) -> np.ndarray:
    return a.detach().to(device="cpu", dtype=torch.float32).numpy()


def _captum_gradient(
    name: str,
    captum_cls: type,
    f: ScalarFn,
    x: torch.Tensor,
    reductions: Sequence[ReductionName],
    **kwargs: object,
) -> Attribution:
    """One Captum gradient attribution of ``x`` (``Saliency``, ``InputXGradient``) as
    :class:`Attribution` ``name`` with its band maps."""
    names = check_reductions(reductions)
    x = check_input(x)
    fn = CountingFn(f)
    per_band = _to_numpy(captum_cls(fn).attribute(_leaf(x), **kwargs)[0])
    return Attribution(
        method=name, per_band=per_band, maps=named_maps(name, per_band, names), cost=fn.cost
    )


def cost_saliency() -> Cost:
    """Passes :func:`saliency` spends: one forward and one backward."""
    return Cost(forward=1, backward=1)


def cost_input_x_gradient() -> Cost:
    """Passes :func:`input_x_gradient` spends: one forward and one backward."""
    return Cost(forward=1, backward=1)


def saliency(
    f: ScalarFn, x: torch.Tensor, *, reductions: Sequence[ReductionName] = ("max_abs",)
) -> Attribution:
    """Gradient of ``f`` with respect to each band of each pixel (Simonyan et al. 2014).

    Args:
        f: explained function ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: ``Tensor[1, 10, H, W]`` normalised window.
        reductions: band reductions for the maps ``"saliency:<reduction>"``.

    Returns:
        Attribution with the signed gradient as ``per_band`` ``float32[10, H, W]``.

    Raises:
        InputError: for a bad input or an unknown reduction.
    """
    return _captum_gradient("saliency", Saliency, f, x, reductions, abs=False)


def input_x_gradient(
    f: ScalarFn, x: torch.Tensor, *, reductions: Sequence[ReductionName] = ("max_abs",)
) -> Attribution:
    """Input times gradient, band by band (Shrikumar et al. 2016).

    Args:
        f: explained function ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: ``Tensor[1, 10, H, W]`` normalised window. The product is taken in normalised units,
            so it measures the gradient against a baseline of the training mean.
        reductions: band reductions for the maps ``"input_x_gradient:<reduction>"``.

    Returns:
        Attribution with ``x * grad`` as ``per_band`` ``float32[10, H, W]``.

    Raises:
        InputError: for a bad input or an unknown reduction.
    """
    return _captum_gradient("input_x_gradient", InputXGradient, f, x, reductions)


def band_noise_std(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Per-band noise scale ``σ · std_b(x)`` over the window: ``Tensor[B]``.

    ``std`` is the population standard deviation of each band over the window's pixels; a
    constant band gets no noise.
    """
    return sigma * x[0].flatten(1).std(dim=1, correction=0)


def smoothgrad_noise(
    x: torch.Tensor,
    n: int,
    *,
    noise_std: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` noisy copies ``x + ε · noise_std[b]`` of one window, ``ε ~ N(0, 1)``.

    Args:
        x: ``Tensor[1, B, H, W]``.
        n: number of copies.
        noise_std: ``Tensor[B]`` standard deviation of the noise per band.
        generator: random generator on ``x``'s device (seeded for reproducible noise).

    Returns:
        ``Tensor[n, B, H, W]``.
    """
    eps = torch.randn((n, *x.shape[1:]), generator=generator, dtype=x.dtype, device=x.device)
    return x + eps * noise_std.to(x)[None, :, None, None]


def cost_smoothgrad(
    *, method: SmoothMethod = "saliency", n_samples: int = 50, ig_steps: int = 16
) -> Cost:
    """Passes :func:`smoothgrad` spends: one forward and backward per sample, times
    ``ig_steps`` for integrated gradients."""
    per_sample = ig_steps if method == "integrated_gradients" else 1
    return Cost(forward=n_samples * per_sample, backward=n_samples * per_sample)


def smoothgrad(
    f: ScalarFn,
    x: torch.Tensor,
    *,
    method: SmoothMethod = "saliency",
    n_samples: int = 50,
    sigma: float = 0.15,
    batch_size: int = 8,
    seed: int = 0,
    band_std: torch.Tensor | None = None,
    reductions: Sequence[ReductionName] = ("max_abs",),
    ig_steps: int = 16,
    ig_rule: Rule = "midpoint",
    baseline: BaselineName | torch.Tensor = "zero",
    zero_reflectance: torch.Tensor | None = None,
    scene_median: torch.Tensor | None = None,
) -> Attribution:
    """SmoothGrad (Smilkov et al. 2017): the mean attribution over noisy copies of the input.

    ``x̃ = x + σ · ε · std_b(x)`` with ``ε ~ N(0, 1)`` per pixel and band and ``std_b`` the
    standard deviation of band ``b`` over the window (or ``band_std``).

    Args:
        f: explained function ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: ``Tensor[1, 10, H, W]`` normalised window.
        method: the attribution averaged: ``"saliency"`` (the gradient), ``"input_x_gradient"``
            (``x̃ · ∇f(x̃)``, as Captum's NoiseTunnel does) or ``"integrated_gradients"`` (IG of
            each noisy copy against a baseline made from the clean ``x``, ``ig_steps`` steps of
            ``ig_rule``, no completeness gate).
        n_samples: noisy copies.
        sigma: noise level as a fraction of each band's standard deviation.
        batch_size: noisy copies per forward/backward pass (model inputs per pass for IG).
        seed: seed of the noise (a private generator; the global RNG is left alone).
        band_std: ``Tensor[10]`` per-band standard deviation to scale by (e.g. the scene's);
            default the window's.
        reductions: band reductions for the maps ``"<method name>:<reduction>"``.
        ig_steps, ig_rule, baseline, zero_reflectance, scene_median: for
            ``method="integrated_gradients"``, see
            :func:`attribute.integrated_gradients.integrated_gradients`.

    Returns:
        Attribution named ``"smoothgrad"`` (saliency), ``"smoothgrad_input_x_gradient"`` or
        ``"smoothgrad_integrated_gradients"``, with the mean ``per_band`` and the noise scale
        per band in ``extra["noise_std"]``.

    Raises:
        InputError: for a bad input, method, option or reduction.
    """
    names = check_reductions(reductions)
    x = check_input(x)
    if method not in SMOOTHGRAD_NAMES:
        raise InputError(
            f"unknown SmoothGrad method {method!r}; choose {', '.join(SMOOTHGRAD_NAMES)}"
        )
    if n_samples < 1 or batch_size < 1 or sigma < 0:
        raise InputError(
            f"SmoothGrad needs n_samples >= 1, batch_size >= 1 and sigma >= 0; got "
            f"{n_samples}, {batch_size}, {sigma}"
        )
    if band_std is None:
        noise_std = band_noise_std(x, sigma)
    else:
        band_std = torch.as_tensor(band_std, dtype=x.dtype, device=x.device).flatten()
        if band_std.numel() != x.shape[1]:
            raise InputError(f"band_std has {band_std.numel()} values for {x.shape[1]} bands")
        noise_std = sigma * band_std
    fn = CountingFn(f)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    total = torch.zeros(x.shape[1:], dtype=torch.float64, device=x.device)
    extra: dict[str, object] = {}

    attribute_batch: Callable[[torch.Tensor], torch.Tensor]
    if method == "saliency":
        sal = Saliency(fn)

        def attribute_batch(xn: torch.Tensor) -> torch.Tensor:
            return sal.attribute(xn.requires_grad_(True), abs=False)

    elif method == "input_x_gradient":
        ixg = InputXGradient(fn)

        def attribute_batch(xn: torch.Tensor) -> torch.Tensor:
            return ixg.attribute(xn.requires_grad_(True))

    else:
        rule = check_ig_options(ig_rule, ig_steps)
        base = make_baseline(
            x, baseline, zero_reflectance=zero_reflectance, scene_median=scene_median
        )
        extra.update(
            ig_steps=ig_steps,
            ig_rule=rule,
            baseline=baseline if isinstance(baseline, str) else "tensor",
        )

        def attribute_batch(xn: torch.Tensor) -> torch.Tensor:
            # One noisy copy at a time, so a pass never holds more than batch_size inputs.
            return torch.cat(
                [
                    ig_attribute(fn, xn[i : i + 1], base, steps=ig_steps, rule=rule,
                                 batch_size=batch_size)
                    for i in range(xn.shape[0])
                ]
            )  # fmt: skip

    done = 0
    while done < n_samples:
        b = min(batch_size, n_samples - done)
        noisy = smoothgrad_noise(x, b, noise_std=noise_std, generator=generator)
        total += attribute_batch(noisy).detach().sum(dim=0).to(torch.float64)
        done += b
    per_band = _to_numpy(total / n_samples)
    name = SMOOTHGRAD_NAMES[method]
    extra.update(
        inner_method=method,
        n_samples=n_samples,
        sigma=sigma,
        seed=seed,
        batch_size=batch_size,
        noise_std=[float(v) for v in noise_std.cpu()],
    )
    return Attribution(
        method=name,
        per_band=per_band,
        maps=named_maps(name, per_band, names),
        cost=fn.cost,
        extra=extra,
    )


#: The options this module owns.
OPTIONS: tuple[Option, ...] = (
    Option("smoothgrad_samples", 50, "SmoothGrad: noisy copies.", least=1),
    Option("smoothgrad_sigma", 0.15, "SmoothGrad: noise, fraction of each band's std.", least=0),
)


def _smoothgrad(ctx: MethodContext, f: ScalarFn, x: torch.Tensor) -> Attribution:
    s = ctx.settings
    return smoothgrad(
        f,
        x,
        n_samples=s["smoothgrad_samples"],
        sigma=s["smoothgrad_sigma"],
        batch_size=s.batch_size,
        seed=s.seed,
        reductions=s.reductions,  # type: ignore[arg-type]  # checked by ExplainConfig
    )


def _plain(
    name: str, fn: Callable[..., Attribution], cost: Callable[[], Cost], what: str
) -> Method:
    return Method(
        name=name,
        family="gradient",
        summary=f"{what} per band and pixel; 1 forward + 1 backward pass",
        cost=lambda ctx: cost(),
        run=lambda ctx, f, x: fn(f, x, reductions=ctx.settings.reductions),
    )


#: The methods this module gives the registry.
METHODS: tuple[Method, ...] = (
    _plain("saliency", saliency, cost_saliency, "gradient of the target"),
    _plain("input_x_gradient", input_x_gradient, cost_input_x_gradient, "input times gradient"),
    Method(
        name="smoothgrad",
        family="gradient",
        summary="saliency averaged over noisy copies; smoothgrad_samples forward + backward "
        "passes (50)",
        cost=lambda ctx: cost_smoothgrad(
            method="saliency", n_samples=ctx.settings["smoothgrad_samples"]
        ),
        run=_smoothgrad,
        options=("smoothgrad_samples", "smoothgrad_sigma"),
    ),
)
