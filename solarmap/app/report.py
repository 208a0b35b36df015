"""``solarmap report``: one self-contained HTML page of a run, for people who do not run Python.

The page gathers what the commands wrote — a demo, a prediction (with its metrics when it was
evaluated), an explanation, an audit (with its faithfulness curves) and a sanity check — into one
file: a false-colour quicklook of the scene, the probability map and the detections, the metrics
and PR curve, each audited object's attribution panels, zone shares, flags and verdict, the
sanity and faithfulness tables and curves, and the configuration and checkpoint hash of every
run.

Every picture is inlined as a ``data:`` URI and a Content-Security-Policy forbids loading
anything else, so the page works offline, from a mail attachment or a USB stick, and shows the
same thing everywhere. There is no script on the page. Text that comes from inputs (file names,
OSM names, scene ids, configuration values) is escaped with :func:`html.escape`.

Why hand-written HTML: the page is headings, tables and images; a template engine would add a
dependency for escaping, which :func:`html.escape` does.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

import solarmap
from solarmap.errors import InputError, InputFileError
from solarmap.predict import REPORT_FILE as PREDICT_RECORD

log = logging.getLogger(__name__)

#: The record each command writes into its output folder, by run kind.
RECORDS: Final = {
    "predict": PREDICT_RECORD,
    "explain": "explain.json",
    "audit": "audit.json",
    "sanity": "sanity.json",
    "concepts": "concepts.json",
}
#: Named features shown with their thumbnails in a concepts section (the highest scoring).
CONCEPT_THUMBNAILS: Final = 12
#: A demo folder: its summary, and the folders of its prediction and checkpoint.
DEMO_RECORD: Final = "summary.json"
#: Longest side of the scene pictures, pixels.
PICTURE_SIDE: Final = 900
#: Rows of the detections table (the largest first).
DETECTION_ROWS: Final = 25
#: Nothing but the inlined pictures and the page's own style may load.
CSP: Final = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; }
.flagged { color: #b2182b; font-weight: bold; } .ok { color: #1b7837; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; font-size: 0.8em; }
nav a { margin-right: 1em; } div.wide { overflow-x: auto; }
.note { color: #555; font-style: italic; }
"""


@dataclass(frozen=True)
class Run:
    """One command's output folder: its kind, folder and record (the JSON it wrote)."""

    kind: str
    folder: Path
    record: Mapping[str, Any]


@dataclass(frozen=True)
class ReportConfig:
    """Options of ``solarmap report``.

    Attributes:
        scene: the scene the runs were made on, when it is no longer where they recorded it.
        labels: OSM labels (a file ``read_labels`` reads) whose names the detections table
            shows (default for a demo: the unseen region's ``labels.osm``).
        title: the page title (default: from the runs).
    """

    scene: Path | None = None
    labels: Path | None = None
    title: str | None = None


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    runs: list[Run]
    sections: list[str]
    notes: list[str] = field(default_factory=list)


# --- finding the runs ------------------------------------------------------------------------


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputFileError(f"{path}: cannot be read ({err.strerror or err})") from err
    except (ValueError, RecursionError) as err:
        raise InputFileError(
            f"{path}: not valid JSON (damaged?); rerun the command that wrote it"
        ) from err
    if not isinstance(record, dict):
        raise InputFileError(f"{path}: not a solarmap record (a JSON object)")
    return record


def _kind_of(folder: Path) -> str | None:
    if (folder / DEMO_RECORD).is_file() and (folder / "prediction" / RECORDS["predict"]).is_file():
        return "demo"
    for kind, name in RECORDS.items():
        if (folder / name).is_file():
            return kind
    return None


