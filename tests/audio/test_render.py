"""orchestrion.audio.render and the `orchestrion render` command."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import symusic
from typer.testing import CliRunner

from orchestrion.audio.io import SAMPLE_RATE, load_audio
from orchestrion.audio.render import MAX_TAIL_SECONDS, default_soundfont, render_file, render_midi
from orchestrion.cli import app
from orchestrion.errors import AudioError, MidiError

A4 = 69  # 440 Hz


def onset_seconds(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, relative_db: float = -30.0) -> float:
    """First time the rectified signal exceeds ``relative_db`` below the piece's peak."""
    level = np.abs(audio).max(axis=0)
    return float(np.argmax(level > level.max() * 10 ** (relative_db / 20)) / sample_rate)


def peak_frequency(audio: np.ndarray, start: float, seconds: float, sample_rate: int = SAMPLE_RATE) -> float:
    segment = audio[0, int(start * sample_rate) : int((start + seconds) * sample_rate)]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n=8 * len(segment)))
    return float(np.argmax(spectrum) * sample_rate / (8 * len(segment)))


def test_default_soundfont_is_pretty_midis_bundled_file():
    path = default_soundfont()
    assert path.name == "TimGM6mb.sf2" and path.stat().st_size > 1_000_000


@pytest.mark.parametrize("program", [0, 40, 73])  # piano, violin, flute
def test_one_note_has_its_fundamental_and_onset(midi_file, program):
    # Beat 1 at 120 qpm = 0.5 s; two beats long.
    path = midi_file("a4.mid", [(1.0, 2.0, A4, 100)], program=program)
    audio = render_midi(path)
    assert audio.dtype == np.float32 and audio.shape[0] == 2
    assert abs(onset_seconds(audio) - 0.5) <= 0.02
    assert np.abs(audio[:, : int(0.45 * SAMPLE_RATE)]).max() == 0.0  # nothing before the note
    assert peak_frequency(audio, 0.7, 0.6) == pytest.approx(440.0, rel=0.01)


def test_release_tail_is_kept_and_bounded(midi_file):
    path = midi_file("short.mid", [(0.0, 1.0, 60, 100)])  # ends at 0.5 s
    audio = render_midi(path)
    seconds = audio.shape[1] / SAMPLE_RATE
    assert 0.5 < seconds <= 0.5 + MAX_TAIL_SECONDS
    assert np.abs(audio[:, int(0.52 * SAMPLE_RATE) :]).max() > 1e-3  # the piano keeps ringing after note-off
    assert np.abs(audio[:, -100:]).max() < 1e-3  # ...but the render stops once it has died away


def test_drum_note_renders_and_differs_from_a_melodic_note(midi_file):
    drum = render_midi(midi_file("kick.mid", [(0.0, 0.5, 36, 110)], is_drum=True))
    melodic = render_midi(midi_file("c2.mid", [(0.0, 0.5, 36, 110)], is_drum=False))
    assert np.abs(drum).max() > 0.05
    n = min(drum.shape[1], melodic.shape[1], SAMPLE_RATE // 4)
    assert not np.allclose(drum[:, :n], melodic[:, :n], atol=1e-3)


def test_tempo_changes_move_notes(midi_file):
    # 120 qpm for 2 beats (1 s), then 60 qpm: beat 3 falls at 1 s + 1 s = 2 s (at 120 qpm it would be 1.5 s).
    path = midi_file("tempo.mid", [(3.0, 1.0, A4, 100)], tempos=[(0, 120.0), (2, 60.0)])
    assert abs(onset_seconds(render_midi(path)) - 2.0) <= 0.02


def test_program_changes_and_multiple_tracks(tmp_path):
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 120.0))
    for program, pitch, start in [(0, 69, 0), (40, 76, 960), (73, 81, 1920)]:
        track = symusic.Track(f"p{program}", program, False)
        track.notes.append(symusic.Note(start, 480, pitch, 100))
        score.tracks.append(track)
    audio = render_midi(score.dumps_midi())
    # Each note sounds at its own time with its own pitch (one per second).
    for start, pitch in [(0.0, 69), (1.0, 76), (2.0, 81)]:
        expected = 440.0 * 2 ** ((pitch - 69) / 12)
        assert peak_frequency(audio, start + 0.1, 0.3) == pytest.approx(expected, rel=0.02)
    np.testing.assert_array_equal(audio, render_midi(score.dumps_midi()))  # deterministic


def test_mono_sample_rate_and_normalisation(midi_file):
    path = midi_file("n.mid", [(0.0, 1.0, 60, 100), (0.0, 1.0, 64, 100)])
    stereo = render_midi(path)
    mono = render_midi(path, stereo=False)
    assert mono.shape == (1, stereo.shape[1])
    np.testing.assert_allclose(mono[0], stereo.mean(axis=0), atol=1e-6)
    fast = render_midi(path, sample_rate=44100)
    assert abs(fast.shape[1] / 44100 - stereo.shape[1] / SAMPLE_RATE) < 0.06
    normalised = render_midi(path, normalize=True)
    assert np.abs(normalised).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)


