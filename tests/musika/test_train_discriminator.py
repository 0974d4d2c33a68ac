"""Phase-2 spectrogram discriminator: shapes, spectral normalisation, hinge losses (spec §5.2)."""

from __future__ import annotations

import torch

from orchestrion.audio.spectral import log_magnitude_for_discriminator
from orchestrion.musika.discriminators import (
    DiscriminatorConfig,
    SpectrogramDiscriminator,
    hinge_discriminator_loss,
    hinge_generator_loss,
)


def test_patch_logits_for_two_joined_windows() -> None:
    torch.manual_seed(0)
    disc = SpectrogramDiscriminator(DiscriminatorConfig.preset("debug"))
    wave = 0.1 * torch.randn(3, 256 * 128 + 768 - 2 * 768)  # two windows without the iSTFT edges
    spec = log_magnitude_for_discriminator(wave)
    assert spec.shape == (3, 769, 120)
    logits = disc(spec)
    # five stride-2 stages: 769 → 384 → 192 → 96 → 48 → 24 bins, 120 → 60 → 30 → 15 → 7 → 3 frames
    assert logits.shape == (3, 24 * 3)


def test_spec_widths_and_spectral_norm_on_every_conv() -> None:
    disc = SpectrogramDiscriminator(DiscriminatorConfig())
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 1]
    assert [c.kernel_size for c in convs] == [(4, 4)] * 5 + [(3, 3)]
    assert all(c.stride == (2, 2) for c in convs[:5])
    assert all(hasattr(c, "parametrizations") and "weight" in c.parametrizations for c in convs)
    # spectral norm: after a few power iterations every weight has largest singular value ≈ 1
    # (checked on the debug widths: the same layers, cheaper to iterate)
    small = SpectrogramDiscriminator(DiscriminatorConfig.preset("debug")).train()
    with torch.no_grad():
        for _ in range(10):
            small(torch.randn(1, 32, 32))  # the input size does not matter to the power iteration
    small.eval()
    for conv in [m for m in small.modules() if isinstance(m, torch.nn.Conv2d)]:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1).double(), ord=2)
        assert abs(float(sigma) - 1.0) < 0.05


def test_hinge_losses() -> None:
    zeros = torch.zeros(4, 10)
    assert float(hinge_discriminator_loss(zeros, zeros)) == 2.0  # each term 1
    assert float(hinge_generator_loss(zeros)) == 0.0
    assert float(hinge_discriminator_loss(torch.full((4, 10), 1.5), torch.full((4, 10), -2.0))) == 0.0
    real, fake = torch.tensor([[0.5, 2.0]]), torch.tensor([[0.0, -3.0]])
    assert float(hinge_discriminator_loss(real, fake)) == (0.5 + 0.0) / 2 + (1.0 + 0.0) / 2
    assert float(hinge_generator_loss(fake)) == 1.5
