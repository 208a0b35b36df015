"""Sanity checks of the maps: the cascade's order and re-initialisation, the similarity
measures, and the verdicts (a map that follows the weights passes, the control fails)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from attribute.sanity import (
    CONTROL,
    SanityConfig,
    entropy,
    group_of,
    randomization_groups,
    randomize,
    run_sanity,
    similarity,
)
from solarmap.errors import InputError


def test_groups_run_from_the_head_back_to_the_stem(tiny_unet: nn.Module) -> None:
    x = torch.randn(1, 10, 32, 32)
    groups = randomization_groups(tiny_unet, x)
    assert groups[0] == "segmentation_head.0"
    dec = [g for g in groups if g.startswith("decoder.blocks.")]
    assert dec == sorted(dec, reverse=True) and groups.index(dec[-1]) < groups.index(
        next(g for g in groups if g.startswith("encoder"))
    )
    assert (groups[-1].startswith("encoder") and "stem" in groups[-1]) or "conv" in groups[-1]
    assert group_of("decoder.blocks.4.conv1.0") == "decoder.blocks.4"
    assert group_of("encoder.model.conv_stem") == "encoder.model.conv_stem"


def test_randomize_resets_only_its_groups_and_the_batchnorm_statistics(
    tiny_unet: nn.Module,
) -> None:
    bn = next(m for n, m in tiny_unet.named_modules() if n.startswith("decoder.blocks.0")
              and isinstance(m, nn.BatchNorm2d))  # fmt: skip
    bn.running_mean.fill_(3.0)  # as a trained layer's would be
    state = torch.random.get_rng_state()
    r = randomize(tiny_unet, ["segmentation_head.0", "decoder.blocks.0"], seed=1)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    before, after = dict(tiny_unet.named_parameters()), dict(r.named_parameters())
    for name, p in before.items():
        moved = not torch.equal(p, after[name])
        if not name.startswith(("segmentation_head.0", "decoder.blocks.0")):
            assert not moved, name  # outside the groups: as trained
        elif p.dim() == 4:
            assert moved, name  # convolutions: new weights from their own initializer
    rbn = dict(r.named_modules())[next(n for n, m in tiny_unet.named_modules() if m is bn)]
    assert torch.all(rbn.running_mean == 0) and torch.all(rbn.running_var == 1)
    assert torch.all(bn.running_mean == 3.0)  # the original is left as it was
    assert not r.training


def test_similarity_and_entropy() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((16, 16))
    assert similarity(a, a)["spearman"] == pytest.approx(1.0)
    assert similarity(a, -a)["spearman"] == pytest.approx(-1.0)
    assert similarity(a, -a)["spearman_abs"] == pytest.approx(1.0)
    assert similarity(a, np.zeros_like(a))["spearman"] == 0.0  # a flat map ranks nothing
    assert abs(similarity(a, rng.random((16, 16)))["spearman"]) < 0.2
    mask = np.zeros((16, 16), dtype=bool)
    mask[4:12, 4:12] = True
    b = a.copy()
    b[~mask] = 0  # differ only outside the mask
    assert similarity(a, b, mask)["spearman"] == pytest.approx(1.0)
    flat, peak = np.ones((8, 8)), np.zeros((8, 8))
    peak[3, 3] = 1
    assert entropy(flat) == pytest.approx(np.log(64)) and entropy(peak) == 0.0


def test_a_map_of_the_weights_passes_and_the_control_fails(tiny_unet: nn.Module) -> None:
    """The model's own logit map depends on every weight: randomized, it decorrelates (and
    two random models' maps do too); the edge detector stays put and is caught."""
    x = torch.randn(1, 10, 32, 32, generator=torch.Generator().manual_seed(0))
    region = np.zeros((32, 32), dtype=bool)
    region[8:24, 8:24] = True

    def logits(model: nn.Module, inp: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model(inp)[0, 0].numpy()

    cfg = SanityConfig(noise_samples=2)
    out = run_sanity(tiny_unet, [x], {"logits": logits}, masks=[region], config=cfg)
    res = {r.method: r for r in out}
    own, control = res["logits"], res[CONTROL]
    assert len(own.curve["spearman_abs"]) == len(own.steps) == len(control.steps)
    assert own.curve["spearman_abs"][-1] < 0.3 and own.random_band["spearman_abs"] < 0.3
    assert own.passed
    assert control.curve["spearman_abs"] == pytest.approx([1.0] * len(control.steps))
    assert not control.passed
    row = own.row()
    assert row["pass"] and np.isfinite(row["emprt_ratio"]) and "smprt_spearman_abs_full" in row
    with pytest.raises(InputError):
        run_sanity(tiny_unet, [], {"logits": logits})
    with pytest.raises(InputError):
        SanityConfig(max_spearman=0)


def test_cli_sanity_on_a_trained_unet(
    trained_unet: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a trained U-Net, saliency and Grad-CAM lose their structure under full
    randomization (Grad-CAM's coarse map often becomes flat: no rank correlation left); the
    edge-detector control is caught; the files open."""
    import csv
    import json

    from solarmap.app.cli import main

    ckpt, scene, truth = trained_unet
    out = tmp_path / "san"
    code = main(["-q", "sanity", "--scene", str(scene), "--checkpoint", str(ckpt), "--target",
                 str(truth), "--top", "1", "--methods", "saliency,gradcam", "--noise-samples",
                 "2", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "saliency: pass" in printed and "gradcam: pass" in printed
    assert "edge_detector (control): FAIL" in printed
    rows = {r["method"]: r for r in csv.DictReader((out / "sanity.csv").open())}
    assert set(rows) == {"saliency", "gradcam", CONTROL}
    assert float(rows["saliency"]["spearman_abs_full"]) < 0.3
    record = json.loads((out / "sanity.json").read_text())
    assert record["steps"][0] == "segmentation_head.0" and record["windows"] == 1
    # the curve starts at the head and ends with the encoder's first layer
    assert record["steps"][-1].startswith("encoder")
    for name in ("saliency", "gradcam", "edge_detector"):
        assert (out / f"sanity_{name}.png").stat().st_size > 1000
