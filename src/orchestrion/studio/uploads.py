"""Checking what a browser uploads before any model sees it: size, kind, length.

Every check raises :class:`UploadError` (or the audio/MIDI readers' own errors) with a message
that names the file by the name the user gave it, never by the server's temporary path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrion.errors import OrchestrionError
from orchestrion.studio.limits import MAX_MIDI_NOTES, MAX_MIDI_SECONDS, MAX_UPLOAD_AUDIO_SECONDS, MAX_UPLOAD_MEGABYTES


class UploadError(OrchestrionError):
    """An uploaded file is missing, too large, too long or not what the tab takes."""


def user_facing(error: OrchestrionError, path: Path) -> OrchestrionError:
    """The same error with the server-side path replaced by the file's own name."""
    return type(error)(str(error).replace(str(path), path.name))


def check_upload(path: str | Path | None, what: str) -> Path:
    """An uploaded file that exists and is within :data:`MAX_UPLOAD_MEGABYTES`; ``what`` names it in messages."""
    if path is None or not str(path):
        raise UploadError(f"no {what} uploaded: drop a file on the upload box first")
    path = Path(path)
    if not path.is_file():
        raise UploadError(f"{path.name}: the upload did not arrive; upload it again")
    megabytes = path.stat().st_size / 1e6
    if megabytes > MAX_UPLOAD_MEGABYTES:
        raise UploadError(f"{path.name}: {megabytes:.1f} MB is over the {MAX_UPLOAD_MEGABYTES} MB upload limit")
    return path


def read_audio_upload(path: str | Path | None) -> np.ndarray:
    """An uploaded audio file as float32 ``(channels, samples)`` at 22.05 kHz, at most
    :data:`MAX_UPLOAD_AUDIO_SECONDS` long (checked from the header, before decoding)."""
    from orchestrion.audio.io import audio_info, load_audio

    path = check_upload(path, "audio file")
    try:
        info = audio_info(path)
        if info.duration > MAX_UPLOAD_AUDIO_SECONDS:
            raise UploadError(
                f"{path.name}: {info.duration:.1f} s is longer than the {MAX_UPLOAD_AUDIO_SECONDS:g} s limit; "
                "upload an excerpt"
            )
        return load_audio(path)
    except OrchestrionError as error:
        raise user_facing(error, path) from None


def read_midi_upload(path: str | Path | None):
    """An uploaded MIDI file as a tick score, at most :data:`MAX_MIDI_NOTES` notes and
    :data:`MAX_MIDI_SECONDS` long. Raises :class:`~orchestrion.errors.MidiError` for a file that is
    not MIDI or is corrupt."""
    from orchestrion.symbolic.midi import parse_midi

    path = check_upload(path, "MIDI file")
    score = parse_midi(path.read_bytes(), path.name)
    if score.note_num() > MAX_MIDI_NOTES:
        raise UploadError(f"{path.name}: {score.note_num():,} notes is over the {MAX_MIDI_NOTES:,}-note limit")
    seconds = score.to("second").end()
    if seconds > MAX_MIDI_SECONDS:
        raise UploadError(f"{path.name}: {seconds:.0f} s is longer than the {MAX_MIDI_SECONDS:g} s limit")
    return score
