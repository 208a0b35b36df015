"""The corpus keeps its size: every command's bad inputs, at least MINIMUM in all."""

from __future__ import annotations

import importlib
from pathlib import Path

from tests.app.corpus.harness import MINIMUM, ids


def test_the_corpus_has_enough_cases_with_unique_ids() -> None:
    cases = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        module = importlib.import_module(f"tests.app.corpus.{path.stem}")
        cases += getattr(module, "CASES", [])
    ids(cases)
    assert len(cases) >= MINIMUM, f"{len(cases)} cases; the corpus needs at least {MINIMUM}"
