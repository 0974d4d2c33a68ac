"""SI-SDR on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrion.evaluation.reconstruction import si_sdr


def _music(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A few decaying harmonic notes at 22.05 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(22050 * seconds)) / 22050
    wave = np.zeros_like(t)
    for f0 in rng.choice([220.0, 261.6, 329.6, 392.0], size=3, replace=False):
        for harmonic in range(1, 5):
            wave += np.sin(2 * np.pi * f0 * harmonic * t) * np.exp(-3 * t) / harmonic
    return (0.3 * wave / np.abs(wave).max()).astype(np.float64)


def test_si_sdr_of_identical_signals_is_huge() -> None:
    x = _music()
    assert si_sdr(x, x) > 100.0


def test_si_sdr_is_scale_invariant() -> None:
    x = _music()
    y = x + 0.05 * np.random.default_rng(1).standard_normal(len(x))
    assert si_sdr(x, 3.0 * y) == pytest.approx(si_sdr(x, y), abs=1e-9)
    assert si_sdr(x, 0.01 * y) == pytest.approx(si_sdr(x, y), abs=1e-9)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_si_sdr_with_orthogonal_noise_equals_the_snr(snr_db: float) -> None:
    x = _music()
    x = x - x.mean()
    noise = np.random.default_rng(2).standard_normal(len(x))
    noise -= noise.mean()
    noise -= np.dot(noise, x) / np.dot(x, x) * x  # orthogonal to x: all of it is distortion
    noise *= np.sqrt(np.sum(x**2) / np.sum(noise**2) / 10 ** (snr_db / 10))
    assert si_sdr(x, x + noise) == pytest.approx(snr_db, abs=1e-6)
