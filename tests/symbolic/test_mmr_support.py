"""Score builders shared by the MIDI / MMR / piano-roll tests (no tests here).

Scores are built note by note with symusic; nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import symusic
from symusic.core import NoteTickList

TPQ = 480


def make_score(
    tracks: list[tuple[int, bool, list[tuple[int, int, int]]]],
    *,
    tpq: int = TPQ,
    time_signatures: list[tuple[int, int, int]] | None = ((0, 4, 4),),
    tempos: list[tuple[int, float]] = (),
    velocity: int = 80,
) -> symusic.Score:
    """Score from ``[(program, is_drum, [(start, duration, pitch), ...]), ...]`` (ticks)."""
    score = symusic.Score(tpq)
    for tick, num, den in time_signatures or ():
        score.time_signatures.append(symusic.TimeSignature(tick, num, den))
    for tick, qpm in tempos:
        score.tempos.append(symusic.Tempo(tick, qpm=qpm))
    for i, (program, is_drum, notes) in enumerate(tracks):
        track = symusic.Track(name=f"track{i}", program=program, is_drum=is_drum)
        for start, dur, pitch in notes:
            track.notes.append(symusic.Note(start, dur, pitch, velocity))
        score.tracks.append(track)
    return score


def worked_example_score() -> symusic.Score:
    """Spec §2.7: 4/4, tpq 480, violin (40) and cello (42), two bars."""
    q = TPQ
    violin = [(0, q, 76), (q, q, 79), (2 * q, 2 * q, 84), (4 * q, q // 2, 74), (4 * q + q // 2, q // 2, 76),
              (5 * q, q, 77), (6 * q, 2 * q, 79)]
    cello = [(0, 4 * q, 48), (0, 4 * q, 55), (4 * q, 2 * q, 43), (6 * q, 2 * q, 47), (6 * q, 2 * q, 50)]
    return make_score([(40, False, violin), (42, False, cello)])


def random_score(
    seed: int,
    *,
    n_tracks: int = 6,
    n_notes: int = 120,
    tpq: int = TPQ,
    on_grid: bool = False,
    long_notes: bool = True,
    drums: bool = True,
) -> symusic.Score:
    """Deterministic multi-track score with time-signature and tempo changes.

    Two tracks share program 40 and (if ``drums``) two drum tracks are present. ``on_grid`` puts
    every onset and duration on the 32nd grid and keeps durations ≤ 4 beats, so quantisation and
    long-note splitting change nothing.
    """
    rng = np.random.default_rng(seed)
    q32 = tpq // 8
    ts = [(0, 4, 4), (8 * 4 * tpq, 3, 4), (8 * 4 * tpq + 4 * 3 * tpq, 6, 8), (8 * 4 * tpq + 7 * 3 * tpq, 4, 4)]
    end = ts[-1][0] + 6 * 4 * tpq
    programs = [40, 40, 42, 71, 0, 56][:n_tracks] + [int(p) for p in rng.integers(0, 128, max(0, n_tracks - 6))]
    tracks = []
    for k, program in enumerate(programs):
        start = np.sort(rng.integers(0, end, n_notes))
        dur = rng.integers(1, (4 if on_grid or not long_notes else 9) * tpq, n_notes)
        if on_grid:
            start, dur = start // q32 * q32, np.maximum(dur // q32, 1) * q32
        pitch = rng.integers(36 + 4 * k, 72 + 4 * k, n_notes)
        tracks.append((program, False, list(zip(start.tolist(), dur.tolist(), pitch.tolist(), strict=True))))
    if drums:
        for _ in range(2):
            start = np.sort(rng.integers(0, end, n_notes // 2)) // q32 * q32
            pitch = rng.choice([36, 38, 42, 46], len(start))
            notes = [(int(s), q32 * 2, int(p)) for s, p in zip(start, pitch, strict=True)]
            tracks.append((0, True, notes))
    return make_score(tracks, tpq=tpq, time_signatures=ts, tempos=[(0, 96.0), (10 * 4 * tpq, 140.0)])


def dense_score(seed: int, n_tracks: int = 16, notes_per_track: int = 2000) -> symusic.Score:
    """A large random score built from NumPy arrays (for speed-sensitive tests)."""
    rng = np.random.default_rng(seed)
    score = symusic.Score(TPQ)
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    for k in range(n_tracks):
        track = symusic.Track(name=f"t{k}", program=4 * k, is_drum=k == n_tracks - 1)
        start = np.sort(rng.integers(0, TPQ * 4 * 400, notes_per_track)).astype(np.int32)
        track.notes = NoteTickList.from_numpy(
            start,
            rng.integers(30, 3 * TPQ, notes_per_track).astype(np.int32),
            rng.integers(30, 100, notes_per_track).astype(np.int8),
            np.full(notes_per_track, 80, dtype=np.int8),
        )
        score.tracks.append(track)
    return score


def without_self_overlaps(score: symusic.Score) -> symusic.Score:
    """Copy of ``score`` without notes that overlap an earlier note of the same pitch in their track
    (a MIDI file cannot store those unambiguously)."""
    out = score.copy()
    for t in out.tracks:
        end_of: dict[int, int] = {}
        kept = []
        for n in sorted(t.notes, key=lambda n: (n.time, n.pitch)):
            if n.time >= end_of.get(n.pitch, -1):
                end_of[n.pitch] = n.time + n.duration
                kept.append(symusic.Note(n.time, n.duration, n.pitch, n.velocity))
        t.notes = NoteTickList(kept)
    return out
