"""Symbolic metrics: identity on identical sets, and the right movement under controlled perturbations."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import symusic
from symusic.core import NoteTickList, ScoreTick
from typer.testing import CliRunner

from orchestrion.errors import DataError, OrchestrionError
from orchestrion.evaluation.symbolic_metrics import (
    SCALAR_FEATURES,
    evaluate_symbolic,
    jensen_shannon_bits,
    overlapping_area,
    piece_features,
    relative_overlapping_area,
)
from orchestrion.symbolic.midi import load_midi, save_midi

N_PIECES = 5


@pytest.fixture(scope="session")
def corpus_midi(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The five built-in demo pieces (chorale openings for choir, strings, woodwinds, brass, organ)."""
    from orchestrion.corpora import demo_midi

    return demo_midi(tmp_path_factory.mktemp("symbolic_corpus"), n=N_PIECES)


@pytest.fixture
def write_set(tmp_path: Path, corpus_midi: list[Path]) -> Callable[..., Path]:
    """Write the corpus pieces, each passed through ``transform``, into a new folder."""

    def write(name: str, transform: Callable[[ScoreTick], ScoreTick] = lambda score: score) -> Path:
        folder = tmp_path / name
        for path in corpus_midi:
            save_midi(transform(load_midi(path)), folder / path.name)
        return folder

    return write


def _drop_every_other_note(score: ScoreTick) -> ScoreTick:
    score = score.copy()
    for track in score.tracks:
        track.notes = NoteTickList([note for index, note in enumerate(track.notes) if index % 2 == 0])
    return score


def _all_piano(score: ScoreTick) -> ScoreTick:
    score = score.copy()
    for track in score.tracks:
        track.program = 0
    return score


