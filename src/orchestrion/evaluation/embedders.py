"""Audio embedders for the Fréchet Audio Distance: a registry, an offline default and VGGish.

An embedder maps 1 s mono excerpts ``(n, sample_rate)`` to vectors ``(n, dim)``; FAD fits a
Gaussian to each set of vectors (:mod:`orchestrion.evaluation.fad`). The distance means only
what the embedding sees, so every report names its embedder and says whether its numbers can
be set next to published ones.

``spectral-stats`` (the default) — why a hand-made embedding, and why this one:

* No learned audio embedding can be used offline here: VGGish, PANNs, OpenL3, CLAP and the
  ``frechet-audio-distance``/``fadtk`` packages all download their weights at run time. A
  deterministic embedding needs no weights, gives the same numbers on every machine and can
  be read feature by feature.
* FAD's mechanism — Gaussian fit per set, Fréchet distance (Kilgour et al., 2019) — works on
  any embedding, but later studies show its value and even the ranking of systems change with
  the embedding (Gui et al., ICASSP 2024, "Adapting Fréchet Audio Distance for generative music
  evaluation"; Tailleur et al., 2024, for environmental sound) and that it is biased by the
  number of samples (Gui et al.; Binkowski et al., 2018, for FID). Hence: numbers from
  different embedders or very different set sizes are not comparable, and every report carries
  the split-half FAD of the reference set as its scale.
* What the features measure: the average spectral envelope and its variation (64 log-mel band
  means and standard deviations: timbre, loudness balance, bandwidth — a low-pass filter or
  added noise moves them), onset activity (log-mel flux in 8 band groups: rhythm and
  articulation), harmony (a 12-bin chroma profile, loudness-normalised) and peak-to-valley
  spectral contrast in 7 octave bands (tonal vs noisy: noise lowers it). Every dimension is a
  natural-log energy ratio, so all share one unit and none needs data-dependent scaling (which
  would tie the distance to one reference set).
* What it cannot see: anything semantic a trained network learns (instrument identity beyond
  spectral shape, musical structure, artefacts that do not change these statistics). It is a
  sanity scale, not a perceptual score: **not comparable with published FAD values**.

``vggish`` / ``vggish-pca`` load a user's local VGGish weights (:mod:`orchestrion.evaluation.vggish`);
with the released weights their raw 128-d embeddings are what published FAD values use.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from orchestrion.config import register_config
from orchestrion.device import resolve_device
from orchestrion.errors import OrchestrionError
from orchestrion.evaluation.vggish import VGGishConfig, load_vggish, mel_matrix, vggish_log_mel


class AudioEmbedder(Protocol):
    """Maps mono excerpts ``(n, sample_rate)`` (float32, ±1 full scale) to embeddings ``(n, dim)``."""

    name: str
    sample_rate: int
    config: Any

    def embed(self, excerpts: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbedderInfo:
    """A registered embedder: how to build it, and what its numbers mean."""

    name: str
    description: str
    comparable_with_published: bool
    needs_weights: bool
    build: Callable[[Path | None, str], AudioEmbedder] = field(repr=False)


_EMBEDDERS: dict[str, EmbedderInfo] = {}


def register_embedder(info: EmbedderInfo) -> EmbedderInfo:
    """Add an embedder to the registry under ``info.name`` (a name may be registered once)."""
    if info.name in _EMBEDDERS:
        raise ValueError(f"embedder {info.name!r} is already registered")
    _EMBEDDERS[info.name] = info
    return info


def embedder_names() -> list[str]:
    """Names of the registered embedders, sorted."""
    return sorted(_EMBEDDERS)


def embedder_info(name: str) -> EmbedderInfo:
    """The registry entry for ``name``; an unknown name raises :class:`OrchestrionError` listing the known ones."""
    if name not in _EMBEDDERS:
        raise OrchestrionError(f"unknown embedder {name!r}; choose one of {', '.join(embedder_names())}")
    return _EMBEDDERS[name]


def build_embedder(name: str, weights: str | Path | None = None, device: str = "auto") -> AudioEmbedder:
    """Build embedder ``name``; ``weights`` is required by embedders with learned weights and refused by others."""
    info = embedder_info(name)
    if info.needs_weights and weights is None:
        raise OrchestrionError(
            f"embedder {name!r} needs a local weight file (--weights FILE); orchestrion downloads nothing. "
            "docs/evaluation-metrics.md gives the file layout and a conversion recipe"
        )
    if not info.needs_weights and weights is not None:
        raise OrchestrionError(f"embedder {name!r} has no weights; drop --weights (or pick --embedder vggish)")
    return info.build(Path(weights) if weights is not None else None, device)


@register_config("evaluation.spectral_stats")
@dataclass(frozen=True)
class SpectralStatsConfig:
    """Analysis settings of the ``spectral-stats`` embedder (22.05 kHz, the project's rate)."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 64
    fmin_hz: float = 30.0
    fmax_hz: float = 11025.0
    flux_groups: int = 8
    chroma_fmin_hz: float = 55.0
    chroma_fmax_hz: float = 5000.0
    contrast_edges_hz: tuple[float, ...] = (200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0)
    contrast_quantile: float = 0.02
    power_floor: float = 1e-5  # ≈ −104 dB under a full-scale sine's peak bin, near 16-bit noise over a mel band


class SpectralStatsEmbedder:
    """Per-excerpt statistics of a log-mel spectrogram, flux, chroma and spectral contrast.

    ``(n, 22050)`` → ``(n, 155)``: 64 log-mel means, 64 log-mel standard deviations over frames,
    8 flux means, 12 chroma log-energies (minus their mean), 7 contrasts. All natural-log units.
    """

    name = "spectral-stats"

    def __init__(self, config: SpectralStatsConfig = SpectralStatsConfig()) -> None:
        self.config = config
        self.sample_rate = config.sample_rate
        n_bins = config.n_fft // 2 + 1
        freqs = np.linspace(0.0, config.sample_rate / 2, n_bins)
        self._mel = torch.from_numpy(mel_matrix(n_bins, config.sample_rate, config.n_mels, config.fmin_hz,
                                                config.fmax_hz))
        in_range = (freqs >= config.chroma_fmin_hz) & (freqs <= config.chroma_fmax_hz)
        pitch_class = np.round(12 * np.log2(np.where(in_range, freqs, 1.0) / 440.0) + 69).astype(int) % 12
        chroma = np.zeros((n_bins, 12))
        chroma[np.flatnonzero(in_range), pitch_class[in_range]] = 1.0
        self._chroma = torch.from_numpy(chroma)
        edges = [0.0, *config.contrast_edges_hz, math.inf]
        bounds = np.searchsorted(freqs, edges)  # bins of [low, high) per octave band
        self._bands = [slice(int(low), int(high)) for low, high in itertools.pairwise(bounds)]
        self.dim = 2 * config.n_mels + config.flux_groups + 12 + len(self._bands)

    def embed(self, excerpts: np.ndarray) -> np.ndarray:
        config = self.config
        waves = torch.as_tensor(np.asarray(excerpts), dtype=torch.float64)
        window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float64)
        spec = torch.stft(waves, config.n_fft, config.hop, window=window, center=False, return_complex=True)
        power = spec.abs().pow(2).transpose(1, 2)  # (n, frames, bins)
        log_mel = torch.log(power @ self._mel + config.power_floor)  # (n, frames, 64)
        flux = (log_mel[:, 1:] - log_mel[:, :-1]).abs().mean(dim=1)  # (n, 64)
        flux = flux.reshape(len(waves), config.flux_groups, -1).mean(dim=2)  # (n, 8)
        chroma = torch.log((power @ self._chroma).mean(dim=1) + config.power_floor)  # (n, 12)
        chroma = chroma - chroma.mean(dim=1, keepdim=True)
        contrast = torch.stack([self._contrast(power[..., band]) for band in self._bands], dim=1)  # (n, 7)
        features = [log_mel.mean(dim=1), log_mel.std(dim=1), flux, chroma, contrast]
        return torch.cat(features, dim=1).numpy()

    def _contrast(self, band_power: torch.Tensor) -> torch.Tensor:
        """Peak-to-valley log ratio of one band: ``(n, frames, bins)`` → ``(n,)``, averaged over frames."""
        k = max(1, round(self.config.contrast_quantile * band_power.shape[-1]))
        peak = band_power.topk(k, dim=-1).values.mean(dim=-1)
        valley = band_power.topk(k, dim=-1, largest=False).values.mean(dim=-1)
        floor = self.config.power_floor
        return (torch.log(peak + floor) - torch.log(valley + floor)).mean(dim=1)


