"""Does bf16 generation sound like fp32 on a *trained* Musika model? (issue 9: the condition for a bf16 default)

Generates the same pieces (same seeds, same conditioning) with ``--precision fp32`` and ``bf16``
and compares them: SNR of the waveform (dB) and the log-mel / multi-scale
spectral distances of :mod:`orchestrion.evaluation.spectral_metrics`, next to the same distances
between fp32 pieces of two different seeds (what "a different piece" scores). Speeds (x real time)
are measured in the same run, side by side.

Usage:  python benchmarks/musika_bf16_fidelity.py [--model RUN] [--seconds 30] [--seeds 3] [--threads 2]
(default model: the bundled musika-default)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from orchestrion.audio.spectral import SAMPLE_RATE
from orchestrion.evaluation.spectral_metrics import log_mel_distance, multiscale_spectral_distance
from orchestrion.musika.generate import generate
from orchestrion.musika.models import load_latent_gan
from orchestrion.pretrained import model_or_default
from orchestrion.system import cpu_description


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((reference - estimate) ** 2), 1e-30)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gan = load_latent_gan(model_or_default(args.model, "musika"))
    name, flags = cpu_description(("avx512_bf16", "amx_bf16", "amx_tile"))
    print(f"CPU: {name}; bf16 units: {', '.join(flags) or 'none'}")
    print(f"model: {gan.path}; {args.seeds} pieces of {args.seconds:g} s, {args.threads} threads\n")
    outputs: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        generate(gan, 2.0, seed=99, precision=precision)  # warm-up: oneDNN kernels for this precision
        start = time.perf_counter()
        outputs[precision] = [
            generate(gan, args.seconds, seed=seed, note_density=0.2 + 0.6 * seed / max(1, args.seeds - 1),
                     precision=precision)[0]
            for seed in range(args.seeds)
        ]
        seconds[precision] = time.perf_counter() - start
    audio_seconds = args.seeds * args.seconds
    print(f"{'precision':>10} | {'x real time':>11} | {'SNR vs fp32 dB':>14} | {'log-mel vs fp32':>15} | "
          f"{'MSD vs fp32':>11}")
    for precision, pieces in outputs.items():
        pairs = list(zip(outputs["fp32"], pieces, strict=True))
        snr = min(snr_db(a, b) for a, b in pairs) if precision != "fp32" else float("inf")
        mel = max(log_mel_distance(a, b) for a, b in pairs)
        msd = max(multiscale_spectral_distance(a, b) for a, b in pairs)
        print(f"{precision:>10} | {audio_seconds / seconds[precision]:>10.0f}x | {snr:>14.1f} | {mel:>15.4f} | "
              f"{msd:>11.4f}")
    fp32 = outputs["fp32"]
    if len(fp32) > 1:
        mel = np.mean([log_mel_distance(fp32[i], fp32[i + 1]) for i in range(len(fp32) - 1)])
        msd = np.mean([multiscale_spectral_distance(fp32[i], fp32[i + 1]) for i in range(len(fp32) - 1)])
        print(f"{'another seed (fp32)':>19}: log-mel {mel:.4f}, MSD {msd:.4f}  (scale: a different piece)")
    print(f"\n(SNR: worst piece; distances: worst piece; {SAMPLE_RATE} Hz, first channel)")


if __name__ == "__main__":
    main()
