"""Reconstruction quality of an audio autoencoder: spectral and waveform distances.

Three measures, each comparing a reference waveform with its reconstruction (mono,
22 050 Hz, same length):

- **multi-scale spectral distance** — the training loss of spec §5.2 (sum over hops
  64/128/256/512 of the mean L1 distance of log magnitudes); lower is better, 0 = equal.
- **log-spectral distance (LSD, dB)** — per frame, the RMS over frequency of the dB
  difference of the power spectra, averaged over frames; lower is better, 0 = equal.
- **SI-SDR (dB)** — scale-invariant signal-to-distortion ratio (Le Roux et al., 2019);
  higher is better. It is phase-sensitive, so a GAN decoder that invents its own phase
  scores low even when it sounds right; read it next to the two spectral measures.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from orchestrion.errors import DataError
from orchestrion.fileio import atomic_write_text

SAMPLE_RATE = 22050
EDGE_SAMPLES = 768  # the iSTFT cannot rebuild the first/last n_fft − hop samples (spec §12 A3)
MIN_SAMPLES = 1024 + 2 * EDGE_SAMPLES  # one 1024-sample analysis frame once the edges are trimmed


def _as_tensor(wave: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(wave) if not isinstance(wave, torch.Tensor) else wave)
    return tensor.detach().to(torch.float64).reshape(-1)


def _check_pair(reference: torch.Tensor, estimate: torch.Tensor) -> None:
    if reference.shape != estimate.shape:
        raise ValueError(f"reference and estimate differ in length: {reference.numel()} vs {estimate.numel()}")


def si_sdr(reference: np.ndarray | torch.Tensor, estimate: np.ndarray | torch.Tensor, eps: float = 1e-12) -> float:
    """Scale-invariant SDR in dB of ``estimate`` against ``reference`` (1-D, same length).

    Both are made zero-mean; the estimate is projected on the reference,
    ``target = α·reference`` with ``α = <est, ref> / ||ref||²``, and
    ``SI-SDR = 10·log10(||target||² / ||est − target||²)``. Invariant to rescaling the
    estimate; ``eps`` keeps identical signals finite (≈ +100 dB or more).

    A silent (or constant) reference has nothing to project on: SI-SDR is undefined there and
    :class:`DataError` says so (instead of a meaningless −150 dB).
    """
    ref, est = _as_tensor(reference), _as_tensor(estimate)
    _check_pair(ref, est)
    ref = ref - ref.mean()
    est = est - est.mean()
    if float(torch.dot(ref, ref)) <= eps:
        raise DataError("SI-SDR is undefined for a silent reference (nothing to compare the estimate with)")
    alpha = torch.dot(est, ref) / (torch.dot(ref, ref) + eps)
    target = alpha * ref
    noise = est - target
    return float(10.0 * torch.log10((target.pow(2).sum() + eps) / (noise.pow(2).sum() + eps)))


def log_spectral_distance(
    reference: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    n_fft: int = 1024,
    hop: int = 256,
    floor: float = 1e-10,
) -> float:
    """Log-spectral distance in dB: ``mean_t sqrt(mean_f (10·log10 P_ref − 10·log10 P_est)²)``.

    Power spectra from a Hann STFT (``n_fft``, ``hop``, no centring; signals shorter
    than ``n_fft`` are zero-padded to one frame), floored at ``floor`` (−100 dB) so
    silence does not dominate.
    """
    ref, est = _as_tensor(reference), _as_tensor(estimate)
    _check_pair(ref, est)
    if ref.numel() < n_fft:
        ref = torch.nn.functional.pad(ref, (0, n_fft - ref.numel()))
        est = torch.nn.functional.pad(est, (0, n_fft - est.numel()))
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)

    def power_db(wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, n_fft, hop, window=window, center=False, return_complex=True)
        return 10.0 * torch.log10(spec.abs().pow(2).clamp_min(floor))

    difference = power_db(ref) - power_db(est)  # (F, T)
    return float(difference.pow(2).mean(dim=0).sqrt().mean())


def multiscale_spectral_distance(
    reference: np.ndarray | torch.Tensor, estimate: np.ndarray | torch.Tensor
) -> float:
    """The multi-scale spectral distance of spec §5.2 between two 1-D waveforms (float)."""
    from orchestrion.audio.spectral import multiscale_spectral_distance as msd

    ref, est = _as_tensor(reference).float(), _as_tensor(estimate).float()
    _check_pair(ref, est)
    return float(msd(ref.unsqueeze(0), est.unsqueeze(0)))


def reconstruction_metrics(
    reference: np.ndarray, estimate: np.ndarray, trim: int = EDGE_SAMPLES
) -> dict[str, float | None]:
    """All three measures for one mono pair, over their common length minus ``trim`` samples at each end.

    ``si_sdr_db`` is None where it is undefined (a silent reference).
    """
    length = min(len(reference), len(estimate))
    start, stop = trim, length - trim
    if stop - start < 1024:
        raise DataError(f"audio too short to evaluate: {length} samples (need ≥ {1024 + 2 * trim})")
    ref = np.asarray(reference[start:stop], dtype=np.float32)
    est = np.asarray(estimate[start:stop], dtype=np.float32)
    try:
        sdr: float | None = si_sdr(ref, est)
    except DataError:
        sdr = None
    return {
        "multiscale_spectral_distance": multiscale_spectral_distance(ref, est),
        "lsd_db": log_spectral_distance(ref, est),
        "si_sdr_db": sdr,
    }


@dataclass
class ReconstructionReport:
    """Per-file measures and their means for one model over one folder."""

    model: str
    reference_dir: str
    files: list[dict[str, float | str | None]] = field(default_factory=list)
    mean: dict[str, float | None] = field(default_factory=dict)  # over the files where a measure is defined
    skipped: list[dict[str, str]] = field(default_factory=list)  # unreadable files: {"file", "reason"}

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically) and return the path."""
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")
        return Path(path)


