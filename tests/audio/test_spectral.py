"""Musika front end (spec musika.md §2, acceptance A1-A3)."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrion.audio import spectral
from orchestrion.audio.spectral import (
    FRAMES_PER_SECOND,
    HOP,
    N_BINS,
    N_FFT,
    SAMPLE_RATE,
    denormalise_magnitude,
    features_to_wave,
    frames_to_wave,
    istft,
    log_magnitude,
    log_magnitude_for_discriminator,
    multiscale_spectral_distance,
    overlap_add,
    phase_derivative_loss,
    relative_multiscale_distance,
    samples_for_frames,
    spectral_frames,
    stft,
    synthesis_window,
    wave_to_features,
)
from orchestrion.errors import AudioError

EDGE = N_FFT - HOP  # 768 samples at each end lack full window overlap


def _test_signal(num_samples: int, seed: int = 0) -> torch.Tensor:
    """Random waveform in [-0.5, 0.5] plus a chirp, shape (2, num_samples)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(2, num_samples, generator=generator) - 0.5
    t = torch.arange(num_samples) / SAMPLE_RATE
    chirp = 0.3 * torch.sin(2 * math.pi * (200 + 2000 * t) * t)
    return 0.5 * noise + 0.5 * chirp


@pytest.mark.parametrize("frames", [1, 7, 64, 129])
def test_frame_count_a1(frames: int) -> None:
    length = samples_for_frames(frames)
    assert length == 256 * frames + 768
    for extra in (0, 255):  # up to hop - 1 trailing samples add no frame (no end padding)
        spec = stft(torch.zeros(3, length + extra))
        assert spec.shape == (3, N_BINS, frames)
        assert spec.is_complex()
        assert spectral_frames(length + extra) == frames
    assert spectral_frames(length + 256) == frames + 1
    assert spectral_frames(N_FFT - 1) == 0


def test_latent_rate_a6() -> None:
    assert pytest.approx(86.13, abs=0.005) == FRAMES_PER_SECOND
    # one minute of audio: one frame per 256 samples once the first 1024-sample window is full
    assert spectral_frames(60 * SAMPLE_RATE) == (60 * SAMPLE_RATE - 1024) // 256 + 1 == 5164


def test_silence_is_minus_one_a2() -> None:
    features = wave_to_features(torch.zeros(2, samples_for_frames(10)))
    assert torch.all(features == -1.0)


def test_full_scale_sine_range() -> None:
    t = torch.arange(samples_for_frames(20)) / SAMPLE_RATE
    features = wave_to_features(torch.sin(2 * math.pi * 1000.0 * t)[None])
    assert 0.96 <= features.max().item() <= 0.98


def test_dual_window_is_hann_over_1_5() -> None:
    hann = torch.hann_window(N_FFT, periodic=True)
    torch.testing.assert_close(synthesis_window(), hann / 1.5, rtol=0, atol=1e-6)


def test_overlap_add_matches_naive_loop() -> None:
    frames = torch.randn(2, 9, 16)
    out = overlap_add(frames, hop=4)
    naive = torch.zeros(2, 4 * 8 + 16)
    for k in range(9):
        naive[:, 4 * k : 4 * k + 16] += frames[:, k]
    torch.testing.assert_close(out, naive)


def test_round_trip_a3() -> None:
    wave = _test_signal(samples_for_frames(200))
    spec = stft(wave)
    rebuilt = features_to_wave(log_magnitude(spec), torch.angle(spec) / math.pi)
    assert rebuilt.shape == wave.shape
    error = (rebuilt - wave)[:, EDGE:-EDGE]
    signal = wave[:, EDGE:-EDGE]
    snr_db = 10 * torch.log10(signal.pow(2).sum() / error.pow(2).sum())
    assert error.abs().max() < 1e-4
    assert snr_db > 60


def test_istft_length_and_linear_magnitude() -> None:
    wave = _test_signal(samples_for_frames(33), seed=1)
    spec = stft(wave)
    rebuilt = istft(spec.abs(), torch.angle(spec) / math.pi)
    assert rebuilt.shape[-1] == 256 * 33 + 768
    torch.testing.assert_close(rebuilt[:, EDGE:-EDGE], wave[:, EDGE:-EDGE], rtol=0, atol=1e-5)


def test_normalisation_round_trip() -> None:
    magnitude = torch.logspace(-1.5, 1.5, 50)  # -30 dB .. +30 dB of power: inside the [-1, 1] clip range
    features = log_magnitude(torch.complex(magnitude, torch.zeros_like(magnitude)))
    assert features.min() > -1 and features.max() < 1
    expected = torch.sqrt(magnitude**2 + 1e-7)  # the reference's +1e-7 inside the square root
    torch.testing.assert_close(denormalise_magnitude(features), expected, rtol=1e-5, atol=1e-6)
    # outside [-1, 1] the decoder side clips: +2 decodes like +1
    assert denormalise_magnitude(torch.tensor(2.0)) == denormalise_magnitude(torch.tensor(1.0))


