"""Training recipes of the Musika autoencoders on tiny debug models and real rendered music."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from train_support import melody, write_rendered_excerpt

from orchestrion.checkpoint import checkpoint_step_dirs, load_checkpoint
from orchestrion.errors import CheckpointError, ConfigError
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.inference import reconstruct
from orchestrion.musika.models import load_autoencoder
from orchestrion.musika.train import train_autoencoder

OVERFIT_STEPS = 60


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(path: Path, module: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).module_state(module)


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Data (4 s of a rendered Bach chorale) and a chain of runs: L1P1 → L1P2 → L2P1 → L2P2."""
    root = tmp_path_factory.mktemp("musika_runs")
    data = write_rendered_excerpt(root, seconds=4.0)
    torch.manual_seed(0)
    train_autoencoder(
        data, root / "l1p1", level=1, phase=1, preset="debug", steps=OVERFIT_STEPS, log_every=1, progress=False
    )
    train_autoencoder(data, root / "l1p2", level=1, phase=2, init=root / "l1p1", steps=3, checkpoint_every=1,
                      progress=False)
    train_autoencoder(data, root / "l2p1", level=2, phase=1, preset="debug", level1=root / "l1p2", steps=3,
                      log_every=1, progress=False)
    train_autoencoder(data, root / "l2p2", level=2, phase=2, init=root / "l2p1", steps=2, log_every=1,
                      progress=False)
    return {"data": data, "l1p1": root / "l1p1", "l1p2": root / "l1p2", "l2p1": root / "l2p1", "l2p2": root / "l2p2"}


def test_level1_phase1_overfits_a_rendered_chorale(runs) -> None:
    losses = [m["loss"] for m in _metrics(runs["l1p1"])]
    assert len(losses) == OVERFIT_STEPS
    # measured: ≈ 0.87 at step 1 → ≈ 0.05-0.1 at step 60 (debug preset, lr 3e-3, batch 4)
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < first / 3, (first, last)


def test_level1_phase2_keeps_the_encoder_and_trains_decoder_and_discriminator(runs) -> None:
    steps = checkpoint_step_dirs(runs["l1p2"])
    assert [s for s, _ in steps] == [1, 2, 3]
    phase1 = runs["l1p1"]
    for _, ckpt in steps:
        assert _equal(_weights(ckpt, "level1_encoder"), _weights(phase1, "level1_encoder"))
    first, last = steps[0][1], steps[-1][1]
    assert not _equal(_weights(first, "discriminator"), _weights(last, "discriminator"))
    assert not _equal(_weights(first, "level1_decoder"), _weights(last, "level1_decoder"))
    # the decoder gained its phase half: 2·513 output channels
    assert _weights(last, "level1_decoder")["out.weight"].shape[0] == 2 * 513
    assert _weights(phase1, "level1_decoder")["out.weight"].shape[0] == 513
    config = load_checkpoint(last).config
    assert (config.level, config.phase, config.level1.with_phase) == (1, 2, True)
    metrics = _metrics(runs["l1p2"])[-1]
    assert {"g_loss", "d_loss", "adv", "rec", "ms"} <= metrics.keys()


def test_phase_derivative_term_teaches_the_phase_in_a_few_steps(runs, tmp_path: Path) -> None:
    """--lambda-phase: the decoder's phase derivatives approach the real ones (measured 0.63 → 0.43 in 40 steps;
    0.5 is a random phase), and the term is logged."""
    train_autoencoder(runs["data"], tmp_path / "l1p2", level=1, phase=2, init=runs["l1p1"], steps=40,
                      lambda_phase=1.0, log_every=1, progress=False)
    phase = [m["phase"] for m in _metrics(tmp_path / "l1p2")]
    assert len(phase) == 40 and load_checkpoint(tmp_path / "l1p2").config.lambda_phase == 1.0
    assert sum(phase[-5:]) / 5 < 0.85 * sum(phase[:5]) / 5, phase


def test_separate_phase_decoder_run_keeps_the_phase1_magnitude(runs, tmp_path: Path) -> None:
    """--phase-decoder separate: phase 2 trains only the phase U-Net (and D); the magnitude U-Net's
    weights and BatchNorm statistics are the phase-1 decoder's at every checkpoint, also after a resume."""
    run = tmp_path / "l1p2_separate"
    kwargs = dict(level=1, phase=2, checkpoint_every=2, log_every=1, progress=False)
    train_autoencoder(runs["data"], run, init=runs["l1p1"], steps=2, phase_decoder="separate", **kwargs)
    train_autoencoder(runs["data"], run, steps=4, resume=True, **kwargs)
    phase1 = _weights(runs["l1p1"], "level1_decoder")
    steps = checkpoint_step_dirs(run)
    assert [s for s, _ in steps] == [2, 4]
    for _, ckpt in steps:
        decoder = _weights(ckpt, "level1_decoder")
        assert _equal({k: v for k, v in decoder.items() if not k.startswith("phase_net.")}, phase1)
    first, last = (_weights(ckpt, "level1_decoder") for _, ckpt in (steps[0], steps[-1]))
    assert not torch.equal(first["phase_net.out.weight"], last["phase_net.out.weight"])
    config = load_checkpoint(run).config
    assert config.level1.phase_decoder == "separate" and config.level1.with_phase
    model = load_autoencoder(run)
    wave = torch.from_numpy(melody(1.5, channels=1))
    rebuilt = reconstruct(wave, model)
    assert rebuilt.shape == wave.shape and torch.isfinite(rebuilt).all() and rebuilt.abs().max() > 1e-3
    # level 2 trains on top of it (its Dec1 magnitude path skips the phase U-Net)
    train_autoencoder(runs["data"], tmp_path / "l2p1", level=2, phase=1, preset="debug", level1=run, steps=2,
                      progress=False)
    assert load_autoencoder(tmp_path / "l2p1").level1.config.phase_decoder == "separate"
    with pytest.raises(ConfigError, match="keeps it"):
        train_autoencoder(runs["data"], run, steps=5, resume=True, phase_decoder="shared", **kwargs)
    with pytest.raises(ConfigError, match="level 1 phase 2 only"):
        train_autoencoder(runs["data"], tmp_path / "x", level=1, phase=1, preset="debug", steps=1,
                          phase_decoder="separate", progress=False)


