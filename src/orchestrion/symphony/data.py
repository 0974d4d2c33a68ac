"""Training data of SymphonyNet (spec §4.3, §5): split, windows, positions, track relabelling, batches.

The on-disk token datasets (``orchestrion symphony tokenize``) hold ``(steps, 4)`` rows
``[event, duration, track, instrument]`` per piece. This module turns them into model rows
``[evt, dur, trk, ins, rel, mea]``:

* **Split** (:func:`split_pieces`): pieces shuffled with a seed (reference 1998); one piece for test,
  ``ceil(valid_fraction · n)`` (at least one) for validation, the rest for training. The run records it.
* **Windows**: a window starts at a measure (a BOM step) and holds up to ``window`` rows; when the
  piece ends inside it, one EOS row (EOS in all four fields) closes it.
* **Positions** (:func:`window_rows`): (rel, mea) of a window come from
  :func:`orchestrion.symbolic.mmr_decode.positions` applied to the window alone, so measures are
  numbered from the window's first one. A tempo step (after the chord) gets rel 0 and the measure's
  3j, like NT/POS/notes; with ``tempo_tokens=False`` there are none and the grammar is the reference's.
* **Table sizes** (:func:`position_table_sizes`): MAX_REL_POS = largest rel + 5 and
  MAX_MEA_POS = 3 · (most measures one window can touch) + 5, measured on the training split.
* **Track relabelling** (:func:`relabel_tracks`): a random permutation of the 40 track ids per
  window; the special ids 0-3 (BOS, PAD, EOS, UNK) keep their meaning.
* **Sampling**: the reference draws ``ceil((S + U{0..1023}) / 1024)`` windows per piece per epoch (mean
  S/1024 + 1) at uniformly random start measures. Here every piece owns ``S // stride + 1`` fixed
  slots of the epoch (the same mean, within one window), so the dataset has a fixed length that the
  shared trainer's :class:`~orchestrion.training.SampleKey` stream addresses; the start measure and
  the relabelling come from the key's seed. Resume and any DDP world size therefore see the same windows.
* **Batches** (:func:`collate_windows`): teacher forcing, ``source = [start row] + rows[:-1]`` with
  the start row ``[EOS, EOS, EOS, EOS, 0, 0]``, ``target = rows[:, :4]``; windows are right-padded to
  the longest of the batch with PAD, and PAD targets are ignored by the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from orchestrion.errors import DataError
from orchestrion.symbolic.dataset import TokenDataset
from orchestrion.symbolic.mmr_decode import positions
from orchestrion.symbolic.mmr_vocab import (
    BAR_OFFSET,
    BASE_EVENT_VOCAB_SIZE,
    EOS,
    MAX_TRACKS,
    PAD,
    POS_OFFSET,
    TEMPO_OFFSET,
    TRACK_OFFSET,
)
from orchestrion.training import SampleKey

START_ROW = (EOS, EOS, EOS, EOS, 0, 0)
EOS_ROW = (EOS, EOS, EOS, EOS, 0, 0)  # only ever a target: its positions are never embedded
POSITION_MARGIN = 5  # the reference's headroom on both table sizes


# ------------------------------------------------------------------------------------------ split


@dataclass(frozen=True)
class Split:
    """Piece indices of the token dataset in each part (sorted)."""

    train: tuple[int, ...]
    valid: tuple[int, ...]
    test: tuple[int, ...]

    def to_json(self) -> dict:
        return {"train": list(self.train), "valid": list(self.valid), "test": list(self.test)}


def split_pieces(n_pieces: int, seed: int, valid_fraction: float) -> Split:
    """Seeded train/valid/test split of ``n_pieces`` pieces (§5).

    ``valid_fraction > 0``: one test piece, ``max(1, ceil(valid_fraction · n))`` validation pieces,
    the rest training; needs at least 3 pieces. ``valid_fraction == 0``: every piece trains
    (no held-out data, e.g. to overfit a handful of pieces).
    """
    if n_pieces < 1:
        raise DataError("the token dataset holds no piece")
    order = np.random.default_rng(seed).permutation(n_pieces)
    if valid_fraction == 0:
        return Split(tuple(sorted(order.tolist())), (), ())
    if n_pieces < 3:
        raise DataError(
            f"a train/valid/test split needs at least 3 pieces, the dataset has {n_pieces}; "
            "tokenize more MIDI files or train without held-out pieces (valid fraction 0)"
        )
    n_valid = min(max(1, math.ceil(valid_fraction * n_pieces)), n_pieces - 2)
    test, valid, train = order[:1], order[1 : 1 + n_valid], order[1 + n_valid :]
    return Split(*(tuple(sorted(part.tolist())) for part in (train, valid, test)))


# ----------------------------------------------------------------------------------- window rows


def measure_starts(tokens: np.ndarray) -> np.ndarray:
    """Row indices of the BOM steps of a piece ``(steps, 4)``, (n_measures,) int64."""
    evt = np.asarray(tokens)[:, 0]
    return np.flatnonzero((evt >= BAR_OFFSET) & (evt < POS_OFFSET))


def window_rows(piece: np.ndarray, start: int, window: int) -> np.ndarray:
    """Model rows ``(n, 6)`` int64 of the window of ``piece`` starting at row ``start`` (a BOM).

    Up to ``window`` rows; if the piece ends within them an EOS row is appended (n ≤ window).
    (rel, mea) are computed on the window alone (:func:`positions`), measures numbered from 1.
    """
    tokens = np.asarray(piece[start : start + window], dtype=np.int64)
    ends = start + window >= len(piece) + 1  # room left for the EOS row
    rows = np.concatenate([tokens, positions(tokens).astype(np.int64)], axis=1)
    if ends:
        rows = np.concatenate([rows, np.asarray([EOS_ROW], dtype=np.int64)])
    return rows


def relabel_tracks(rows: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Rename track ids ``TRACK_OFFSET + t`` → ``TRACK_OFFSET + permutation[t]``; special ids stay.

    ``rows``: (n, ≥3) with the track id in column 2; returns a copy.
    """
    out = np.array(rows, copy=True)
    trk = out[:, 2]
    is_track = trk >= TRACK_OFFSET
    out[is_track, 2] = TRACK_OFFSET + np.asarray(permutation)[trk[is_track] - TRACK_OFFSET]
    return out


