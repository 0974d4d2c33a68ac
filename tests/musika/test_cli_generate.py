"""`orchestrion musika generate|stream` on a debug latent-GAN run: files, pipes, one-line errors."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from gan_support import one_thread, write_gan_run
from typer.testing import CliRunner

from cli_support import run_fails, run_ok
from orchestrion.checkpoint import save_checkpoint
from orchestrion.cli import app
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.generate import generate
from orchestrion.musika.models import load_latent_gan

runner = CliRunner()
SR = 22050


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return write_gan_run(tmp_path_factory.mktemp("gan_cli") / "run")


def test_generate_writes_exact_seconds_mono_png_and_respects_overwrite(run_dir, tmp_path, capsys):
    out = tmp_path / "song.wav"
    curve = tmp_path / "density.csv"
    curve.write_text("seconds,value\n0,0.2\n2,0.8\n")
    args = ["musika", "generate", "--model", run_dir, "--seconds", 2.5, "--out", out, "--seed", 3,
            "--note-density", curve, "--tempo", 120, "--png"]
    run_ok(*args)
    audio, rate = soundfile.read(out, dtype="float32", always_2d=True)
    assert rate == SR and audio.shape == (round(2.5 * SR), 2) and out.with_suffix(".png").is_file()
    expected = generate(load_latent_gan(run_dir), 2.5, seed=3, note_density=str(curve), tempo=120)
    np.testing.assert_allclose(audio.T, expected, atol=1.5 / 32767)
    assert "exists; pass --overwrite" in run_fails(capsys, *args)
    run_ok(*args, "--overwrite", "--mono")
    assert soundfile.info(out).channels == 1
    run_ok(*args, "--overwrite", "--phase", "griffin-lim")
    griffin_lim, _ = soundfile.read(out, dtype="float32", always_2d=True)
    expected = generate(load_latent_gan(run_dir), 2.5, seed=3, note_density=str(curve), tempo=120,
                        phase="griffin-lim")
    np.testing.assert_allclose(griffin_lim.T, expected, atol=2 / 32767)  # 16-bit rounding, Griffin-Lim's float noise


def test_generate_bad_arguments_exit_with_one_line(run_dir, tmp_path, capsys):
    base = ["musika", "generate", "--model", run_dir, "--out", tmp_path / "x.wav"]
    assert "seconds must be a positive number, got -2" in run_fails(capsys, *base, "--seconds", -2)
    assert "note_density 1.5 is outside 0..1" in run_fails(capsys, *base, "--seconds", 1, "--note-density", 1.5)
    bad = tmp_path / "bad.csv"
    bad.write_text("seconds,value\n0,0.5\nzero,0.1\n")
    assert f"{bad}: line 3: expected two numbers" in run_fails(capsys, *base, "--seconds", 1, "--note-density", bad)
    assert "tempo 20 BPM is outside 80..180 BPM" in run_fails(capsys, *base, "--seconds", 1, "--tempo", 20)
    assert "unknown phase 'zero'" in run_fails(capsys, *base, "--seconds", 1, "--phase", "zero")
    autoencoder = tmp_path / "ae"
    save_checkpoint(autoencoder, config=AutoencoderTrainingConfig.preset_config("debug"), modules={})
    other = ["musika", "generate", "--model", autoencoder, "--out", tmp_path / "y.wav", "--seconds", 1]
    assert "must be a Musika latent-GAN run" in run_fails(capsys, *other)
    assert "--format raw is for --out - only" in run_fails(
        capsys, "musika", "stream", "--model", run_dir, "--out", tmp_path / "z.wav", "--format", "raw"
    )
    assert "unknown stream format 'mp3'" in run_fails(capsys, "musika", "stream", "--model", run_dir, "--out", "-",
                                                   "--format", "mp3", "--seconds", 1)
    assert not any((tmp_path / name).exists() for name in ("x.wav", "y.wav", "z.wav"))


def test_stream_to_stdout_and_to_a_file(run_dir, tmp_path):
    result = runner.invoke(app, ["musika", "stream", "--model", str(run_dir), "--out", "-", "--seconds", "1.5",
                                 "--seed", "3", "--block-seconds", "0.4"])
    assert result.exit_code == 0, result.output
    audio, rate = soundfile.read(io.BytesIO(result.stdout_bytes), dtype="float32")
    assert rate == SR and audio.shape == (round(1.5 * SR), 2)
    assert "first audio after" in result.stderr
    expected = generate(load_latent_gan(run_dir), 1.5, seed=3)
    np.testing.assert_allclose(audio.T, expected, atol=1.5 / 32767)
    raw = runner.invoke(app, ["musika", "stream", "--model", str(run_dir), "--out", "-", "--seconds", "0.5",
                              "--format", "raw", "--mono"])
    assert raw.exit_code == 0 and len(raw.stdout_bytes) == round(0.5 * SR) * 2
    out = tmp_path / "live.flac"
    run_ok("musika", "stream", "--model", run_dir, "--out", out, "--seconds", 1.2, "--seed", 3)
    audio, _ = soundfile.read(out, dtype="float32")
    np.testing.assert_allclose(audio[: round(1.2 * SR)].T, expected[:, : round(1.2 * SR)], atol=1.5 / 32767)


def test_ctrl_c_ends_an_endless_stream_to_a_file_and_keeps_it(run_dir, tmp_path):
    """A real process and a real SIGINT (most of its ~10 s is the child importing torch on this box)."""
    out = tmp_path / "live.wav"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "orchestrion.cli", "musika", "stream", "--model", str(run_dir), "--out", str(out)]
    process = subprocess.Popen(  # SIGINT reaches the child even when the test runs as a background job
        command, env=env, stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 200_000 for p in tmp_path.glob(".live.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=60)[1].decode()
    assert process.returncode == 0 and "streamed" in stderr
    info = soundfile.info(out)
    assert info.samplerate == SR and info.channels == 2 and info.frames >= 40_000
    assert f"streamed {info.frames / SR:.1f} s" in stderr
    assert not list(tmp_path.glob(".live.*"))  # no temporary left behind
