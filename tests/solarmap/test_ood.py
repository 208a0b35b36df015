"""The out-of-distribution check: streaming scene statistics and known-answer scores."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from solarmap.bands import BANDS
from solarmap.errors import CheckpointError, InputError
from solarmap.ood import (
    FAR_STD,
    HIST_BINS,
    HIST_RANGE,
    SAMPLE_PIXELS,
    SceneStatistics,
    TrainingStats,
    assess,
    sampling_step,
    training_stats,
    warning_line,
)

#: A vegetation-like spectrum (reflectance per band), and training statistics around it.
SPECTRUM = np.array([0.03, 0.06, 0.035, 0.10, 0.25, 0.32, 0.35, 0.37, 0.22, 0.11])
SD = 0.02


def spectral_stats(spectrum: np.ndarray = SPECTRUM) -> dict[str, Any]:
    """``training_stats`` of pixels spread ``SD`` around ``spectrum`` (range ± 2 SD)."""
    return {
        "bands": list(BANDS),
        "mean": spectrum.tolist(),
        "std": [SD] * len(BANDS),
        "p02": (spectrum - 2 * SD).tolist(),
        "p98": (spectrum + 2 * SD).tolist(),
        "pixels": 1000,
    }


def training(stats: dict[str, Any] | None = None) -> TrainingStats:
    meta = {"training_stats": spectral_stats() if stats is None else stats}
    return training_stats(meta, bands=BANDS, source="ckpt")


def spectral_scene(h: int = 60, w: int = 80, *, seed: int = 0) -> np.ndarray:
    """``float32[10, h, w]``: :data:`SPECTRUM` with noise of half the training spread."""
    rng = np.random.default_rng(seed)
    return (SPECTRUM[:, None, None] + rng.normal(0, SD / 2, (len(BANDS), h, w))).astype(np.float32)


def assessed(x: np.ndarray, valid: np.ndarray | None = None, **kw: Any) -> dict[str, Any]:
    stats = SceneStatistics(training(**kw))
    stats.update(x, np.ones(x.shape[1:], bool) if valid is None else valid)
    return assess(stats)


# ------------------------------------------------------------------------------ statistics


def _tiles(h: int, w: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Windows ``(row, col, height, width)`` of random sizes that cover the grid once."""
    rows = np.unique(np.r_[0, rng.integers(1, h, 4), h])
    cols = np.unique(np.r_[0, rng.integers(1, w, 5), w])
    return [
        (int(r0), int(c0), int(r1 - r0), int(c1 - c0))
        for r0, r1 in itertools.pairwise(rows)
        for c0, c1 in itertools.pairwise(cols)
    ]


@pytest.mark.parametrize("step", [1, 3])
def test_statistics_over_windows_equal_numpy_on_the_whole_array(step: int) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.3, 1.0, (len(BANDS), 97, 131)).astype(np.float32)  # some below p02
    valid = rng.random((97, 131)) > 0.2
    t = training()
    streamed = SceneStatistics(t, step=step)
    for r, c, h, w in _tiles(97, 131, rng):
        streamed.update(x[:, r : r + h, c : c + w], valid[r : r + h, c : c + w], row=r, col=c)

    px = x[:, ::step, ::step][:, valid[::step, ::step]].astype(np.float64)  # [B, n]
    assert streamed.pixels == px.shape[1]
    np.testing.assert_allclose(streamed.mean(), px.mean(axis=1), rtol=1e-6)
    out = (px < t.p02[:, None]) | (px > t.p98[:, None])
    assert streamed.band_outside.tolist() == out.sum(axis=1).tolist()
    assert streamed.outside == int(out.any(axis=0).sum())
    bin_width = (HIST_RANGE[1] - HIST_RANGE[0]) / HIST_BINS
    np.testing.assert_allclose(streamed.median(), np.median(px, axis=1), atol=bin_width)

    one_shot = SceneStatistics(t)
    one_shot.update(x[:, ::step, ::step], valid[::step, ::step])
    assert np.array_equal(streamed.hist, one_shot.hist)
    assert streamed.outside == one_shot.outside


def test_values_beyond_the_histogram_count_in_its_end_bins() -> None:
    stats = SceneStatistics(training())
    x = np.full((len(BANDS), 3, 3), 5.0, np.float32)
    x[0] = -1.0
    stats.update(x, np.ones((3, 3), bool))
    assert stats.hist[0, 0] == 9 and stats.hist[1, -1] == 9
    assert stats.median()[1] == pytest.approx(HIST_RANGE[1], abs=0.001)


