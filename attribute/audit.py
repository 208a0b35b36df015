"""Spurious-cue audit: does a detection rest on the panels, or on what lies beside them?

For every explained object of an ``explain`` run (:mod:`attribute.explain`) the audit measures,
with the run's attribution maps and with the model itself:

- **zones**: the object (its polygon's pixels), a boundary ring ``ring_m`` metres wide around it
  and the context beyond; per map, the share of the positive attribution mass in each zone and
  that share over the zone's share of the window's valid area (its *density*: 1 is uniform);
- **bands**: the band and band-group importance of the run's band table, and the share of it
  carried by bands that do not separate panels from ground (:data:`NON_SEPARATING`);
- **counterfactuals** (a few forward passes, on neutral land: the windows of the scene
  elsewhere where the model sees the least solar, :class:`NeutralScene`): the object with its
  ring, everything beyond replaced (``kept``); the bare object, ring and context replaced
  (``kept_bare``); and the converse, the ring and context kept with the object replaced
  (``cue``); each the mean solar probability over the object relative to the original's;
- **faithfulness of the map**: deleting the map's most attributed pixels (``delete_fraction`` of
  the valid pixels, replaced by the neutral land) against deleting as many random ones.

Flags (stated, configurable thresholds, :class:`AuditConfig`), written with the figures as
attributes on the detection polygons (``audit.gpkg``, filterable in QGIS) and summarised for the
model (``audit.json``: flagged share by area bin, zone shares, band-group importance,
counterfactuals), so two checkpoints can be compared side by side:

- ``context_reliance``: the bare object keeps less than ``1 - context_reliance`` of its
  probability, or its ring and context alone raise at least ``context_reliance`` of it
  (:func:`reliance`); the verdict says whether the ring carries it (the object with its ring
  keeps the score) or the land beyond;
- ``implausible_bands``: more than ``implausible_bands`` of the band importance lies in bands
  that do not separate panels;
- ``unfaithful_map``: deleting the map's top pixels drops the probability less than
  ``unfaithful_map`` times what deleting random pixels does.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import rasterio
import torch
from scipy.ndimage import distance_transform_edt

from attribute.faithfulness import Curves, curves, plot_curves
from attribute.faithfulness import summarise as faithfulness_rows
from attribute.targets import region_from_polygon
from solarmap.bands import BAND_GROUPS, BANDS
from solarmap.errors import InputError
from solarmap.model import Checkpoint, check_threshold
from solarmap.windows import SceneSource, read_padded

log = logging.getLogger(__name__)

#: The zones of a window, in the order of :func:`zones` codes 0, 1, 2.
ZONES: Final = ("object", "ring", "context")
#: Bands whose reflectance does not separate panels from the ground around them in the
#: measured medians of the generalization issue (panels vs background): B03 0.085/0.083 and
#: 0.081/0.083, B04 0.085/0.087 and 0.066/0.065, B12 0.140/0.148 and 0.128/0.123 in the two
#: regions, all within 5 %. The others separate: the blue rise (B02 +23-34 %), the red-edge and
#: NIR drop (B05-B8A −11 to −41 %) and B11 against NIR (the SWIR/NIR ratio).
NON_SEPARATING: Final = ("B03", "B04", "B12")
#: The maps the zone shares and the deletion check use, in order of preference: signed
#: attributions first (their positive part is evidence for solar), then the others.
PREFERRED_MAPS: Final = (
    "integrated_gradients:sum",
    "occlusion",
    "input_x_gradient:sum",
    "saliency:max_abs",
    "gradcam",
)


def _json(value: Any) -> Any:
    """JSON types, infinite ratios (a random deletion that drops nothing) as None."""
    from solarmap.geo import jsonable

    return jsonable(value, nonfinite_as_none=True)


#: Area bins of the model-level summary, hectares (upper bounds; the last is open).
AREA_BINS_HA: Final = (1.0, 5.0, 20.0)


@dataclass(frozen=True)
class AuditConfig:
    """Options of :func:`audit_run`; written to ``audit.json``."""

    ring_m: float = 30.0
    #: The map of the run the zone shares' verdict and the deletion check use (None: the first
    #: of :data:`PREFERRED_MAPS` the run holds).
    map: str | None = None
    context_reliance: float = 0.5
    implausible_bands: float = 0.5
    unfaithful_map: float = 1.0
    delete_fraction: float = 0.2
    random_draws: int = 4
    #: Also the deletion and insertion curves of every method's map (:mod:`faithfulness`):
    #: 1 + 2 x (steps + 1) x (1 + random orders) forward passes per map and object.
    faithfulness: bool = False
    faithfulness_steps: int = 10
    seed: int = 0
    #: The probability the detections were made at (None: the checkpoint's threshold). An
    #: object whose own window scores below it is not solar without land beyond its window.
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None:
            check_threshold(self.threshold, what="--threshold")
        if not (math.isfinite(self.ring_m) and self.ring_m > 0):
            raise InputError(f"--ring-m {self.ring_m}: give a ring width in metres > 0")
        for name in ("context_reliance", "implausible_bands"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 < v <= 1):
                raise InputError(f"--{name.replace('_', '-')} {v}: give a share in (0, 1]")
        if not (math.isfinite(self.unfaithful_map) and 0 < self.unfaithful_map <= 10):
            raise InputError(
                f"--unfaithful-map {self.unfaithful_map}: give a ratio to the random order in "
                "(0, 10]"
            )
        if not (math.isfinite(self.delete_fraction) and 0 < self.delete_fraction < 1):
            raise InputError(f"--delete-fraction {self.delete_fraction}: give a share in (0, 1)")
        if not (isinstance(self.random_draws, int) and 1 <= self.random_draws <= 100):
            raise InputError(f"--random-draws {self.random_draws}: give 1 to 100")
        if not (isinstance(self.faithfulness_steps, int) and 2 <= self.faithfulness_steps <= 200):
            raise InputError(f"--faithfulness-steps {self.faithfulness_steps}: give 2 to 200")


# ------------------------------------------------------------------------------------ zones


def zones(geom: Any, *, transform: Any, shape: tuple[int, int], ring_m: float) -> np.ndarray:
    """``int8[H, W]``: 0 on the object's pixels, 1 within ``ring_m`` metres of them, 2 beyond.

    Raises:
        InputError: when the polygon misses the window, or the ring leaves no context (it is
            wider than the window around the object).
    """
    obj = region_from_polygon(geom, transform=transform, shape=shape)
    pixel_m = math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))
    dist_m = distance_transform_edt(~obj) * pixel_m
    z = np.where(obj, 0, np.where(dist_m <= ring_m, 1, 2)).astype(np.int8)
    if not (z == 2).any():
        most = float(dist_m.max())
        raise InputError(
            f"--ring-m {ring_m:g}: the ring is wider than the window around the object (at "
            f"most {most:.0f} m of context); give a narrower ring or explain with a wider "
            "--margin"
        )
    return z


def zone_shares(values: np.ndarray, z: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Share of the positive mass of a map in each zone (``share_<zone>``) and that share over
    the zone's share of the valid area (``density_<zone>``); all 0 without positive mass."""
    pos = np.where(valid & np.isfinite(values), np.clip(values, 0, None), 0.0).astype(np.float64)
    total = float(pos.sum())
    area = max(int(valid.sum()), 1)
    out: dict[str, float] = {}
    for code, name in enumerate(ZONES):
        inside = (z == code) & valid
        share = float(pos[inside].sum()) / total if total > 0 else 0.0
        frac = int(inside.sum()) / area
        out[f"share_{name}"] = share
        out[f"density_{name}"] = share / frac if frac > 0 else 0.0
    return out


