"""`solarmap explain`: attribution maps for targets in a scene, on the scene's own grid.

For each target (a detected object, any polygon, a pixel or a bounding box, in map
coordinates) the window around it (target plus context margin, grown to the model's multiple)
is read from the scene, the explained function is built from the U-Net and the target region
(frozen from the original prediction for detected objects), each method states its cost and
runs, and the results are written per target:

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
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from attribute.base import Attribution, Cost
from attribute.reduce import band_importance, check_reductions, named_maps
from attribute.targets import (
    RegionTarget,
    build_target,
    probability_to_logit,
    window_for_target,
)
from solarmap.bands import BANDS
from solarmap.errors import InputError
from solarmap.geo import check_vector_crs, output_dir, read_vector, write_json, write_vector
from solarmap.model import Checkpoint
from solarmap.progress import track

log = logging.getLogger(__name__)

TargetKind = Literal["object", "polygon", "pixel", "window"]
BaselineName = Literal["zero", "median", "blur"]

#: Methods by name; the default set is the cheap, exact-ish gradient family.
METHODS: tuple[str, ...] = (
    "saliency",
    "input_x_gradient",
    "smoothgrad",
    "integrated_gradients",
    "occlusion",
    "band_ablation",
    "group_ablation",
    "kernel_shap",
    "shapley_sampling",
    "l_shapley",
    "c_shapley",
    "lime",
    "gradcam",
)
DEFAULT_METHODS: tuple[str, ...] = ("saliency", "input_x_gradient", "integrated_gradients")
SUPERPIXEL_METHODS = frozenset(
    {"kernel_shap", "shapley_sampling", "l_shapley", "c_shapley", "lime"}
)


@dataclass(frozen=True)
class ExplainConfig:
    """Options of :func:`explain_scene`; written to ``explain.json``."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    reductions: tuple[str, ...] = ("max_abs", "sum")
    margin_px: int = 32
    baseline: BaselineName = "zero"
    #: IG's own baseline: with "blur" the gate reached 1 % completeness in a median of 12 passes
    #: over 6 objects of the trained demo U-Net, against 216 for zero reflectance and 108 for
    #: the median (benchmarks/bench_ig.py).
    ig_baseline: BaselineName = "blur"
    reduction: Literal["sum", "mean"] = "sum"
    batch_size: int = 8
    ig_steps: int = 4
    ig_max_steps: int = 324  # midpoint: 4, 12, 36, 108, 324 steps
    ig_rule: str = "midpoint"
    tolerance: float = 0.01
    smoothgrad_samples: int = 50
    smoothgrad_sigma: float = 0.15
    occlusion_window: int = 8
    n_segments: int = 64
    shap_samples: int = 512
    #: antithetic pairs: 8 × 2 × 64 superpixels ≈ 1,000 evaluations, where the ranking of the
    #: superpixels that matter settled (Spearman >= 0.95) in benchmarks/bench_shap.py
    shapley_permutations: int = 8
    l_shapley_k: int = 1
    gradcam_layer: str | None = None
    top: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise InputError(
                f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}"
            )
        if not self.methods:
            raise InputError("no method given; choose from " + ", ".join(METHODS))
        check_reductions(self.reductions)
        for b in (self.baseline, self.ig_baseline):
            if b not in ("zero", "median", "blur"):
                raise InputError(f"unknown baseline {b!r}; choose zero, median or blur")
        if self.batch_size < 1 or self.margin_px < 0:
            raise InputError("batch size must be >= 1 and margin >= 0")
        if self.top is not None and self.top < 1:
            raise InputError(f"--top must be >= 1, got {self.top}")
        self._check_budgets()

    def _check_budgets(self) -> None:
        """Refuse budgets too small for the chosen methods, before anything runs."""
        chosen = set(self.methods)
        if chosen & SUPERPIXEL_METHODS and self.n_segments < 2:
            raise InputError(f"superpixel methods need --n-segments >= 2, got {self.n_segments}")
        if {"kernel_shap", "lime"} & chosen and self.shap_samples < self.n_segments + 2:
            raise InputError(
                f"--shap-samples {self.shap_samples} is too small for {self.n_segments} "
                f"superpixels: KernelSHAP and LIME need at least n_segments + 2 evaluations"
            )
        budgets = {
            "smoothgrad": ("smoothgrad_samples", self.smoothgrad_samples, 1),
            "shapley_sampling": ("shapley_permutations", self.shapley_permutations, 1),
            "occlusion": ("occlusion_window", self.occlusion_window, 1),
        }
        for method, (name, value, least) in budgets.items():
            if method in chosen and value < least:
                raise InputError(f"{method} needs {name} >= {least}, got {value}")
        if "integrated_gradients" in chosen:
            from attribute.integrated_gradients import check_gate_options

            check_gate_options(
                self.ig_rule,
                self.ig_steps,
                max_steps=self.ig_max_steps,
                tolerance=self.tolerance,
                batch_size=2 * self.batch_size,  # as _runner passes it
            )


