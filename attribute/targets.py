"""What is explained: from the U-Net's logit mask to one number per input.

The U-Net maps ``Tensor[N, 10, H, W]`` to logits ``Tensor[N, 1, H, W]``; attribution methods
explain a scalar per input. :class:`RegionTarget` sums (or averages) the logits over a fixed
boolean region of the window. The region is fixed when the target is built, so perturbing the
input (occlusion, noise, the integrated-gradients path) changes the value explained but never
where it is read.

Four target kinds, built by one helper, :func:`build_target` (or :func:`target_region` for the
region alone); geometries are in map coordinates of the scene CRS:

- ``"object"``: the pixels of a detection polygon where the model's *original* prediction is
  positive (:func:`frozen_object_region`), falling back to the whole polygon when none is;
- ``"polygon"``: every pixel of a polygon (:func:`region_from_polygon`, centre rule);
- ``"pixel"``: the one pixel holding a point;
- ``"window"``: every (valid) pixel of the window.

:func:`window_for_target` chooses the window to read around a target: its bounds plus a context
margin, grown to a size the U-Net accepts and kept inside the scene when the scene is big enough.

The targets of ``solarmap explain`` come from :func:`parse_targets` (a predictions GeoPackage,
a polygon file or ``x,y``); :func:`target_window` and :func:`read_target` read a target's window
from a scene and build its explained function on a checkpoint's model.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from affine import Affine
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from torch import nn

from solarmap.errors import InputError
from solarmap.geo import check_vector_crs, read_vector
from solarmap.model import Checkpoint, check_threshold
from solarmap.windows import SceneSource, read_padded

log = logging.getLogger(__name__)

Reduction = Literal["sum", "mean"]
TargetKind = Literal["object", "polygon", "pixel", "window"]

#: A target location: a shapely geometry, a GeoJSON-like mapping or an ``(x, y)`` point.
Geometry = Any

_EPS_PX = 1e-6  # tolerance when snapping map bounds to pixel edges (float round-off)


def probability_to_logit(p: float) -> float:
    """The logit of a probability threshold (checkpoints store thresholds as probabilities).

    Raises:
        InputError: unless ``0 < p < 1``.
    """
    p = check_threshold(p)
    return math.log(p / (1.0 - p))


def _as_region(region: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(region, np.ndarray):
        region = torch.from_numpy(np.ascontiguousarray(region))
    if region.ndim != 2:
        raise InputError(f"target region has shape {tuple(region.shape)}; give a bool [H, W] mask")
    return region.detach().to(device="cpu", dtype=torch.bool)


class RegionTarget(nn.Module):
    """``f(x) = sum`` (or mean) of the model's logits over a fixed region.

    Args:
        model: the U-Net, ``Tensor[N, 10, H, W]`` → logits ``Tensor[N, 1, H, W]``; use it in
            eval mode (BatchNorm in train mode mixes the inputs of a batch).
        region: ``bool[H, W]`` pixels whose logits are summed; must not be empty.
        reduction: ``"sum"`` (the default: completeness and Shapley values add up over pixels)
            or ``"mean"`` (comparable across regions of different size).
        kind: the target kind, recorded for outputs.

    Calling it maps ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.

    Raises:
        InputError: for an empty or non-2-D region or an unknown reduction.
    """

    region: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        region: torch.Tensor | np.ndarray,
        *,
        reduction: Reduction = "sum",
        kind: str = "region",
    ) -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise InputError(f"unknown target reduction {reduction!r}; choose sum or mean")
        mask = _as_region(region)
        n = int(mask.sum())
        if n == 0:
            raise InputError("target region is empty; give a target that covers a pixel")
        if model.training:
            log.warning(
                "explaining a model in train mode: BatchNorm/Dropout make f(x) depend on the "
                "batch and on chance; call model.eval() first"
            )
        self.model = model
        self.register_buffer("region", mask, persistent=False)
        self.reduction: Reduction = reduction
        self.kind = kind
        self.n_pixels = n

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the window the region lives on."""
        return (int(self.region.shape[0]), int(self.region.shape[1]))

    def region_numpy(self) -> np.ndarray:
        """The region as ``bool[H, W]``."""
        return self.region.cpu().numpy().copy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[N, 10, H, W]`` → ``Tensor[N]``.

        Raises:
            InputError: when the input's size differs from the region's.
        """
        logits = self.model(x)
        if logits.ndim == 4 and logits.shape[1] == 1:
            logits = logits[:, 0]
        if logits.ndim != 3 or tuple(logits.shape[-2:]) != self.shape:
            raise InputError(
                f"model returned logits of shape {tuple(logits.shape)} for a target region of "
                f"{self.shape}; give a window of the region's size"
            )
        weight = self.region.to(device=logits.device, dtype=logits.dtype)
        total = (logits * weight).sum(dim=(-2, -1))
        return total / self.n_pixels if self.reduction == "mean" else total


def _check_geometry(geom: Geometry) -> Geometry:
    if geom is None or getattr(geom, "is_empty", False):
        raise InputError("target geometry is empty; give a polygon or point in the scene CRS")
    return geom


def region_from_polygon(geom: Geometry, *, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of a polygon on a grid (window).

    Uses rasterio's centre rule (a pixel belongs when its centre is inside); a polygon too small
    to hold any pixel centre falls back to every pixel it touches.

    Args:
        geom: shapely geometry or GeoJSON-like mapping, in the grid's CRS.
        transform: affine transform of the grid (the window's transform).
        shape: ``(H, W)`` of the grid.

    Returns:
        ``bool[H, W]``.

    Raises:
        InputError: when the geometry is empty or does not overlap the grid.
    """
    _check_geometry(geom)
    kw: dict[str, Any] = {"out_shape": shape, "transform": transform, "fill": 0, "dtype": "uint8"}
    burned = rasterize([(geom, 1)], all_touched=False, **kw).astype(bool)
    if not burned.any():
        burned = rasterize([(geom, 1)], all_touched=True, **kw).astype(bool)
        if burned.any():
            log.debug("target polygon holds no pixel centre; using all touched pixels")
    if not burned.any():
        raise InputError(
            "target polygon does not overlap the window; check that it is in the scene CRS"
        )
    return burned


