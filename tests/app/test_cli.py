"""The command line: help everywhere, and bad input as one line with exit code 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from solarmap.app.cli import main
from tests.conftest import (
    checkpoint_with_training_stats,
    reordered_checkpoint,
    scene_training_stats,
    write_float_scene,
)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("cmd", [[], ["demo-data"], ["prepare"]])
def test_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*cmd, "--help"], capsys)
    assert code == 0 and "Usage" in out


def test_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "solarmap", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "prepare" in proc.stdout


def _expect_error(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    code, _, err = run(argv, capsys)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _prepare(scene: Path | str, labels: Path | str, out: Path) -> list[str]:
    return ["-q", "prepare", "--scene", str(scene), "--labels", str(labels), "--out", str(out)]


def test_prepare_ok(tiny_scene: Path, tiny_labels: Path, tmp_path: Path, capsys) -> None:
    code, out, err = run(_prepare(tiny_scene, tiny_labels, tmp_path / "o"), capsys)
    assert code == 0, err
    assert "chips" in out and (tmp_path / "o" / "chips.gpkg").exists()


def test_usage_error_is_clicks_own(capsys) -> None:
    # Bad values of prepare's and demo-data's options are in the corpus (tests/app/corpus);
    # an option without its value is click's usage error, with its usage lines.
    code, _, err = run(["prepare", "--scene"], capsys)
    assert code == 2 and "Traceback" not in err


def test_demo_data_then_prepare_end_to_end(tmp_path: Path, capsys) -> None:
    import json

    import geopandas as gpd

    region = tmp_path / "region"
    code, _, err = run(
        [
            "-q",
            "demo-data",
            "--out",
            str(region),
            "--size",
            "256",
            "--seed",
            "2",
            "--spurious",
            "pad",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((region / "region.json").read_text())["config"]["spurious"] == "pad"
    argv = _prepare(region / "scene.tif", region / "labels.osm", tmp_path / "p")
    code, _, err = run(
        [*argv, "--chip-size", "64", "--block-size", "64", "--boundary", "1"], capsys
    )
    assert code == 0, err
    chips = gpd.read_file(tmp_path / "p" / "chips.gpkg")
    assert len(chips) == 16 and chips.positive.any()
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert cfg["config"]["boundary"] == 1 and cfg["config"]["chip_size"] == 64
    # Running demo-data again into the same folder is refused without --overwrite.
    code, _, err = run(["demo-data", "--out", str(region), "--size", "64"], capsys)
    assert code == 2 and "--overwrite" in err


def _predict(scene: Path, ckpt: Path, out: Path) -> list[str]:
    return [
        "-q",
        "predict",
        "--scene",
        str(scene),
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
        "--window",
        "64",
        "--overlap",
        "16",
    ]


def test_predict_and_evaluate(tiny_scene, tiny_labels, tiny_checkpoint, tmp_path, capsys) -> None:
    import json

    import rasterio

    code, out, err = run(_predict(tiny_scene, tiny_checkpoint, tmp_path / "p"), capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "p" / "probability.tif") as p, rasterio.open(tiny_scene) as s:
        assert p.transform == s.transform and p.shape == s.shape and p.crs == s.crs
    code, out, err = run(
        ["-q", "evaluate", "--prediction", str(tmp_path / "p"), "--truth", str(tiny_labels)], capsys
    )
    assert code == 0, err
    assert "IoU" in out and "ROC-AUC" in out and "PR-AUC" in out and "best IoU" in out
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert 0 <= metrics["pixel"]["iou"] <= 1 and metrics["threshold"] == 0.5
    px, best = metrics["pixel"], metrics["best_threshold"]["iou"]
    assert 0 <= px["roc_auc"] <= 1 and 0 <= px["pr_auc"] <= 1
    assert 0 < best["threshold"] < 1 and px["iou"] <= best["iou"] <= 1
    assert f"ROC-AUC {px['roc_auc']:.3f}" in out and f"best IoU {best['iou']:.3f}" in out
    # The threshold comes from the prediction's record, and is checked there.
    record_path = tmp_path / "p" / "predict.json"
    record = json.loads(record_path.read_text())
    evaluate = ["-q", "evaluate", "--prediction", str(tmp_path / "p"), "--truth", str(tiny_labels)]
    _expect_error(evaluate, capsys, "metrics.json", "--overwrite")  # written above
    evaluate.append("--overwrite")
    record_path.write_text(json.dumps({**record, "threshold": 0.3}))
    assert run(evaluate, capsys)[0] == 0
    assert json.loads((tmp_path / "p" / "metrics.json").read_text())["threshold"] == 0.3
    record_path.write_text(json.dumps({**record, "threshold": float("nan")}))
    _expect_error(evaluate, capsys, "predict.json", "threshold")
    assert run([*evaluate, "--threshold", "0.4"], capsys)[0] == 0
    _expect_error([*evaluate, "--threshold", "1"], capsys, "threshold")


def test_predict_pads_a_scene_smaller_than_one_window(tiny_checkpoint, tmp_path, capsys) -> None:
    scene = write_float_scene(tmp_path / "small.tif", size=(13, 40), solar_box=(2, 2, 8, 20))
    code, _, err = run(_predict(scene, tiny_checkpoint, tmp_path / "p"), capsys)
    assert code == 0, err


def test_predict_warns_off_distribution_and_the_check_can_be_off(
    tiny_scene, tiny_checkpoint, tmp_path, capsys
) -> None:
    import json

    import rasterio

    ckpt = checkpoint_with_training_stats(
        tiny_checkpoint, tmp_path / "ckpt", scene_training_stats(tiny_scene)
    )
    code, _, err = run(_predict(tiny_scene, ckpt, tmp_path / "same"), capsys)
    assert code == 0 and err == ""  # the scene it was "trained" on: no warning
    assert json.loads((tmp_path / "same" / "predict.json").read_text())["ood"]["warning"] is False

    bright = tmp_path / "bright.tif"
    with rasterio.open(tiny_scene) as src:
        profile, data = src.profile, src.read()
        descriptions, tags = src.descriptions, src.tags()
    with rasterio.open(bright, "w", **profile) as dst:
        dst.write(data * 2.5)
        dst.descriptions = descriptions
        dst.update_tags(**tags)
    code, _, err = run(_predict(bright, ckpt, tmp_path / "bright"), capsys)
    (line,) = err.splitlines()
    assert code == 0 and line.startswith("WARNING") and "B8A" in line and "do not trust" in line
    record = json.loads((tmp_path / "bright" / "predict.json").read_text())["ood"]
    assert record["warning"] is True and "B8A" in record["bands_outside"]

    old = checkpoint_with_training_stats(tiny_checkpoint, tmp_path / "old", None)
    _expect_error(_predict(tiny_scene, old, tmp_path / "x"), capsys, "--ood-check off")
    code, _, err = run([*_predict(tiny_scene, old, tmp_path / "off"), "--ood-check", "off"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "off" / "predict.json").read_text())
    assert record["ood"] == {"check": "off", "skipped": True}


def _truncated_checkpoint(src: Path, dst: Path) -> Path:
    dst.mkdir()
    data = (src / "model.safetensors").read_bytes()
    (dst / "model.safetensors").write_bytes(data[: len(data) // 3])
    return dst


def _nan_threshold_checkpoint(src: Path, dst: Path) -> Path:
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    dst.mkdir()
    with safe_open(str(src / "model.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["solarmap"])
    meta["threshold"] = float("nan")
    weights = load_file(str(src / "model.safetensors"))
    save_file(weights, str(dst / "model.safetensors"), metadata={"solarmap": json.dumps(meta)})
    return dst


def _pickled_checkpoint(src: Path, dst: Path) -> Path:
    import torch

    dst.mkdir()
    torch.save({"weights": torch.zeros(3)}, dst / "model.safetensors")
    return dst


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (reordered_checkpoint, ["bands", "differ"]),
        (_truncated_checkpoint, ["model.safetensors"]),
        (_nan_threshold_checkpoint, ["model.safetensors", "threshold nan"]),
        (_pickled_checkpoint, ["never unpickles"]),
    ],
)
def test_bad_checkpoints(make, words, tiny_scene, tiny_checkpoint, tmp_path, capsys) -> None:
    ckpt = make(tiny_checkpoint, tmp_path / "bad")
    _expect_error(_predict(tiny_scene, ckpt, tmp_path / "p"), capsys, *words)
    assert not (tmp_path / "p").exists()


def test_predict_bad_scene_and_existing_output(tiny_checkpoint, tiny_scene, tmp_path, capsys):
    nodata = write_float_scene(tmp_path / "nd.tif", all_nodata=True)
    _expect_error(_predict(nodata, tiny_checkpoint, tmp_path / "p"), capsys, "valid")
    assert not (tmp_path / "p").exists()
    (tmp_path / "p").mkdir()
    _expect_error(_predict(tiny_scene, tiny_checkpoint, tmp_path / "p"), capsys, "--overwrite")


def test_train_and_evaluate_bad_input(tmp_path, capsys) -> None:
    _expect_error(
        ["train", "--chips", str(tmp_path), "--out", str(tmp_path / "c")], capsys, "prepare"
    )
    _expect_error(
        [
            "train",
            "--chips",
            str(tmp_path),
            "--out",
            str(tmp_path / "c"),
            "--decoder-channels",
            "a,b",
        ],
        capsys,
        "--decoder-channels",
    )
    _expect_error(
        ["evaluate", "--prediction", str(tmp_path), "--truth", str(tmp_path / "t")],
        capsys,
        "probability",
    )


@pytest.mark.parametrize("width", [80, 200])
def test_help_shows_every_default_whole(width: int) -> None:
    """Help is click's plain layout: it wraps, but never cuts a default or a method short."""
    import typer
    from typer.testing import CliRunner

    from solarmap.app.cli import app

    group: Any = typer.main.get_command(app)
    ctx = group.context_class(group)
    for name in group.list_commands(ctx):
        result = CliRunner().invoke(app, [name, "--help"], terminal_width=width)
        assert result.exit_code == 0, name
        # whole: wrapped lines (also at a hyphen, as click wraps) joined, nothing left out
        flat = re.sub(r"(\w)- ", r"\1-", " ".join(result.output.split()))
        assert "…" not in result.output, name
        command = group.get_command(ctx, name)
        assert command is not None
        for param in command.params:
            default = param.default
            if isinstance(default, str | int | float) and not isinstance(default, bool):
                assert f"[default: {default}]" in flat, (name, param.name, width)
    top = CliRunner().invoke(app, ["--help"], terminal_width=width).output
    assert "-vv" in top
    commands = top[top.index("Commands:") :]
    assert "..." not in commands  # every command's one-line summary whole


