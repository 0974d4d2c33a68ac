"""Scale-invariant SDR between a reference waveform and its reconstruction.

SI-SDR (Le Roux et al., 2019) is phase-sensitive: a decoder that invents its own phase scores low
even when it sounds right, so :mod:`orchestrion.evaluation.autoencoder_quality` reports it only where
the phase is meant to be the input's. The spectral distances are in
:mod:`orchestrion.evaluation.spectral_metrics`.
"""

from __future__ import annotations

import numpy as np
import torch

from orchestrion.errors import DataError


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
