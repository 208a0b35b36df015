"""Attention relevance of a Mix Transformer U-Net: the propagation rule has known answers, the
map is a georeferenced method like the others, and it applies to transformer encoders only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attribute.base import MethodContext, Settings
from attribute.registry import REGISTRY, methods_for, resolve_methods
from attribute.relevance import _stage_map, attention_blocks, attention_relevance, has_attention
from attribute.targets import RegionTarget
from solarmap.errors import InputError
from solarmap.model import ModelConfig, build_model


@pytest.fixture(scope="module")
def mit() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="mit_b0", decoder_channels=(32, 16, 16, 8, 8)))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_the_rule_follows_the_region_tokens_row_of_the_relevance_matrix() -> None:
    """``q (R - I)`` with ``R = (I + A2)(I + A1)`` built block by block, keys one per token."""
    g = torch.Generator().manual_seed(0)
    a1, a2 = torch.rand(6, 6, generator=g), torch.rand(6, 6, generator=g)
    q = torch.rand(6, generator=g)
    r = torch.eye(6)
    for a in (a1, a2):  # R <- R + A R, from the identity
        r = r + a @ r
    want = q @ (r - torch.eye(6))
    got = _stage_map([(a1, 1), (a2, 1)], (2, 3), q).flatten()
    torch.testing.assert_close(got, want)


def test_reduced_keys_are_spread_over_their_patch() -> None:
    """With ``sr_ratio`` 2 a key stands for a 2x2 patch: the square matrix has each key's column
    divided among its four tokens."""
    g = torch.Generator().manual_seed(1)
    a = torch.rand(16, 4, generator=g)  # 4x4 tokens, 2x2 keys
    q = torch.rand(16, generator=g)
    key_of = torch.tensor([(i // 4) // 2 * 2 + (i % 4) // 2 for i in range(16)])
    square = a[:, key_of] / 4
    want = q @ square
    got = _stage_map([(a, 2)], (4, 4), q).flatten()
    torch.testing.assert_close(got, want)
    assert square.sum(1).allclose(a.sum(1))  # a row keeps its sum


def test_relevance_of_a_mix_transformer_window(mit: torch.nn.Module) -> None:
    assert has_attention(mit)
    stages = {s for s, _, _ in attention_blocks(mit)}
    assert stages == {1, 2, 3, 4}
    x = torch.randn(1, 10, 64, 64)
    region = np.zeros((64, 64), dtype=bool)
    region[20:40, 24:44] = True
    f = RegionTarget(mit, torch.from_numpy(region))
    a = attention_relevance(mit, f, x, region=region)
    m = a.maps["attention_relevance"]
    assert m.shape == (64, 64) and m.dtype == np.float32
    assert (m >= 0).all() and m.sum() == pytest.approx(1.0, rel=1e-4)
    assert a.extra["stages"] == {"1": [16, 16], "2": [8, 8], "3": [4, 4], "4": [2, 2]}
    assert a.extra["blocks"] == len(attention_blocks(mit))
    assert (a.cost.forward, a.cost.backward) == (1, 1)
    # another region gives another map: the target's tokens are what is followed
    other = np.zeros((64, 64), dtype=bool)
    other[:8, :8] = True
    b = attention_relevance(mit, RegionTarget(mit, torch.from_numpy(other)), x, region=other)
    assert not np.allclose(b.maps["attention_relevance"], m)


def test_relevance_applies_to_transformer_encoders_only(mit: torch.nn.Module) -> None:
    cnn = build_model(ModelConfig(encoder_depth=3, decoder_channels=(16, 8, 8))).eval()
    assert not has_attention(cnn)
    every = resolve_methods("all")
    assert "attention_relevance" in every
    assert "attention_relevance" not in methods_for(cnn, every)
    assert "attention_relevance" in methods_for(mit, every)
    with pytest.raises(InputError, match="attention_relevance does not apply to this model"):
        methods_for(cnn, ("attention_relevance",))
    method = REGISTRY["attention_relevance"]
    x = torch.randn(1, 10, 32, 32)
    region = np.ones((32, 32), dtype=bool)
    ctx = MethodContext(settings=Settings(), model=cnn, baseline=torch.zeros_like(x),
                        zero=torch.zeros(10), segments=lambda: np.zeros((32, 32), int),
                        region_bbox=(0, 0, 32, 32), shape=(32, 32), region=region)  # fmt: skip
    with pytest.raises(InputError, match="needs a transformer encoder"):
        method.run(ctx, RegionTarget(cnn, torch.from_numpy(region)), x)


def test_explain_writes_the_relevance_map_as_a_georeferenced_band(
    mit: torch.nn.Module, tmp_path: Path
) -> None:
    import rasterio
    from shapely.geometry import box

    from attribute.explain import ExplainConfig, explain_scene
    from attribute.targets import Target
    from data_prep.sentinel2 import open_scene
    from solarmap.bands import BANDS
    from solarmap.model import Checkpoint
    from tests.conftest import ORIGIN, write_float_scene

    scene = write_float_scene(tmp_path / "s.tif", size=(128, 128), solar_box=(40, 40, 80, 90))
    ck = Checkpoint(model=mit, config=ModelConfig(encoder="mit_b0",
                                                   decoder_channels=(32, 16, 16, 8, 8)),
                    bands=BANDS, mean=[0.1] * 10, std=[0.1] * 10, threshold=0.5,
                    chip_size=64)  # fmt: skip
    x0, y0 = ORIGIN
    target = Target(1, "polygon", box(x0 + 400, y0 - 800, x0 + 900, y0 - 400))
    cfg = ExplainConfig(methods=("attention_relevance", "saliency"))
    with open_scene(scene) as src:
        explain_scene(src, ck, [target], tmp_path / "ex", config=cfg)
        crs, transform = src.info.crs, src.info.transform
    with rasterio.open(tmp_path / "ex" / "target_1" / "attribution.tif") as out:
        names = [d.split(":")[0] for d in out.descriptions]
        assert "attention_relevance" in names
        band = out.read(names.index("attention_relevance") + 1)
        assert out.crs == crs
        assert out.transform.a == transform.a and out.transform.e == transform.e
    assert np.isfinite(band).all() and band.min() >= 0 and band.max() > 0