def random_track_permutation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of the 40 track ids (0-based)."""
    return rng.permutation(MAX_TRACKS)


# ------------------------------------------------------------------------------ position tables


def position_table_sizes(pieces: list[np.ndarray], window: int) -> tuple[int, int]:
    """(MAX_REL_POS, MAX_MEA_POS) for windows of ``window`` rows over ``pieces`` (§4.3).

    rel restarts at every BOM, so its maximum over windows is its maximum over whole pieces;
    mea of a window with m measures reaches 3m, and m is largest for the window start that
    packs the most BOMs into ``window`` rows.
    """
    max_rel, max_measures = 0, 1
    for piece in pieces:
        if len(piece) == 0:
            continue
        max_rel = max(max_rel, int(positions(piece)[:, 0].max()))
        starts = measure_starts(piece)
        if len(starts):
            touched = np.searchsorted(starts, starts + window, side="left") - np.arange(len(starts))
            max_measures = max(max_measures, int(touched.max()))
    return max_rel + POSITION_MARGIN, 3 * max_measures + POSITION_MARGIN


# ---------------------------------------------------------------------------------- the corpora


def dataset_tempo_tokens(dataset: TokenDataset) -> bool:
    """Whether the dataset's grammar has tempo steps (manifest ``tempo_tokens``; older datasets: scanned)."""
    recorded = dataset.manifest.get("tempo_tokens")
    if recorded is not None:
        return bool(recorded)
    for tokens, _ in dataset.shards():
        evt = np.asarray(tokens[:, 0])
        if ((evt >= TEMPO_OFFSET) & (evt < BASE_EVENT_VOCAB_SIZE)).any():
            return True
    return False


def _checked_pieces(dataset: TokenDataset, indices: tuple[int, ...]) -> dict[int, np.ndarray]:
    pieces = {}
    for i in indices:
        piece = dataset.piece(i)
        if len(measure_starts(piece)) == 0 or measure_starts(piece)[0] != 0:
            raise DataError(f"{dataset.data_dir}: piece {i} does not start with a bar step; tokenize it again")
        pieces[i] = piece
    return pieces