def test_discriminator_spectrogram_shape() -> None:
    wave = torch.zeros(2, 32768 + 768)
    spec = log_magnitude_for_discriminator(wave)
    assert spec.shape == (2, 769, (32768 + 768 - 1536) // 256 + 1)
    assert torch.all(spec == -1.0)


def test_multiscale_distance_zero_monotone_and_differentiable() -> None:
    clean = _test_signal(8192, seed=2)
    assert multiscale_spectral_distance(clean, clean).item() == 0.0
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(clean.shape, generator=generator)
    distances = [multiscale_spectral_distance(clean, clean + level * noise).item() for level in (0.01, 0.1, 1.0)]
    assert 0 < distances[0] < distances[1] < distances[2]

    noisy = (clean + 0.1 * noise).requires_grad_(True)
    multiscale_spectral_distance(clean, noisy).backward()
    assert torch.isfinite(noisy.grad).all()
    assert noisy.grad.abs().sum() > 0


def test_relative_multiscale_distance_is_in_feature_units_and_ignores_bins_below_the_floor() -> None:
    clean = _test_signal(8192, seed=2)
    assert relative_multiscale_distance(clean, clean).item() == 0.0
    # Halving the amplitude lowers every bin by 20·log10(2) dB: the distance is that over σ = 75 dB,
    # as long as no bin of the estimate falls under the floor (top_db large enough).
    halved = relative_multiscale_distance(clean, 0.5 * clean, top_db=200.0).item()
    assert halved == pytest.approx(20 * math.log10(2) / 75.0, rel=1e-4)
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(clean.shape, generator=generator)
    distances = [relative_multiscale_distance(clean, clean + level * noise).item() for level in (0.01, 0.1, 1.0)]
    assert 0 < distances[0] < distances[1] < distances[2]
    # Faint noise (-100 dBFS) in a silent second half lies under the floor: no gradient pushes the
    # decoder there, where the spec's ε form gives large ones.
    music_then_silence = torch.cat([clean[:, :4096], torch.zeros(2, 4096)], dim=1)
    faint = (music_then_silence + 1e-5 * noise * (torch.arange(8192) >= 4096)).requires_grad_(True)
    relative_multiscale_distance(music_then_silence, faint).backward()
    relative_gradient = faint.grad[:, 6144:].abs().sum().item()
    faint.grad = None
    multiscale_spectral_distance(music_then_silence, faint).backward()
    assert relative_gradient == 0.0 < faint.grad[:, 6144:].abs().sum().item()


def test_phase_derivative_loss_ignores_a_constant_offset_and_scores_random_phase_one_half() -> None:
    torch.manual_seed(0)
    spec = stft(torch.randn(2, samples_for_frames(64)))
    exact = torch.angle(spec)
    offset = torch.remainder(exact + 1.0 + math.pi, 2 * math.pi) - math.pi  # same derivatives, other start
    assert phase_derivative_loss(exact / math.pi, spec) < 1e-6
    assert phase_derivative_loss(offset / math.pi, spec) < 1e-6  # absolute phase is not asked for
    random = phase_derivative_loss(torch.rand(spec.shape) * 2 - 1, spec)
    assert 0.45 < random < 0.55  # uniform angle errors: mean |error| / π = 1/2
    blurred = phase_derivative_loss((exact + 0.5 * torch.randn(spec.shape)) / math.pi, spec)
    assert 0.05 < blurred < random
    with pytest.raises(ValueError, match="shapes differ"):
        phase_derivative_loss(exact[:, :, 1:], spec)


def test_front_end_is_differentiable() -> None:
    wave = _test_signal(samples_for_frames(8)).requires_grad_(True)
    features = wave_to_features(wave)
    phase = torch.zeros_like(features, requires_grad=True)
    features_to_wave(features, phase).pow(2).mean().backward()
    assert torch.isfinite(wave.grad).all() and wave.grad.abs().sum() > 0
    assert torch.isfinite(phase.grad).all() and phase.grad.abs().sum() > 0


def test_bad_input_raises_audio_error() -> None:
    with pytest.raises(AudioError, match="shorter than one STFT frame"):
        stft(torch.zeros(1, 1000))
    with pytest.raises(AudioError, match="shape"):
        stft(torch.zeros(1000))


def test_constants() -> None:
    assert (spectral.N_FFT, spectral.HOP, spectral.N_BINS) == (1024, 256, 513)
    assert (spectral.MU, spectral.SIGMA, spectral.SAMPLE_RATE) == (-25.0, 75.0, 22050)


@pytest.mark.parametrize("frames", [1, 255, 256, 700])  # one, exactly one, and several (partial) blocks
def test_blockwise_inference_istft_equals_whole_tensor_version(frames: int) -> None:
    generator = torch.Generator().manual_seed(frames)
    features = torch.rand(2, N_BINS, frames, generator=generator) * 2.4 - 1.2  # includes values to clip
    phase = torch.rand(2, N_BINS, frames, generator=generator) * 2 - 1
    # the autograd path (used in training) is the whole-tensor reference implementation
    reference = features_to_wave(features.clone().requires_grad_(True), phase).detach()
    assert reference.shape == (2, 256 * frames + 768)
    torch.testing.assert_close(features_to_wave(features, phase), reference, rtol=0, atol=1e-5)
    magnitude = denormalise_magnitude(features)
    torch.testing.assert_close(istft(magnitude, phase), reference, rtol=0, atol=1e-5)
    # frame-major, strided input as a decoder emits it: (B, K, 1026) with magnitude and phase halves
    decoder_out = torch.cat([features, phase], dim=1).transpose(1, 2).contiguous()
    fast = frames_to_wave(decoder_out[..., :N_BINS], decoder_out[..., N_BINS:])
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="must both be"):
        frames_to_wave(decoder_out, decoder_out[..., :N_BINS])
