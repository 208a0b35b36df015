"""Bad input to `solarmap train`: options out of range, chip folders that are not what
`solarmap prepare` writes, outputs that exist or cannot be written, and --resume with nothing
(or something else) to resume. Every case is refused before training starts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.app.corpus.harness import Case, Inputs, ids, text_file

Argv = Callable[[Inputs, Path], list[str]]


def _train(*extra: str, out: str = "OUT") -> Argv:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        return ["-q", "train", "--chips", str(i.chips), "--out", out, "--epochs", "1", *extra]

    return argv


def _chips(change: Callable[[Path], object], *extra: str) -> Argv:
    """A copy of the valid chip folder, changed by ``change``."""

    def argv(i: Inputs, tmp: Path) -> list[str]:
        chips = shutil.copytree(i.chips, tmp / "chips")
        change(chips)
        return ["-q", "train", "--chips", str(chips), "--out", "OUT", *extra]

    return argv


def _chips_at(make: Callable[[Inputs, Path], Path]) -> Argv:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        return ["-q", "train", "--chips", str(make(i, tmp)), "--out", "OUT"]

    return argv


def _stats(**changes: object) -> Callable[[Path], object]:
    def change(chips: Path) -> None:
        stats = json.loads((chips / "stats.json").read_text())
        (chips / "stats.json").write_text(json.dumps({**stats, **changes}))

    return change


def _index_without(column: str) -> Callable[[Path], object]:
    def change(chips: Path) -> None:
        import geopandas as gpd

        index = gpd.read_file(chips / "chips.gpkg").drop(columns=[column])
        (chips / "chips.gpkg").unlink()
        index.to_file(chips / "chips.gpkg", layer="chips")

    return change


def _existing_out(i: Inputs, tmp: Path) -> list[str]:
    (tmp / "done").mkdir()
    return _train(out=str(tmp / "done"))(i, tmp)


def _out_under_a_file(i: Inputs, tmp: Path) -> list[str]:
    text_file(tmp / "some_file")
    return _train(out=str(tmp / "some_file" / "sub"))(i, tmp)


def _out_is_the_chips(i: Inputs, tmp: Path) -> list[str]:
    chips = shutil.copytree(i.chips, tmp / "chips")
    return ["-q", "train", "--chips", str(chips), "--out", str(chips), "--overwrite"]


def _state(tmp: Path, info: object, *, weights: bool = True) -> None:
    """A resumable state beside ``OUT`` (``tmp/out``), as an interrupted run leaves it."""
    state = tmp / ".out.resume"
    state.mkdir()
    text = info if isinstance(info, str) else json.dumps(info)
    (state / "state.json").write_text(text)
    if weights:
        import numpy as np
        from safetensors.numpy import save_file

        save_file({"model.w": np.zeros(3, np.float32)}, str(state / "state.safetensors"))


def _leftover_state(i: Inputs, tmp: Path) -> list[str]:
    _state(tmp, {"epoch": 4})
    return _train()(i, tmp)


def _resume_state(info: object, *, weights: bool = True) -> Argv:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        _state(tmp, info, weights=weights)
        return _train("--resume")(i, tmp)

    return argv


def _other_chip_size(i: Inputs, tmp: Path) -> list[str]:
    """A second prepared folder of the same scene, cut into 64-pixel chips."""
    from data_prep.prepare import PrepareConfig, prepare

    prepare([i.scene], i.labels, tmp / "big", config=PrepareConfig(chip_size=64, block_size=64))
    return _train("--chips", str(tmp / "big"))(i, tmp)


def _val_is_train(i: Inputs, tmp: Path) -> list[str]:
    return _train("--val-chips", str(i.chips))(i, tmp)


def _twice(i: Inputs, tmp: Path) -> list[str]:
    return _train("--chips", str(i.chips))(i, tmp)


OTHER_MODEL = {"epoch": 2, "run": {"model": {"encoder": "resnet18", "decoder_channels": [8, 8]}}}
OTHER_CHIPS = {"epoch": 2, "run": {"data_fingerprint": "0" * 64}}

CASES: list[Case] = [
    Case("train-bogus-model", _train("--model", "forest"), ("--model 'forest'", "unet")),
    Case(
        "train-prior-without-unet",
        _train("--model", "spectral", "--prior"),
        ("--prior", "--model spectral"),
    ),
    Case("train-bogus-norm", _train("--norm", "scene2"), ("--norm 'scene2'", "chip")),
    Case("train-bogus-index", _train("--indices", "nd:B02"), ("--indices nd:B02", "nd:A:B")),
    Case("train-index-same-band", _train("--indices", "nd:B02:B02"), ("nd:B02:B02",)),
    Case("train-index-unknown-band", _train("--indices", "ratio:B01:B02"), ("ratio:B01:B02",)),
    Case("train-index-twice", _train("--indices", "nd:B02:B08,nd:B02:B08"), ("twice",)),
    Case("train-norm-none-alone", _train("--norm", "none"), ("none", "--indices")),
    Case(
        "train-index-model-with-indices",
        _train("--model", "index", "--indices", "nd:B02:B08"),
        ("--model index", "--indices"),
    ),
    Case("train-negative-gain", _train("--gain", "-0.1"), ("--gain -0.1", "0 to")),
    Case("train-huge-offset", _train("--offset", "5"), ("--offset 5", "0 to 0.1")),
    Case("train-nan-brightness", _train("--brightness", "nan"), ("--brightness nan",)),
    Case("train-huge-haze", _train("--haze", "1"), ("--haze 1", "0 to 0.2")),
    Case(
        "train-chips-of-two-sizes",
        _other_chip_size,
        ("different sizes", "32", "64", "--chip-size"),
    ),
    Case("train-chips-twice", _twice, ("--chips", "twice")),
    Case("train-val-chips-also-train", _val_is_train, ("--val-chips", "also a --chips folder")),
    Case(
        "train-val-chips-missing",
        lambda i, t: _train("--val-chips", str(t / "nowhere"))(i, t),
        ("nowhere", "not found"),
    ),
    Case("train-zero-epochs", _train("--epochs", "0"), ("--epochs 0", ">= 1")),
    Case("train-negative-epochs", _train("--epochs", "-5"), ("--epochs -5",)),
    Case("train-zero-batch", _train("--batch-size", "0"), ("--batch-size 0",)),
    Case("train-zero-patience", _train("--patience", "0"), ("--patience 0",)),
    Case("train-zero-lr", _train("--lr", "0"), ("--lr 0", "> 0")),
    Case("train-negative-lr", _train("--lr", "-0.001"), ("--lr -0.001",)),
    Case("train-nan-lr", _train("--lr", "nan"), ("--lr nan",)),
    Case("train-huge-lr", _train("--lr", "1000"), ("--lr 1000", "<= 1")),
    Case("train-zero-minutes", _train("--max-minutes", "0"), ("--max-minutes 0", "> 0")),
    Case("train-negative-minutes", _train("--max-minutes", "-1"), ("--max-minutes -1",)),
    Case("train-nan-minutes", _train("--max-minutes", "nan"), ("--max-minutes nan",)),
    Case("train-inf-minutes", _train("--max-minutes", "inf"), ("--max-minutes inf",)),
    Case("train-negative-seed", _train("--seed", "-1"), ("--seed -1",)),
    Case("train-bogus-encoder", _train("--encoder", "bogus"), ("--encoder 'bogus'", "e.g.")),
    Case("train-bogus-timm-encoder", _train("--encoder", "tu-bogus"), ("--encoder 'tu-bogus'",)),
    Case("train-empty-encoder", _train("--encoder", ""), ("--encoder ''",)),
    Case(
        "train-letter-decoder",
        _train("--decoder-channels", "a,b"),
        ("--decoder-channels 'a,b'", "integers"),
    ),
    Case("train-empty-decoder", _train("--decoder-channels", ""), ("--decoder-channels",)),
    Case(
        "train-zero-decoder",
        _train("--decoder-channels", "0,0,0"),
        ("--decoder-channels 0,0,0", ">= 1"),
    ),
    Case(
        "train-too-deep-decoder",
        _train("--decoder-channels", "8,8,8,8,8,8"),
        ("--decoder-channels 8,8,8,8,8,8", "1 to 5"),
    ),
    Case(
        "train-missing-encoder-weights",
        _train("--encoder-weights", "nope.safetensors"),
        ("--encoder-weights nope.safetensors", "not found"),
    ),
    Case("train-missing-chips", _chips_at(lambda i, t: t / "nowhere"), ("nowhere", "not found")),
    Case(
        "train-chips-a-file",
        _chips_at(lambda i, t: text_file(t / "chips.txt")),
        ("chips.txt", "not a folder"),
    ),
    Case(
        "train-empty-chips-folder",
        _chips_at(lambda i, t: (t / "empty").mkdir() or t / "empty"),
        ("stats.json", "solarmap prepare"),
    ),
    Case(
        "train-on-a-prediction",
        _chips_at(lambda i, t: i.prediction),
        ("stats.json", "solarmap prepare"),
    ),
    Case(
        "train-stats-not-json",
        _chips(lambda c: text_file(c / "stats.json")),
        ("stats.json", "not readable JSON"),
    ),
    Case(
        "train-stats-other-bands",
        _chips(_stats(bands=["B04", "B03", "B02"])),
        ("stats.json", "bands"),
    ),
    Case("train-stats-nan-mean", _chips(_stats(mean=[float("nan")] * 10)), ("stats.json", "mean")),
    Case("train-stats-zero-std", _chips(_stats(std=[0.0] * 10)), ("stats.json", "std")),
    Case(
        "train-no-chip-index",
        _chips(lambda c: (c / "chips.gpkg").unlink()),
        ("chips.gpkg", "not found"),
    ),
    Case(
        "train-chip-index-garbage",
        _chips(lambda c: text_file(c / "chips.gpkg")),
        ("chips.gpkg", "not a vector file"),
    ),
    Case(
        "train-chip-index-without-split",
        _chips(_index_without("split")),
        ("chips.gpkg", "split", "solarmap prepare"),
    ),
    Case("train-existing-out", _existing_out, ("done", "--overwrite", "--resume")),
    Case("train-out-under-a-file", _out_under_a_file, ("some_file", "is a file")),
    Case("train-out-is-the-chips", _out_is_the_chips, ("chips", "holds the input")),
    Case(
        "train-resume-and-overwrite",
        _train("--resume", "--overwrite"),
        ("--resume and --overwrite", "pass one"),
    ),
    Case("train-resume-nothing", _train("--resume"), ("--resume: nothing to resume",)),
    Case(
        "train-leftover-state-without-resume",
        _leftover_state,
        ("interrupted run", "epoch 5", ".out.resume", "--resume", "--overwrite"),
    ),
    Case(
        "train-resume-unreadable-state",
        _resume_state("{epoch: 3"),
        ("state.json", "unreadable", "--overwrite"),
    ),
    Case(
        "train-resume-state-without-weights",
        _resume_state({"epoch": 1}, weights=False),
        ("state.safetensors", "missing"),
    ),
    Case(
        "train-resume-another-model",
        _resume_state(OTHER_MODEL),
        ("state.json", "encoder resnet18", "--encoder"),
    ),
    Case(
        "train-resume-other-chips",
        _resume_state(OTHER_CHIPS),
        ("state.json", "other chips", "--chips"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_train_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
