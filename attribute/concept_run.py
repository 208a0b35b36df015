"""A ``solarmap concepts`` run: probe tiles, named channels, explained detections and, when
asked, a sparse autoencoder on the same layer with its named codes and probes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribute.concepts import (
    ConceptConfig,
    FeatureName,
    ProbeSet,
    check_layer,
    concept_readers,
    default_layer,
    explain_detections,
    name_features,
    probe_tiles,
    write_concepts,
)
from attribute.sae import SaeConfig, SaeResult, concept_probes, save_sae, train_sae
from solarmap.errors import InputError


@dataclass
class ConceptsResult:
    """What :func:`concepts_run` wrote."""

    out: Path
    features: list[FeatureName]
    detections: list[dict[str, Any]]
    sae: Any = None  # SaePart


def concepts_run(
    scenes: Sequence[Any],
    checkpoint: Any,
    out: str | Path,
    *,
    config: ConceptConfig | None = None,
    concepts: str = "landcover",
    targets: Sequence[Any] = (),
    sae: SaeConfig | None = None,
    overwrite: bool = False,
) -> ConceptsResult:
    """Name the features of ``config.layer`` over the probe ``scenes`` (opened) and explain
    ``targets`` (detections in the first scene) by their strongest features; with ``sae``,
    train a sparse autoencoder on the same layer, name its features too and probe codes
    against channels. Everything goes into ``out`` (see
    :func:`~attribute.concepts.write_concepts`; ``detections.gpkg``/``.csv``; ``sae/`` with
    the autoencoder, its names and ``probes.csv``; ``concepts.json`` with the configuration,
    every name and the autoencoder's figures).

    Raises:
        InputError: for a bad layer, feature, scene or target.
        OutputExistsError: when ``out`` exists and ``overwrite`` is false.
    """
    import geopandas as gpd

    from attribute.georef import write_band_table
    from solarmap.geo import output_dir, write_json, write_vector
    from solarmap.styles import outline_style

    cfg = config or ConceptConfig()
    for scene in scenes:
        checkpoint.check_bands(scene.info.bands)
    model = checkpoint.freeze()
    layer = cfg.layer or default_layer(model)
    check_layer(model, layer)
    if cfg.tile_px % checkpoint.config.multiple:
        raise InputError(
            f"--tile-px {cfg.tile_px}: give a multiple of {checkpoint.config.multiple} "
            "(the model's)"
        )
    readers = concept_readers(scenes, concepts)
    probe = probe_tiles(scenes, readers, checkpoint.normalise, tile_px=cfg.tile_px,
                        min_valid=cfg.min_valid, max_tiles=cfg.max_tiles)  # fmt: skip
    results, scores = name_features(model, probe, layer=layer, config=cfg)
    n_feat = scores.shape[1]
    names = {r.feature: r.names for r in results}
    detections = (
        explain_detections(scenes[0], checkpoint, targets, layer=layer, names=names)
        if targets else []
    )  # fmt: skip
    sae_part = _sae_part(model, probe, layer, cfg, sae) if sae is not None else None
    with output_dir(out, overwrite=overwrite, inputs=[s.info.source for s in scenes]) as tmp:
        write_concepts(tmp, probe, results, layer=layer)
        if detections:
            flat = [
                {"id": d["id"], "mean_prob": round(d["mean_prob"], 4),
                 "features": ", ".join(str(f["feature"]) for f in d["features"]),
                 "names": " | ".join("; ".join(f["names"]) or "unnamed" for f in d["features"]),
                 "geometry": d["geometry"]}
                for d in detections
            ]  # fmt: skip
            write_vector(gpd.GeoDataFrame(flat, geometry="geometry", crs=scenes[0].info.crs),
                         tmp / "detections.gpkg", layer="detections",
                         style=outline_style(label='"names"'))  # fmt: skip
            write_band_table(tmp / "detections", [
                {"id": d["id"], "rank": k + 1, "feature": f["feature"],
                 "contribution": round(f["contribution"], 4), "names": "; ".join(f["names"])}
                for d in detections for k, f in enumerate(d["features"])
            ])  # fmt: skip
        write_json(tmp / "concepts.json", {
            "config": {**dataclasses.asdict(cfg), "layer": layer, "concepts": concepts},
            "checkpoint": checkpoint.metadata.get("path", ""),
            "scenes": [str(s.info.source) for s in scenes],
            "probe_tiles": len(probe),
            "dead_features": sorted(set(range(n_feat)) - {r.feature for r in results})
            if not cfg.features else [],
            "concept_names": probe.names,
            "features": [{"feature": r.feature, "partner": r.partner, "names": r.names,
                          "concepts": r.concepts,
                          "top_tiles": [probe.tiles[t]["scene"] + f"@{probe.tiles[t]['row']},"
                                        f"{probe.tiles[t]['col']}" for t in r.top]}
                         for r in results],
            "detections": [{k: v for k, v in d.items() if k != "geometry"} for d in detections],
            "sae": _sae_record(sae_part, sae) if sae_part and sae else None,
        })  # fmt: skip
        if sae_part and sae:
            _write_sae(tmp / "sae", probe, sae_part, sae, layer=layer)
    return ConceptsResult(Path(out), results, detections, sae_part)


@dataclass
class SaePart:
    """The autoencoder of a run, its named features and its probes."""

    result: SaeResult
    features: list[FeatureName]
    probes: dict[str, Any]


def _sae_part(
    model: Any, probe: ProbeSet, layer: str, cfg: ConceptConfig, sae: SaeConfig
) -> SaePart:
    res = train_sae(model, probe, layer=layer, config=sae)
    named, _ = name_features(model, probe, layer=layer, space=res.sae,
                             config=dataclasses.replace(cfg, features=()))  # fmt: skip
    probes = concept_probes(model, probe, res)
    names = {f.feature: f.names for f in named}
    for row in probes["best_sae"]:
        row["names"] = names.get(row["feature"], [])
    return SaePart(res, named, probes)


def _sae_record(part: SaePart, sae: SaeConfig) -> dict[str, Any]:
    p = part.probes
    return {
        "config": dataclasses.asdict(sae),
        **part.result.metrics(),
        "named": sum(bool(f.names) for f in part.features),
        "good_auc": p["good_auc"],
        "sae_features_at_good": p["sae_features_at_good"],
        "channels_at_good": p["channels_at_good"],
        "channels": p["channels"],
        "per_concept": p["per_concept"],
    }


def _write_sae(folder: Path, probe: ProbeSet, part: SaePart, sae: SaeConfig, *, layer: str) -> None:
    """``sae/``: the weights (``sae.safetensors``, ``sae.json``), the codes' names as the
    channels' (``features.csv``, ``concept_scores.csv``, ``regions.gpkg``, ``thumbs/``) and
    ``probes.csv`` (per concept the best code and channel, and the logistic probes)."""
    from attribute.georef import write_band_table

    save_sae(part.result, folder, sae)
    write_concepts(folder, probe, part.features, layer=f"{layer} (sae)")
    write_band_table(folder / "probes", [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        for row in part.probes["per_concept"]
    ])  # fmt: skip
