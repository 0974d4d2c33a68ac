"""Fixed, versioned integer vocabulary of the MMR representation and its reference string view.

Every MMR step is four integers ``[event, duration, track, instrument]``. The id layout does not
depend on a corpus (unlike the reference, which builds its vocabularies from the data): it
covers every representable value, so a token file and a model stay compatible across corpora.

Event field (``BASE_EVENT_VOCAB_SIZE`` = 527 ids)::

    0-3      <bos> <pad> <eos> <unk>
    4-131    single pitch 0-127                    (PITCH_OFFSET + pitch)
    132-264  chord: root*11 + quality, 264 = HNA   (CHORD_OFFSET + ...)
    265-364  bar start, length L = 1..100 32nds    (BAR_OFFSET + L - 1)
    365-464  position p = 0..99 32nds              (POS_OFFSET + p)
    465      NT (track start)
    466-526  tempo bin 0..60                       (TEMPO_OFFSET + bin)
    527-     Music BPE tokens in merge-creation order (orchestrion.symbolic.music_bpe)

Duration ids ``3 + D`` (D = 1..32, size 36), track ids ``4 + t`` (t = 0..39, size 44), instrument
ids ``4 + program`` (drums = program 128, size 133). Metadata steps carry PAD in those fields.

Tempo bins (an orchestrion extension, absent from the reference): 61 log-spaced values,
``bpm(b) = 30 * 2**(b / 18)`` quarter notes per minute, b = 0..60 (30 to 302.4 bpm; 30, 60, 120 and
240 are exact). 18 bins per octave puts neighbours a factor 1.039 apart: at most ±1.9 % error,
below the ~4 % just-noticeable tempo difference. Tempi outside the range are clamped. String
form ``Q`` + base-62 digit of the bin.

Chord ids follow the reference vocabulary order: root pitch class, then the quality string in
ASCII order (``+ /o7 D7 M M7 m m7 o o7 sus2 sus4``), ``HNA`` last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from orchestrion.errors import ConfigError

MMR_VOCAB_VERSION = 1

BOS, PAD, EOS, UNK = 0, 1, 2, 3
N_SPECIAL = 4
SPECIAL_NAMES = ("<bos>", "<pad>", "<eos>", "<unk>")

N_PITCHES = 128
PITCH_OFFSET = N_SPECIAL
PITCH_LETTERS = ("C", "d", "D", "e", "E", "F", "g", "G", "a", "A", "b", "B")
CHORD_QUALITIES = ("+", "/o7", "D7", "M", "M7", "m", "m7", "o", "o7", "sus2", "sus4")
N_CHORDS = 12 * len(CHORD_QUALITIES) + 1
CHORD_OFFSET = PITCH_OFFSET + N_PITCHES
CHORD_NA = CHORD_OFFSET + N_CHORDS - 1
MAX_BAR = 100
BAR_OFFSET = CHORD_OFFSET + N_CHORDS
MAX_POS = 100
POS_OFFSET = BAR_OFFSET + MAX_BAR
NT_ID = POS_OFFSET + MAX_POS
N_TEMPO_BINS = 61
TEMPO_MIN_BPM = 30.0
TEMPO_BINS_PER_OCTAVE = 18
TEMPO_OFFSET = NT_ID + 1
BASE_EVENT_VOCAB_SIZE = TEMPO_OFFSET + N_TEMPO_BINS

MAX_DURATION = 32
DURATION_OFFSET = 3  # D (1..32) -> 3 + D
DURATION_VOCAB_SIZE = DURATION_OFFSET + MAX_DURATION + 1
MAX_TRACKS = 40
TRACK_OFFSET = N_SPECIAL
TRACK_VOCAB_SIZE = TRACK_OFFSET + MAX_TRACKS
DRUM_PROGRAM = 128
INSTRUMENT_OFFSET = N_SPECIAL
INSTRUMENT_VOCAB_SIZE = INSTRUMENT_OFFSET + DRUM_PROGRAM + 1

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGIT_VALUE = {c: i for i, c in enumerate(_DIGITS)}
META_STRINGS = ("RZ", "TZ", "YZ")


@dataclass(frozen=True)
class MMRVocab:
    """Description of the fixed id layout; saved next to token files and checkpoints.

    ``from_json`` refuses a layout that differs from this code's, so stale token files are caught.
    """

    version: int = MMR_VOCAB_VERSION
    base_event_vocab_size: int = BASE_EVENT_VOCAB_SIZE
    duration_vocab_size: int = DURATION_VOCAB_SIZE
    track_vocab_size: int = TRACK_VOCAB_SIZE
    instrument_vocab_size: int = INSTRUMENT_VOCAB_SIZE
    pitch_offset: int = PITCH_OFFSET
    chord_offset: int = CHORD_OFFSET
    bar_offset: int = BAR_OFFSET
    pos_offset: int = POS_OFFSET
    nt_id: int = NT_ID
    tempo_offset: int = TEMPO_OFFSET
    n_tempo_bins: int = N_TEMPO_BINS
    tempo_min_bpm: float = TEMPO_MIN_BPM
    tempo_bins_per_octave: int = TEMPO_BINS_PER_OCTAVE

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MMRVocab:
        """Parse and check a saved layout; raises ConfigError if it is not this code's layout."""
        try:
            data = json.loads(text)
            vocab = cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"invalid MMR vocabulary description: {exc}") from exc
        if vocab != cls():
            raise ConfigError(
                f"MMR vocabulary version {vocab.version} / layout differs from this orchestrion's "
                f"version {MMR_VOCAB_VERSION}; re-encode the corpus"
            )
        return vocab


