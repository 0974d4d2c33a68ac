"""Shipping trained runs: `orchestrion export` and the bundled-model registry that `--model` falls back to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_support import run_fails, run_ok
from musika.gan_support import one_thread, write_gan_run
from orchestrion import pretrained
from orchestrion.checkpoint import load_checkpoint, save_checkpoint
from orchestrion.errors import CheckpointError
from orchestrion.musika.generate import generate
from orchestrion.musika.models import load_autoencoder, load_latent_gan
from orchestrion.symphony.config import SymphonyConfig, SymphonyTrainingConfig
from orchestrion.symphony.model import SymphonyModel
from orchestrion.symphony.models import load_symphony


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gan_run(tmp_path_factory.mktemp("gan"))


@pytest.fixture(scope="module")
def symphony_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A debug SymphonyNet run on Music BPE tokens: its run directory holds music_bpe.json and split.json."""
    from symphony.generate_support import corpus_bpe

    run = tmp_path_factory.mktemp("symphony")
    bpe = corpus_bpe()
    torch.manual_seed(0)
    model = SymphonyModel(SymphonyConfig.preset("debug", event_vocab_size=bpe.vocab_size))
    save_checkpoint(run / "checkpoints" / "step_00000007",
                    config=SymphonyTrainingConfig.preset_config("debug", model=model.config), modules={"model": model},
                    state={"step": 7})
    bpe.save(run / "music_bpe.json")
    (run / "split.json").write_text(json.dumps({"train": ["a"], "valid": ["b"], "test": []}))
    return run


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def test_exported_gan_is_weights_only_half_precision_and_sounds_like_the_run(gan_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "shipped"
    run_ok("export", gan_run, "--out", out)
    ckpt = load_checkpoint(out)  # manifest verified
    assert set(ckpt.module_names) == {"level1_encoder", "level1_decoder", "level2_encoder", "level2_decoder",
                                      "generator_ema"}
    assert not (out / "state.safetensors").exists()
    dtypes = {name: {t.dtype for t in ckpt.module_state(name).values() if t.is_floating_point()}
              for name in ckpt.module_names}
    assert dtypes["level1_encoder"] == dtypes["level2_encoder"] == {torch.float32}  # the latent digest holds
    assert dtypes["generator_ema"] == dtypes["level1_decoder"] == {torch.float16}
    header = json.loads((out / "config.json").read_text())
    assert header["parameters"] == sum(t.numel() for n in ckpt.module_names for t in ckpt.module_state(n).values())

    original = generate(load_latent_gan(gan_run), 2.0, seed=3)
    shipped = generate(load_latent_gan(out), 2.0, seed=3)
    assert shipped.shape == original.shape
    assert _snr_db(original, shipped) > 30.0  # fp16 storage of decoders and generator
    assert load_autoencoder(out, accept_gan_run=True).level == 2
    with pytest.raises(CheckpointError, match="must be a Musika autoencoder run"):
        load_autoencoder(out)  # training a GAN still needs an autoencoder run


def test_exported_symphony_carries_its_music_bpe_under_the_manifest(symphony_run: Path, tmp_path: Path,
                                                                   capsys) -> None:
    out = tmp_path / "shipped"
    run_ok("export", symphony_run, "--out", out, "--fp32")
    trained = load_symphony(out)
    assert trained.bpe is not None and trained.bpe.vocab_size == trained.config.event_vocab_size
    original = load_symphony(symphony_run)
    for ours, theirs in zip(trained.model.state_dict().values(), original.model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    assert json.loads((out / "config.json").read_text())["trained_steps"] == 7
    # the Music BPE file is checksummed with the weights
    (out / "music_bpe.json").write_text((out / "music_bpe.json").read_text().replace("1", "2", 1))
    with pytest.raises(CheckpointError, match=r"music_bpe\.json does not match its sha256"):
        load_symphony(out)
    # an existing folder is replaced only with --overwrite, a non-model folder never, the run itself never
    assert "exists; pass --overwrite" in run_fails(capsys, "export", symphony_run, "--out", out)
    run_ok("export", symphony_run, "--out", out, "--overwrite")
    load_symphony(out)
    (tmp_path / "notes").mkdir()
    assert "is not a model folder" in run_fails(capsys, "export", symphony_run, "--out", tmp_path / "notes",
                                                "--overwrite")
    assert "holds the run being exported" in run_fails(capsys, "export", symphony_run, "--out", symphony_run.parent)


def test_commands_fall_back_to_the_bundled_model(gan_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    models = tmp_path / "models"
    monkeypatch.setattr(pretrained, "MODELS_DIR", models)
    message = run_fails(capsys, "musika", "generate", "--seconds", "1", "--out", tmp_path / "a.wav")
    assert "no bundled musika model in this install" in message and "pass --model" in message
    assert "no bundled symphony model" in run_fails(capsys, "symphony", "generate", "--out", tmp_path / "a.mid")
    assert pretrained.describe(pretrained.BUNDLED["musika-default"])["status"] == "not installed"

    pretrained.export_model(gan_run, models / "musika-default")
    run_ok("musika", "generate", "--seconds", "1", "--out", tmp_path / "a.wav", "--seed", "1")
    run_ok("musika", "reconstruct", tmp_path / "a.wav", tmp_path / "b.wav")  # the GAN's autoencoder
    info = pretrained.describe(pretrained.BUNDLED["musika-default"])
    assert info["trained_steps"] is None and info["parameters"] > 0 and info["megabytes"] > 0
    assert "model musika-default" in run_ok("info")
