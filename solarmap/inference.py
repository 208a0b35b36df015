"""The model's forward pass for prediction: PyTorch, or ONNX Runtime on the CPU.

:func:`runner` gives a function ``float32[N, B, S, S]`` normalised input → the model's logits
``float32[N, 1, S, S]`` as an array, for a checkpoint and an engine:

- ``"torch"``: the checkpoint's module, eager, under ``torch.inference_mode``;
- ``"onnx"``: the module exported to ONNX and run by ONNX Runtime's CPU provider with as many
  intra-op threads as torch uses here (``torch.get_num_threads()``, which the front door or a
  survey worker sets; the process's cores when torch is not loaded). A session is kept per
  process and model, and the graph of a checkpoint read from a file is cached on disk under
  the SHA-256 of that file (:func:`cache_dir`): a later process runs it without building the
  model or importing torch (see ``load_checkpoint(defer_model=True)``);
- ``"auto"`` (the default): ``"onnx"`` on the CPU when ONNX Runtime is installed and the model
  exports, else ``"torch"`` (said in the log).

Measured on this project's U-Net (MobileNetV3 encoder) on 2 cores: ONNX Runtime runs the
forward pass of a 3072² scene in 3.0 s against 5.7 s for eager PyTorch
(``benchmarks/bench_fast_predict.py``), with probabilities within 1e-4 of PyTorch's and the
same solar mask (IoU 1.000); channels-last and bf16 autocast were slower than eager fp32 on
it (2.1 s against 0.9 s for 4 windows of 512 px). The export uses torch's TorchScript-based
exporter: about 1.5 s, where the torch.export-based one took about 25 s per model (torch is
pinned at 2.14, which has both).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from solarmap.errors import InputError, SolarmapError, first_line

if TYPE_CHECKING:
    import torch

    from solarmap.model import Checkpoint

log = logging.getLogger(__name__)

Engine = Literal["auto", "onnx", "torch"]
ENGINES: Final[tuple[str, ...]] = ("auto", "onnx", "torch")
#: ``float32[N, B, S, S]`` normalised input → the model's output as an array (``float32[N, 1,
#: S, S]`` logits for a solarmap checkpoint; the caller checks the shape).
Runner = Callable[[np.ndarray], np.ndarray]
#: The ONNX opset of the export (ONNX Runtime 1.17+ runs it).
OPSET: Final = 17

#: ONNX Runtime sessions by model, and by weights digest for a checkpoint read from a file
#: (a survey worker predicts many tiles with one checkpoint).
_SESSIONS: weakref.WeakKeyDictionary[Any, tuple[int, Any]] = weakref.WeakKeyDictionary()
_BY_DIGEST: dict[str, tuple[int, Any]] = {}


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`.

    Raises:
        InputError: otherwise.
    """
    if engine not in ENGINES:
        raise InputError(f"--engine {engine}: give {', '.join(ENGINES)}")
    return engine


