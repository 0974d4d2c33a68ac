"""Spectrogram discriminator and hinge losses for autoencoder phase 2 (spec §5.2).

The discriminator judges the normalised log-magnitude spectrogram (n_fft 1536, hop 256)
of two consecutive decoder windows joined along time, so the seam between windows is
visible to it. Neither the paper nor the reference publishes its layers; we follow the
spec's [PROPOSED] design: five strided 4×4 2-D convolutions (64-128-256-512-512 channels),
LeakyReLU 0.2, a final 3×3 convolution to one channel giving a grid of patch logits, with
spectral normalisation on every weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from orchestrion.musika.config import DiscriminatorConfig


class SpectrogramDiscriminator(nn.Module):
    """2-D convolutional patch discriminator over (frequency × time).

    Input: normalised log-magnitude spectrogram ``(B, F, T)`` (F = 769 bins for n_fft 1536).
    Output: patch logits ``(B, P)`` with ``P = ceil(F / 2**n) · ceil(T / 2**n)`` roughly,
    n = number of strided stages (each patch sees a receptive field of ~100 frames/bins).
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = 1
        for out_channels in config.channels:
            # k4 s2 p1 halves each axis exactly (for even sizes): the usual PatchGAN stage.
            layers.append(spectral_norm(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)))
            layers.append(nn.LeakyReLU(config.negative_slope))
            in_channels = out_channels
        layers.append(spectral_norm(nn.Conv2d(in_channels, 1, 3, stride=1, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """``(B, F, T)`` spectrogram → ``(B, P)`` patch logits."""
        if spectrogram.dim() != 3:
            raise ValueError(f"expected (B, F, T) spectrogram, got shape {tuple(spectrogram.shape)}")
        logits = self.net(spectrogram.unsqueeze(1))
        return logits.flatten(1)


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``E[max(0, 1 − D(real))] + E[max(0, 1 + D(fake))]``, averaged over batch and patches."""
    return torch.relu(1.0 - real_logits.float()).mean() + torch.relu(1.0 + fake_logits.float()).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Adversarial term of the decoder loss: ``−E[D(fake)]`` over batch and patches."""
    return -fake_logits.float().mean()
