"""Latent coordinate system of spec §7 (A14): training crops, inference anchors, random access."""

from __future__ import annotations

import pytest
import torch

from orchestrion.errors import ConfigError
from orchestrion.musika.coordinates import LatentCoordinateGrid, append_conditions, truncated_normal
from orchestrion.musika.latent_gan import LatentGANConfig

TECHNO = LatentGANConfig.preset_config("techno")


def test_training_crop_lies_on_a_ramp_through_three_anchors_with_one_style() -> None:
    grid = LatentCoordinateGrid(TECHNO)
    coords = grid.training_coordinates(6, torch.Generator().manual_seed(0))
    assert coords.shape == (6, 128, 256)
    coordinates, style = coords[:, :64], coords[:, 64:]
    assert torch.equal(style, style[..., :1].expand_as(style))  # style identical at every position
    assert not torch.allclose(style[0], style[1])  # one style per sample
    # piecewise linear: second differences vanish except at the one kink (the middle anchor)
    second = coordinates[..., 2:] - 2 * coordinates[..., 1:-1] + coordinates[..., :-2]
    kinks = (second.abs().amax(dim=(0, 1)) > 1e-5).nonzero().flatten()
    assert len(kinks) <= 1
    # steps of 1/(latlen − 1) of an anchor gap: |Δ| ≤ max anchor distance / 255
    assert coordinates.diff(dim=-1).abs().max() < 12 / 255


def test_training_crop_offset_is_shared_by_the_batch_and_covers_every_position() -> None:
    grid = LatentCoordinateGrid(LatentGANConfig.preset_config("debug"))
    latlen = grid.latlen  # 32: crops from a 63-point path, offsets 0..31
    kinks = set()
    generator = torch.Generator().manual_seed(1)
    for _ in range(400):
        coords = grid.training_coordinates(4, generator)[:, :16]
        second = (coords[..., 2:] - 2 * coords[..., 1:-1] + coords[..., :-2]).abs().amax(dim=1)  # (B, latlen − 2)
        positions = {tuple((row > 1e-5).nonzero().flatten().tolist()) for row in second}
        assert len(positions) == 1  # every sample has its kink at the same place: one offset per batch
        kinks |= positions
    # a kink at second-difference index j means the middle anchor sits at crop index j + 1
    seen = {p[0] + 1 for p in kinks if p}
    assert seen == set(range(1, latlen - 1))  # offsets 1..30; 0 and 31 put the anchor at an end


def test_inference_anchors_sit_at_multiples_of_latlen_and_segments_join() -> None:
    grid = LatentCoordinateGrid(TECHNO)
    coords = grid.inference_coordinates(seed=7, first_segment=0, n_segments=4, truncation=1.0)
    assert coords.shape == (4, 128, 256)
    piece = torch.cat(list(coords), dim=-1)  # (128, 1024): segments concatenated in order
    for k in range(5):
        anchor = grid.anchor(7, k, truncation=1.0)
        if k < 4:
            assert torch.equal(piece[:64, 256 * k], anchor)  # exactly at index latlen·k
        # the last point of segment k − 1 is one step of 1/latlen short of anchor k (no gap, no repeat)
        if k > 0:
            previous = grid.anchor(7, k - 1, truncation=1.0)
            torch.testing.assert_close(piece[:64, 256 * k - 1], anchor - (anchor - previous) / 256)
    style = grid.style(7, truncation=1.0)
    assert torch.equal(piece[64:], style[:, None].expand(64, 1024))


def test_random_access_segments_equal_the_same_segments_made_at_once() -> None:
    grid = LatentCoordinateGrid(LatentGANConfig.preset_config("debug"))
    whole = grid.inference_coordinates(seed=3, first_segment=0, n_segments=6)
    alone = grid.inference_coordinates(seed=3, first_segment=3, n_segments=3)
    assert torch.equal(whole[3:], alone)
    streamed = torch.cat([grid.inference_coordinates(3, k, 1) for k in range(6)])
    assert torch.equal(whole, streamed)
    assert not torch.equal(grid.inference_coordinates(4, 0, 6), whole)


def test_truncation_bounds_style_and_anchors() -> None:
    grid = LatentCoordinateGrid(TECHNO)
    styles = torch.stack([grid.style(seed, truncation=0.5) for seed in range(50)])
    anchors = torch.stack([grid.anchor(0, k, truncation=0.5) for k in range(50)])
    assert styles.abs().max() <= 0.5 and styles.abs().max() > 0.45
    assert anchors.abs().max() <= 1.75 and anchors.abs().max() > 1.5  # anchors: max(t, 1.75)
    wide = torch.stack([grid.anchor(0, k, truncation=3.0) for k in range(50)])
    assert wide.abs().max() > 1.75


def test_truncated_normal_matches_the_truncated_distribution() -> None:
    draws = truncated_normal((200_000,), 1.0, torch.Generator().manual_seed(0)).double()
    assert draws.abs().max() <= 1.0
    # N(0, 1) truncated to ±1 has variance 1 − 2φ(1)/(Φ(1) − Φ(−1)) = 0.2911
    assert draws.var().item() == pytest.approx(0.2911, abs=0.003)
    assert draws.mean().item() == pytest.approx(0.0, abs=0.005)


def test_append_conditions_splits_a_curve_over_segments() -> None:
    grid = LatentCoordinateGrid(LatentGANConfig.preset_config("debug"))
    coords = grid.inference_coordinates(0, 0, 3)
    curve = torch.linspace(0, 1, 3 * 32)[None].repeat(2, 1)
    out = append_conditions(coords, curve)
    assert out.shape == (3, 34, 32)
    assert torch.equal(torch.cat(list(out[:, 32:]), dim=-1), curve)
    with pytest.raises(ConfigError, match=r"must be \(n_conditions, 96\)"):
        append_conditions(coords, curve[:, :50])


def test_bad_draw_arguments_are_clear_errors() -> None:
    grid = LatentCoordinateGrid(LatentGANConfig.preset_config("debug"))
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        grid.inference_coordinates(-1, 0, 1)
    with pytest.raises(ConfigError, match="truncation must be > 0"):
        grid.inference_coordinates(0, 0, 1, truncation=0.0)
    with pytest.raises(ConfigError, match="n_segments >= 1"):
        grid.inference_coordinates(0, 0, 0)
