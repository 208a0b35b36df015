"""`solarmap explain`: attribution maps for targets in a scene, on the scene's own grid.

For each target (a detected object, any polygon, a pixel or a bounding box, in map
coordinates) the window around it (target plus context margin, grown to the model's multiple)
is read from the scene, the explained function is built from the U-Net and the target region
(frozen from the original prediction for detected objects; see :mod:`attribute.targets`), each
method (looked up in :mod:`attribute.registry`) states its cost and runs, and the results are
written per target:

    OUT/targets.gpkg                       one row per target: id, kind, window, folder
    OUT/explain.json                       configuration and per-target summary
    OUT/target_<id>/attribution.tif        COG on the window grid, one band per method/reduction
    OUT/target_<id>/bands.csv|.json        per-band importance (and band / group ablation)
    OUT/target_<id>/superpixels.gpkg       superpixel values and ranks (superpixel methods)
    OUT/target_<id>/quicklook.png          false colour, target outline, every map
    OUT/target_<id>/target.json            the target, window, costs, IG completeness
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rasterio.windows import Window

from attribute.base import (
    BaselineName,
    MethodContext,
    Settings,
    baseline_tensor,
    check_baseline_name,
    perturbation_baseline,
    reference_check,
)
from attribute.reduce import band_importance, check_reductions, named_maps
from attribute.registry import (
    DEFAULT_METHODS,
    OPTIONS,
    REGISTRY,
    methods_for,
    options_for,
    resolve_methods,
)
from attribute.targets import (
    Target,
    TargetWindow,
    probability_to_logit,
    read_target,
    target_window,
)
from solarmap.errors import InputError
from solarmap.geo import jsonable, output_dir, write_json, write_vector
from solarmap.model import Checkpoint
from solarmap.progress import track
from solarmap.styles import outline_style, superpixels_style
from solarmap.windows import SceneSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplainConfig:
    """Options of :func:`explain_scene`; written to ``explain.json``.

    ``methods`` takes method names, family names and ``all`` (see
    :func:`attribute.registry.resolve_methods`) and holds the resolved names. ``options`` holds
    the methods' own options by name (:data:`attribute.registry.OPTIONS`); every option not
    given takes its default, and the options of the chosen methods are checked, with each
    method's budget check, before anything runs.
    """

    methods: tuple[str, ...] | str = DEFAULT_METHODS
    reductions: tuple[str, ...] = ("max_abs", "sum")
    margin_px: int = 32
    #: What perturbation and superpixel methods put in place of what they remove: the window's
    #: per-band median, a land cover the model calls clearly non-solar (mean logit -5.2 to -6.5
    #: on the demo's largest detections, benchmarks/bench_ig.py) that, unlike black (zero
    #: reflectance), does not look like a dark panel where it fills a patch.
    baseline: BaselineName = "median"
    reduction: Literal["sum", "mean"] = "sum"
    batch_size: int = 8
    top: int | None = None
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        methods = resolve_methods(self.methods)
        object.__setattr__(self, "methods", methods)
        check_reductions(self.reductions)
        check_baseline_name(self.baseline)
        if self.reduction not in ("sum", "mean"):
            raise InputError(f"unknown target reduction {self.reduction!r}; choose sum or mean")
        if self.batch_size < 1 or self.margin_px < 0:
            raise InputError("batch size must be >= 1 and margin >= 0")
        if self.top is not None and self.top < 1:
            raise InputError(f"--top must be >= 1, got {self.top}")
        unknown = sorted(set(self.options) - set(OPTIONS))
        if unknown:
            raise InputError(
                f"unknown method option(s) {', '.join(unknown)}; choose from {', '.join(OPTIONS)}"
            )
        values = {name: self.options.get(name, opt.default) for name, opt in OPTIONS.items()}
        for name, users in options_for(methods).items():
            values[name] = OPTIONS[name].check(values[name], methods=users)
        object.__setattr__(self, "options", values)
        for name in methods:
            check = REGISTRY[name].check
            if check is not None:
                check(self.settings)

    @property
    def settings(self) -> Settings:
        """What the methods read: reductions, batch size, seed and their options."""
        return Settings(
            reductions=tuple(self.reductions),
            batch_size=self.batch_size,
            seed=self.seed,
            options=self.options,
        )


@dataclass
class ExplainResult:
    """Paths and per-target summaries of an :func:`explain_scene` run."""

    out: Path
    targets: list[dict[str, Any]] = field(default_factory=list)


def explain_scene(
    scene: SceneSource,
    checkpoint: Checkpoint,
    targets: list[Target],
    out: str | Path,
    *,
    config: ExplainConfig | None = None,
    overwrite: bool = False,
) -> ExplainResult:
    """Explain every target and write georeferenced results into ``out``.

    ``scene`` is an opened scene (``data_prep.sentinel2.Scene`` or any
    :class:`~solarmap.windows.SceneSource`).

    Raises:
        CheckpointError: when the checkpoint's bands differ from the scene's.
        InputError: for a target outside the scene, a bad option or a budget too small.
        OutputExistsError: when ``out`` exists and ``overwrite`` is false.
    """
    import geopandas as gpd

    cfg = config or ExplainConfig()
    info = scene.info
    checkpoint.check_bands(info.bands)
    if not targets:
        raise InputError("no target to explain")
    model = checkpoint.freeze()
    methods = methods_for(model, cfg.methods)
    if methods != cfg.methods:
        left = ", ".join(m for m in cfg.methods if m not in methods)
        log.warning("left out %s: not for this model", left)
        cfg = dataclasses.replace(cfg, methods=methods)
    zero = checkpoint.zero_reflectance()
    # Windows first: a target outside the scene fails before anything is written.
    windows = [target_window(scene, checkpoint, t.geom, margin_px=cfg.margin_px) for t in targets]
    result = ExplainResult(out=Path(out))
    rows = []
    with output_dir(out, overwrite=overwrite) as tmp:
        for t, win in track(list(zip(targets, windows, strict=True)), "explaining"):
            summary = _explain_one(t, win, scene, checkpoint, model, tmp, cfg, zero=zero)
            result.targets.append(summary)
            rows.append(
                {
                    "id": t.id,
                    "kind": t.kind,
                    "folder": summary["folder"],
                    "row_off": int(win.row_off),
                    "col_off": int(win.col_off),
                    "size": int(win.width),
                    "geometry": t.geom,
                }
            )
        write_vector(
            gpd.GeoDataFrame(rows, geometry="geometry", crs=info.crs),
            tmp / "targets.gpkg",
            layer="targets",
            style=outline_style(label='"id"'),
        )
        write_json(
            tmp / "explain.json",
            {
                "config": dataclasses.asdict(cfg),
                "scene": str(info.source),
                "targets": result.targets,
            },
        )
    return result


@dataclass
class _TargetResults:
    """What the methods gave for one target, gathered for writing."""

    maps: dict[str, np.ndarray] = field(default_factory=dict)
    band_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    costs: dict[str, dict[str, int]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    #: superpixel values by method, for the polygon layers
    superpixels: dict[str, list[float]] = field(default_factory=dict)


def _explain_one(
    t: Target,
    win: Window,
    scene: SceneSource,
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    root: Path,
    cfg: ExplainConfig,
    *,
    zero: torch.Tensor,
) -> dict[str, Any]:
    """Read one target's window, run every chosen method on it and write its folder."""
    tw = read_target(scene, checkpoint, t.kind, t.geom, window=win, reduction=cfg.reduction)
    ctx = method_context(tw, cfg, model, zero)
    results = _run_methods(t, tw, ctx, cfg)
    _write_target(root / f"target_{t.id}", t, tw, ctx, results, scene, checkpoint, cfg)
    with torch.no_grad():
        f_x = float(tw.f(tw.x))
    summary = {
        "id": t.id,
        "kind": t.kind,
        "folder": f"target_{t.id}",
        "window": [int(win.col_off), int(win.row_off), int(win.width), int(win.height)],
        "region_pixels": int(tw.f.region_numpy().sum()),
        "f_x": f_x,
        "references": _references(
            t, tw, ctx, cfg, results, f_x=f_x, threshold=checkpoint.threshold
        ),
        "costs": results.costs,
        "extra": jsonable(results.extras),
        "maps": list(results.maps),
    }
    write_json(root / f"target_{t.id}" / "target.json", summary)
    return summary


