"""Random phase and Griffin-Lim on the project's STFT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrion.audio.phase import StreamingGriffinLim, griffin_lim, random_phase
from orchestrion.audio.spectral import istft, stft
from orchestrion.evaluation.spectral_metrics import log_mel_distance


def _chord(seconds: float = 1.5) -> torch.Tensor:
    """A decaying A-major chord with harmonics, (1, L) float32."""
    t = np.arange(int(seconds * 22050)) / 22050
    wave = sum(np.sin(2 * np.pi * f * h * t) / h for f in (220.0, 277.2, 329.6) for h in range(1, 6))
    return torch.from_numpy((0.2 * wave * np.exp(-1.5 * t)).astype(np.float32))[None]


def _spectral_convergence(magnitude: torch.Tensor, phase: torch.Tensor) -> float:
    """‖|STFT(iSTFT(M, φ))| − M‖ / ‖M‖: 0 when the phase makes M a consistent spectrogram."""
    rebuilt = stft(istft(magnitude, phase)).abs()
    return float((rebuilt - magnitude).norm() / magnitude.norm())


def test_random_phase_is_uniform_in_range_and_seeded() -> None:
    magnitude = torch.ones(2, 513, 100)
    phase = random_phase(magnitude, torch.Generator().manual_seed(0))
    assert phase.shape == magnitude.shape and float(phase.min()) >= -1 and float(phase.max()) < 1
    assert abs(float(phase.mean())) < 0.01 and float(phase.std()) == pytest.approx(2 / 12**0.5, abs=0.01)
    assert torch.equal(phase, random_phase(magnitude, torch.Generator().manual_seed(0)))


def test_griffin_lim_makes_the_spectrogram_consistent_and_the_audio_close() -> None:
    wave = _chord()
    magnitude = stft(wave).abs()  # (1, 513, K)
    start = random_phase(magnitude, torch.Generator().manual_seed(0))
    few = griffin_lim(magnitude, 4, generator=torch.Generator().manual_seed(0))
    many = griffin_lim(magnitude, 32, generator=torch.Generator().manual_seed(0))
    assert many.shape == magnitude.shape and float(many.abs().max()) <= 1.0
    # more iterations, more consistent; measured 0.65 (random) → 0.27 (4) → 0.10 (32)
    errors = [_spectral_convergence(magnitude, phase) for phase in (start, few, many)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.15, errors
    length = wave.shape[-1] - 2 * 768
    reference = wave[0, 768 : 768 + length]
    random_audio = istft(magnitude, start)[0, 768 : 768 + length]
    griffin_audio = istft(magnitude, many)[0, 768 : 768 + length]
    assert log_mel_distance(reference, griffin_audio) < 0.3 * log_mel_distance(reference, random_audio)
    assert torch.equal(few, griffin_lim(magnitude, 4, generator=torch.Generator().manual_seed(0)))


def test_griffin_lim_needs_an_iteration() -> None:
    with pytest.raises(ValueError, match="at least one iteration"):
        griffin_lim(torch.ones(1, 513, 4), 0)


def _frame_errors(magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Per-frame ‖|STFT(iSTFT(M, φ))| − M‖ / ‖M‖ of a one-item batch: (K,)."""
    rebuilt = stft(istft(magnitude, phase)).abs()
    return ((rebuilt - magnitude).norm(dim=1) / magnitude.norm(dim=1).clamp_min(1e-6))[0]


def test_griffin_lim_keeps_a_known_phase_and_continues_it() -> None:
    magnitude = stft(_chord()).abs()
    known = griffin_lim(magnitude[..., :20], generator=torch.Generator().manual_seed(1))
    phase = griffin_lim(magnitude, generator=torch.Generator().manual_seed(2), known_phase=known[..., :12])
    assert torch.equal(phase[..., :12], known[..., :12])
    assert _spectral_convergence(magnitude, phase) < 0.15
    with pytest.raises(ValueError, match="does not fit"):
        griffin_lim(magnitude, known_phase=torch.zeros(1, 512, 4))


def test_streaming_griffin_lim_joins_blocks_at_their_seams() -> None:
    magnitude = stft(_chord(3.0)).abs()  # (1, 513, 255)
    block = 32
    blocks = [magnitude[..., first : first + block] for first in range(0, magnitude.shape[-1], block)]

    def streamed(seed: int) -> torch.Tensor:
        stream = StreamingGriffinLim(generator=torch.Generator().manual_seed(seed))
        return torch.cat([stream(part) for part in blocks], dim=-1)

    generator = torch.Generator().manual_seed(0)
    independent = torch.cat([griffin_lim(part, generator=generator) for part in blocks], dim=-1)
    whole = griffin_lim(magnitude, generator=torch.Generator().manual_seed(0))
    stream = streamed(0)
    assert stream.shape == magnitude.shape and torch.equal(stream, streamed(0))
    assert not torch.equal(stream, streamed(1))
    # the frames around each seam; measured 0.15 streamed, 0.23 for blocks solved on their own, 0.11 in one pass
    seams = torch.tensor([first + d for first in range(block, magnitude.shape[-1] - 4, block) for d in range(-2, 2)])
    at_seams = {name: float(_frame_errors(magnitude, phase)[seams].mean())
                for name, phase in (("stream", stream), ("independent", independent), ("whole", whole))}
    assert at_seams["stream"] < 0.75 * at_seams["independent"], at_seams
    # and overall as consistent as one pass (measured 0.113 against 0.102)
    assert _spectral_convergence(magnitude, stream) < 1.2 * _spectral_convergence(magnitude, whole)


def test_streaming_griffin_lim_refuses_a_block_of_another_shape() -> None:
    stream = StreamingGriffinLim(4)
    stream(torch.ones(2, 513, 16))
    with pytest.raises(ValueError, match="does not continue"):
        stream(torch.ones(1, 513, 16))
    with pytest.raises(ValueError, match="at least one iteration"):
        StreamingGriffinLim(0)
