"""Sliding-window inference over scenes of any size, and polygons from the probability map.

:func:`predict_scene` runs a checkpoint over a whole scene in overlapping windows and writes, into
one output folder (built atomically):

- ``probability.tif``: a float32 COG on exactly the scene grid, NaN where the input is not valid;
- ``polygons.gpkg``: layer ``"solar"``, one polygon per connected group of pixels at or above the
  threshold, with its equal-area size, mean and max probability, centroid, scene id and date
  (a Date field, null where the scene has none);
- ``predict.json``: the configuration, scene, checkpoint, counts and time split of the run, and
  how far the scene lies outside the model's training data (``"ood"``, see :mod:`solarmap.ood`;
  a warning is also logged when it lies far outside).

Memory is bounded by one batch of windows and one strip of ``window`` rows of the scene, never
the whole scene: windows are taken one row of windows at a time, blended into a strip
accumulator ``(window, width)``, and the rows no later window touches are written out.

This is a core module: it imports no stage package. The scene is anything that satisfies
:class:`solarmap.windows.SceneSource` (``data_prep.sentinel2.Scene`` does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

import solarmap
from solarmap.errors import CheckpointError, InputError, InputFileError
from solarmap.geo import (
    cog_writer,
    equal_area_crs,
    open_raster,
    output_dir,
    polygonize_mask,
    write_json,
    write_vector,
)
from solarmap.inference import Engine, Runner, check_engine, runner
from solarmap.model import Checkpoint, check_threshold
from solarmap.ood import (
    OOD_CHECKS,
    OodCheck,
    SceneStatistics,
    assess,
    sampling_step,
    training_stats,
    warning_line,
)
from solarmap.progress import track
from solarmap.styles import detections_style, probability_style
from solarmap.windows import SceneSource, read_padded

log = logging.getLogger(__name__)

__all__ = [
    "POLYGON_COLUMNS",
    "PredictConfig",
    "PredictResult",
    "predict_scene",
    "probability_to_polygons",
    "recorded_threshold",
]

PROBABILITY_FILE = "probability.tif"
POLYGONS_FILE = "polygons.gpkg"
POLYGONS_LAYER = "solar"
REPORT_FILE = "predict.json"
#: Band description of the probability COG.
PROBABILITY_DESCRIPTION = "solar_probability"
#: Attribute columns of the polygon layer, in order (the geometry comes last).
POLYGON_COLUMNS: tuple[str, ...] = (
    "id", "scene_id", "date", "area_m2", "mean_prob", "max_prob", "centroid_lon", "centroid_lat",
)  # fmt: skip
#: Metadata keys of a checkpoint copied into ``predict.json``.
_CHECKPOINT_KEYS = (
    "solarmap_version", "format_version", "bands", "chip_size", "threshold", "model",
    "normalisation", "metrics", "created", "region",
)  # fmt: skip
#: ``read`` is the reader thread's time, ``read_wait`` the part of it the model waited for.
_TIME_KEYS = ("read", "read_wait", "forward", "blend", "write", "polygonize", "ood")


@dataclass(frozen=True)
class PredictConfig:
    """How :func:`predict_scene` runs.

    Attributes:
        window: side of the square windows the model sees, in pixels; a multiple of the
            checkpoint's ``config.multiple``.
        overlap: pixels shared by neighbouring windows; predictions are blended over it with a
            raised-cosine ramp so window seams do not show.
        batch_size: windows per forward pass (bounds memory with ``window``).
        threshold: probability at or above which a pixel is solar; ``None`` takes the
            checkpoint's threshold (chosen on validation).
        min_area_m2: polygons smaller than this (equal-area m²) are dropped.
        device: torch device to run the model on (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        ood_check: ``"warn"`` compares the scene's band statistics with the training
            statistics the checkpoint carries, records the result and logs a warning when the
            scene lies far outside them (:mod:`solarmap.ood`); ``"off"`` skips that.
        engine: what runs the model (:mod:`solarmap.inference`): ``"auto"`` (ONNX Runtime on
            the CPU when the model exports, else PyTorch), ``"onnx"`` or ``"torch"``.
        keep: ``(col_off, row_off, width, height)``: the part of the scene the outputs cover
            (the model sees all of it: a survey tile and the halo around it); ``None``: all.
    """

    window: int = 512
    overlap: int = 64
    batch_size: int = 4
    threshold: float | None = None
    min_area_m2: float = 0.0
    device: str = "cpu"
    ood_check: OodCheck = "warn"
    engine: Engine = "auto"
    keep: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not _whole(self.window) or not 1 <= self.window <= MAX_WINDOW:
            raise InputError(
                f"--window {self.window}: give 1 to {MAX_WINDOW} pixels (e.g. 512), a multiple "
                "of what the model needs"
            )
        most = self.window // 4
        if not _whole(self.overlap) or not 0 <= self.overlap <= most:
            raise InputError(
                f"--overlap {self.overlap}: give 0 to {most} pixels, at most a quarter of "
                f"--window {self.window} (e.g. {min(64, most)})"
            )
        if not _whole(self.batch_size) or self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: give 1 or more windows per pass")
        pixels = self.batch_size * self.window**2
        if pixels > MAX_BATCH_PIXELS:
            raise InputError(
                f"--batch-size {self.batch_size} windows of --window {self.window} make "
                f"{pixels:,} pixels per forward pass, more than {MAX_BATCH_PIXELS:,}; "
                "lower --batch-size or --window"
            )
        if self.threshold is not None:
            check_threshold(self.threshold, what="--threshold")
        if not 0.0 <= self.min_area_m2 < math.inf:  # also refuses NaN
            raise InputError(f"--min-area {self.min_area_m2}: give a finite area >= 0 m²")
        if self.device != "cpu":  # the default needs no torch import
            _check_device(self.device)
        if self.ood_check not in OOD_CHECKS:
            raise InputError(f"--ood-check {self.ood_check}: give {' or '.join(OOD_CHECKS)}")
        check_engine(self.engine)
        if self.keep is not None and not (
            len(self.keep) == 4
            and all(_whole(v) for v in self.keep)
            and min(self.keep[:2]) >= 0
            and min(self.keep[2:]) >= 1
        ):
            raise InputError(f"keep {self.keep}: give (col_off, row_off, width, height) >= 0")


#: The largest window side :class:`PredictConfig` takes, pixels.
MAX_WINDOW = 8192
#: The most pixels one forward pass may take (``batch_size × window²``): 256 windows of 512 px.
MAX_BATCH_PIXELS = 2**26


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_device(device: str) -> None:
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from err


@dataclass
class PredictResult:
    """What :func:`predict_scene` wrote.

    Attributes:
        probability: the probability COG.
        polygons: the polygon GeoPackage (layer ``"solar"``).
        n_polygons: polygons written.
        seconds: wall time split into ``read``, ``forward``, ``blend``, ``write``,
            ``polygonize`` and ``ood`` (the out-of-distribution statistics); everything but
            ``forward`` is overhead around the model.
        ood: the out-of-distribution record written into ``predict.json`` (see
            :func:`solarmap.ood.assess`; ``{"check": "off", "skipped": True}`` when off).
    """

    probability: Path
    polygons: Path
    n_polygons: int
    seconds: dict[str, float] = field(default_factory=dict)
    ood: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Sliding window
# --------------------------------------------------------------------------------------------


def _offsets(size: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis: every ``stride``, the last flush with the scene's end.

    A scene shorter than one window gets one window at 0 (it sticks out and is padded).
    """
    if size <= window:
        return [0]
    starts = list(range(0, size - window, stride))
    starts.append(size - window)
    return starts


def _ramp(window: int, overlap: int) -> np.ndarray:
    """``float32[window]`` rising raised-cosine (Hann) ramp over the first ``overlap`` pixels.

    Strictly positive, 1 after the ramp; a rising ramp and the mirrored falling ramp of the next
    window sum to 1 over an overlap of exactly ``overlap`` pixels.
    """
    ramp = np.ones(window, dtype=np.float64)
    if overlap > 0:
        i = np.arange(overlap, dtype=np.float64)
        ramp[:overlap] = np.sin(0.5 * np.pi * (i + 0.5) / overlap) ** 2
    return ramp.astype(np.float32)


class _Weights:
    """Blending weights of a window, by which of its sides have a neighbouring window."""

    def __init__(self, window: int, overlap: int) -> None:
        self._rise = _ramp(window, overlap)
        self._fall = self._rise[::-1].copy()
        self._ones = np.ones(window, dtype=np.float32)
        self._cache: dict[tuple[bool, bool, bool, bool], np.ndarray] = {}

    def __call__(self, top: bool, bottom: bool, left: bool, right: bool) -> np.ndarray:
        key = (top, bottom, left, right)
        if key not in self._cache:
            wy = (self._rise if top else self._ones) * (self._fall if bottom else self._ones)
            wx = (self._rise if left else self._ones) * (self._fall if right else self._ones)
            self._cache[key] = np.outer(wy, wx).astype(np.float32)
        return self._cache[key]


def _checkpoint_id(checkpoint: Checkpoint) -> str:
    """Where the checkpoint came from, or a content hash of its weights."""
    meta = checkpoint.metadata
    for key in ("path", "checkpoint", "id", "run_id"):
        if meta.get(key):
            return str(meta[key])
    digest = hashlib.sha256()
    for name, tensor in sorted(checkpoint.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def _checkpoint_record(checkpoint: Checkpoint, ckpt_id: str) -> dict[str, Any]:
    """The subset of checkpoint metadata worth keeping beside a prediction."""
    meta = checkpoint.metadata
    record: dict[str, Any] = {"id": ckpt_id}
    record.update({k: meta[k] for k in _CHECKPOINT_KEYS if k in meta})
    record.update({k: v for k, v in meta.items() if "fingerprint" in k})
    return record


def _prepare_model(checkpoint: Checkpoint, config: PredictConfig) -> tuple[Runner, str]:
    """The model's forward pass on ``config.device`` and ``config.engine``, and the engine."""
    if config.device != "cpu":  # the CPU needs no torch to say so: a cached graph runs without
        import torch

        dev = torch.device(config.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError(
                f"device {config.device!r} asked for but CUDA is not available; use 'cpu'"
            )
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise InputError(
                f"device {config.device!r} asked for but MPS is not available; use 'cpu'"
            )
    return runner(checkpoint, engine=config.engine, device=config.device)


def _forward(run: Runner, checkpoint: Checkpoint, batch: np.ndarray) -> np.ndarray:
    """``float32[N, B, S, S]`` reflectance → ``float32[N, S, S]`` probability."""
    logits = run(checkpoint.normalise_array(batch))
    if logits.ndim == 4 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if tuple(logits.shape) != (batch.shape[0], batch.shape[2], batch.shape[3]):
        raise CheckpointError(
            f"model returned shape {tuple(logits.shape)} for input {tuple(batch.shape)}; "
            "a solarmap checkpoint predicts one logit per pixel"
        )
    with np.errstate(over="ignore"):  # exp overflows to inf for large negative logits: p = 0
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


@dataclass
class _Counts:
    windows: int = 0
    windows_skipped: int = 0
    valid_pixels: int = 0
    solar_pixels: int = 0


def _batches(
    rows: list[int], cols: list[int], batch_size: int
) -> Iterator[tuple[int, list[int], bool]]:
    """``(row index, column starts, last batch of the row)`` in row-major order."""
    for k in range(len(rows)):
        for i in range(0, len(cols), batch_size):
            yield k, cols[i : i + batch_size], i + batch_size >= len(cols)


def _probability_band_tags(threshold: float) -> dict[str, str]:
    """Metadata of the probability band: what it means, its range and the threshold."""
    return {
        "MEANING": "probability that the pixel is part of a solar farm (model output)",
        "VALID_MIN": "0",
        "VALID_MAX": "1",
        "UNITS": "probability",
        "THRESHOLD": f"{threshold:g}",
        "NODATA_MEANING": "NaN: no valid input pixel (no data, cloud, shadow)",
    }


def _predict_to_cog(
    scene: SceneSource,
    checkpoint: Checkpoint,
    run: Runner,
    engine: str,
    path: Path,
    *,
    config: PredictConfig,
    threshold: float,
    tags: dict[str, str],
    seconds: dict[str, float],
    stats: SceneStatistics | None,
) -> _Counts:
    """Run the sliding window over ``scene`` with the forward pass ``run`` (on ``engine``) and
    write the probability COG at ``path``; accumulate the scene's band statistics into
    ``stats`` on the way, when given."""
    info = scene.info
    H, W = int(info.height), int(info.width)
    kc, kr, kw, kh = config.keep or (0, 0, W, H)
    S, ov = config.window, config.overlap
    rows = _offsets(H, S, S - ov)
    cols = _offsets(W, S, S - ov)
    Wa = max(W, S)  # a scene narrower than a window: the one window sticks out on the right
    acc = np.zeros((S, Wa), dtype=np.float32)  # sum of weight × probability
    wsum = np.zeros((S, Wa), dtype=np.float32)  # sum of weights
    valid_acc = np.zeros((S, Wa), dtype=bool)
    weights = _Weights(S, ov)
    # Where the part of each read that no earlier read covered ends: at the next row of
    # windows, and at the next batch's first column (the scene's end after the last).
    next_row = dict(zip(rows, [*rows[1:], H], strict=True))
    next_col = dict(zip(cols, [*cols[1:], W], strict=True))
    counts = _Counts()
    n_batches = len(rows) * math.ceil(len(cols) / config.batch_size)
    log.info(
        "%s: %dx%d px in %d windows of %d px (overlap %d), %d batches on %s",
        info.scene_id, W, H, len(rows) * len(cols), S, ov, n_batches, engine,
    )  # fmt: skip

    def flush(dst: Any, row0: int, n: int) -> None:
        """Write strip rows ``[0, n)`` (scene rows ``row0 + [0, n)``), then drop them."""
        t = time.perf_counter()
        r0, r1 = max(row0, kr), min(row0 + n, kr + kh)  # the rows of the kept part
        if r0 < r1:
            rows_, cols_ = slice(r0 - row0, r1 - row0), slice(kc, kc + kw)
            with np.errstate(invalid="ignore", divide="ignore"):
                prob = acc[rows_, cols_] / wsum[rows_, cols_]
            ok = valid_acc[rows_, cols_] & (wsum[rows_, cols_] > 0)
            prob[~ok] = np.nan
            counts.valid_pixels += int(ok.sum())
            counts.solar_pixels += int((prob >= threshold).sum())
            seconds["blend"] += time.perf_counter() - t
            t = time.perf_counter()
            dst.write(prob[None], window=Window(0, r0 - kr, kw, r1 - r0))
            seconds["write"] += time.perf_counter() - t
        t = time.perf_counter()
        for a in (acc, wsum, valid_acc):  # shift the strip up by n rows
            a[: S - n] = a[n:]
            a[S - n :] = 0
        seconds["blend"] += time.perf_counter() - t

    with cog_writer(
        path,
        width=kw,
        height=kh,
        count=1,
        dtype="float32",
        crs=info.crs,
        transform=info.transform * Affine.translation(kc, kr),
        nodata=float("nan"),
        descriptions=[PROBABILITY_DESCRIPTION],
        tags=tags,
        band_tags=[_probability_band_tags(threshold)],
        units=["probability"],
        style=probability_style(threshold=threshold),
    ) as dst:
        batches = list(_batches(rows, cols, config.batch_size))

        def read(i: int) -> tuple[np.ndarray, np.ndarray, float]:
            k, chunk, _ = batches[i]
            t = time.perf_counter()
            x, valid = read_padded(scene, Window(chunk[0], rows[k], chunk[-1] + S - chunk[0], S))
            return x, valid, time.perf_counter() - t

        # The next batch is read while this one is in the model: one reader thread, so the
        # scene is read by one thread at a time (reads release the GIL while decompressing).
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="solarmap-read")
        ahead = reader.submit(read, 0)
        try:
            for i, (k, chunk, row_done) in enumerate(
                track(batches, f"predict {info.scene_id}", total=n_batches)
            ):
                r, c0 = rows[k], chunk[0]
                span = chunk[-1] + S - c0
                t = time.perf_counter()
                x, valid, read_s = ahead.result()
                if i + 1 < len(batches):
                    ahead = reader.submit(read, i + 1)
                seconds["read_wait"] += time.perf_counter() - t
                seconds["read"] += read_s
                t = time.perf_counter()
                stack = np.stack([x[:, :, c - c0 : c - c0 + S] for c in chunk])
                has_data = np.array([valid[:, c - c0 : c - c0 + S].any() for c in chunk])
                seconds["blend"] += time.perf_counter() - t
                if stats is not None:  # each scene pixel once, from the read already made
                    t = time.perf_counter()
                    h, w = min(next_row[r], H) - r, min(next_col[chunk[-1]], W) - c0
                    stats.update(x[:, :h, :w], valid[:h, :w], row=r, col=c0)
                    seconds["ood"] += time.perf_counter() - t

                counts.windows += len(chunk)
                counts.windows_skipped += int((~has_data).sum())
                if has_data.any():  # windows with no valid pixel skip the model
                    t = time.perf_counter()
                    prob = _forward(run, checkpoint, stack[has_data])
                    seconds["forward"] += time.perf_counter() - t

                    t = time.perf_counter()
                    used = [c for c, keep in zip(chunk, has_data, strict=True) if keep]
                    for c, p in zip(used, prob, strict=True):
                        wgt = weights(k > 0, k < len(rows) - 1, c > 0, c + S < W)
                        acc[:, c : c + S] += wgt * p
                        wsum[:, c : c + S] += wgt
                    valid_acc[:, c0 : c0 + span] |= valid
                    seconds["blend"] += time.perf_counter() - t

                if row_done:
                    if k < len(rows) - 1:
                        flush(dst, r, rows[k + 1] - r)
                    else:
                        flush(dst, r, min(S, H - r))
        finally:
            reader.shutdown(wait=True, cancel_futures=True)
        if counts.valid_pixels == 0:
            raise InputError(
                f"{info.source}: scene has no valid pixel (all no data or masked); "
                "give a scene with clear pixels"
            )
        t = time.perf_counter()
    seconds["write"] += time.perf_counter() - t  # COG conversion with overviews
    return counts


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def predict_scene(
    scene: SceneSource,
    checkpoint: Checkpoint,
    out: str | Path,
    *,
    config: PredictConfig = PredictConfig(),  # frozen, so a safe default
    overwrite: bool = False,
) -> PredictResult:
    """Map solar farms in a scene: probability COG, polygons and a run record in ``out``.

    The scene is read in windows of ``config.window`` px (stride ``window - overlap``); a scene
    smaller than one window is padded. Windows go through the model ``config.batch_size`` at a
    time (``Tensor[N, B, window, window]`` → ``Tensor[N, 1, window, window]`` logits) and their
    probabilities are blended with smooth weights. Pixels the reader marks invalid (no data,
    clouds) or with NaN in any band enter the model as the band mean and come out as NaN.
    The checkpoint's model is moved to ``config.device`` and put in eval mode.

    With ``config.ood_check`` ``"warn"`` (the default), the scene's band statistics are
    gathered from the same reads and compared with the training statistics the checkpoint
    carries (:mod:`solarmap.ood`): the result goes into ``predict.json`` as ``"ood"``, and a
    scene far outside them logs one warning naming the bands.

    Args:
        scene: the scene (see :class:`SceneSource`), bands in the checkpoint's order.
        checkpoint: the trained model and its metadata.
        out: output folder; built atomically (nothing is left if this raises).
        config: window, overlap, batch size, threshold, minimum area and device.
        overwrite: replace ``out`` if it exists.

    Returns:
        Paths of the outputs, the number of polygons and the time split.

    Raises:
        CheckpointError: if the scene's bands differ from the checkpoint's, the model does not
            predict one logit per pixel, or the checkpoint's training statistics are malformed.
        InputError: if the window is not a multiple of what the model needs, the device is not
            available, the scene has no valid pixel, or the out-of-distribution check is on and
            the checkpoint carries no training statistics.
        OutputExistsError: if ``out`` exists and ``overwrite`` is false.
    """
    started = time.perf_counter()
    info = scene.info
    checkpoint.check_bands(tuple(info.bands), source=f"{info.source}: scene")
    multiple = checkpoint.config.multiple
    if config.window % multiple:
        raise InputError(
            f"--window {config.window} is not a multiple of {multiple}, which the model needs; "
            f"use e.g. {max(multiple, config.window // multiple * multiple)}"
        )
    if config.keep is not None and (
        config.keep[0] + config.keep[2] > info.width
        or config.keep[1] + config.keep[3] > info.height
    ):
        raise InputError(f"keep {config.keep}: outside the {info.width}x{info.height} scene")
    threshold = checkpoint.threshold if config.threshold is None else config.threshold
    stats = None
    if config.ood_check == "warn":  # before any work: a checkpoint without statistics stops here
        source = str(checkpoint.metadata.get("path") or "checkpoint")
        training = training_stats(checkpoint.metadata, bands=checkpoint.bands, source=source)
        stats = SceneStatistics(training, step=sampling_step(int(info.height), int(info.width)))
    ckpt_id = _checkpoint_id(checkpoint)
    seconds = dict.fromkeys(_TIME_KEYS, 0.0)
    tags = {
        "SCENE_ID": str(info.scene_id),
        "THRESHOLD": f"{threshold:g}",
        "CHECKPOINT": ckpt_id,
        "SOLARMAP_VERSION": solarmap.__version__,
    }
    if info.date:
        tags["DATETIME"] = str(info.date)

    # the model (built now if deferred, its weights checked) or its ONNX graph, before any
    # output exists: a bad checkpoint leaves nothing, and torch is imported (when it is
    # needed) before the first file, not in the middle of writing one
    run, engine = _prepare_model(checkpoint, config)
    out = Path(out)
    inputs = [p for p in (info.source, checkpoint.metadata.get("path")) if p]
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        counts = _predict_to_cog(
            scene,
            checkpoint,
            run,
            engine,
            tmp / PROBABILITY_FILE,
            config=config,
            threshold=threshold,
            tags=tags,
            seconds=seconds,
            stats=stats,
        )
        ood = _ood_record(stats, scene_id=str(info.scene_id), seconds=seconds)
        t = time.perf_counter()
        gdf = probability_to_polygons(
            tmp / PROBABILITY_FILE,
            threshold=threshold,
            min_area_m2=config.min_area_m2,
            scene_id=str(info.scene_id),
            date=info.date,
        )
        write_vector(
            gdf,
            tmp / POLYGONS_FILE,
            layer=POLYGONS_LAYER,
            style=detections_style(threshold=threshold),
            date_columns=("date",),
        )
        seconds["polygonize"] += time.perf_counter() - t
        total = time.perf_counter() - started
        write_json(
            tmp / REPORT_FILE,
            {
                "solarmap_version": solarmap.__version__,
                "config": dataclasses.asdict(config),
                "threshold": threshold,
                "scene": {
                    "source": str(info.source),
                    "scene_id": str(info.scene_id),
                    "date": info.date,
                    "width": int(info.width),
                    "height": int(info.height),
                    "crs": info.crs.to_string() if info.crs is not None else None,
                    "transform": list(info.transform)[:6],
                },
                "checkpoint": _checkpoint_record(checkpoint, ckpt_id),
                "counts": {**dataclasses.asdict(counts), "polygons": len(gdf)},
                "engine": engine,
                "ood": ood,
                "outputs": {
                    "probability": PROBABILITY_FILE,
                    "polygons": f"{POLYGONS_FILE} (layer {POLYGONS_LAYER})",
                },
                "seconds": {**seconds, "total": total},
            },
        )
    outside = total - seconds["forward"]
    log.info(
        "%s: %d polygons (threshold %.2f, %d of %d valid px solar) in %.1f s; "
        "forward %.1f s, outside the model %.1f s (%.0f %%) → %s",
        info.scene_id, len(gdf), threshold, counts.solar_pixels, counts.valid_pixels, total,
        seconds["forward"], outside, 100 * outside / total if total else 0.0, out,
    )  # fmt: skip
    return PredictResult(
        probability=out / PROBABILITY_FILE,
        polygons=out / POLYGONS_FILE,
        n_polygons=len(gdf),
        seconds=seconds,
        ood=ood,
    )


def _ood_record(
    stats: SceneStatistics | None, *, scene_id: str, seconds: dict[str, float]
) -> dict[str, Any]:
    """The ``"ood"`` record of a run, logging its warning; skipped when the check is off."""
    if stats is None:
        return {"check": "off", "skipped": True}
    t = time.perf_counter()
    record = assess(stats)
    seconds["ood"] += time.perf_counter() - t
    if record["warning"]:
        log.warning("%s", warning_line(record, scene=scene_id))
    elif record.get("skipped"):
        log.info("%s: out-of-distribution check skipped: %s", scene_id, record["reason"])
    else:
        log.info(
            "%s: band statistics within the training data (score %.2f)", scene_id, record["score"]
        )
    return record


def recorded_threshold(prediction: str | Path) -> float:
    """The threshold a prediction folder was made with, read from its ``predict.json``.

    Raises:
        InputFileError: if the folder holds no readable ``predict.json``.
        InputError: if the recorded threshold is not a probability strictly between 0 and 1.
    """
    path = Path(prediction) / REPORT_FILE
    hint = "give a folder `solarmap predict` wrote (probability.tif, predict.json)"
    try:
        record = json.loads(path.read_text())
        value = record["threshold"]
    except FileNotFoundError as err:
        raise InputFileError(f"{path}: not found; {hint}") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputFileError(f"{path}: no threshold recorded ({err}); {hint}") from err
    return check_threshold(value, what=f"{path}: threshold")


def _as_date(date: str | dt.date | None) -> dt.date | None:
    """A scene date as a date (from ISO text: ``2022-03-15`` or ``2022-03-15T10:20:31Z``)."""
    if date is None or isinstance(date, dt.date):
        return date
    try:
        return dt.date.fromisoformat(str(date)[:10])
    except ValueError as err:
        raise InputError(f"scene date {date!r} is not a date; give YYYY-MM-DD") from err


def _empty_polygons(crs: Any) -> Any:
    import geopandas as gpd
    import pandas as pd

    dtypes = {
        "id": "int64", "scene_id": object, "date": object, "area_m2": "float64",
        "mean_prob": "float64", "max_prob": "float64", "centroid_lon": "float64",
        "centroid_lat": "float64",
    }  # fmt: skip
    columns = {name: pd.Series([], dtype=dtypes[name]) for name in POLYGON_COLUMNS}
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _polygon_stats(
    ds: Any, pix: np.ndarray, bounds: np.ndarray, *, strip: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and max probability over each polygon's pixels, one strip of ``ds`` at a time.

    ``pix`` holds disjoint polygons in pixel coordinates, ``bounds`` their integer bounds
    ``[N, 4]``. Each strip is rasterized once with the ids of the polygons it meets and reduced
    with ``bincount`` / ``maximum.at``: no loop over polygons or pixels, and a scene with many
    small detections costs the same as one with few.
    """
    from rasterio.features import rasterize

    n_poly = len(pix)
    sums = np.zeros(n_poly + 1)
    counts = np.zeros(n_poly + 1)
    maxima = np.full(n_poly + 1, -np.inf)
    ids = np.arange(1, n_poly + 1)
    H, W = ds.height, ds.width
    for row0 in range(0, H, strip):
        n = min(strip, H - row0)
        meets = (bounds[:, 1] < row0 + n) & (bounds[:, 3] > row0)
        if not meets.any():
            continue
        labels = rasterize(
            zip(pix[meets], ids[meets].tolist(), strict=True),
            out_shape=(n, W),
            transform=Affine.translation(0, row0),
            fill=0,
            dtype="int32",
        )
        prob = ds.read(1, window=Window(0, row0, W, n), masked=True).filled(np.nan)
        inside = (labels > 0) & np.isfinite(prob)
        lab, values = labels[inside], prob[inside].astype(np.float64)
        sums += np.bincount(lab, weights=values, minlength=n_poly + 1)
        counts += np.bincount(lab, minlength=n_poly + 1)
        np.maximum.at(maxima, lab, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums[1:] / counts[1:]
    return mean, np.where(counts[1:] > 0, maxima[1:], np.nan)


def probability_to_polygons(
    prob_path: Path,
    *,
    threshold: float,
    min_area_m2: float = 0.0,
    scene_id: str = "",
    date: str | dt.date | None = None,
    strip: int = 1024,
) -> Any:
    """Polygons of the pixels at or above ``threshold`` in a probability raster.

    The raster is read in strips of ``strip`` rows; each strip is polygonized
    (``rasterio.features.shapes``, 4-connected) in pixel coordinates of the whole grid, so pieces
    of one polygon cut by strip seams share exact integer edges and are merged with a union.

    Args:
        prob_path: a one-band probability raster (NaN or nodata where unknown).
        threshold: pixels with probability ``>= threshold`` are solar.
        min_area_m2: polygons with a smaller equal-area size are dropped.
        scene_id: written into every row.
        date: acquisition date (a ``datetime.date`` or ISO ``YYYY-MM-DD`` text), written into
            every row as a date (``None`` when unknown; a Date field once written).
        strip: rows read at a time (bounds memory).

    Returns:
        A GeoDataFrame in the raster's CRS with columns :data:`POLYGON_COLUMNS` and geometry:
        ``id`` (1..n, top to bottom), ``area_m2`` (in a Lambert azimuthal equal-area CRS centred
        on the raster), ``mean_prob`` and ``max_prob`` over the polygon's pixels (found by
        rasterizing the polygons again, strip by strip), and the
        centroid in EPSG:4326. Empty (with these columns) when no pixel reaches the threshold.

    Raises:
        InputFileError: if ``prob_path`` is missing or not a raster.
        InputError: if ``threshold`` is not in (0, 1), ``strip`` < 1, or the raster has no CRS.
    """
    import geopandas as gpd
    import shapely

    check_threshold(threshold)
    day = _as_date(date)
    if strip < 1:
        raise InputError(f"strip {strip} is too small; use 1 or more rows")
    with open_raster(prob_path, what="probability raster") as ds:
        if ds.crs is None:
            raise InputError(f"{prob_path}: raster has no CRS; give the COG predict wrote")
        H, W = ds.height, ds.width
        finished: list[Any] = []  # pixel-space polygons that touch no strip seam
        seam: list[Any] = []  # pieces that may continue across a seam
        for row0 in range(0, H, strip):
            n = min(strip, H - row0)
            prob = ds.read(1, window=Window(0, row0, W, n), masked=True).filled(np.nan)
            solar = prob >= threshold  # NaN compares False
            if not solar.any():
                continue
            for poly in polygonize_mask(solar, Affine.translation(0, row0)):
                _, miny, _, maxy = poly.bounds
                top_seam = row0 > 0 and miny == row0
                bottom_seam = row0 + n < H and maxy == row0 + n
                (seam if top_seam or bottom_seam else finished).append(poly)
        if seam:
            finished.extend(shapely.get_parts(shapely.union_all(seam)).tolist())
        if not finished:
            log.info("%s: no pixel at or above %.2f; no polygons", prob_path, threshold)
            return _empty_polygons(ds.crs)

        pix = np.array(finished, dtype=object)
        b = shapely.bounds(pix)
        order = np.lexsort((b[:, 0], b[:, 1]))  # top to bottom, then left to right
        pix, b = pix[order], b[order].astype(np.int64)
        mean_prob, max_prob = _polygon_stats(ds, pix, b, strip=strip)
        a, b_, c, d, e, f = tuple(ds.transform)[:6]
        geoms = shapely.transform(  # pixel (col, row) → scene CRS, all vertices at once
            pix,
            lambda xy: np.column_stack(
                (a * xy[:, 0] + b_ * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f)
            ),
        )
        crs = ds.crs
        ea_crs = equal_area_crs(ds.bounds, ds.crs)

    gdf = gpd.GeoDataFrame(geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    ea = gdf.geometry.to_crs(ea_crs)
    area = ea.area.to_numpy()
    centroids = ea.centroid.to_crs("EPSG:4326")
    keep = area >= min_area_m2
    result = gpd.GeoDataFrame(
        {
            "id": np.arange(1, int(keep.sum()) + 1, dtype=np.int64),
            "scene_id": [scene_id] * int(keep.sum()),
            "date": [day] * int(keep.sum()),
            "area_m2": area[keep],
            "mean_prob": mean_prob[keep],
            "max_prob": max_prob[keep],
            "centroid_lon": centroids.x.to_numpy()[keep],
            "centroid_lat": centroids.y.to_numpy()[keep],
        },
        geometry=gdf.geometry.to_numpy()[keep],
        crs=crs,
    )
    if len(result) < len(gdf):
        log.info(
            "%s: dropped %d of %d polygons under %g m²",
            prob_path, len(gdf) - len(result), len(gdf), min_area_m2,
        )  # fmt: skip
    return result
