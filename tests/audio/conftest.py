"""Fixtures for audio tests: sine waves, audio files and tiny MIDI files made on the spot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import symusic

TICKS_PER_QUARTER = 480


def _sine(freq: float, seconds: float, sample_rate: int, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine shaped (channels, samples); channel c is scaled by 1/(c+1) so channels differ."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    return np.stack([wave / (c + 1) for c in range(channels)]).astype(np.float32)


@pytest.fixture
def sine() -> Callable[..., np.ndarray]:
    """The sine generator: sine(freq, seconds, sample_rate, channels=1, amplitude=0.5)."""
    return _sine


@pytest.fixture
def audio_file(tmp_path: Path) -> Callable[..., Path]:
    """Write (channels, samples) audio with soundfile; returns the path."""

    def write(name: str, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
        path = tmp_path / name
        sf.write(path, audio.T, sample_rate, subtype=subtype)
        return path

    return write


@pytest.fixture
def midi_file(tmp_path: Path) -> Callable[..., Path]:
    """Build a one-track MIDI file from (start_beat, beats, pitch, velocity) notes.

    ``tempos`` is a list of (beat, qpm); the default is 120 qpm, i.e. one beat = 0.5 s.
    """

    def build(
        name: str,
        notes: list[tuple[float, float, int, int]],
        program: int = 0,
        is_drum: bool = False,
        tempos: list[tuple[float, float]] = ((0, 120.0),),
    ) -> Path:
        score = symusic.Score(TICKS_PER_QUARTER)
        for beat, qpm in tempos:
            score.tempos.append(symusic.Tempo(round(beat * TICKS_PER_QUARTER), qpm))
        track = symusic.Track("test", program, is_drum)
        for start, length, pitch, velocity in notes:
            ticks = round(start * TICKS_PER_QUARTER), round(length * TICKS_PER_QUARTER)
            track.notes.append(symusic.Note(*ticks, pitch, velocity))
        score.tracks.append(track)
        path = tmp_path / name
        score.dump_midi(path)
        return path

    return build