def find_runs(paths: Sequence[Path]) -> list[Run]:
    """The runs in ``paths``: each folder's own run, a demo's prediction, and the runs in its
    immediate subfolders (an audit's explanation belongs to the audit and is not listed again).

    Raises:
        InputError: if a path is missing, not a folder, or holds no solarmap run.
        InputFileError: if a run's record is not readable JSON.
    """
    if not paths:
        raise InputError("give at least one --run: a folder a solarmap command wrote")
    runs: list[Run] = []
    seen: set[Path] = set()

    def add(kind: str, folder: Path) -> None:
        key = folder.resolve()
        if key in seen:
            return
        seen.add(key)
        name = DEMO_RECORD if kind == "demo" else RECORDS[kind]
        runs.append(Run(kind, folder, _read_record(folder / name)))

    for path in paths:
        p = Path(path)
        if not p.exists():
            raise InputError(f"--run {p}: not found; give a folder a solarmap command wrote")
        if not p.is_dir():
            raise InputError(f"--run {p}: not a folder; give the folder the command wrote")
        before = len(runs)
        for folder in [p, *sorted(q for q in p.iterdir() if q.is_dir())]:
            kind = _kind_of(folder)
            if kind is None:
                continue
            add(kind, folder)
            if kind == "demo":
                add("predict", folder / "prediction")
        if len(runs) == before and not any(r.folder.resolve() == p.resolve() for r in runs):
            raise InputError(
                f"--run {p}: no solarmap run here (no {', '.join(RECORDS.values())} or demo "
                f"{DEMO_RECORD}); give a folder that predict, explain, audit, sanity, concepts "
                "or demo wrote"
            )
    explanations = set()
    for r in runs:
        if r.kind == "audit" and isinstance(r.record.get("explanation"), str):
            found = _locate(r.record["explanation"], r.folder)
            if found is not None:
                explanations.add(found.resolve())
    return [r for r in runs if not (r.kind == "explain" and r.folder.resolve() in explanations)]


def _locate(recorded: Any, base: Path) -> Path | None:
    """A path a record names: relative to the record's folder, or as written (relative to
    where the command ran); None when it is in neither place."""
    if not isinstance(recorded, str) or not recorded:
        return None
    p = Path(recorded)
    for candidate in [p] if p.is_absolute() else [base / p, p]:
        if candidate.exists():
            return candidate
    return None


# --- HTML helpers -----------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.4g}"
    return str(value)


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f'<td class="n">{_e(_fmt(value))}</td>' if numeric else f"<td>{_e(_fmt(value))}</td>"


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return '<p class="note">(none)</p>'
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in cols) + "</tr>" for r in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def _pairs(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th>{_cell(v)}</tr>" for k, v in items)
    return f"<table>{rows}</table>"


def _img(png: bytes, alt: str, caption: str | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    img = f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
    return f"<figure>{img}<figcaption>{_e(caption or alt)}</figcaption></figure>"


def _png_file(path: Path, alt: str, caption: str | None = None) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return f'<p class="note">{_e(path.name)}: missing</p>'
    if not data.startswith(b"\x89PNG"):
        return f'<p class="note">{_e(path.name)}: not a PNG image; left out</p>'
    return _img(data, alt, caption)


def _json_block(title: str, obj: Any) -> str:
    text = json.dumps(obj, indent=1, default=str, allow_nan=True)
    return f"<details><summary>{_e(title)}</summary><pre>{_e(text)}</pre></details>"


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- sections ---------------------------------------------------------------------------------


@dataclass
class _Page:
    title: str
    base: Path  # the report's folder: paths are shown relative to it
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # id, heading, body
    notes: list[str] = field(default_factory=list)

    def add(self, ident: str, heading: str, body: str) -> None:
        self.sections.append((ident, heading, body))

    def shown(self, path: Path) -> str:
        """``path`` as the page shows it: relative to the report (the page may move with the
        runs), or absolute when it is on another drive."""
        try:
            return os.path.relpath(path.resolve(), self.base.resolve())
        except ValueError:
            return str(path.resolve())

    def note(self, text: str) -> str:
        self.notes.append(text)
        log.warning("report: %s", text)
        return _note(text)

    def html(self, runs: Sequence[Run]) -> str:
        nav = "".join(f'<a href="#{_e(i)}">{_e(h)}</a>' for i, h, _ in self.sections)
        listed = _table(
            [{"kind": r.kind, "folder": self.shown(r.folder)} for r in runs], ["kind", "folder"]
        )
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        body = "".join(f'<section id="{_e(i)}"><h2>{_e(h)}</h2>{b}</section>'
                       for i, h, b in self.sections)  # fmt: skip
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(self.title)}</h1>"
            f"<p>solarmap {_e(solarmap.__version__)}, report made {_e(now)}.</p>"
            f"{listed}<nav>{nav}</nav>{body}</body></html>\n"
        )


