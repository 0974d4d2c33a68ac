"""The MMR grammar as an incremental state machine, with masks for constrained sampling (spec §6.2).

A piece is, per measure (:mod:`orchestrion.symbolic.mmr`)::

    BOM(L) CHORD [TEMPO] { NT { POS(p) note+ }+ }*   then optionally EOS

with track ids strictly ascending over the segments of a measure (all notes of a segment share
one track), positions strictly ascending inside a segment and below the bar length ``L``, at most
``MAX_NOTES_PER_POSITION`` (4096) note steps per position (the encoder writes each (pitch, duration)
once), every
note carrying a duration of 1-32 32nds and a track id, every metadata step carrying PAD there.
The TEMPO step exists only when the model was trained with tempo tokens; with
``tempo_tokens=False`` this is exactly the reference grammar.

:class:`GrammarState` consumes one row at a time and returns the row's ``(rel, mea)`` position
columns (identical to :func:`orchestrion.symbolic.mmr_decode.positions` on every valid sequence),
or raises :class:`GrammarError` saying which rule the row breaks. Instead of the reference's
"sample, then discard the whole attempt on a violation", a sampler asks the state which values
are legal next (:meth:`GrammarState.allowed_events`, :meth:`~GrammarState.allowed_durations`,
:meth:`~GrammarState.allowed_tracks`) and masks the logits, so every sampled sequence is valid.

Track order: the MMR encoder writes the segments of a measure in ascending track id
(``track_order="ascending"``, the reference grammar). A model trained on windows whose track ids
were randomly permuted (§4.3) has learnt the *order* of the segments but not their ids, so a
sampler for it uses ``track_order="distinct"``: every segment of a measure has its own track,
in any id order. Both decode to the same kind of MIDI.

Position-table limits of a trained model are part of the grammar: with ``max_rel_pos`` a POS is
only allowed while its note-order index ``2k`` and its notes' ``2k+1`` stay within the table, and
with ``max_mea_pos`` a new measure is only allowed while ``3j`` fits (a generator re-primes a
fresh window before that runs out, see :mod:`orchestrion.symphony.generate`).
"""

from __future__ import annotations

import copy
from enum import Enum

import numpy as np

from orchestrion.errors import DataError
from orchestrion.symbolic.mmr_vocab import (
    BAR_OFFSET,
    BASE_EVENT_VOCAB_SIZE,
    CHORD_OFFSET,
    DURATION_OFFSET,
    DURATION_VOCAB_SIZE,
    EOS,
    MAX_DURATION,
    MAX_TRACKS,
    N_PITCHES,
    NT_ID,
    PAD,
    PITCH_OFFSET,
    POS_OFFSET,
    TRACK_OFFSET,
    TRACK_VOCAB_SIZE,
)

TRACK_ORDERS = ("ascending", "distinct")
MAX_NOTES_PER_POSITION = N_PITCHES * MAX_DURATION  # one per (pitch, duration); bounds every measure's length


class GrammarError(DataError):
    """A token row breaks the MMR grammar (the message names the step and the rule)."""


class Phase(Enum):
    """What the last accepted row was."""

    START = "start"  # nothing yet
    BAR = "bar"
    CHORD = "chord"
    TEMPO = "tempo"
    TRACK = "track"  # an NT step
    POS = "pos"
    NOTE = "note"
    END = "end"  # EOS


class EventKind(Enum):
    SPECIAL = "special"
    NOTE = "note"
    CHORD = "chord"
    BAR = "bar"
    POS = "pos"
    TRACK = "track"
    TEMPO = "tempo"
    EOS = "eos"


def event_kind(evt: int, event_vocab_size: int | None = None) -> EventKind:
    """Kind of an event id in the MMR layout; ids ≥ the base vocabulary are Music BPE notes, up to
    ``event_vocab_size`` (beyond it: special; None = no upper bound)."""
    if evt == EOS:
        return EventKind.EOS
    if evt < PITCH_OFFSET or (event_vocab_size is not None and evt >= event_vocab_size):
        return EventKind.SPECIAL
    if evt < CHORD_OFFSET or evt >= BASE_EVENT_VOCAB_SIZE:
        return EventKind.NOTE
    if evt < BAR_OFFSET:
        return EventKind.CHORD
    if evt < POS_OFFSET:
        return EventKind.BAR
    if evt < NT_ID:
        return EventKind.POS
    if evt == NT_ID:
        return EventKind.TRACK
    return EventKind.TEMPO


