"""Arbitrary-length audio <-> Musika latents, latent files on disk, and fast inference.

Encoding (:func:`encode_audio`)
    A (C, L) waveform at 22.05 kHz is padded with ``PAD = 768`` zeros in front and zeros at the end
    up to ``256·K + 768`` samples, where K is the smallest multiple of the 64-frame decoder window
    with ``256·K ≥ L + 768``. The padding puts every original sample under the full 4-frame window
    overlap, so after decoding the audio is ``wave[:, PAD : PAD + L]`` (the first and last 768
    samples of an iSTFT lack overlap). Chunks of whole windows are encoded one after another: Enc1
    is frame-wise and frames are independent, Enc2 is local to chunks of ``ratio`` frames and the
    chunk boundaries are multiples of 64, so chunking is exact. Channels travel as one batch.

Decoding (:func:`iter_decode` / :func:`decode_latents`)
    Blocks of whole decoder windows (Dec2 on 8-frame windows, Dec1 on 64-frame windows, all
    windows of a block and all channels in one batch); every block is inverted by one iSTFT and the
    768-sample overlap with the next block is carried over, so the result equals one iSTFT over
    the whole sequence (spec §2) while memory stays bounded for hours of audio. The phase is the
    decoder's own (``phase="learned"``, Musika) or Griffin-Lim's on the decoded magnitude
    (``phase="griffin-lim"``: :class:`~orchestrion.audio.phase.StreamingGriffinLim`, each block
    continuing the last frames of the one before), which also makes audio from a magnitude-only
    (phase-1) level-1 model.

Latent file format, version 1 (:func:`save_latents` / :func:`load_latents`)
    One ``.safetensors`` file per audio file with a single tensor ``latents`` of shape
    (channels, dim, frames), float32, and string metadata:

    ==================  =====================================================================
    ``format``          ``"orchestrion-musika-latents"``
    ``format_version``  ``"1"``
    ``level``           ``"1"`` or ``"2"`` (which autoencoder produced the latents)
    ``sample_rate``     ``"22050"``
    ``hop``             audio samples per latent frame: 256 (level 1), 2048 (techno), 4096 (piano)
    ``num_samples``     original waveform length in samples
    ``offset``          leading padding in samples (768): audio = decoded[offset : offset + num_samples]
    ``channels``, ``dim``, ``frames``   the tensor's shape, checked on load
    ``source``          source audio file name (may be empty)
    ``checkpoint``      hash identifying the autoencoder weights (:func:`weights_digest`, may be empty)
    ==================  =====================================================================

    A directory of latent files has an ``index.json`` (:func:`write_latent_index`) listing every
    file with its metadata, so a loader can plan crops without opening the tensors.

Fast inference
    :func:`fuse_for_inference` returns a copy of a model in eval mode with every BatchNorm folded
    into the preceding conv. ``decode_latents(..., fast=True)`` (and ``iter_decode``) decode with a
    :class:`~orchestrion.musika.fast.FastDecoder` instead, built for the call from the models' current
    weights, or the one the caller froze and passes as ``decoder=`` (:func:`~orchestrion.musika.fast.freeze`):
    folded weights, channels-last
    oneDNN convolutions, Dec2 chained into Dec1 without re-windowing and a frame-major block-wise
    iSTFT; float32 by default (within :data:`~orchestrion.musika.fast.FP32_TOLERANCE` = 1e-5 of the
    waveform's peak of the plain path, noise included), with
    opt-in, lossy ``precision="bf16"`` / ``"bf16-mixed"``. ``fast=False`` (the default) is the plain
    model path, kept for comparison. Numbers: ``benchmarks/musika_codec_speed.py``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from orchestrion import __version__
from orchestrion.audio.phase import GRIFFIN_LIM_ITERATIONS, PHASE_SOURCES, StreamingGriffinLim
from orchestrion.audio.spectral import (
    HOP,
    N_FFT,
    SAMPLE_RATE,
    denormalise_magnitude,
    frames_to_wave,
    istft,
    wave_to_features,
)
from orchestrion.errors import DataError
from orchestrion.fileio import atomic_path, atomic_write_text, read_json
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.fast import FastDecoder, freeze
from orchestrion.musika.layers import AddNoise, ConvBlock

FORMAT = "orchestrion-musika-latents"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
PAD = N_FFT - HOP  # 768 samples of leading padding; also the overlap between consecutive iSTFT blocks

# ---------------------------------------------------------------------------------------------
# Frame arithmetic
# ---------------------------------------------------------------------------------------------


def padded_frames(num_samples: int, window_frames: int = 64) -> int:
    """Level-1 frames K used for ``num_samples`` of audio: smallest multiple of the window with
    ``256·K ≥ num_samples + 768`` (so the audio, shifted by 768, lies under full window overlap)."""
    windows = max(1, math.ceil((num_samples + PAD) / (HOP * window_frames)))
    return windows * window_frames


def _padded_slice(wave: Tensor, start: int, stop: int) -> Tensor:
    """Samples [start, stop) of the virtual signal ``[768 zeros, wave, zeros...]``, shape (C, stop - start)."""
    out = wave.new_zeros(wave.shape[0], stop - start)
    src_start, src_stop = max(start - PAD, 0), min(stop - PAD, wave.shape[-1])
    if src_stop > src_start:
        out[:, src_start + PAD - start : src_stop + PAD - start] = wave[:, src_start:src_stop]
    return out


def _require_eval(*models: nn.Module | None) -> None:
    for model in models:
        if model is not None and model.training:
            raise ValueError(f"{type(model).__name__} is in training mode; call .eval() before encoding/decoding")


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def encode_audio(
    wave: Tensor,
    level1: Level1Autoencoder,
    level2: Level2Autoencoder | None = None,
    *,
    chunk_seconds: float = 60.0,
) -> Tensor:
    """Encode a waveform of any length, chunk by chunk.

    Args:
        wave: (C, L) float32 waveform at 22.05 kHz in [-1, 1] (C channels encoded independently).
        level1, level2: models in eval mode; without ``level2`` the level-1 latents are returned.
        chunk_seconds: audio per chunk (rounded to whole 64-frame windows); bounds memory only,
            the result does not depend on it.
    Returns:
        (C, 128, K) level-1 latents or (C, 64, K / ratio) level-2 latents, K = :func:`padded_frames`.
    """
    if wave.dim() != 2 or wave.shape[-1] == 0:
        raise ValueError(f"expected a (channels, samples) waveform, got shape {tuple(wave.shape)}")
    _require_eval(level1, level2)
    window = level1.config.window_frames
    total = padded_frames(wave.shape[-1], window)
    chunk = max(1, round(chunk_seconds * SAMPLE_RATE / (HOP * window))) * window
    parameter = next(level1.parameters())
    pieces = []
    with torch.inference_mode():
        for first in range(0, total, chunk):
            frames = min(chunk, total - first)
            audio = _padded_slice(wave, HOP * first, HOP * (first + frames) + PAD)
            features = wave_to_features(audio.to(parameter.device, torch.float32))  # (C, 513, frames)
            latents = level1.encode(features.to(parameter.dtype))  # (C, 128, frames)
            if level2 is not None:
                latents = level2.encode(latents)  # (C, 64, frames / ratio)
            pieces.append(latents.float().cpu())
    return torch.cat(pieces, dim=-1)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _noise(models: list[nn.Module], enabled: bool, generator: torch.Generator | None) -> Iterator[None]:
    """Temporarily switch the AddNoise layers of ``models``; restores their previous settings."""
    layers = [layer for model in models for layer in model.modules() if isinstance(layer, AddNoise)]
    saved = [(layer.enabled, layer.generator) for layer in layers]
    for layer in layers:
        layer.enabled, layer.generator = enabled, generator
    try:
        yield
    finally:
        for layer, (was_enabled, was_generator) in zip(layers, saved, strict=True):
            layer.enabled, layer.generator = was_enabled, was_generator


def iter_decode(
    latents: Tensor,
    level1: Level1Autoencoder,
    level2: Level2Autoencoder | None = None,
    *,
    block_windows: int = 32,
    noise: bool = True,
    seed: int | None = None,
    fast: bool = False,
    precision: str = "fp32",
    decoder: FastDecoder | None = None,
    phase: str = "learned",
    griffin_lim_iterations: int = GRIFFIN_LIM_ITERATIONS,
) -> Iterator[Tensor]:
    """Decode latents block by block, yielding consecutive waveform pieces (streaming API).

    Args:
        latents: (C, dim, F) level-2 latents (F a multiple of the Dec2 window, 8 techno / 4 piano)
            or, without ``level2``, level-1 latents (F a multiple of 64).
        block_windows: decoder windows per block (per channel); bounds memory, not the result
            (with the learned phase; Griffin-Lim solves each block in turn, see the module docstring).
        noise: sample the decoders' AddNoise (as the reference); False makes decoding deterministic.
        seed: seeds the noise generator and Griffin-Lim's initial phase (reproducible for a fixed
            ``block_windows``).
        fast: decode with a :class:`~orchestrion.musika.fast.FastDecoder` (BatchNorm folded,
            channels-last oneDNN convs, frame-major iSTFT) frozen from the models' weights for this
            call. With ``precision="fp32"`` the output equals the plain models' within
            :data:`~orchestrion.musika.fast.FP32_TOLERANCE` of the signal's peak, noise included.
        precision: for ``fast=True`` only: ``"fp32"`` (default), or the opt-in, lower-quality
            ``"bf16"`` / ``"bf16-mixed"`` (see :mod:`orchestrion.musika.fast`).
        decoder: a :class:`~orchestrion.musika.fast.FastDecoder` the caller froze and keeps (no
            rebuild per call; it decodes with the weights it was frozen with). Implies ``fast``.
        phase: ``"learned"``: the decoder's phase output (a phase-2 level-1 model); ``"griffin-lim"``:
            ``griffin_lim_iterations`` rounds of fast Griffin-Lim on the decoded magnitude (any model;
            a separate phase U-Net is then not run).
    Yields:
        (C, n) float32 waveform pieces; concatenated they are the one-shot iSTFT output of
        ``256·K + 768`` samples (K level-1 frames), not clipped and not trimmed.
    """
    if latents.dim() != 3:
        raise ValueError(f"expected (channels, dim, frames) latents, got shape {tuple(latents.shape)}")
    if phase not in PHASE_SOURCES:
        raise ValueError(f"phase must be one of {', '.join(PHASE_SOURCES)}, got {phase!r}")
    learned = phase == "learned"
    if learned and not level1.config.with_phase:
        raise ValueError(
            "the level-1 decoder has no phase output (phase-1 mode): decode with phase='griffin-lim', "
            "or train phase 2"
        )
    _require_eval(level1, level2)
    step = level2.config.decoder_input_frames if level2 is not None else level1.config.window_frames
    if latents.shape[-1] == 0 or latents.shape[-1] % step:
        raise ValueError(f"{latents.shape[-1]} latent frames is not a positive multiple of the {step}-frame window")
    parameter = next(level1.parameters())
    generator = None
    if seed is not None:
        generator = torch.Generator(device=parameter.device).manual_seed(seed)
    griffin_lim = None
    if not learned:
        phase_generator = None if seed is None else torch.Generator(device=parameter.device).manual_seed(seed)
        griffin_lim = StreamingGriffinLim(griffin_lim_iterations, generator=phase_generator)
    if decoder is None and fast:
        decoder = freeze(level1, level2, precision, magnitude_only=not learned)
    if learned and decoder is not None and not decoder.with_phase:
        raise ValueError("the given FastDecoder was frozen with magnitude_only=True: it has no phase to decode with")
    models = [m for m in (level1, level2) if m is not None]
    carry = None  # last 768 samples of the previous block, still waiting for the next block's frames
    with torch.inference_mode(), _noise(models, noise, generator):
        for first in range(0, latents.shape[-1], step * block_windows):
            block = latents[..., first : first + step * block_windows].to(parameter.device)
            if decoder is not None:
                out = decoder.decode(block, noise=noise, generator=generator)  # (C, frames, 1026) frame-major
                features, learned_phase = out[..., : decoder.n_bins], out[..., decoder.n_bins :]
            else:
                features, learned_phase = _decode_block(block.to(parameter.dtype), level1, level2, learned)
            if griffin_lim is None:
                wave = frames_to_wave(features, learned_phase)
            else:
                magnitude = denormalise_magnitude(features.float()).transpose(1, 2)  # (C, 513, frames)
                wave = istft(magnitude, griffin_lim(magnitude))
            if carry is not None:
                wave[:, :PAD] += carry
            carry = wave[:, -PAD:]
            yield wave[:, :-PAD].cpu()
        yield carry.cpu()


def _decode_block(
    block: Tensor, level1: Level1Autoencoder, level2: Level2Autoencoder | None, with_phase: bool
) -> tuple[Tensor, Tensor | None]:
    """The un-optimised path: (C, dim, F) latents -> frame-major (C, K, 513) normalised log-power and
    phase / π (None unless ``with_phase``), float32."""
    if level2 is not None:
        block = level2.decode(block)  # (C, 128, frames)
    if not with_phase:
        return level1.decode_magnitude(block).float().transpose(1, 2), None
    magnitude, phase = level1.decode(block)  # (C, 513, frames) each
    return magnitude.float().transpose(1, 2), phase.float().transpose(1, 2)


def decode_latents(
    latents: Tensor,
    level1: Level1Autoencoder,
    level2: Level2Autoencoder | None = None,
    *,
    num_samples: int | None = None,
    offset: int = PAD,
    clip: bool = True,
    block_windows: int = 32,
    noise: bool = True,
    seed: int | None = None,
    fast: bool = False,
    precision: str = "fp32",
    decoder: FastDecoder | None = None,
    phase: str = "learned",
    griffin_lim_iterations: int = GRIFFIN_LIM_ITERATIONS,
) -> Tensor:
    """Decode latents of any length to a waveform (see :func:`iter_decode` for the arguments).

    Args:
        num_samples: if given, return ``wave[:, offset : offset + num_samples]`` -- the original
            audio of :func:`encode_audio` (whose leading padding is ``offset = 768``). Otherwise the
            whole ``256·K + 768``-sample iSTFT output (e.g. for generated latents).
        clip: clip to [-1, 1] (the very end of generation, spec §2).
    Returns:
        (C, L) float32 waveform at 22.05 kHz.
    """
    pieces = iter_decode(
        latents, level1, level2, block_windows=block_windows, noise=noise, seed=seed, fast=fast, precision=precision,
        decoder=decoder, phase=phase, griffin_lim_iterations=griffin_lim_iterations,
    )
    wave = torch.cat(list(pieces), dim=-1)
    if num_samples is not None:
        if offset + num_samples > wave.shape[-1]:
            raise ValueError(f"asked for {num_samples} samples at offset {offset}, decoded {wave.shape[-1]}")
        wave = wave[:, offset : offset + num_samples]
    return wave.clamp(-1.0, 1.0) if clip else wave


# ---------------------------------------------------------------------------------------------
# Fast inference
# ---------------------------------------------------------------------------------------------


def fuse_for_inference(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm folded into its conv (and noise scale).

    With the default float32 the outputs equal those of ``model.eval()`` up to float rounding (within
    :data:`~orchestrion.musika.fast.FP32_TOLERANCE` = 1e-5 of the output's peak). ``dtype=torch.bfloat16``
    additionally casts the weights for CPUs with bf16 matrix units
    (about 2x faster, at a measurable quality cost -- see ``benchmarks/musika_codec_speed.py``); the
    codec feeds it bf16 latents and runs the iSTFT in float32. The copy shares no tensors with
    ``model`` and is for inference only (its state dict differs).
    """
    fused = copy.deepcopy(model).eval()
    for layer in fused.modules():
        if isinstance(layer, ConvBlock):
            layer.fold_batchnorm()
    return fused.to(dtype)


