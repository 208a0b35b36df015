"""Open solarmap's outputs in QGIS as a planner does, and render each to a PNG.

Run with the system interpreter that has QGIS's Python bindings (Debian's ``python3-qgis``),
not the project's virtualenv::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_open_layers.py SPEC.json RESULT.json

``SPEC.json`` lists layers: ``{"name", "path", "kind": "vector" | "raster", "layer"
(GeoPackage layer name, vectors), "png"}``. Each layer is opened without its style, so the
result records what QGIS shows by default, then given its default style with QGIS's own lookup
(``loadDefaultStyle``: a GeoPackage's ``layer_styles`` table, a ``.qml`` beside a raster), its
renderer described, and rendered to ``png``. ``RESULT.json`` maps each name to what was found;
a layer that fails records ``error``. Used by ``tests/test_qgis_styles.py``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # after the platform is set
    QgsApplication,
    QgsMapRendererCustomPainterJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QImage, QPainter

#: Size of the rendered PNGs, in pixels.
SIZE = 480


def open_layer(item: dict[str, Any]) -> Any:
    """The layer, opened with no style applied (QGIS's default renderer)."""
    if item["kind"] == "vector":
        options = QgsVectorLayer.LayerOptions()
        options.loadDefaultStyle = False
        uri = f"{item['path']}|layername={item['layer']}"
        return QgsVectorLayer(uri, item["name"], "ogr", options)
    options = QgsRasterLayer.LayerOptions()
    options.loadDefaultStyle = False
    return QgsRasterLayer(item["path"], item["name"], "gdal", options)


def describe(layer: Any) -> dict[str, Any]:
    """The renderer of a layer, in the terms the test checks."""
    r = layer.renderer()
    out: dict[str, Any] = {"renderer": r.type() if r is not None else None}
    if isinstance(layer, QgsVectorLayer):
        out["features"] = layer.featureCount()
        out["labels"] = bool(layer.labelsEnabled())
        out["map_tip"] = layer.mapTipTemplate()
        if out["labels"]:
            out["label_expression"] = layer.labeling().settings().fieldName
        kind = out["renderer"]
        if kind == "graduatedSymbol":
            out["attribute"] = r.classAttribute()
            out["ranges"] = [[g.lowerValue(), g.upperValue(), g.label()] for g in r.ranges()]
            out["colours"] = [g.symbol().color().name() for g in r.ranges()]
        elif kind == "categorizedSymbol":
            out["attribute"] = r.classAttribute()
            out["categories"] = [str(c.value()) for c in r.categories()]
            out["colours"] = [c.symbol().color().name() for c in r.categories()]
        elif kind == "singleSymbol":
            sl = r.symbol().symbolLayer(0)
            out["symbol_layer"] = sl.layerType()
            props = sl.properties()
            out["fill_style"] = props.get("style")
            out["outline_color"] = props.get("outline_color")
        return out
    kind = out["renderer"]
    if kind == "singlebandpseudocolor":
        shader = r.shader().rasterShaderFunction()
        out["band"] = r.band()
        out["min"], out["max"] = r.classificationMin(), r.classificationMax()
        out["ramp_type"] = int(shader.colorRampType())
        out["items"] = [
            [i.value, i.color.name(), i.color.alpha(), i.label] for i in shader.colorRampItemList()
        ]
    elif kind == "multibandcolor":
        out["bands"] = [r.redBand(), r.greenBand(), r.blueBand()]
        out["stretch"] = [
            [ce.minimumValue(), ce.maximumValue()]
            for ce in (
                r.redContrastEnhancement(),
                r.greenContrastEnhancement(),
                r.blueContrastEnhancement(),
            )
        ]
    elif kind == "paletted":
        out["classes"] = [[c.value, c.color.name(), c.label] for c in r.classes()]
    elif kind == "singlebandgray":
        out["band"] = r.grayBand()
    return out


def render(layer: Any, png: str) -> None:
    """Draw the layer over its extent on white and save it as ``png``."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    extent = layer.extent()
    extent.scale(1.1)
    settings.setExtent(extent)
    settings.setOutputSize(QSize(SIZE, SIZE))
    settings.setBackgroundColor(QColor(255, 255, 255))
    image = QImage(QSize(SIZE, SIZE), QImage.Format_ARGB32_Premultiplied)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    job = QgsMapRendererCustomPainterJob(settings, painter)
    job.start()
    job.waitForFinished()
    painter.end()
    if not image.save(png, "PNG"):
        raise OSError(f"{png}: could not save the rendered image")


def check(item: dict[str, Any]) -> dict[str, Any]:
    layer = open_layer(item)
    if not layer.isValid():
        return {"error": f"{item['path']}: QGIS cannot open the layer"}
    result: dict[str, Any] = {"default": describe(layer)}
    message, ok = layer.loadDefaultStyle()
    result["loaded"], result["message"] = bool(ok), message
    result["styled"] = describe(layer)
    render(layer, item["png"])
    return result


def main(spec_path: str, result_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    app = QgsApplication([], False)
    app.initQgis()
    results: dict[str, Any] = {"qgis": QgsApplication.applicationVersion() or ""}
    try:
        from qgis.core import Qgis

        results["qgis"] = Qgis.version()
        for item in spec:
            try:
                results[item["name"]] = check(item)
            except Exception:  # a report for the test, which fails on it
                results[item["name"]] = {"error": traceback.format_exc()}
    finally:
        with open(result_path, "w") as f:
            json.dump(results, f, indent=2)
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
