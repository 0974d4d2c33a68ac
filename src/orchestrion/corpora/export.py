"""Export built-in corpora to multi-track MIDI and render them to audio.

A piece is parsed from the music21 corpus, written to MIDI by music21 (tempo, time and key
signatures, dynamics as velocities), then read back with symusic, which
sets each track's General MIDI program and writes the final file. The written file is read
back once more and checked: one track per sounding part, each with its intended program and
at least one note. Files are written atomically and existing ones are skipped, so an
interrupted export resumes where it stopped.

Repeats are not expanded: every passage is played once, as written (both endings of a volta in
turn). music21's repeat expansion deep-copies the score per repeat, which takes over half an
hour on the multi-movement Beethoven quartet files, and fails on some encodings whose repeat
signs are unbalanced; for training data the expansion would only duplicate material.

Grace notes are left out. music21 writes a grace note as a note-on and note-off at one tick,
ordered so that MIDI readers pair its note-on with the next note-off of that pitch: in Haydn's
op. 1 no. 1/i the two appoggiaturas of bar 33 became notes held through bar 52 by violin 2
and viola. The principal notes keep their written time, so the export plays the score as notated
without its ornaments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from orchestrion.audio.io import SAMPLE_RATE
from orchestrion.corpora.catalogue import Piece, corpus_pieces
from orchestrion.errors import DataError
from orchestrion.fileio import atomic_write_bytes

if TYPE_CHECKING:
    import music21


def _strip_repeats(score: music21.stream.Score) -> None:
    """Replace repeat barlines by plain ones and drop repeat expressions (D.C., segno, ...)."""
    from music21 import bar, repeat

    for measure in score.recurse().getElementsByClass("Measure"):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(measure, side), bar.Repeat):
                setattr(measure, side, bar.Barline("regular"))
    for expression in list(score.recurse().getElementsByClass(repeat.RepeatExpression)):
        expression.activeSite.remove(expression)


def _strip_grace_notes(score: music21.stream.Score) -> None:
    """Remove grace notes (zero written length), which music21's MIDI export would hold on (see above)."""
    for note in list(score.recurse().notes):
        if note.duration.isGrace:
            note.activeSite.remove(note)


def _music21_midi_bytes(score: music21.stream.Score, piece: Piece) -> bytes:
    from music21.midi import translate

    _strip_repeats(score)
    _strip_grace_notes(score)
    try:
        return translate.streamToMidiFile(score).writestr()
    except Exception as error:  # music21 raises many unrelated types for scores it cannot translate
        raise DataError(f"{piece.source}: music21 cannot export this score to MIDI ({error})") from error


def piece_midi(piece: Piece) -> bytes:
    """The Standard MIDI File bytes of ``piece``: one track per sounding part, programs set."""
    import symusic
    from music21 import corpus

    try:
        score = corpus.parse(piece.source)
    except Exception as error:  # music21 raises many unrelated types for unreadable scores
        raise DataError(f"{piece.source}: music21 cannot parse this corpus score ({error})") from error
    if piece.measures is not None:
        score = score.measures(*piece.measures)
    parts = list(score.parts)
    if len(parts) != len(piece.programs):
        raise DataError(f"{piece.source}: expected {len(piece.programs)} parts, the score has {len(parts)}")
    # Tracks without notes are dropped below, so silent parts are removed here to keep tracks
    # and programs aligned by position.
    sounding = []
    for part, program in zip(parts, piece.programs, strict=True):
        if part.recurse().notes:
            sounding.append((part.partName or f"Part {len(sounding) + 1}", program))
        else:
            score.remove(part)
    midi = symusic.Score.from_midi(_music21_midi_bytes(score, piece))
    # music21 may leave note-less tracks (e.g. lyrics only) that symusic keeps apart.
    midi.tracks = [track for track in midi.tracks if track.note_num() > 0]
    if len(midi.tracks) != len(sounding):
        raise DataError(f"{piece.source}: MIDI export has {len(midi.tracks)} tracks for {len(sounding)} parts")
    for track, (name, program) in zip(midi.tracks, sounding, strict=True):
        track.name, track.program, track.is_drum = name, program, False
    data = midi.dumps_midi()
    _verify(data, sounding, piece)
    return data


