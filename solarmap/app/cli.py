"""The ``solarmap`` command line.

Every user mistake ends as one line on stderr and exit code 2 (see :func:`main`); the library
raises :class:`~solarmap.errors.SolarmapError` for those and the CLI never shows a traceback for
them.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from solarmap.app.logs import configure_logging
from solarmap.app.signals import Interrupted, signals_unwind
from solarmap.errors import InputError, SolarmapError
from solarmap.progress import set_progress

log = logging.getLogger("solarmap")


class _Commands(TyperGroup):
    """The commands, with ``explain`` built only when it is run or its help is asked for.

    Its options come from the attribution registry, whose import (every method, with torch,
    captum and scikit-image) takes seconds that ``predict``, ``--help`` and the others should
    not pay; until then a placeholder stands in the list (its short help is the command's).
    """

    _listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        callback = getattr(cmd, "callback", None)
        if cmd_name == "explain" and getattr(callback, "__wrapped__", None) is _explain_placeholder:
            if self._listing:
                return cmd
            from typer.main import get_command_from_info
            from typer.models import CommandInfo

            cmd = get_command_from_info(
                CommandInfo(name="explain", callback=_explain_command(), short_help=_EXPLAIN_HELP),
                pretty_exceptions_short=True,
                rich_markup_mode=None,
            )
            self.commands["explain"] = cmd
        return cmd

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="solarmap",
    cls=_Commands,
    help="Map solar farms in Sentinel-2 imagery and explain why the model believes it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's own help: wraps at any width and never cuts a default short, as rich's panels do
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    verbose: Annotated[
        int,
        typer.Option(
            "-v",
            "--verbose",
            count=True,
            help="A counter: -v debug log, -vv also the libraries' (GDAL, osmnx) debug log.",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Warnings only, no bars.")] = False,
) -> None:
    """Map solar farms in Sentinel-2 imagery and explain why the model believes it."""
    configure_logging(-1 if quiet else verbose)
    set_progress(not quiet)


#: The scene options prepare, predict and explain share (``SceneOptions`` in the reader).
#: ``--checkpoint`` of predict and explain: a trained folder, or none for the shipped model.
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        help="Checkpoint folder from `solarmap train` (default: the general model shipped "
        "with solarmap; see its MODEL_CARD.md)."
    ),
]
SceneScale = Annotated[
    float | None,
    typer.Option(
        "--scale",
        help="Reflectance of one raw value, for every band (e.g. 0.0001), instead of what the "
        "tags and the data say; the way to read 8-bit bands.",
    ),
]
AllowResolution = Annotated[
    bool,
    typer.Option(
        "--allow-resolution",
        help="Read a scene whose pixels are far from 10 m (the model's pixel size) as it is.",
    ),
]


def _scene_options(scale: float | None, allow_resolution: bool) -> Any:
    """The reader's ``SceneOptions`` of the shared scene options, checked before any work."""
    from data_prep.sentinel2 import SceneOptions

    return SceneOptions(scale=scale, allow_resolution=allow_resolution)


def _next(step: str) -> None:
    """The last line a command prints on stdout: what to open or run next."""
    typer.echo(f"next: {step}")


def _q(path: Path | str) -> str:
    """A path as it would be typed in a shell."""
    return shlex.quote(str(path))


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError as err:
        raise InputError(f"--split {text}: give three numbers like 0.7,0.15,0.15") from err
    if len(parts) != 3:
        raise InputError(f"--split {text}: give three numbers like 0.7,0.15,0.15")
    return parts[0], parts[1], parts[2]


#: ``RegionConfig`` fields that ``demo-data`` options set, by option.
_DEMO_DATA_OPTIONS = {
    "seed": "--seed",
    "size": "--size",
    "spurious": "--spurious",
    "spurious_width": "--spurious-width",
    "snow": "--snow",
    "unmapped_fraction": "--unmapped-fraction",
    "preset": "--preset",
    "footprints": "--footprints",
}


@app.command("demo-data", short_help="Generate a demo region: scene, SCL, OSM labels, truth.")
def demo_data(
    out: Annotated[Path, typer.Option("--out", help="Folder to create.")],
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same region.")] = 0,
    size: Annotated[int, typer.Option(help="Scene side in 10 m pixels.")] = 1024,
    spurious: Annotated[
        str, typer.Option(help="Plant a cue beside every labelled farm: none, pad or snow.")
    ] = "none",
    spurious_width: Annotated[
        float, typer.Option(help="Mean width of that cue's ring, metres (each 2/3 to 4/3 of it).")
    ] = 30.0,
    snow: Annotated[bool, typer.Option(help="Add snow patches to the landscape.")] = False,
    unmapped_fraction: Annotated[float, typer.Option(help="Share of farms left out of OSM.")] = 0.2,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Climate and landscape: deccan, central-europe, alpine, desert or rice-paddy "
            "(sets the place, date, land cover, spectra, plants, haze and look-alikes)."
        ),
    ] = None,
    footprints: Annotated[
        Path | None,
        typer.Option(help="Vector file of solar-farm polygons to draw the farms' outlines from."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Generate a demo region: an L2A-like scene, SCL, OSM labels and ground truth (and, with a
    preset, the non-solar look-alikes)."""
    from data_prep.synthetic import RegionConfig, RegionConfigError, generate_region
    from solarmap.geo import output_dir

    if spurious not in ("none", "pad", "snow"):
        raise InputError(f"--spurious {spurious!r}: choose none, pad or snow")
    try:
        cfg = RegionConfig(
            seed=seed,
            size=size,
            spurious=spurious,  # type: ignore[arg-type]
            spurious_width=spurious_width,
            snow=snow,
            unmapped_fraction=unmapped_fraction,
            preset=preset,  # type: ignore[arg-type]
            footprints=str(footprints) if footprints is not None else None,
        )
    except RegionConfigError as err:  # name this command's option, not the config field
        if err.field not in _DEMO_DATA_OPTIONS:
            raise
        raise InputError(f"{_DEMO_DATA_OPTIONS[err.field]} {err.value}: {err.fix}") from err
    with output_dir(out, overwrite=overwrite) as tmp:
        generate_region(tmp, cfg)
    typer.echo(f"demo region written to {out}")
    names = ["scene.tif", "scene_SCL.tif", "labels.osm", "truth.gpkg", "region.json"]
    if (out / "lookalikes.gpkg").exists():
        names.append("lookalikes.gpkg")
    for name in names:
        typer.echo(f"  {out / name}")
    _next(
        f"solarmap prepare --scene {_q(out / 'scene.tif')} --labels {_q(out / 'labels.osm')} "
        f"--out {_q(out.parent / 'prepared')}"
    )


@app.command(short_help="Label scenes with OSM solar polygons; cut chips.")
def prepare(
    scene: Annotated[
        list[Path],
        typer.Option(help="Scene: GeoTIFF, folder of band files or .SAFE (repeatable)."),
    ],
    labels: Annotated[
        str, typer.Option(help="Labels: .osm, GeoJSON, GeoPackage, or 'overpass' to query OSM.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder to create.")],
    scl: Annotated[
        list[Path] | None, typer.Option(help="SCL file per scene (repeatable, in order).")
    ] = None,
    chip_size: Annotated[int, typer.Option(help="Chip side in pixels.")] = 256,
    stride: Annotated[int | None, typer.Option(help="Chip stride (default: chip size).")] = None,
    block_size: Annotated[int, typer.Option(help="Spatial split block side in pixels.")] = 512,
    split: Annotated[str, typer.Option(help="Train,val,test shares.")] = "0.7,0.15,0.15",
    negative_ratio: Annotated[
        float, typer.Option(help="Negative chips kept per positive (train split).")
    ] = 1.0,
    boundary: Annotated[int, typer.Option(help="Ignore ring around polygons, pixels.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed for split and sampling.")] = 0,
    scale: SceneScale = None,
    allow_resolution: AllowResolution = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Join scenes with solar labels into labelled scenes, a chip index and band statistics."""
    from data_prep.prepare import PrepareConfig
    from data_prep.prepare import prepare as run_prepare

    cfg = PrepareConfig(
        chip_size=chip_size,
        stride=stride,
        block_size=block_size,
        split=_fractions(split),
        negative_ratio=negative_ratio,
        boundary=boundary,
        seed=seed,
        scene_options=_scene_options(scale, allow_resolution),
    )
    result = run_prepare(
        scene, labels, out, config=cfg, scl=list(scl) if scl else None, overwrite=overwrite
    )
    typer.echo(f"prepared {len(result.scenes)} scene(s), {result.chips} chips -> {result.out}")
    typer.echo("  selected: " + ", ".join(f"{k} {v}" for k, v in result.selected.items()))
    typer.echo(f"  chip index: {result.index}")
    typer.echo(f"  statistics: {result.stats}")
    _next(f"solarmap train --chips {_q(result.out)} --out {_q(result.out.parent / 'checkpoint')}")


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError as err:
        raise InputError(f"{option} {text!r}: give comma-separated integers") from err


@app.command(short_help="Train the U-Net (or a spectral baseline) on prepared chips.")
def train(
    chips: Annotated[
        list[Path],
        typer.Option(help="Folder written by `solarmap prepare` (repeatable: train on several)."),
    ],
    out: Annotated[
        Path,
        typer.Option(help="Checkpoint folder to create (appears only once training finished)."),
    ],
    val_chips: Annotated[
        list[Path] | None,
        typer.Option(
            help="A held-out prepared folder (repeatable) for early stopping and the "
            "threshold, instead of the --chips folders' validation split."
        ),
    ] = None,
    model_kind: Annotated[
        str,
        typer.Option(
            "--model",
            help="unet; spectral (logistic regression on --indices, default a set of six); "
            "index (the one normalized difference that ranks the training pixels best).",
        ),
    ] = "unet",
    indices: Annotated[
        str | None,
        typer.Option(
            help="Spectral indices as extra input channels (or the spectral model's), comma "
            "separated: nd:A:B (normalized difference), ratio:A:B (log ratio), e.g. "
            "nd:B11:B08,ratio:B02:B03."
        ),
    ] = None,
    norm: Annotated[
        str,
        typer.Option(
            help="How the bands reach the U-Net: dataset (the training statistics), chip "
            "(standardised per window) or none (indices only)."
        ),
    ] = "dataset",
    prior: Annotated[
        bool,
        typer.Option(
            help="Put the U-Net on a spectral prior: the spectral baseline (six indices) is "
            "fitted first and frozen, and the U-Net learns a correction to its logit."
        ),
    ] = False,
    augment: Annotated[
        bool, typer.Option(help="Spectral and geometric augmentation of training chips.")
    ] = True,
    gain: Annotated[float, typer.Option(help="Per-band gain jitter (std).")] = 0.03,
    offset: Annotated[float, typer.Option(help="Per-band offset jitter (std, reflectance).")] = 0.0,
    brightness: Annotated[float, typer.Option(help="Whole-chip brightness jitter (std).")] = 0.0,
    haze: Annotated[
        float, typer.Option(help="Most haze path reflectance added in B02 (falls with λ).")
    ] = 0.0,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 40,
    batch_size: Annotated[int, typer.Option(help="Chips per step.")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 3e-3,
    patience: Annotated[int, typer.Option(help="Early stop after this many epochs.")] = 10,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this many minutes.")] = None,
    encoder: Annotated[str, typer.Option(help="smp encoder name.")] = "tu-mobilenetv3_small_100",
    decoder_channels: Annotated[
        str, typer.Option(help="Decoder widths, one per level.")
    ] = "64,32,16,16,8",
    encoder_weights: Annotated[
        str | None, typer.Option(help="None, 'imagenet' (download) or a local .safetensors.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the last run into --out: an interrupted or killed one, whose state "
            "after each epoch waits beside --out in the hidden folder .NAME.resume, or a "
            "finished checkpoint, trained further from NAME/last (e.g. with more --epochs)."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace an existing checkpoint and start over (drops .NAME.resume)."),
    ] = False,
) -> None:
    """Train the solar U-Net on prepared chips and write a checkpoint.

    The checkpoint folder is built under a temporary name and appears only when training has
    finished; an interrupted run leaves its state beside it for --resume.
    """
    from solarmap.indices import SPECTRAL_INDICES, check_indices
    from solarmap.model import ModelConfig, check_encoder
    from train.augment import Augment
    from train.fit import TrainConfig
    from train.fit import train as run_train

    if model_kind not in ("unet", "spectral", "index"):
        raise InputError(f"--model {model_kind!r}: choose unet, spectral or index")
    if norm not in ("dataset", "chip", "none"):
        raise InputError(f"--norm {norm!r}: choose dataset, chip or none")
    try:
        names = check_indices([n.strip() for n in indices.split(",")]) if indices else ()
    except InputError as err:
        raise InputError(f"--indices {indices}: {err}") from err
    if model_kind == "index" and names:
        raise InputError("--model index searches its one index; leave out --indices")
    if model_kind == "unet":
        check_encoder(encoder, what="--encoder")
    elif prior:
        raise InputError(f"--prior goes under a U-Net; --model {model_kind} has no U-Net")
    dec = _ints(decoder_channels, "--decoder-channels")
    if model_kind == "index":
        names = ("nd:B02:B03",)  # a stand-in: training searches the best one
    elif model_kind == "spectral" and not names:
        names = SPECTRAL_INDICES
    try:
        model = ModelConfig(
            encoder=encoder,
            encoder_depth=len(dec),
            decoder_channels=dec,
            encoder_weights=encoder_weights,
            kind="unet" if model_kind == "unet" else "spectral",
            norm=norm,  # type: ignore[arg-type]
            indices=names,
            prior=SPECTRAL_INDICES if prior else (),
        )
    except InputError as err:
        if "decoder" in str(err) or "encoder depth" in str(err):
            raise InputError(f"--decoder-channels {decoder_channels}: {err}") from err
        raise
    aug = Augment(gain=gain, offset=offset, brightness=brightness, haze=haze) if augment else None
    cfg = TrainConfig(
        model=model,
        augment=aug,
        search_index=model_kind == "index",
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        max_minutes=max_minutes,
        seed=seed,
    )
    res = run_train(
        chips, out, config=cfg, val_chips=val_chips or (), resume=resume, overwrite=overwrite
    )
    typer.echo(f"checkpoint: {res.checkpoint}")
    if model.kind == "spectral":
        typer.echo(f"  spectral model, threshold {res.threshold:.2f}")
    else:
        typer.echo(
            f"  best epoch {res.best_epoch} of {res.epochs_run}, threshold {res.threshold:.2f}"
        )
    typer.echo(f"  val IoU {res.val.get('iou', float('nan')):.3f}")
    if res.test:
        typer.echo(f"  test IoU {res.test['iou']:.3f}, F1 {res.test['f1']:.3f}")
    typer.echo(f"  {res.seconds:.0f} s, {res.images_per_s:.1f} images/s")
    _next(
        f"solarmap predict --scene {_q(_a_scene_of(chips[0]))} --checkpoint {_q(res.checkpoint)} "
        f"--out {_q(res.checkpoint.parent / 'prediction')}"
    )


def _a_scene_of(chips: Path) -> str:
    """The first scene a prepared folder was made from (its config.json), else a stand-in."""
    try:
        scene = json.loads((chips / "config.json").read_text())["scenes"][0]
        return os.path.normpath(chips / scene)  # a relative record is relative to the folder
    except (OSError, ValueError, KeyError, IndexError, TypeError, RecursionError):
        return "SCENE.tif"


def _checkpoint_or_shipped(checkpoint: Path | None) -> Path:
    """``checkpoint``, or the shipped general model (said on stderr) when none is given."""
    if checkpoint is not None:
        return checkpoint
    from solarmap.model import shipped_checkpoint

    path = shipped_checkpoint()
    log.info("no --checkpoint: using the shipped general model (%s)", path / "MODEL_CARD.md")
    return path


@app.command(short_help="Probability COG and solar-farm polygons of a scene.")
def predict(
    scene: Annotated[Path, typer.Option(help="Scene: GeoTIFF, band folder or .SAFE.")],
    out: Annotated[Path, typer.Option(help="Output folder to create.")],
    checkpoint: CheckpointOption = None,
    scl: Annotated[Path | None, typer.Option(help="SCL file for the scene.")] = None,
    window: Annotated[int, typer.Option(help="Window side in pixels.")] = 512,
    overlap: Annotated[
        int | None,
        typer.Option(help="Overlap between windows, pixels (default: 64, at most window/4)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 4,
    threshold: Annotated[
        float | None, typer.Option(help="Probability threshold (default: checkpoint's).")
    ] = None,
    min_area: Annotated[float, typer.Option(help="Drop polygons smaller than this, m².")] = 0.0,
    ood_check: Annotated[
        str,
        typer.Option(
            help="warn: compare the scene's band statistics with the checkpoint's training "
            "statistics and warn when it lies far outside them; off: skip that.",
        ),
    ] = "warn",
    engine: Annotated[
        str,
        typer.Option(
            help="What runs the model: auto (ONNX Runtime on the CPU when the model exports, "
            "else PyTorch), onnx or torch."
        ),
    ] = "auto",
    scale: SceneScale = None,
    allow_resolution: AllowResolution = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Predict a probability COG and solar-farm polygons for a scene."""
    from data_prep.sentinel2 import open_scene
    from solarmap.geo import check_output_dir
    from solarmap.model import load_checkpoint
    from solarmap.predict import PredictConfig, predict_scene

    scene_options = _scene_options(scale, allow_resolution)
    cfg = PredictConfig(  # options first: they are checked before anything is loaded
        window=window,
        overlap=overlap if overlap is not None else min(64, max(window, 0) // 4),
        batch_size=batch_size,
        threshold=threshold,
        min_area_m2=min_area,
        ood_check=ood_check,  # type: ignore[arg-type]  # checked by PredictConfig
        engine=engine,  # type: ignore[arg-type]  # checked by PredictConfig
    )
    checkpoint = _checkpoint_or_shipped(checkpoint)
    check_output_dir(out, overwrite=overwrite, inputs=[scene, checkpoint])
    # the model is built (and its weights checked) only if no cached ONNX graph of these
    # exact weights runs it: then predict needs no torch (solarmap.inference)
    ckpt = load_checkpoint(checkpoint, defer_model=True)
    with open_scene(scene, scl=scl, options=scene_options) as src:
        res = predict_scene(src, ckpt, out, config=cfg, overwrite=overwrite)
    typer.echo(f"probability: {res.probability}")
    typer.echo(f"polygons:    {res.polygons} ({res.n_polygons} solar farms)")
    if res.n_polygons:
        scl_arg = f" --scl {_q(scl)}" if scl is not None else ""
        _next(
            f"solarmap explain --scene {_q(scene)}{scl_arg} --checkpoint {_q(checkpoint)} "
            f"--target {_q(res.polygons)} --top {min(3, res.n_polygons)} "
            f"--out {_q(out.parent / 'explanation')}"
        )
    else:
        _next(f"open {_q(res.probability)} in QGIS (no pixel reached the threshold)")


@app.command(short_help="Pixel and object metrics against ground truth.")
def evaluate(
    prediction: Annotated[Path, typer.Option(help="Folder written by `solarmap predict`.")],
    truth: Annotated[
        Path, typer.Option(help="Truth: polygons (GPKG/GeoJSON) or a 0/1/255 mask GeoTIFF.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Where to write metrics (default: in it).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Threshold (default: the prediction's).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace metrics written before.")] = False,
) -> None:
    """Pixel and object metrics of a prediction against ground truth, with a PR curve."""
    from solarmap.model import check_threshold
    from solarmap.predict import POLYGONS_FILE, PROBABILITY_FILE, recorded_threshold
    from train.evaluate import evaluate_prediction

    if threshold is not None:
        threshold = check_threshold(threshold, what="--threshold")
    metrics = evaluate_prediction(
        prediction / PROBABILITY_FILE,
        truth,
        polygons=prediction / POLYGONS_FILE,
        threshold=threshold if threshold is not None else recorded_threshold(prediction),
        out=out or prediction,
        overwrite=overwrite,
    )
    _echo_metrics(metrics)
    _next(f"open {_q((out or prediction) / 'pr_curve.png')} and {_q(prediction / POLYGONS_FILE)}")


def _echo_metrics(metrics: dict) -> None:
    px = metrics["pixel"]
    typer.echo(
        f"pixel: IoU {px['iou']:.3f}  F1 {px['f1']:.3f}  "
        f"precision {px['precision']:.3f}  recall {px['recall']:.3f}"
    )
    roc = px.get("roc_auc")
    best = (metrics.get("best_threshold") or {}).get("iou")
    at_best = f"  best IoU {best['iou']:.3f} at {best['threshold']:.3f}" if best else ""
    typer.echo(
        f"pixel: ROC-AUC {'n/a' if roc is None else f'{roc:.3f}'}  "
        f"PR-AUC {px['pr_auc']:.3f}{at_best}"
    )
    obj = metrics.get("object")
    if obj:
        typer.echo(
            f"objects: recall {obj['recall']:.3f} ({obj['n_found']}/{obj['n_truth']})  "
            f"precision {obj['precision']:.3f} ({obj['n_correct']}/{obj['n_pred']})"
        )


@app.command(short_help="The whole spine on the built-in demo region.")
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo-out"),
    size: Annotated[int, typer.Option(help="Training region side, pixels.")] = 2048,
    minutes: Annotated[float, typer.Option(help="Training time budget, minutes.")] = 4.5,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Run the whole spine on the built-in demo region: data, training, prediction, metrics."""
    from solarmap.app.demo import run_demo

    summary = run_demo(out, size=size, minutes=minutes, overwrite=overwrite)
    typer.echo(summary.text.rstrip("\n"))
    _next(f"open {_q(out / 'prediction' / 'polygons.gpkg')} in QGIS")


def _explain(
    scene: Annotated[Path, typer.Option(help="Scene: GeoTIFF, band folder or .SAFE.")],
    target: Annotated[
        str,
        typer.Option(
            help="Predictions GPKG (every object), a polygon file, or x,y in the scene CRS."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output folder to create.")],
    checkpoint: CheckpointOption = None,
    methods: Annotated[
        str, typer.Option(help="Comma-separated methods, families or all (see above).")
    ] = "",
    reductions: Annotated[
        str, typer.Option(help="10-band reductions: max_abs, mean_abs, l2, sum.")
    ] = "max_abs,sum",
    baseline: Annotated[
        str,
        typer.Option(
            help="Perturbation baseline: median (the window's, per band), zero "
            "(reflectance), blur or context (the object replaced by the land cover around it)."
        ),
    ] = "median",
    top: Annotated[int | None, typer.Option(help="Explain only the N largest objects.")] = None,
    margin: Annotated[int, typer.Option(help="Context around the target, pixels.")] = 32,
    batch_size: Annotated[int, typer.Option(help="Perturbations per forward pass.")] = 8,
    scl: Annotated[Path | None, typer.Option(help="SCL file for the scene.")] = None,
    scale: SceneScale = None,
    allow_resolution: AllowResolution = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
    **method_options: Any,
) -> None:
    from attribute.explain import ExplainConfig, explain_scene
    from attribute.targets import is_point_target, parse_targets
    from data_prep.sentinel2 import open_scene
    from solarmap.geo import check_output_dir, require_file
    from solarmap.model import load_checkpoint

    scene_options = _scene_options(scale, allow_resolution)
    cfg = ExplainConfig(
        methods=methods,
        reductions=tuple(r.strip() for r in reductions.split(",") if r.strip()),
        baseline=baseline,  # type: ignore[arg-type]  # checked by ExplainConfig
        top=top,
        margin_px=margin,
        batch_size=batch_size,
        options=method_options,
    )
    checkpoint = _checkpoint_or_shipped(checkpoint)
    check_output_dir(out, overwrite=overwrite, inputs=[scene, checkpoint])
    if not is_point_target(target):
        require_file(target, "target file")
    ckpt = load_checkpoint(checkpoint)
    with open_scene(scene, scl=scl, options=scene_options) as src:
        targets = parse_targets(target, scene_crs=src.info.crs, top=top)
        res = explain_scene(src, ckpt, targets, out, config=cfg, overwrite=overwrite)
    typer.echo(f"explained {len(res.targets)} target(s) -> {res.out}")
    for t in res.targets[:10]:
        typer.echo(f"  {res.out / t['folder']}: {', '.join(t['maps'])}")
    first = res.targets[0]["folder"] if res.targets else None
    first = f" and {_q(res.out / first / 'attribution.tif')}" if first else ""
    _next(f"open {_q(res.out / 'targets.gpkg')}{first} in QGIS")


def _explain_command() -> Callable[..., None]:
    """``solarmap explain``, with one flag per method option of the registry.

    Typer reads a command's options from its signature, so the command is :func:`_explain`
    with a signature that adds every :data:`attribute.registry.OPTIONS` entry: a method's
    options reach the command line from its own declaration.
    """
    from attribute.registry import DEFAULT_METHODS, OPTIONS, describe_methods

    fixed = [
        p.replace(default=",".join(DEFAULT_METHODS)) if p.name == "methods" else p
        for p in inspect.signature(_explain, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    added = [
        inspect.Parameter(
            opt.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=opt.default,
            annotation=Annotated[
                opt.type if opt.default is not None else opt.type | None,
                typer.Option(opt.flag, help=opt.help, rich_help_panel="Method options"),
            ],
        )
        for opt in OPTIONS.values()
    ]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in fixed] + added

    def explain(**kwargs: Any) -> None:
        options = {name: kwargs.pop(name) for name in OPTIONS}
        _explain(**kwargs, **options)

    explain.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    explain.__annotations__ = {p.name: p.annotation for p in params}
    explain.__doc__ = (
        "Explain why the model calls pixels solar: georeferenced attribution maps per target."
        "\n\n--methods takes method names, the families gradient, perturbation and superpixel,"
        " or all:\n\n\b\n" + describe_methods()
    )
    return explain


_EXPLAIN_HELP = "Attribution maps: why the model calls a target solar."


@app.command("explain", short_help=_EXPLAIN_HELP, add_help_option=False)
def _explain_placeholder() -> None:
    """Stands in for ``explain`` until it is asked for (see :class:`_Commands`)."""


@app.command(short_help="Audit detections: do they rest on the panels or on what is beside them?")
def audit(
    scene: Annotated[Path, typer.Option(help="Scene: GeoTIFF, band folder or .SAFE.")],
    out: Annotated[Path, typer.Option(help="Output folder to create.")],
    explanation: Annotated[
        Path | None, typer.Option(help="An explain run's folder (its objects are audited).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Or: predictions GPKG / polygon file to explain (default methods) first."
        ),
    ] = None,
    checkpoint: CheckpointOption = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="Two checkpoints to explain, audit and compare on --target."),
    ] = None,
    ids: Annotated[
        str | None, typer.Option(help="Comma-separated object ids of the run (default: all).")
    ] = None,
    top: Annotated[int | None, typer.Option(help="With --target: the N largest objects.")] = 10,
    ring_m: Annotated[float, typer.Option(help="Boundary ring width, metres.")] = 30.0,
    map_name: Annotated[
        str | None,
        typer.Option("--map", help="The map the zone shares use (default: IG, occlusion...)."),
    ] = None,
    context_reliance: Annotated[
        float,
        typer.Option(
            help="Flag when the bare object keeps < 1 - this of its score, or its ring and "
            "context alone raise >= this of it."
        ),
    ] = 0.5,
    implausible_bands: Annotated[
        float, typer.Option(help="Flag when bands that do not separate panels carry > this.")
    ] = 0.5,
    unfaithful_map: Annotated[
        float,
        typer.Option(help="Flag when deleting the map's top pixels drops < this x random."),
    ] = 1.0,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="The probability the detections were made at: an object its own window scores "
            "below it is flagged (default: the prediction's, when --target is the polygons.gpkg "
            "of `solarmap predict`, else the checkpoint's)."
        ),
    ] = None,
    faithfulness: Annotated[
        bool,
        typer.Option(
            help="Also deletion and insertion curves of every method's map against random "
            "orders (faithfulness.csv and a PNG per map; about 70 forward passes per map and "
            "object)."
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Audit explained detections for spurious cues: zone shares of the attribution mass
    (object, boundary ring, context), band importance against the bands that separate panels,
    counterfactuals with the model (the object alone; the context alone) and a deletion check
    of the map, as flags and a verdict on each detection polygon (audit.gpkg) and a model-level
    summary (audit.json)."""
    from attribute.audit import AuditConfig, audit_run, compare_checkpoints, explain_and_audit
    from attribute.targets import parse_targets
    from data_prep.sentinel2 import open_scene
    from solarmap.geo import check_output_dir, require_file
    from solarmap.model import load_checkpoint
    from solarmap.predict import REPORT_FILE, recorded_threshold

    if threshold is None and target is not None and (Path(target).parent / REPORT_FILE).is_file():
        threshold = recorded_threshold(Path(target).parent)
    cfg = AuditConfig(
        ring_m=ring_m,
        map=map_name,
        context_reliance=context_reliance,
        implausible_bands=implausible_bands,
        unfaithful_map=unfaithful_map,
        faithfulness=faithfulness,
        threshold=threshold,
    )
    if (explanation is None) == (target is None):
        raise InputError("give --explanation (an explain run) or --target (to explain first)")
    if compare is not None and (target is None or checkpoint is not None):
        raise InputError(
            "--compare explains --target with each of its two checkpoints; give "
            "--target and leave out --checkpoint and --explanation"
        )
    picked = _ints(ids, "--ids") if ids else None
    if picked is not None and explanation is None:
        raise InputError("--ids picks objects of an explain run; give --explanation")
    if target is not None:
        require_file(target, "target file")
    with open_scene(scene) as src:
        if compare is not None:
            check_output_dir(out, overwrite=overwrite, inputs=[scene, *compare])
            cks = {_compare_name(p, i): load_checkpoint(p) for i, p in enumerate(compare)}
            targets = parse_targets(target, scene_crs=src.info.crs, top=top)  # type: ignore[arg-type]
            results = compare_checkpoints(src, cks, targets, out, config=cfg, overwrite=overwrite)
            for name, res in results.items():
                s = res.summary
                typer.echo(
                    f"{name}: {s['objects']} objects, flagged {s.get('flagged', 0):.0%}, "
                    f"reliance {s.get('reliance', 0):.2f}"
                )
            _next(f"open {_q(out / 'compare.csv')}")
            return
        path = _checkpoint_or_shipped(checkpoint)
        check_output_dir(out, overwrite=overwrite, inputs=[scene, path])
        ck = load_checkpoint(path)
        if explanation is not None:
            res = audit_run(src, ck, explanation, out, config=cfg, ids=picked, overwrite=overwrite)
        else:
            targets = parse_targets(target, scene_crs=src.info.crs, top=top)  # type: ignore[arg-type]
            res = explain_and_audit(src, ck, targets, out, config=cfg, overwrite=overwrite)
    s = res.summary
    typer.echo(f"audited {s['objects']} object(s) -> {res.out}; flagged {s.get('flagged', 0):.0%}")
    for a in res.objects[:10]:
        typer.echo(f"  object {a.id}: {a.verdict}")
    _next(f"open {_q(res.out / 'audit.gpkg')} in QGIS")


@app.command(short_help="Sanity checks of the maps: do they change when the model is randomized?")
def sanity(
    scene: Annotated[Path, typer.Option(help="Scene: GeoTIFF, band folder or .SAFE.")],
    target: Annotated[str, typer.Option(help="Predictions GPKG or polygon file.")],
    out: Annotated[Path, typer.Option(help="Output folder to create.")],
    checkpoint: CheckpointOption = None,
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated methods to check (default: saliency, input_x_gradient, "
            "integrated_gradients, gradcam)."
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Check on the N largest objects.")] = 2,
    noise_samples: Annotated[int, typer.Option(help="sMPRT: noisy copies per map.")] = 4,
    max_spearman: Annotated[
        float, typer.Option(help="Pass below this |Spearman| to the trained map, fully random.")
    ] = 0.3,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Cascading model-parameter randomization (MPRT, with its smooth and efficient variants):
    the layers are re-initialised from the segmentation head back into the encoder and each
    method's map is compared with the trained model's after every step; an edge detector (a
    map with no information about the model) runs as a control that must fail. Writes
    sanity.csv, sanity.json and a curve PNG per method."""
    from attribute.sanity import DEFAULT_SANITY_METHODS, SanityConfig, sanity_run
    from attribute.targets import parse_targets
    from data_prep.sentinel2 import open_scene
    from solarmap.geo import check_output_dir, require_file
    from solarmap.model import load_checkpoint

    cfg = SanityConfig(noise_samples=noise_samples, max_spearman=max_spearman)
    names = (
        DEFAULT_SANITY_METHODS
        if methods is None
        else tuple(m.strip() for m in methods.split(",") if m.strip())
    )
    if not names:
        raise InputError("--methods: give at least one method")
    if top < 1:
        raise InputError(f"--top {top}: give at least 1")
    require_file(target, "target file")
    path = _checkpoint_or_shipped(checkpoint)
    check_output_dir(out, overwrite=overwrite, inputs=[scene, path])
    ck = load_checkpoint(path)
    with open_scene(scene) as src:
        targets = parse_targets(target, scene_crs=src.info.crs, top=top)
        targets = sorted(targets, key=lambda t: -t.geom.area)[:top]  # polygon files too
        results = sanity_run(src, ck, targets, out, methods=names, config=cfg, overwrite=overwrite)
    for r in results:
        row = r.row()
        typer.echo(
            f"{r.method}: {'pass' if r.passed else 'FAIL'}  |spearman| fully random "
            f"{row['spearman_abs_full']:.2f} (random vs random "
            f"{row['random_band_spearman_abs']:.2f}), eMPRT {row['emprt_ratio']:.2f}"
        )
    _next(f"open {_q(out / 'sanity.csv')}")


@app.command(short_help="Name what the network's features respond to (contrastive concepts).")
def concepts(
    scene: Annotated[
        list[Path], typer.Option(help="A probe scene (repeatable): GeoTIFF, band folder or .SAFE.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder to create.")],
    checkpoint: CheckpointOption = None,
    layer: Annotated[
        str | None,
        typer.Option(
            help="The layer whose channels are named (default: the last decoder block but one)."
        ),
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated feature indices (default: all).")
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--concepts",
            help="Concept vocabulary: landcover (a generated region's land cover), osm "
            "(OpenStreetMap tags from Overpass, cached) or an OSM XML / vector file.",
        ),
    ] = "landcover",
    tile_px: Annotated[int, typer.Option(help="Probe tile side, pixels.")] = 64,
    top_k: Annotated[int, typer.Option(help="Top-activating tiles per feature.")] = 8,
    region_threshold: Annotated[
        float, typer.Option(help="Activating region: Grad-CAM >= this share of its maximum.")
    ] = 0.5,
    contrast: Annotated[
        float,
        typer.Option(help="Drop a concept whose counterfactual score reaches this share of it."),
    ] = 0.5,
    min_effect: Annotated[
        float,
        typer.Option(
            help="Keep a concept only if filling its pixels drops the feature by this share "
            "(0: no such check)."
        ),
    ] = 0.1,
    target: Annotated[
        str | None,
        typer.Option(
            help="Detections to explain by their features (predictions GPKG or polygons)."
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="With --target: the N largest detections.")] = 10,
    sae: Annotated[
        bool,
        typer.Option(
            help="Also train a sparse autoencoder on the layer, name its features and probe "
            "them against the channels (sae/)."
        ),
    ] = False,
    sae_expansion: Annotated[int, typer.Option(help="SAE features per channel.")] = 4,
    sae_k: Annotated[
        int, typer.Option(help="SAE: active features per position (top-k); 0: an L1 penalty.")
    ] = 0,
    sae_l1: Annotated[float, typer.Option(help="SAE: weight of the L1 penalty (with k 0).")] = 0.1,
    sae_steps: Annotated[int, typer.Option(help="SAE: optimiser steps.")] = 2000,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Name the features of a layer by land-cover concepts: the concepts of the regions that
    activate each feature most (Grad-CAM on the feature), less those just as present where
    tiles alike in every other feature do not activate it. Writes features.csv (a name per
    feature), concept_scores.csv (every concept's score and counterfactual score), regions.gpkg and
    a thumbnail per feature; with --target, each detection's strongest features and names;
    with --sae, a sparse autoencoder on the layer, its features named alike, and how well its
    features and the channels detect each concept (sae/probes.csv)."""
    from contextlib import ExitStack

    from attribute.concept_run import concepts_run
    from attribute.concepts import ConceptConfig
    from attribute.sae import SaeConfig
    from attribute.targets import parse_targets
    from data_prep.sentinel2 import open_scene
    from solarmap.geo import check_output_dir, require_file
    from solarmap.model import load_checkpoint

    cfg = ConceptConfig(
        layer=layer,
        features=_ints(features, "--features") if features else (),
        tile_px=tile_px,
        top_k=top_k,
        region_threshold=region_threshold,
        contrast=contrast,
        min_effect=min_effect,
    )
    sae_cfg = (
        SaeConfig(expansion=sae_expansion, k=sae_k, l1=sae_l1, steps=sae_steps) if sae else None
    )
    if top < 1:
        raise InputError(f"--top {top}: give at least 1")
    if target is not None:
        require_file(target, "target file")
    path = _checkpoint_or_shipped(checkpoint)
    check_output_dir(out, overwrite=overwrite, inputs=[*scene, path])
    ck = load_checkpoint(path)
    with ExitStack() as stack:
        scenes = [stack.enter_context(open_scene(p)) for p in scene]
        targets = (
            parse_targets(target, scene_crs=scenes[0].info.crs, top=top)[:top] if target else []
        )
        res = concepts_run(scenes, ck, out, config=cfg, concepts=source, targets=targets,
                           sae=sae_cfg, overwrite=overwrite)  # fmt: skip
    named = [f for f in res.features if f.names]
    typer.echo(f"named {len(named)} of {len(res.features)} features -> {res.out}")
    for f in named[:10]:
        typer.echo(f"  feature {f.label}: {'; '.join(f.names)}")
    if res.sae is not None:
        m, p = res.sae.result, res.sae.probes
        typer.echo(
            f"sparse autoencoder: {m.sae.n_features} features, FVU {m.fvu:.3f}, L0 {m.l0:.1f}; "
            f"features with a concept ROC-AUC >= {p['good_auc']}: {p['sae_features_at_good']} "
            f"(channels: {p['channels_at_good']} of {p['channels']})"
        )
    for d in res.detections[:5]:
        parts = ", ".join(f"{f['feature']} ({'; '.join(f['names']) or 'unnamed'})"
                          for f in d["features"][:3])  # fmt: skip
        typer.echo(f"  detection {d['id']}: {parts}")
    _next(f"open {_q(res.out / 'features.csv')}")


@app.command(short_help="One self-contained HTML page of runs, for people without Python.")
def report(
    run: Annotated[
        list[Path],
        typer.Option(
            help="A folder demo, predict, explain, audit or sanity wrote (its subfolders are "
            "searched too); repeat to put several runs on one page."
        ),
    ],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")],
    scene: Annotated[
        Path | None,
        typer.Option(help="The scene, when it is no longer where the prediction recorded it."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="OSM labels (.osm, GPKG, GeoJSON) whose names the detections table shows "
            "(default for a demo: its unseen region's labels.osm)."
        ),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Write one HTML file that works offline: the false-colour quicklook, probability map and
    detections, the metrics and PR curve, each audited object's attribution panels, zone
    shares, flags and verdict, the sanity and faithfulness tables and curves, and the
    configuration and checkpoint hash of every run."""
    from solarmap.app.report import ReportConfig, write_report

    cfg = ReportConfig(scene=scene, labels=labels, title=title)
    res = write_report(run, out, config=cfg, overwrite=overwrite)
    typer.echo(f"report: {res.path} ({len(res.runs)} run(s): {', '.join(res.sections)})")
    _next(f"open {_q(res.path)} in a browser")


@app.command(short_help="Every solar farm in a region, per period: STAC imagery, tiles on Dask.")
def survey(
    region: Annotated[
        str,
        typer.Option(
            help="The area: west,south,east,north in degrees, a polygon file (GeoJSON, "
            "GeoPackage...) or a place name (looked up online)."
        ),
    ],
    dates: Annotated[
        list[str],
        typer.Option(
            "--dates",
            help="A period to composite (repeatable): 2022, 2022-Q3, 2022-07 or "
            "2022-01-15/2022-04-30.",
        ),
    ],
    catalog: Annotated[
        str,
        typer.Option(help="STAC API URL, or a local static catalog (catalog.json or its folder)."),
    ],
    out: Annotated[Path, typer.Option(help="Survey folder; rerun into it to resume.")],
    checkpoint: CheckpointOption = None,
    collection: Annotated[str, typer.Option(help="The L2A collection.")] = "sentinel-2-l2a",
    max_cloud: Annotated[float, typer.Option(help="Skip items cloudier than this, %.")] = 80.0,
    tile_px: Annotated[int, typer.Option(help="Tile side in 10 m pixels.")] = 1024,
    halo: Annotated[int, typer.Option(help="Context pixels around each tile.")] = 32,
    workers: Annotated[int, typer.Option(help="Worker processes of the local cluster.")] = 1,
    threads: Annotated[
        int, typer.Option(help="Model threads per worker (0: the cores shared among workers).")
    ] = 0,
    scheduler: Annotated[
        str | None, typer.Option(help="An existing Dask scheduler, tcp://HOST:PORT.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a server.")] = 20.0,
    retries: Annotated[int, typer.Option(help="Times a failed request is retried.")] = 2,
    sign: Annotated[
        str | None,
        typer.Option(help="module:function that rewrites each asset URL (URL signing)."),
    ] = None,
    search_max_age: Annotated[
        float,
        typer.Option(help="Hours a cached STAC API search stays good (0: always search)."),
    ] = 24.0,
    units: Annotated[
        Path | None, typer.Option(help="Admin units (polygons) to count farms by.")
    ] = None,
    units_field: Annotated[
        str | None, typer.Option(help="The units' name column (default: the first text one).")
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Solar plants to compare with: overpass (OpenStreetMap, online) or a label "
            "file (.osm, GeoJSON, GeoPackage)."
        ),
    ] = None,
    min_area: Annotated[float, typer.Option(help="Drop farms smaller than this, m².")] = 0.0,
    engine: Annotated[str, typer.Option(help="What runs the model: auto, onnx or torch.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing survey in --out.")] = False,
) -> None:
    """Survey a region: search Sentinel-2 L2A in a STAC catalog, composite each tile's clear
    observations per period, map solar farms tile by tile on Dask, and merge the tiles into
    probability mosaics, one GeoPackage of farms, a summary and a STAC catalog. Rerunning
    the same command resumes: finished tiles are not computed again, failed ones are."""
    from solarmap.app.survey import SurveyConfig
    from solarmap.app.survey import survey as run_survey
    from solarmap.inference import check_engine

    check_engine(engine)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cfg = SurveyConfig(
        region=region,
        dates=tuple(dates),
        catalog=catalog,
        checkpoint=str(checkpoint) if checkpoint else None,
        collection=collection,
        max_cloud=max_cloud,
        timeout_s=timeout,
        retries=retries,
        sign=sign or "",
        search_max_age_h=search_max_age,
        tile_px=tile_px,
        halo_px=halo,
        workers=workers,
        threads=threads or max(1, (cores or 1) // max(1, workers)),
        scheduler=scheduler,
        min_area_m2=min_area,
        engine=engine,
        units=str(units) if units else None,
        units_field=units_field,
        labels=labels,
    )
    cfg.source()  # the catalog options, checked before anything runs
    res = run_survey(cfg, out, overwrite=overwrite)
    states = ", ".join(f"{n} {s}" for s, n in sorted(res.states.items()))
    typer.echo(f"tiles:       {states}")
    typer.echo(f"solar farms: {out / 'solar_farms.gpkg'} ({res.farms})")
    typer.echo(f"summary:     {out / 'summary.json'}")
    if res.failed:
        first = next(iter(res.failed.items()))
        print(
            f"solarmap: {len(res.failed)} tile(s) failed (first: {first[0]}: {first[1]}); rerun "
            "the same command to retry them",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    _next(f"open {_q(out / 'solar_farms.gpkg')} and {_q(out / 'mosaic')} in QGIS")


def _compare_name(path: Path, i: int) -> str:
    """A folder name for a compared checkpoint: ``a_<name>`` / ``b_<name>``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.resolve().name) or "checkpoint"
    return f"{'ab'[i]}_{stem}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning solarmap errors into one line and exit code 2, and
    SIGINT / SIGTERM into ``solarmap: interrupted`` and exit code 130 / 143."""
    try:
        with signals_unwind():
            code = app(args=argv, prog_name="solarmap", standalone_mode=False)
    except Interrupted as err:
        print("solarmap: interrupted", file=sys.stderr)
        return 128 + err.signum
    except SolarmapError as err:
        print(f"solarmap: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("solarmap: interrupted", file=sys.stderr)
        return 130
    except typer.Abort:
        return 1
    except typer.TyperException as err:  # usage errors from click, inside typer
        ctx = getattr(err, "ctx", None)
        message = getattr(err, "format_message", None)
        if ctx is None or not callable(message) or "NoArgsIsHelp" in type(err).__name__:
            show = getattr(err, "show", None)  # bare `solarmap`: the help itself
            if callable(show):
                show()
            return int(getattr(err, "exit_code", 2))
        where = ctx.command_path or "solarmap"
        print(f"solarmap: error: {message().rstrip('.')}; see `{where} --help`", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    return code if isinstance(code, int) else 0  # typer.Exit(n) comes back as n
