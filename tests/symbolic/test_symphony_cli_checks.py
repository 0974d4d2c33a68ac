"""``orchestrion symphony`` on the inputs a new user gets wrong: one red line and exit code 2, no
work done and no file touched; and the reports that must say what really happened."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from test_dataset_support import write_corpus
from test_mmr_support import make_score

from orchestrion.cli import main
from orchestrion.symbolic import mmr
from orchestrion.symbolic.dataset import TokenDataset
from orchestrion.symbolic.midi import load_midi, save_midi


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    """Run the console script's ``main`` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["orchestrion", "symphony", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def refused(monkeypatch, capsys, *args: object) -> str:
    """The one-line error of a command that must fail with exit code 2."""
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("check_midis")
    write_corpus(folder, 3, first_seed=40)
    return folder


@pytest.fixture(scope="module")
def data(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from orchestrion.symbolic.preprocess import tokenize_corpus

    out = tmp_path_factory.mktemp("check_data") / "data"
    tokenize_corpus(corpus, out, learn_bpe=10)
    return out


def test_roundtrip_refuses_to_write_over_its_input(monkeypatch, capsys, corpus: Path) -> None:
    source = sorted(corpus.glob("*.mid"))[0]
    before = digest(source)
    for extra in ((), ("--overwrite",)):
        err = refused(monkeypatch, capsys, "roundtrip", source, source, *extra)
        assert f"{source}: is also the input" in err
    assert digest(source) == before


@pytest.mark.parametrize("command", ["roundtrip", "detokenize", "pianoroll", "stats", "learn-bpe"])
def test_existing_outputs_are_replaced_only_with_overwrite(monkeypatch, capsys, corpus: Path, data: Path,
                                                           tmp_path: Path, command: str) -> None:
    source = sorted(corpus.glob("*.mid"))[0]
    out = tmp_path / {"roundtrip": "o.mid", "detokenize": "o.mid", "pianoroll": "o.png", "stats": "o.png",
                      "learn-bpe": "o.json"}[command]
    args = {
        "roundtrip": ["roundtrip", source, out],
        "detokenize": ["detokenize", data, "--piece", 0, "--out", out],
        "pianoroll": ["pianoroll", source, out],
        "stats": ["stats", data, "--png", out],
        "learn-bpe": ["learn-bpe", data, "--merges", 5, "--out", out],
    }[command]
    out.write_bytes(b"the user's own file")
    err = refused(monkeypatch, capsys, *args)
    assert f"{out}: exists; pass --overwrite to replace it" in err
    assert out.read_bytes() == b"the user's own file"
    code, _, err = run_main(monkeypatch, capsys, *args, "--overwrite")
    assert code == 0, err
    assert out.read_bytes() != b"the user's own file"


def test_overwrite_policy_is_in_the_help(monkeypatch, capsys) -> None:
    code, out, _ = run_main(monkeypatch, capsys, "--help")
    assert code == 0 and "never replaced unless" in out
    for command in ("roundtrip", "detokenize", "pianoroll", "stats", "learn-bpe"):
        code, out, _ = run_main(monkeypatch, capsys, command, "--help")
        assert code == 0 and "--overwrite" in out and "Replace the output file" in out


def test_tokenize_out_that_is_a_file(monkeypatch, capsys, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.write_text("notes")
    err = refused(monkeypatch, capsys, "tokenize", corpus, "--out", out)
    assert f"{out}: is a file; --out needs a new (or empty) folder" in err
    assert out.read_text() == "notes"


@pytest.mark.parametrize("workers", [0, -2])
@pytest.mark.parametrize("command", ["tokenize", "learn-bpe"])
def test_worker_counts_below_one_are_refused(monkeypatch, capsys, corpus: Path, tmp_path: Path, command: str,
                                             workers: int) -> None:
    args = ["tokenize", corpus, "--out", tmp_path / "d"] if command == "tokenize" else \
        ["learn-bpe", corpus, "--merges", 5, "--out", tmp_path / "b.json"]
    err = refused(monkeypatch, capsys, *args, "-j", workers)
    assert f"number of worker processes (-j/--workers) must be at least 1, got {workers}" in err
    assert list(tmp_path.iterdir()) == []


def test_worker_processes_never_outnumber_the_files(monkeypatch, corpus: Path) -> None:
    from orchestrion.symbolic import preprocess

    started: list[int] = []

    class Recorder(preprocess.ProcessPoolExecutor):
        def __init__(self, max_workers: int) -> None:
            started.append(max_workers)
            super().__init__(max_workers)

    monkeypatch.setattr(preprocess, "ProcessPoolExecutor", Recorder)
    table, skipped = preprocess.count_midi_words(corpus, workers=32)
    assert started == [3] and skipped.skipped == [] and len(table.counts) > 0


def test_stats_bins_and_piece_indices_are_checked(monkeypatch, capsys, data: Path, tmp_path: Path) -> None:
    for bins in ("0", "1000000"):
        assert f"--bins must be 1-200, got {bins}" in refused(monkeypatch, capsys, "stats", data, "--bins", bins)
    for piece in ("999", "3"):
        err = refused(monkeypatch, capsys, "pianoroll", data, tmp_path / "r.png", "--piece", piece)
        assert f"--piece {piece} is out of range, the dataset has 3 pieces (0-2)" in err
    for command in (["pianoroll", data, tmp_path / "r.png"], ["detokenize", data, "--out", tmp_path / "r.mid"]):
        err = refused(monkeypatch, capsys, *command, "--piece", "-1")
        assert "--piece must be 0 or more (pieces are numbered from 0), got -1" in err
    assert list(tmp_path.iterdir()) == []


def test_detokenize_refuses_empty_and_out_of_vocabulary_tokens(monkeypatch, capsys, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    np.save(tmp_path / "negative.npy", np.array([[-3, 5, 4, 4]], np.int32))
    np.save(tmp_path / "no_note.npy", np.array([[mmr.BASE_EVENT_VOCAB_SIZE - 1, 0, 0, 0]], np.int32))
    expected = {
        "empty.txt": "holds no tokens (0 steps); nothing to turn into MIDI",
        "negative.npy": "event id -3 at step 0 is outside the vocabulary (0-",
        "no_note.npy": "the 1 token steps hold no playable note",
    }
    for name, message in expected.items():
        err = refused(monkeypatch, capsys, "detokenize", tmp_path / name, "--out", tmp_path / "out.mid")
        assert f"{tmp_path / name}: {message}" in err
    assert not (tmp_path / "out.mid").exists()


def test_tokenize_accepts_a_single_midi_file(monkeypatch, capsys, corpus: Path, tmp_path: Path) -> None:
    source = sorted(corpus.glob("*.mid"))[1]
    code, _, err = run_main(monkeypatch, capsys, "tokenize", source, "--out", tmp_path / "one")
    assert code == 0, err
    dataset = TokenDataset(tmp_path / "one")
    assert len(dataset) == 1 and dataset.meta(0)["source"] == source.name
    np.testing.assert_array_equal(dataset.piece(0), mmr.encode(source).tokens)
    (tmp_path / "notes.txt").write_text("x")
    err = refused(monkeypatch, capsys, "tokenize", tmp_path / "notes.txt", "--out", tmp_path / "two")
    assert "notes.txt: not a .mid/.midi file; give a MIDI file or a folder of MIDI files" in err


def test_data_that_is_not_a_dataset_says_what_it_is(monkeypatch, capsys, corpus: Path, tmp_path: Path) -> None:
    source = sorted(corpus.glob("*.mid"))[0]
    err = refused(monkeypatch, capsys, "roundtrip", source, tmp_path / "o.mid", "--data", corpus)
    assert f"{corpus}: not a token dataset, it is a folder of MIDI files: make a token dataset with " \
           f"`orchestrion symphony tokenize {corpus} --out DATA`" in err
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    err = refused(monkeypatch, capsys, "stats", run)
    assert f"{run}: not a token dataset, it holds a model (checkpoint or training run)" in err


def test_music_bpe_says_why_it_learned_fewer_merges(monkeypatch, capsys, corpus: Path, tmp_path: Path) -> None:
    code, out, err = run_main(monkeypatch, capsys, "learn-bpe", corpus, "--merges", 1_000_000, "--out",
                              tmp_path / "m.json")
    assert code == 0, err
    learned = json.loads((tmp_path / "m.json").read_text())["merges"]
    text = " ".join(out.split())
    assert f"learned {len(learned):,} of the 1,000,000 merges asked for" in text
    assert "every note group (chord) in the corpus is a single token" in text
    code, out, err = run_main(monkeypatch, capsys, "tokenize", corpus, "--out", tmp_path / "d", "--learn-bpe",
                              1_000_000)
    assert code == 0, err
    assert f"learned {len(learned):,} of the 1,000,000 merges" in " ".join(out.split())


def test_roundtrip_with_data_uses_the_datasets_sparse_merge(monkeypatch, capsys, tmp_path: Path) -> None:
    from orchestrion.symbolic.preprocess import tokenize_corpus

    melody = [(480 * k, 480, 60 + k % 12) for k in range(60)]
    few = [(480 * k, 480, 72) for k in range(10)]  # a sparse track of the same instrument: merged into the first
    (tmp_path / "midi").mkdir()
    source = save_midi(make_score([(40, False, melody), (40, False, few)]), tmp_path / "midi" / "two.mid")
    tokenize_corpus(tmp_path / "midi", tmp_path / "data")
    code, out, err = run_main(monkeypatch, capsys, "roundtrip", source, tmp_path / "back.mid", "--data",
                              tmp_path / "data")
    assert code == 0, err
    assert re.search(r"sparse-track merge\s*│\s*on", out)
    assert len(load_midi(tmp_path / "back.mid").tracks) == 1
    np.testing.assert_array_equal(mmr.encode(tmp_path / "back.mid", merge_sparse_tracks=False).tokens,
                                  TokenDataset(tmp_path / "data").piece(0))
    code, out, _ = run_main(monkeypatch, capsys, "roundtrip", source, tmp_path / "plain.mid")
    assert code == 0 and re.search(r"sparse-track merge\s*│\s*off", out)
    assert len(load_midi(tmp_path / "plain.mid").tracks) == 2


def test_roundtrip_counts_source_notes_not_cut_pieces(monkeypatch, capsys, tmp_path: Path) -> None:
    notes = [(0, 480 * 10, 60), (480, 480, 64), (960, 480, 67)]  # a 10-beat note becomes 3 steps (4 + 4 + 2)
    source = save_midi(make_score([(0, False, notes)]), tmp_path / "long.mid")
    code, out, err = run_main(monkeypatch, capsys, "roundtrip", source, tmp_path / "back.mid")
    assert code == 0, err
    assert re.search(r"notes in the MIDI file\s*│\s*3\s", out)
    assert re.search(r"notes kept by MMR\s*│\s*3\s", out)
    assert re.search(r"note steps \(notes over 4 beats are cut\)\s*│\s*5 \(\+2 cut\)", out)


def test_pianoroll_of_a_dataset_piece_is_titled_by_its_file(monkeypatch, capsys, data: Path, tmp_path: Path) -> None:
    from orchestrion.symbolic import pianoroll

    titles: list[str] = []
    real = pianoroll.plot_pianoroll
    monkeypatch.setattr(pianoroll, "plot_pianoroll", lambda score, out, title: titles.append(title) or
                        real(score, out, title))
    code, _, err = run_main(monkeypatch, capsys, "pianoroll", data, tmp_path / "r.png", "--piece", 2)
    assert code == 0, err
    source = TokenDataset(data).meta(2)["source"]
    assert source.endswith(".mid") and titles == [f"{source} (piece 2 of {data})"]


def test_sparse_merge_help_states_the_encoders_thresholds() -> None:
    from orchestrion.symphony.cli import SPARSE_MERGE_HELP

    assert f"fewer than {mmr.SPARSE_TRACK_NOTES} notes" in SPARSE_MERGE_HELP
    assert f"more than {mmr.MIN_TRACK_NOTES} notes" in SPARSE_MERGE_HELP
