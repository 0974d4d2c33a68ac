"""Sharded, memory-mappable token datasets (the on-disk output of ``orchestrion symphony tokenize``).

Layout of a dataset folder::

    manifest.json            format/version, MMR vocab (+ version), Music BPE file + hash, counts,
                             shard list; written last, so its presence means "complete"
    plan.json                the sorted input files and options the shards were cut from
    progress.jsonl           one line per finished shard (the restart record)
    report.jsonl             one line per rejected input file: file, error type, message
    music_bpe.json           copy of the merges used (only for BPE datasets)
    shard-00000.tokens.npy   (steps, 4) int16/int32: [event, duration, track, instrument]
    shard-00000.offsets.npy  (pieces + 1,) int64: piece i = tokens[offsets[i]:offsets[i+1]]
    shard-00000.meta.json    per-piece metadata (source file, steps, notes) and per-file failures

Token arrays are written by :class:`NpyRowWriter`, which streams one piece at a time into the
``.npy`` file, so a worker never holds more than one piece in memory.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from orchestrion.errors import DataError
from orchestrion.fileio import atomic_path, atomic_write_text, read_json
from orchestrion.symbolic.mmr_vocab import (
    DURATION_VOCAB_SIZE,
    INSTRUMENT_OFFSET,
    INSTRUMENT_VOCAB_SIZE,
    MMR_VOCAB_VERSION,
    N_PITCHES,
    PITCH_OFFSET,
    TRACK_VOCAB_SIZE,
    from_strings,
    to_strings,
)
from orchestrion.symbolic.music_bpe import MusicBPE

DATASET_FORMAT = "orchestrion-token-dataset"
DATASET_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BPE_FILE = "music_bpe.json"
REPORT = "report.jsonl"
N_FIELDS = 4


def shard_paths(data_dir: Path, name: str) -> tuple[Path, Path, Path]:
    """(tokens .npy, offsets .npy, meta .json) paths of shard ``name`` inside ``data_dir``."""
    return (data_dir / f"{name}.tokens.npy", data_dir / f"{name}.offsets.npy", data_dir / f"{name}.meta.json")


def token_dtype(event_vocab_size: int) -> np.dtype:
    """Smallest signed dtype holding every field id: int16 unless the event vocab is huge."""
    return np.dtype("<i2") if event_vocab_size <= np.iinfo(np.int16).max else np.dtype("<i4")


class NpyRowWriter:
    """Append ``(n, 4)`` row blocks to a ``.npy`` file, then publish it atomically.

    The file is written to a temp name with a reserved 128-byte NPY v1.0 header; :meth:`finish`
    fills in the final shape, fsyncs and renames, so readers only ever see complete files.
    """

    HEADER_BYTES = 128

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self._tmp = Path(tmp)
        self._handle = os.fdopen(fd, "wb")
        self._handle.write(b"\0" * self.HEADER_BYTES)
        self.rows = 0

    def append(self, rows: np.ndarray) -> None:
        self._handle.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.rows += len(rows)

    def _header(self) -> bytes:
        text = f"{{'descr': '{self.dtype.str}', 'fortran_order': False, 'shape': ({self.rows}, {N_FIELDS}), }}"
        prefix = b"\x93NUMPY\x01\x00"
        body_len = self.HEADER_BYTES - len(prefix) - 2
        body = text.ljust(body_len - 1).encode("latin1") + b"\n"
        return prefix + struct.pack("<H", body_len) + body

    def finish(self) -> Path:
        self._handle.seek(0)
        self._handle.write(self._header())
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a fsynced temp file and ``os.replace``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


# Manifest entries the readers rely on, and their JSON types.
_MANIFEST_FIELDS = {"mmr_vocab": dict, "event_vocab_size": int, "counts": dict, "shards": list}


def read_manifest(data_dir: str | Path) -> dict:
    """Load and validate ``manifest.json`` of a finished dataset folder."""
    data_dir = Path(data_dir)
    path = data_dir / MANIFEST
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: dataset folder not found")
    if not path.is_file():
        if (data_dir / "plan.json").is_file():
            raise DataError(f"{data_dir}: not a token dataset, {MANIFEST} is missing (tokenizing did not finish:"
                            " rerun the same command to complete it)")
        raise DataError(f"{data_dir}: not a token dataset, {_folder_kind(data_dir)}")
    manifest = read_json(path, "dataset manifest", DataError)
    if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
        raise DataError(f"{data_dir}: not a token dataset, {_folder_kind(data_dir)}")
    if manifest.get("version") != DATASET_FORMAT_VERSION:
        raise DataError(f"{path}: unsupported dataset format version {manifest.get('version')!r}")
    missing = [key for key, kind in _MANIFEST_FIELDS.items() if not isinstance(manifest.get(key), kind)]
    if missing:
        raise DataError(f"{path}: dataset manifest is damaged (missing or malformed: {', '.join(missing)}); "
                        "tokenize the MIDI files again")
    if manifest.get("mmr_vocab_version") != MMR_VOCAB_VERSION:
        raise DataError(f"{path}: tokens use MMR vocabulary v{manifest.get('mmr_vocab_version')}, this"
                        f" orchestrion uses v{MMR_VOCAB_VERSION}; tokenize the MIDI files again")
    return manifest


_TOKENIZE_HINT = "make a token dataset with `orchestrion symphony tokenize MIDI_DIR --out DATA`"


def _folder_kind(folder: Path) -> str:
    """What ``folder`` holds instead of a token dataset, and what to do (for error messages)."""
    if ((folder / "config.json").is_file() and (folder / MANIFEST).is_file()) or (folder / "checkpoints").is_dir():
        return f"it holds a model (checkpoint or training run); pass a token dataset here ({_TOKENIZE_HINT})"
    if (folder / "index.json").is_file():
        return f"it holds audio latents; pass a token dataset here ({_TOKENIZE_HINT})"
    # Bounded look: a user may point at a huge folder, and a hint is not worth a full scan.
    if any(p.suffix.lower() in (".mid", ".midi") for p in itertools.islice(folder.rglob("*"), 10_000)):
        return f"it is a folder of MIDI files: {_TOKENIZE_HINT.replace('MIDI_DIR', str(folder))}"
    if (folder / MANIFEST).is_file():
        return f"its {MANIFEST} is not an orchestrion token dataset's; {_TOKENIZE_HINT}"
    return f"{MANIFEST} is missing; {_TOKENIZE_HINT}"


class TokenDataset:
    """Read-only view of a tokenized dataset folder; token shards are memory-mapped, not loaded.

    ``piece(i)`` returns the ``(steps, 4)`` token array of piece ``i`` (a read-only view into the
    memory map, dtype int16 or int32) with columns [event, duration, track, instrument].

    Example::

        ds = TokenDataset("data/orchestra")
        print(len(ds), ds.piece(0).shape, ds.bpe.vocab_size if ds.bpe else "no BPE")
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.manifest = read_manifest(self.data_dir)
        self._tokens: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        self._meta_cache: dict[int, dict] = {}
        for shard in self.manifest["shards"]:
            tokens_path, offsets_path, _ = shard_paths(self.data_dir, shard["name"])
            try:
                tokens = np.load(tokens_path, mmap_mode="r")
                offsets = np.load(offsets_path)
            except (OSError, ValueError) as error:
                raise DataError(f"{self.data_dir}: shard {shard['name']} is missing or corrupt ({error})") from None
            if tokens.ndim != 2 or tokens.shape[1] != N_FIELDS or offsets[-1] != len(tokens):
                raise DataError(f"{tokens_path}: shape {tokens.shape} does not match its offsets")
            self._tokens.append(tokens)
            self._offsets.append(offsets)
        counts = [len(o) - 1 for o in self._offsets]
        self._first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._first[-1])

    def _locate(self, index: int) -> tuple[int, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"piece {index} out of range for a dataset of {len(self)} pieces")
        index %= len(self)
        shard = int(np.searchsorted(self._first, index, side="right") - 1)
        return shard, index - int(self._first[shard])

    def piece(self, index: int) -> np.ndarray:
        """Token array ``(steps, 4)`` of piece ``index`` (memory-mapped, read-only)."""
        shard, local = self._locate(index)
        offsets = self._offsets[shard]
        return self._tokens[shard][offsets[local] : offsets[local + 1]]

    __getitem__ = piece

    def meta(self, index: int) -> dict:
        """Metadata of piece ``index``: source file (relative to the MIDI folder), steps, notes, ..."""
        shard, local = self._locate(index)
        return self._shard_meta(shard)["pieces"][local]

    def _shard_meta(self, shard: int) -> dict:
        if shard not in self._meta_cache:
            _, _, meta_path = shard_paths(self.data_dir, self.manifest["shards"][shard]["name"])
            self._meta_cache[shard] = json.loads(meta_path.read_text())
        return self._meta_cache[shard]

    @property
    def lengths(self) -> np.ndarray:
        """Steps per piece, ``(len(self),)`` int64."""
        return np.concatenate([np.diff(o) for o in self._offsets]) if self._offsets else np.zeros(0, np.int64)

    def shards(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(tokens memmap (steps, 4), offsets (pieces + 1,))`` per shard, for vectorised scans."""
        yield from zip(self._tokens, self._offsets, strict=True)

    @cached_property
    def bpe(self) -> MusicBPE | None:
        """The Music BPE the tokens were made with, or None for a plain MMR dataset."""
        info = self.manifest.get("bpe")
        if info is None:
            return None
        return MusicBPE.load(self.data_dir / info["file"], check_mmr=False)

    @property
    def event_vocab_size(self) -> int:
        return int(self.manifest["event_vocab_size"])

    @property
    def mmr_vocab(self) -> dict:
        """The MMR vocabulary (JSON form) the dataset was encoded with."""
        return self.manifest["mmr_vocab"]


# --------------------------------------------------------------------------------------------
# Single token files and dataset statistics
# --------------------------------------------------------------------------------------------


def save_token_file(path: str | Path, tokens: np.ndarray, bpe: MusicBPE | None = None) -> Path:
    """Write one piece's tokens ``(steps, 4)``: ``.npy`` (int32 ids) or ``.txt`` (MMR strings).

    The text form has one step per line, four strings ``event duration track instrument``
    (§2.4, e.g. ``E5 r8 t0 xE``; metadata steps ``p0 RZ TZ YZ``); merged Music BPE tokens are
    written as their concatenated pitch names (``C4E4G4``).
    """
    path = Path(path)
    tokens = np.asarray(tokens, np.int32)
    if path.suffix == ".npy":
        path.parent.mkdir(parents=True, exist_ok=True)
        save_npy_atomic(path, tokens)
    elif path.suffix == ".txt":
        names = bpe.event_names() if bpe is not None else None
        atomic_write_text(path, "".join(" ".join(step) + "\n" for step in to_strings(tokens, names)))
    else:
        raise DataError(f"{path}: token files must end in .npy or .txt")
    return path


def load_token_file(path: str | Path, bpe: MusicBPE | None = None) -> np.ndarray:
    """Read a token file written by :func:`save_token_file` (or by hand) → ``(steps, 4)`` int32.

    ``.txt`` files may break lines anywhere: the reference's one-line-per-piece corpus format
    (all strings space-separated) reads as well. Merged token names need ``bpe``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: token file not found")
    if path.suffix == ".npy":
        try:
            tokens = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            raise DataError(f"{path}: not a readable .npy token file (expected an int array saved by numpy)") from None
        if tokens.ndim != 2 or tokens.shape[1] != N_FIELDS or not np.issubdtype(tokens.dtype, np.integer):
            raise DataError(f"{path}: expected an integer (steps, 4) array, got {tokens.dtype} {tokens.shape}")
        limits = np.iinfo(np.int32)
        if len(tokens) and (tokens.min() < limits.min or tokens.max() > limits.max):
            raise DataError(f"{path}: token ids beyond the 32-bit range ({tokens.min()} to {tokens.max()});"
                            " these are not MMR tokens")
        return tokens.astype(np.int32)
    if path.suffix != ".txt":
        raise DataError(f"{path}: token files must end in .npy or .txt")
    try:
        words = path.read_text(encoding="utf-8").split()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text token file (not UTF-8 text); token files are .npy or MMR text") from None
    if len(words) % N_FIELDS:
        raise DataError(f"{path}: {len(words)} strings is not a whole number of 4-field steps")
    names = {}
    if bpe is not None:
        for token, name in sorted(bpe.event_names().items(), reverse=True):
            names[name] = token  # equal pitch sets from two merge paths: the older token wins
    steps = [tuple(words[i : i + N_FIELDS]) for i in range(0, len(words), N_FIELDS)]
    try:
        return from_strings(steps, names)
    except ValueError as error:
        needs_bpe = str(error).startswith("unknown MMR event") and bpe is None
        hint = " (merged chord tokens need the Music BPE file: --bpe or --data)" if needs_bpe else ""
        raise DataError(f"{path}: {error}{hint}") from None


def check_token_ids(tokens: np.ndarray, name: str, event_vocab_size: int) -> np.ndarray:
    """Refuse an empty token array or one with ids outside their field's vocabulary; returns it.

    ``event_vocab_size`` is the base MMR size, or a Music BPE's size when its merges apply.
    """
    if len(tokens) == 0:
        raise DataError(f"{name}: holds no tokens (0 steps); nothing to turn into MIDI")
    limits = (event_vocab_size, DURATION_VOCAB_SIZE, TRACK_VOCAB_SIZE, INSTRUMENT_VOCAB_SIZE)
    for column, (field_name, limit) in enumerate(zip(("event", "duration", "track", "instrument"), limits,
                                                      strict=True)):
        values = tokens[:, column]
        bad = np.flatnonzero((values < 0) | (values >= limit))
        if len(bad):
            step = int(bad[0])
            raise DataError(f"{name}: {field_name} id {int(values[step])} at step {step} is outside the "
                            f"vocabulary (0-{limit - 1}); these are not MMR tokens")
    return tokens


@dataclass(frozen=True)
class DatasetStats:
    """Corpus statistics of a token dataset.

    ``lengths`` (pieces,) steps per piece; ``instrument_notes`` / ``instrument_tracks`` (129,)
    notes and (piece, track) pairs per program, index 128 = drums.
    """

    pieces: int
    steps: int
    mmr_steps: int
    notes: int
    lengths: np.ndarray
    instrument_notes: np.ndarray
    instrument_tracks: np.ndarray

    @property
    def compression(self) -> float:
        """Steps after Music BPE / steps before (1.0 for a plain MMR dataset)."""
        return self.steps / self.mmr_steps if self.mmr_steps else 1.0


def dataset_stats(dataset: TokenDataset) -> DatasetStats:
    """Count pieces, steps, notes per instrument and tracks per instrument over all shards."""
    if dataset.bpe is not None:
        pitches_per_id = dataset.bpe.pitch_counts()
    else:
        pitches_per_id = np.zeros(dataset.event_vocab_size, np.int64)
        pitches_per_id[PITCH_OFFSET : PITCH_OFFSET + N_PITCHES] = 1
    n_programs = 129
    notes = np.zeros(n_programs, np.int64)
    tracks = np.zeros(n_programs, np.int64)
    for tokens, offsets in dataset.shards():
        rows = np.asarray(tokens)
        weight = pitches_per_id[rows[:, 0]]
        is_note = weight > 0
        program = rows[is_note, 3].astype(np.int64) - INSTRUMENT_OFFSET
        notes += np.bincount(program, weights=weight[is_note], minlength=n_programs).astype(np.int64)
        piece = np.searchsorted(offsets, np.flatnonzero(is_note), side="right") - 1
        pairs = np.unique(np.stack([piece, rows[is_note, 2], program], axis=1), axis=0)
        tracks += np.bincount(pairs[:, 2], minlength=n_programs)
    counts = dataset.manifest["counts"]
    return DatasetStats(len(dataset), int(counts["steps"]), int(counts["mmr_steps"]), int(counts["notes"]),
                        dataset.lengths, notes, tracks)
