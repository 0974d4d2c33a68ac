"""Autoencoder training data: crop length, determinism, resampling, bounded-memory reads, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from train_support import melody, write_music_folder

from orchestrion.audio.io import save_audio
from orchestrion.errors import DataError
from orchestrion.musika.data import AudioCropDataset, crop_samples
from orchestrion.training import SampleKey


def test_crop_length_gives_exactly_128_frames() -> None:
    from orchestrion.audio.spectral import spectral_frames

    assert crop_samples() == 32768 + 768
    assert spectral_frames(crop_samples()) == 128


def test_crops_are_deterministic_in_the_seed_and_cover_the_files(tmp_path: Path) -> None:
    write_music_folder(tmp_path, n_files=3, seconds=3.0)
    data = AudioCropDataset(tmp_path)
    assert len(data.files) == 3  # the nested file is found too
    assert len(data) == int(3 * 3 * 22050 // crop_samples())
    a = data[SampleKey(0, 123)]
    assert a.shape == (crop_samples(),) and a.dtype == torch.float32
    assert torch.equal(a, data[SampleKey(5, 123)])  # the seed, not the index, picks the crop
    crops = [data[SampleKey(0, seed)] for seed in range(20)]
    assert len({c[:100].numpy().tobytes() for c in crops}) > 10
    assert all(c.abs().max() <= 1.0 for c in crops)


def test_streamed_reads_equal_cached_reads_at_the_native_rate(tmp_path: Path) -> None:
    write_music_folder(tmp_path, n_files=2, seconds=3.0)
    cached = AudioCropDataset(tmp_path)
    streamed = AudioCropDataset(tmp_path, cache_bytes=0)
    assert cached.cached is not None and streamed.cached is None
    for seed in range(5):
        assert torch.allclose(cached[SampleKey(0, seed)], streamed[SampleKey(0, seed)], atol=1e-6)


def test_resampled_stereo_file_is_mono_at_22050(tmp_path: Path) -> None:
    write_music_folder(tmp_path, n_files=1, seconds=3.0, sample_rate=44100, channels=2)
    cached = AudioCropDataset(tmp_path)
    streamed = AudioCropDataset(tmp_path, cache_bytes=0)
    reference = melody(3.0, 22050, seed=0, channels=2).mean(axis=0)
    for data in (cached, streamed):
        crop = data[SampleKey(0, 7)].numpy()
        assert crop.shape == (crop_samples(),)
        # find the crop inside the 22.05 kHz rendition of the same melody: same content, resampled
        offsets = [o for o in range(len(reference) - len(crop) + 1) if abs(reference[o] - crop[0]) < 0.05]
        best = min(np.abs(reference[o + 2000 : o + 4000] - crop[2000:4000]).max() for o in offsets)
        assert best < 0.02
    for data in (cached, streamed):  # the very last crop of the file is complete too
        assert data._read(0, int(data.lengths[0]) - crop_samples()).shape == (crop_samples(),)
    # the streamed reader seeks + resamples locally: it matches whole-file resampling closely
    assert torch.allclose(cached[SampleKey(0, 7)], streamed[SampleKey(0, 7)], atol=2e-3)


def test_short_file_is_padded_and_silence_is_redrawn(tmp_path: Path) -> None:
    save_audio(tmp_path / "short.wav", melody(1.0, seed=1), subtype="FLOAT")
    save_audio(tmp_path / "silence.wav", np.zeros((1, 22050 * 4), np.float32))
    data = AudioCropDataset(tmp_path, max_draws=32)
    for seed in range(10):
        crop = data[SampleKey(0, seed)].numpy()
        # the 4 s silent file is drawn ~72 % of the time; redraws land on the short file
        assert np.abs(crop[:22050]).max() > 0.01
        assert np.all(crop[22050 + 10 :] == 0.0)  # zero padding after the 1 s file (a crop is 1.52 s)


def test_files_shorter_than_half_a_crop_are_skipped_and_reported(tmp_path: Path) -> None:
    save_audio(tmp_path / "long.wav", melody(2.0, seed=1), subtype="FLOAT")
    save_audio(tmp_path / "blip.wav", melody(0.5, seed=2), subtype="FLOAT")
    data = AudioCropDataset(tmp_path)
    assert [info.path.name for info in data.files] == ["long.wav"]
    assert [(Path(s["file"]).name, s["reason"]) for s in data.skipped.skipped] == [
        ("blip.wav", "too short to train on (0.50 s; a file needs at least half a training crop, 0.76 s)")
    ]
    (tmp_path / "long.wav").unlink()
    with pytest.raises(DataError, match=r"no usable training audio .*blip\.wav: too short to train on"):
        AudioCropDataset(tmp_path)


def test_errors_for_missing_or_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        AudioCropDataset(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(DataError, match="no audio files"):
        AudioCropDataset(tmp_path)
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEfmt garbage")
    with pytest.raises(DataError, match=r"broken\.wav"):
        AudioCropDataset(tmp_path)