METRIC_NAMES = ("multiscale_spectral_distance", "lsd_db", "si_sdr_db")


def evaluate_reconstruction(
    reference_dir: str | Path, model_path: str | Path, *, device: str = "auto", progress: bool = True
) -> ReconstructionReport:
    """Reconstruct every audio file under ``reference_dir`` with a Musika autoencoder and measure it.

    Files are mixed to mono at 22.05 kHz (the autoencoders are mono models), encoded and
    decoded (decoder noise from a fixed seed) and compared over their full length minus
    768 samples at each end. A file that cannot be read or is too short is skipped and listed
    in ``report.skipped``. Raises :class:`DataError` for a missing folder, one without audio
    or without any usable file, :class:`~orchestrion.errors.CheckpointError` for a bad ``model_path``.
    """
    from rich.progress import Progress

    from orchestrion.audio.io import collect_audio_files, load_audio
    from orchestrion.errors import AudioError
    from orchestrion.fileio import SkipReport
    from orchestrion.musika.inference import reconstruct, resolve_device
    from orchestrion.musika.models import load_autoencoder

    reference_dir = Path(reference_dir)
    files = collect_audio_files(reference_dir)
    model = load_autoencoder(model_path, resolve_device(device))
    report = ReconstructionReport(model=str(model.path), reference_dir=str(reference_dir))
    skipped = SkipReport()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("reconstruct", total=len(files))
        for path in files:
            name = str(path.relative_to(reference_dir)) if reference_dir.is_dir() else path.name
            try:
                wave = load_audio(path, channels=1)
                if wave.shape[1] < MIN_SAMPLES:
                    raise DataError(f"too short to evaluate: {wave.shape[1]} samples (need ≥ {MIN_SAMPLES})")
            except (AudioError, DataError) as error:
                skipped.skip(path, str(error))
            else:
                rebuilt = reconstruct(torch.from_numpy(wave), model).numpy()
                report.files.append({"file": name, **reconstruction_metrics(wave[0], rebuilt[0])})
            bar.advance(task)
    report.skipped = skipped.skipped
    skipped.require_some(len(report.files), f"reference audio in {reference_dir}")
    for name in METRIC_NAMES:
        values = [row[name] for row in report.files if row[name] is not None]
        report.mean[name] = float(np.mean(values)) if values else None
    return report