@dataclass
class Target:
    """One thing to explain, in the scene's CRS."""

    id: int
    kind: TargetKind
    geom: Any  # shapely geometry (point for pixels, polygon otherwise)
    label: str = ""


@dataclass
class ExplainResult:
    """Paths and per-target summaries of an :func:`explain_scene` run."""

    out: Path
    targets: list[dict[str, Any]] = field(default_factory=list)


_POINT = re.compile(r"^\s*(-?[\d.]+(?:e-?\d+)?)\s*,\s*(-?[\d.]+(?:e-?\d+)?)\s*$", re.I)


def parse_targets(spec: str, *, scene_crs: Any, top: int | None = None) -> list[Target]:
    """Targets from ``--target``: a predictions GeoPackage, a polygon file, or ``x,y``.

    A GeoPackage written by ``solarmap predict`` (layer ``solar``) gives detected objects (the
    ``top`` largest by area when asked); any other vector file gives polygons; ``x,y`` is a
    point in the scene's CRS.

    Raises:
        InputError: on a vector file without CRS, an empty file or an unreadable spec.
    """
    from shapely.geometry import Point

    m = _POINT.match(spec)
    if m:
        return [Target(0, "pixel", Point(float(m.group(1)), float(m.group(2))), spec.strip())]
    path = Path(spec)
    gdf = read_vector(path, what="target file")
    check_vector_crs(gdf, path)
    if gdf.empty:
        raise InputError(f"{path}: no feature to explain")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].to_crs(scene_crs)
    is_prediction = {"mean_prob", "max_prob", "area_m2"} <= set(gdf.columns)
    if is_prediction and top is not None:
        gdf = gdf.sort_values("area_m2", ascending=False).head(top)
    kind: TargetKind = "object" if is_prediction else "polygon"
    ids = gdf["id"] if "id" in gdf.columns else range(len(gdf))
    return [Target(int(i), kind, g, f"{kind} {i}") for i, g in zip(ids, gdf.geometry, strict=True)]