# ---------------------------------------------------------------------------------------------
# Latent files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentFile:
    """Latents of one audio file plus what is needed to turn them back into that audio.

    ``latents`` is (channels, dim, frames) float32; ``hop`` audio samples per frame at ``sample_rate``.
    """

    latents: Tensor
    level: int
    hop: int
    num_samples: int
    offset: int = PAD
    sample_rate: int = SAMPLE_RATE
    source: str = ""
    checkpoint: str = ""

    @property
    def seconds(self) -> float:
        """Duration of the original audio in seconds."""
        return self.num_samples / self.sample_rate


def weights_digest(*modules: nn.Module) -> str:
    """Short sha256 of the modules' state dicts (names, shapes, bytes): identifies the weights used."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_latents(path: str | Path, latent_file: LatentFile) -> None:
    """Write ``latent_file`` atomically as a version-1 latent ``.safetensors`` file."""
    path = Path(path)
    latents = latent_file.latents.detach().to("cpu", torch.float32).contiguous()
    if latents.dim() != 3:
        raise ValueError(f"latents must be (channels, dim, frames), got shape {tuple(latents.shape)}")
    channels, dim, frames = latents.shape
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "level": str(latent_file.level),
        "sample_rate": str(latent_file.sample_rate),
        "hop": str(latent_file.hop),
        "num_samples": str(latent_file.num_samples),
        "offset": str(latent_file.offset),
        "channels": str(channels),
        "dim": str(dim),
        "frames": str(frames),
        "source": latent_file.source,
        "checkpoint": latent_file.checkpoint,
        "orchestrion_version": __version__,
    }
    with atomic_path(path) as tmp:
        save_file({"latents": latents}, str(tmp), metadata=metadata)


def _read_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"{path}: latent file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            keys = list(handle.keys())
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable safetensors latent file ({error})") from error
    if metadata.get("format") != FORMAT or keys != ["latents"]:
        raise DataError(f"{path}: not an orchestrion latent file (format {metadata.get('format')!r})")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise DataError(
            f"{path}: latent format version {metadata.get('format_version')!r} is not supported "
            f"(this orchestrion reads version {FORMAT_VERSION})"
        )
    return metadata


def _int_fields(path: Path, metadata: dict[str, str], names: tuple[str, ...]) -> dict[str, int]:
    try:
        return {name: int(metadata[name]) for name in names}
    except (KeyError, ValueError) as error:
        raise DataError(f"{path}: latent file metadata is missing or has a bad {error}") from error


_INT_FIELDS = ("level", "sample_rate", "hop", "num_samples", "offset", "channels", "dim", "frames")


def load_latents(path: str | Path) -> LatentFile:
    """Read a latent file written by :func:`save_latents`; bad or foreign files raise DataError."""
    path = Path(path)
    metadata = _read_metadata(path)
    fields = _int_fields(path, metadata, _INT_FIELDS)
    with safe_open(str(path), framework="pt") as handle:
        latents = handle.get_tensor("latents")
    expected = (fields["channels"], fields["dim"], fields["frames"])
    if tuple(latents.shape) != expected or latents.dtype != torch.float32:
        raise DataError(f"{path}: tensor {tuple(latents.shape)} {latents.dtype} does not match metadata {expected}")
    return LatentFile(
        latents=latents,
        level=fields["level"],
        hop=fields["hop"],
        num_samples=fields["num_samples"],
        offset=fields["offset"],
        sample_rate=fields["sample_rate"],
        source=metadata.get("source", ""),
        checkpoint=metadata.get("checkpoint", ""),
    )


def latent_files(directory: str | Path) -> list[Path]:
    """Every latent file under ``directory`` (recursive, sorted), leaving out hidden names such as the
    temporary files of an interrupted write."""
    directory = Path(directory)
    return sorted(
        path
        for path in directory.rglob("*.safetensors")
        if not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def write_latent_index(directory: str | Path) -> Path:
    """Write ``directory/index.json`` describing every latent file under it (headers only are read).

    ``file`` is the path relative to ``directory`` (``a/b.wav.safetensors``; encoding keeps folders).

    Layout: ``{"format", "format_version", "files": [{"file", "level", "hop", "sample_rate",
    "num_samples", "offset", "channels", "dim", "frames", "source", "checkpoint"}, ...]}``, files
    sorted by name. Returns the index path.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: latent directory not found")
    entries = []
    for path in latent_files(directory):
        metadata = _read_metadata(path)
        entry: dict[str, int | str] = {"file": path.relative_to(directory).as_posix()}
        entry.update(_int_fields(path, metadata, _INT_FIELDS))
        entry.update(source=metadata.get("source", ""), checkpoint=metadata.get("checkpoint", ""))
        entries.append(entry)
    index = {"format": FORMAT, "format_version": FORMAT_VERSION, "files": entries}
    index_path = directory / INDEX_NAME
    atomic_write_text(index_path, json.dumps(index, indent=2) + "\n")
    return index_path


