"""MMR encoding (§2): worked example, positions, grammar, quantisation rules, track handling, errors."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from test_mmr_support import TPQ, make_score, random_score, worked_example_score

from orchestrion.errors import MidiError
from orchestrion.symbolic import mmr_vocab as V
from orchestrion.symbolic.midi import save_midi
from orchestrion.symbolic.mmr import MMRConfig, encode, positions

REF = MMRConfig(tempo_tokens=False)
Q = TPQ  # ticks per quarter
Q32 = TPQ // 8

# §2.7, step by step: (event, dur, trk, ins, rel, mea); ".." = RZ TZ YZ.
WORKED_EXAMPLE = """
mw .. 0 1 | HCM .. 0 2 | NT .. 1 3 | p0 .. 2 3 | E5 r8 t0 xE 3 3 | p8 .. 4 3 | G5 r8 t0 xE 5 3
pg .. 6 3 | C6 rg t0 xE 7 3 | NT .. 1 3 | p0 .. 2 3 | C3 rw t1 xG 3 3 | G3 rw t1 xG 3 3
mw .. 0 4 | HGM .. 0 5 | NT .. 1 6 | p0 .. 2 6 | D5 r4 t0 xE 3 6 | p4 .. 4 6 | E5 r4 t0 xE 5 6 | p8 .. 6 6
F5 r8 t0 xE 7 6 | pg .. 8 6 | G5 rg t0 xE 9 6 | NT .. 1 6 | p0 .. 2 6 | G2 rg t1 xG 3 6 | pg .. 4 6
B2 rg t1 xG 5 6 | D3 rg t1 xG 5 6
"""


def _parse_example() -> list[tuple[tuple[str, str, str, str], int, int]]:
    steps = []
    for item in WORKED_EXAMPLE.replace("\n", " | ").split("|"):
        f = item.split()
        if not f:
            continue
        fields = (f[0], "RZ", "TZ", "YZ") if f[1] == ".." else tuple(f[:4])
        steps.append((fields, int(f[-2]), int(f[-1])))
    return steps


def check_grammar(tokens: np.ndarray) -> None:
    """§10.2 grammar properties of an encoded (pre-BPE) piece."""
    evt, dur, trk, ins = tokens.T
    assert V.BAR_OFFSET <= evt[0] < V.POS_OFFSET, "a piece starts with BOM"
    bar = np.flatnonzero((evt >= V.BAR_OFFSET) & (evt < V.POS_OFFSET))
    bounds = [*bar.tolist(), len(evt)]
    for b, e in pairwise(bounds):
        length = evt[b] - V.BAR_OFFSET + 1
        assert 1 <= length <= 100
        assert V.CHORD_OFFSET <= evt[b + 1] < V.BAR_OFFSET, "BOM is followed by a chord"
        i = b + 2
        if i < e and V.TEMPO_OFFSET <= evt[i] < V.BASE_EVENT_VOCAB_SIZE:
            i += 1
        last_track = -1
        while i < e:
            assert evt[i] == V.NT_ID, "track segments start with NT"
            i += 1
            last_pos, seg_track = -1, None
            while i < e and evt[i] != V.NT_ID:
                assert V.POS_OFFSET <= evt[i] < V.NT_ID, "a POS opens every onset"
                pos = evt[i] - V.POS_OFFSET
                assert last_pos < pos < length, "positions strictly ascending and inside the bar"
                last_pos = pos
                i += 1
                notes = []
                while i < e and V.is_single_pitch(evt[i]):
                    assert 1 <= dur[i] - 3 <= 32 and 0 <= trk[i] - 4 < 40 and 0 <= ins[i] - 4 <= 128
                    notes.append((evt[i], dur[i]))
                    seg_track = trk[i] if seg_track is None else seg_track
                    assert trk[i] == seg_track, "one track per segment"
                    i += 1
                assert notes, "a POS is followed by notes"
                assert notes == sorted(notes), "pitches ascending (ties by duration)"
                assert len(set(notes)) == len(notes)
            assert seg_track is not None and seg_track > last_track, "tracks strictly ascending in a measure"
            last_track = seg_track
    meta = ~V.is_single_pitch(evt)
    assert np.all(tokens[meta, 1:] == V.PAD)


def test_worked_example_reproduces_exactly_with_positions() -> None:
    piece = encode(worked_example_score(), merge_sparse_tracks=False, config=REF)
    expected = _parse_example()
    assert len(expected) == 30
    assert V.to_strings(piece.tokens) == [s for s, _, _ in expected]
    np.testing.assert_array_equal(positions(piece.tokens), [(r, m) for _, r, m in expected])
    assert piece.programs == (40, 42) and piece.n_notes_kept == 12 and piece.n_measures == 2
    check_grammar(piece.tokens)


def test_worked_example_from_a_midi_file(tmp_path: Path) -> None:
    path = save_midi(worked_example_score(), tmp_path / "example.mid")
    piece = encode(path, merge_sparse_tracks=False, config=REF)
    assert V.to_strings(piece.tokens) == [s for s, _, _ in _parse_example()]
    assert piece.source == str(path)


def test_tempo_tokens_follow_the_chord_where_the_tempo_changes() -> None:
    score = worked_example_score()
    score.tempos.append(__import__("symusic").Tempo(4 * Q, qpm=60.0))  # bar 2 at 60 bpm; bar 1 default 120
    piece = encode(score, merge_sparse_tracks=False)
    strings = [s[0] for s in V.to_strings(piece.tokens)]
    assert strings[:4] == ["mw", "HCM", "Q" + V.int_to_digit(36), "NT"]  # bin 36 = 120 bpm
    bar2 = strings.index("mw", 1)
    assert strings[bar2 : bar2 + 4] == ["mw", "HGM", "Q" + V.int_to_digit(18), "NT"]  # bin 18 = 60 bpm
    pos = positions(piece.tokens)
    assert pos[2].tolist() == [0, 3] and pos[bar2 + 2].tolist() == [0, 6]
    # Without the tempo steps the rest is the reference sequence.
    no_tempo = piece.tokens[~((piece.tokens[:, 0] >= V.TEMPO_OFFSET) & (piece.tokens[:, 0] < V.BASE_EVENT_VOCAB_SIZE))]
    np.testing.assert_array_equal(no_tempo, encode(score, merge_sparse_tracks=False, config=REF).tokens)


def test_constant_tempo_gives_one_tempo_step() -> None:
    score = random_score(5, drums=False)
    score.tempos.clear()
    score.tempos.append(__import__("symusic").Tempo(0, qpm=75.0))
    tokens = encode(score, merge_sparse_tracks=False).tokens
    is_tempo = (tokens[:, 0] >= V.TEMPO_OFFSET) & (tokens[:, 0] < V.BASE_EVENT_VOCAB_SIZE)
    assert np.flatnonzero(is_tempo).tolist() == [2]


def test_three_position_indices_on_hand_built_two_bar_two_track_example() -> None:
    # Bar 1: only the flute (2 onsets, one a dyad). Bar 2 (3/4): flute 1 onset, bass 2 onsets.
    flute = [(0, Q, 72), (0, Q, 76), (3 * Q, Q // 2, 74), (4 * Q + Q // 4, Q, 79)]
    bass = [(4 * Q, Q, 36), (6 * Q, Q, 38)]
    score = make_score([(73, False, flute), (32, False, bass)], time_signatures=[(0, 4, 4), (4 * Q, 3, 4)])
    tokens = encode(score, merge_sparse_tracks=False, config=REF).tokens
    rows = zip(V.to_strings(tokens), tokens[:, 2], positions(tokens), strict=True)
    got = [(name[0], int(t), rel, mea) for name, t, (rel, mea) in rows]
    assert got == [
        ("mw", V.PAD, 0, 1), ("HCM", V.PAD, 0, 2),
        ("NT", V.PAD, 1, 3), ("p0", V.PAD, 2, 3), ("C5", 4, 3, 3), ("E5", 4, 3, 3),
        ("po", V.PAD, 4, 3), ("D5", 4, 5, 3),
        ("mo", V.PAD, 0, 4), ("HCM", V.PAD, 0, 5),
        ("NT", V.PAD, 1, 6), ("p2", V.PAD, 2, 6), ("G5", 4, 3, 6),
        ("NT", V.PAD, 1, 6), ("p0", V.PAD, 2, 6), ("C2", 5, 3, 6), ("pg", V.PAD, 4, 6), ("D2", 5, 5, 6),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_pieces_satisfy_the_grammar_and_encoding_is_deterministic(seed: int) -> None:
    score = random_score(seed, n_tracks=7)
    a = encode(score)
    b = encode(score)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.tokens.dtype == np.int32 and a.tokens.shape[1] == 4
    check_grammar(a.tokens)
    check_grammar(encode(score, config=REF).tokens)


def test_note_accounting_identity() -> None:
    piece = encode(random_score(11, n_tracks=8))
    d = piece.dropped
    assert piece.n_split_added > 0 and d["duplicate"] > 0
    assert (piece.n_notes_in - d["invalid"] - d["sparse_track"] - d["track_cap"] + piece.n_split_added
            - d["duplicate"]) == piece.n_notes_kept == int(V.is_single_pitch(piece.tokens[:, 0]).sum())


def _notes_of(tokens: np.ndarray) -> list[tuple[str, str, str, str]]:
    return [s for s in V.to_strings(tokens) if s[1] != "RZ"]


def _events(tokens: np.ndarray) -> list[str]:
    return [s[0] for s in V.to_strings(tokens)]


def test_quantisation_rounding_rules() -> None:
    # tpq 480: a 32nd is 60 ticks, half a 32nd 30 ticks.
    notes = [
        (30, 90, 60),   # onset remainder = half → floor → p0; duration 90 = 1.5 32nds → floor → 1
        (31, 91, 62),   # remainder > half → ceil → p1; duration remainder 31 > 30 → ceil → 2
        (60, 10, 64),   # duration shorter than a 32nd → 1
        (1900, 60, 65),  # rounds to 32 → clamped to the last position of the bar, p31
    ]
    tokens = encode(make_score([(0, False, notes)]), merge_sparse_tracks=False, config=REF).tokens
    # Chord: C spans 8, D 2, E 1 in the first quarter → Csus2 scores 89 > C major's 88.
    assert _events(tokens) == ["mw", "HCsus2", "NT", "p0", "C4", "p1", "D4", "E4", "pv", "F4"]
    assert [s[1] for s in _notes_of(tokens)] == ["r1", "r2", "r1", "r1"]


def test_measure_length_rounding_half_goes_up() -> None:
    # 3/4 bar of 1440 ticks, then a truncated bar of 30 ticks (half a 32nd → rounds up to 1),
    # then 2/4. A bar of 1470 ticks would also have remainder 30 → 25 32nds.
    ts = [(0, 3, 4), (1470, 2, 4)]
    notes = [(0, Q, 60), (1470, Q, 62)]
    tokens = encode(make_score([(0, False, notes)], time_signatures=ts), merge_sparse_tracks=False, config=REF).tokens
    bars = [e for e in _events(tokens) if e[0] in "mM"]
    assert bars == ["mo", "m1", "mg"]  # 24, 1, 16


def test_long_notes_are_split_into_four_beat_pieces() -> None:
    score = make_score([(0, False, [(0, 9 * Q, 60)])])
    tokens = encode(score, merge_sparse_tracks=False, config=REF).tokens
    assert _events(tokens) == ["mw", "HCM", "NT", "p0", "C4"] * 3
    assert [s[1] for s in _notes_of(tokens)] == ["rw", "rw", "r8"]


def test_no_time_signature_means_four_four() -> None:
    notes = [(i * Q, Q, 60 + i) for i in range(10)]
    explicit = encode(make_score([(0, False, notes)]), merge_sparse_tracks=False).tokens
    implicit = encode(make_score([(0, False, notes)], time_signatures=None), merge_sparse_tracks=False).tokens
    np.testing.assert_array_equal(implicit, explicit)
    assert [e for e in _events(implicit) if e[0] == "m"] == ["mw", "mw", "mw"]


def test_first_time_signature_after_first_note_applies_four_four_before_it() -> None:
    notes = [(i * Q, Q, 60) for i in range(11)]  # 11 beats
    score = make_score([(0, False, notes)], time_signatures=[(8 * Q, 3, 4)])
    bars = [e for e in _events(encode(score, merge_sparse_tracks=False).tokens) if e[0] == "m"]
    assert bars == ["mw", "mw", "mo"]


def test_time_signature_at_first_note_shifts_the_grid() -> None:
    # First TS at tick 100 == first note: bars start there, like the reference.
    score = make_score([(0, False, [(100, Q, 60), (100 + 4 * Q, Q, 62)])], time_signatures=[(100, 4, 4)])
    tokens = encode(score, merge_sparse_tracks=False, config=REF).tokens
    assert _events(tokens) == ["mw", "HCM", "NT", "p0", "C4", "mw", "HDM", "NT", "p0", "D4"]


def test_leading_and_trailing_empty_bars_are_dropped_inner_ones_kept() -> None:
    score = make_score([(0, False, [(8 * Q, Q, 60), (20 * Q, Q, 62)])])
    piece = encode(score, merge_sparse_tracks=False, config=REF)
    assert piece.start_tick == 8 * Q and piece.n_measures == 4
    assert _events(piece.tokens) == [
        "mw", "HCM", "NT", "p0", "C4", "mw", "HNA", "mw", "HNA", "mw", "HDM", "NT", "p0", "D4"]


def test_drums_are_merged_first_with_program_128() -> None:
    kick = [(i * Q, Q32, 36) for i in range(8)]
    snare = [(i * Q + Q // 2, Q32, 38) for i in range(8)]
    piano = [(i * Q, Q, 60) for i in range(8)] * 1 + [(i * Q, Q, 64) for i in range(8)]
    piece = encode(make_score([(0, True, kick), (0, False, piano), (5, True, snare)]), merge_sparse_tracks=False)
    assert piece.programs == (128, 0)
    notes = _notes_of(piece.tokens)
    assert {n[3] for n in notes if n[2] == "t0"} == {"y4"} and sum(n[2] == "t0" for n in notes) == 16
    assert {n[3] for n in notes if n[2] == "t1"} == {"x0"}


def test_tracks_ordered_by_note_count_ties_by_file_order() -> None:
    a = [(i * Q, Q, 60) for i in range(4)]
    b = [(i * Q, Q, 62) for i in range(6)]
    c = [(i * Q, Q, 64) for i in range(4)]
    piece = encode(make_score([(1, False, a), (2, False, b), (3, False, c)]), merge_sparse_tracks=False)
    assert piece.programs == (2, 1, 3)


def test_sparse_tracks_merged_kept_or_dropped() -> None:
    big = [(i * Q32 * 2, Q32, 60 + i % 12) for i in range(60)]
    small_same = [(i * Q, Q, 72) for i in range(10)]  # joins the big program-40 track
    small_unique = [(i * Q, Q, 48) for i in range(6)]  # > 5 notes, no partner → kept
    tiny = [(i * Q, Q, 50) for i in range(5)]  # ≤ 5 notes, no partner → dropped
    score = make_score([(40, False, big), (40, False, small_same), (33, False, small_unique), (70, False, tiny)])
    merged = encode(score)
    assert merged.programs == (40, 33)
    assert merged.dropped["sparse_track"] == 5
    assert merged.n_notes_kept == 60 + 10 + 6
    assert encode(score, merge_sparse_tracks=False).programs == (40, 40, 33, 70)


def test_forty_track_cap_reassigns_by_program_and_drops_the_rest() -> None:
    tracks = []
    for k in range(44):
        n = 100 - k  # distinct counts: rank = file order
        program = 99 if k == 43 else k % 20  # track 43's program is unique among surplus and kept
        tracks.append((program, False, [(i * Q32, Q32, 40 + k) for i in range(n)]))
    piece = encode(make_score(tracks), merge_sparse_tracks=False)
    assert len(piece.programs) == 40
    assert piece.dropped["track_cap"] == 100 - 43
    # Surplus tracks 40-42 (programs 0-2) join the kept tracks of programs 0-2 with the fewest notes:
    # tracks 20, 21, 22 (80, 79, 78 notes) rather than 0, 1, 2.
    notes = _notes_of(piece.tokens)
    assert piece.n_notes_kept == sum(100 - k for k in range(43))
    pitches_by_track: dict[str, set[int]] = {}
    for n in notes:
        pitches_by_track.setdefault(n[2], set()).add(V.pitch_from_name(n[0]))
    merged = [p for p in pitches_by_track.values() if len(p) == 2]
    assert sorted(sorted(p) for p in merged) == [[60, 80], [61, 81], [62, 82]]


def test_unrepresentable_measure_is_rejected_with_reason(tmp_path: Path) -> None:
    path = save_midi(make_score([(0, False, [(0, Q, 60)])], time_signatures=[(0, 13, 4)]), tmp_path / "long.mid")
    with pytest.raises(MidiError, match=r"long\.mid: measure 1 .* 104 32nd notes long; MMR measures must be 1-100"):
        encode(path, merge_sparse_tracks=False)


def test_fractional_measure_is_rejected_with_reason() -> None:
    score = make_score([(0, False, [(0, 6, 60)])], tpq=6, time_signatures=[(0, 3, 16)])
    with pytest.raises(MidiError, match=r"3/16 .* not a whole number of ticks"):
        encode(score, merge_sparse_tracks=False)


def test_odd_ticks_per_quarter_quantise_on_exact_fractions() -> None:
    # tpq 100: a 32nd is 12.5 ticks. Onset 6 = 0.48 32nd → p0; 7 = 0.56 → p1; 19 = 1.52 → p2.
    score = make_score([(0, False, [(6, 100, 60), (7, 100, 62), (19, 100, 64)])], tpq=100)
    events = _events(encode(score, merge_sparse_tracks=False, config=REF).tokens)
    assert events[3:] == ["p0", "C4", "p1", "D4", "p2", "E4"]


def test_bad_midi_file_raises_midi_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.mid"
    path.write_bytes(b"not a midi file at all")
    with pytest.raises(MidiError, match=r"junk\.mid: not a MIDI file"):
        encode(path)


def test_file_whose_notes_are_all_dropped_says_why() -> None:
    score = make_score([(0, False, [(i * Q, Q, 60) for i in range(3)])])
    why = r"3 dropped by the sparse-track merge: tracks of fewer than 50 notes .* more than 5 notes are kept"
    with pytest.raises(MidiError, match=r"no note left to encode .*" + why):
        encode(score)
