"""Shared material of the grammar / generation tests (no tests here): built-in corpus pieces
encoded as MMR with and without tempo tokens and Music BPE."""

from __future__ import annotations

import functools

import numpy as np
import symusic

from orchestrion.corpora.catalogue import corpus_pieces
from orchestrion.corpora.export import piece_midi
from orchestrion.symbolic import mmr
from orchestrion.symbolic.midi import parse_midi
from orchestrion.symbolic.music_bpe import MusicBPE


def keyboard_reduction(midi: bytes) -> bytes:
    """The piece with all its parts on one organ track plus the original parts: chords inside a
    track, which Music BPE merges (the corpus arrangements give every voice its own track)."""
    score = symusic.Score.from_midi(midi)
    organ = symusic.Track(name="organ", program=19, is_drum=False)
    for track in score.tracks:
        for n in track.notes:
            organ.notes.append(symusic.Note(n.time, n.duration, n.pitch, n.velocity))
    score.tracks.append(organ)
    return score.dumps_midi()


@functools.cache
def corpus_midis() -> tuple[bytes, ...]:
    """MIDI bytes of real pieces: the five demo arrangements, keyboard reductions of two chorales
    added to them, and a string quartet movement."""
    chorales = [piece_midi(p) for p in corpus_pieces("bach-chorales")[:2]]
    pieces = [*corpus_pieces("demo"), corpus_pieces("string-quartets")[0]]
    return (*(piece_midi(p) for p in pieces), *(keyboard_reduction(m) for m in chorales))


@functools.cache
def encoded_corpus(tempo_tokens: bool) -> tuple[np.ndarray, ...]:
    """The corpus pieces as plain MMR (no sparse-track merge, so every part stays a track)."""
    config = mmr.MMRConfig(tempo_tokens=tempo_tokens)
    return tuple(mmr.encode(parse_midi(m, f"piece{i}"), merge_sparse_tracks=False, config=config).tokens
                 for i, m in enumerate(corpus_midis()))


@functools.cache
def corpus_bpe(n_merges: int = 60) -> MusicBPE:
    """Music BPE merges learned on the plain corpus."""
    return MusicBPE().learn(MusicBPE.count_words(encoded_corpus(False)), n_merges=n_merges)
