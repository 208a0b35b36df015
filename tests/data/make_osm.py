"""Make tiny OpenStreetMap fixtures of solar plants: OSM XML 0.6 files and Overpass JSON.

One scene near Vienna holds every case the label cleaning must handle. Coordinates are given in
metres east/north of :data:`ORIGIN` and turned into lon/lat (7 decimals, as OSM stores them), so
gaps such as "5 m between generator rows" mean what they say.

- way 100: solar plant (closed way, ``plant:source=solar``) with two generators: way 101 inside,
  way 102 straddling its east edge (so the cleaned plant is the union of 100 and 102);
- relation 500: ``type=multipolygon`` plant (``plant:method=photovoltaic``), outer way 200 and
  inner way 201 (a hole);
- ways 300, 301, 302: orphan solar generators 5 m apart (one group); way 303: a far orphan;
- way 400: coal plant; way 401: wind generator; way 402: a road (none of them solar);
- way 403: solar plant drawn as an unclosed way (comes back as a LineString);
- way 404: self-intersecting bow-tie solar plant (``generator:source=solar`` on a plant);
- node 900: a solar generator mapped as a point.

Run as a script to write the fixtures into a folder::

    python tests/data/make_osm.py OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: (lon, lat) of the fixture's origin, near Vienna (UTM zone 33N).
ORIGIN: tuple[float, float] = (16.30, 48.20)

# metres per degree at the origin, good enough for a fixture a kilometre wide
_M_PER_DEG_LAT = 111_132.0
_M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(ORIGIN[1]))

Ring = list[tuple[float, float]]


def lonlat(east_m: float, north_m: float) -> tuple[float, float]:
    """(lon, lat) of a point ``east_m`` / ``north_m`` metres from :data:`ORIGIN`."""
    return (
        round(ORIGIN[0] + east_m / _M_PER_DEG_LON, 7),
        round(ORIGIN[1] + north_m / _M_PER_DEG_LAT, 7),
    )


def rect(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    """Corners (metres) of an axis-aligned rectangle, counter-clockwise, not closed."""
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


@dataclass
class OsmBuilder:
    """Collect nodes, ways and relations as Overpass JSON elements."""

    elements: list[dict[str, Any]] = field(default_factory=list)
    rings: dict[int, Ring] = field(default_factory=dict)
    _next_node: int = 1

    def node(
        self,
        east_m: float,
        north_m: float,
        tags: dict[str, str] | None = None,
        *,
        node_id: int | None = None,
    ) -> int:
        """Add a node and return its id (numbered 1, 2, ... unless ``node_id`` is given)."""
        lon, lat = lonlat(east_m, north_m)
        if node_id is None:
            node_id = self._next_node
            self._next_node += 1
        element: dict[str, Any] = {"type": "node", "id": node_id, "lat": lat, "lon": lon}
        if tags:
            element["tags"] = dict(tags)
        self.elements.append(element)
        return node_id

    def way(
        self,
        way_id: int,
        corners_m: list[tuple[float, float]],
        tags: dict[str, str] | None = None,
        *,
        closed: bool = True,
    ) -> Ring:
        """Add a way through new nodes at ``corners_m``; return its lon/lat coordinates."""
        node_ids = [self.node(x, y) for x, y in corners_m]
        if closed:
            node_ids.append(node_ids[0])
        element: dict[str, Any] = {"type": "way", "id": way_id, "nodes": node_ids}
        if tags:
            element["tags"] = dict(tags)
        self.elements.append(element)
        coords = {e["id"]: (e["lon"], e["lat"]) for e in self.elements if e["type"] == "node"}
        self.rings[way_id] = [coords[n] for n in node_ids]
        return self.rings[way_id]

    def relation(
        self, relation_id: int, members: list[tuple[int, str]], tags: dict[str, str]
    ) -> None:
        """Add a relation of way members given as ``(way_id, role)``."""
        self.elements.append(
            {
                "type": "relation",
                "id": relation_id,
                "members": [{"type": "way", "ref": ref, "role": role} for ref, role in members],
                "tags": dict(tags),
            }
        )

    def sorted_elements(self) -> list[dict[str, Any]]:
        """Elements in the order Overpass and OSM files use: nodes, ways, relations."""
        order = {"node": 0, "way": 1, "relation": 2}
        return sorted(self.elements, key=lambda e: (order[e["type"]], e["id"]))


SOLAR_PLANT = {"power": "plant", "plant:source": "solar"}
SOLAR_GENERATOR = {"power": "generator", "generator:source": "solar"}


def solar_scene() -> OsmBuilder:
    """Build the fixture scene described in the module docstring."""
    b = OsmBuilder()
    b.way(100, rect(0, 0, 200, 150), {**SOLAR_PLANT, "name": "Sonnenfeld"})
    b.way(101, rect(20, 20, 60, 40), SOLAR_GENERATOR)
    b.way(102, rect(180, 60, 230, 80), SOLAR_GENERATOR)
    b.way(200, rect(400, 0, 600, 200))
    b.way(201, rect(450, 50, 500, 100))
    b.relation(
        500,
        [(200, "outer"), (201, "inner")],
        {"type": "multipolygon", "power": "plant", "plant:method": "photovoltaic", "name": "Hof"},
    )
    for i, x in enumerate((0, 25, 50)):  # 20 m wide rows with 5 m gaps
        b.way(300 + i, rect(x, 400, x + 20, 440), SOLAR_GENERATOR)
    b.way(303, rect(300, 400, 320, 440), SOLAR_GENERATOR)
    b.way(400, rect(800, 0, 900, 100), {"power": "plant", "plant:source": "coal"})
    b.way(401, rect(800, 200, 820, 220), {"power": "generator", "generator:source": "wind"})
    b.way(402, [(0, -20), (900, -20)], {"highway": "residential"}, closed=False)
    b.way(403, rect(0, 600, 100, 700), SOLAR_PLANT, closed=False)
    b.way(
        404,
        [(1000, 0), (1100, 100), (1100, 0), (1000, 100)],
        {"power": "plant", "generator:source": "solar", "name": "Bow Tie"},
    )
    b.node(700, 700, SOLAR_GENERATOR, node_id=900)
    return b


def road_only_scene() -> OsmBuilder:
    """A scene with no power features at all (only a road)."""
    b = OsmBuilder()
    b.way(402, [(0, -20), (900, -20)], {"highway": "residential"}, closed=False)
    return b


def elements_from_polygons(items: list[tuple[Any, dict[str, str]]]) -> list[dict[str, Any]]:
    """Overpass JSON elements of lon/lat shapely polygons, each the closed way of its exterior
    with its tags (holes left out), ids from 1."""
    elements: list[dict[str, Any]] = []
    next_id = 1
    for way_id, (poly, tags) in enumerate(items, start=10_000):
        ids = []
        for lon, lat in list(poly.exterior.coords)[:-1]:
            elements.append({"type": "node", "id": next_id, "lat": round(lat, 7),
                             "lon": round(lon, 7)})  # fmt: skip
            ids.append(next_id)
            next_id += 1
        elements.append({"type": "way", "id": way_id, "nodes": [*ids, ids[0]], "tags": tags})
    return elements


def overpass_json(elements: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrap elements as an Overpass API JSON response."""
    return {
        "version": 0.6,
        "generator": "solarmap Overpass stand-in",
        "osm3s": {
            "timestamp_osm_base": "2024-01-01T00:00:00Z",
            "copyright": "test data, not OpenStreetMap",
        },
        "elements": elements,
    }


