"""Training chips as a torch Dataset, read from a `solarmap prepare` folder.

Chips are read once from the labelled-scene COGs (windows, boundless: small scenes are padded
with NaN image / 255 mask) and kept in memory as float16 reflectance when they fit, which is the
case for the demo region and the real chips; larger chip sets are read window by window.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from data_prep.rasterize import IGNORE
from solarmap.bands import BANDS
from solarmap.errors import InputError, InputFileError
from solarmap.geo import open_raster, read_vector
from train.augment import Augment

log = logging.getLogger(__name__)

SplitName = Literal["train", "val", "test"]
#: Chip sets smaller than this many bytes (float16 reflectance) are cached in memory.
CACHE_LIMIT_BYTES = 2 * 1024**3


#: Columns of the chip index that training reads.
INDEX_COLUMNS = ("image", "mask", "split", "selected", "col_off", "row_off", "width", "height")
#: A stats.json larger than this is not one `solarmap prepare` wrote.
MAX_STATS_BYTES = 1024**2
_PREPARE_AGAIN = "run `solarmap prepare` again"


def _prepared_folder(root: Path) -> None:
    if not root.exists():
        raise InputFileError(f"{root}: not found; give the folder `solarmap prepare` wrote")
    if not root.is_dir():
        raise InputFileError(f"{root}: not a folder; give the folder `solarmap prepare` wrote")


def read_chip_index(root: str | Path) -> Any:
    """The chip index GeoDataFrame of a prepared folder.

    Raises:
        InputFileError: when the folder has no readable chips.gpkg.
        InputError: when the index lacks a column training reads.
    """
    root = Path(root)
    _prepared_folder(root)
    path = root / "chips.gpkg"
    index = read_vector(path, what="chip index (run `solarmap prepare`)")
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise InputError(
            f"{path}: chip index lacks the column(s) {', '.join(missing)}; {_PREPARE_AGAIN}"
        )
    return index


def _numbers(values: Any, path: Path, what: str) -> list[float]:
    ok = isinstance(values, list) and len(values) == len(BANDS)
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not ok or not all(math.isfinite(v) for v in values):
        raise InputError(
            f"{path}: {what} is not {len(BANDS)} finite numbers, one per band; {_PREPARE_AGAIN}"
        )
    return [float(v) for v in values]


def read_stats(root: str | Path) -> dict[str, Any]:
    """Per-band normalisation statistics written by `solarmap prepare`.

    Raises:
        InputFileError: when ``root`` is a file.
        InputError: when stats.json is missing, not JSON, for other bands, or its mean and std
            are not one finite number per band (std > 0).
    """
    root = Path(root)
    _prepared_folder(root)
    path = root / "stats.json"
    if not path.is_file():
        raise InputError(f"{path}: band statistics not found; run `solarmap prepare` first")
    if path.stat().st_size > MAX_STATS_BYTES:
        raise InputError(f"{path}: too large for band statistics; {_PREPARE_AGAIN}")
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: not readable JSON ({first}); {_PREPARE_AGAIN}") from err
    if not isinstance(stats, dict):
        raise InputError(f"{path}: not band statistics (a JSON object); {_PREPARE_AGAIN}")
    if stats.get("bands") != list(BANDS):
        raise InputError(f"{path}: statistics are for bands {stats.get('bands')}, not {BANDS}")
    _numbers(stats.get("mean"), path, "mean")
    std = _numbers(stats.get("std"), path, "std")
    if min(std) <= 0:
        raise InputError(f"{path}: a band's std is 0 or less; {_PREPARE_AGAIN}")
    return stats


def read_chip(root: Path, row: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance ``float32[10, S, S]`` (NaN padded) and mask ``uint8[S, S]`` of one chip."""
    w = Window(int(row["col_off"]), int(row["row_off"]), int(row["width"]), int(row["height"]))
    with open_raster(root / row["image"]) as img, open_raster(root / row["mask"]) as msk:
        x = img.read(window=w, boundless=True, fill_value=np.nan).astype(np.float32)
        y = msk.read(1, window=w, boundless=True, fill_value=IGNORE)
    return x, y


class ChipDataset(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Chips of one split.

    Items are ``(x, y, valid)``: normalised input ``Tensor[10, S, S]`` (no data → 0), target
    ``Tensor[1, S, S]`` in {0, 1}, and ``Tensor[1, S, S]`` 1 where the pixel counts (mask not
    255). With ``augment`` (:class:`~train.augment.Augment`), each item is varied spectrally and
    geometrically with the dataset's own seeded generator. ``split=None`` takes every split
    (a held-out region used whole for validation).
    """

    def __init__(
        self,
        root: str | Path,
        split: SplitName | None,
        *,
        selected_only: bool = True,
        augment: Augment | None = None,
        stats: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        index = read_chip_index(self.root)
        rows = index if split is None else index[index["split"] == split]
        if selected_only:
            rows = rows[rows["selected"].astype(bool)]
        self.rows = rows.reset_index(drop=True)
        self.split = split
        self.stats = stats or read_stats(self.root)
        self.mean = np.asarray(self.stats["mean"], np.float32)[:, None, None]
        self.std = np.asarray(self.stats["std"], np.float32)[:, None, None]
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        sizes = self.rows["height"] * self.rows["width"]
        self.chip_size = int(self.rows["height"].max()) if len(self.rows) else 0
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        if len(self.rows) and int(sizes.sum()) * len(BANDS) * 2 < CACHE_LIMIT_BYTES:
            self._cache = []
            for _, r in self.rows.iterrows():
                x, y = read_chip(self.root, r)
                self._cache.append((x.astype(np.float16), y))

    def __len__(self) -> int:
        return len(self.rows)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``float32[10, S, S]`` and mask ``uint8[S, S]`` of chip ``i``."""
        if self._cache is not None:
            x, y = self._cache[i]
            return x.astype(np.float32), y
        return read_chip(self.root, self.rows.iloc[i])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = self.raw(i)
        if self.augment is not None:
            x, y = self.augment.apply(x, y, self.rng)
        xn = np.nan_to_num((x - self.mean) / self.std, nan=0.0).astype(np.float32)
        valid = (y != IGNORE).astype(np.float32)[None]
        target = (y == 1).astype(np.float32)[None]
        return torch.from_numpy(xn.copy()), torch.from_numpy(target.copy()), torch.from_numpy(valid)
