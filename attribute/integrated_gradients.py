"""Integrated gradients with a completeness gate.

``IG_j(x) = (x_j − x′_j) · ∫₀¹ ∂f/∂x_j (x′ + α(x − x′)) dα`` (Sundararajan et al. 2017),
IG is complete: ``Σ_j IG_j = f(x) − f(x′)``, up to the quadrature error. The gate measures
that error, ``err = |Σ IG − (f(x) − f(x′))| / |f(x) − f(x′)|``, and refines the quadrature
until ``err <= tolerance`` or the steps would pass ``max_steps``.

The gate reuses every gradient it has computed. The Riemann rules are nested: the nodes of the
midpoint rule with ``n`` steps, ``(k + ½)/n``, are a subset of those with ``3n`` steps, and the
nodes ``k/n`` of the trapezoid, left and right rules are a subset of those with ``2n``. The
gate therefore triples (midpoint) or doubles (the others) the steps and evaluates only the new
nodes, keeping a running sum of gradients, so a gate that stops at ``n`` midpoint steps has
spent ``n`` backward passes, not ``n + n/3 + n/9 + …``. Captum's ``IntegratedGradients``
recomputes every node on each call and has no such refinement, which is why this module runs
its own loop over the nodes for these rules (the node and weight formulas are Captum's, and a
test checks the results agree with Captum's at equal steps). Gauss-Legendre nodes are not
nested; that rule goes through Captum, doubling, and spends the sum over its tries.

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
- ``"context"``: the target region replaced by the land cover around it (the same place
  without the object);
- or any tensor broadcastable to ``x``.

(:func:`attribute.base.make_baseline` builds them.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import torch
from captum.attr import IntegratedGradients

from attribute.base import (
    Attribution,
    BaselineName,
    Cost,
    CountingFn,
    Method,
    MethodContext,
    Option,
    ScalarFn,
    Settings,
    check_input,
    make_baseline,
)
from attribute.reduce import ReductionName, check_reductions, named_maps
from solarmap.errors import InputError

log = logging.getLogger(__name__)

Rule = Literal["midpoint", "trapezoid", "left", "right", "gausslegendre"]

#: How the gate grows the steps of each rule (nested rules reuse every earlier node).
GROWTH: Final[dict[str, int]] = {
    "midpoint": 3,
    "trapezoid": 2,
    "left": 2,
    "right": 2,
    "gausslegendre": 2,
}
#: Weights of the gradients at α = 0 and α = 1, relative to an interior node, per nested rule.
_END_WEIGHTS: Final[dict[str, tuple[float, float]]] = {
    "midpoint": (0.0, 0.0),
    "trapezoid": (0.5, 0.5),
    "left": (1.0, 0.0),
    "right": (0.0, 1.0),
}

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


def check_gate_options(
    rule: str, steps: int, *, max_steps: int, tolerance: float, batch_size: int
) -> Rule:
    """Validate the options of :func:`integrated_gradients` (rule, steps and the gate's).

    Raises:
        InputError: as :func:`check_ig_options`, or when ``max_steps < steps``,
            ``tolerance <= 0`` or ``batch_size < 1``.
    """
    checked = check_ig_options(rule, steps)
    if max_steps < steps or tolerance <= 0 or batch_size < 1:
        raise InputError(
            f"integrated gradients needs max_steps >= steps, tolerance > 0 and batch_size >= 1;"
            f" got max_steps={max_steps}, steps={steps}, tolerance={tolerance}, "
            f"batch_size={batch_size}"
        )
    return checked


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


def ig_schedule(steps: int, max_steps: int, rule: str = "midpoint") -> list[int]:
    """Step counts the gate tries: ``steps``, grown by ``GROWTH[rule]`` while ``<= max_steps``."""
    growth = GROWTH[rule]
    out = [steps]
    while out[-1] * growth <= max_steps:
        out.append(out[-1] * growth)
    return out


def _new_nodes(rule: str, n: int, previous: int) -> np.ndarray:
    """Interior nodes ``α`` of the ``n``-step rule that the ``previous``-step rule lacks."""
    if rule == "midpoint":
        k = np.arange(n)
        alphas = (k + 0.5) / n
        if previous:
            ratio = n // previous  # odd (3): old node (i + ½)/p = (ratio·i + (ratio−1)/2 + ½)/n
            alphas = alphas[k % ratio != (ratio - 1) // 2]
        return alphas
    k = np.arange(1, n)
    alphas = k / n
    if previous:
        alphas = alphas[k % (n // previous) != 0]
    return alphas


def _gradient_sum(
    fn: ScalarFn, x: torch.Tensor, base: torch.Tensor, alphas: np.ndarray, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Σ_α ∇f(x′ + α(x − x′))`` over ``alphas`` in batches, and ``f`` at each node.

    Returns ``(Tensor[1, B, H, W], Tensor[len(alphas)])``; the inputs are formed as Captum
    forms them, ``x′ + α·(x − x′)``.
    """
    total = torch.zeros_like(x)
    values = []
    diff = x - base
    for start in range(0, len(alphas), batch_size):
        a = torch.as_tensor(alphas[start : start + batch_size], dtype=x.dtype, device=x.device)
        inp = (base + a[:, None, None, None] * diff).requires_grad_(True)
        out = fn(inp)
        (grad,) = torch.autograd.grad(out.sum(), inp)
        total += grad.sum(dim=0, keepdim=True)
        values.append(out.detach())
    return total, torch.cat(values) if values else torch.zeros(0)


class _NestedRule:
    """Riemann sums whose refinements reuse every gradient computed so far."""

    def __init__(
        self, fn: ScalarFn, x: torch.Tensor, base: torch.Tensor, rule: str, batch_size: int
    ) -> None:
        self.fn, self.x, self.base, self.rule, self.batch = fn, x, base, rule, batch_size
        self.w0, self.w1 = _END_WEIGHTS[rule]
        self.n = 0
        self.interior = torch.zeros_like(x)
        self.ends = torch.zeros_like(x)
        self.f_ends: tuple[float, float] | None = None
        if self.w0 or self.w1:
            # The end nodes α = 0 and α = 1 are the baseline and the input themselves: their
            # passes give the end gradients and f(x′), f(x) (both ends, whatever the weights).
            g0, v0 = _gradient_sum(fn, x, base, np.array([0.0]), 1)
            g1, v1 = _gradient_sum(fn, x, base, np.array([1.0]), 1)
            self.ends = self.w0 * g0 + self.w1 * g1
            self.f_ends = (float(v0.double()[0]), float(v1.double()[0]))

    def attribute(self, n: int) -> torch.Tensor:
        """IG with ``n`` steps, evaluating only the nodes not yet evaluated."""
        new = _new_nodes(self.rule, n, self.n)
        if len(new):
            grads, _ = _gradient_sum(self.fn, self.x, self.base, new, self.batch)
            self.interior += grads
        self.n = n
        return ((self.x - self.base) * (self.interior + self.ends) / n).detach()


def cost_integrated_gradients(
    *, steps: int = 4, max_steps: int = 324, rule: str = "midpoint"
) -> Cost:
    """The most :func:`integrated_gradients` can spend.

    Nested rules spend the passes of the last step count they reach: midpoint ``n`` forward and
    backward passes plus two forwards for ``f(x)`` and ``f(x′)``; trapezoid, left and right
    ``n + 1`` of each (their end nodes give ``f(x)`` and ``f(x′)``). Gauss-Legendre spends the
    sum over every try of :func:`ig_schedule`, plus two forwards. The gate spends exactly this
    when it does not pass early (or ``max_steps == steps``).
    """
    schedule = ig_schedule(steps, max_steps, rule)
    if rule == "gausslegendre":
        total = sum(schedule)
        return Cost(forward=total + 2, backward=total)
    n = schedule[-1]
    if rule == "midpoint":
        return Cost(forward=n + 2, backward=n)
    return Cost(forward=n + 1, backward=n + 1)


def integrated_gradients(
    f: ScalarFn,
    x: torch.Tensor,
    *,
    baseline: BaselineName | torch.Tensor = "zero",
    rule: Rule = "midpoint",
    steps: int = 4,
    max_steps: int = 324,
    tolerance: float = 0.01,
    batch_size: int = 16,
    reductions: Sequence[ReductionName] = ("max_abs",),
    zero_reflectance: torch.Tensor | None = None,
    scene_median: torch.Tensor | None = None,
    blur_sigma: float = 5.0,
    region: np.ndarray | None = None,
) -> Attribution:
    """Integrated gradients, steps refined until completeness holds within ``tolerance``.

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
        region: ``bool[H, W]`` target region, for ``"context"``.

    Returns:
        Attribution with ``per_band`` ``float32[10, H, W]`` (its sum is ≈ ``f(x) − f(x′)``) and
        ``extra``: ``steps`` used, ``completeness_error``, ``completeness_history`` (one
        ``{"steps", "error", "backward_passes"}`` per try, passes counted so far), ``f_x``,
        ``f_baseline``, ``sum_attribution``, ``converged``, ``rule``, ``baseline``,
        ``tolerance``.

    Raises:
        InputError: for a bad input, baseline, rule, option or reduction.
    """
    names = check_reductions(reductions)
    x = check_input(x)
    rule = check_gate_options(
        rule, steps, max_steps=max_steps, tolerance=tolerance, batch_size=batch_size
    )
    base = make_baseline(
        x,
        baseline,
        zero_reflectance=zero_reflectance,
        scene_median=scene_median,
        blur_sigma=blur_sigma,
        region=region,
    )
    fn = CountingFn(f)
    nested = _NestedRule(fn, x, base, rule, batch_size) if rule in _END_WEIGHTS else None
    if nested is not None and nested.f_ends is not None:
        f_base, f_x = nested.f_ends
    else:
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
    for n in ig_schedule(steps, max_steps, rule):
        if nested is not None:
            attr = nested.attribute(n)
        else:
            attr = ig_attribute(fn, x, base, steps=n, rule=rule, batch_size=batch_size)
        total = float(attr.double().sum())
        err = abs(total - delta) / scale
        history.append({"steps": n, "error": err, "backward_passes": fn.cost.backward})
        log.debug("IG %s, %d steps: completeness error %.3g", rule, n, err)
        if err <= tolerance:
            break
    converged = err <= tolerance
    used = history[-1]["steps"]
    if not converged:
        hints = ["raise max_steps"]
        if rule != "midpoint":
            hints.append("try the midpoint rule")
        if not isinstance(baseline, torch.Tensor) and baseline != "median":
            hints.append("try the median baseline")
        hint = " or ".join(hints)
        log.warning(
            "integrated gradients did not converge: completeness error %.3g > %.3g after %d "
            "%s steps (max_steps %d); %s",
            err,
            tolerance,
            used,
            rule,
            max_steps,
            hint,
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


#: The options this module owns.
OPTIONS: tuple[Option, ...] = (
    # Chosen by meaning first, then cost (benchmarks/bench_ig.py, 8 largest detections of the
    # demo's unseen region, trained demo U-Net): the reference must be clearly non-solar. The
    # blur baseline never was (0 of 8: a blurred farm still looks like a farm, mean logit 1.4
    # to 2.8 against a threshold logit of -1.9; it explained a median 7 % of the score). Zero
    # reflectance, the median and the context reference all were (8 of 8, mean logits -5.2 to
    # -6.6); of those the median needs the fewest passes for 1 % completeness (median 12,
    # against 36 for zero and for context).
    Option(
        "ig_baseline",
        "median",
        "Integrated Gradients baseline.",
        choices=("median", "zero", "context", "blur"),
    ),
    Option("ig_steps", 4, "Integrated Gradients: steps of the first try.", least=1),
    Option(
        "ig_max_steps", 324, "Integrated Gradients: most steps (midpoint 4-12-36-108-324).", least=1
    ),
    Option("ig_rule", "midpoint", "Integrated Gradients quadrature rule.", choices=tuple(GROWTH)),
    Option("tolerance", 0.01, "Integrated Gradients: completeness tolerance.", least=1e-9),
)


def _check(settings: Settings) -> None:
    check_gate_options(
        settings["ig_rule"],
        settings["ig_steps"],
        max_steps=settings["ig_max_steps"],
        tolerance=settings["tolerance"],
        batch_size=2 * settings.batch_size,  # as _run passes it
    )


def _cost(ctx: MethodContext) -> Cost:
    s = ctx.settings
    return cost_integrated_gradients(
        steps=s["ig_steps"], max_steps=s["ig_max_steps"], rule=s["ig_rule"]
    )


def _run(ctx: MethodContext, f: ScalarFn, x: torch.Tensor) -> Attribution:
    s = ctx.settings
    return integrated_gradients(
        f,
        x,
        baseline=s["ig_baseline"],
        rule=s["ig_rule"],
        steps=s["ig_steps"],
        max_steps=s["ig_max_steps"],
        tolerance=s["tolerance"],
        batch_size=s.batch_size * 2,
        reductions=s.reductions,  # type: ignore[arg-type]  # checked by ExplainConfig
        zero_reflectance=ctx.zero,
        scene_median=None,
        region=ctx.region,
    )


#: The methods this module gives the registry.
METHODS: tuple[Method, ...] = (
    Method(
        name="integrated_gradients",
        family="gradient",
        summary="Integrated Gradients, steps refined until complete within the tolerance; "
        "at most ig_max_steps + 2 forward and backward passes (median 12 on the demo)",
        cost=_cost,
        run=_run,
        options=("ig_baseline", "ig_steps", "ig_max_steps", "ig_rule", "tolerance"),
        check=_check,
        bounded=True,
    ),
)
