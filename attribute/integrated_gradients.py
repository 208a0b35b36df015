"""Integrated gradients with a completeness gate.

``IG_j(x) = (x_j − x′_j) · ∫₀¹ ∂f/∂x_j (x′ + α(x − x′)) dα`` (Sundararajan et al. 2017),
computed with Captum's :class:`~captum.attr.IntegratedGradients`. IG is complete:
``Σ_j IG_j = f(x) − f(x′)``, up to the quadrature error. The gate measures that error,
``err = |Σ IG − (f(x) − f(x′))| / |f(x) − f(x′)|``, and doubles the steps until
``err <= tolerance`` or the steps would pass ``max_steps``.

Quadrature rules map onto Captum's methods: midpoint → ``riemann_middle``, trapezoid →
``riemann_trapezoid``, left/right → ``riemann_left``/``riemann_right``, gausslegendre →
``gausslegendre``. Captum's ``riemann_trapezoid`` (0.9) evaluates at ``linspace(0, 1, n)``
(spacing ``1/(n−1)``) but weights the steps ``1/n`` (ends ``1/(2n)``), so its weights sum to
``(n−1)/n`` and the integral comes out short by ``1/n``: even a linear model misses completeness
by ``1/n`` and a 1 % gate needs about 100 steps. Every weight is off by the same factor, so
:func:`ig_attribute` rescales Captum's trapezoid result by ``n/(n−1)``, which gives the textbook
trapezoid rule.

Baselines (``x`` is the NORMALISED input, so a baseline is a normalised image too):

- ``"zero"``: zero reflectance, ``zero_reflectance = −mean/std`` per band given by the caller;
  without it, the tensor 0, i.e. the training mean reflectance of each band;
- ``"median"``: the per-band scene median (``scene_median``, normalised), else the window's;
- ``"blur"``: the window blurred with a Gaussian of ``blur_sigma`` pixels (shape kept, texture
  and fine structure removed);
- or any tensor broadcastable to ``x``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Final, Literal

import torch
from captum.attr import IntegratedGradients

from attribute.base import Attribution, Cost, CountingFn, ScalarFn
from attribute.gradients import check_input
from attribute.reduce import ReductionName, check_reductions, named_maps
from solarmap.errors import InputError

log = logging.getLogger(__name__)

Rule = Literal["midpoint", "trapezoid", "left", "right", "gausslegendre"]
BaselineName = Literal["zero", "median", "blur"]

#: Captum's name of each quadrature rule.
CAPTUM_METHODS: Final[dict[str, str]] = {
    "midpoint": "riemann_middle",
    "trapezoid": "riemann_trapezoid",
    "left": "riemann_left",
    "right": "riemann_right",
    "gausslegendre": "gausslegendre",
}


def check_ig_options(rule: str, steps: int) -> Rule:
    """Validate a quadrature rule and step count.

    Raises:
        InputError: for an unknown rule or too few steps (Captum's Riemann rules need 2).
    """
    if rule not in CAPTUM_METHODS:
        raise InputError(f"unknown integration rule {rule!r}; choose {', '.join(CAPTUM_METHODS)}")
    least = 1 if rule == "gausslegendre" else 2
    if steps < least:
        raise InputError(f"the {rule} rule needs at least {least} steps, got {steps}")
    return rule  # type: ignore[return-value]  # checked against CAPTUM_METHODS above


def _per_band(v: torch.Tensor | Sequence[float], x: torch.Tensor, what: str) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=x.dtype, device=x.device).flatten()
    if t.numel() != x.shape[1]:
        raise InputError(f"{what} has {t.numel()} values for {x.shape[1]} bands")
    return t[None, :, None, None].expand_as(x)


def make_baseline(
    x: torch.Tensor,
    baseline: BaselineName | torch.Tensor,
    *,
    zero_reflectance: torch.Tensor | None = None,
    scene_median: torch.Tensor | None = None,
    blur_sigma: float = 5.0,
) -> torch.Tensor:
    """The baseline image ``x′`` for a window, ``Tensor[1, B, H, W]`` (see module docstring).

    Args:
        x: ``Tensor[1, B, H, W]`` normalised window.
        baseline: ``"zero"``, ``"median"``, ``"blur"`` or a tensor ``[B]``, ``[B, H, W]`` or
            ``[1, B, H, W]``.
        zero_reflectance: ``Tensor[B]`` normalised value of reflectance 0 (``−mean/std``).
        scene_median: ``Tensor[B]`` normalised per-band median of the scene.
        blur_sigma: Gaussian standard deviation in pixels for ``"blur"``.

    Raises:
        InputError: for an unknown name or a tensor of the wrong shape.
    """
    x = check_input(x)
    if isinstance(baseline, torch.Tensor):
        b = baseline.detach().to(dtype=x.dtype, device=x.device)
        if not torch.isfinite(b).all():
            raise InputError("baseline holds NaN or infinite values; give finite normalised values")
        if b.ndim == 1:
            return _per_band(b, x, "baseline")
        try:
            return torch.broadcast_to(b, x.shape).clone()
        except RuntimeError as err:
            raise InputError(
                f"baseline of shape {tuple(b.shape)} does not fit the input {tuple(x.shape)}"
            ) from err
    if baseline == "zero":
        if zero_reflectance is None:
            log.info("no zero_reflectance given: the zero baseline is the training mean")
            return torch.zeros_like(x)
        return _per_band(zero_reflectance, x, "zero_reflectance").clone()
    if baseline == "median":
        if scene_median is None:
            median = x[0].flatten(1).median(dim=1).values  # lower median of even counts
            return _per_band(median, x, "window median").clone()
        return _per_band(scene_median, x, "scene_median").clone()
    if baseline == "blur":
        from torchvision.transforms.functional import gaussian_blur

        if blur_sigma <= 0:
            raise InputError(f"blur_sigma must be > 0 pixels, got {blur_sigma}")
        # Kernel to ±3σ, but reflect padding needs the half-width below the window size.
        half = min(math.ceil(3 * blur_sigma), min(x.shape[-2:]) - 1)
        k = 2 * max(half, 0) + 1
        return gaussian_blur(x, kernel_size=[k, k], sigma=[blur_sigma, blur_sigma])
    raise InputError(f"unknown baseline {baseline!r}; choose zero, median, blur or give a tensor")


def ig_attribute(
    f: ScalarFn,
    x: torch.Tensor,
    baseline: torch.Tensor,
    *,
    steps: int,
    rule: Rule,
    batch_size: int,
) -> torch.Tensor:
    """One Captum IG run with a fixed number of steps: ``Tensor[1, B, H, W]``.

    Spends ``steps`` forward and backward passes, at most ``batch_size`` inputs per pass.
    Captum's trapezoid result is rescaled by ``steps/(steps−1)`` (see module docstring).
    """
    ig = IntegratedGradients(f)
    attr = ig.attribute(
        x,
        baselines=baseline,
        n_steps=steps,
        method=CAPTUM_METHODS[rule],
        internal_batch_size=max(batch_size, 1),
    )
    attr = attr.detach()
    if rule == "trapezoid":
        attr = attr * (steps / (steps - 1))
    return attr


def ig_schedule(steps: int, max_steps: int) -> list[int]:
    """Step counts the gate tries: ``steps``, doubled while at most ``max_steps``."""
    out = [steps]
    while out[-1] * 2 <= max_steps:
        out.append(out[-1] * 2)
    return out


def cost_integrated_gradients(*, steps: int = 4, max_steps: int = 256) -> Cost:
    """The most :func:`integrated_gradients` can spend.

    Two forwards for ``f(x)`` and ``f(x′)``, then one forward and backward per step of every
    try in :func:`ig_schedule`. It spends exactly this when the gate never passes early (or
    ``max_steps == steps``); a first-try pass spends ``Cost(steps + 2, steps)``.
    """
    total = sum(ig_schedule(steps, max_steps))
    return Cost(forward=total + 2, backward=total)


def integrated_gradients(
    f: ScalarFn,
    x: torch.Tensor,
    *,
    baseline: BaselineName | torch.Tensor = "zero",
    rule: Rule = "midpoint",
    steps: int = 4,
    max_steps: int = 256,
    tolerance: float = 0.01,
    batch_size: int = 16,
    reductions: Sequence[ReductionName] = ("max_abs",),
    zero_reflectance: torch.Tensor | None = None,
    scene_median: torch.Tensor | None = None,
    blur_sigma: float = 5.0,
) -> Attribution:
    """Integrated gradients, steps doubled until completeness holds within ``tolerance``.

    Args:
        f: explained function ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: ``Tensor[1, 10, H, W]`` normalised window.
        baseline: ``"zero"``, ``"median"``, ``"blur"`` or a tensor (see :func:`make_baseline`).
        rule: quadrature rule (midpoint converges fastest on the U-Net: 1 % in 4–16 steps).
        steps: steps of the first try.
        max_steps: the gate stops before the steps would pass this.
        tolerance: largest accepted relative completeness error.
        batch_size: interpolated inputs per forward/backward pass.
        reductions: band reductions for the maps ``"integrated_gradients:<reduction>"``.
        zero_reflectance: ``Tensor[10]`` normalised value of reflectance 0, for ``"zero"``.
        scene_median: ``Tensor[10]`` normalised scene median, for ``"median"``.
        blur_sigma: Gaussian sigma in pixels, for ``"blur"``.

    Returns:
        Attribution with ``per_band`` ``float32[10, H, W]`` (its sum is ≈ ``f(x) − f(x′)``) and
        ``extra``: ``steps`` used, ``completeness_error``, ``completeness_history`` (one
        ``{"steps", "error"}`` per try), ``f_x``, ``f_baseline``, ``sum_attribution``,
        ``converged``, ``rule``, ``baseline``, ``tolerance``.

    Raises:
        InputError: for a bad input, baseline, rule, option or reduction.
    """
    names = check_reductions(reductions)
    x = check_input(x)
    rule = check_ig_options(rule, steps)
    if max_steps < steps or tolerance <= 0 or batch_size < 1:
        raise InputError(
            f"integrated gradients needs max_steps >= steps, tolerance > 0 and batch_size >= 1;"
            f" got max_steps={max_steps}, steps={steps}, tolerance={tolerance}, "
            f"batch_size={batch_size}"
        )
    base = make_baseline(
        x,
        baseline,
        zero_reflectance=zero_reflectance,
        scene_median=scene_median,
        blur_sigma=blur_sigma,
    )
    fn = CountingFn(f)
    with torch.no_grad():
        f_x, f_base = (float(v) for v in fn(torch.cat([x, base])).double().cpu())
    delta = f_x - f_base
    # Relative error needs a difference to be relative to; guard against f(x) ≈ f(x′).
    scale = max(abs(delta), 1e-6 * max(1.0, abs(f_x), abs(f_base)))
    if abs(delta) < scale:
        log.warning(
            "f(x) = %.6g ≈ f(x') = %.6g: the completeness error is measured against a "
            "near-zero difference; consider another baseline",
            f_x,
            f_base,
        )

    history: list[dict[str, float]] = []
    attr = torch.zeros_like(x)
    err = math.inf
    total = 0.0
    for n in ig_schedule(steps, max_steps):
        attr = ig_attribute(fn, x, base, steps=n, rule=rule, batch_size=batch_size)
        total = float(attr.double().sum())
        err = abs(total - delta) / scale
        history.append({"steps": n, "error": err})
        log.debug("IG %s, %d steps: completeness error %.3g", rule, n, err)
        if err <= tolerance:
            break
    converged = err <= tolerance
    used = history[-1]["steps"]
    if not converged:
        log.warning(
            "integrated gradients did not converge: completeness error %.3g > %.3g after %d "
            "%s steps (max_steps %d); raise max_steps or try the midpoint rule",
            err,
            tolerance,
            used,
            rule,
            max_steps,
        )
    per_band = attr[0].to(device="cpu", dtype=torch.float32).numpy()
    return Attribution(
        method="integrated_gradients",
        per_band=per_band,
        maps=named_maps("integrated_gradients", per_band, names),
        cost=fn.cost,
        extra={
            "rule": rule,
            "baseline": baseline if isinstance(baseline, str) else "tensor",
            "steps": int(used),
            "completeness_error": float(err),
            "completeness_history": history,
            "f_x": f_x,
            "f_baseline": f_base,
            "sum_attribution": total,
            "converged": bool(converged),
            "tolerance": tolerance,
        },
    )
