"""Change over time in a survey of several periods: sites, when each was built, what vanished.

A *site* is the ground any period's farms cover, the union over periods of the merged farm
polygons (in the farms' UTM zone). For each site and period the survey says seen (that
period's farms cover at least :data:`PRESENT_SHARE` of the site's largest extent: a speck of
a detection inside the footprint does not date it), absent (its tiles were surveyed then and
show less) or unknown (a tile had no imagery or failed). From those:

- ``first_seen`` and ``last_seen``: the first and last period with a farm on the site;
- ``constructed_after`` and ``constructed_before``: the interval the construction lies in:
  after the start of the last period it was absent in (before it was first seen) and before
  the end of the first period it was seen in. The composites are medians of the clear
  observations of a period, so a farm built in a period shows in that period's composite
  only when it stood for more than half of its observations: the first period seen is the
  year of construction or the one after, and the interval holds both cases;
- ``status``: ``existing`` (seen with no absence before), ``new`` (absent, then seen),
  ``vanished`` (seen, then absent in every later surveyed period) or ``transient`` (both).

:func:`period_table` counts farms, area, new and vanished sites per period;
:func:`plot_change` draws it. :func:`read_construction_labels` reads construction years in the
``idx,year`` form of published labels (a row index into a footprint file, ``-1`` where the
year is unknown) and :func:`construction_check` scores the intervals against them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from solarmap.errors import InputError

log = logging.getLogger(__name__)

#: The share of a site's largest extent that a period's farms must cover for it to be seen.
PRESENT_SHARE: Final = 0.25
SITE_COLUMNS: Final = (
    "site_id", "status", "first_seen", "last_seen", "seen_periods", "unknown_periods",
    "constructed_after", "constructed_before", "gone_after", "gone_before", "area_m2",
    "centroid_lon", "centroid_lat", "utm_epsg",
)  # fmt: skip


def _empty_sites() -> Any:
    import geopandas as gpd

    return gpd.GeoDataFrame({c: [] for c in SITE_COLUMNS}, geometry=[], crs="EPSG:4326")


def track_sites(farms: Any, periods: Sequence[Any], observed: Mapping[str, set[str]]) -> Any:
    """The sites of ``farms`` (EPSG:4326, with ``period``, ``tiles``, ``area_m2`` and
    ``utm_epsg``) over ``periods`` (in time order, with ``name``, ``start``, ``end``), where
    ``observed[period]`` holds the ids of the tiles surveyed in that period."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    if not len(farms):
        return _empty_sites()
    order = {p.name: i for i, p in enumerate(periods)}
    by_name = {p.name: p for p in periods}
    rows: list[dict[str, Any]] = []
    geoms: list[Any] = []
    for epsg, zone in farms.groupby("utm_epsg"):
        utm = zone.to_crs(int(epsg))
        sites = gpd.GeoDataFrame(geometry=shapely.get_parts(utm.geometry.union_all()), crs=utm.crs)
        lonlat = sites.geometry.to_crs(4326)  # the zone's sites reprojected at once
        pts = gpd.GeoDataFrame(utm.drop(columns="geometry"), geometry=utm.representative_point(),
                               crs=utm.crs)  # fmt: skip
        joined = gpd.sjoin(pts, sites, predicate="within", how="inner")
        for k, group in joined.groupby("index_right"):
            covered = group.groupby("period")["area_m2"].sum()
            # seen: a quarter of the site's largest extent; a speck inside its footprint (a
            # false detection, a fence) does not date a site, its panels do
            present = covered[covered >= PRESENT_SHARE * covered.max()]
            seen = sorted(present.index, key=order.__getitem__)
            tiles = {t for ts in group["tiles"] for t in str(ts).split(",") if t}
            obs = [p for p in periods if tiles <= observed.get(p.name, set())]
            first, last = by_name[seen[0]], by_name[seen[-1]]
            before = [p for p in obs if order[p.name] < order[first.name]]
            after = [p for p in obs if order[p.name] > order[last.name]]
            absent, gone = (before[-1] if before else None), (after[0] if after else None)
            status = {(False, False): "existing", (True, False): "new",
                      (False, True): "vanished", (True, True): "transient"}[
                (absent is not None, gone is not None)]  # fmt: skip
            area = covered.max()
            rows.append(
                {
                    "status": status,
                    "first_seen": first.name,
                    "last_seen": last.name,
                    "seen_periods": ",".join(seen),
                    "unknown_periods": ",".join(p.name for p in periods if p not in obs),
                    "constructed_after": absent.start if absent else None,
                    "constructed_before": first.end if absent else None,
                    "gone_after": last.end if gone else None,
                    "gone_before": gone.end if gone else None,
                    "gone_in": gone.name if gone else None,
                    "area_m2": float(area),
                    "utm_epsg": int(epsg),
                }
            )
            geoms.append(lonlat.iloc[int(k)])
    out = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs="EPSG:4326")
    out = out.sort_values(["first_seen", "area_m2"], ascending=[True, False])
    out = out.reset_index(drop=True)
    cent = out.to_crs(out.estimate_utm_crs()).centroid.to_crs(4326)
    out["centroid_lon"], out["centroid_lat"] = cent.x.to_numpy(), cent.y.to_numpy()
    out.insert(0, "site_id", np.arange(1, len(out) + 1))
    return out


