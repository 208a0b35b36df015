"""Turn Sentinel-2 scenes plus solar labels into labelled scenes, a chip index and statistics.

Output folder layout (built in a temporary folder and renamed into place on success)::

    OUT/config.json                     the configuration and inputs of the run
    OUT/stats.json                      per-band normalisation statistics (train split)
    OUT/chips.gpkg                      chip index: footprints, split, block, solar fraction
    OUT/scenes/<scene_id>/image.tif     COG, float32 reflectance 0-1, NaN no data, 10 bands
    OUT/scenes/<scene_id>/mask.tif      COG, uint8 0 background / 1 solar / 255 ignore
    OUT/scenes/<scene_id>/labels.gpkg   the cleaned labels in the scene CRS
    OUT/scenes/<scene_id>/scene.json    what was read and how (encoding, SCL, counts)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

import solarmap
from data_prep import osm
from data_prep.chips import (
    SPLITS,
    BandStatistics,
    balanced_selection,
    chip_table,
    chip_windows,
    spatial_split,
)
from data_prep.rasterize import BACKGROUND, IGNORE, MASK_CLASSES, SOLAR, rasterize_window
from data_prep.sentinel2 import Scene, SceneInfo, SceneOptions, open_scene
from solarmap.bands import BANDS, REFLECTANCE_UNITS, reflectance_band_tags
from solarmap.errors import InputError, LabelError
from solarmap.geo import (
    check_output_dir,
    cog_writer,
    open_raster,
    output_dir,
    require_file,
    write_json,
    write_vector,
)
from solarmap.progress import track
from solarmap.styles import chips_style, image_style, outline_style, palette_style

log = logging.getLogger(__name__)

#: ``--labels`` value that fetches labels from the Overpass API for the scenes' footprint.
OVERPASS = "overpass"

#: Largest chip side, pixels (a 2048 px chip of 10 bands is 168 MB as float32).
MAX_CHIP_SIZE = 2048
#: Largest spatial split block side, pixels.
MAX_BLOCK_SIZE = 1 << 20
#: Widest ignore ring around label polygons, pixels.
MAX_BOUNDARY = 64


@dataclass(frozen=True)
class PrepareConfig:
    """Options of :func:`prepare`; written to ``config.json`` beside every output.

    Messages name the ``solarmap prepare`` options (``--chip-size``...) the fields stand for.

    Raises:
        InputError: on a value out of range, checked when the config is made (before any work).
    """

    chip_size: int = 256
    stride: int | None = None
    block_size: int = 512
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    negative_ratio: float = 1.0
    min_solar_fraction: float = 0.0
    boundary: int = 0
    window: int = 1024
    seed: int = 0
    scene_options: SceneOptions = field(default_factory=SceneOptions)

    def __post_init__(self) -> None:
        if not (16 <= self.chip_size <= MAX_CHIP_SIZE and self.chip_size % 16 == 0):
            raise InputError(
                f"--chip-size {self.chip_size}: give a multiple of 16 from 16 to {MAX_CHIP_SIZE}"
            )
        if self.stride is not None and not 0 < self.stride <= self.chip_size:
            raise InputError(
                f"--stride {self.stride}: give 1 to the chip size ({self.chip_size}) pixels"
            )
        if not self.chip_size <= self.block_size <= MAX_BLOCK_SIZE:
            raise InputError(
                f"--block-size {self.block_size}: give the chip size ({self.chip_size}) to "
                f"{MAX_BLOCK_SIZE} pixels"
            )
        _check_split(self.split)
        if not (math.isfinite(self.negative_ratio) and self.negative_ratio >= 0):
            raise InputError(
                f"--negative-ratio {self.negative_ratio:g}: give a finite number >= 0 (1 keeps one "
                "negative chip per positive)"
            )
        if not 0 <= self.boundary <= MAX_BOUNDARY:
            raise InputError(f"--boundary {self.boundary}: give 0 to {MAX_BOUNDARY} pixels")
        if self.seed < 0:
            raise InputError(f"--seed {self.seed}: give a whole number >= 0")
        if not 0 <= self.min_solar_fraction < 1:
            raise InputError(f"min solar fraction must be in [0, 1), got {self.min_solar_fraction}")
        if self.window < 64:
            raise InputError(f"window must be >= 64 pixels, got {self.window}")


def _check_split(split: tuple[float, ...]) -> None:
    """Train, val and test shares: three finite numbers >= 0 that sum to 1, train above 0."""
    text = ",".join(f"{x:g}" for x in split)
    fix = "give three shares (train, val, test) that sum to 1, e.g. 0.7,0.15,0.15"
    if len(split) != 3 or not all(math.isfinite(x) and x >= 0 for x in split):
        raise InputError(f"--split {text}: {fix}")
    if not math.isclose(sum(split), 1.0, abs_tol=1e-6):
        raise InputError(f"--split {text}: the shares sum to {sum(split):g}; {fix}")
    if split[0] <= 0:
        raise InputError(f"--split {text}: no share for training; {fix}")


@dataclass
class SceneRecord:
    """What :func:`prepare` made of one scene."""

    scene_id: str
    info: SceneInfo
    image: Path
    mask: Path
    n_labels: int
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class PrepareResult:
    """Paths and counts of a :func:`prepare` run."""

    out: Path
    scenes: list[SceneRecord]
    chips: int
    selected: dict[str, int]
    index: Path
    stats: Path
    config: Path


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "scene"


def _unique_ids(infos: Sequence[SceneInfo]) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for info in infos:
        base = _safe_id(info.scene_id)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return ids


def _footprint_4326(info: SceneInfo) -> tuple[float, float, float, float]:
    return transform_bounds(info.crs, "EPSG:4326", *info.bounds, densify_pts=21)


def load_labels(source: str | Path, infos: Sequence[SceneInfo]) -> Any:
    """Read and clean labels (file, ``.osm`` or Overpass) once, in EPSG:4326.

    Raises:
        LabelError: when the label set is empty or none of it overlaps any scene.
    """
    from shapely.geometry import box
    from shapely.ops import unary_union

    footprints = [box(*_footprint_4326(i)) for i in infos]
    if str(source) == OVERPASS:
        raw = osm.labels_from_polygon(unary_union(footprints))
    else:
        raw = osm.read_labels(source)
    labels = osm.clean_labels(raw, crs="EPSG:4326", source=source)
    overlaps = labels.intersects(unary_union(footprints))
    if not overlaps.any():
        b = unary_union(footprints).bounds
        raise LabelError(
            f"{source}: no label polygon overlaps the scene (scene lon/lat bounds "
            f"{b[0]:.4f},{b[1]:.4f},{b[2]:.4f},{b[3]:.4f}); give labels for the same area"
        )
    return labels[overlaps].reset_index(drop=True)


def _labels_for_scene(labels_4326: Any, info: SceneInfo) -> Any:
    from shapely.geometry import box

    near = labels_4326[labels_4326.intersects(box(*_footprint_4326(info)))]
    local = near.to_crs(info.crs)
    return local[local.intersects(box(*info.bounds))].reset_index(drop=True)


def _write_labelled_scene(
    scene: Scene,
    labels: Any,
    image_path: Path,
    mask_path: Path,
    *,
    config: PrepareConfig,
) -> dict[str, int]:
    """Stream a scene window by window into the image and mask COGs; return pixel counts."""
    info = scene.info
    common = {"width": info.width, "height": info.height, "crs": info.crs}
    tags = {
        "SCENE_ID": info.scene_id,
        "DATETIME": info.date or "",
        "SOURCE_ENCODING": info.encoding,
        "REFLECTANCE_SCALE": "1",
        "SOLARMAP_VERSION": solarmap.__version__,
    }
    finite = np.zeros(len(BANDS), dtype=np.int64)
    counts = {"pixels": 0, "valid": 0, "solar": 0, "ignore": 0}
    windows = list(scene.windows(config.window))
    with (
        cog_writer(
            image_path,
            **common,
            count=len(BANDS),
            dtype="float32",
            transform=info.transform,
            nodata=float("nan"),
            descriptions=BANDS,
            tags=tags,
            band_tags=reflectance_band_tags(BANDS, scene_id=info.scene_id),
            units=[REFLECTANCE_UNITS] * len(BANDS),
            style=image_style(),
        ) as img,
        cog_writer(
            mask_path,
            **common,
            count=1,
            dtype="uint8",
            transform=info.transform,
            nodata=IGNORE,
            descriptions=["solar_mask"],
            tags={"VALUES": "0 background, 1 solar, 255 ignore", "SCENE_ID": info.scene_id},
            overview_resampling="mode",
            style=palette_style(
                MASK_CLASSES, colours={SOLAR: "#e31a1c", IGNORE: "#9e9e9e"}, hidden=(BACKGROUND,)
            ),
        ) as msk,
    ):
        for w in track(windows, "labelling scene", total=len(windows)):
            refl, valid = scene.read(w)
            finite += np.isfinite(refl).reshape(len(BANDS), -1).sum(axis=1)
            mask = rasterize_window(
                labels,
                scene_transform=info.transform,
                window=w,
                valid=valid,
                boundary=config.boundary,
            )
            img.write(refl.astype(np.float32, copy=False), window=w)
            msk.write(mask, 1, window=w)
            counts["pixels"] += mask.size
            counts["valid"] += int(valid.sum())
            counts["solar"] += int((mask == SOLAR).sum())
            counts["ignore"] += int((mask == IGNORE).sum())
        # Checked after the pass: the output folder is temporary, so failing here leaves nothing.
        empty = [b for b, n in zip(BANDS, finite, strict=True) if n == 0]
        if empty and len(empty) < len(BANDS):
            raise InputError(
                f"{info.source}: band(s) {', '.join(empty)} hold only NaN/no data; "
                "re-export the scene with every band filled"
            )
        if counts["valid"] == 0:
            raise InputError(
                f"{info.source}: no valid pixel (all no data, cloud or shadow); "
                "choose a clearer scene or a different date"
            )
    return counts


def _chip_rows(
    record: SceneRecord, *, config: PrepareConfig, rel_image: str, rel_mask: str
) -> list[dict[str, Any]]:
    info = record.info
    rows = []
    with open_raster(record.mask, what="mask") as src:
        for w in chip_windows(info.height, info.width, size=config.chip_size, stride=config.stride):
            m = src.read(1, window=w, boundless=True, fill_value=IGNORE)
            labelled = int((m != IGNORE).sum())
            if labelled == 0:
                continue
            minx, miny, maxx, maxy = window_bounds(w, info.transform)
            rows.append(
                {
                    "scene_id": record.scene_id,
                    "image": rel_image,
                    "mask": rel_mask,
                    "row_off": int(w.row_off),
                    "col_off": int(w.col_off),
                    "height": int(w.height),
                    "width": int(w.width),
                    "crs": info.crs.to_string(),
                    "solar_fraction": float((m == SOLAR).sum() / labelled),
                    "valid_fraction": float(labelled / m.size),
                    "_bounds": (minx, miny, maxx, maxy),
                    "_res": abs(info.transform.a),
                }
            )
    return rows


def _index_frame(rows: list[dict[str, Any]]) -> Any:
    """GeoDataFrame of chips; footprints in the scenes' CRS, or EPSG:4326 when CRSs differ."""
    import geopandas as gpd
    from shapely.geometry import box

    crss = sorted({r["crs"] for r in rows})
    geoms = []
    for r in rows:
        b = r["_bounds"]
        if len(crss) > 1:
            b = transform_bounds(r["crs"], "EPSG:4326", *b, densify_pts=21)
        geoms.append(box(*b))
    df = chip_table([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    return gpd.GeoDataFrame(df, geometry=geoms, crs=crss[0] if len(crss) == 1 else "EPSG:4326")


def prepare(
    scenes: Sequence[str | Path],
    labels: str | Path,
    out: str | Path,
    *,
    config: PrepareConfig | None = None,
    scl: Sequence[str | Path | None] | None = None,
    overwrite: bool = False,
) -> PrepareResult:
    """Join scenes and labels into labelled scenes, a chip index and band statistics.

    Args:
        scenes: scene paths (GeoTIFF, folder of band files or ``.SAFE``), one or more.
        labels: ``.osm`` XML, GeoJSON/GeoPackage, or ``"overpass"`` to query OpenStreetMap.
        out: output folder (must not exist unless ``overwrite``).
        config: chip, split and sampling options.
        scl: optional SCL file per scene (``None`` entries use the scene's own SCL if any).
        overwrite: replace an existing output folder.

    Raises:
        InputFileError: on missing or unreadable inputs.
        InputError: on wrong bands, missing CRS, NaN-filled bands or an all-invalid scene.
        LabelError: on an empty label set or labels that do not overlap the scenes.
        OutputExistsError: when ``out`` exists and ``overwrite`` is false.
    """
    cfg = config or PrepareConfig()
    if not scenes:
        raise InputError("no scene given; pass at least one --scene")
    scl_list = list(scl) if scl is not None else [None] * len(scenes)
    if len(scl_list) != len(scenes):
        raise InputError(
            f"{len(scl_list)} --scl files for {len(scenes)} --scene(s); give one --scl per "
            "--scene, in the same order, or none"
        )
    out = check_output_dir(out, overwrite=overwrite, inputs=[*scenes, labels])
    if str(labels) != "overpass":
        require_file(labels, "label file")

    # Validate every input before anything is written.
    opened: list[Scene] = []
    try:
        for path, s in zip(scenes, scl_list, strict=True):
            opened.append(open_scene(path, scl=s, options=cfg.scene_options))
        infos = [s.info for s in opened]
        ids = _unique_ids(infos)
        labels_4326 = load_labels(labels, infos)
        log.info("%d label polygons overlap %d scene(s)", len(labels_4326), len(infos))

        with output_dir(out, overwrite=overwrite) as tmp:
            records: list[SceneRecord] = []
            rows: list[dict[str, Any]] = []
            for scene, sid in zip(opened, ids, strict=True):
                scene_dir = tmp / "scenes" / sid
                scene_labels = _labels_for_scene(labels_4326, scene.info)
                rec = SceneRecord(
                    scene_id=sid,
                    info=scene.info,
                    image=scene_dir / "image.tif",
                    mask=scene_dir / "mask.tif",
                    n_labels=len(scene_labels),
                )
                rec.counts = _write_labelled_scene(
                    scene, scene_labels, rec.image, rec.mask, config=cfg
                )
                if len(scene_labels):
                    write_vector(
                        scene_labels,
                        scene_dir / "labels.gpkg",
                        layer="labels",
                        style=outline_style(colour="#ff00ff"),
                    )
                write_json(scene_dir / "scene.json", _scene_json(rec))
                records.append(rec)
                rows += _chip_rows(
                    rec,
                    config=cfg,
                    rel_image=f"scenes/{sid}/image.tif",
                    rel_mask=f"scenes/{sid}/mask.tif",
                )
            if not rows:
                raise InputError("no chip holds a valid pixel; check the scenes")
            index, stats = _split_and_stats(rows, tmp, cfg)
            write_vector(index, tmp / "chips.gpkg", layer="chips", style=chips_style())
            write_json(tmp / "stats.json", stats)
            write_json(tmp / "config.json", _config_json(cfg, scenes, scl_list, labels, records))
            selected: dict[str, int] = {
                s: int(((index["split"] == s) & index["selected"]).sum()) for s in SPLITS
            }
    finally:
        for opened_scene in opened:
            opened_scene.close()

    result = PrepareResult(
        out=out,
        scenes=[
            dataclasses.replace(
                r, image=out / r.image.relative_to(tmp), mask=out / r.mask.relative_to(tmp)
            )
            for r in records
        ],
        chips=len(index),
        selected=selected,
        index=out / "chips.gpkg",
        stats=out / "stats.json",
        config=out / "config.json",
    )
    log.info(
        "prepared %d scene(s), %d chips (selected: %s) in %s",
        len(records),
        result.chips,
        ", ".join(f"{k} {v}" for k, v in selected.items()),
        out,
    )
    return result


def _split_and_stats(
    rows: list[dict[str, Any]], root: Path, cfg: PrepareConfig
) -> tuple[Any, dict[str, Any]]:
    bounds = np.array([r["_bounds"] for r in rows], dtype=float)
    split = spatial_split(
        bounds,
        [r["crs"] for r in rows],
        block_size_m=cfg.block_size * rows[0]["_res"],
        fractions=cfg.split,
        seed=cfg.seed,
    )
    positive = np.array([r["solar_fraction"] > cfg.min_solar_fraction for r in rows])
    selected = balanced_selection(
        split.split, positive, negative_ratio=cfg.negative_ratio, seed=cfg.seed
    )
    for i, r in enumerate(rows):
        r.update(
            chip_id=i,
            split=str(split.split[i]),
            block=str(split.block[i]),
            positive=bool(positive[i]),
            selected=bool(selected[i]),
        )
    empty = [s for s in SPLITS if not any(r["split"] == s for r in rows)]
    if empty:
        log.warning(
            "split(s) %s got no chip: the region has too few blocks of %d px; "
            "use a smaller --block-size or more scenes",
            ", ".join(empty),
            cfg.block_size,
        )
    index = _index_frame(rows)

    stats = BandStatistics(seed=cfg.seed)
    train = [r for r in rows if r["split"] == "train" and r["selected"]]
    if not train:
        train = [r for r in rows if r["selected"]]
        log.warning("no training chip; band statistics come from all selected chips")
    for r in track(train, "band statistics", total=len(train)):
        w = Window(r["col_off"], r["row_off"], r["width"], r["height"])
        with open_raster(root / r["image"]) as img, open_raster(root / r["mask"]) as msk:
            refl = img.read(window=w, boundless=True, fill_value=np.nan)
            m = msk.read(1, window=w, boundless=True, fill_value=IGNORE)
        stats.update(refl, m != IGNORE)
    return index, stats.result()


def _scene_json(rec: SceneRecord) -> dict[str, Any]:
    i = rec.info
    return {
        "scene_id": rec.scene_id,
        "source": str(i.source),
        "form": i.form,
        "date": i.date,
        "crs": i.crs.to_string(),
        "transform": list(i.transform)[:6],
        "width": i.width,
        "height": i.height,
        "bands": list(i.bands),
        "encoding": i.encoding,
        "has_scl": i.has_scl,
        "labels": rec.n_labels,
        "counts": rec.counts,
    }


def _config_json(
    cfg: PrepareConfig,
    scenes: Sequence[str | Path],
    scl: Sequence[str | Path | None],
    labels: str | Path,
    records: Sequence[SceneRecord],
) -> dict[str, Any]:
    return {
        "command": "prepare",
        "solarmap_version": solarmap.__version__,
        "config": dataclasses.asdict(cfg),
        "scenes": [str(Path(s).resolve()) for s in scenes],
        "scl": [str(Path(s).resolve()) if s else None for s in scl],
        "labels": str(labels) if str(labels) == OVERPASS else str(Path(labels).resolve()),
        "scene_ids": [r.scene_id for r in records],
        "bands": list(BANDS),
    }
