"""Musika file commands on real collections: unique latent names, skip-and-report, the one output policy,
which checkpoint was used, device errors. A debug model with fresh weights is enough here (no training)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from train_support import melody
from typer.testing import CliRunner

from cli_support import run_fails, run_ok
from orchestrion.audio.io import save_audio
from orchestrion.checkpoint import save_checkpoint
from orchestrion.cli import app
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.train import build_modules

runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A level-1 phase-2 debug run (untrained weights) at step 7, as `train-ae` lays it out."""
    run = tmp_path_factory.mktemp("model") / "run"
    config = AutoencoderTrainingConfig.preset_config("debug", level=1, phase=2)
    torch.manual_seed(0)
    modules = build_modules(config)
    save_checkpoint(run / "checkpoints" / "step_00000007", config=config, modules=modules, state={"step": 7})
    return run


def _music(folder: Path, names: list[str], seconds: float = 1.0) -> list[Path]:
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, melody(seconds, seed=i, channels=1).T, 22050, subtype="PCM_16")
        paths.append(path)
    return paths


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_encode_names_never_collide_and_decode_keeps_them(model, tmp_path: Path) -> None:
    music = tmp_path / "music"
    _music(music, ["song.wav", "song.flac", "a/b.wav", "a__b.wav"])
    output = run_ok("musika", "encode", music, "--model", model, "--out", tmp_path / "latents")
    assert "4 latent file(s) written" in output
    index = json.loads((tmp_path / "latents" / "index.json").read_text())
    files = [entry["file"] for entry in index["files"]]
    assert files == ["a/b.wav.safetensors", "a__b.wav.safetensors", "song.flac.safetensors", "song.wav.safetensors"]
    assert [entry["source"] for entry in index["files"]] == ["a/b.wav", "a__b.wav", "song.flac", "song.wav"]
    run_ok("musika", "decode", tmp_path / "latents", "--model", model, "--out", tmp_path / "decoded")
    decoded = sorted(p.relative_to(tmp_path / "decoded").as_posix() for p in (tmp_path / "decoded").rglob("*.wav"))
    assert decoded == ["a/b.wav", "a__b.wav", "song.flac.wav", "song.wav"]
    assert sf.info(tmp_path / "decoded" / "song.flac.wav").frames == 22050


