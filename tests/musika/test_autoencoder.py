"""Musika autoencoders (spec musika.md §3-4, acceptance A4-A9), parametrised over presets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from orchestrion.audio.spectral import SAMPLE_RATE, samples_for_frames, spectral_frames, stft
from orchestrion.config import config_from_dict, config_to_dict
from orchestrion.errors import ConfigError
from orchestrion.musika.autoencoder import (
    Level1Autoencoder,
    Level1Decoder,
    Level1Encoder,
    Level2Autoencoder,
    Level2Decoder,
    Level2Encoder,
    bin_centre_rotation,
    phase_from_output,
)
from orchestrion.musika.config import Level1Config, Level2Config
from orchestrion.musika.layers import AddNoise, ConvBlock, configure_noise, split_windows

LEVEL1_PRESETS = ["debug", "default"]
LEVEL2_PRESETS = ["debug", "techno", "piano"]


def _level1(preset: str) -> Level1Autoencoder:
    torch.manual_seed(0)
    return Level1Autoencoder(Level1Config.preset(preset)).eval()


def _level2(preset: str) -> Level2Autoencoder:
    torch.manual_seed(0)
    return Level2Autoencoder(Level2Config.preset(preset)).eval()


def _receptive_field(module: nn.Module) -> int:
    """Receptive field in frames of a chain of stride-1/strided convs, read off the module list."""
    field, jump = 1, 1
    for layer in module.modules():
        if isinstance(layer, nn.Conv1d):
            field += (layer.kernel_size[0] - 1) * jump
            jump *= layer.stride[0]
    return field


def _assert_no_padding(encoder: nn.Module) -> None:
    for layer in encoder.modules():
        if isinstance(layer, nn.Conv1d):
            assert layer.padding == (0,)
        if isinstance(layer, ConvBlock):
            assert layer.pad == (0, 0)
        assert not isinstance(layer, (nn.ConstantPad1d, nn.ReflectionPad1d, nn.ReplicationPad1d))


# --- rates and sizes (A6, A9) -------------------------------------------------------------------


def test_level1_rate_a6() -> None:
    config = Level1Config()
    assert config.hop == 256 and config.latent_dim == 128
    assert config.frames_per_second == pytest.approx(86.13, abs=0.005)
    seconds = 600
    frames = spectral_frames(seconds * SAMPLE_RATE)
    # one latent per 256 samples, not the paper's printed 190.22 Hz
    assert frames == (seconds * SAMPLE_RATE - 1024) // 256 + 1 == 51676
    assert frames / seconds == pytest.approx(86.13, abs=0.01)


@pytest.mark.parametrize(
    ("preset", "hop", "rate", "dim"), [("techno", 2048, 10.77, 64), ("piano", 4096, 5.38, 32)]
)
def test_level2_rates_a9(preset: str, hop: int, rate: float, dim: int) -> None:
    config = Level2Config.preset(preset)
    assert (config.hop, config.latent_dim) == (hop, dim)
    assert config.frames_per_second == pytest.approx(rate, abs=0.005)
    assert config.decoder_input_frames * config.ratio == 64


def test_level2_techno_decodes_256_frames_to_23_8_seconds_a9() -> None:
    level1, level2 = _level1("default"), _level2("techno")
    with torch.inference_mode():
        level1_latents = level2.decode(torch.rand(1, 64, 256) * 2 - 1)
        wave = level1.decode_to_wave(level1_latents)
    assert level1_latents.shape == (1, 128, 2048)
    assert wave.shape == (1, 256 * 2048 + 768) == (1, samples_for_frames(2048))
    assert (wave.shape[-1] - 768) / SAMPLE_RATE == pytest.approx(23.78, abs=0.005)


@pytest.mark.parametrize("preset", LEVEL2_PRESETS)
def test_audio_clip_frame_counts(preset: str) -> None:
    """A 22.05 kHz clip of T seconds -> floor((L - 1024)/256) + 1 level-1 and that // ratio level-2 frames."""
    level1, level2 = _level1("debug"), _level2(preset)
    if level2.config.input_dim != level1.config.latent_dim:
        level1 = Level1Autoencoder(Level1Config.preset("debug", latent_dim=level2.config.input_dim)).eval()
    seconds = 3
    wave = 0.1 * torch.randn(2, seconds * SAMPLE_RATE)
    with torch.inference_mode():
        z = level1.encode_wave(wave)
        usable = z.shape[-1] // level2.config.ratio * level2.config.ratio
        y = level2.encode(z[..., :usable])
    assert z.shape == (2, level1.config.latent_dim, 255)  # (66150 - 1024) // 256 + 1
    assert y.shape == (2, level2.config.latent_dim, 255 // level2.config.ratio)


# --- level 1 (A4, A5) -----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", LEVEL1_PRESETS)
def test_level1_encoder_a4(preset: str) -> None:
    model = _level1(preset)
    features = torch.rand(2, 513, 128) * 2 - 1
    with torch.inference_mode():
        latents = model.encode(features)
        windows = split_windows(latents, 64)
        assert windows.shape == (4, model.config.latent_dim, 64)
        assert latents.abs().max() < 1
        # frame-wise: changing spectrogram frame t changes latent t only
        perturbed = features.clone()
        perturbed[:, :, 37] += 0.5
        changed = (model.encode(perturbed) != latents).any(dim=(0, 1))
    assert changed.nonzero().flatten().tolist() == [37]
    _assert_no_padding(model.encoder)
    assert _receptive_field(model.encoder) == 1
    assert all(layer.kernel_size == (1,) for layer in model.encoder.modules() if isinstance(layer, nn.Conv1d))


@pytest.mark.parametrize("preset", LEVEL1_PRESETS)
def test_level1_decoder_a5(preset: str) -> None:
    model = _level1(preset)
    configure_noise(model, enabled=False)
    latents = torch.rand(3, model.config.latent_dim, 64) * 2 - 1
    with torch.inference_mode():
        magnitude, phase = model.decoder(latents)
    assert magnitude.shape == phase.shape == (3, 513, 64)
    for out in (magnitude, phase):
        assert out.min() >= -1 and out.max() <= 1
        assert out.std() > 0


def test_level1_decoder_clips_to_unit_range() -> None:
    model = _level1("debug")
    with torch.no_grad():
        model.decoder.out.bias.fill_(5.0)
        magnitude, phase = model.decoder(torch.zeros(1, 16, 64))
    assert torch.all(magnitude == 1.0) and torch.all(phase == 1.0)


def test_level1_decoder_window_layout() -> None:
    model = _level1("debug")
    configure_noise(model, enabled=False)
    latents = torch.rand(2, 16, 192) * 2 - 1
    with torch.inference_mode():
        magnitude, phase = model.decode(latents)
        # the second window of batch item 1 equals decoding that window alone (no cross-window context)
        alone, alone_phase = model.decoder(latents[1:2, :, 64:128])
    assert magnitude.shape == phase.shape == (2, 513, 192)
    torch.testing.assert_close(magnitude[1:2, :, 64:128], alone)
    torch.testing.assert_close(phase[1:2, :, 64:128], alone_phase)
    with pytest.raises(ValueError, match="multiple of the 64-frame window"):
        model.decode(latents[..., :100])


@pytest.mark.parametrize("preset", LEVEL1_PRESETS)
def test_enable_phase_keeps_magnitude(preset: str) -> None:
    torch.manual_seed(0)
    decoder = Level1Decoder(Level1Config.preset(preset, with_phase=False)).eval()
    configure_noise(decoder, enabled=False)
    latents = torch.rand(2, decoder.config.latent_dim, 64) * 2 - 1
    with torch.inference_mode():
        magnitude, phase = decoder(latents)
    assert magnitude.shape == (2, 513, 64) and phase is None
    decoder.enable_phase()
    assert decoder.config.with_phase and decoder.out.out_channels == 1026
    with torch.inference_mode():
        magnitude2, phase2 = decoder(latents)
    assert torch.equal(magnitude, magnitude2)
    assert phase2.shape == (2, 513, 64) and phase2.std() > 0


def test_separate_phase_decoder_keeps_the_magnitude_frozen_through_training_mode() -> None:
    """enable_phase("separate"): a second U-Net makes the phase; after freeze_magnitude the magnitude
    U-Net gets no gradients and its BatchNorm statistics survive train() and a training step."""
    torch.manual_seed(0)
    decoder = Level1Decoder(Level1Config.preset("debug", with_phase=False)).eval()
    configure_noise(decoder, enabled=False)
    latents = torch.rand(4, 16, 64) * 2 - 1
    with torch.inference_mode():
        magnitude, _ = decoder(latents)
    decoder.enable_phase("separate")
    assert decoder.config.phase_decoder == "separate" and decoder.out.out_channels == 513
    assert decoder.phase_net.out.out_channels == 513
    # the phase U-Net starts from the magnitude U-Net's layers (not its output conv)
    assert torch.equal(decoder.phase_net.stem.conv.weight, decoder.stem.conv.weight)
    assert not torch.equal(decoder.phase_net.out.weight, decoder.out.weight)
    decoder.freeze_magnitude()
    decoder.train()
    assert not decoder.stem.training and decoder.phase_net.training
    trainable = {name for name, p in decoder.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("phase_net.") for name in trainable)
    optimizer = torch.optim.Adam([p for p in decoder.parameters() if p.requires_grad], lr=1e-2)
    _, phase = decoder(latents)
    (phase - 0.5).square().mean().backward()
    optimizer.step()
    decoder.eval()
    with torch.inference_mode():
        magnitude2, phase2 = decoder(latents)
        assert torch.equal(decoder.decode_magnitude(latents), magnitude2)
    assert torch.equal(magnitude, magnitude2)
    assert phase2.shape == (4, 513, 64) and phase2.std() > 0
    # a config saved with the separate phase decoder rebuilds the same module layout
    rebuilt = Level1Decoder(decoder.config)
    assert rebuilt.state_dict().keys() == decoder.state_dict().keys()
    with pytest.raises(ValueError, match="separate phase decoder"):
        Level1Decoder(Level1Config.preset("debug")).freeze_magnitude()
    with pytest.raises(ConfigError, match="phase_decoder"):
        Level1Config.preset("debug", phase_decoder="split")


def test_atan2_phase_output_is_the_angle_of_real_imaginary_pairs_and_learns_across_the_wrap() -> None:
    """phase_output="atan2": the phase U-Net makes 1026 channels, a (real, imaginary) pair per bin, and
    the phase is their angle / π. A target phase at ±π (where the clipped "angle" form has no gradient
    past the clip) is reached by gradient steps; configs without the field (older runs) load as "angle"."""
    torch.manual_seed(0)
    decoder = Level1Decoder(Level1Config.preset("debug", with_phase=False)).eval()
    configure_noise(decoder, enabled=False)
    decoder.enable_phase("separate", "atan2")
    assert decoder.config.phase_output == "atan2" and decoder.phase_net.out.out_channels == 1026
    assert decoder.out.out_channels == 513
    latents = torch.rand(4, 16, 64) * 2 - 1
    with torch.inference_mode():
        _, phase = decoder(latents)
        raw = decoder.phase_net._unet(latents)
    assert phase.shape == (4, 513, 64) and phase.abs().max() <= 1.0
    assert torch.allclose(phase, torch.atan2(raw[:, 513:], raw[:, :513]) / torch.pi)
    assert torch.equal(phase_from_output(raw, decoder.config), phase)

    decoder.freeze_magnitude()
    decoder.train()
    optimizer = torch.optim.Adam([p for p in decoder.parameters() if p.requires_grad], lr=3e-3)
    target = torch.ones(4, 513, 64)  # phase π for every bin: the wrap point

    def wrap_error() -> float:
        with torch.no_grad():
            return float((1 - torch.cos(torch.pi * (decoder(latents)[1] - target))).mean())

    before = wrap_error()
    for _ in range(30):
        optimizer.zero_grad()
        loss = (1 - torch.cos(torch.pi * (decoder(latents)[1] - target))).mean()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in decoder.phase_net.parameters() if p.grad is not None)
        optimizer.step()
    assert wrap_error() < 0.5 * before
    saved = config_to_dict(decoder.config)
    assert config_from_dict(Level1Config, saved) == decoder.config
    del saved["phase_output"]
    assert config_from_dict(Level1Config, saved).phase_output == "angle"
    with pytest.raises(ConfigError, match="needs phase_decoder='separate'"):
        Level1Config.preset("debug", phase_output="atan2")
    # phase 2 with a shared output conv from a phase-1 config that named pairs: the one form it has
    phase1 = Level1Config.preset("debug", with_phase=False, phase_decoder="separate", phase_output="atan2")
    assert phase1.with_phase_network("shared").phase_output == "angle"
    assert phase1.with_phase_network().phase_output == "atan2" and phase1.with_phase_network().with_phase
    with pytest.raises(ConfigError, match="phase_output must be one of"):
        Level1Config.preset("debug", phase_decoder="separate", phase_output="complex")


