"""`evaluate reconstruction`: a model next to its phase baselines, --oracle-phase, skipped files, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_support import run_fails
from orchestrion.audio.io import save_audio
from orchestrion.checkpoint import save_checkpoint
from orchestrion.errors import ConfigError, OrchestrionError
from orchestrion.evaluation.autoencoder_quality import (
    FRONT_END,
    GRIFFIN_LIM,
    METRICS,
    MODEL,
    MODEL_GRIFFIN_LIM,
    MODEL_ORACLE_PHASE,
    RANDOM_PHASE,
    LinearFrameCode,
    evaluate_autoencoder,
    reconstruct_systems,
    score_file,
)
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.models import load_autoencoder
from orchestrion.musika.train import build_modules

runner = CliRunner()


def _save_model(path: Path, level: int, phase: int) -> Path:
    """A debug-size autoencoder checkpoint with fresh weights (the scoring, not the training, is under test)."""
    torch.manual_seed(0)
    config = AutoencoderTrainingConfig.preset_config("debug", level=level, phase=phase)
    return save_checkpoint(path, config=config, modules=build_modules(config))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, chorale) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quality")
    data = root / "data"
    save_audio(data / "chorale.wav", chorale[None, : 3 * 22050].astype(np.float32), subtype="FLOAT")
    return {
        "root": root,
        "data": data,
        "phase1": _save_model(root / "phase1", 1, 1),
        "phase2": _save_model(root / "phase2", 1, 2),
        "level2": _save_model(root / "level2", 2, 1),
    }


@pytest.fixture(scope="module")
def oracle_report(setup):
    return evaluate_autoencoder(setup["data"], setup["phase1"], oracle_phase=True, device="cpu", progress=False)


def test_a_phase1_model_is_scored_with_the_input_phase_next_to_the_baselines(oracle_report) -> None:
    report = oracle_report
    assert report.oracle_phase and report.systems == [MODEL_ORACLE_PHASE, GRIFFIN_LIM, RANDOM_PHASE, FRONT_END]
    assert [row["file"] for row in report.files] == ["chorale.wav"]
    mean = report.mean
    # the front end's own round trip is the ceiling: ≈ 0 next to the random-phase floor
    for metric in ("log_mel_distance", "multiscale_spectral_distance", "lsd_db"):
        assert mean[FRONT_END][metric] <= 1e-3 * mean[RANDOM_PHASE][metric], metric
    assert mean[GRIFFIN_LIM]["log_mel_distance"] < 0.3 * mean[RANDOM_PHASE]["log_mel_distance"]
    # SI-SDR only where the phase is the input's; feature L1 only for the model
    assert mean[FRONT_END]["si_sdr_db"] > 60 and np.isfinite(mean[MODEL_ORACLE_PHASE]["si_sdr_db"])
    assert mean[GRIFFIN_LIM]["si_sdr_db"] is None and mean[RANDOM_PHASE]["si_sdr_db"] is None
    assert mean[MODEL_ORACLE_PHASE]["feature_l1"] > 0 and mean[FRONT_END]["feature_l1"] is None
    # an untrained decoder is far from the input
    assert mean[MODEL_ORACLE_PHASE]["log_mel_distance"] > mean[GRIFFIN_LIM]["log_mel_distance"]
    assert set(mean[FRONT_END]) == set(METRICS)


def test_the_model_row_is_the_audio_the_codec_makes(setup) -> None:
    from orchestrion.audio.io import load_audio
    from orchestrion.musika.inference import reconstruct

    wave = load_audio(setup["data"] / "chorale.wav", channels=1)
    for name in ("phase2", "level2"):
        model = load_autoencoder(setup[name])
        systems = reconstruct_systems(wave[0], model, oracle_phase=False, baselines=False)
        assert list(systems.waves) == [MODEL]
        # fresh AddNoise scales are 0, so both paths are deterministic and must agree sample for sample
        codec = reconstruct(torch.from_numpy(wave), model)[0]
        assert systems.waves[MODEL].shape == codec.shape
        assert float((systems.waves[MODEL] - codec).abs().max()) < 1e-4, name


def test_oracle_phase_is_refused_where_the_model_makes_its_own_phase(setup) -> None:
    for name, level in (("phase2", 1), ("level2", 2)):
        with pytest.raises(ConfigError, match=f"this level-{level} model decodes its own phase"):
            evaluate_autoencoder(setup["data"], setup[name], oracle_phase=True, progress=False)
    with pytest.raises(ConfigError, match="has no learned phase to score; score its magnitude with --oracle-phase"):
        evaluate_autoencoder(setup["data"], setup["phase1"], progress=False)
    # Griffin-Lim alone scores a phase-1 model as the codec's audio: no model row of its own
    report = evaluate_autoencoder(setup["data"], setup["phase1"], model_griffin_lim=True, baselines=False,
                                  progress=False)
    assert report.systems == [MODEL_GRIFFIN_LIM] and report.mean[MODEL_GRIFFIN_LIM]["log_mel_distance"] > 0


def test_a_phase2_model_reports_no_si_sdr_and_bad_files_are_skipped(setup, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "chorale.wav").write_bytes((setup["data"] / "chorale.wav").read_bytes())
    (data / "broken.wav").write_bytes(b"RIFF not really a wave file")
    save_audio(data / "blip.wav", np.zeros((1, 1000), np.float32))
    report = evaluate_autoencoder(data, setup["phase2"], baselines=False, progress=False)
    assert report.systems == [MODEL] and [row["file"] for row in report.files] == ["chorale.wav"]
    assert report.mean[MODEL]["si_sdr_db"] is None and report.mean[MODEL]["log_mel_distance"] > 0
    reasons = {Path(entry["file"]).name: entry["reason"] for entry in report.skipped}
    assert set(reasons) == {"broken.wav", "blip.wav"}
    assert "too short to evaluate: 1000 samples (need ≥ 2048)" in reasons["blip.wav"]
    (data / "chorale.wav").unlink()
    with pytest.raises(OrchestrionError, match="no usable reference audio"):
        evaluate_autoencoder(data, setup["phase2"], baselines=False, progress=False)


def test_griffin_lim_on_the_model_magnitude_is_a_seeded_row_of_every_model(setup, chorale) -> None:
    wave = chorale[: 2 * 22050].astype(np.float32)
    for name, oracle in (("phase1", True), ("phase2", False), ("level2", False)):
        model = load_autoencoder(setup[name])
        scores = score_file(wave, model, oracle_phase=oracle, model_griffin_lim=True)
        first = MODEL_ORACLE_PHASE if oracle else MODEL
        assert list(scores) == [first, MODEL_GRIFFIN_LIM, GRIFFIN_LIM, RANDOM_PHASE, FRONT_END], name
        row = scores[MODEL_GRIFFIN_LIM]
        assert all(np.isfinite(row[m]) for m in ("log_mel_distance", "multiscale_spectral_distance", "lsd_db"))
        # the same decoder magnitude as the model's row; its phase is not meant to match the input's
        assert row["feature_l1"] == scores[first]["feature_l1"] > 0 and row["si_sdr_db"] is None
        assert score_file(wave, model, oracle_phase=oracle, model_griffin_lim=True) == scores, name  # seeded
    waves = reconstruct_systems(wave, model, oracle_phase=False, baselines=False, model_griffin_lim=True).waves
    assert list(waves) == [MODEL, MODEL_GRIFFIN_LIM]
    assert waves[MODEL_GRIFFIN_LIM].shape == waves[MODEL].shape == (len(wave),)


def test_on_a_perfect_magnitude_the_model_rows_are_the_exact_magnitude_baselines(setup, chorale, monkeypatch) -> None:
    """A decoder that returns the input's own features: with the input phase it is the front end round
    trip, with Griffin-Lim phase the exact-magnitude Griffin-Lim baseline (same seed, same magnitude but
    for the front end's power floor)."""
    from orchestrion.audio.spectral import wave_to_features
    from orchestrion.evaluation import autoencoder_quality
    from orchestrion.musika.codec import PAD, padded_frames

    wave = chorale[: 3 * 22050].astype(np.float32)
    model = load_autoencoder(setup["phase1"])
    padded = torch.nn.functional.pad(torch.from_numpy(wave)[None], (PAD, 256 * padded_frames(len(wave)) - len(wave)))
    features = wave_to_features(padded)
    monkeypatch.setattr(autoencoder_quality, "decode_spectrogram", lambda latents, model: (features, None))
    waves = reconstruct_systems(wave, model, oracle_phase=True, model_griffin_lim=True).waves
    assert torch.equal(waves[MODEL_ORACLE_PHASE], waves[FRONT_END])
    error = (waves[MODEL_GRIFFIN_LIM] - waves[GRIFFIN_LIM]).square().mean().sqrt()
    assert float(error) < 1e-3 * float(waves[GRIFFIN_LIM].square().mean().sqrt())
    scores = score_file(wave, model, oracle_phase=True, model_griffin_lim=True)
    assert scores[MODEL_GRIFFIN_LIM]["log_mel_distance"] == pytest.approx(
        scores[GRIFFIN_LIM]["log_mel_distance"], rel=0.02
    )


def test_a_full_rank_linear_frame_code_is_the_front_end_round_trip(setup, chorale) -> None:
    from orchestrion.evaluation.spectral_metrics import SPECTRAL_METRICS, spectral_distances

    wave = chorale[: 2 * 22050].astype(np.float32)
    code = LinearFrameCode.fit([wave], 513)
    rebuilt = code.reconstruct(wave)
    systems = reconstruct_systems(wave, load_autoencoder(setup["phase1"]), oracle_phase=True).waves
    assert rebuilt.shape == systems[FRONT_END].shape == (len(wave),)
    reference = torch.from_numpy(wave).double()
    full, floor = spectral_distances(reference, rebuilt), spectral_distances(reference, systems[RANDOM_PHASE])
    for metric in SPECTRAL_METRICS:
        assert full[metric] <= 1e-3 * floor[metric], metric
    assert float((rebuilt - systems[FRONT_END]).abs().max()) < 1e-4


def test_a_linear_frame_code_improves_with_every_dimension_added(chorale) -> None:
    from orchestrion.evaluation.spectral_metrics import spectral_distances

    wave = chorale.astype(np.float32)  # 4 s: chords changing, onsets and a release into near-silence
    reference = torch.from_numpy(wave).double()
    distances = []
    for dims in (8, 32, 128):
        code = LinearFrameCode.fit([wave], dims)
        gram = code.components.T @ code.components
        assert code.dims == dims and torch.allclose(gram, torch.eye(dims, dtype=torch.float64))
        distances.append(spectral_distances(reference, code.reconstruct(wave))["log_mel_distance"])
    assert distances[0] > distances[1] > distances[2] > 0
    # truncating a wider fit is the narrower fit (the report fits once for all latent sizes)
    narrow, truncated = LinearFrameCode.fit([wave], 8), LinearFrameCode.fit([wave], 128).truncated(8)
    assert torch.allclose(narrow.components.abs(), truncated.components.abs(), atol=1e-6)
    assert torch.allclose(narrow.reconstruct(wave), truncated.reconstruct(wave), atol=1e-5)
    with pytest.raises(ConfigError, match="keeps 1 to 128"):
        LinearFrameCode.fit([wave], 128).truncated(129)


def test_a_linear_frame_code_uses_the_middle_seconds_and_refuses_bad_input(chorale) -> None:
    from orchestrion.audio.spectral import spectral_frames
    from orchestrion.errors import DataError

    code = LinearFrameCode.fit([chorale, np.zeros(500), chorale[:22050]], 4, seconds=2.0)
    assert (code.waves, code.frames) == (2, spectral_frames(2 * 22050) + spectral_frames(22050))
    for dims in (0, 514):
        with pytest.raises(ConfigError, match=f"1 to 513 dimensions .*got {dims}"):
            LinearFrameCode.fit([chorale], dims)
    for waves in ([], [np.zeros(1000)]):
        with pytest.raises(DataError, match="no audio to fit a linear frame code on"):
            LinearFrameCode.fit(waves, 16)


def test_missing_or_empty_folders_are_refused(setup, tmp_path) -> None:
    from orchestrion.errors import DataError

    with pytest.raises(DataError, match="does not exist"):
        evaluate_autoencoder(tmp_path / "missing", setup["phase2"], progress=False)
    (tmp_path / "notes.txt").write_text("no audio")
    with pytest.raises(DataError, match="no audio files"):
        evaluate_autoencoder(tmp_path, setup["phase2"], progress=False)




def test_cli_prints_the_table_writes_json_and_refuses_clearly(setup, capsys) -> None:
    from orchestrion.cli import app

    out_json = setup["root"] / "report.json"
    args = ["evaluate", "reconstruction", setup["data"], "--model", setup["phase1"], "--oracle-phase"]
    result = runner.invoke(app, [*map(str, args), "--json", str(out_json), "--device", "cpu"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, (result.output, result.exception)
    assert "model mag. + input phase" in result.output and "Griffin-Lim phase" in result.output
    assert "log-mel" in result.output and "report written to" in result.output
    written = json.loads(out_json.read_text())
    assert written["systems"][0] == MODEL_ORACLE_PHASE and written["files"][0]["file"] == "chorale.wav"
    assert written["mean"][RANDOM_PHASE]["si_sdr_db"] is None
    assert "exists; pass --overwrite" in run_fails(capsys, *args, "--json", out_json)
    refused = run_fails(
        capsys, "evaluate", "reconstruction", setup["data"], "--model", setup["phase2"], "--oracle-phase"
    )
    assert "decodes its own phase, so its audio is scored as it is" in refused
    griffin_lim = runner.invoke(
        app,
        [*map(str, ["evaluate", "reconstruction", setup["data"], "--model", setup["phase2"]]), "--griffin-lim-on-model",
         "--no-baselines", "--device", "cpu"],
        env={"COLUMNS": "160"},
    )
    assert griffin_lim.exit_code == 0, (griffin_lim.output, griffin_lim.exception)
    assert "model mag. + Griffin-Lim" in griffin_lim.output and "random phase" not in griffin_lim.output
