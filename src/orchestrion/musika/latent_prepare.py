"""``orchestrion musika prepare-latents``: a folder of audio → a latent-chunk folder for GAN training.

Spec §9 (reference data pipeline) and §8 (conditioning). Two passes:

1. Per file (restartable): decode, resample to 22.05 kHz, encode each channel to level-2 latents
   (level 1 → level 2 one 60 s block at a time), keep only frames computed from real audio, detect
   onsets and tempo (:mod:`orchestrion.audio.features`) and stage latents + raw note density
   (onsets/s) in ``OUT/.staging``; a line in ``.staging/progress.jsonl`` marks the file done.
2. Once every file is done: dataset-global normalisation constants, 512-frame chunk files,
   ``report.jsonl``, and ``manifest.json`` last (so a folder with a manifest is always complete),
   then the staging folder is removed.

The folder format and the training dataset are in :mod:`orchestrion.musika.latent_data`.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from orchestrion.errors import DataError
from orchestrion.fileio import atomic_path, atomic_write_text, read_json
from orchestrion.musika.latent_data import (
    CHUNK_FRAMES,
    MANIFEST_NAME,
    MIN_FRAMES,
    REPORT_NAME,
    build_manifest,
    chunk_name,
    save_chunk,
    write_manifest,
)

if TYPE_CHECKING:
    from orchestrion.audio.features import RhythmAnalysis
    from orchestrion.musika.models import TrainedAutoencoder


STAGING_NAME = ".staging"  # per-file results of the first pass; its presence marks an unfinished folder
_SETTINGS_NAME = "settings.json"
_PROGRESS_NAME = "progress.jsonl"
_RESUME_KEYS = ("audio_dir", "autoencoder_digest", "chunk_frames", "min_frames")  # must match to resume


def real_frame_range(num_samples: int, offset: int, hop: int) -> tuple[int, int]:
    """Level-2 frames ``[first, stop)`` of an encoded file that were computed from real audio only.

    Frame ``f`` is Enc2 of level-1 frames ``[r·f, r·f + r)`` (r = hop / 256), whose STFT windows cover the
    padded samples ``[hop·f, hop·(f + 1) + 768)``, i.e. original samples ``[hop·f − offset,
    hop·(f + 1) + 768 − offset)``. A frame is kept when that span lies inside ``[0, num_samples)``.
    """
    from orchestrion.audio.spectral import HOP, N_FFT

    first = -(-offset // hop)
    stop = (num_samples + offset - (N_FFT - HOP)) // hop
    return first, max(first, stop)


def frame_edges(first: int, stop: int, offset: int, hop: int) -> np.ndarray:
    """Time spans (seconds of original audio) of level-2 frames ``[first, stop)``: ``stop − first + 1`` edges.

    A frame stands for the ``hop`` samples around the centres of its level-1 STFT windows
    (window centre of level-1 frame k: ``256·k + 512 − offset``).
    """
    from orchestrion.audio.spectral import HOP, N_FFT, SAMPLE_RATE

    frames = np.arange(first, stop + 1, dtype=np.float64)
    return (hop * frames + N_FFT // 2 - HOP // 2 - offset) / SAMPLE_RATE


def chunk_starts(frames: int, chunk_frames: int) -> list[int]:
    """First frames of the chunks of a file of ``frames`` frames: consecutive whole chunks plus one made of
    the last ``chunk_frames`` frames (spec §9); a file shorter than one chunk is one chunk of its own length."""
    if frames <= chunk_frames:
        return [0]
    starts = list(range(0, frames - chunk_frames + 1, chunk_frames))
    if frames % chunk_frames:
        starts.append(frames - chunk_frames)
    return starts


def _staged_name(source: str) -> str:
    import hashlib

    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:20] + ".safetensors"


def _our_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(files a prepare-latents run writes, anything else) among the entries of ``folder``."""
    import re

    ours, foreign = [], []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        is_ours = name in (MANIFEST_NAME, REPORT_NAME) and entry.is_file()
        is_ours |= bool(re.fullmatch(r"\d{6}\.safetensors", name)) and entry.is_file()
        is_ours |= name == STAGING_NAME and entry.is_dir()
        is_ours |= name.startswith(".") and ".tmp" in name and entry.is_file()  # left by a killed atomic write
        (ours if is_ours else foreign).append(entry)
    return ours, foreign


