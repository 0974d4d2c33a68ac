"""Baselines that give the evaluation report's numbers a scale: simple systems scored the same way.

Symbolic
    * :class:`NoteNGram`: an n-gram model over each track's notes, every note one token
      ``(pitch, duration, onset gap)`` on a grid of 1/12 beat (sixteenths and triplets both fall on
      it), durations and gaps capped at 8 beats. A track's history starts with a token naming its
      instrument (GM program, drums 128), so the first notes sit in the right register; after
      that the model sees only the previous ``order − 1`` notes of the same track. Probabilities
      are interpolated Kneser–Ney (absolute discount 0.75; Chen & Goodman, 1998) down to a
      continuation unigram that keeps a share for one unknown token, so every held-out note has a
      probability (``order=1`` is a plain add-one unigram). Sampling writes each track
      independently; the instrumentation, tempo and metre of a sampled piece are copied from a
      training piece drawn at random. It learns melody (pitch steps inside a voice) and rhythm, not
      harmony between voices: the point of the baseline.
    * :func:`shuffle_pitches`: a piece with the pitches of each pitched track permuted among its
      notes (onsets, durations, instruments and each voice's register kept; drums unchanged). Its
      pitch-class histogram and every per-piece pitch statistic are exactly the original's: only
      melodic order is destroyed, which only the pitch-class transition features can see.
    * :func:`first_bars`: the first ``bars`` bars of a score, so pieces of different lengths are
      compared at the same length.

Audio (for the Musika FAD)
    * :func:`latent_statistics` / :func:`random_latent_audio`: Gaussian level-2 latents with the
      per-dimension mean and standard deviation of real latents, clipped to the encoder's (−1, 1)
      range, decoded by the same autoencoder: what the decoder makes of latents without the GAN.
    * :func:`spectrum_matched_noise`: noise with exactly the magnitude spectrum (so the energy)
      of a real clip and uniform random phase: the right long-term timbre and loudness, but no
      notes, onsets or harmony.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from symusic.core import ScoreTick

from orchestrion.errors import DataError

if TYPE_CHECKING:
    from orchestrion.musika.models import TrainedAutoencoder

DRUM_PROGRAM = 128
DRUM_KEY_OFFSET = 128  # drum keys become tokens 128-255, apart from pitches 0-127
UNITS_PER_BEAT = 12  # the n-gram's time grid: 1/12 beat holds sixteenths (3) and eighth triplets (4)
MAX_UNITS = 8 * UNITS_PER_BEAT  # durations and onset gaps are capped at 8 beats
OUTPUT_TPQ = 480  # ticks per quarter of the scores the n-gram writes
UNKNOWN = 0  # token id of a note never seen in training
DISCOUNT = 0.75  # Kneser–Ney absolute discount (Chen & Goodman's usual value)

Note = tuple[int, int, int]  # (pitch, duration units, onset gap units)


# ---------------------------------------------------------------------------------------------
# Cutting and shuffling scores
# ---------------------------------------------------------------------------------------------


def bar_end_tick(score: ScoreTick, bars: int) -> int:
    """The tick where bar ``bars`` + 1 starts, counting from tick 0 with the score's time signatures."""
    from orchestrion.symbolic.midi import time_signature_changes

    if bars < 1:
        raise DataError(f"a number of bars must be ≥ 1, got {bars}")
    changes = time_signature_changes(score)
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0, 4, 4))  # the MIDI default before the first time signature
    tick = 0
    for _ in range(bars):
        _, numerator, denominator = next(change for change in reversed(changes) if change[0] <= tick)
        tick += max(1, round(score.ticks_per_quarter * numerator * 4 / denominator))
    return tick


def first_bars(score: ScoreTick, bars: int) -> ScoreTick:
    """The notes of ``score`` that start in its first ``bars`` bars, cut off at the end of the last one."""
    return score.clip(0, bar_end_tick(score, bars), clip_end=True)


def shuffle_pitches(score: ScoreTick, rng: np.random.Generator) -> ScoreTick:
    """A copy of ``score`` whose pitched tracks have their pitches permuted among their notes.

    Onsets, durations, velocities and instruments stay; each track keeps its own pitches (so its
    register and the piece's pitch-class histogram are unchanged); drum tracks are left as they are.
    """
    from symusic.core import NoteTickList

    shuffled = score.copy()
    for track in shuffled.tracks:
        if track.is_drum or len(track.notes) < 2:
            continue
        notes = track.notes.numpy()
        track.notes = NoteTickList.from_numpy(
            notes["time"], notes["duration"], rng.permutation(notes["pitch"]), notes["velocity"]
        )
    return shuffled


