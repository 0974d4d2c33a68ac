"""One number for how close the float32 rewrites are to the plain models: FP32_TOLERANCE of the peak.

Measured where it matters: a trained model (a few hundred optimizer steps here, so weights and
BatchNorm statistics are no longer their initial values) decoding real music (a rendered Bach
chorale), on the float waveform before any PCM quantisation, with decoder noise off and on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_support import write_rendered_excerpt

from orchestrion.audio.io import load_audio
from orchestrion.audio.spectral import wave_to_features
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.codec import decode_latents, encode_audio, fuse_for_inference
from orchestrion.musika.config import Level1Config, Level2Config
from orchestrion.musika.fast import FP32_TOLERANCE, native_bf16
from orchestrion.musika.layers import AddNoise, merge_windows, split_windows

LEVEL1_STEPS, LEVEL2_STEPS = 200, 100


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Level1Autoencoder, Level2Autoencoder, torch.Tensor]:
    """Debug-size level 1 (with phase) and level 2 trained on crops of a rendered chorale; and the chorale."""
    folder = write_rendered_excerpt(tmp_path_factory.mktemp("chorale"), seconds=6.0)
    wave = torch.from_numpy(load_audio(next(Path(folder).glob("*.wav"))))  # (1, L) mono, 22.05 kHz
    features = wave_to_features(wave)  # (1, 513, frames)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    level1 = Level1Autoencoder(Level1Config.preset("debug", with_phase=True))
    level2 = Level2Autoencoder(Level2Config.preset("debug"))

    def crops() -> torch.Tensor:  # (2, 513, 64): two random one-window excerpts
        starts = torch.randint(0, features.shape[-1] - 64, (2,), generator=generator)
        return torch.cat([features[..., s : s + 64] for s in starts.tolist()])

    optimizer = torch.optim.Adam(level1.parameters(), lr=3e-3)
    losses = []
    for _ in range(LEVEL1_STEPS):
        target = crops()
        magnitude, phase = level1.decoder(split_windows(level1.encoder(target), 64))
        loss = (merge_windows(magnitude, 2) - target).abs().mean() + 0.01 * phase.abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    level1.eval()
    assert sum(losses[-20:]) < 0.5 * sum(losses[:20]), "level 1 learned"
    optimizer = torch.optim.Adam(level2.parameters(), lr=3e-3)
    for _ in range(LEVEL2_STEPS):
        with torch.no_grad():
            latents = level1.encoder(crops())  # (2, 16, 64)
        rebuilt = level2.decoder(split_windows(level2.encoder(latents), level2.config.decoder_input_frames))
        loss = (merge_windows(rebuilt, 2) - latents).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return level1, level2.eval(), wave


@pytest.mark.slow  # trains two tiny models for 300 steps (about 75 s of CPU time)
@pytest.mark.parametrize("with_level2", [False, True], ids=["level1", "level2"])
@pytest.mark.parametrize("noise", [False, True], ids=["no-noise", "noise"])
def test_fast_fp32_and_batchnorm_folding_stay_within_the_stated_tolerance(trained, with_level2, noise) -> None:
    level1, level2, wave = trained
    level2 = level2 if with_level2 else None
    latents = encode_audio(wave, level1, level2)
    plain = decode_latents(latents, level1, level2, noise=noise, seed=5, clip=False)
    peak = float(plain.abs().max())
    assert peak > 0.05, "the trained model makes audible music"
    fast = decode_latents(latents, level1, level2, noise=noise, seed=5, clip=False, fast=True)
    fused = decode_latents(
        latents, fuse_for_inference(level1), None if level2 is None else fuse_for_inference(level2),
        noise=noise, seed=5, clip=False,
    )  # fmt: skip
    assert float((fast - plain).abs().max()) <= FP32_TOLERANCE * peak
    assert float((fused - plain).abs().max()) <= FP32_TOLERANCE * peak


@pytest.mark.slow  # shares the trained models of the test above
@pytest.mark.skipif(not native_bf16(), reason="this CPU has no bfloat16 kernels in oneDNN (AVX2 only)")
@pytest.mark.parametrize("with_level2", [False, True], ids=["level1", "level2"])
def test_the_fp32_tolerance_is_tight_enough_to_tell_float32_from_bf16(trained, with_level2) -> None:
    level1, level2, wave = trained
    level2 = level2 if with_level2 else None
    latents = encode_audio(wave, level1, level2)
    plain = decode_latents(latents, level1, level2, seed=5, clip=False)
    bf16 = decode_latents(latents, level1, level2, seed=5, clip=False, fast=True, precision="bf16")
    assert float((bf16 - plain).abs().max()) > 10 * FP32_TOLERANCE * float(plain.abs().max())


@pytest.mark.parametrize(
    "phase_decoder,phase_output",
    [("shared", "angle"), ("separate", "angle"), ("separate", "atan2"), ("separate", "demodulated")],
)
@pytest.mark.parametrize("linear_shortcut", [False, True], ids=["unet", "unet+shortcut"])
def test_fast_decoder_runs_every_level1_layout_like_the_plain_model(
    phase_decoder: str, phase_output: str, linear_shortcut: bool
) -> None:
    """A separate phase U-Net (Level1Config.phase_decoder="separate", its phase as an angle, as the
    atan2 of (real, imaginary) pairs, or demodulated) and the linear shortcut: the fast path gives the same magnitude
    and phase, noise drawn in the same order (magnitude U-Net first)."""
    torch.manual_seed(0)
    config = Level1Config.preset(
        "debug", phase_decoder=phase_decoder, phase_output=phase_output, linear_shortcut=linear_shortcut
    )
    level1 = Level1Autoencoder(config).eval()
    for layer in level1.modules():
        if isinstance(layer, AddNoise):
            torch.nn.init.constant_(layer.scale, 0.1)  # noise on, so its draw order matters
    latents = torch.rand(1, 16, 128) * 2 - 1
    plain = decode_latents(latents, level1, None, noise=True, seed=5, clip=False)
    fast = decode_latents(latents, level1, None, noise=True, seed=5, clip=False, fast=True)
    peak = float(plain.abs().max())
    assert peak > 1e-3
    assert float((fast - plain).abs().max()) <= FP32_TOLERANCE * peak
