"""`orchestrion symphony generate` and `orchestrion symphony orchestrate` on a saved trained run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import symusic
import torch
from generate_support import corpus_midis, train_debug_model
from typer.testing import CliRunner

from orchestrion.checkpoint import save_checkpoint
from orchestrion.cli import app
from orchestrion.errors import CheckpointError, MidiError, OrchestrionError
from orchestrion.musika.config import Level1Config
from orchestrion.symbolic.dataset import load_token_file
from orchestrion.symbolic.midi import parse_midi, save_midi
from orchestrion.symphony.config import SymphonyTrainingConfig
from orchestrion.symphony.generate import GenerationError
from orchestrion.system import torch_threads

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding a real checkpoint of the briefly trained debug model."""
    model = train_debug_model(True)
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(run / "checkpoints" / "step_00000120",
                    config=SymphonyTrainingConfig.preset_config("debug", model=model.config), modules={"model": model})
    return run


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("midi")
    score = parse_midi(corpus_midis()[0], "demo0")
    score.tracks = [score.tracks[0], score.tracks[3]]
    save_midi(score, folder / "prompt.mid")
    quartet = parse_midi(corpus_midis()[5], "quartet")
    for track in quartet.tracks:
        track.program = 0
    save_midi(quartet, folder / "unlabelled.mid")
    (folder / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    return folder


def invoke(*args: object) -> str:
    result = runner.invoke(app, ["symphony", *map(str, args)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return " ".join(result.output.split())  # rich wraps lines at the terminal width


def fails(error: type[OrchestrionError], pattern: str, *args: object) -> None:
    result = runner.invoke(app, ["symphony", *map(str, args)])
    assert isinstance(result.exception, error), f"{result.output}\n{result.exception!r}"
    assert re.search(pattern, str(result.exception)), str(result.exception)


def test_generate_writes_midi_tokens_and_audio_reproducibly(run_dir: Path, tmp_path: Path) -> None:
    out, wav, tokens = tmp_path / "new.mid", tmp_path / "new.wav", tmp_path / "new.npy"
    text = invoke("generate", "--model", run_dir, "--out", out, "--bars", 4, "--seed", 3, "--top-p", 0.95,
                  "--render", wav, "--tokens", tokens)
    assert "instruments" in text and "4 new bars after 0 prompt bars" in text
    score = symusic.Score(str(out))
    assert score.note_num() > 0
    assert sum(len(i.notes) for i in pretty_midi.PrettyMIDI(str(out)).instruments) == score.note_num()
    assert wav.stat().st_size > 1000
    assert len(load_token_file(tokens)) > 10
    first = out.read_bytes()
    invoke("generate", "--model", run_dir, "--out", out, "--bars", 4, "--seed", 3, "--top-p", 0.95, "--overwrite")
    assert out.read_bytes() == first


def test_generate_continues_a_prompt_with_chosen_instruments(run_dir: Path, midi_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "more.mid"
    text = invoke("generate", "--model", run_dir, "--prompt", midi_dir / "prompt.mid", "--prompt-bars", 2,
                  "--max-steps", 120, "--instruments", "Violin,Cello", "--out", out)
    assert "after 2 prompt bars" in text and "prompt" in text
    programs = {t.program for t in symusic.Score(str(out)).tracks}
    assert 52 in programs and programs <= {52, 40, 42}  # prompt choir kept, new tracks violin/cello


def test_generate_several_samples_in_one_batch(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "take.mid"
    text = invoke("generate", "--model", run_dir, "--out", out, "--max-steps", 60, "--num-samples", 3, "--seed", 5)
    for k in (1, 2, 3):
        assert symusic.Score(str(tmp_path / f"take_{k}.mid")).note_num() > 0
        assert f"take_{k}.mid" in text and f"seed {4 + k}" in text
    assert not out.exists()


def test_orchestrate_sets_programs_and_keeps_notes(run_dir: Path, midi_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "orchestrated.mid"
    text = invoke("orchestrate", midi_dir / "unlabelled.mid", "--model", run_dir, "--out", out, "--argmax")
    assert "probability" in text
    before, after = symusic.Score(str(midi_dir / "unlabelled.mid")), symusic.Score(str(out))
    assert len(after.tracks) == len(before.tracks)
    for a, b in zip(before.tracks, after.tracks, strict=True):
        np.testing.assert_array_equal(a.notes.numpy()["pitch"], b.notes.numpy()["pitch"])
        np.testing.assert_array_equal(a.notes.numpy()["time"], b.notes.numpy()["time"])


def test_bad_inputs_give_one_clear_error(run_dir: Path, midi_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.mid"
    fails(CheckpointError, "no such checkpoint or run directory", "generate", "--model", tmp_path / "nope",
          "--out", out)
    other = tmp_path / "musika"
    save_checkpoint(other / "checkpoints" / "step_00000001", config=Level1Config(),
                    modules={"model": torch.nn.Linear(1, 1)})
    fails(CheckpointError, "not a SymphonyNet model", "generate", "--model", other, "--out", out)
    fails(MidiError, "corrupt.mid", "generate", "--model", run_dir, "--prompt", midi_dir / "corrupt.mid",
          "--out", out)
    fails(GenerationError, r"prompt.mid: the prompt's first \d+ bars are \d+ steps; .*--prompt-bars",
          "generate", "--model", run_dir, "--prompt", midi_dir / "prompt.mid", "--out", out)
    fails(GenerationError, "unknown instrument 'Kazoo'; use a program number 0-128 or one of: Acoustic Grand Piano",
          "generate", "--model", run_dir, "--instruments", "Violin,Kazoo", "--out", out)
    fails(GenerationError, "either --bars or --max-steps", "generate", "--model", run_dir, "--out", out,
          "--bars", 2, "--max-steps", 9)
    fails(GenerationError, "--prompt-bars and --prompt-chords need --prompt", "generate", "--model", run_dir,
          "--out", out, "--prompt-chords", 2)
    out.write_bytes(b"keep me")
    fails(OrchestrionError, "exists; pass --overwrite", "generate", "--model", run_dir, "--out", out)
    fails(OrchestrionError, "is also the input", "orchestrate", midi_dir / "prompt.mid", "--model", run_dir,
          "--out", midi_dir / "prompt.mid", "--overwrite")
    assert out.read_bytes() == b"keep me"