class VGGishEmbedder:
    """VGGish on 1 s excerpts at 16 kHz: 98 log-mel frames, the first 96 form the one patch."""

    def __init__(self, weights: Path, *, postprocess: bool, device: str = "cpu") -> None:
        self.name = "vggish-pca" if postprocess else "vggish"
        self.config = VGGishConfig()
        self.sample_rate = self.config.sample_rate
        self.postprocess = postprocess
        self.device = resolve_device(device)
        self.model = load_vggish(weights, need_pca=postprocess, config=self.config).to(self.device)

    def embed(self, excerpts: np.ndarray) -> np.ndarray:
        frames = self.config.patch_frames
        log_mel = vggish_log_mel(torch.as_tensor(np.asarray(excerpts)), self.config)  # (n, 98, 64)
        if log_mel.shape[1] < frames:
            raise ValueError(f"excerpts give {log_mel.shape[1]} frames, VGGish needs {frames}")
        patches = log_mel[:, None, :frames].to(self.device)  # (n, 1, 96, 64)
        with torch.inference_mode():
            embeddings = self.model(patches)
            if self.postprocess:
                embeddings = self.model.postprocess(embeddings)
        return embeddings.double().cpu().numpy()


register_embedder(
    EmbedderInfo(
        name="spectral-stats",
        description=(
            "offline hand-made embedding (log-mel mean/std, flux, chroma, spectral contrast; 155-d); "
            "NOT comparable with published FAD values"
        ),
        comparable_with_published=False,
        needs_weights=False,
        build=lambda weights, device: SpectralStatsEmbedder(),
    )
)
register_embedder(
    EmbedderInfo(
        name="vggish",
        description=(
            "VGGish raw 128-d embeddings from a local weight file (the original FAD embedding; "
            "comparable with published values only with Google's released weights)"
        ),
        comparable_with_published=True,
        needs_weights=True,
        build=lambda weights, device: VGGishEmbedder(weights, postprocess=False, device=device),
    )
)
register_embedder(
    EmbedderInfo(
        name="vggish-pca",
        description="VGGish embeddings PCA-whitened and 8-bit quantised as in AudioSet's release",
        comparable_with_published=False,
        needs_weights=True,
        build=lambda weights, device: VGGishEmbedder(weights, postprocess=True, device=device),
    )
)
