"""Fixtures: the built-in demo corpus (five Bach chorales, each for another ensemble) plus a piano
reduction of the first one (chords in one track, so Music BPE has something to merge), tokenized
with the real ``orchestrion symphony tokenize`` command, with and without tempo tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic
from typer.testing import CliRunner

from orchestrion.cli import app
from orchestrion.corpora import demo_midi


@pytest.fixture(scope="session")
def demo_midis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo_midi")
    first = demo_midi(folder, n=5)[0]
    score = symusic.Score(first)
    notes = [t.notes.numpy() for t in score.tracks]
    piano = symusic.Track(name="piano", program=0, is_drum=False)
    piano.notes = symusic.Note.from_numpy(**{k: np.concatenate([n[k] for n in notes]) for k in notes[0]})
    score.tracks = [piano]
    (folder / "bwv66.6-piano.mid").write_bytes(score.dumps_midi())
    return folder


def _tokenize(midi_dir: Path, out: Path, *extra: str) -> Path:
    # the demo excerpts are 8 bars: keep every track (the sparse-track merge would drop most of them)
    result = CliRunner().invoke(app, ["symphony", "tokenize", str(midi_dir), "--out", str(out), "--no-sparse-merge",
                                      *extra])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def demo_tokens(demo_midis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Music BPE (30 merges learned on the corpus) with tempo tokens (the default)."""
    return _tokenize(demo_midis, tmp_path_factory.mktemp("tokens") / "bpe", "--learn-bpe", "30")


@pytest.fixture(scope="session")
def demo_tokens_no_tempo(demo_midis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tokenize(demo_midis, tmp_path_factory.mktemp("tokens") / "plain", "--no-tempo-tokens")


@pytest.fixture(scope="session")
def demo_tokens_tempo(demo_midis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tokenize(demo_midis, tmp_path_factory.mktemp("tokens") / "tempo")
