"""Sampling SymphonyNet pieces of any length, continuing prompts, and automatic orchestration (spec §6).

Sampling (§6.2) runs the model in its recurrent form, one row per step. Before every draw the
logits are masked by the MMR grammar (:class:`~orchestrion.symphony.grammar.GrammarState`):
the event by what may follow, a note's duration to 1-32 32nds, its track to a legal track id. So
every sample is valid MMR; the reference instead samples freely and throws whole attempts away
on a violation. The event and duration are drawn with temperature and nucleus (top-p) sampling;
the track is the track head's argmax by default, as in the reference.

Any length (the reference stops at one 4096-step window). The model only ever saw windows of
``window`` rows whose measures are numbered from 1, so generation keeps one such window:

1. A window is the start row ``[EOS, EOS, EOS, EOS, 0, 0]`` plus the most recent rows; its
   ``(rel, mea)`` columns are computed by a fresh grammar state over those rows, measures
   numbered from 1, exactly as the data builder does for a training window.
2. When the next row would not fit (``window`` rows in all), or one more measure would pass the
   measure table (``max_mea_pos``), the window slides: it is re-primed, in one parallel pass
   (``model.prime``), with the latest *whole* measures that fill at most ``reprime_steps`` rows
   (half a window by default) and at most half the measure table, renumbered from 1. If even the
   current measure alone is too long, the window starts inside it, after the measure's header
   (BOM, chord, tempo) and the current segment's NT and POS, so it still parses.
3. Track ids and instruments stay consistent across windows: rows are kept verbatim (track ids
   are never renamed after the prompt's relabelling), the grammar of the whole piece (not only of
   the window) decides which track ids a new segment may take, and the instrument logits of a
   track are summed over all its notes in all windows.

Several pieces can be sampled together (:func:`generate_many`, ``--num-samples``): one batched
recurrent step per row for all of them, each with its own random stream (seed + k), grammar and
window; on a CPU a step mostly costs reading the weights, which the batch shares.

Orchestration (§6.3): the instrument head's logits at each note step are averaged per track; the
track's program is drawn by nucleus sampling (p = 0.9, T = 1) from that average, or taken as its
argmax. :func:`orchestrate` does the same for an existing multi-track MIDI file with teacher forcing.

Choices where the reference is silent: a prompt keeps its own instruments (its notes and programs
come out unchanged; ``keep_prompt_instruments=False`` re-orchestrates them as the reference does);
generation after a prompt starts a new measure, so the prompt's bars stay as they were; with
``bars`` the end-of-piece token is masked until that many bars are complete; a piece cut by
``max_steps`` is trimmed back to its last complete note or measure header.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from symusic.core import ScoreTick

from orchestrion.errors import MidiError, OrchestrionError
from orchestrion.symbolic import mmr
from orchestrion.symbolic.midi import load_midi
from orchestrion.symbolic.mmr_decode import decode
from orchestrion.symbolic.mmr_vocab import (
    BAR_OFFSET,
    CHORD_OFFSET,
    DRUM_PROGRAM,
    EOS,
    INSTRUMENT_OFFSET,
    INSTRUMENT_VOCAB_SIZE,
    MAX_BAR,
    MAX_TRACKS,
    PAD,
    POS_OFFSET,
    TRACK_OFFSET,
    TRACK_VOCAB_SIZE,
)
from orchestrion.symbolic.music_bpe import MusicBPE
from orchestrion.symphony.config import SymphonyConfig
from orchestrion.symphony.grammar import TRACK_ORDERS, EventKind, GrammarState, event_kind
from orchestrion.symphony.model import SymphonyModel, SymphonyState

START_ROW = (EOS, EOS, EOS, EOS, 0, 0)  # the row every training window starts with (§4.4)
DEFAULT_MAX_STEPS = 4090  # the reference's total length, used when neither bars nor max_steps is given
ORCHESTRATION_TOP_P = 0.9


class GenerationError(OrchestrionError):
    """Generation cannot run as asked (prompt too long, bad option, model/merges mismatch)."""


@dataclass(frozen=True)
class SamplingOptions:
    """How :func:`generate` samples.

    Attributes:
        temperature: divides the event and duration logits (> 0).
        top_p: nucleus mass kept for events and durations (0 < p ≤ 1; 1 = full distribution).
        seed: seeds every random choice (prompt track relabelling, sampling, orchestration); piece k
            of a batch (:func:`generate_many`) samples with seed + k.
        bars: number of bars to generate after the prompt (EOS is masked until then).
        max_steps: at most this many new rows (the piece is trimmed to its last complete point).
        track_choice: ``"argmax"`` (reference) or ``"sample"`` (temperature/top-p) for the track head.
        track_order: grammar of track ids within a measure (see :mod:`orchestrion.symphony.grammar`);
            ``"distinct"`` suits models trained with random track relabelling (the recipe's default).
        instruments: GM programs (0-127, 128 = drums) that generated tracks may be given; None = any.
        orchestration: ``"nucleus"`` (p = 0.9, reference) or ``"argmax"`` instrument choice per track.
        keep_prompt_instruments: prompt tracks keep their programs (else they are re-orchestrated).
        reprime_steps: rows kept when the window slides (default: half the window).
        prompt_chords: the reference's chord constraint (§6.2): the chords of the prompt's first K bars
            replace, in order, the first K chords the model samples (0 = off).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    bars: int | None = None
    max_steps: int | None = None
    track_choice: str = "argmax"
    track_order: str = "distinct"
    instruments: tuple[int, ...] | None = None
    orchestration: str = "nucleus"
    keep_prompt_instruments: bool = True
    reprime_steps: int | None = None
    prompt_chords: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise GenerationError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.prompt_chords < 0:
            raise GenerationError(f"prompt-chords must be ≥ 0, got {self.prompt_chords}")
        for name in ("bars", "max_steps", "reprime_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise GenerationError(f"{name.replace('_', '-')} must be ≥ 1, got {value}")
        if self.track_choice not in ("argmax", "sample"):
            raise GenerationError(f"track choice must be 'argmax' or 'sample', got {self.track_choice!r}")
        if self.track_order not in TRACK_ORDERS:
            raise GenerationError(f"track order must be one of {TRACK_ORDERS}, got {self.track_order!r}")
        if self.orchestration not in ("nucleus", "argmax"):
            raise GenerationError(f"orchestration must be 'nucleus' or 'argmax', got {self.orchestration!r}")
        if self.instruments is not None:
            if not self.instruments:
                raise GenerationError("the instrument list is empty")
            bad = [p for p in self.instruments if not 0 <= p <= DRUM_PROGRAM]
            if bad:
                raise GenerationError(f"instrument programs must be 0-127 or 128 (drums), got {bad}")


# --------------------------------------------------------------------------------------------
# Instrument names
# --------------------------------------------------------------------------------------------


def instrument_names() -> dict[str, int]:
    """Lower-case General MIDI instrument names (and ``drums``) → program (drums = 128)."""
    from pretty_midi import program_to_instrument_name

    names = {program_to_instrument_name(p).lower(): p for p in range(128)}
    names["drums"] = DRUM_PROGRAM
    return names


def parse_instruments(text: str) -> tuple[int, ...]:
    """Programs of a comma-separated list of GM names or numbers, e.g. ``"Violin, Cello, 71, drums"``.

    Raises:
        GenerationError: an unknown name, listing the valid ones.
    """
    names = instrument_names()
    programs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.isdigit() and 0 <= int(item) <= DRUM_PROGRAM:
            programs.append(int(item))
        elif item.lower() in names:
            programs.append(names[item.lower()])
        else:
            valid = ", ".join(sorted({n.title() for n in names}, key=lambda n: names[n.lower()]))
            raise GenerationError(f"unknown instrument {item!r}; use a program number 0-128 or one of: {valid}")
    if not programs:
        raise GenerationError(f"no instrument in {text!r}")
    return tuple(dict.fromkeys(programs))


def program_label(program: int) -> str:
    from orchestrion.symbolic.pianoroll import program_name

    return f"{program_name(program)} ({program})"


# --------------------------------------------------------------------------------------------
# Sampling helpers
# --------------------------------------------------------------------------------------------


def sample_masked(
    logits: torch.Tensor, allowed: np.ndarray, generator: torch.Generator, temperature: float = 1.0,
    top_p: float = 1.0,
) -> tuple[int, float]:
    """Draw one id from ``softmax(logits / T)`` restricted to ``allowed`` and to its top-p nucleus.

    Args:
        logits: (V,) float.
        allowed: (V,) bool, at least one True.

    Returns:
        The id and its probability under the masked (renormalised, pre-nucleus) distribution.
    """
    x = logits.detach().to("cpu", torch.float64) / temperature
    x = x.masked_fill(~torch.from_numpy(allowed), float("-inf"))
    probs = torch.softmax(x, dim=-1)
    kept = probs
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, 0) - sorted_probs >= top_p  # the first id is always kept
        kept = probs.clone()
        kept[order[outside]] = 0.0
    choice = int(torch.multinomial(kept, 1, generator=generator))
    return choice, float(probs[choice])


def argmax_masked(logits: torch.Tensor, allowed: np.ndarray) -> tuple[int, float]:
    """The most likely allowed id and its probability under the masked distribution."""
    x = logits.detach().to("cpu", torch.float64).masked_fill(~torch.from_numpy(allowed), float("-inf"))
    probs = torch.softmax(x, dim=-1)
    choice = int(torch.argmax(probs))
    return choice, float(probs[choice])


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


Row = tuple[int, int, int, int]


def _context_prefix(rows: list[Row], kinds: list[EventKind], cut: int) -> list[Row]:
    """Rows that make ``rows[cut:]`` parse from a fresh grammar state: nothing if ``rows[cut]`` opens
    a measure, else its measure's header steps and, inside a track segment, its NT and latest POS.
    ``kinds`` holds the event kind of every row."""
    bar = next(i for i in range(cut, -1, -1) if kinds[i] is EventKind.BAR)
    if bar == cut:
        return []
    header_end = next((i for i in range(bar, len(rows)) if kinds[i] is EventKind.TRACK), len(rows))
    if cut <= header_end:
        return rows[bar:cut]
    prefix = rows[bar:header_end]
    if kinds[cut] is not EventKind.TRACK:
        prefix.append(rows[next(i for i in range(cut, bar, -1) if kinds[i] is EventKind.TRACK)])
    if kinds[cut] is EventKind.NOTE:
        prefix.append(rows[next(i for i in range(cut, bar, -1) if kinds[i] is EventKind.POS)])
    return prefix


def _window_to_keep(rows: list[Row], max_rows: int, max_measures: int) -> list[Row]:
    """The latest whole measures of ``rows`` within ``max_rows`` rows and ``max_measures`` measures, or if
    the last measure alone is too long, the longest tail of it that fits after its context prefix
    (a prefix is at most 5 rows: BOM, chord, tempo, NT, POS)."""
    kinds = [event_kind(r[0]) for r in rows]
    bars = [i for i, k in enumerate(kinds) if k is EventKind.BAR]
    fitting = [b for k, b in enumerate(bars) if len(rows) - b <= max_rows and len(bars) - k <= max_measures]
    if fitting:
        return rows[fitting[0] :]
    for cut in range(max(bars[-1] + 1, len(rows) - max_rows), len(rows)):
        prefix = _context_prefix(rows, kinds, cut)
        if len(prefix) + len(rows) - cut <= max_rows:
            return prefix + rows[cut:]
    raise GenerationError(f"cannot keep any context in {max_rows} rows")  # unreachable for max_rows ≥ 6


class _Window:
    """What the model sees of one piece: the start row + recent rows with window-local (rel, mea).

    It produces model input rows; the caller runs the model (one sequence or a batch of them).
    """

    def __init__(self, config: SymphonyConfig, track_order: str, reprime_steps: int | None) -> None:
        self.config = config
        self.track_order = track_order
        self.keep_rows = min(reprime_steps or config.window // 2, config.window - 2)
        if self.keep_rows < 6:
            raise GenerationError(f"a window of {config.window} rows is too short to slide "
                                  f"(keeps {self.keep_rows} rows)")
        self.keep_measures = max(1, config.max_mea_pos // 3 // 2)
        if 3 * (self.keep_measures + 1) > config.max_mea_pos:
            raise GenerationError(f"the model's measure table (max_mea_pos {config.max_mea_pos}) holds fewer than two "
                                  "measures, too few to slide a window")
        self.rows: list[Row] = []
        self.grammar = self._fresh_grammar()
        self.n_windows = 0

    def _fresh_grammar(self) -> GrammarState:
        return GrammarState(self.config.event_vocab_size, tempo_tokens=self.config.tempo_tokens,
                            track_order=self.track_order)

    def start(self, rows: list[Row]) -> torch.Tensor:
        """Open a window holding ``rows``; returns its model rows ``(len(rows) + 1, 6)`` (start row first)."""
        grammar = self._fresh_grammar()
        cols = grammar.feed_many(np.asarray(rows, np.int64).reshape(-1, 4))
        self.grammar = grammar.with_limits(self.config.max_rel_pos, self.config.max_mea_pos)
        self.rows = list(rows)
        self.n_windows += 1
        full = np.concatenate([np.asarray(rows, np.int64).reshape(-1, 4), cols.astype(np.int64)], axis=1)
        full[:, 4] = np.minimum(full[:, 4], self.config.max_rel_pos)  # a prompt may hold longer segments
        return torch.as_tensor(np.concatenate([np.asarray([START_ROW]), full]))

    def push(self, row: Row) -> tuple[bool, torch.Tensor]:
        """Append a row (already checked against the whole piece's grammar).

        Returns ``(False, (6,) row)`` to feed one step, or ``(True, (n, 6) rows)`` when the window slid
        and the model must be primed afresh on them.
        """
        rel, mea = self.grammar.feed(row)
        self.rows.append(row)
        if len(self.rows) + 1 >= self.config.window or not self.grammar.can_open_measure():
            return True, self.start(_window_to_keep(self.rows, self.keep_rows, self.keep_measures))
        return False, torch.as_tensor([*row, min(rel, self.config.max_rel_pos), mea])


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------


@dataclass
class Prompt:
    """A prompt encoded for a model (§6.1).

    Attributes:
        tokens: (steps, 4) int32, Music BPE applied, track ids relabelled; the instrument column
            holds the prompt's programs.
        programs: relabelled track id (0-39) → GM program (128 = drums).
        n_bars: bars kept.
        source: file name for messages.
    """

    tokens: np.ndarray
    programs: dict[int, int]
    n_bars: int
    source: str


def relabel_tracks(tokens: np.ndarray, rng: np.random.Generator, track_order: str) -> tuple[np.ndarray, np.ndarray]:
    """Rename the track ids of note steps: a random permutation of the 40 ids (``"distinct"``, as in
    training) or random ids keeping their order (``"ascending"``). Returns tokens and the id map."""
    mapping = rng.permutation(MAX_TRACKS)
    if track_order == "ascending":
        used = np.unique(tokens[tokens[:, 1] != PAD, 2]) - TRACK_OFFSET
        mapping = np.arange(MAX_TRACKS)
        mapping[used] = np.sort(rng.choice(MAX_TRACKS, size=len(used), replace=False))
    out = tokens.copy()
    note = out[:, 1] != PAD
    out[note, 2] = TRACK_OFFSET + mapping[out[note, 2] - TRACK_OFFSET]
    return out, mapping


def encode_prompt(
    midi: str | os.PathLike[str] | ScoreTick,
    model: SymphonyModel,
    bpe: MusicBPE | None,
    *,
    bars: int | None = None,
    seed: int = 0,
    track_order: str = "distinct",
) -> Prompt:
    """Encode a prompt MIDI for ``model`` (§6.1): MMR without sparse-track merge, tempo steps as the model
    was trained, its first ``bars`` bars, Music BPE, random track relabelling (seeded).

    Raises:
        MidiError: the file cannot be read or holds nothing representable.
        GenerationError: the kept bars do not fit the model's window or measure table.
    """
    c = model.config
    name = "<score>" if isinstance(midi, ScoreTick) else str(midi)
    piece = mmr.encode(midi, merge_sparse_tracks=False, config=mmr.MMRConfig(tempo_tokens=c.tempo_tokens))
    tokens = bpe.apply(piece.tokens) if bpe is not None else piece.tokens  # merges never cross a bar
    if bars is not None and bars < 1:
        raise GenerationError(f"--prompt-bars must be ≥ 1, got {bars}")
    bar_rows = np.flatnonzero((tokens[:, 0] >= BAR_OFFSET) & (tokens[:, 0] < POS_OFFSET))
    n_bars = len(bar_rows) if bars is None else min(bars, len(bar_rows))
    ends = np.append(bar_rows[1:], len(tokens))
    max_rows, max_bars = c.window - 2, c.max_mea_pos // 3 - 1
    fits = [k + 1 for k in range(n_bars) if ends[k] <= max_rows and k + 1 <= max_bars]
    if len(fits) < n_bars:
        hint = (f"use --prompt-bars {fits[-1]} or fewer" if fits
                else "even its first bar is longer than that; use a sparser prompt")
        raise GenerationError(
            f"{name}: the prompt's first {n_bars} bars are {ends[n_bars - 1]} steps; this model takes at most "
            f"{max_rows} steps and {max_bars} bars of prompt (window {c.window}); {hint}"
        )
    tokens = tokens[: ends[n_bars - 1]]
    tokens, mapping = relabel_tracks(tokens, np.random.default_rng(seed), track_order)
    programs = {int(mapping[t]): p for t, p in enumerate(piece.programs)}
    return Prompt(tokens.astype(np.int32), programs, n_bars, name)


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackAssignment:
    """The instrument chosen for one track.

    ``probability`` is the chosen program's probability under the softmax of the track's
    averaged instrument logits (over the allowed programs).
    """

    track: int
    program: int
    probability: float
    n_notes: int
    source: str  # "prompt" (kept), "model" (predicted), "kept" (not predicted)


class InstrumentVotes:
    """Sums of instrument logits per track id over its note steps (§6.3)."""

    def __init__(self) -> None:
        self.sums = np.zeros((TRACK_VOCAB_SIZE, INSTRUMENT_VOCAB_SIZE), np.float64)
        self.counts = np.zeros(TRACK_VOCAB_SIZE, np.int64)

    def add(self, track_ids: np.ndarray, logits: torch.Tensor) -> None:
        """track_ids (N,) vocabulary ids of N note steps; logits (N, 133) predicted for them."""
        np.add.at(self.sums, np.asarray(track_ids), logits.detach().to("cpu", torch.float64).numpy())
        np.add.at(self.counts, np.asarray(track_ids), 1)

    def choose(
        self, track_id: int, allowed_programs: tuple[int, ...] | None, mode: str, generator: torch.Generator
    ) -> tuple[int, float]:
        """(program, probability) for one track: nucleus p = 0.9 at T = 1, or argmax."""
        allowed = np.zeros(INSTRUMENT_VOCAB_SIZE, bool)
        programs = range(DRUM_PROGRAM + 1) if allowed_programs is None else allowed_programs
        allowed[[INSTRUMENT_OFFSET + p for p in programs]] = True
        mean = torch.from_numpy(self.sums[track_id] / max(1, self.counts[track_id]))
        if mode == "argmax":
            ins, prob = argmax_masked(mean, allowed)
        else:
            ins, prob = sample_masked(mean, allowed, generator, 1.0, ORCHESTRATION_TOP_P)
        return ins - INSTRUMENT_OFFSET, prob

    def probability(self, track_id: int, program: int) -> float:
        mean = self.sums[track_id] / max(1, self.counts[track_id])
        p = np.exp(mean[INSTRUMENT_OFFSET:] - mean[INSTRUMENT_OFFSET:].max())
        return float(p[program] / p.sum())


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


@dataclass
class Generation:
    """A generated piece.

    Attributes:
        tokens: (steps, 4) int32 MMR rows (Music BPE ids if the model uses them), the instrument
            column filled from the orchestration; the first ``prompt_steps`` rows are the prompt.
        assignments: chosen instrument per track, ascending track id.
        stopped_by: ``"eos"``, ``"bars"`` or ``"max_steps"``.
        n_windows: model windows used (1 + number of slides).
    """

    tokens: np.ndarray
    assignments: list[TrackAssignment]
    prompt_steps: int
    stopped_by: str
    n_windows: int
    bpe: MusicBPE | None = field(repr=False, default=None)

    @property
    def n_bars(self) -> int:
        return int(((self.tokens[:, 0] >= BAR_OFFSET) & (self.tokens[:, 0] < POS_OFFSET)).sum())

    def plain_tokens(self) -> np.ndarray:
        """The rows with Music BPE tokens expanded into single pitches."""
        return self.bpe.decode(self.tokens) if self.bpe is not None else self.tokens

    def score(self) -> ScoreTick:
        """The piece as a score (480 ticks per quarter; §6.4)."""
        return decode(self.plain_tokens())


def _check_model(model: SymphonyModel, bpe: MusicBPE | None) -> None:
    expected = bpe.vocab_size if bpe is not None else mmr.BASE_EVENT_VOCAB_SIZE
    if model.config.event_vocab_size != expected:
        merges = f"its {bpe.n_merges} Music BPE merges" if bpe is not None else "plain MMR (no Music BPE merges)"
        raise GenerationError(f"the model has {model.config.event_vocab_size} event ids but {merges} give "
                              f"{expected}")


class _Sampler:
    """The sampling state of one piece: its grammar, window, rows, instrument votes and random stream."""

    def __init__(self, config: SymphonyConfig, options: SamplingOptions, prompt: Prompt | None, seed: int) -> None:
        self.options = options
        self.prompt = prompt
        self.generator = torch.Generator().manual_seed(seed)
        self.piece = GrammarState(config.event_vocab_size, tempo_tokens=config.tempo_tokens,
                                  track_order=options.track_order)
        self.window = _Window(config, options.track_order, options.reprime_steps)
        self.votes = InstrumentVotes()
        self.rows: list[Row] = []
        if prompt is not None:
            self.rows = [tuple(int(v) for v in r) for r in prompt.tokens.tolist()]
            if len(self.rows) + 2 > config.window:
                raise GenerationError(f"{prompt.source}: the prompt has {len(self.rows)} steps; the model's window "
                                      f"holds {config.window - 2}")
            self.piece.feed_many(prompt.tokens)
            if 3 * self.piece.n_measures + 3 > config.max_mea_pos:
                raise GenerationError(f"{prompt.source}: the prompt has {self.piece.n_measures} bars; the model's "
                                      f"measure table holds {config.max_mea_pos // 3 - 1} before a new one")
        self.n_prompt = len(self.rows)
        self.max_steps = options.max_steps or (DEFAULT_MAX_STEPS if options.bars is None else None)
        self.new_bars, self.complete_len, self.stopped_by = 0, len(self.rows), "max_steps"
        self.n_notes = self.piece.n_notes
        chords = [] if prompt is None else [int(e) for e in prompt.tokens[:, 0] if CHORD_OFFSET <= e < BAR_OFFSET]
        self.chord_plan = chords[: options.prompt_chords]
        self.event_vocab_size = config.event_vocab_size
        self.done = self.max_steps is not None and self.max_steps < 1

    def first_window(self) -> torch.Tensor:
        return self.window.start(self.rows)

    def add_prompt_votes(self, instrument_logits: torch.Tensor) -> None:
        """instrument_logits (n_prompt + 1, 133): the priming pass over the prompt."""
        if self.prompt is not None:
            notes = np.flatnonzero(self.prompt.tokens[:, 1] != PAD)
            self.votes.add(self.prompt.tokens[notes, 2], instrument_logits[notes])

    def choose(self, logits: dict[str, torch.Tensor]) -> Row | None:
        """Sample the next row from one position's logits (§6.2 with grammar masks); None when the piece ends."""
        o = self.options
        allowed = self.piece.allowed_events() & self.window.grammar.allowed_events()
        if self.prompt is not None and len(self.rows) == self.n_prompt:
            allowed[:] = False
            allowed[BAR_OFFSET : BAR_OFFSET + MAX_BAR] = True  # continue with a new bar
        if self.n_notes == 0 or (o.bars is not None and self.new_bars < o.bars):
            allowed[EOS] = False
        evt, _ = sample_masked(logits["event"], allowed, self.generator, o.temperature, o.top_p)
        kind = event_kind(evt, self.event_vocab_size)
        if kind is EventKind.EOS or (kind is EventKind.BAR and o.bars is not None and self.new_bars == o.bars):
            self.stopped_by = "eos" if kind is EventKind.EOS else "bars"
            self.done = True
            return None
        if kind is EventKind.CHORD and self.chord_plan:
            evt = self.chord_plan.pop(0)
        dur = trk = PAD
        if kind is EventKind.NOTE:
            dur, _ = sample_masked(logits["duration"], self.piece.allowed_durations(), self.generator,
                                   o.temperature, o.top_p)
            tracks = self.piece.allowed_tracks() & self.window.grammar.allowed_tracks()
            if o.track_choice == "argmax":
                trk, _ = argmax_masked(logits["track"], tracks)
            else:
                trk, _ = sample_masked(logits["track"], tracks, self.generator, o.temperature, o.top_p)
            self.votes.add(np.asarray([trk]), logits["instrument"][None])
            self.n_notes += 1
        row = (evt, dur, trk, PAD)
        self.piece.feed(row)
        self.rows.append(row)
        self.new_bars += kind is EventKind.BAR
        if self.piece.measure_complete:
            self.complete_len = len(self.rows)
        if self.max_steps is not None and len(self.rows) - self.n_prompt >= self.max_steps:
            self.done = True
        return row

    def result(self, bpe: MusicBPE | None) -> Generation:
        rows = self.rows[: self.complete_len] if self.stopped_by == "max_steps" else self.rows
        tokens = np.asarray(rows, np.int32).reshape(-1, 4)
        assignments = _orchestrate_tracks(tokens, self.votes, self.prompt, self.options, self.generator)
        program_of = {a.track: a.program for a in assignments}
        note = tokens[:, 1] != PAD
        tokens[note, 3] = INSTRUMENT_OFFSET + np.asarray(
            [program_of[t - TRACK_OFFSET] for t in tokens[note, 2]], dtype=np.int32).reshape(-1)
        return Generation(tokens, assignments, self.n_prompt, self.stopped_by, self.window.n_windows, bpe)


def generate_many(
    model: SymphonyModel,
    bpe: MusicBPE | None = None,
    options: SamplingOptions | None = None,
    prompt: Prompt | None = None,
    n_samples: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Sample ``n_samples`` pieces together, one batched recurrent step for all of them per row.

    Sample ``k`` draws from its own random stream seeded ``options.seed + k``; each piece slides its
    window on its own (re-primed alone, its state written back into the batch). Batching shares the
    reading of the weights between the pieces, which is what a step on a CPU mostly costs.

    Args:
        progress: called with the total number of rows generated so far (all samples).
    """
    options = options or SamplingOptions()
    if n_samples < 1:
        raise GenerationError(f"the number of samples must be ≥ 1, got {n_samples}")
    _check_model(model, bpe)
    model.eval()
    c = model.config
    device = next(model.parameters()).device
    samplers = [_Sampler(c, options, prompt, options.seed + k) for k in range(n_samples)]
    logits: list[dict[str, torch.Tensor]] = []
    states = []
    with torch.inference_mode():
        for sampler in samplers:
            primed, state = model.prime(sampler.first_window().to(device)[None])
            sampler.add_prompt_votes(primed["instrument"][0])
            logits.append({k: v[0, -1] for k, v in primed.items()})
            states.append(state)
        state = SymphonyState(torch.cat([s.kv for s in states], 1), torch.cat([s.k_sum for s in states], 1))
        generated = 0
        while True:
            stepping, step_rows = [], []
            for i, sampler in enumerate(samplers):
                if sampler.done:
                    continue
                row = sampler.choose(logits[i])
                if row is None:
                    continue
                generated += 1
                if sampler.done:
                    continue
                reprime, model_rows = sampler.window.push(row)
                if reprime:
                    primed, fresh = model.prime(model_rows.to(device)[None])
                    state.kv[:, i], state.k_sum[:, i] = fresh.kv[:, 0], fresh.k_sum[:, 0]
                    logits[i] = {k: v[0, -1] for k, v in primed.items()}
                else:
                    stepping.append(i)
                    step_rows.append(model_rows)
            if progress is not None:
                progress(generated)
            if stepping:
                rows = torch.stack(step_rows).to(device)
                if len(stepping) == n_samples:
                    step_logits, state = model.step(rows, state)
                else:
                    index = torch.as_tensor(stepping, device=device)
                    step_logits, new = model.step(rows, state.select(index))
                    state.kv[:, index], state.k_sum[:, index] = new.kv, new.k_sum
                for j, i in enumerate(stepping):
                    logits[i] = {k: v[j] for k, v in step_logits.items()}
            if all(s.done for s in samplers):
                break
    return [sampler.result(bpe) for sampler in samplers]


def generate(
    model: SymphonyModel,
    bpe: MusicBPE | None = None,
    options: SamplingOptions | None = None,
    prompt: Prompt | None = None,
    progress: Callable[[int], None] | None = None,
) -> Generation:
    """Sample one piece, from scratch or after ``prompt`` (see the module docstring for the procedure).

    Args:
        model: a trained SymphonyNet (eval mode is set here).
        bpe: the Music BPE merges the model was trained with (None for plain MMR).
        options: sampling options.
        prompt: from :func:`encode_prompt`, made with the same ``track_order``.
        progress: called with the number of rows generated so far after each row.
    """
    return generate_many(model, bpe, options, prompt, 1, progress)[0]


def _orchestrate_tracks(
    tokens: np.ndarray, votes: InstrumentVotes, prompt: Prompt | None, options: SamplingOptions,
    generator: torch.Generator,
) -> list[TrackAssignment]:
    out = []
    note = tokens[:, 1] != PAD
    track_ids, counts = np.unique(tokens[note, 2], return_counts=True)
    for track_id, n in zip(track_ids.tolist(), counts.tolist(), strict=True):
        t = track_id - TRACK_OFFSET
        if prompt is not None and t in prompt.programs and options.keep_prompt_instruments:
            program = prompt.programs[t]
            out.append(TrackAssignment(t, program, votes.probability(track_id, program), n, "prompt"))
            continue
        program, prob = votes.choose(track_id, options.instruments, options.orchestration, generator)
        out.append(TrackAssignment(t, program, prob, n, "model"))
    return out


def generate_midi(
    model: SymphonyModel,
    bpe: MusicBPE | None,
    options: SamplingOptions,
    prompt_midi: str | os.PathLike[str] | None = None,
    prompt_bars: int | None = None,
    progress: Callable[[int], None] | None = None,
    n_samples: int = 1,
) -> list[Generation]:
    """:func:`generate_many` after encoding ``prompt_midi`` (first ``prompt_bars`` bars) with :func:`encode_prompt`."""
    _check_model(model, bpe)
    prompt = None
    if prompt_midi is not None:
        prompt = encode_prompt(prompt_midi, model, bpe, bars=prompt_bars, seed=options.seed,
                               track_order=options.track_order)
    return generate_many(model, bpe, options, prompt, n_samples, progress)


# --------------------------------------------------------------------------------------------
# Orchestrating an existing piece
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceTrackAssignment:
    """Instrument chosen for one track of the input MIDI (``index`` in ``score.tracks``)."""

    index: int
    name: str
    n_notes: int
    old_program: int  # 128 = drums
    program: int
    probability: float | None  # None: not predicted (kept drum track, or a track dropped by the 40-track cap)


@dataclass
class Orchestration:
    score: ScoreTick
    tracks: list[SourceTrackAssignment]
    n_windows: int


def teacher_forced_votes(
    model: SymphonyModel, tokens: np.ndarray, *, track_order: str = "ascending"
) -> tuple[InstrumentVotes, int]:
    """Run a whole token sequence through the model in windows (parallel form) and sum the instrument
    logits predicted for every note step per track. Windows are cut as in generation: at most
    ``window - 1`` rows with their context prefix, whole measures where possible.

    Returns the votes and the number of windows.
    """
    c = model.config
    rows = [tuple(int(v) for v in r) for r in np.asarray(tokens).tolist()]
    votes, view = InstrumentVotes(), _Window(c, track_order, None)
    device = next(model.parameters()).device
    max_rows, max_measures = c.window - 1, max(1, c.max_mea_pos // 3)
    kinds = [event_kind(r[0]) for r in rows]
    bars = [i for i, k in enumerate(kinds) if k is EventKind.BAR]
    start = 0
    while start < len(rows):
        prefix = _context_prefix(rows, kinds, start)
        end = min(len(rows), start + max_rows - len(prefix))
        inside = [b for b in bars if start < b < end]
        if len(inside) > max_measures - 1:  # the window's first measure plus one per bar inside
            end = inside[max_measures - 1]
        elif end < len(rows) and inside:
            end = inside[-1]  # end the window at a bar line, so the next one starts with a whole measure
        chunk = rows[start:end]
        with torch.inference_mode():
            primed, _ = model.prime(view.start(prefix + chunk).to(device)[None])
        logits = primed["instrument"][0, len(prefix) : len(prefix) + len(chunk)]
        arr = np.asarray(chunk, np.int64).reshape(-1, 4)
        notes = np.flatnonzero(arr[:, 1] != PAD)
        votes.add(arr[notes, 2], logits[notes])
        start = end
    return votes, view.n_windows


def orchestrate(
    midi: str | os.PathLike[str],
    model: SymphonyModel,
    bpe: MusicBPE | None = None,
    *,
    keep_drums: bool = False,
    mode: str = "nucleus",
    seed: int = 0,
    instruments: tuple[int, ...] | None = None,
    track_order: str = "distinct",
) -> Orchestration:
    """Predict an instrument for every track of a multi-track MIDI file (§6.3).

    The piece is encoded as a prompt would be (no sparse-track merge; every MIDI track is one MMR
    track, drum tracks merged into one), run through the model with teacher forcing, and each
    track gets the instrument drawn from its averaged instrument logits (nucleus p = 0.9, or argmax).
    The returned score is the input with only programs (and drum flags) changed; notes are untouched.

    Args:
        keep_drums: drum tracks stay drums, and no other track may become drums.
        instruments: programs the tracks may be given (None = any).
        track_order: ``"distinct"`` (track ids randomly permuted, for models trained so) or ``"ascending"``.

    Raises:
        MidiError: unreadable or empty MIDI file.
    """
    _check_model(model, bpe)
    model.eval()
    score = load_midi(midi)
    pitched = [i for i, t in enumerate(score.tracks) if not t.is_drum and t.note_num() > 0]
    if len(pitched) > DRUM_PROGRAM:
        raise MidiError(f"{midi}: {len(pitched)} pitched tracks; orchestration handles at most {DRUM_PROGRAM}")
    # Each pitched track gets its index as a marker program, so the encoded track ids can be traced back
    # to the file's tracks; programs do not change the encoding otherwise (no sparse-track merge).
    marked = score.copy()
    for marker, i in enumerate(pitched):
        marked.tracks[i].program = marker
    piece = mmr.encode(marked, merge_sparse_tracks=False, config=mmr.MMRConfig(tempo_tokens=model.config.tempo_tokens))
    tokens = bpe.apply(piece.tokens) if bpe is not None else piece.tokens
    tokens, mapping = relabel_tracks(tokens, np.random.default_rng(seed), track_order)
    votes, n_windows = teacher_forced_votes(model, tokens, track_order=track_order)
    generator = torch.Generator().manual_seed(seed)
    allowed = tuple(range(DRUM_PROGRAM + 1)) if instruments is None else instruments
    if keep_drums:
        allowed = tuple(p for p in allowed if p != DRUM_PROGRAM)
        if not allowed:
            raise GenerationError("--keep-drums leaves no instrument to choose for the other tracks")
    chosen: dict[int, tuple[int, float]] = {}
    for t, marker in enumerate(piece.programs):
        track_id = TRACK_OFFSET + int(mapping[t])
        if keep_drums and marker == DRUM_PROGRAM:
            continue
        chosen[marker] = votes.choose(track_id, allowed, mode, generator)

    out = score.copy()
    report = []
    for i, track in enumerate(out.tracks):
        old = DRUM_PROGRAM if track.is_drum else int(track.program)
        marker = DRUM_PROGRAM if track.is_drum else (pitched.index(i) if i in pitched else None)
        program, prob = chosen.get(marker, (old, None)) if marker is not None else (old, None)
        track.is_drum = program == DRUM_PROGRAM
        track.program = 0 if program == DRUM_PROGRAM else program
        report.append(SourceTrackAssignment(i, track.name, track.note_num(), old, program, prob))
    return Orchestration(out, report, n_windows)
