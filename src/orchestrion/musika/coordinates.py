"""Musika's latent coordinate system (spec musika.md §7): what the latent GAN is conditioned on.

A piece is a path through coordinate space: random *anchors* joined by straight ramps, each point
concatenated with one *style* vector that stays fixed for the whole piece. The generator maps
every ``latlen``-frame window of this path to latents; because neighbouring windows share the
ramp through their common anchor, their outputs join without seams.

Training (§7.1): three anchors per sample, two ramps of ``latlen`` points (the shared middle anchor
once: ``2·latlen − 1`` points), one random crop of ``latlen`` frames per batch (one offset for the
whole batch, as the reference).

Inference (§7.2): anchor k sits at frame ``k·latlen``; segment k runs from anchor k (included) to
anchor k + 1 (excluded), so any number of segments is one batched generator pass. Every random
draw is keyed: the style by ``(seed, "style")``, anchor k by ``(seed, k)``. Segments k..k+n are
therefore the same whether made at once or block by block in a stream (random access).
Draws are truncated standard normals (the reference's truncation trick): style within ±t,
anchors within ±max(t, 1.75).

Channel layout of a coordinate tensor: ``[coordinates (coord_dim) | style (style_dim)]``, then the
conditioning curves appended by :func:`append_conditions` (in ``config.conditions`` order).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from orchestrion.errors import ConfigError
from orchestrion.musika.latent_gan import LatentGANConfig

ANCHOR_TRUNCATION_FLOOR = 1.75  # anchors are never truncated tighter than this (reference)
DEFAULT_TRUNCATION = 0.885  # the reference UI's default
_STYLE_STREAM, _ANCHOR_STREAM = 0, 1


def _keyed_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded by a hash of ``key`` (independent streams for distinct keys)."""
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def truncated_normal(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> Tensor:
    """Standard normal draws restricted to [−bound, bound] (exact inverse-CDF sampling), float32."""
    low = 0.5 * math.erfc(bound / math.sqrt(2.0))  # Φ(−bound)
    uniform = low + (1.0 - 2.0 * low) * torch.rand(shape, generator=generator, dtype=torch.float64)
    values = math.sqrt(2.0) * torch.erfinv(2.0 * uniform - 1.0)
    return values.clamp(-bound, bound).float()


class LatentCoordinateGrid:
    """Builds generator inputs (without conditioning): (B, coord_dim + style_dim, latlen)."""

    def __init__(self, config: LatentGANConfig) -> None:
        self.config = config
        self.latlen = config.latlen

    @property
    def channels(self) -> int:
        return self.config.coord_dim + self.config.style_dim

    def training_coordinates(self, batch: int, generator: torch.Generator) -> Tensor:
        """A training batch (spec §7.1): (B, coord_dim + style_dim, latlen), on ``generator``'s device.

        Per sample: style and anchors ``w_l, w_c, w_r`` ~ N(0, I); ramps ``w_l → w_c`` and
        ``w_c → w_r`` of ``latlen`` points each (``w_c`` once); one crop offset for the batch,
        uniform over the ``latlen`` valid positions.
        """
        device = generator.device
        style = torch.randn(batch, self.config.style_dim, 1, generator=generator, device=device)
        anchors = torch.randn(batch, self.config.coord_dim, 3, generator=generator, device=device)
        ramp = torch.arange(self.latlen, device=device, dtype=torch.float32) / (self.latlen - 1)  # 0 .. 1
        left, middle, right = anchors.unbind(-1)  # (B, coord_dim) each
        first = left[..., None] + ramp * (middle - left)[..., None]  # (B, coord_dim, latlen), ends at w_c
        second = middle[..., None] + ramp[1:] * (right - middle)[..., None]  # (B, coord_dim, latlen − 1)
        path = torch.cat([first, second], dim=-1)  # (B, coord_dim, 2·latlen − 1)
        offset = int(torch.randint(0, self.latlen, (1,), generator=generator, device=device))
        crop = path[..., offset : offset + self.latlen]
        return torch.cat([crop, style.expand(-1, -1, self.latlen)], dim=1)

    def style(self, seed: int, truncation: float = DEFAULT_TRUNCATION) -> Tensor:
        """The style vector of piece ``seed``: (style_dim,), truncated to ±truncation."""
        _check_draw(seed, truncation)
        return truncated_normal((self.config.style_dim,), truncation, _keyed_generator(seed, _STYLE_STREAM))

    def anchor(self, seed: int, index: int, truncation: float = DEFAULT_TRUNCATION) -> Tensor:
        """Anchor ``index`` of piece ``seed``: (coord_dim,), truncated to ±max(truncation, 1.75)."""
        _check_draw(seed, truncation)
        if index < 0:
            raise ConfigError(f"anchor index must be >= 0, got {index}")
        bound = max(truncation, ANCHOR_TRUNCATION_FLOOR)
        return truncated_normal((self.config.coord_dim,), bound, _keyed_generator(seed, _ANCHOR_STREAM, index))

    def inference_coordinates(
        self, seed: int, first_segment: int, n_segments: int, truncation: float = DEFAULT_TRUNCATION
    ) -> Tensor:
        """Segments ``first_segment .. first_segment + n_segments − 1`` of piece ``seed`` (spec §7.2).

        Returns (n_segments, coord_dim + style_dim, latlen) float32 on the CPU. Segment k starts
        exactly at anchor k (frame ``k·latlen`` of the piece) and steps ``1/latlen`` towards anchor
        k + 1, which begins the next segment.
        """
        if n_segments < 1 or first_segment < 0:
            raise ConfigError(f"need n_segments >= 1 and first_segment >= 0, got {n_segments}, {first_segment}")
        anchors = torch.stack(
            [self.anchor(seed, k, truncation) for k in range(first_segment, first_segment + n_segments + 1)]
        )  # (n + 1, coord_dim)
        steps = torch.arange(self.latlen, dtype=torch.float32) / self.latlen  # latlen + 1 points, last dropped
        start, end = anchors[:-1, :, None], anchors[1:, :, None]
        path = start + steps * (end - start)  # (n, coord_dim, latlen)
        style = self.style(seed, truncation)[None, :, None].expand(n_segments, -1, self.latlen)
        return torch.cat([path, style], dim=1)


def _check_draw(seed: int, truncation: float) -> None:
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    if not truncation > 0:
        raise ConfigError(f"truncation must be > 0, got {truncation}")


def append_conditions(coords: Tensor, curves: Tensor) -> Tensor:
    """Conditioning curves as extra input channels.

    ``coords`` (n, C, latlen) are consecutive segments; ``curves`` (n_conditions, n·latlen) one
    value per frame of the whole span, in [0, 1]. Returns (n, C + n_conditions, latlen).
    """
    n, _, latlen = coords.shape
    if curves.dim() != 2 or curves.shape[1] != n * latlen:
        raise ConfigError(
            f"conditioning curves must be (n_conditions, {n * latlen}) for {n} segments of {latlen} frames, "
            f"got {tuple(curves.shape)}"
        )
    per_segment = curves.to(coords.dtype).reshape(curves.shape[0], n, latlen).permute(1, 0, 2)  # (n, n_cond, latlen)
    return torch.cat([coords, per_segment.to(coords.device)], dim=1)
