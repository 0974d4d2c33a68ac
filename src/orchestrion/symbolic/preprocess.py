"""Corpus preprocessing: a MIDI folder → a sharded MMR or Music BPE token dataset.

The sorted list of input files is cut into shards of ``shard_files`` files. Each shard is one
job for a worker process, which encodes its files one at a time, streams the tokens into the
shard's ``.npy`` file (memory stays at one piece per worker) and publishes the shard files by
atomic rename; only the small summary goes back to the parent, which appends it to
``progress.jsonl``. A rerun skips every recorded shard, so a killed run completes without
duplicates. Bad files are skipped and reported (``report.jsonl``) with the rule that rejected them.

``learn_bpe=N`` runs two passes: MIDI → plain MMR shards (kept in ``DATA_DIR/mmr``), count the
note-group words over them, learn N merges, then rewrite every shard with the merges applied.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from orchestrion.errors import DataError, OrchestrionError
from orchestrion.fileio import SkipReport, atomic_write_text, read_json
from orchestrion.symbolic.dataset import (
    BPE_FILE,
    DATASET_FORMAT,
    DATASET_FORMAT_VERSION,
    MANIFEST,
    REPORT,
    NpyRowWriter,
    TokenDataset,
    read_manifest,
    save_npy_atomic,
    shard_paths,
    token_dtype,
)
from orchestrion.symbolic.mmr import MMRConfig
from orchestrion.symbolic.mmr_vocab import (
    BASE_EVENT_VOCAB_SIZE,
    MMR_VOCAB_VERSION,
    PITCH_OFFSET,
    MMRVocab,
    is_single_pitch,
)
from orchestrion.symbolic.music_bpe import MusicBPE, WordTable, count_word_table

MIDI_SUFFIXES = frozenset({".mid", ".midi"})
PLAN = "plan.json"
PROGRESS = "progress.jsonl"
MMR_SUBDIR = "mmr"

# Called after each finished shard with (files done so far, files in total).
ProgressFn = Callable[[int, int], None]


def find_midi_files(midi_dir: str | Path) -> list[str]:
    """Paths (relative, POSIX style, sorted) of every ``.mid``/``.midi`` file below ``midi_dir``.

    A single MIDI file is accepted too: it is returned as ``[its name]`` (relative to its folder,
    see :func:`midi_root`).
    """
    root = Path(midi_dir)
    if root.is_file():
        if root.suffix.lower() not in MIDI_SUFFIXES:
            raise DataError(f"{root}: not a .mid/.midi file; give a MIDI file or a folder of MIDI files")
        return [root.name]
    if not root.is_dir():
        raise DataError(f"{root}: MIDI folder not found")
    found = [p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()]
    return sorted(p.relative_to(root).as_posix() for p in found)


def midi_root(midi_source: str | Path) -> Path:
    """The folder the names of :func:`find_midi_files` are relative to (a single file's own folder)."""
    source = Path(midi_source)
    return source.parent if source.is_file() else source


def check_workers(workers: int) -> int:
    """Refuse a worker count below 1 (``-j 0``, ``-j -2``); returns it."""
    if workers < 1:
        raise DataError(f"the number of worker processes (-j/--workers) must be at least 1, got {workers}")
    return workers


# --------------------------------------------------------------------------------------------
# Worker side: one shard per call, results go to files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EncodeJob:
    name: str
    root: str
    files: tuple[str, ...]
    out_dir: str
    bpe_path: str | None
    dtype: str
    merge_sparse_tracks: bool
    tempo_tokens: bool


@dataclass(frozen=True)
class _ApplyJob:
    name: str
    src_dir: str
    out_dir: str
    bpe_path: str
    dtype: str


def _encode_midi(path: Path, merge_sparse_tracks: bool, tempo_tokens: bool = True) -> tuple[np.ndarray, dict]:
    """MMR tokens ``(steps, 4)`` of one MIDI file plus the encoder's per-piece metadata (JSON-safe)."""
    from orchestrion.symbolic import mmr

    piece = mmr.encode(path, merge_sparse_tracks=merge_sparse_tracks, config=mmr.MMRConfig(tempo_tokens=tempo_tokens))
    info = {
        "ticks_per_beat": piece.ticks_per_beat,
        "start_tick": piece.start_tick,
        "n_measures": piece.n_measures,
        "programs": list(piece.programs),  # program of each track id, drums = 128
        "n_notes_in": piece.n_notes_in,
        "n_split_added": piece.n_split_added,
        "dropped": dict(piece.dropped),
    }
    return piece.tokens, info


def _publish_shard(
    out_dir: Path, name: str, writer: NpyRowWriter, offsets: list[int], pieces: list[dict], failures: list[dict]
) -> dict:
    """Rename the shard's files into place (tokens, offsets, then meta) and summarise it."""
    _, offsets_path, meta_path = shard_paths(out_dir, name)
    writer.finish()
    save_npy_atomic(offsets_path, np.asarray(offsets, np.int64))
    atomic_write_text(meta_path, json.dumps({"pieces": pieces, "failures": failures}) + "\n")
    return {
        "name": name,
        "files": len(pieces) + len(failures),
        "pieces": len(pieces),
        "failed": len(failures),
        "steps": sum(p["steps"] for p in pieces),
        "mmr_steps": sum(p["mmr_steps"] for p in pieces),
        "notes": sum(p["notes"] for p in pieces),
    }


def _encode_shard(job: _EncodeJob) -> dict:
    out_dir, root = Path(job.out_dir), Path(job.root)
    bpe = MusicBPE.load(job.bpe_path, check_mmr=False) if job.bpe_path else None
    writer = NpyRowWriter(shard_paths(out_dir, job.name)[0], np.dtype(job.dtype))
    offsets, pieces, failures = [0], [], []
    try:
        for rel in job.files:
            try:
                tokens, info = _encode_midi(root / rel, job.merge_sparse_tracks, job.tempo_tokens)
            except OrchestrionError as error:
                failures.append({"file": rel, "error": type(error).__name__, "message": str(error)})
                continue
            except Exception as error:  # a reader bug on one odd file must not stop a 40k-file run
                failures.append({"file": rel, "error": type(error).__name__, "message": str(error),
                                 "unexpected": True})
                continue
            n_notes = int(is_single_pitch(tokens[:, 0]).sum())
            if n_notes == 0:
                failures.append({"file": rel, "error": "DataError", "message": "no notes left after encoding"})
                continue
            out = bpe.apply(tokens) if bpe is not None else tokens
            writer.append(out)
            offsets.append(offsets[-1] + len(out))
            pieces.append({**info, "source": rel, "steps": len(out), "mmr_steps": len(tokens), "notes": n_notes})
        return _publish_shard(out_dir, job.name, writer, offsets, pieces, failures)
    except BaseException:
        writer.abort()
        raise


def _apply_shard(job: _ApplyJob) -> dict:
    src_dir, out_dir = Path(job.src_dir), Path(job.out_dir)
    bpe = MusicBPE.load(job.bpe_path, check_mmr=False)
    src_tokens_path, src_offsets_path, src_meta_path = shard_paths(src_dir, job.name)
    tokens = np.load(src_tokens_path, mmap_mode="r")
    offsets = np.load(src_offsets_path)
    meta = json.loads(src_meta_path.read_text())
    writer = NpyRowWriter(shard_paths(out_dir, job.name)[0], np.dtype(job.dtype))
    new_offsets, pieces = [0], []
    try:
        # Slices of the memory map: apply_many reads them batch by batch (bounded memory).
        merged = bpe.iter_apply([tokens[a:b] for a, b in itertools.pairwise(offsets)])
        for info, out in zip(meta["pieces"], merged, strict=True):
            writer.append(out)
            new_offsets.append(new_offsets[-1] + len(out))
            pieces.append({**info, "steps": len(out)})
        return _publish_shard(out_dir, job.name, writer, new_offsets, pieces, meta["failures"])
    except BaseException:
        writer.abort()
        raise


def _count_shard(args: tuple[str, str, int]) -> WordTable:
    data_dir, name, pitch_offset = args
    tokens_path, _, _ = shard_paths(Path(data_dir), name)
    # Every piece starts with a BOM step, so no note group spans two pieces: count the shard at once.
    return count_word_table([np.load(tokens_path)], pitch_offset)


# --------------------------------------------------------------------------------------------
# Parent side: plan, run, record, finalise
# --------------------------------------------------------------------------------------------


def _read_progress(out_dir: Path) -> dict[str, dict]:
    """Finished shards recorded in ``progress.jsonl`` whose files are all present."""
    path = out_dir / PROGRESS
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            summary = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that shard is simply redone
        if all(p.is_file() for p in shard_paths(out_dir, summary["name"])):
            done[summary["name"]] = summary
    return done


def _record(out_dir: Path, summary: dict) -> None:
    with open(out_dir / PROGRESS, "a") as handle:
        handle.write(json.dumps(summary) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _run_jobs(
    out_dir: Path, jobs: Sequence, worker: Callable[..., dict], workers: int, on_shard: Callable[[dict], None]
) -> list[dict]:
    """Run the unfinished ``jobs`` (in-process for ``workers <= 1``); summaries in job order."""
    for stale in out_dir.glob(".shard-*.tmp*"):  # half-written files of a killed run
        stale.unlink()
    done = _read_progress(out_dir)
    for job in jobs:
        if job.name in done:
            on_shard(done[job.name])
    todo = [job for job in jobs if job.name not in done]
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            summary = worker(job)
            _record(out_dir, summary)
            done[job.name] = summary
            on_shard(summary)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            futures = [pool.submit(worker, job) for job in todo]
            for future in as_completed(futures):
                summary = future.result()
                _record(out_dir, summary)
                done[summary["name"]] = summary
                on_shard(summary)
    return [done[job.name] for job in jobs]


def _check_plan(out_dir: Path, plan: dict) -> None:
    """Start a dataset folder, or make sure a rerun continues the very same job."""
    path = out_dir / PLAN
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: is a file; --out needs a new (or empty) folder for the dataset")
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != plan:
            changed = sorted(k for k in plan.keys() | previous.keys() if plan.get(k) != previous.get(k))
            raise DataError(
                f"{out_dir}: holds a dataset started with different inputs ({', '.join(changed)} differ);"
                " use a new --out folder or delete this one"
            )
        return
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise DataError(f"{out_dir}: folder is not empty and is not an unfinished dataset; choose a new --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(plan, indent=1) + "\n")


def _finalise(out_dir: Path, summaries: list[dict], bpe: MusicBPE | None, source: str, tempo_tokens: bool) -> dict:
    """Write ``report.jsonl`` and ``manifest.json`` (last: it marks the dataset complete)."""
    failures = []
    for summary in summaries:
        meta = json.loads(shard_paths(out_dir, summary["name"])[2].read_text())
        failures.extend(meta["failures"])
    atomic_write_text(out_dir / REPORT, "".join(json.dumps(f) + "\n" for f in failures))
    totals = {key: sum(s[key] for s in summaries) for key in ("files", "pieces", "failed", "steps", "mmr_steps",
                                                              "notes")}
    manifest = {
        "format": DATASET_FORMAT,
        "version": DATASET_FORMAT_VERSION,
        "source": source,
        "mmr_vocab_version": MMR_VOCAB_VERSION,
        "mmr_vocab": json.loads(MMRVocab().to_json()),
        "event_vocab_size": bpe.vocab_size if bpe is not None else BASE_EVENT_VOCAB_SIZE,
        "tempo_tokens": tempo_tokens,  # the grammar has a tempo step after the chord (MMRConfig.tempo_tokens)
        "bpe": None if bpe is None else {"file": BPE_FILE, "sha256": bpe.digest(), "n_merges": bpe.n_merges},
        "dtype": str(np.load(shard_paths(out_dir, summaries[0]["name"])[0], mmap_mode="r").dtype)
        if summaries else None,
        "counts": {
            "files_seen": totals["files"],
            "files_ok": totals["pieces"],
            "files_failed": totals["failed"],
            "pieces": totals["pieces"],
            "steps": totals["steps"],
            "mmr_steps": totals["mmr_steps"],
            "notes": totals["notes"],
            "compression": totals["steps"] / totals["mmr_steps"] if totals["mmr_steps"] else 1.0,
        },
        "shards": [{k: s[k] for k in ("name", "pieces", "steps", "notes")} for s in summaries],
    }
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


class _NothingUsable(DataError):
    """Every input file was rejected: there is no dataset to make."""


@dataclass(frozen=True)
class TokenizeOptions:
    """Options of :func:`tokenize_corpus` that define the dataset (a rerun must repeat them)."""

    shard_files: int = 64  # input files per shard: the unit of parallel work and of restart
    merge_sparse_tracks: bool = True  # §2.1 step 3; disable for prime-style encoding
    tempo_tokens: bool = True  # MMRConfig.tempo_tokens; False = exactly the reference grammar


def dataset_options(data_dir: str | Path) -> TokenizeOptions:
    """The :class:`TokenizeOptions` a dataset folder was made with (from its ``plan.json``).

    A dataset made by :func:`apply_bpe_dataset` took its pieces from another dataset: that one's
    options apply. Options a plan predates keep their defaults.
    """
    data_dir = Path(data_dir)
    plan = read_json(data_dir / PLAN, "dataset plan", DataError)
    known = {f.name for f in fields(TokenizeOptions)}
    if not known & plan.keys() and (Path(plan.get("source", "")) / PLAN).is_file():
        return dataset_options(plan["source"])
    return TokenizeOptions(**{k: v for k, v in plan.items() if k in known})


def encoder_config(options: TokenizeOptions) -> MMRConfig:
    """The MMR encoder options a dataset made with ``options`` used (the fields both classes share)."""
    shared = {f.name for f in fields(MMRConfig)} & {f.name for f in fields(TokenizeOptions)}
    return MMRConfig(**{name: getattr(options, name) for name in shared})


def _encode_pass(
    midi_dir: Path, out_dir: Path, files: list[str], bpe: MusicBPE | None,
    options: TokenizeOptions, workers: int, progress: ProgressFn | None,
) -> dict:
    plan = {"source": str(midi_dir.resolve()), "files": files, "bpe_sha256": bpe.digest() if bpe else None,
            **asdict(options)}
    _check_plan(out_dir, plan)
    if (out_dir / MANIFEST).is_file():
        return read_manifest(out_dir)
    if bpe is not None:
        bpe.save(out_dir / BPE_FILE)
    vocab_size = bpe.vocab_size if bpe is not None else BASE_EVENT_VOCAB_SIZE
    n = options.shard_files
    jobs = [
        _EncodeJob(f"shard-{k // n:05d}", str(midi_dir), tuple(files[k : k + n]), str(out_dir),
                   str(out_dir / BPE_FILE) if bpe is not None else None, token_dtype(vocab_size).str,
                   options.merge_sparse_tracks, options.tempo_tokens)
        for k in range(0, len(files), n)
    ]
    summaries = _run_jobs(out_dir, jobs, _encode_shard, workers, _progress_counter(len(files), progress))
    if not any(s["pieces"] for s in summaries):
        first = json.loads(shard_paths(out_dir, summaries[0]["name"])[2].read_text())["failures"][0]
        raise _NothingUsable(f"{midi_dir}: none of the {len(files)} MIDI files could be encoded "
                             f"(first: {first['message']})")
    return _finalise(out_dir, summaries, bpe, str(midi_dir), options.tempo_tokens)


def _progress_counter(total: int, progress: ProgressFn | None) -> Callable[[dict], None]:
    state = {"done": 0}

    def on_shard(summary: dict) -> None:
        state["done"] += summary["files"]
        if progress is not None:
            progress(state["done"], total)

    return on_shard


def count_dataset_words(data_dir: str | Path, workers: int = 1) -> WordTable:
    """Word table (distinct note groups with ≥ 2 pitches → count) of a plain MMR dataset."""
    check_workers(workers)
    dataset = TokenDataset(data_dir)
    if dataset.bpe is not None:
        raise DataError(f"{data_dir}: words must be counted on a plain MMR dataset, this one uses Music BPE")
    args = [(str(dataset.data_dir), shard["name"], PITCH_OFFSET) for shard in dataset.manifest["shards"]]
    if workers <= 1 or len(args) <= 1:
        return WordTable.merge([_count_shard(a) for a in args])
    with ProcessPoolExecutor(max_workers=min(workers, len(args))) as pool:
        return WordTable.merge(list(pool.map(_count_shard, args)))


def _count_midi_file(args: tuple[str, bool, int]) -> tuple[WordTable | None, str]:
    """The file's word table, or None and why it could not be encoded (one line)."""
    path, merge_sparse_tracks, pitch_offset = args
    try:
        tokens, _ = _encode_midi(Path(path), merge_sparse_tracks)
    except Exception as error:  # same policy as tokenize: a bad file is skipped and reported, never fatal
        reason = str(error).removeprefix(f"{path}: ")
        return None, reason if isinstance(error, OrchestrionError) else f"{type(error).__name__}: {reason}"
    return count_word_table([tokens], pitch_offset), ""


def count_midi_words(
    midi_dir: str | Path, workers: int = 1, merge_sparse_tracks: bool = True
) -> tuple[WordTable, SkipReport]:
    """Word table of every MIDI file below ``midi_dir`` (encoded in memory, nothing written).

    Returns the table and the files that could not be encoded, each with its reason.
    """
    check_workers(workers)
    files = find_midi_files(midi_dir)
    if not files:
        raise DataError(f"{midi_dir}: no .mid or .midi files found")
    args = [(str(midi_root(midi_dir) / f), merge_sparse_tracks, PITCH_OFFSET) for f in files]
    if workers == 1 or len(args) == 1:
        results = [_count_midi_file(a) for a in args]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(args))) as pool:
            results = list(pool.map(_count_midi_file, args, chunksize=8))
    skipped = SkipReport()
    for (path, _, _), (table, reason) in zip(args, results, strict=True):
        if table is None:
            skipped.skip(path, reason)
    ok = [table for table, _ in results if table is not None]
    skipped.require_some(len(ok), f"MIDI files in {midi_dir} (none could be encoded)")
    return WordTable.merge(ok), skipped


def _learn_pass(
    midi_dir: Path, out_dir: Path, files: list[str], n_merges: int, options: TokenizeOptions, workers: int,
    progress: ProgressFn | None,
) -> dict:
    plan = {"source": str(midi_dir.resolve()), "files": files, "learn_bpe": n_merges, **asdict(options)}
    _check_plan(out_dir, plan)
    if (out_dir / MANIFEST).is_file():
        return read_manifest(out_dir)
    mmr_dir = out_dir / MMR_SUBDIR
    _encode_pass(midi_dir, mmr_dir, files, None, options, workers, progress)
    bpe_path = out_dir / BPE_FILE
    if bpe_path.is_file():  # learned by an interrupted earlier run from the same MMR shards
        bpe = MusicBPE.load(bpe_path)
    else:
        bpe = MusicBPE().learn(count_dataset_words(mmr_dir, workers), n_merges)
        bpe.save(bpe_path)
    return _apply_pass(mmr_dir, out_dir, bpe, workers, str(midi_dir), options.tempo_tokens)


def _apply_pass(mmr_dir: Path, out_dir: Path, bpe: MusicBPE, workers: int, source: str, tempo_tokens: bool) -> dict:
    """Rewrite every shard of the MMR dataset ``mmr_dir`` into ``out_dir`` with ``bpe`` applied."""
    bpe_path = out_dir / BPE_FILE
    if not bpe_path.is_file():
        bpe.save(bpe_path)
    jobs = [_ApplyJob(s["name"], str(mmr_dir), str(out_dir), str(bpe_path), token_dtype(bpe.vocab_size).str)
            for s in read_manifest(mmr_dir)["shards"]]
    summaries = _run_jobs(out_dir, jobs, _apply_shard, workers, lambda summary: None)
    return _finalise(out_dir, summaries, bpe, source, tempo_tokens)


def apply_bpe_dataset(mmr_dir: str | Path, out_dir: str | Path, bpe: MusicBPE, *, workers: int = 1) -> dict:
    """Write a Music BPE copy of the plain MMR dataset ``mmr_dir`` into ``out_dir`` (restartable).

    Shard for shard and piece for piece, ``out.piece(i) == bpe.apply(mmr.piece(i))``. Returns the
    new manifest.
    """
    mmr_dir, out_dir = Path(mmr_dir), Path(out_dir)
    check_workers(workers)
    manifest = read_manifest(mmr_dir)
    if manifest["bpe"] is not None:
        raise DataError(f"{mmr_dir}: already a Music BPE dataset; apply merges to a plain MMR dataset")
    _check_plan(out_dir, {"source": str(mmr_dir.resolve()), "bpe_sha256": bpe.digest()})
    if (out_dir / MANIFEST).is_file():
        return read_manifest(out_dir)
    return _apply_pass(mmr_dir, out_dir, bpe, workers, manifest["source"], manifest.get("tempo_tokens", True))


def tokenize_corpus(
    midi_dir: str | Path,
    out_dir: str | Path,
    *,
    bpe: str | Path | MusicBPE | None = None,
    learn_bpe: int | None = None,
    workers: int = 1,
    options: TokenizeOptions = TokenizeOptions(),
    progress: ProgressFn | None = None,
) -> dict:
    """Tokenize every MIDI file below ``midi_dir`` into a sharded dataset in ``out_dir``.

    Args:
        midi_dir: folder searched recursively for ``.mid``/``.midi`` files (or one MIDI file).
        out_dir: dataset folder (new, empty, or an unfinished run of the same command).
        bpe: Music BPE merges to apply (a file written by :meth:`MusicBPE.save` or an instance).
        learn_bpe: learn this many merges on the corpus itself (two passes) instead.
        workers: worker processes (at least 1; 1 runs in-process, never more than there are shards).
        options: shard size and track-merge rule; part of the dataset's identity.
        progress: called with (files done, files total) after each shard.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).

    Raises:
        DataError: bad options, no MIDI file, or not one file that could be encoded (a folder
            this call created is then removed).
    """
    midi_dir, out_dir = Path(midi_dir), Path(out_dir)
    check_workers(workers)
    if bpe is not None and learn_bpe is not None:
        raise DataError("give either a Music BPE file or a number of merges to learn, not both")
    if learn_bpe is not None and learn_bpe <= 0:
        raise DataError(f"number of merges to learn must be positive, got {learn_bpe}")
    if options.shard_files <= 0:
        raise DataError(f"files per shard must be positive, got {options.shard_files}")
    files = find_midi_files(midi_dir)
    if not files:
        raise DataError(f"{midi_dir}: no .mid or .midi files found")
    midi_dir = midi_root(midi_dir)
    bpe_obj = bpe if isinstance(bpe, MusicBPE) or bpe is None else MusicBPE.load(bpe)
    created = next((p for p in (out_dir, *out_dir.parents) if p.parent.exists()), out_dir)
    fresh = not created.exists()
    try:
        if learn_bpe is not None:
            return _learn_pass(midi_dir, out_dir, files, learn_bpe, options, workers, progress)
        return _encode_pass(midi_dir, out_dir, files, bpe_obj, options, workers, progress)
    except _NothingUsable:
        if fresh:  # leave nothing behind: a folder of empty shards is no dataset
            shutil.rmtree(created, ignore_errors=True)
        raise

