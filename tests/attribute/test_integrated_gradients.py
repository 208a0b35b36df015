"""Integrated gradients: known answers, baselines, the completeness gate and its cost."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from torch import nn

from attribute.base import Cost, make_baseline
from attribute.integrated_gradients import (
    CAPTUM_METHODS,
    GROWTH,
    cost_integrated_gradients,
    ig_schedule,
    integrated_gradients,
)
from attribute.targets import RegionTarget
from solarmap.errors import InputError
from tests.attribute.conftest import LinearSegmenter, make_window

RULES = ("midpoint", "trapezoid", "left", "right", "gausslegendre")


@pytest.mark.parametrize("rule", RULES)
def test_ig_of_a_linear_model_is_exact_and_passes_the_gate_first_time(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray, rule: str
) -> None:
    zero = torch.linspace(-2.0, -0.2, 10)  # −mean/std of some bands
    f = RegionTarget(linear_model, region)
    a = integrated_gradients(
        f, window_input, baseline="zero", zero_reflectance=zero, rule=rule,  # type: ignore[arg-type]
        tolerance=1e-4, reductions=("sum", "max_abs"),
    )  # fmt: skip
    baseline = zero[None, :, None, None].expand_as(window_input)
    want = linear_model.region_ig(window_input, baseline, region)
    assert a.method == "integrated_gradients"
    assert a.per_band is not None
    np.testing.assert_allclose(a.per_band, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        a.maps["integrated_gradients:sum"], want.sum(0), rtol=1e-4, atol=1e-5
    )
    ex = a.extra
    assert ex["converged"] is True and ex["steps"] == 4
    assert [h["steps"] for h in ex["completeness_history"]] == [4]
    assert ex["completeness_error"] < 1e-4
    assert ex["f_x"] == pytest.approx(linear_model.region_value(window_input, region), rel=1e-5)
    x_base = baseline.contiguous()
    assert ex["f_baseline"] == pytest.approx(linear_model.region_value(x_base, region), rel=1e-5)
    assert ex["sum_attribution"] == pytest.approx(ex["f_x"] - ex["f_baseline"], rel=1e-4)
    # midpoint and Gauss-Legendre: 4 nodes + f(x), f(x′); the others: 5 nodes, ends included
    want_cost = Cost(6, 4) if rule in ("midpoint", "gausslegendre") else Cost(5, 5)
    assert a.cost == cost_integrated_gradients(steps=4, max_steps=4, rule=rule) == want_cost


def test_captum_trapezoid_alone_falls_short_by_one_over_n(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    """Why the trapezoid rule is rescaled: Captum's weights sum to (n − 1)/n."""
    f = RegionTarget(linear_model, region)
    raw = IntegratedGradients(f).attribute(window_input, n_steps=4, method="riemann_trapezoid")
    ours = integrated_gradients(f, window_input, rule="trapezoid", steps=4, max_steps=4)
    assert ours.per_band is not None
    np.testing.assert_allclose(raw[0].numpy(), ours.per_band * 3 / 4, rtol=1e-5, atol=1e-7)