def period_table(sites: Any, farms: Any, periods: Sequence[Any]) -> Any:
    """Per period: farms, area (ha), sites new in it (absent before) and vanished in it."""
    import pandas as pd

    rows = []
    for p in periods:
        f = farms[farms["period"] == p.name] if len(farms) else farms
        s_new = sites[(sites["first_seen"] == p.name) & sites["constructed_after"].notna()]
        s_gone = sites[sites["gone_in"] == p.name] if "gone_in" in sites else sites.iloc[:0]
        rows.append({
            "period": p.name, "start": p.start.isoformat(), "end": p.end.isoformat(),
            "farms": len(f), "area_ha": float(f["area_m2"].sum() / 1e4) if len(f) else 0.0,
            "new_sites": len(s_new), "new_area_ha": float(s_new["area_m2"].sum() / 1e4),
            "vanished_sites": len(s_gone),
        })  # fmt: skip
    return pd.DataFrame(rows)


def plot_change(table: Any, path: Path) -> Path:
    """Farms and area per period, new sites as bars: a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from solarmap.geo import atomic_path

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    x = np.arange(len(table))
    ax1.bar(x - 0.2, table["farms"], width=0.4, label="farms", color="#4575b4")
    ax1.bar(x + 0.2, table["new_sites"], width=0.4, label="new sites", color="#d73027")
    ax1.set_xticks(x, table["period"], rotation=30)
    ax1.set_ylabel("count")
    ax1.legend(frameon=False)
    ax2.plot(x, table["area_ha"], marker="o", color="#4575b4", label="area")
    ax2.set_xticks(x, table["period"], rotation=30)
    ax2.set_ylabel("solar farm area (ha)")
    fig.suptitle("solar farms per period")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def read_construction_labels(path: str | Path) -> Any:
    """Construction years ``idx,year`` (``idx``: a row of the footprint file; ``year``:
    ``-1`` where unknown).

    Raises:
        InputError: a missing file, other columns, or values that are not whole numbers.
    """
    import pandas as pd

    from solarmap.geo import require_file

    p = require_file(path, "construction-year labels")
    try:
        df = pd.read_csv(p)
    except (ValueError, OSError) as err:
        raise InputError(f"{p}: not a CSV of idx,year ({err})") from err
    if list(df.columns) != ["idx", "year"]:
        raise InputError(f"{p}: columns {list(df.columns)}; give idx,year")
    if df.isna().any().any() or not all(pd.api.types.is_integer_dtype(t) for t in df.dtypes):
        raise InputError(f"{p}: idx and year must be whole numbers (year -1: unknown)")
    bad = df[(df["year"] != -1) & ((df["year"] < 1990) | (df["year"] > 2100))]
    if len(bad):
        raise InputError(f"{p}: year {bad['year'].iloc[0]} in row {bad.index[0] + 2}")
    return df


def construction_check(
    sites: Any, footprints: Any, labels: Any, periods: Sequence[Any]
) -> dict[str, Any]:
    """How the sites' construction intervals agree with known construction years.

    Each labelled footprint (``labels.idx`` a row of ``footprints``, year not -1) is matched
    to the site covering most of it. It agrees when its year overlaps the site's interval
    (``constructed_after`` before the year's end, ``constructed_before`` after its start; a
    site seen from the first period agrees with any year before its first period's end).
    """
    known = labels[labels["year"] >= 0]
    fp = footprints.iloc[known["idx"].to_numpy()].to_crs(4326).copy()
    fp["year"] = known["year"].to_numpy()
    result = {"labelled": len(fp), "matched": 0, "agree": 0, "first_seen_year_or_next": 0}
    if not len(sites) or not len(fp):
        return result
    ea = sites.estimate_utm_crs()
    s_ea, f_ea = sites.to_crs(ea), fp.to_crs(ea)
    for geom, year in zip(f_ea.geometry, fp["year"], strict=True):
        overlap = s_ea.intersection(geom).area
        if overlap.max() <= 0.2 * geom.area:
            continue
        site = sites.iloc[int(overlap.to_numpy().argmax())]
        result["matched"] += 1
        start, end = dt.date(int(year), 1, 1), dt.date(int(year), 12, 31)
        after, before = site["constructed_after"], site["constructed_before"]
        before = before if before is not None and before == before else None  # NaN: none
        after = after if after is not None and after == after else None
        first_end = next(p.end for p in periods if p.name == site["first_seen"])
        ok_before = _as_date(before or first_end) >= start
        ok_after = after is None or _as_date(after) <= end
        result["agree"] += int(ok_before and ok_after)
        first_year = int(str(site["first_seen"])[:4])
        result["first_seen_year_or_next"] += int(first_year in (year, year + 1))
    return result


def _as_date(v: Any) -> dt.date:
    """A date from a date, a datetime or pandas Timestamp (as GeoPackage Date fields read) or
    ISO text."""
    if isinstance(v, dt.datetime):
        return v.date()
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])
