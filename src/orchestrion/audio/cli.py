"""`orchestrion render`: MIDI → WAV with a General MIDI SoundFont."""

from __future__ import annotations

from pathlib import Path

import typer


def render(
    midi_path: Path = typer.Argument(..., help="Input Standard MIDI File (.mid)."),
    wav_path: Path = typer.Argument(..., help="Output .wav (or .flac) file, written atomically."),
    soundfont: Path | None = typer.Option(
        None, "--soundfont", "-s", help="SoundFont (.sf2) to use; default: TimGM6mb.sf2 from pretty_midi."
    ),
    sample_rate: int = typer.Option(22050, "--sample-rate", "-r", help="Output sample rate in Hz (8000-192000)."),
    mono: bool = typer.Option(False, "--mono", help="Write one channel instead of stereo."),
    normalize: bool = typer.Option(False, "--normalize", help="Scale the peak to -1 dBFS."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace WAV_PATH if it exists."),
) -> None:
    """Render a MIDI file to audio (all tracks, drums on channel 10, tempo changes, release tails).

    WAV_PATH may not be MIDI_PATH; an existing WAV_PATH is replaced only with --overwrite.

    Example:

      orchestrion render piece.mid piece.wav --sample-rate 44100
    """
    import time

    from orchestrion.audio.io import check_audio_output, save_audio
    from orchestrion.audio.render import MAX_RENDER_RATE, MIN_RENDER_RATE, render_midi
    from orchestrion.errors import AudioError

    if not MIN_RENDER_RATE <= sample_rate <= MAX_RENDER_RATE:
        raise AudioError(f"--sample-rate {sample_rate}: out of range ({MIN_RENDER_RATE} to {MAX_RENDER_RATE} Hz)")
    check_audio_output(wav_path, overwrite=overwrite, inputs=[midi_path])
    start = time.perf_counter()
    audio = render_midi(midi_path, sample_rate=sample_rate, soundfont=soundfont, stereo=not mono, normalize=normalize)
    save_audio(wav_path, audio, sample_rate)
    seconds = audio.shape[1] / sample_rate
    typer.echo(f"{wav_path}: {seconds:.1f} s of audio in {time.perf_counter() - start:.2f} s")