def onnx_available() -> bool:
    """Whether ONNX Runtime can be imported here."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _export(model: torch.nn.Module, bands: int) -> bytes:
    import torch

    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter warns that torch.export's is the new default; see above
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, bands, 64, 64),),
            buf,  # type: ignore[arg-type]  # a file object works, as the docs say
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def cache_dir() -> Path:
    """Where exported ONNX graphs are kept: ``$SOLARMAP_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/solarmap``, else ``~/.cache/solarmap``; graphs under ``onnx/``."""
    root = os.environ.get("SOLARMAP_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "solarmap")
    return Path(root) / "onnx"


def _digest(weights: Path) -> str:
    from solarmap.geo import sha256_file

    return sha256_file(weights)


_THREADS: list[int] = []  # set_threads' setting, when one was made


def set_threads(n: int) -> None:
    """Run every later session (and torch, once loaded or already) on ``n`` intra-op threads:
    the front door's call, e.g. a survey worker sharing the machine's cores with others."""
    _THREADS[:] = [max(1, int(n))]
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_THREADS[0])


def threads() -> int:
    """The intra-op threads a session gets: :func:`set_threads`' number when it was called,
    else torch's setting when torch is loaded (the front door sets it), else the cores this
    process may run on."""
    if _THREADS:
        return _THREADS[0]
    if "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _new_session(data: bytes | str, n_threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are about graph rewrites
    # ORT's threads spin after each run by default, taking the cores the reading, blending
    # and writing between batches need (measured: those took 1.3-1.6x longer)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _session(checkpoint: Checkpoint) -> Any:
    """An ONNX Runtime session of the checkpoint's model, made once per process, model and
    thread count. A checkpoint read from a file looks for its graph in :func:`cache_dir`
    first, keyed by the SHA-256 of the weights file: a graph is cached only after a full
    load checked those weights and the export was checked against the module, so a hit needs
    neither torch nor the model."""
    n = threads()
    digest = _digest(checkpoint.weights) if checkpoint.weights is not None else None
    store: Any = _BY_DIGEST if digest is not None else _SESSIONS
    key: Any = digest if digest is not None else checkpoint.model
    cached = store.get(key)
    if cached is not None and cached[0] == n:
        return cached[1]
    path = cache_dir() / f"{digest}-opset{OPSET}.onnx" if digest is not None else None
    session = None
    if path is not None and path.is_file():
        try:
            session = _new_session(str(path), n)
        except Exception as err:  # a damaged cache entry: export anew and replace it
            log.info("cached ONNX graph %s unreadable (%s); exporting again", path, err)
    if session is None:
        model = checkpoint.model
        was_training = model.training
        model.eval()
        try:
            data = _export(model, len(checkpoint.bands))
        finally:
            model.train(was_training)
        session = _new_session(data, n)
        _check_same(session, model, len(checkpoint.bands))
        if path is not None:
            _store(path, data)
    store[key] = (n, session)
    return session


def _store(path: Path, data: bytes) -> None:
    """Keep the graph for the next process; a cache that cannot be written is only said."""
    from solarmap.geo import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        log.debug("ONNX graph not cached at %s: %s", path, err)


def _check_same(session: Any, model: torch.nn.Module, bands: int) -> None:
    """Raise unless the exported graph computes what the module does, on two random inputs of
    two sizes: a trace records one run, so a forward that leaves torch (or branches on the
    data) exports as a graph that answers only that run."""
    import torch

    rng = np.random.default_rng(0)
    for h, w in ((64, 64), (64, 96)):
        x = rng.normal(size=(2, bands, h, w)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).float().numpy()
        got = session.run(None, {"x": x})[0]
        scale = max(1.0, float(np.abs(ref).max()))
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-3, atol=1e-3 * scale):
            raise ValueError("the exported graph does not compute what the model does")


def runner(
    checkpoint: Checkpoint, *, engine: str = "auto", device: str = "cpu"
) -> tuple[Runner, str]:
    """The forward pass of ``checkpoint`` on ``engine``, and the engine it runs on.

    Raises:
        InputError: for an unknown engine, or ``"onnx"`` asked for on another device than the
            CPU or without ONNX Runtime installed, or a model that does not export.
    """
    check_engine(engine)
    if engine == "onnx" and device != "cpu":
        raise InputError(f"--engine onnx runs on the CPU; use --engine torch on {device}")
    if engine == "onnx" and not onnx_available():
        raise InputError("--engine onnx: ONNX Runtime is not installed; pip install onnxruntime")
    use_onnx = engine == "onnx" or (engine == "auto" and device == "cpu" and onnx_available())
    if use_onnx:
        try:
            session = _session(checkpoint)
        except SolarmapError:  # the checkpoint itself (a deferred model's weights) is at fault
            raise
        except Exception as err:  # any exporter or runtime failure: say it, then fall back
            _reraise_interrupt(err)
            why = first_line(err, limit=200)
            if engine == "onnx":
                raise InputError(
                    f"--engine onnx: this model does not export to ONNX ({why}); use --engine torch"
                ) from err
            log.info("model does not export to ONNX (%s); running it in PyTorch", why)
        else:

            def run_onnx(x: np.ndarray) -> np.ndarray:
                out = session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
                return np.asarray(out, dtype=np.float32)

            return run_onnx, "onnx"

    import torch

    if _THREADS:  # set before torch was loaded
        torch.set_num_threads(_THREADS[0])
    dev = torch.device(device)
    model = checkpoint.model.to(dev).eval()

    def run_torch(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(x).to(dev, non_blocking=True))
            return out.float().cpu().numpy()

    return run_torch, "torch"


def _reraise_interrupt(err: BaseException) -> None:
    """Raise the interrupt (Ctrl-C, SIGTERM, exit) an exporter wrapped into an ordinary error,
    so that a signal during the export stops the run instead of sending it to PyTorch."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if not isinstance(e, Exception):
            raise e
        e = e.__cause__ or e.__context__