# ---------------------------------------------------------------------------------------------
# The n-gram note model
# ---------------------------------------------------------------------------------------------


def _units(ticks: np.ndarray, ticks_per_quarter: int) -> np.ndarray:
    return np.clip(np.round(ticks * UNITS_PER_BEAT / ticks_per_quarter), 0, MAX_UNITS).astype(np.int64)


def track_notes(score: ScoreTick) -> list[tuple[int, list[Note]]]:
    """Every track with notes as ``(program, notes)``; notes ordered by onset then pitch, as tokens
    ``(pitch, duration, gap to the previous onset of the track)`` in 1/12-beat units (the first
    gap counts from tick 0). Drums have program 128 and their keys are shifted by 128 (a drum hit
    never shares a token with a pitched note)."""
    out = []
    for track in score.tracks:
        notes = track.notes.numpy()
        if len(notes["time"]) == 0:
            continue
        order = np.lexsort((notes["pitch"], notes["time"]))
        onset = notes["time"][order].astype(np.int64)
        gaps = _units(np.diff(onset, prepend=0), score.ticks_per_quarter)
        durations = np.maximum(_units(notes["duration"][order].astype(np.int64), score.ticks_per_quarter), 1)
        pitches = notes["pitch"][order].astype(np.int64) + (DRUM_KEY_OFFSET if track.is_drum else 0)
        program = DRUM_PROGRAM if track.is_drum else int(track.program)
        out.append((program, list(zip(pitches.tolist(), durations.tolist(), gaps.tolist(), strict=True))))
    return out


@dataclass(frozen=True)
class PieceTemplate:
    """What a sampled piece copies from a training piece: tempo, metre and instruments."""

    qpm: float
    numerator: int
    denominator: int
    programs: tuple[int, ...]


def _template(score: ScoreTick) -> PieceTemplate:
    from orchestrion.symbolic.midi import tempo_changes, time_signature_changes

    tempi = tempo_changes(score)
    signatures = time_signature_changes(score)
    numerator, denominator = (signatures[0][1], signatures[0][2]) if signatures else (4, 4)
    programs = tuple(program for program, _ in track_notes(score))
    return PieceTemplate(float(tempi[0][1]) if tempi else 120.0, numerator, denominator, programs)


