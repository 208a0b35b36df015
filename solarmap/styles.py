"""QGIS styles (QML) for the layers solarmap writes, so they open styled for planners.

A style is made from the data it styles: a *vector style* maps the GeoDataFrame being written to
a QML document, a *raster style* maps the COG just written (an open rasterio dataset) to one.
The writers in :mod:`solarmap.geo` take one as ``style=`` and store the document where QGIS
looks for a layer's default style: a GeoPackage's ``layer_styles`` table, or a ``.qml`` file
beside a raster (same stem).

- :func:`detections_style`: predicted polygons graduated by ``mean_prob`` from the threshold to
  1, labelled and with a map tip giving area (ha) and probability;
- :func:`chips_style`: the chip index categorized by ``split``;
- :func:`audit_style`: the audit's detections categorized by ``flagged``, the verdict as map tip;
- :func:`outline_style`: targets, labels and truth polygons drawn as outlines (points as rings);
- :func:`superpixels_style`: superpixel polygons graduated on a diverging ramp by ``value``;
- :func:`probability_style`: the probability COG, a sequential ramp 0–1 that steps at the
  threshold;
- :func:`attribution_style`: an attribution COG, a diverging ramp symmetric around 0;
- :func:`image_style`: a reflectance COG in false colour B08/B04/B03 with a 2–98 % stretch;
- :func:`palette_style`: class rasters (mask, SCL, land cover), one colour per class.

The documents follow QGIS 3.22's own QML (which later versions read as well). This is a core
module: it imports no stage package and opens no file.
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from solarmap.bands import BANDS, SCL_CLASSES
from solarmap.errors import InputError

__all__ = [
    "NIR_FALSE_COLOR",
    "SCL_COLOURS",
    "RasterStyle",
    "VectorStyle",
    "attribution_style",
    "chips_style",
    "detections_style",
    "image_style",
    "outline_style",
    "palette_style",
    "probability_style",
    "superpixels_style",
]

#: A vector style: the GeoDataFrame being written → QML.
VectorStyle = Callable[[Any], str]
#: A raster style: the raster just written (an open rasterio dataset) → QML.
RasterStyle = Callable[[Any], str]

#: The QGIS release whose QML the documents follow.
QGIS_VERSION: Final = "3.22.0"
#: Colour-infrared false colour (NIR, red, green): vegetation red, panels dark blue-grey.
NIR_FALSE_COLOR: Final[tuple[str, str, str]] = ("B08", "B04", "B03")
#: Largest side of the sample a raster style computes its statistics from (an overview read).
SAMPLE_SIDE: Final = 1024

#: Sequential yellow-orange-red, light to dark.
_YLORRD: Final = ("#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")
#: Diverging blue-white-red (negative blue, positive red).
_RDBU: Final = ("#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b")
#: Colours of the chip splits (and of chips dropped for overlapping another split).
_SPLIT_COLOURS: Final = {
    "train": "#1b9e77", "val": "#d95f02", "test": "#7570b3", "dropped": "#9e9e9e",
}  # fmt: skip
#: The usual colours of the Sentinel-2 scene classification classes.
SCL_COLOURS: Final[dict[int, str]] = {
    0: "#000000", 1: "#ff0000", 2: "#2f2f2f", 3: "#643200", 4: "#00a000", 5: "#ffe65a",
    6: "#0000ff", 7: "#808080", 8: "#c0c0c0", 9: "#ffffff", 10: "#64c8ff", 11: "#ff96ff",
}  # fmt: skip
#: Colours given in turn to classes that come without one.
_QUALITATIVE: Final = (
    "#a6cee3", "#1f78b4", "#b2df8a", "#33a02c", "#fb9a99", "#e31a1c", "#fdbf6f", "#ff7f00",
    "#cab2d6", "#6a3d9a", "#ffff99", "#b15928",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# QML building blocks
# --------------------------------------------------------------------------------------------


def _el(tag: str, attrs: Mapping[str, Any] | None = None, *children: ET.Element) -> ET.Element:
    e = ET.Element(tag, {k: str(v) for k, v in (attrs or {}).items()})
    e.extend(children)
    return e


def _text(tag: str, text: Any) -> ET.Element:
    e = ET.Element(tag)
    e.text = str(text)
    return e


def _rgba(colour: str, alpha: float = 1.0) -> str:
    """``"#rrggbb"`` and an opacity 0–1 → QGIS's ``"r,g,b,a"``."""
    c = colour.lstrip("#")
    r, g, b = (int(c[i : i + 2], 16) for i in (0, 2, 4))
    return f"{r},{g},{b},{round(255 * alpha)}"


