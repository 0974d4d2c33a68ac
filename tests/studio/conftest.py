"""Fixtures of the studio tests: real debug-size models saved as run directories (the Musika GAN run
of the generation tests, the briefly trained SymphonyNet of the symbolic tests), real MIDI and
audio, and broken files of each kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from musika.gan_support import write_gan_run
from musika.train_support import melody
from orchestrion.audio.io import save_audio
from orchestrion.checkpoint import save_checkpoint
from orchestrion.symbolic.midi import parse_midi, save_midi
from orchestrion.symphony.config import SymphonyTrainingConfig
from orchestrion.system import torch_threads
from symphony.generate_support import corpus_midis, train_debug_model


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads on this shared machine (see gan_support.one_thread)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conditional (note density, tempo 80-180 BPM) debug latent-GAN run that holds its autoencoder."""
    return write_gan_run(tmp_path_factory.mktemp("studio_gan") / "run")


@pytest.fixture(scope="session")
def symphony_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with a real checkpoint of the briefly trained debug SymphonyNet."""
    model = train_debug_model(True)
    run = tmp_path_factory.mktemp("studio_symphony") / "run"
    save_checkpoint(run / "checkpoints" / "step_00000120",
                    config=SymphonyTrainingConfig.preset_config("debug", model=model.config), modules={"model": model})
    return run


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uploads: a two-track chorale excerpt, a melody WAV, and broken files."""
    folder = tmp_path_factory.mktemp("studio_inputs")
    score = parse_midi(corpus_midis()[0], "chorale")
    score.tracks = [score.tracks[0], score.tracks[3]]
    files = {
        "midi": save_midi(score, folder / "chorale.mid"),
        "audio": save_audio(folder / "melody.wav", melody(2.0, channels=2)),
        "corrupt_midi": folder / "corrupt.mid",
        "not_audio": folder / "notes.txt",
        "corrupt_audio": folder / "broken.wav",
    }
    files["corrupt_midi"].write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    files["not_audio"].write_text("these are words, not sound\n")
    files["corrupt_audio"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(20))
    return files


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the test item, so fixtures can save evidence of a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
