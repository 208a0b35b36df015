"""Bad input to `solarmap predict`: options out of range, outputs that cannot be written or
would delete an input, scenes that are not scenes. (Bad checkpoints: test_checkpoint.py.)"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.app.corpus.harness import Case, Inputs, ids, text_file
from tests.conftest import checkpoint_with_training_stats, write_float_scene

Argv = Callable[[Inputs, Path], list[str]]


def _predict(*extra: str, out: str = "OUT") -> Argv:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        return ["-q", "predict", "--scene", str(i.scene), "--checkpoint", str(i.checkpoint),
                "--out", out, *extra]  # fmt: skip

    return argv


def _with(make: Callable[[Inputs, Path], list[str]]) -> Argv:
    """Arguments built from files the case writes: ``make`` returns the whole argv."""
    return make


def _existing_out(i: Inputs, tmp: Path) -> list[str]:
    (tmp / "done").mkdir()
    (tmp / "done" / "keep.txt").write_text("an earlier result")
    return _predict(out=str(tmp / "done"))(i, tmp)


def _out_under_a_file(i: Inputs, tmp: Path) -> list[str]:
    text_file(tmp / "some_file")
    return _predict(out=str(tmp / "some_file" / "sub"))(i, tmp)


def _out_is_a_file(i: Inputs, tmp: Path) -> list[str]:
    text_file(tmp / "result.gpkg")
    return _predict("--overwrite", out=str(tmp / "result.gpkg"))(i, tmp)


def _out_holds_the_scene(i: Inputs, tmp: Path) -> list[str]:
    region = tmp / "region"
    region.mkdir()
    scene = shutil.copy(i.scene, region / "scene.tif")
    return ["-q", "predict", "--scene", str(scene), "--checkpoint", str(i.checkpoint),
            "--out", str(region), "--overwrite"]  # fmt: skip


def _out_is_the_checkpoint(i: Inputs, tmp: Path) -> list[str]:
    ckpt = shutil.copytree(i.checkpoint, tmp / "ckpt")
    return ["-q", "predict", "--scene", str(i.scene), "--checkpoint", str(ckpt),
            "--out", str(ckpt), "--overwrite"]  # fmt: skip


def _scene(make: Callable[[Path], Path], *extra: str) -> Argv:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        return ["-q", "predict", "--scene", str(make(tmp)), "--checkpoint", str(i.checkpoint),
                "--out", "OUT", *extra]  # fmt: skip

    return argv


def _missing_scl(i: Inputs, tmp: Path) -> list[str]:
    return _predict("--scl", str(tmp / "nope_SCL.tif"))(i, tmp)


def _no_training_stats(i: Inputs, tmp: Path) -> list[str]:
    """A checkpoint from before checkpoints carried their training statistics."""
    ckpt = checkpoint_with_training_stats(i.checkpoint, tmp / "old_ckpt", None)
    return ["-q", "predict", "--scene", str(i.scene), "--checkpoint", str(ckpt),
            "--out", "OUT"]  # fmt: skip


CASES: list[Case] = [
    Case("predict-overlap-500", _predict("--overlap", "500"), ("--overlap 500", "0 to 128")),
    Case(
        "predict-overlap-over-a-quarter",
        _predict("--window", "64", "--overlap", "17"),
        ("--overlap 17", "0 to 16", "--window 64"),
    ),
    Case("predict-negative-overlap", _predict("--overlap", "-1"), ("--overlap -1",)),
    Case("predict-zero-window", _predict("--window", "0"), ("--window 0", "8192")),
    Case("predict-negative-window", _predict("--window", "-64"), ("--window -64",)),
    Case("predict-huge-window", _predict("--window", "100000"), ("--window 100000", "8192")),
    Case(
        "predict-window-not-a-multiple",
        _predict("--window", "60", "--overlap", "8"),
        ("--window 60", "multiple of 8", "use e.g. 56"),
    ),
    Case("predict-zero-batch", _predict("--batch-size", "0"), ("--batch-size 0",)),
    Case("predict-negative-batch", _predict("--batch-size", "-4"), ("--batch-size -4",)),
    Case(
        "predict-batch-beyond-memory",
        _predict("--batch-size", "100000"),
        ("--batch-size 100000", "pixels per forward pass", "lower"),
    ),
    Case("predict-zero-threshold", _predict("--threshold", "0"), ("--threshold 0", "0 and 1")),
    Case("predict-threshold-1", _predict("--threshold", "1"), ("--threshold 1", "0 and 1")),
    Case("predict-nan-threshold", _predict("--threshold", "nan"), ("--threshold nan",)),
    Case("predict-negative-threshold", _predict("--threshold", "-0.5"), ("--threshold -0.5",)),
    Case("predict-inf-threshold", _predict("--threshold", "inf"), ("--threshold inf",)),
    Case("predict-negative-min-area", _predict("--min-area", "-1"), ("--min-area -1", ">= 0")),
    Case("predict-nan-min-area", _predict("--min-area", "nan"), ("--min-area nan", "finite")),
    Case("predict-inf-min-area", _predict("--min-area", "inf"), ("--min-area inf", "finite")),
    Case("predict-existing-out", _with(_existing_out), ("done", "--overwrite")),
    Case("predict-out-under-a-file", _with(_out_under_a_file), ("some_file", "is a file")),
    Case("predict-out-is-a-file", _with(_out_is_a_file), ("result.gpkg", "not an output folder")),
    Case(
        "predict-out-holds-the-scene",
        _with(_out_holds_the_scene),
        ("region", "holds the input", "scene.tif", "choose another --out"),
    ),
    Case(
        "predict-out-is-the-checkpoint",
        _with(_out_is_the_checkpoint),
        ("ckpt", "holds the input"),
    ),
    Case("predict-missing-scene", _scene(lambda t: t / "nope.tif"), ("nope.tif", "not found")),
    Case("predict-scene-not-a-raster", _scene(lambda t: text_file(t / "x.tif")), ("x.tif",)),
    Case(
        "predict-four-band-scene",
        _scene(lambda t: write_float_scene(t / "rgbn.tif", count=4)),
        ("rgbn.tif", "4 band"),
    ),
    Case("predict-missing-scl", _with(_missing_scl), ("nope_SCL.tif",)),
    Case(
        "predict-ood-check-bogus",
        _predict("--ood-check", "bogus"),
        ("--ood-check bogus", "warn or off"),
    ),
    Case(
        "predict-checkpoint-without-training-stats",
        _with(_no_training_stats),
        ("old_ckpt", "no training statistics", "out-of-distribution", "--ood-check off"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_predict_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