def write_osm_xml(path: Path, elements: list[dict[str, Any]]) -> Path:
    """Write elements as an OSM XML 0.6 file with a ``<bounds>`` element."""
    root = ET.Element("osm", version="0.6", generator="solarmap tests/data/make_osm.py")
    nodes = [e for e in elements if e["type"] == "node"]
    if nodes:
        lats = [n["lat"] for n in nodes]
        lons = [n["lon"] for n in nodes]
        ET.SubElement(
            root,
            "bounds",
            minlat=f"{min(lats):.7f}",
            minlon=f"{min(lons):.7f}",
            maxlat=f"{max(lats):.7f}",
            maxlon=f"{max(lons):.7f}",
        )
    for e in elements:
        attrs = {"id": str(e["id"]), "version": "1", "visible": "true"}
        if e["type"] == "node":
            attrs |= {"lat": f"{e['lat']:.7f}", "lon": f"{e['lon']:.7f}"}
        el = ET.SubElement(root, e["type"], attrs)
        if e["type"] == "way":
            for ref in e["nodes"]:
                ET.SubElement(el, "nd", ref=str(ref))
        elif e["type"] == "relation":
            for m in e["members"]:
                ET.SubElement(el, "member", type=m["type"], ref=str(m["ref"]), role=m["role"])
        for k, v in e.get("tags", {}).items():
            ET.SubElement(el, "tag", k=k, v=v)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_fixtures(out_dir: Path) -> dict[str, Path]:
    """Write ``solar.osm``, ``road_only.osm`` and ``solar_overpass.json`` into ``out_dir``."""
    scene = solar_scene()
    out = {
        "solar": write_osm_xml(out_dir / "solar.osm", scene.sorted_elements()),
        "road_only": write_osm_xml(out_dir / "road_only.osm", road_only_scene().sorted_elements()),
        "overpass": out_dir / "solar_overpass.json",
    }
    out["overpass"].write_text(json.dumps(overpass_json(scene.sorted_elements()), indent=1))
    return out


def main() -> None:
    """Command line: write the fixtures into a folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    for path in write_fixtures(args.out_dir).values():
        print(path)  # a fixture script, not library code


if __name__ == "__main__":
    main()
