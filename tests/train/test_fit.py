"""Training: masked loss, a tiny deterministic run, resume, checkpoint metadata."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path

import pytest
import torch

from data_prep.prepare import PrepareConfig, prepare
from solarmap.bands import BANDS
from solarmap.errors import InputError, OutputExistsError
from solarmap.model import ModelConfig, load_checkpoint
from tests.conftest import box_polygon_4326, write_float_scene, write_labels
from train.augment import Augment
from train.dataset import ChipDataset
from train.fit import TrainConfig, masked_bce_dice, train

TINY = ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fit")
    scene = write_float_scene(
        tmp / "s.tif",
        size=(144, 144),
        solar_box=(10, 10, 60, 50),
        more_solar=((100, 90, 130, 140),),
    )
    polys = [box_polygon_4326(10, 10, 60, 50), box_polygon_4326(100, 90, 130, 140)]
    labels = write_labels(tmp / "l.geojson", polys)
    cfg = PrepareConfig(chip_size=48, block_size=48, negative_ratio=2.0)
    prepare([scene], labels, tmp / "p", config=cfg)
    return tmp / "p"


def test_loss_ignores_masked_pixels() -> None:
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    valid = torch.ones_like(target)
    valid[..., :4] = 0
    base = masked_bce_dice(logits, target, valid)
    logits2 = logits.clone()
    logits2[..., :4] = 100.0  # anything under the ignore mask
    assert torch.allclose(masked_bce_dice(logits2, target, valid), base)
    perfect = masked_bce_dice(target * 40 - 20, target, valid)
    assert perfect < 0.01 < base


def test_dataset_items_and_augmentation(prepared: Path) -> None:
    ds = ChipDataset(prepared, "train", augment=Augment(), seed=0)
    x, y, v = ds[0]
    assert x.shape == (10, 48, 48) and y.shape == v.shape == (1, 48, 48)
    assert torch.isfinite(x).all() and set(y.unique().tolist()) <= {0.0, 1.0}
    _, raw_y = ds.raw(0)
    plain = ChipDataset(prepared, "train")
    _, yp, _ = plain[0]
    assert yp.sum() == (raw_y == 1).sum()  # no augmentation: exact
    assert y.sum() == yp.sum()  # dihedral transforms keep the solar pixel count


def test_tiny_training_run_is_deterministic_and_resumable(prepared: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(model=TINY, epochs=3, batch_size=4, seed=1)
    a = train(prepared, tmp_path / "a", config=cfg)
    b = train(prepared, tmp_path / "b", config=cfg)
    ca, cb = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for (k, va), vb in zip(
        ca.model.state_dict().items(), cb.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k
    assert a.threshold == b.threshold and 0 < a.threshold < 1
    meta = json.loads((tmp_path / "a" / "checkpoint.json").read_text())
    assert meta["bands"][0] == "B02" and len(meta["normalisation"]["mean"]) == 10
    assert meta["chip_size"] == 48 and len(meta["data_fingerprint"]) == 64
    assert meta["metrics"]["val"]["iou"] >= 0 and len(meta["training"]["history"]) == 3

    with pytest.raises(OutputExistsError):
        train(prepared, tmp_path / "a", config=cfg)
    # Resume: 3 more epochs continue from epoch 3, history grows to 6.
    more = TrainConfig(model=TINY, epochs=6, batch_size=4, seed=1, patience=10)
    r = train(prepared, tmp_path / "a", config=more, resume=True)
    meta = json.loads((tmp_path / "a" / "checkpoint.json").read_text())
    assert r.epochs_run == 6 and [h["epoch"] for h in meta["training"]["history"]] == list(
        range(1, 7)
    )


def test_training_learns_the_toy_scene(prepared: Path, tmp_path: Path) -> None:
    res = train(
        prepared, tmp_path / "c", config=TrainConfig(model=TINY, epochs=25, batch_size=4, lr=1e-2)
    )
    assert res.val["iou"] > 0.7, res.val


def test_bad_training_input(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        TrainConfig(epochs=0)
    with pytest.raises(InputError, match="multiple"):
        train(prepared, tmp_path / "x", config=TrainConfig(model=ModelConfig(), epochs=1))
    with pytest.raises(InputError, match="run `solarmap prepare`"):
        train(tmp_path, tmp_path / "y", config=TrainConfig(model=TINY, epochs=1))


def _torch_state() -> tuple[int, bool, bool, torch.Tensor]:
    return (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_rng_state(),
    )


def _assert_same_state(before: tuple, after: tuple) -> None:
    assert before[:3] == after[:3]
    assert torch.equal(before[3], after[3])


def test_training_leaves_torch_global_state_as_it_found_it(prepared: Path, tmp_path: Path) -> None:
    torch.manual_seed(123)
    other_threads = 1 if torch.get_num_threads() != 1 else 2
    before = _torch_state()
    cfg = TrainConfig(model=TINY, epochs=1, batch_size=4, threads=other_threads)
    train(prepared, tmp_path / "a", config=cfg)
    _assert_same_state(before, _torch_state())
    with pytest.raises(InputError, match="multiple"):  # also when a step fails
        train(prepared, tmp_path / "b", config=dataclasses.replace(cfg, model=ModelConfig()))
    _assert_same_state(before, _torch_state())


def test_every_epoch_logs_loss_val_iou_elapsed_and_eta(
    prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="train.fit")
    cfg = TrainConfig(model=TINY, epochs=3, batch_size=4, max_minutes=5.0, patience=10)
    train(prepared, tmp_path / "a", config=cfg)
    line = re.compile(
        r"epoch (\d)/3: loss \d+\.\d{4}, val IoU \d\.\d{4}, \d+:\d\d elapsed, ETA \d+:\d\d$"
    )
    epochs = [m.group(1) for r in caplog.records if (m := line.match(r.getMessage()))]
    assert epochs == ["1", "2", "3"], caplog.text
    assert caplog.records[-1].getMessage().startswith("trained 3 epochs")
    assert "ETA 0:00" in caplog.text  # after the last epoch nothing is left
    caplog.clear()
    cfg = TrainConfig(model=TINY, epochs=3, batch_size=4, max_minutes=1e-4)
    train(prepared, tmp_path / "b", config=cfg)
    assert "epoch 1/3" in caplog.text and "ETA 0:00 (time budget)" in caplog.text
    assert "epoch 2/3" not in caplog.text and "time budget of" in caplog.text


def test_interrupted_run_leaves_nothing_under_out_and_resumes_from_beside_it(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import train.fit as fit

    cfg = TrainConfig(model=TINY, epochs=3, batch_size=4, seed=1, patience=10)
    out = tmp_path / "ckpt"
    calls = iter(range(100))
    real_validate = fit.validate

    def stop_in_epoch_2(*args: object, **kwargs: object) -> float:
        if next(calls) == 1:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fit, "validate", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(prepared, out, config=cfg)
    monkeypatch.undo()
    pending = fit.resume_dir(out)
    assert pending == tmp_path / ".ckpt.resume"
    assert not out.exists() and not list(tmp_path.glob(".ckpt.*.partial"))
    assert json.loads((pending / "state.json").read_text())["epoch"] == 0
    with pytest.raises(OutputExistsError, match="--resume"):
        train(prepared, out, config=cfg)
    res = train(prepared, out, config=cfg, resume=True)
    meta = json.loads((out / "checkpoint.json").read_text())
    assert res.epochs_run == 3 and [h["epoch"] for h in meta["training"]["history"]] == [1, 2, 3]
    assert not pending.exists() and (out / "last" / "state.json").is_file()
    # The finished checkpoint's files have the permissions of any new file.
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert modes == {0o666 & ~umask}


# --------------------------------------------------------------------------------------------
# Spectral baselines, input channels, several folders, held-out validation
# --------------------------------------------------------------------------------------------


def test_spectral_model_fits_and_loads(prepared: Path, tmp_path: Path) -> None:
    from solarmap.indices import SPECTRAL_INDICES

    cfg = TrainConfig(model=ModelConfig(kind="spectral", indices=SPECTRAL_INDICES))
    res = train(prepared, tmp_path / "spec", config=cfg)
    assert res.val["iou"] > 0.9  # panels and vegetation separate well by their indices
    ckpt = load_checkpoint(tmp_path / "spec")
    assert ckpt.config.kind == "spectral" and ckpt.config.indices == SPECTRAL_INDICES
    assert [n for n, _ in ckpt.model.named_children()] == ["band_features", "head"]
    meta = json.loads((tmp_path / "spec" / "checkpoint.json").read_text())
    assert set(meta["training_stats"]) >= {"mean", "std", "p02", "p98", "pixels"}


def test_prior_unet_starts_as_its_prior_and_keeps_it_frozen(prepared: Path, tmp_path: Path) -> None:
    """A U-Net on a spectral prior is, untrained, exactly its prior; after training the prior
    is the spectral baseline fitted on the same pixels, unchanged by the U-Net's epochs."""
    from solarmap.indices import SPECTRAL_INDICES
    from solarmap.model import build_model
    from solarmap.networks import PriorUnet

    cfg = dataclasses.replace(TINY, prior=SPECTRAL_INDICES)
    model = build_model(cfg, mean=[0.1] * 10, std=[0.05] * 10).eval()
    assert isinstance(model, PriorUnet)
    torch.nn.init.normal_(model.spectral_prior.head.weight)
    x = torch.randn(2, 10, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.spectral_prior(x))
    train(prepared, tmp_path / "pu", config=TrainConfig(model=cfg, epochs=2))
    spec = TrainConfig(model=ModelConfig(kind="spectral", indices=SPECTRAL_INDICES))
    train(prepared, tmp_path / "sp", config=spec)
    pu, sp = load_checkpoint(tmp_path / "pu"), load_checkpoint(tmp_path / "sp")
    assert pu.config.prior == SPECTRAL_INDICES and isinstance(pu.model, PriorUnet)
    assert torch.allclose(pu.model.spectral_prior.head.weight, sp.model.head.weight)
    assert torch.allclose(pu.model.spectral_prior.head.bias, sp.model.head.bias)
    with torch.no_grad():  # and the U-Net's own part has learnt something on top
        assert not torch.allclose(pu.model(x), pu.model.spectral_prior(x))
    assert "decoder" in dict(pu.model.named_children())  # Grad-CAM's layers are where they were