def _num(value: float) -> str:
    """A number as QML writes it: exact (class edges must hold the values they bound)."""
    return repr(float(value))


def _props(props: Mapping[str, Any]) -> list[ET.Element]:
    """Symbol layer properties, both as QGIS 3.22 writes them (an option map) and in the older
    ``<prop>`` form, so every QGIS 3 reads them."""
    options = _el("Option", {"type": "Map"})
    options.extend(
        _el("Option", {"type": "QString", "name": k, "value": v}) for k, v in props.items()
    )
    return [options, *(_el("prop", {"k": k, "v": v}) for k, v in props.items())]


def _symbol(name: str, kind: str, layer_class: str, props: Mapping[str, Any]) -> ET.Element:
    layer = _el("layer", {"class": layer_class, "enabled": 1, "locked": 0, "pass": 0})
    layer.extend(_props(props))
    attrs = {"type": kind, "name": name, "alpha": 1, "clip_to_extent": 1, "force_rhr": 0}
    return _el("symbol", attrs, layer)


def _fill(
    name: str,
    colour: str | None,
    outline: str,
    *,
    alpha: float = 1.0,
    outline_width: float = 0.26,
) -> ET.Element:
    """A simple fill symbol; ``colour=None`` draws the outline only."""
    return _symbol(
        name,
        "fill",
        "SimpleFill",
        {
            "color": _rgba(colour or "#ffffff", alpha if colour else 0.0),
            "style": "solid" if colour else "no",
            "outline_color": _rgba(outline),
            "outline_style": "solid",
            "outline_width": outline_width,
            "outline_width_unit": "MM",
            "joinstyle": "miter",
        },
    )


def _marker(name: str, outline: str, *, size: float = 3.0, width: float = 0.6) -> ET.Element:
    """A ring marker (for point geometries)."""
    return _symbol(
        name,
        "marker",
        "SimpleMarker",
        {
            "name": "circle",
            "color": _rgba("#ffffff", 0.0),
            "outline_color": _rgba(outline),
            "outline_style": "solid",
            "outline_width": width,
            "outline_width_unit": "MM",
            "size": size,
            "size_unit": "MM",
        },
    )


def _labeling(expression: str, *, size: float = 8.0, placement: int = 1) -> ET.Element:
    """Simple labeling from an expression, dark text on a white buffer (placement 1: over
    the polygon's centroid; 0: around a point)."""
    style = _el(
        "text-style",
        {
            "fieldName": expression,
            "isExpression": 1,
            "fontFamily": "Sans Serif",
            "fontSize": _num(size),
            "fontSizeUnit": "Point",
            "fontWeight": 50,
            "textColor": _rgba("#232323"),
            "textOpacity": 1,
            "namedStyle": "Regular",
            "multilineHeight": 1,
        },
        _el(
            "text-buffer",
            {
                "bufferDraw": 1,
                "bufferSize": 0.7,
                "bufferSizeUnits": "MM",
                "bufferColor": _rgba("#ffffff"),
                "bufferOpacity": 0.85,
                "bufferJoinStyle": 128,
                "bufferNoFill": 1,
            },
        ),
    )
    settings = _el(
        "settings",
        {"calloutType": "simple"},
        style,
        _el("text-format", {"multilineAlign": 1, "wrapChar": "", "formatNumbers": 0}),
        _el(
            "placement",
            {"placement": placement, "dist": 1, "distUnits": "MM", "priority": 5},
        ),
        _el(
            "rendering",
            {"obstacle": 1, "drawLabels": 1, "scaleVisibility": 0, "upsidedownLabels": 0},
        ),
    )
    return _el("labeling", {"type": "simple"}, settings)


