"""Spectral distances with relative floors: zero for perfect reconstructions, growing with every error."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from orchestrion.audio import spectral
from orchestrion.errors import DataError
from orchestrion.evaluation.spectral_metrics import (
    SPECTRAL_METRICS,
    log_mel_distance,
    log_spectral_distance,
    mel_filterbank,
    multiscale_spectral_distance,
    spectral_distances,
)

EDGE = 768  # samples at each end that an iSTFT without centring cannot rebuild


def _round_trip(wave: np.ndarray, through_features: bool) -> tuple[np.ndarray, np.ndarray]:
    """(reference, rebuilt) over the samples the iSTFT rebuilds with full window overlap."""
    x = torch.from_numpy(wave)[None]
    spec = spectral.stft(x)
    phase = torch.angle(spec) / math.pi
    if through_features:  # the front end: normalised log-power features -> de-normalised magnitude
        rebuilt = spectral.features_to_wave(spectral.log_magnitude(spec), phase)[0]
    else:
        rebuilt = spectral.istft(spec.abs(), phase)[0]
    length = rebuilt.shape[0]
    return wave[EDGE : length - EDGE], rebuilt[EDGE : length - EDGE].numpy()


def _random_phase(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(wave)[None]
    magnitude = spectral.stft(x).abs()
    phase = 2 * torch.rand(magnitude.shape, generator=torch.Generator().manual_seed(0), dtype=magnitude.dtype) - 1
    rebuilt = spectral.istft(magnitude, phase)[0]
    length = rebuilt.shape[0]
    return wave[EDGE : length - EDGE], rebuilt[EDGE : length - EDGE].numpy()


def test_identical_audio_scores_exactly_zero(chorale) -> None:
    assert spectral_distances(chorale, chorale.copy()) == {name: 0.0 for name in SPECTRAL_METRICS}


@pytest.mark.parametrize("through_features", [False, True], ids=["stft-istft", "front-end-features"])
def test_round_trips_score_under_a_thousandth_of_random_phase(chorale, through_features: bool) -> None:
    baseline = spectral_distances(*_random_phase(chorale))
    # measured on this excerpt: log-mel 0.27, MSD 2.8, LSD 7.4 dB
    assert baseline["log_mel_distance"] > 0.1 and baseline["lsd_db"] > 3.0
    round_trip = spectral_distances(*_round_trip(chorale, through_features))
    for name in SPECTRAL_METRICS:
        # measured ratios: ≤ 1.8e-6 for the plain round trip, ≤ 2.1e-4 through the features (its +1e-7 power ε)
        assert round_trip[name] <= 1e-3 * baseline[name], (name, round_trip[name], baseline[name])


def test_every_distance_grows_monotonically_with_added_noise(chorale) -> None:
    noise = np.random.default_rng(0).standard_normal(chorale.shape)
    peak = np.abs(chorale).max()
    levels_db = range(-100, 1, 20)  # white noise from 100 dB under the peak up to the peak
    scores = [spectral_distances(chorale, chorale + peak * 10 ** (db / 20) * noise) for db in levels_db]
    for name in SPECTRAL_METRICS:
        values = [score[name] for score in scores]
        assert all(b > a for a, b in itertools.pairwise(values)), (name, values)
    # the 1e-6-amplitude noise (SI-SDR ≈ +93 dB) now scores near zero: < 1 % of random phase
    small = spectral_distances(chorale, chorale + 1e-6 * noise)
    baseline = spectral_distances(*_random_phase(chorale))
    assert all(small[name] < 0.01 * baseline[name] for name in SPECTRAL_METRICS), small


def test_a_gain_gives_the_known_shift_in_each_unit() -> None:
    # White noise keeps every bin within 80 dB of the peak, so no bin meets the floor.
    wave = 0.1 * np.random.default_rng(1).standard_normal(22050)
    half = 0.5 * wave
    assert log_spectral_distance(wave, half) == pytest.approx(20 * math.log10(2), rel=1e-9)  # dB of power
    assert log_mel_distance(wave, half) == pytest.approx(math.log10(2), rel=1e-9)  # log10 of magnitude
    # ln, 4 scales; a handful of 256-point bins of white noise dip 80 dB under the peak and meet the floor
    assert multiscale_spectral_distance(wave, half) == pytest.approx(4 * math.log(2), rel=1e-5)


def test_the_floor_is_relative_to_the_reference_peak() -> None:
    wave = 0.1 * np.random.default_rng(2).standard_normal(22050)
    noisy = wave + 1e-3 * np.random.default_rng(3).standard_normal(22050)
    # the same pair at any playback level scores the same: nothing depends on absolute level
    for name, distance in zip(
        SPECTRAL_METRICS, (log_mel_distance, multiscale_spectral_distance, log_spectral_distance), strict=True
    ):
        assert distance(1e-4 * wave, 1e-4 * noisy) == pytest.approx(distance(wave, noisy), rel=1e-6), name


def test_mel_filterbank_matches_the_slaney_definition() -> None:
    for n_fft in (512, 1024, 2048):
        bank = mel_filterbank(n_fft)
        assert bank.shape == (80, n_fft // 2 + 1)
        assert bool((bank.sum(dim=1) > 0).all())  # no empty band, even at FFT 512
        peaks = bank.argmax(dim=1)
        assert bool((peaks[1:] >= peaks[:-1]).all())
    # a 1 kHz sine lands in the band whose centre is nearest 1 kHz (Slaney: linear, 66.7 Hz/mel below 1 kHz)
    t = np.arange(4096) / 22050
    magnitude = spectral.stft(torch.from_numpy(np.sin(2 * np.pi * 1000 * t))[None], n_fft=2048, hop=512).abs()
    loudest_band = int((mel_filterbank(2048) @ magnitude[0]).mean(dim=1).argmax())
    centres_hz = mel_filterbank(2048).argmax(dim=1) * 22050 / 2048
    assert abs(float(centres_hz[loudest_band]) - 1000) < 60


def test_bad_inputs_raise_one_clear_error() -> None:
    with pytest.raises(DataError, match="reference has 2000 samples; spectral distances need at least 2048"):
        spectral_distances(np.zeros(2000), np.zeros(2000))
    with pytest.raises(DataError, match="differ in length: 4096 vs 4000 samples"):
        spectral_distances(np.zeros(4096), np.zeros(4000))


def test_a_silent_reference_stays_finite() -> None:
    silence = np.zeros(4096)
    assert spectral_distances(silence, silence) == {name: 0.0 for name in SPECTRAL_METRICS}
    scores = spectral_distances(silence, 1e-3 * np.random.default_rng(4).standard_normal(4096))
    assert all(np.isfinite(v) and v > 0 for v in scores.values())
