"""U-Net building and safetensors checkpoints that never unpickle."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from solarmap.bands import BANDS
from solarmap.errors import CheckpointError, InputError
from solarmap.model import (
    WEIGHTS_FILE,
    ModelConfig,
    build_model,
    check_threshold,
    load_checkpoint,
    random_checkpoint,
    save_checkpoint,
)

TINY = ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8))


def _meta(cfg: ModelConfig = TINY) -> dict:
    return {
        "bands": list(BANDS),
        "normalisation": {"mean": [0.1] * 10, "std": [0.05] * 10},
        "model": dataclasses.asdict(cfg),
        "chip_size": 64,
        "threshold": 0.42,
        "metrics": {"val": {"iou": 0.5}},
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(folder, model, _meta())
    return folder, model


def test_round_trip_gives_identical_outputs(saved: tuple[Path, torch.nn.Module]) -> None:
    folder, model = saved
    ckpt = load_checkpoint(folder)
    x = torch.randn(2, 10, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(x), model(x))
    assert ckpt.threshold == 0.42 and ckpt.bands == BANDS and ckpt.chip_size == 64
    assert ckpt.config == TINY and ckpt.metadata["solarmap_version"]
    assert (folder / "checkpoint.json").exists()
    # The weights file alone is a complete checkpoint too.
    assert load_checkpoint(folder / WEIGHTS_FILE).threshold == 0.42


def test_normalise_and_band_check(saved: tuple[Path, torch.nn.Module]) -> None:
    ckpt = load_checkpoint(saved[0])
    x = torch.full((1, 10, 2, 2), 0.2)
    x[0, 0, 0, 0] = float("nan")
    n = ckpt.normalise(x)
    assert n[0, 1, 0, 0].item() == pytest.approx(2.0) and n[0, 0, 0, 0].item() == 0.0
    ckpt.check_bands(BANDS)
    with pytest.raises(CheckpointError, match="differ"):
        ckpt.check_bands(("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"))


def test_pickle_payload_is_refused(tmp_path: Path) -> None:
    torch.save(build_model(TINY).state_dict(), tmp_path / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(tmp_path)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / WEIGHTS_FILE).write_bytes(pickle.dumps({"w": [1, 2, 3]}, protocol=4))
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(raw)


def test_truncated_and_corrupt_checkpoints(saved, tmp_path: Path) -> None:
    data = (saved[0] / WEIGHTS_FILE).read_bytes()
    for name, blob in {
        "trunc": data[: len(data) // 2],
        "tiny": data[:5],
        "junk": b"x" * 100,
    }.items():
        d = tmp_path / name
        d.mkdir()
        (d / WEIGHTS_FILE).write_bytes(blob)
        with pytest.raises(CheckpointError):
            load_checkpoint(d)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    other = ModelConfig(encoder_depth=3, decoder_channels=(32, 16, 8))
    save_checkpoint(tmp_path, build_model(other), {**_meta(), "model": dataclasses.asdict(TINY)})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path)


def test_config_validation_and_bn_momentum() -> None:
    with pytest.raises(InputError):
        ModelConfig(encoder_depth=3, decoder_channels=(16, 8))
    with pytest.raises(InputError):
        build_model(ModelConfig(encoder="no-such-encoder"))
    with pytest.raises(InputError):
        save_checkpoint("/tmp/never", build_model(TINY), {"bands": list(BANDS)})
    m = build_model(dataclasses.replace(TINY, bn_momentum=0.2))
    moms = {mod.momentum for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)}
    assert moms == {0.2}
    assert ModelConfig().multiple == 32


def test_local_encoder_weights_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    donor = build_model(TINY)
    path = tmp_path / "enc.safetensors"
    save_file({k: v.contiguous() for k, v in donor.encoder.state_dict().items()}, str(path))
    model = build_model(dataclasses.replace(TINY, encoder_weights=str(path)))
    for (k, a), b in zip(
        model.encoder.state_dict().items(), donor.encoder.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    with pytest.raises(InputError):
        build_model(dataclasses.replace(TINY, encoder_weights=str(tmp_path / "no.safetensors")))


def test_threshold_is_a_probability_strictly_between_0_and_1() -> None:
    assert check_threshold(0.42) == 0.42 and check_threshold("0.5") == 0.5
    for bad in (0.0, 1.0, -0.1, 1.5, math.nan, math.inf, "half", None):
        with pytest.raises(InputError, match="threshold"):
            check_threshold(bad)
    with pytest.raises(CheckpointError, match=r"^ckpt: threshold 0 "):
        check_threshold(0, what="ckpt: threshold", error=CheckpointError)
    with pytest.raises(InputError, match="threshold"):
        save_checkpoint("/tmp/never", build_model(TINY), {**_meta(), "threshold": 1.0})


@pytest.mark.parametrize("threshold", [math.nan, 0.0, 1.0, 7, "high"])
def test_checkpoint_with_a_bad_threshold_is_refused_at_load(
    saved: tuple[Path, torch.nn.Module], threshold: Any, tmp_path: Path
) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src = saved[0] / WEIGHTS_FILE
    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()["solarmap"])
    meta["threshold"] = threshold
    bad = tmp_path / WEIGHTS_FILE
    save_file(load_file(str(src)), str(bad), metadata={"solarmap": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="threshold") as err:
        load_checkpoint(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{bad}: threshold") and "\n" not in message


def test_random_checkpoint_is_seeded_loadable_and_leaves_the_global_rng(tmp_path: Path) -> None:
    torch.manual_seed(3)
    rng = torch.get_rng_state()
    paths = [
        random_checkpoint(tmp_path / "a", TINY, chip_size=64, threshold=0.3),
        random_checkpoint(tmp_path / "b", TINY, chip_size=64, threshold=0.3),
        random_checkpoint(tmp_path / "c", TINY, seed=1),
    ]
    assert torch.equal(torch.get_rng_state(), rng)
    a, b, c = (load_checkpoint(p) for p in paths)
    first = next(iter(a.model.state_dict()))
    assert torch.equal(a.model.state_dict()[first], b.model.state_dict()[first])
    assert not torch.equal(a.model.state_dict()[first], c.model.state_dict()[first])
    assert a.threshold == 0.3 and a.chip_size == 64 and a.bands == BANDS and a.config == TINY