def is_single_pitch(evt: np.ndarray | int) -> np.ndarray:
    """True where an event id is a single-pitch note token (works elementwise on arrays)."""
    e = np.asarray(evt)
    return (e >= PITCH_OFFSET) & (e < PITCH_OFFSET + N_PITCHES)


def tempo_to_bin(bpm: np.ndarray | float) -> np.ndarray:
    """Nearest tempo bin (int64, 0..60) in log space for quarter notes per minute."""
    b = np.rint(TEMPO_BINS_PER_OCTAVE * np.log2(np.asarray(bpm, dtype=np.float64) / TEMPO_MIN_BPM))
    return np.clip(b, 0, N_TEMPO_BINS - 1).astype(np.int64)


def bin_to_tempo(b: np.ndarray | int) -> np.ndarray:
    """Bin centre in quarter notes per minute (float64)."""
    return TEMPO_MIN_BPM * 2.0 ** (np.asarray(b, dtype=np.float64) / TEMPO_BINS_PER_OCTAVE)


# --------------------------------------------------------------------------------------------
# Reference string view (§2.4)
# --------------------------------------------------------------------------------------------


def int_to_digit(x: int) -> str:
    """Base-62 digit: 0-9, a-z = 10-35, A-Z = 36-61."""
    if not 0 <= x < 62:
        raise ValueError(f"base-62 digit out of range: {x}")
    return _DIGITS[x]


def digit_to_int(c: str) -> int:
    return _DIGIT_VALUE[c]


def pitch_name(pitch: int) -> str:
    """Reference pitch name: ``C4`` = 60, ``A0`` = 21, octave char ``O`` for MIDI 0-11."""
    octave = pitch // 12
    return PITCH_LETTERS[pitch % 12] + ("O" if octave == 0 else int_to_digit(octave - 1))


def pitch_from_name(name: str) -> int:
    octave = -1 if name[1] == "O" else digit_to_int(name[1])
    return (octave + 1) * 12 + PITCH_LETTERS.index(name[0])


def _two_range(first: str, second: str, x: int) -> str:
    return first + int_to_digit(x) if x < 62 else second + int_to_digit(x - 62)


def _from_two_range(s: str, first: str) -> int:
    return digit_to_int(s[1]) + (0 if s[0] == first else 62)


