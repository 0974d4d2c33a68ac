"""How good is a Musika autoencoder, and against what: the model next to phase baselines, per file.

For every reference file the same command scores, side by side (spectral distances of
:mod:`orchestrion.evaluation.spectral_metrics`, lower is better, ≈ 0 for a perfect reconstruction):

=========================================  ==========================================================  ========
system                                     what it is                                                  SI-SDR
=========================================  ==========================================================  ========
``model``                                  the autoencoder's audio, its own (learned) phase            --
``model magnitude + input phase``          ``--oracle-phase``: the decoder's magnitude with the        yes
                                           input's own STFT phase (how a phase-1 model is judged)
``model magnitude + Griffin-Lim phase``    ``--griffin-lim-on-model``: the decoder's magnitude with    --
                                           32 iterations of fast Griffin-Lim (learned vs classical
                                           phase on the same magnitude; any model)
``exact magnitude + Griffin-Lim``          |STFT(input)| with 32 iterations of fast Griffin-Lim        --
``exact magnitude + random phase``         |STFT(input)| with uniform random phase (the floor)         --
``front end round trip``                   input -> normalised features -> iSTFT with input phase      yes
                                           (the ceiling: what the front end itself loses)
=========================================  ==========================================================  ========

SI-SDR is reported only where the phase is meant to match the input's; a learned or classical
phase that sounds right scores arbitrarily low on it. The model row also carries ``feature_l1``:
the L1 distance between the decoder's normalised log-power output and the input's (the training
loss of phase 1, spec §5.1), over the frames that lie wholly inside the file -- the decoder's
magnitude error, independent of any phase; the Griffin-Lim row on the model's magnitude carries the
same value, since it is the same magnitude.

``--oracle-phase`` is accepted only for a magnitude-only (level-1 phase-1) model, the one model
that has no phase of its own; a phase-2 (or level-2) model is refused with a message: its decoder
makes its own phase, the audio it produces is what it must be judged on, and pairing its
magnitude with the input's phase would score a system that never exists (its magnitude alone is
its ``feature_l1``). A phase-1 model has no ``model`` row: it needs ``--oracle-phase``,
``--griffin-lim-on-model`` or both, and is refused with neither.
``--griffin-lim-on-model`` is accepted for every model, next to its main row: on a phase-2 model it
compares the learned phase with the classical one on the same magnitude; on a phase-1 model it is
the audio the codec makes of it (``orchestrion musika reconstruct``'s Griffin-Lim phase, there solved
in blocks of 24 s), and its distance from the oracle-phase row is what a classical phase costs that
magnitude.

All systems see the same padded signal as the codec (:func:`orchestrion.musika.codec.encode_audio`:
768 zeros in front, zeros up to whole decoder windows), so every sample of the file is under full
window overlap, and every output is clipped to [-1, 1] and trimmed back to the file's samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from orchestrion.errors import AudioError, ConfigError, DataError
from orchestrion.evaluation.spectral_metrics import MIN_SAMPLES, SPECTRAL_METRICS, spectral_distances
from orchestrion.fileio import atomic_write_text

if TYPE_CHECKING:
    from rich.table import Table

    from orchestrion.musika.models import TrainedAutoencoder

MODEL = "model"
MODEL_ORACLE_PHASE = "model magnitude + input phase"
MODEL_GRIFFIN_LIM = "model magnitude + Griffin-Lim phase"
GRIFFIN_LIM = "exact magnitude + Griffin-Lim phase"
RANDOM_PHASE = "exact magnitude + random phase"
FRONT_END = "front end round trip"
# systems whose phase is the input's own: the only rows where SI-SDR means something
PHASE_MATCHED = (MODEL_ORACLE_PHASE, FRONT_END)
# systems made from the decoder's magnitude: the rows where feature_l1 applies
MODEL_MAGNITUDE = (MODEL, MODEL_ORACLE_PHASE, MODEL_GRIFFIN_LIM)
METRICS = (*SPECTRAL_METRICS, "si_sdr_db", "feature_l1")
EVALUATION_SEED = 0  # decoder noise, random and Griffin-Lim initial phases


@dataclass
class AutoencoderQualityReport:
    """Per-file and mean measures of each system (see the module docstring), JSON-serialisable.

    ``files[i]`` is ``{"file": name, system: {metric: value}}``; ``mean[system][metric]`` is the mean
    over the files where the metric is defined (None where it is not, e.g. SI-SDR of ``model``).
    """

    model: str
    reference_dir: str
    oracle_phase: bool
    systems: list[str]
    files: list[dict] = field(default_factory=list)
    mean: dict[str, dict[str, float | None]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)  # unreadable or too short: {"file", "reason"}

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically) and return the path."""
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")
        return Path(path)


