"""Bad input to `solarmap concepts`."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest

from tests.app.corpus.harness import Case, ids


@functools.cache
def _region() -> Path:
    """A small generated region (scene and land cover), made once."""
    from data_prep.synthetic import RegionConfig, generate_region

    root = Path(tempfile.mkdtemp(prefix="solarmap-corpus-concepts-"))
    return generate_region(root, RegionConfig(seed=2, size=128)).scene


def _concepts(*extra: str, scene: str | None = None):  # type: ignore[no-untyped-def]
    def argv(i, tmp):  # type: ignore[no-untyped-def]
        return ["-q", "concepts", "--scene", scene or str(_region()), "--checkpoint",
                str(i.checkpoint), "--out", "OUT", *extra]  # fmt: skip

    return argv


def _no_landcover(i, tmp):  # type: ignore[no-untyped-def]
    return _concepts(scene=str(i.scene))(i, tmp)


def _landcover_of_another_grid(i, tmp):  # type: ignore[no-untyped-def]
    import shutil

    import rasterio

    src = _region()
    for f in src.parent.glob("scene*"):
        shutil.copy(f, tmp / f.name)
    with rasterio.open(src.parent / "landcover.tif") as lc:
        profile = lc.profile | {"width": lc.width // 2, "height": lc.height // 2}
        data = lc.read(1)[: lc.height // 2, : lc.width // 2]
    with rasterio.open(tmp / "landcover.tif", "w", **profile) as dst:
        dst.write(data, 1)
    return _concepts(scene=str(tmp / "scene.tif"))(i, tmp)


CASES: list[Case] = [
    Case("concepts-no-landcover", _no_landcover, ("no landcover.tif beside it", "demo-data")),
    Case(
        "concepts-landcover-other-grid",
        _landcover_of_another_grid,
        ("landcover.tif", "not the scene's", "64x64 against 128x128"),
    ),
    Case("concepts-min-effect", _concepts("--min-effect", "2"), ("--min-effect 2",)),
    Case(
        "concepts-unknown-layer",
        _concepts("--layer", "decoder.nope"),
        ("--layer 'decoder.nope'", "valid layers:", "decoder.blocks.0"),
    ),
    Case(
        "concepts-feature-out-of-range",
        _concepts("--features", "999"),
        ("--features 999", "out of range", "channels"),
    ),
    Case(
        "concepts-features-not-numbers",
        _concepts("--features", "a,b"),
        ("--features 'a,b'", "comma-separated integers"),
    ),
    Case("concepts-negative-feature", _concepts("--features", "-1"), ("--features", "0 or more")),
    Case(
        "concepts-vocabulary", _concepts("--concepts", "wordnet"), ("wordnet", "landcover", "osm")
    ),
    Case("concepts-tile-px", _concepts("--tile-px", "8"), ("--tile-px 8", "16 to 1024")),
    Case("concepts-tile-px-multiple", _concepts("--tile-px", "20"), ("--tile-px 20", "multiple")),
    Case(
        "concepts-tile-larger-than-scene",
        _concepts("--tile-px", "256"),
        ("no probe tile of 256 px",),
    ),
    Case("concepts-top-k", _concepts("--top-k", "0"), ("--top-k 0",)),
    Case("concepts-threshold", _concepts("--region-threshold", "1.5"), ("--region-threshold",)),
    Case("concepts-contrast", _concepts("--contrast", "0"), ("--contrast 0",)),
    Case("concepts-missing-target", _concepts("--target", "nope.gpkg"), ("nope.gpkg",)),
    Case("concepts-zero-top", _concepts("--top", "0"), ("--top 0",)),
    Case("concepts-sae-k", _concepts("--sae", "--sae-k", "-1"), ("--sae-k -1",)),
    Case("concepts-sae-steps", _concepts("--sae", "--sae-steps", "0"), ("--sae-steps 0",)),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_concepts_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)


def test_osm_concepts_offline_with_no_cache(
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Concepts from OSM when Overpass does not answer and nothing is cached: one line, exit 2,
    nothing written."""
    import osmnx as ox

    from solarmap.app.cli import main

    monkeypatch.setenv("SOLARMAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ox.settings, "overpass_url", "http://127.0.0.1:9/api")
    monkeypatch.setattr(ox.settings, "overpass_rate_limit", False)
    monkeypatch.setattr(ox.settings, "use_cache", False)
    monkeypatch.setattr(ox.settings, "requests_timeout", 5)
    out = tmp_path / "out"
    code = main(["-q", "concepts", "--scene", str(_region()), "--concepts", "osm",
                 "--checkpoint", str(tiny_checkpoint), "--out", str(out)])  # fmt: skip
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert "none cached" in lines[0] and "127.0.0.1:9" in lines[0]
    assert not out.exists()