def method_context(
    tw: TargetWindow, cfg: ExplainConfig, model: torch.nn.Module, zero: torch.Tensor
) -> MethodContext:
    """The target region's box, the perturbation baseline and lazy superpixels of a window."""
    region = tw.f.region_numpy()
    rows, cols = np.nonzero(region)
    seg_cache: list[np.ndarray] = []

    def segments() -> np.ndarray:
        if not seg_cache:
            from attribute.superpixels import slic_segments

            seg_cache.append(
                slic_segments(
                    np.nan_to_num(tw.reflectance),
                    n_segments=cfg.options["n_segments"],
                    seed=cfg.seed,
                )
            )
        return seg_cache[0]

    return MethodContext(
        settings=cfg.settings,
        model=model,
        baseline=perturbation_baseline(tw.x, cfg.baseline, zero_reflectance=zero, region=region),
        zero=zero,
        segments=segments,
        region_bbox=(int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1),
        shape=(int(region.shape[0]), int(region.shape[1])),
        region=region,
    )


def _references(
    t: Target,
    tw: TargetWindow,
    ctx: MethodContext,
    cfg: ExplainConfig,
    results: _TargetResults,
    *,
    f_x: float,
    threshold: float,
) -> dict[str, dict[str, Any]]:
    """What each baseline used means to the model for this target (:func:`reference_check`):
    the perturbation baseline of the perturbation and superpixel methods (one forward pass of
    the whole window replaced), and Integrated Gradients' own (from its run). A reference
    that is not clearly non-solar is warned about."""
    judge = functools.partial(
        reference_check,
        n_pixels=tw.f.n_pixels,
        reduction=tw.f.reduction,
        threshold_logit=probability_to_logit(threshold),
    )
    out: dict[str, dict[str, Any]] = {}
    users = [n for n in cfg.methods if REGISTRY[n].family in ("perturbation", "superpixel")]
    if users:
        with torch.no_grad():
            f_ref = float(tw.f(baseline_tensor(ctx.baseline, tw.x)))
        out["perturbation"] = {"baseline": cfg.baseline, "methods": users} | judge(
            f_x, f_ref
        ).to_dict()
    ig = results.extras.get("integrated_gradients")
    if ig is not None:
        base = ig.get("baseline", cfg.options.get("ig_baseline"))
        out["integrated_gradients"] = {"baseline": base} | judge(f_x, ig["f_baseline"]).to_dict()
    for what, ref in out.items():
        if not ref["non_solar"]:
            flag = "--baseline" if what == "perturbation" else "--ig-baseline"
            log.warning(
                "target %s: the %s baseline of %s is not clearly non-solar (f(x') = %.4g "
                "against f(x) = %.4g: the maps account for %.0f %% of the score); choose "
                "another with %s",
                t.id, ref["baseline"], what.replace("_", " "), ref["f_reference"], f_x,
                100 * ref["share"], flag,
            )  # fmt: skip
    return out


