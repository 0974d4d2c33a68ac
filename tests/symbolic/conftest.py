"""Fixtures for the symbolic tests: multi-track scores written as real MIDI files."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_mmr_support import random_score

from orchestrion.symbolic.midi import save_midi


@pytest.fixture(scope="session")
def multitrack_midis(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A few multi-track MIDI files on disk: off-grid, on-grid, odd tpq, without drums."""
    out = tmp_path_factory.mktemp("multitrack")
    scores = [
        random_score(1),
        random_score(2, on_grid=True),
        random_score(3, tpq=384, n_tracks=8),
        random_score(4, tpq=100, drums=False),
    ]
    return [save_midi(s, out / f"piece{i}.mid") for i, s in enumerate(scores)]
