"""Musika codec speed on CPU: encode and decode of ~120 s of stereo 22.05 kHz audio, in x real-time.

Full-size techno and piano configs with random weights (speed does not depend on the values).
Decoding = level-2 latents -> Dec2 -> Dec1 -> iSTFT, timed per stage like the reference numbers;
"unoptimised" is the plain eval model, "optimised" the BatchNorm-folded model of
``fuse_for_inference`` (float32, equal outputs), and "optimised-bf16" the same in bfloat16 (opt-in,
quality cost printed as the SNR of its waveform against the float32 one).

Usage:  python benchmarks/musika_codec_speed.py [--seconds 120] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from orchestrion.audio.spectral import SAMPLE_RATE, features_to_wave
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.codec import encode_audio, fuse_for_inference, padded_frames
from orchestrion.musika.config import Level1Config, Level2Config

REFERENCE = "TF 2.15 reference: ~119 s stereo decoded in ~1.8 s (L2 dec 0.47 s, L1 dec 1.07 s, iSTFT 0.28 s) = ~65x"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
    """Time Dec2, Dec1 and the iSTFT separately on all windows and both channels at once."""
    dtype = next(level1.parameters()).dtype
    with torch.inference_mode():
        t2, z = timed(lambda: level2.decode(latents.to(dtype)), repeats)
        t1, (magnitude, phase) = timed(lambda: level1.decode(z), repeats)
        magnitude, phase = magnitude.float(), phase.float()
        ti, wave = timed(lambda: features_to_wave(magnitude, phase), repeats)
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

    results = {}
    variants = {
        "unoptimised": (level1, level2),
        "optimised": (fuse_for_inference(level1), fuse_for_inference(level2)),
        "optimised-bf16": (fuse_for_inference(level1, torch.bfloat16), fuse_for_inference(level2, torch.bfloat16)),
    }
    for name, (l1, l2) in variants.items():
        for model in (l1, l2):  # deterministic decoding so the variants can be compared
            for layer in model.modules():
                if hasattr(layer, "enabled"):
                    layer.enabled = False
        stages, wave = decode_stages(l1, l2, latents, repeats)
        results[name] = wave
        total = sum(wall for wall, _ in stages.values())
        cpu = sum(cpu for _, cpu in stages.values()) / torch.get_num_threads()
        split = "  ".join(f"{k} {wall:.3f} s" for k, (wall, _) in stages.items())
        extra = ""
        if name != "unoptimised":
            extra = f"  max|diff| {float((wave - results['unoptimised']).abs().max()):.2e}"
            extra += f"  SNR {snr_db(results['unoptimised'], wave):.1f} dB"
        print(
            f"decode {name:15s} {split}  total {total:.3f} s = {audio_seconds / total:6.1f}x real-time "
            f"(CPU/threads {cpu:.3f} s = {audio_seconds / cpu:6.1f}x){extra}"
        )

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
    print(f"CPU: {cpu_model()}  ({os.cpu_count()} logical cores, load average {load:.2f})")
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}")
    print(REFERENCE)
    for preset in args.presets:
        run(preset, args.seconds, args.repeats)


if __name__ == "__main__":
    main()