def read_padded(scene: Any, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance ``[10, h, w]`` and valid ``[h, w]`` of a window that may stick out.

    Pixels past the scene edge are NaN and invalid.
    """
    info = scene.info
    h, w = int(window.height), int(window.width)
    r0, c0 = int(window.row_off), int(window.col_off)
    refl = np.full((len(BANDS), h, w), np.nan, np.float32)
    valid = np.zeros((h, w), bool)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, info.height), min(c0 + w, info.width)
    if rr1 > rr0 and cc1 > cc0:
        part, ok = scene.read(Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
        refl[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = part
        valid[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = ok
    return refl, valid


def _runner(
    name: str,
    cfg: ExplainConfig,
    *,
    model: torch.nn.Module,
    baseline: torch.Tensor,
    zero: torch.Tensor,
    segments: Callable[[], np.ndarray],
    region_bbox: tuple[int, int, int, int],
    shape: tuple[int, int],
) -> tuple[Cost, Callable[[Any, torch.Tensor], Attribution]]:
    """The stated cost and a runner ``(f, x) -> Attribution`` for one method."""
    from attribute import ablation, gradcam, gradients, integrated_gradients, occlusion, shapley

    red = check_reductions(cfg.reductions)
    bs = cfg.batch_size
    if name == "saliency":
        return gradients.cost_saliency(), lambda f, x: gradients.saliency(f, x, reductions=red)
    if name == "input_x_gradient":
        return gradients.cost_input_x_gradient(), lambda f, x: gradients.input_x_gradient(
            f, x, reductions=red
        )
    if name == "smoothgrad":
        return gradients.cost_smoothgrad(
            method="saliency", n_samples=cfg.smoothgrad_samples
        ), lambda f, x: gradients.smoothgrad(
            f,
            x,
            n_samples=cfg.smoothgrad_samples,
            sigma=cfg.smoothgrad_sigma,
            batch_size=bs,
            seed=cfg.seed,
            reductions=red,
        )
    if name == "integrated_gradients":
        rule = integrated_gradients.check_ig_options(cfg.ig_rule, cfg.ig_steps)
        return integrated_gradients.cost_integrated_gradients(
            steps=cfg.ig_steps, max_steps=cfg.ig_max_steps, rule=rule
        ), lambda f, x: integrated_gradients.integrated_gradients(
            f,
            x,
            baseline=cfg.ig_baseline,
            rule=rule,
            steps=cfg.ig_steps,
            max_steps=cfg.ig_max_steps,
            tolerance=cfg.tolerance,
            batch_size=bs * 2,
            reductions=red,
            zero_reflectance=zero,
            scene_median=None,
        )
    if name == "occlusion":
        return occlusion.cost_occlusion(
            shape, window=cfg.occlusion_window, region_bbox=region_bbox
        ), lambda f, x: occlusion.occlusion(
            f,
            x,
            window=cfg.occlusion_window,
            baseline=baseline,
            batch_size=bs * 2,
            region_bbox=region_bbox,
        )
    if name in ("band_ablation", "group_ablation"):
        groups = name == "group_ablation"
        return ablation.cost_band_ablation(groups=groups), lambda f, x: ablation.band_ablation(
            f, x, baseline=baseline, groups=groups, batch_size=bs
        )
    if name in ("kernel_shap", "lime"):
        sampled_cost = shapley.cost_kernel_shap if name == "kernel_shap" else shapley.cost_lime
        fit = shapley.kernel_shap if name == "kernel_shap" else shapley.lime
        return sampled_cost(cfg.shap_samples), lambda f, x: fit(
            f,
            x,
            segments(),
            baseline=baseline,
            n_samples=cfg.shap_samples,
            batch_size=bs,
            seed=cfg.seed,
        )
    if name == "shapley_sampling":
        k = int(segments().max()) + 1
        return shapley.cost_shapley_sampling(
            k, cfg.shapley_permutations
        ), lambda f, x: shapley.shapley_sampling(
            f,
            x,
            segments(),
            baseline=baseline,
            n_permutations=cfg.shapley_permutations,
            batch_size=bs,
            seed=cfg.seed,
        )
    if name in ("l_shapley", "c_shapley"):
        cost_fn = shapley.cost_l_shapley if name == "l_shapley" else shapley.cost_c_shapley
        fn = shapley.l_shapley if name == "l_shapley" else shapley.c_shapley
        return cost_fn(segments(), k=cfg.l_shapley_k), lambda f, x: fn(
            f, x, segments(), baseline=baseline, k=cfg.l_shapley_k, batch_size=bs
        )
    if name == "gradcam":
        layer = cfg.gradcam_layer or "decoder.blocks.0"
        return gradcam.cost_gradcam(), lambda f, x: gradcam.gradcam(model, f, x, layer=layer)
    raise InputError(f"unknown method {name!r}")  # guarded by ExplainConfig


@dataclass
class TargetWindow:
    """A target's window read from the scene, with its explained function.

    Attributes:
        window: the window in scene pixels (may stick out of the scene).
        transform: the window's affine transform.
        reflectance: ``float32[10, H, W]`` (NaN outside the scene).
        valid: ``bool[H, W]`` valid pixels.
        x: ``Tensor[1, 10, H, W]`` normalised model input.
        f: the explained function (sum or mean of logits over the target region).
    """

    window: Window
    transform: Any
    reflectance: np.ndarray
    valid: np.ndarray
    x: torch.Tensor
    f: RegionTarget


def target_window(scene: Any, checkpoint: Checkpoint, geom: Any, *, margin_px: int = 32) -> Window:
    """The window ``solarmap explain`` reads for a target: its pixel bounds plus ``margin_px``
    of context, grown to the model's multiple (see :func:`window_for_target`).

    Raises:
        InputError: for a target outside the scene.
    """
    info = scene.info
    return window_for_target(
        geom,
        scene_transform=info.transform,
        scene_shape=(info.height, info.width),
        margin_px=margin_px,
        multiple=checkpoint.config.multiple,
    )


def read_target(
    scene: Any,
    checkpoint: Checkpoint,
    kind: TargetKind,
    geom: Any,
    *,
    window: Window | None = None,
    margin_px: int = 32,
    reduction: Literal["sum", "mean"] = "sum",
) -> TargetWindow:
    """Read a target's window (``window``, or the target plus ``margin_px`` of context) and
    build its explained function on the checkpoint's model (in eval mode).

    Raises:
        InputError: for a target outside the scene or an empty region.
    """
    info = scene.info
    if window is None:
        window = target_window(scene, checkpoint, geom, margin_px=margin_px)
    refl, valid = read_padded(scene, window)
    x = checkpoint.normalise(torch.from_numpy(refl)[None])
    tr = window_transform(window, info.transform)
    f = build_target(
        kind,
        geom,
        model=checkpoint.model.eval(),
        x=x,
        transform=tr,
        threshold_logit=probability_to_logit(checkpoint.threshold),
        reduction=reduction,
        valid=valid,
    )
    return TargetWindow(window, tr, refl, valid, x, f)


def explain_scene(
    scene: Any,
    checkpoint: Checkpoint,
    targets: list[Target],
    out: str | Path,
    *,
    config: ExplainConfig | None = None,
    overwrite: bool = False,
) -> ExplainResult:
    """Explain every target and write georeferenced results into ``out``.

    ``scene`` is an opened scene (``data_prep.sentinel2.Scene`` or anything with ``info`` and
    ``read(window)``).

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


def _explain_one(
    t: Target,
    win: Window,
    scene: Any,
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    root: Path,
    cfg: ExplainConfig,
    *,
    zero: torch.Tensor,
) -> dict[str, Any]:
    from attribute.georef import quicklook_png, write_attribution_cog, write_band_table

    info = scene.info
    tw = read_target(scene, checkpoint, t.kind, t.geom, window=win, reduction=cfg.reduction)
    refl, x, tr, f = tw.reflectance, tw.x, tw.transform, tw.f
    region = f.region_numpy()
    rows, cols = np.nonzero(region)
    bbox = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    if cfg.baseline == "median":
        baseline = torch.nanmedian(x[0].reshape(len(BANDS), -1), dim=1).values
    elif cfg.baseline == "blur":
        from attribute.integrated_gradients import make_baseline

        baseline = make_baseline(x, "blur", zero_reflectance=zero, scene_median=None)
    else:
        baseline = zero
    seg_cache: list[np.ndarray] = []

    def segments() -> np.ndarray:
        if not seg_cache:
            from attribute.superpixels import slic_segments

            seg_cache.append(
                slic_segments(np.nan_to_num(refl), n_segments=cfg.n_segments, seed=cfg.seed)
            )
        return seg_cache[0]

    maps: dict[str, np.ndarray] = {}
    table: list[dict[str, Any]] = []
    costs: dict[str, dict[str, int]] = {}
    extras: dict[str, Any] = {}
    for name in cfg.methods:
        stated, run = _runner(
            name,
            cfg,
            model=model,
            baseline=baseline,
            zero=zero,
            segments=segments,
            region_bbox=bbox,
            shape=(int(region.shape[0]), int(region.shape[1])),
        )
        log.info(
            "target %s: %s costs %s",
            t.id,
            name,
            stated.describe(),
        )
        a = run(f, x)
        costs[name] = dataclasses.asdict(a.cost)
        maps.update({k: v for k, v in a.maps.items()})
        if a.per_band is not None and not a.maps:
            maps.update(named_maps(name, a.per_band, check_reductions(cfg.reductions)))
        if a.per_band is not None:
            imp = band_importance(a.per_band, region)
            table += [
                {"method": name, "band": b, "importance": round(v, 6)} for b, v in imp.items()
            ]
        if "table" in a.extra:
            table += [{"method": name, **row} for row in a.extra["table"]]
        extras[name] = {k: v for k, v in a.extra.items() if k not in ("table", "values")}
        if name in SUPERPIXEL_METHODS and "values" in a.extra:
            from attribute.superpixels import segments_to_polygons

            polys = segments_to_polygons(segments(), a.extra["values"], transform=tr, crs=info.crs)
            polys.insert(0, "method", name)
            write_vector(
                polys, root / f"target_{t.id}" / f"superpixels_{name}.gpkg", layer="superpixels"
            )
    folder = root / f"target_{t.id}"
    tags = {
        "TARGET_ID": t.id,
        "TARGET_KIND": t.kind,
        "SCENE_ID": info.scene_id,
        "CHECKPOINT": checkpoint.metadata.get("path", ""),
        "REDUCTION": cfg.reduction,
    }
    if maps:
        write_attribution_cog(
            folder / "attribution.tif", maps, transform=tr, crs=info.crs, tags=tags
        )
        quicklook_png(
            folder / "quicklook.png",
            refl,
            maps,
            region=region,
            title=f"{t.label} ({t.kind}), scene {info.scene_id}",
        )
    if table:
        _uniform = [{k: r.get(k, "") for k in _table_keys(table)} for r in table]
        write_band_table(folder / "bands", _uniform)
    summary = {
        "id": t.id,
        "kind": t.kind,
        "folder": f"target_{t.id}",
        "window": [int(win.col_off), int(win.row_off), int(win.width), int(win.height)],
        "region_pixels": int(region.sum()),
        "f_x": float(f(x).detach()),
        "costs": costs,
        "extra": _jsonable(extras),
        "maps": list(maps),
    }
    write_json(folder / "target.json", summary)
    return summary


def _table_keys(rows: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return keys


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray | torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "ExplainConfig",
    "ExplainResult",
    "Target",
    "explain_scene",
    "parse_targets",
    "read_padded",
]