def test_bin_centre_rotation_is_how_a_centred_partial_turns_and_demodulated_adds_it() -> None:
    """A cosine at bin 37's centre frequency: its STFT phase in bin 37 turns by exactly the rotation from
    frame to frame; the rotation repeats every 4 frames (so 64-frame windows decode alike anywhere), and
    phase_output="demodulated" is the atan2 phase plus it, wrapped to [-1, 1)."""
    rotation = bin_centre_rotation(513, 200)
    assert rotation.shape == (513, 200) and rotation.min() >= 0 and rotation.max() < 2
    assert torch.equal(rotation[:, 64:128], rotation[:, :64]) and torch.equal(rotation[:, 4:8], rotation[:, :4])
    k0, t = 37, torch.arange(spectral_frames(SAMPLE_RATE))
    wave = torch.cos(2 * torch.pi * k0 / 1024 * torch.arange(SAMPLE_RATE) + 0.3)[None]
    turned = torch.angle(stft(wave)[0, k0]) - torch.angle(stft(wave)[0, k0, 0])
    error = torch.remainder(turned - torch.pi * bin_centre_rotation(513, len(t))[k0] + torch.pi, 2 * torch.pi)
    assert (error - torch.pi).abs().max() < 1e-3

    torch.manual_seed(0)
    atan2 = Level1Decoder(Level1Config.preset("debug", phase_decoder="separate", phase_output="atan2")).eval()
    demodulated = Level1Decoder(Level1Config.preset("debug", phase_decoder="separate", phase_output="demodulated"))
    demodulated.load_state_dict(atan2.state_dict())
    configure_noise(atan2, enabled=False)
    configure_noise(demodulated.eval(), enabled=False)
    latents = torch.rand(2, 16, 64) * 2 - 1
    with torch.inference_mode():
        plain, shifted = atan2(latents)[1], demodulated(latents)[1]
    assert shifted.min() >= -1 and shifted.max() < 1
    difference = torch.remainder(shifted - plain - bin_centre_rotation(513, 64) + 1, 2) - 1
    assert difference.abs().max() < 1e-5