# ------------------------------------------------------------------------------------ bands


def band_profile(rows: Sequence[Mapping[str, Any]], method: str) -> dict[str, Any]:
    """Band and band-group importance of ``method`` from a run's band table (``bands.json``
    rows ``{"method", "band", "importance"}``), the share of :data:`NON_SEPARATING` bands, and
    the dominant band and group. Empty when the method has no per-band rows."""
    imp = {
        str(r["band"]): abs(float(r["importance"]))
        for r in rows
        if r.get("method") == method and r.get("band") in BANDS and "importance" in r
    }
    total = sum(imp.values())
    if not imp or total <= 0:
        return {}
    share = {b: imp.get(b, 0.0) / total for b in BANDS}
    groups = {g: sum(share[b] for b in members) for g, members in BAND_GROUPS.items()}
    return {
        "bands": share,
        "groups": groups,
        "non_separating": sum(share[b] for b in NON_SEPARATING),
        "dominant_band": max(share, key=lambda b: share[b]),
        "dominant_group": max(groups, key=lambda g: groups[g]),
    }


# ------------------------------------------------------------------------------ with the model


def scene_median(scene: SceneSource, *, limit: int = 2**20) -> np.ndarray:
    """``float32[B]`` per-band median reflectance of the scene's valid pixels, on a regular
    grid of at most about ``limit`` pixels, read in row strips (never the whole scene at once).

    Raises:
        InputError: when the scene holds no valid pixel.
    """
    from rasterio.windows import Window

    from solarmap.ood import sampling_step

    info = scene.info
    step = sampling_step(info.height, info.width)
    strip = max(step, (256 // step) * step)
    picks = []
    for r0 in range(0, info.height, strip):
        h = min(strip, info.height - r0)
        x, ok = scene.read(Window(0, r0, info.width, h))
        px = x[:, ::step, ::step][:, ok[::step, ::step]]
        picks.append(px)
    allpx = np.concatenate(picks, axis=1) if picks else np.zeros((len(info.bands), 0))
    if allpx.shape[1] == 0:
        raise InputError(f"{info.source}: the scene holds no valid pixel")
    return np.median(allpx, axis=1).astype(np.float32)


def _probability(model: torch.nn.Module, xs: torch.Tensor, region: torch.Tensor) -> np.ndarray:
    """Mean solar probability over ``region`` of each input of ``xs`` (``float64[N]``)."""
    with torch.no_grad():
        p = torch.sigmoid(model(xs)[:, 0])
    return (p * region).sum(dim=(-2, -1)).double().numpy() / float(region.sum())


#: Least share of valid pixels of a window of neutral land.
MIN_VALID: Final = 0.9


class NeutralScene:
    """Neutral land from elsewhere in the scene: for a window size, the ``keep`` windows of the
    scene (of ``candidates`` seeded random ones at least :data:`MIN_VALID` valid, the rest
    filled with the window's median) where the model sees the least solar, as normalised input
    ``Tensor[10, H, W]``; chosen once per size.

    Real land rather than a flat fill: a U-Net reads texture and context, and a flat field
    around a farm is unlike anything it was trained on (on the demo's detections a flat
    per-band scene median around them cut a clean model's scores by up to 80 %). Several
    windows, because one patch of land moves a score by chance. When the scene holds no such
    window of the size, the per-band scene median is the fill.
    """

    def __init__(
        self,
        scene: SceneSource,
        checkpoint: Checkpoint,
        *,
        candidates: int = 16,
        keep: int = 3,
        seed: int = 0,
    ) -> None:
        self.scene, self.checkpoint = scene, checkpoint
        self.candidates, self.keep, self.seed = candidates, keep, seed
        self._cache: dict[tuple[int, int], list[torch.Tensor]] = {}
        self._median: np.ndarray | None = None
        self.sources: dict[str, list[list[int]] | str] = {}

    def median(self) -> np.ndarray:
        """``float32[10]`` the scene's per-band median reflectance."""
        if self._median is None:
            self._median = scene_median(self.scene)
        return self._median

    def windows(self, h: int, w: int) -> list[torch.Tensor]:
        """The neutral windows of size ``h × w``, the least solar first."""
        key = (h, w)
        if key not in self._cache:
            self._cache[key] = self._choose(h, w)
        return self._cache[key]

    def _choose(self, h: int, w: int) -> list[torch.Tensor]:
        from rasterio.windows import Window

        info = self.scene.info
        rng = np.random.default_rng(self.seed + 1000003 * h + w)
        found: list[tuple[float, torch.Tensor, list[int]]] = []
        if info.height >= h and info.width >= w:
            model = self.checkpoint.model.eval()
            for _ in range(self.candidates):
                r0 = int(rng.integers(0, info.height - h + 1))
                c0 = int(rng.integers(0, info.width - w + 1))
                refl, valid = self.scene.read(Window(c0, r0, w, h))
                if valid.mean() < MIN_VALID:
                    continue
                if not valid.all():  # a few cloudy pixels: the window's own land median there
                    fill = np.nanmedian(refl[:, valid], axis=1)[:, None, None]
                    refl = np.where(valid, refl, fill)
                x = self.checkpoint.normalise(torch.from_numpy(refl.astype(np.float32))[None])
                with torch.no_grad():
                    p = torch.sigmoid(model(x))
                solar = float((p > self.checkpoint.threshold).float().mean() + p.mean() * 1e-3)
                found.append((solar, x[0], [c0, r0]))
        found.sort(key=lambda t: t[0])
        if not found:
            self.sources[f"{h}x{w}"] = "scene median"
            med = torch.from_numpy(self.median())[None, :, None, None]
            return [self.checkpoint.normalise(med)[0].expand(-1, h, w).clone()]
        self.sources[f"{h}x{w}"] = [f[2] for f in found[: self.keep]]
        return [f[1] for f in found[: self.keep]]


def counterfactuals(
    model: torch.nn.Module,
    x: torch.Tensor,
    z: np.ndarray,
    valid: np.ndarray,
    neutral: Sequence[torch.Tensor],
    *,
    threshold: float | None = None,
) -> dict[str, float]:
    """The object's mean probability as it is (``p_object``), with everything beyond the ring
    neutral (``p_object_alone``: the object and its ring kept), and with the object neutral and
    its ring and context kept (``p_context_only``), each averaged over the ``neutral`` lands;
    the ratios to ``p_object`` (``kept``: of the score the object alone keeps, ``cue``: of the
    score the context alone raises) clipped to ``[0, 1]``. With ``threshold``, also
    ``detected_in_window``: 1 when ``p_object`` reaches it, else 0 (the detection needs land
    beyond the window, and the ratios to a score below the threshold mean nothing).

    ``neutral`` holds windows of neutral land ``Tensor[10, H, W]`` (normalised,
    :class:`NeutralScene`); no-data pixels stay as they are.
    """
    region = torch.from_numpy(z == 0).to(x.dtype)
    ok = torch.from_numpy(valid)
    beyond = torch.from_numpy(z == 2) & ok
    obj = torch.from_numpy(z == 0) & ok
    around = torch.from_numpy(z != 0) & ok
    inputs = [x[0]]
    for land in neutral:
        fill = land.to(x.dtype)
        alone = x[0].clone()
        alone[:, beyond] = fill[:, beyond]
        bare = x[0].clone()
        bare[:, around] = fill[:, around]
        context = x[0].clone()
        context[:, obj] = fill[:, obj]
        inputs += [alone, bare, context]
    p = _probability(model, torch.stack(inputs), region)
    p_alone, p_bare, p_ctx = (float(p[k::3].mean()) for k in (1, 2, 3))
    scale = max(float(p[0]), 1e-6)
    seen = {} if threshold is None else {"detected_in_window": float(float(p[0]) >= threshold)}
    return seen | {
        "p_object": float(p[0]),
        "p_object_alone": p_alone,
        "p_object_bare": p_bare,
        "p_context_only": p_ctx,
        "kept": float(np.clip(p_alone / scale, 0, 1)),
        "kept_bare": float(np.clip(p_bare / scale, 0, 1)),
        "cue": float(np.clip(p_ctx / scale, 0, 1)),
    }


def deletion_check(
    model: torch.nn.Module,
    x: torch.Tensor,
    values: np.ndarray,
    z: np.ndarray,
    valid: np.ndarray,
    neutral: torch.Tensor,
    *,
    fraction: float,
    draws: int,
    seed: int,
) -> dict[str, float]:
    """Drop of the object's mean probability when the map's top ``fraction`` of valid pixels
    (by value) are replaced by the ``neutral`` land ``Tensor[10, H, W]``, against the mean
    drop over ``draws`` random sets of as many valid pixels (seeded); ``ratio`` is the map's
    drop over the random one."""
    region = torch.from_numpy(z == 0).to(x.dtype)
    flat_valid = np.flatnonzero(valid.ravel())
    k = max(1, round(fraction * flat_valid.size))
    score = np.nan_to_num(values.ravel()[flat_valid], nan=-np.inf)
    top = flat_valid[np.argsort(-score, kind="stable")[:k]]
    rng = np.random.default_rng(seed)
    sets = [top] + [rng.choice(flat_valid, k, replace=False) for _ in range(draws)]
    h, w = z.shape
    batch = x.expand(len(sets) + 1, -1, -1, -1).clone()
    fill = neutral.to(x.dtype).reshape(x.shape[1], h * w)
    for i, idx in enumerate(sets, start=1):
        flat = batch[i].reshape(x.shape[1], h * w)
        pick = torch.from_numpy(idx)
        flat[:, pick] = fill[:, pick]
    p = _probability(model, batch, region)
    drop_map = float(p[0] - p[1])
    drop_random = float(np.mean(p[0] - p[2:]))
    ratio = drop_map / drop_random if drop_random > 1e-6 else (math.inf if drop_map > 0 else 0.0)
    return {"drop_map": drop_map, "drop_random": drop_random, "ratio": ratio}


# ------------------------------------------------------------------------------- one object


@dataclass
class ObjectAudit:
    """The audit of one explained object: figures, flags and a verdict."""

    id: int
    area_ha: float
    map: str
    zones: dict[str, float]
    bands: dict[str, Any]
    counterfactual: dict[str, float]
    deletion: dict[str, float]
    flags: dict[str, bool]
    verdict: str

    def row(self) -> dict[str, Any]:
        """Flat attributes for the GeoPackage layer."""
        row: dict[str, Any] = {"id": self.id, "area_ha": self.area_ha, "map": self.map}
        row |= {k: round(v, 6) for k, v in self.zones.items()}
        row |= {k: round(v, 6) for k, v in self.counterfactual.items()}
        row |= {f"deletion_{k}": _finite(v) for k, v in self.deletion.items()}
        if self.bands:
            row["dominant_band"] = self.bands["dominant_band"]
            row["dominant_group"] = self.bands["dominant_group"]
            row["non_separating"] = round(self.bands["non_separating"], 6)
        row |= {k: int(v) for k, v in self.flags.items()}
        row["flagged"] = int(any(self.flags.values()))
        row["verdict"] = self.verdict
        return row


def _finite(v: float) -> float | None:
    return round(v, 6) if math.isfinite(v) else None


def reliance(cf: Mapping[str, float]) -> float:
    """How much a detection rests on what surrounds it: ``max(1 - kept_bare, cue)``, the score
    lost when the ring and the context are replaced by neutral land, or the score the ring and
    context raise without the object, both relative to the object's score; 1 for an object its
    own window does not find solar (the score comes from land beyond the window)."""
    if _beyond_window(cf):
        return 1.0
    return max(1 - cf["kept_bare"], cf["cue"])


def _beyond_window(cf: Mapping[str, float]) -> bool:
    """Whether the object's own window does not find it solar (see :func:`counterfactuals`)."""
    return cf.get("detected_in_window", 1.0) == 0.0


def judge(
    cf: Mapping[str, float],
    bands: Mapping[str, Any],
    deletion: Mapping[str, float],
    cfg: AuditConfig,
) -> tuple[dict[str, bool], str]:
    """The flags of one object and its verdict, a sentence a reviewer can act on."""
    flags = {
        "context_reliance": bool(reliance(cf) >= cfg.context_reliance),
        "implausible_bands": bool(bands and bands["non_separating"] > cfg.implausible_bands),
        "unfaithful_map": bool(deletion["ratio"] < cfg.unfaithful_map),
    }
    if flags["context_reliance"] and _beyond_window(cf):
        verdict = (
            f"is not solar in its own window (p {cf['p_object']:.2f}): rests on land beyond "
            "it, not on the panels"
        )
    elif flags["context_reliance"]:
        # the ring alone (the land beyond it neutral) gives the score back: the ring carries it
        ring = cf["kept"] > 1 - cfg.context_reliance
        verdict = (
            f"rests on {'the ring beside it' if ring else 'the land around it'}, not on the panels"
        )
    elif flags["implausible_bands"]:
        verdict = f"rests on bands that do not separate panels ({bands['dominant_band']} leads)"
    else:
        verdict = "rests on the panels"
    if flags["unfaithful_map"]:
        verdict += "; its map is not faithful (deleting its top pixels drops less than random)"
    return flags, verdict


# ------------------------------------------------------------------------------- the run


@dataclass
class ExplainedObject:
    """One object of an explain run as the audit reads it."""

    id: int
    geom: Any
    folder: Path
    maps: dict[str, np.ndarray]
    transform: Any
    window: Any
    bands: list[dict[str, Any]]


def read_explanation(
    folder: Path, *, ids: Sequence[int] | None = None, scene_id: str | None = None
) -> list[ExplainedObject]:
    """The objects of an explain run (its ``explain.json``, ``targets.gpkg`` and each target's
    ``attribution.tif`` and ``bands.json``), or only ``ids``.

    Raises:
        InputError: when ``folder`` is no explain run, an asked-for object has no attribution
            run, or the run explained another scene than ``scene_id``.
    """
    from rasterio.windows import Window

    from solarmap.geo import read_vector

    record = folder / "explain.json"
    if not record.is_file():
        raise InputError(f"{folder}: no explain run here (no explain.json); run solarmap explain")
    try:
        meta = json.loads(record.read_text())
        targets = {int(t["id"]): t for t in meta["targets"]}
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{record}: not an explain record ({err})") from err
    shapes = read_vector(folder / "targets.gpkg")
    geoms = {int(i): g for i, g in zip(shapes["id"], shapes.geometry, strict=True)}
    wanted = list(targets) if ids is None else list(ids)
    missing = [i for i in wanted if i not in targets or i not in geoms]
    if missing:
        have = ", ".join(map(str, sorted(targets))) or "none"
        raise InputError(
            f"object {missing[0]} has no attribution run in {folder} (explained: {have}); "
            "explain it first or audit the objects explained"
        )
    out = []
    for i in wanted:
        sub = folder / targets[i]["folder"]
        tif = sub / "attribution.tif"
        if not tif.is_file():
            raise InputError(f"object {i} has no attribution maps ({tif} is missing)")
        with rasterio.open(tif) as src:
            if scene_id is not None and src.tags().get("SCENE_ID") not in (None, scene_id):
                raise InputError(
                    f"{folder}: explained scene {src.tags()['SCENE_ID']}, not {scene_id}; "
                    "audit with the scene the run explained"
                )
            maps = {d: src.read(k + 1) for k, d in enumerate(src.descriptions) if d}
            transform = src.transform
        col, row, w, h = targets[i]["window"]
        rows_path = sub / "bands.json"
        rows = json.loads(rows_path.read_text()) if rows_path.is_file() else []
        out.append(ExplainedObject(i, geoms[i], sub, maps, transform, Window(col, row, w, h), rows))
    return out


def _pick_map(maps: Mapping[str, np.ndarray], wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in maps:
            raise InputError(f"--map {wanted}: the run has no such map (it has {', '.join(maps)})")
        return wanted
    for name in PREFERRED_MAPS:
        if name in maps:
            return name
    return next(iter(maps))


def audit_object(
    obj: ExplainedObject,
    scene: SceneSource,
    checkpoint: Checkpoint,
    neutral_scene: NeutralScene,
    cfg: AuditConfig,
) -> tuple[ObjectAudit, dict[str, Curves]]:
    """Audit one explained object (see the module docstring); also the deletion and insertion
    curves of each method's map (:func:`faithfulness_maps`)."""
    refl, valid = read_padded(scene, obj.window)
    x = checkpoint.normalise(torch.from_numpy(refl)[None])
    shape = (int(obj.window.height), int(obj.window.width))
    neutral = neutral_scene.windows(*shape)
    z = zones(obj.geom, transform=obj.transform, shape=shape, ring_m=cfg.ring_m)
    name = _pick_map(obj.maps, cfg.map)
    values = obj.maps[name]
    shares = zone_shares(values, z, valid)
    method = name.split(":")[0]
    bands = band_profile(obj.bands, method) or next(
        (p for m in PREFERRED_MAPS if (p := band_profile(obj.bands, m.split(":")[0]))), {}
    )
    model = checkpoint.model.eval()
    threshold = cfg.threshold if cfg.threshold is not None else checkpoint.threshold
    cf = counterfactuals(model, x, z, valid, neutral, threshold=threshold)
    deletion = deletion_check(
        model, x, values, z, valid, neutral[0],
        fraction=cfg.delete_fraction, draws=cfg.random_draws, seed=cfg.seed,
    )  # fmt: skip
    flags, verdict = judge(cf, bands, deletion, cfg)
    faithful = {}
    if cfg.faithfulness:  # the scene median is read (once, a scan of the scene) only here
        median = torch.from_numpy(neutral_scene.median())[None, :, None, None]
        fill = checkpoint.normalise(median)[0, :, 0, 0]
        faithful = {
            m: curves(
                model,
                x,
                obj.maps[m],
                z == 0,
                valid,
                fill="median",
                median=fill,
                steps=cfg.faithfulness_steps,
                seed=cfg.seed,
            )
            for m in faithfulness_maps(obj.maps)
        }
    pixel_m2 = abs(obj.transform.a * obj.transform.e - obj.transform.b * obj.transform.d)
    area_ha = float(obj.geom.area) / 1e4 if hasattr(obj.geom, "area") else 0.0
    if area_ha <= 0:
        area_ha = float((z == 0).sum()) * pixel_m2 / 1e4
    audit = ObjectAudit(
        id=obj.id,
        area_ha=area_ha,
        map=name,
        zones=shares,
        bands=bands,
        counterfactual=cf,
        deletion=deletion,
        flags=flags,
        verdict=verdict,
    )
    return audit, faithful


def faithfulness_maps(maps: Mapping[str, np.ndarray]) -> list[str]:
    """One map per method of a run for the deletion and insertion curves: its signed ``sum``
    reduction where it has one (positive values are evidence for solar), else its first."""
    out: dict[str, str] = {}
    for name in maps:
        method = name.split(":")[0]
        if method not in out or name.endswith(":sum"):
            out[method] = name
    return list(out.values())


def summarise(audits: Sequence[ObjectAudit]) -> dict[str, Any]:
    """What the model relies on overall: the flagged share (by flag and area bin), mean zone
    shares, band-group importance and counterfactuals, and ``reliance``: the mean over objects
    of :func:`reliance`, the model-level context-reliance score."""
    if not audits:
        return {"objects": 0}
    edges = (0.0, *AREA_BINS_HA, math.inf)
    bins = {}
    for lo, hi in itertools.pairwise(edges):
        inside = [a for a in audits if lo <= a.area_ha < hi]
        label = f"{lo:g}-{hi:g} ha" if math.isfinite(hi) else f">= {lo:g} ha"
        bins[label] = {
            "objects": len(inside),
            "flagged": sum(any(a.flags.values()) for a in inside) / len(inside) if inside else None,
        }
    flag_names = list(audits[0].flags)
    groups = [a.bands["groups"] for a in audits if a.bands]
    mean = lambda vals: float(np.mean(vals)) if len(vals) else None  # noqa: E731
    return {
        "objects": len(audits),
        "flagged": mean([any(a.flags.values()) for a in audits]),
        "flags": {f: mean([a.flags[f] for a in audits]) for f in flag_names},
        "by_area": bins,
        "zones": {k: mean([a.zones[k] for a in audits]) for k in audits[0].zones},
        "band_groups": {g: mean([gr[g] for gr in groups]) for g in BAND_GROUPS} if groups else {},
        "counterfactual": {
            k: mean([a.counterfactual[k] for a in audits]) for k in audits[0].counterfactual
        },
        "reliance": mean([reliance(a.counterfactual) for a in audits]),
    }


@dataclass
class AuditResult:
    """What :func:`audit_run` wrote and found."""

    out: Path
    objects: list[ObjectAudit]
    summary: dict[str, Any]


def audit_run(
    scene: SceneSource,
    checkpoint: Checkpoint,
    explanation: Path,
    out: str | Path,
    *,
    config: AuditConfig | None = None,
    ids: Sequence[int] | None = None,
    overwrite: bool = False,
    explained_here: bool = False,
) -> AuditResult:
    """Audit the objects of the explain run ``explanation`` (all, or ``ids``) on ``scene`` with
    ``checkpoint`` (the model the run explained), and write ``out/audit.gpkg`` (the detection
    polygons with every figure, flag and verdict as attributes, styled by flag for QGIS) and
    ``out/audit.json`` (configuration, per-object records, model-level summary), atomically.

    With ``explained_here`` the run folder is ``out/explanation`` already, built by the caller
    inside the same temporary folder (see :func:`explain_and_audit`); ``out`` is then that
    temporary folder.

    Raises:
        InputError: for no explain run, an object with no attribution run, a ring wider than
            the window, or thresholds out of range.
        CheckpointError: when the checkpoint's bands differ from the scene's.
    """
    import geopandas as gpd

    from solarmap.geo import output_dir, write_json, write_vector
    from solarmap.progress import track
    from solarmap.styles import audit_style

    cfg = config or AuditConfig()
    checkpoint.check_bands(scene.info.bands)
    objects = read_explanation(Path(explanation), ids=ids, scene_id=scene.info.scene_id)
    for obj in objects:  # options that fail for some object fail before any model pass
        zones(obj.geom, transform=obj.transform, shape=(int(obj.window.height),
              int(obj.window.width)), ring_m=cfg.ring_m)  # fmt: skip
        _pick_map(obj.maps, cfg.map)
    checkpoint.freeze()
    neutral = NeutralScene(scene, checkpoint, seed=cfg.seed)
    done = [audit_object(o, scene, checkpoint, neutral, cfg) for o in track(objects, "auditing")]
    audits = [a for a, _ in done]
    by_map: dict[str, list[Curves]] = {}
    for _, faithful in done:
        for m, c in faithful.items():
            by_map.setdefault(m, []).append(c)
    faithfulness = faithfulness_rows(by_map)
    summary = summarise(audits)
    summary["faithfulness"] = faithfulness
    record = {
        "config": asdict(cfg),
        "scene": str(scene.info.source),
        "checkpoint": checkpoint.metadata.get("path", ""),
        "explanation": "explanation" if explained_here else str(explanation),
        "neutral_land": neutral.sources,
        "objects": [asdict(a) for a in audits],
        "summary": summary,
    }
    rows = [a.row() | {"geometry": o.geom} for a, o in zip(audits, objects, strict=True)]
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=scene.info.crs)

    def write(folder: Path) -> None:
        import csv

        write_vector(gdf, folder / "audit.gpkg", layer="audit", style=audit_style())
        write_json(folder / "audit.json", _json(record))
        if faithfulness:
            with (folder / "faithfulness.csv").open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(faithfulness[0]))
                w.writeheader()
                w.writerows(_json(faithfulness))
        for m, cs in by_map.items():
            plot_curves(folder / f"faithfulness_{m.replace(':', '_')}.png", m, cs)

    if explained_here:
        write(Path(out))
    else:
        with output_dir(out, overwrite=overwrite, inputs=[explanation]) as tmp:
            write(tmp)
    for a in audits:
        log.info("object %d: %s", a.id, a.verdict)
    return AuditResult(out=Path(out), objects=audits, summary=summary)


def check_ring(
    scene: SceneSource,
    checkpoint: Checkpoint,
    targets: Sequence[Any],
    *,
    margin_px: int,
    ring_m: float,
) -> None:
    """Fail before any work when the ring leaves some target's window no context.

    Raises:
        InputError: see :func:`zones`.
    """
    from rasterio.windows import transform as window_transform

    from attribute.targets import target_window

    for t in targets:
        win = target_window(scene, checkpoint, t.geom, margin_px=margin_px)
        tr = window_transform(win, scene.info.transform)
        zones(t.geom, transform=tr, shape=(int(win.height), int(win.width)), ring_m=ring_m)


def explain_and_audit(
    scene: SceneSource,
    checkpoint: Checkpoint,
    targets: list[Any],
    out: str | Path,
    *,
    explain_config: Any = None,
    config: AuditConfig | None = None,
    overwrite: bool = False,
) -> AuditResult:
    """Explain ``targets`` (:func:`attribute.explain.explain_scene`) into ``out/explanation``
    and audit them (:func:`audit_run`), the whole folder built atomically."""
    from attribute.explain import ExplainConfig, explain_scene
    from solarmap.geo import output_dir

    cfg = config or AuditConfig()
    margin = (explain_config or ExplainConfig()).margin_px
    check_ring(scene, checkpoint, targets, margin_px=margin, ring_m=cfg.ring_m)
    with output_dir(out, overwrite=overwrite) as tmp:
        explain_scene(scene, checkpoint, targets, tmp / "explanation", config=explain_config)
        res = audit_run(
            scene, checkpoint, tmp / "explanation", tmp, config=cfg, explained_here=True
        )
    return AuditResult(out=Path(out), objects=res.objects, summary=res.summary)


def compare_summaries(summaries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{figure, <name>: value...}`` of the model-level summaries side by side."""
    keys = [
        ("objects", ("objects",)),
        ("flagged share", ("flagged",)),
        *[(f"flag {f}", ("flags", f)) for f in ("context_reliance", "implausible_bands",
                                                 "unfaithful_map")],
        ("reliance score", ("reliance",)),
        *[(f"mass share {z}", ("zones", f"share_{z}")) for z in ZONES],
        *[(f"importance {g}", ("band_groups", g)) for g in BAND_GROUPS],
        ("object alone keeps", ("counterfactual", "kept")),
        ("context alone raises", ("counterfactual", "cue")),
    ]  # fmt: skip
    rows = []
    for label, path in keys:
        row: dict[str, Any] = {"figure": label}
        for name, s in summaries.items():
            v: Any = s
            for p in path:
                v = v.get(p) if isinstance(v, Mapping) else None
            row[name] = v
        rows.append(row)
    return rows


def compare_checkpoints(
    scene: SceneSource,
    checkpoints: Mapping[str, Checkpoint],
    targets: list[Any],
    out: str | Path,
    *,
    explain_config: Any = None,
    config: AuditConfig | None = None,
    overwrite: bool = False,
) -> dict[str, AuditResult]:
    """Explain and audit the same ``targets`` with each checkpoint (``out/<name>/``, as
    :func:`explain_and_audit`), and write the model-level summaries side by side
    (``out/compare.json`` and ``out/compare.csv``), the whole folder built atomically.

    Raises:
        CheckpointError: when the checkpoints take different bands (their audits would not
            be comparable), or differ from the scene's.
    """
    import csv

    from attribute.explain import ExplainConfig, explain_scene
    from solarmap.errors import CheckpointError
    from solarmap.geo import output_dir, write_json

    cfg = config or AuditConfig()
    names = list(checkpoints)
    first = checkpoints[names[0]]
    for name in names[1:]:
        if checkpoints[name].bands != first.bands:
            raise CheckpointError(
                f"--compare: {names[0]} takes bands {', '.join(first.bands)} and {name} takes "
                f"{', '.join(checkpoints[name].bands)}; compare checkpoints of the same bands"
            )
    first.check_bands(scene.info.bands)
    margin = (explain_config or ExplainConfig()).margin_px
    check_ring(scene, first, targets, margin_px=margin, ring_m=cfg.ring_m)
    results: dict[str, AuditResult] = {}
    with output_dir(out, overwrite=overwrite) as tmp:
        for name, ck in checkpoints.items():
            sub = tmp / name
            explain_scene(scene, ck, targets, sub / "explanation", config=explain_config)
            results[name] = audit_run(
                scene, ck, sub / "explanation", sub, config=cfg, explained_here=True
            )
        rows = compare_summaries({n: r.summary for n, r in results.items()})
        write_json(tmp / "compare.json", _json({"checkpoints": names, "rows": rows}))
        with (tmp / "compare.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["figure", *names])
            writer.writeheader()
            writer.writerows(_json(rows))
    return {n: AuditResult(Path(out) / n, r.objects, r.summary) for n, r in results.items()}
