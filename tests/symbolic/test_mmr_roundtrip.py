"""MIDI → MMR → MIDI (§10.3): every quantised note with its track and program, drums, tempo,
time signatures; and encode(decode(tokens)) == tokens."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import symusic
from test_mmr_support import TPQ, make_score, random_score, without_self_overlaps, worked_example_score

from orchestrion.symbolic import mmr_vocab as V
from orchestrion.symbolic.midi import load_midi, save_midi, ticks_to_seconds, time_signature_changes
from orchestrion.symbolic.mmr import MMRConfig, decode, encode, fidelity, roundtrip

Q = TPQ


def _decoded_notes(score: symusic.Score) -> Counter:
    """(track name, program-or-128, pitch, onset, duration) multiset of a decoded score."""
    out: Counter = Counter()
    for t in score.tracks:
        for n in t.notes:
            out[(t.name, 128 if t.is_drum else t.program, n.pitch, n.time, n.duration)] += 1
    return out


@pytest.mark.parametrize("config", [MMRConfig(), MMRConfig(tempo_tokens=False)], ids=["tempo", "reference"])
def test_encode_decode_encode_is_identity_on_multitrack_files(multitrack_midis: list[Path], config: MMRConfig) -> None:
    for path in multitrack_midis:
        tokens = encode(path, merge_sparse_tracks=False, config=config).tokens
        again = encode(decode(tokens), merge_sparse_tracks=False, config=config).tokens
        np.testing.assert_array_equal(again, tokens, err_msg=str(path))


@pytest.mark.parametrize("seed", range(20, 26))
def test_encode_decode_encode_is_identity_with_sparse_merge_and_many_tracks(seed: int) -> None:
    # Training-path encodings (sparse merge on) re-encode exactly on the prime path too.
    tokens = encode(random_score(seed, n_tracks=10, n_notes=60 + 10 * seed % 70)).tokens
    np.testing.assert_array_equal(encode(decode(tokens), merge_sparse_tracks=False).tokens, tokens)


def test_identity_through_a_midi_file(tmp_path: Path) -> None:
    # MIDI cannot store two overlapping notes of one pitch in one track, so use a score without them.
    tokens = encode(without_self_overlaps(random_score(30)), merge_sparse_tracks=False).tokens
    path = save_midi(decode(tokens), tmp_path / "decoded.mid")
    np.testing.assert_array_equal(encode(path, merge_sparse_tracks=False).tokens, tokens)


def test_on_grid_notes_come_back_exactly_with_track_and_program() -> None:
    # 4/4 throughout, onsets/durations on the 32nd grid, ≤ 4 beats, no duplicates: nothing to lose.
    rng = np.random.default_rng(3)
    tracks = []
    for k, program in enumerate((40, 40, 42, 71)):
        cells = rng.choice(64 * 32, 90, replace=False)
        notes = sorted({(int(c) * 60, int(rng.integers(1, 33)) * 60, 40 + 7 * k + int(c) % 5) for c in cells})
        tracks.append((program, False, notes))
    tracks.append((0, True, [(i * Q, 60, 36 + i % 3) for i in range(0, 200, 2)]))
    score = make_score(tracks)
    piece = encode(score, merge_sparse_tracks=False)
    back = decode(piece.tokens)
    start = piece.start_tick
    expected: Counter = Counter()
    for t in score.tracks:
        # Tracks are identified by their note sets: each source track must map to one decoded track.
        key = frozenset((n.pitch, n.time - start, n.duration) for n in t.notes)
        expected[(128 if t.is_drum else t.program, key)] += 1
    got: Counter = Counter()
    for t in back.tracks:
        key = frozenset((n.pitch, n.time, n.duration) for n in t.notes)
        got[(128 if t.is_drum else t.program, key)] += 1
    assert got == expected
    assert all(n.velocity == 90 for t in back.tracks for n in t.notes)
    assert back.ticks_per_quarter == 480
    assert [t.is_drum for t in back.tracks].count(True) == 1
    stats = fidelity(score)
    assert stats.notes_exact == stats.notes_in == stats.notes_kept == score.note_num()


def _expected_quantised(score: symusic.Score) -> Counter:
    """Scalar oracle for a 4/4 file at tpq 480 with notes ≤ 4 beats: (program, pitch, onset, dur) in
    decoded ticks after the §2.2 rounding rules, relative to the bar of the first note."""
    bar = 4 * Q
    first_bar = min(n.time for t in score.tracks for n in t.notes) // bar
    out: Counter = Counter()
    for t in score.tracks:
        seen = set()
        for n in t.notes:
            m, rel = divmod(n.time, bar)
            pos = min(rel // 60 + (rel % 60 > 30), 31)
            dur = 1 if n.duration < 60 else n.duration // 60 + (n.duration % 60 > 30)
            note = (128 if t.is_drum else t.program, n.pitch, ((m - first_bar) * 32 + pos) * 60, dur * 60)
            if (t.name, note) not in seen:  # duplicates after quantisation collapse within a track
                seen.add((t.name, note))
                out[note] += 1
    return out


def test_off_grid_notes_come_back_at_their_quantised_positions() -> None:
    rng = np.random.default_rng(8)
    tracks = []
    for k, program in enumerate((40, 40, 61)):
        start = np.sort(rng.integers(2 * 4 * Q, 20 * 4 * Q, 150))
        tracks.append((program, False, [(int(s), int(d), 50 + 5 * k + int(s) % 7)
                                        for s, d in zip(start, rng.integers(5, 4 * Q, 150), strict=True)]))
    score = make_score(tracks)
    back = decode(encode(score, merge_sparse_tracks=False).tokens)
    got: Counter = Counter()
    for t in back.tracks:
        for n in t.notes:
            got[(128 if t.is_drum else t.program, n.pitch, n.time, n.duration)] += 1
    assert got == _expected_quantised(score)
    stats = fidelity(score)
    assert 0 < stats.notes_exact < stats.notes_in


def test_two_tracks_sharing_a_program_stay_separate() -> None:
    a = [(i * Q, Q, 60) for i in range(12)]
    b = [(i * Q, Q, 64) for i in range(10)]
    back = decode(encode(make_score([(40, False, a), (40, False, b)]), merge_sparse_tracks=False).tokens)
    assert [(t.program, {n.pitch for n in t.notes}, len(t.notes)) for t in back.tracks] == [
        (40, {60}, 12), (40, {64}, 10)]


def test_drums_survive_as_one_drum_track() -> None:
    kick = [(i * Q, 60, 36) for i in range(16)]
    hat = [(i * Q + Q // 2, 60, 42) for i in range(16)]
    score = make_score([(0, False, [(0, 16 * Q // 4, 60)]), (0, True, kick), (0, True, hat)])
    back = roundtrip(score)
    drums = [t for t in back.tracks if t.is_drum]
    assert len(drums) == 1 and drums[0].program == 0
    assert sorted((n.time, n.pitch) for n in drums[0].notes) == sorted((s, p) for s, _, p in kick + hat)


def test_time_signatures_reproduce_every_bar_length() -> None:
    ts = [(0, 4, 4), (2 * 4 * Q, 3, 4), (2 * 4 * Q + 3 * Q, 3, 8), (2 * 4 * Q + 3 * Q + 3 * Q // 2, 5, 8)]
    end = ts[-1][0] + 5 * Q // 2
    score = make_score([(0, False, [(t, Q // 2, 60) for t in range(0, end, Q // 2)])], time_signatures=ts)
    back = roundtrip(score)
    assert time_signature_changes(back) == ts  # tpq 480 in and out, all bars on the grid


def test_tempo_survives_within_a_bin() -> None:
    score = random_score(40, long_notes=False)  # 96 bpm, then 140 bpm from tick 19200, inside a 3/4 bar
    piece = encode(score, merge_sparse_tracks=False)
    back = decode(piece.tokens)
    qpm = [t.qpm for t in back.tempos]
    assert abs(qpm[0] / 96 - 1) < 0.02 and abs(qpm[-1] / 140 - 1) < 0.02
    assert len(qpm) == 3 and 96 < qpm[1] < 140  # the bar holding the change gets its average tempo
    # Bars keep their wall-clock length to within the bin error, so the last onset keeps its time
    # (up to that error and half a 32nd of quantisation).
    last = max(n.time for t in score.tracks for n in t.notes)
    orig = float(ticks_to_seconds(score, last) - ticks_to_seconds(score, piece.start_tick))
    dec = float(ticks_to_seconds(back, max(n.time for t in back.tracks for n in t.notes)))
    assert orig > 30 and abs(dec - orig) < 0.02 * orig + 0.05


def test_reference_grammar_decodes_without_tempo_events() -> None:
    tokens = encode(worked_example_score(), merge_sparse_tracks=False, config=MMRConfig(tempo_tokens=False)).tokens
    back = decode(tokens)
    assert len(back.tempos) == 0 and time_signature_changes(back) == [(0, 4, 4)]


def test_decode_program_override_and_skips_orphan_notes() -> None:
    tokens = encode(worked_example_score(), merge_sparse_tracks=False).tokens
    back = decode(tokens, programs={0: 73, 1: 128})
    assert [(t.program, t.is_drum, len(t.notes)) for t in back.tracks] == [(73, False, 7), (0, True, 5)]
    orphan = np.array([[V.BAR_OFFSET + 31, 1, 1, 1], [V.CHORD_NA, 1, 1, 1], [V.NT_ID, 1, 1, 1],
                       [V.PITCH_OFFSET + 60, 3 + 8, 4, 44],  # no POS before it
                       [V.POS_OFFSET, 1, 1, 1], [V.PITCH_OFFSET + 62, V.PAD, V.PAD, V.PAD],  # PAD duration
                       [V.BASE_EVENT_VOCAB_SIZE + 3, 3 + 8, 4, 44],  # unexpanded BPE id
                       [V.PITCH_OFFSET + 64, 3 + 8, 4, 44]])
    back = decode(orphan)
    assert [(n.time, n.pitch) for t in back.tracks for n in t.notes] == [(0, 64)]


def test_roundtrip_and_fidelity_from_file(multitrack_midis: list[Path]) -> None:
    for i, path in enumerate(multitrack_midis):
        back = roundtrip(path)
        stats = fidelity(path)
        assert back.note_num() == stats.notes_kept
        assert stats.notes_in == load_midi(path).note_num()
        assert 0 <= stats.notes_exact <= stats.notes_kept
        if i == 1:  # the on-grid file: only notes duplicated within a track are lost
            assert stats.exact_fraction > 0.95


def test_demo_corpus_round_trips(tmp_path: Path) -> None:
    demo_midi = getattr(pytest.importorskip("orchestrion.corpora"), "demo_midi", None)
    if demo_midi is None:
        pytest.skip("orchestrion.corpora.demo_midi is not available")
    paths = demo_midi(tmp_path, 3)
    assert len(paths) == 3
    for path in paths:
        tokens = encode(path, merge_sparse_tracks=False).tokens
        np.testing.assert_array_equal(encode(decode(tokens), merge_sparse_tracks=False).tokens, tokens)
        stats = fidelity(path)
        assert stats.notes_kept > 0 and stats.notes_exact > 0.5 * stats.notes_in
