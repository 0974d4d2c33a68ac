"""MIDI file I/O and timing helpers on top of symusic.

Why symusic: it parses and writes Standard MIDI Files in C++ (a 20k-note file loads in about
a millisecond) and exports every event list as NumPy arrays, which lets the MMR encoder stay
vectorised.  miditoolkit (used by the SymphonyNet reference) and pretty_midi are pure-Python
object models built on mido: one Python object per note, 100-1000x slower to load, and
pretty_midi converts to seconds on load, losing the tick grid the MMR quantiser needs.

All scores handled here are in ticks (``symusic.Score`` with ``ttype == "Tick"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic
from symusic.core import ScoreTick

from orchestrion.errors import MidiError
from orchestrion.fileio import atomic_write_bytes

DEFAULT_MSPQ = 500_000  # MIDI default tempo: 120 quarter notes per minute, in microseconds per quarter
_HEADER = b"MThd"


@dataclass(frozen=True)
class TrackInfo:
    """One track of a score: ``index`` in ``score.tracks``, GM ``program`` 0-127, drum flag, note count."""

    index: int
    name: str
    program: int
    is_drum: bool
    n_notes: int


def load_midi(path: str | os.PathLike[str]) -> ScoreTick:
    """Read a Standard MIDI File into a tick-based score.

    Raises :class:`MidiError` naming the file if it is missing, empty, not MIDI, corrupt, of
    format 2, uses SMPTE time division, sets a tempo of 0 microseconds per quarter note, or has
    no track or no note.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise MidiError(f"{path}: cannot read MIDI file (not found)") from exc
    except OSError as exc:
        raise MidiError(f"{path}: cannot read MIDI file ({exc.strerror or exc})") from exc
    return parse_midi(data, str(path))


def parse_midi(data: bytes, name: str = "<MIDI bytes>") -> ScoreTick:
    """Parse Standard MIDI File bytes; errors name the source as ``name`` (see :func:`load_midi`)."""
    if not data:
        raise MidiError(f"{name}: empty file (0 bytes), not a MIDI file")
    if not data.startswith(_HEADER):
        raise MidiError(f"{name}: not a MIDI file (no 'MThd' header, so not a valid MIDI file)")
    if len(data) < 14:
        raise MidiError(f"{name}: not a valid MIDI file, corrupt (header cut short at {len(data)} bytes)")
    midi_format = int.from_bytes(data[8:10], "big")
    if midi_format == 2:
        # Format 2 holds independent patterns meant to be played one after another; every
        # reader here would lay them on top of each other, so refuse rather than garble them.
        raise MidiError(f"{name}: MIDI format 2 (independent patterns) is not supported; "
                        "convert it to format 0 or 1")
    if midi_format > 2:
        raise MidiError(f"{name}: not a valid MIDI file, corrupt (unknown MIDI format {midi_format})")
    try:
        score = symusic.Score.from_midi(data)
    except RuntimeError as exc:
        raise MidiError(f"{name}: not a valid MIDI file, corrupt ({exc})") from exc
    if score.ticks_per_quarter <= 0:
        raise MidiError(f"{name}: SMPTE time division is not supported (need ticks per quarter note)")
    tempos = score.tempos.numpy()
    if (tempos["mspq"] <= 0).any():
        tick = int(tempos["time"][tempos["mspq"] <= 0][0])
        raise MidiError(f"{name}: tempo event at tick {tick} sets 0 microseconds per quarter note "
                        "(an infinite tempo); fix or remove that tempo event")
    if score.note_num() == 0:  # symusic drops tracks without notes, so this covers zero-track files
        raise MidiError(f"{name}: MIDI file has no notes (no track with a note)")
    return score


def save_midi(score: ScoreTick, path: str | os.PathLike[str]) -> Path:
    """Write ``score`` (tick-based) as a Standard MIDI File atomically; returns the path."""
    path = Path(path)
    if score.ttype != "Tick":
        score = score.to("tick")
    data = score.dumps_midi()
    return atomic_write_bytes(path, data)


def list_tracks(score: ScoreTick) -> list[TrackInfo]:
    """Tracks of ``score`` in file order with program, drum flag and note count."""
    return [
        TrackInfo(i, str(t.name), int(t.program), bool(t.is_drum), len(t.notes))
        for i, t in enumerate(score.tracks)
    ]


def tempo_changes(score: ScoreTick) -> list[tuple[int, float]]:
    """Tempo events as ``(tick, quarter notes per minute)``, sorted by tick."""
    arr = score.tempos.numpy()
    order = np.argsort(arr["time"], kind="stable")
    return [(int(arr["time"][i]), 60e6 / float(arr["mspq"][i])) for i in order]


def time_signature_changes(score: ScoreTick) -> list[tuple[int, int, int]]:
    """Time-signature events as ``(tick, numerator, denominator)``, sorted by tick."""
    arr = score.time_signatures.numpy()
    order = np.argsort(arr["time"], kind="stable")
    return [
        (int(arr["time"][i]), int(arr["numerator"][i]), int(arr["denominator"][i])) for i in order
    ]


def _tempo_map(score: ScoreTick) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Piecewise-linear tick→seconds map: segment start ticks, their seconds, seconds per tick.

    Before the first tempo event the MIDI default of 120 bpm applies; of several events at the
    same tick the last one wins (it is the one in force after that tick).
    """
    arr = score.tempos.numpy()
    order = np.argsort(arr["time"], kind="stable")
    ticks = np.concatenate([[0], arr["time"][order].astype(np.int64)])
    mspq = np.concatenate([[DEFAULT_MSPQ], arr["mspq"][order].astype(np.float64)])
    last_at_tick = np.append(ticks[1:] != ticks[:-1], True)
    ticks, mspq = ticks[last_at_tick], mspq[last_at_tick]
    sec_per_tick = mspq / (1e6 * score.ticks_per_quarter)
    seg_start_sec = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * sec_per_tick[:-1])])
    return ticks, seg_start_sec, sec_per_tick


def ticks_to_seconds(score: ScoreTick, ticks: np.ndarray | int | float) -> np.ndarray:
    """Seconds from the file start for tick positions (any shape; float64), honouring tempo changes."""
    t = np.asarray(ticks, dtype=np.float64)
    starts, start_sec, spt = _tempo_map(score)
    k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)
    return start_sec[k] + (t - starts[k]) * spt[k]


def seconds_to_ticks(score: ScoreTick, seconds: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`ticks_to_seconds`: fractional tick positions (float64) for times in seconds."""
    s = np.asarray(seconds, dtype=np.float64)
    starts, start_sec, spt = _tempo_map(score)
    k = np.clip(np.searchsorted(start_sec, s, side="right") - 1, 0, None)
    return starts[k] + (s - start_sec[k]) / spt[k]
