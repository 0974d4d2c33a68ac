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


def training_windows(pieces: list[np.ndarray], window: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` training rows ``(n, window, 6)`` as the recipe makes them: a start row, then up to
    ``window - 1`` rows from a random measure on with window-local (rel, mea), track ids permuted; PAD after."""
    from orchestrion.symbolic.mmr_decode import positions
    from orchestrion.symbolic.mmr_vocab import BAR_OFFSET, EOS, PAD, POS_OFFSET, TRACK_OFFSET

    out = np.full((n, window + 1, 6), PAD, np.int64)
    out[..., 4:] = 0
    for b in range(n):
        piece = pieces[rng.integers(len(pieces))]
        bars = np.flatnonzero((piece[:, 0] >= BAR_OFFSET) & (piece[:, 0] < POS_OFFSET))
        start = int(rng.choice(bars))
        rows = piece[start : start + window].astype(np.int64)
        rows = np.concatenate([rows, positions(rows)], axis=1)
        note = rows[:, 1] != PAD
        rows[note, 2] = TRACK_OFFSET + rng.permutation(40)[rows[note, 2] - TRACK_OFFSET]
        out[b, 0] = (EOS, EOS, EOS, EOS, 0, 0)
        out[b, 1 : len(rows) + 1] = rows
        if len(rows) < window:  # the piece ended: EOS target
            out[b, len(rows) + 1, :4] = EOS
    return out


@functools.cache
def train_debug_model(
    tempo_tokens: bool, bpe: MusicBPE | None = None, *, window: int = 64, max_mea_pos: int = 30,
    steps: int = 120, seed: int = 0,
):
    """A debug-size SymphonyModel trained briefly on the corpus pieces, so that it writes notes,
    track starts and positions (a randomly initialised one mostly opens bars)."""
    import torch
    import torch.nn.functional as F

    from orchestrion.symbolic.mmr_vocab import PAD
    from orchestrion.symphony.config import FIELDS, SymphonyConfig
    from orchestrion.symphony.model import SymphonyModel

    pieces = list(encoded_corpus(tempo_tokens))
    if bpe is not None:
        pieces = [bpe.apply(p) for p in pieces]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    config = SymphonyConfig.preset(
        "debug", window=window, tempo_tokens=tempo_tokens, max_rel_pos=80, max_mea_pos=max_mea_pos,
        event_vocab_size=bpe.vocab_size if bpe is not None else SymphonyConfig().event_vocab_size,
    )
    model = SymphonyModel(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = training_windows(pieces, window, rng, 8)
        batch[..., 4] = np.minimum(batch[..., 4], config.max_rel_pos)
        batch = torch.as_tensor(batch)
        source = batch[:, :-1].clone()
        source[(source[..., 5] > max_mea_pos)] = torch.tensor([PAD, PAD, PAD, PAD, 0, 0])
        logits = model(source)
        loss = sum(F.cross_entropy(logits[f].flatten(0, 1), batch[:, 1:, i].flatten(), ignore_index=PAD)
                   for i, f in enumerate(FIELDS))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()
