"""One tab's live Musika stream: blocks paced to playback, conditions that change while it plays,
and a recording of everything played, for download.

The stream runs at most :data:`~orchestrion.studio.limits.STREAM_LOOKAHEAD_SECONDS` ahead of
playback, so a slider moved now is heard within about that long (the change itself glides, see
:meth:`orchestrion.musika.generate.MusikaStream.set_conditions`), and an endless stream costs only
real-time work. Slider changes arrive from other threads; they are queued and applied by the
thread that generates, between two blocks, so the stream is never touched by two threads at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from orchestrion.audio.spectral import SAMPLE_RATE
from orchestrion.musika.generate import PNG_SECONDS, GenerationError, MusikaStream, condition_curve, pcm16, wav_header
from orchestrion.studio.limits import (
    MAX_GENERATION_SECONDS,
    MAX_STREAM_SECONDS,
    STREAM_BLOCK_SECONDS,
    STREAM_LOOKAHEAD_SECONDS,
)
from orchestrion.studio.locks import PLOTTING, model_lock


def require_stream_encoder() -> None:
    """Raise :class:`GenerationError` when ffmpeg is missing: gradio encodes streamed audio with it."""
    import shutil

    if shutil.which("ffmpeg") is None:
        raise GenerationError(
            "streaming to the browser needs ffmpeg (gradio encodes the stream with it): "
            "install it, e.g. apt-get install ffmpeg"
        )


def trained_conditions(model, note_density: float | None, tempo: float | None) -> dict[str, float]:
    """The given conditioning values the model was trained with (a page always sends both sliders)."""
    given = {"note_density": note_density, "tempo": tempo}
    return {name: value for name, value in given.items() if value is not None and name in model.config.conditions}


def wav_chunk(block: np.ndarray) -> bytes:
    """A (channels, n) float block as a complete 16-bit WAV file: the chunk format gradio streams."""
    return wav_header(block.shape[0], block.shape[1]) + pcm16(block)


class LiveStream:
    """Stereo Musika audio for one tab, block by block, recorded to ``out_dir/stream.wav``.

    Args:
        model: a trained latent GAN.
        out_dir: this request's own folder (the recording and its spectrogram go there).
        seed: the piece.
        seconds: length, at most :data:`MAX_GENERATION_SECONDS`; None streams until :meth:`stop`
            or :data:`MAX_STREAM_SECONDS`.
        note_density, tempo: starting conditions (density 0..1, tempo in BPM); ignored when the
            model was not trained with them.
        block_seconds: audio per block.
        lookahead_seconds: how far generation may run ahead of the wall clock (None: no pacing).
    """

    def __init__(
        self,
        model,
        out_dir: Path,
        *,
        seed: int,
        seconds: float | None,
        note_density: float | None = None,
        tempo: float | None = None,
        block_seconds: float = STREAM_BLOCK_SECONDS,
        lookahead_seconds: float | None = STREAM_LOOKAHEAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if seconds is not None and not 0 < seconds <= MAX_GENERATION_SECONDS:
            raise GenerationError(f"length must be between 0 and {MAX_GENERATION_SECONDS:g} s, got {seconds:g} s")
        self.model = model
        self.seed = int(seed)
        self.model_lock = model_lock(model.autoencoder)
        self.stream = MusikaStream(
            model, self.seed, **trained_conditions(model, note_density, tempo), block_seconds=block_seconds
        )
        self.total_samples = round((MAX_STREAM_SECONDS if seconds is None else seconds) * SAMPLE_RATE)
        self.endless = seconds is None
        self.lookahead_seconds = lookahead_seconds
        self.clock = clock
        self.wav_path = out_dir / "stream.wav"
        self.png_path = out_dir / "stream.png"
        self.samples_sent = 0
        self.first_block_seconds: float | None = None  # from the start of :meth:`blocks` to the first block
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def channels(self) -> int:
        return len(self.stream.channels)

    def set_conditions(self, note_density: float | None = None, tempo: float | None = None) -> None:
        """Ask for new conditions from the next block on (callable from any thread).

        Raises :class:`GenerationError` at once for a value out of the model's range.
        """
        values = trained_conditions(self.model, note_density, tempo)
        for name, value in values.items():
            condition_curve(self.model, name, value)  # validates now, in the caller's thread
        with self._lock:
            self._pending.update(values)

    def stop(self) -> None:
        """End the stream after the current block (callable from any thread); the recording is kept."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            with self.model_lock:  # regenerates a segment with the shared generator
                self.stream.set_conditions(**pending)

    def _wait_for_playback(self, started: float) -> None:
        if self.lookahead_seconds is None:
            return
        while not self._stopped.is_set():
            ahead = self.samples_sent / SAMPLE_RATE - (self.clock() - started) - self.lookahead_seconds
            if ahead <= 0:
                return
            self._stopped.wait(min(ahead, 0.1))

    def blocks(self) -> Iterator[np.ndarray]:
        """(channels, n) float32 blocks in [-1, 1] at 22.05 kHz until the length, :meth:`stop` or the cap.

        When the iteration ends normally, ``wav_path`` (16-bit WAV of everything yielded) and
        ``png_path`` (spectrogram of the left channel's first two minutes) exist; if it is
        abandoned half way, no partial file is left.
        """
        import soundfile

        from orchestrion.fileio import atomic_path
        from orchestrion.musika.inference import spectrogram_comparison_png

        started = self.clock()
        preview: list[np.ndarray] = []
        preview_samples = round(PNG_SECONDS * SAMPLE_RATE)
        with (
            atomic_path(self.wav_path) as tmp,
            soundfile.SoundFile(tmp, "w", SAMPLE_RATE, self.channels, subtype="PCM_16") as handle,
        ):
            # the first block always comes, so a stream stopped at once still leaves a playable file
            while self.samples_sent == 0 or (self.samples_sent < self.total_samples and not self._stopped.is_set()):
                self._apply_pending()
                with self.model_lock:
                    block = self.stream.read(min(self.stream.block_samples, self.total_samples - self.samples_sent))
                if self.first_block_seconds is None:
                    self.first_block_seconds = self.clock() - started
                handle.write(block.T)
                if self.samples_sent < preview_samples:
                    preview.append(block[0, : preview_samples - self.samples_sent])
                self.samples_sent += block.shape[-1]
                yield block
                self._wait_for_playback(started)
        title = f"generated, seed {self.seed}" + (" (first 2 minutes)" if self.samples_sent > preview_samples else "")
        with PLOTTING:
            spectrogram_comparison_png(self.png_path, [(title, np.concatenate(preview))])
