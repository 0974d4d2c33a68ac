"""Training data for the Musika autoencoders: random mono crops of audio files.

Every sample is one excerpt of two adjacent decoder windows (spec §5 [PROPOSED]):
128 STFT frames = ``256·128 + 768 = 33 536`` samples at 22 050 Hz, so the phase-2
discriminator can see the seam between the two decoded windows.

Design choices (the spec is silent on them):

- Any folder of audio files is accepted (searched recursively). Channels are averaged
  to mono, audio is resampled to 22 050 Hz. Files that cannot be read are skipped and
  listed in :attr:`AudioCropDataset.skipped` (a :class:`~orchestrion.fileio.SkipReport`);
  only a folder with no usable file is an error.
- The crop of a sample is a pure function of its :class:`~orchestrion.training.SampleKey`
  seed: the file is drawn with probability proportional to its duration (every second of
  audio is equally likely), then the offset uniformly. Training is therefore exactly
  reproducible and resumable.
- Files shorter than one crop are zero-padded at the end (a folder of short clips still
  trains), but files shorter than half a crop (one decoder window, 0.76 s) are skipped and
  reported: a crop that is mostly padding teaches silence, not music.
- A crop whose RMS is below ``silence_db`` dBFS is redrawn (up to ``max_draws`` times, then
  the last draw is kept) because silent crops teach the autoencoder nothing.
- If the whole folder, decoded, fits in ``cache_bytes`` it is decoded once into memory
  (shared copy-on-write by DataLoader workers); otherwise each crop is read from disk by
  seeking with soundfile and resampled on the fly, so memory stays bounded for large sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch.utils.data import Dataset

from orchestrion.errors import AudioError, DataError
from orchestrion.fileio import SkipReport
from orchestrion.training import SampleKey

SAMPLE_RATE = 22050
HOP = 256
WINDOW_TAIL = 768  # n_fft − hop: K frames need 256·K + 768 samples (spec §2)
CROP_FRAMES = 128  # two adjacent 64-frame decoder windows (spec §5 [PROPOSED])
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024
_RESAMPLE_MARGIN = 512  # extra native samples read on each side so the resampler's edges fall outside


def crop_samples(frames: int = CROP_FRAMES) -> int:
    """Number of samples at 22 050 Hz that yield exactly ``frames`` STFT frames."""
    return HOP * frames + WINDOW_TAIL


@dataclass(frozen=True)
class AudioFileInfo:
    """One usable audio file: its path, native length (frames) and sample rate."""

    path: Path
    frames: int
    sample_rate: int

    @property
    def samples(self) -> int:
        """Length in samples at 22 050 Hz."""
        return round(self.frames * SAMPLE_RATE / self.sample_rate)


def scan_audio_folder(folder: str | Path, skipped: SkipReport | None = None) -> list[AudioFileInfo]:
    """All readable audio files under ``folder`` (recursive), with their lengths.

    A file whose header cannot be read is recorded in ``skipped`` (given) or raises
    :class:`DataError` naming it (``skipped=None``). Raises :class:`DataError` if the folder
    does not exist or holds no audio file.
    """
    from orchestrion.audio.io import audio_info, collect_audio_files

    folder = Path(folder)
    paths = collect_audio_files(folder)
    infos = []
    for path in paths:
        try:
            info = audio_info(path)
        except AudioError as error:
            if skipped is None:
                raise DataError(f"training data: {error}") from error
            skipped.skip(path, str(error))
            continue
        infos.append(AudioFileInfo(Path(path), info.frames, info.sample_rate))
    return infos


def _rms_db(wave: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(wave.astype(np.float64) ** 2) + 1e-12))


class AudioCropDataset(Dataset):
    """Map-style dataset of mono 22.05 kHz crops, indexed by ``SampleKey(index, seed)``.

    ``dataset[key]`` → float32 tensor ``(crop_samples(frames),)`` in [−1, 1].
    ``len(dataset)`` = number of non-overlapping crops the data holds (≥ 1): one epoch
    sees, on average, every sample once.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        frames: int = CROP_FRAMES,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        silence_db: float = -60.0,
        max_draws: int = 8,
    ) -> None:
        self.folder = Path(folder)
        self.skipped = SkipReport()
        self.crop = crop_samples(frames)
        self.files = []
        for info in scan_audio_folder(self.folder, self.skipped):
            if info.samples < self.crop // 2:
                self.skipped.skip(info.path, f"too short to train on ({info.samples / SAMPLE_RATE:.2f} s; a file needs "
                                             f"at least half a training crop, {self.crop // 2 / SAMPLE_RATE:.2f} s)")
            else:
                self.files.append(info)
        self.silence_db = silence_db
        self.max_draws = max_draws
        decoded_bytes = 4 * int(sum(info.samples for info in self.files))
        self.cached: list[np.ndarray] | None = None
        if decoded_bytes <= cache_bytes:
            decoded = [(info, self._decode_whole(info)) for info in self.files]
            self.files = [info for info, wave in decoded if wave is not None]
            self.cached = [wave for _, wave in decoded if wave is not None]
        self.skipped.require_some(len(self.files), f"training audio in {self.folder}")
        # Padded lengths: a file shorter than one crop counts as one crop.
        self.lengths = np.array([max(info.samples, self.crop) for info in self.files], dtype=np.int64)
        self.weights = self.lengths / self.lengths.sum()

    @property
    def total_seconds(self) -> float:
        """Duration of the whole data set in seconds (before padding)."""
        return sum(info.samples for info in self.files) / SAMPLE_RATE

    def __len__(self) -> int:
        return max(1, int(self.lengths.sum() // self.crop))

    def __getitem__(self, key: SampleKey | int) -> torch.Tensor:
        """The crop drawn by ``key.seed`` (a bare int is used as the seed itself)."""
        seed = key.seed if isinstance(key, SampleKey) else int(key)
        rng = np.random.default_rng(seed)
        crop = None
        for _ in range(self.max_draws):
            file_index = int(rng.choice(len(self.files), p=self.weights))
            offset = int(rng.integers(0, self.lengths[file_index] - self.crop + 1))
            crop = self._read(file_index, offset)
            if _rms_db(crop) > self.silence_db:
                break
        return torch.from_numpy(crop)

    def _decode_whole(self, info: AudioFileInfo) -> np.ndarray | None:
        """The whole file, mono and padded to one crop; None (and recorded as skipped) if it cannot be decoded."""
        from orchestrion.audio.io import load_audio

        try:
            wave = load_audio(info.path, sample_rate=SAMPLE_RATE).mean(axis=0)
        except AudioError as error:
            self.skipped.skip(info.path, str(error))
            return None
        return self._pad(np.ascontiguousarray(wave, dtype=np.float32))

    def _pad(self, wave: np.ndarray) -> np.ndarray:
        if len(wave) >= self.crop:
            return wave
        return np.pad(wave, (0, self.crop - len(wave)))

    def _read(self, file_index: int, offset: int) -> np.ndarray:
        """``crop`` mono samples at 22.05 kHz starting at ``offset`` (22.05 kHz samples)."""
        if self.cached is not None:
            # decoded length may differ from the header's estimate by a sample or two: pad
            return self._pad(self.cached[file_index][offset : offset + self.crop].copy())
        info = self.files[file_index]
        ratio = info.sample_rate / SAMPLE_RATE
        margin = 0 if info.sample_rate == SAMPLE_RATE else _RESAMPLE_MARGIN
        start = int(np.floor(offset * ratio))
        lead = min(margin, start)
        count = int(np.ceil(self.crop * ratio)) + lead + margin
        try:
            with sf.SoundFile(str(info.path)) as handle:
                handle.seek(start - lead)
                native = handle.read(count, dtype="float32", always_2d=True).mean(axis=1)
        except (RuntimeError, sf.LibsndfileError) as error:
            raise DataError(f"{info.path}: cannot read audio excerpt ({error})") from error
        if margin:
            native = soxr.resample(native, info.sample_rate, SAMPLE_RATE)
            lead = round(lead / ratio)
        wave = native[lead : lead + self.crop]
        return self._pad(np.ascontiguousarray(wave, dtype=np.float32))