def test_identical_sets_give_identity(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    report = evaluate_symbolic(reference, write_set("copy"), progress=False)
    assert set(report.overlapping_area) == {name for name, _, _ in SCALAR_FEATURES}
    for name, value in report.overlapping_area.items():
        assert value == pytest.approx(1.0, abs=1e-12), name
    assert report.pitch_class_histogram_jsd == pytest.approx(0.0, abs=1e-12)
    assert report.instrument_usage_jsd == pytest.approx(0.0, abs=1e-12)
    assert report.reference.pieces == report.generated.pieces == N_PIECES
    assert report.reference.mmr_valid_fraction == 1.0 and not report.skipped


def test_transposition_moves_pitch_features_only(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    report = evaluate_symbolic(reference, write_set("up5", lambda s: s.shift_pitch(5)), progress=False)
    ref, gen = report.reference, report.generated
    for name in ("lowest_pitch", "highest_pitch", "mean_pitch"):
        assert gen.means[name] == pytest.approx(ref.means[name] + 5), name
        assert report.overlapping_area[name] < 0.9, name
    assert report.overlapping_area["mean_pitch"] < 0.3
    np.testing.assert_allclose(gen.pitch_class_histogram, np.roll(ref.pitch_class_histogram, 5), atol=1e-12)
    assert report.pitch_class_histogram_jsd > 0.01  # a fourth up shares most pitch classes of a key
    # the shape of the pitch distribution and everything rhythmic stay as they were
    for name in ("pitch_range", "pitch_class_entropy", "note_density", "polyphony", "n_instruments"):
        assert report.overlapping_area[name] == pytest.approx(1.0, abs=1e-12), name
    assert report.instrument_usage_jsd == pytest.approx(0.0, abs=1e-12)


def test_note_dropout_lowers_density(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    report = evaluate_symbolic(reference, write_set("dropout", _drop_every_other_note), progress=False)
    ref, gen = report.reference, report.generated
    assert gen.means["note_density"] < 0.65 * ref.means["note_density"]
    assert gen.means["polyphony"] < ref.means["polyphony"]
    assert report.overlapping_area["note_density"] < 0.2
    assert report.instrument_usage_jsd < 0.01  # same instruments, half the notes each


def test_instrument_swap_changes_instrument_usage(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    report = evaluate_symbolic(reference, write_set("piano", _all_piano), progress=False)
    assert report.generated.instrument_usage == {0: 1.0}
    assert report.instrument_usage_jsd > 0.9  # the reference has no piano at all
    assert report.generated.means["n_instruments"] == 1.0 < report.reference.means["n_instruments"]
    assert report.overlapping_area["n_instruments"] < 0.75
    for name in ("mean_pitch", "note_density", "pitch_class_entropy"):
        assert report.overlapping_area[name] == pytest.approx(1.0, abs=1e-12), name


def test_piece_features_of_a_known_score(tmp_path: Path) -> None:
    # 120 bpm, tpq 480: a C major triad held 2 beats, then E alone for 2 beats; drums on every beat
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 120.0))
    piano = symusic.Track("piano", 0, False)
    for pitch in (60, 64, 67):
        piano.notes.append(symusic.Note(0, 960, pitch, 80))
    piano.notes.append(symusic.Note(960, 960, 76, 80))
    drums = symusic.Track("drums", 0, True)
    for beat in range(4):
        drums.notes.append(symusic.Note(beat * 480, 240, 36, 80))
    score.tracks.extend([piano, drums])
    features = piece_features(save_midi(score, tmp_path / "known.mid"))
    assert features.n_notes == 8 and features.instrument_notes == {0: 4, 128: 4}
    assert features.pitch_class_histogram[0] == features.pitch_class_histogram[7] == 0.25
    assert features.pitch_class_histogram[4] == 0.5
    assert features.pitch_class_entropy == pytest.approx(1.5)
    assert (features.lowest_pitch, features.highest_pitch, features.pitch_range) == (60, 76, 16)
    assert features.polyphony == pytest.approx(2.0)  # 3 notes for 1 s, 1 note for 1 s
    assert features.note_density == pytest.approx(8 / 2.0)  # 8 notes over 2 s
    assert features.mean_ioi == pytest.approx(0.5) and features.mean_note_beats == pytest.approx(2.0)
    assert features.mmr_valid and features.mmr_note_retention == 1.0
    transitions = np.array(features.pitch_class_transitions).reshape(12, 12)  # C → E → G → E, a third each
    assert transitions[0, 4] == transitions[4, 7] == transitions[7, 4] == pytest.approx(1 / 3)
    assert transitions.sum() == pytest.approx(1.0)


def test_mmr_retention_counts_split_notes_once_and_loses_duplicates(tmp_path: Path) -> None:
    score = symusic.Score(480)
    track = symusic.Track("piano", 0, False)
    track.notes.append(symusic.Note(0, 12 * 480, 48, 80))  # 12 beats: split into 4-beat pieces by MMR
    for beat in range(3):
        track.notes.append(symusic.Note(beat * 480, 480, 60, 80))
    score.tracks.append(track)
    assert piece_features(save_midi(score, tmp_path / "long.mid")).mmr_note_retention == 1.0
    track.notes.append(symusic.Note(0, 480, 60, 80))  # an exact duplicate of the first C4
    assert piece_features(save_midi(score, tmp_path / "duplicate.mid")).mmr_note_retention == pytest.approx(4 / 5)


def test_a_file_that_mmr_cannot_encode_counts_as_invalid(tmp_path: Path) -> None:
    score = symusic.Score(480)
    score.time_signatures.append(symusic.TimeSignature(0, 16, 4))  # 128 32nds: longer than MMR's 100
    track = symusic.Track("piano", 0, False)
    track.notes.append(symusic.Note(0, 480, 60, 80))
    score.tracks.append(track)
    features = piece_features(save_midi(score, tmp_path / "long_bar.mid"))
    assert not features.mmr_valid and features.mmr_note_retention == 0.0
    assert "MMR measures must be 1-100 32nds" in features.mmr_error


def test_overlapping_area_and_divergence_known_values() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal(1000), rng.standard_normal(1000) + 1.0
    assert overlapping_area(first, second) == pytest.approx(2 * 0.3085, abs=0.05)  # 2·Φ(−0.5)
    assert overlapping_area(first, first + 100.0) < 1e-6
    assert overlapping_area([4.0, 4.0], [4.0]) == 1.0 and overlapping_area([4.0], [5.0]) == 0.0
    assert math.isnan(overlapping_area([math.nan], [1.0, 2.0]))
    assert jensen_shannon_bits([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon_bits([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-12)


def test_relative_overlap_of_yang_and_lerch() -> None:
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((40, 12))
    assert relative_overlapping_area(reference, rng.standard_normal((40, 12))) > 0.8  # same distribution
    assert relative_overlapping_area(reference, rng.standard_normal((40, 12)) + 3.0) < 0.2  # far away
    assert math.isnan(relative_overlapping_area(reference[:1], reference))


def test_relative_overlap_drops_when_the_key_moves_a_tritone(write_set: Callable[..., Path]) -> None:
    reference = write_set("reference")
    same = evaluate_symbolic(reference, write_set("copy"), progress=False).relative_overlapping_area
    tritone = evaluate_symbolic(reference, write_set("tritone", lambda s: s.shift_pitch(6)), progress=False)
    # identical sets stay below 1: inter-set distances include each piece's 0 to its copy
    assert 0.5 < same["pitch_class_histogram"] < 1.0
    for name, value in tritone.relative_overlapping_area.items():
        assert value < same[name] - 0.1, name


def test_bad_midi_files_are_skipped_and_reported(write_set: Callable[..., Path], tmp_path: Path) -> None:
    reference = write_set("reference")
    generated = write_set("generated")
    (generated / "broken.mid").write_bytes(b"MThd garbage")
    (generated / "empty.mid").write_bytes(b"")
    report = evaluate_symbolic(reference, generated, progress=False)
    assert report.generated.pieces == N_PIECES
    reasons = {(s["set"], s["file"]): s["reason"] for s in report.skipped}
    assert reasons == {
        ("generated", "broken.mid"): reasons[("generated", "broken.mid")],
        ("generated", "empty.mid"): "empty file (0 bytes), not a MIDI file",
    }
    assert reasons[("generated", "broken.mid")].startswith("not a valid MIDI file")
    assert "Skipped 2 file(s)" in report.to_markdown()

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "broken.mid").write_bytes(b"not midi")
    with pytest.raises(OrchestrionError, match="no usable MIDI files"):
        evaluate_symbolic(reference, only_bad, progress=False)
    with pytest.raises(DataError, match="MIDI folder not found"):
        evaluate_symbolic(reference, tmp_path / "missing", progress=False)
    with pytest.raises(DataError, match="no MIDI files found"):
        evaluate_symbolic(reference, _folder_without_midi(tmp_path), progress=False)


def _folder_without_midi(tmp_path: Path) -> Path:
    folder = tmp_path / "no_midi"
    folder.mkdir()
    (folder / "notes.txt").write_text("no MIDI here")
    return folder


def test_cli_writes_markdown_and_json_and_protects_outputs(write_set: Callable[..., Path], tmp_path: Path) -> None:
    from orchestrion.cli import app

    reference, generated = write_set("reference"), write_set("up2", lambda s: s.shift_pitch(2))
    markdown, report = tmp_path / "symbolic.md", tmp_path / "symbolic.json"
    args = ["evaluate", "symbolic", str(reference), str(generated), "--markdown", str(markdown), "--json", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "overlapping area" in result.output
    assert markdown.read_text().startswith("# Symbolic evaluation")
    saved = json.loads(report.read_text())
    assert len(saved["pieces"]["generated"]) == N_PIECES and saved["overlapping_area"]["pitch_range"] == 1.0

    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "exists; pass --overwrite" in str(again.exception)
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    same = CliRunner().invoke(app, ["evaluate", "symbolic", str(reference), str(generated), "--markdown",
                                    str(tmp_path / "x.md"), "--json", str(tmp_path / "x.md")])
    assert same.exit_code != 0 and "name the same file" in str(same.exception)
