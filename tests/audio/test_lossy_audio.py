"""MP3s made by a real encoder (LAME): their header's frame count is an estimate, decoding accepts them.

libsndfile takes an MP3's length from its Xing/LAME tag when there is one, else estimates it from
the file size; a file without the tag (``lame -t``, common in the wild) decodes a few hundred frames
shorter than announced. Lossless files keep the strict truncation check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from orchestrion.audio.io import (
    SAMPLE_RATE,
    AudioInfo,
    audio_info,
    iter_audio_chunks,
    load_audio,
)
from orchestrion.errors import AudioError

LAME = shutil.which("lame")


@pytest.fixture
def lame_mp3(tmp_path: Path):
    """Encode (channels, samples) audio with the ``lame`` command line encoder; returns the .mp3 path."""
    if LAME is None:
        if os.environ.get("CI"):
            pytest.fail("the lame encoder is not installed; .ci/run installs it with apt-get")
        pytest.skip("the lame MP3 encoder is not installed (apt-get install lame)")

    def encode(name: str, audio: np.ndarray, sample_rate: int, *options: str) -> Path:
        source = tmp_path / f"{name}.source.wav"
        sf.write(source, audio.T, sample_rate, subtype="PCM_16")
        target = tmp_path / f"{name}.mp3"
        subprocess.run([LAME, "--quiet", *options, str(source), str(target)], check=True)
        return target

    return encode


def _song(seconds: float, sample_rate: int) -> np.ndarray:
    """Stereo: a 440 Hz tone with its octave on the left, a quieter 660 Hz tone on the right."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
    right = 0.2 * np.sin(2 * np.pi * 660 * t)
    return np.stack([left, right]).astype(np.float32)


def _peak_hz(wave: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * sample_rate / len(wave))


@pytest.mark.parametrize(
    "options",
    [("-V", "4"), ("-b", "128"), ("-t", "-b", "128"), ("-t", "-b", "64")],
    ids=["vbr", "cbr", "cbr-without-tag", "cbr64-without-tag"],
)
def test_real_mp3s_decode_to_their_music(lame_mp3, options) -> None:
    path = lame_mp3("song", _song(5.0, SAMPLE_RATE), SAMPLE_RATE, *options)
    info = audio_info(path)
    assert info.lossy and info.channels == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a few hundred frames of encoder padding is no reason to warn
        audio = load_audio(path)
    assert audio.shape[0] == 2
    assert info.frames - audio.shape[1] < 0.05 * SAMPLE_RATE  # at most the encoder's delay/padding short
    assert abs(audio.shape[1] - 5 * SAMPLE_RATE) < 0.1 * SAMPLE_RATE
    middle = slice(SAMPLE_RATE, 4 * SAMPLE_RATE)
    assert abs(_peak_hz(audio[0, middle], SAMPLE_RATE) - 440) < 2
    assert abs(_peak_hz(audio[1, middle], SAMPLE_RATE) - 660) < 2


def test_mp3_chunks_equal_the_whole_file_with_no_stale_samples(lame_mp3) -> None:
    # 44.1 kHz source: the chunks are resampled too. The tag-less CBR file decodes short of its header;
    # SoundFile.blocks would have padded the last block with samples of the one before.
    path = lame_mp3("song", _song(3.0, 44100), 44100, "-t", "-b", "128")
    assert load_audio(path, sample_rate=44100).shape[1] < audio_info(path).frames  # it does decode short
    whole = load_audio(path)
    chunks = list(iter_audio_chunks(path, chunk_seconds=0.5))
    joined = np.concatenate(chunks, axis=1)
    assert joined.shape == whole.shape
    np.testing.assert_allclose(joined, whole, atol=1e-4)
    assert all(chunk.shape[1] == SAMPLE_RATE // 2 for chunk in chunks[:-1])


def test_mp3_trains_through_the_crop_dataset(lame_mp3, tmp_path: Path) -> None:
    from orchestrion.musika.data import AudioCropDataset

    folder = tmp_path / "music"
    folder.mkdir()
    path = lame_mp3("song", _song(4.0, SAMPLE_RATE), SAMPLE_RATE, "-t", "-b", "96")
    path.rename(folder / "song.mp3")
    dataset = AudioCropDataset(folder, frames=16)
    crop = dataset[123].numpy()
    assert crop.shape == (256 * 16 + 768,) and np.abs(crop).max() > 0.1


def _info(frames: int, lossy: bool) -> AudioInfo:
    return AudioInfo(Path("x.mp3" if lossy else "x.wav"), 22050, 2, frames, frames / 22050, lossy=lossy)


def test_shortfall_policy_lossless_refused_lossy_warned_only_when_large() -> None:
    with pytest.raises(AudioError, match=r"x.wav: truncated or corrupt file \(decoded 99999 of 100000 frames\)"):
        _info(100_000, lossy=False).check_decoded(99_999)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _info(100_000, lossy=True).check_decoded(99_001)  # 999 frames: < 1 % and < 1 s
        _info(10_000_000, lossy=True).check_decoded(10_000_000 - 22_050)  # exactly 1 s, 0.2 %
        _info(100_000, lossy=False).check_decoded(100_000)
    with pytest.warns(UserWarning, match=r"x.mp3: decoded 98999 of the 100000 frames .* using what decodes"):
        _info(100_000, lossy=True).check_decoded(98_999)  # just over 1 %
    with pytest.warns(UserWarning, match=r"1.00 s short"):
        _info(10_000_000, lossy=True).check_decoded(10_000_000 - 22_051)  # just over 1 s
    with pytest.raises(AudioError, match="decoded 0 of"):
        _info(100_000, lossy=True).check_decoded(0)