def test_loud_mixes_are_scaled_with_a_warning_not_clipped(tmp_path):
    score = symusic.Score(480)
    for index in range(24):  # 24 loud brass tracks in unison add up coherently past full scale
        track = symusic.Track(f"t{index}", 61, False)
        track.notes.append(symusic.Note(0, 960, 60, 127))
        score.tracks.append(track)
    with pytest.warns(UserWarning, match="would clip"):
        audio = render_midi(score.dumps_midi())
    assert np.abs(audio).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)


def test_render_file_writes_a_wav(midi_file, tmp_path):
    wav = render_file(midi_file("n.mid", [(0.0, 1.0, 60, 100)]), tmp_path / "n.wav")
    audio = load_audio(wav)
    assert audio.shape[0] == 2 and audio.shape[1] > 0.5 * SAMPLE_RATE



def test_bad_midi_input(tmp_path, midi_file):
    with pytest.raises(MidiError, match="not found") as error:
        render_midi(tmp_path / "missing.mid")
    assert "missing.mid" in str(error.value)
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"MThd this is not really a midi file at all")
    with pytest.raises(MidiError, match="not a valid MIDI file") as error:
        render_midi(garbage)
    assert "garbage.mid" in str(error.value)
    with pytest.raises(MidiError, match="no notes"):
        render_midi(midi_file("empty.mid", []))
    with pytest.raises(AudioError, match="SoundFont"):
        render_midi(midi_file("ok.mid", [(0.0, 1.0, 60, 100)]), soundfont=garbage)
    with pytest.raises(AudioError, match="not found"):
        render_midi(midi_file("ok.mid", [(0.0, 1.0, 60, 100)]), soundfont=tmp_path / "none.sf2")


def test_render_cli_end_to_end(midi_file, tmp_path):
    midi = midi_file("cli.mid", [(1.0, 1.0, A4, 100)])
    out = tmp_path / "cli.wav"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CliRunner().invoke(app, ["render", str(midi), str(out), "--mono", "--sample-rate", "16000"])
    assert result.exit_code == 0, result.output
    audio = load_audio(out, sample_rate=16000)
    assert audio.shape[0] == 1
    assert abs(onset_seconds(audio, 16000) - 0.5) <= 0.02


def test_render_cli_bad_input_exits_2_with_one_clean_line(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_text("not midi")
    result = subprocess.run(
        [sys.executable, "-m", "orchestrion.cli", "render", str(bad), str(tmp_path / "out.wav")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},  # keep rich from wrapping the one-line message
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "bad.mid" in result.stderr and "not a valid MIDI file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.wav").exists()


def test_program_change_inside_one_track(tmp_path):
    import mido

    def one_track_midi(name: str, first: int, second: int) -> bytes:
        """A4 at 0 s on the first program, A4 at 2 s on the second (120 qpm, 480 ticks per beat)."""
        midi = mido.MidiFile(ticks_per_beat=480)
        track = mido.MidiTrack()
        midi.tracks.append(track)
        track.append(mido.Message("program_change", channel=0, program=first, time=0))
        track.append(mido.Message("note_on", channel=0, note=A4, velocity=100, time=0))
        track.append(mido.Message("note_off", channel=0, note=A4, velocity=0, time=480))
        track.append(mido.Message("program_change", channel=0, program=second, time=480))
        track.append(mido.Message("note_on", channel=0, note=A4, velocity=100, time=960))
        track.append(mido.Message("note_off", channel=0, note=A4, velocity=0, time=480))
        midi.save(tmp_path / name)
        return (tmp_path / name).read_bytes()

    changed = render_midi(one_track_midi("change.mid", 0, 73))
    piano = render_midi(one_track_midi("piano.mid", 0, 0))
    flute = render_midi(one_track_midi("flute.mid", 73, 73))
    second = slice(2 * SAMPLE_RATE, int(2.5 * SAMPLE_RATE))
    np.testing.assert_allclose(changed[:, second], flute[:, second], atol=1e-4)
    assert not np.allclose(changed[:, second], piano[:, second], atol=1e-2)
    np.testing.assert_allclose(changed[:, : SAMPLE_RATE // 2], piano[:, : SAMPLE_RATE // 2], atol=1e-4)


def test_sustain_pedal_holds_released_notes(tmp_path):
    def render(pedal: bool) -> np.ndarray:
        score = symusic.Score(480)
        score.tempos.append(symusic.Tempo(0, 120.0))
        track = symusic.Track("piano", 0, False)
        track.notes.append(symusic.Note(0, 240, A4, 100))  # released at 0.25 s
        if pedal:  # pedal down from 0 s to 2 s
            track.controls.append(symusic.ControlChange(0, 64, 127))
            track.controls.append(symusic.ControlChange(1920, 64, 0))
        score.tracks.append(track)
        return render_midi(score.dumps_midi())

    at = slice(int(1.5 * SAMPLE_RATE), int(1.6 * SAMPLE_RATE))
    held, dry = render(pedal=True), render(pedal=False)
    assert np.abs(held[:, at]).max() > 1e-3
    assert dry.shape[1] < at.start or np.abs(dry[:, at]).max() < 1e-4
    assert held.shape[1] > 2 * SAMPLE_RATE
