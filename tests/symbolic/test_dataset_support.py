"""Deterministic multi-track MIDI files for the Music BPE / dataset / CLI tests (no tests here).

Each piece is a small "orchestral" texture in 4/4 at 480 ticks per quarter: every track plays
block chords (2-4 simultaneous pitches of one duration) from a shared progression in its own
register, plus occasional passing notes of another duration at the same onset, so Music BPE has
real chord material to merge and groups of different durations share positions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import symusic

TPQ = 480
PROGRAMS = (40, 41, 42, 43, 71, 73, 60, 56)  # strings, clarinet, flute, horn, trumpet
REGISTERS = (72, 65, 55, 43, 67, 76, 58, 62)
PROGRESSION = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7), (9, 12, 16), (2, 5, 9), (7, 11, 14, 17))


def orchestral_score(seed: int, n_measures: int = 8, n_tracks: int = 4) -> symusic.Score:
    """A deterministic dense multi-track score (4/4, tpq 480, tempo 100)."""
    rng = np.random.default_rng(seed)
    score = symusic.Score(TPQ)
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    score.tempos.append(symusic.Tempo(0, qpm=100))
    key = int(rng.integers(-3, 4))
    for t in range(n_tracks):
        notes: set[tuple[int, int, int]] = set()
        step = int(rng.choice([TPQ, 2 * TPQ]))
        for m in range(n_measures):
            chord = PROGRESSION[(m + seed) % len(PROGRESSION)]
            for onset in range(m * 4 * TPQ, (m + 1) * 4 * TPQ, step):
                size = int(rng.integers(2, 5))
                pitches = [REGISTERS[t % len(REGISTERS)] + key + chord[i % len(chord)] + 12 * (i // len(chord))
                           for i in range(size)]
                for pitch in pitches:
                    notes.add((onset, step, pitch))
                if rng.random() < 0.4:  # a passing note with another duration at the same onset
                    notes.add((onset, step // 2, pitches[-1] + 2))
        arr = np.array(sorted(notes), dtype=np.int64)
        track = symusic.Track(name=f"track{t}", program=PROGRAMS[t % len(PROGRAMS)], is_drum=False)
        track.notes = symusic.Note.from_numpy(
            time=arr[:, 0].astype(np.int32), duration=arr[:, 1].astype(np.int32),
            pitch=arr[:, 2].astype(np.int8), velocity=np.full(len(arr), 90, np.int8),
        )
        score.tracks.append(track)
    return score


def write_corpus(folder: Path, n: int, *, first_seed: int = 0, n_measures: int = 8, n_tracks: int = 4) -> list[Path]:
    """Write ``n`` pieces as ``folder/piece_XXX.mid`` (some in a sub-folder, to test recursion)."""
    paths = []
    for i in range(n):
        sub = folder / "sub" if i % 3 == 2 else folder
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"piece_{first_seed + i:03d}.mid"
        path.write_bytes(orchestral_score(first_seed + i, n_measures, n_tracks).dumps_midi())
        paths.append(path)
    return paths
