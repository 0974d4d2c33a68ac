"""orchestrion.corpora: catalogue, MIDI export, rendering and the `orchestrion corpus` commands."""

from __future__ import annotations

import numpy as np
import pytest
import symusic
from typer.testing import CliRunner

from orchestrion.audio.io import SAMPLE_RATE, audio_info, load_audio
from orchestrion.cli import app
from orchestrion.corpora import (
    corpus_pieces,
    demo_midi,
    export_corpus,
    list_corpora,
    piece_midi,
    render_corpus,
)
from orchestrion.errors import DataError


def test_list_corpora_describes_every_corpus():
    infos = {info.name: info for info in list_corpora()}
    assert {"bach-chorales", "string-quartets", "demo"} <= set(infos)
    assert infos["bach-chorales"].pieces >= 340  # every four-part chorale in music21's corpus
    assert infos["string-quartets"].pieces >= 40
    assert infos["demo"].pieces == 5
    for info in infos.values():
        assert info.description and "music21" in info.source and "BSD" in info.licence


def test_piece_lists_are_stable_and_well_formed():
    chorales = corpus_pieces("bach-chorales")
    assert chorales == corpus_pieces("bach-chorales")
    # Natural BWV order (bwv1.6 has extra instrumental parts, so it is not a four-part chorale).
    assert [p.id for p in chorales[:3]] == ["bwv2.6", "bwv3.6", "bwv4.8"]
    catalogue_numbers = [int(p.id.removeprefix("bwv").split(".")[0].split("-")[0]) for p in chorales]
    assert catalogue_numbers == sorted(catalogue_numbers)
    assert len({p.id for p in chorales}) == len(chorales)
    assert all(p.programs == (52, 52, 52, 52) for p in chorales)
    quartets = corpus_pieces("string-quartets")
    assert all(p.programs == (40, 40, 41, 42) for p in quartets)
    assert {p.id.split("-")[0] for p in quartets} == {"haydn", "mozart", "beethoven"}
    assert not any(p.source.endswith(".krn") for p in quartets)  # Humdrum duplicates of MusicXML skipped


def test_demo_export_keeps_tracks_programs_tempo_and_metre(demo_dir):
    paths = sorted(demo_dir.glob("*.mid"))
    assert len(paths) == 5
    for piece in corpus_pieces("demo"):
        score = symusic.Score(demo_dir / f"{piece.id}.mid")
        assert [track.program for track in score.tracks] == list(piece.programs)
        assert all(track.note_num() > 10 and not track.is_drum for track in score.tracks)
        assert len(score.tempos) >= 1 and len(score.time_signatures) >= 1
        seconds = score.to("second").end()
        assert 8 < seconds < 40  # eight bars
    organ = symusic.Score(demo_dir / "bwv57.8-organ.mid")
    assert (organ.time_signatures[0].numerator, organ.time_signatures[0].denominator) == (3, 4)
    chorale = symusic.Score(demo_dir / "bwv66.6-choir.mid")
    assert chorale.tempos[0].qpm == pytest.approx(96)  # the score's metronome mark survives


def test_export_is_deterministic_restartable_and_limited(tmp_path, demo_dir):
    first = export_corpus("demo", tmp_path / "a", limit=2)
    assert [p.name for p in first] == ["bwv66.6-choir.mid", "bwv40.6-strings.mid"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in first)
    for path in first:
        assert path.read_bytes() == (demo_dir / path.name).read_bytes()
    # Restart: an existing (complete, atomically written) file is kept, missing ones are made.
    marker = b"kept"
    first[0].write_bytes(marker)
    again = export_corpus("demo", tmp_path / "a", limit=3)
    assert first[0].read_bytes() == marker
    assert len(again) == 3 and again[2].read_bytes() == (demo_dir / again[2].name).read_bytes()


def test_demo_midi_reuses_the_exported_files(demo_dir, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in demo_dir.iterdir()}

    def no_export(*args, **kwargs):
        raise AssertionError("the demo pieces were exported again")

    monkeypatch.setattr("orchestrion.corpora.export._write_piece", no_export)
    paths = demo_midi(demo_dir, n=3)
    assert [p.parent for p in paths] == [demo_dir] * 3
    assert {p: p.stat().st_mtime_ns for p in demo_dir.iterdir()} == before


