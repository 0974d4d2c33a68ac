"""Arbitrary-length Musika codec: chunked encode/decode, latent files, fused inference."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from orchestrion.audio.phase import random_phase
from orchestrion.audio.spectral import SAMPLE_RATE, denormalise_magnitude, features_to_wave, istft, stft
from orchestrion.errors import ConfigError, DataError
from orchestrion.musika import fast as fast_module
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.codec import (
    PAD,
    LatentFile,
    decode_latent_file,
    decode_latents,
    encode_audio,
    encode_to_latent_file,
    fuse_for_inference,
    iter_decode,
    load_latents,
    padded_frames,
    read_latent_index,
    save_latents,
    weights_digest,
    write_latent_index,
)
from orchestrion.musika.config import Level1Config, Level2Config
from orchestrion.musika.fast import FP32_TOLERANCE, freeze, native_bf16
from orchestrion.musika.layers import AddNoise, configure_noise


def _randomise_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and noise scales, so folding and noise are really exercised."""
    generator = torch.Generator().manual_seed(1)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm1d):
            layer.running_mean.normal_(0.0, 0.3, generator=generator)
            layer.running_var.uniform_(0.5, 2.0, generator=generator)
            layer.weight.data.uniform_(0.5, 1.5, generator=generator)
            layer.bias.data.normal_(0.0, 0.3, generator=generator)
        if isinstance(layer, AddNoise):
            layer.scale.data.fill_(0.2)
    return model.eval()


@pytest.fixture(scope="module")
def models() -> tuple[Level1Autoencoder, Level2Autoencoder]:
    torch.manual_seed(0)
    level1 = _randomise_statistics(Level1Autoencoder(Level1Config.preset("debug")))
    level2 = _randomise_statistics(Level2Autoencoder(Level2Config.preset("debug")))
    return level1, level2


