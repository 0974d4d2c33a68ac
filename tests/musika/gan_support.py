"""Test helper for generation tests: a complete debug latent-GAN run directory with random weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from orchestrion.checkpoint import save_checkpoint
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.inference import latent_digest
from orchestrion.musika.latent_gan import LatentGANConfig, LatentGANRunConfig, LatentGenerator
from orchestrion.musika.layers import AddNoise
from orchestrion.musika.models import TrainedAutoencoder
from orchestrion.system import torch_threads

SR = 22050


def one_thread():
    """Tiny models gain nothing from threads, and on a busy shared machine OpenMP barriers make two
    threads ~30x slower than one; the tests run single-threaded and restore the setting."""
    return torch_threads(1)


def _randomise(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and noise scales, so every AddNoise is really exercised."""
    generator = torch.Generator().manual_seed(1)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm1d):
            layer.running_mean.normal_(0.0, 0.3, generator=generator)
            layer.running_var.uniform_(0.5, 2.0, generator=generator)
        if isinstance(layer, AddNoise):
            layer.scale.data.fill_(0.2)
    return model.eval()


CONDITIONS = {"note_density": {"method": "test"}, "tempo": {"bpm_min": 80.0, "bpm_max": 180.0}}


def write_gan_run(folder: Path, conditions: tuple[str, ...] = ("note_density", "tempo")) -> Path:
    """A complete debug latent-GAN run directory (random weights) that ``load_latent_gan`` accepts."""
    torch.manual_seed(0)
    ae_config = AutoencoderTrainingConfig.preset_config("debug", level=2, phase=2)
    level1 = _randomise(Level1Autoencoder(ae_config.level1))
    level2 = _randomise(Level2Autoencoder(ae_config.level2))
    with torch.no_grad():  # a falling spectrum at a moderate level (-32 to -92 dB) instead of clipped white noise
        level1.decoder.out.weight[:513] *= 0.1
        level1.decoder.out.bias[:513] = torch.linspace(-0.1, -0.9, 513)
    gan_config = LatentGANConfig.preset_config("debug", conditions=conditions, latent_dim=ae_config.level2.latent_dim)
    generator = _randomise(LatentGenerator(gan_config))
    digest = latent_digest(TrainedAutoencoder(ae_config, level1, level2, folder))
    run_config = LatentGANRunConfig(
        gan=gan_config, autoencoder=ae_config, autoencoder_digest=digest, autoencoder_run="test",
        conditions={name: CONDITIONS[name] for name in conditions}, frames_per_second=SR / 2048,
    )
    modules = {
        "generator_ema": generator, "level1_encoder": level1.encoder, "level1_decoder": level1.decoder,
        "level2_encoder": level2.encoder, "level2_decoder": level2.decoder,
    }
    save_checkpoint(folder / "checkpoints" / "step_00000001", config=run_config, modules=modules)
    return folder
