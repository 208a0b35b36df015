"""The engines that run the model in prediction: ONNX Runtime and PyTorch agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from solarmap.errors import InputError
from solarmap.inference import _BY_DIGEST, _digest, cache_dir, runner
from solarmap.model import load_checkpoint
from solarmap.predict import PredictConfig, predict_scene
from tests.conftest import write_float_scene
from tests.solarmap.test_predict import SMALL, make_checkpoint, make_scene, read_prob


def test_onnx_and_torch_give_the_same_prediction(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import geopandas as gpd

    ckpt = load_checkpoint(tiny_checkpoint)
    scene = make_scene(150, 200, seed=3)
    outs = {}
    for engine in ("onnx", "torch"):
        cfg = PredictConfig(window=64, overlap=16, batch_size=3, engine=engine, threshold=0.5)
        res = predict_scene(scene, ckpt, tmp_path / engine, config=cfg)
        record = json.loads((tmp_path / engine / "predict.json").read_text())
        assert record["engine"] == engine
        outs[engine] = (read_prob(res.probability), gpd.read_file(res.polygons, layer="solar"))
    (p_onnx, g_onnx), (p_torch, g_torch) = outs["onnx"], outs["torch"]
    assert p_onnx.std() > 0.01  # a random U-Net: far from constant, so agreement means something
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-4)
    both = (p_onnx >= 0.5) | (p_torch >= 0.5)
    assert ((p_onnx >= 0.5) != (p_torch >= 0.5)).sum() <= 0.001 * both.sum() + 1
    assert abs(len(g_onnx) - len(g_torch)) <= 1


def test_auto_runs_onnx_on_the_cpu_and_keeps_one_session_per_model(
    tiny_checkpoint: Path,
) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    run, engine = runner(ckpt, engine="auto")
    assert engine == "onnx"
    assert ckpt.weights is not None
    session = _BY_DIGEST[_digest(ckpt.weights)][1]
    run2, _ = runner(ckpt, engine="auto")
    assert _BY_DIGEST[_digest(ckpt.weights)][1] is session  # a second scene reuses the export
    x = np.random.default_rng(0).normal(size=(2, 10, 64, 96)).astype(np.float32)
    with torch.no_grad():
        ref = ckpt.model(torch.from_numpy(x)).numpy()
    assert run(x).shape == ref.shape == (2, 1, 64, 96)  # any size the model takes
    np.testing.assert_allclose(run2(x), ref, atol=1e-4)


def test_a_cached_graph_runs_without_building_the_model_or_importing_torch(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    runner(ckpt)  # exports and caches the graph of these weights
    assert ckpt.weights is not None
    cached = cache_dir() / f"{_digest(ckpt.weights)}-opset17.onnx"
    assert cached.is_file()
    _BY_DIGEST.clear()
    lazy = load_checkpoint(tiny_checkpoint, defer_model=True)
    assert not lazy.model_built
    run, engine = runner(lazy)
    assert engine == "onnx" and not lazy.model_built  # the graph came from the cache
    x = np.random.default_rng(1).normal(size=(1, 10, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = ckpt.model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(x), ref, atol=1e-4)
    # a fresh process predicts a scene from the cache with no torch imported at all
    scene = write_float_scene(tmp_path / "s.tif")
    code = (
        "import sys\n"
        "from data_prep.sentinel2 import open_scene\n"
        "from solarmap.model import load_checkpoint\n"
        "from solarmap.predict import PredictConfig, predict_scene\n"
        f"ck = load_checkpoint({str(tiny_checkpoint)!r}, defer_model=True)\n"
        f"with open_scene({str(scene)!r}) as s:\n"
        f"    r = predict_scene(s, ck, {str(tmp_path / 'p')!r}, config=PredictConfig(window=64, "
        "overlap=16))\n"
        "print(r.n_polygons >= 0, 'torch' in sys.modules, ck.model_built)\n"
    )
    env = {**os.environ, "SOLARMAP_CACHE_DIR": str(cache_dir().parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "False"]
    # a damaged cache entry is exported anew
    cached.write_bytes(b"not a graph")
    _BY_DIGEST.clear()
    run, engine = runner(load_checkpoint(tiny_checkpoint, defer_model=True))
    assert engine == "onnx" and cached.read_bytes() != b"not a graph"


class _NoExport(nn.Module):
    """A model whose forward leaves torch (numpy inside): it runs, but does not export."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(10, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.from_numpy(np.ascontiguousarray(y.detach().numpy()))


def test_a_model_that_does_not_export_runs_in_torch_or_is_refused(tmp_path: Path) -> None:
    ck = make_checkpoint(_NoExport())
    _, engine = runner(ck, engine="auto")
    assert engine == "torch"
    with pytest.raises(InputError, match=r"does not export to ONNX.*--engine torch"):
        runner(ck, engine="onnx")
    res = predict_scene(make_scene(64, 64), ck, tmp_path / "p", config=SMALL)
    assert json.loads((tmp_path / "p" / "predict.json").read_text())["engine"] == "torch"
    assert np.isfinite(read_prob(res.probability)).all()


def test_engine_choices_are_checked() -> None:
    with pytest.raises(InputError, match="--engine tensorrt: give auto, onnx, torch"):
        PredictConfig(engine="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="runs on the CPU"):
        runner(make_checkpoint(nn.Conv2d(10, 1, 1)), engine="onnx", device="cuda")


class _Stop(BaseException):
    """Stands for the front door's SIGINT/SIGTERM exception."""


class _InterruptedExport(nn.Module):
    """A model whose export meets an interrupt that an exporter wrapped into a RuntimeError."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(10, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            try:
                raise _Stop()
            except _Stop as stop:
                raise RuntimeError("tracing failed") from stop
        return self.conv(x)


def test_an_interrupt_during_the_export_stops_instead_of_falling_back() -> None:
    with pytest.raises(_Stop):
        runner(make_checkpoint(_InterruptedExport()), engine="auto")
