"""What one request to the studio may ask for: named limits, shown in `orchestrion studio --help`.

They protect a server that several browser tabs share: an upload is read whole into memory,
a generation holds a worker, and an endless stream holds one until it is stopped.
"""

from __future__ import annotations

MAX_UPLOAD_MEGABYTES = 20  # any uploaded file (also enforced by the web server before the upload lands)
MAX_UPLOAD_AUDIO_SECONDS = 60.0  # audio to reconstruct
MAX_GENERATION_SECONDS = 600.0  # a fixed-length Musika generation
MAX_STREAM_SECONDS = 1800.0  # an endless stream ends by itself after this long
MAX_GENERATED_BARS = 64  # new bars of one SymphonyNet generation
MAX_MIDI_NOTES = 20_000  # notes in an uploaded MIDI file
MAX_MIDI_SECONDS = 600.0  # length of an uploaded MIDI file
MAX_PARALLEL_JOBS = 4  # requests of one kind (streams, generations, ...) served at once; more wait in the queue
KEEP_FILES_SECONDS = 3600  # results and their downloads are deleted after this: a long session cannot fill a disk
STREAM_LOOKAHEAD_SECONDS = 2.0  # how far a stream runs ahead of playback: sliders act within about this long
STREAM_BLOCK_SECONDS = 0.5  # audio per streamed chunk


def limits_text() -> str:
    """The limits as one paragraph for help texts and the page footer."""
    return (
        f"uploads up to {MAX_UPLOAD_MEGABYTES} MB; audio to reconstruct up to {MAX_UPLOAD_AUDIO_SECONDS:g} s; "
        f"generated audio up to {MAX_GENERATION_SECONDS:g} s, endless streams stop after "
        f"{MAX_STREAM_SECONDS / 60:g} min; up to {MAX_GENERATED_BARS} new bars; uploaded MIDI up to "
        f"{MAX_MIDI_NOTES:,} notes and {MAX_MIDI_SECONDS:g} s; {MAX_PARALLEL_JOBS} requests of each kind at once; "
        f"results are kept for {KEEP_FILES_SECONDS / 60:g} min"
    )