def frozen_object_region(
    model: nn.Module,
    x: torch.Tensor,
    polygon_region: np.ndarray,
    *,
    threshold_logit: float,
) -> np.ndarray:
    """The polygon's pixels that the model predicts solar on the ORIGINAL input.

    Computed once, before any perturbation, so methods that perturb the input explain the same
    pixels throughout (the goalposts cannot move).

    Args:
        model: the U-Net in eval mode.
        x: ``Tensor[1, 10, H, W]`` normalised window.
        polygon_region: ``bool[H, W]`` pixels of the detection polygon.
        threshold_logit: a pixel is positive when its logit is ``>=`` this (see
            :func:`probability_to_logit`).

    Returns:
        ``bool[H, W]``; the polygon region itself when no polygon pixel is positive.

    Raises:
        InputError: when ``x`` is not one window or the region's shape differs from it.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise InputError(f"input has shape {tuple(x.shape)}; give one window [1, bands, H, W]")
    poly = np.asarray(polygon_region, dtype=bool)
    if poly.shape != tuple(x.shape[-2:]):
        raise InputError(
            f"polygon region {poly.shape} does not match the window {tuple(x.shape[-2:])}"
        )
    with torch.no_grad():
        logits = model(x)
    positive = (logits.reshape(x.shape[-2:]) >= threshold_logit).cpu().numpy()
    region = poly & positive
    if not region.any():
        log.info("no pixel of the target polygon is predicted solar; explaining the whole polygon")
        return poly.copy()
    return region


def _point_xy(geom: Geometry) -> tuple[float, float] | None:
    """``(x, y)`` when the target is a point, else ``None``."""
    if isinstance(geom, Sequence) and not isinstance(geom, str) and len(geom) == 2:
        return float(geom[0]), float(geom[1])
    if getattr(geom, "geom_type", None) == "Point":
        return float(geom.x), float(geom.y)
    if isinstance(geom, Mapping) and geom.get("type") == "Point":
        cx, cy = geom["coordinates"][:2]
        return float(cx), float(cy)
    return None


def _map_bounds(geom: Geometry) -> tuple[float, float, float, float]:
    point = _point_xy(geom)
    if point is not None:
        return (point[0], point[1], point[0], point[1])
    _check_geometry(geom)
    if isinstance(geom, Mapping):
        from shapely.geometry import shape as to_shape

        geom = to_shape(geom)
    minx, miny, maxx, maxy = geom.bounds
    return float(minx), float(miny), float(maxx), float(maxy)


def _pixel_bounds(geom: Geometry, transform: Affine) -> tuple[int, int, int, int]:
    """``(row0, col0, row1, col1)``, half-open, of the pixels a target's bounds cover."""
    minx, miny, maxx, maxy = _map_bounds(geom)
    xs = np.array([minx, maxx, minx, maxx])
    ys = np.array([miny, miny, maxy, maxy])
    inv = ~transform
    cols = inv.a * xs + inv.b * ys + inv.c
    rows = inv.d * xs + inv.e * ys + inv.f
    r0 = math.floor(rows.min() + _EPS_PX)
    c0 = math.floor(cols.min() + _EPS_PX)
    r1 = max(math.ceil(rows.max() - _EPS_PX), r0 + 1)  # a point or line still holds a pixel
    c1 = max(math.ceil(cols.max() - _EPS_PX), c0 + 1)
    return r0, c0, r1, c1


