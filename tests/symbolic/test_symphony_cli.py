"""End-to-end runs of the ``orchestrion symphony`` commands on generated multi-track MIDI files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_dataset_support import write_corpus
from typer.testing import CliRunner

from orchestrion.cli import app
from orchestrion.symbolic import mmr
from orchestrion.symbolic.dataset import TokenDataset, load_token_file
from orchestrion.symbolic.midi import load_midi
from orchestrion.symbolic.music_bpe import MusicBPE

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["symphony", *map(str, args)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli_midis")
    write_corpus(folder, 5, first_seed=20)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00")
    return folder


@pytest.fixture(scope="module")
def data(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli_data") / "data"
    output = invoke("tokenize", corpus, "--out", out, "--learn-bpe", 25, "--workers", 2, "--shard-files", 2)
    assert "files failed" in output and "report.jsonl" in output
    return out


def test_tokenize_and_stats(data: Path, tmp_path: Path) -> None:
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["counts"]["pieces"] == 5 and manifest["counts"]["files_failed"] == 1
    assert manifest["bpe"]["n_merges"] == 25
    png = tmp_path / "stats.png"
    output = invoke("stats", data, "--png", png)
    assert "compression" in output and "Violin" in output and "sequence length" in output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learn_bpe_from_midi_folder_and_from_dataset(corpus: Path, data: Path, tmp_path: Path) -> None:
    invoke("learn-bpe", corpus, "--merges", 25, "--out", tmp_path / "from_midi.json")
    output = invoke("learn-bpe", data, "--merges", 25, "--out", tmp_path / "from_data.json")
    assert "25 merges" in output
    from_midi, from_data = MusicBPE.load(tmp_path / "from_midi.json"), MusicBPE.load(tmp_path / "from_data.json")
    assert from_midi.merges == from_data.merges == TokenDataset(data).bpe.merges


def test_detokenize_dataset_piece_and_token_files(data: Path, corpus: Path, tmp_path: Path) -> None:
    dataset = TokenDataset(data)
    invoke("detokenize", data, "--piece", 1, "--out", tmp_path / "piece1.mid")
    expected = dataset.bpe.decode(dataset.piece(1))
    np.testing.assert_array_equal(mmr.encode(tmp_path / "piece1.mid", merge_sparse_tracks=False).tokens, expected)

    np.save(tmp_path / "bpe_tokens.npy", np.asarray(dataset.piece(1)))
    invoke("detokenize", tmp_path / "bpe_tokens.npy", "--data", data, "--out", tmp_path / "from_npy.mid")
    assert load_midi(tmp_path / "from_npy.mid").note_num() == load_midi(tmp_path / "piece1.mid").note_num()
    result = runner.invoke(app, ["symphony", "detokenize", str(tmp_path / "bpe_tokens.npy"), "--out",
                                 str(tmp_path / "x.mid")])
    assert result.exit_code != 0 and "Music BPE tokens" in str(result.exception)


def test_roundtrip_prints_fidelity_and_keeps_tokens(data: Path, corpus: Path, tmp_path: Path) -> None:
    source = sorted(corpus.glob("piece_*.mid"))[0]
    output = invoke("roundtrip", source, tmp_path / "back.mid", "--data", data, "--tokens", tmp_path / "t.txt")
    assert "BPE decode == MMR tokens" in output and "NO" not in output
    assert re.search(r"same tokens\s*│\s*yes", output) and re.search(r"notes back exactly.*100\.0%", output)
    bpe = TokenDataset(data).bpe
    tokens = mmr.encode(source, merge_sparse_tracks=False).tokens
    np.testing.assert_array_equal(load_token_file(tmp_path / "t.txt", bpe), bpe.apply(tokens))
    back = mmr.encode(tmp_path / "back.mid", merge_sparse_tracks=False).tokens
    np.testing.assert_array_equal(back, tokens)


def test_pianoroll_of_midi_and_tokens(data: Path, corpus: Path, tmp_path: Path) -> None:
    invoke("pianoroll", sorted(corpus.glob("piece_*.mid"))[0], tmp_path / "midi.png")
    invoke("pianoroll", data, tmp_path / "piece.png", "--piece", 0)
    for name in ("midi.png", "piece.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_user_errors_are_one_red_line_and_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "x.npy").write_bytes(b"junk")
    result = subprocess.run([sys.executable, "-m", "orchestrion.cli", "symphony", "detokenize",
                             str(tmp_path / "x.npy"), "--out", str(tmp_path / "x.mid")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert result.returncode == 2
    assert "x.npy: not a readable .npy token file" in result.stderr and "Traceback" not in result.stderr
