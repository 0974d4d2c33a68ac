"""Reading MMR token arrays: the (rel, mea) position columns and decoding to a score (spec §4.3, §6.4).

The decoder goes beyond the reference (which writes neither): it writes a time signature wherever
the bar length L changes (L/8 quarters, else L/4 eighths, L/2 sixteenths, L 32nds: 32 → 4/4,
24 → 3/4, 12 → 3/8, 20 → 5/8) and a tempo event for every tempo step, so a decoded piece encodes
back to the same tokens.
"""

from __future__ import annotations

import numpy as np
import symusic
from symusic.core import NoteTickList, ScoreTick

from orchestrion.symbolic.mmr_vocab import (
    BAR_OFFSET,
    BASE_EVENT_VOCAB_SIZE,
    CHORD_OFFSET,
    DRUM_PROGRAM,
    DURATION_OFFSET,
    DURATION_VOCAB_SIZE,
    INSTRUMENT_OFFSET,
    INSTRUMENT_VOCAB_SIZE,
    NT_ID,
    PITCH_OFFSET,
    POS_OFFSET,
    TEMPO_OFFSET,
    TRACK_OFFSET,
    TRACK_VOCAB_SIZE,
    bin_to_tempo,
    is_single_pitch,
)

DECODE_TPB = 480  # multiple of 8: a 32nd note is exactly 60 ticks
DECODE_VELOCITY = 90
_TICKS_PER_32ND = DECODE_TPB // 8


def _kinds(evt: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "bar": (evt >= BAR_OFFSET) & (evt < POS_OFFSET),
        "chord": (evt >= CHORD_OFFSET) & (evt < BAR_OFFSET),
        "pos": (evt >= POS_OFFSET) & (evt < NT_ID),
        "nt": evt == NT_ID,
        "note": is_single_pitch(evt) | (evt >= BASE_EVENT_VOCAB_SIZE),
    }


def positions(tokens: np.ndarray) -> np.ndarray:
    """The (rel, mea) columns of spec §4.3 for every step; (steps, 2) int32.

    mea: with j the 1-based index of the current measure, BOM → 3j−2, chord → 3j−1, any other
    step (tempo, NT, POS, notes) → 3j. rel: 0 for BOM/chord/tempo, 1 for NT, 2k for the k-th POS of
    a track segment, 2k+1 for the notes after it. Music BPE ids (≥ BASE_EVENT_VOCAB_SIZE) count as
    notes. Special ids (<bos> <pad> <eos> <unk>) get (0, 0); the dataset sets its own EOS row.
    """
    evt = np.asarray(tokens)[:, 0].astype(np.int64)
    k = _kinds(evt)
    j = np.cumsum(k["bar"])
    mea = np.where(k["bar"], 3 * j - 2, np.where(k["chord"], 3 * j - 1, 3 * j))
    mea = np.where(evt < PITCH_OFFSET, 0, np.maximum(mea, 0))
    reset = k["nt"] | k["bar"]
    seg = np.cumsum(reset)
    pos_count = np.cumsum(k["pos"])
    seg_base = np.concatenate([[0], pos_count[reset]])
    kth = pos_count - seg_base[seg]
    rel = np.where(k["nt"], 1, np.where(k["pos"], 2 * kth, np.where(k["note"], 2 * kth + 1, 0)))
    return np.stack([rel, mea], axis=1).astype(np.int32)


def time_signature_for(bar_len: int) -> tuple[int, int]:
    """(numerator, denominator) whose measure is ``bar_len`` 32nds, preferring quarter-note beats."""
    for den, per_beat in ((4, 8), (8, 4), (16, 2)):
        if bar_len % per_beat == 0:
            return bar_len // per_beat, den
    return bar_len, 32


def decode(tokens: np.ndarray, *, programs: dict[int, int] | None = None) -> ScoreTick:
    """MMR tokens → score at 480 ticks per quarter, velocity 90 (spec §6.4).

    One MIDI track per (track id, program); program 128 becomes a drum track. ``programs`` maps
    track ids to programs (auto-orchestration) and overrides the instrument column. Time
    signatures reproduce every bar length and tempo steps become tempo events, so that
    ``encode(decode(t), merge_sparse_tracks=False).tokens == t``. Note steps without a preceding
    POS in their track segment, with PAD/special duration or track, and ids the base vocabulary
    does not know (expand Music BPE first) are skipped.

    Args:
        tokens: (steps, 4) ids; extra columns (e.g. rel/mea) are ignored.
    """
    tok = np.asarray(tokens, dtype=np.int64)
    evt, dur, trk, ins = tok[:, 0], tok[:, 1], tok[:, 2], tok[:, 3]
    k = _kinds(evt)
    idx = np.arange(len(evt))
    bar_len = evt[k["bar"]] - BAR_OFFSET + 1
    bar_start = np.concatenate([[0], np.cumsum(bar_len)]) * _TICKS_PER_32ND
    bar_of_step = np.cumsum(k["bar"]) - 1
    last_pos = np.maximum.accumulate(np.where(k["pos"], idx, -1))
    last_reset = np.maximum.accumulate(np.where(k["nt"] | k["bar"], idx, -1))
    is_note = (
        is_single_pitch(evt)
        & (last_pos > last_reset)
        & (bar_of_step >= 0)
        & (dur > DURATION_OFFSET) & (dur < DURATION_VOCAB_SIZE)
        & (trk >= TRACK_OFFSET) & (trk < TRACK_VOCAB_SIZE)
    )
    n = np.flatnonzero(is_note)
    onset = bar_start[bar_of_step[n]] + (evt[last_pos[n]] - POS_OFFSET) * _TICKS_PER_32ND
    length = (dur[n] - DURATION_OFFSET) * _TICKS_PER_32ND
    track = trk[n] - TRACK_OFFSET
    program = np.where((ins[n] >= INSTRUMENT_OFFSET) & (ins[n] < INSTRUMENT_VOCAB_SIZE), ins[n] - INSTRUMENT_OFFSET, 0)
    if programs:
        table = np.full(TRACK_VOCAB_SIZE, -1)
        for t, p in programs.items():
            table[t] = p
        program = np.where(table[track] >= 0, table[track], program)

    score = symusic.Score(DECODE_TPB)
    for t, p in sorted({(int(a), int(b)) for a, b in zip(track, program, strict=True)}):
        sel = (track == t) & (program == p)
        drum = p == DRUM_PROGRAM
        midi_track = symusic.Track(name=f"t{t}", program=0 if drum else p, is_drum=drum)
        midi_track.notes = NoteTickList.from_numpy(
            onset[sel].astype(np.int32),
            length[sel].astype(np.int32),
            (evt[n][sel] - PITCH_OFFSET).astype(np.int8),
            np.full(int(sel.sum()), DECODE_VELOCITY, dtype=np.int8),
        )
        score.tracks.append(midi_track)
    prev = None
    for b, length32 in enumerate(bar_len.tolist()):
        if length32 != prev:
            num, den = time_signature_for(length32)
            score.time_signatures.append(symusic.TimeSignature(int(bar_start[b]), num, den))
            prev = length32
    is_tempo = (evt >= TEMPO_OFFSET) & (evt < BASE_EVENT_VOCAB_SIZE) & (bar_of_step >= 0)
    for s in np.flatnonzero(is_tempo):
        score.tempos.append(
            symusic.Tempo(int(bar_start[bar_of_step[s]]), qpm=float(bin_to_tempo(evt[s] - TEMPO_OFFSET)))
        )
    return score
