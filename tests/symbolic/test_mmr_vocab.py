"""Fixed MMR id layout, reference string view (§2.4) and tempo bins."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrion.errors import ConfigError
from orchestrion.symbolic import mmr_vocab as V


def test_layout_sizes_match_reference_field_vocabularies() -> None:
    # §2.6: duration 36, track 44, instrument 133; event = specials + pitches + 133 chords + bars + positions + NT.
    assert (V.DURATION_VOCAB_SIZE, V.TRACK_VOCAB_SIZE, V.INSTRUMENT_VOCAB_SIZE) == (36, 44, 133)
    assert V.PITCH_OFFSET == 4 and V.CHORD_OFFSET == 132 and V.N_CHORDS == 133
    assert V.BAR_OFFSET == 265 and V.POS_OFFSET == 365 and V.NT_ID == 465
    assert V.BASE_EVENT_VOCAB_SIZE == 465 + 1 + V.N_TEMPO_BINS == 527


def test_event_names_are_a_bijection_over_the_base_vocabulary() -> None:
    names = [V.event_name(e) for e in range(V.BASE_EVENT_VOCAB_SIZE)]
    assert len(set(names)) == V.BASE_EVENT_VOCAB_SIZE
    assert names[V.PITCH_OFFSET + 60] == "C4" and names[V.PITCH_OFFSET + 21] == "A0"
    assert names[V.PITCH_OFFSET + 0] == "CO" and names[V.PITCH_OFFSET + 127] == "G9"
    assert names[V.BAR_OFFSET + 32 - 1] == "mw"
    assert names[V.BAR_OFFSET + 62 - 1] == "M0" and names[V.BAR_OFFSET + 100 - 1] == "MC"
    assert names[V.POS_OFFSET + 16] == "pg" and names[V.POS_OFFSET + 99] == "PB"
    assert names[V.CHORD_NA] == "HNA" and names[V.NT_ID] == "NT"
    chords = [n for n in names if n.startswith("H")]
    assert len(chords) == 133 and {"HCM", "HgD7", "Hb/o7", "HBsus4"} <= set(chords)


def test_pitch_names_round_trip_all_128() -> None:
    assert [V.pitch_from_name(V.pitch_name(p)) for p in range(128)] == list(range(128))


def test_base62_digits_round_trip() -> None:
    assert [V.digit_to_int(V.int_to_digit(x)) for x in range(62)] == list(range(62))
    assert (V.int_to_digit(10), V.int_to_digit(35), V.int_to_digit(36), V.int_to_digit(61)) == ("a", "z", "A", "Z")
    with pytest.raises(ValueError):
        V.int_to_digit(62)


def test_to_strings_instrument_duration_track_fields() -> None:
    rows = np.array([[V.PITCH_OFFSET + 76, 3 + 8, 4 + 0, 4 + p] for p in (0, 40, 71, 128)] +
                    [[V.PITCH_OFFSET + 60, 3 + 32, 4 + 39, 4 + 61]])
    strings = V.to_strings(rows)
    assert [s[3] for s in strings] == ["x0", "xE", "X9", "y4", "xZ"]
    assert strings[0][:3] == ("E5", "r8", "t0") and strings[-1][1:3] == ("rw", "tD")
    np.testing.assert_array_equal(V.from_strings(strings), rows)


def test_strings_round_trip_every_event_and_note_field() -> None:
    meta = np.array([[e, V.PAD, V.PAD, V.PAD] for e in range(V.N_SPECIAL, V.BASE_EVENT_VOCAB_SIZE)])
    notes = np.array([[V.PITCH_OFFSET + p, 3 + d, 4 + t, 4 + i]
                      for p, d, t, i in zip(range(128), np.arange(128) % 32 + 1, np.arange(128) % 40,
                                            np.arange(128) + 1, strict=True)])
    tokens = np.concatenate([meta, notes]).astype(np.int32)
    np.testing.assert_array_equal(V.from_strings(V.to_strings(tokens)), tokens)


def test_extra_names_extend_the_string_view() -> None:
    bpe = V.BASE_EVENT_VOCAB_SIZE
    tokens = np.array([[bpe, 3 + 4, 4, 44]])
    assert V.to_strings(tokens, {bpe: "C3G3"})[0][0] == "C3G3"
    np.testing.assert_array_equal(V.from_strings(V.to_strings(tokens, {bpe: "C3G3"}), {"C3G3": bpe}), tokens)
    with pytest.raises(ValueError, match="no name"):
        V.to_strings(tokens)
    with pytest.raises(ValueError, match="unknown MMR event"):
        V.from_strings([("C3G3", "r4", "t0", "xE")])


def test_is_single_pitch_on_arrays() -> None:
    evt = np.array([0, 3, 4, 131, 132, V.NT_ID, V.BASE_EVENT_VOCAB_SIZE])
    assert V.is_single_pitch(evt).tolist() == [False, False, True, True, False, False, False]


def test_tempo_bins() -> None:
    assert V.tempo_to_bin([30.0, 60.0, 120.0, 240.0]).tolist() == [0, 18, 36, 54]
    np.testing.assert_allclose(V.bin_to_tempo([0, 18, 36, 54]), [30.0, 60.0, 120.0, 240.0])
    bpm = np.geomspace(30.0, 300.0, 1000)
    centre = V.bin_to_tempo(V.tempo_to_bin(bpm))
    assert np.max(np.abs(centre / bpm - 1)) < 0.02
    assert np.all(np.diff(V.tempo_to_bin(bpm)) >= 0)
    assert V.tempo_to_bin([5.0, 1000.0]).tolist() == [0, V.N_TEMPO_BINS - 1]
    # Bin centres map back to themselves (needed for encode(decode(t)) == t).
    b = np.arange(V.N_TEMPO_BINS)
    assert np.array_equal(V.tempo_to_bin(V.bin_to_tempo(b)), b)


def test_vocab_json_round_trip_and_mismatch() -> None:
    vocab = V.MMRVocab()
    assert V.MMRVocab.from_json(vocab.to_json()) == vocab
    data = json.loads(vocab.to_json())
    data["n_tempo_bins"] = 32
    with pytest.raises(ConfigError, match="re-encode"):
        V.MMRVocab.from_json(json.dumps(data))
    with pytest.raises(ConfigError, match="invalid"):
        V.MMRVocab.from_json("{not json")
