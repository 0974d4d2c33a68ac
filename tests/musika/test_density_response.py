"""`orchestrion evaluate density`: onsets per second of a conditional GAN's output per requested note density."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gan_support import one_thread, write_gan_run

from cli_support import run_fails, run_ok
from orchestrion.errors import OrchestrionError
from orchestrion.evaluation.conditioning import DensityResponse, note_density_response
from orchestrion.musika.models import load_latent_gan


def test_response_counts_madmom_onsets_per_seed_and_is_reproducible(tmp_path: Path) -> None:
    model = load_latent_gan(write_gan_run(tmp_path / "gan", conditions=("note_density",)))
    with one_thread():
        first = note_density_response(model, (0.2, 0.8), seeds=2, seconds=3.0)
        again = note_density_response(model, (0.2, 0.8), seeds=2, seconds=3.0)
    assert first == again  # fp32 generation and madmom are deterministic
    assert first.densities == (0.2, 0.8) and len(first.per_seed) == 2 and all(len(r) == 2 for r in first.per_seed)
    assert all(rate >= 0 for rates in first.per_seed for rate in rates)
    assert first.onsets_per_second[1] == pytest.approx(sum(first.per_seed[1]) / 2)


def test_rank_correlation_and_summary() -> None:
    rising = DensityResponse((0.1, 0.5, 0.9), (0.5, 1.0, 2.0), ((0.5,), (1.0,), (2.0,)), 10.0)
    falling = DensityResponse((0.1, 0.5, 0.9), (2.0, 1.0, 0.5), ((2.0,), (1.0,), (0.5,)), 10.0)
    assert rising.spearman() == pytest.approx(1.0) and falling.spearman() == pytest.approx(-1.0)
    assert "0.1: 0.50, 0.5: 1.00, 0.9: 2.00" in rising.summary() and "+1.00" in rising.summary()
    single = DensityResponse((0.5,), (1.0,), ((1.0,),), 5.0).summary()
    assert "1 seed × 5 s" in single and "rank correlation" not in single  # undefined for one density


def test_an_unconditional_gan_and_bad_arguments_are_refused(tmp_path: Path, capsys) -> None:
    plain = load_latent_gan(write_gan_run(tmp_path / "plain", conditions=("tempo",)))
    with pytest.raises(OrchestrionError, match="not conditioned on note density"):
        note_density_response(plain)
    run = write_gan_run(tmp_path / "cond", conditions=("note_density",))
    assert "--densities must be values in 0..1" in run_fails(capsys, "evaluate", "density", "--model", run,
                                                             "--densities", "0.2,1.5")
    assert "--densities must be numbers separated by commas" in run_fails(
        capsys, "evaluate", "density", "--model", run, "--densities", "low,high"
    )


def test_cli_writes_json(tmp_path: Path, capsys) -> None:
    run = write_gan_run(tmp_path / "cond", conditions=("note_density",))
    out = tmp_path / "density.json"
    with one_thread():
        output = run_ok("evaluate", "density", "--model", run, "--densities", "0.1,0.9", "--seeds", "1",
                        "--seconds", "2", "--json", out)
    assert "onsets/s of the output at note density 0.1:" in output
    report = json.loads(out.read_text())
    assert report["densities"] == [0.1, 0.9] and len(report["onsets_per_second"]) == 2
    # an existing report is never replaced silently
    assert "--overwrite" in run_fails(capsys, "evaluate", "density", "--model", run, "--json", out)
