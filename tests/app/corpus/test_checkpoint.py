"""Bad checkpoints fed to `solarmap predict` and `solarmap explain`.

Each is refused when it is loaded, before any work, with one line naming the file and the fix.
The bad checkpoints are made from the corpus's valid one (a small U-Net: encoder depth 3,
decoder 16,8,8, ten bands, threshold 0.5).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from solarmap.bands import BANDS
from tests.app.corpus.harness import Case, Inputs, ids, text_file

INSIDE = "700555,1559595"  # a point inside the corpus scene (UTM 43N)
WEIGHTS = "model.safetensors"

Maker = Callable[[Inputs, Path], Path]


def _meta(i: Inputs) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(i.checkpoint / WEIGHTS), framework="pt") as f:
        return json.loads(f.metadata()["solarmap"])


def _state(i: Inputs) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(i.checkpoint / WEIGHTS))


def _write(
    folder: Path,
    meta: dict[str, Any] | str | None,
    state: dict[str, Any],
    *,
    copy: bool = True,
) -> Path:
    """A checkpoint folder: ``state`` with ``meta`` in the safetensors header (text as given),
    and (``copy``) the same metadata in checkpoint.json, as `solarmap train` writes it."""
    from safetensors.torch import save_file

    folder.mkdir()
    text = meta if isinstance(meta, str) or meta is None else json.dumps(meta)
    save_file(state, str(folder / WEIGHTS), metadata=None if text is None else {"solarmap": text})
    if copy and isinstance(meta, dict):
        (folder / "checkpoint.json").write_text(json.dumps(meta, indent=2))
    return folder


def _edited(**changes: Any) -> Maker:
    """The valid checkpoint with metadata keys changed (``None`` removes a key)."""

    def make(i: Inputs, tmp: Path) -> Path:
        meta = _meta(i)
        for key, value in changes.items():
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value
        return _write(tmp / "edited", meta, _state(i))

    return make


def _model_edited(**changes: Any) -> Maker:
    def make(i: Inputs, tmp: Path) -> Path:
        meta = _meta(i)
        meta["model"] = {**meta["model"], **changes}
        return _write(tmp / "model-edited", meta, _state(i))

    return make


def _raw_meta(text: str) -> Maker:
    def make(i: Inputs, tmp: Path) -> Path:
        return _write(tmp / "raw-meta", text, _state(i))

    return make


def _missing(i: Inputs, tmp: Path) -> Path:
    return tmp / "nowhere"


def _empty_folder(i: Inputs, tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _weights_folder(i: Inputs, tmp: Path) -> Path:
    (tmp / "odd" / WEIGHTS).mkdir(parents=True)
    return tmp / "odd"


def _weights_bytes(data: bytes | Callable[[bytes], bytes]) -> Maker:
    def make(i: Inputs, tmp: Path) -> Path:
        folder = tmp / "bytes"
        folder.mkdir()
        blob = data((i.checkpoint / WEIGHTS).read_bytes()) if callable(data) else data
        (folder / WEIGHTS).write_bytes(blob)
        return folder

    return make


def _pickled(i: Inputs, tmp: Path) -> Path:
    import torch

    folder = tmp / "pickled"
    folder.mkdir()
    torch.save(_state(i), folder / WEIGHTS)
    return folder


def _text_path(i: Inputs, tmp: Path) -> Path:
    return text_file(tmp / "checkpoint.txt")


def _no_metadata(i: Inputs, tmp: Path) -> Path:
    return _write(tmp / "bare", None, _state(i))


def _too_large(i: Inputs, tmp: Path) -> Path:
    return _write(tmp / "large", {**_meta(i), "notes": "x" * 2_000_000}, _state(i))


def _four_channels(i: Inputs, tmp: Path) -> Path:
    """Weights and model config for 4 input channels, metadata listing the ten bands."""
    import dataclasses

    from solarmap.model import ModelConfig, build_model

    meta = _meta(i)
    cfg = dataclasses.replace(ModelConfig.from_dict(meta["model"]), in_channels=4)
    state = {k: v.contiguous() for k, v in build_model(cfg).state_dict().items()}
    meta["model"] = dataclasses.asdict(cfg)
    return _write(tmp / "four", meta, state)


def _four_channel_weights(i: Inputs, tmp: Path) -> Path:
    """Weights for 4 input channels under a config that claims 10."""
    import dataclasses

    from solarmap.model import ModelConfig, build_model

    meta = _meta(i)
    cfg = dataclasses.replace(ModelConfig.from_dict(meta["model"]), in_channels=4)
    state = {k: v.contiguous() for k, v in build_model(cfg).state_dict().items()}
    return _write(tmp / "four-weights", meta, state)


def _extra_tensor(i: Inputs, tmp: Path) -> Path:
    import torch

    return _write(tmp / "extra", _meta(i), {**_state(i), "spare.weight": torch.zeros(3)})


def _nan_weights(i: Inputs, tmp: Path) -> Path:
    state = _state(i)
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    return _write(tmp / "nan-weights", _meta(i), state)


def _copy_text(text: str) -> Maker:
    """The valid checkpoint with its checkpoint.json replaced by ``text``."""

    def make(i: Inputs, tmp: Path) -> Path:
        folder = _write(tmp / "copy", _meta(i), _state(i))
        (folder / "checkpoint.json").write_text(text)
        return folder

    return make


def _copy_edited(i: Inputs, tmp: Path) -> Path:
    """checkpoint.json with another threshold than the weights carry: an edit that does
    nothing."""
    meta = _meta(i)
    folder = _write(tmp / "copy-edited", meta, _state(i))
    (folder / "checkpoint.json").write_text(json.dumps({**meta, "threshold": 0.3}))
    return folder


DEEP = "[" * 200_000 + "]" * 200_000
X_BANDS = [f"X{n}" for n in range(1, 11)]

#: ``(name, make, words)``: every bad checkpoint, fed to predict.
BAD: list[tuple[str, Maker, tuple[str, ...]]] = [
    ("missing", _missing, ("nowhere", "not found", "solarmap train")),
    ("empty-folder", _empty_folder, (WEIGHTS, "not found")),
    ("weights-is-a-folder", _weights_folder, (WEIGHTS, "not a file")),
    ("zero-bytes", _weights_bytes(b""), (WEIGHTS, "not a safetensors file")),
    ("garbage", _weights_bytes(b"solar panels are blue\n" * 20), ("not a safetensors file",)),
    ("truncated", _weights_bytes(lambda b: b[: len(b) // 3]), (WEIGHTS, "corrupt or truncated")),
    ("pickle", _pickled, (WEIGHTS, "never unpickles")),
    ("text-file", _text_path, ("checkpoint.txt", "not a safetensors file")),
    ("no-metadata", _no_metadata, (WEIGHTS, "no solarmap metadata")),
    ("metadata-not-json", _raw_meta("{bands: B02"), (WEIGHTS, "not JSON")),
    ("metadata-a-list", _raw_meta("[1, 2, 3]"), (WEIGHTS, "not a JSON object")),
    ("metadata-nested-200000", _raw_meta(DEEP), (WEIGHTS, "200,000 levels", "retrain")),
    ("metadata-too-large", _too_large, (WEIGHTS, "bytes, more than", "retrain")),
    ("no-threshold", _edited(threshold=None), (WEIGHTS, "lacks threshold")),
    ("no-bands-no-model", _edited(bands=None, model=None), (WEIGHTS, "lacks bands, model")),
    ("unknown-band-names", _edited(bands=X_BANDS), (WEIGHTS, "unknown band 'X1'")),
    ("band-twice", _edited(bands=[*BANDS[:9], "B02"]), (WEIGHTS, "listed twice")),
    ("bands-a-string", _edited(bands="B02,B03"), (WEIGHTS, "not a list of band names")),
    ("four-channels", _four_channels, (WEIGHTS, "4 input channels", "10 bands")),
    ("four-channel-weights", _four_channel_weights, (WEIGHTS, "do not fit")),
    ("extra-tensor", _extra_tensor, (WEIGHTS, "do not fit")),
    ("nan-weights", _nan_weights, (WEIGHTS, "NaN or infinite", "retrain")),
    ("unknown-encoder", _model_edited(encoder="bogus-net"), (WEIGHTS, "encoder 'bogus-net'")),
    ("unknown-model-key", _model_edited(dropout=0.5), (WEIGHTS, "unknown model config keys")),
    ("zero-decoder-widths", _model_edited(decoder_channels=[0, 0, 0]), (WEIGHTS, "decoder")),
    ("nan-threshold", _edited(threshold=float("nan")), (WEIGHTS, "threshold nan")),
    ("threshold-above-1", _edited(threshold=1.5), (WEIGHTS, "threshold 1.5")),
    (
        "short-normalisation",
        _edited(normalisation={"mean": [0.1] * 4, "std": [0.1] * 4}),
        (WEIGHTS, "normalisation does not match"),
    ),
    (
        "zero-std",
        _edited(normalisation={"mean": [0.1] * 10, "std": [0.0] * 10}),
        (WEIGHTS, "std > 0"),
    ),
    (
        "nan-std",
        _edited(normalisation={"mean": [0.1] * 10, "std": [float("nan")] * 10}),
        (WEIGHTS, "NaN or infinite"),
    ),
    ("negative-chip-size", _edited(chip_size=-64), (WEIGHTS, "chip_size -64")),
    ("text-chip-size", _edited(chip_size="big"), (WEIGHTS, "chip_size 'big'")),
    ("future-format", _edited(format_version=99), (WEIGHTS, "newer", "upgrade solarmap")),
    ("copy-not-json", _copy_text("{threshold: 0.5"), ("checkpoint.json", "not JSON", "delete")),
    ("copy-nested-200000", _copy_text(DEEP), ("checkpoint.json", "200,000 levels")),
    ("copy-edited", _copy_edited, ("checkpoint.json", "differs", "'threshold'")),
]

#: The kinds also fed to explain.
FOR_EXPLAIN = (
    "missing",
    "garbage",
    "pickle",
    "metadata-nested-200000",
    "four-channels",
    "unknown-encoder",
    "nan-threshold",
    "copy-edited",
    "nan-weights",
)


def _predict(make: Maker) -> Callable[[Inputs, Path], list[str]]:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        return ["-q", "predict", "--scene", str(i.scene), "--checkpoint", str(make(i, tmp)),
                "--out", "OUT", "--window", "64"]  # fmt: skip

    return argv


def _explain(make: Maker) -> Callable[[Inputs, Path], list[str]]:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        return ["-q", "explain", "--scene", str(i.scene), "--checkpoint", str(make(i, tmp)),
                "--target", INSIDE, "--out", "OUT"]  # fmt: skip

    return argv


CASES: list[Case] = [
    Case(f"predict-checkpoint-{name}", _predict(make), words) for name, make, words in BAD
] + [
    Case(f"explain-checkpoint-{name}", _explain(make), words)
    for name, make, words in BAD
    if name in FOR_EXPLAIN
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_checkpoint(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
