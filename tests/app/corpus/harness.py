"""The bad-input corpus: each case is a command line a hostile or careless user could type,
with the one-line message it must end with.

A case builds whatever files it needs under a fresh folder, runs ``solarmap`` in-process and
checks the promise every command makes: exit code 2 (or the case's code), exactly one line on
stderr that names what was wrong (every word of ``words`` appears in it), no traceback, and
nothing under ``--out`` (nor a half-written ``.NAME.*.partial`` beside it). Run again at the
default log level, the same error is the last line, after nothing but INFO notes of the work
that succeeded before the mistake was found (no warning, no progress bar).

Cases live in ``test_<command>.py`` files of this folder as ``CASES: list[Case]``;
``test_count.py`` checks the corpus stays at least :data:`MINIMUM` cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from solarmap.app.cli import main

#: The corpus must not shrink below this many cases.
MINIMUM = 100


@dataclass(frozen=True)
class Inputs:
    """Valid inputs the cases start from (made once per test session)."""

    scene: Path  # a float32 ×10000 GeoTIFF, 96×128, EPSG:32643
    labels: Path  # GeoJSON of one solar polygon over the scene
    checkpoint: Path  # a small random U-Net checkpoint folder
    chips: Path  # `solarmap prepare` output of scene + labels
    prediction: Path  # `solarmap predict` output of scene + checkpoint
    truth: Path  # GeoPackage of truth polygons over the scene


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: short name (the test id).
        argv: builds the arguments (after ``solarmap``) from the valid inputs and a fresh
            folder, writing any bad file it needs there; ``OUT`` stands for the ``--out`` path.
        words: each must appear in the one error line (the file at fault, the fix...).
        code: the exit code (2: a user mistake).
    """

    id: str
    argv: Callable[[Inputs, Path], list[str]]
    words: tuple[str, ...]
    code: int = 2


def run_case(case: Case, inputs: Inputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run one case and check the promise; return the error line."""
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else a for a in case.argv(inputs, tmp_path)]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == case.code, (case.id, code, err[-1500:])
    assert "Traceback" not in err, (case.id, err[-1500:])
    assert len(lines) == 1, (case.id, err[-1500:])
    for word in case.words:
        assert word in lines[0], (case.id, word, lines[0])
    assert not out.exists(), (case.id, "output left under --out")
    assert not list(tmp_path.glob(".out.*.partial")), (case.id, "partial output left")
    if "-q" in argv:  # at the default log level: the same error, after notes of work done
        code = main([a for a in argv if a != "-q"])
        verbose = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert code == case.code and verbose[-1] == lines[0], (case.id, verbose[-5:])
        notes = verbose[:-1]
        assert all(ln.startswith("INFO ") for ln in notes), (case.id, notes)
        assert not out.exists(), (case.id, "output left under --out")
    return lines[0]


def ids(cases: list[Case]) -> list[str]:
    """Test ids of the cases (and a check that they are unique)."""
    names = [c.id for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate corpus ids: {sorted(dupes)}")
    return names


def text_file(path: Path, text: str = "this is not what you think\n") -> Path:
    """A file whose name promises something its content is not."""
    path.write_text(text)
    return path