class WindowDataset(Dataset):
    """Training windows of the pieces ``indices``, addressed by :class:`SampleKey`.

    Item ``k`` belongs to piece ``piece_of[k]``; the key's seed picks the start measure uniformly
    and the track relabelling. Returns ``(n, 6)`` int64 rows (:func:`window_rows`). Only the measure
    starts live in memory: the tokens stay memory-mapped, and a data-loader worker reopens the
    dataset folder instead of receiving a pickled copy of the corpus.
    """

    def __init__(self, dataset: TokenDataset, indices: tuple[int, ...], *, window: int, stride: int,
                 relabel: bool = True):
        if not indices:
            raise DataError(f"{dataset.data_dir}: no training piece")
        self.window, self.relabel = window, relabel
        self.data_dir = dataset.data_dir
        self._dataset: TokenDataset | None = dataset
        pieces = _checked_pieces(dataset, indices)
        self.starts = {i: measure_starts(p) for i, p in pieces.items()}
        self.piece_of = np.concatenate([np.full(len(p) // stride + 1, i) for i, p in pieces.items()])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dataset": None}

    def __len__(self) -> int:
        return len(self.piece_of)

    def __getitem__(self, key: SampleKey) -> np.ndarray:
        if self._dataset is None:
            self._dataset = TokenDataset(self.data_dir)
        index = int(self.piece_of[key.index])
        rng = np.random.default_rng(key.seed)
        starts = self.starts[index]
        rows = window_rows(self._dataset.piece(index), int(starts[rng.integers(len(starts))]), self.window)
        return relabel_tracks(rows, random_track_permutation(rng)) if self.relabel else rows


@dataclass(frozen=True)
class EvalWindow:
    """A validation window: its rows, the piece it comes from, and from which row on it is scored.

    Consecutive windows of a piece overlap by the part of a measure the previous one already
    scored, so every row of the piece is scored exactly once, each with the context of its window.
    """

    rows: np.ndarray  # (n, 6) int64, tracks relabelled
    tracks: np.ndarray  # (n,) int64 original track ids (for per-track instrument accuracy)
    piece: int
    score_from: int


def eval_windows(dataset: TokenDataset, indices: tuple[int, ...], *, window: int, seed: int) -> list[EvalWindow]:
    """Deterministic windows covering every row of the pieces ``indices`` once (see :class:`EvalWindow`)."""
    out = []
    for index, piece in _checked_pieces(dataset, indices).items():
        starts = measure_starts(piece)
        rng = np.random.default_rng([seed, index])
        start, scored_until = 0, 0
        while True:
            rows = window_rows(piece, start, window)
            tracks = rows[:, 2].copy()
            out.append(EvalWindow(relabel_tracks(rows, random_track_permutation(rng)), tracks, index,
                                  scored_until - start))
            if start + window > len(piece):  # this window holds the end of the piece (and its EOS row)
                break
            # the next window starts at the last measure beginning inside this one (or the next measure)
            end = start + window
            later = starts[starts > start]
            if len(later) == 0:
                break
            inside = later[later <= end]
            scored_until = end
            start = int(inside[-1]) if len(inside) else int(later[0])
    return out


# ---------------------------------------------------------------------------------------- batches


def collate_windows(windows: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """Teacher-forcing batch of windows ``(n_i, 6)``.

    Returns ``source`` (B, T, 6) long (start row then rows[:-1]; padding rows all PAD with
    positions 0) and ``target`` (B, T, 4) long (PAD after each window's end), T = longest window.
    """
    length = max(len(w) for w in windows)
    source = torch.full((len(windows), length, 6), PAD, dtype=torch.long)
    source[..., 4:] = 0
    target = torch.full((len(windows), length, 4), PAD, dtype=torch.long)
    for b, rows in enumerate(windows):
        rows_t = torch.as_tensor(rows, dtype=torch.long)
        n = len(rows_t)
        source[b, 0] = torch.tensor(START_ROW)
        source[b, 1:n] = rows_t[:-1]
        target[b, :n] = rows_t[:, :4]
    return {"source": source, "target": target}