def assert_within_tolerance(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """The project's one closeness bound for float32 rewrites: FP32_TOLERANCE of the expected peak."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=FP32_TOLERANCE * float(expected.abs().max()))


def _music(seconds: float, channels: int = 2) -> torch.Tensor:
    t = torch.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    left = 0.3 * torch.sin(2 * math.pi * 220 * t) + 0.1 * torch.sin(2 * math.pi * 1760 * t) * (t % 0.5 < 0.1)
    right = 0.3 * torch.sin(2 * math.pi * 330 * t + 1.0)
    return torch.stack([left, right][:channels])


def test_padded_frames() -> None:
    assert padded_frames(1) == 64
    assert padded_frames(64 * 256 - PAD) == 64  # 256·K >= L + 768 exactly
    assert padded_frames(64 * 256 - PAD + 1) == 128


@pytest.mark.parametrize("with_level2", [False, True])
def test_chunked_encoding_is_exact(models, with_level2: bool) -> None:
    level1, level2 = models
    wave = _music(7.3)
    level2 = level2 if with_level2 else None
    one_shot = encode_audio(wave, level1, level2, chunk_seconds=1000)
    chunked = encode_audio(wave, level1, level2, chunk_seconds=0.5)  # one 64-frame window per chunk
    frames = padded_frames(wave.shape[-1])
    expected = (2, 8, frames // 8) if with_level2 else (2, 16, frames)
    assert one_shot.shape == chunked.shape == expected
    torch.testing.assert_close(chunked, one_shot, rtol=0, atol=1e-6)
    # channels are independent: encoding the right channel alone gives the same latents
    torch.testing.assert_close(encode_audio(wave[1:], level1, level2), one_shot[1:], rtol=0, atol=1e-6)


def test_long_file_chunked_decoding_equals_one_shot(models) -> None:
    level1, level2 = models
    wave = _music(8.0)
    latents = encode_audio(wave, level1, level2, chunk_seconds=2.0)
    blockwise = decode_latents(latents, level1, level2, noise=False, block_windows=1, clip=False)
    with torch.inference_mode():
        configure_noise(level1, enabled=False)
        configure_noise(level2, enabled=False)
        magnitude, phase = level1.decode(level2.decode(latents))
        configure_noise(level1)
        configure_noise(level2)
        reference = features_to_wave(magnitude, phase)  # a single iSTFT over the whole sequence
    assert blockwise.shape == reference.shape == (2, 256 * latents.shape[-1] * 8 + 768)
    torch.testing.assert_close(blockwise, reference, rtol=0, atol=1e-5)

    # no jump at block borders: differences across the 16384-sample block borders look like the interior
    diff = blockwise[:, 1:] - blockwise[:, :-1]
    borders = torch.arange(16384, blockwise.shape[-1] - 1, 16384) - 1
    interior_scale = diff.abs().quantile(0.999)
    assert diff[:, borders].abs().max() <= interior_scale


def test_decode_restores_length_and_clips(models) -> None:
    level1, level2 = models
    wave = _music(3.1)
    latent_file = encode_to_latent_file(wave, level1, level2, source="tone.wav")
    decoded = decode_latent_file(latent_file, level1, level2, noise=False)
    assert decoded.shape == wave.shape
    assert decoded.abs().max() <= 1.0
    unclipped = decode_latent_file(latent_file, level1, level2, noise=False, clip=False)
    assert torch.equal(decoded, unclipped.clamp(-1, 1))


def test_streaming_pieces_concatenate(models) -> None:
    level1, _ = models
    latents = torch.rand(2, 16, 5 * 64) * 2 - 1
    pieces = list(iter_decode(latents, level1, block_windows=2, noise=False))
    assert [p.shape[-1] for p in pieces] == [2 * 64 * 256, 2 * 64 * 256, 64 * 256, PAD]
    whole = decode_latents(latents, level1, noise=False, clip=False, block_windows=100)
    torch.testing.assert_close(torch.cat(pieces, dim=-1), whole, rtol=0, atol=1e-5)


def test_noise_seed_and_switch(models) -> None:
    level1, level2 = models
    latents = torch.rand(1, 8, 16) * 2 - 1
    first = decode_latents(latents, level1, level2, seed=5)
    assert torch.equal(first, decode_latents(latents, level1, level2, seed=5))
    assert not torch.equal(first, decode_latents(latents, level1, level2, seed=6))
    assert torch.equal(
        decode_latents(latents, level1, level2, noise=False), decode_latents(latents, level1, level2, noise=False)
    )
    # the models' own noise settings are restored afterwards
    assert all(layer.enabled and layer.generator is None for layer in level1.modules() if isinstance(layer, AddNoise))


@pytest.mark.parametrize("preset", ["debug", "techno", "piano"])
def test_fused_model_equals_unfused(preset: str) -> None:
    torch.manual_seed(0)
    level1 = _randomise_statistics(Level1Autoencoder(Level1Config.preset("debug" if preset == "debug" else "default")))
    level2 = _randomise_statistics(Level2Autoencoder(Level2Config.preset(preset)))
    fused1, fused2 = fuse_for_inference(level1), fuse_for_inference(level2)
    for model in (level1, level2, fused1, fused2):
        configure_noise(model, enabled=False)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in (*fused1.modules(), *fused2.modules()))
    features = torch.rand(2, 513, 64) * 2 - 1
    codes = torch.rand(2, level2.config.latent_dim, level2.config.decoder_input_frames) * 2 - 1
    with torch.inference_mode():
        assert_within_tolerance(fused1.encode(features), level1.encode(features))
        assert_within_tolerance(fused2.decode(codes), level2.decode(codes))
        z = torch.rand(2, level1.config.latent_dim, 64) * 2 - 1
        for fused_out, out in zip(fused1.decode(z), level1.decode(z), strict=True):
            assert_within_tolerance(fused_out, out)
    # noise survives folding (per-channel scale): same seed -> same output as the unfused model
    for model in (level1, level2, fused1, fused2):
        configure_noise(model)
    a = decode_latents(codes, level1, level2, seed=3, clip=False)
    b = decode_latents(codes, fused1, fused2, seed=3, clip=False)
    assert_within_tolerance(b, a)


def test_training_mode_is_refused(models) -> None:
    level1, _ = models
    trainable = Level1Autoencoder(Level1Config.preset("debug"))
    with pytest.raises(ValueError, match="training mode"):
        encode_audio(torch.zeros(1, 5000), trainable)
    with pytest.raises(ValueError, match="multiple of the 64-frame window"):
        decode_latents(torch.zeros(1, 16, 65), level1)


def test_latent_file_round_trip_and_index(models, tmp_path) -> None:
    level1, level2 = models
    wave = _music(2.0, channels=1)
    digest = weights_digest(level1, level2)
    latent_file = encode_to_latent_file(wave, level1, level2, source="a.wav", checkpoint=digest)
    save_latents(tmp_path / "a.safetensors", latent_file)
    save_latents(tmp_path / "b.safetensors", LatentFile(torch.zeros(2, 128, 10), level=1, hop=256, num_samples=3000))
    loaded = load_latents(tmp_path / "a.safetensors")
    assert torch.equal(loaded.latents, latent_file.latents)
    assert (loaded.level, loaded.hop, loaded.num_samples, loaded.offset) == (2, 2048, wave.shape[-1], PAD)
    assert (loaded.source, loaded.checkpoint, loaded.sample_rate) == ("a.wav", digest, 22050)
    assert loaded.seconds == pytest.approx(2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]  # no temporaries

    index_path = write_latent_index(tmp_path)
    entries = read_latent_index(tmp_path)
    assert [e["file"] for e in entries] == ["a.safetensors", "b.safetensors"]
    assert entries[1] == {
        "file": "b.safetensors", "level": 1, "sample_rate": 22050, "hop": 256, "num_samples": 3000,
        "offset": PAD, "channels": 2, "dim": 128, "frames": 10, "source": "", "checkpoint": "",
    }
    assert json.loads(index_path.read_text())["format_version"] == 1


def test_bad_latent_files_raise_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_latents(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(DataError, match=r"garbage\.safetensors"):
        load_latents(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weights": torch.zeros(3)}, str(foreign))
    with pytest.raises(DataError, match="not an orchestrion latent file"):
        load_latents(foreign)
    future = tmp_path / "future.safetensors"
    save_file(
        {"latents": torch.zeros(1, 2, 3)}, str(future),
        metadata={"format": "orchestrion-musika-latents", "format_version": "99"},
    )
    with pytest.raises(DataError, match="version '99' is not supported"):
        load_latents(future)
    with pytest.raises(DataError, match="latent index not found"):
        read_latent_index(tmp_path)


def _snr_db(reference: torch.Tensor, test: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).sum() / (reference - test).pow(2).sum()))


@pytest.mark.parametrize("preset", ["debug", "techno", "piano", "small"])  # small: Dec2's linear shortcut
def test_fast_fp32_decoding_equals_unoptimised(preset: str) -> None:
    torch.manual_seed(0)
    level1 = _randomise_statistics(Level1Autoencoder(Level1Config.preset("debug" if preset == "debug" else "default")))
    level2 = _randomise_statistics(Level2Autoencoder(Level2Config.preset(preset)))
    codes = torch.rand(2, level2.config.latent_dim, 3 * level2.config.decoder_input_frames) * 2 - 1
    for noise in (False, True):  # with noise: the same seed draws the same noise in both paths
        plain = decode_latents(codes, level1, level2, noise=noise, seed=4, clip=False, block_windows=2)
        fast = decode_latents(codes, level1, level2, noise=noise, seed=4, clip=False, block_windows=2, fast=True)
        assert fast.shape == plain.shape == (2, 3 * 64 * 256 + 768)
        assert_within_tolerance(fast, plain)
    # level-1 latents only (no Dec2), streaming pieces included
    z = torch.rand(1, level1.config.latent_dim, 128) * 2 - 1
    plain_pieces = list(iter_decode(z, level1, noise=False, block_windows=1))
    fast_pieces = list(iter_decode(z, level1, noise=False, block_windows=1, fast=True))
    assert [p.shape for p in fast_pieces] == [p.shape for p in plain_pieces]
    for fast_piece, plain_piece in zip(fast_pieces, plain_pieces, strict=True):
        torch.testing.assert_close(fast_piece, plain_piece, rtol=0, atol=FP32_TOLERANCE * float(fast.abs().max()))


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no bfloat16 kernels in oneDNN (AVX2 only)")
def test_fast_bf16_decoding_is_close_to_fp32() -> None:
    """bf16 is opt-in and lossy: its waveform must stay within a stated SNR of the float32 model.

    Threshold: >= 32 dB for both, and "bf16-mixed" (fp32 output conv) must beat "bf16". These random
    full-size weights with strong BatchNorm statistics give ~35.6 and ~36.4 dB; the benchmark's
    milder statistics ~41 and ~45 dB.
    """
    torch.manual_seed(0)
    level1 = _randomise_statistics(Level1Autoencoder(Level1Config()))
    level2 = _randomise_statistics(Level2Autoencoder(Level2Config.preset("techno")))
    codes = torch.rand(2, 64, 32) * 2 - 1
    plain = decode_latents(codes, level1, level2, noise=False, clip=False)
    snr = {
        precision: _snr_db(plain, decode_latents(codes, level1, level2, noise=False, clip=False, fast=True,
                                                 precision=precision))
        for precision in ("bf16", "bf16-mixed")
    }
    assert snr["bf16"] >= 32.0
    assert snr["bf16-mixed"] >= 32.0
    assert snr["bf16-mixed"] > snr["bf16"]


def test_unknown_precisions_and_bf16_without_bf16_instructions_are_refused(monkeypatch) -> None:
    """On an AVX2-only CPU oneDNN has no bf16 convolutions: a clear error before any decoding, not
    oneDNN's RuntimeError from inside the first conv."""
    torch.manual_seed(0)
    level1 = Level1Autoencoder(Level1Config.preset("debug")).eval()
    codes = torch.rand(1, 16, 64) * 2 - 1
    with pytest.raises(ValueError, match="precision must be one of"):
        decode_latents(codes, level1, fast=True, precision="fp16")
    monkeypatch.setattr(fast_module, "native_bf16", lambda: False)
    for precision in ("bf16", "bf16-mixed"):
        with pytest.raises(ConfigError, match=f"precision '{precision}' needs a CPU with bfloat16 instructions"):
            decode_latents(codes, level1, fast=True, precision=precision)
    assert decode_latents(codes, level1, fast=True, precision="fp32").shape[-1] > 0


def test_fast_decoding_sees_in_place_weight_edits_and_a_frozen_decoder_keeps_its_snapshot() -> None:
    torch.manual_seed(0)
    level1 = _randomise_statistics(Level1Autoencoder(Level1Config.preset("debug")))
    level2 = _randomise_statistics(Level2Autoencoder(Level2Config.preset("debug")))
    codes = torch.rand(1, level2.config.latent_dim, 8) * 2 - 1
    frozen = freeze(level1, level2)
    before = decode_latents(codes, level1, level2, noise=False, fast=True)
    assert torch.equal(decode_latents(codes, level1, level2, noise=False, decoder=frozen), before)
    # an in-place edit that neither moves the storage nor bumps the version counter (as an EMA update does)
    level1.decoder.out.weight.data.mul_(0.5)
    level1.decoder.head.bn.running_mean.data.add_(0.5)
    after = decode_latents(codes, level1, level2, noise=False, fast=True)
    assert not torch.equal(before, after)
    assert_within_tolerance(after, decode_latents(codes, level1, level2, noise=False))
    # the decoder the caller froze is a snapshot: it still decodes with the weights it was made from
    assert torch.equal(decode_latents(codes, level1, level2, noise=False, decoder=frozen), before)
    assert_within_tolerance(decode_latents(codes, level1, level2, noise=False, decoder=freeze(level1, level2)), after)


def _magnitude_only_model() -> Level1Autoencoder:
    torch.manual_seed(0)
    return _randomise_statistics(Level1Autoencoder(Level1Config.preset("debug", with_phase=False)))


def test_griffin_lim_phase_makes_audio_from_a_magnitude_only_model() -> None:
    level1 = _magnitude_only_model()
    z = torch.rand(2, 16, 3 * 64) * 2 - 1
    with pytest.raises(ValueError, match="phase='griffin-lim'"):
        decode_latents(z, level1)
    with pytest.raises(ValueError, match="phase must be one of"):
        decode_latents(z, level1, phase="zero")
    options = {"phase": "griffin-lim", "seed": 3, "block_windows": 1, "clip": False}
    plain = decode_latents(z, level1, **options)
    assert plain.shape == (2, 3 * 64 * 256 + 768)
    assert torch.equal(plain, decode_latents(z, level1, **options))
    assert not torch.equal(plain, decode_latents(z, level1, **{**options, "seed": 4}))
    # the fast decoder makes the same magnitude (within float rounding, which 32 Griffin-Lim rounds amplify
    # in a few samples) and Griffin-Lim starts from the same phase
    fast = decode_latents(z, level1, fast=True, **options)
    assert float((fast - plain).norm() / plain.norm()) < 1e-4
    # the audio has the decoded magnitude, closer than with a random phase (an untrained decoder's magnitude is
    # far from any real spectrogram: measured 0.67 against 0.80)
    with torch.inference_mode():
        configure_noise(level1, enabled=False)
        magnitude = denormalise_magnitude(level1.decode_magnitude(z))
        configure_noise(level1)
    quiet = decode_latents(z, level1, **{**options, "block_windows": 2}, noise=False)
    random_phase_wave = istft(magnitude, random_phase(magnitude, torch.Generator().manual_seed(0)))

    def inconsistency(wave: torch.Tensor) -> float:
        return float((stft(wave).abs() - magnitude).norm() / magnitude.norm())

    assert inconsistency(quiet) < 0.9 * inconsistency(random_phase_wave)


def test_griffin_lim_phase_skips_a_separate_phase_network() -> None:
    """Griffin-Lim on a phase-2 model with a phase U-Net of its own equals Griffin-Lim on its magnitude alone."""
    magnitude_only = _magnitude_only_model()
    separate = copy.deepcopy(magnitude_only)
    separate.decoder.enable_phase("separate")
    separate.eval()
    z = torch.rand(1, 16, 2 * 64) * 2 - 1
    for fast in (False, True):
        options = {"phase": "griffin-lim", "seed": 1, "block_windows": 1, "fast": fast}
        assert torch.equal(decode_latents(z, separate, **options), decode_latents(z, magnitude_only, **options))
    with pytest.raises(ValueError, match="magnitude_only=True"):
        decode_latents(z, separate, decoder=freeze(separate, magnitude_only=True))
