"""MMR (multi-track, multi-instrument, repeatable) representation of SymphonyNet (spec §2).

A piece is an int32 array ``(steps, 4)`` with columns ``[event, duration, track, instrument]``
(id layout in :mod:`orchestrion.symbolic.mmr_vocab`). Per measure::

    BOM(L) CHORD [TEMPO] { NT { POS(p) note* }* }*      tracks ascending, positions ascending,
                                                        notes by (pitch, duration)

Encoding is vectorised with NumPy over symusic's note arrays; the only Python loops run over
tracks and time-signature segments, never over notes.

Choices where the reference is silent or was extended (all documented in the spec's spirit):

* No time signature → 4/4 from tick 0 (the MIDI default); a first time signature after the first
  note → 4/4 before it. The reference rejects both.
* Tempo tokens (``MMRConfig.tempo_tokens``, default on): the *effective* tempo of every measure
  (its length in beats over its duration in seconds, so accelerandos inside a bar are averaged
  and the bar keeps its wall-clock length) is binned (61 log-spaced bins, 30-302 bpm, 18 per
  octave); a ``TEMPO`` step follows the chord step in the first measure and in every measure
  whose bin differs from the previous measure's. With ``tempo_tokens=False`` the grammar is exactly the reference's.
* Track order: drum track first, then descending number of *note steps* (notes after long-note
  splitting, quantisation and duplicate removal), ties by file order. The reference counts raw
  MIDI notes; both agree unless splitting/deduplication changes the ranking. Counting steps makes
  ``encode(decode(t)) == t`` exact, with no track renaming.
* Above 40 tracks, a surplus track joins the kept track of the same program with the fewest note
  steps so far (ties: first in rank); kept tracks are then re-ranked by the same order. (The
  reference leaves the kept tracks in an ascending-count order produced by an in-place sort.)
* Chord labels are computed by :mod:`orchestrion.symbolic.chords`, a vectorised re-implementation
  of chorder 0.1.4's scoring (identical labels; chorder is not a dependency).
* :func:`decode` and :func:`positions` live in :mod:`orchestrion.symbolic.mmr_decode` and are
  re-exported here; the decoder writes time signatures and tempi so decoded pieces re-encode
  to the same tokens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from symusic.core import ScoreQuarter, ScoreSecond, ScoreTick

from orchestrion.errors import MidiError
from orchestrion.symbolic.chords import measure_chords
from orchestrion.symbolic.midi import load_midi, ticks_to_seconds, time_signature_changes
from orchestrion.symbolic.mmr_decode import DECODE_TPB, decode, positions, time_signature_for
from orchestrion.symbolic.mmr_vocab import (  # part re-exported, see __all__
    BAR_OFFSET,
    BASE_EVENT_VOCAB_SIZE,
    CHORD_OFFSET,
    DRUM_PROGRAM,
    DURATION_OFFSET,
    INSTRUMENT_OFFSET,
    MAX_BAR,
    MAX_DURATION,
    MAX_TRACKS,
    MMR_VOCAB_VERSION,
    NT_ID,
    PAD,
    PITCH_OFFSET,
    POS_OFFSET,
    TEMPO_OFFSET,
    TRACK_OFFSET,
    MMRVocab,
    from_strings,
    is_single_pitch,
    tempo_to_bin,
    to_strings,
)

__all__ = [
    "BASE_EVENT_VOCAB_SIZE",
    "MMR_VOCAB_VERSION",
    "FidelityStats",
    "MMRConfig",
    "MMRPiece",
    "MMRVocab",
    "decode",
    "encode",
    "fidelity",
    "from_strings",
    "is_single_pitch",
    "positions",
    "roundtrip",
    "time_signature_for",
    "to_strings",
]

SPARSE_TRACK_NOTES = 50  # tracks below this are merged into a same-program track (training only)
MIN_TRACK_NOTES = 5  # an unmergeable sparse track survives only with more notes than this

MidiSource = str | os.PathLike[str] | ScoreTick


@dataclass(frozen=True)
class MMRConfig:
    """Options of the MMR encoder. ``tempo_tokens=False`` gives the reference grammar exactly."""

    tempo_tokens: bool = True


@dataclass
class MMRPiece:
    """One encoded piece.

    Attributes:
        tokens: (steps, 4) int32, columns [event, duration, track, instrument].
        source: file name (or ``"<score>"``) used in messages.
        ticks_per_beat: ticks per quarter note of the source.
        start_tick: source tick where the first kept measure starts (time 0 of the encoding).
        n_measures: number of measures (BOM steps).
        programs: program of each track id (drums = 128).
        n_notes_in: notes in the source MIDI.
        n_notes_kept: note steps in ``tokens``.
        n_split_added: extra pieces created by cutting notes of kept tracks longer than 4 beats.
        dropped: counts by reason: ``invalid`` (end ≤ start), ``sparse_track``, ``track_cap``
            (source notes), ``duplicate`` (pieces that fell on an identical quantised note).
            ``n_notes_in - invalid - sparse_track - track_cap + n_split_added - duplicate``
            equals ``n_notes_kept``.
    """

    tokens: np.ndarray
    source: str
    ticks_per_beat: int
    start_tick: int
    n_measures: int
    programs: tuple[int, ...]
    n_notes_in: int
    n_notes_kept: int
    n_split_added: int
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_source_notes_kept(self) -> int:
        """Notes of the source that have a place in ``tokens`` (at most ``n_notes_in``).

        ``n_notes_kept`` counts note steps, and a note longer than 4 beats is cut into several.
        """
        return self.n_notes_kept - self.n_split_added


@dataclass
class _Track:
    program: int
    is_drum: bool
    onset: np.ndarray  # int64 ticks
    dur: np.ndarray
    pitch: np.ndarray


def _score_and_name(midi: MidiSource | ScoreQuarter | ScoreSecond) -> tuple[ScoreTick, str]:
    if isinstance(midi, ScoreTick):
        return midi, "<score>"
    if isinstance(midi, ScoreQuarter | ScoreSecond):
        return midi.to("tick"), "<score>"
    return load_midi(midi), str(midi)


def _collect_tracks(score: ScoreTick, dropped: dict[str, int]) -> tuple[list[_Track], int]:
    """Valid notes per track; all drum tracks merged into one appended last (§2.1 steps 1-2)."""
    tracks, drums, n_in = [], [], 0
    for trk in score.tracks:
        a = trk.notes.numpy()
        n_in += len(a["time"])
        ok = (a["duration"] > 0) & (a["pitch"] >= 0)
        dropped["invalid"] += int((~ok).sum())
        if not ok.any():
            continue
        cols = (a["time"][ok].astype(np.int64), a["duration"][ok].astype(np.int64), a["pitch"][ok].astype(np.int64))
        if trk.is_drum:
            drums.append(cols)
        else:
            tracks.append(_Track(int(trk.program), False, *cols))
    if drums:
        all_rows = np.stack([np.concatenate(c) for c in zip(*drums, strict=True)], axis=1)
        rows = np.unique(all_rows, axis=0)  # exact duplicates across drum tracks
        dropped["duplicate"] += len(all_rows) - len(rows)
        tracks.append(_Track(DRUM_PROGRAM, True, rows[:, 0], rows[:, 1], rows[:, 2]))
    return tracks, n_in


def _merge_sparse(tracks: list[_Track], dropped: dict[str, int]) -> list[_Track]:
    """§2.1 step 3: small tracks join the first big track of the same (program, drum)."""
    good = [t for t in tracks if len(t.onset) >= SPARSE_TRACK_NOTES]
    kept = list(good)
    for t in tracks:
        if len(t.onset) >= SPARSE_TRACK_NOTES:
            continue
        target = next((g for g in good if (g.program, g.is_drum) == (t.program, t.is_drum)), None)
        if target is not None:
            target.onset, target.dur, target.pitch = (
                np.concatenate([target.onset, t.onset]),
                np.concatenate([target.dur, t.dur]),
                np.concatenate([target.pitch, t.pitch]),
            )
        elif len(t.onset) > MIN_TRACK_NOTES:
            kept.append(t)
        else:
            dropped["sparse_track"] += len(t.onset)
    return kept


def _split_long(onset: np.ndarray, dur: np.ndarray, max_dur: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut notes longer than ``max_dur`` ticks into ``max_dur`` pieces plus a remainder.

    Returns piece onsets, piece durations and, for each piece, the index of its source note.
    """
    n_pieces = (dur + max_dur - 1) // max_dur
    src = np.repeat(np.arange(len(onset)), n_pieces)
    k = np.arange(len(src)) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    return onset[src] + k * max_dur, np.minimum(max_dur, dur[src] - k * max_dur), src