def _run_methods(
    t: Target, tw: TargetWindow, ctx: MethodContext, cfg: ExplainConfig
) -> _TargetResults:
    """Run each chosen method (its cost stated first) and gather maps, tables and extras."""
    out = _TargetResults()
    region = tw.f.region_numpy()
    reductions = check_reductions(cfg.reductions)
    for name in cfg.methods:
        method = REGISTRY[name]
        stated = method.cost(ctx).describe()
        log.info("target %s: %s costs %s%s", t.id, name, "at most " * method.bounded, stated)
        a = method.run(ctx, tw.f, tw.x)
        if method.bounded:
            log.info("target %s: %s spent %s", t.id, name, a.cost.describe())
        out.costs[name] = dataclasses.asdict(a.cost)
        new_maps = dict(a.maps)
        if a.per_band is not None and not a.maps:
            new_maps = named_maps(name, a.per_band, reductions)
        out.maps.update(new_maps)
        meta = _band_metadata(name, method.family, a.extra, baseline=cfg.baseline)
        out.band_meta.update({key: {**meta, **_reduction_of(key)} for key in new_maps})
        if a.per_band is not None:
            imp = band_importance(a.per_band, region)
            out.table += [
                {"method": name, "band": b, "importance": round(v, 6)} for b, v in imp.items()
            ]
        if "table" in a.extra:
            out.table += [{"method": name, **row} for row in a.extra["table"]]
        out.extras[name] = {k: v for k, v in a.extra.items() if k not in ("table", "values")}
        if method.family == "superpixel" and "values" in a.extra:
            out.superpixels[name] = a.extra["values"]
    return out