def chord_name(chord_index: int) -> str:
    """``H`` + root letter + quality (reference renames ``7`` to ``D7``), ``HNA`` for no chord."""
    if chord_index == N_CHORDS - 1:
        return "HNA"
    root, quality = divmod(chord_index, len(CHORD_QUALITIES))
    return "H" + PITCH_LETTERS[root] + CHORD_QUALITIES[quality]


def event_name(evt: int, extra: Mapping[int, str] | None = None) -> str:
    """String of one event id; ``extra`` names ids beyond the base layout (Music BPE tokens)."""
    if evt < N_SPECIAL:
        return SPECIAL_NAMES[evt]
    if evt < CHORD_OFFSET:
        return pitch_name(evt - PITCH_OFFSET)
    if evt < BAR_OFFSET:
        return chord_name(evt - CHORD_OFFSET)
    if evt < POS_OFFSET:
        return _two_range("m", "M", evt - BAR_OFFSET + 1)
    if evt < NT_ID:
        return _two_range("p", "P", evt - POS_OFFSET)
    if evt == NT_ID:
        return "NT"
    if evt < BASE_EVENT_VOCAB_SIZE:
        return "Q" + int_to_digit(evt - TEMPO_OFFSET)
    if extra is not None and evt in extra:
        return extra[evt]
    raise ValueError(f"event id {evt} is not in the MMR base vocabulary and has no name")


def _instrument_name(program: int) -> str:
    if program < 62:
        return "x" + int_to_digit(program)
    if program < 124:
        return "X" + int_to_digit(program - 62)
    return "y" + int_to_digit(program - 124)


def _build_event_ids() -> dict[str, int]:
    return {event_name(e): e for e in range(BASE_EVENT_VOCAB_SIZE)}


_EVENT_IDS = _build_event_ids()


def to_strings(
    tokens: np.ndarray, extra_event_names: Mapping[int, str] | None = None
) -> list[tuple[str, str, str, str]]:
    """Reference string view of ``tokens`` (steps, 4): ``("E5", "r8", "t0", "xE")`` per note step,
    ``(event, "RZ", "TZ", "YZ")`` per metadata step."""
    out = []
    for evt, dur, trk, ins in np.asarray(tokens).tolist():
        name = event_name(evt, extra_event_names)
        if dur == PAD:
            out.append((name, *META_STRINGS))
            continue
        out.append((
            name,
            _two_range("r", "R", dur - DURATION_OFFSET),
            _two_range("t", "T", trk - TRACK_OFFSET),
            _instrument_name(ins - INSTRUMENT_OFFSET),
        ))
    return out


def from_strings(
    steps: list[tuple[str, str, str, str]], extra_event_ids: Mapping[str, int] | None = None
) -> np.ndarray:
    """Inverse of :func:`to_strings`: (steps, 4) int32 ids. Unknown strings raise ValueError."""
    rows = []
    for step, (evt, dur, trk, ins) in enumerate(steps):
        if evt in _EVENT_IDS:
            e = _EVENT_IDS[evt]
        elif extra_event_ids is not None and evt in extra_event_ids:
            e = extra_event_ids[evt]
        else:
            raise ValueError(f"unknown MMR event string {evt!r} at step {step}")
        if dur == "RZ":
            rows.append((e, PAD, PAD, PAD))
            continue
        try:
            program = digit_to_int(ins[1]) + {"x": 0, "X": 62, "y": 124}[ins[0]]
            rows.append((
                e,
                DURATION_OFFSET + _from_two_range(dur, "r"),
                TRACK_OFFSET + _from_two_range(trk, "t"),
                INSTRUMENT_OFFSET + program,
            ))
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"step {step} '{evt} {dur} {trk} {ins}': duration, track or instrument is not an MMR "
                             "string (r.., t.., x./X./y.)") from None
    return np.asarray(rows, dtype=np.int32).reshape(-1, 4)