def test_atan2_phase_run_trains_saves_reloads_and_keeps_its_phase_form_on_resume(runs, tmp_path: Path) -> None:
    """--phase-output atan2 (with a separate phase U-Net): the run's config and checkpoints hold the
    (real, imaginary) output conv, the model reloads and rebuilds audio, and a resume keeps the form."""
    run = tmp_path / "l1p2_atan2"
    kwargs = dict(level=1, phase=2, checkpoint_every=2, log_every=1, progress=False)
    train_autoencoder(runs["data"], run, init=runs["l1p1"], steps=2, phase_decoder="separate",
                      phase_output="atan2", **kwargs)
    config = load_checkpoint(run).config
    assert config.level1.phase_output == "atan2" and config.level1.phase_decoder == "separate"
    assert _weights(run, "level1_decoder")["phase_net.out.weight"].shape[0] == 1026
    model = load_autoencoder(run)
    wave = torch.from_numpy(melody(1.5, channels=1))
    rebuilt = reconstruct(wave, model)
    assert rebuilt.shape == wave.shape and torch.isfinite(rebuilt).all() and rebuilt.abs().max() > 1e-3
    with pytest.raises(ConfigError, match="phase output is 'atan2'; --resume keeps it"):
        train_autoencoder(runs["data"], run, steps=4, resume=True, phase_output="angle", **kwargs)
    with pytest.raises(ConfigError, match="needs phase_decoder='separate'"):
        train_autoencoder(runs["data"], tmp_path / "shared", init=runs["l1p1"], steps=1, phase_output="atan2",
                          **kwargs)
    with pytest.raises(ConfigError, match="level 1 phase 2 only"):
        train_autoencoder(runs["data"], tmp_path / "x", level=1, phase=1, preset="debug", steps=1,
                          phase_output="atan2", progress=False)


def test_level2_runs_copy_the_level1_model_and_freeze_what_they_must(runs) -> None:
    l1, l2p1, l2p2 = runs["l1p2"], runs["l2p1"], runs["l2p2"]
    for run in (l2p1, l2p2):
        for name in ("level1_encoder", "level1_decoder"):
            assert _equal(_weights(run, name), _weights(l1, name))
    assert _equal(_weights(l2p2, "level2_encoder"), _weights(l2p1, "level2_encoder"))
    assert not _equal(_weights(l2p2, "level2_decoder"), _weights(l2p1, "level2_decoder"))
    assert {"loss", "spec", "latent"} <= _metrics(l2p1)[-1].keys()
    assert {"d_loss", "g_loss"} <= _metrics(l2p2)[-1].keys()
    model = load_autoencoder(l2p2)  # self-contained: level 1 comes from the same directory
    assert model.level == 2 and model.level1.config.with_phase
    wave = torch.from_numpy(melody(1.5, channels=2))
    rebuilt = reconstruct(wave, model)
    assert rebuilt.shape == wave.shape
    assert torch.equal(rebuilt, reconstruct(wave, model))  # decoder noise comes from a fixed seed
    # the audio really went through Enc2/Dec2: not the level-1 model's reconstruction, and a sound, not
    # silence or a clipped square wave (the [-1, 1] bound alone holds by clipping)
    level1_only = reconstruct(wave, load_autoencoder(runs["l1p2"]))
    assert not torch.allclose(rebuilt, level1_only, atol=1e-3)
    rms_db = 20 * torch.log10(rebuilt.pow(2).mean().sqrt())
    assert -60.0 < float(rms_db) < -3.0, float(rms_db)
    assert float((rebuilt.abs() >= 1.0).float().mean()) < 0.01, "at most 1 % of samples at the clip"