def _kind_masks(event_vocab_size: int) -> dict[EventKind, np.ndarray]:
    ids = np.arange(event_vocab_size)
    kinds = np.array([event_kind(int(e), event_vocab_size).value for e in ids])
    return {kind: kinds == kind.value for kind in EventKind}


class GrammarState:
    """Incremental MMR grammar: feed rows, get their (rel, mea), ask what may come next.

    Args:
        event_vocab_size: size of the event vocabulary the model samples from (base layout plus
            Music BPE tokens); ids beyond it are rejected.
        tempo_tokens: whether a TEMPO step may follow the chord step (one per measure at most).
        max_rel_pos: largest note-order index the model's table holds (``None``: unlimited).
        max_mea_pos: largest measure-position index the model's table holds (``None``: unlimited).
        track_order: ``"ascending"`` (track ids ascend over a measure's segments, the MMR encoder's
            order) or ``"distinct"`` (each segment of a measure has a new track id, any order).

    Example::

        g = GrammarState(tempo_tokens=False)
        cols = [g.feed(row) for row in tokens]       # == positions(tokens) for valid tokens
        mask = g.allowed_events()                    # (event_vocab_size,) bool
    """

    def __init__(
        self,
        event_vocab_size: int = BASE_EVENT_VOCAB_SIZE,
        *,
        tempo_tokens: bool = False,
        max_rel_pos: int | None = None,
        max_mea_pos: int | None = None,
        track_order: str = "ascending",
    ) -> None:
        if track_order not in TRACK_ORDERS:
            raise GrammarError(f"unknown track order {track_order!r}; choose from {', '.join(TRACK_ORDERS)}")
        if event_vocab_size < BASE_EVENT_VOCAB_SIZE:
            raise GrammarError(f"event vocabulary of {event_vocab_size} ids is smaller than the MMR base "
                               f"layout ({BASE_EVENT_VOCAB_SIZE})")
        if max_rel_pos is not None and max_rel_pos < 3:
            raise GrammarError(f"max_rel_pos {max_rel_pos} cannot hold one note (needs ≥ 3)")
        if max_mea_pos is not None and max_mea_pos < 3:
            raise GrammarError(f"max_mea_pos {max_mea_pos} cannot hold one measure (needs ≥ 3)")
        self.event_vocab_size = event_vocab_size
        self.tempo_tokens = tempo_tokens
        self.max_rel_pos = max_rel_pos
        self.max_mea_pos = max_mea_pos
        self.track_order = track_order
        self._kinds = _kind_masks(event_vocab_size)
        self.phase = Phase.START
        self.n_steps = 0
        self.n_measures = 0  # j of the current measure
        self.n_notes = 0
        self.bar_len = 0
        self.pos_count = 0  # POS steps in the current track segment (k)
        self.last_pos = -1
        self.notes_at_pos = 0  # note steps since the last POS
        self.segment_track = -1  # track id (vocabulary id) of the current segment, -1 before its first note
        self.last_track = -1  # highest track id used in the current measure (vocabulary id)
        self.used_tracks = 0  # bit t set: track id t has a segment in the current measure

    def copy(self) -> GrammarState:
        return copy.copy(self)

    def with_limits(self, max_rel_pos: int | None, max_mea_pos: int | None) -> GrammarState:
        """A copy that applies position-table limits from now on (rows already fed are not re-checked)."""
        state = self.copy()
        state.max_rel_pos, state.max_mea_pos = max_rel_pos, max_mea_pos
        return state

    # ---- limits ---------------------------------------------------------------------------

    def can_open_measure(self) -> bool:
        """Whether one more measure fits the measure-position table."""
        return self.max_mea_pos is None or 3 * (self.n_measures + 1) <= self.max_mea_pos

    def _can_add_pos(self) -> bool:
        return self.max_rel_pos is None or 2 * (self.pos_count + 1) + 1 <= self.max_rel_pos

    def _track_left(self) -> bool:
        if self.track_order == "ascending":
            return self.last_track < TRACK_OFFSET + MAX_TRACKS - 1
        return bin(self.used_tracks).count("1") < MAX_TRACKS

    @property
    def measure_complete(self) -> bool:
        """True where the piece may end: after a chord/tempo step (empty measure) or a note."""
        return self.phase in (Phase.CHORD, Phase.TEMPO, Phase.NOTE)

    # ---- masks ----------------------------------------------------------------------------

    def allowed_events(self) -> np.ndarray:
        """Bool mask ``(event_vocab_size,)`` of the event ids that may come next."""
        mask = np.zeros(self.event_vocab_size, dtype=bool)
        k = self._kinds
        phase = self.phase
        if phase is Phase.END:
            return mask
        if phase in (Phase.START, Phase.CHORD, Phase.TEMPO, Phase.NOTE) and self.can_open_measure():
            mask |= k[EventKind.BAR]
        if phase is Phase.BAR:
            mask |= k[EventKind.CHORD]
        if phase is Phase.CHORD and self.tempo_tokens:
            mask |= k[EventKind.TEMPO]
        if phase in (Phase.CHORD, Phase.TEMPO, Phase.NOTE):
            mask[EOS] = True
            if self._track_left():
                mask[NT_ID] = True
        if phase is Phase.TRACK:
            mask[POS_OFFSET : POS_OFFSET + self.bar_len] = True
        if phase is Phase.NOTE and self._can_add_pos():
            mask[POS_OFFSET + self.last_pos + 1 : POS_OFFSET + self.bar_len] = True
        if phase in (Phase.POS, Phase.NOTE) and self.notes_at_pos < MAX_NOTES_PER_POSITION:
            mask |= k[EventKind.NOTE]
        return mask

    def allowed_durations(self) -> np.ndarray:
        """Bool mask ``(DURATION_VOCAB_SIZE,)`` of the duration ids a note may take (1-32 32nds)."""
        mask = np.zeros(DURATION_VOCAB_SIZE, dtype=bool)
        mask[DURATION_OFFSET + 1 : DURATION_OFFSET + MAX_DURATION + 1] = True
        return mask

    def allowed_tracks(self) -> np.ndarray:
        """Bool mask ``(TRACK_VOCAB_SIZE,)`` of the track ids the next note may take.

        The first note of a segment opens a track above every track already used in the measure
        (``"ascending"``) or one not used yet in the measure (``"distinct"``); later notes of the
        segment stay on its track.
        """
        mask = np.zeros(TRACK_VOCAB_SIZE, dtype=bool)
        if self.segment_track >= 0:
            mask[self.segment_track] = True
        elif self.track_order == "ascending":
            mask[max(TRACK_OFFSET, self.last_track + 1) : TRACK_OFFSET + MAX_TRACKS] = True
        else:
            mask[TRACK_OFFSET : TRACK_OFFSET + MAX_TRACKS] = True
            mask[[t for t in range(TRACK_OFFSET, TRACK_OFFSET + MAX_TRACKS) if self.used_tracks >> t & 1]] = False
        return mask

    # ---- feeding --------------------------------------------------------------------------

    def _fail(self, row: tuple[int, int, int], rule: str) -> GrammarError:
        return GrammarError(f"step {self.n_steps} (event {row[0]}, duration {row[1]}, track {row[2]}) after "
                            f"{self.phase.value}: {rule}")

    def _why_not(self, kind: EventKind, evt: int) -> str:
        if kind is EventKind.POS and self.phase in (Phase.TRACK, Phase.NOTE):
            p = evt - POS_OFFSET
            if p >= self.bar_len:
                return f"position {p} is not inside the bar of length {self.bar_len}"
            if p <= self.last_pos:
                return f"position {p} does not follow position {self.last_pos} of this track segment"
            return f"a POS would pass the model's note-order table (max_rel_pos {self.max_rel_pos})"
        if kind is EventKind.BAR and not self.can_open_measure():
            return f"a new measure would pass the model's measure table (max_mea_pos {self.max_mea_pos})"
        if kind is EventKind.TEMPO and not self.tempo_tokens:
            return "tempo steps are off for this grammar (tempo_tokens=False)"
        if kind is EventKind.NOTE and self.phase is Phase.NOTE:
            return f"a position holds at most {MAX_NOTES_PER_POSITION} note steps (one per pitch and duration)"
        if kind is EventKind.TRACK and self.phase in (Phase.CHORD, Phase.TEMPO, Phase.NOTE):
            return f"no track id is left above the measure's last track ({MAX_TRACKS} tracks)"
        expected = {
            Phase.START: "a piece starts with a bar (BOM) step",
            Phase.BAR: "a bar step is followed by its chord step",
            Phase.TRACK: "a track start (NT) is followed by a position",
            Phase.POS: "a position is followed by a note",
            Phase.END: "nothing may follow the end of the piece (EOS)",
        }
        return expected.get(self.phase, f"a {kind.value} step may not come here")

    def feed(self, row: np.ndarray | tuple[int, ...] | list[int]) -> tuple[int, int]:
        """Accept one row ``[event, duration, track, ...]`` and return its ``(rel, mea)``.

        Raises:
            GrammarError: the row is not allowed here; the state is left unchanged.
        """
        evt, dur, trk = (int(v) for v in row[:3])
        r = (evt, dur, trk)
        kind = event_kind(evt, self.event_vocab_size)
        if kind is EventKind.SPECIAL:
            raise self._fail(r, f"event id {evt} is a special or out-of-vocabulary id")
        if not self.allowed_events()[evt]:
            raise self._fail(r, self._why_not(kind, evt))
        if kind is EventKind.NOTE:
            if not (0 <= dur < DURATION_VOCAB_SIZE and self.allowed_durations()[dur]):
                raise self._fail(r, f"a note needs a duration id in {DURATION_OFFSET + 1}-"
                                    f"{DURATION_OFFSET + MAX_DURATION} (1-{MAX_DURATION} 32nds)")
            if not (0 <= trk < TRACK_VOCAB_SIZE and self.allowed_tracks()[trk]):
                order = ("above every track of the measure's earlier segments" if self.track_order == "ascending"
                         else "not used by an earlier segment of the measure")
                raise self._fail(r, f"a note's track id must be a real track (4-43), {order}, and the same for "
                                    "all notes of a segment")
        elif dur != PAD or trk != PAD:
            raise self._fail(r, "a metadata step carries PAD duration and track")
        self.n_steps += 1
        return self._advance(kind, evt, trk)

    def _advance(self, kind: EventKind, evt: int, trk: int) -> tuple[int, int]:
        j = self.n_measures
        if kind is EventKind.EOS:
            self.phase = Phase.END
            return 0, 0
        if kind is EventKind.BAR:
            self.phase = Phase.BAR
            self.n_measures = j = j + 1
            self.bar_len = evt - BAR_OFFSET + 1
            self.pos_count, self.last_pos, self.segment_track, self.last_track = 0, -1, -1, -1
            self.used_tracks = 0
            return 0, 3 * j - 2
        if kind is EventKind.CHORD:
            self.phase = Phase.CHORD
            return 0, 3 * j - 1
        if kind is EventKind.TEMPO:
            self.phase = Phase.TEMPO
            return 0, 3 * j
        if kind is EventKind.TRACK:
            self.phase = Phase.TRACK
            self.pos_count, self.last_pos, self.segment_track = 0, -1, -1
            return 1, 3 * j
        if kind is EventKind.POS:
            self.phase = Phase.POS
            self.pos_count += 1
            self.last_pos = evt - POS_OFFSET
            self.notes_at_pos = 0
            return 2 * self.pos_count, 3 * j
        self.phase = Phase.NOTE
        self.n_notes += 1
        self.notes_at_pos += 1
        self.segment_track = trk
        self.last_track = max(self.last_track, trk)
        self.used_tracks |= 1 << trk
        return 2 * self.pos_count + 1, 3 * j

    def feed_many(self, rows: np.ndarray) -> np.ndarray:
        """Feed every row of ``rows (steps, ≥3)``; returns the ``(steps, 2)`` int32 (rel, mea) columns."""
        return np.asarray([self.feed(row) for row in np.asarray(rows).tolist()], dtype=np.int32).reshape(-1, 2)