@dataclass
class NoteNGram:
    """An n-gram model of track notes, interpolated Kneser–Ney (see the module docstring).

    ``order`` 1 is an add-one unigram, the reference the higher orders must beat. On the default
    recipe's MIDI (394 training pieces, the 22 held-out ones scored) the held-out bits per note
    are 10.95 (unigram), 8.94 (bigram), 8.76 (trigram) and 8.73 (4-gram): the report uses order 3.
    Fit with :meth:`fit`, score
    with :meth:`bits_per_note`, draw pieces with :meth:`sample`.
    """

    order: int = 3
    vocabulary: list[Note] = field(default_factory=list)  # token id i + 1 (id 0 is UNKNOWN)
    # counts[k][context of k tokens][token]: raw counts for k = order − 1, continuation counts below
    counts: list[dict[tuple[int, ...], Counter]] = field(default_factory=list)
    base: np.ndarray = field(default_factory=lambda: np.zeros(0))  # lowest-order probabilities, (V + 1,)
    templates: list[PieceTemplate] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.order < 1:
            raise ValueError(f"an n-gram order must be ≥ 1, got {self.order}")
        self._index_vocabulary()

    def _index_vocabulary(self) -> None:
        self._ids: dict[Note, int] = {note: i + 1 for i, note in enumerate(self.vocabulary)}
        self._drum_tokens = np.array([pitch >= DRUM_KEY_OFFSET for pitch, _, _ in self.vocabulary], bool)

    def token(self, note: Note) -> int:
        """The id of ``note`` (UNKNOWN = 0 for a note never seen in training)."""
        return self._ids.get(note, UNKNOWN)

    def start(self, program: int) -> tuple[int, ...]:
        """The history before a track's first note: its instrument token (negative ids, never predicted)."""
        return (-1 - program,) * (self.order - 1)

    def fit(self, scores: Iterable[ScoreTick]) -> NoteNGram:
        """Count every track's notes of ``scores``; raises :class:`DataError` when there is no note."""
        tracks, templates = [], []
        for score in scores:
            notes = track_notes(score)
            if notes:
                tracks += notes
                templates.append(_template(score))
        if not tracks:
            raise DataError("the n-gram baseline needs training pieces with notes; none was given")
        self.vocabulary = sorted({note for _, notes in tracks for note in notes})
        self._index_vocabulary()
        size = len(self.vocabulary) + 1
        grams: set[tuple[int, ...]] = set()  # every distinct n-gram, n = 2 … order, of the padded tracks
        self.counts = [defaultdict(Counter) for _ in range(self.order)]
        unigram = np.zeros(size)
        for program, notes in tracks:
            padded = [*self.start(program), *(self._ids[note] for note in notes)]
            for i in range(self.order - 1, len(padded)):
                unigram[padded[i]] += 1
                if self.order > 1:
                    self.counts[-1][tuple(padded[i - self.order + 1 : i])][padded[i]] += 1
                grams.update(tuple(padded[i - n + 1 : i + 1]) for n in range(2, self.order + 1))
        self.templates = templates
        if self.order == 1:  # the add-one unigram
            self.base = (unigram + 1) / (unigram.sum() + size)
            return self
        # Kneser–Ney: a lower order counts the distinct tokens a gram follows, not how often it occurs
        continuation = np.zeros(size)
        for gram in grams:
            if len(gram) == 2:
                continuation[gram[1]] += 1
            else:
                self.counts[len(gram) - 2][gram[1:-1]][gram[-1]] += 1
        total, types = continuation.sum(), np.count_nonzero(continuation)
        self.base = np.maximum(continuation - DISCOUNT, 0) / total + DISCOUNT * types / total / size
        return self

    def probability(self, token: int, history: tuple[int, ...]) -> float:
        """P(token | the last order − 1 tokens of ``history``), interpolated Kneser–Ney."""
        probability = float(self.base[token])
        for k in range(1, self.order):
            following = self.counts[k].get(history[len(history) - k :])
            if not following:
                break  # an unseen shorter context has no longer one either
            total, types = sum(following.values()), len(following)
            probability = max(following[token] - DISCOUNT, 0) / total + DISCOUNT * types / total * probability
        return probability

    def bits_per_note(self, scores: Iterable[ScoreTick]) -> float:
        """Mean negative log2 probability of every note of ``scores`` (lower = the model predicts them better)."""
        if not self.vocabulary:
            raise ValueError("the n-gram model is not fitted")
        total, count = 0.0, 0
        for score in scores:
            for program, notes in track_notes(score):
                history = self.start(program)
                for note in notes:
                    token = self.token(note)
                    total -= math.log2(self.probability(token, history))
                    count += 1
                    history = (*history[1:], token) if self.order > 1 else history
        if count == 0:
            raise DataError("no note to score the n-gram model on")
        return total / count

    def _draw(self, history: tuple[int, ...], drums: bool, rng: np.random.Generator) -> int:
        """One token from the interpolated distribution, drawn level by level: from the discounted counts
        of the longest seen context with their weight ``1 − D·types / total``, else one order lower."""
        for k in range(self.order - 1, 0, -1):
            following = self.counts[k].get(history[len(history) - k :])
            if not following:
                continue
            tokens = list(following)
            discounted = np.maximum(np.fromiter(following.values(), float, len(tokens)) - DISCOUNT, 0)
            total = sum(following.values())
            if rng.random() < discounted.sum() / total:
                return int(tokens[rng.choice(len(tokens), p=discounted / discounted.sum())])
        # the lowest order without its unknown token (no note) and without notes of the other kind: a
        # drum track backing off to it must not draw a pitched note, nor a pitched track a drum hit
        weights = np.where(self._drum_tokens == drums, self.base[1:], 0.0)
        return int(rng.choice(len(weights), p=weights / weights.sum())) + 1

    def sample(self, bars: int, rng: np.random.Generator) -> ScoreTick:
        """A piece of ``bars`` bars: a training piece's tempo, metre and instruments, each track's
        notes drawn from the model until the end of the last bar (notes cut off there)."""
        import symusic
        from symusic.core import NoteTickList

        if not self.templates:
            raise ValueError("the n-gram model is not fitted")
        template = self.templates[int(rng.integers(len(self.templates)))]
        end = round(bars * template.numerator * 4 / template.denominator * UNITS_PER_BEAT)
        tick = OUTPUT_TPQ // UNITS_PER_BEAT
        score = symusic.Score(OUTPUT_TPQ)
        score.time_signatures.append(symusic.TimeSignature(0, template.numerator, template.denominator))
        score.tempos.append(symusic.Tempo(0, qpm=template.qpm))
        for program in template.programs:
            history, onset, notes = self.start(program), 0, []
            while True:
                token = self._draw(history, program == DRUM_PROGRAM, rng)
                pitch, duration, gap = self.vocabulary[token - 1]
                onset += gap
                if onset >= end:
                    break
                notes.append((onset, min(duration, end - onset), pitch % DRUM_KEY_OFFSET))
                history = (*history[1:], token) if self.order > 1 else history
            if not notes:
                continue
            columns = np.asarray(notes, np.int64).T
            track = symusic.Track(program=0 if program == DRUM_PROGRAM else program, is_drum=program == DRUM_PROGRAM)
            track.notes = NoteTickList.from_numpy(
                (columns[0] * tick).astype(np.int32), (columns[1] * tick).astype(np.int32),
                columns[2].astype(np.int8), np.full(len(notes), 80, np.int8),
            )
            score.tracks.append(track)
        return score