def _next_line(out: str) -> str:
    last = out.strip().splitlines()[-1]
    assert last.startswith("next: "), out
    return last.removeprefix("next: ")


def test_every_command_ends_with_what_to_open_or_run_next(
    tiny_scene: Path, tiny_labels: Path, tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    import shlex

    code, out, err = run(
        ["-q", "demo-data", "--out", str(tmp_path / "region"), "--size", "64"], capsys
    )
    assert code == 0, err
    step = _next_line(out)
    assert step.startswith(f"solarmap prepare --scene {tmp_path / 'region' / 'scene.tif'} ")

    code, out, err = run(_prepare(tiny_scene, tiny_labels, tmp_path / "prepared"), capsys)
    assert code == 0, err
    chips, ckpt = tmp_path / "prepared", tmp_path / "checkpoint"
    assert _next_line(out) == f"solarmap train --chips {chips} --out {ckpt}"

    # A threshold every pixel of the random model reaches: one detection to explain.
    predict = [
        *_predict(tiny_scene, tiny_checkpoint, tmp_path / "prediction"),
        "--threshold",
        "0.01",
    ]
    code, out, err = run(predict, capsys)
    assert code == 0, err
    step = _next_line(out)
    assert step.startswith("solarmap explain ") and "--top 1" in step
    code, out, err = run(["-q", *shlex.split(step)[1:], "--methods", "saliency"], capsys)
    assert code == 0, err  # the suggested command runs as it is
    step = _next_line(out)
    assert step.startswith("open ") and step.endswith(" in QGIS")
    assert all(Path(p).exists() for p in shlex.split(step)[1:-2] if p != "and")

    code, out, err = run(
        [
            "-q",
            "evaluate",
            "--prediction",
            str(tmp_path / "prediction"),
            "--truth",
            str(tiny_labels),
        ],
        capsys,
    )
    assert code == 0, err
    step = _next_line(out)
    assert all(Path(p).exists() for p in shlex.split(step)[1:] if p != "and")

    nothing = [*_predict(tiny_scene, tiny_checkpoint, tmp_path / "none"), "--threshold", "0.99"]
    code, out, err = run(nothing, capsys)
    assert code == 0 and _next_line(out).startswith(f"open {tmp_path / 'none' / 'probability.tif'}")