def _scene_path(run: Run, config: ReportConfig) -> Path | None:
    if config.scene is not None:
        return config.scene
    scene = run.record.get("scene")
    recorded = scene.get("source") if isinstance(scene, dict) else scene
    return _locate(recorded, run.folder)


def _prediction_section(page: _Page, run: Run, config: ReportConfig, labels: Path | None) -> None:
    from rasterio.enums import Resampling

    from solarmap.geo import open_raster, read_vector
    from solarmap.predict import POLYGONS_FILE, POLYGONS_LAYER, PROBABILITY_FILE

    rec = run.record
    scene: dict[str, Any] = rec["scene"] if isinstance(rec.get("scene"), dict) else {}
    parts: list[str] = [
        _pairs(
            [
                ("scene id", scene.get("scene_id")),
                ("date", scene.get("date")),
                ("size (pixels)", f"{scene.get('width')} x {scene.get('height')}"),
                ("CRS", scene.get("crs")),
                ("threshold", rec.get("threshold")),
                ("detections", (rec.get("counts") or {}).get("polygons")),
            ]
        )
    ]
    prob_path = run.folder / PROBABILITY_FILE
    poly_path = run.folder / POLYGONS_FILE
    with open_raster(prob_path, what="probability map") as ds:
        step = max(1.0, max(ds.width, ds.height) / PICTURE_SIDE)
        shape = (max(1, round(ds.height / step)), max(1, round(ds.width / step)))
        prob = ds.read(1, out_shape=shape, masked=True, resampling=Resampling.average)
        prob = prob.astype(np.float32).filled(np.nan)
        b = ds.bounds
        extent = (b.left, b.right, b.bottom, b.top)
        crs = ds.crs
    polygons = read_vector(poly_path, what="detections", layer=POLYGONS_LAYER)
    if crs is not None and polygons.crs is not None and len(polygons):
        polygons = polygons.to_crs(crs)

    rgb = None
    scene_path = _scene_path(run, config)
    if scene_path is None:
        parts.append(
            page.note(
                f"scene {scene.get('source')!s} not found from {page.shown(run.folder)}; pass "
                "--scene to "
                "show the false-colour quicklook"
            )
        )
    else:
        from attribute.georef import stretch_rgb
        from data_prep.sentinel2 import open_scene
        from solarmap.bands import FALSE_COLOR

        with open_scene(scene_path) as src:
            if (src.info.width, src.info.height) != (scene.get("width"), scene.get("height")):
                raise InputError(
                    f"--scene {scene_path}: {src.info.width}x{src.info.height} pixels, but the "
                    f"prediction in {run.folder} is {scene.get('width')}x{scene.get('height')}; "
                    "give the scene it was made from"
                )
            rgb = stretch_rgb(src.read_overview(list(FALSE_COLOR), max_side=PICTURE_SIDE))

    plt = _pyplot()
    figures = []
    if rgb is not None:
        fig, ax = plt.subplots(figsize=(3.8, 3.8))
        ax.imshow(rgb, extent=extent, interpolation="nearest")
        ax.set_title("false colour B12/B08/B04", fontsize=10)
        ax.set_axis_off()
        figures.append(_img(_figure_png(fig), "false-colour quicklook (B12, B08, B04)"))
    fig, ax = plt.subplots(figsize=(4.3, 3.8))
    im = ax.imshow(prob, extent=extent, cmap="YlOrRd", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="probability of solar")
    ax.set_title("probability", fontsize=10)
    ax.set_axis_off()
    figures.append(_img(_figure_png(fig), "probability map"))
    fig, ax = plt.subplots(figsize=(3.8, 3.8))
    if rgb is not None:
        ax.imshow(rgb, extent=extent, interpolation="nearest")
    else:
        ax.imshow(prob, extent=extent, cmap="Greys_r", vmin=0, vmax=1, interpolation="nearest")
    if len(polygons):
        polygons.boundary.plot(ax=ax, color="cyan", linewidth=0.8)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(f"{len(polygons)} detections", fontsize=10)
    ax.set_axis_off()
    figures.append(_img(_figure_png(fig), "detections over the scene"))
    parts.append("<div>" + "".join(figures) + "</div>")

    names = _label_names(polygons, labels, page) if labels is not None else None
    top = polygons.sort_values("area_m2", ascending=False).head(DETECTION_ROWS)
    rows = []
    for idx, r in top.iterrows():  # at most DETECTION_ROWS rows
        row: dict[str, Any] = {
            "id": int(r["id"]),
            "area (ha)": round(float(r["area_m2"]) / 1e4, 2),
            "mean probability": float(r["mean_prob"]),
            "max probability": float(r["max_prob"]),
            "lon": round(float(r["centroid_lon"]), 5),
            "lat": round(float(r["centroid_lat"]), 5),
        }
        if names is not None:
            row["OSM name"] = names.get(idx)
        rows.append(row)
    parts.append(f"<h3>The {len(rows)} largest detections</h3>{_table(rows)}")

    ood = rec.get("ood")
    if isinstance(ood, dict) and ood.get("check") != "off":
        verdict = "far outside the training data" if ood.get("warning") else "within"
        parts.append(
            "<h3>Scene against the training data</h3>"
            + _pairs(
                [
                    ("verdict", verdict),
                    ("score", ood.get("score")),
                    ("share of pixels outside", ood.get("outside_share")),
                    ("bands outside", ", ".join(map(str, ood.get("bands_outside") or [])) or "-"),
                ]
            )
        )
    heading = f"Prediction: {page.shown(run.folder)}"
    page.add(f"prediction-{len(page.sections)}", heading, "".join(parts))
    _metrics_section(page, run)


