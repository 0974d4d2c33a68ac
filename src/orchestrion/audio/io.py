"""Reading, writing and converting audio files.

Every array that leaves this module is float32 shaped ``(channels, samples)`` with values in
[-1, 1]; the project-wide rate is :data:`SAMPLE_RATE` (22.05 kHz). Decoding is done by
libsndfile (through ``soundfile``) and resampling by libsoxr (through ``soxr``, very-high
quality), never by hand. Anything wrong with a file raises :class:`AudioError` naming it.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from orchestrion.errors import AudioError, DataError
from orchestrion.fileio import atomic_write_bytes, check_output_path

SAMPLE_RATE = 22050
MAX_CHANNELS = 8
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".opus", ".aif", ".aiff") + (
    (".mp3",) if "MP3" in sf.available_formats() else ()
)
_WRITE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}
_RESAMPLE_QUALITY = "VHQ"
# Lossy codecs: the header's frame count is an estimate (encoder delay and padding, VBR without a
# Xing/LAME tag), so the decoded stream is routinely a little shorter; lossless files must match it.
_LOSSY_SUBTYPES = frozenset({"MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III", "VORBIS", "OPUS"})
# A lossy file decoding shorter than its header by more than this is reported (as a warning).
LOSSY_SHORTFALL_WARN_SECONDS = 1.0
LOSSY_SHORTFALL_WARN_FRACTION = 0.01


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: rate in Hz, channel count, frames per channel, seconds."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    duration: float
    lossy: bool = False  # MP3/Vorbis/Opus: ``frames`` is the header's estimate, decoding may give fewer

    def check_decoded(self, decoded: int) -> None:
        """Judge ``decoded`` frames against the header: truncation for lossless files, tolerance for lossy.

        A lossless (PCM WAV/AIFF, FLAC) file that decodes short is truncated: :class:`AudioError`.
        A lossy file is accepted as decoded; a shortfall of more than
        :data:`LOSSY_SHORTFALL_WARN_SECONDS` or :data:`LOSSY_SHORTFALL_WARN_FRACTION` of the
        header's length is reported with a ``UserWarning`` (nothing decoded at all is still an error).
        """
        missing = self.frames - decoded
        if missing <= 0:
            return
        if not self.lossy or decoded == 0:
            raise AudioError(f"{self.path}: truncated or corrupt file (decoded {decoded} of {self.frames} frames)")
        if missing > LOSSY_SHORTFALL_WARN_SECONDS * self.sample_rate or missing > LOSSY_SHORTFALL_WARN_FRACTION * (
            self.frames
        ):
            warnings.warn(
                f"{self.path}: decoded {decoded} of the {self.frames} frames its header announces "
                f"({missing / self.sample_rate:.2f} s short); using what decodes",
                stacklevel=3,
            )


def _check_sample_rate(sample_rate: int, path: Path) -> None:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"{path}: unsupported sample rate {sample_rate!r} (must be a positive integer in Hz)")


def _check_channels_request(channels: int | None, path: Path) -> None:
    if channels is not None and channels not in (1, 2):
        raise AudioError(f"{path}: cannot convert to {channels} channels (only 1 = mono or 2 = stereo)")


def _wav_declared_data_bytes(path: Path) -> int | None:
    """Size of the ``data`` chunk a RIFF/WAVE header declares, or None if it says nothing usable.

    libsndfile silently shortens a WAV whose data chunk was cut off, so truncation has to be
    detected by comparing this number with the bytes actually present.
    """
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                # Streaming writers leave 0 or 0xFFFFFFFF when the length was unknown.
                return None if size in (0, 0xFFFFFFFF) else size
            handle.seek(size + (size & 1), os.SEEK_CUR)


_PCM_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


def _check_not_truncated_wav(path: Path, channels: int, frames: int, subtype: str) -> None:
    declared = _wav_declared_data_bytes(path)
    bytes_per_frame = channels * _PCM_SAMPLE_BYTES.get(subtype, 0)
    # Compressed WAV subtypes (ADPCM, ...) have no fixed frame size; libsndfile checks those itself.
    if declared is None or not bytes_per_frame:
        return
    if frames * bytes_per_frame < declared:
        raise AudioError(
            f"{path}: truncated or corrupt file (header declares {declared // bytes_per_frame} frames, "
            f"only {frames} present)"
        )


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read and validate a file's header without decoding the samples.

    Raises :class:`AudioError` (naming the file) for a missing, empty, unsupported,
    unreadable, truncated or zero-length file and for more than :data:`MAX_CHANNELS` channels.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise AudioError(
            f"{path}: unsupported audio extension {path.suffix!r} (supported: {', '.join(SUPPORTED_EXTENSIONS)})"
        )
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as error:
        raise AudioError(f"{path}: not a readable audio file or corrupt ({error})") from error
    if info.samplerate <= 0:
        raise AudioError(f"{path}: header declares an invalid sample rate {info.samplerate}")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(f"{path}: {info.channels} channels is not supported (at most {MAX_CHANNELS})")
    if info.frames <= 0:
        raise AudioError(f"{path}: contains no audio samples (zero length)")
    if path.suffix.lower() == ".wav":
        _check_not_truncated_wav(path, info.channels, info.frames, info.subtype)
    return AudioInfo(
        path,
        int(info.samplerate),
        int(info.channels),
        int(info.frames),
        info.frames / info.samplerate,
        lossy=info.subtype in _LOSSY_SUBTYPES,
    )


def _read_blocks(handle: sf.SoundFile, block: int) -> Iterator[np.ndarray]:
    """Consecutive float32 ``(frames, channels)`` blocks until the decoder stops.

    ``SoundFile.blocks`` trusts the header's frame count and pads a short last block with
    stale samples of the previous one; reading until an empty block does not.
    """
    while True:
        data = handle.read(block, dtype="float32", always_2d=True)
        if not len(data):
            return
        yield data


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average all channels: ``(channels, samples)`` → ``(1, samples)``."""
    if audio.ndim != 2:
        raise AudioError(f"expected audio shaped (channels, samples), got shape {audio.shape}")
    return audio.mean(axis=0, keepdims=True, dtype=np.float32).astype(np.float32, copy=False)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """Mono ``(1, samples)`` is duplicated to ``(2, samples)``; stereo is returned unchanged."""
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise AudioError(f"cannot make stereo from audio shaped {audio.shape} (need 1 or 2 channels)")
    return np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio


def _convert_channels(audio: np.ndarray, channels: int | None, path: Path) -> np.ndarray:
    """Apply the mono/stereo request to ``(channels, samples)`` audio read from ``path``."""
    if channels is None or audio.shape[0] == channels:
        return audio
    if channels == 1:
        # Averaging (not summing) keeps a full-scale stereo file within [-1, 1].
        return to_mono(audio)
    if audio.shape[0] == 1:
        return to_stereo(audio)
    raise AudioError(f"{path}: cannot convert {audio.shape[0]} channels to stereo (only mono or stereo input can be)")


def _check_finite(audio: np.ndarray, path: Path) -> None:
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")


def load_audio(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE, channels: int | None = None) -> np.ndarray:
    """Decode a whole file to float32 ``(channels, samples)`` at ``sample_rate`` Hz.

    ``channels=None`` keeps the file's channels; 1 averages to mono; 2 duplicates a mono
    file (a file with more than two channels cannot be made stereo). Resampling uses soxr
    at very-high quality. Silence is valid; see :func:`is_silent` to skip it.
    """
    path = Path(path)
    _check_sample_rate(sample_rate, path)
    _check_channels_request(channels, path)
    info = audio_info(path)
    try:
        with sf.SoundFile(str(path)) as handle:
            blocks = list(_read_blocks(handle, max(info.frames, 1)))
    except (sf.SoundFileError, RuntimeError) as error:
        raise AudioError(f"{path}: truncated or corrupt file ({error})") from error
    data = np.concatenate(blocks) if blocks else np.zeros((0, info.channels), np.float32)
    info.check_decoded(len(data))
    _check_finite(data, path)
    if info.sample_rate != sample_rate:
        data = soxr.resample(data, info.sample_rate, sample_rate, quality=_RESAMPLE_QUALITY)
    audio = np.ascontiguousarray(data.T, dtype=np.float32)
    return _convert_channels(audio, channels, path)


