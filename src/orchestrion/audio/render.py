"""MIDI → audio with a General MIDI SoundFont (tinysoundfont), much faster than real time.

The MIDI file is parsed by symusic (tempo map applied by ``Score.to("second")``) and its
events are sent to a tinysoundfont ``Synth`` at their exact sample positions: the synth
renders the stretch of audio up to each event time, then the event is applied. Every symusic
track gets its own synth channel (drums use the SoundFont's percussion bank 128), so tracks
sharing a General MIDI program keep separate controllers and pitch bends.

tinysoundfont is installed with ``pip install --no-deps tinysoundfont``: its ``pyaudio``
dependency is only needed for live playback, which this module never uses.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from orchestrion.audio.io import SAMPLE_RATE, save_audio, to_mono
from orchestrion.errors import AudioError, MidiError

if TYPE_CHECKING:
    import symusic
    import tinysoundfont

# Release tails stop once a block's peak drops below -80 dBFS, or after this cap at the latest.
TAIL_THRESHOLD = 1e-4
MAX_TAIL_SECONDS = 10.0
MIN_RENDER_RATE, MAX_RENDER_RATE = 8_000, 192_000  # Hz: telephone to studio rates; outside is a typo
_TAIL_BLOCK_SECONDS = 0.05
_SUSTAIN_PEDAL = 64  # tinysoundfont ignores CC64, so the pedal is applied to note lengths instead
_PITCH_BEND_CENTRE = 8192  # symusic stores bends as -8192..8191, tinysoundfont takes 0..16383
_NORMALIZE_PEAK_DB = -1.0
# At 0 dB, TimGM6mb pushes two thirds of the four-voice Bach chorales past full scale; -6 dB
# leaves headroom for about four loud voices, denser mixes are scaled down with a warning.
DEFAULT_GAIN_DB = -6.0

# Events at the same sample are applied in this order, so that a note ending exactly where the
# same key starts again is released before it is struck, and controllers act before notes.
_CONTROL, _BEND, _NOTE_OFF, _NOTE_ON = range(4)


def _tinysoundfont() -> ModuleType:
    try:
        import tinysoundfont
    except ImportError as error:
        raise AudioError(
            "MIDI rendering needs tinysoundfont; install it with `pip install --no-deps tinysoundfont` "
            "(--no-deps because its pyaudio dependency is only for live playback)"
        ) from error
    return tinysoundfont


def default_soundfont() -> Path:
    """The General MIDI SoundFont ``TimGM6mb.sf2`` bundled inside the pretty_midi package."""
    try:
        import pretty_midi
    except ImportError as error:
        raise AudioError(
            "the default SoundFont ships with pretty_midi; install it with `pip install pretty_midi`"
        ) from error
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise AudioError(f"{path}: pretty_midi's bundled SoundFont is missing; pass a .sf2 file with --soundfont")
    return path


@functools.lru_cache(maxsize=4)
def _soundfont_bytes(path: str, size: int, mtime_ns: int) -> bytes:
    """File contents, cached per (path, size, mtime) so a corpus render reads the SoundFont once."""
    return Path(path).read_bytes()


def _load_synth(soundfont: Path, sample_rate: int, gain_db: float) -> tuple[tinysoundfont.Synth, int]:
    tsf = _tinysoundfont()
    if not soundfont.is_file():
        raise AudioError(f"{soundfont}: SoundFont file not found")
    stat = soundfont.stat()
    synth = tsf.Synth(gain=gain_db, samplerate=sample_rate)
    try:
        sfid = synth.sfload(_soundfont_bytes(str(soundfont.resolve()), stat.st_size, stat.st_mtime_ns))
    except Exception as error:  # the C++ binding raises plain exceptions for unreadable SoundFonts
        raise AudioError(f"{soundfont}: not a readable SoundFont ({error})") from error
    return synth, sfid


def _load_score(midi: str | os.PathLike[str] | bytes) -> tuple[symusic.Score, str]:
    """The parsed score with times in seconds, and a name for error messages."""
    from orchestrion.symbolic.midi import load_midi, parse_midi

    if isinstance(midi, (bytes, bytearray)):
        return parse_midi(bytes(midi)).to("second"), "<MIDI bytes>"
    return load_midi(midi).to("second"), str(midi)


def _sustained_ends(starts: np.ndarray, ends: np.ndarray, pedals: np.ndarray) -> np.ndarray:
    """Delay note releases that fall while the sustain pedal is down to the pedal's release.

    ``pedals`` is ``(n, 2)`` (down, up) times in seconds; a note released inside a pedal
    interval it was sounding in keeps ringing until the pedal comes up.
    """
    ends = ends.copy()
    for down, up in pedals:
        held = (starts < up) & (ends >= down) & (ends < up)
        ends[held] = up
    return ends


def _track_events(score: symusic.Score, sample_rate: int) -> np.ndarray:
    """All events as an int64 ``(n, 5)`` array: sample, order, channel, data1, data2; sorted."""
    rows: list[np.ndarray] = []
    for channel, track in enumerate(score.tracks):
        notes = track.notes.numpy()
        starts = notes["time"].astype(np.float64)
        ends = starts + notes["duration"].astype(np.float64)
        if len(track.pedals) and not track.is_drum:
            pedals = track.pedals.numpy()
            down = pedals["time"].astype(np.float64)
            ends = _sustained_ends(starts, ends, np.stack([down, down + pedals["duration"]], axis=1))
        on = np.round(starts * sample_rate).astype(np.int64)
        # A note lasts at least one sample: a release at its own onset would sort first and stick.
        off = np.maximum(np.round(ends * sample_rate).astype(np.int64), on + 1)
        pitch = notes["pitch"].astype(np.int64)
        velocity = notes["velocity"].astype(np.int64)
        ones = np.ones_like(pitch)
        rows.append(np.stack([on, _NOTE_ON * ones, channel * ones, pitch, velocity], 1))
        rows.append(np.stack([off, _NOTE_OFF * ones, channel * ones, pitch, 0 * ones], 1))
        controls = track.controls.numpy()
        keep = controls["number"] != _SUSTAIN_PEDAL
        if keep.any():
            ones = np.ones(int(keep.sum()), np.int64)
            when = np.round(controls["time"][keep].astype(np.float64) * sample_rate).astype(np.int64)
            number, value = controls["number"][keep].astype(np.int64), controls["value"][keep].astype(np.int64)
            rows.append(np.stack([when, _CONTROL * ones, channel * ones, number, value], 1))
        bends = track.pitch_bends.numpy()
        if len(bends["time"]):
            ones = np.ones(len(bends["time"]), np.int64)
            value = bends["value"].astype(np.int64) + _PITCH_BEND_CENTRE
            when = np.round(bends["time"].astype(np.float64) * sample_rate).astype(np.int64)
            rows.append(np.stack([when, _BEND * ones, channel * ones, value, 0 * ones], 1))
    events = np.concatenate(rows)
    return events[np.lexsort((events[:, 2], events[:, 1], events[:, 0]))]


def render_midi(
    midi: str | os.PathLike[str] | bytes,
    sample_rate: int = SAMPLE_RATE,
    soundfont: str | os.PathLike[str] | None = None,
    stereo: bool = True,
    normalize: bool = False,
    gain_db: float = DEFAULT_GAIN_DB,
) -> np.ndarray:
    """Render a MIDI file (path or bytes) to float32 audio ``(2 or 1, samples)`` at ``sample_rate`` Hz.

    The audio runs from time 0 to the last note release plus its decay (cut once quieter than
    -80 dBFS, at most :data:`MAX_TAIL_SECONDS`). ``normalize`` scales the peak to -1 dBFS.
    Without it the synth level (``gain_db``) is kept, unless the mix would exceed full scale:
    then the whole piece is scaled down to -1 dBFS and a warning says so (never silent clipping).
    """
    if not MIN_RENDER_RATE <= sample_rate <= MAX_RENDER_RATE:
        raise AudioError(
            f"sample rate {sample_rate!r} Hz is out of range (render at {MIN_RENDER_RATE} to {MAX_RENDER_RATE} Hz)"
        )
    score, name = _load_score(midi)
    durations = np.concatenate([track.notes.numpy()["duration"] for track in score.tracks] or [np.zeros(0)])
    if len(durations) and not (durations > 0).any():
        raise MidiError(f"{name}: nothing to play: all {len(durations)} notes have zero length")
    synth, sfid = _load_synth(Path(soundfont) if soundfont is not None else default_soundfont(), sample_rate, gain_db)
    for channel, track in enumerate(score.tracks):
        # Bank 0 for melodic tracks; is_drums makes tinysoundfont look the program up as a kit in
        # bank 128, falling back to the standard kit (128, 0) when the SoundFont lacks it.
        synth.program_select(channel, sfid, 0, int(track.program), track.is_drum)
    events = _track_events(score, sample_rate)

    end = int(events[-1, 0])
    tail_cap = int(MAX_TAIL_SECONDS * sample_rate)
    frame_bytes = 2 * 4  # tinysoundfont always renders interleaved stereo float32
    buffer = memoryview(bytearray((end + tail_cap) * frame_bytes))
    position = 0
    for sample, kind, channel, data1, data2 in events.tolist():
        if sample > position:
            synth.generate_simple(sample - position, buffer=buffer[position * frame_bytes : sample * frame_bytes])
            position = sample
        if kind == _NOTE_ON:
            synth.noteon(channel, data1, data2)
        elif kind == _NOTE_OFF:
            synth.noteoff(channel, data1)
        elif kind == _CONTROL:
            synth.control_change(channel, data1, data2)
        else:
            synth.pitchbend(channel, data1)
    block = max(1, int(_TAIL_BLOCK_SECONDS * sample_rate))
    while position < end + tail_cap:
        size = min(block, end + tail_cap - position)
        view = buffer[position * frame_bytes : (position + size) * frame_bytes]
        synth.generate_simple(size, buffer=view)
        position += size
        if np.abs(np.frombuffer(view, np.float32)).max() < TAIL_THRESHOLD:
            break

    audio = np.frombuffer(buffer, np.float32)[: position * 2].reshape(-1, 2).T.copy()
    if not stereo:
        audio = to_mono(audio)
    peak = float(np.abs(audio).max())
    if not np.isfinite(peak):
        raise AudioError(f"{name}: the synthesizer produced non-finite samples")
    target = 10.0 ** (_NORMALIZE_PEAK_DB / 20.0)
    if peak > 0 and (normalize or peak > 1.0):
        if not normalize:
            warnings.warn(
                f"{name}: rendered peak {20 * np.log10(peak):+.1f} dBFS would clip; scaled to "
                f"{_NORMALIZE_PEAK_DB:.0f} dBFS (pass normalize=True or a lower gain_db to choose the level)",
                stacklevel=2,
            )
        audio *= target / peak
    return audio


def render_file(
    midi_path: str | os.PathLike[str],
    wav_path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    soundfont: str | os.PathLike[str] | None = None,
    stereo: bool = True,
    normalize: bool = False,
) -> Path:
    """Render ``midi_path`` with :func:`render_midi` and write it atomically to ``wav_path`` (16-bit)."""
    audio = render_midi(midi_path, sample_rate=sample_rate, soundfont=soundfont, stereo=stereo, normalize=normalize)
    return save_audio(wav_path, audio, sample_rate)
