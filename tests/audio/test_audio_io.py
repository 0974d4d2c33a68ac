"""orchestrion.audio.io: decoding, resampling, chunked reading, writing and bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from orchestrion.audio.io import (
    SAMPLE_RATE,
    SUPPORTED_EXTENSIONS,
    audio_info,
    find_audio_files,
    is_silent,
    iter_audio_chunks,
    load_audio,
    save_audio,
    to_mono,
    to_stereo,
)
from orchestrion.errors import AudioError


def peak_frequency(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    return float(np.argmax(spectrum) * sample_rate / audio.shape[1])


def test_resampling_44k1_to_22k05_keeps_the_frequency(sine, audio_file):
    path = audio_file("tone.wav", sine(1000.0, 2.0, 44100), 44100, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.dtype == np.float32
    assert audio.shape == (1, 2 * SAMPLE_RATE)
    assert abs(peak_frequency(audio, SAMPLE_RATE) - 1000.0) <= 1.0
    # A VHQ resampler keeps the amplitude of an in-band tone (away from the file edges).
    assert np.max(np.abs(audio[:, 1000:-1000])) == pytest.approx(0.5, abs=0.005)


def test_upsampling_and_other_target_rates(sine, audio_file):
    path = audio_file("tone.flac", sine(440.0, 1.0, 16000), 16000)
    audio = load_audio(path, sample_rate=48000)
    assert audio.shape == (1, 48000)
    assert abs(peak_frequency(audio, 48000) - 440.0) <= 1.0


@pytest.mark.parametrize(
    ("suffix", "subtype", "tolerance"), [(".wav", None, 1 / 16384), (".flac", None, 1 / 16384), (".wav", "FLOAT", 0.0)]
)
def test_save_load_round_trip(sine, tmp_path, suffix, subtype, tolerance):
    audio = sine(300.0, 0.5, SAMPLE_RATE, channels=2)
    path = save_audio(tmp_path / f"out{suffix}", audio, SAMPLE_RATE, subtype=subtype)
    back = load_audio(path)
    assert back.shape == audio.shape
    np.testing.assert_allclose(back, audio, atol=tolerance)
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # no temporary files left behind


def test_save_clips_to_full_scale_and_accepts_mono_vectors(tmp_path):
    path = save_audio(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.25], np.float32), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), [[1.0, -1.0, 0.25]])


def test_save_overwrites_atomically_and_keeps_old_file_on_error(sine, tmp_path):
    path = save_audio(tmp_path / "a.wav", sine(100.0, 0.1, SAMPLE_RATE), SAMPLE_RATE)
    before = path.read_bytes()
    with pytest.raises(AudioError, match=r"a\.wav"):
        save_audio(path, np.full((1, 10), np.nan, np.float32), SAMPLE_RATE)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("name", "audio", "rate", "message"),
    [
        ("out.mp3", np.zeros((1, 10), np.float32), SAMPLE_RATE, "cannot write"),
        ("out.wav", np.zeros((1, 0), np.float32), SAMPLE_RATE, "samples>0"),
        ("out.wav", np.zeros((9, 10), np.float32), SAMPLE_RATE, "channels"),
        ("out.wav", np.zeros((1, 10), np.float32), 0, "sample rate"),
    ],
)
def test_save_rejects_bad_requests(tmp_path, name, audio, rate, message):
    with pytest.raises(AudioError, match=message) as error:
        save_audio(tmp_path / name, audio, rate)
    assert name in str(error.value)


@pytest.mark.parametrize(("file_rate", "chunk_seconds"), [(44100, 0.3), (22050, 0.25), (16000, 1.0)])
def test_chunked_reading_equals_whole_reading(sine, audio_file, file_rate, chunk_seconds):
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal((2, int(2.7 * file_rate)))).astype(np.float32)
    path = audio_file("noise.wav", audio, file_rate, subtype="FLOAT")
    whole = load_audio(path)
    chunks = list(iter_audio_chunks(path, chunk_seconds))
    chunk = round(chunk_seconds * SAMPLE_RATE)
    assert all(c.shape == (2, chunk) for c in chunks[:-1])
    assert 0 < chunks[-1].shape[1] <= chunk
    joined = np.concatenate(chunks, axis=1)
    assert joined.shape == whole.shape
    np.testing.assert_allclose(joined, whole, atol=1e-4)


def test_chunked_reading_converts_channels(sine, audio_file):
    path = audio_file("stereo.wav", sine(200.0, 1.0, SAMPLE_RATE, channels=2), SAMPLE_RATE, subtype="FLOAT")
    chunks = list(iter_audio_chunks(path, 0.4, channels=1))
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), load_audio(path, channels=1), atol=1e-7)
    assert {c.shape[0] for c in chunks} == {1}


def test_mono_and_stereo_conversion(sine, audio_file):
    stereo = sine(200.0, 0.2, SAMPLE_RATE, channels=2)
    mono_path = audio_file("mono.wav", stereo[:1], SAMPLE_RATE, subtype="FLOAT")
    stereo_path = audio_file("stereo.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    duplicated = load_audio(mono_path, channels=2)
    assert duplicated.shape == (2, stereo.shape[1])
    np.testing.assert_array_equal(duplicated[0], duplicated[1])
    averaged = load_audio(stereo_path, channels=1)
    np.testing.assert_allclose(averaged[0], stereo.mean(axis=0), atol=1e-7)
    assert load_audio(stereo_path).shape[0] == 2  # channels=None keeps the file's layout
    np.testing.assert_array_equal(to_stereo(stereo), stereo)
    np.testing.assert_array_equal(to_mono(to_stereo(stereo[:1])), stereo[:1])
    with pytest.raises(AudioError):
        to_stereo(np.zeros((3, 4), np.float32))


def test_audio_info_reports_the_header(sine, audio_file):
    path = audio_file("x.flac", sine(100.0, 1.5, 32000, channels=2), 32000)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (32000, 2, 48000)
    assert info.duration == pytest.approx(1.5)


@pytest.mark.skipif(".mp3" not in SUPPORTED_EXTENSIONS, reason="this libsndfile has no MP3 support")
def test_mp3_is_decoded(sine, tmp_path):
    path = tmp_path / "tone.mp3"
    sf.write(path, sine(1000.0, 1.0, 44100).T, 44100, format="MP3")
    audio = load_audio(path)
    assert audio.shape[0] == 1 and abs(audio.shape[1] - SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    assert abs(peak_frequency(audio, SAMPLE_RATE) - 1000.0) < 3.0


def test_silence_is_valid_and_detected(audio_file, sine):
    path = audio_file("silence.wav", np.zeros((2, 1000), np.float32), SAMPLE_RATE)
    audio = load_audio(path)
    assert is_silent(audio)
    assert not is_silent(sine(100.0, 0.1, SAMPLE_RATE))
    assert is_silent(np.full((1, 10), 1e-5, np.float32))  # -100 dBFS
    assert not is_silent(np.full((1, 10), 1e-3, np.float32))  # -60 dBFS


def test_find_audio_files_is_recursive_and_sorted(tmp_path, sine):
    for name in ("b/2.flac", "a.wav", "b/1.WAV", "notes.txt", "c/d/e.ogg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)]
    assert found == ["a.wav", "b/1.WAV", "b/2.flac", "c/d/e.ogg"]
    with pytest.raises(AudioError, match="missing"):
        find_audio_files(tmp_path / "missing")


def _truncated(tmp_path: Path, suffix: str, sine) -> Path:
    path = tmp_path / f"full{suffix}"
    sf.write(path, sine(440.0, 1.0, 44100).T, 44100)
    data = path.read_bytes()
    cut = tmp_path / f"truncated{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _bad_file(kind: str, tmp_path: Path, sine) -> tuple[Path, dict]:
    """Make one kind of unusable input; returns its path and load_audio keyword arguments."""
    if kind == "missing":
        return tmp_path / "missing.wav", {}
    if kind == "empty":
        (tmp_path / "empty.wav").write_bytes(b"")
        return tmp_path / "empty.wav", {}
    if kind == "truncated-wav":
        return _truncated(tmp_path, ".wav", sine), {}
    if kind == "truncated-flac":
        return _truncated(tmp_path, ".flac", sine), {}
    if kind == "not-audio":
        (tmp_path / "text.wav").write_text("this is a text file pretending to be audio\n" * 20)
        return tmp_path / "text.wav", {}
    if kind == "zero-length":
        sf.write(tmp_path / "zero.wav", np.zeros((0, 1), np.float32), SAMPLE_RATE)
        return tmp_path / "zero.wav", {}
    if kind == "nan":
        audio = sine(100.0, 0.1, SAMPLE_RATE)
        audio[0, 100] = np.nan
        sf.write(tmp_path / "nan.wav", audio.T, SAMPLE_RATE, subtype="FLOAT")
        return tmp_path / "nan.wav", {}
    if kind == "inf":
        audio = sine(100.0, 0.1, SAMPLE_RATE)
        audio[0, 5] = np.inf
        sf.write(tmp_path / "inf.wav", audio.T, SAMPLE_RATE, subtype="FLOAT")
        return tmp_path / "inf.wav", {}
    if kind == "too-many-channels":
        sf.write(tmp_path / "nine.wav", np.zeros((100, 9), np.float32), SAMPLE_RATE)
        return tmp_path / "nine.wav", {}
    if kind == "impossible-conversion":
        sf.write(tmp_path / "three.wav", np.zeros((100, 3), np.float32), SAMPLE_RATE)
        return tmp_path / "three.wav", {"channels": 2}
    if kind == "bad-channel-request":
        sf.write(tmp_path / "mono.wav", np.zeros((100, 1), np.float32), SAMPLE_RATE)
        return tmp_path / "mono.wav", {"channels": 5}
    if kind == "unsupported-extension":
        sf.write(tmp_path / "tone.xyz", np.zeros((100, 1), np.float32), SAMPLE_RATE, format="WAV")
        return tmp_path / "tone.xyz", {}
    if kind in ("zero-rate", "negative-rate"):
        sf.write(tmp_path / "rate.wav", np.zeros((100, 1), np.float32), SAMPLE_RATE)
        return tmp_path / "rate.wav", {"sample_rate": 0 if kind == "zero-rate" else -22050}
    if kind == "directory":
        (tmp_path / "folder.wav").mkdir()
        return tmp_path / "folder.wav", {}
    raise AssertionError(kind)


BAD_INPUTS = {
    "missing": "not found",
    "empty": "empty",
    "truncated-wav": "truncated",
    "truncated-flac": "truncated or corrupt",
    "not-audio": "not a readable audio file",
    "zero-length": "no audio samples",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "too-many-channels": "9 channels",
    "impossible-conversion": "cannot convert 3 channels",
    "bad-channel-request": "cannot convert to 5 channels",
    "unsupported-extension": "unsupported audio extension",
    "zero-rate": "sample rate",
    "negative-rate": "sample rate",
    "directory": "not a regular file",
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_raises_audio_error_naming_the_file(kind, tmp_path, sine):
    path, kwargs = _bad_file(kind, tmp_path, sine)
    with pytest.raises(AudioError, match=BAD_INPUTS[kind]) as error:
        load_audio(path, **kwargs)
    assert str(path) in str(error.value)
    with pytest.raises(AudioError, match=BAD_INPUTS[kind]) as error:
        list(iter_audio_chunks(path, 0.1, **kwargs))
    assert str(path) in str(error.value)


def test_chunk_length_must_be_positive(sine, audio_file):
    path = audio_file("x.wav", sine(100.0, 0.1, SAMPLE_RATE), SAMPLE_RATE)
    with pytest.raises(AudioError, match="chunk length"):
        next(iter_audio_chunks(path, 0))


def test_written_files_get_ordinary_permissions(tmp_path, sine):
    path = save_audio(tmp_path / "perm.wav", sine(100.0, 0.1, SAMPLE_RATE), SAMPLE_RATE)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
