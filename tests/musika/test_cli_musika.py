"""End-to-end `orchestrion musika ...` and `orchestrion evaluate reconstruction` on a tiny debug model."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from train_support import write_music_folder, write_rendered_excerpt
from typer.testing import CliRunner

from cli_support import run_fails, run_ok
from orchestrion.checkpoint import checkpoint_step_dirs, load_checkpoint, save_checkpoint
from orchestrion.musika.autoencoder import Level1Decoder, Level1Encoder
from orchestrion.musika.config import DiscriminatorConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict[str, Path]:
    """A debug level-1 model trained through the CLI: phase 1 (4 steps) then phase 2 (2 steps)."""
    root = tmp_path_factory.mktemp("musika_cli")
    data = write_rendered_excerpt(root, seconds=3.0)
    common = ["--workers", "0", "--seed", "0"]
    run_ok("musika", "train-ae", data, "--out", root / "l1p1", "--preset", "debug", "--steps", 4, *common)
    run_ok("musika", "train-ae", data, "--out", root / "l1p2", "--phase", "2", "--init", root / "l1p1",
        "--steps", 2, "--lambda-rec", 7.5, *common)
    return {"root": root, "data": data, "l1p1": root / "l1p1", "l1p2": root / "l1p2"}


def test_train_encode_decode_reconstruct_evaluate(model, tmp_path: Path) -> None:
    assert (model["l1p2"] / "metrics.jsonl").is_file() and (model["l1p2"] / "loss_curve.png").is_file()
    assert load_checkpoint(model["l1p2"]).config.lambda_rec == 7.5  # --lambda-rec reaches phase 2's config
    audio_dir = tmp_path / "audio"
    write_music_folder(audio_dir, n_files=2, seconds=2.0, channels=2)
    run_ok("musika", "encode", audio_dir, "--model", model["l1p2"], "--out", tmp_path / "latents")
    latents = tmp_path / "latents"
    names = sorted(p.relative_to(latents).as_posix() for p in latents.rglob("*.safetensors"))
    assert names == ["melody_0.wav.safetensors", "nested/melody_1.wav.safetensors"]
    index = json.loads((tmp_path / "latents" / "index.json").read_text())
    entry = index["files"][0]
    # 2 s stereo at 22.05 kHz → 2 channels × 16 dims × (smallest multiple of 64 frames covering 44100 + 768)
    assert (entry["channels"], entry["dim"], entry["frames"], entry["hop"]) == (2, 16, 192, 256)

    run_ok("musika", "decode", tmp_path / "latents", "--model", model["l1p2"], "--out", tmp_path / "decoded")
    decoded, rate = sf.read(tmp_path / "decoded" / "melody_0.wav", always_2d=True)
    assert rate == 22050 and decoded.shape == (44100, 2)

    source = next(model["data"].glob("*.wav"))
    run_ok("musika", "reconstruct", source, tmp_path / "rec.wav", "--model", model["l1p2"], "--png")
    rebuilt, rate = sf.read(tmp_path / "rec.wav", always_2d=True)
    assert rebuilt.shape == (sf.info(source).frames, 1) and np.abs(rebuilt).max() > 0
    assert (tmp_path / "rec.png").read_bytes()[:4] == b"\x89PNG"

    out = run_ok("evaluate", "reconstruction", model["data"], "--model", model["l1p2"], "--json", tmp_path / "r.json")
    assert "log-mel" in out and "mean" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert [row["file"] for row in report["files"]] == [source.name]
    assert report["mean"]["model"]["lsd_db"] > 0 and report["mean"]["model"]["si_sdr_db"] is None  # its own phase


def test_griffin_lim_phase_gives_audio_to_a_phase_1_model(model, tmp_path: Path) -> None:
    source = next(model["data"].glob("*.wav"))
    frames = sf.info(source).frames
    out = run_ok("musika", "reconstruct", source, tmp_path / "p1.wav", "--model", model["l1p1"])
    assert "phase 1" in out and "Griffin-Lim phase (32 iterations)" in out  # auto: the model has no phase
    rebuilt, rate = sf.read(tmp_path / "p1.wav", always_2d=True)
    assert rate == 22050 and rebuilt.shape == (frames, 1) and np.abs(rebuilt).max() > 0
    run_ok("musika", "encode", source, "--model", model["l1p1"], "--out", tmp_path / "latents")
    run_ok("musika", "decode", tmp_path / "latents", "--model", model["l1p1"], "--out", tmp_path / "decoded")
    decoded, _ = sf.read(tmp_path / "decoded" / source.name, always_2d=True)
    np.testing.assert_allclose(decoded, rebuilt, atol=2 / 32768)  # the same audio, up to 16-bit rounding
    # a phase-2 model's magnitude heard with Griffin-Lim phase instead of its own
    learned = run_ok("musika", "reconstruct", source, tmp_path / "learned.wav", "--model", model["l1p2"])
    assert "the decoder's learned phase" in learned
    run_ok("musika", "reconstruct", source, tmp_path / "gl.wav", "--model", model["l1p2"], "--phase", "griffin-lim")
    learned_audio, griffin_audio = sf.read(tmp_path / "learned.wav")[0], sf.read(tmp_path / "gl.wav")[0]
    assert learned_audio.shape == griffin_audio.shape and not np.allclose(learned_audio, griffin_audio)


def test_bad_inputs_exit_with_code_2(model, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio here")
    assert "does not exist" in run_fails(capsys, "musika", "train-ae", tmp_path / "missing", "--out", tmp_path / "r")
    assert "no audio files" in run_fails(capsys, "musika", "train-ae", empty, "--out", tmp_path / "r", "--steps", 1)
    assert "no audio files" in run_fails(capsys, "musika", "encode", empty, "--model", model["l1p2"], "--out", tmp_path)
    run_ok("musika", "encode", model["data"], "--model", model["l1p2"], "--out", tmp_path / "latents")
    assert "unknown precision" in run_fails(
        capsys, "musika", "decode", tmp_path / "latents", "--model", model["l1p2"],
        "--out", tmp_path, "--precision", "fp8",
    )  # fmt: skip
    # --model pointing at something that is not a Musika autoencoder run
    assert "no checkpoint found" in run_fails(
        capsys, "musika", "encode", model["data"], "--model", empty, "--out", tmp_path / "x"
    )
    source = next(model["data"].glob("*.wav"))
    assert "has no learned phase; use --phase griffin-lim" in run_fails(
        capsys, "musika", "reconstruct", source, tmp_path / "o.wav", "--model", model["l1p1"], "--phase", "learned"
    )
    assert "unknown phase 'zero'" in run_fails(
        capsys, "musika", "reconstruct", source, tmp_path / "o.wav", "--model", model["l1p2"], "--phase", "zero"
    )
    # a checkpoint whose weights do not fit its config, one of another model kind, a tampered one
    config = load_checkpoint(model["l1p2"]).config
    small = dataclasses.replace(config.level1, latent_dim=8)
    save_checkpoint(tmp_path / "mismatch", config=config,
                    modules={"level1_encoder": Level1Encoder(small), "level1_decoder": Level1Decoder(small)})
    mismatch = run_fails(capsys, "evaluate", "reconstruction", model["data"], "--model", tmp_path / "mismatch")
    assert "do not match" in mismatch
    save_checkpoint(tmp_path / "other", config=DiscriminatorConfig(), modules={})
    assert "must be a Musika autoencoder run" in run_fails(
        capsys, "musika", "encode", model["data"], "--model", tmp_path / "other", "--out", tmp_path / "x"
    )
    tampered = tmp_path / "tampered"
    shutil.copytree(load_checkpoint(model["l1p2"]).path, tampered)
    with open(tampered / "model.safetensors", "r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\0\0\0\0")
    assert "sha256" in run_fails(capsys, "musika", "reconstruct", next(model["data"].glob("*.wav")),
                              tmp_path / "o.wav", "--model", tampered)
    assert "no such" in run_fails(capsys, "evaluate", "reconstruction", model["data"], "--model", tmp_path / "nope")


def test_killed_training_resumes_from_its_checkpoint(model, tmp_path: Path) -> None:
    """SIGKILL a real training process after its first periodic checkpoint; --resume continues from it."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "orchestrion.cli", "musika", "train-ae", str(model["data"]), "--out", str(run),
               "--preset", "debug", "--steps", "100000", "--checkpoint-every", "3", "--workers", "0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not checkpoint_step_dirs(run) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    steps = checkpoint_step_dirs(run)
    assert steps, "no checkpoint was written within 120 s"
    killed_at, ckpt_dir = steps[-1]
    before = load_checkpoint(ckpt_dir).module_state("level1_encoder")
    target = killed_at + 2
    run_ok("musika", "train-ae", model["data"], "--out", run, "--preset", "debug", "--steps", target,
        "--checkpoint-every", "1", "--workers", "0", "--resume")
    # the resumed run started from the killed run's checkpoint (kept, untouched) and went on to `target`
    after_steps = [s for s, _ in checkpoint_step_dirs(run)]
    assert after_steps[-1] == target and killed_at in after_steps
    assert all(v.equal(before[k]) for k, v in load_checkpoint(ckpt_dir).module_state("level1_encoder").items())
    lines = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines == sorted(set(lines)) and lines[-1] == target


