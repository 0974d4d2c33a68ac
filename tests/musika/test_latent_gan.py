"""Latent GAN of spec §6: shapes of every preset, half independence, critic structure, losses (A10-A13)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from orchestrion.config import config_from_dict, config_to_dict
from orchestrion.errors import ConfigError
from orchestrion.musika.latent_gan import (
    PRESETS,
    LatentCritic,
    LatentGANConfig,
    LatentGenerator,
    ScaleAdaIN,
    SkipLayerExcitation,
    generator_loss,
    gradient_penalty,
    hinge_critic_loss,
    reconstruction_loss,
)
from orchestrion.musika.layers import AddNoise, configure_noise
from orchestrion.system import torch_threads

DEBUG = LatentGANConfig.preset_config("debug")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread avoids OpenMP barrier stalls on a busy 2-core machine (restored afterwards)."""
    with torch_threads(1):
        yield
EXPECTED = {  # preset: (input channels, latent channels, latlen, critic feature)
    "techno": (128, 128, 256, (1024, 4)),
    "piano": (128, 64, 128, (1024, 2)),
    "small": (64, 128, 128, (256, 2)),
    "debug": (32, 16, 32, (48, 2)),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_has_the_spec_shapes(name: str) -> None:
    config = LatentGANConfig.preset_config(name)
    c_in, c_lat, latlen, feature = EXPECTED[name]
    assert (config.input_channels, config.latent_channels, config.latlen) == (c_in, c_lat, latlen)
    generator, critic = LatentGenerator(config), LatentCritic(config)
    with torch.no_grad():
        latents = generator(torch.randn(1, c_in, latlen))
        logit, features, rebuilt = critic(latents, rebuild=1)
    assert latents.shape == (1, c_lat, latlen)
    assert latents.abs().max() <= 1  # tanh (float32 rounds tanh(x > 9) to 1)
    assert (latents.abs() < 0.999).float().mean() > 0.9  # at He init, not a saturated output
    assert logit.shape == (1, 1)
    assert features.shape == (1, *feature)
    assert rebuilt.shape == (1, c_lat, latlen)


@pytest.mark.parametrize(("name", "generator_m", "critic_m"), [("techno", 14.1, 20.6), ("small", 1.24, 1.31)])
def test_preset_sizes(name: str, generator_m: float, critic_m: float) -> None:
    """Parameter counts (millions) quoted in LatentGANConfig.preset_config and the README."""
    config = LatentGANConfig.preset_config(name, latent_dim=64)

    def millions(module: nn.Module) -> float:
        return sum(p.numel() for p in module.parameters()) / 1e6

    assert millions(LatentGenerator(config)) == pytest.approx(generator_m, abs=0.05 if name == "techno" else 0.005)
    assert millions(LatentCritic(config)) == pytest.approx(critic_m, abs=0.05 if name == "techno" else 0.005)


def test_techno_generator_follows_the_block_table() -> None:
    generator = LatentGenerator(LatentGANConfig.preset_config("techno"))
    lengths, widths = [], []
    x = torch.randn(2, 128, 128)
    hook_out = []
    handles = [b.register_forward_hook(lambda m, i, o: hook_out.append(o.shape)) for b in generator.blocks]
    with torch.no_grad():
        generator.generate_half(x)
    for handle in handles:
        handle.remove()
    widths, lengths = [s[1] for s in hook_out], [s[2] for s in hook_out]
    assert widths == [768, 768, 640, 640, 512, 512, 384, 384, 256]
    assert lengths == [8, 8, 16, 16, 32, 32, 64, 64, 128]
    assert generator.stem.in_features == 2 * 128 and generator.stem.out_features == 4 * 896


def test_piano_block_a_does_not_upsample() -> None:
    generator = LatentGenerator(LatentGANConfig.preset_config("piano"))
    strided = [isinstance(b.conv, nn.ConvTranspose1d) for b in generator.blocks]
    assert strided == [False, False, True, False, True, False, True, False, True]  # 4 → 64 in 4 steps


def test_generator_halves_are_independent() -> None:
    """A10: output [0:seq_len] depends only on coordinates [0:seq_len], and vice versa."""
    torch.manual_seed(0)
    generator = LatentGenerator(DEBUG)
    for layer in generator.modules():
        if isinstance(layer, AddNoise):
            nn.init.constant_(layer.scale, 0.5)  # the noise path must be independent too
    coords = torch.randn(2, DEBUG.input_channels, DEBUG.latlen, requires_grad=True)
    configure_noise(generator, generator=torch.Generator().manual_seed(1))
    out = generator(coords)
    half = DEBUG.seq_len
    (grad_first,) = torch.autograd.grad(out[..., :half].sum(), coords, retain_graph=True)
    (grad_second,) = torch.autograd.grad(out[..., half:].sum(), coords)
    assert grad_first[..., half:].abs().max() == 0 and grad_first[..., :half].abs().max() > 0
    assert grad_second[..., :half].abs().max() == 0 and grad_second[..., half:].abs().max() > 0
    # and sample b never sees sample b' (halves are stacked on the batch axis, then unstacked)
    (grad_sample,) = torch.autograd.grad(generator(coords)[0].sum(), coords)
    assert grad_sample[1].abs().max() == 0


def test_generator_has_no_batchnorm_and_the_spec_layers() -> None:
    """A11: no BatchNorm; every conv followed by noise + SA-AdaIN + swish; four SLE gates."""
    generator = LatentGenerator(LatentGANConfig.preset_config("techno"))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in generator.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in LatentCritic(DEBUG).modules())
    assert sum(isinstance(m, SkipLayerExcitation) for m in generator.modules()) == 4
    assert sum(isinstance(m, AddNoise) for m in generator.modules()) == 10  # stem + 9 blocks
    assert sum(isinstance(m, ScaleAdaIN) for m in generator.modules()) == 10


