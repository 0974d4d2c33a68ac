"""The training data builder (spec §4.3, §5): split, windows, positions, relabelling, batches."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from orchestrion.errors import DataError
from orchestrion.symbolic.dataset import TokenDataset
from orchestrion.symbolic.mmr_decode import positions
from orchestrion.symbolic.mmr_vocab import (
    BASE_EVENT_VOCAB_SIZE,
    EOS,
    N_SPECIAL,
    PAD,
    TEMPO_OFFSET,
    TRACK_OFFSET,
    TRACK_VOCAB_SIZE,
)
from orchestrion.symphony.data import (
    EOS_ROW,
    START_ROW,
    WindowDataset,
    collate_windows,
    dataset_tempo_tokens,
    eval_windows,
    measure_starts,
    position_table_sizes,
    relabel_tracks,
    split_pieces,
    window_rows,
)
from orchestrion.training import SampleKey


def _is_tempo(evt: np.ndarray) -> np.ndarray:
    return (evt >= TEMPO_OFFSET) & (evt < BASE_EVENT_VOCAB_SIZE)


def test_split_is_seeded_disjoint_and_complete():
    split = split_pieces(250, seed=1998, valid_fraction=0.01)
    assert split == split_pieces(250, seed=1998, valid_fraction=0.01)
    assert split != split_pieces(250, seed=1, valid_fraction=0.01)
    assert (len(split.train), len(split.valid), len(split.test)) == (246, 3, 1)
    assert sorted(split.train + split.valid + split.test) == list(range(250))
    assert json.loads(json.dumps(split.to_json())) == split.to_json()
    assert len(split_pieces(4, 0, 0.01).train) == 2
    assert split_pieces(2, 0, 0.0).train == (0, 1)
    with pytest.raises(DataError, match="at least 3 pieces"):
        split_pieces(2, 0, 0.01)


def test_tokenize_records_tempo_option_and_no_tempo_is_the_reference_grammar(demo_tokens_tempo,
                                                                             demo_tokens_no_tempo):
    with_tempo, without = TokenDataset(demo_tokens_tempo), TokenDataset(demo_tokens_no_tempo)
    assert with_tempo.manifest["tempo_tokens"] is True and without.manifest["tempo_tokens"] is False
    assert dataset_tempo_tokens(with_tempo) and not dataset_tempo_tokens(without)
    for i in range(len(with_tempo)):
        tempo_piece, plain = with_tempo.piece(i), without.piece(i)
        is_tempo = _is_tempo(tempo_piece[:, 0])
        assert is_tempo.any() and not _is_tempo(plain[:, 0]).any()
        np.testing.assert_array_equal(tempo_piece[~is_tempo], plain)


@pytest.mark.parametrize("fixture", ["demo_tokens", "demo_tokens_no_tempo"])
@pytest.mark.parametrize("window", [40, 4096])
def test_windows_start_at_a_bar_end_with_eos_and_carry_window_positions(request, fixture, window):
    dataset = TokenDataset(request.getfixturevalue(fixture))
    for i in range(len(dataset)):
        piece = dataset.piece(i).astype(np.int64)
        for start in measure_starts(piece):
            rows = window_rows(piece, int(start), window)
            assert len(rows) <= window
            body = rows[:-1] if len(piece) - start < window else rows
            if len(piece) - start < window:
                assert tuple(rows[-1]) == EOS_ROW and len(rows) == len(piece) - start + 1
            else:
                assert (rows[:, 0] != EOS).all()
            np.testing.assert_array_equal(body[:, :4], piece[start : start + len(body)])
            np.testing.assert_array_equal(body[:, 4:], positions(piece[start : start + len(body)]))
            assert tuple(body[0, 4:]) == (0, 1), "a window starts with the BOM of its measure 1"
            tempo = _is_tempo(body[:, 0])
            assert (body[tempo, 4] == 0).all() and (body[tempo, 5] % 3 == 0).all()


def test_relabelling_is_a_permutation_that_keeps_special_ids(demo_tokens):
    piece = TokenDataset(demo_tokens).piece(1).astype(np.int64)
    rows = window_rows(piece, 0, 10_000)
    perm = np.random.default_rng(5).permutation(40)
    out = relabel_tracks(rows, perm)
    special = rows[:, 2] < N_SPECIAL
    np.testing.assert_array_equal(out[special], rows[special])
    np.testing.assert_array_equal(np.delete(out, 2, axis=1), np.delete(rows, 2, axis=1))
    mapping = {}
    for old, new in zip(rows[~special, 2], out[~special, 2], strict=True):
        assert mapping.setdefault(old, new) == new
        assert TRACK_OFFSET <= new < TRACK_VOCAB_SIZE
    assert len(set(mapping.values())) == len(mapping) >= 4


def test_window_dataset_is_a_function_of_the_sample_key(demo_tokens):
    dataset = TokenDataset(demo_tokens)
    windows = WindowDataset(dataset, (0, 2, 3), window=64, stride=1024)
    assert len(windows) == sum(len(dataset.piece(i)) // 1024 + 1 for i in (0, 2, 3))
    a, b = windows[SampleKey(1, 11)], windows[SampleKey(1, 11)]
    np.testing.assert_array_equal(a, b)
    others = [windows[SampleKey(1, seed)] for seed in range(8)]
    assert any(not np.array_equal(a, o) for o in others)
    assert all(o[0, 4:].tolist() == [0, 1] for o in others)
    # what a data-loader worker receives: no corpus copy, the same windows
    clone = pickle.loads(pickle.dumps(windows))
    assert clone._dataset is None and len(pickle.dumps(windows)) < 10_000
    np.testing.assert_array_equal(clone[SampleKey(1, 11)], a)


def test_position_tables_cover_every_window_of_the_training_pieces(demo_tokens):
    dataset = TokenDataset(demo_tokens)
    pieces = [dataset.piece(i).astype(np.int64) for i in range(len(dataset))]
    max_rel, max_mea = position_table_sizes(pieces, 50)
    seen = np.concatenate([window_rows(p, int(s), 50)[:, 4:] for p in pieces for s in measure_starts(p)])
    assert max_rel == seen[:, 0].max() + 5
    # reference rule 3 · (most measures a window touches) + 5: the last measure may be cut after its BOM/chord
    assert 0 <= (max_mea - 5) - seen[:, 1].max() < 3 and (max_mea - 5) % 3 == 0


@pytest.mark.parametrize("window", [100, 200, 4096])
def test_eval_windows_score_every_row_once(demo_tokens, window):
    dataset = TokenDataset(demo_tokens)
    assert max(np.diff(measure_starts(dataset.piece(i))).max() for i in (0, 1, 4)) < 100 < len(dataset.piece(0))
    windows = eval_windows(dataset, (0, 1, 4), window=window, seed=3)
    for i in (0, 1, 4):
        mine = [w for w in windows if w.piece == i]
        scored = np.concatenate([w.rows[max(w.score_from, 0) :, 0] for w in mine])
        np.testing.assert_array_equal(scored, np.append(dataset.piece(i)[:, 0], EOS))
        assert all(w.rows[0, 4:].tolist() == [0, 1] for w in mine)
    assert eval_windows(dataset, (0, 1, 4), window=window, seed=3)[0].rows.tolist() == windows[0].rows.tolist()


def test_collate_shifts_with_a_start_row_and_pads_targets():
    short = np.arange(3 * 6).reshape(3, 6) + 10
    long = np.arange(5 * 6).reshape(5, 6) + 100
    batch = collate_windows([short, long])
    source, target = batch["source"].numpy(), batch["target"].numpy()
    assert source.shape == (2, 5, 6) and target.shape == (2, 5, 4)
    assert tuple(source[0, 0]) == START_ROW and tuple(source[1, 0]) == START_ROW
    np.testing.assert_array_equal(source[0, 1:3], short[:2])
    np.testing.assert_array_equal(target[0, :3], short[:, :4])
    assert (target[0, 3:] == PAD).all() and (source[0, 3:, :4] == PAD).all() and (source[0, 3:, 4:] == 0).all()
    np.testing.assert_array_equal(source[1, 1:], long[:-1])


def test_bad_dataset_folders_give_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        TokenDataset(tmp_path / "missing")
    (tmp_path / "midi").mkdir()
    (tmp_path / "midi" / "a.mid").write_bytes(b"MThd")
    with pytest.raises(DataError, match="not a token dataset"):
        TokenDataset(tmp_path / "midi")
