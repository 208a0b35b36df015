"""Bad input to `solarmap demo-data`: messages name the command's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.corpus.harness import Case, Inputs, ids


def _demo(*extra: str):  # type: ignore[no-untyped-def]
    def argv(i: Inputs, tmp: Path) -> list[str]:
        return ["-q", "demo-data", "--out", "OUT", *extra]

    return argv


def _footprints(content: str | None):  # type: ignore[no-untyped-def]
    """``demo-data`` with a footprints file of ``content`` (``None``: a file that is absent)."""

    def argv(i: Inputs, tmp: Path) -> list[str]:
        path = tmp / "farms.geojson"
        if content is not None:
            path.write_text(content)
        return ["-q", "demo-data", "--out", "OUT", "--size", "64", "--footprints", str(path)]

    return argv


_POINTS_ONLY = (
    '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
    '"geometry": {"type": "Point", "coordinates": [16.5, 48.2]}}]}'
)
_NO_FEATURES = '{"type": "FeatureCollection", "features": []}'


def _taken(i: Inputs, tmp: Path) -> list[str]:
    (tmp / "region").mkdir()
    return ["-q", "demo-data", "--out", str(tmp / "region"), "--size", "64"]


CASES: list[Case] = [
    Case("demo-data-size-zero", _demo("--size", "0"), ("--size 0: choose 64 to 16384",)),
    Case("demo-data-size-negative", _demo("--size", "-64"), ("--size -64", "64 to 16384")),
    Case("demo-data-size-odd", _demo("--size", "65"), ("--size 65", "even")),
    Case("demo-data-size-huge", _demo("--size", "1000000"), ("--size 1000000", "16384")),
    Case("demo-data-seed-negative", _demo("--seed", "-1"), ("--seed -1", "choose 0")),
    Case(
        "demo-data-unmapped-above-one",
        _demo("--unmapped-fraction", "2"),
        ("--unmapped-fraction 2", "choose 0 to 1"),
    ),
    Case(
        "demo-data-unmapped-negative",
        _demo("--unmapped-fraction", "-0.1"),
        ("--unmapped-fraction -0.1",),
    ),
    Case("demo-data-unmapped-nan", _demo("--unmapped-fraction", "nan"), ("--unmapped-fraction",)),
    Case("demo-data-spurious", _demo("--spurious", "glitter"), ("--spurious", "none, pad or snow")),
    Case(
        "demo-data-spurious-width",
        _demo("--spurious-width", "1"),
        ("--spurious-width 1", "5 to 200"),
    ),
    Case("demo-data-out-exists", _taken, ("region", "--overwrite")),
    Case(
        "demo-data-preset-unknown",
        _demo("--preset", "tundra"),
        ("--preset tundra", "choose one of deccan, central-europe, alpine, desert, rice-paddy"),
    ),
    Case(
        "demo-data-footprints-missing",
        _footprints(None),
        ("farms.geojson", "footprints file not found"),
    ),
    Case(
        "demo-data-footprints-no-polygons",
        _footprints(_POINTS_ONLY),
        ("farms.geojson", "no polygons"),
    ),
    Case(
        "demo-data-footprints-no-features",
        _footprints(_NO_FEATURES),
        ("farms.geojson", "no polygons"),
    ),
    Case("demo-data-footprints-empty", _footprints(""), ("farms.geojson", "empty")),
    Case(
        "demo-data-footprints-not-vector",
        _footprints("solar farms, a list\n"),
        ("farms.geojson", "not a vector file"),
    ),
    Case(
        "demo-data-seed-huge",
        _demo("--seed", str(2**63)),
        ("--seed 9223372036854775808", "choose 0 to"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_demo_data_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    line = check_case(case)
    assert "RegionConfig" not in line
