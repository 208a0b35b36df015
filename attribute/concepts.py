"""Contrastive concept naming of a network's features (after FALCON, Kalibhat et al., ICML 2023).

FALCON names a feature of an image representation by the words that describe the image regions
activating it most, and drops the words that describe equally well the regions of images that
are alike in every other feature but do not activate it. Here there is no vision-language
model: the vocabulary is land cover and land use, measured as area shares of concept masks
(the generator's ``landcover.tif`` classes and look-alike kinds on synthetic scenes; see
:func:`concepts_from_landcover`).

For a feature *i* (a channel of a named layer, or any :class:`FeatureSpace` over it):

1. Every probe tile (``tile_px`` squares of the probe scenes) gets a score per feature: the
   mean of the top tenth of the feature's rectified map (a detector of something small, such as
   a ring of pads, scores by where it fires, not by the tile's mean).
2. The ``top_k`` tiles that score highest on *i* are its top tiles. In each, Grad-CAM of *i*'s
   summed map at its own layer (Captum :class:`~captum.attr.LayerGradCam`; for a channel it is
   the channel's rectified map) is upsampled to the tile and kept above ``region_threshold``
   of its maximum: the activating region.
3. Each top tile has a counterfactual: among the tiles scoring in the lower half on *i*, the
   one nearest to it in the other features (standardised scores, *i* left out). Its region is
   Grad-CAM of the ``matched`` features the top tile shares most strongly (its highest
   standardised scores but *i*), thresholded alike: what lies where the rest of the
   representation fires when *i* does not.
4. A concept's score is its mean area share over the top regions; its counterfactual score the
   same over the counterfactual regions (the paper's Equation 2). A concept is kept when its
   score is at least ``min_share`` and its counterfactual score below ``contrast`` times it;
   the kept concepts, highest score first, name the feature.

:func:`feature_contributions` explains one detection: each feature's activation times the
gradient of the detection's summed logit (for a channel of the last decoder block, its weight
toward the solar logit through the head), so a false positive's strongest features and their
names say what it was taken for.

Written here, as no library names features by region concepts; Captum supplies Grad-CAM.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from torch import nn

from attribute.base import check_ranges
from attribute.gradcam import resolve_layer, suggested_layers
from solarmap.bands import RGB, band_indices
from solarmap.errors import InputError, first_line
from solarmap.windows import read_padded

log = logging.getLogger(__name__)


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConceptConfig:
    """How features are named (written beside the outputs).

    Attributes:
        layer: the layer whose channels are the features (a name from
            ``model.named_modules()``); ``None``: :func:`default_layer`.
        features: the features to name; ``()``: all of them.
        tile_px: side of a probe tile, pixels (a multiple of the model's).
        top_k: top-activating tiles (and as many counterfactuals) per feature.
        region_threshold: a tile's activating region: Grad-CAM at or above this share of its
            maximum.
        contrast: a concept is discarded when its counterfactual score reaches this share of
            its score.
        min_share: least score (mean area share in the top regions) a kept concept has.
        min_effect: least mean relative drop of the feature's score when a kept concept's
            pixels are filled with the land around them (:func:`concept_effect`); ``0``: no
            such check (naming by the contrast alone).
        matched: features a counterfactual's region is drawn from.
        pairs: name a feature that is not named alone together with its partner, the feature
            whose tile scores follow its own most closely, when the pair is named.
        min_valid: least share of valid pixels a probe tile has.
        max_tiles: most probe tiles (evenly taken over the scenes when there are more).
        batch_size: tiles per model call.
    """

    layer: str | None = None
    features: tuple[int, ...] = ()
    tile_px: int = 64
    top_k: int = 8
    region_threshold: float = 0.5
    contrast: float = 0.5
    min_share: float = 0.05
    min_effect: float = 0.1
    matched: int = 5
    pairs: bool = True
    min_valid: float = 0.5
    max_tiles: int = 2000
    batch_size: int = 64

    def __post_init__(self) -> None:
        checks = (
            ("--tile-px", self.tile_px, 16 <= self.tile_px <= 1024, "give 16 to 1024 pixels"),
            ("--top-k", self.top_k, 1 <= self.top_k <= 1000, "give 1 to 1000 tiles"),
            ("--region-threshold", self.region_threshold, 0 < self.region_threshold < 1,
             "give a share between 0 and 1"),
            ("--contrast", self.contrast, 0 < self.contrast <= 1, "give a share in (0, 1]"),
            ("--min-share", self.min_share, 0 <= self.min_share < 1, "give a share in [0, 1)"),
            ("--min-effect", self.min_effect, 0 <= self.min_effect <= 1, "give a share in [0, 1]"),
            ("--matched", self.matched, 1 <= self.matched <= 64, "give 1 to 64 features"),
            ("--min-valid", self.min_valid, 0 <= self.min_valid <= 1, "give a share in [0, 1]"),
            ("--max-tiles", self.max_tiles, self.max_tiles >= 2, "give 2 or more"),
            ("--batch-size", self.batch_size, 1 <= self.batch_size <= 4096, "give 1 to 4096"),
        )  # fmt: skip
        check_ranges(checks)
        if any(i < 0 for i in self.features):
            raise InputError(f"--features {self.features}: feature indices are 0 or more")
        object.__setattr__(self, "features", tuple(dict.fromkeys(self.features)))  # once each


def default_layer(model: nn.Module) -> str:
    """The layer named when none is given: the decoder block before the last (at half the
    input's resolution in the shipped U-Net: 16 channels), else the last map-shaped layer.

    Regions must be fine enough to tell a 3 px ring of pads from the panels it surrounds: on
    the planted-cue models of ``benchmarks/bench_concepts.py`` the cue named one of the five
    carriers of the solar logit in 6 of 6 planted models at this layer (and in 2 of 6 clean
    ones); at ``decoder.blocks.0`` (1/16), ``.2`` and ``.4`` it did not set planted models
    apart from clean ones.
    """
    names = layer_names(model)
    blocks = [n for n in names if re.fullmatch(r"decoder\.blocks\.\d+", n)]
    if len(blocks) >= 2:
        return blocks[-2]
    return blocks[-1] if blocks else names[-1]


# --- features over a layer ----------------------------------------------------------------------


class FeatureSpace(Protocol):
    """Features over a layer's activations: its channels, or a sparse autoencoder's codes."""

    @property
    def name(self) -> str:
        """What a feature is called in messages (``"channel"``)."""
        ...

    @property
    def n_features(self) -> int: ...

    def maps(self, a: torch.Tensor) -> torch.Tensor:
        """``Tensor[N, C, h, w]`` activations → ``Tensor[N, F, h, w]`` feature maps."""
        ...


@dataclass
class Channels:
    """The layer's channels themselves."""

    n_features: int
    name: str = "channel"

    def maps(self, a: torch.Tensor) -> torch.Tensor:
        return a


class _Activations:
    """A forward hook that keeps a layer's output."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.value: torch.Tensor | None = None

    def __enter__(self) -> _Activations:
        def keep(_m: nn.Module, _i: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor) or out.ndim != 4:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise InputError(
                    f"the layer gives {shape}, not one [N, C, h, w] map; choose a convolutional "
                    "layer (a decoder block or an encoder stage)"
                )
            self.value = out

        self.handle = self.module.register_forward_hook(keep)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()

    def output(self) -> torch.Tensor:
        """The layer's output of the last forward pass.

        Raises:
            InputError: if the forward pass did not run the layer.
        """
        if self.value is None:
            raise InputError(
                "the layer was not run by the model's forward pass; choose a layer on the way "
                "from the input to the logits"
            )
        return self.value


def layer_names(model: nn.Module) -> list[str]:
    """The layers whose output is one ``[N, C, h, w]`` map, found by a small forward pass."""
    found: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if not name:
            continue

        def keep(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                found.append(name)

        hooks.append(module.register_forward_hook(keep))
    try:
        with torch.no_grad():
            model(torch.zeros(1, _in_channels(model), 64, 64))
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(found))


def _in_channels(model: nn.Module) -> int:
    for p in model.parameters():
        if p.ndim == 4:
            return int(p.shape[1])
    return 10


def check_layer(model: nn.Module, layer: str) -> nn.Module:
    """The module ``layer`` if its output is one map.

    Raises:
        InputError: for an unknown layer, or one whose output is not a map; lists valid ones.
    """
    valid = layer_names(model)
    if layer not in valid:
        # the blocks first (decoder, then encoder stages), not every batch norm and activation
        blocks = [n for n in valid if re.fullmatch(r"decoder\.(center|blocks\.\d+)", n)]
        blocks += [n for n in suggested_layers(model, limit=12) if n in valid and n not in blocks]
        shown = ", ".join(blocks or valid[:8])
        raise InputError(
            f"--layer {layer!r}: no such map-shaped layer; valid layers: {shown} "
            f"({len(valid)} in all, the names of model.named_modules())"
        )
    return resolve_layer(model, layer)


def layer_activations(
    model: nn.Module, module: nn.Module, x: torch.Tensor, *, batch_size: int = 64
) -> torch.Tensor:
    """``Tensor[N, C, h, w]``: the module's output for every input window (no gradients)."""
    parts: list[torch.Tensor] = []
    with _Activations(module) as act, torch.no_grad():
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
            parts.append(act.output().float().clone())
    return torch.cat(parts)


def tile_scores(maps: torch.Tensor) -> np.ndarray:
    """``float32[N, F]``: per tile and feature the mean of the top tenth of the rectified map."""
    flat = maps.detach().clamp(min=0).flatten(2)
    k = max(1, math.ceil(flat.shape[-1] / 10))
    return flat.topk(k, dim=-1).values.mean(-1).numpy().astype(np.float32)


def feature_cam(
    model: nn.Module,
    module: nn.Module,
    space: FeatureSpace,
    x: torch.Tensor,
    features: Sequence[Sequence[int]],
    *,
    size: tuple[int, int],
) -> np.ndarray:
    """``float32[N, H, W]``: Grad-CAM at ``module`` of the summed maps of ``features[n]`` (a
    set of feature indices per window), upsampled bilinearly to ``size``; Captum's
    :class:`~captum.attr.LayerGradCam` with rectified attributions."""
    n_feat = space.n_features
    select = torch.zeros(len(x), n_feat)
    for n, idx in enumerate(features):
        select[n, list(idx)] = 1.0
    hook = _Activations(module)

    def f(inputs: torch.Tensor) -> torch.Tensor:
        with hook:
            model(inputs)
        fm = space.maps(hook.output())
        return (fm.sum(dim=(2, 3)) * select[: len(inputs)].to(fm.dtype)).sum(1)

    inputs = x.detach().clone().requires_grad_(True)
    cam = LayerGradCam(f, module).attribute(inputs, relu_attributions=True)
    up = LayerAttribution.interpolate(cam.detach(), size, interpolate_mode="bilinear")
    return up[:, 0].clamp(min=0).float().numpy()


def _regions(cam: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """``bool[N, H, W]``: valid pixels at or above ``threshold`` of each map's maximum."""
    peak = cam.reshape(len(cam), -1).max(1)[:, None, None]
    return (cam >= threshold * peak) & (peak > 0) & valid


def concept_shares(regions: np.ndarray, concepts: np.ndarray) -> np.ndarray:
    """``float32[N, K]``: the share of each region ``bool[N, H, W]`` each concept mask
    ``bool[N, K, H, W]`` covers (0 for an empty region)."""
    area = regions.sum(axis=(1, 2)).astype(np.float32)
    inside = (concepts & regions[:, None]).sum(axis=(2, 3)).astype(np.float32)
    return np.divide(inside, area[:, None], out=np.zeros_like(inside), where=area[:, None] > 0)


# --- probe tiles --------------------------------------------------------------------------------


@dataclass
class ProbeSet:
    """The tiles features are named over.

    Attributes:
        x: ``Tensor[N, 10, T, T]`` normalised model input.
        valid: ``bool[N, T, T]``.
        concepts: ``bool[N, K, T, T]`` concept masks.
        names: the ``K`` concept names.
        rgb: ``float32[N, 3, T, T]`` true-colour reflectance (for thumbnails).
        tiles: per tile its scene id, CRS and transform.
    """

    x: torch.Tensor
    valid: np.ndarray
    concepts: np.ndarray
    names: list[str]
    rgb: np.ndarray
    tiles: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)


#: A scene's concept masks: (scene, its window of the tile grid) → (names, ``bool[K, h, w]``).
ConceptReader = Callable[[Any, Window], tuple[list[str], np.ndarray]]


def probe_tiles(
    scenes: Sequence[Any],
    readers: Sequence[ConceptReader],
    normalise: Callable[[torch.Tensor], torch.Tensor],
    *,
    tile_px: int,
    min_valid: float = 0.5,
    max_tiles: int = 2000,
) -> ProbeSet:
    """Cut opened scenes into ``tile_px`` tiles with their concept masks; a tile sticking out
    of its scene is read padded (no data outside) and kept when ``min_valid`` of it is valid.

    The concept vocabulary is the union over the scenes, in first-seen order.

    Raises:
        InputError: if no tile has ``min_valid`` of valid pixels.
    """
    windows = []
    for s, scene in enumerate(scenes):
        info = scene.info
        # edge tiles (and scenes smaller than a tile) are read padded; min_valid decides
        for r in range(0, info.height, tile_px):
            for c in range(0, info.width, tile_px):
                windows.append((s, Window(c, r, tile_px, tile_px)))
    if len(windows) > max_tiles:
        pick = np.linspace(0, len(windows) - 1, max_tiles).round().astype(int)
        windows = [windows[i] for i in pick]
    xs, valids, masks, tiles = [], [], [], []
    names: list[str] = []
    for s, win in windows:
        refl, valid = read_padded(scenes[s], win)
        if valid.mean() < min_valid:
            continue
        tile_names, m = readers[s](scenes[s], win)
        for n in tile_names:
            if n not in names:
                names.append(n)
        full = np.zeros((len(names), tile_px, tile_px), dtype=bool)
        full[[names.index(n) for n in tile_names]] = m
        xs.append(refl)
        valids.append(valid)
        masks.append(full)
        info = scenes[s].info
        tiles.append({
            "scene": info.scene_id,
            "crs": info.crs,
            "transform": window_transform(win, info.transform),
            "row": int(win.row_off),
            "col": int(win.col_off),
        })  # fmt: skip
    if not xs:
        raise InputError(
            f"no probe tile of {tile_px} px has {min_valid:.0%} valid pixels; give larger or "
            "clearer scenes, or a smaller --tile-px"
        )
    concepts = np.zeros((len(masks), len(names), tile_px, tile_px), dtype=bool)
    for i, m in enumerate(masks):
        concepts[i, : len(m)] = m
    refl = np.stack(xs)
    rgb = refl[:, band_indices(list(RGB))]
    x = normalise(torch.from_numpy(refl))
    return ProbeSet(x, np.stack(valids), concepts, names, rgb, tiles)


def concepts_from_landcover(path: str | Path, scene: Any) -> ConceptReader:
    """Concept masks from a generator's ``landcover.tif`` (:data:`LANDCOVER_CLASSES`, no data
    left out) and, when it lies beside it, ``lookalikes.gpkg`` (the ``kind`` of each
    look-alike: greenhouse, dark roof...), read a tile window at a time.

    Raises:
        InputFileError: if the raster cannot be read.
        InputError: if it is not on the scene's grid.
    """
    from rasterio.features import rasterize

    from data_prep.synthetic.landscape import LANDCOVER_CLASSES
    from solarmap.geo import open_raster, read_vector

    path = Path(path)
    info = scene.info
    with open_raster(path, what="land-cover raster") as src:
        if (src.height, src.width) != (info.height, info.width) or not src.transform.almost_equals(
            info.transform
        ):
            raise InputError(
                f"{path}: its grid is not the scene's ({src.width}x{src.height} against "
                f"{info.width}x{info.height}); give the land cover made with the scene"
            )
    classes = [k for k in sorted(LANDCOVER_CLASSES) if k != 0]
    names = [LANDCOVER_CLASSES[k] for k in classes]
    kinds: list[tuple[str, list[Any]]] = []
    look = path.with_name("lookalikes.gpkg")
    if look.is_file():
        gdf = read_vector(look, what="look-alike layer")
        for kind, part in gdf.groupby("kind"):
            shapes = [g for g in part.geometry if g is not None and not g.is_empty]
            if shapes:
                kinds.append((str(kind).replace("_", " "), shapes))
    names += [k for k, _ in kinds]
    lut = np.zeros((256, len(classes)), dtype=bool)
    lut[classes, np.arange(len(classes))] = True

    def read(_scene: Any, win: Window) -> tuple[list[str], np.ndarray]:
        with open_raster(path, what="land-cover raster") as src:
            lc = src.read(1, window=win, boundless=True, fill_value=0)
        layers = [np.moveaxis(lut[lc], -1, 0)]
        tr = window_transform(win, info.transform)
        for _, shapes in kinds:
            layers.append(rasterize(shapes, out_shape=lc.shape, transform=tr)[None] > 0)
        return names, np.concatenate(layers)

    return read


# --- naming -------------------------------------------------------------------------------------


@dataclass
class FeatureName:
    """What a feature was named, and on what evidence.

    Attributes:
        feature: its index.
        concepts: per concept ``{"concept", "score", "counterfactual", "kept"}``, highest
            score first.
        top: the top tiles' indices in the probe set (at most ``top_k``, each activating the
            feature); ``counterfactual`` their counterparts.
        regions: ``bool[top_k, T, T]`` the top tiles' activating regions.
        peak: the top tiles' scores (a pair's summed).
        partner: the feature it was named with, when it was not named alone (a pair).
    """

    feature: int
    concepts: list[dict[str, Any]]
    top: list[int]
    counterfactual: list[int]
    regions: np.ndarray
    peak: list[float]
    partner: int | None = None

    @property
    def label(self) -> str:
        """``"7"``, or ``"7+12"`` for a feature named with its partner."""
        return str(self.feature) if self.partner is None else f"{self.feature}+{self.partner}"

    @property
    def names(self) -> list[str]:
        """The kept concepts, highest score first."""
        return [c["concept"] for c in self.concepts if c["kept"]]


def _standardise(scores: np.ndarray) -> np.ndarray:
    sd = scores.std(axis=0)
    return (scores - scores.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def counterfactual_tiles(z: np.ndarray, i: int | Sequence[int], top: Sequence[int]) -> list[int]:
    """For each top tile, the tile nearest to it in the standardised scores ``z`` without
    feature ``i`` (or the features of a group) among those scoring in the lower half on it,
    a different one for each while the lower half has enough."""
    group = [i] if isinstance(i, int | np.integer) else list(i)
    own = z[:, group].sum(axis=1)
    low = np.flatnonzero(own <= np.median(own))
    low = np.setdiff1d(low, np.asarray(top))
    if len(low) == 0:
        raise InputError(
            f"feature {_label(group)}: every probe tile activates it as much as the top ones; "
            "give more varied scenes"
        )
    others = np.delete(z, group, axis=1)
    d = ((others[np.asarray(top)][:, None, :] - others[low][None, :, :]) ** 2).sum(-1)
    # nearest first, each low tile once while there are enough: in many dimensions a few
    # central tiles are everybody's nearest neighbour, and would stand for every counterfactual
    picked: list[int] = []
    for row in d:
        order = np.argsort(row, kind="stable")
        free = [j for j in order if int(low[j]) not in picked]
        picked.append(int(low[free[0] if free else order[0]]))
    return picked


def _label(group: Sequence[int]) -> str:
    return "+".join(str(int(g)) for g in group)


def concept_effect(
    model: nn.Module,
    module: nn.Module,
    space: FeatureSpace,
    probe: ProbeSet,
    tiles: Sequence[int],
    i: int | Sequence[int],
    c: int,
    scores: np.ndarray,
) -> float:
    """The mean relative drop of feature ``i``'s tile score (a group's summed scores) over
    ``tiles`` from the intact tiles' ``scores`` (:func:`tile_scores` of the probe set) when
    concept ``c``'s
    pixels are filled with the land around them (:func:`attribute.base.context_fill`, 1 px of
    gap; the probe set's band medians where a concept fills its tile); 0 for a tile without
    the concept.

    Concepts that co-occur (a pad ring and the panels it surrounds) share every region a
    feature fires on: only removing one of them tells which the feature responds to.
    """
    from attribute.base import context_fill

    group = [i] if isinstance(i, int | np.integer) else list(i)
    drops = []
    edited, base = [], []
    for t in tiles:
        mask = probe.concepts[t, c] & probe.valid[t]
        if not mask.any():
            drops.append(0.0)
            continue
        x = probe.x[t : t + 1]
        try:
            filled = context_fill(x, mask, gap_px=1.0)
        except InputError:  # the concept is the whole tile: no land around it
            filled = x.clone()
            filled[0][:, torch.from_numpy(mask)] = _band_medians(probe)[:, None]
        edited.append(filled)
        base.append(t)
    if edited:
        acts = layer_activations(model, module, torch.cat(edited))
        after = tile_scores(space.maps(acts).detach())[:, group].sum(axis=1)
        before = scores[base][:, group].sum(axis=1)
        drops += list((before - after) / np.maximum(before, 1e-12))
    return float(np.mean(drops))


def _band_medians(probe: ProbeSet) -> torch.Tensor:
    """``Tensor[10]``: per band the median of the probe set's valid pixels (normalised)."""
    flat = probe.x.permute(1, 0, 2, 3).reshape(probe.x.shape[1], -1)
    return flat[:, torch.from_numpy(probe.valid.ravel())].median(dim=1).values


def name_features(
    model: nn.Module,
    probe: ProbeSet,
    *,
    layer: str,
    config: ConceptConfig | None = None,
    space: FeatureSpace | None = None,
) -> tuple[list[FeatureName], np.ndarray]:
    """Name ``config.features`` (all by default) of ``space`` (the channels of ``layer`` by
    default) over the probe tiles.

    Returns:
        The names (of the features some tile activates, when all are named), and
        ``float32[N, F]`` the tile scores.

    Raises:
        InputError: for an unknown layer, a feature index out of range, a feature asked for
            that no probe tile activates, or a layer no tile activates at all.
    """
    cfg = config or ConceptConfig()
    module = check_layer(model, layer)
    acts = layer_activations(model, module, probe.x, batch_size=cfg.batch_size)
    space = space or Channels(int(acts.shape[1]))
    maps = space.maps(acts)
    scores = tile_scores(maps.detach())
    n_feat = scores.shape[1]
    wanted = list(cfg.features) or list(range(n_feat))
    bad = [i for i in wanted if not 0 <= i < n_feat]
    if bad:
        raise InputError(
            f"--features {bad[0]}: out of range; {layer} has {n_feat} {space.name}s (0 to "
            f"{n_feat - 1})"
        )
    z = _standardise(scores)
    k = min(cfg.top_k, max(1, len(probe) // 2))
    size = (int(probe.x.shape[-2]), int(probe.x.shape[-1]))
    results: list[FeatureName] = []
    dead: list[int] = []

    def name_group(group: list[int], top: list[int]) -> FeatureName:
        cf = counterfactual_tiles(z, group, top)
        matched: list[list[int]] = []
        for t in top:
            rest = [j for j in np.argsort(-z[t], kind="stable") if j not in group]
            matched.append([int(j) for j in rest[: cfg.matched]])
        cam_top = feature_cam(model, module, space, probe.x[top], [group] * len(top), size=size)
        cam_cf = feature_cam(model, module, space, probe.x[cf], matched, size=size)
        reg_top = _regions(cam_top, probe.valid[top], cfg.region_threshold)
        reg_cf = _regions(cam_cf, probe.valid[cf], cfg.region_threshold)
        s_top = concept_shares(reg_top, probe.concepts[top]).mean(axis=0)
        s_cf = concept_shares(reg_cf, probe.concepts[cf]).mean(axis=0)
        kept = (s_top >= max(cfg.min_share, 1e-9)) & (s_cf < cfg.contrast * s_top)
        effect = np.full(len(probe.names), np.nan)
        if cfg.min_effect > 0:
            for c in np.flatnonzero(kept):
                effect[c] = concept_effect(model, module, space, probe, top, group, int(c), scores)
            kept &= ~(effect < cfg.min_effect)
        rows: list[dict[str, Any]] = [
            {
                "concept": name,
                "score": float(s_top[c]),
                "counterfactual": float(s_cf[c]),
                "effect": None if np.isnan(effect[c]) else float(effect[c]),
                "kept": bool(kept[c]),
            }
            for c, name in enumerate(probe.names)
        ]
        rows.sort(key=lambda r: (-r["score"], r["concept"]))
        peak = [float(scores[t, group].sum()) for t in top]
        return FeatureName(group[0], rows, top, cf, reg_top, peak, partner=(
            group[1] if len(group) > 1 else None))  # fmt: skip

    for i in wanted:
        order = np.argsort(-scores[:, i], kind="stable")
        top = [int(t) for t in order[:k] if scores[t, i] > 0]  # tiles that activate it
        if not top:
            if cfg.features:  # asked for by name
                raise InputError(
                    f"feature {i} of {layer}: no probe tile activates it (its map is 0 "
                    "everywhere); give other scenes or another feature"
                )
            dead.append(i)
            continue
        fn = name_group([i], top)
        if not fn.names and cfg.pairs:
            fn = _with_partner(fn, i, scores, z, k, dead, name_group)
        results.append(fn)
        log.debug("feature %s of %s: %s", fn.label, layer, fn.names or "unnamed")
    if dead:
        log.info("%d feature(s) of %s no probe tile activates: %s", len(dead), layer,
                 ", ".join(map(str, dead)))  # fmt: skip
    if not results:
        raise InputError(
            f"no probe tile activates any feature of {layer}; give other scenes or another layer"
        )
    return results, scores


def _with_partner(
    single: FeatureName,
    i: int,
    scores: np.ndarray,
    z: np.ndarray,
    k: int,
    dead: Sequence[int],
    name_group: Callable[[list[int], list[int]], FeatureName],
) -> FeatureName:
    """An unnamed feature named with its partner, the live feature whose tile scores follow its
    own most closely (Pearson), when the pair is named: the tiles where both fire most (their
    standardised scores summed) and the pair's Grad-CAM; else the single feature unnamed."""
    live = [j for j in range(scores.shape[1]) if j != i and j not in dead and z[:, j].std() > 0]
    if not live or z[:, i].std() == 0:
        return single
    corr = [float(np.corrcoef(z[:, i], z[:, j])[0, 1]) for j in live]
    j = live[int(np.nanargmax(corr))]
    both = z[:, i] + z[:, j]
    order = np.argsort(-both, kind="stable")
    top = [int(t) for t in order[:k] if scores[t, i] > 0 and scores[t, j] > 0]
    if not top:
        return single
    pair = name_group([i, j], top)
    return pair if pair.names else single


def feature_contributions(
    model: nn.Module,
    module: nn.Module,
    x: torch.Tensor,
    region: np.ndarray,
    *,
    space: FeatureSpace | None = None,
) -> np.ndarray:
    """``float32[F]``: each feature's activation times the gradient of the summed logit over
    ``region`` (``bool[H, W]``) with respect to it, summed over the layer's positions, for one
    window ``x`` (``Tensor[1, 10, H, W]``). Positive: the feature pushes toward solar there."""
    hook = _Activations(module)
    inputs = x.detach().clone().requires_grad_(True)  # the graph through a frozen model
    with hook:
        logits = model(inputs)
    a = hook.output()
    fm = space.maps(a) if space is not None else a
    mask = torch.from_numpy(np.asarray(region, dtype=np.float32))
    target = (logits[0, 0] * mask).sum()
    (grad,) = torch.autograd.grad(target, fm, allow_unused=False)
    return (fm * grad).sum(dim=(0, 2, 3)).detach().float().numpy()


# --- a run: probe, name, explain, write ---------------------------------------------------------


def _top_contributors(contrib: np.ndarray, names: dict[int, list[str]], n: int) -> list[dict]:
    order = np.argsort(-contrib, kind="stable")[:n]
    return [
        {"feature": int(j), "contribution": float(contrib[j]), "names": names.get(int(j), [])}
        for j in order
    ]


def explain_detections(
    scene: Any,
    checkpoint: Any,
    targets: Sequence[Any],
    *,
    layer: str,
    names: dict[int, list[str]],
    top: int = 5,
    margin_px: int = 32,
) -> list[dict[str, Any]]:
    """For each target (a detection), the features that push its summed logit most
    (:func:`feature_contributions`) with their names; its window as ``solarmap explain``
    reads it.

    Raises:
        InputError: for a target outside the scene, or an unknown layer.
    """
    from attribute.targets import read_target

    model = checkpoint.freeze()
    module = check_layer(model, layer)
    rows = []
    for t in targets:
        tw = read_target(scene, checkpoint, "polygon", t.geom, margin_px=margin_px)
        region = tw.f.region_numpy()
        contrib = feature_contributions(model, module, tw.x, region)
        with torch.no_grad():
            prob = float(torch.sigmoid(model(tw.x)[0, 0][torch.from_numpy(region)]).mean())
        rows.append({
            "id": t.id,
            "geometry": t.geom,
            "mean_prob": prob,
            "features": _top_contributors(contrib, names, top),
        })  # fmt: skip
    return rows


def _thumbnails(path: Path, probe: ProbeSet, fn: FeatureName) -> Path:
    """A PNG mosaic: the top tiles (true colour, their activating region outlined in cyan)
    above their counterfactuals, 2 px of gap between tiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from attribute.georef import stretch_rgb
    from solarmap.geo import atomic_path

    t = probe.rgb.shape[-1]
    gap = 2
    k = len(fn.top)
    img = np.ones((2 * t + gap, k * (t + gap) - gap, 3), dtype=np.float32)
    for n, (top, cf, region) in enumerate(zip(fn.top, fn.counterfactual, fn.regions, strict=True)):
        c = n * (t + gap)
        tile = stretch_rgb(probe.rgb[top])
        tile[find_boundaries(region, mode="inner")] = (0.0, 0.9, 1.0)
        img[:t, c : c + t] = tile
        img[t + gap :, c : c + t] = stretch_rgb(probe.rgb[cf])
    with atomic_path(path) as tmp:
        plt.imsave(tmp, np.repeat(np.repeat(img, 2, axis=0), 2, axis=1), format="png")
    return path


def write_concepts(
    out: Path, probe: ProbeSet, results: Sequence[FeatureName], *, layer: str
) -> None:
    """``concept_scores.csv``/``.json`` (feature, concept, score, counterfactual score, kept),
    ``features.csv``/``.json`` (a line per feature: its name), ``regions.gpkg`` (the top tiles'
    activating regions with their concept shares) and a thumbnail PNG per feature."""
    import geopandas as gpd

    from attribute.georef import write_band_table
    from solarmap.geo import polygonize_mask, write_vector
    from solarmap.styles import outline_style

    write_band_table(out / "concept_scores", [
        {"layer": layer, "feature": r.feature, "rank": rank + 1, "concept": c["concept"],
         "score": round(c["score"], 4), "counterfactual": round(c["counterfactual"], 4),
         "kept": c["kept"]}
        for r in results for rank, c in enumerate(r.concepts)
    ])  # fmt: skip
    write_band_table(out / "features", [
        {"layer": layer, "feature": r.feature, "partner": r.partner, "name": "; ".join(r.names),
         "top_score": round(r.peak[0], 4), "top_tiles": len(r.top)}
        for r in results
    ])  # fmt: skip
    rows = []
    crs = probe.tiles[0]["crs"]
    for r in results:
        for k, (tile, region) in enumerate(zip(r.top, r.regions, strict=True)):
            info = probe.tiles[tile]
            if not region.any() or info["crs"] != crs:
                continue
            shares = concept_shares(region[None], probe.concepts[tile][None])[0]
            best = int(np.argmax(shares))
            for geom in polygonize_mask(region, info["transform"]):
                rows.append({
                    "feature": r.feature,
                    "rank": k + 1,
                    "scene": info["scene"],
                    "name": "; ".join(r.names),
                    "concept": probe.names[best],
                    "share": float(shares[best]),
                    "score": r.peak[k],
                    "geometry": geom,
                })  # fmt: skip
    if rows:
        write_vector(gpd.GeoDataFrame(rows, geometry="geometry", crs=crs), out / "regions.gpkg",
                     layer="regions", style=outline_style(label='"feature"'))  # fmt: skip
    for r in results:
        _thumbnails(out / "thumbs" / f"feature_{r.feature:04d}.png", probe, r)


def concept_readers(scenes: Sequence[Any], source: str) -> list[ConceptReader]:
    """A concept reader per opened scene: ``"landcover"``, the ``landcover.tif`` beside it;
    ``"osm"``, OpenStreetMap tags over its footprint from Overpass (cached); or the path of an
    OSM XML or vector file with OSM tags.

    Raises:
        InputError: for an unknown source, a scene without its land cover, or OSM concepts
            that are neither cached nor to be had.
    """
    if source == "landcover":
        readers = []
        for scene in scenes:
            path = Path(scene.info.source)
            lc = (path if path.is_dir() else path.parent) / "landcover.tif"
            if not lc.is_file():
                raise InputError(
                    f"{path}: no landcover.tif beside it; concepts from land cover need the "
                    "generator's region folder (solarmap demo-data), or give --concepts osm"
                )
            readers.append(concepts_from_landcover(lc, scene))
        return readers
    if source == "osm" or Path(source).is_file():
        return [concepts_from_osm(scene, source) for scene in scenes]
    raise InputError(
        f"--concepts {source!r}: choose landcover, osm, or an OSM XML / vector file of OSM features"
    )


#: Most OSM concepts a scene keeps (the largest by area): tags are many, most are rare.
MAX_OSM_CONCEPTS = 32


def concepts_from_osm(scene: Any, source: str = "osm") -> ConceptReader:
    """Concept masks ``key=value`` (:data:`data_prep.osm.CONCEPT_KEYS`) of OpenStreetMap
    features over the scene: from Overpass through osmnx (``source="osm"``; the answer kept
    under ``$SOLARMAP_CACHE_DIR/osm-concepts/``, so a rerun offline reads it) or from a file.
    The :data:`MAX_OSM_CONCEPTS` largest concepts are kept.

    Raises:
        InputError: if Overpass cannot be reached and nothing is cached, or the file is bad.
    """
    import hashlib

    import geopandas as gpd
    import shapely
    from rasterio.features import rasterize
    from rasterio.warp import transform_bounds

    from data_prep.osm import (
        concept_features_from_bbox,
        concept_features_from_file,
        concept_layers,
    )
    from solarmap.errors import LabelError
    from solarmap.geo import read_vector, write_vector
    from solarmap.inference import cache_dir

    info = scene.info
    bbox = tuple(round(v, 6) for v in transform_bounds(info.crs, "EPSG:4326", *info.bounds))
    if source == "osm":
        import osmnx as ox

        key = hashlib.sha256(f"{ox.settings.overpass_url}|{bbox}".encode()).hexdigest()[:20]
        cached = cache_dir().parent / "osm-concepts" / f"{key}.gpkg"
        if cached.is_file():
            layers = read_vector(cached, what="cached OSM concepts")
        else:
            try:
                raw = concept_features_from_bbox(bbox)
            except LabelError as err:
                raise InputError(
                    f"OSM concepts over {info.scene_id}: none cached ({cached.parent}) and "
                    f"{first_line(err)}"
                ) from err
            layers = concept_layers(raw)
            write_vector(layers, cached, layer="concepts")
    else:
        layers = concept_layers(concept_features_from_file(source))
    layers = gpd.GeoDataFrame(layers, geometry="geometry").to_crs(info.crs)
    layers = layers[layers.geometry.notna() & ~layers.geometry.is_empty]
    area = layers.geometry.area.groupby(layers["concept"]).sum().sort_values(ascending=False)
    names = [str(n) for n in area.index[:MAX_OSM_CONCEPTS]]
    layers = layers[layers["concept"].isin(names)]
    geoms = list(layers.geometry)
    which = np.array([names.index(c) for c in layers["concept"]], dtype=int)
    tree = shapely.STRtree(geoms)  # a tile rasterizes only the shapes that touch it
    log.info("%s: %d OSM concepts (%s%s)", info.scene_id, len(names), ", ".join(names[:6]),
             ", ..." if len(names) > 6 else "")  # fmt: skip

    def read(_scene: Any, win: Window) -> tuple[list[str], np.ndarray]:
        h, w = int(win.height), int(win.width)
        tr = window_transform(win, info.transform)
        out = np.zeros((len(names), h, w), dtype=bool)
        x0, y1 = tr * (0, 0)
        x1, y0 = tr * (w, h)
        hits = tree.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        for k in np.unique(which[hits]):
            parts = [geoms[j] for j in hits[which[hits] == k]]
            out[k] = rasterize(parts, out_shape=(h, w), transform=tr) > 0
        return names, out

    return read