@pytest.mark.parametrize("phase_decoder", ["shared", "separate"])
def test_linear_shortcut_adds_a_linear_path_and_survives_enable_phase(phase_decoder: str) -> None:
    torch.manual_seed(0)
    config = Level1Config.preset("debug", with_phase=False, linear_shortcut=True)
    model = Level1Autoencoder(config).eval()
    configure_noise(model, enabled=False)
    assert (model.encoder.shortcut.in_channels, model.encoder.shortcut.out_channels) == (513, 16)
    assert (model.decoder.shortcut.in_channels, model.decoder.shortcut.out_channels) == (16, 513)
    features = torch.rand(2, 513, 64) * 2 - 1
    with torch.inference_mode():
        latents = model.encode(features)
        without = torch.tanh(model.encoder.out(model.encoder.blocks(features)))
        assert not torch.allclose(latents, without)  # the shortcut is in the sum
        magnitude, _ = model.decoder(latents)
    model.decoder.enable_phase(phase_decoder)
    model.eval()
    with torch.inference_mode():
        magnitude2, phase = model.decoder(latents)
    assert torch.equal(magnitude, magnitude2) and phase.shape == (2, 513, 64)
    expected = 1026 if phase_decoder == "shared" else 513
    assert model.decoder.shortcut.out_channels == expected
    # the saved config rebuilds the same layout (what loading a checkpoint does)
    assert Level1Decoder(model.decoder.config).state_dict().keys() == model.decoder.state_dict().keys()


