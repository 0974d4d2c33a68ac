"""Musika's spectral front end (spec musika.md §2): STFT, normalised log-power, inverse STFT.

Everything is batched, differentiable torch and runs on CPU or GPU. Layout convention used across
orchestrion's Musika code: spectrograms are ``(B, bins, frames)`` -- frequency bins are the channels
of the 1-D convolutions that run over frames -- and waveforms are ``(B, samples)`` at 22 050 Hz.

Frame arithmetic (no centring, no end padding): a waveform of ``L`` samples gives
``K = floor((L - 1024) / 256) + 1`` frames, and ``K`` frames need / resynthesise exactly
``256·K + 768`` samples.

Paper vs reference implementation (we follow the reference everywhere; each place is marked
``PAPER/REF`` in a comment below):

* the paper speaks of "log-magnitude spectrograms"; the reference takes 10·log10 of the *power*
  with a 1e-10 floor and normalises with μ = -25, σ = 75 (spec §2);
* the paper does not say how phase is represented; the reference decodes absolute per-bin phase
  divided by π (not instantaneous frequency);
* the paper does not name the window; the reference uses TF's periodic Hann and inverts with
  ``tf.signal.inverse_stft_window_fn`` (the dual window, hann/1.5 for 1024/256).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from orchestrion.errors import AudioError

SAMPLE_RATE = 22_050  # Hz; every waveform entering the front end is at this rate
N_FFT = 1024  # frame length = FFT length
HOP = 256  # samples per STFT frame = samples per level-1 latent
N_BINS = N_FFT // 2 + 1  # 513
MU = -25.0  # dB; normalisation mean
SIGMA = 75.0  # dB; normalisation scale
POWER_FLOOR = 1e-10  # |X|² floor before the log: digital silence -> -100 dB -> normalised -1
MAGNITUDE_EPS = 1e-7  # added to the de-normalised power before the square root (reference)

FRAMES_PER_SECOND = SAMPLE_RATE / HOP  # 86.13 level-1 frames per second
FRAMES_PER_BLOCK = 256  # frames per block of the inference iSTFT: its working set (~1 MB) stays in cache


def spectral_frames(num_samples: int, n_fft: int = N_FFT, hop: int = HOP) -> int:
    """Number of STFT frames (no centring, no end padding) for ``num_samples`` samples; 0 if too short."""
    if num_samples < n_fft:
        return 0
    return (num_samples - n_fft) // hop + 1


def samples_for_frames(num_frames: int, n_fft: int = N_FFT, hop: int = HOP) -> int:
    """Samples spanned by ``num_frames`` STFT frames: ``hop·K + (n_fft - hop)`` (256·K + 768)."""
    return hop * num_frames + (n_fft - hop)


@functools.lru_cache(maxsize=16)
def _hann_cpu(n_fft: int) -> Tensor:
    # Periodic Hann, as tf.signal.hann_window(periodic=True) (PAPER/REF: window named only in the code).
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float64)


def hann_window(n_fft: int = N_FFT, device: torch.device | str | None = None) -> Tensor:
    """Periodic Hann analysis window, shape (n_fft,), float32."""
    return _hann_cpu(n_fft).to(device=device, dtype=torch.float32)


@functools.lru_cache(maxsize=16)
def _dual_window_cpu(n_fft: int, hop: int) -> Tensor:
    # Dual (synthesis) window w[n] / Σ_k w[n + k·hop]², computed like tf.signal.inverse_stft_window_fn.
    # For periodic Hann 1024/256 the denominator is the constant 1.5, so this is hann/1.5 (spec §2).
    window = _hann_cpu(n_fft)
    denominator = (window**2).reshape(n_fft // hop, hop).sum(dim=0).repeat(n_fft // hop)
    return window / denominator


def synthesis_window(n_fft: int = N_FFT, hop: int = HOP, device: torch.device | str | None = None) -> Tensor:
    """Dual window used by :func:`istft` for plain overlap-add, shape (n_fft,), float32."""
    if n_fft % hop:
        raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop}) for the dual window")
    return _dual_window_cpu(n_fft, hop).to(device=device, dtype=torch.float32)


def _check_wave(wave: Tensor, n_fft: int) -> None:
    if wave.dim() != 2:
        raise AudioError(f"expected a waveform batch of shape (B, samples), got shape {tuple(wave.shape)}")
    if wave.shape[-1] < n_fft:
        raise AudioError(
            f"waveform of {wave.shape[-1]} samples is shorter than one STFT frame ({n_fft} samples)"
        )


def stft(wave: Tensor, n_fft: int = N_FFT, hop: int = HOP) -> Tensor:
    """Complex STFT with a periodic Hann window, no centring and no end padding.

    Args:
        wave: (B, L) float waveform.
    Returns:
        (B, n_fft // 2 + 1, K) complex spectrogram, K = floor((L - n_fft) / hop) + 1.
    """
    _check_wave(wave, n_fft)
    return torch.stft(
        wave,
        n_fft=n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=hann_window(n_fft, wave.device).to(wave.dtype),
        center=False,
        return_complex=True,
    )


def normalise(power_db: Tensor) -> Tensor:
    """(dB - μ) / σ with μ = -25, σ = 75; no clipping (inputs may slightly exceed 1)."""
    return (power_db - MU) / SIGMA


def log_magnitude(spec: Tensor) -> Tensor:
    """Normalised log-power of a complex spectrogram, same shape, float.

    ``(10·log10(max(|X|², 1e-10)) - μ) / σ``: silence gives -1, a full-scale sine about +0.97.
    PAPER/REF: the paper says "log-magnitude"; the reference (followed) uses this dB-of-power form.
    """
    power = spec.real**2 + spec.imag**2
    return normalise(10.0 * torch.log10(torch.clamp(power, min=POWER_FLOOR)))


def wave_to_features(wave: Tensor) -> Tensor:
    """Waveform (B, L) at 22.05 kHz -> normalised log-power features (B, 513, K)."""
    return log_magnitude(stft(wave))


def denormalise_magnitude(features: Tensor) -> Tensor:
    """Normalised log-power (any shape) -> linear magnitude, after clipping to [-1, 1].

    ``sqrt(10^((75·S - 25)/10) + 1e-7)`` (the +1e-7 is the reference's, it keeps the gradient of the
    square root finite at zero power). Computed as ``exp(ln(10)/10 · dB)``, faster than ``pow``.
    """
    power_db = torch.clamp(features, -1.0, 1.0) * SIGMA + MU
    return torch.sqrt(torch.exp(power_db * (math.log(10.0) / 10.0)) + MAGNITUDE_EPS)


def overlap_add(frames: Tensor, hop: int) -> Tensor:
    """Vectorised overlap-add of time-domain frames.

    Args:
        frames: (B, K, n_fft) frames, frame k starting at sample hop·k; n_fft a multiple of hop.
    Returns:
        (B, hop·(K - 1) + n_fft) summed signal.
    """
    batch, num_frames, n_fft = frames.shape
    overlap = n_fft // hop
    # Frame k's j-th hop-long segment lands in output segment k + j: `overlap` shifted adds of whole
    # (B, K, hop) slabs (4 for 1024/256) -- no loop over frames, and several times faster on CPU than
    # F.fold, which scatters element by element.
    segments = frames.reshape(batch, num_frames, overlap, hop)
    out = frames.new_zeros(batch, num_frames + overlap - 1, hop)
    for j in range(overlap):
        out[:, j : j + num_frames] += segments[:, :, j]
    return out.reshape(batch, -1)


def _istft_differentiable(magnitude: Tensor, phase_over_pi: Tensor, n_fft: int, hop: int) -> Tensor:
    """Whole-tensor iSTFT with autograd support (training); same arguments as :func:`istft`."""
    # Work in (B, K, bins): the FFT then runs over the contiguous last axis and yields (B, K, n_fft)
    # frames ready for overlap-add, which is ~2x faster than transforming along the strided bin axis.
    magnitude = magnitude.transpose(1, 2).contiguous()
    phase = math.pi * phase_over_pi.transpose(1, 2)  # PAPER/REF: absolute phase / π, as the reference
    spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1)  # (B, K, n_fft)
    frames = frames * synthesis_window(n_fft, hop, magnitude.device).to(frames.dtype)
    return overlap_add(frames, hop)


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _istft_blocked(
    magnitude_tk: Tensor,
    phase_tk: Tensor,
    *,
    denormalise: bool,
    n_fft: int = N_FFT,
    hop: int = HOP,
    block: int = FRAMES_PER_BLOCK,
) -> Tensor:
    """Inference iSTFT on frame-major inputs, ``block`` frames at a time (no autograd).

    Every intermediate of a block (magnitude, phase, complex spectrum, time frames: ~1 MB for 256
    frames of 2 channels) stays in the CPU caches and is reused across blocks, and each block is
    overlap-added straight into the output; the whole-tensor version spends most of its time
    allocating and streaming full-size temporaries through memory (~5x slower on 2 cores). The
    arithmetic is the same as :func:`denormalise_magnitude` + :func:`_istft_differentiable`.

    Args:
        magnitude_tk: (B, K, bins) linear magnitude, or normalised log-power if ``denormalise``
            (any strides and float dtype, e.g. a column slice of a decoder's time-major output).
        phase_tk: (B, K, bins) phase / π.
    Returns:
        (B, hop·K + n_fft - hop) float32 waveform.
    """
    batch, frames, bins = magnitude_tk.shape
    overlap = n_fft // hop
    window = synthesis_window(n_fft, hop, magnitude_tk.device)
    out = torch.zeros(batch, frames + overlap - 1, hop, device=magnitude_tk.device)
    buffers: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
    for first in range(0, frames, block):
        n = min(block, frames - first)
        if n not in buffers:  # all blocks but the last share one set of buffers
            spec = torch.empty(batch, n, bins, dtype=torch.complex64, device=magnitude_tk.device)
            buffers[n] = (
                torch.empty(batch, n, bins, device=magnitude_tk.device),
                torch.empty(batch, n, bins, device=magnitude_tk.device),
                spec,
                torch.empty(batch, n, n_fft, device=magnitude_tk.device),
            )
        magnitude, phase, spec, time_frames = buffers[n]
        magnitude.copy_(magnitude_tk[:, first : first + n])
        if denormalise:  # denormalise_magnitude, in place
            magnitude.clamp_(-1.0, 1.0).mul_(SIGMA).add_(MU).mul_(math.log(10.0) / 10.0)
            magnitude.exp_().add_(MAGNITUDE_EPS).sqrt_()
        phase.copy_(phase_tk[:, first : first + n]).mul_(math.pi)  # PAPER/REF: absolute phase / π
        parts = torch.view_as_real(spec)  # (B, n, bins, 2) view of the complex buffer
        torch.mul(torch.cos(phase), magnitude, out=parts[..., 0])
        torch.mul(phase.sin_(), magnitude, out=parts[..., 1])
        torch.fft.irfft(spec, n=n_fft, dim=-1, out=time_frames)
        segments = time_frames.mul_(window).view(batch, n, overlap, hop)
        for j in range(overlap):  # frame k's j-th hop-long segment lands in output segment k + j
            out[:, first + j : first + j + n] += segments[:, :, j]
    return out.reshape(batch, -1)


def istft(magnitude: Tensor, phase_over_pi: Tensor, n_fft: int = N_FFT, hop: int = HOP) -> Tensor:
    """Inverse STFT by plain overlap-add with the dual window (no centring, no trimming).

    Args:
        magnitude: (B, n_fft // 2 + 1, K) linear magnitude (see :func:`denormalise_magnitude`).
        phase_over_pi: (B, n_fft // 2 + 1, K) absolute phase divided by π (decoder output in [-1, 1]).
    Returns:
        (B, hop·K + n_fft - hop) waveform, i.e. 256·K + 768 samples for the Musika front end.
        Differentiable when an input requires grad; otherwise computed block-wise (same values
        within float rounding, several times faster).
    """
    if magnitude.shape != phase_over_pi.shape or magnitude.dim() != 3:
        raise ValueError(
            f"magnitude {tuple(magnitude.shape)} and phase {tuple(phase_over_pi.shape)} must both be (B, bins, K)"
        )
    if _needs_grad(magnitude, phase_over_pi) or magnitude.dtype == torch.float64:
        return _istft_differentiable(magnitude, phase_over_pi, n_fft, hop)
    return _istft_blocked(
        magnitude.transpose(1, 2), phase_over_pi.transpose(1, 2), denormalise=False, n_fft=n_fft, hop=hop
    )


def features_to_wave(features: Tensor, phase_over_pi: Tensor) -> Tensor:
    """Decoder outputs -> waveform: de-normalise the magnitude, then :func:`istft`.

    Args:
        features: (B, 513, K) normalised log-power (clipped to [-1, 1] here).
        phase_over_pi: (B, 513, K) phase / π.
    Returns:
        (B, 256·K + 768) waveform (not clipped; clip at the very end of generation).
    """
    if _needs_grad(features, phase_over_pi) or features.dtype == torch.float64:
        return istft(denormalise_magnitude(features), phase_over_pi)
    return frames_to_wave(features.transpose(1, 2), phase_over_pi.transpose(1, 2))


def frames_to_wave(features: Tensor, phase_over_pi: Tensor) -> Tensor:
    """:func:`features_to_wave` for frame-major decoder outputs, inference only (no autograd).

    Args:
        features: (B, K, 513) normalised log-power, any strides and float dtype (e.g.
            ``out[..., :513]`` of a time-major (B, K, 1026) decoder output); clipped to [-1, 1] here.
        phase_over_pi: (B, K, 513) phase / π.
    Returns:
        (B, 256·K + 768) float32 waveform, equal to :func:`features_to_wave` on the transposed inputs.
    """
    if features.shape != phase_over_pi.shape or features.dim() != 3 or features.shape[-1] != N_BINS:
        raise ValueError(
            f"features {tuple(features.shape)} and phase {tuple(phase_over_pi.shape)} must both be (B, K, {N_BINS})"
        )
    return _istft_blocked(features, phase_over_pi, denormalise=True)


def log_magnitude_for_discriminator(wave: Tensor, n_fft: int = 6 * HOP, hop: int = HOP) -> Tensor:
    """Phase-2 discriminator input: normalised log-power with FFT/window 1536 and hop 256 (spec §5.2).

    The μ/σ normalisation of §2 is reused (spec [PROPOSED]).

    Args:
        wave: (B, L) waveform.
    Returns:
        (B, n_fft // 2 + 1, floor((L - n_fft) / hop) + 1) = (B, 769, K') for the defaults.
    """
    return log_magnitude(stft(wave, n_fft=n_fft, hop=hop))


def multiscale_spectral_distance(
    x: Tensor, y: Tensor, hops: tuple[int, ...] = (64, 128, 256, 512), eps: float = 1e-7
) -> Tensor:
    """Multi-scale spectral distance of spec §5.2, a differentiable scalar.

    ``Σ_h mean |log(|STFT_h(x)| + ε) - log(|STFT_h(y)| + ε)|`` with FFT = window = 4·h (Hann), mean
    over batch, bins and frames, summed over the scales. The STFTs use the same no-centring
    convention as the front end ([PROPOSED]: the paper does not say).

    Args:
        x, y: (B, L) waveforms of equal shape, L >= 4·max(hops).
    """
    if x.shape != y.shape:
        raise ValueError(f"waveform shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    total = x.new_zeros(())
    for hop in hops:
        n_fft = 4 * hop
        magnitude_x = stft(x, n_fft=n_fft, hop=hop).abs()
        magnitude_y = stft(y, n_fft=n_fft, hop=hop).abs()
        total = total + (torch.log(magnitude_x + eps) - torch.log(magnitude_y + eps)).abs().mean()
    return total


def relative_multiscale_distance(
    reference: Tensor, estimate: Tensor, hops: tuple[int, ...] = (64, 128, 256, 512), top_db: float = 80.0
) -> Tensor:
    """Multi-scale spectral distance in the units of the normalised features, a differentiable scalar.

    ``mean_h mean |P_h(ref) - P_h(est)| / σ`` where ``P_h`` is 10·log10 power of the STFT with FFT =
    window = 4·h, clamped at each excerpt's peak of ``reference`` minus ``top_db``. Unlike spec §5.2's
    [PROPOSED] form (:func:`multiscale_spectral_distance`: ``ln(|X| + 1e-7)`` summed over scales), bins
    far below the music carry no gradient, and one unit means what one unit of the L1 feature term
    means (σ = 75 dB), so the paper's weights λ_rec = 1, λ_ms = 4 balance as intended.

    Args:
        reference, estimate: (B, L) waveforms of equal shape, L >= 4·max(hops).
    """
    if reference.shape != estimate.shape:
        raise ValueError(f"waveform shapes differ: {tuple(reference.shape)} vs {tuple(estimate.shape)}")
    total = reference.new_zeros(())
    for hop in hops:
        power_ref = stft(reference, n_fft=4 * hop, hop=hop).abs().square()
        power_est = stft(estimate, n_fft=4 * hop, hop=hop).abs().square()
        peak = power_ref.detach().flatten(1).amax(dim=1).clamp_min(POWER_FLOOR)
        floor = (peak * 10.0 ** (-top_db / 10.0)).clamp_min(POWER_FLOOR).view(-1, *([1] * (power_ref.dim() - 1)))
        db_ref = 10.0 * torch.log10(torch.maximum(power_ref, floor))
        db_est = 10.0 * torch.log10(torch.maximum(power_est, floor))
        total = total + (db_ref - db_est).abs().mean() / SIGMA
    return total / len(hops)


def _anti_wrapped(difference: Tensor) -> Tensor:
    """``|x − 2π·round(x / 2π)|``: the distance of two angles, 0..π."""
    return (difference - 2.0 * math.pi * torch.round(difference / (2.0 * math.pi))).abs()


def phase_derivative_loss(phase_over_pi: Tensor, reference: Tensor) -> Tensor:
    """Instantaneous-frequency + group-delay error of a predicted phase, a differentiable scalar.

    The absolute phase of an excerpt is not a function of its magnitude (a sinusoid's starting angle is
    arbitrary), but its derivatives are: how fast each bin's phase turns over time (instantaneous
    frequency) and how it changes across bins (group delay). Both are compared as angles
    (anti-wrapped, as APNet, Ai & Ling 2023), weighted by the reference's magnitude so bins under the
    music do not count, each normalised to 0..1 (π = 1) and averaged.

    Args:
        phase_over_pi: (B, 513, K) predicted phase / π (the decoder's phase output).
        reference: (B, 513, K) complex STFT of the real excerpt (:func:`stft`).
    """
    if phase_over_pi.shape != reference.shape:
        raise ValueError(f"shapes differ: {tuple(phase_over_pi.shape)} vs {tuple(reference.shape)}")
    predicted, target = phase_over_pi.float() * math.pi, torch.angle(reference)
    weight = reference.abs().detach()
    weight = weight / weight.flatten(1).mean(dim=1).clamp_min(1e-8).view(-1, 1, 1)
    total = predicted.new_zeros(())
    for axis in (-1, -2):  # time: instantaneous frequency; frequency: group delay
        error = _anti_wrapped(predicted.diff(dim=axis) - target.diff(dim=axis)) / math.pi
        length = error.shape[axis]
        pair_weight = torch.minimum(weight.narrow(axis, 0, length), weight.narrow(axis, 1, length))
        total = total + (error * pair_weight).sum() / pair_weight.sum().clamp_min(1e-8)
    return total / 2
