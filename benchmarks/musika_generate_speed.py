"""Musika generation speed, end to end, in x real time: noise -> generator -> Dec2 -> Dec1 -> iSTFT.

Full-size techno (GAN seq_len 128, 64 dims; AE ratio 8) and piano (seq_len 64, 32 dims; AE
ratio 16) with random weights (speed does not depend on the values), ~120 s of stereo 22.05 kHz
audio through :func:`orchestrion.musika.generate.generate` exactly as users call it: all
generator segments in one batched pass, decoder noise keyed by position, the fused channels-last
oneDNN decoder on the CPU, block-wise iSTFT, clipping. fp32 (the default) and bf16 side by side.

Also printed per row: the generator's share of the CPU time (it runs in float32 always), and the
latency to first audio of a :class:`~orchestrion.musika.generate.MusikaStream` (1 s blocks):
"cold" on a fresh model (builds the fused decoder and oneDNN kernels), "warm" for a new stream on
a model already used.

Reference lines: the TensorFlow reference runs 47-60x end to end on 2 threads of these machines;
the paper reports 40x on a 16-core Ryzen 3950X. Target of the issue: >= 120x on 2 cores.

Usage:  python benchmarks/musika_generate_speed.py [--seconds 120] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import numpy as np
import torch

from orchestrion.audio.spectral import SAMPLE_RATE
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.config import AutoencoderTrainingConfig, Level1Config, Level2Config
from orchestrion.musika.generate import MusikaStream, generate
from orchestrion.musika.inference import latent_digest
from orchestrion.musika.latent_gan import LatentGANConfig, LatentGANRunConfig, LatentGenerator
from orchestrion.musika.models import TrainedAutoencoder, TrainedLatentGAN
from orchestrion.system import cpu_description

REFERENCE = "reference (TF 2.15, 2 threads, these machines): 47-60x end to end; paper: 40x on 16 cores"
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")




def random_model(preset: str) -> TrainedLatentGAN:
    """A full-size latent GAN + autoencoder of ``preset`` with random weights, in memory."""
    torch.manual_seed(0)
    ae_config = AutoencoderTrainingConfig(
        level=2, phase=2, preset=preset, level1=Level1Config(), level2=Level2Config.preset(preset)
    )
    level1 = Level1Autoencoder(ae_config.level1).eval()
    level2 = Level2Autoencoder(ae_config.level2).eval()
    gan_config = LatentGANConfig.preset_config(preset)
    generator = LatentGenerator(gan_config).eval()
    autoencoder = TrainedAutoencoder(ae_config, level1, level2, path=None)
    run = LatentGANRunConfig(
        gan=gan_config, autoencoder=ae_config, autoencoder_digest=latent_digest(autoencoder),
        autoencoder_run="random", conditions={}, frames_per_second=ae_config.level2.frames_per_second,
    )
    return TrainedLatentGAN(gan_config, generator, autoencoder, {}, run, path=None)


def best_of(fn, repeats: int) -> tuple[float, float, object]:
    """(wall, process CPU) seconds of the fastest of ``repeats`` runs (after the caller's warm-up)."""
    best, result = (float("inf"), float("inf")), None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best[0], best[1], result


def generator_seconds(model: TrainedLatentGAN, seconds: float, repeats: int) -> float:
    """Process CPU time of the batched generator pass alone (float32 in every precision) for ``seconds``."""
    stream = MusikaStream(model, 0)
    segments = int(np.ceil((seconds * SAMPLE_RATE + 1536) / (model.autoencoder.level2.config.hop
                                                             * model.config.latlen)))
    stream._generate_segments(0, segments)  # warm-up
    return best_of(lambda: stream._generate_segments(0, segments), repeats)[1]


def first_audio_seconds(model: TrainedLatentGAN, precision: str) -> float:
    stream = MusikaStream(model, 1, precision=precision, block_seconds=1.0)
    next(stream)
    return stream.first_audio_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="audio per run (stereo)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", default="techno,piano")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name, flags = cpu_description(ISA_FLAGS)
    print(f"CPU: {name}; ISA: {', '.join(flags) or 'none of ' + ', '.join(ISA_FLAGS)}")
    print(f"torch {torch.__version__}, {args.threads} threads, oneDNN {torch.backends.mkldnn.is_available()}; "
          f"load average {os.getloadavg()[0]:.2f} (other processes inflate wall times; cpu/threads does not)")
    print(REFERENCE)
    print(f"{'preset':7} {'precision':9} {'audio s':>7} {'wall s':>7} {'x RT':>6} {'x RT (cpu)':>10} "
          f"{'gen %':>6} {'1st audio cold/warm s':>21} {'vs fp32':>14}")
    for preset in args.presets.split(","):
        model = random_model(preset)
        reference = None
        for precision in ("fp32", "bf16"):
            cold = first_audio_seconds(model, precision)  # first use: builds the fused decoder too
            warm = first_audio_seconds(model, precision)
            run = functools.partial(generate, model, args.seconds, seed=0, precision=precision)
            wall, cpu, audio = best_of(run, args.repeats)
            gen = generator_seconds(model, args.seconds, args.repeats) / (cpu or 1.0)
            seconds = audio.shape[-1] / SAMPLE_RATE
            if reference is None:
                reference, versus = audio, "-"
            else:
                error = audio.astype(np.float64) - reference
                snr = 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(np.sum(error**2), 1e-30))
                versus = f"SNR {snr:.1f} dB"
            print(f"{preset:7} {precision:9} {seconds:7.1f} {wall:7.2f} {seconds / wall:6.0f} "
                  f"{seconds / (cpu / args.threads):10.0f} {100 * gen:6.1f} {cold:10.2f} / {warm:.2f}  {versus:>14}")


if __name__ == "__main__":
    main()