def _verify(data: bytes, sounding: list[tuple[str, int]], piece: Piece) -> None:
    """Read the final bytes back and check tracks, programs, notes and tempo survived."""
    import symusic

    check = symusic.Score.from_midi(data)
    programs = [track.program for track in check.tracks]
    expected = [program for _, program in sounding]
    if programs != expected or any(track.note_num() == 0 or track.is_drum for track in check.tracks):
        raise DataError(f"{piece.source}: exported tracks have programs {programs}, expected {expected}")
    if len(check.tempos) == 0 or len(check.time_signatures) == 0:
        raise DataError(f"{piece.source}: exported MIDI lost its tempo or time signature")


def _selected(name: str, limit: int | None) -> list[Piece]:
    if limit is not None and limit < 0:
        raise DataError(f"--limit must be >= 0, got {limit}")
    pieces = corpus_pieces(name)
    return pieces if limit is None else pieces[:limit]


def _progress(enabled: bool) -> Progress:
    """A rich progress bar showing the current piece; ``enabled=False`` makes it invisible."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[piece]}"),
        disable=not enabled,
    )


def _write_piece(piece: Piece, path: Path) -> None:
    atomic_write_bytes(path, piece_midi(piece))


def _make_missing(label: str, jobs: list[tuple[str, Path, Callable[[Path], object]]], progress: bool) -> list[Path]:
    """Run ``make(path)`` for each ``(piece, path, make)`` whose file does not exist yet (restartable)."""
    with _progress(progress) as bar:
        task = bar.add_task(label, total=len(jobs), piece="")
        for piece, path, make in jobs:
            bar.update(task, piece=piece)
            if not path.exists():
                make(path)
            bar.advance(task)
    return [path for _, path, _ in jobs]


def export_corpus(
    name: str, out_dir: str | os.PathLike[str], limit: int | None = None, progress: bool = False
) -> list[Path]:
    """Export the first ``limit`` pieces (all if None) of corpus ``name`` to ``out_dir/<piece>.mid``.

    Deterministic (same bytes every run), atomic per file and restartable: files already in
    ``out_dir`` are kept and skipped. ``progress`` shows a rich progress bar. Returns the MIDI
    paths in corpus order.
    """
    out_dir = Path(out_dir)
    pieces = _selected(name, limit)  # a bad name or limit is refused before anything is created
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: is a file; give a folder for the MIDI files")
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(piece.id, out_dir / f"{piece.id}.mid", partial(_write_piece, piece)) for piece in pieces]
    return _make_missing(f"export {name}", jobs, progress)


def render_corpus(
    name: str,
    out_dir: str | os.PathLike[str],
    limit: int | None = None,
    sample_rate: int = SAMPLE_RATE,
    progress: bool = False,
) -> list[Path]:
    """Export corpus ``name`` to ``out_dir/midi/`` and render each piece to ``out_dir/<piece>.wav``.

    Audio is stereo 16-bit WAV at ``sample_rate`` Hz rendered with the default SoundFont and
    peak-normalised to -1 dBFS (so every file uses the full range without clipping). Existing
    WAV files are skipped. Returns the WAV paths in corpus order.
    """
    from orchestrion.audio.render import render_file

    out_dir = Path(out_dir)
    midi_paths = export_corpus(name, out_dir / "midi", limit=limit, progress=progress)
    render = partial(render_file, sample_rate=sample_rate, normalize=True)
    jobs = [(midi.stem, out_dir / f"{midi.stem}.wav", partial(render, midi)) for midi in midi_paths]
    return _make_missing(f"render {name}", jobs, progress)


def demo_midi(out_dir: str | os.PathLike[str], n: int = 3) -> list[Path]:
    """The first ``n`` pieces of the ``demo`` corpus as short multi-track MIDI files in ``out_dir``.

    Meant for tests of other areas: about 0.3 s per piece on first call (plus music21's import),
    instant when the files already exist. Each file has four tracks (8 bars, 15-25 s).
    """
    return export_corpus("demo", out_dir, limit=n)