def test_resume_continues_bit_exactly(runs, tmp_path: Path) -> None:
    """4 steps + resume to 6 give the same weights as 6 steps in one go."""
    kwargs = dict(level=1, phase=1, preset="debug", log_every=1, progress=False)
    train_autoencoder(runs["data"], tmp_path / "straight", steps=6, **kwargs)
    train_autoencoder(runs["data"], tmp_path / "split", steps=4, checkpoint_every=2, **kwargs)
    train_autoencoder(runs["data"], tmp_path / "split", steps=6, resume=True, checkpoint_every=2, **kwargs)
    assert [m["step"] for m in _metrics(tmp_path / "split")] == [1, 2, 3, 4, 5, 6]
    for name in ("level1_encoder", "level1_decoder"):
        assert _equal(_weights(tmp_path / "straight", name), _weights(tmp_path / "split", name))


def test_cosine_schedule_follows_the_step_and_resumes_on_the_same_curve(runs, tmp_path: Path) -> None:
    """--lr-schedule cosine: the logged rate falls from the peak towards 0 at --steps; a run killed after a
    checkpoint resumes on the same curve to the same weights; --resume refuses another schedule."""
    kwargs = dict(level=1, phase=1, preset="debug", lr_schedule="cosine", checkpoint_every=2, log_every=1,
                  progress=False)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train_autoencoder(runs["data"], straight, steps=6, **kwargs)
    config = load_checkpoint(straight).config
    rates = [m["lr"] for m in _metrics(straight)]
    assert config.lr_schedule == "cosine" and rates[0] == pytest.approx(config.learning_rate)
    assert rates == pytest.approx([config.learning_rate * (1 + math.cos(math.pi * s / 6)) / 2 for s in range(6)])
    assert all(a > b > 0 for a, b in itertools.pairwise(rates))

    shutil.copytree(straight, killed)
    shutil.rmtree(killed / "checkpoints" / "step_00000006")  # as if killed between steps 4 and 6
    train_autoencoder(runs["data"], killed, steps=6, resume=True, **kwargs)
    assert [m["lr"] for m in _metrics(killed)] == pytest.approx(rates)
    for name in ("level1_encoder", "level1_decoder"):
        assert _equal(_weights(straight, name), _weights(killed, name))
    with pytest.raises(ConfigError, match="--resume keeps it"):
        train_autoencoder(runs["data"], killed, steps=8, resume=True, **{**kwargs, "lr_schedule": "constant"})


def test_bad_run_connections_are_clean_errors(runs, tmp_path: Path) -> None:
    data = runs["data"]
    with pytest.raises(ConfigError, match="--init"):
        train_autoencoder(data, tmp_path / "a", level=1, phase=2, steps=1, progress=False)
    with pytest.raises(ConfigError, match="--level1"):
        train_autoencoder(data, tmp_path / "b", level=2, phase=1, steps=1, progress=False)
    with pytest.raises(CheckpointError, match="level-1 phase-2"):
        train_autoencoder(data, tmp_path / "c", level=2, phase=1, level1=runs["l1p1"], steps=1, progress=False)
    with pytest.raises(CheckpointError, match="level-2 phase-1"):
        train_autoencoder(data, tmp_path / "d", level=2, phase=2, init=runs["l1p1"], steps=1, progress=False)
    with pytest.raises(ConfigError, match="level-1 phase-1 run"):
        train_autoencoder(data, runs["l1p1"], level=1, phase=2, steps=1, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        train_autoencoder(data, runs["l1p1"], level=1, phase=1, preset="debug", steps=1, progress=False)


def test_presets_follow_the_spec() -> None:
    techno = AutoencoderTrainingConfig.preset_config("techno")
    assert (techno.batch_size, techno.learning_rate, techno.beta1, techno.beta2) == (32, 1e-4, 0.5, 0.999)
    assert (techno.lambda_rec, techno.lambda_ms) == (1.0, 4.0)
    assert techno.crop_frames == 128 and not techno.level1.with_phase
    piano = AutoencoderTrainingConfig.preset_config("piano", level=2, phase=1)
    assert (piano.level2.ratio, piano.level2.latent_dim) == (16, 32) and piano.level1.with_phase
    assert piano.discriminator.channels == (64, 128, 256, 512, 512)
    with pytest.raises(ConfigError, match="lr_schedule must be one of"):
        AutoencoderTrainingConfig.preset_config("techno", lr_schedule="step")
    with pytest.raises(ConfigError, match="unknown preset"):
        AutoencoderTrainingConfig.preset_config("jazz")


def test_a_full_size_preset_on_the_cpu_is_warned_about(tmp_path: Path, monkeypatch) -> None:
    import warnings

    from train_support import write_music_folder

    from orchestrion.training import Trainer

    monkeypatch.setattr(Trainer, "fit", lambda self, resume=False: {})  # the warning comes before any step
    write_music_folder(tmp_path / "music", n_files=1, seconds=2.0)
    with pytest.warns(UserWarning, match=r"the .piano. preset is full size and this run trains on the CPU: expect"):
        train_autoencoder(tmp_path / "music", tmp_path / "piano", preset="piano", steps=10, device="cpu",
                          progress=False)  # fmt: skip
    for preset in ("debug", "small"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_autoencoder(tmp_path / "music", tmp_path / preset, preset=preset, steps=10, device="cpu",
                              progress=False)  # fmt: skip
        assert not [w for w in caught if "full size" in str(w.message)], preset
