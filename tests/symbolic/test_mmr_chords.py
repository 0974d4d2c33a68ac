"""Vectorised chord labels (§2.3) against a per-note transcription of chorder 0.1.4's scoring."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrion.symbolic.chords import measure_chords
from orchestrion.symbolic.mmr_vocab import PITCH_LETTERS, chord_name

_WEIGHTS = {
    "M": [10, -2, -1, -2, 10, -5, -2, 10, -2, -1, -2, 0],
    "m": [10, -2, -1, 10, -2, -5, -2, 10, -1, -2, 0, -2],
    "o": [10, -2, -1, 10, -2, -1, 10, -2, -2, 1, -1, -2],
    "+": [10, -2, -1, -2, 10, -1, -2, -2, 10, -1, -2, 0],
    "sus2": [10, -2, 5, -2, -1, -5, -2, 5, -2, -1, -2, 0],
    "sus4": [10, -2, -1, -2, -5, 5, -2, 5, -2, -1, -2, 0],
}
_REBASS = {("o", 4): "7", ("o", 3): "o7", ("M", 3): "m7", ("m", 4): "M7", ("m", 3): "/o7",
           ("sus2", 5): "sus4", ("sus4", 7): "sus2"}


def reference_chord(notes: list[tuple[int, int, int]], bar_len: int) -> str:
    """One measure, note by note, as the reference calls chorder: notes are (pos, dur, pitch)."""
    end = min(bar_len, 8)
    spans = [(p, o, o + d if o > 0 else 8) for o, d, p in notes if 21 <= p <= 108 and o < 8]
    chroma = [0] * 12
    per_pitch: dict[int, int] = {}
    for p, s, e in spans:
        chroma[p % 12] += min(end, e) - max(0, s)
        per_pitch[p] = per_pitch.get(p, 0) + min(e, end) - max(s, 0)
    bass = next((p % 12 for p, span in sorted(per_pitch.items()) if span >= end / 8), None)
    best, root, quality = 0, -1, None
    for i in range(12):
        rotated = chroma[i:] + chroma[:i]
        if rotated[0] == 0:
            continue
        for q, w in _WEIGHTS.items():
            score = sum(a * b for a, b in zip(rotated, w, strict=True))
            if score > best:
                best, root, quality = score, i, q
    if best < end * 10:
        return "HNA"
    if bass is not None and (quality, (root - bass) % 12) in _REBASS:
        root, quality = bass, _REBASS[(quality, (root - bass) % 12)]
    if quality == "M":
        maj7, min7 = chroma[(root + 11) % 12], chroma[(root + 10) % 12]
        if maj7 > 0 and maj7 > min7:
            quality = "M7"
        elif min7 > 0 and min7 > maj7:
            quality = "7"
    if quality == "m" and chroma[(root + 10) % 12] > 0:
        quality = "m7"
    return "H" + PITCH_LETTERS[root] + ("D7" if quality == "7" else quality)


def _labels(measures: list[list[tuple[int, int, int]]], bar_lens: list[int], drum: list[list[bool]] | None = None):
    rows = [(m, o, d, p, (drum[m][k] if drum else False)) for m, notes in enumerate(measures)
            for k, (o, d, p) in enumerate(notes)]
    a = np.array(rows, dtype=np.int64).reshape(-1, 5)
    out = measure_chords(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4].astype(bool), np.array(bar_lens))
    return [chord_name(int(c)) for c in out]


@pytest.mark.parametrize(
    ("notes", "label"),
    [
        ([(0, 8, 60), (0, 8, 64), (0, 8, 67)], "HCM"),
        ([(0, 8, 67), (0, 8, 71), (0, 8, 74), (0, 8, 77)], "HGD7"),
        ([(0, 8, 57), (0, 8, 60), (0, 8, 64)], "HAm"),
        ([(0, 8, 60), (0, 8, 64), (0, 8, 67), (0, 8, 71)], "HCM7"),
        ([(0, 8, 62), (0, 8, 67), (0, 8, 69)], "HDsus4"),
        ([(0, 8, 60)], "HCM"),  # one pitch class scores 80 = 10 W as a major root
        ([(8, 8, 60), (8, 8, 64), (8, 8, 67)], "HNA"),  # nothing in the first quarter
        ([(0, 8, 10), (0, 8, 110)], "HNA"),  # pitches outside 21-108 are ignored
    ],
)
def test_known_chords(notes: list[tuple[int, int, int]], label: str) -> None:
    assert _labels([notes], [32]) == [label]
    assert reference_chord(notes, 32) == label


def test_drums_are_ignored() -> None:
    notes = [(0, 8, 60), (0, 8, 64), (0, 8, 67)]
    assert _labels([notes], [32], drum=[[True, True, True]]) == ["HNA"]


def test_matches_per_note_transcription_on_random_measures() -> None:
    rng = np.random.default_rng(0)
    measures, bar_lens = [], []
    for _ in range(3000):
        bar_len = int(rng.choice([32, 24, 12, 6, 3, 40]))
        base = int(rng.integers(30, 90))
        notes = []
        for _ in range(int(rng.integers(0, 9))):
            pitch = base + int(rng.choice([0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, -12, 1]))
            notes.append((min(int(rng.integers(0, 12)), bar_len - 1), int(rng.integers(1, 33)), pitch))
        measures.append(notes)
        bar_lens.append(bar_len)
    ours = _labels(measures, bar_lens)
    expected = [reference_chord(n, b) for n, b in zip(measures, bar_lens, strict=True)]
    assert ours == expected
    # The random measures exercise every quality and the no-chord label.
    assert {label[2:] for label in ours} >= {"M", "m", "o", "+", "D7", "M7", "m7", "sus2", "sus4", "A"}