def _measure_grid(score: ScoreTick, name: str, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Measure (start, end) ticks from the time signatures, covering ``first``..``last`` onsets (§2.2)."""
    tpb = score.ticks_per_quarter
    ts = time_signature_changes(score)
    if not ts or ts[0][0] > first:
        ts = [(0, 4, 4), *ts]  # MIDI default metre where none is given
    ts = [e for i, e in enumerate(ts) if i == 0 or e[1:] != ts[i - 1][1:]]
    starts, ends = [], []
    for i, (tick, num, den) in enumerate(ts):
        if num < 1 or den < 1 or (tpb * 4 * num) % den:
            raise MidiError(
                f"{name}: time signature {num}/{den} at tick {tick} gives a measure of "
                f"{tpb * 4 * num / max(den, 1)} ticks at {tpb} ticks per quarter, not a whole number of ticks"
            )
        tpm = tpb * 4 * num // den
        seg_end = min(ts[i + 1][0] if i + 1 < len(ts) else last + tpm, last + tpm)
        if seg_end <= tick:
            continue
        k0 = (first - tick) // tpm if first > tick else 0  # measures before the first note are trimmed anyway
        s = tick + tpm * np.arange(k0, -(-(seg_end - tick) // tpm), dtype=np.int64)
        starts.append(s)
        ends.append(np.minimum(s + tpm, seg_end))
    return np.concatenate(starts), np.concatenate(ends)


def _round_grid(ticks8: np.ndarray, tpb: int, *, half_up: bool) -> np.ndarray:
    """Round ``ticks8 / tpb`` (ticks scaled by 8, so the 32nd grid is ``tpb``): floor if the remainder
    is below half a 32nd (or equal to it, unless ``half_up``), else ceil — the reference's rules."""
    q, r = np.divmod(ticks8, tpb)
    return q + ((2 * r >= tpb) if half_up else (2 * r > tpb))


def _dedup(major: np.ndarray, minor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order by (major, minor) and a mask of first occurrences (exact duplicates removed)."""
    span = int(minor.max()) + 1 if len(minor) else 1
    if len(major) and int(major.max()) < 2**62 // span:
        order = np.argsort(major * span + minor, kind="stable")  # one int64 key: ~5x faster than lexsort
    else:
        order = np.lexsort((minor, major))
    a, b = major[order], minor[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return order, first


def _rank_tracks(is_drum: np.ndarray, counts: np.ndarray, candidates: list[int]) -> list[int]:
    """Drum first, then descending count; ties keep the order of ``candidates``."""
    return sorted(candidates, key=lambda k: (not is_drum[k], -counts[k]))


def _cap_tracks(
    tracks: list[_Track], is_drum: np.ndarray, counts: np.ndarray, sizes: np.ndarray, dropped: dict[str, int]
) -> tuple[np.ndarray, list[int]]:
    """§2.1 step 4: keep the first 40 ranked tracks; each further track joins the kept track of the
    same program with the fewest note steps so far (ties: first in rank), or is dropped.

    Returns the kept track each source track maps to (-1 = dropped) and the kept tracks in rank order.
    """
    ranked = _rank_tracks(is_drum, counts, list(range(len(tracks))))
    kept = ranked[:MAX_TRACKS]
    group = np.full(len(tracks), -1)
    group[kept] = kept
    load = counts.copy()
    for k in ranked[MAX_TRACKS:]:
        same = [g for g in kept if (tracks[g].program, tracks[g].is_drum) == (tracks[k].program, tracks[k].is_drum)]
        if not same:
            dropped["track_cap"] += int(sizes[k])
            continue
        target = min(same, key=lambda g: (load[g], kept.index(g)))
        group[k] = target
        load[target] += counts[k]
    return group, kept


def _measure_tempi(
    score: ScoreTick, starts: np.ndarray, ends: np.ndarray, enabled: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Tempo bin of every measure (its beats over its seconds) and where a tempo step is emitted:
    the first measure and every bin change. Nothing is emitted when ``enabled`` is False."""
    if not enabled:
        return np.zeros(len(starts), dtype=np.int64), np.zeros(len(starts), dtype=bool)
    sec = ticks_to_seconds(score, np.concatenate([starts, ends]))
    bpm = (ends - starts) / score.ticks_per_quarter * 60.0 / (sec[len(starts) :] - sec[: len(starts)])
    tempo_bin = tempo_to_bin(bpm)
    emit = np.ones(len(starts), dtype=bool)
    emit[1:] = tempo_bin[1:] != tempo_bin[:-1]
    return tempo_bin, emit


def encode(midi: MidiSource, *, merge_sparse_tracks: bool = True, config: MMRConfig | None = None) -> MMRPiece:
    """Encode a MIDI file (or tick-based score) to MMR tokens.

    Args:
        midi: path or ``symusic.Score``.
        merge_sparse_tracks: merge/drop tracks with fewer than 50 notes (training corpora);
            ``False`` for primes and round trips.
        config: encoder options (tempo tokens).

    Raises:
        MidiError: unreadable file, no notes, or a measure that cannot be represented
            (not a whole number of ticks, or longer than 100 32nds), naming the file and the rule.
    """
    config = config or MMRConfig()
    score, name = _score_and_name(midi)
    tpb = int(score.ticks_per_quarter)
    dropped = {"invalid": 0, "sparse_track": 0, "track_cap": 0, "duplicate": 0}
    tracks, n_in = _collect_tracks(score, dropped)
    if merge_sparse_tracks:
        tracks = _merge_sparse(tracks, dropped)
    if not tracks:
        raise MidiError(
            f"{name}: no note left to encode ({n_in} notes in the file: {dropped['invalid']} with end ≤ start, "
            f"{dropped['sparse_track']} dropped by the sparse-track merge: tracks of fewer than {SPARSE_TRACK_NOTES}"
            f" notes join a bigger track of their instrument, and without one only those of more than"
            f" {MIN_TRACK_NOTES} notes are kept)"
        )

    sizes = np.array([len(t.onset) for t in tracks])
    src_track = np.repeat(np.arange(len(tracks)), sizes)
    onset, dur, src = _split_long(
        np.concatenate([t.onset for t in tracks]), np.concatenate([t.dur for t in tracks]), 4 * tpb
    )
    pitch = np.concatenate([t.pitch for t in tracks])[src]
    src_track = src_track[src]

    # Quantise every piece on the 32nd grid of its measure (§2.2), in ticks scaled by 8 so that
    # q = tpb/8 stays exact for any tpb.
    starts, ends = _measure_grid(score, name, int(onset.min()), int(onset.max()))
    bar_len = np.maximum(_round_grid(8 * (ends - starts), tpb, half_up=True), 1)
    mea = np.searchsorted(starts, onset, side="right") - 1
    pos = np.minimum(_round_grid(8 * (onset - starts[mea]), tpb, half_up=False), bar_len[mea] - 1)
    dq = np.where(8 * dur < tpb, 1, _round_grid(8 * dur, tpb, half_up=False))
    note_key = (pos * 128 + pitch) * (MAX_DURATION + 1) + dq  # pos < L, so this is collision-free

    # Track order needs note-step counts per source track, i.e. after deduplication.
    n_src = len(tracks)
    order, first = _dedup(mea * n_src + src_track, note_key)
    counts = np.bincount(src_track[order[first]], minlength=n_src)
    is_drum = np.array([t.is_drum for t in tracks])
    group, kept = _cap_tracks(tracks, is_drum, counts, sizes, dropped)
    keep = group[src_track] >= 0
    n_split_added = int(keep.sum()) - int(sizes[group >= 0].sum())
    gtrack, mea, pos, pitch, dq, note_key = (
        group[src_track][keep], mea[keep], pos[keep], pitch[keep], dq[keep], note_key[keep]
    )
    order, first = _dedup(mea * n_src + gtrack, note_key)
    dropped["duplicate"] += int(keep.sum() - first.sum())
    sel = order[first]
    gtrack, mea, pos, pitch, dq = gtrack[sel], mea[sel], pos[sel], pitch[sel], dq[sel]
    final_counts = np.bincount(gtrack, minlength=n_src)
    final = _rank_tracks(is_drum, final_counts, kept)
    track_id = np.full(n_src, -1)
    track_id[final] = np.arange(len(final))
    trk = track_id[gtrack]
    programs = tuple(tracks[g].program for g in final)

    # Keep the measures from the first to the last onset (§2.2).
    m_lo, m_hi = int(mea.min()), int(mea.max())
    mea = mea - m_lo
    starts, ends, bar_len = starts[m_lo : m_hi + 1], ends[m_lo : m_hi + 1], bar_len[m_lo : m_hi + 1]
    bad = np.flatnonzero((bar_len < 1) | (bar_len > MAX_BAR))
    if len(bad):
        b = int(bad[0])
        raise MidiError(
            f"{name}: measure {b + 1} (ticks {int(starts[b])}-{int(ends[b])}) is {int(bar_len[b])} 32nd notes "
            f"long; MMR measures must be 1-{MAX_BAR} 32nds"
        )

    drum_note = np.array(programs)[trk] == DRUM_PROGRAM
    chords = measure_chords(mea, pos, dq, pitch, drum_note, bar_len)
    tempo_bin, emit_tempo = _measure_tempi(score, starts, ends, config.tempo_tokens)
    tokens = _assemble(mea, trk, pos, pitch, dq, programs, bar_len, chords, tempo_bin, emit_tempo)
    return MMRPiece(
        tokens=tokens,
        source=name,
        ticks_per_beat=tpb,
        start_tick=int(starts[0]),
        n_measures=len(starts),
        programs=programs,
        n_notes_in=n_in,
        n_notes_kept=len(pitch),
        n_split_added=n_split_added,
        dropped=dropped,
    )


def _assemble(
    mea: np.ndarray,
    trk: np.ndarray,
    pos: np.ndarray,
    pitch: np.ndarray,
    dq: np.ndarray,
    programs: tuple[int, ...],
    bar_len: np.ndarray,
    chords: np.ndarray,
    tempo_bin: np.ndarray,
    emit_tempo: np.ndarray,
) -> np.ndarray:
    """Lay out steps (§2.5) by computing each step's index directly, without a per-note loop.

    Notes are sorted by (measure, track, pos, pitch, duration); each note is preceded by an NT
    step if it opens a (measure, track) segment and by a POS step if it opens a position.
    """
    # One int64 key is much faster than a 5-column lexsort; pos < 100 and trk < 40 hold here.
    order = np.argsort(
        (((mea * MAX_TRACKS + trk) * MAX_BAR + pos) * 128 + pitch) * (MAX_DURATION + 1) + dq, kind="stable"
    )
    mea, trk, pos, pitch, dq = mea[order], trk[order], pos[order], pitch[order], dq[order]
    n_measures = len(bar_len)
    new_seg = np.ones(len(mea), dtype=bool)
    new_seg[1:] = (mea[1:] != mea[:-1]) | (trk[1:] != trk[:-1])
    new_pos = new_seg.copy()
    new_pos[1:] |= pos[1:] != pos[:-1]
    per_note = 1 + new_seg.astype(np.int64) + new_pos
    header = 2 + emit_tempo.astype(np.int64)
    body = np.bincount(mea, weights=per_note, minlength=n_measures).astype(np.int64)
    measure_start = np.concatenate([[0], np.cumsum(header + body)[:-1]])
    body_before = np.concatenate([[0], np.cumsum(body)[:-1]])
    note_idx = measure_start[mea] + header[mea] + np.cumsum(per_note) - body_before[mea] - 1

    tokens = np.full((int((header + body).sum()), 4), PAD, dtype=np.int32)
    tokens[measure_start, 0] = BAR_OFFSET + bar_len - 1
    tokens[measure_start + 1, 0] = CHORD_OFFSET + chords
    tokens[measure_start[emit_tempo] + 2, 0] = TEMPO_OFFSET + tempo_bin[emit_tempo]
    tokens[note_idx[new_pos] - 1, 0] = POS_OFFSET + pos[new_pos]
    tokens[note_idx[new_seg] - 2, 0] = NT_ID
    tokens[note_idx, 0] = PITCH_OFFSET + pitch
    tokens[note_idx, 1] = DURATION_OFFSET + dq
    tokens[note_idx, 2] = TRACK_OFFSET + trk
    tokens[note_idx, 3] = INSTRUMENT_OFFSET + np.asarray(programs, dtype=np.int64)[trk]
    return tokens


def roundtrip(midi: MidiSource, *, merge_sparse_tracks: bool = False, config: MMRConfig | None = None) -> ScoreTick:
    """MIDI → MMR → MIDI: the score as the representation keeps it."""
    return decode(encode(midi, merge_sparse_tracks=merge_sparse_tracks, config=config).tokens)


@dataclass(frozen=True)
class FidelityStats:
    """How much of a MIDI file the MMR keeps.

    ``notes_exact`` counts input notes that come back from :func:`roundtrip` with the same program
    (drums 128), pitch, onset and duration, measured in quarter notes from the first kept measure
    (a multiset match; notes cut at 4 beats, moved by the 32nd grid or merged count as inexact).
    """

    source: str
    notes_in: int
    notes_kept: int
    notes_exact: int
    dropped: dict[str, int]

    @property
    def exact_fraction(self) -> float:
        return self.notes_exact / self.notes_in if self.notes_in else 0.0


def _note_rows(score: ScoreTick, origin: int, scale: int) -> np.ndarray:
    """(N, 4) int64 rows [program, pitch, (onset - origin) * scale, duration * scale]."""
    rows = []
    for t in score.tracks:
        a = t.notes.numpy()
        ok = a["duration"] > 0
        prog = np.full(int(ok.sum()), DRUM_PROGRAM if t.is_drum else t.program, dtype=np.int64)
        rows.append(np.stack([
            prog,
            a["pitch"][ok].astype(np.int64),
            (a["time"][ok].astype(np.int64) - origin) * scale,
            a["duration"][ok].astype(np.int64) * scale,
        ], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 4), dtype=np.int64)


def fidelity(midi: MidiSource, *, merge_sparse_tracks: bool = False, config: MMRConfig | None = None) -> FidelityStats:
    """Per-file fidelity of MIDI → MMR → MIDI (see :class:`FidelityStats`)."""
    score, name = _score_and_name(midi)
    piece = encode(score, merge_sparse_tracks=merge_sparse_tracks, config=config)
    back = decode(piece.tokens)
    orig = _note_rows(score, piece.start_tick, DECODE_TPB)  # common unit: 1/(tpb*480) quarter
    dec = _note_rows(back, 0, piece.ticks_per_beat)
    rows, inverse = np.unique(np.concatenate([orig, dec]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_orig = np.bincount(inverse[: len(orig)], minlength=len(rows))
    n_dec = np.bincount(inverse[len(orig) :], minlength=len(rows))
    return FidelityStats(
        source=name,
        notes_in=piece.n_notes_in,
        notes_kept=piece.n_notes_kept,
        notes_exact=int(np.minimum(n_orig, n_dec).sum()),
        dropped=dict(piece.dropped),
    )
