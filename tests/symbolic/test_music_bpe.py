"""Music BPE on token arrays built from the fixed MMR layout: learning, applying, decoding, files."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest

from orchestrion.errors import DataError
from orchestrion.symbolic.bpe_learner import learn_merges
from orchestrion.symbolic.mmr_vocab import (
    BAR_OFFSET,
    BASE_EVENT_VOCAB_SIZE,
    CHORD_NA,
    NT_ID,
    PAD,
    PITCH_OFFSET,
    POS_OFFSET,
)
from orchestrion.symbolic.music_bpe import MusicBPE, count_word_table

BASE = BASE_EVENT_VOCAB_SIZE


def meta(evt: int) -> tuple[int, int, int, int]:
    return (evt, PAD, PAD, PAD)


def note(pitch: int, dur: int, track: int = 0, program: int = 40) -> tuple[int, int, int, int]:
    return (PITCH_OFFSET + pitch, 3 + dur, 4 + track, 4 + program)


def random_piece(rng: np.random.Generator, n_measures: int = 12, n_tracks: int = 5) -> np.ndarray:
    """A grammatical MMR token array: BOM, chord, then per track NT and POS-sorted canonical notes."""
    rows = []
    for _ in range(n_measures):
        rows += [meta(BAR_OFFSET + 31), meta(CHORD_NA)]
        for t in range(n_tracks):
            if rng.random() < 0.2:
                continue
            rows.append(meta(NT_ID))
            for pos in sorted(rng.choice(32, size=int(rng.integers(1, 5)), replace=False)):
                rows.append(meta(POS_OFFSET + int(pos)))
                group = {(int(rng.choice([48, 52, 55, 60, 64, 67, 72])) + int(rng.integers(0, 3)),
                          int(rng.choice([4, 8, 16]))) for _ in range(int(rng.integers(1, 7)))}
                rows += [note(p, d, t, 40 + t) for p, d in sorted(group)]
    return np.array(rows, np.int32)


def naive_learn(words: dict[tuple[int, ...], int], n_merges: int, first_new_id: int) -> list[tuple[int, int, int]]:
    """Reference semantics without any incremental bookkeeping: recount every pair each round."""
    table = [(set(w), c) for w, c in words.items() if len(set(w)) >= 2]
    merges = []
    for k in range(n_merges):
        counts: dict[tuple[int, int], int] = {}
        for tokens, c in table:
            for pair in combinations(sorted(tokens), 2):
                counts[pair] = counts.get(pair, 0) + c
        if not counts:
            break
        (a, b), best = min(counts.items(), key=lambda item: (-item[1], item[0]))
        merges.append((a, b, best))
        for tokens, _ in table:
            if a in tokens and b in tokens:
                tokens -= {a, b}
                tokens.add(first_new_id + k)
        table = [(t, c) for t, c in table if len(t) >= 2]
    return merges


def reference_gettokens(word: set[int], merges: list[tuple[int, int, int]]) -> list[int]:
    """Literal transcription of the reference ``gettokens`` (§3.3)."""
    word = set(word)
    last = 0
    while len(word) > 1:
        for i in range(last, len(merges)):
            a, b, new = merges[i]
            if a in word and b in word:
                word -= {a, b}
                word.add(new)
                last = i + 1
                break
        else:
            break
    return sorted(word)


@pytest.fixture(scope="module")
def corpus() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [random_piece(rng) for _ in range(30)]


@pytest.fixture(scope="module")
def bpe(corpus: list[np.ndarray]) -> MusicBPE:
    return MusicBPE().learn(MusicBPE.count_words(corpus[:20]), 60)


def test_hand_computed_merges_with_tie_break() -> None:
    # Pairs: (60,64)=5+3, (60,67)=5, (64,67)=5+4, (55,60)=4 → merge (64,67):9; the word {60,64,67}
    # becomes {60,X0}: (60,X0)=5 next; then (55,60)=4 ties nothing; (60,64)=3 last.
    words = {(60, 64, 67): 5, (60, 64): 3, (64, 67): 4, (55, 60): 4}
    merges = MusicBPE().learn(words, 10).merges
    p = PITCH_OFFSET
    assert [(m.a, m.b, m.count) for m in merges] == [
        (p + 64, p + 67, 9), (p + 60, BASE, 5), (p + 55, p + 60, 4), (p + 60, p + 64, 3)
    ]
    assert [m.pitches for m in merges] == [(64, 67), (60, 64, 67), (55, 60), (60, 64)]
    # Equal counts: the lexicographically smallest (a, b) wins, so (50, 52) before (50, 53) before (60, 62).
    tie = MusicBPE().learn({(60, 62): 2, (50, 53): 2, (50, 52): 2}, 3).merges
    assert [(m.a - p, m.b - p) for m in tie] == [(50, 52), (50, 53), (60, 62)]


@pytest.mark.parametrize("seed", range(6))
def test_incremental_learner_equals_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = {}
    for _ in range(int(rng.integers(20, 120))):
        size = int(rng.integers(2, 8))
        word = tuple(sorted(rng.choice(np.arange(40, 70), size=size, replace=False).tolist()))
        words[word] = int(rng.integers(1, 5))  # small counts → many ties exercise the tie-break
    assert learn_merges(words, 80, first_new_id=128) == naive_learn(words, 80, first_new_id=128)


def test_learning_stops_when_no_pair_is_left() -> None:
    merges = MusicBPE().learn({(60, 64): 3, (60, 64, 67): 1}, 50).merges
    assert len(merges) == 2  # {60,64} then {X0,67}; nothing left to pair afterwards


def test_apply_matches_reference_forward_scan(bpe: MusicBPE) -> None:
    rng = np.random.default_rng(3)
    merges = [(m.a, m.b, BASE + k) for k, m in enumerate(bpe.merges)]
    for _ in range(300):
        pitches = tuple(sorted(rng.choice(np.arange(48, 80), size=int(rng.integers(2, 9)), replace=False).tolist()))
        expected = reference_gettokens({PITCH_OFFSET + x for x in pitches}, merges)
        assert list(bpe._segment_word(pitches)) == expected


def test_decode_apply_round_trip_on_held_out_pieces(bpe: MusicBPE, corpus: list[np.ndarray]) -> None:
    before = after = 0
    for piece in corpus[20:]:
        merged = bpe.apply(piece)
        assert merged.dtype == piece.dtype
        np.testing.assert_array_equal(bpe.decode(merged), piece)
        assert len(merged) <= len(piece)
        before, after = before + len(piece), after + len(merged)
    assert after < before  # chords of the held-out pieces were merged


def test_merges_never_cross_position_track_or_duration(bpe: MusicBPE, corpus: list[np.ndarray]) -> None:
    for piece in corpus[20:]:
        merged = bpe.apply(piece)
        is_note_in, is_note_out = bpe.is_note(piece[:, 0]), bpe.is_note(merged[:, 0])
        # Metadata steps are untouched and in the same order.
        np.testing.assert_array_equal(merged[~is_note_out], piece[~is_note_in])
        seg_in, seg_out = np.cumsum(~is_note_in), np.cumsum(~is_note_out)
        original = {(int(s), int(e) - PITCH_OFFSET, *map(int, r[1:]))
                    for s, e, r in zip(seg_in[is_note_in], piece[is_note_in, 0], piece[is_note_in], strict=True)}
        expanded = []
        for s, row in zip(seg_out[is_note_out], merged[is_note_out], strict=True):
            expanded += [(int(s), p, *map(int, row[1:])) for p in bpe.token_pitches(int(row[0]))]
        # Every pitch of a merged step existed in the same POS segment with the same dur/trk/ins.
        assert len(expanded) == len(original) and set(expanded) == original


def test_group_order_and_token_order_within_a_position() -> None:
    p = PITCH_OFFSET
    bpe = MusicBPE().learn({(60, 67): 5, (64, 72): 3}, 2)  # X0 = {60,67}, X1 = {64,72}
    tokens = np.array([meta(POS_OFFSET), note(55, 4), note(60, 8), note(64, 4), note(67, 8), note(72, 4),
                       meta(POS_OFFSET + 8), note(60, 8)], np.int32)
    out = bpe.apply(tokens)
    # Duration 4 appears first (55), so its group is emitted first: single 55, then X1={64,72};
    # then the duration-8 group X0={60,67}; a lone note stays a single pitch.
    expected = [meta(POS_OFFSET), (p + 55, 7, 4, 44), (BASE + 1, 7, 4, 44), (BASE, 11, 4, 44),
                meta(POS_OFFSET + 8), (p + 60, 11, 4, 44)]
    assert out.tolist() == [list(r) for r in expected]
    np.testing.assert_array_equal(bpe.decode(out), tokens)


def test_word_counting_groups_by_position_track_and_duration() -> None:
    tokens = np.array([meta(NT_ID), meta(POS_OFFSET), note(60, 4), note(64, 4), note(67, 8),
                       meta(POS_OFFSET + 4), note(60, 4), note(64, 4),
                       meta(NT_ID), meta(POS_OFFSET + 4), note(60, 4, track=1), note(64, 8, track=1)], np.int32)
    assert MusicBPE.count_words([tokens]) == {(60, 64): 2}
    assert count_word_table([tokens, tokens], PITCH_OFFSET).total == 4


def test_repeated_pitch_in_a_group_is_refused() -> None:
    tokens = np.array([meta(POS_OFFSET), note(60, 4), note(60, 4)], np.int32)
    with pytest.raises(DataError, match="same pitch twice"):
        MusicBPE.count_words([tokens])


def test_vocabulary_and_token_pitches(bpe: MusicBPE) -> None:
    assert bpe.vocab_size == BASE + bpe.n_merges == BASE + 60
    assert bpe.token_pitches(PITCH_OFFSET + 60) == (60,)
    for k, merge in enumerate(bpe.merges):
        assert bpe.token_pitches(BASE + k) == merge.pitches
        assert set(bpe.token_pitches(merge.a)) | set(bpe.token_pitches(merge.b)) == set(merge.pitches)
    with pytest.raises(DataError, match="not a note"):
        bpe.token_pitches(NT_ID)
    with pytest.raises(DataError, match="beyond"):
        bpe.decode(np.array([[bpe.vocab_size, 7, 4, 44]]))
    with pytest.raises(DataError, match="already contains"):
        bpe.apply(np.array([[BASE, 7, 4, 44]]))


def test_save_load_round_trip_and_bad_files(bpe: MusicBPE, corpus: list[np.ndarray], tmp_path) -> None:
    path = bpe.save(tmp_path / "bpe.json")
    data = json.loads(path.read_text())
    assert data["format"] == "orchestrion-music-bpe" and data["version"] == 1
    assert data["mmr_vocab_version"] == 1 and len(data["merges"]) == 60
    loaded = MusicBPE.load(path)
    assert loaded.merges == bpe.merges and loaded.digest() == bpe.digest()
    np.testing.assert_array_equal(loaded.apply(corpus[25]), bpe.apply(corpus[25]))

    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DataError, match=r"other\.json: not a Music BPE file"):
        MusicBPE.load(tmp_path / "other.json")
    data["merges"][3]["pitches"] = [1, 2]
    (tmp_path / "tampered.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="merge 3 pitches"):
        MusicBPE.load(tmp_path / "tampered.json")
    data = bpe.to_json() | {"mmr_vocab_version": 99}
    (tmp_path / "stale.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"stale\.json: learned for MMR vocab"):
        MusicBPE.load(tmp_path / "stale.json")
    with pytest.raises(DataError, match="not found"):
        MusicBPE.load(tmp_path / "missing.json")


def test_learned_segmentations_equal_the_forward_scan(corpus: list[np.ndarray]) -> None:
    words = MusicBPE.count_words(corpus)
    bpe = MusicBPE().learn(words, 80)
    prefilled = dict(bpe._cache)
    assert len(prefilled) == len(words)  # every learned word is cached by the learner itself
    bpe._cache.clear()
    for word in words:
        assert bpe._segment_word(word) == prefilled[sum(1 << p for p in word)]


def test_batched_apply_equals_per_piece_and_never_spans_pieces(bpe: MusicBPE, corpus: list[np.ndarray]) -> None:
    held_out = corpus[20:]
    for batched, piece in zip(bpe.apply_many(held_out), held_out, strict=True):
        np.testing.assert_array_equal(batched, bpe.apply(piece))
    # Two fragments that start and end with notes: concatenated, their chords would merge.
    head = np.array([meta(POS_OFFSET), note(60, 4)], np.int32)
    tail = np.array([note(67, 4)], np.int32)
    first, second = MusicBPE().learn({(60, 67): 1}, 1).apply_many([head, tail])
    np.testing.assert_array_equal(first, head)
    np.testing.assert_array_equal(second, tail)
