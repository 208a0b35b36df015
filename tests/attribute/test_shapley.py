"""Superpixel Shapley methods and LIME: known answers, agreement with Captum, costs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from captum.attr import ShapleyValues, ShapleyValueSampling

from attribute import shapley as sh
from attribute.targets import RegionTarget
from solarmap.errors import InputError
from tests.attribute.conftest import WINDOW, LinearSegmenter, make_window

BASELINE = torch.linspace(-0.3, 0.3, 10)


def block_segments(rows: int = 2, cols: int = 3, size: int = WINDOW) -> np.ndarray:
    """``rows × cols`` rectangular superpixels numbered row by row."""
    r = np.minimum(np.arange(size) * rows // size, rows - 1)
    c = np.minimum(np.arange(size) * cols // size, cols - 1)
    return (r[:, None] * cols + c[None, :]).astype(np.int32)


def analytic_shapley(
    model: LinearSegmenter, x: torch.Tensor, region: np.ndarray, segments: np.ndarray
) -> np.ndarray:
    """For the additive linear model: ``phi_s = Σ_{p ∈ s ∩ region} w · (x_p − b)``."""
    full_b = BASELINE.view(1, 10, 1, 1).expand_as(x)
    contrib = model.region_ig(x, full_b, region).sum(axis=0)
    return np.bincount(segments.ravel(), weights=contrib.ravel(), minlength=segments.max() + 1)


class Interacting:
    """A non-additive ``f``: products and a saturation across superpixel borders (float64)."""

    def __init__(self, size: int = WINDOW) -> None:
        a = torch.zeros(size, size, dtype=torch.float64)
        a[size * 10 // 64 : size * 40 // 64, size * 15 // 64 : size * 50 // 64] = 1.0
        b = torch.zeros_like(a)
        b[size * 30 // 64 : size * 60 // 64, size * 5 // 64 : size * 30 // 64] = 1.0
        self.a, self.b = a / a.sum() * 10, b / b.sum() * 10
        self.sizes: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        xd = x.double()
        s_a = (xd[:, 2] * self.a).sum((-2, -1))
        s_b = (xd[:, 6] * self.b).sum((-2, -1))
        s_c = (xd[:, 0] * self.b).sum((-2, -1))
        return s_a * s_b + torch.tanh(s_c) + 0.5 * s_a**2


@pytest.fixture
def linear_f(linear_model: LinearSegmenter, region: np.ndarray) -> RegionTarget:
    return RegionTarget(linear_model, region)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        (sh.exact_shapley, {}),
        (sh.kernel_shap, {"n_samples": 40}),
        (sh.kernel_shap, {"n_samples": 40, "paired": False}),
        (sh.shapley_sampling, {"n_permutations": 2}),
        (sh.shapley_sampling, {"n_permutations": 1, "antithetic": False}),
        (sh.l_shapley, {"k": 0}),
        (sh.l_shapley, {"k": 1}),
        (sh.l_shapley, {"k": 3}),
        (sh.c_shapley, {"k": 1}),
        (sh.c_shapley, {"k": 2}),
        (sh.c_shapley, {"k": 3}),
        (sh.lime, {"n_samples": 40}),
    ],
)
def test_additive_model_gives_the_analytic_shapley_values(
    linear_model: LinearSegmenter,
    linear_f: RegionTarget,
    window_input: torch.Tensor,
    region: np.ndarray,
    method: Callable[..., sh.Attribution],
    kwargs: dict[str, object],
) -> None:
    segments = block_segments()
    expected = analytic_shapley(linear_model, window_input, region, segments)
    assert np.count_nonzero(np.abs(expected) > 1) >= 3  # the region spans several superpixels
    out = method(linear_f, window_input, segments, baseline=BASELINE, batch_size=7, **kwargs)
    np.testing.assert_allclose(out.extra["values"], expected, rtol=1e-4, atol=2e-3)
    assert out.extra["segments"] == 6
    name = out.method
    np.testing.assert_allclose(out.maps[name], np.asarray(out.extra["values"])[segments], rtol=1e-6)
    assert out.maps[name].shape == (WINDOW, WINDOW) and out.per_band is None


def test_l_shapley_covering_the_graph_is_exact_on_a_non_additive_model(
    window_input: torch.Tensor,
) -> None:
    segments = block_segments()
    f = Interacting()
    exact = sh.exact_shapley(f, window_input, segments, baseline=BASELINE)
    local = sh.l_shapley(f, window_input, segments, baseline=BASELINE, k=3)
    np.testing.assert_allclose(local.extra["values"], exact.extra["values"], atol=1e-5)
    # The model interacts: a 1-hop neighbourhood is not exact any more.
    near = sh.l_shapley(f, window_input, segments, baseline=BASELINE, k=1)
    assert np.max(np.abs(np.subtract(near.extra["values"], exact.extra["values"]))) > 1e-3
    # Efficiency of the exact values.
    assert sum(exact.extra["values"]) == pytest.approx(
        exact.extra["f_x"] - exact.extra["f_baseline"], abs=1e-9
    )


def test_c_shapley_equals_l_shapley_at_one_hop(window_input: torch.Tensor) -> None:
    """At k = 1 every subset of a neighbourhood holding i is connected: the two coincide."""
    segments = block_segments(3, 3)
    f = Interacting()
    c = sh.c_shapley(f, window_input, segments, baseline=BASELINE, k=1)
    ell = sh.l_shapley(f, window_input, segments, baseline=BASELINE, k=1)
    np.testing.assert_allclose(c.extra["values"], ell.extra["values"], atol=1e-9)
    assert c.cost == ell.cost
    paper = sh.c_shapley(f, window_input, segments, baseline=BASELINE, k=1, weights="paper")
    assert not np.allclose(paper.extra["values"], ell.extra["values"], atol=1e-3)


def test_l_shapley_k0_is_the_single_superpixel_gain(window_input: torch.Tensor) -> None:
    segments = block_segments()
    f = Interacting()
    out = sh.l_shapley(f, window_input, segments, baseline=BASELINE, k=0)
    base = BASELINE.view(1, 10, 1, 1).expand_as(window_input)
    v0 = float(f(base))
    for s in range(6):
        keep = torch.from_numpy(segments == s)
        alone = float(f(torch.where(keep, window_input, base)))
        assert out.extra["values"][s] == pytest.approx(alone - v0, abs=1e-9)
    assert out.cost.forward == 7


def test_exact_shapley_equals_captum_shapley_values() -> None:
    window_input = make_window(4, size=16)
    segments = block_segments(2, 2, size=16)
    f = Interacting(16)
    ours = sh.exact_shapley(f, window_input, segments, baseline=BASELINE, batch_size=16)
    base = BASELINE.view(1, 10, 1, 1).expand_as(window_input).contiguous()
    with torch.no_grad():
        ref = ShapleyValues(f).attribute(
            window_input, baselines=base, feature_mask=torch.from_numpy(segments)[None, None]
        )
    first = np.unique(segments.ravel(), return_index=True)[1]
    np.testing.assert_allclose(ours.extra["values"], ref[0, 0].numpy().ravel()[first], atol=1e-5)


def test_samplers_agree_with_captum_within_sampling_tolerance() -> None:
    # A 16 px window: Captum's sampler loops over the mask's pixels once per permutation.
    window_input = make_window(2, size=16)
    segments = block_segments(size=16)
    f = Interacting(16)
    exact = np.array(sh.exact_shapley(f, window_input, segments, baseline=BASELINE).extra["values"])
    tol = 0.1 * np.abs(exact).max()
    base = BASELINE.view(1, 10, 1, 1).expand_as(window_input).contiguous()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        with torch.no_grad():
            ref = ShapleyValueSampling(f).attribute(
                window_input,
                baselines=base,
                feature_mask=torch.from_numpy(segments)[None, None],
                n_samples=100,
                perturbations_per_eval=6,
            )
    first = np.unique(segments.ravel(), return_index=True)[1]
    captum_values = ref[0, 0].numpy().ravel()[first]
    anti = sh.shapley_sampling(f, window_input, segments, baseline=BASELINE, n_permutations=50)
    np.testing.assert_allclose(anti.extra["values"], captum_values, atol=2 * tol)
    np.testing.assert_allclose(anti.extra["values"], exact, atol=tol)
    np.testing.assert_allclose(captum_values, exact, atol=tol)
    for paired in (True, False):
        ks = sh.kernel_shap(
            f, window_input, segments, baseline=BASELINE, n_samples=400, paired=paired
        )
        np.testing.assert_allclose(ks.extra["values"], exact, atol=tol)


def test_seeded_and_global_rng_untouched() -> None:
    window_input = make_window(3, size=16)
    segments = block_segments(size=16)
    f = Interacting(16)
    state = torch.get_rng_state()
    runs = [
        sh.shapley_sampling(f, window_input, segments, baseline=BASELINE, n_permutations=3, seed=4)
        for _ in range(2)
    ]
    assert runs[0].extra["values"] == runs[1].extra["values"]
    ks = [sh.kernel_shap(f, window_input, segments, n_samples=20, seed=s) for s in (1, 1, 2)]
    assert ks[0].extra["values"] == ks[1].extra["values"] != ks[2].extra["values"]
    lm = [sh.lime(f, window_input, segments, n_samples=20, seed=s) for s in (3, 3)]
    assert lm[0].extra["values"] == lm[1].extra["values"]
    assert torch.equal(torch.get_rng_state(), state)


def test_costs_are_stated_before_and_equal_the_spent() -> None:
    window_input = make_window(1, size=16)
    segments = block_segments(size=16)
    cases: list[tuple[Callable[..., sh.Attribution], dict[str, object], sh.Cost]] = [
        (sh.exact_shapley, {}, sh.cost_exact_shapley(6)),
        (sh.kernel_shap, {"n_samples": 30}, sh.cost_kernel_shap(30)),
        (sh.lime, {"n_samples": 25}, sh.cost_lime(25)),
        (sh.shapley_sampling, {"n_permutations": 3}, sh.cost_shapley_sampling(6, 3)),
        (
            sh.shapley_sampling,
            {"n_permutations": 3, "antithetic": False},
            sh.cost_shapley_sampling(6, 3, antithetic=False),
        ),
        (sh.l_shapley, {"k": 1}, sh.cost_l_shapley(segments, k=1)),
        (sh.c_shapley, {"k": 2}, sh.cost_c_shapley(segments, k=2)),
    ]
    for method, kwargs, predicted in cases:
        f = Interacting(16)
        out = method(f, window_input, segments, baseline=BASELINE, batch_size=5, **kwargs)
        assert out.cost == predicted, method.__name__
        assert sum(f.sizes) == predicted.forward and max(f.sizes) <= 5, method.__name__
    assert sh.cost_exact_shapley(6).forward == 64
    assert sh.cost_shapley_sampling(6, 3).forward == 1 + 6 * 6
    # Sharing: L-Shapley evaluates each coalition once, fewer than the sum over neighbourhoods.
    assert sh.cost_l_shapley(segments, k=1).forward < 6 * 2**4
    # C-Shapley only needs connected sets: cheaper than L-Shapley at the same k.
    big = block_segments(4, 4)
    assert sh.cost_c_shapley(big, k=2).forward < sh.cost_l_shapley(big, k=2).forward


def test_c_shapley_weights() -> None:
    # On a chain interior (two boundary nodes) the graph weights are the paper's.
    for size in range(1, 8):
        assert sh._c_weight(size, 2, "boundary") == pytest.approx(sh._c_weight(size, 2, "paper"))
    # Weights over the connected sets of a neighbourhood sum to one (4×4 grid, k=2).
    segments = block_segments(4, 4)
    plan = sh._plan_c_shapley(segments, 2, 10_000, "boundary")
    for _, _, _, w in plan.items:
        assert w.sum() == pytest.approx(1.0)
    paper = sh._plan_c_shapley(segments, 2, 10_000, "paper")
    assert any(w.sum() < 0.99 for *_, w in paper.items)


def test_connected_sets_enumeration() -> None:
    # Path 0-1-2-3 (bit masks of neighbours); connected sets holding 1: {1},{0,1},{1,2},
    # {0,1,2},{1,2,3},{0,1,2,3}.
    adj = [0b0010, 0b0101, 0b1010, 0b0100]
    sets = sh._connected_sets(adj, 1, 100)
    assert sorted(m for m, _ in sets) == sorted([0b0010, 0b0011, 0b0110, 0b0111, 0b1110, 0b1111])
    boundary = dict(sets)
    assert boundary[0b0010] == 2 and boundary[0b0111] == 1 and boundary[0b1111] == 0
    # A 4-cycle: every non-empty subset holding the root except the opposite pair is connected.
    cycle = [0b1010, 0b0101, 0b1010, 0b0101]
    assert len(sh._connected_sets(cycle, 0, 100)) == 7


def test_budgets_and_inputs_are_checked(linear_f: RegionTarget, window_input: torch.Tensor) -> None:
    segments = block_segments(4, 4)
    with pytest.raises(InputError, match="smaller k"):
        sh.l_shapley(linear_f, window_input, segments, k=3, max_evaluations=1000)
    with pytest.raises(InputError, match="smaller k"):
        sh.cost_l_shapley(segments, k=1, max_evaluations=40)
    with pytest.raises(InputError, match="smaller k"):
        sh.c_shapley(linear_f, window_input, segments, k=4, max_evaluations=100)
    with pytest.raises(InputError, match="at most 12"):
        sh.exact_shapley(linear_f, window_input, block_segments(4, 4))
    with pytest.raises(InputError, match="n_samples"):
        sh.kernel_shap(linear_f, window_input, segments, n_samples=10)
    with pytest.raises(InputError, match="n_samples"):
        sh.lime(linear_f, window_input, segments, n_samples=10)
    with pytest.raises(InputError, match="n_permutations"):
        sh.shapley_sampling(linear_f, window_input, segments, n_permutations=0)
    with pytest.raises(InputError, match="weights"):
        sh.c_shapley(linear_f, window_input, segments, weights="chain")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="k=-1"):
        sh.l_shapley(linear_f, window_input, segments, k=-1)
    gaps = segments.copy()
    gaps[gaps == 3] = 20
    with pytest.raises(InputError, match=r"0\.\.K-1"):
        sh.l_shapley(linear_f, window_input, gaps)
    with pytest.raises(InputError, match="window is"):
        sh.l_shapley(linear_f, window_input, segments[:32])
    with pytest.raises(InputError, match="batch_size"):
        sh.l_shapley(linear_f, window_input, segments, batch_size=0)
