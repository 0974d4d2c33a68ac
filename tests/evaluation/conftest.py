"""Real music for the evaluation tests: a rendered chorale (bundled corpus + soundfont)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def chorale(tmp_path_factory) -> np.ndarray:
    """Four seconds of the first demo chorale rendered with the bundled soundfont: mono float64 at 22.05 kHz.

    Real music with onsets, decays and a release into near-silence at the end -- the quiet bins where
    absolute log floors exaggerate errors.
    """
    from orchestrion.audio.io import load_audio
    from orchestrion.corpora.export import render_corpus

    rendered: Path = render_corpus("demo", tmp_path_factory.mktemp("chorale"), limit=1)[0]
    audio = load_audio(rendered, channels=1)[0].astype(np.float64)
    return audio[-4 * 22050 :]


@pytest.fixture(scope="session")
def chorale_midi(tmp_path_factory) -> Path:
    """Twelve Bach chorales of the built-in corpus as MIDI files, in ``chorales/`` under the returned folder."""
    from orchestrion.corpora.export import export_corpus

    root = tmp_path_factory.mktemp("chorale_midi")
    export_corpus("bach-chorales", root / "chorales", limit=12)
    return root