def test_encode_skips_bad_files_reports_them_and_indexes_the_rest(model, tmp_path: Path, capsys) -> None:
    music = tmp_path / "music"
    _music(music, ["good.wav", "sub/also_good.flac"])
    (music / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    (music / "empty.flac").write_bytes(b"")
    out = tmp_path / "latents"
    result = runner.invoke(app, ["musika", "encode", str(music), "--model", str(model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 latent file(s) written" in result.output and "2 file(s) skipped" in result.output
    lines = (out / "report.jsonl").read_text().splitlines()
    report = {Path(r["file"]).name: r["reason"] for r in map(json.loads, lines)}
    assert sorted(report) == ["empty.flac", "garbage.wav"]
    assert report["empty.flac"] == "file is empty (0 bytes)"
    assert report["garbage.wav"].startswith("not a readable audio file or corrupt")
    index = json.loads((out / "index.json").read_text())
    assert [e["file"] for e in index["files"]] == ["good.wav.safetensors", "sub/also_good.flac.safetensors"]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "also_good.flac.safetensors", "good.wav.safetensors", "index.json", "report.jsonl",
    ]  # fmt: skip
    (music / "garbage.wav").unlink()
    (music / "empty.flac").unlink()
    run_ok("musika", "encode", music, "--model", model, "--out", out, "--overwrite")
    assert not (out / "report.jsonl").exists(), "a report of the earlier run would no longer be true"

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "garbage.wav").write_bytes(b"not audio")
    message = run_fails(capsys, "musika", "encode", only_bad, "--model", model, "--out", tmp_path / "none")
    assert "no usable audio" in message and "garbage.wav" in message
    assert not list((tmp_path / "none").glob("*.safetensors")) and not (tmp_path / "none" / "index.json").exists()


def test_decode_skips_unusable_latent_files_reports_them_and_decodes_the_rest(model, tmp_path: Path, capsys) -> None:
    music = tmp_path / "music"
    _music(music, ["good.wav", "sub/also_good.wav"])
    latents = tmp_path / "latents"
    run_ok("musika", "encode", music, "--model", model, "--out", latents)
    good = (latents / "good.wav.safetensors").read_bytes()
    (latents / "cut.wav.safetensors").write_bytes(good[: len(good) // 2])  # a copy interrupted mid-transfer
    (latents / "junk.safetensors").write_bytes(b"not a safetensors file")
    # latents of another model (other encoder weights): decoding them with this one would be garbage
    other = tmp_path / "other"
    config = AutoencoderTrainingConfig.preset_config("debug", level=1, phase=2)
    torch.manual_seed(1)
    save_checkpoint(other / "checkpoints" / "step_00000001", config=config, modules=build_modules(config),
                    state={"step": 1})  # fmt: skip
    run_ok("musika", "encode", music / "good.wav", "--model", other, "--out", tmp_path / "foreign")
    (tmp_path / "foreign" / "good.wav.safetensors").rename(latents / "foreign.wav.safetensors")

    decoded = tmp_path / "decoded"
    result = runner.invoke(app, ["musika", "decode", str(latents), "--model", str(model), "--out", str(decoded)])
    assert result.exit_code == 0, result.output
    assert "2 audio file(s) written" in result.output and "3 file(s) skipped" in result.output
    wavs = sorted(p.relative_to(decoded).as_posix() for p in decoded.rglob("*.wav"))
    assert wavs == ["good.wav", "sub/also_good.wav"]
    assert sf.info(decoded / "good.wav").frames == 22050
    lines = (decoded / "report.jsonl").read_text().splitlines()
    report = {Path(r["file"]).name: r["reason"] for r in map(json.loads, lines)}
    assert sorted(report) == ["cut.wav.safetensors", "foreign.wav.safetensors", "junk.safetensors"]
    assert report["junk.safetensors"].startswith("not a readable safetensors latent file")
    assert report["cut.wav.safetensors"].startswith("not a readable safetensors latent file")
    assert report["foreign.wav.safetensors"].startswith("latents were made by another model")
    assert not [p for p in decoded.rglob("*") if p.name.startswith(".")], "no temporary file is left"

    for name in ("cut.wav.safetensors", "junk.safetensors", "foreign.wav.safetensors"):
        (latents / name).unlink()
    run_ok("musika", "decode", latents, "--model", model, "--out", decoded, "--overwrite")
    assert not (decoded / "report.jsonl").exists(), "a report of the earlier run would no longer be true"

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    message = run_fails(capsys, "musika", "decode", only_bad, "--model", model, "--out", tmp_path / "none" / "wav")
    assert "no usable latent files" in message and "junk.safetensors" in message
    assert not (tmp_path / "none").exists(), "a job that wrote nothing leaves no folder behind"


def test_outputs_are_never_inputs_and_replaced_only_with_overwrite(model, tmp_path: Path, capsys) -> None:
    [song] = _music(tmp_path / "music", ["song.wav"])
    original = song.read_bytes()
    assert "is also the input" in run_fails(capsys, "musika", "reconstruct", song, song, "--model", model)
    assert "is also the input" in run_fails(
        capsys, "musika", "reconstruct", song, song, "--model", model, "--overwrite"
    )
    assert song.read_bytes() == original

    rec = tmp_path / "rec.wav"
    run_ok("musika", "reconstruct", song, rec, "--model", model)
    first = rec.read_bytes()
    assert "rec.wav: exists; pass --overwrite" in run_fails(
        capsys, "musika", "reconstruct", song, rec, "--model", model
    )
    rec.write_bytes(b"user's own file")
    assert "exists" in run_fails(capsys, "musika", "reconstruct", song, rec, "--model", model)
    assert rec.read_bytes() == b"user's own file"
    run_ok("musika", "reconstruct", song, rec, "--model", model, "--overwrite")
    assert rec.read_bytes() == first
    assert "is a folder" in run_fails(capsys, "musika", "reconstruct", song, tmp_path, "--model", model)
    assert "cannot write '.mp3' audio files" in run_fails(
        capsys, "musika", "reconstruct", song, tmp_path / "x.mp3", "--model", model
    )

    latents = tmp_path / "latents"
    run_ok("musika", "encode", song, "--model", model, "--out", latents)
    before = _snapshot(latents)
    assert "song.wav.safetensors: exist; pass --overwrite" in run_fails(
        capsys, "musika", "encode", song, "--model", model, "--out", latents
    )
    assert _snapshot(latents) == before
    run_ok("musika", "encode", song, "--model", model, "--out", latents, "--overwrite")

    decoded = tmp_path / "decoded"
    run_ok("musika", "decode", latents, "--model", model, "--out", decoded)
    (decoded / "song.wav").write_bytes(b"edited by the user")
    assert "song.wav: exist; pass --overwrite" in run_fails(capsys, "musika", "decode", latents, "--model", model,
                                                         "--out", decoded)  # fmt: skip
    assert (decoded / "song.wav").read_bytes() == b"edited by the user"
    run_ok("musika", "decode", latents, "--model", model, "--out", decoded, "--overwrite")
    assert sf.info(decoded / "song.wav").frames == 22050


def test_reconstruct_and_decode_say_which_checkpoint_they_use(model, tmp_path: Path) -> None:
    [song] = _music(tmp_path / "music", ["song.wav"])
    result = runner.invoke(app, ["musika", "reconstruct", str(song), str(tmp_path / "r.wav"), "--model", str(model)])
    assert result.exit_code == 0
    used = f"using model {model / 'checkpoints' / 'step_00000007'} (level 1, phase 2, step 7)"
    assert used in result.output
    run_ok("musika", "encode", song, "--model", model, "--out", tmp_path / "latents")
    assert used in run_ok("musika", "decode", tmp_path / "latents", "--model", model, "--out", tmp_path / "decoded")


def test_unknown_or_missing_devices_are_one_clear_line(model, tmp_path: Path, capsys) -> None:
    [song] = _music(tmp_path / "music", ["song.wav"])
    message = run_fails(capsys, "musika", "reconstruct", song, tmp_path / "r.wav", "--model", model, "--device", "tpu")
    assert "--device 'tpu': unknown device; choose auto" in message
    if not torch.cuda.is_available():
        message = run_fails(capsys, "musika", "encode", song, "--model", model, "--out", tmp_path / "l",
                         "--device", "cuda")  # fmt: skip
        assert "sees no CUDA GPU; use --device cpu or auto" in message
        message = run_fails(capsys, "musika", "train-ae", tmp_path / "music", "--out", tmp_path / "run", "--preset",
                         "debug", "--steps", "1", "--workers", "0", "--device", "cuda:1")  # fmt: skip
        assert "sees no CUDA GPU" in message
        assert not (tmp_path / "run" / "checkpoints").exists()


def test_evaluate_checks_its_json_first_skips_bad_files_and_calls_silent_si_sdr_undefined(
    model, tmp_path: Path, capsys
) -> None:
    music = tmp_path / "held_out"
    _music(music, ["tune.wav"])
    save_audio(music / "silence.wav", np.zeros((1, 22050), np.float32))
    (music / "broken.flac").write_bytes(b"fLaC but nothing else")
    # the --json check comes before the (long) evaluation: a wrong model path is not even looked at
    assert "is a folder" in run_fails(capsys, "evaluate", "reconstruction", music, "--model", tmp_path / "no-model",
                                   "--json", tmp_path)  # fmt: skip
    (tmp_path / "old.json").write_text("{}")
    assert "old.json: exists; pass --overwrite" in run_fails(
        capsys, "evaluate", "reconstruction", music, "--model", tmp_path / "no-model", "--json", tmp_path / "old.json"
    )
    output = run_ok("evaluate", "reconstruction", music, "--model", model, "--json", tmp_path / "out" / "eval.json")
    assert "undefined" in output and "SI-SDR is undefined for a silent reference" in output
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    rows = {row["file"]: row for row in report["files"]}
    assert set(rows) == {"silence.wav", "tune.wav"}
    front_end = "front end round trip"  # a phase-matched row: the only kind that reports SI-SDR
    assert rows["silence.wav"][front_end]["si_sdr_db"] is None
    assert rows["tune.wav"][front_end]["si_sdr_db"] is not None
    assert report["mean"][front_end]["si_sdr_db"] == pytest.approx(rows["tune.wav"][front_end]["si_sdr_db"])
    assert [Path(s["file"]).name for s in report["skipped"]] == ["broken.flac"]
    skipped = [json.loads(line) for line in (tmp_path / "out" / "report.jsonl").read_text().splitlines()]
    assert [Path(s["file"]).name for s in skipped] == ["broken.flac"]


def test_train_ae_skips_unreadable_files_and_fails_when_none_is_left(tmp_path: Path, capsys) -> None:
    music = tmp_path / "music"
    _music(music, ["a.wav"], seconds=2.0)
    (music / "bad.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    (music / "cut.flac").write_bytes(b"fLaC\x00\x00\x00\x22")
    result = runner.invoke(app, ["musika", "train-ae", str(music), "--out", str(tmp_path / "run"), "--preset",
                                 "debug", "--steps", "1", "--workers", "0", "--batch-size", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 unreadable file(s) skipped" in result.output
    report = [json.loads(line) for line in (tmp_path / "run" / "report.jsonl").read_text().splitlines()]
    assert sorted(Path(r["file"]).name for r in report) == ["bad.wav", "cut.flac"]
    assert all(r["reason"] and not r["reason"].startswith(r["file"]) for r in report)

    (music / "a.wav").unlink()
    message = run_fails(capsys, "musika", "train-ae", music, "--out", tmp_path / "run2", "--preset", "debug",
                     "--steps", "1", "--workers", "0")  # fmt: skip
    assert "no usable training audio" in message and "bad.wav" in message


def test_render_checks_rate_and_output_before_rendering(tmp_path: Path, capsys) -> None:
    midi = _midi(tmp_path / "a.mid")
    for rate in ("1", "7999", "192001", "10000000"):
        assert "out of range (8000 to 192000 Hz)" in run_fails(capsys, "render", midi, tmp_path / "a.wav", "-r", rate)
    assert not (tmp_path / "a.wav").exists()
    assert "is also the input" in run_fails(capsys, "render", midi, midi, "--overwrite")
    run_ok("render", midi, tmp_path / "a.wav", "-r", "8000")
    assert sf.info(tmp_path / "a.wav").samplerate == 8000
    assert "a.wav: exists; pass --overwrite" in run_fails(capsys, "render", midi, tmp_path / "a.wav")
    run_ok("render", midi, tmp_path / "a.wav", "-r", "192000", "--overwrite")
    assert sf.info(tmp_path / "a.wav").samplerate == 192000


def _midi(path: Path) -> Path:
    import symusic

    score = symusic.Score(480)
    track = symusic.Track("piano", 0, False)
    track.notes.append(symusic.Note(0, 480, 60, 100))
    score.tracks.append(track)
    score.dump_midi(path)
    return path


def test_failed_file_operations_are_one_line_naming_the_path(model, tmp_path: Path, capsys, monkeypatch) -> None:
    import errno

    midi = _midi(tmp_path / "a.mid")
    (tmp_path / "file.txt").write_text("a file, not a folder")
    message = run_fails(capsys, "render", midi, tmp_path / "file.txt" / "out.wav")
    assert str(tmp_path / "file.txt") in message and ("Not a directory" in message or "File exists" in message)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("orchestrion.fileio.os.fsync", disk_full)
    message = run_fails(capsys, "render", midi, tmp_path / "full.wav")
    assert f"{tmp_path / 'full.wav'}: No space left on device (the disk is full" in message
    [song] = _music(tmp_path / "music", ["song.wav"])
    message = run_fails(capsys, "musika", "reconstruct", song, tmp_path / "rec.wav", "--model", model)
    assert f"{tmp_path / 'rec.wav'}: No space left on device" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid", "file.txt", "music"], "no temporary left behind"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line(tmp_path: Path, capsys) -> None:
    midi = _midi(tmp_path / "a.mid")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        message = run_fails(capsys, "render", midi, locked / "out.wav")
    finally:
        locked.chmod(0o755)
    assert str(locked) in message and "Permission denied" in message


def test_a_decode_failing_part_way_closes_its_file_and_leaves_nothing(tmp_path: Path) -> None:
    from orchestrion.musika.inference import _write_wave_stream

    def pieces():
        yield torch.zeros(2, 5000)
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed") as failure:  # its traceback keeps the frames alive
        _write_wave_stream(tmp_path / "out.wav", pieces(), 0, 10_000)
    assert failure.traceback
    if Path("/proc/self/fd").is_dir():
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            except FileNotFoundError:  # the descriptor listdir itself used
                continue
        assert not [t for t in targets if str(tmp_path) in t], "the SoundFile handle was left open"
    assert list(tmp_path.iterdir()) == []


def test_spectrogram_pictures_use_a_log_frequency_axis_aligned_with_the_music() -> None:
    import matplotlib.pyplot as plt

    from orchestrion.musika.inference import LOWEST_SHOWN_HZ, spectrogram_comparison_figure

    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    figure = spectrogram_comparison_figure([("a", tone), ("b", tone)])
    try:
        axes = [axis for axis in figure.axes if axis.get_title()]
        assert [axis.get_yscale() for axis in axes] == ["log", "log"]
        assert axes[0].get_ylim() == pytest.approx((LOWEST_SHOWN_HZ, 11025.0))
        mesh = axes[0].collections[0]
        rows = np.asarray(mesh.get_array()).reshape(512, -1).mean(axis=1)
        assert abs((int(np.argmax(rows)) + 1) * 11025 / 512 - 440) < 11025 / 512  # bin k sits at k · 21.5 Hz
    finally:
        plt.close(figure)


def test_an_output_folder_that_is_a_file_is_refused_before_the_work(model, tmp_path: Path, capsys) -> None:
    [song] = _music(tmp_path / "music", ["song.wav"])
    taken = tmp_path / "taken.wav"
    taken.write_bytes(b"a file")
    assert f"{taken}: is a file; --out takes a folder" in run_fails(
        capsys, "musika", "encode", song, "--model", tmp_path / "no-model", "--out", taken
    )
    assert taken.read_bytes() == b"a file"