def _label_names(polygons: Any, labels: Path, page: _Page) -> dict[Any, str | None]:
    """The OSM name of the label that overlaps each detection most (None where none does)."""
    from data_prep.osm import clean_labels, read_labels

    osm = clean_labels(read_labels(labels), source=labels)
    osm = osm[osm["name"].notna()]
    if not len(osm) or not len(polygons):
        return {}
    osm = osm.to_crs(polygons.crs)
    hits = (
        polygons[["geometry"]]
        .reset_index()
        .overlay(osm[["name", "geometry"]], how="intersection", keep_geom_type=True)
    )
    if not len(hits):
        return {}
    hits["overlap"] = hits.geometry.area
    best = hits.sort_values("overlap", ascending=False).drop_duplicates("index")
    return dict(zip(best["index"], best["name"], strict=True))


def _metrics_section(page: _Page, run: Run) -> None:
    path = run.folder / "metrics.json"
    if not path.is_file():
        page.add(
            f"metrics-{len(page.sections)}",
            "Metrics",
            _note(
                f"{page.shown(run.folder)} was not evaluated against ground truth; run "
                "solarmap evaluate for metrics and a PR curve"
            ),
        )
        return
    m = _read_record(path)
    px = m.get("pixel") or {}
    parts = [
        "<h3>Pixels</h3>",
        _pairs(
            (k, px.get(k))
            for k in ("iou", "f1", "precision", "recall", "roc_auc", "pr_auc")
            if k in px
        ),
    ]
    best = (m.get("best_threshold") or {}).get("iou")
    if isinstance(best, dict):
        parts.append(_note(f"best IoU {_fmt(best.get('iou'))} at {_fmt(best.get('threshold'))}"))
    obj = m.get("object")
    if isinstance(obj, dict):
        keys = ("n_truth", "n_found", "recall", "n_pred", "n_correct", "precision", "f1")
        rows = [{"area": "all", **{k: obj.get(k) for k in keys}}]
        for name, b in (obj.get("by_area") or {}).items():
            if isinstance(b, dict):
                rows.append({"area": name, **{k: b.get(k) for k in keys}})
        parts += ["<h3>Objects</h3>", _table(rows)]
    pr = run.folder / "pr_curve.png"
    if pr.is_file():
        parts.append(_png_file(pr, "precision-recall curve"))
    page.add(f"metrics-{len(page.sections)}", "Metrics and PR curve", "".join(parts))


