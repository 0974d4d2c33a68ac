"""Musika codec speed on CPU: encode and decode of ~120 s of stereo 22.05 kHz audio, in x real-time.

Full-size techno and piano configs with random weights (speed does not depend on the values).
Decoding = level-2 latents -> Dec2 -> Dec1 -> iSTFT, timed per stage (all windows of both channels
in one batch) like the reference numbers, and end to end as ``decode_latents`` streams it (blocks of
32 windows). Configurations, side by side:

  unoptimised      the plain eval models (``decode_latents(..., fast=False)``, the default)
  fast fp32        ``fast=True``: FastDecoder, BatchNorm folded, channels-last oneDNN convs,
                   frame-major block-wise iSTFT; equal to unoptimised within float rounding
                   (FP32_TOLERANCE = 1e-5 of the peak, tested in tests/musika/test_fast_closeness.py)
  fast bf16        ``fast=True, precision="bf16"``: opt-in, lossy (SNR vs unoptimised printed)
  fast bf16-mixed  as bf16 with Dec1's output conv in float32: opt-in, lossy

Noise is off so the waveforms can be compared (max |diff| and SNR against unoptimised). A last line
times fast fp32 with ``phase="griffin-lim"`` (32 Griffin-Lim rounds on the decoded magnitude instead
of the learned phase; the separate phase U-Net, where there is one, is not run) end to end.

Usage:  python benchmarks/musika_codec_speed.py [--seconds 120] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from orchestrion.audio.spectral import (
    SAMPLE_RATE,
    _istft_differentiable,
    denormalise_magnitude,
    features_to_wave,
    frames_to_wave,
)
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.codec import decode_latents, encode_audio, fuse_for_inference, padded_frames
from orchestrion.musika.config import Level1Config, Level2Config
from orchestrion.musika.fast import FastDecoder
from orchestrion.musika.layers import configure_noise
from orchestrion.system import cpu_description

REFERENCE = (
    "reference (TF 2.15): ~119 s stereo decoded in ~1.8 s (L2 dec 0.47 s, L1 dec 1.07 s, iSTFT 0.28 s) = ~65x"
)




def timed(fn, repeats: int) -> tuple[tuple[float, float], object]:
    """(wall, process CPU) seconds of the fastest of ``repeats`` runs after one warm-up.

    On a shared machine the wall time is inflated by other processes; CPU time / threads estimates
    the wall time the same work would take with the threads running uncontended.
    """
    result = fn()
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best, result


def decode_stages(level1, level2, latents: torch.Tensor, repeats: int) -> tuple[dict, torch.Tensor]:
    """Unoptimised path: time Dec2, Dec1 and the iSTFT separately on all windows and both channels."""
    with torch.inference_mode():
        t2, z = timed(lambda: level2.decode(latents), repeats)
        t1, (magnitude, phase) = timed(lambda: level1.decode(z), repeats)
        ti, wave = timed(lambda: features_to_wave(magnitude, phase), repeats)
    return {"L2 dec": t2, "L1 dec": t1, "iSTFT": ti}, wave


def fast_stages(decoder: FastDecoder, latents: torch.Tensor, repeats: int) -> tuple[dict, torch.Tensor]:
    """The same stages through a FastDecoder (frame-major output, no transposes between stages)."""
    n_bins = decoder.n_bins
    with torch.inference_mode():
        windows = decoder.to_windows(latents)
        t2, z = timed(lambda: decoder.run_level2(windows), repeats)
        t1, out = timed(lambda: decoder.run_level1(z), repeats)
        out = out.reshape(latents.shape[0], -1, out.shape[-1])
        ti, wave = timed(lambda: frames_to_wave(out[..., :n_bins], out[..., n_bins:]), repeats)
    return {"L2 dec": t2, "L1 dec": t1, "iSTFT": ti}, wave


def snr_db(reference: torch.Tensor, test: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).sum() / (reference - test).pow(2).sum().clamp_min(1e-20)))


def run(preset: str, seconds: float, repeats: int) -> None:
    torch.manual_seed(0)
    level1 = Level1Autoencoder(Level1Config()).eval()
    level2 = Level2Autoencoder(Level2Config.preset(preset)).eval()
    for model in (level1, level2):  # non-trivial BatchNorm statistics so folding is really exercised
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm1d):
                layer.running_var.uniform_(0.5, 2.0)
                layer.running_mean.normal_(0.0, 0.1)
    num_samples = round(seconds * SAMPLE_RATE)
    frames2 = padded_frames(num_samples) // level2.config.ratio
    latents = torch.rand(2, level2.config.latent_dim, frames2) * 2 - 1  # stereo level-2 latents
    audio_seconds = (frames2 * level2.config.hop + 768) / SAMPLE_RATE
    print(f"\n== {preset}: {frames2} level-2 frames x 2 channels = {audio_seconds:.1f} s of stereo audio ==")

    for model in (level1, level2):  # deterministic decoding so the configurations can be compared
        configure_noise(model, enabled=False)
    configs = {"unoptimised": None, "fast fp32": "fp32", "fast bf16": "bf16", "fast bf16-mixed": "bf16-mixed"}
    rows = {}
    for name, precision in configs.items():
        if precision is None:
            stages, _ = decode_stages(level1, level2, latents, repeats)
        else:
            stages, _ = fast_stages(FastDecoder(level1, level2, precision), latents, repeats)
        (end_to_end, _), streamed = timed(
            lambda p=precision: decode_latents(
                latents, level1, level2, noise=False, clip=False, fast=p is not None, precision=p or "fp32"
            ),
            repeats,
        )
        rows[name] = (stages, end_to_end, streamed)
    reference_wave = rows["unoptimised"][2]
    print(f"{'configuration':16s} {'L2 dec':>7s} {'L1 dec':>7s} {'iSTFT':>7s} {'sum':>7s} {'x RT':>6s}   "
          f"{'end-to-end':>10s} {'x RT':>6s}   {'max|diff|':>9s} {'SNR dB':>7s}")
    for name, (stages, end_to_end, wave) in rows.items():
        total = sum(wall for wall, _ in stages.values())
        split = " ".join(f"{wall:7.3f}" for wall, _ in stages.values())
        diff = float((wave - reference_wave).abs().max())
        snr = snr_db(reference_wave, wave) if diff > 0 else float("inf")
        print(f"{name:16s} {split} {total:7.3f} {audio_seconds / total:6.1f}   {end_to_end:10.3f} "
              f"{audio_seconds / end_to_end:6.1f}   {diff:9.2e} {snr:7.1f}")
    (griffin_lim, _), _ = timed(
        lambda: decode_latents(latents, level1, level2, noise=False, clip=False, fast=True, phase="griffin-lim"),
        repeats,
    )
    learned = rows["fast fp32"][1]
    print(f"fast fp32, Griffin-Lim phase (32 it.) end to end {griffin_lim:.3f} s = "
          f"{audio_seconds / griffin_lim:.1f}x real time ({griffin_lim / learned:.1f}x the learned phase's time)")
    with torch.inference_mode():
        magnitude, phase = level1.decode(level2.decode(latents))
        magnitude = denormalise_magnitude(magnitude)
        (whole, _), _ = timed(lambda: _istft_differentiable(magnitude, phase, 1024, 256), repeats)
    print(f"(for comparison: the whole-tensor iSTFT, now used only with autograd, takes {whole:.3f} s)")
    print(REFERENCE)

    variants = {"unoptimised": (level1, level2), "optimised": (fuse_for_inference(level1), fuse_for_inference(level2))}
    wave = torch.rand(2, num_samples) - 0.5
    for name in ("unoptimised", "optimised"):
        l1, l2 = variants[name]
        (wall, cpu), _ = timed(lambda l1=l1, l2=l2: encode_audio(wave, l1, l2), repeats)
        cpu /= torch.get_num_threads()
        print(
            f"encode {name:15s} total {wall:.3f} s = {seconds / wall:6.1f}x real-time "
            f"(CPU/threads {cpu:.3f} s = {seconds / cpu:6.1f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=["techno", "piano"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_description()[0]}  ({os.cpu_count()} logical cores, load average {load:.2f})")
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}")
    print(REFERENCE)
    for preset in args.presets:
        run(preset, args.seconds, args.repeats)


if __name__ == "__main__":
    main()