def _write_target(
    folder: Path,
    t: Target,
    tw: TargetWindow,
    ctx: MethodContext,
    results: _TargetResults,
    scene: SceneSource,
    checkpoint: Checkpoint,
    cfg: ExplainConfig,
) -> None:
    """The target's attribution COG, quicklook, band table and superpixel layers."""
    from attribute.georef import quicklook_png, write_attribution_cog, write_band_table
    from attribute.superpixels import segments_to_polygons

    info = scene.info
    for name, values in results.superpixels.items():
        polys = segments_to_polygons(ctx.segments(), values, transform=tw.transform, crs=info.crs)
        polys.insert(0, "method", name)
        write_vector(
            polys,
            folder / f"superpixels_{name}.gpkg",
            layer="superpixels",
            style=superpixels_style(),
        )
    tags = {
        "TARGET_ID": t.id,
        "TARGET_KIND": t.kind,
        "SCENE_ID": info.scene_id,
        "CHECKPOINT": checkpoint.metadata.get("path", ""),
        "TARGET_REDUCTION": cfg.reduction,  # of the logits over the target; bands say theirs
    }
    if results.maps:
        write_attribution_cog(
            folder / "attribution.tif",
            results.maps,
            transform=tw.transform,
            crs=info.crs,
            tags=tags,
            band_tags=[results.band_meta[k] for k in results.maps],
        )
        quicklook_png(
            folder / "quicklook.png",
            tw.reflectance,
            results.maps,
            region=tw.f.region_numpy(),
            title=f"{t.label} ({t.kind}), scene {info.scene_id}",
        )
    if results.table:
        keys = _table_keys(results.table)
        write_band_table(folder / "bands", [{k: r.get(k, "") for k in keys} for r in results.table])


#: Scalar results of a method that each of its bands carries as metadata.
_BAND_EXTRAS = ("rule", "steps", "completeness_error", "converged", "window", "layer", "n_samples")


def _band_metadata(
    name: str, family: str, extra: Mapping[str, Any], *, baseline: str
) -> dict[str, Any]:
    """What a band of ``attribution.tif`` says of the method that made it."""
    meta: dict[str, Any] = {"METHOD": name, "FAMILY": family}
    if family != "gradient" or "baseline" in extra:
        meta["BASELINE"] = extra.get("baseline", baseline)
    for key in _BAND_EXTRAS:
        if key in extra and isinstance(extra[key], str | int | float | bool):
            meta[key.upper()] = extra[key]
    return meta


def _reduction_of(key: str) -> dict[str, str]:
    """``{"REDUCTION": "max_abs"}`` for a band ``"saliency:max_abs"``; ``{}`` for a 2-D map."""
    _, sep, reduction = key.partition(":")
    return {"REDUCTION": reduction} if sep else {}


def _table_keys(rows: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return keys


__all__ = ["ExplainConfig", "ExplainResult", "explain_scene"]
