"""Latent-GAN training speed: optimizer steps per second of the full recipe (critic + R1 + reconstruction
head + generator + EMA) for each preset, random weights and random latents (speed does not depend on values).

Steps run exactly as ``orchestrion musika train-gan`` runs them (the shared trainer's step function),
without data loading and checkpoints. The latent width is 2 × 64 (a techno-sized level-2 autoencoder)
unless ``--latent-dim`` says otherwise; batch sizes are each preset's default.

Usage:  python benchmarks/musika_gan_train_speed.py [--presets small debug] [--threads 2] [--steps 10]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.latent_gan import LatentGANConfig, LatentGANRunConfig
from orchestrion.musika.train_gan import autoencoder_shell, build_modules, build_optimizers, make_step_fn


class _Context:
    """The slice of the trainer's StepContext the step function uses, on one CPU process."""

    def __init__(self, modules, optimizers):
        self.modules, self.optimizers, self.step, self.rank = modules, optimizers, 0, 0

    def module(self, name):
        return self.modules[name]

    raw = module

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()

    def optimize(self, name, loss):
        optimizer = self.optimizers[name]
        params = [p for g in optimizer.param_groups for p in g["params"]]
        torch.autograd.backward(loss, inputs=params)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def steps_per_second(preset: str, latent_dim: int, steps: int) -> tuple[float, int]:
    config = LatentGANConfig.preset_config(preset, latent_dim=latent_dim)
    run = LatentGANRunConfig(
        gan=config,
        autoencoder=AutoencoderTrainingConfig.preset_config("debug", level=2, phase=2),
        autoencoder_digest="-",
        autoencoder_run="-",
        conditions={},
        frames_per_second=22050 / 2048,
    )
    modules = build_modules(run, autoencoder_shell(run))
    ctx = _Context(modules, build_optimizers(config, modules))
    step = make_step_fn(run, autoencoder_shell(run))
    batch = {"latents": torch.rand(config.batch_size, config.latent_channels, config.latlen) * 2 - 1,
             "conditions": torch.zeros(config.batch_size, 0, config.latlen)}
    step(ctx, batch)  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step(ctx, batch)
    return steps / (time.perf_counter() - started), config.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small", "debug"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--latent-dim", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    for preset in args.presets:
        rate, batch = steps_per_second(preset, args.latent_dim, args.steps)
        print(f"{preset:>7}: {rate:6.2f} steps/s  (batch {batch}, {3600 * rate:,.0f} steps/hour)")


if __name__ == "__main__":
    main()
