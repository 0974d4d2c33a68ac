"""Helpers shared by the Musika training, data and CLI tests: real musical test audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrion.audio.io import save_audio

NOTES = [196.0, 220.0, 246.9, 261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9]


def melody(seconds: float, sample_rate: int = 22050, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A melody of plucked harmonic notes (attack/decay envelopes), ``(channels, samples)`` float32.

    Four notes per second drawn from a C-major scale, five harmonics each with 1/h amplitudes,
    so the spectrogram has real musical structure (onsets, harmonics, decays).
    """
    rng = np.random.default_rng(seed)
    total = int(seconds * sample_rate)
    wave = np.zeros(total)
    note_len = sample_rate // 4
    t = np.arange(note_len) / sample_rate
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-6.0 * t)
    for start in range(0, total, note_len):
        f0 = rng.choice(NOTES)
        note = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 6))
        end = min(start + note_len, total)
        wave[start:end] += (envelope * note)[: end - start]
    wave = 0.4 * wave / np.abs(wave).max()
    out = np.repeat(wave[None], channels, axis=0)
    if channels == 2:
        out[1] *= 0.8
    return out.astype(np.float32)


def write_music_folder(
    folder: Path, n_files: int = 2, seconds: float = 3.0, sample_rate: int = 22050, channels: int = 1
) -> list[Path]:
    """Write ``n_files`` melodies as WAV files (in a nested sub-folder for the last one)."""
    paths = []
    for i in range(n_files):
        sub = folder / "nested" if i == n_files - 1 and n_files > 1 else folder
        path = sub / f"melody_{i}.wav"
        save_audio(path, melody(seconds, sample_rate, seed=i, channels=channels), sample_rate, subtype="FLOAT")
        paths.append(path)
    return paths


def write_rendered_excerpt(folder: Path, seconds: float = 4.0, piece: int = 0) -> Path:
    """Render one built-in demo chorale (music21 corpus + bundled soundfont), keep ``seconds`` of it (mono)."""
    from orchestrion.audio.io import load_audio
    from orchestrion.corpora.export import render_corpus

    rendered = render_corpus("demo", folder / "rendered", limit=piece + 1)[piece]
    audio = load_audio(rendered, channels=1)
    start = 22050 // 2  # skip the soft onset of the first chord
    path = folder / "excerpt" / f"{rendered.stem}.wav"
    save_audio(path, audio[:, start : start + int(seconds * 22050)], subtype="FLOAT")
    return path.parent