def _vector_document(
    renderer: ET.Element,
    *,
    geometry_type: int,
    labeling: ET.Element | None = None,
    map_tip: str | None = None,
    display_expression: str | None = None,
) -> str:
    """A vector layer QML; ``geometry_type`` 0 point, 1 line, 2 polygon."""
    categories = "Symbology|Labeling|MapTips" if labeling is not None else "Symbology|MapTips"
    root = _el(
        "qgis",
        {
            "version": QGIS_VERSION,
            "styleCategories": categories,
            "labelsEnabled": int(labeling is not None),
        },
        renderer,
    )
    if labeling is not None:
        root.append(labeling)
    root.append(_text("blendMode", 0))
    root.append(_text("featureBlendMode", 0))
    root.append(_text("layerOpacity", 1))
    if display_expression is not None:
        root.append(_text("previewExpression", display_expression))
    if map_tip is not None:
        root.append(_text("mapTip", map_tip))
    root.append(_text("layerGeometryType", geometry_type))
    return _serialise(root)


def _raster_document(renderer: ET.Element) -> str:
    pipe = _el(
        "pipe",
        None,
        _el(
            "provider",
            None,
            _el(
                "resampling",
                {
                    "enabled": "false",
                    "maxOversampling": 2,
                    "zoomedInResamplingMethod": "nearestNeighbour",
                    "zoomedOutResamplingMethod": "nearestNeighbour",
                },
            ),
        ),
        renderer,
        _el("brightnesscontrast", {"brightness": 0, "contrast": 0, "gamma": 1}),
        _el("huesaturation", {"saturation": 0, "grayscaleMode": 0, "colorizeOn": 0}),
        _el("rasterresampler", {"maxOversampling": 2}),
        _text("resamplingStage", "resamplingFilter"),
    )
    root = _el(
        "qgis",
        {"version": QGIS_VERSION, "styleCategories": "Symbology", "hasScaleBasedVisibilityFlag": 0},
        pipe,
        _text("blendMode", 0),
    )
    return _serialise(root)


