"""The incremental MMR grammar: same positions as the data pipeline, masks that only allow decodable pieces."""

from __future__ import annotations

import numpy as np
import pytest
from generate_support import corpus_bpe, encoded_corpus

from orchestrion.symbolic.mmr_decode import decode, positions
from orchestrion.symbolic.mmr_vocab import (
    BAR_OFFSET,
    BASE_EVENT_VOCAB_SIZE,
    CHORD_OFFSET,
    DURATION_OFFSET,
    EOS,
    NT_ID,
    PAD,
    PITCH_OFFSET,
    POS_OFFSET,
    TEMPO_OFFSET,
    TRACK_OFFSET,
)
from orchestrion.symphony.grammar import GrammarError, GrammarState

CHORD_C = CHORD_OFFSET + 3  # C major
META = (PAD, PAD)


def pieces(tempo_tokens: bool, bpe: bool) -> tuple[list[np.ndarray], int]:
    plain = list(encoded_corpus(tempo_tokens))
    if not bpe:
        return plain, BASE_EVENT_VOCAB_SIZE
    merges = corpus_bpe()
    return [merges.apply(p) for p in plain], merges.vocab_size


@pytest.mark.parametrize("bpe", [False, True], ids=["plain", "bpe"])
@pytest.mark.parametrize("tempo_tokens", [False, True], ids=["no-tempo", "tempo"])
def test_positions_equal_data_pipeline_on_corpus_pieces_and_windows(tempo_tokens: bool, bpe: bool) -> None:
    """Acceptance 6: the state machine's (rel, mea) equal mmr_decode.positions() on whole pieces and on
    windows that start at any measure (the data builder numbers measures from a window's first one)."""
    tokens, vocab = pieces(tempo_tokens, bpe)
    rng = np.random.default_rng(0)
    n_tempo = n_merged = 0
    for piece in tokens:
        n_tempo += int(((piece[:, 0] >= TEMPO_OFFSET) & (piece[:, 0] < BASE_EVENT_VOCAB_SIZE)).sum())
        n_merged += int((piece[:, 0] >= BASE_EVENT_VOCAB_SIZE).sum())
        cols = GrammarState(vocab, tempo_tokens=tempo_tokens).feed_many(piece)
        np.testing.assert_array_equal(cols, positions(piece))
        bars = np.flatnonzero((piece[:, 0] >= BAR_OFFSET) & (piece[:, 0] < POS_OFFSET))
        for start in rng.choice(bars, size=min(5, len(bars)), replace=False):
            window = piece[start : start + 300]
            cols = GrammarState(vocab, tempo_tokens=tempo_tokens).feed_many(window)
            np.testing.assert_array_equal(cols, positions(window))
    assert (n_tempo > 0) == tempo_tokens
    assert (n_merged > 0) == bpe


def test_reference_grammar_rejects_tempo_steps() -> None:
    piece = encoded_corpus(True)[0]
    state = GrammarState(tempo_tokens=False)
    with pytest.raises(GrammarError, match=r"step 2 .*tempo steps are off for this grammar"):
        state.feed_many(piece)


def random_walk(
    rng: np.random.Generator, vocab: int, tempo_tokens: bool, n_steps: int, track_order: str = "ascending"
) -> np.ndarray:
    """A sequence drawn uniformly among whatever the masks allow at each step."""
    state = GrammarState(vocab, tempo_tokens=tempo_tokens, max_rel_pos=40, max_mea_pos=60, track_order=track_order)
    rows = []
    for _ in range(n_steps):
        allowed = np.flatnonzero(state.allowed_events())
        if not len(allowed):
            break
        evt = int(rng.choice(allowed))
        if evt == EOS:
            break
        dur = trk = PAD
        if PITCH_OFFSET <= evt < CHORD_OFFSET or evt >= BASE_EVENT_VOCAB_SIZE:
            dur = int(rng.choice(np.flatnonzero(state.allowed_durations())))
            trk = int(rng.choice(np.flatnonzero(state.allowed_tracks())))
        state.feed((evt, dur, trk))
        rows.append((evt, dur, trk, PAD))
    return np.asarray(rows, dtype=np.int32).reshape(-1, 4)


@pytest.mark.parametrize(("tempo_tokens", "track_order"), [(False, "ascending"), (True, "ascending"),
                                                           (True, "distinct")])
def test_every_sequence_the_masks_allow_decodes(tempo_tokens: bool, track_order: str) -> None:
    """Sequences drawn only from the masks decode with no note skipped and re-parse with the same positions."""
    bpe = corpus_bpe()
    rng = np.random.default_rng(1)
    for _ in range(30):
        tokens = random_walk(rng, bpe.vocab_size, tempo_tokens, 400, track_order)
        plain = bpe.decode(tokens)
        score = decode(plain)
        n_pitches = int(bpe.pitch_counts()[tokens[:, 0]].sum())
        assert sum(t.note_num() for t in score.tracks) == n_pitches
        cols = GrammarState(bpe.vocab_size, tempo_tokens=tempo_tokens, track_order=track_order).feed_many(tokens)
        np.testing.assert_array_equal(cols, positions(tokens))
        cols = GrammarState(tempo_tokens=tempo_tokens, track_order=track_order).feed_many(plain)
        np.testing.assert_array_equal(cols, positions(plain))


