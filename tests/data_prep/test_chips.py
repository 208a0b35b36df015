"""Chip windows, the leak-free spatial split, balanced sampling and band statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_prep.chips import BandStatistics, balanced_selection, chip_windows, spatial_split
from solarmap.errors import InputError


def _bounds(windows: list, res: float = 10.0, y0: float = 1e6) -> np.ndarray:
    return np.array(
        [
            (w.col_off * res, y0 - (w.row_off + w.height) * res,
             (w.col_off + w.width) * res, y0 - w.row_off * res)
            for w in windows
        ]
    )  # fmt: skip


def test_windows_cover_the_grid_and_stay_inside() -> None:
    wins = chip_windows(600, 700, size=256, stride=200)
    cover = np.zeros((600, 700), int)
    for w in wins:
        assert w.width == w.height == 256
        assert 0 <= w.row_off <= 600 - 256 and 0 <= w.col_off <= 700 - 256
        cover[w.row_off : w.row_off + 256, w.col_off : w.col_off + 256] += 1
    assert (cover > 0).all()


def test_small_scene_gets_one_padded_window() -> None:
    wins = chip_windows(13, 61, size=256)
    assert len(wins) == 1
    assert (wins[0].row_off, wins[0].col_off, wins[0].height, wins[0].width) == (0, 0, 256, 256)


def test_bad_window_arguments() -> None:
    with pytest.raises(InputError):
        chip_windows(10, 10, size=0)
    with pytest.raises(InputError):
        chip_windows(0, 10, size=4)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(64, 1500),
    w=st.integers(64, 1500),
    size=st.sampled_from([32, 64, 128]),
    overlap=st.sampled_from([1.0, 0.75, 0.5]),
    block=st.sampled_from([1, 2, 3]),
    seed=st.integers(0, 10),
)
def test_split_never_leaks(
    h: int, w: int, size: int, overlap: float, block: int, seed: int
) -> None:
    wins = chip_windows(h, w, size=size, stride=max(1, int(size * overlap)))
    bounds = _bounds(wins)
    res = spatial_split(bounds, ["EPSG:32643"] * len(wins), block_size_m=block * size * 10,
                        seed=seed)  # fmt: skip
    # No block is shared between splits.
    for b in np.unique(res.block):
        splits = set(res.split[(res.block == b) & (res.split != "dropped")])
        assert len(splits) <= 1
    # No two chips of different splits overlap.
    kept = np.flatnonzero(res.split != "dropped")
    for i in kept:
        for j in kept:
            if res.split[i] == res.split[j]:
                continue
            bi, bj = bounds[i], bounds[j]
            ox = min(bi[2], bj[2]) - max(bi[0], bj[0])
            oy = min(bi[3], bj[3]) - max(bi[1], bj[1])
            assert not (ox > 0 and oy > 0)


def test_split_shares_and_all_splits_present() -> None:
    wins = chip_windows(2048, 2048, size=256)
    res = spatial_split(_bounds(wins), ["EPSG:32643"] * len(wins), block_size_m=5120, seed=3)
    counts = {s: int((res.split == s).sum()) for s in ("train", "val", "test")}
    assert all(counts.values())
    assert counts["train"] > counts["val"] and counts["train"] > counts["test"]
    assert (res.split == "dropped").sum() == 0  # aligned, non-overlapping chips: nothing lost


def test_same_place_in_two_images_goes_to_one_split() -> None:
    # Two images (e.g. a date and a median) of each of 10 far-apart sites.
    sites = np.array([[i * 50_000, 0, i * 50_000 + 300, 300] for i in range(10)], float)
    bounds = np.concatenate([sites, sites])
    res = spatial_split(bounds, ["EPSG:32633"] * 20, block_size_m=5120, seed=0)
    assert (res.split[:10] == res.split[10:]).all()
    assert set(res.split) == {"train", "val", "test"}


def test_crs_keeps_blocks_apart() -> None:
    b = np.array([[0, 0, 100, 100], [0, 0, 100, 100]], float)
    res = spatial_split(b, ["EPSG:32632", "EPSG:32633"], block_size_m=1000)
    assert res.block[0] != res.block[1]


def test_bad_fractions() -> None:
    b = np.zeros((1, 4))
    with pytest.raises(InputError):
        spatial_split(b, ["EPSG:4326"], block_size_m=10, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(InputError):
        spatial_split(b, ["EPSG:4326"], block_size_m=0)


def test_balanced_selection_keeps_positives_and_limits_negatives() -> None:
    split = np.array(["train"] * 10 + ["test"] * 6 + ["dropped"])
    positive = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], bool)
    sel = balanced_selection(split, positive, negative_ratio=1.5, seed=1)
    assert sel[:2].all()
    assert sel[2:10].sum() == 3  # ceil(1.5 × 2)
    assert sel[10:16].all()  # test split is not subsampled
    assert not sel[16]  # dropped chips never selected


def test_band_statistics_match_numpy() -> None:
    rng = np.random.default_rng(0)
    stats = BandStatistics(n_bands=3, max_samples=10_000_000)
    chunks = [rng.normal(i, 1 + i, size=(3, 40, 50)) for i in range(3)]
    valids = [rng.random((40, 50)) > 0.3 for _ in range(3)]
    chunks[1][2, 0, 0] = np.nan  # a NaN pixel is skipped even where valid
    valids[1][0, 0] = True
    for c, v in zip(chunks, valids, strict=True):
        stats.update(c, v)
    px = np.concatenate([c[:, v] for c, v in zip(chunks, valids, strict=True)], axis=1)
    px = px[:, np.isfinite(px).all(0)]
    out = stats.result()
    np.testing.assert_allclose(out["mean"], px.mean(1), atol=1e-5)
    np.testing.assert_allclose(out["std"], px.std(1), atol=1e-5)
    assert out["pixels"] == px.shape[1]
    with pytest.raises(InputError):
        BandStatistics(n_bands=2).result()