def _serialise(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n{body}\n"


def _min_max_origin(limits: str = "None", cut: tuple[float, float] = (2.0, 98.0)) -> ET.Element:
    return _el(
        "minMaxOrigin",
        None,
        _text("limits", limits),
        _text("extent", "WholeRaster"),
        _text("statAccuracy", "Estimated"),
        _text("cumulativeCutLower", _num(cut[0] / 100)),
        _text("cumulativeCutUpper", _num(cut[1] / 100)),
        _text("stdDevFactor", 2),
    )


def _pseudocolor(
    band: int, items: Sequence[tuple[float, str, float, str]], *, precision: int = 2
) -> ET.Element:
    """Singleband pseudocolor over ``items`` ``(value, colour, opacity, label)``, interpolated."""
    lo, hi = items[0][0], items[-1][0]
    shader = _el(
        "colorrampshader",
        {
            "colorRampType": "INTERPOLATED",
            "classificationMode": 1,
            "clip": 0,
            "minimumValue": _num(lo),
            "maximumValue": _num(hi),
            "labelPrecision": precision,
        },
    )
    shader.extend(
        _el(
            "item",
            {"value": _num(v), "color": colour, "alpha": round(255 * a), "label": label},
        )
        for v, colour, a, label in items
    )
    return _el(
        "rasterrenderer",
        {
            "type": "singlebandpseudocolor",
            "band": band,
            "opacity": 1,
            "alphaBand": -1,
            "classificationMin": _num(lo),
            "classificationMax": _num(hi),
            "nodataColor": "",
        },
        _el("rasterTransparency"),
        _min_max_origin(),
        _el("rastershader", None, shader),
    )


def _sample(ds: Any, band: int) -> np.ndarray:
    """The finite values of one band, read at most :data:`SAMPLE_SIDE` px on a side (COGs
    answer such a read from an overview), with the band's scale and offset applied as QGIS
    applies them (digital numbers → reflectance)."""
    step = max(1.0, max(ds.width, ds.height) / SAMPLE_SIDE)
    shape = (max(1, round(ds.height / step)), max(1, round(ds.width / step)))
    data = ds.read(band, out_shape=shape, masked=True).astype(np.float64).filled(np.nan)
    data = data * ds.scales[band - 1] + ds.offsets[band - 1]
    return data[np.isfinite(data)]


def _band_of(ds: Any, name: str) -> int:
    """1-based band number of the band described ``name`` (by the contract order if the
    raster describes none)."""
    descriptions = tuple(ds.descriptions or ())
    if name in descriptions:
        return descriptions.index(name) + 1
    if ds.count == len(BANDS) and name in BANDS:
        return BANDS.index(name) + 1
    raise InputError(f"raster has no band {name!r} (bands {descriptions}); cannot style it")


def _geometry_type(gdf: Any) -> int:
    """QGIS geometry type of a layer: 0 point, 1 line, 2 polygon (polygon when unknown)."""
    types = {str(t) for t in gdf.geom_type.dropna().unique()} if len(gdf) else set()
    if types and all("Point" in t for t in types):
        return 0
    if types and all("LineString" in t for t in types):
        return 1
    return 2


def _symmetric_limit(values: np.ndarray, percentile: float) -> float:
    """The ``percentile`` of ``|values|``, or their maximum when that is 0 (sparse maps); 1
    when every value is 0 or there is none."""
    if values.size == 0:
        return 1.0
    a = np.abs(values)
    lim = float(np.percentile(a, percentile)) or float(a.max())
    return lim if lim > 0 and math.isfinite(lim) else 1.0


def _diverging_items(lim: float) -> list[tuple[float, str, float, str]]:
    """Ramp items ``(value, colour, opacity, label)`` from ``-lim`` to ``+lim``."""
    n = len(_RDBU)
    items = []
    for i, colour in enumerate(_RDBU):
        v = lim * (2 * i / (n - 1) - 1)  # exactly ±lim at the ends
        label = "0" if i == n // 2 else f"{v:+.3g}"
        if i in (0, n - 1):
            label += " (against solar)" if i == 0 else " (for solar)"
        items.append((0.0 if i == n // 2 else v, colour, 1.0, label))
    return items


# --------------------------------------------------------------------------------------------
# Vector styles
# --------------------------------------------------------------------------------------------


def _graduated(
    attr: str,
    classes: Sequence[tuple[float, float, str, str]],
    *,
    outline: str,
    alpha: float,
    outline_width: float,
    source_fill: str,
    symmetric: bool,
    precision: int,
) -> ET.Element:
    """A graduated renderer on ``attr``: one filled class per ``(lower, upper, label, colour)``,
    outlined in ``outline``; ``symmetric`` marks the classes as symmetric around 0."""
    ranges = _el("ranges")
    symbols = _el("symbols")
    for i, (lo, hi, label, colour) in enumerate(classes):
        ranges.append(
            _el(
                "range",
                {
                    "lower": _num(lo),
                    "upper": _num(hi),
                    "symbol": i,
                    "label": label,
                    "render": "true",
                },
            )
        )
        symbols.append(_fill(str(i), colour, outline, alpha=alpha, outline_width=outline_width))
    return _el(
        "renderer-v2",
        {
            "type": "graduatedSymbol",
            "attr": attr,
            "graduatedMethod": "GraduatedColor",
            "symbollevels": 0,
            "enableorderby": 0,
            "forceraster": 0,
        },
        ranges,
        symbols,
        _el("source-symbol", None, _fill("0", source_fill, outline, alpha=alpha)),
        _el(
            "classificationMethod",
            {"id": "EqualInterval"},
            _el("symmetricMode", {"enabled": int(symmetric), "symmetrypoint": 0, "astride": 0}),
            _el("labelFormat", {"format": "%1 – %2", "labelprecision": precision}),
        ),
    )


def detections_style(*, threshold: float, classes: int = 5) -> VectorStyle:
    """Predicted solar polygons (``polygons.gpkg``, layer ``solar``): filled by ``mean_prob``
    in ``classes`` equal steps from ``threshold`` to 1 (yellow to dark red), labelled with area
    in hectares and mean probability; the map tip adds max probability, scene and date.
    """
    if not 0 < threshold < 1:
        raise InputError(f"threshold {threshold!r} is not in (0, 1)")
    edges = [threshold + (1 - threshold) * i / classes for i in range(classes + 1)]
    # Pixels are compared with the threshold in float32: a polygon's mean may fall a rounding
    # below it, and a feature outside every range would not be drawn.
    lowest = threshold - 1e-6
    colours = [_YLORRD[round(i * (len(_YLORRD) - 1) / max(classes - 1, 1))] for i in range(classes)]
    area_ha = 'format_number("area_m2" / 10000, 1)'
    label = f"{area_ha} || ' ha' || '\\n' || 'p ' || format_number(\"mean_prob\", 2)"
    map_tip = (
        '<b>Solar farm [% "id" %]</b><br>'
        'Area: [% format_number("area_m2" / 10000, 2) %] ha<br>'
        'Mean probability: [% format_number("mean_prob", 2) %]'
        ' (max [% format_number("max_prob", 2) %])<br>'
        f"Threshold: {threshold:.2f}<br>"
        'Scene: [% "scene_id" %], [% "date" %]'
    )

    def style(gdf: Any) -> str:
        classes_ = [
            (lowest if i == 0 else lo, hi, f"{lo:.2f} – {hi:.2f}", colours[i])
            for i, (lo, hi) in enumerate(itertools.pairwise(edges))
        ]
        renderer = _graduated(
            "mean_prob",
            classes_,
            outline="#67000d",
            alpha=0.75,
            outline_width=0.4,
            source_fill=_YLORRD[2],
            symmetric=False,
            precision=2,
        )
        return _vector_document(
            renderer,
            geometry_type=2,
            labeling=_labeling(label),
            map_tip=map_tip,
            display_expression="concat('solar farm ', \"id\")",
        )

    return style


def _categorized(
    attr: str,
    classes: Sequence[tuple[Any, str, str]],
    *,
    alpha: float,
    outline_width: float,
) -> ET.Element:
    """A categorized polygon renderer on ``attr``: one ``(value, label, colour)`` per class,
    a faint fill and an outline of the class colour; grey for other values."""
    categories = _el("categories")
    symbols = _el("symbols")
    for i, (value, label, colour) in enumerate(classes):
        categories.append(
            _el("category", {"value": value, "symbol": i, "label": label, "render": "true"})
        )
        symbols.append(_fill(str(i), colour, colour, alpha=alpha, outline_width=outline_width))
    return _el(
        "renderer-v2",
        {
            "type": "categorizedSymbol",
            "attr": attr,
            "symbollevels": 0,
            "enableorderby": 0,
            "forceraster": 0,
        },
        categories,
        symbols,
        _el("source-symbol", None, _fill("0", "#999999", "#555555", alpha=alpha)),
    )


def audit_style() -> VectorStyle:
    """The audit's detection polygons (``audit.gpkg``): categorized by ``flagged`` (green: the
    detection rests on the panels; red: a flag is raised), outlines strong, fill faint; the map
    tip gives the verdict and the figures behind the flags."""
    map_tip = (
        '<b>Object [% "id" %]</b>: [% "verdict" %]<br>'
        'Object alone keeps [% format_number("kept", 2) %] of its score; context alone raises '
        '[% format_number("cue", 2) %]<br>'
        'Mass share object / ring / context: [% format_number("share_object", 2) %] / '
        '[% format_number("share_ring", 2) %] / [% format_number("share_context", 2) %]'
    )
    classes = ((0, "rests on the panels", "#1a9850"), (1, "flagged", "#d73027"))

    def style(gdf: Any) -> str:
        renderer = _categorized("flagged", classes, alpha=0.3, outline_width=0.6)
        return _vector_document(
            renderer, geometry_type=2, map_tip=map_tip, display_expression='"verdict"'
        )

    return style


def sites_style() -> VectorStyle:
    """The survey's sites over time (``sites.gpkg``): categorized by ``status`` (existing from
    the first period, new, vanished, seen only in between), faint fill, strong outline; the
    map tip gives when the site was first and last seen and its construction interval."""
    map_tip = (
        '<b>Site [% "site_id" %]</b>: [% "status" %]<br>'
        'seen [% "first_seen" %] to [% "last_seen" %] ([% "seen_periods" %])<br>'
        'built after [% "constructed_after" %], before [% "constructed_before" %]'
    )
    classes = (
        ("existing", "there from the first period", "#4575b4"),
        ("new", "built during the survey", "#d73027"),
        ("vanished", "gone during the survey", "#1a1a1a"),
        ("transient", "new, then gone", "#fdae61"),
    )

    def style(gdf: Any) -> str:
        renderer = _categorized("status", classes, alpha=0.3, outline_width=0.8)
        return _vector_document(
            renderer, geometry_type=2, map_tip=map_tip, display_expression='"status"'
        )

    return style


def chips_style() -> VectorStyle:
    """The chip index (``chips.gpkg``): footprints coloured by ``split`` (train, val, test,
    dropped; other values found in the data after them), faint fill and strong outline; the
    map tip gives scene, split and solar fraction."""
    map_tip = (
        '<b>Chip [% "scene_id" %] row [% "row_off" %] col [% "col_off" %]</b><br>'
        'Split: [% "split" %]<br>'
        'Solar fraction: [% format_number("solar_fraction", 3) %]'
    )

    def style(gdf: Any) -> str:
        present = [str(s) for s in gdf["split"].unique()] if "split" in gdf else []
        names = [*_SPLIT_COLOURS, *sorted(s for s in present if s not in _SPLIT_COLOURS)]
        classes = [
            (name, name, _SPLIT_COLOURS.get(name, _QUALITATIVE[i % len(_QUALITATIVE)]))
            for i, name in enumerate(names)
        ]
        renderer = _categorized("split", classes, alpha=0.25, outline_width=0.4)
        return _vector_document(
            renderer,
            geometry_type=2,
            map_tip=map_tip,
            display_expression='concat("scene_id", \' \', "split")',
        )

    return style


def outline_style(
    *, colour: str = "#00e5ff", label: str | None = None, width: float = 0.6
) -> VectorStyle:
    """Outlines only (a ring for points), e.g. explain's ``targets.gpkg`` (``label='"id"'``),
    prepare's labels or the synthetic truth; ``label`` is a QGIS expression."""

    def style(gdf: Any) -> str:
        geometry_type = _geometry_type(gdf)
        if geometry_type == 0:
            symbol = _marker("0", colour, width=width)
        else:
            symbol = _fill("0", None, colour, outline_width=width)
        renderer = _el(
            "renderer-v2",
            {"type": "singleSymbol", "symbollevels": 0, "enableorderby": 0, "forceraster": 0},
            _el("symbols", None, symbol),
        )
        return _vector_document(
            renderer,
            geometry_type=geometry_type,
            labeling=None if label is None else _labeling(label, placement=min(geometry_type, 1)),
            display_expression=label,
        )

    return style


def superpixels_style(*, column: str = "value") -> VectorStyle:
    """Superpixel polygons graduated by ``column`` on a diverging ramp symmetric around 0
    (±the largest ``|value|``): blue against the target, red for it; the map tip gives
    segment, value and rank."""
    map_tip = (
        '<b>Superpixel [% "segment" %]</b> ([% "method" %])<br>'
        f'Value: [% format_number("{column}", 4) %]<br>'
        'Rank: [% "rank" %]'
    )

    def style(gdf: Any) -> str:
        values = np.asarray(gdf[column], dtype=np.float64) if column in gdf else np.array([])
        lim = _symmetric_limit(values[np.isfinite(values)], 100.0)
        n = len(_RDBU)
        edges = [lim * (2 * i / n - 1) for i in range(n + 1)]
        edges[0], edges[-1] = -lim * (1 + 1e-9), lim * (1 + 1e-9)  # the extremes stay inside
        classes_ = [
            (edges[i], edges[i + 1], f"{edges[i]:+.3g} – {edges[i + 1]:+.3g}", colour)
            for i, colour in enumerate(_RDBU)
        ]
        renderer = _graduated(
            column,
            classes_,
            outline="#404040",
            alpha=0.8,
            outline_width=0.1,
            source_fill="#f7f7f7",
            symmetric=True,
            precision=3,
        )
        return _vector_document(
            renderer,
            geometry_type=2,
            map_tip=map_tip,
            display_expression="concat('superpixel ', \"segment\")",
        )

    return style


# --------------------------------------------------------------------------------------------
# Raster styles
# --------------------------------------------------------------------------------------------


def probability_style(*, threshold: float | None = None, band: int = 1) -> RasterStyle:
    """The probability COG: a sequential ramp over 0–1, faint and translucent below the
    threshold and opaque orange to dark red from it, so the threshold shows as a step.

    ``threshold`` defaults to the raster's ``THRESHOLD`` tag (0.5 when it has none).
    """

    def style(ds: Any) -> str:
        t = threshold
        if t is None:
            try:
                t = float(ds.tags().get("THRESHOLD", 0.5))
            except ValueError:
                t = 0.5
        if not 0 < t < 1:
            raise InputError(f"threshold {t!r} is not in (0, 1)")
        below = float(f"{t - 1e-6:.7g}")  # a step: a hair below the threshold, then at it
        items = [
            (0.0, "#ffffcc", 0.0, "0 (not solar)"),
            (below, "#fecc5c", 0.45, "just below threshold"),
            (t, "#fd8d3c", 1.0, f"{t:.2f} threshold"),
            ((t + 1) / 2, "#f03b20", 1.0, f"{(t + 1) / 2:.3g}"),
            (1.0, "#bd0026", 1.0, "1 (solar)"),
        ]
        return _raster_document(_pseudocolor(band, items))

    return style


def attribution_style(*, band: int = 1, percentile: float = 99.0) -> RasterStyle:
    """An attribution COG: band ``band`` on a diverging blue-white-red ramp symmetric around
    0, limits ±the ``percentile`` of ``|value|`` (its maximum when that is 0)."""

    def style(ds: Any) -> str:
        lim = _symmetric_limit(_sample(ds, band), percentile)
        return _raster_document(_pseudocolor(band, _diverging_items(lim), precision=4))

    return style


def image_style(
    *, bands: tuple[str, str, str] = NIR_FALSE_COLOR, cut: tuple[float, float] = (2.0, 98.0)
) -> RasterStyle:
    """A reflectance COG as multiband colour (default false colour B08/B04/B03), each band
    stretched between its ``cut`` percentiles computed from the data."""
    if not 0 <= cut[0] < cut[1] <= 100:
        raise InputError(f"percentile cut {cut} must satisfy 0 <= low < high <= 100")

    def style(ds: Any) -> str:
        numbers = [_band_of(ds, name) for name in bands]
        enhancements = []
        for colour, b in zip(("red", "green", "blue"), numbers, strict=True):
            values = _sample(ds, b)
            lo, hi = np.percentile(values, cut) if values.size else (0.0, 1.0)
            if not hi > lo:
                hi = lo + 1e-6
            enhancements.append(
                _el(
                    f"{colour}ContrastEnhancement",
                    None,
                    _text("minValue", _num(lo)),
                    _text("maxValue", _num(hi)),
                    _text("algorithm", "StretchToMinimumMaximum"),
                )
            )
        renderer = _el(
            "rasterrenderer",
            {
                "type": "multibandcolor",
                "redBand": numbers[0],
                "greenBand": numbers[1],
                "blueBand": numbers[2],
                "opacity": 1,
                "alphaBand": -1,
                "nodataColor": "",
            },
            _el("rasterTransparency"),
            _min_max_origin("CumulativeCut", cut),
            *enhancements,
        )
        return _raster_document(renderer)

    return style


def palette_style(
    classes: Mapping[int, str],
    *,
    colours: Mapping[int, str] | None = None,
    hidden: Sequence[int] = (),
    band: int = 1,
) -> RasterStyle:
    """A class raster (mask, SCL, land cover): one colour per value, ``classes`` naming them.

    Values without a colour in ``colours`` take one in turn from a qualitative palette; values
    in ``hidden`` are transparent (e.g. background).
    """
    if not classes:
        raise InputError("no class to style")
    given = colours or {}

    def style(ds: Any) -> str:
        palette = _el("colorPalette")
        for i, (value, name) in enumerate(sorted(classes.items())):
            colour = given.get(value, _QUALITATIVE[i % len(_QUALITATIVE)])
            palette.append(
                _el(
                    "paletteEntry",
                    {
                        "value": int(value),
                        "color": colour,
                        "alpha": 0 if value in hidden else 255,
                        "label": name,
                    },
                )
            )
        renderer = _el(
            "rasterrenderer",
            {"type": "paletted", "band": band, "opacity": 1, "alphaBand": -1, "nodataColor": ""},
            _el("rasterTransparency"),
            _min_max_origin(),
            palette,
        )
        return _raster_document(renderer)

    return style


def scl_style() -> RasterStyle:
    """The scene classification layer in its usual colours."""
    return palette_style(SCL_CLASSES, colours=SCL_COLOURS, hidden=(0,))
