"""Spectral distances between a reference waveform and its reconstruction, with floors relative to the signal.

Every log below is clamped at the reference's own maximum minus ``top_db`` (80 dB) -- per excerpt,
per resolution, the same floor for both signals -- so that

- a perfect reconstruction scores 0, and the front end's own STFT -> features -> iSTFT round trip
  scores ~0 (an absolute floor such as -100 dB counts float rounding in near-silent bins as
  error: issue 13 measured 0.4 MSD / 3 dB LSD for that round trip);
- what lies more than 80 dB under the loudest bin of the excerpt (inaudible next to it) is not
  counted, whatever the playback level;
- every distance grows with added noise once the noise rises above that floor.

Three distances (lower is better, 0 = equal):

- **log-mel distance** (headline): the multi-resolution mel distance that DAC and audiocraft
  report: mean over FFT sizes 512 / 1024 / 2048 (hop = size / 4, Hann, 80 Slaney mel bands from
  0 Hz to Nyquist) of the mean absolute difference of log10 mel *magnitudes*. Unit: log10
  magnitude (×20 = dB).
- **multi-scale spectral distance (MSD)**: the training loss of spec §5.2 (sum over hops
  64/128/256/512, FFT = 4·hop, of the mean |Δ ln magnitude|), with the relative floor instead of
  its ε = 1e-7.
- **log-spectral distance (LSD, dB)**: per frame, the RMS over frequency of the dB difference of
  the power spectra (FFT 1024, hop 256, the front end's frames), averaged over frames.

All STFTs are the project's (:func:`orchestrion.audio.spectral.stft`: periodic Hann, no centring)
and run in float64, so identical inputs give exactly 0.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from orchestrion.audio.spectral import SAMPLE_RATE, stft
from orchestrion.errors import DataError

TOP_DB = 80.0  # dynamic range kept under the reference's maximum, per excerpt
MEL_FFT_SIZES = (512, 1024, 2048)
MEL_BANDS = 80
MSD_HOPS = (64, 128, 256, 512)  # spec §5.2
LSD_FFT, LSD_HOP = 1024, 256  # the front end's frames
ABSOLUTE_FLOOR = 1e-10  # magnitude (-200 dB): keeps a silent reference finite; far below any relative floor
MIN_SAMPLES = max(MEL_FFT_SIZES + tuple(4 * h for h in MSD_HOPS) + (LSD_FFT,))  # 2048: one frame of the largest FFT


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's auditory-toolbox scale (librosa's default): linear to 1 kHz, logarithmic above.
    linear = hz / (200.0 / 3.0)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    linear = mel * (200.0 / 3.0)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_fft: int, n_mels: int = MEL_BANDS, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """Slaney-normalised triangular mel filters (as ``librosa.filters.mel`` defaults), (n_mels, n_fft//2 + 1) float64.

    Band edges are equally spaced on the Slaney mel scale from 0 Hz to Nyquist; each triangle is
    scaled by 2 / (bandwidth in Hz) so that bands have equal area.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz[None] - lower) / (centre - lower)
    falling = (upper - fft_hz[None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
    return torch.from_numpy(weights)


def _as_wave(wave: np.ndarray | Tensor, what: str) -> Tensor:
    tensor = wave.detach().cpu() if isinstance(wave, Tensor) else torch.from_numpy(np.asarray(wave))
    tensor = tensor.to(torch.float64).reshape(-1)
    if tensor.numel() < MIN_SAMPLES:
        raise DataError(f"{what} has {tensor.numel()} samples; spectral distances need at least {MIN_SAMPLES}")
    return tensor


def _pair(reference: np.ndarray | Tensor, estimate: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
    ref, est = _as_wave(reference, "reference"), _as_wave(estimate, "estimate")
    if ref.shape != est.shape:
        raise DataError(f"reference and estimate differ in length: {ref.numel()} vs {est.numel()} samples")
    return ref, est


def _magnitudes(ref: Tensor, est: Tensor, n_fft: int, hop: int) -> Tensor:
    """|STFT| of both signals in one call: (2, n_fft // 2 + 1, frames), reference first."""
    return stft(torch.stack([ref, est]), n_fft=n_fft, hop=hop).abs()


def _relative_log(pair: Tensor, log, top_db: float, magnitude: bool) -> Tensor:
    """``log`` of both rows of ``pair`` clamped at the reference row's maximum minus ``top_db``."""
    ratio = 10.0 ** (-top_db / (20.0 if magnitude else 10.0))
    floor = max(float(pair[0].max()) * ratio, ABSOLUTE_FLOOR if magnitude else ABSOLUTE_FLOOR**2)
    return log(pair.clamp_min(floor))


def log_mel_distance(
    reference: np.ndarray | Tensor,
    estimate: np.ndarray | Tensor,
    fft_sizes: tuple[int, ...] = MEL_FFT_SIZES,
    n_mels: int = MEL_BANDS,
    top_db: float = TOP_DB,
) -> float:
    """Multi-resolution log-mel distance (headline measure), in log10 magnitude units.

    ``mean_n mean |log10 M_n(ref) - log10 M_n(est)|`` with ``M_n`` the 80-band mel magnitude
    spectrogram at FFT size n (hop n/4), logs clamped at ``max M_n(ref) - top_db``.

    Args:
        reference, estimate: 1-D waveforms at 22.05 kHz of equal length (>= 2048 samples).
    """
    ref, est = _pair(reference, estimate)
    total = 0.0
    for n_fft in fft_sizes:
        bank = mel_filterbank(n_fft, n_mels)
        # one product per signal: the same kernel on both, so identical inputs give identical bits
        mel = torch.stack([bank @ magnitude for magnitude in _magnitudes(ref, est, n_fft, n_fft // 4)])
        logs = _relative_log(mel, torch.log10, top_db, magnitude=True)
        total += float((logs[0] - logs[1]).abs().mean())
    return total / len(fft_sizes)


def multiscale_spectral_distance(
    reference: np.ndarray | Tensor,
    estimate: np.ndarray | Tensor,
    hops: tuple[int, ...] = MSD_HOPS,
    top_db: float = TOP_DB,
) -> float:
    """Spec §5.2's multi-scale spectral distance with a relative floor: ``Σ_h mean |Δ ln |STFT_h||``.

    FFT = window = 4·h; natural-log magnitudes clamped at the reference's maximum minus ``top_db``.
    """
    ref, est = _pair(reference, estimate)
    total = 0.0
    for hop in hops:
        logs = _relative_log(_magnitudes(ref, est, 4 * hop, hop), torch.log, top_db, magnitude=True)
        total += float((logs[0] - logs[1]).abs().mean())
    return total


def log_spectral_distance(
    reference: np.ndarray | Tensor, estimate: np.ndarray | Tensor, top_db: float = TOP_DB
) -> float:
    """Log-spectral distance in dB: ``mean_t sqrt(mean_f (10·log10 P_ref - 10·log10 P_est)²)``.

    Power spectra with FFT 1024 / hop 256 (the front end's frames), clamped at the reference's
    maximum power minus ``top_db``.
    """
    ref, est = _pair(reference, estimate)
    power = _magnitudes(ref, est, LSD_FFT, LSD_HOP).square()
    db = 10.0 * _relative_log(power, torch.log10, top_db, magnitude=False)
    return float((db[0] - db[1]).square().mean(dim=0).sqrt().mean())


SPECTRAL_METRICS = ("log_mel_distance", "multiscale_spectral_distance", "lsd_db")


def spectral_distances(reference: np.ndarray | Tensor, estimate: np.ndarray | Tensor) -> dict[str, float]:
    """The three distances of this module for one pair, keyed by :data:`SPECTRAL_METRICS`."""
    return {
        "log_mel_distance": log_mel_distance(reference, estimate),
        "multiscale_spectral_distance": multiscale_spectral_distance(reference, estimate),
        "lsd_db": log_spectral_distance(reference, estimate),
    }