def test_index_model_searches_the_best_index(prepared: Path, tmp_path: Path) -> None:
    from train.evaluate import roc_auc
    from train.fit import SPECTRAL_PIXELS, best_index, pixel_sample

    ds = ChipDataset(prepared, "train")
    x, y = pixel_sample(ds, limit=SPECTRAL_PIXELS, seed=0)  # what training samples
    name, auc = best_index(x, y)
    assert auc > 0.95 and name.startswith("nd:")
    # the orientation is the one where higher is more solar
    _, a, b = name.split(":")
    ia, ib = BANDS.index(a), BANDS.index(b)
    nd = (x[:, ia] - x[:, ib]) / (x[:, ia] + x[:, ib])
    assert roc_auc(nd, y) == pytest.approx(auc)
    cfg = TrainConfig(
        model=ModelConfig(kind="spectral", indices=("nd:B02:B03",)), search_index=True
    )
    train(prepared, tmp_path / "idx", config=cfg)
    assert load_checkpoint(tmp_path / "idx").config.indices == (name,)


def test_front_layer_makes_a_unet_blind_to_a_scene_gain() -> None:
    """With bands standardised per chip and ratio indices, a global gain on the reflectance
    (brighter sun, another calibration) leaves the model's output unchanged."""
    from solarmap.model import build_model

    mean, std = [0.1] * 10, [0.05] * 10
    cfg = dataclasses.replace(TINY, norm="chip", indices=("ratio:B02:B03", "nd:B11:B08"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(cfg, mean=mean, std=std).eval()
    refl = torch.rand(2, 10, 32, 32) * 0.3 + 0.02
    norm = lambda r: (r - 0.1) / 0.05  # noqa: E731
    with torch.no_grad():
        a, b = model(norm(refl)), model(norm(refl * 1.6))
    assert torch.allclose(a, b, atol=1e-4)
    plain = build_model(TINY, mean=mean, std=std).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(norm(refl)), plain(norm(refl * 1.6)), atol=1e-2)


def test_unet_with_indices_trains_predicts_and_keeps_its_layer_names(
    prepared: Path, tmp_path: Path
) -> None:
    cfg = TrainConfig(
        model=dataclasses.replace(TINY, norm="chip", indices=("ratio:B02:B03",)),
        epochs=2,
        batch_size=4,
    )
    train(prepared, tmp_path / "c", config=cfg)
    ckpt = load_checkpoint(tmp_path / "c")
    assert ckpt.config.indices == ("ratio:B02:B03",) and ckpt.config.net_channels == 11
    names = {n for n, _ in ckpt.model.named_modules()}
    assert "decoder.blocks.0" in names and "band_features" in names  # Grad-CAM's layer
    x = torch.zeros(1, 10, 48, 48)
    assert ckpt.model(x).shape == (1, 1, 48, 48)


def test_training_on_two_folders_with_a_held_out_one(
    prepared: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    import shutil

    from train.fit import build_data

    other = Path(shutil.copytree(prepared, tmp_path / "other"))
    held = Path(shutil.copytree(prepared, tmp_path / "held"))
    cfg = TrainConfig(model=TINY, epochs=1, batch_size=4)
    data = build_data([prepared, other], cfg, val_roots=[held])
    one = build_data([prepared], cfg)
    assert len(data.train) == 2 * len(one.train)
    assert len(data.val) == len(ChipDataset(held, None))  # every split of the held-out folder
    train([prepared, other], tmp_path / "ck", config=cfg, val_chips=[held])
    meta = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    assert meta["chips"] == [str(prepared.resolve()), str(other.resolve())]
    assert meta["val_chips"] == [str(held.resolve())]


def test_augment_spectral_and_geometric() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.full((10, 8, 8), 0.1, np.float32)
    x[:, :2] = 0.3
    y = np.zeros((8, 8), np.uint8)
    y[:2] = 1
    off = Augment(gain=0, geometric=False)
    assert np.array_equal(off.apply(x, y, rng)[0], x)
    hx, _ = Augment(gain=0, haze=0.05, geometric=False).apply(x, y, rng)
    added = (hx - x)[:, 0, 0]
    assert (added >= 0).all() and added[0] > added[-1] and np.all(np.diff(added) <= 1e-9)
    bx, _ = Augment(gain=0, brightness=0.2, geometric=False).apply(x, y, rng)
    ratio = bx / x
    assert np.allclose(ratio, ratio.flat[0])  # one factor for the whole chip
    gx, gy = Augment(gain=0).apply(x, y, np.random.default_rng(3))
    assert (gx[0] > 0.2).sum() == (gy == 1).sum() == 16  # flips and turns keep x and y aligned
    assert np.array_equal(gx[0] > 0.2, gy == 1)
    with pytest.raises(InputError, match="--offset"):
        Augment(offset=0.5)


def test_per_chip_normalisation_ignores_no_data_and_padding() -> None:
    """No-data reaches the model as 0 in every band; per-chip statistics skip it, so a chip
    padded out to a larger window is standardised as the chip alone."""
    from solarmap.networks import BandFeatures

    front = BandFeatures([0.1] * 10, [0.05] * 10, norm="chip")
    x = torch.randn(1, 10, 16, 16)
    padded = torch.zeros(1, 10, 64, 64)
    padded[..., :16, :16] = x
    a, b = front(x), front(padded)
    assert torch.allclose(a, b[..., :16, :16], atol=1e-5)
    assert (b[..., 16:, :] == 0).all() and (b[..., :, 16:] == 0).all()
    assert torch.allclose(a.mean(dim=(2, 3)), torch.zeros(1, 10), atol=1e-5)


def test_cli_trains_spectral_baselines_and_several_folders(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from solarmap.app.cli import main

    held = shutil.copytree(prepared, tmp_path / "held")
    assert main(["-q", "train", "--chips", str(prepared), "--out", str(tmp_path / "i"),
                 "--model", "index", "--val-chips", str(held)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "spectral model" in out and "next: solarmap predict" in out
    meta = json.loads((tmp_path / "i" / "checkpoint.json").read_text())
    assert meta["model"]["kind"] == "spectral" and len(meta["model"]["indices"]) == 1
    assert meta["val_chips"] == [str(held.resolve())]


def test_a_second_run_into_the_same_out_is_refused(prepared: Path, tmp_path: Path) -> None:
    """While a live process writes OUT (its ``.OUT.<pid>-*.partial``), another run does not
    start over its state: one line, nothing touched."""
    partial = tmp_path / f".ck.{os.getppid()}-abc.partial"
    partial.mkdir()
    (tmp_path / ".ck.resume").mkdir()
    (tmp_path / ".ck.resume" / "state.json").write_text("{}")
    with pytest.raises(OutputExistsError, match=f"process {os.getppid()}"):
        train(prepared, tmp_path / "ck", config=TrainConfig(model=TINY), overwrite=True)
    assert partial.exists() and (tmp_path / ".ck.resume" / "state.json").exists()