# ---------------------------------------------------------------------------------------------
# Audio baselines
# ---------------------------------------------------------------------------------------------


def latent_statistics(autoencoder: TrainedAutoencoder, waves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation ``(dim,)`` of the level-2 latents of mono ``waves``
    (each (L,) at 22.05 kHz), over every frame of every wave. Needs a level-2 autoencoder."""
    from orchestrion.musika.codec import encode_audio

    if autoencoder.level2 is None:
        raise DataError(f"{autoencoder.path}: random-latent decoding needs a level-2 autoencoder")
    if not waves:
        raise DataError("no audio to measure the latent statistics on")
    latents = [
        encode_audio(torch.as_tensor(np.asarray(w, np.float32)).reshape(1, -1), autoencoder.level1, autoencoder.level2)
        for w in waves
    ]
    frames = torch.cat([latent[0] for latent in latents], dim=-1).double()  # (dim, all frames)
    return frames.mean(-1).numpy(), frames.std(-1).numpy()


def random_latent_audio(
    autoencoder: TrainedAutoencoder, mean: np.ndarray, std: np.ndarray, seconds: float, seed: int
) -> np.ndarray:
    """``seconds`` of mono audio (L,) float32 at 22.05 kHz decoded from Gaussian level-2 latents
    ``N(mean, std²)`` per dimension, clipped to (−1, 1) like the encoder's outputs."""
    from orchestrion.audio.spectral import SAMPLE_RATE
    from orchestrion.musika.codec import PAD, decode_latents, padded_frames

    level1, level2 = autoencoder.level1, autoencoder.level2
    if level2 is None:
        raise DataError(f"{autoencoder.path}: random-latent decoding needs a level-2 autoencoder")
    samples = max(1, round(seconds * SAMPLE_RATE))
    frames = padded_frames(samples, level1.config.window_frames) // level2.config.ratio
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, len(mean), frames, generator=generator, dtype=torch.float64)
    latents = (torch.as_tensor(mean)[None, :, None] + torch.as_tensor(std)[None, :, None] * noise).clamp(-1.0, 1.0)
    wave = decode_latents(latents.float(), level1, level2, num_samples=samples, offset=PAD, seed=seed)
    return wave[0].numpy()


def spectrum_matched_noise(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise with the magnitude spectrum of the whole clip ``wave`` (L,) and uniform random phase.

    By Parseval it has the clip's energy exactly; peaks above full scale are clipped to ±1.
    """
    spectrum = np.fft.rfft(np.asarray(wave, np.float64))
    phase = rng.uniform(-np.pi, np.pi, len(spectrum))
    phase[0] = 0.0  # the DC and Nyquist bins of a real signal are real
    if len(wave) % 2 == 0:
        phase[-1] = 0.0
    noise = np.fft.irfft(np.abs(spectrum) * np.exp(1j * phase), n=len(wave))
    return np.clip(noise, -1.0, 1.0).astype(np.float32)

