"""MIDI I/O on symusic: lossless write/read, timing conversion, every bad input → MidiError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic
from test_mmr_support import make_score, random_score

from orchestrion.errors import MidiError
from orchestrion.symbolic.midi import (
    list_tracks,
    load_midi,
    save_midi,
    seconds_to_ticks,
    tempo_changes,
    ticks_to_seconds,
    time_signature_changes,
)


def _notes(score: symusic.Score) -> list[tuple]:
    rows = []
    for t in score.tracks:
        a = t.notes.numpy()
        rows += [
            (int(t.program), bool(t.is_drum), int(s), int(d), int(p), int(v))
            for s, d, p, v in zip(a["time"], a["duration"], a["pitch"], a["velocity"], strict=True)
        ]
    return sorted(rows)


def test_write_read_keeps_every_note_tempo_and_time_signature(tmp_path: Path) -> None:
    score = random_score(7)
    for i, t in enumerate(score.tracks):
        # MIDI cannot express overlapping notes of one pitch in one track: keep a non-overlapping subset.
        end_of: dict[int, int] = {}
        kept = []
        for n in sorted(t.notes, key=lambda n: n.time):
            if n.time >= end_of.get(n.pitch, -1):
                end_of[n.pitch] = n.time + n.duration
                kept.append(symusic.Note(n.time, n.duration, n.pitch, 1 + (i * 13 + len(kept)) % 127))
        t.notes = symusic.core.NoteTickList(kept)
    path = save_midi(score, tmp_path / "sub" / "piece.mid")
    back = load_midi(path)
    assert back.ticks_per_quarter == score.ticks_per_quarter
    assert _notes(back) == _notes(score)
    assert len(_notes(back)) == score.note_num()
    assert [(t.program, t.is_drum) for t in back.tracks] == [(t.program, t.is_drum) for t in score.tracks]
    assert time_signature_changes(back) == [(0, 4, 4), (15360, 3, 4), (21120, 6, 8), (25440, 4, 4)]
    assert [(t, round(q, 3)) for t, q in tempo_changes(back)] == [(0, 96.0), (19200, 140.0)]


def test_save_is_atomic_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "x.mid"
    path.write_bytes(b"old content")
    save_midi(make_score([(0, False, [(0, 480, 60)])]), path)
    assert load_midi(path).note_num() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x.mid"]  # no temp file left behind


def test_list_tracks_reports_program_drum_and_count() -> None:
    score = make_score([(40, False, [(0, 10, 60), (5, 10, 62)]), (0, True, [(0, 10, 36)])])
    info = list_tracks(score)
    assert [(i.index, i.program, i.is_drum, i.n_notes) for i in info] == [(0, 40, False, 2), (1, 0, True, 1)]


def test_ticks_to_seconds_honours_tempo_changes() -> None:
    # 120 bpm for two beats (1 s), then 60 bpm: one more beat takes 1 s.
    score = make_score([(0, False, [(0, 480, 60)])], tempos=[(0, 120.0), (960, 60.0)])
    ticks = np.array([[0, 480], [960, 1440]])
    sec = ticks_to_seconds(score, ticks)
    assert sec.shape == (2, 2)
    np.testing.assert_allclose(sec, [[0.0, 0.5], [1.0, 2.0]])
    np.testing.assert_allclose(seconds_to_ticks(score, sec), ticks)


def test_ticks_to_seconds_defaults_to_120_bpm_before_first_tempo() -> None:
    score = make_score([(0, False, [(0, 480, 60)])], tempos=[(960, 30.0)])
    np.testing.assert_allclose(ticks_to_seconds(score, [480, 960, 1440]), [0.5, 1.0, 3.0])


def _header_only() -> bytes:
    return b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + (0).to_bytes(2, "big") + (480).to_bytes(2, "big")


def _no_notes() -> bytes:
    score = make_score([], tempos=[(0, 100.0)])
    score.tracks.append(symusic.Track(name="empty", program=0, is_drum=False))
    return score.dumps_midi()


def _smf(midi_format: int, tracks: list[list[bytes]]) -> bytes:
    """A Standard MIDI File built byte by byte: each track is a list of (delta-time + event) bytes."""
    body = b"".join(b"MTrk" + len(t := b"".join(events) + b"\x00\xff\x2f\x00").to_bytes(4, "big") + t
                    for events in tracks)
    header = b"MThd" + (6).to_bytes(4, "big") + midi_format.to_bytes(2, "big") + len(tracks).to_bytes(2, "big")
    return header + (480).to_bytes(2, "big") + body


_NOTE = [b"\x00\x90\x3c\x50", b"\x83\x60\x80\x3c\x00"]  # C4 for one quarter (delta 480 = 0x83 0x60)
_TEMPO_0 = b"\x00\xff\x51\x03\x00\x00\x00"  # set tempo: 0 microseconds per quarter note


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (_smf(1, [[_TEMPO_0, *_NOTE]]), "tempo event at tick 0 sets 0 microseconds per quarter note"),
        (_smf(2, [_NOTE, _NOTE]), "MIDI format 2 .independent patterns. is not supported"),
        (_smf(7, [_NOTE]), "unknown MIDI format 7"),
        (b"", "empty file"),
        (b"RIFF....WAVEfmt " * 4, "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x01\x00\x90\x3c", "corrupt"),
        (_header_only(), "no note"),
        (_no_notes(), "no note"),
    ],
    ids=["missing", "tempo-0", "format-2", "format-7", "empty", "not-midi", "truncated", "zero-tracks", "zero-notes"],
)
def test_bad_midi_raises_midi_error_naming_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.mid"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MidiError, match=message) as info:
        load_midi(path)
    assert str(path) in str(info.value)


def test_smf_helper_writes_a_readable_file(tmp_path: Path) -> None:
    """The hand-made files above differ from a good one only in the defect under test."""
    path = tmp_path / "good.mid"
    path.write_bytes(_smf(1, [_NOTE, _NOTE]))
    assert load_midi(path).note_num() == 2
