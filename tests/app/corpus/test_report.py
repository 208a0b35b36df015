"""Bad input to `solarmap report`."""

from __future__ import annotations

import pytest

from tests.app.corpus.harness import Case, ids, text_file
from tests.conftest import write_float_scene


def _report(*extra: str, out: str | None = None):  # type: ignore[no-untyped-def]
    def argv(i, tmp):  # type: ignore[no-untyped-def]
        return ["-q", "report", "--run", str(i.prediction), *extra,
                "--out", out or str(tmp / "out" / "r.html")]  # fmt: skip

    return argv


def _runs(*folders: str):  # type: ignore[no-untyped-def]
    def argv(i, tmp):  # type: ignore[no-untyped-def]
        runs = []
        for name in folders:
            (tmp / name).mkdir(exist_ok=True)
            runs += ["--run", str(tmp / name)]
        if "damaged" in folders:
            text_file(tmp / "damaged" / "predict.json", '{"scene": ')
        return ["-q", "report", *runs, "--out", str(tmp / "out" / "r.html")]

    return argv


def _named(what: str):  # type: ignore[no-untyped-def]
    def argv(i, tmp):  # type: ignore[no-untyped-def]
        run = str(i.scene) if what == "scene" else str(tmp / what)
        return ["-q", "report", "--run", run, "--out", "OUT"]

    return argv


def _exists(i, tmp):  # type: ignore[no-untyped-def]
    text_file(tmp / "old.html", "<html></html>")
    return ["-q", "report", "--run", str(i.prediction), "--out", str(tmp / "old.html")]


def _other_scene(i, tmp):  # type: ignore[no-untyped-def]
    other = write_float_scene(tmp / "other.tif", size=(64, 64))
    return _report("--scene", str(other))(i, tmp)


CASES: list[Case] = [
    Case("report-no-run", lambda i, t: ["-q", "report", "--out", "OUT"], ("--run",)),
    Case("report-missing-run", _named("nope"), ("nope", "not found")),
    Case("report-not-a-run", _runs("empty"), ("no solarmap run", "predict")),
    Case("report-damaged-record", _runs("damaged"), ("predict.json", "not valid JSON")),
    Case("report-not-html", _report(out="OUT"), (".html",)),
    Case("report-out-exists", _exists, ("exists", "--overwrite")),
    Case("report-other-scene", _other_scene, ("--scene", "64x64", "give the scene")),
    Case("report-missing-labels", _report("--labels", "nope.osm"), ("nope.osm",)),
    Case("report-run-is-a-file", _named("scene"), ("not a folder",)),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_report_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