def _remove(paths: Sequence[Path]) -> None:
    import shutil

    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _open_output(out_dir: Path, settings: dict[str, Any], overwrite: bool) -> dict[str, dict[str, Any]]:
    """Make ``out_dir`` ready for this run; returns the finished per-file records of an interrupted one.

    New or empty folder: start. Unfinished prepare-latents folder with the same settings: resume.
    A finished one, or an unfinished one with other settings: only with ``overwrite`` (its files are
    removed first). Any other content: refused, so nothing is ever mixed into a foreign folder.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder; give a folder for the latent chunks")
    out_dir.mkdir(parents=True, exist_ok=True)
    ours, foreign = _our_files(out_dir)
    if foreign:
        raise DataError(
            f"{out_dir}: is not empty and not a prepare-latents folder ({foreign[0].name}, ...); "
            "choose a new folder for the latent chunks"
        )
    staging = out_dir / STAGING_NAME
    settings_path = staging / _SETTINGS_NAME
    if (out_dir / MANIFEST_NAME).exists():
        if not overwrite:
            raise DataError(f"{out_dir}: holds finished latent chunks; pass --overwrite to replace them")
        _remove(ours)
    elif settings_path.is_file():
        previous = read_json(settings_path, "prepare-latents settings", DataError)
        previous = previous if isinstance(previous, dict) else {}
        changed = [key for key in _RESUME_KEYS if previous.get(key) != settings[key]]
        if changed:
            if not overwrite:
                raise DataError(
                    f"{out_dir}: holds an unfinished prepare-latents run with other settings "
                    f"({', '.join(changed)}); pass --overwrite to start over or choose another folder"
                )
            _remove(ours)
    elif ours:
        if not overwrite:
            raise DataError(f"{out_dir}: holds files of an unknown prepare-latents state; pass --overwrite")
        _remove(ours)
    staging.mkdir(exist_ok=True)
    _remove(list(staging.glob(".resampled-*")))  # decoded audio of a file a killed run was working on
    if not settings_path.is_file():
        atomic_write_text(settings_path, json.dumps(settings, indent=2) + "\n")
    return _read_progress(staging)


def _read_progress(staging: Path) -> dict[str, dict[str, Any]]:
    """Per-file records of ``progress.jsonl`` (a line cut off by a kill, or whose staged file is gone, is dropped)."""
    path = staging / _PROGRESS_NAME
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or "source" not in record:
            continue
        if record.get("status") == "ok" and not (staging / str(record.get("staged", ""))).is_file():
            continue
        records[record["source"]] = record
    return records


def _append_progress(staging: Path, record: dict[str, Any]) -> None:
    import os

    with open(staging / _PROGRESS_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _stage_file(
    path: Path,
    source: str,
    model: TrainedAutoencoder,
    staging: Path,
    min_frames: int,
    rhythm: Callable[[], RhythmAnalysis],
) -> dict[str, Any]:
    """First pass for one file: stereo real-audio latents + raw note density (onsets/s) + BPM, staged on disk.

    ``rhythm()`` returns the file's onsets and tempo (analysed here or in a worker process).
    """
    import tempfile

    from safetensors.torch import save_file as save_tensors

    from orchestrion.audio.features import log_density, note_density
    from orchestrion.audio.io import audio_info, is_silent
    from orchestrion.audio.spectral import SAMPLE_RATE
    from orchestrion.errors import OrchestrionError
    from orchestrion.musika.codec import PAD, encode_audio
    from orchestrion.musika.inference import resampled_memmap

    hop = model.level2.config.hop
    try:
        channels = audio_info(path).channels
        if channels > 2:
            return {"source": source, "status": "skipped", "reason": f"{channels} channels (only mono or stereo)"}
        with tempfile.TemporaryDirectory(dir=staging, prefix=".resampled-") as scratch:
            wave = resampled_memmap(path, Path(scratch))  # (C, L) at 22.05 kHz, mapped from disk
            num_samples = wave.shape[-1]
            first, stop = real_frame_range(num_samples, PAD, hop)
            if stop - first < min_frames:
                del wave
                return {
                    "source": source, "status": "skipped",
                    "reason": f"too short: {num_samples / SAMPLE_RATE:.1f} s gives {stop - first} latent frames, "
                    f"fewer than one training window of {min_frames}",
                }
            step = 60 * SAMPLE_RATE  # peak a minute at a time: the mapped file never sits in memory whole
            if all(is_silent(wave[:, i : i + step].numpy()) for i in range(0, num_samples, step)):
                del wave
                return {"source": source, "status": "skipped", "reason": "digital silence (peak below -80 dBFS)"}
            latents = encode_audio(wave, model.level1, model.level2)  # (C, D, F): level 1 → 2 chunk by chunk
            del wave  # release the map before its file is removed
        analysis = rhythm()
    except OrchestrionError as error:
        return {"source": source, "status": "skipped", "reason": str(error)}
    latents = latents.expand(2, -1, -1) if latents.shape[0] == 1 else latents  # mono → left = right
    stereo = latents[..., first:stop].reshape(-1, stop - first)  # (2·D, R) = [left dims | right dims]
    density = note_density(analysis.onsets, frame_edges(first, stop, PAD, hop))
    staged = _staged_name(source)
    with atomic_path(staging / staged) as tmp:
        tensors = {"latents": stereo.contiguous(), "density": torch.from_numpy(density.astype(np.float32))}
        save_tensors(tensors, str(tmp))
    log_values = log_density(density)
    return {
        "source": source, "status": "ok", "staged": staged, "frames": stop - first,
        "bpm": analysis.bpm, "onsets": len(analysis.onsets),
        "log_density_min": float(log_values.min()), "log_density_max": float(log_values.max()),
    }


@contextlib.contextmanager
def _rhythm_analyser(jobs: int, paths: Sequence[Path]) -> Iterator[Callable[[Path], Callable[[], RhythmAnalysis]]]:
    """``analyser(path)()`` → the file's :class:`RhythmAnalysis`; with ``jobs > 1`` computed ahead in worker
    processes (madmom's networks are the slow part of the pipeline), else on demand in this process."""
    from orchestrion.audio.features import analyse_rhythm_file

    if jobs <= 1:
        yield lambda path: functools.partial(analyse_rhythm_file, path)
        return
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(jobs)  # spawn: no copy of this process's torch threads
    try:
        pending = {path: pool.apply_async(analyse_rhythm_file, (path,)) for path in paths}
        yield lambda path: pending[path].get
        pool.close()
        pool.join()
    finally:
        pool.terminate()  # after join a no-op; on an error or Ctrl-C it stops analyses still running


def _finish(
    out_dir: Path, settings: dict[str, Any], records: list[dict[str, Any]], model: TrainedAutoencoder
) -> dict[str, Any]:
    """Second pass: dataset-global normalisation, chunk files, report, then the manifest (written last)."""
    from safetensors.torch import load_file

    from orchestrion.audio import features
    from orchestrion.fileio import SkipReport

    staging = out_dir / STAGING_NAME
    report = SkipReport()
    for record in records:
        if record["status"] != "ok":
            report.skip(record["source"], record["reason"])
    report.write(out_dir / REPORT_NAME)
    usable = [r for r in records if r["status"] == "ok"]
    report.require_some(len(usable), f"audio files in {settings['audio_dir']} (see {out_dir / REPORT_NAME})")

    log_min = min(r["log_density_min"] for r in usable)
    log_max = max(r["log_density_max"] for r in usable)
    detected = [r["bpm"] for r in usable if r["bpm"] is not None]
    fill_bpm = float(np.median(detected)) if detected else None
    conditions: dict[str, dict[str, Any]] = {
        "note_density": {
            "onsets": features.ONSET_METHOD,
            "kernel": "gaussian KDE x number of onsets (onsets/s), mean over each frame's span",
            "bandwidth_factor": features.DENSITY_BANDWIDTH,
            "min_bandwidth_seconds": features.MIN_BANDWIDTH_SECONDS,
            "max_bandwidth_seconds": features.MAX_BANDWIDTH_SECONDS,
            "scale": "(log(1 + d) - log_min) / (log_max - log_min), clipped to [0, 1]",
            "log_min": log_min,
            "log_max": log_max,
        }
    }
    if fill_bpm is not None:  # without a single detected beat there is no tempo condition to learn
        conditions["tempo"] = {
            "method": features.TEMPO_METHOD,
            "bpm_min": features.BPM_MIN,
            "bpm_max": features.BPM_MAX,
            "scale": "(bpm - bpm_min) / (bpm_max - bpm_min), clipped to [0, 1], constant per file",
            "files_without_beat": len(usable) - len(detected),
            "fill_bpm": fill_bpm,
        }

    entries = []
    for record in usable:
        staged = load_file(str(staging / record["staged"]))
        latents, density = staged["latents"], staged["density"].numpy()
        curves = {"note_density": torch.from_numpy(features.normalise_density(density, log_min, log_max))}
        if fill_bpm is not None:
            bpm = record["bpm"] if record["bpm"] is not None else fill_bpm
            curves["tempo"] = torch.full((record["frames"],), features.normalise_tempo(bpm))
        for start in chunk_starts(record["frames"], settings["chunk_frames"]):
            stop = min(start + settings["chunk_frames"], record["frames"])
            name = chunk_name(len(entries))
            save_chunk(out_dir / name, latents[:, start:stop], {k: v[start:stop] for k, v in curves.items()})
            entries.append({
                "file": name, "source": record["source"], "start_frame": start, "frames": stop - start,
                "bpm": record["bpm"],
            })
    listed = {entry["file"] for entry in entries}
    ours, _ = _our_files(out_dir)
    _remove([p for p in ours if p.suffix == ".safetensors" and p.name not in listed])  # from an older attempt
    manifest = build_manifest(
        autoencoder_run=settings["autoencoder_run"],
        digest=settings["autoencoder_digest"],
        latent_dim=model.level2.config.latent_dim,
        frames_per_second=model.level2.config.frames_per_second,
        chunk_frames=settings["chunk_frames"],
        min_frames=settings["min_frames"],
        conditions=conditions,
        chunks=entries,
    )
    write_manifest(out_dir, manifest)
    _remove([staging])
    return manifest


def prepare_latents(
    audio_dir: str | Path,
    model_run: str | Path,
    out_dir: str | Path,
    *,
    chunk_frames: int = CHUNK_FRAMES,
    min_frames: int = MIN_FRAMES,
    device: str = "auto",
    jobs: int = 1,
    overwrite: bool = False,
    on_file: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Turn a folder of audio into a latent-chunk folder for GAN training (spec §9); returns the manifest.

    Every file (searched recursively) is decoded, resampled to 22.05 kHz and encoded per channel to
    level-2 latents by the autoencoder ``model_run`` (level 1 → level 2 one 60 s block at a time, so
    long files never hold all level-1 latents); mono is duplicated to left and right. Only frames
    computed from real audio are kept (:func:`real_frame_range`). Files with fewer than ``min_frames``
    such frames (one training window, ``2·seq_len``), unreadable files and files with more than two
    channels are skipped and listed in ``report.jsonl``; the run fails only when no file is usable.
    Note density and tempo (:mod:`orchestrion.audio.features`) are computed per file on the same frame
    grid, then normalised with dataset-global constants in a second pass.

    The work is restartable: each finished file is recorded in ``out_dir/.staging``; running the same
    command again continues where a killed run stopped. ``manifest.json`` is written last, so a folder
    with a manifest is always complete. ``out_dir`` must be new, empty, or a prepare-latents folder
    (finished ones are replaced only with ``overwrite``). ``jobs`` worker processes analyse onsets and tempo
    ahead of the encoder (the results do not depend on it). ``on_file(source)`` is called after each file.
    """
    from orchestrion.audio.features import require_madmom
    from orchestrion.audio.io import collect_audio_files
    from orchestrion.musika.inference import latent_digest, resolve_device
    from orchestrion.musika.models import load_autoencoder

    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    if jobs < 1:
        raise DataError(f"jobs must be at least 1, got {jobs}")
    if not 1 <= min_frames <= chunk_frames:
        raise DataError(f"need 1 <= min_frames <= chunk_frames, got min_frames {min_frames}, chunk {chunk_frames}")
    files = collect_audio_files(audio_dir)
    if out_dir.resolve() == audio_dir.resolve() or audio_dir.resolve() in out_dir.resolve().parents:
        raise DataError(f"{out_dir}: lies inside the audio folder {audio_dir}; write the chunks elsewhere")
    model = load_autoencoder(model_run, resolve_device(device), accept_gan_run=True)
    if model.level2 is None:
        raise DataError(f"{model_run}: is a level-1 autoencoder; the latent GAN trains on level-2 latents")
    require_madmom()  # a missing detector is one error now, not one skipped file each
    settings = {
        "audio_dir": str(audio_dir.resolve()),
        "autoencoder_run": str(Path(model_run).resolve()),  # train-gan finds the autoencoder here
        "autoencoder_digest": latent_digest(model),
        "chunk_frames": chunk_frames,
        "min_frames": min_frames,
    }
    done = _open_output(out_dir, settings, overwrite)
    staging = out_dir / STAGING_NAME
    sources = {path: str(path.relative_to(audio_dir)) if audio_dir.is_dir() else path.name for path in files}
    todo = [path for path in files if sources[path] not in done]
    with _rhythm_analyser(jobs, todo) as analyser:
        for path in files:
            source = sources[path]
            if source not in done:
                done[source] = _stage_file(path, source, model, staging, min_frames, analyser(path))
                _append_progress(staging, done[source])
            if on_file is not None:
                on_file(source)
    return _finish(out_dir, settings, [done[sources[path]] for path in files], model)
