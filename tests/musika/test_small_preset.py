"""The CPU-sized `small` preset: sizes between debug and the paper's, trains, saves and reloads at both levels."""

from __future__ import annotations

import json

import pytest
import torch
from train_support import melody, write_music_folder

from orchestrion.checkpoint import load_checkpoint
from orchestrion.config import config_from_dict, config_to_dict
from orchestrion.musika.config import (
    DEFAULT_STEPS,
    AutoencoderTrainingConfig,
    Level1Config,
    Level2Config,
    default_steps,
)
from orchestrion.musika.inference import reconstruct
from orchestrion.musika.models import load_autoencoder
from orchestrion.musika.train import build_modules, train_autoencoder


def _parameters(config: AutoencoderTrainingConfig, *names: str) -> int:
    modules = build_modules(config)
    return sum(p.numel() for name in names for p in modules[name].parameters())


@pytest.mark.parametrize("level", [1, 2])
def test_small_sits_between_debug_and_the_paper_and_round_trips_as_json(level: int) -> None:
    names = ("level1_encoder", "level1_decoder") if level == 1 else ("level2_encoder", "level2_decoder")
    sizes = {
        preset: _parameters(AutoencoderTrainingConfig.preset_config(preset, level=level, phase=1), *names)
        for preset in ("debug", "small", "techno")
    }
    assert sizes["debug"] < sizes["small"] < sizes["techno"] / 8, sizes
    config = AutoencoderTrainingConfig.preset_config("small", level=level, phase=2)
    assert config_from_dict(AutoencoderTrainingConfig, json.loads(json.dumps(config_to_dict(config)))) == config
    # the latent interface stays the paper's: 128 level-1 dims, ratio 8 x 64 level-2 dims
    assert (config.level1.latent_dim, config.level2.ratio, config.level2.latent_dim) == (128, 8, 64)
    assert config.preset == "small" and config.batch_size == 32 and config.learning_rate == 3e-4
    assert Level1Config.preset("small").encoder_channels == (136, 144, 160, 176, 192)
    # issue 13: a linear shortcut (x6 faster phase 1), phase 1 at 1e-3 decaying to 0 (cosine),
    # a separate phase U-Net in phase 2 whose phase is demodulated (real, imaginary) pairs
    assert config.level1.linear_shortcut and config.level1.phase_decoder == "separate"
    assert config.level1.phase_output == "demodulated"
    phase1 = AutoencoderTrainingConfig.preset_config("small", level=1, phase=1)
    assert (phase1.learning_rate, phase1.lr_schedule) == (1e-3, "cosine") and config.lr_schedule == "constant"
    assert config.lambda_phase == (5.0 if level == 1 else 0.0)
    assert Level2Config.preset("small").decoder_channels == (192, 192, 160, 128, 96)
    assert config.level2.linear_shortcut  # level 2 learns from a linear code too (see SMALL_LEVEL2)


def test_small_trains_fewer_default_steps_than_the_paper() -> None:
    assert [default_steps("small", level, phase) for level in (1, 2) for phase in (1, 2)] == [
        20_000,
        1_000,
        5_000,
        1_000,
    ]
    assert default_steps("techno", 1, 2) == DEFAULT_STEPS[1] == 1_000_000 and default_steps("piano", 2, 1) == 400_000


def test_small_trains_saves_and_reloads_at_both_levels(tmp_path) -> None:
    data = tmp_path / "data"
    write_music_folder(data, n_files=2, seconds=2.0)
    runs = {name: tmp_path / name for name in ("l1p1", "l1p2", "l2p1")}
    common = {"batch_size": 4, "log_every": 1, "progress": False}
    train_autoencoder(data, runs["l1p1"], level=1, phase=1, preset="small", steps=3, **common)
    train_autoencoder(data, runs["l1p2"], level=1, phase=2, init=runs["l1p1"], steps=1, **common)
    train_autoencoder(data, runs["l2p1"], level=2, phase=1, preset="small", level1=runs["l1p2"], steps=2, **common)

    losses = [json.loads(line)["loss"] for line in (runs["l1p1"] / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    wave = torch.from_numpy(melody(1.0, seed=7))  # (1, 22050), not in the training folder
    for name, level in (("l1p2", 1), ("l2p1", 2)):
        checkpoint = load_checkpoint(runs[name])
        assert checkpoint.config.preset == "small" and checkpoint.config.level == level
        assert checkpoint.config.level1.phase_output == "demodulated"
        model = load_autoencoder(runs[name])
        assert model.level == level
        saved = checkpoint.module_state("level1_decoder")
        assert all(torch.equal(saved[k], v) for k, v in model.level1.decoder.state_dict().items())
        if level == 2:
            saved = checkpoint.module_state("level2_decoder")
            assert all(torch.equal(saved[k], v) for k, v in model.level2.decoder.state_dict().items())
        rebuilt = reconstruct(wave, model)
        assert rebuilt.shape == wave.shape and bool(torch.isfinite(rebuilt).all())