def read_latent_index(directory: str | Path) -> list[dict[str, int | str]]:
    """The file entries of ``directory/index.json`` (see :func:`write_latent_index`)."""
    index_path = Path(directory) / INDEX_NAME
    index = read_json(index_path, "latent index", DataError)
    if not isinstance(index, dict) or index.get("format") != FORMAT or "files" not in index:
        raise DataError(f"{index_path}: not an orchestrion latent index")
    if index.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{index_path}: latent index version {index.get('format_version')!r} is not supported")
    return index["files"]


def encode_to_latent_file(
    wave: Tensor,
    level1: Level1Autoencoder,
    level2: Level2Autoencoder | None = None,
    *,
    source: str = "",
    checkpoint: str = "",
    chunk_seconds: float = 60.0,
) -> LatentFile:
    """:func:`encode_audio` packaged with the metadata needed to decode it back to ``wave``'s length."""
    latents = encode_audio(wave, level1, level2, chunk_seconds=chunk_seconds)
    return LatentFile(
        latents=latents,
        level=1 if level2 is None else 2,
        hop=HOP if level2 is None else level2.config.hop,
        num_samples=wave.shape[-1],
        source=source,
        checkpoint=checkpoint,
    )


def decode_latent_file(
    latent_file: LatentFile,
    level1: Level1Autoencoder,
    level2: Level2Autoencoder | None = None,
    **options,
) -> Tensor:
    """Decode a :class:`LatentFile` back to its original (C, num_samples) waveform.

    ``options`` are passed to :func:`decode_latents` (``clip``, ``block_windows``, ``noise``, ``seed``,
    ``phase``, ...).
    """
    expected_level = 1 if level2 is None else 2
    if latent_file.level != expected_level:
        raise DataError(f"latents are level {latent_file.level} but a level-{expected_level} decoder was given")
    return decode_latents(
        latent_file.latents, level1, level2,
        num_samples=latent_file.num_samples, offset=latent_file.offset, **options,
    )