def test_ig_batches_do_not_change_the_result(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f = RegionTarget(linear_model, region)
    one = integrated_gradients(f, window_input, steps=8, max_steps=8, batch_size=1)
    many = integrated_gradients(f, window_input, steps=8, max_steps=8, batch_size=16)
    assert one.per_band is not None and many.per_band is not None
    np.testing.assert_allclose(one.per_band, many.per_band, rtol=1e-5, atol=1e-7)
    assert one.cost == many.cost == Cost(10, 8)


def test_baselines(window_input: torch.Tensor) -> None:
    x = window_input
    assert torch.equal(make_baseline(x, "zero"), torch.zeros_like(x))
    zero = torch.arange(10.0)
    np.testing.assert_array_equal(make_baseline(x, "zero", zero_reflectance=zero)[0, :, 5, 7], zero)
    # window median per band (torch's lower median for an even pixel count)
    med = make_baseline(x, "median")
    want = np.sort(x[0].flatten(1).numpy(), axis=1)[:, (64 * 64 - 1) // 2]
    np.testing.assert_array_equal(med[0, :, 0, 0].numpy(), want)
    assert float(med.std(dim=(2, 3)).max()) == 0.0
    scene = torch.linspace(1.0, 2.0, 10)
    torch.testing.assert_close(make_baseline(x, "median", scene_median=scene)[0, :, 3, 3], scene)
    blur = make_baseline(x, "blur", blur_sigma=5.0)
    assert blur.shape == x.shape
    # blurring keeps each band's level and removes most of its pixel-to-pixel variation
    torch.testing.assert_close(blur.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.05, rtol=0)
    assert bool((blur.std(dim=(2, 3)) < 0.2 * x.std(dim=(2, 3))).all())
    tiny = make_window(1, size=8)
    assert make_baseline(tiny, "blur").shape == tiny.shape  # kernel shrunk to fit the window
    full = torch.randn_like(x)
    assert torch.equal(make_baseline(x, full), full)
    assert torch.equal(make_baseline(x, full[0])[0], full[0])


def test_baseline_errors(window_input: torch.Tensor) -> None:
    with pytest.raises(InputError, match="unknown baseline"):
        make_baseline(window_input, "black")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="does not fit"):
        make_baseline(window_input, torch.zeros(1, 10, 32, 32))
    with pytest.raises(InputError, match="10 bands"):
        make_baseline(window_input, "zero", zero_reflectance=torch.zeros(4))
    with pytest.raises(InputError, match="finite"):
        make_baseline(window_input, torch.full((10,), float("nan")))


def test_ig_with_the_median_baseline_is_x_minus_median_times_w(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    a = integrated_gradients(RegionTarget(linear_model, region), window_input, baseline="median")
    want = linear_model.region_ig(window_input, make_baseline(window_input, "median"), region)
    assert a.per_band is not None and a.extra["baseline"] == "median"
    np.testing.assert_allclose(a.per_band, want, rtol=1e-4, atol=1e-6)


def test_ig_options_are_checked_before_any_pass(window_input: torch.Tensor) -> None:
    def never(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model must not run on bad options")

    with pytest.raises(InputError, match="unknown integration rule"):
        integrated_gradients(never, window_input, rule="simpson")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least 2 steps"):
        integrated_gradients(never, window_input, steps=1)
    with pytest.raises(InputError, match="max_steps >= steps"):
        integrated_gradients(never, window_input, steps=8, max_steps=4)
    with pytest.raises(InputError, match="reduction"):
        integrated_gradients(never, window_input, reductions=("abs",))  # type: ignore[arg-type]


def test_schedule_and_predicted_cost() -> None:
    assert ig_schedule(4, 256, "trapezoid") == [4, 8, 16, 32, 64, 128, 256]
    assert ig_schedule(4, 100, "left") == [4, 8, 16, 32, 64]
    assert ig_schedule(4, 256, "midpoint") == [4, 12, 36, 108]
    assert ig_schedule(4, 4) == [4]
    # nested rules pay for the last step count only; Gauss-Legendre for every try
    assert cost_integrated_gradients(steps=4, max_steps=36, rule="midpoint") == Cost(38, 36)
    assert cost_integrated_gradients(steps=4, max_steps=16, rule="trapezoid") == Cost(17, 17)
    assert cost_integrated_gradients(steps=4, max_steps=16, rule="gausslegendre") == Cost(30, 28)


@pytest.mark.parametrize(("rule", "captum_steps", "scale"), [
    ("midpoint", lambda n: n, lambda n: 1.0),
    ("trapezoid", lambda n: n + 1, lambda n: (n + 1) / n),  # Captum's n + 1 points, rescaled
    ("left", lambda n: n, lambda n: 1.0),
    ("right", lambda n: n, lambda n: 1.0),
])  # fmt: skip
def test_nested_gate_equals_captum_at_the_steps_it_stops_at(
    tiny_unet: nn.Module, region: np.ndarray, rule: str, captum_steps: Any, scale: Any
) -> None:
    """The refined sum (reusing the first try's nodes) is Captum's IG at the final steps."""
    x = make_window(4)
    f = RegionTarget(tiny_unet, region)
    base = make_baseline(x, "blur")
    first = 4
    last = first * GROWTH[rule]
    a = integrated_gradients(
        f, x, baseline="blur", rule=rule, steps=first, max_steps=last, tolerance=1e-12,  # type: ignore[arg-type]
    )  # fmt: skip
    assert [h["steps"] for h in a.extra["completeness_history"]] == [first, last]
    captum = IntegratedGradients(f).attribute(
        x, baselines=base, n_steps=captum_steps(last), method=CAPTUM_METHODS[rule]
    )
    want = captum[0].detach().numpy() * scale(last)
    assert a.per_band is not None
    np.testing.assert_allclose(a.per_band, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    # every node was evaluated once: passes are those of the final step count
    assert a.cost == cost_integrated_gradients(steps=first, max_steps=last, rule=rule)
    passes = [h["backward_passes"] for h in a.extra["completeness_history"]]
    assert passes[-1] == a.cost.backward
    assert passes[0] == (first if rule == "midpoint" else first + 1)


# --- the gate on a real (tiny) U-Net --------------------------------------------------------


def _check_history(
    extra: dict[str, object], *, first: int, tolerance: float, growth: int
) -> list[int]:
    history = extra["completeness_history"]
    assert isinstance(history, list)
    steps = [int(h["steps"]) for h in history]
    assert steps == [first * growth**k for k in range(len(steps))]
    errors = [float(h["error"]) for h in history]
    assert all(e > tolerance for e in errors[:-1])  # it stopped at the first pass
    assert extra["steps"] == steps[-1] and extra["completeness_error"] == errors[-1]
    return steps


def test_gate_reaches_one_percent_on_a_unet_with_the_midpoint_rule(
    tiny_unet: nn.Module, region: np.ndarray
) -> None:
    x = make_window(4)
    f = RegionTarget(tiny_unet, region)
    a = integrated_gradients(f, x, baseline="blur", rule="midpoint", max_steps=64)
    ex = a.extra
    steps = _check_history(ex, first=4, tolerance=0.01, growth=3)
    assert ex["converged"] is True and ex["completeness_error"] <= 0.01
    assert ex["sum_attribution"] == pytest.approx(ex["f_x"] - ex["f_baseline"], rel=0.01)
    with torch.no_grad():
        assert ex["f_x"] == pytest.approx(float(f(x)[0]), rel=1e-5)
    assert a.cost == Cost(steps[-1] + 2, steps[-1])
    bound = cost_integrated_gradients(steps=4, max_steps=64)
    assert a.cost.forward <= bound.forward and a.cost.backward <= bound.backward


def test_gate_reports_not_converged_honestly(
    tiny_unet: nn.Module, region: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    """The left Riemann rule converges like 1/n: 0.1 % is out of reach within 16 steps."""
    f = RegionTarget(tiny_unet, region)
    with caplog.at_level(logging.WARNING, logger="attribute.integrated_gradients"):
        a = integrated_gradients(f, make_window(4), rule="left", max_steps=16, tolerance=1e-3)
    ex = a.extra
    assert _check_history(ex, first=4, tolerance=1e-3, growth=2) == [4, 8, 16]
    assert ex["converged"] is False and ex["completeness_error"] > 1e-3
    assert "did not converge" in caplog.text
    errors = [h["error"] for h in ex["completeness_history"]]
    assert errors[-1] < errors[0]  # more steps still help
    assert a.cost == cost_integrated_gradients(steps=4, max_steps=16, rule="left") == Cost(17, 17)


def test_context_baseline_replaces_the_object_by_the_land_around_it(
    window_input: torch.Tensor,
) -> None:
    from scipy.ndimage import distance_transform_edt

    from attribute.base import CONTEXT_GAP_PX, CONTEXT_RING_PX, context_fill

    x = window_input.clone()
    region = np.zeros((64, 64), dtype=bool)
    region[20:40, 24:44] = True
    x[0][:, torch.from_numpy(region)] += 5.0  # a bright object
    x[0, :, :, 60:] = 0.0  # no-data at the right edge: never taken as land cover
    ref = make_baseline(x, "context", region=region)
    d = distance_transform_edt(~region)
    obj, ring = d <= CONTEXT_GAP_PX, (d > CONTEXT_GAP_PX) & (d <= CONTEXT_GAP_PX + CONTEXT_RING_PX)
    want = np.median(x[0].numpy()[:, ring], axis=1)
    got = ref[0].numpy()[:, obj]
    np.testing.assert_allclose(got, np.repeat(want[:, None], obj.sum(), axis=1), atol=0.05)
    assert torch.equal(ref[0][:, torch.from_numpy(~obj)], x[0][:, torch.from_numpy(~obj)])
    assert (
        float(ref[0][:, torch.from_numpy(region)].mean())
        < float(x[0][:, torch.from_numpy(region)].mean()) - 4
    )
    # an object touching no-data takes its fill from valid land only
    edge = np.zeros((64, 64), dtype=bool)
    edge[10:20, 50:60] = True
    fill = context_fill(x, edge)[0, :, 15, 55]
    assert torch.all(fill != 0)
    with pytest.raises(InputError, match="region"):
        make_baseline(x, "context")
    with pytest.raises(InputError, match="wider --margin"):
        make_baseline(x, "context", region=np.ones((64, 64), dtype=bool))


def test_reference_check_tells_a_solar_reference_from_a_non_solar_one() -> None:
    from attribute.base import reference_check

    # the demo detections: a blurred farm still looks like a farm
    blur = reference_check(21853.0, 20227.0, n_pixels=1000, reduction="sum", threshold_logit=0.0)
    assert not blur.non_solar and blur.share == pytest.approx(0.0744, abs=1e-3)
    flipped = reference_check(21731.0, 28217.0, n_pixels=1000, reduction="sum", threshold_logit=0.0)
    assert not flipped.non_solar and flipped.share < 0  # the explanation's sign flips
    zero = reference_check(21853.0, -40298.0, n_pixels=1000, reduction="sum", threshold_logit=0.0)
    assert zero.non_solar and zero.share == pytest.approx(2.844, abs=1e-3)
    assert zero.mean_logit == pytest.approx(-40.298)
    # just under the threshold is not "clearly" non-solar; a mean target is judged as it is
    near = reference_check(5.0, -0.5, n_pixels=1, reduction="mean", threshold_logit=0.0)
    assert not near.non_solar
    assert reference_check(5.0, -1.5, n_pixels=9, reduction="mean", threshold_logit=0.0).non_solar