def iter_audio_chunks(
    path: str | os.PathLike[str],
    chunk_seconds: float,
    sample_rate: int = SAMPLE_RATE,
    channels: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield a long file as consecutive float32 ``(channels, samples)`` chunks, in bounded memory.

    Every chunk holds ``round(chunk_seconds * sample_rate)`` samples except the last, which
    holds the remainder. A streaming soxr resampler carries its filter state across blocks,
    so the concatenated chunks equal :func:`load_audio` of the whole file up to float rounding.
    """
    path = Path(path)
    _check_sample_rate(sample_rate, path)
    _check_channels_request(channels, path)
    if not chunk_seconds > 0:
        raise AudioError(f"{path}: chunk length must be positive, got {chunk_seconds} s")
    info = audio_info(path)
    chunk = max(1, round(chunk_seconds * sample_rate))
    block = max(1, math.ceil(chunk * info.sample_rate / sample_rate))
    stream = (
        soxr.ResampleStream(info.sample_rate, sample_rate, info.channels, dtype="float32", quality=_RESAMPLE_QUALITY)
        if info.sample_rate != sample_rate
        else None
    )
    pending: list[np.ndarray] = []
    pending_len = 0
    frames_read = 0

    def resampled(data: np.ndarray, last: bool) -> np.ndarray:
        return data if stream is None else stream.resample_chunk(data, last=last)

    try:
        with sf.SoundFile(str(path)) as handle:
            for data in _read_blocks(handle, block):
                frames_read += len(data)
                _check_finite(data, path)
                out = resampled(data, last=False)
                pending.append(out)
                pending_len += len(out)
                while pending_len >= chunk:
                    joined = np.concatenate(pending)
                    yield _convert_channels(np.ascontiguousarray(joined[:chunk].T), channels, path)
                    pending, pending_len = [joined[chunk:]], len(joined) - chunk
    except (sf.SoundFileError, RuntimeError) as error:
        raise AudioError(f"{path}: truncated or corrupt file ({error})") from error
    info.check_decoded(frames_read)
    pending.append(resampled(np.zeros((0, info.channels), np.float32), last=True))
    tail = np.concatenate(pending)
    for start in range(0, len(tail), chunk):
        yield _convert_channels(np.ascontiguousarray(tail[start : start + chunk].T), channels, path)


def check_audio_output(path: str | os.PathLike[str], *, overwrite: bool, inputs: Iterable = ()) -> Path:
    """Before the work: ``path`` can be written as audio (a .wav or .flac file name, not a folder,
    not an input, existing only with ``overwrite``; see :func:`~orchestrion.fileio.check_output_path`)."""
    path = check_output_path(path, overwrite=overwrite, inputs=inputs)
    if path.suffix.lower() not in _WRITE_FORMATS:
        raise AudioError(
            f"{path}: cannot write {path.suffix or 'extension-less'!r} audio files "
            f"(give a name ending in {' or '.join(_WRITE_FORMATS)})"
        )
    return path


def save_audio(
    path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str | None = None
) -> Path:
    """Atomically write ``(channels, samples)`` (or 1-D mono) audio to a .wav or .flac file.

    The format follows the suffix. Samples are clipped to [-1, 1] (the integer formats cannot
    hold more); ``subtype`` is a libsndfile subtype such as ``"PCM_24"`` or ``"FLOAT"``
    (default 16-bit PCM).
    """
    path = Path(path)
    _check_sample_rate(sample_rate, path)
    suffix = path.suffix.lower()
    if suffix not in _WRITE_FORMATS:
        raise AudioError(
            f"{path}: cannot write {suffix or 'extension-less'!r} audio files "
            f"(give a name ending in {' or '.join(_WRITE_FORMATS)})"
        )
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or not 1 <= audio.shape[0] <= MAX_CHANNELS or audio.shape[1] == 0:
        raise AudioError(f"{path}: audio must be shaped (channels<= {MAX_CHANNELS}, samples>0), got {audio.shape}")
    _check_finite(audio, path)
    file_format, default_subtype = _WRITE_FORMATS[suffix]
    subtype = subtype or default_subtype
    if not sf.check_format(file_format, subtype):
        raise AudioError(f"{path}: subtype {subtype!r} is not valid for {file_format}")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0).T, sample_rate, format=file_format, subtype=subtype)
    return atomic_write_bytes(path, buffer.getvalue())


def is_silent(audio: np.ndarray, threshold_db: float = -80.0) -> bool:
    """True when the peak level of ``audio`` (any shape, full scale 1.0) is below ``threshold_db`` dBFS."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return peak <= 10.0 ** (threshold_db / 20.0)


def find_audio_files(folder: str | os.PathLike[str]) -> list[Path]:
    """All files under ``folder`` (recursively) with a supported audio extension, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f"{folder}: audio folder not found")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS)


def collect_audio_files(source: str | os.PathLike[str]) -> list[Path]:
    """``source`` itself if it is a file, else every audio file under it (recursive, sorted).

    Raises :class:`DataError` when ``source`` does not exist or a folder holds no audio file.
    """
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise DataError(f"{source}: audio file or folder does not exist")
    files = find_audio_files(source)
    if not files:
        raise DataError(f"{source}: no audio files found (searched recursively)")
    return files
