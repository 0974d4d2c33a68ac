"""Test helper shared by the latent-GAN tests: a tiny, valid latent-chunk folder (Interface 1).

``write_latent_chunks(folder)`` writes chunks through the same writer as ``prepare_latents``
(:func:`orchestrion.musika.latent_data.save_chunk` / :func:`build_manifest`), so a GAN test
can train on it without an autoencoder. Latents are smooth random curves in (-1, 1) with
left and right correlated but different; note density and tempo are curves in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from orchestrion.musika.latent_data import (
    CONDITION_NAMES,
    REPORT_NAME,
    build_manifest,
    chunk_name,
    save_chunk,
    write_manifest,
)

TEST_DIGEST = "0123456789abcdef"


def chunk_tensors(frames: int, latent_dim: int, seed: int, channels: int = 2) -> dict[str, torch.Tensor]:
    """One chunk's tensors: ``latents`` (channels·latent_dim, frames) and the conditioning curves (frames,)."""
    rng = np.random.default_rng(seed)
    # smooth in time (cumulative sum of noise), squashed into (-1, 1) like the encoder's tanh output
    walk = np.cumsum(rng.normal(0.0, 0.3, (latent_dim, frames)), axis=1)
    left = np.tanh(walk)
    right = np.tanh(walk + rng.normal(0.0, 0.3, (latent_dim, frames)))
    latents = np.concatenate([left, right][:channels]).astype(np.float32)
    t = np.arange(frames) / max(frames - 1, 1)
    density = 0.5 + 0.4 * np.sin(2 * math.pi * (t + rng.uniform()))
    tempo = np.full(frames, rng.uniform(0.2, 0.8))
    return {
        "latents": torch.from_numpy(latents),
        "note_density": torch.from_numpy(density.astype(np.float32)),
        "tempo": torch.from_numpy(tempo.astype(np.float32)),
    }


def write_latent_chunks(
    folder: Path,
    *,
    frames: Sequence[int] = (64, 64, 48),
    latent_dim: int = 8,
    digest: str = TEST_DIGEST,
    frames_per_second: float = 22050 / 2048,
    min_frames: int | None = None,
    seed: int = 0,
) -> list[dict[str, torch.Tensor]]:
    """Write a finished latent-chunk folder with one chunk per entry of ``frames``; returns their tensors."""
    folder.mkdir(parents=True, exist_ok=True)
    written, entries = [], []
    for number, length in enumerate(frames):
        tensors = chunk_tensors(length, latent_dim, seed=seed * 1000 + number)
        save_chunk(folder / chunk_name(number), tensors["latents"], {n: tensors[n] for n in CONDITION_NAMES})
        written.append(tensors)
        entries.append({"file": chunk_name(number), "source": f"song_{number}.wav", "frames": length})
    manifest = build_manifest(
        autoencoder_run="runs/test-ae",
        digest=digest,
        latent_dim=latent_dim,
        frames_per_second=frames_per_second,
        chunk_frames=max(frames),
        min_frames=min(frames) if min_frames is None else min_frames,
        conditions={
            "note_density": {"unit": "log(1 + onsets/s), min-max normalised", "log_min": 0.0, "log_max": 2.0},
            "tempo": {"unit": "BPM, linear", "bpm_min": 60.0, "bpm_max": 200.0},
        },
        chunks=entries,
    )
    write_manifest(folder, manifest)
    (folder / REPORT_NAME).write_text("")
    return written