def test_file_level_codec_streams_and_equals_in_memory_codec(model, tmp_path):
    """encode_files (memory-mapped, resampled in chunks) and decode_files (streamed to disk)
    give what the in-memory codec gives, for a 44.1 kHz stereo file."""
    from orchestrion.audio.io import load_audio, save_audio
    from orchestrion.musika.codec import decode_latent_file, encode_to_latent_file, load_latents
    from orchestrion.musika.inference import DECODE_SEED, decode_files, encode_files
    from orchestrion.musika.models import load_autoencoder

    mono = load_audio(next(Path(model["data"]).glob("*.wav")), sample_rate=44100)[0]
    stereo = np.stack([mono, 0.5 * mono[::-1]])
    source = save_audio(tmp_path / "in.wav", stereo, sample_rate=44100, subtype="FLOAT")
    [latent_path] = list(encode_files(source, model["l1p2"], tmp_path / "latents", device="cpu"))
    assert sorted(p.name for p in (tmp_path / "latents").iterdir()) == ["in.wav.safetensors", "index.json"]

    trained = load_autoencoder(model["l1p2"], "cpu")
    reference = encode_to_latent_file(torch.from_numpy(load_audio(source)), trained.level1)
    streamed = load_latents(latent_path)
    assert streamed.num_samples == reference.num_samples
    torch.testing.assert_close(streamed.latents, reference.latents, atol=1e-5, rtol=0)

    [wav] = list(decode_files(tmp_path / "latents", model["l1p2"], tmp_path / "out", device="cpu"))
    decoded, rate = sf.read(wav, dtype="float32", always_2d=True)
    expected = decode_latent_file(streamed, trained.level1, seed=DECODE_SEED).numpy().T
    assert rate == 22050 and decoded.shape == expected.shape == (reference.num_samples, 2)
    assert np.abs(decoded - expected).max() < 2.0 / 32768  # 16-bit PCM rounding