def test_sampling_step_bounds_the_pixels_looked_at() -> None:
    assert sampling_step(96, 128) == sampling_step(1024, 1024) == 1
    assert sampling_step(2048, 2048) == 2
    for h, w in ((10980, 10980), (4096, 30000)):
        k = sampling_step(h, w)
        assert SAMPLE_PIXELS / 4 < -(-h // k) * -(-w // k) <= SAMPLE_PIXELS


def test_update_refuses_other_shapes() -> None:
    stats = SceneStatistics(training())
    with pytest.raises(InputError, match=r"not \[10, H, W\]"):
        stats.update(np.zeros((4, 5, 5), np.float32), np.ones((5, 5), bool))
    with pytest.raises(InputError, match="valid mask"):
        stats.update(np.zeros((10, 5, 5), np.float32), np.ones((5, 4), bool))
    with pytest.raises(InputError, match="step"):
        SceneStatistics(training(), step=0)


# ---------------------------------------------------------------------- training statistics


def test_training_statistics_are_checked() -> None:
    with pytest.raises(InputError, match=r"ckpt: has no training statistics.*--ood-check off"):
        training_stats({}, bands=BANDS, source="ckpt")
    good = spectral_stats()
    bad: list[dict[str, Any]] = [
        {**good, "bands": list(BANDS[::-1])},
        {**good, "mean": good["mean"][:9]},
        {**good, "std": [0.0] * 10},
        {**good, "p02": [float("nan")] * 10},
        {**good, "p02": good["p98"], "p98": good["p02"]},
        {**good, "pixels": -1},
        {**good, "pixels": True},
    ]
    for stats in bad:
        with pytest.raises(CheckpointError, match="ckpt: training statistics"):
            training_stats({"training_stats": stats}, bands=BANDS, source="ckpt")
    with pytest.raises(CheckpointError, match="not an object"):
        training_stats({"training_stats": [1, 2]}, bands=BANDS, source="ckpt")


# ---------------------------------------------------------------------------------- scores


def test_a_scene_like_the_training_data_passes() -> None:
    record = assessed(spectral_scene())
    assert record["warning"] is False and record["bands_outside"] == []
    assert record["score"] < 1 and record["brightness"] == pytest.approx(1.0, abs=0.01)
    assert record["pixels"] == 60 * 80 and record["step"] == 1
    assert set(record["bands"]) == set(BANDS)


def test_a_brighter_scene_is_out_by_level_not_by_shape() -> None:
    record = assessed(spectral_scene() * 2.5)
    assert record["warning"] is True
    assert record["brightness"] == pytest.approx(2.5, abs=0.02)
    # 2.5 × median beyond p98 = median + 2 SD by more than one SD: every band above 0.04
    want = [b for b, v in zip(BANDS, SPECTRUM, strict=True) if 1.5 * v - 2 * SD > FAR_STD * SD]
    assert record["bands_outside"] == want and "B02" not in want and "B03" in want
    assert all(record["bands"][b]["shape"] == 0 for b in BANDS)
    line = warning_line(record, scene="S2X")
    assert line.startswith("S2X: outside the model's training data")
    assert "B8A" in line and "B02" not in line and "do not trust" in line


def test_shifted_bands_are_named() -> None:
    x = spectral_scene()
    x[BANDS.index("B11")] += 0.15
    x[BANDS.index("B12")] += 0.15
    record = assessed(x)
    assert record["warning"] is True and record["bands_outside"] == ["B11", "B12"]
    assert record["bands"]["B11"]["level"] == pytest.approx((0.15 - 2 * SD) / SD, abs=0.1)


def test_bands_out_of_order_are_out_by_shape() -> None:
    x = spectral_scene()
    i, j = BANDS.index("B04"), BANDS.index("B08")
    x[[i, j]] = x[[j, i]]
    record = assessed(x)
    assert record["warning"] is True and record["bands_outside"] == ["B04", "B08"]
    assert record["bands"]["B08"]["shape"] > FAR_STD
    line = warning_line(record, scene="S")
    assert "B04" in line and "above" in line and "B08" in line and "below" in line


def test_an_ordinary_median_with_a_spread_out_band_warns() -> None:
    x = spectral_scene(100, 100)
    b = BANDS.index("B11")
    x[b, :30] = 0.9  # 30 % far above, 30 % far below, the median where it should be
    x[b, 30:60] = -0.3
    record = assessed(x)
    assert record["bands"]["B11"]["level"] == 0
    assert record["outside_share"] >= 0.6 and record["warning"] is True
    assert record["bands_outside"] == ["B11"]
    assert "B11 with 60% of pixels outside" in warning_line(record, scene="S")


def test_no_sampled_pixel_skips_the_check() -> None:
    record = assessed(spectral_scene(), valid=np.zeros((60, 80), bool))
    assert record["skipped"] is True and record["warning"] is False and "reason" in record
