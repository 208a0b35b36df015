"""Interrupted and killed runs: exit codes scripts can see, nothing under the final name, and
the next run cleans up what a killed one left.

Each case runs the real command in a subprocess, waits until it has begun writing (its hidden
``.NAME.<pid>-*.partial`` folder appears), then signals it. Every wait is bounded.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 180  # the most any wait here lasts


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1024² demo region: large enough that prepare and predict run for seconds."""
    from data_prep.synthetic import RegionConfig, generate_region

    root = tmp_path_factory.mktemp("signals")
    return generate_region(root / "region", RegionConfig(seed=1, size=1024)).scene.parent


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "solarmap", "-q", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.partial"))


def _signal_once_writing(
    proc: subprocess.Popen[str], out: Path, sig: int, *, ready: Path | None = None
) -> tuple[int, str]:
    """Send ``sig`` once ``out``'s partial folder (or ``ready``) exists; the exit code and
    stderr."""
    deadline = time.monotonic() + WAIT_S
    while not (ready.exists() if ready is not None else _partials(out)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"never began writing {out} (exit {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running {WAIT_S} s after signal {sig}")
    return proc.returncode, err


def _check_interrupted(args: tuple[str, ...], out: Path, *, ready: Path | None = None) -> None:
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        if ready is not None:  # what the run before kept must not count as this run's
            shutil.rmtree(ready.parent, ignore_errors=True)
        rc, err = _signal_once_writing(_start(*args), out, sig, ready=ready)
        lines = err.strip().splitlines()
        assert rc == code, (sig, rc, err[-2000:])
        assert lines[-1] == "solarmap: interrupted" and "Traceback" not in err, err[-2000:]
        assert not out.exists() and not _partials(out), sig


def _rerun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "solarmap", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_S * 2,
        check=False,
    )


def _check_killed_then_rerun(args: tuple[str, ...], out: Path) -> None:
    rc, _ = _signal_once_writing(_start(*args), out, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    (left,) = _partials(out)  # a killed process cannot clean up ...
    rerun = _rerun(*args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"removed {left}" in rerun.stderr  # ... so the next run does, and says so
    assert out.is_dir() and not _partials(out)


def test_prepare_interrupted_terminated_and_killed(region: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    args = ("prepare", "--scene", str(region / "scene.tif"), "--labels", str(region / "labels.osm"))
    args += ("--out", str(out))
    _check_interrupted(args, out)
    _check_killed_then_rerun(args, out)


def test_predict_interrupted_terminated_and_killed(
    region: Path, trained_unet: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    checkpoint, _, _ = trained_unet
    out = tmp_path / "prediction"
    args = ("predict", "--scene", str(region / "scene.tif"), "--checkpoint", str(checkpoint))
    args += ("--out", str(out))
    _check_interrupted(args, out)
    _check_killed_then_rerun(args, out)


@pytest.fixture(scope="module")
def chips(region: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The region prepared into 128 px chips: an epoch of the default U-Net takes seconds."""
    from data_prep.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("signals-chips") / "chips"
    config = PrepareConfig(chip_size=128, stride=128, block_size=256, seed=0)
    prepare([region / "scene.tif"], region / "labels.osm", out, config=config)
    return out


def test_train_interrupted_terminated_and_killed_then_resumed(chips: Path, tmp_path: Path) -> None:
    out = tmp_path / "checkpoint"
    state = tmp_path / ".checkpoint.resume"
    args = ("train", "--chips", str(chips), "--out", str(out), "--epochs", "20")
    args += ("--patience", "20")
    # --overwrite: each signalled run starts over, whatever state the one before it kept
    # Signalled once its first epoch is saved, well inside the run (20 epochs).
    _check_interrupted((*args, "--overwrite"), out, ready=state / "state.json")

    # Killed once its first epoch is saved: the partial folder stays, and so does the state.
    shutil.rmtree(state, ignore_errors=True)  # the state the interrupted runs kept
    rc, _ = _signal_once_writing(
        _start(*args, "--overwrite"), out, signal.SIGKILL, ready=state / "state.json"
    )
    assert rc == -signal.SIGKILL
    (left,) = _partials(out)
    # A rerun without --resume would lose that epoch: refused, pointing at --resume.
    again = _rerun(*args)
    assert again.returncode == 2 and "--resume" in again.stderr.strip().splitlines()[-1]
    assert not out.exists()
    resumed = _rerun(*args[:-4], "--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"removed {left}" in resumed.stderr and "resuming after epoch 1" in resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1].startswith("next: solarmap predict")
    assert (out / "model.safetensors").is_file() and (out / "last" / "state.json").is_file()
    assert not _partials(out) and not state.exists()


def _catches(pid: int, sig: int) -> bool:
    """Whether the process has a handler of its own for ``sig`` (Linux: /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_signal_while_the_commands_load_ends_as_cleanly(tmp_path: Path) -> None:
    """The handlers come before the commands are imported (torch takes seconds to load)."""
    proc = _start("predict", "--help")
    deadline = time.monotonic() + WAIT_S
    while not _catches(proc.pid, signal.SIGTERM):
        assert proc.poll() is None and time.monotonic() < deadline, "no SIGTERM handler"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=WAIT_S)
    if proc.returncode == 0:  # the help printed before the signal arrived: nothing to check
        pytest.skip("the command finished before the signal")
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "solarmap: interrupted"
    assert "Traceback" not in err