def test_scale_adain_normalises_by_the_time_std_only() -> None:
    norm = ScaleAdaIN(3, 4)
    nn.init.zeros_(norm.gamma.weight)
    nn.init.constant_(norm.gamma.bias, 2.0)
    x = torch.randn(2, 4, 16) + 5.0
    out = norm(x, torch.randn(2, 3, 16))
    expected = 2.0 * x / x.std(dim=-1, keepdim=True, unbiased=False)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)  # no centring, no shift


def test_cross_channel_mixing_is_frozen_and_saved() -> None:
    """A12: the CCM projection gets no gradient and does not move in training, but is in the checkpoint."""
    critic = LatentCritic(DEBUG)
    assert "cross_channel_mixing" in critic.state_dict()
    assert all("cross_channel_mixing" not in name for name, _ in critic.named_parameters())
    before = critic.cross_channel_mixing.clone()
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    latents = torch.rand(4, DEBUG.latent_channels, DEBUG.latlen) * 2 - 1
    logit, _, rebuilt = critic(latents, rebuild=4)
    (logit.mean() + reconstruction_loss(latents, rebuilt)).backward()
    optimizer.step()
    assert torch.equal(critic.cross_channel_mixing, before)
    assert critic.first.weight.grad is not None
    assert critic.first.in_channels == DEBUG.ccm_channels


def test_conditional_critic_appends_the_curves_after_mixing() -> None:
    config = LatentGANConfig.preset_config("debug", conditions=("note_density", "tempo"))
    critic = LatentCritic(config)
    assert critic.first.in_channels == config.ccm_channels + 2
    assert LatentGenerator(config).stem.in_features == 2 * (config.coord_dim + config.style_dim + 2)
    latents = torch.zeros(2, config.latent_channels, config.latlen)
    low = critic(latents, torch.zeros(2, 2, config.latlen))
    high = critic(latents, torch.ones(2, 2, config.latlen))
    assert low.rebuilt is None
    assert not torch.allclose(low.logit, high.logit)
    with pytest.raises(ValueError, match="conditioned on"):
        critic(latents)


def test_hinge_losses() -> None:
    """A13: D = 0 everywhere → hinge part 1 and L_G 0; zero once D(real) ≥ 1 and D(fake) ≤ −1."""
    zeros = torch.zeros(8, 1)
    assert hinge_critic_loss(zeros, zeros).item() == 1.0
    assert generator_loss(zeros).item() == 0.0
    assert hinge_critic_loss(torch.full((8, 1), 1.5), torch.full((8, 1), -1.0)).item() == 0.0
    assert hinge_critic_loss(torch.full((8, 1), 0.5), torch.full((8, 1), -2.0)).item() == pytest.approx(0.25)
    assert generator_loss(torch.tensor([[2.0], [4.0]])).item() == -3.0
    nan = torch.tensor([[float("nan")], [float("nan")]])
    assert hinge_critic_loss(nan, nan).item() == 1.0  # NaN logits count as 0


def test_gradient_penalties_on_a_linear_critic() -> None:
    """D(x) = w·x has ∇ = w for every sample: R1 = ‖w‖², the reference form (sqrt(1e-6 + ‖w‖²) − 1)²."""
    w = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # ‖w‖² = 25
    x = torch.randn(5, 2, 2, requires_grad=True)
    logits = (x * w).flatten(1).sum(1, keepdim=True)
    assert gradient_penalty(logits, x, "r1").item() == pytest.approx(25.0)
    logits = (x * w).flatten(1).sum(1, keepdim=True)
    assert gradient_penalty(logits, x, "reference").item() == pytest.approx((25.000001**0.5 - 1) ** 2)
    # it is differentiable (the penalty trains the critic): d/dw of ‖w‖² = 2w
    w_param = w.clone().requires_grad_(True)
    logits = (x * w_param).flatten(1).sum(1, keepdim=True)
    gradient_penalty(logits, x).backward()
    torch.testing.assert_close(w_param.grad, 2 * w)
    with pytest.raises(ValueError, match="unknown gradient penalty"):
        gradient_penalty((x * w).sum(), x, "wgan")


def test_reconstruction_loss_sums_channels_and_averages_frames() -> None:
    real = torch.zeros(2, 3, 4)
    assert reconstruction_loss(real, torch.full((2, 3, 4), 0.5)).item() == pytest.approx(3 * 0.25)


def test_config_round_trip_and_validation() -> None:
    config = LatentGANConfig.preset_config("piano", conditions=("tempo",), gradient_penalty="reference", beta1=0.9)
    assert config_from_dict(LatentGANConfig, config_to_dict(config)) == config
    with pytest.raises(ConfigError, match="seq_len"):
        LatentGANConfig(seq_len=100)
    with pytest.raises(ConfigError, match="conditions"):
        LatentGANConfig(conditions=("loudness",))
    with pytest.raises(ConfigError, match="unknown latent-GAN preset"):
        LatentGANConfig.preset_config("jazz")
    with pytest.raises(ConfigError, match="gradient_penalty"):
        config_from_dict(LatentGANConfig, {**config_to_dict(config), "gradient_penalty": "wgan"})


def test_generator_rejects_wrong_coordinates() -> None:
    with pytest.raises(ValueError, match=r"expected coordinates \(B, 32, 32\)"):
        LatentGenerator(DEBUG)(torch.zeros(1, 32, 64))
