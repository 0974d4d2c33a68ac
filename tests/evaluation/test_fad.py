"""Fréchet Audio Distance: the distance itself, the offline embedder, folders and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from orchestrion.audio.io import SAMPLE_RATE, save_audio
from orchestrion.errors import DataError, OrchestrionError
from orchestrion.evaluation.embedders import SpectralStatsEmbedder, build_embedder, embedder_names
from orchestrion.evaluation.fad import evaluate_fad, fad_from_embeddings, frechet_distance, gaussian_fit

CLIP_SECONDS = 6


@pytest.fixture(scope="session")
def rendered_clips(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """The first 6 s of three built-in demo pieces rendered with the soundfont, stereo 22.05 kHz."""
    from orchestrion.audio.render import render_midi
    from orchestrion.corpora import demo_midi

    midi = demo_midi(tmp_path_factory.mktemp("fad_midi"), n=3)
    return [render_midi(path, normalize=True)[:, : CLIP_SECONDS * SAMPLE_RATE] for path in midi]


@pytest.fixture
def write_set(tmp_path: Path, rendered_clips: list[np.ndarray]) -> Callable[..., Path]:
    """Write the rendered clips, each passed through ``transform``, as WAV files in a new folder."""

    def write(name: str, transform: Callable[[np.ndarray], np.ndarray] = lambda audio: audio) -> Path:
        folder = tmp_path / name
        for index, clip in enumerate(rendered_clips):
            save_audio(folder / f"clip{index}.wav", transform(clip), subtype="FLOAT")
        return folder

    return write


def _add_noise(level: float) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    return lambda audio: audio + level * rng.standard_normal(audio.shape).astype(np.float32)


def _low_pass(cutoff_hz: float) -> Callable[[np.ndarray], np.ndarray]:
    def apply(audio: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft(audio, axis=-1)
        spectrum[..., np.fft.rfftfreq(audio.shape[-1], 1 / SAMPLE_RATE) > cutoff_hz] = 0
        return np.fft.irfft(spectrum, n=audio.shape[-1], axis=-1).astype(np.float32)

    return apply


def test_frechet_distance_of_1d_gaussians_has_the_closed_form() -> None:
    # (0 − 1)² + 1 + 4 − 2·sqrt(1·4) = 2
    assert frechet_distance(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)) == pytest.approx(2.0, abs=1e-12)


def test_frechet_distance_handles_singular_covariances() -> None:
    # commuting diagonal covariances with zero variances: Σ (sqrt(a) − sqrt(b))² per dimension
    a, b = np.array([4.0, 0.0, 1.0, 0.0]), np.array([1.0, 9.0, 0.0, 0.0])
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(np.zeros(4), np.diag(a), np.zeros(4), np.diag(b)) == pytest.approx(expected, abs=1e-9)


def test_fad_is_symmetric_and_zero_for_a_set_with_itself() -> None:
    rng = np.random.default_rng(3)
    first = rng.standard_normal((10, 40))  # fewer samples than dimensions: rank-deficient covariance
    second = rng.standard_normal((12, 40)) + 0.5
    assert fad_from_embeddings(first, first) == pytest.approx(0.0, abs=1e-9)
    assert fad_from_embeddings(first, second) == pytest.approx(fad_from_embeddings(second, first), rel=1e-9)
    assert fad_from_embeddings(first, second) > 10.0


def test_gaussian_fit_needs_two_embeddings() -> None:
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        gaussian_fit(np.zeros((1, 8)))


def test_spectral_stats_embedding_shape_and_determinism(rendered_clips: list[np.ndarray]) -> None:
    embedder = SpectralStatsEmbedder()
    excerpts = rendered_clips[0].mean(axis=0).reshape(CLIP_SECONDS, SAMPLE_RATE)
    first, second = embedder.embed(excerpts), embedder.embed(excerpts[::-1].copy())
    assert first.shape == (CLIP_SECONDS, 155) == (CLIP_SECONDS, embedder.dim)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second[::-1])  # per-excerpt: batch order does not matter


def test_fad_of_identical_sets_is_zero(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    report = evaluate_fad(reference, write_set("same"), progress=False)
    assert report.fad == pytest.approx(0.0, abs=1e-6)
    assert report.reference_excerpts == report.generated_excerpts == 3 * CLIP_SECONDS
    assert report.split_half_fad is not None and report.split_half_fad > 1.0
    assert report.split_half_method == "alternate files"
    assert report.embedder == "spectral-stats" and not report.comparable_with_published


def test_fad_grows_with_added_noise(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    levels = (0.001, 0.01, 0.1)
    fads = [evaluate_fad(reference, write_set(f"noise{lvl}", _add_noise(lvl)), progress=False).fad for lvl in levels]
    assert 0.0 < fads[0] < fads[1] < fads[2], fads


def test_fad_grows_with_low_pass_filtering(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    cutoffs = (6000.0, 3000.0, 1000.0)
    fads = [evaluate_fad(reference, write_set(f"lp{c:.0f}", _low_pass(c)), progress=False).fad for c in cutoffs]
    assert 0.0 < fads[0] < fads[1] < fads[2], fads


def test_bad_files_are_skipped_and_reported(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    generated = write_set("generated", _add_noise(0.01))
    (generated / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    save_audio(generated / "short.wav", np.full((2, SAMPLE_RATE // 2), 0.1, np.float32))
    save_audio(generated / "silent.wav", np.zeros((2, 2 * SAMPLE_RATE), np.float32))
    report = evaluate_fad(reference, generated, progress=False)
    skipped = {row["file"]: row["reason"] for row in report.skipped}
    assert set(skipped) == {"broken.wav", "short.wav", "silent.wav"}
    assert skipped["broken.wav"].startswith("not a readable audio file")
    assert skipped["short.wav"] == "no non-silent 1 s excerpt"
    assert report.generated_files == 3 and report.silent_excerpts_dropped == 2


def test_a_folder_without_usable_audio_is_refused(write_set: Callable[..., Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    save_audio(empty / "short.wav", np.full((1, SAMPLE_RATE // 4), 0.1, np.float32))
    with pytest.raises(OrchestrionError, match="no usable audio"):
        evaluate_fad(write_set("reference"), empty, progress=False)
    with pytest.raises(DataError, match="audio folder not found"):
        evaluate_fad(tmp_path / "missing", empty, progress=False)


def test_embedder_registry_errors() -> None:
    assert {"spectral-stats", "vggish", "vggish-pca"} <= set(embedder_names())
    with pytest.raises(OrchestrionError, match="unknown embedder 'clap'; choose one of"):
        build_embedder("clap")
    with pytest.raises(OrchestrionError, match="'vggish' needs a local weight file"):
        build_embedder("vggish")
    with pytest.raises(OrchestrionError, match="'spectral-stats' has no weights"):
        build_embedder("spectral-stats", weights="vggish.safetensors")


def test_cli_prints_fad_and_scale_and_writes_json(write_set: Callable[..., Path], tmp_path: Path) -> None:
    from orchestrion.cli import app

    reference, generated = write_set("reference"), write_set("generated", _add_noise(0.01))
    out = tmp_path / "fad.json"
    result = CliRunner().invoke(app, ["evaluate", "fad", str(reference), str(generated), "--json", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "FAD (spectral-stats):" in result.output and "split-half FAD of the reference" in result.output
    assert "covariance is singular" in result.output  # 18 excerpts per set, 155 dimensions
    assert "NOT comparable with published FAD values" in result.output
    saved = json.loads(out.read_text())
    assert saved["fad"] > 0 and saved["split_half_fad"] > 0 and saved["embedder_config"]["n_mels"] == 64
    assert saved["comparable_with_published"] is False and saved["embedding_dim"] == 155

    again = CliRunner().invoke(app, ["evaluate", "fad", str(reference), str(generated), "--json", str(out)])
    assert again.exit_code != 0 and "exists; pass --overwrite" in str(again.exception)
    replaced = CliRunner().invoke(
        app, ["evaluate", "fad", str(reference), str(reference), "--json", str(out), "--overwrite"]
    )
    assert replaced.exit_code == 0 and json.loads(out.read_text())["fad"] == pytest.approx(0.0, abs=1e-6)