def _place(
    lo: int, hi: int, extent: int, *, margin: int, multiple: int, min_size: int
) -> tuple[int, int]:
    """Offset and size along one axis for the target span ``[lo, hi)`` in ``[0, extent)``."""
    need = hi - lo + 2 * margin
    size = max(need, min_size)
    size = -(-size // multiple) * multiple  # round up to the multiple
    off = lo - margin - (size - need) // 2  # centre the target in the grown window
    if size > extent:  # larger than the scene: cover it all, the caller pads both sides
        return -((size - extent) // 2), size
    return min(max(off, 0), extent - size), size


def window_for_target(
    geom_or_point: Geometry,
    *,
    scene_transform: Affine,
    scene_shape: tuple[int, int],
    margin_px: int = 32,
    multiple: int = 32,
    min_size: int = 64,
) -> Window:
    """The window to read around a target.

    The target's pixel bounds (clipped to the scene) plus ``margin_px`` of context on every side,
    at least ``min_size`` pixels, grown to a multiple of ``multiple`` (the U-Net's
    :attr:`~solarmap.model.ModelConfig.multiple`) with the target centred, then shifted to lie
    inside the scene. A window larger than the scene along an axis is centred on the scene and
    extends past it: the caller reads it with ``boundless=True`` or pads.

    Args:
        geom_or_point: shapely geometry, GeoJSON-like mapping or ``(x, y)`` in the scene CRS.
        scene_transform: the scene's affine transform.
        scene_shape: ``(height, width)`` of the scene.
        margin_px: context pixels on each side of the target.
        multiple: window height and width are multiples of this.
        min_size: smallest height and width.

    Returns:
        A :class:`rasterio.windows.Window` with integer offsets and sizes.

    Raises:
        InputError: when the target lies outside the scene, is empty, or an option is invalid.
    """
    if margin_px < 0 or multiple < 1 or min_size < 1:
        raise InputError(
            f"window options margin_px={margin_px}, multiple={multiple}, min_size={min_size} "
            "are invalid; give margin >= 0 and multiple, min_size >= 1"
        )
    height, width = (int(v) for v in scene_shape)
    r0, c0, r1, c1 = _pixel_bounds(geom_or_point, scene_transform)
    if r1 <= 0 or c1 <= 0 or r0 >= height or c0 >= width:
        raise InputError(
            f"target at pixel rows {r0}..{r1}, cols {c0}..{c1} lies outside the "
            f"{height}x{width} scene; give a target inside the scene, in the scene CRS"
        )
    r0, r1 = max(r0, 0), min(r1, height)
    c0, c1 = max(c0, 0), min(c1, width)
    opts = {"margin": margin_px, "multiple": multiple, "min_size": min_size}
    row_off, h = _place(r0, r1, height, **opts)
    col_off, w = _place(c0, c1, width, **opts)
    return Window(col_off, row_off, w, h)


def pixel_region(point: Geometry, *, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """The one pixel holding a point, as ``bool[H, W]``.

    Raises:
        InputError: when the target is not a point or lies outside the grid.
    """
    xy = _point_xy(point)
    if xy is None:
        raise InputError("a pixel target needs a point (x, y) in the scene CRS")
    r0, c0, _, _ = _pixel_bounds(xy, transform)
    height, width = shape
    if not (0 <= r0 < height and 0 <= c0 < width):
        raise InputError(
            f"target point at pixel ({r0}, {c0}) lies outside the {height}x{width} window"
        )
    region = np.zeros(shape, dtype=bool)
    region[r0, c0] = True
    return region


def target_region(
    kind: TargetKind,
    geom: Geometry = None,
    *,
    transform: Affine,
    shape: tuple[int, int],
    model: nn.Module | None = None,
    x: torch.Tensor | None = None,
    threshold_logit: float | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """The region of a target of the given kind on a window (see the module docstring).

    Args:
        kind: ``"object"``, ``"polygon"``, ``"pixel"`` or ``"window"``.
        geom: polygon (object, polygon), point (pixel) or ``None`` (window), in map coordinates.
        transform: the window's affine transform.
        shape: ``(H, W)`` of the window.
        model, x, threshold_logit: needed by ``"object"`` (see :func:`frozen_object_region`).
        valid: optional ``bool[H, W]``; pixels outside it (padding past the scene edge, nodata)
            are never part of the region.

    Returns:
        ``bool[H, W]``, never empty.

    Raises:
        InputError: for an unknown kind, a missing argument, or an empty region.
    """
    if kind in ("object", "polygon"):
        region = region_from_polygon(geom, transform=transform, shape=shape)
        if kind == "object":
            if model is None or x is None or threshold_logit is None:
                raise InputError("an object target needs the model, the input and a threshold")
            region = frozen_object_region(model, x, region, threshold_logit=threshold_logit)
    elif kind == "pixel":
        region = pixel_region(geom, transform=transform, shape=shape)
    elif kind == "window":
        region = np.ones(shape, dtype=bool)
    else:
        raise InputError(f"unknown target kind {kind!r}; choose object, polygon, pixel or window")
    if valid is not None:
        valid_mask = np.asarray(valid, dtype=bool)
        if valid_mask.shape != tuple(shape):
            raise InputError(f"valid mask {valid_mask.shape} does not match the window {shape}")
        region = region & valid_mask
    if not region.any():
        raise InputError(f"the {kind} target covers no valid pixel of the window")
    return region


def build_target(
    kind: TargetKind,
    geom: Geometry = None,
    *,
    model: nn.Module,
    x: torch.Tensor,
    transform: Affine,
    threshold_logit: float | None = None,
    reduction: Reduction = "sum",
    valid: np.ndarray | None = None,
) -> RegionTarget:
    """The explained function for a target: ``f(x) -> Tensor[N]``.

    Args:
        kind: ``"object"``, ``"polygon"``, ``"pixel"`` or ``"window"``.
        geom: the target in map coordinates (``None`` for ``"window"``).
        model: the U-Net in eval mode.
        x: ``Tensor[1, 10, H, W]`` normalised window (object targets read its prediction).
        transform: the window's affine transform.
        threshold_logit: decision threshold in logits (object targets).
        reduction: ``"sum"`` or ``"mean"`` of the logits over the region.
        valid: optional ``bool[H, W]`` valid pixels of the window.

    Raises:
        InputError: as :func:`target_region`.
    """
    shape = (int(x.shape[-2]), int(x.shape[-1]))
    region = target_region(
        kind,
        geom,
        transform=transform,
        shape=shape,
        model=model,
        x=x,
        threshold_logit=threshold_logit,
        valid=valid,
    )
    return RegionTarget(model, region, reduction=reduction, kind=kind)


@dataclass
class Target:
    """One thing to explain, in the scene's CRS."""

    id: int
    kind: TargetKind
    geom: Any  # shapely geometry (point for pixels, polygon otherwise)
    label: str = ""


_POINT = re.compile(r"^\s*(-?[\d.]+(?:e-?\d+)?)\s*,\s*(-?[\d.]+(?:e-?\d+)?)\s*$", re.I)


def is_point_target(spec: str) -> bool:
    """Whether a ``--target`` is a point ``x,y`` (rather than a file)."""
    return _POINT.match(spec) is not None


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


@dataclass
class TargetWindow:
    """A target's window read from the scene, with its explained function.

    Attributes:
        window: the window in scene pixels (may stick out of the scene).
        transform: the window's affine transform.
        reflectance: ``float32[10, H, W]`` (NaN outside the scene and where invalid).
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


def target_window(
    scene: SceneSource, checkpoint: Checkpoint, geom: Any, *, margin_px: int = 32
) -> Window:
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
    scene: SceneSource,
    checkpoint: Checkpoint,
    kind: TargetKind,
    geom: Any,
    *,
    window: Window | None = None,
    margin_px: int = 32,
    reduction: Reduction = "sum",
) -> TargetWindow:
    """Read a target's window (``window``, or the target plus ``margin_px`` of context) and
    build its explained function on the checkpoint's model (in eval mode).

    The window is read as prediction reads it (:func:`solarmap.windows.read_padded`), so the
    model explained sees the input the prediction saw.

    Raises:
        InputError: for a target outside the scene or an empty region.
    """
    if window is None:
        window = target_window(scene, checkpoint, geom, margin_px=margin_px)
    refl, valid = read_padded(scene, window)
    x = checkpoint.normalise(torch.from_numpy(refl)[None])
    tr = window_transform(window, scene.info.transform)
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