@pytest.mark.parametrize("track_order", ["ascending", "distinct"])
def test_masks_say_exactly_what_feed_accepts(track_order: str) -> None:
    """At states along a real piece, an event/track is in the mask iff feeding it succeeds."""
    piece = encoded_corpus(True)[1]
    state = GrammarState(tempo_tokens=True, track_order=track_order)
    for i, row in enumerate(piece[:120].tolist()):
        if i % 7 == 0:
            events = state.allowed_events()
            tracks = state.allowed_tracks()
            for evt in range(BASE_EVENT_VOCAB_SIZE):
                note = PITCH_OFFSET <= evt < CHORD_OFFSET
                trk = int(np.flatnonzero(tracks)[0]) if note else PAD
                dur = DURATION_OFFSET + 4 if note else PAD
                accepted = _accepts(state, (evt, dur, trk))
                assert accepted == bool(events[evt]), (i, evt)
            if events[PITCH_OFFSET]:
                for trk in range(TRACK_OFFSET, TRACK_OFFSET + 40):
                    assert _accepts(state, (PITCH_OFFSET, DURATION_OFFSET + 4, trk)) == bool(tracks[trk])
        state.feed(row)


def _accepts(state: GrammarState, row: tuple[int, int, int]) -> bool:
    try:
        state.copy().feed(row)
    except GrammarError:
        return False
    return True


def bar(length: int) -> tuple[int, int, int]:
    return (BAR_OFFSET + length - 1, *META)


def pos(p: int) -> tuple[int, int, int]:
    return (POS_OFFSET + p, *META)


def note(pitch: int, track: int, dur32: int = 4) -> tuple[int, int, int]:
    return (PITCH_OFFSET + pitch, DURATION_OFFSET + dur32, TRACK_OFFSET + track)


NT = (NT_ID, *META)
CHORD = (CHORD_C, *META)
HEAD = [bar(32), CHORD]


@pytest.mark.parametrize(("prefix", "row", "message"), [
    ([], CHORD, "a piece starts with a bar"),
    ([bar(32)], NT, "a bar step is followed by its chord step"),
    ([*HEAD, NT], note(60, 0), "a track start .NT. is followed by a position"),
    ([*HEAD, NT, pos(0)], pos(4), "a position is followed by a note"),
    ([*HEAD, NT], pos(32), "position 32 is not inside the bar of length 32"),
    ([*HEAD, NT, pos(8), note(60, 0)], pos(8), "position 8 does not follow position 8"),
    ([*HEAD, NT, pos(0), note(60, 3), NT, pos(0)], note(62, 2), "above every track of the measure"),
    ([*HEAD, NT, pos(0), note(60, 3), pos(4)], note(62, 4), "the same for all notes of a segment"),
    ([*HEAD, NT, pos(0)], note(60, 0, dur32=0), "a note needs a duration id in 4-35"),
    ([*HEAD, NT, pos(0)], (PITCH_OFFSET + 60, DURATION_OFFSET + 4, PAD), "a real track"),
    ([*HEAD], (NT_ID, DURATION_OFFSET + 4, PAD), "a metadata step carries PAD"),
    ([*HEAD, (EOS, *META)], bar(32), "nothing may follow the end"),
    ([*HEAD], (PAD, *META), "special or out-of-vocabulary"),
    ([*HEAD, NT, pos(0)], (BASE_EVENT_VOCAB_SIZE, DURATION_OFFSET + 4, TRACK_OFFSET), "out-of-vocabulary"),
    ([*HEAD, NT, pos(0), note(60, 39)], NT, "no track id is left above"),
])
def test_violations_name_the_rule(prefix: list, row: tuple, message: str) -> None:
    state = GrammarState(tempo_tokens=True)
    state.feed_many(np.asarray(prefix, dtype=np.int64).reshape(-1, 3))
    before = vars(state).copy()
    with pytest.raises(GrammarError, match=message):
        state.feed(row)
    assert vars(state) == before  # a rejected row leaves the state as it was


def test_distinct_track_order_allows_any_new_track_but_no_repeat() -> None:
    state = GrammarState(track_order="distinct")
    state.feed_many(np.asarray([*HEAD, NT, pos(0), note(60, 7), NT, pos(0), note(62, 2), NT, pos(0)]))
    assert set(np.flatnonzero(state.allowed_tracks()) - TRACK_OFFSET) == set(range(40)) - {2, 7}
    with pytest.raises(GrammarError, match="not used by an earlier segment of the measure"):
        state.feed(note(64, 7))
    state.feed(note(64, 5))
    state.feed_many(np.asarray([bar(32), CHORD, NT, pos(0), note(60, 7)]))  # a new measure frees every track


def test_a_position_holds_at_most_one_note_per_pitch_and_duration() -> None:
    """So that a measure, and with --bars a whole generation, is finite whatever the model does."""
    state = GrammarState()
    state.feed_many(np.asarray([*HEAD, NT, pos(0)] + [note(p, 0, d) for p in range(128) for d in range(1, 33)]))
    assert not state.allowed_events()[PITCH_OFFSET : PITCH_OFFSET + 128].any()
    with pytest.raises(GrammarError, match="a position holds at most 4096 note steps"):
        state.feed(note(60, 0, dur32=8))
    state.feed(pos(1))
    state.feed(note(60, 0))


def test_position_tables_limit_positions_and_measures() -> None:
    state = GrammarState(max_rel_pos=5, max_mea_pos=6)
    state.feed_many(np.asarray([*HEAD, NT, pos(0), note(60, 0), pos(1), note(60, 0)]))
    assert state.allowed_events()[POS_OFFSET : POS_OFFSET + 32].sum() == 0  # a third POS needs rel 6, 7
    with pytest.raises(GrammarError, match=r"note-order table \(max_rel_pos 5\)"):
        state.feed(pos(2))
    state.feed(bar(32))
    state.feed(CHORD)
    assert not state.can_open_measure()
    with pytest.raises(GrammarError, match=r"measure table \(max_mea_pos 6\)"):
        state.feed(bar(32))