def _explanation_panels(folder: Path, targets: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    panels = {}
    for t in targets:
        try:
            ident = int(t["id"])
            sub = folder / str(t["folder"])
        except (KeyError, TypeError, ValueError):
            continue
        if (sub / "quicklook.png").is_file():
            panels[ident] = _png_file(sub / "quicklook.png", f"attribution maps of object {ident}")
    return panels


def _explain_section(page: _Page, run: Run) -> None:
    targets = run.record.get("targets") or []
    panels = _explanation_panels(run.folder, targets)
    parts = []
    for t in targets:
        refs = [{"method": k, **v} for k, v in (t.get("references") or {}).items()]
        parts.append(
            f"<h3>Target {_e(t.get('id'))} ({_e(t.get('kind'))})</h3>"
            + _pairs([("f(x)", t.get("f_x")), ("maps", ", ".join(t.get("maps") or []))])
            + (_table(refs) if refs else "")
            + panels.get(int(t.get("id", -1)), "")
        )
    heading = f"Explanation: {page.shown(run.folder)}"
    page.add(f"explain-{len(page.sections)}", heading, "".join(parts))


def _audit_section(page: _Page, run: Run) -> None:
    rec = run.record
    s = rec.get("summary") or {}
    cfg = rec.get("config") or {}
    parts = [
        _pairs(
            [
                ("objects audited", s.get("objects")),
                ("flagged share", s.get("flagged")),
                ("model reliance on context", s.get("reliance")),
                *((f"flag {k}", v) for k, v in (s.get("flags") or {}).items()),
            ]
        ),
        "<h3>Thresholds</h3>",
        _pairs(
            (k, cfg.get(k))
            for k in ("ring_m", "context_reliance", "implausible_bands", "unfaithful_map")
        ),
        "<h3>Flagged share by area</h3>",
        _table([{"area": k, **v} for k, v in (s.get("by_area") or {}).items()]),
        "<h3>Where the model looks (mean over objects)</h3>",
        _pairs((s.get("zones") or {}).items()),
        _pairs((s.get("band_groups") or {}).items()),
        _pairs((s.get("counterfactual") or {}).items()),
    ]
    explanation = _locate(rec.get("explanation"), run.folder)
    panels = {}
    if explanation is not None and (explanation / RECORDS["explain"]).is_file():
        panels = _explanation_panels(
            explanation, _read_record(explanation / RECORDS["explain"]).get("targets") or []
        )
    for o in rec.get("objects") or []:
        flags = o.get("flags") or {}
        flagged = any(flags.values())
        verdict = f'<p class="{"flagged" if flagged else "ok"}">{_e(o.get("verdict"))}</p>'
        z = o.get("zones") or {}
        bands = o.get("bands") or {}
        cf = o.get("counterfactual") or {}
        dl = o.get("deletion") or {}
        rows = [
            {"zone": zone, "share": z.get(f"share_{zone}"), "per pixel": z.get(f"density_{zone}")}
            for zone in ("object", "ring", "context")
        ]
        parts.append(
            f"<h3>Object {_e(o.get('id'))}: {_e(_fmt(o.get('area_ha'), 2))} ha, "
            f"map {_e(o.get('map'))}</h3>{verdict}"
            + _pairs((f"flag {k}", v) for k, v in flags.items())
            + _table(rows)
            + _pairs(
                [
                    ("dominant band", bands.get("dominant_band")),
                    ("dominant band group", bands.get("dominant_group")),
                    ("share of bands that do not separate panels", bands.get("non_separating")),
                    ("score kept, context neutral", cf.get("kept")),
                    ("score kept, object bare", cf.get("kept_bare")),
                    ("score raised by the context alone", cf.get("cue")),
                    ("deletion drop: map / random", dl.get("ratio")),
                ]
            )
            + panels.get(int(o.get("id", -1)), "")
        )
    page.add(f"audit-{len(page.sections)}", f"Audit: {page.shown(run.folder)}", "".join(parts))
    faith = s.get("faithfulness")
    if faith:
        cols = [
            "map", "objects", "deletion_auc", "deletion_low", "deletion_high",
            "random_deletion_auc", "insertion_auc", "random_insertion_auc", "deletion_ratio",
        ]  # fmt: skip
        curves = "".join(
            _png_file(p, f"deletion and insertion curves, {p.stem}")
            for p in sorted(run.folder.glob("faithfulness_*.png"))
        )
        page.add(
            f"faithfulness-{len(page.sections)}",
            "Faithfulness: deletion and insertion",
            _note(
                "deletion_ratio: the map's deletion AUC over the random order's (lower is "
                "better; < 1 beats chance)"
            )
            + _table(faith, cols)
            + curves,
        )


def _sanity_section(page: _Page, run: Run) -> None:
    rows = run.record.get("rows") or []
    cfg = run.record.get("config") or {}
    curves = "".join(
        _png_file(p, f"randomization curve, {p.stem.removeprefix('sanity_')}")
        for p in sorted(run.folder.glob("sanity_*.png"))
    )
    body = (
        _note(
            f"cascading randomization over {len(run.record.get('steps') or [])} steps; a method "
            f"passes when its fully randomized map has |Spearman| < "
            f"{_fmt(cfg.get('max_spearman'), 2)} to the trained map, inside the "
            "random-vs-random band; the control must fail"
        )
        + _table(rows)
        + curves
    )
    page.add(f"sanity-{len(page.sections)}", f"Sanity checks: {page.shown(run.folder)}", body)


def _concepts_section(page: _Page, run: Run) -> None:
    rec = run.record
    cfg = rec.get("config") or {}
    features = [f for f in rec.get("features") or [] if isinstance(f, dict)]
    named = [f for f in features if f.get("names")]
    rows = []
    for f in features:
        best = (f.get("concepts") or [{}])[0]
        label = f.get("feature") if f.get("partner") is None else f"{f['feature']}+{f['partner']}"
        rows.append({"feature": label, "name": "; ".join(f.get("names") or []) or "unnamed",
                     "top concept": best.get("concept"), "score": best.get("score"),
                     "counterfactual": best.get("counterfactual")})  # fmt: skip
    thumbs = "".join(
        _png_file(run.folder / "thumbs" / f"feature_{int(f['feature']):04d}.png",
                  f"feature {f['feature']}", f"feature {f['feature']}: "
                  f"{'; '.join(f['names'])} (top tiles above their counterfactuals)")
        for f in named[:CONCEPT_THUMBNAILS]
        if (run.folder / "thumbs" / f"feature_{int(f['feature']):04d}.png").is_file()
    )  # fmt: skip
    detections = [
        {"detection": d.get("id"), "mean probability": d.get("mean_prob"),
         "strongest features": ", ".join(
             f"{x.get('feature')} ({'; '.join(x.get('names') or []) or 'unnamed'})"
             for x in (d.get("features") or [])[:3])}
        for d in rec.get("detections") or [] if isinstance(d, dict)
    ]  # fmt: skip
    body = _note(
        f"features of {cfg.get('layer')} named by {cfg.get('concepts')} concepts over "
        f"{rec.get('probe_tiles')} probe tiles: {len(named)} of {len(features)} named"
    ) + _table(rows)
    if detections:
        body += "<h3>Detections by their features</h3>" + _table(detections)
    sae = rec.get("sae")
    if isinstance(sae, dict):
        body += "<h3>Sparse autoencoder</h3>" + _pairs(
            (k, sae.get(k)) for k in ("layer", "features", "fvu", "l0", "dead", "named",
                                      "sae_features_at_good", "channels_at_good")
        ) + _table(sae.get("per_concept") or [])  # fmt: skip
    page.add(f"concepts-{len(page.sections)}", f"Concepts: {page.shown(run.folder)}",
             body + thumbs)  # fmt: skip


def _checkpoints(runs: Sequence[Run]) -> list[Path]:
    from solarmap.model import META_FILE, WEIGHTS_FILE

    found: list[Path] = []
    for r in runs:
        rec = r.record
        candidates = [rec.get("checkpoint")]
        if isinstance(rec.get("checkpoint"), dict):
            candidates = [rec["checkpoint"].get("id")]
        if r.kind == "demo":
            candidates.append("checkpoint")
        for c in candidates:
            p = _locate(c, r.folder)
            if (
                p is not None
                and (p / WEIGHTS_FILE).is_file()
                and (p / META_FILE).is_file()
                and p.resolve() not in {f.resolve() for f in found}
            ):
                found.append(p)
    return found


def _checkpoint_section(page: _Page, runs: Sequence[Run]) -> None:
    from solarmap.geo import sha256_file
    from solarmap.model import META_FILE, WEIGHTS_FILE

    parts = []
    for p in _checkpoints(runs):
        meta = _read_record(p / META_FILE)
        model = meta.get("model") or {}
        metrics = meta.get("metrics") or {}
        training = meta.get("training") or {}
        parts.append(
            f"<h3>{_e(page.shown(p))}</h3>"
            + _pairs(
                [
                    (f"sha256 of {WEIGHTS_FILE}", sha256_file(p / WEIGHTS_FILE)),
                    ("model", f"{model.get('kind', 'unet')} / {model.get('encoder')}"),
                    ("bands", ", ".join(map(str, meta.get("bands") or []))),
                    ("threshold", meta.get("threshold")),
                    ("chip size", meta.get("chip_size")),
                    ("training data fingerprint", meta.get("data_fingerprint")),
                    ("epochs run", len(training.get("history") or [])),
                    ("training seconds", training.get("seconds")),
                    ("solarmap version", meta.get("solarmap_version")),
                ]
            )
            + _table(
                [
                    {"split": k, **{m: v.get(m) for m in ("iou", "f1", "precision", "recall")}}
                    for k, v in metrics.items()
                    if isinstance(v, dict)
                ]
            )
        )
    if not parts:
        parts.append(page.note("no checkpoint folder found from the runs' records"))
    page.add("checkpoint", "Checkpoint", "".join(parts))


def _config_section(page: _Page, runs: Sequence[Run]) -> None:
    parts = []
    for r in runs:
        rec = dict(r.record)
        if r.kind == "audit":
            rec.pop("objects", None)  # shown above; the rest is the run's configuration
        if r.kind == "sanity":
            rec.pop("methods", None)
        if r.kind == "explain":
            rec.pop("targets", None)
        parts.append(_json_block(f"{r.kind}: {page.shown(r.folder)}", rec))
    page.add("configuration", "Configuration of each run", "".join(parts))


def _default_labels(runs: Sequence[Run]) -> Path | None:
    for r in runs:
        if r.kind == "demo" and (r.folder / "unseen-region" / "labels.osm").is_file():
            return r.folder / "unseen-region" / "labels.osm"
    return None


def _title(runs: Sequence[Run]) -> str:
    kinds = ", ".join(dict.fromkeys(r.kind for r in runs))
    return f"solarmap report: {kinds} ({runs[0].folder.resolve().name})"


def write_report(
    runs: Sequence[Path],
    out: str | Path,
    *,
    config: ReportConfig | None = None,
    overwrite: bool = False,
) -> ReportResult:
    """Write one self-contained HTML page of the runs in ``runs`` to ``out``.

    Args:
        runs: folders that ``solarmap demo``, ``predict``, ``explain``, ``audit`` or ``sanity``
            wrote (their immediate subfolders are searched too).
        out: the HTML file to write (atomically).
        config: options (scene, labels, title).
        overwrite: replace an existing ``out``.

    Raises:
        InputError: on missing or unrecognised runs, an ``out`` that exists (without
            ``overwrite``) or is a folder, or a scene that does not match a prediction.
        InputFileError: on a damaged record or raster of a run.
    """
    from solarmap.geo import make_folder, require_file, write_text

    cfg = config or ReportConfig()
    found = find_runs(list(runs))
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {out}: give an .html file name")
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder; give an .html file name")
    if out.exists() and not overwrite:
        raise InputError(f"--out {out}: exists; pass --overwrite to replace it")
    if cfg.scene is not None:
        require_file(cfg.scene, "scene")
    if cfg.labels is not None:
        require_file(cfg.labels, "labels file")
    page = _Page(cfg.title or _title(found), out.parent)
    labels = cfg.labels or _default_labels(found)
    for r in found:
        if r.kind == "demo":
            page.add("demo", f"Demo: {page.shown(r.folder)}", _demo_body(r))
    for r in found:
        if r.kind == "predict":
            _prediction_section(page, r, cfg, labels)
    for r in found:
        if r.kind == "explain":
            _explain_section(page, r)
        elif r.kind == "audit":
            _audit_section(page, r)
    for r in found:
        if r.kind == "sanity":
            _sanity_section(page, r)
        elif r.kind == "concepts":
            _concepts_section(page, r)
    _checkpoint_section(page, found)
    _config_section(page, found)
    make_folder(out.parent if str(out.parent) else Path("."))
    write_text(out, page.html(found))
    return ReportResult(out, found, [h for _, h, _ in page.sections], page.notes)


def _demo_body(run: Run) -> str:
    seconds = run.record.get("seconds") or {}
    return _note(
        "the built-in demo: a generated training region, a model trained on it, and a "
        "prediction on an unseen region scored against its truth"
    ) + _pairs((f"{k} (s)", v) for k, v in seconds.items())
