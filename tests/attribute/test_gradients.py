"""Gradient methods (saliency, input × gradient, SmoothGrad) and the band reductions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

from attribute.base import Cost, CountingFn
from attribute.gradients import (
    band_noise_std,
    cost_input_x_gradient,
    cost_saliency,
    cost_smoothgrad,
    input_x_gradient,
    saliency,
    smoothgrad,
    smoothgrad_noise,
)
from attribute.reduce import REDUCTIONS, band_importance, reduce_bands
from attribute.targets import RegionTarget
from solarmap.bands import BANDS
from solarmap.errors import InputError
from tests.attribute.conftest import LinearSegmenter, make_window

# --- reductions -----------------------------------------------------------------------------


def _two_pixel_attribution() -> np.ndarray:
    a = np.zeros((10, 1, 2), dtype=np.float32)
    a[:2, 0, 0] = [3.0, -4.0]  # pixel 0: one positive, one larger negative band
    a[:, 0, 1] = 1.0  # pixel 1: every band +1
    return a


@pytest.mark.parametrize(
    ("name", "want"),
    [("max_abs", [4.0, 1.0]), ("mean_abs", [0.7, 1.0]), ("l2", [5.0, np.sqrt(10)]),
     ("sum", [-1.0, 10.0])],
)  # fmt: skip
def test_reduce_bands_known_answers(name: str, want: list[float]) -> None:
    a = _two_pixel_attribution()
    out = reduce_bands(a, name)  # type: ignore[arg-type]
    assert out.dtype == np.float32 and out.shape == (1, 2)
    np.testing.assert_allclose(out[0], want, rtol=1e-6)
    np.testing.assert_allclose(reduce_bands(torch.from_numpy(a), name)[0], want, rtol=1e-6)  # type: ignore[arg-type]


def test_reduce_bands_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(InputError, match="max_abs, mean_abs, l2, sum"):
        reduce_bands(_two_pixel_attribution(), "median")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="bands, H, W"):
        reduce_bands(np.zeros((1, 10, 4, 4)), "sum")
    assert REDUCTIONS == ("max_abs", "mean_abs", "l2", "sum")


def test_band_importance_known_answers() -> None:
    a = np.zeros((10, 2, 2))
    a[0] = 1.0  # |B02| = 1 everywhere
    a[2, 0, 0] = -3.0  # |B04| = 3 at (0, 0) only
    everywhere = band_importance(a)
    assert list(everywhere) == list(BANDS)
    assert everywhere["B02"] == pytest.approx(4 / 7) and everywhere["B04"] == pytest.approx(3 / 7)
    assert sum(everywhere.values()) == pytest.approx(1.0)
    region = np.array([[False, True], [True, True]])
    inside = band_importance(a, region)
    assert inside["B02"] == pytest.approx(1.0) and inside["B04"] == 0.0
    assert set(band_importance(np.zeros((10, 2, 2))).values()) == {0.0}
    with pytest.raises(InputError, match="region"):
        band_importance(a, np.ones((3, 3), bool))


# --- saliency and input × gradient ----------------------------------------------------------


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_saliency_is_the_analytic_gradient(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray, reduction: str
) -> None:
    f = RegionTarget(linear_model, region, reduction=reduction)  # type: ignore[arg-type]
    a = saliency(f, window_input, reductions=("max_abs", "sum"))
    want = linear_model.region_gradient(region, mean=reduction == "mean")
    assert a.method == "saliency"
    assert a.per_band is not None and a.per_band.dtype == np.float32
    np.testing.assert_allclose(a.per_band, want, rtol=1e-6, atol=1e-9)
    # signed gradients are kept (abs=False): negative weights give negative gradients
    assert a.per_band[1].min() < 0
    np.testing.assert_allclose(a.maps["saliency:max_abs"], np.abs(want).max(0), rtol=1e-6)
    np.testing.assert_allclose(a.maps["saliency:sum"], want.sum(0), rtol=1e-5, atol=1e-7)
    assert a.cost == cost_saliency() == Cost(1, 1)


def test_input_x_gradient_is_x_times_the_gradient(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    a = input_x_gradient(RegionTarget(linear_model, region), window_input)
    want = window_input[0].double().numpy() * linear_model.region_gradient(region)
    assert a.per_band is not None
    np.testing.assert_allclose(a.per_band, want, rtol=1e-6, atol=1e-7)
    assert set(a.maps) == {"input_x_gradient:max_abs"}
    assert a.cost == cost_input_x_gradient() == Cost(1, 1)


def test_counting_fn_counts_forward_and_backward_rows(linear_model: LinearSegmenter) -> None:
    fn = CountingFn(RegionTarget(linear_model, np.ones((8, 8), bool)))
    xs = torch.zeros((3, 10, 8, 8), requires_grad=True)
    with torch.no_grad():
        fn(xs[:2])
    assert fn.cost == Cost(2, 0)
    torch.autograd.grad(fn(xs).sum(), xs)
    assert fn.cost == Cost(5, 3)
    with pytest.raises(InputError, match=r"Tensor\[N\]"):
        CountingFn(linear_model)(xs)  # the raw segmenter returns a mask, not one scalar per input


def test_methods_check_their_options_before_spending_passes(
    window_input: torch.Tensor,
) -> None:
    def never(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model must not run on bad options")

    with pytest.raises(InputError, match="reduction"):
        saliency(never, window_input, reductions=("maximum",))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"Tensor\[1, bands, H, W\]"):
        input_x_gradient(never, window_input[0])
    with pytest.raises(InputError, match="SmoothGrad method"):
        smoothgrad(never, window_input, method="occlusion")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="n_samples"):
        smoothgrad(never, window_input, n_samples=0)
    with pytest.raises(InputError, match="band_std"):
        smoothgrad(never, window_input, band_std=torch.ones(3))


# --- SmoothGrad -----------------------------------------------------------------------------


def test_smoothgrad_of_a_linear_model_is_the_plain_gradient(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f = RegionTarget(linear_model, region)
    a = smoothgrad(f, window_input, n_samples=10, batch_size=4, sigma=0.2)
    assert a.method == "smoothgrad"
    assert a.per_band is not None
    np.testing.assert_allclose(a.per_band, linear_model.region_gradient(region), rtol=1e-6)
    assert a.cost == cost_smoothgrad(n_samples=10) == Cost(10, 10)
    assert a.extra["n_samples"] == 10 and a.extra["inner_method"] == "saliency"
    assert set(a.maps) == {"smoothgrad:max_abs"}


def test_smoothgrad_noise_scale_follows_each_bands_std(window_input: torch.Tensor) -> None:
    x = window_input[..., :16, :16]
    per_band = x[0].flatten(1).double().numpy().std(axis=1)
    assert per_band.max() / per_band.min() > 5  # the fixture's bands differ a lot
    noise_std = band_noise_std(x, 0.15)
    np.testing.assert_allclose(noise_std.double().numpy(), 0.15 * per_band, rtol=1e-5)

    noisy = smoothgrad_noise(
        x, 400, noise_std=noise_std, generator=torch.Generator().manual_seed(7)
    )
    assert noisy.shape == (400, 10, 16, 16)
    measured = (noisy - x).transpose(0, 1).flatten(1).double().std(dim=1).numpy()
    np.testing.assert_allclose(measured, 0.15 * per_band, rtol=0.03)  # 102 400 draws per band
    again = smoothgrad_noise(
        x, 400, noise_std=noise_std, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(noisy, again)
    other = smoothgrad_noise(
        x, 400, noise_std=noise_std, generator=torch.Generator().manual_seed(8)
    )
    assert not torch.equal(noisy, other)


def test_smoothgrad_reports_the_noise_it_used(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f = RegionTarget(linear_model, region)
    a = smoothgrad(f, window_input, n_samples=2, sigma=0.1)
    want = 0.1 * window_input[0].flatten(1).double().numpy().std(axis=1)
    np.testing.assert_allclose(a.extra["noise_std"], want, rtol=1e-5)
    given = smoothgrad(f, window_input, n_samples=2, sigma=0.1, band_std=torch.arange(10.0))
    np.testing.assert_allclose(given.extra["noise_std"], 0.1 * np.arange(10.0), rtol=1e-6)


def _equal_std_window() -> torch.Tensor:
    """A window whose bands are permutations of one another plus offsets: equal std per band."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=64 * 64)
    bands = [rng.permutation(base) + 0.1 * j for j in range(10)]
    return torch.from_numpy(np.stack(bands).reshape(1, 10, 64, 64).astype(np.float32))


