"""The general model shipped in the package: it loads, carries what predict needs, has a model
card, and `solarmap predict` / `explain` use it when no --checkpoint is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solarmap.app.cli import main
from solarmap.errors import CheckpointError
from solarmap.model import SHIPPED_MODEL, load_checkpoint, shipped_checkpoint
from tests.conftest import ORIGIN, write_float_scene


def test_the_shipped_model_loads_with_its_statistics_and_card() -> None:
    ckpt = load_checkpoint(shipped_checkpoint())
    assert ckpt.metadata["training_stats"]["pixels"] > 0
    assert (SHIPPED_MODEL / "model.safetensors").stat().st_size < 8 * 1024**2  # a few MB
    card = (SHIPPED_MODEL / "MODEL_CARD.md").read_text(encoding="utf-8")
    for words in ("Training data and licences", "ODbL", "Copernicus", "Known failure modes"):
        assert words in card
    record = (SHIPPED_MODEL / "checkpoint.json").read_text(encoding="utf-8")
    assert '"/' not in record  # no path of the machine it was trained on


def test_predict_and_explain_without_checkpoint_use_the_shipped_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = write_float_scene(tmp_path / "s.tif", size=(64, 64), solar_box=(20, 20, 44, 44))
    assert main(["-q", "predict", "--scene", str(scene), "--out", str(tmp_path / "p")]) == 0
    record = json.loads((tmp_path / "p" / "predict.json").read_text())
    assert Path(record["checkpoint"]["id"]).resolve() == SHIPPED_MODEL
    capsys.readouterr()
    x, y = ORIGIN[0] + 320, ORIGIN[1] - 320  # inside the scene
    argv = ["-q", "explain", "--scene", str(scene), "--target", f"{x},{y}", "--methods",
            "saliency", "--out", str(tmp_path / "e")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "e" / "target_0" / "attribution.tif").is_file()


def test_no_shipped_model_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import solarmap.model

    monkeypatch.setattr(solarmap.model, "SHIPPED_MODEL", tmp_path / "none")
    with pytest.raises(CheckpointError, match="--checkpoint"):
        shipped_checkpoint()
    scene = write_float_scene(tmp_path / "s.tif")
    assert main(["-q", "predict", "--scene", str(scene), "--out", str(tmp_path / "p")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "ships no model" in line and not (tmp_path / "p").exists()
