"""Reconstruction measures on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrion.evaluation.reconstruction import log_spectral_distance, reconstruction_metrics, si_sdr


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


def test_lsd_is_zero_for_identical_and_known_for_a_gain() -> None:
    # A little noise keeps every bin above the −100 dB floor, where a gain is an exact dB shift.
    x = _music() + 1e-3 * np.random.default_rng(4).standard_normal(22050)
    assert log_spectral_distance(x, x) == 0.0
    # A gain g changes every bin by 20·log10(g) dB.
    assert log_spectral_distance(x, 0.5 * x) == pytest.approx(20 * np.log10(2), abs=1e-6)


def test_reconstruction_metrics_of_identical_audio() -> None:
    x = _music(2.0).astype(np.float32)
    metrics = reconstruction_metrics(x, x.copy())
    assert metrics["lsd_db"] == 0.0
    assert metrics["multiscale_spectral_distance"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["si_sdr_db"] > 100.0
    noisy = reconstruction_metrics(x, x + 0.01 * np.random.default_rng(3).standard_normal(len(x)).astype(np.float32))
    assert noisy["lsd_db"] > 1.0 and noisy["multiscale_spectral_distance"] > 0.01 and noisy["si_sdr_db"] < 40.0


def test_folder_evaluation_errors_and_report_json(tmp_path) -> None:
    import json

    from orchestrion.errors import DataError
    from orchestrion.evaluation.reconstruction import ReconstructionReport, evaluate_reconstruction

    with pytest.raises(DataError, match="does not exist"):
        evaluate_reconstruction(tmp_path / "missing", tmp_path)
    (tmp_path / "notes.txt").write_text("no audio")
    with pytest.raises(DataError, match="no audio files"):
        evaluate_reconstruction(tmp_path, tmp_path)
    with pytest.raises(DataError, match="too short"):
        reconstruction_metrics(np.zeros(2000, np.float32), np.zeros(2000, np.float32))
    report = ReconstructionReport(
        model="m", reference_dir="r", files=[{"file": "a.wav", "lsd_db": 1.0}], mean={"lsd_db": 1.0}
    )
    written = report.to_json(tmp_path / "out" / "report.json")
    assert json.loads(written.read_text())["files"][0] == {"file": "a.wav", "lsd_db": 1.0}
