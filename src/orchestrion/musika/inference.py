"""Apply a trained Musika autoencoder to files: encode, decode, reconstruct, compare.

Thin file-level layer over :mod:`orchestrion.musika.codec` (which does the arbitrary-length
chunked maths) and :func:`orchestrion.musika.models.load_autoencoder` (which rebuilds a model
from a level-1 or a self-contained level-2 run directory). The CLI commands
``orchestrion musika encode|decode|reconstruct`` call these functions.

Audio keeps its channels (each channel is encoded separately, as for the latent GAN);
decoding samples the decoders' noise (and Griffin-Lim's initial phase) from a fixed seed, so results
are reproducible.

Phase (``phase=``, the CLI's ``--phase``): ``"learned"`` is the decoder's own (Musika; needs a
phase-2 level-1 model), ``"griffin-lim"`` 32 rounds of fast Griffin-Lim on the decoded magnitude
(any model, a phase-1 one included; it takes about 3x the learned phase's decoding time:
``benchmarks/musika_codec_speed.py``), and ``"auto"``
(the default) the learned phase where the model has one, Griffin-Lim otherwise.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from orchestrion.audio.phase import GRIFFIN_LIM_ITERATIONS, PHASE_SOURCES
from orchestrion.device import resolve_device
from orchestrion.errors import AudioError, CheckpointError, DataError, OrchestrionError
from orchestrion.fileio import SkipReport, check_output_path
from orchestrion.musika.models import TrainedAutoencoder, load_autoencoder

DECODE_SEED = 0
PHASE_CHOICES = ("auto", *PHASE_SOURCES)  # auto: the learned phase where the model has one
SKIP_REPORT = "report.jsonl"  # files a folder job could not use, one JSON object each


def latent_digest(model: TrainedAutoencoder) -> str:
    """Identifies the latent space: a hash of the encoder weights (decoders may be retrained on it)."""
    from orchestrion.musika.codec import weights_digest

    encoders = [model.level1.encoder] + ([model.level2.encoder] if model.level2 is not None else [])
    return weights_digest(*encoders)


def _fast_options(model: TrainedAutoencoder, precision: str) -> dict:
    """Decode with the BatchNorm-folded oneDNN decoder where it runs (CPU); fp32 equals the plain path."""
    from orchestrion.musika.fast import PRECISIONS

    if precision not in PRECISIONS:
        raise DataError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    on_cpu = next(model.level1.parameters()).device.type == "cpu"
    if precision != "fp32" and not on_cpu:
        raise DataError(f"precision {precision!r} is a CPU fast-path option; use fp32 on {resolve_device('auto')}")
    return {"fast": on_cpu and torch.backends.mkldnn.is_available(), "precision": precision}


def resampled_memmap(path: Path, folder: Path) -> torch.Tensor:
    """``path`` decoded and resampled to 22.05 kHz into a float32 file in ``folder``, mapped as (C, L).

    Reading goes chunk by chunk and the encoder slices the map, so hours of audio never sit in
    memory at once (the OS pages the map in and out).
    """
    from orchestrion.audio.io import audio_info, iter_audio_chunks

    raw = folder / "audio.f32"
    channels = audio_info(path).channels
    samples = 0
    with open(raw, "wb") as handle:
        for chunk in iter_audio_chunks(path, chunk_seconds=60.0):
            handle.write(np.ascontiguousarray(chunk.T, dtype=np.float32).tobytes())
            samples += chunk.shape[1]
    if samples == 0:
        raise DataError(f"{path}: no audio samples")
    mapped = np.memmap(raw, dtype=np.float32, mode="c", shape=(samples, channels))  # copy-on-write: writable view
    return torch.from_numpy(mapped).T


def _write_wave_stream(target: Path, pieces: Iterable[torch.Tensor], offset: int, num_samples: int) -> Path:
    """Write consecutive (C, n) pieces, trimmed to ``[offset, offset + num_samples)``, clipped, atomically."""
    import soundfile

    from orchestrion.audio.spectral import SAMPLE_RATE
    from orchestrion.fileio import atomic_path

    with atomic_path(target) as tmp, contextlib.ExitStack() as open_files:
        handle = None
        position, end = 0, offset + num_samples
        for piece in pieces:
            start, stop = max(offset - position, 0), min(end - position, piece.shape[-1])
            position += piece.shape[-1]
            if stop <= start:
                continue
            block = piece[:, start:stop].clamp(-1.0, 1.0).numpy().T
            if handle is None:  # closed however decoding ends, before the temporary is removed
                handle = open_files.enter_context(
                    soundfile.SoundFile(tmp, "w", SAMPLE_RATE, block.shape[1], subtype="PCM_16")
                )
            handle.write(block)
        if handle is None:
            raise DataError(f"{target}: nothing to write (no samples decoded)")
    return target


def resolve_phase(model: TrainedAutoencoder, phase: str) -> str:
    """The phase source ``iter_decode`` gets for ``phase`` (one of :data:`PHASE_CHOICES`) on ``model``."""
    if phase not in PHASE_CHOICES:
        raise DataError(f"unknown phase {phase!r}; choose from {', '.join(PHASE_CHOICES)}")
    has_phase = model.level1.config.with_phase
    if phase == "auto":
        return "learned" if has_phase else "griffin-lim"
    if phase == "learned" and not has_phase:
        raise CheckpointError(
            f"{model.path}: a level-1 phase-1 model decodes magnitude only and has no learned phase; use "
            "--phase griffin-lim (or auto), or train phase 2 (orchestrion musika train-ae --phase 2 --init RUN_DIR)"
        )
    return phase


def reconstruct(
    wave: torch.Tensor, model: TrainedAutoencoder, seed: int = DECODE_SEED, phase: str = "auto"
) -> torch.Tensor:
    """Encode and decode ``wave`` (C, L) at 22.05 kHz → (C, L) reconstruction, clipped to [−1, 1]."""
    from orchestrion.musika.codec import decode_latent_file, encode_to_latent_file

    phase = resolve_phase(model, phase)
    latent_file = encode_to_latent_file(wave, model.level1, model.level2)
    return decode_latent_file(
        latent_file, model.level1, model.level2, seed=seed, phase=phase, **_fast_options(model, "fp32")
    )


def latent_name(relative: str | Path) -> Path:
    """Where the latents of audio file ``relative`` (to the source folder) go, relative to the output folder.

    Folders and the extension are kept (``a/b.wav`` → ``a/b.wav.safetensors``), so two audio
    files never share a latent file (``b.wav`` and ``b.flac``, ``a/b.wav`` and ``a__b.wav``).
    """
    relative = Path(relative)
    return relative.with_name(f"{relative.name}.safetensors")


def decoded_name(latent_relative: str | Path) -> Path:
    """The WAV a latent file decodes to: ``a/b.wav.safetensors`` → ``a/b.wav``, ``a/b.mp3.safetensors``
    → ``a/b.mp3.wav`` (decoded audio is always WAV; the source's extension keeps names unique)."""
    relative = Path(latent_relative)
    stem = relative.name.removesuffix(".safetensors")
    return relative.with_name(stem if stem.lower().endswith(".wav") else f"{stem}.wav")


def check_outputs(
    targets: Iterable[Path], *, overwrite: bool, inputs: Iterable[Path] = (), out_dir: Path | None = None
) -> None:
    """:func:`~orchestrion.fileio.check_output_path` for every file a folder job will write, before the work.

    Without ``overwrite`` the job is refused if any target exists (naming the first and how many), so
    a folder is never half replaced; an input is never a target, no target may be a folder, and the
    output folder ``out_dir`` may not be a file.
    """
    inputs = list(inputs)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise OrchestrionError(f"{out_dir}: is a file; --out takes a folder")
    existing = []
    for target in targets:
        check_output_path(target, overwrite=True, inputs=inputs)  # never an input, never a folder
        if target.exists() and not overwrite:
            existing.append(target)
    if existing:
        more = f" and {len(existing) - 1} more output file(s)" if len(existing) > 1 else ""
        raise OrchestrionError(f"{existing[0]}{more}: exist; pass --overwrite to replace them")


def encode_files(
    source: str | Path,
    model_path: str | Path,
    out_dir: str | Path,
    *,
    device: str = "auto",
    overwrite: bool = False,
    skipped: SkipReport | None = None,
) -> Iterator[Path]:
    """Encode one audio file or every audio file under a folder to latent files in ``out_dir``.

    Yields each written ``.safetensors`` path (named by :func:`latent_name`), then writes
    ``index.json`` for every latent file of ``out_dir``. Existing latent files are refused without
    ``overwrite`` (checked before any work). A file that cannot be read is skipped, recorded in
    ``skipped`` and in ``out_dir/report.jsonl`` (written whenever a file was skipped, removed otherwise); only when
    no file could be encoded is it an error. Every latent file is written atomically: a failure
    never leaves a partial one.
    """
    from orchestrion.audio.io import collect_audio_files
    from orchestrion.musika.codec import encode_to_latent_file, save_latents, write_latent_index

    source, out_dir = Path(source), Path(out_dir)
    files = collect_audio_files(source)
    relatives = [path.relative_to(source) if source.is_dir() else Path(path.name) for path in files]
    targets = [out_dir / latent_name(relative) for relative in relatives]
    check_outputs(targets, overwrite=overwrite, inputs=files, out_dir=out_dir)
    model = load_autoencoder(model_path, resolve_device(device), accept_gan_run=True)
    digest = latent_digest(model)
    skipped = SkipReport() if skipped is None else skipped
    written = 0
    created = _outermost_missing(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, relative, target in zip(files, relatives, targets, strict=True):
        try:
            with tempfile.TemporaryDirectory(dir=out_dir, prefix=".resampled-") as scratch:
                wave = resampled_memmap(path, Path(scratch))
                latent_file = encode_to_latent_file(
                    wave, model.level1, model.level2, source=relative.as_posix(), checkpoint=digest
                )
                del wave  # release the map before its file is removed
        except (AudioError, DataError) as error:
            skipped.skip(path, str(error))
            continue
        save_latents(target, latent_file)
        written += 1
        yield target
    _finish_folder_job(out_dir, created, skipped, written, f"audio in {source}")
    write_latent_index(out_dir)


def _outermost_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (what a job will create)."""
    return next((path for path in reversed([folder, *folder.parents]) if not path.exists()), None)


def _finish_folder_job(out_dir: Path, created: Path | None, skipped: SkipReport, written: int, what: str) -> None:
    """End a folder job that skips bad inputs: write ``out_dir/report.jsonl`` when some were skipped (else
    remove an earlier run's, no longer true), and when nothing was written remove the folder the job
    created and raise :class:`DataError` listing why."""
    if written == 0 and created is not None:
        shutil.rmtree(created, ignore_errors=True)  # leave no empty output folder (the error lists why)
    elif skipped.skipped:
        skipped.write(out_dir / SKIP_REPORT)
    else:
        (out_dir / SKIP_REPORT).unlink(missing_ok=True)
    skipped.require_some(written, what)


def describe_model(model: TrainedAutoencoder, phase: str | None = None) -> str:
    """One line saying which checkpoint a command uses: its path, level, phase and training step, and
    with ``phase`` (a :data:`PHASE_CHOICES` value) where the audio's phase comes from."""
    from orchestrion.checkpoint import checkpoint_step

    saved_step = checkpoint_step(model.path)
    step = "" if saved_step is None else f", step {saved_step}"
    line = f"model {model.path} (level {model.level}, phase {model.config.phase}{step})"
    if phase is None:
        return line
    source = {
        "learned": "the decoder's learned phase",
        "griffin-lim": f"Griffin-Lim phase ({GRIFFIN_LIM_ITERATIONS} iterations)",
    }
    return f"{line}; audio with {source[resolve_phase(model, phase)]}"


def decode_files(
    latent_dir: str | Path,
    model_path: str | Path,
    out_dir: str | Path,
    *,
    device: str = "auto",
    precision: str = "fp32",
    phase: str = "auto",
    overwrite: bool = False,
    on_model: Callable[[TrainedAutoencoder], None] | None = None,
    skipped: SkipReport | None = None,
) -> Iterator[Path]:
    """Decode every latent file under ``latent_dir`` (or one file) to a WAV in ``out_dir``; yields the paths.

    Each WAV keeps the latent file's folder and name (see :func:`decoded_name`). Existing WAVs are
    refused without ``overwrite``, before any work. Audio is streamed block by block to the file
    (bounded memory for any length), atomically: a failure never leaves a partial WAV. On the CPU the
    fast decoder is used (``precision="bf16"`` trades ~40 dB SNR for ~2x speed, opt-in). ``phase``:
    see the module docstring. ``on_model`` is called with the loaded model.

    A latent file that cannot be used (unreadable or corrupt, another level, made by another model's
    encoder) is skipped, recorded in ``skipped`` and in ``out_dir/report.jsonl`` (written whenever a file
    was skipped, removed otherwise); only when no file could be decoded is it a :class:`DataError`
    that lists why.
    """
    from orchestrion.musika.codec import iter_decode, latent_files, load_latents

    latent_dir, out_dir = Path(latent_dir), Path(out_dir)
    if latent_dir.is_file():
        files, root = [latent_dir], latent_dir.parent
    elif latent_dir.is_dir():
        files, root = latent_files(latent_dir), latent_dir
    else:
        raise DataError(f"{latent_dir}: no such latent file or folder")
    if not files:
        raise DataError(f"{latent_dir}: no latent files (*.safetensors) found")
    targets = [out_dir / decoded_name(path.relative_to(root)) for path in files]
    check_outputs(targets, overwrite=overwrite, inputs=files, out_dir=out_dir)
    model = load_autoencoder(model_path, resolve_device(device), accept_gan_run=True)
    phase = resolve_phase(model, phase)
    if on_model is not None:
        on_model(model)
    digest = latent_digest(model)
    fast_options = _fast_options(model, precision)
    skipped = SkipReport() if skipped is None else skipped
    written = 0
    created = _outermost_missing(out_dir)
    for path, target in zip(files, targets, strict=True):
        try:
            latent_file = load_latents(path)
            if latent_file.level != model.level:
                raise DataError(f"{path}: level-{latent_file.level} latents, but the model is level {model.level}")
            if latent_file.checkpoint and latent_file.checkpoint != digest:
                raise DataError(
                    f"{path}: latents were made by another model (encoder digest {latent_file.checkpoint}, "
                    f"model {model_path} has {digest})"
                )
            pieces = iter_decode(
                latent_file.latents, model.level1, model.level2, seed=DECODE_SEED, phase=phase, **fast_options
            )
            _write_wave_stream(target, pieces, latent_file.offset, latent_file.num_samples)
        except DataError as error:
            skipped.skip(path, str(error))
            continue
        written += 1
        yield target
    _finish_folder_job(out_dir, created, skipped, written, f"latent files in {latent_dir}")


LOWEST_SHOWN_HZ = 40.0  # bottom of the log-frequency axis (bins below are one or two 21.5 Hz steps wide)


def spectrogram_comparison_figure(panels: Iterable[tuple[str, np.ndarray]]):
    """A matplotlib figure with one normalised log-power spectrogram per ``(title, mono wave)`` panel.

    Frequency runs on a logarithmic axis from 40 Hz to 11.025 kHz, so the octaves where music
    lives get the room they take to the ear (on a linear axis they sit in the bottom fifth).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from orchestrion.audio.spectral import FRAMES_PER_SECOND, SAMPLE_RATE, wave_to_features

    panels = list(panels)
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 3 * len(panels)), squeeze=False)
    for axis, (title, wave) in zip(axes[:, 0], panels, strict=True):
        features = wave_to_features(torch.as_tensor(wave, dtype=torch.float32)[None])[0].numpy()  # (513, frames)
        bins, frames = features.shape
        bin_hz = SAMPLE_RATE / 2 / (bins - 1)
        # cell edges: bin k covers [(k - 1/2), (k + 1/2)] · bin_hz; bin 0 (DC) is left out of a log axis
        edges_hz = (np.arange(1, bins + 1) - 0.5) * bin_hz
        times = np.arange(frames + 1) / FRAMES_PER_SECOND
        image = axis.pcolormesh(times, edges_hz, features[1:], vmin=-1, vmax=1, cmap="magma", shading="flat")
        axis.set_yscale("log")
        axis.set_ylim(LOWEST_SHOWN_HZ, SAMPLE_RATE / 2)
        axis.set(title=title, xlabel="time (s)", ylabel="frequency (Hz, log scale)")
        figure.colorbar(image, ax=axis, label="normalised log-power")
    figure.tight_layout()
    return figure


def spectrogram_comparison_png(path: str | Path, panels: Iterable[tuple[str, np.ndarray]]) -> Path:
    """Write :func:`spectrogram_comparison_figure` of ``panels`` to the PNG ``path`` (atomically)."""
    import matplotlib.pyplot as plt

    from orchestrion.fileio import atomic_write_bytes

    figure = spectrogram_comparison_figure(panels)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def reconstruct_file(
    in_path: str | Path,
    out_path: str | Path,
    model_path: str | Path,
    *,
    png: bool = False,
    device: str = "auto",
    phase: str = "auto",
    overwrite: bool = False,
    on_model: Callable[[TrainedAutoencoder], None] | None = None,
) -> list[Path]:
    """Encode + decode one audio file to ``out_path`` (WAV/FLAC, same channels and length).

    With ``png`` also writes ``out_path`` with suffix ``.png``: spectrograms of the input
    and the reconstruction (first channel). The outputs are checked before any work: never the
    input, existing files only with ``overwrite``. ``phase``: see the module docstring. ``on_model``
    is called with the loaded model. Returns the written paths.
    """
    from orchestrion.audio.io import check_audio_output, load_audio, save_audio

    in_path, out_path = Path(in_path), Path(out_path)
    check_audio_output(out_path, overwrite=overwrite, inputs=[in_path])
    if png:
        check_output_path(out_path.with_suffix(".png"), overwrite=overwrite, inputs=[in_path])
    model = load_autoencoder(model_path, resolve_device(device), accept_gan_run=True)
    phase = resolve_phase(model, phase)
    if on_model is not None:
        on_model(model)
    wave = load_audio(in_path)
    rebuilt = reconstruct(torch.from_numpy(wave), model, phase=phase).numpy()
    written = [save_audio(out_path, rebuilt)]
    if png:
        panels = [(f"input: {in_path.name}", wave[0]), (f"reconstruction (level {model.level})", rebuilt[0])]
        written.append(spectrogram_comparison_png(out_path.with_suffix(".png"), panels))
    return written
