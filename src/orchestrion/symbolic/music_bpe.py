"""Music BPE (SymphonyNet §3): merge simultaneous same-duration notes of a track into chord tokens.

A *note group* is the set of pitches of the note steps that share one POS, one track and one
duration (any metadata step ends a POS segment). Groups with ≥ 2 pitches are BPE *words*.
Learning counts every unordered token pair of every word (weighted by the word's corpus
frequency) and repeatedly merges the most frequent pair (ties → smallest ``(a, b)``), exactly as
the reference learner does, but with incremental pair counts and a lazy-deletion heap instead of
a full rescan per merge. Applying scans the merge list forward per word (§3.3) with a per-word
cache; grouping, word identification and output assembly are vectorised with numpy.

Ids live in the MMR event-id space: pitch ``p`` is ``pitch_offset + p`` and merge ``k`` creates
token ``base_event_vocab_size + k``. Words are identified internally by a 128-bit pitch bitmask
stored as two ``uint64`` columns (``lo`` = pitches 0-63, ``hi`` = pitches 64-127).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, combinations
from pathlib import Path

import numpy as np

from orchestrion.errors import DataError
from orchestrion.fileio import atomic_write_text, read_json
from orchestrion.symbolic import mmr_vocab
from orchestrion.symbolic.bpe_learner import learn_merges_and_words

BPE_FORMAT = "orchestrion-music-bpe"
BPE_FORMAT_VERSION = 1
N_PITCHES = mmr_vocab.N_PITCHES

# A word: ascending distinct pitches (0-127). A word table maps words to corpus frequencies.
Word = tuple[int, ...]


@dataclass(frozen=True)
class Merge:
    """One learned merge: tokens ``a < b`` (event ids) become one token whose pitches are ``pitches``.

    ``count`` is the weighted pair count at the time the merge was chosen.
    """

    a: int
    b: int
    pitches: tuple[int, ...]
    count: int


# --------------------------------------------------------------------------------------------
# Vectorised note grouping
# --------------------------------------------------------------------------------------------


# Bit of pitch p in the low (p < 64) and high (p >= 64) mask word.
_LO_BIT = np.array([1 << p if p < 64 else 0 for p in range(N_PITCHES)], np.uint64)
_HI_BIT = np.array([1 << (p - 64) if p >= 64 else 0 for p in range(N_PITCHES)], np.uint64)


@dataclass(frozen=True)
class _Groups:
    """Note groups of one pre-BPE token array, in order of first appearance.

    All arrays have length G (number of groups, singletons included).
    """

    first: np.ndarray  # int64: index of the group's first note step in the input
    size: np.ndarray  # int64: number of note steps in the group
    masks: np.ndarray  # (G, 2) uint64: [lo, hi] pitch bitmask
    rows: np.ndarray  # (G, 4): the first step's row (dur / trk / ins are shared by the group)


def _note_groups(
    tokens: np.ndarray, pitch_offset: int, piece_starts: np.ndarray | None = None
) -> tuple[np.ndarray, _Groups]:
    """Split the single-pitch note steps of ``tokens (steps, 4)`` into (segment, duration) groups.

    ``piece_starts`` (row indices) mark where concatenated pieces begin; no group spans them.
    Returns the boolean note mask (steps,) and the groups sorted by first appearance.
    """
    evt = tokens[:, 0]
    is_note = (evt >= pitch_offset) & (evt < pitch_offset + N_PITCHES)
    idx = np.flatnonzero(is_note)
    if idx.size == 0:
        empty = np.zeros(0, np.int64)
        return is_note, _Groups(empty, empty, np.zeros((0, 2), np.uint64), tokens[:0])
    # Every metadata step (POS, NT, BOM, chord, ...) and every piece start begins a new segment.
    boundary = ~is_note
    if piece_starts is not None:
        boundary[piece_starts[piece_starts < len(boundary)]] = True
    segment = np.cumsum(boundary)[idx]
    dur = tokens[idx, 1].astype(np.int64)
    pitch = (evt[idx] - pitch_offset).astype(np.int64)
    # One int64 sort key (segment, duration, pitch); segments ascend in input order, so the stable
    # sort mostly merges short runs. Durations are field ids < 2^16.
    key = (((segment << 16) | dur) << 7) | pitch
    order = np.argsort(key, kind="stable")
    key_s, idx_s = key[order], idx[order]
    group_s, pitch_s = key_s >> 7, key_s & 127
    new_group = np.ones(idx.size, bool)
    new_group[1:] = group_s[1:] != group_s[:-1]
    starts = np.flatnonzero(new_group)
    # The reference collects a group's pitches in a set, so a repeated (pitch, duration) inside a
    # POS would silently vanish; MMR never produces one, and we refuse rather than lose notes.
    same_pitch = ~new_group[1:] & (pitch_s[1:] == pitch_s[:-1])
    if same_pitch.any():
        raise DataError("token array holds the same pitch twice with one duration at one position")
    masks = np.stack([np.bitwise_or.reduceat(_LO_BIT[pitch_s], starts),
                      np.bitwise_or.reduceat(_HI_BIT[pitch_s], starts)], axis=1)
    first = np.minimum.reduceat(idx_s, starts)
    size = np.diff(np.append(starts, idx.size))
    appearance = np.argsort(first, kind="stable")  # nearly sorted already: timsort is linear-ish
    first = first[appearance]
    return is_note, _Groups(first, size[appearance], masks[appearance], tokens[first])


def _masks_to_words(masks: np.ndarray) -> list[Word]:
    """Convert ``(W, 2) uint64`` pitch bitmasks to ascending pitch tuples."""
    if len(masks) == 0:
        return []
    as_bytes = np.ascontiguousarray(masks.astype("<u8")).view(np.uint8).reshape(len(masks), 16)
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little")  # column j = pitch j
    rows, pitches = np.nonzero(bits)
    bounds = np.searchsorted(rows, np.arange(len(masks) + 1))
    pitch_list = pitches.tolist()
    return [tuple(pitch_list[bounds[i] : bounds[i + 1]]) for i in range(len(masks))]


def _word_to_key(word: Iterable[int]) -> int:
    key = 0
    for pitch in word:
        key |= 1 << pitch
    return key


def _mask_inverse(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``(N, 2) uint64`` masks and, per row, the index of its distinct row.

    Two stable integer argsorts (low word, then high word) order the rows; this is several times
    faster than ``np.unique(axis=0)``, which compares 16-byte rows generically.
    """
    order = np.argsort(masks[:, 0], kind="stable")
    order = order[np.argsort(masks[order, 1], kind="stable")]
    ordered = masks[order]
    new = np.ones(len(ordered), bool)
    new[1:] = (ordered[1:, 0] != ordered[:-1, 0]) | (ordered[1:, 1] != ordered[:-1, 1])
    inverse = np.empty(len(ordered), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _unique_masks(masks: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``(N, 2) uint64`` masks with summed weights (counts when weights is None)."""
    if len(masks) == 0:
        return masks.reshape(0, 2), np.zeros(0, np.int64)
    unique, inverse = _mask_inverse(masks)
    totals = np.bincount(inverse, weights=weights, minlength=len(unique)).astype(np.int64)
    return unique, totals


@dataclass(frozen=True)
class WordTable:
    """Distinct BPE words of a corpus as arrays: ``masks (W, 2) uint64`` and ``counts (W,) int64``.

    Tables from different shards combine with :meth:`merge`; :meth:`to_dict` gives the
    ``{pitch tuple: count}`` form that :meth:`MusicBPE.learn` takes.
    """

    masks: np.ndarray
    counts: np.ndarray

    @staticmethod
    def merge(tables: Sequence[WordTable]) -> WordTable:
        if not tables:
            return WordTable(np.zeros((0, 2), np.uint64), np.zeros(0, np.int64))
        masks = np.concatenate([t.masks for t in tables])
        counts = np.concatenate([t.counts for t in tables]).astype(np.float64)
        return WordTable(*_unique_masks(masks, counts))

    def to_dict(self) -> dict[Word, int]:
        return dict(zip(_masks_to_words(self.masks), self.counts.tolist(), strict=True))

    @property
    def total(self) -> int:
        """Number of word occurrences (groups with ≥ 2 pitches) counted."""
        return int(self.counts.sum())


def count_word_table(token_arrays: Iterable[np.ndarray], pitch_offset: int) -> WordTable:
    """Count BPE words (groups with ≥ 2 pitches) over pre-BPE token arrays ``(steps, 4)``."""
    parts = []
    for tokens in token_arrays:
        _, groups = _note_groups(np.asarray(tokens), pitch_offset)
        parts.append(groups.masks[groups.size >= 2])
    if not parts:
        return WordTable.merge([])
    return WordTable(*_unique_masks(np.concatenate(parts)))


# --------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------


def _mmr_layout() -> tuple[int, int, int]:
    """(pitch offset, first free event id, vocab version) of the fixed MMR vocabulary."""
    return mmr_vocab.PITCH_OFFSET, mmr_vocab.BASE_EVENT_VOCAB_SIZE, mmr_vocab.MMR_VOCAB_VERSION


class MusicBPE:
    """Learned Music BPE merges over the MMR event vocabulary.

    Token arrays are ``(steps, 4)`` integer arrays with columns [event, duration, track,
    instrument] as produced by :func:`orchestrion.symbolic.mmr.encode`. Merge ``k`` creates event
    id ``base_event_vocab_size + k``.

    Example::

        bpe = MusicBPE().learn(MusicBPE.count_words(pieces), n_merges=700)
        short = bpe.apply(piece)            # fewer note steps
        assert (bpe.decode(short) == piece).all()
    """

    def __init__(
        self,
        merges: Sequence[Merge] = (),
        *,
        pitch_offset: int | None = None,
        base_event_vocab_size: int | None = None,
        mmr_vocab_version: int | None = None,
    ) -> None:
        if pitch_offset is None or base_event_vocab_size is None or mmr_vocab_version is None:
            default_offset, default_base, default_version = _mmr_layout()
            pitch_offset = default_offset if pitch_offset is None else pitch_offset
            base_event_vocab_size = default_base if base_event_vocab_size is None else base_event_vocab_size
            mmr_vocab_version = default_version if mmr_vocab_version is None else mmr_vocab_version
        self.pitch_offset = int(pitch_offset)
        self.base_event_vocab_size = int(base_event_vocab_size)
        self.mmr_vocab_version = int(mmr_vocab_version)
        self.merges: list[Merge] = list(merges)
        self._index()

    def _index(self) -> None:
        """Build the lookup tables that apply/decode need (pair → merge index, id → pitches)."""
        self._pair_index: dict[tuple[int, int], int] = {}
        self._pitches: dict[int, tuple[int, ...]] = {self.pitch_offset + p: (p,) for p in range(N_PITCHES)}
        for k, merge in enumerate(self.merges):
            for part in (merge.a, merge.b):
                if part not in self._pitches:
                    raise DataError(f"merge {k} uses token {part}, which no earlier merge created")
            if not merge.a < merge.b:
                raise DataError(f"merge {k} is not ordered: {merge.a} >= {merge.b}")
            pitches = tuple(sorted(self._pitches[merge.a] + self._pitches[merge.b]))
            if pitches != merge.pitches or len(set(pitches)) != len(pitches):
                raise DataError(f"merge {k} pitches {merge.pitches} do not match its parts {pitches}")
            self._pair_index[(merge.a, merge.b)] = k
            self._pitches[self.base_event_vocab_size + k] = pitches
        # Flat id → pitches table for vectorised decoding of merged tokens.
        lengths = np.array([len(m.pitches) for m in self.merges], np.int64)
        self._merged_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._merged_lengths = lengths
        self._merged_flat = np.array([p for m in self.merges for p in m.pitches], np.int64)
        self._cache: dict[int, tuple[int, ...]] = {}

    # ---- vocabulary -------------------------------------------------------------------------

    @property
    def n_merges(self) -> int:
        return len(self.merges)

    @property
    def vocab_size(self) -> int:
        """Event vocabulary size including the merged tokens."""
        return self.base_event_vocab_size + len(self.merges)

    def token_pitches(self, token_id: int) -> tuple[int, ...]:
        """MIDI pitches (ascending) carried by a single-pitch or merged event id."""
        try:
            return self._pitches[int(token_id)]
        except KeyError:
            raise DataError(f"event id {token_id} is not a note or Music BPE token") from None

    def pitch_counts(self) -> np.ndarray:
        """Pitches carried by each event id, ``(vocab_size,)`` int64 (0 for metadata ids)."""
        counts = np.zeros(self.vocab_size, np.int64)
        counts[self.pitch_offset : self.pitch_offset + N_PITCHES] = 1
        counts[self.base_event_vocab_size :] = self._merged_lengths
        return counts

    def event_names(self) -> dict[int, str]:
        """Reference-style names of the merged tokens: pitch names concatenated, e.g. ``C4E4G4``."""
        return {self.base_event_vocab_size + k: "".join(mmr_vocab.pitch_name(p) for p in m.pitches)
                for k, m in enumerate(self.merges)}

    def is_note(self, events: np.ndarray) -> np.ndarray:
        """Boolean mask of note steps (single pitch or merged token) for an event-id array."""
        events = np.asarray(events)
        single = (events >= self.pitch_offset) & (events < self.pitch_offset + N_PITCHES)
        return single | ((events >= self.base_event_vocab_size) & (events < self.vocab_size))

    # ---- learning ---------------------------------------------------------------------------

    @staticmethod
    def count_words(token_arrays: Iterable[np.ndarray], *, pitch_offset: int | None = None) -> dict[Word, int]:
        """Count BPE words over pre-BPE token arrays ``(steps, 4)``: ``{pitch tuple: frequency}``."""
        offset = _mmr_layout()[0] if pitch_offset is None else pitch_offset
        return count_word_table(token_arrays, offset).to_dict()

    def learn(self, word_counts: Mapping[Word, int] | WordTable, n_merges: int) -> MusicBPE:
        """Learn ``n_merges`` merges on a word table (pitch tuples 0-127 → counts); returns self.

        Any existing merges are replaced. Fewer merges are learned when the words run out of pairs.
        """
        if n_merges < 0:
            raise DataError(f"number of merges must be >= 0, got {n_merges}")
        if isinstance(word_counts, WordTable):
            word_counts = word_counts.to_dict()
        offset = self.pitch_offset
        words = {tuple(p + offset for p in word): count for word, count in word_counts.items()}
        raw, final = learn_merges_and_words(words, n_merges, first_new_id=self.base_event_vocab_size)
        pitches: dict[int, tuple[int, ...]] = {offset + p: (p,) for p in range(N_PITCHES)}
        merges = []
        for k, (a, b, count) in enumerate(raw):
            merged = tuple(sorted(pitches[a] + pitches[b]))
            pitches[self.base_event_vocab_size + k] = merged
            merges.append(Merge(a, b, merged, count))
        self.merges = merges
        self._index()
        for word, tokens in final.items():
            self._cache[_word_to_key(p - offset for p in word)] = tuple(sorted(tokens))
        return self

    def merge_shortfall(self, requested: int) -> str | None:
        """Why fewer than ``requested`` merges were learned (one sentence), or None if all were.

        Learning stops only when no word holds two tokens any more: every distinct note group of
        the corpus has become a single token, so more merges would need more (varied) music.
        """
        if self.n_merges >= requested:
            return None
        return (f"learned {self.n_merges:,} of the {requested:,} merges asked for: after {self.n_merges:,} merges "
                "every note group (chord) in the corpus is a single token, so no pair was left to merge; "
                "a larger or more varied corpus gives more")

    # ---- applying ---------------------------------------------------------------------------

    def _segment_word(self, word: Word) -> tuple[int, ...]:
        """Reference §3.3 on one word: repeatedly apply the first applicable merge at/after ``start``.

        Candidate merges sit in a min-heap by merge index. Applying merge ``k`` never enables a merge
        below ``k`` (earlier merges cannot involve the token it creates), so popping the heap in
        order and skipping merges whose parts are gone is exactly the reference's forward scan.
        """
        tokens = {self.pitch_offset + p for p in word}
        pair_index = self._pair_index
        candidates = [pair_index[pair] for pair in combinations(sorted(tokens), 2) if pair in pair_index]
        heapq.heapify(candidates)
        while candidates:
            k = heapq.heappop(candidates)
            merge = self.merges[k]
            if merge.a not in tokens or merge.b not in tokens:
                continue
            tokens.discard(merge.a)
            tokens.discard(merge.b)
            new = self.base_event_vocab_size + k  # larger than every token present
            for t in tokens:
                j = pair_index.get((t, new))
                if j is not None:
                    heapq.heappush(candidates, j)
            tokens.add(new)
        return tuple(sorted(tokens))

    def _segment_masks(self, masks: np.ndarray) -> list[tuple[int, ...]]:
        """Merged token ids for each ``(W, 2)`` word mask, through the per-word cache."""
        keys = [(hi << 64) | lo for lo, hi in masks.tolist()]
        cache = self._cache
        missing = [i for i, key in enumerate(keys) if key not in cache]
        if missing:
            for i, word in zip(missing, _masks_to_words(masks[missing]), strict=True):
                cache[keys[i]] = self._segment_word(word)
        return [cache[key] for key in keys]

    def apply(self, tokens: np.ndarray) -> np.ndarray:
        """Merge the note groups of a pre-BPE token array ``(steps, 4)``; returns ``(steps', 4)``.

        Metadata steps are kept in place; each (POS segment, duration) group becomes its merged
        tokens in ascending id order with the group's duration/track/instrument; groups follow the
        first appearance of their duration in the segment. ``steps' <= steps``.
        """
        return self.apply_many([tokens])[0]

    def apply_many(self, pieces: Sequence[np.ndarray], batch_steps: int = 1 << 18) -> list[np.ndarray]:
        """:meth:`apply` on several pieces (the same results); see :meth:`iter_apply`."""
        return list(self.iter_apply(pieces, batch_steps))

    def iter_apply(self, pieces: Sequence[np.ndarray], batch_steps: int = 1 << 18) -> Iterator[np.ndarray]:
        """Yield :meth:`apply` of each piece, vectorised over batches of consecutive pieces.

        A batch concatenates pieces up to about ``batch_steps`` steps: this amortises the per-call
        work over the words the pieces share, and only one batch is in memory at a time (pieces
        may be slices of a memory map).
        """
        start = 0
        while start < len(pieces):
            stop, steps = start, 0
            while stop < len(pieces) and (stop == start or steps + len(pieces[stop]) <= batch_steps):
                steps += len(pieces[stop])
                stop += 1
            yield from self._apply_batch([np.asarray(p) for p in pieces[start:stop]])
            start = stop

    def _apply_batch(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """One vectorised apply over the concatenation of ``arrays`` (groups never span pieces)."""
        for tokens in arrays:
            if tokens.ndim != 2 or tokens.shape[1] != 4:
                raise DataError(f"expected a (steps, 4) token array, got shape {tokens.shape}")
        if any((a[:, 0] >= self.base_event_vocab_size).any() for a in arrays):
            raise DataError("token array already contains Music BPE tokens; apply expects plain MMR tokens")
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
        tokens = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        is_note, groups = _note_groups(tokens, self.pitch_offset, offsets[:-1])
        if len(groups.first) == 0:
            return [a.copy() for a in arrays]
        # Only groups of >= 2 pitches go through word lookup; a single note is its own token.
        multi = np.flatnonzero(groups.size >= 2)
        unique, inverse = _mask_inverse(groups.masks[multi])
        results = self._segment_masks(unique)
        res_len = np.array([len(r) for r in results], np.int64)
        res_off = np.concatenate([[0], np.cumsum(res_len)])
        res_flat = np.array(list(chain.from_iterable(results)), np.int64)
        word_of = np.full(len(groups.first), -1, np.int64)
        word_of[multi] = inverse
        n_out = np.ones(len(groups.first), np.int64)
        n_out[multi] = res_len[inverse]
        # Ragged gather: multi-note group g emits res_flat[res_off[w] : res_off[w] + res_len[w]].
        group_of = np.repeat(np.arange(len(n_out)), n_out)
        within = np.arange(len(group_of)) - np.repeat(np.cumsum(n_out) - n_out, n_out)
        note_rows = groups.rows[group_of]
        merged_rows = np.flatnonzero(word_of[group_of] >= 0)
        note_rows[merged_rows, 0] = res_flat[res_off[word_of[group_of[merged_rows]]] + within[merged_rows]]
        # Order: metadata steps keep their index as anchor, a group's tokens sit at its first step.
        # Both parts are already sorted by anchor, so the stable sort is a linear merge.
        meta_idx = np.flatnonzero(~is_note)
        anchor = np.concatenate([meta_idx, groups.first[group_of]])
        order = np.argsort(anchor * N_PITCHES + np.concatenate([np.zeros(len(meta_idx), np.int64), within]),
                           kind="stable")
        out = np.concatenate([tokens[meta_idx], note_rows.astype(tokens.dtype, copy=False)])[order]
        bounds = np.searchsorted(anchor[order], offsets)
        return [out[bounds[i] : bounds[i + 1]] for i in range(len(arrays))]

    # ---- decoding ---------------------------------------------------------------------------

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Expand merged tokens into single-pitch note steps in canonical MMR order.

        Within each POS segment the note steps are sorted by (pitch, duration), which is the
        order MMR encoding produces, so ``decode(apply(x)) == x`` elementwise.
        """
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] != 4:
            raise DataError(f"expected a (steps, 4) token array, got shape {tokens.shape}")
        evt = tokens[:, 0].astype(np.int64)
        merged = evt >= self.base_event_vocab_size
        if (evt >= self.vocab_size).any():
            bad = int(evt[evt >= self.vocab_size][0])
            raise DataError(f"event id {bad} is beyond this Music BPE vocabulary (size {self.vocab_size})")
        k = np.where(merged, evt - self.base_event_vocab_size, 0)
        repeats = np.where(merged, self._merged_lengths[k] if self.merges else 1, 1)
        rows = np.repeat(tokens, repeats, axis=0)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
        expanded = np.repeat(merged, repeats)
        if expanded.any():
            k_rows = np.repeat(k, repeats)[expanded]
            pitches = self._merged_flat[self._merged_offsets[k_rows] + within[expanded]]
            rows[expanded, 0] = pitches + self.pitch_offset
        out_evt = rows[:, 0]
        is_note = (out_evt >= self.pitch_offset) & (out_evt < self.pitch_offset + N_PITCHES)
        segment = np.cumsum(~is_note)
        # Metadata step first in its segment, then notes by (pitch, duration).
        order = np.lexsort((rows[:, 1], out_evt, is_note, segment))
        return rows[order]

    # ---- persistence ------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": BPE_FORMAT,
            "version": BPE_FORMAT_VERSION,
            "mmr_vocab_version": self.mmr_vocab_version,
            "pitch_offset": self.pitch_offset,
            "base_event_vocab_size": self.base_event_vocab_size,
            "merges": [
                {"id": self.base_event_vocab_size + k, "a": m.a, "b": m.b, "pitches": list(m.pitches),
                 "count": m.count}
                for k, m in enumerate(self.merges)
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping, source: str = "<json>") -> MusicBPE:
        if not isinstance(data, Mapping):
            raise DataError(f"{source}: not a Music BPE file (a JSON {type(data).__name__}, not an object)")
        if data.get("format") != BPE_FORMAT:
            raise DataError(f"{source}: not a Music BPE file (format {data.get('format')!r})")
        if data.get("version") != BPE_FORMAT_VERSION:
            raise DataError(f"{source}: unsupported Music BPE format version {data.get('version')!r}")
        try:
            merges = [Merge(int(m["a"]), int(m["b"]), tuple(int(p) for p in m["pitches"]), int(m["count"]))
                      for m in data["merges"]]
            return cls(
                merges,
                pitch_offset=int(data["pitch_offset"]),
                base_event_vocab_size=int(data["base_event_vocab_size"]),
                mmr_vocab_version=int(data["mmr_vocab_version"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{source}: malformed Music BPE file ({error!r})") from None

    def save(self, path: str | Path) -> Path:
        """Write the merges as versioned JSON, atomically."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_json(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, *, check_mmr: bool = True) -> MusicBPE:
        """Read a file written by :meth:`save`; with ``check_mmr`` it must match the installed MMR vocab."""
        path = Path(path)
        bpe = cls.from_json(read_json(path, "Music BPE file", DataError), source=str(path))
        if check_mmr:
            offset, base, version = _mmr_layout()
            if (bpe.pitch_offset, bpe.base_event_vocab_size, bpe.mmr_vocab_version) != (offset, base, version):
                raise DataError(
                    f"{path}: learned for MMR vocab v{bpe.mmr_vocab_version} (base {bpe.base_event_vocab_size}),"
                    f" but this installation uses v{version} (base {base})"
                )
        return bpe

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form: identifies the merges a dataset was made with."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

