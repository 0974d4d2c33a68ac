"""Does a conditional latent GAN follow its note-density control? Onsets per second of its output.

The note density a GAN is conditioned on was computed from madmom's onsets in the training audio
(:mod:`orchestrion.audio.features`); its output is judged by the same detector: generate with the
density held at each value, detect onsets in the mono output (the left latent channel decoded),
count them per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from orchestrion.errors import OrchestrionError

if TYPE_CHECKING:
    from orchestrion.musika.models import TrainedLatentGAN


@dataclass(frozen=True)
class DensityResponse:
    """Onsets per second of the output at each requested note density (0..1), pooled over seeds."""

    densities: tuple[float, ...]
    onsets_per_second: tuple[float, ...]
    per_seed: tuple[tuple[float, ...], ...]  # [density][seed]
    seconds: float

    def spearman(self) -> float:
        """Rank correlation between requested density and measured onsets/s (1 = strictly rising, 0 = flat)."""
        from scipy.stats import spearmanr

        if len(set(self.densities)) < 2 or len(set(self.onsets_per_second)) < 2:
            return 0.0  # one density, or an output that does not change with it
        return float(spearmanr(self.densities, self.onsets_per_second).statistic)

    def summary(self) -> str:
        """One line: onsets/s per density, how they were measured, and the rank correlation."""
        pairs = ", ".join(f"{d:g}: {r:.2f}" for d, r in zip(self.densities, self.onsets_per_second, strict=True))
        seeds = len(self.per_seed[0]) if self.per_seed else 0
        pieces = f"{seeds} seed{'s' if seeds != 1 else ''} × {self.seconds:g} s each, madmom"
        if len(set(self.densities)) > 1:
            pieces += f"; rank correlation {self.spearman():+.2f}"
        return f"onsets/s of the output at note density {pairs} ({pieces})"


def onsets_per_second(wave: np.ndarray) -> float:
    """madmom onsets per second of a mono 22.05 kHz waveform."""
    from orchestrion.audio.features import analyse_rhythm
    from orchestrion.audio.spectral import SAMPLE_RATE

    return len(analyse_rhythm(wave, SAMPLE_RATE).onsets) / (len(wave) / SAMPLE_RATE)


def note_density_response(
    model: TrainedLatentGAN,
    densities: Sequence[float] = (0.1, 0.5, 0.9),
    *,
    seeds: int = 3,
    seconds: float = 20.0,
    tempo: float | None = None,
    precision: str = "fp32",
    progress: bool = False,
) -> DensityResponse:
    """Generate ``seeds`` pieces of ``seconds`` per density from a conditional :class:`TrainedLatentGAN`
    and count madmom onsets in each (mono output). ``tempo`` (BPM) holds a tempo-conditioned model's tempo
    fixed (default: its middle). fp32 by default, so the numbers do not depend on the CPU's bf16 units.
    ``progress`` shows a bar over the pieces."""
    from rich.progress import Progress

    from orchestrion.musika.generate import generate

    if "note_density" not in model.config.conditions:
        raise OrchestrionError(f"{model.path}: this latent GAN is not conditioned on note density")
    if seeds < 1 or not seconds > 0:
        raise OrchestrionError(f"need at least one seed and a positive length, got {seeds} seeds of {seconds} s")
    per_seed = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generate and detect onsets", total=len(densities) * seeds)
        for density in densities:
            rates = []
            for seed in range(seeds):
                audio = generate(model, seconds, seed, note_density=density, tempo=tempo, mono=True,
                                 precision=precision)
                rates.append(onsets_per_second(audio[0]))
                bar.advance(task)
            per_seed.append(tuple(rates))
    return DensityResponse(
        densities=tuple(float(d) for d in densities),
        onsets_per_second=tuple(float(np.mean(rates)) for rates in per_seed),
        per_seed=tuple(per_seed),
        seconds=float(seconds),
    )
