"""Loading trained Musika runs for inference: autoencoders and latent GANs.

A run directory (or one of its checkpoint directories) is all a user passes: a level-2
autoencoder run holds its level-1 weights, and a latent-GAN run holds the whole autoencoder
it was trained on, so ``--model RUN`` is always one directory. Anything else (a missing,
tampered or foreign checkpoint, a run of another kind) is a :class:`CheckpointError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from orchestrion.checkpoint import Checkpoint, load_checkpoint
from orchestrion.errors import CheckpointError
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.latent_gan import LatentGANConfig, LatentGANRunConfig, LatentGenerator

GAN_KIND = "musika.latent_gan_run"
AUTOENCODER_KIND = "musika.autoencoder_training"
AUTOENCODER_MODULES = ("level1_encoder", "level1_decoder", "level2_encoder", "level2_decoder")
_DESCRIPTIONS = {AUTOENCODER_KIND: "Musika autoencoder", GAN_KIND: "Musika latent-GAN"}


@dataclass
class TrainedAutoencoder:
    """A trained model ready for inference: level 1 always, level 2 when the run has one."""

    config: AutoencoderTrainingConfig
    level1: Level1Autoencoder
    level2: Level2Autoencoder | None
    path: Path

    @property
    def level(self) -> int:
        return 2 if self.level2 is not None else 1


def _open(path: str | Path, kind: str) -> Checkpoint:
    return _check_kind(load_checkpoint(path), path, kind)


def _check_kind(ckpt: Checkpoint, path: str | Path, kind: str) -> Checkpoint:
    if ckpt.kind != kind:
        raise CheckpointError(f"{path}: --model must be a {_DESCRIPTIONS[kind]} run, this one holds {ckpt.kind!r}")
    return ckpt


def autoencoder_from_checkpoint(
    ckpt: Checkpoint, config: AutoencoderTrainingConfig, device: str | torch.device = "cpu"
) -> TrainedAutoencoder:
    """The autoencoder modules stored in ``ckpt`` (an autoencoder run or a latent-GAN run), eval mode."""
    level1 = Level1Autoencoder(config.level1)
    ckpt.load_into("level1_encoder", level1.encoder)
    ckpt.load_into("level1_decoder", level1.decoder)
    level2 = None
    if config.level == 2:
        level2 = Level2Autoencoder(config.level2)
        ckpt.load_into("level2_encoder", level2.encoder)
        ckpt.load_into("level2_decoder", level2.decoder)
        level2 = level2.to(device).eval()
    return TrainedAutoencoder(config, level1.to(device).eval(), level2, ckpt.path)


def load_autoencoder(
    path: str | Path, device: str | torch.device = "cpu", *, accept_gan_run: bool = False
) -> TrainedAutoencoder:
    """Load an autoencoder run directory (its latest checkpoint) or a checkpoint directory.

    A level-2 run holds its level-1 weights, so one directory is enough. With ``accept_gan_run``
    a latent-GAN run gives the autoencoder stored in it (what encode/decode/reconstruct use, so the
    bundled Musika model serves them too). Modules are in eval mode on ``device``. Raises
    :class:`CheckpointError` for anything else or for weights that do not fit the config.
    """
    ckpt = load_checkpoint(path)
    if accept_gan_run and ckpt.kind == GAN_KIND:
        return autoencoder_from_checkpoint(ckpt, ckpt.config.autoencoder, device)
    ckpt = _check_kind(ckpt, path, AUTOENCODER_KIND)
    return autoencoder_from_checkpoint(ckpt, ckpt.config, device)


@dataclass
class TrainedLatentGAN:
    """A trained latent GAN ready to sample: EMA generator + the level-2 autoencoder it speaks to."""

    config: LatentGANConfig
    generator: LatentGenerator  # EMA weights, eval mode
    autoencoder: TrainedAutoencoder
    conditions: dict[str, Any]  # normalisation of each conditioning curve, from the chunk manifest
    run: LatentGANRunConfig
    path: Path

    @property
    def frames_per_second(self) -> float:
        """Level-2 frames per second of the generated latents."""
        return self.run.frames_per_second


def load_latent_gan(path: str | Path, device: str | torch.device = "cpu") -> TrainedLatentGAN:
    """Load a latent-GAN run directory (latest checkpoint) or checkpoint directory for sampling.

    The generator is the EMA copy (spec §6.3). The autoencoder comes from the same checkpoint
    and must have the latent digest recorded at training time.
    """
    from orchestrion.musika.inference import latent_digest

    ckpt = _open(path, GAN_KIND)
    run: LatentGANRunConfig = ckpt.config
    autoencoder = autoencoder_from_checkpoint(ckpt, run.autoencoder, device)
    digest = latent_digest(autoencoder)
    if digest != run.autoencoder_digest:
        raise CheckpointError(
            f"{ckpt.path}: the autoencoder stored in this GAN run has latent digest {digest}, "
            f"but the GAN was trained on {run.autoencoder_digest}"
        )
    generator = LatentGenerator(run.gan)
    ckpt.load_into("generator_ema", generator)
    return TrainedLatentGAN(
        config=run.gan,
        generator=generator.to(device).eval(),
        autoencoder=autoencoder,
        conditions=dict(run.conditions),
        run=run,
        path=ckpt.path,
    )
