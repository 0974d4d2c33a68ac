"""Fixtures for corpus tests: the demo corpus exported once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrion.corpora import demo_midi


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the whole demo corpus (5 short four-track MIDI files)."""
    folder = tmp_path_factory.mktemp("demo")
    demo_midi(folder, n=5)
    return folder