def test_first_string_quartet_and_chorale_export(tmp_path):
    quartet = corpus_pieces("string-quartets")[0]
    score = symusic.Score.from_midi(piece_midi(quartet))
    assert [t.program for t in score.tracks] == [40, 40, 41, 42]
    assert score.note_num() > 500
    chorale = symusic.Score.from_midi(piece_midi(corpus_pieces("bach-chorales")[0]))
    assert [t.program for t in chorale.tracks] == [52, 52, 52, 52]


def test_render_corpus_writes_stereo_22k_wavs(tmp_path, demo_dir):
    paths = render_corpus("demo", tmp_path, limit=1)
    assert [p.name for p in paths] == ["bwv66.6-choir.wav"]
    assert (tmp_path / "midi" / "bwv66.6-choir.mid").exists()
    info = audio_info(paths[0])
    assert (info.sample_rate, info.channels) == (SAMPLE_RATE, 2)
    midi_seconds = symusic.Score(demo_dir / "bwv66.6-choir.mid").to("second").end()
    assert midi_seconds < info.duration < midi_seconds + 10  # plus the release tail
    peak = np.abs(load_audio(paths[0])).max()
    assert peak == pytest.approx(10 ** (-1 / 20), abs=2e-3)  # normalised to -1 dBFS


@pytest.mark.parametrize(("name", "limit", "message"), [("nope", None, "unknown corpus"), ("demo", -1, "limit")])
def test_bad_requests_raise_data_error(tmp_path, name, limit, message):
    with pytest.raises(DataError, match=message):
        export_corpus(name, tmp_path, limit=limit)


def test_corpus_cli_list_and_export(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["corpus", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    for name in ("bach-chorales", "string-quartets", "demo"):
        assert name in listed.output
    exported = runner.invoke(app, ["corpus", "export", "demo", str(tmp_path), "--limit", "2"])
    assert exported.exit_code == 0, exported.output
    assert sorted(p.name for p in tmp_path.glob("*.mid")) == ["bwv40.6-strings.mid", "bwv66.6-choir.mid"]


def test_repeats_are_played_once_even_when_malformed():
    # music21 cannot expand this movement's repeat signs; the export plays it through as written.
    from music21 import corpus, repeat
    from music21.midi import translate

    source = "haydn/opus74no1/movement3.mxl"
    parsed = corpus.parse(source)
    written_notes = sum(len(part.recurse().notes) for part in parsed.parts)
    with pytest.raises(repeat.ExpanderException):
        translate.streamToMidiFile(parsed)
    piece = next(p for p in corpus_pieces("string-quartets") if p.source == source)
    score = symusic.Score.from_midi(piece_midi(piece))
    assert [t.program for t in score.tracks] == [40, 40, 41, 42]
    # Chords add notes and tied notes merge, but nothing is repeated: close to the written count.
    assert written_notes * 0.9 <= score.note_num() <= written_notes * 1.5
    quarters = score.end() / score.tpq
    assert quarters == pytest.approx(parsed.highestTime, abs=4)  # the written length, not expanded


def test_haydn_quartet_export_matches_the_music21_score():
    """Op. 1 no. 1/i, every part: the MIDI notes are the score's notes (ties joined, voices kept,
    repeats once, grace notes left out), at the written onsets and lengths. Its two grace notes
    in bar 33 used to come out as notes held through bar 52 by violin 2 and viola."""
    import symusic
    from music21 import corpus

    from orchestrion.corpora.catalogue import Piece
    from orchestrion.corpora.export import piece_midi

    # The catalogue's entry, built directly: listing the corpus would scan all of music21's (~4 s).
    piece = Piece("haydn-opus1no1-movement1", "haydn/opus1no1/movement1.mxl", (40, 40, 41, 42), None)
    midi = symusic.Score.from_midi(piece_midi(piece)).to("quarter")
    score = corpus.parse(piece.source)
    assert sum(n.duration.isGrace for n in score.recurse().notes) == 2
    for part, track in zip(score.parts, midi.tracks, strict=True):
        written = sorted(
            (round(float(n.getOffsetInHierarchy(score)), 3), round(float(n.quarterLength), 3), p.midi)
            for n in part.stripTies().recurse().notes if not n.duration.isGrace for p in n.pitches
        )
        exported = sorted((round(n.time, 3), round(n.duration, 3), n.pitch) for n in track.notes)
        assert exported == written, track.name
        assert max(n.duration for n in track.notes) <= 6.0  # nothing held for bars (6/8: 3 quarters a bar)