def _check_mode(
    model: TrainedAutoencoder, model_path: str | Path, oracle_phase: bool, model_griffin_lim: bool
) -> None:
    magnitude_only = not model.level1.config.with_phase
    if oracle_phase and not magnitude_only:
        raise ConfigError(
            f"{model_path}: --oracle-phase scores a magnitude-only (level-1 phase-1) model with the input's own "
            f"phase; this level-{model.level} model decodes its own phase, so its audio is scored as it is "
            "(drop --oracle-phase; the feature_l1 column measures its magnitude alone)"
        )
    if magnitude_only and not (oracle_phase or model_griffin_lim):
        raise ConfigError(
            f"{model_path}: a level-1 phase-1 model decodes magnitude only and has no learned phase to score; "
            "score its magnitude with --oracle-phase (the input's own phase) and/or --griffin-lim-on-model "
            "(Griffin-Lim phase, the audio `orchestrion musika reconstruct` makes of it)"
        )


def decode_spectrogram(
    latents: Tensor, model: TrainedAutoencoder, seed: int = EVALUATION_SEED, block_windows: int = 32
) -> tuple[Tensor, Tensor | None]:
    """Decoder outputs of an autoencoder for (C, dim, frames) latents, block by block.

    Returns ``(magnitude, phase)``: (C, 513, K) normalised log-power in [-1, 1] and phase / π, float32
    on the CPU (``phase`` is None for a magnitude-only decoder). Decoder noise is drawn from a
    generator seeded with ``seed``, which stays attached to ``model``'s noise layers.
    """
    from orchestrion.musika.layers import configure_noise

    level1, level2 = model.level1, model.level2
    step = level2.config.decoder_input_frames if level2 is not None else level1.config.window_frames
    device = next(level1.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    for module in (level1, level2):
        if module is not None:
            configure_noise(module, enabled=True, generator=generator)
    magnitudes, phases = [], []
    with torch.inference_mode():
        for first in range(0, latents.shape[-1], step * block_windows):
            block = latents[..., first : first + step * block_windows].to(device)
            if level2 is not None:
                block = level2.decode(block)  # (C, 128, frames)
            magnitude, phase = level1.decode(block)  # (C, 513, frames) each
            magnitudes.append(magnitude.float().cpu())
            phases.append(None if phase is None else phase.float().cpu())
    phase = None if phases[0] is None else torch.cat(phases, dim=-1)
    return torch.cat(magnitudes, dim=-1), phase


def _systems(oracle_phase: bool, baselines: bool, model_griffin_lim: bool, learned_phase: bool) -> list[str]:
    first = (MODEL_ORACLE_PHASE,) if oracle_phase else (MODEL,) if learned_phase else ()
    return [
        *first,
        *((MODEL_GRIFFIN_LIM,) if model_griffin_lim else ()),
        *((GRIFFIN_LIM, RANDOM_PHASE, FRONT_END) if baselines else ()),
    ]


@dataclass
class Reconstructions:
    """Every system's audio for one file, plus what the decoder's magnitude error needs.

    ``waves[system]`` is (L,) float32 at 22.05 kHz, aligned with and as long as the reference,
    clipped to [-1, 1]; ``feature_l1`` is the decoder's normalised log-power error (module docstring).
    """

    waves: dict[str, Tensor]
    feature_l1: float


def _codec_padding(wave: np.ndarray | Tensor, window_frames: int) -> tuple[Tensor, Tensor]:
    """``wave`` as (1, L) float32, and padded as the codec pads it: (1, 256·K + 768) with 768 zeros in
    front and zeros up to whole decoder windows of ``window_frames`` frames."""
    from orchestrion.audio.spectral import HOP
    from orchestrion.musika.codec import PAD, padded_frames

    reference = torch.as_tensor(np.asarray(wave, dtype=np.float32)).reshape(1, -1)
    length = reference.shape[-1]
    return reference, F.pad(reference, (PAD, HOP * padded_frames(length, window_frames) - length))


def _trimmed(rebuilt: Tensor, length: int) -> Tensor:
    """The (L,) samples of a (1, 256·K + 768) resynthesis of :func:`_codec_padding`'s signal, clipped to [-1, 1]."""
    from orchestrion.musika.codec import PAD

    return rebuilt[0, PAD : PAD + length].clamp(-1.0, 1.0)


def reconstruct_systems(
    wave: np.ndarray | Tensor,
    model: TrainedAutoencoder,
    *,
    oracle_phase: bool,
    baselines: bool = True,
    model_griffin_lim: bool = False,
    griffin_lim_iterations: int = 32,
) -> Reconstructions:
    """The model's (or its magnitude's) audio and the baselines' for one mono file ``wave`` (L,) at 22.05 kHz.

    ``model_griffin_lim`` adds the decoder's magnitude with Griffin-Lim phase; its initial phase comes
    from a generator seeded like the exact-magnitude baseline's, so the two rows differ by the
    magnitude alone.
    """
    from orchestrion.audio.phase import griffin_lim, random_phase
    from orchestrion.audio.spectral import HOP, denormalise_magnitude, istft, log_magnitude, spectral_frames, stft
    from orchestrion.musika.codec import PAD, encode_audio

    reference, padded = _codec_padding(wave, model.level1.config.window_frames)
    length = reference.shape[-1]
    spectrum = stft(padded)  # (1, 513, K)
    features = log_magnitude(spectrum)
    input_phase = torch.angle(spectrum) / math.pi

    magnitude, phase = decode_spectrogram(encode_audio(reference, model.level1, model.level2), model)
    inside = slice(PAD // HOP, PAD // HOP + spectral_frames(length))  # frames wholly inside the file
    feature_l1 = float((magnitude - features)[..., inside].abs().mean())
    waves: dict[str, Tensor] = {}
    model_magnitude = denormalise_magnitude(magnitude)
    if oracle_phase:
        waves[MODEL_ORACLE_PHASE] = istft(model_magnitude, input_phase)
    elif phase is not None:
        waves[MODEL] = istft(model_magnitude, phase)
    if model_griffin_lim:
        generator = torch.Generator().manual_seed(EVALUATION_SEED)
        waves[MODEL_GRIFFIN_LIM] = istft(
            model_magnitude, griffin_lim(model_magnitude, griffin_lim_iterations, generator=generator)
        )
    if baselines:
        generator = torch.Generator().manual_seed(EVALUATION_SEED)
        exact = spectrum.abs()
        waves[GRIFFIN_LIM] = istft(exact, griffin_lim(exact, griffin_lim_iterations, generator=generator))
        waves[RANDOM_PHASE] = istft(exact, random_phase(exact, generator))
        waves[FRONT_END] = istft(denormalise_magnitude(features), input_phase)
    return Reconstructions({system: _trimmed(rebuilt, length) for system, rebuilt in waves.items()}, feature_l1)


def score_file(
    wave: np.ndarray,
    model: TrainedAutoencoder,
    *,
    oracle_phase: bool,
    baselines: bool = True,
    model_griffin_lim: bool = False,
) -> dict[str, dict[str, float | None]]:
    """Every system's measures (:data:`METRICS`) for one mono file ``wave`` (L,) at 22.05 kHz."""
    from orchestrion.evaluation.reconstruction import si_sdr

    rebuilt = reconstruct_systems(
        wave, model, oracle_phase=oracle_phase, baselines=baselines, model_griffin_lim=model_griffin_lim
    )
    reference = torch.as_tensor(np.asarray(wave)).reshape(-1).double()
    silent_reference = float((reference - reference.mean()).square().sum()) == 0.0
    scores: dict[str, dict[str, float | None]] = {}
    for system, estimate in rebuilt.waves.items():
        row: dict[str, float | None] = dict(spectral_distances(reference, estimate))
        matched = system in PHASE_MATCHED and not silent_reference
        row["si_sdr_db"] = si_sdr(reference, estimate) if matched else None
        row["feature_l1"] = rebuilt.feature_l1 if system in MODEL_MAGNITUDE else None
        scores[system] = row
    return scores


def evaluate_autoencoder(
    reference_dir: str | Path,
    model_path: str | Path,
    *,
    oracle_phase: bool = False,
    baselines: bool = True,
    model_griffin_lim: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> AutoencoderQualityReport:
    """Score a Musika autoencoder on every audio file under ``reference_dir``, with phase baselines
    (and, with ``model_griffin_lim``, its decoder's magnitude with Griffin-Lim phase).

    Files are mixed to mono at 22.05 kHz (the autoencoders are mono models). Unreadable files and
    files shorter than 2048 samples are skipped and listed in ``report.skipped``. Raises
    :class:`DataError` for a missing folder, one without audio or without a usable file,
    :class:`ConfigError` for ``oracle_phase`` on a model with its own phase (or a phase-1 model
    with neither it nor ``model_griffin_lim``), :class:`~orchestrion.errors.CheckpointError` for a bad
    ``model_path``.
    """
    from rich.progress import Progress

    from orchestrion.audio.io import collect_audio_files, load_audio
    from orchestrion.device import resolve_device
    from orchestrion.fileio import SkipReport
    from orchestrion.musika.models import load_autoencoder

    reference_dir = Path(reference_dir)
    files = collect_audio_files(reference_dir)
    model = load_autoencoder(model_path, resolve_device(device), accept_gan_run=True)
    _check_mode(model, model_path, oracle_phase, model_griffin_lim)
    systems = _systems(oracle_phase, baselines, model_griffin_lim, model.level1.config.with_phase)
    report = AutoencoderQualityReport(
        model=str(model.path), reference_dir=str(reference_dir), oracle_phase=oracle_phase, systems=systems
    )
    skipped = SkipReport()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("score", total=len(files))
        for path in files:
            name = str(path.relative_to(reference_dir)) if reference_dir.is_dir() else path.name
            try:
                wave = load_audio(path, channels=1)
                if wave.shape[1] < MIN_SAMPLES:
                    raise DataError(f"too short to evaluate: {wave.shape[1]} samples (need ≥ {MIN_SAMPLES})")
            except (AudioError, DataError) as error:
                skipped.skip(path, str(error))
            else:
                scores = score_file(
                    wave[0], model, oracle_phase=oracle_phase, baselines=baselines, model_griffin_lim=model_griffin_lim
                )
                report.files.append({"file": name, **scores})
            bar.advance(task)
    report.skipped = skipped.skipped
    skipped.require_some(len(report.files), f"reference audio in {reference_dir}")
    for system in systems:
        report.mean[system] = {}
        for metric in METRICS:
            values = [row[system][metric] for row in report.files if row[system][metric] is not None]
            report.mean[system][metric] = float(np.mean(values)) if values else None
    return report


LINEAR_CODE_SECONDS = 60.0  # per wave fitted: frames of every track, at a bounded cost for long ones


class LinearFrameCode:
    """The best linear code of ``dims`` numbers per STFT frame: PCA of normalised log-power frames.

    A bottleneck reference for the level-1 autoencoder, whose encoder also codes each frame of 513
    normalised log-power bins (:func:`~orchestrion.audio.spectral.log_magnitude`) in ``latent_dim``
    numbers: :meth:`reconstruct` decodes with the input's own phase, so its distances are what a
    linear frame code of that size keeps given a perfect phase. Fitted with :meth:`fit`.
    """

    def __init__(self, mean: Tensor, components: Tensor, frames: int, waves: int) -> None:
        self.mean = mean  # (513,) float64 mean frame
        self.components = components  # (513, dims) float64, orthonormal, largest variance first
        self.frames = frames  # frames fitted
        self.waves = waves  # waves they came from

    @property
    def dims(self) -> int:
        return self.components.shape[1]

    @classmethod
    def fit(
        cls, waves: Iterable[np.ndarray | Tensor], dims: int, *, seconds: float = LINEAR_CODE_SECONDS
    ) -> LinearFrameCode:
        """The top ``dims`` principal components of the frames of ``waves`` (mono, (L,) at 22.05 kHz).

        Only the middle ``seconds`` of each wave are used (all of a shorter one), so a folder of long
        tracks is fitted in bounded time with every track weighing about the same; a wave shorter
        than one STFT frame adds nothing. The mean-centred covariance is accumulated in float64 and
        diagonalised by ``torch.linalg.eigh``. Raises :class:`ConfigError` for ``dims`` outside
        1..513 or ``seconds`` ≤ 0, :class:`DataError` when no wave has a whole frame.
        """
        from orchestrion.audio.spectral import N_BINS, N_FFT, SAMPLE_RATE, log_magnitude, stft

        if not 1 <= dims <= N_BINS:
            raise ConfigError(f"a linear frame code has 1 to {N_BINS} dimensions (one per frequency bin), got {dims}")
        if not seconds > 0:
            raise ConfigError(f"a linear frame code is fitted on > 0 seconds per wave, got {seconds}")
        length = round(seconds * SAMPLE_RATE)
        total = torch.zeros(N_BINS, dtype=torch.float64)
        outer = torch.zeros(N_BINS, N_BINS, dtype=torch.float64)
        frames = used = 0
        for wave in waves:
            samples = torch.as_tensor(np.asarray(wave, dtype=np.float32)).reshape(-1)
            if samples.numel() < N_FFT:
                continue
            start = max(0, (samples.numel() - length) // 2)
            features = log_magnitude(stft(samples[None, start : start + length]))[0].double().T  # (K, 513)
            total += features.sum(dim=0)
            outer += features.T @ features
            frames += features.shape[0]
            used += 1
        if frames == 0:
            raise DataError(f"no audio to fit a linear frame code on: no wave of at least {N_FFT} samples")
        mean = total / frames
        _, vectors = torch.linalg.eigh(outer / frames - torch.outer(mean, mean))  # ascending eigenvalues
        return cls(mean, vectors[:, -dims:].flip(-1).contiguous(), frames, used)

    def truncated(self, dims: int) -> LinearFrameCode:
        """The code of the top ``dims`` ≤ :attr:`dims` components (the same fit, no second pass)."""
        if not 1 <= dims <= self.dims:
            raise ConfigError(f"a {self.dims}-dim linear frame code keeps 1 to {self.dims} dimensions, got {dims}")
        return LinearFrameCode(self.mean, self.components[:, :dims].contiguous(), self.frames, self.waves)

    def reconstruct(self, wave: np.ndarray | Tensor) -> Tensor:
        """``wave`` (L,) at 22.05 kHz through the code, with its own phase: (L,) float32 in [-1, 1].

        Its frames are projected on the components and back, clipped to [-1, 1], de-normalised and
        resynthesised with the input's STFT phase, padded and trimmed as in :func:`reconstruct_systems`
        (frame by frame, so the trailing padding does not change the file's samples).
        """
        from orchestrion.audio.spectral import denormalise_magnitude, istft, log_magnitude, stft

        reference, padded = _codec_padding(wave, 1)  # whole frames: a frame code has no decoder window
        spectrum = stft(padded)  # (1, 513, K)
        features = log_magnitude(spectrum)[0].double().T  # (K, 513)
        coded = (features - self.mean) @ self.components  # (K, dims)
        rebuilt = (coded @ self.components.T + self.mean).clamp(-1.0, 1.0).T[None].float()
        wave_out = istft(denormalise_magnitude(rebuilt), torch.angle(spectrum) / math.pi)
        return _trimmed(wave_out, reference.shape[-1])


METRIC_HEADERS = {
    "log_mel_distance": "log-mel ↓",
    "multiscale_spectral_distance": "MSD ↓",
    "lsd_db": "LSD dB ↓",
    "si_sdr_db": "SI-SDR dB ↑",
    "feature_l1": "feature L1 ↓",
}


SYSTEM_LABELS = {  # short names for an 80-column console; the JSON keeps the full ones
    MODEL: "model",
    MODEL_ORACLE_PHASE: "model mag. + input phase",
    MODEL_GRIFFIN_LIM: "model mag. + Griffin-Lim",
    GRIFFIN_LIM: "Griffin-Lim phase",
    RANDOM_PHASE: "random phase",
    FRONT_END: "front end round trip",
}


def report_tables(report: AutoencoderQualityReport) -> tuple[Table, Table]:
    """Two rich tables: the mean of every measure per system, and the headline log-mel distance per file."""
    from rich.table import Table

    def shown(value: float | None) -> str:
        return "—" if value is None else f"{value:.4g}"

    means = Table(
        title=f"{report.model}: mean over {len(report.files)} file(s)",
        caption="lower is better (SI-SDR: higher); baselines use the exact input magnitude, Griffin-Lim 32 iterations",
    )
    means.add_column("system")
    for metric in METRICS:
        means.add_column(METRIC_HEADERS[metric], justify="right")
    for system in report.systems:
        style = "bold" if system in (MODEL, MODEL_ORACLE_PHASE) else ""
        means.add_row(SYSTEM_LABELS[system], *(shown(report.mean[system][m]) for m in METRICS), style=style)
    per_file = Table(title="log-mel distance per file")
    per_file.add_column("file")
    for system in report.systems:
        per_file.add_column(SYSTEM_LABELS[system], justify="right")
    for row in report.files:
        per_file.add_row(str(row["file"]), *(shown(row[system]["log_mel_distance"]) for system in report.systems))
    return means, per_file