def test_smoothgrad_is_seeded(tiny_unet: nn.Module, region: np.ndarray) -> None:
    f = RegionTarget(tiny_unet, region)
    x = make_window(5)
    a = smoothgrad(f, x, n_samples=3, batch_size=3, seed=1)
    b = smoothgrad(f, x, n_samples=3, batch_size=3, seed=1)
    c = smoothgrad(f, x, n_samples=3, batch_size=3, seed=2)
    assert a.per_band is not None and b.per_band is not None and c.per_band is not None
    np.testing.assert_array_equal(a.per_band, b.per_band)
    assert not np.allclose(a.per_band, c.per_band)


def test_smoothgrad_agrees_with_captum_noise_tunnel_on_a_unet(
    tiny_unet: nn.Module, region: np.ndarray
) -> None:
    """With equal per-band std, per-band noise is Captum's scalar stdev: same samples, same map."""
    x = _equal_std_window()
    noise_std = band_noise_std(x, 0.15)
    assert float(noise_std.max() - noise_std.min()) < 1e-5 * float(noise_std.max())
    f = RegionTarget(tiny_unet, region)
    ours = smoothgrad(f, x, n_samples=6, batch_size=4, sigma=0.15, seed=11)
    with torch.random.fork_rng():
        torch.manual_seed(11)  # NoiseTunnel draws from the global generator
        theirs = NoiseTunnel(Saliency(f)).attribute(
            x, nt_type="smoothgrad", nt_samples=6, nt_samples_batch_size=4,
            stdevs=float(noise_std[0]), abs=False,
        )  # fmt: skip
    want = theirs[0].detach().numpy()
    assert ours.per_band is not None
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(ours.per_band, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_smoothgrad_input_x_gradient_and_ig_agree_with_noise_tunnel(
    linear_model: LinearSegmenter, region: np.ndarray
) -> None:
    x = _equal_std_window()
    sd = float(band_noise_std(x, 0.2)[0])
    f = RegionTarget(linear_model, region)
    ixg = smoothgrad(f, x, method="input_x_gradient", n_samples=5, batch_size=2, sigma=0.2)
    ig = smoothgrad(
        f, x, method="integrated_gradients", n_samples=5, batch_size=2, sigma=0.2, ig_steps=4,
        baseline=torch.full((10,), -0.5),
    )  # fmt: skip
    assert ixg.method == "smoothgrad_input_x_gradient"
    assert ig.method == "smoothgrad_integrated_gradients"
    assert ixg.cost == cost_smoothgrad(method="input_x_gradient", n_samples=5) == Cost(5, 5)
    assert ig.cost == cost_smoothgrad(method="integrated_gradients", n_samples=5, ig_steps=4)
    assert ig.cost == Cost(20, 20)

    # NoiseTunnel(input × gradient) of a linear model: mean of x̃ · w, with Captum's noise.
    grad = linear_model.region_gradient(region)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        nt = NoiseTunnel(IntegratedGradients(f)).attribute(
            x, nt_type="smoothgrad", nt_samples=5, nt_samples_batch_size=2, stdevs=sd,
            baselines=-0.5, n_steps=4, method="riemann_middle",
        )  # fmt: skip
    assert ig.per_band is not None and ixg.per_band is not None
    np.testing.assert_allclose(ig.per_band, nt[0].numpy(), rtol=1e-4, atol=1e-5)
    # IG of a linear model is (x̃ − x′)·w and input × gradient is x̃·w: they differ by x′·w.
    np.testing.assert_allclose(ig.per_band - ixg.per_band, 0.5 * grad, rtol=1e-4, atol=1e-5)