def test_phase1_decoder_cannot_make_waves() -> None:
    model = Level1Autoencoder(Level1Config.preset("debug", with_phase=False)).eval()
    with pytest.raises(ValueError, match="enable_phase"):
        model.decode_to_wave(torch.zeros(1, 16, 64))


# --- level 2 (A7, A8) -----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", LEVEL2_PRESETS)
def test_level2_encoder_a7(preset: str) -> None:
    model = _level2(preset)
    config = model.config
    latents = torch.rand(2, config.input_dim, 128) * 2 - 1
    with torch.inference_mode():
        codes = model.encode(latents)
        assert codes.shape == (2, config.latent_dim, 128 // config.ratio)
        assert codes.abs().max() < 1
        windows = split_windows(codes, config.decoder_input_frames)
        assert windows.shape == (2 * 128 // 64, config.latent_dim, config.decoder_input_frames)
        for frame in (config.ratio, config.ratio - 1, 77):  # frame 8 -> output 1 only, frame 7 -> output 0
            perturbed = latents.clone()
            perturbed[:, :, frame] -= 0.3
            changed = (model.encode(perturbed) != codes).any(dim=(0, 1))
            assert changed.nonzero().flatten().tolist() == [frame // config.ratio]
    _assert_no_padding(model.encoder)
    assert _receptive_field(model.encoder) == config.ratio


@pytest.mark.parametrize("preset", LEVEL2_PRESETS)
def test_level2_decoder_a8(preset: str) -> None:
    model = _level2(preset)
    config = model.config
    configure_noise(model, enabled=False)
    with torch.inference_mode():
        out = model.decoder(torch.rand(3, config.latent_dim, config.decoder_input_frames) * 2 - 1)
        long = model.decode(torch.rand(2, config.latent_dim, 5 * config.decoder_input_frames) * 2 - 1)
    assert out.shape == (3, config.input_dim, 64)
    assert out.abs().max() < 1 and out.std() > 0
    assert long.shape == (2, config.input_dim, 5 * 64)


def test_level2_linear_shortcut_adds_a_linear_path_and_keeps_chunks_independent() -> None:
    torch.manual_seed(0)
    config = Level2Config.preset("debug", linear_shortcut=True)
    model = Level2Autoencoder(config).eval()
    configure_noise(model, enabled=False)
    latents = torch.rand(2, config.input_dim, 128) * 2 - 1
    codes2 = torch.rand(2, config.latent_dim, config.decoder_input_frames) * 2 - 1
    with torch.inference_mode():
        codes, decoded = model.encode(latents), model.decoder(codes2)
        assert codes.shape == (2, config.latent_dim, 16) and decoded.shape == (2, config.input_dim, 64)
        for frame in (config.ratio, config.ratio - 1, 77):  # still one chunk of `ratio` frames per code
            perturbed = latents.clone()
            perturbed[:, :, frame] -= 0.3
            changed = (model.encode(perturbed) != codes).any(dim=(0, 1))
            assert changed.nonzero().flatten().tolist() == [frame // config.ratio]
        for shortcut in (model.encoder.shortcut, model.decoder.shortcut):  # the shortcut is in the sum
            shortcut.weight.zero_()
            shortcut.bias.zero_()
        assert not torch.allclose(model.encode(latents), codes)
        assert not torch.allclose(model.decoder(codes2), decoded)
    assert Level2Config.preset("small").linear_shortcut and not Level2Config.preset("techno").linear_shortcut


def test_level2_techno_table_shapes() -> None:
    """Enc2 time lengths 8 -> 8, 6, 4, 4, 2, 1 and Dec2 8 -> 8, 16, 32, 32, 64 (spec §4.1-4.2)."""
    config = Level2Config.preset("techno")
    encoder, decoder = Level2Encoder(config).eval(), Level2Decoder(config).eval()
    lengths, x = [], torch.zeros(1, 128, 8)
    with torch.inference_mode():
        for block in encoder.blocks:
            x = block(x)
            lengths.append((x.shape[1], x.shape[2]))
        assert lengths == [(256, 8), (512, 6), (640, 4), (640, 4), (768, 2), (768, 1)]
        lengths, x = [], torch.zeros(1, 64, 8)
        for block in decoder.blocks:
            x = block(x)
            lengths.append((x.shape[1], x.shape[2]))
    assert lengths == [(768, 8), (768, 16), (640, 32), (512, 32), (384, 64)]


def test_level1_unet_shapes() -> None:
    config = Level1Config()
    decoder = Level1Decoder(config).eval()
    with torch.inference_mode():
        g = [decoder.stem(torch.zeros(1, 128, 64))]
        for down in decoder.down:
            g.append(down(g[-1]))
    assert [(t.shape[1], t.shape[2]) for t in g] == [(768, 64), (512, 32), (384, 16), (320, 8)]
    assert [b.conv.out_channels for b in decoder.up] == [384, 512, 768]
    assert decoder.head.conv.out_channels == 1280 and decoder.out.out_channels == 1026
    encoder = Level1Encoder(config)
    assert [b.conv.out_channels for b in encoder.blocks] == [544, 576, 640, 704, 768]


# --- shared pieces --------------------------------------------------------------------------------


def test_add_noise_modes() -> None:
    model = _level2("debug")
    for layer in model.modules():
        if isinstance(layer, AddNoise):
            layer.scale.data.fill_(0.5)
    codes = torch.rand(1, 8, 8) * 2 - 1
    with torch.inference_mode():
        assert not torch.equal(model.decoder(codes), model.decoder(codes))  # sampled at inference
        configure_noise(model, generator=torch.Generator().manual_seed(1))
        first = model.decoder(codes)
        configure_noise(model, generator=torch.Generator().manual_seed(1))
        assert torch.equal(first, model.decoder(codes))
        configure_noise(model, enabled=False)
        assert torch.equal(model.decoder(codes), model.decoder(codes))


def test_batchnorm_and_init_follow_reference() -> None:
    model = Level1Autoencoder(Level1Config())
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert bns and all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)
    conv = model.decoder.head.conv  # 768 -> 1280, k1: He-uniform bound sqrt(6 / 768)
    bound = (6 / 768) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.95 * bound
    assert torch.all(conv.bias == 0)
    assert all(torch.all(m.scale == 0) for m in model.modules() if isinstance(m, AddNoise))


def test_phase1_training_reduces_reconstruction_loss() -> None:
    torch.manual_seed(0)
    model = Level1Autoencoder(Level1Config.preset("debug", with_phase=False))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.5, 0.999))
    features = torch.rand(2, 513, 64) * 1.2 - 1
    losses = []
    for _ in range(12):
        magnitude, _ = model.decode(model.encode(features))
        loss = (magnitude - features).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize(("cls", "preset"), [(Level1Config, "debug"), (Level1Config, "default")] + [
    (Level2Config, p) for p in LEVEL2_PRESETS
])
def test_config_json_round_trip(cls, preset: str) -> None:
    config = cls.preset(preset)
    assert config_from_dict(cls, config_to_dict(config)) == config


def test_bad_configs_raise() -> None:
    with pytest.raises(ConfigError, match="reduces a chunk of 16 frames to 9"):
        Level2Config(ratio=16)
    with pytest.raises(ConfigError, match="up-samples by 8, ratio is 16"):
        Level2Config.preset("piano", decoder_strides=(1, 2, 2, 1, 1, 2))
    with pytest.raises(ConfigError, match="unknown level-2 preset"):
        Level2Config.preset("jazz")
    with pytest.raises(ConfigError, match="multiple of 8"):
        Level1Config(window_frames=60)
