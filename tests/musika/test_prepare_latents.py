"""`orchestrion musika prepare-latents`: audio folder → stereo level-2 latent chunks with conditioning curves.

A debug autoencoder (level 1 and level 2, a few steps each) encodes a few seconds of a rendered
built-in chorale; chunks are 32 frames and the training window 16 frames, so seconds of audio suffice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from latent_support import write_latent_chunks
from safetensors.torch import load_file
from train_support import melody, write_rendered_excerpt
from typer.testing import CliRunner

from cli_support import run_fails
from orchestrion.audio.io import load_audio, save_audio
from orchestrion.cli import app
from orchestrion.errors import DataError, OrchestrionError
from orchestrion.musika.codec import PAD, encode_audio
from orchestrion.musika.inference import latent_digest
from orchestrion.musika.latent_data import LatentChunkDataset
from orchestrion.musika.latent_prepare import chunk_starts, prepare_latents, real_frame_range
from orchestrion.musika.models import load_autoencoder
from orchestrion.musika.train import train_autoencoder
from orchestrion.training import SampleKey

SR = 22050
CHUNK, WINDOW = 32, 16
OPTIONS = {"chunk_frames": CHUNK, "min_frames": WINDOW, "device": "cpu"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A tiny level-2 autoencoder and an audio folder: stereo, mono (nested), too short, corrupt."""
    root = tmp_path_factory.mktemp("prepare")
    excerpt = next(write_rendered_excerpt(root, seconds=6.0).glob("*.wav"))
    chorale = load_audio(excerpt)[0]  # mono
    # the whole chain a level-2 run needs, one step each (~15 s here: checkpoints and plots dominate)
    common = {"progress": False, "steps": 1, "batch_size": 2}
    train_autoencoder(excerpt.parent, root / "l1p1", level=1, phase=1, preset="debug", **common)
    train_autoencoder(excerpt.parent, root / "l1p2", level=1, phase=2, init=root / "l1p1", **common)
    train_autoencoder(excerpt.parent, root / "l2", level=2, phase=1, level1=root / "l1p2", preset="debug", **common)
    audio = root / "audio"
    stereo = np.stack([chorale[: 5 * SR], melody(5.0, seed=3)[0]])  # different left and right
    save_audio(audio / "stereo.wav", stereo, subtype="FLOAT")
    save_audio(audio / "nested" / "mono.wav", chorale[None, SR : 4 * SR], subtype="FLOAT")
    save_audio(audio / "short.wav", chorale[None, : SR], subtype="FLOAT")
    (audio / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio")
    out = root / "latents"
    result = CliRunner().invoke(
        app, ["musika", "prepare-latents", str(audio), "--model", str(root / "l2"), "--out", str(out),
              "--chunk-frames", str(CHUNK), "--min-frames", str(WINDOW), "--device", "cpu"],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    model = load_autoencoder(root / "l2")
    return {"root": root, "audio": audio, "out": out, "model": model, "stereo": stereo,
            "mono": chorale[SR : 4 * SR], "output": result.output}


def _chunks_of(out: Path, source: str) -> list[tuple[dict, dict[str, torch.Tensor]]]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [(c, load_file(str(out / c["file"]))) for c in manifest["chunks"] if c["source"] == source]


def test_manifest_chunk_shapes_and_the_cli_summary(setup):
    manifest = json.loads((setup["out"] / "manifest.json").read_text())
    model = setup["model"]
    assert manifest["format"] == "orchestrion.latent-chunks" and manifest["version"] == 1
    run = str((setup["root"] / "l2").resolve())  # absolute: train-gan finds the autoencoder from anywhere
    assert manifest["autoencoder"] == {"run": run, "digest": latent_digest(model), "level": 2}
    assert (manifest["latent_dim"], manifest["channels"], manifest["chunk_frames"]) == (8, 2, CHUNK)
    assert manifest["frames_per_second"] == pytest.approx(22050 / 2048)
    # stereo: 5 s → floor(5·22050 / 2048) − 1 = 52 real frames → chunks at 0 and at 52 − 32 = 20
    stereo = _chunks_of(setup["out"], "stereo.wav")
    assert [(c["start_frame"], c["frames"]) for c, _ in stereo] == [(0, 32), (20, 32)]
    # mono: 3 s → 31 real frames, fewer than one chunk: one chunk of its own length
    mono = _chunks_of(setup["out"], str(Path("nested") / "mono.wav"))
    assert [(c["start_frame"], c["frames"]) for c, _ in mono] == [(0, 31)]
    for entry, tensors in stereo + mono:
        assert tensors["latents"].shape == (16, entry["frames"]) and tensors["latents"].dtype == torch.float32
        for name in ("note_density", "tempo"):
            assert tensors[name].shape == (entry["frames"],)
    assert "3 chunks from 2 files" in " ".join(setup["output"].split())
    assert "2 files skipped" in " ".join(setup["output"].split())
    assert not (setup["out"] / ".staging").exists()


def test_left_and_right_differ_for_stereo_and_are_equal_for_mono(setup):
    (_, stereo), _ = _chunks_of(setup["out"], "stereo.wav")
    assert not torch.allclose(stereo["latents"][:8], stereo["latents"][8:], atol=1e-3)
    ((_, mono),) = _chunks_of(setup["out"], str(Path("nested") / "mono.wav"))
    assert torch.equal(mono["latents"][:8], mono["latents"][8:])


def test_chunks_hold_only_frames_of_real_audio(setup):
    model = setup["model"]
    wave = torch.from_numpy(setup["stereo"])
    first, stop = real_frame_range(wave.shape[-1], PAD, 2048)
    assert (first, stop) == (1, 53)  # frame 0 saw the 768 leading zeros, frame 53 the trailing ones
    full = encode_audio(wave, model.level1, model.level2)  # (2, 8, F) including padding frames
    chunks = _chunks_of(setup["out"], "stereo.wav")
    for entry, tensors in chunks:
        expected = full[..., first + entry["start_frame"] : first + entry["start_frame"] + entry["frames"]]
        torch.testing.assert_close(tensors["latents"], expected.reshape(16, -1), atol=1e-5, rtol=1e-5)
    # those frames do not depend on the padding: with real audio around the file they are the same
    before, after = melody(2048 * 3 / SR, seed=7, channels=2), melody(1.0, seed=8, channels=2)
    surrounded = torch.from_numpy(np.concatenate([before, setup["stereo"], after], axis=1))
    shifted = encode_audio(surrounded, model.level1, model.level2)[..., 3 + first : 3 + stop]
    torch.testing.assert_close(shifted, full[..., first:stop], atol=1e-5, rtol=1e-5)


def test_curves_are_normalised_over_the_whole_dataset(setup):
    chunks = _chunks_of(setup["out"], "stereo.wav") + _chunks_of(setup["out"], str(Path("nested") / "mono.wav"))
    density = torch.cat([t["note_density"] for _, t in chunks])
    assert density.min() >= 0 and density.max() <= 1
    assert density.max() == 1.0  # min-max normalisation with dataset-global constants
    for _, tensors in chunks:
        tempo = tensors["tempo"]
        assert tempo.min() >= 0 and tempo.max() <= 1 and torch.all(tempo == tempo[0])  # one BPM per file
    manifest = json.loads((setup["out"] / "manifest.json").read_text())
    info = manifest["conditions"]["note_density"]
    assert info["bandwidth_factor"] == 0.004 and info["log_min"] < info["log_max"]
    assert manifest["conditions"]["tempo"]["bpm_min"] == 60 and manifest["conditions"]["tempo"]["bpm_max"] == 200


def test_short_and_corrupt_files_are_skipped_and_reported(setup):
    report = [json.loads(line) for line in (setup["out"] / "report.jsonl").read_text().splitlines()]
    reasons = {entry["file"]: entry["reason"] for entry in report}
    assert set(reasons) == {"corrupt.wav", "short.wav"}
    assert "not a readable audio file or corrupt" in reasons["corrupt.wav"]
    assert reasons["short.wav"] == "too short: 1.0 s gives 9 latent frames, fewer than one training window of 16"


def test_the_folder_trains_the_gan_dataset(setup):
    dataset = LatentChunkDataset(setup["out"], crop_frames=WINDOW, autoencoder_digest=latent_digest(setup["model"]))
    item = dataset[SampleKey(0, 0)]
    assert item["latents"].shape == (16, WINDOW) and item["conditions"].shape == (2, WINDOW)


@pytest.mark.slow  # two analysis worker processes (each imports madmom)
def test_a_killed_run_resumes_to_the_same_result_and_never_leaves_a_manifest(setup, tmp_path):
    out = tmp_path / "latents"

    def killed_after_first(source: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_latents(setup["audio"], setup["root"] / "l2", out, on_file=killed_after_first, **OPTIONS)
    assert not (out / "manifest.json").exists() and (out / ".staging" / "progress.jsonl").is_file()
    seen: list[str] = []  # resumed with analysis in 2 worker processes: the same result
    manifest = prepare_latents(setup["audio"], setup["root"] / "l2", out, on_file=seen.append, jobs=2, **OPTIONS)
    assert len(seen) == 4
    reference = json.loads((setup["out"] / "manifest.json").read_text())
    assert manifest["chunks"] == reference["chunks"] and manifest["conditions"] == reference["conditions"]
    for entry in manifest["chunks"]:
        ours, theirs = load_file(str(out / entry["file"])), load_file(str(setup["out"] / entry["file"]))
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_the_output_folder_is_never_mixed(setup, tmp_path):
    l2 = setup["root"] / "l2"
    with pytest.raises(DataError, match="holds finished latent chunks; pass --overwrite"):
        prepare_latents(setup["audio"], l2, setup["out"], **OPTIONS)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=re.escape("is not empty and not a prepare-latents folder (notes.txt")):
        prepare_latents(setup["audio"], l2, foreign, **OPTIONS)
    unfinished = tmp_path / "unfinished"
    with pytest.raises(KeyboardInterrupt):
        prepare_latents(setup["audio"], l2, unfinished, on_file=lambda s: (_ for _ in ()).throw(KeyboardInterrupt),
                        **OPTIONS)
    with pytest.raises(DataError, match=re.escape("unfinished prepare-latents run with other settings (min_frames)")):
        prepare_latents(setup["audio"], l2, unfinished, chunk_frames=CHUNK, min_frames=8, device="cpu")
    with pytest.raises(DataError, match="lies inside the audio folder"):
        prepare_latents(setup["audio"], l2, setup["audio"] / "latents", **OPTIONS)


def test_bad_models_and_unusable_folders_give_one_clear_error(setup, tmp_path):
    with pytest.raises(DataError, match="is a level-1 autoencoder"):
        prepare_latents(setup["audio"], setup["root"] / "l1p2", tmp_path / "a", **OPTIONS)
    bad = tmp_path / "bad"
    save_audio(bad / "tiny.wav", melody(0.5), subtype="FLOAT")
    save_audio(bad / "silent.wav", np.zeros((2, 4 * SR), np.float32))
    (bad / "broken.flac").write_bytes(b"fLaC garbage")
    with pytest.raises(OrchestrionError, match=re.escape("no usable audio files")):
        prepare_latents(bad, setup["root"] / "l2", tmp_path / "b", **OPTIONS)
    report = [json.loads(line) for line in (tmp_path / "b" / "report.jsonl").read_text().splitlines()]
    assert {r["file"]: r["reason"].split(":")[0] for r in report} == {
        "broken.flac": f"{bad / 'broken.flac'}", "silent.wav": "digital silence (peak below -80 dBFS)",
        "tiny.wav": "too short",
    }
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_chunk_starts_cover_the_file_and_end_with_its_last_frames():
    assert chunk_starts(512, 512) == [0]
    assert chunk_starts(1024, 512) == [0, 512]
    assert chunk_starts(1100, 512) == [0, 512, 588]
    assert chunk_starts(300, 512) == [0]
    assert real_frame_range(2048 * 10, PAD, 2048) == (1, 10)
    assert real_frame_range(2048 * 10 - 1, PAD, 2048) == (1, 9)


def test_overwrite_removes_only_what_prepare_latents_wrote(tmp_path):
    from orchestrion.musika.latent_prepare import _open_output

    write_latent_chunks(tmp_path, frames=(16, 16))
    settings = {"audio_dir": "/a", "autoencoder_run": "r", "autoencoder_digest": "d", "chunk_frames": 16,
                "min_frames": 16}
    with pytest.raises(DataError, match="holds finished latent chunks"):
        _open_output(tmp_path, settings, overwrite=False)
    assert _open_output(tmp_path, settings, overwrite=True) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging"]


def test_cli_errors_are_one_line_with_exit_code_2(setup, tmp_path, capsys):
    def fails(*args: object) -> str:
        return run_fails(capsys, "musika", "prepare-latents", *args)

    assert "does not exist" in fails(tmp_path / "nowhere", "--model", setup["root"] / "l2", "--out", tmp_path / "o")
    assert "holds finished latent chunks; pass --overwrite" in fails(
        setup["audio"], "--model", setup["root"] / "l2", "--out", setup["out"], "--device", "cpu"
    )


def test_without_model_the_bundled_autoencoder_encodes(setup, tmp_path):
    """`prepare-latents DIR --out OUT` with no --model: the bundled model's autoencoder (a GAN run) makes the
    latents, so a user can train a GAN on their own music in the bundled latent space."""
    from orchestrion.pretrained import default_model_dir

    out = tmp_path / "latents"
    result = CliRunner().invoke(
        app, ["musika", "prepare-latents", str(setup["audio"] / "nested"), "--out", str(out),
              "--chunk-frames", "16", "--min-frames", "16", "--device", "cpu"],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    manifest = json.loads((out / "manifest.json").read_text())
    bundled = load_autoencoder(default_model_dir("musika"), accept_gan_run=True)
    assert manifest["autoencoder"]["run"] == str(default_model_dir("musika").resolve())
    assert manifest["autoencoder"]["digest"] == latent_digest(bundled)
    assert manifest["latent_dim"] == bundled.level2.config.latent_dim
