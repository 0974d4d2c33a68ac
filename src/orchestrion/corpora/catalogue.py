"""Which pieces each built-in corpus holds, and with which General MIDI programs.

All scores come from the corpus bundled inside the ``music21`` package (offline; no .mid
files there, so they are exported to MIDI by :mod:`orchestrion.corpora.export`). Piece lists
are derived from music21's own metadata cache and sorted, so they are the same on every
machine with the same music21 version.

Instrumentation choices (the scores themselves name voices or string parts only):

* ``bach-chorales``: every four-part Bach chorale, each voice (S, A, T, B) on General MIDI
  program 52 "Choir Aahs": the chorales are vocal music, and the quartets below already cover
  strings. All four tracks share one program ("repeatable instruments").
* ``string-quartets``: violin 40, violin 40, viola 41, cello 42.
* ``demo``: the opening eight bars of five chorales, each arranged for a different ensemble
  (choir, strings, woodwinds, brass, organ) so that tests see distinct and repeated programs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from orchestrion.errors import DataError

CHOIR_AAHS = 52
STRING_QUARTET_PROGRAMS = (40, 40, 41, 42)  # violin, violin, viola, cello
MUSIC21_LICENCE = (
    "music21: BSD-3-Clause; corpus scores: public domain in the US or licensed by their encoders, "
    "some non-commercial only (music21/corpus/license.txt)"
)


@dataclass(frozen=True)
class Piece:
    """One exportable piece.

    ``source`` is a music21 corpus path (e.g. ``"bach/bwv66.6.mxl"``); ``programs`` gives the
    General MIDI program (0-127) of each part in score order; ``measures`` optionally limits
    the export to an inclusive ``(first, last)`` measure range (measure 0 is a pickup).
    """

    id: str
    source: str
    programs: tuple[int, ...]
    measures: tuple[int, int] | None = None


@dataclass(frozen=True)
class CorpusInfo:
    """A built-in corpus as listed by ``orchestrion corpus list``."""

    name: str
    description: str
    source: str
    licence: str
    pieces: int


@dataclass(frozen=True)
class _Corpus:
    name: str
    description: str
    source: str
    licence: str
    pieces: Callable[[], list[Piece]]


def _natural_key(text: str) -> list[int | str]:
    """Sort "bwv4.8" before "bwv10.7": digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@functools.lru_cache(maxsize=1)
def _parts_per_score() -> dict[str, int]:
    """music21 corpus path → number of parts, from music21's bundled metadata cache (~1.5 s)."""
    from music21 import corpus

    bundle = corpus.corpora.CoreCorpus().metadataBundle
    if len(bundle) == 0:
        bundle.read()
    # bundle[:] takes one snapshot: iterating the bundle itself rebuilds its entry list per item.
    return {
        str(entry.sourcePath): int(entry.metadata.numberOfParts or 0) if entry.metadata else 0 for entry in bundle[:]
    }


def _four_part_scores(prefix: str) -> list[str]:
    """MusicXML scores under ``prefix`` with exactly four parts (Humdrum duplicates skipped)."""
    paths = [
        path
        for path, parts in _parts_per_score().items()
        if path.startswith(prefix) and path.endswith((".mxl", ".xml")) and parts == 4
    ]
    return sorted(paths, key=_natural_key)


def _piece_id(source: str) -> str:
    """ "beethoven/opus18no1/movement3.mxl" → "beethoven-opus18no1-movement3"."""
    return source.rsplit(".", 1)[0].replace("/", "-")


def _bach_chorales() -> list[Piece]:
    return [
        Piece(source.removeprefix("bach/").rsplit(".", 1)[0], source, (CHOIR_AAHS,) * 4)
        for source in _four_part_scores("bach/bwv")
    ]


def _string_quartets() -> list[Piece]:
    sources = [s for composer in ("haydn", "mozart", "beethoven") for s in _four_part_scores(f"{composer}/")]
    return [Piece(_piece_id(source), source, STRING_QUARTET_PROGRAMS) for source in sources]


_DEMO_PIECES = (
    Piece("bwv66.6-choir", "bach/bwv66.6.mxl", (CHOIR_AAHS,) * 4, (0, 8)),
    Piece("bwv40.6-strings", "bach/bwv40.6.mxl", STRING_QUARTET_PROGRAMS, (0, 8)),
    Piece("bwv26.6-woodwinds", "bach/bwv26.6.mxl", (73, 68, 71, 70), (0, 8)),  # flute, oboe, clarinet, bassoon
    Piece("bwv4.8-brass", "bach/bwv4.8.mxl", (56, 60, 57, 58), (0, 8)),  # trumpet, horn, trombone, tuba
    Piece("bwv57.8-organ", "bach/bwv57.8.mxl", (19,) * 4, (0, 8)),  # church organ
)

_CORPORA = {
    corpus.name: corpus
    for corpus in (
        _Corpus(
            "bach-chorales",
            "J. S. Bach's four-part chorales (SATB), each voice on GM Choir Aahs (52)",
            "music21 corpus: bach/bwv*.mxl with four parts",
            MUSIC21_LICENCE,
            _bach_chorales,
        ),
        _Corpus(
            "string-quartets",
            "String quartet movements by Haydn, Mozart and Beethoven: violin 40, violin 40, viola 41, cello 42",
            "music21 corpus: haydn/, mozart/, beethoven/ four-part MusicXML scores",
            MUSIC21_LICENCE,
            _string_quartets,
        ),
        _Corpus(
            "demo",
            "Opening eight bars of five Bach chorales for choir, strings, woodwinds, brass and organ (for tests)",
            "music21 corpus: bach/bwv66.6, 40.6, 26.6, 4.8, 57.8",
            MUSIC21_LICENCE,
            lambda: list(_DEMO_PIECES),
        ),
    )
}


def corpus_names() -> list[str]:
    """Names accepted by :func:`corpus_pieces`, in listing order."""
    return list(_CORPORA)


def corpus_pieces(name: str) -> list[Piece]:
    """The pieces of corpus ``name`` in their fixed export order."""
    if name not in _CORPORA:
        raise DataError(f"unknown corpus {name!r} (available: {', '.join(_CORPORA)})")
    return _CORPORA[name].pieces()


def list_corpora() -> list[CorpusInfo]:
    """Every built-in corpus with its description, origin, licence and number of pieces."""
    return [CorpusInfo(c.name, c.description, c.source, c.licence, len(c.pieces())) for c in _CORPORA.values()]
