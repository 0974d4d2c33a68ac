"""The studio's requests as plain functions: a loaded model, a request and a fresh folder in; files,
a table and a message out. The web page (:mod:`orchestrion.studio.app`) only calls these.

Every request writes into its own new folder (:func:`new_job_folder`), so tabs working at the
same time can never see each other's files.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrion.errors import OrchestrionError
from orchestrion.studio.limits import KEEP_FILES_SECONDS, MAX_GENERATED_BARS
from orchestrion.studio.locks import PLOTTING, model_lock
from orchestrion.studio.uploads import read_audio_upload, read_midi_upload, user_facing


class RequestError(OrchestrionError):
    """A value from the page cannot be used (an empty or fractional number where a whole one is needed)."""


def whole_number(value: float | int | str | None, name: str, minimum: int = 0) -> int:
    """A page field's value as a whole number >= ``minimum``; a clear message otherwise (an emptied field is None)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a whole number >= {minimum}, the field is empty or not a number") from None
    if not number.is_integer() or number < minimum:
        raise RequestError(f"{name} must be a whole number >= {minimum}, got {number:g}")
    return int(number)


def new_job_folder(workspace: Path, kind: str, keep_seconds: float = KEEP_FILES_SECONDS) -> Path:
    """A new, empty folder inside ``workspace`` for one request's files.

    Folders of earlier requests older than ``keep_seconds`` are deleted first (gradio serves copies
    of returned files from its own cache, so nothing on the page points into them any more).
    """
    workspace.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - keep_seconds
    for old in workspace.iterdir():
        if old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=workspace))


def _pianoroll(score, path: Path, title: str) -> Path:
    from orchestrion.symbolic.pianoroll import plot_pianoroll

    with PLOTTING:
        return plot_pianoroll(score, path, title, dpi=80)


def _render(midi: Path, wav: Path) -> Path:
    from orchestrion.audio.render import render_file

    return render_file(midi, wav)


# ---------------------------------------------------------------------------------------------
# SymphonyNet: generate or continue
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolicRequest:
    """A SymphonyNet generation: ``bars`` new bars (1..MAX_GENERATED_BARS), optionally after the first
    ``prompt_bars`` bars of an uploaded MIDI ``prompt``; new tracks play one of ``instruments``
    (General MIDI names; empty = any)."""

    bars: int = 8
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    instruments: tuple[str, ...] = ()
    prompt: Path | None = None
    prompt_bars: int | None = None


@dataclass
class SymbolicResult:
    midi: Path
    audio: Path
    pianoroll: Path
    table: list[list[str]]  # track, instrument, probability, notes, from
    message: str


def generate_symbolic(
    trained, request: SymbolicRequest, out_dir: Path, progress: Callable[[int], None] | None = None
) -> SymbolicResult:
    """Sample a piece with a :class:`~orchestrion.symphony.models.TrainedSymphony`, write its MIDI, its
    soundfont rendering (WAV) and its piano roll (PNG) into ``out_dir``. ``progress`` is called with the
    number of steps sampled so far."""
    from orchestrion.symbolic.midi import save_midi
    from orchestrion.symphony.generate import GenerationError, SamplingOptions, generate_midi, parse_instruments
    from orchestrion.symphony.generate import program_label as label

    if not 1 <= request.bars <= MAX_GENERATED_BARS:
        raise GenerationError(f"bars must be between 1 and {MAX_GENERATED_BARS}, got {request.bars}")
    prompt = None
    if request.prompt is not None:
        read_midi_upload(request.prompt)  # size, kind and length, with the user's file name in messages
        prompt = Path(request.prompt)
    programs = parse_instruments(",".join(request.instruments)) if request.instruments else None
    options = SamplingOptions(
        temperature=request.temperature, top_p=request.top_p, seed=request.seed, bars=request.bars,
        instruments=programs, track_order="distinct" if trained.training.relabel_tracks else "ascending",
    )
    try:
        result = generate_midi(trained.model, trained.bpe, options, prompt, request.prompt_bars, progress)[0]
    except OrchestrionError as error:
        raise (user_facing(error, prompt) if prompt is not None else error) from None
    score = result.score()
    stem = f"symphony-seed{request.seed}"
    midi = save_midi(score, out_dir / f"{stem}.mid")
    table = [[str(a.track), label(a.program), f"{a.probability:.2f}", str(a.n_notes), a.source]
             for a in result.assignments]
    source = f"continuing {prompt.name} ({result.prompt_steps} prompt steps)" if prompt is not None else "from scratch"
    message = (f"{result.n_bars} bars, {score.note_num()} notes on {len(result.assignments)} tracks, seed "
               f"{request.seed}, {source}")
    return SymbolicResult(midi, _render(midi, out_dir / f"{stem}.wav"),
                          _pianoroll(score, out_dir / f"{stem}.png", f"SymphonyNet, seed {request.seed}"), table,
                          message)


# ---------------------------------------------------------------------------------------------
# SymphonyNet: orchestrate an uploaded MIDI
# ---------------------------------------------------------------------------------------------


@dataclass
class OrchestrationResult:
    original_audio: Path
    original_pianoroll: Path
    midi: Path
    audio: Path
    pianoroll: Path
    table: list[list[str]]  # track, name, notes, was, now, probability
    message: str


def orchestrate_upload(
    trained, upload: Path | str | None, out_dir: Path, *, seed: int = 0, keep_drums: bool = True,
    instruments: tuple[str, ...] = (),
) -> OrchestrationResult:
    """Give every track of an uploaded MIDI file an instrument chosen by the model; renderings and piano
    rolls of the original and the result, for comparison."""
    from orchestrion.symbolic.midi import save_midi
    from orchestrion.symphony.generate import orchestrate, parse_instruments
    from orchestrion.symphony.generate import program_label as label

    score = read_midi_upload(upload)
    upload = Path(upload)
    programs = parse_instruments(",".join(instruments)) if instruments else None
    try:
        result = orchestrate(upload, trained.model, trained.bpe, keep_drums=keep_drums, seed=seed,
                             instruments=programs,
                             track_order="distinct" if trained.training.relabel_tracks else "ascending")
    except OrchestrionError as error:
        raise user_facing(error, upload) from None
    original = save_midi(score, out_dir / "original.mid")
    midi = save_midi(result.score, out_dir / f"{upload.stem}-orchestrated.mid")
    table = [[str(t.index), t.name, str(t.n_notes), label(t.old_program), label(t.program),
              "kept" if t.probability is None else f"{t.probability:.2f}"] for t in result.tracks]
    changed = sum(t.program != t.old_program for t in result.tracks)
    return OrchestrationResult(
        _render(original, out_dir / "original.wav"), _pianoroll(score, out_dir / "original.png", upload.name), midi,
        _render(midi, out_dir / f"{upload.stem}-orchestrated.wav"),
        _pianoroll(result.score, out_dir / "orchestrated.png", f"{upload.name}, orchestrated (seed {seed})"), table,
        f"{upload.name}: {changed} of {len(result.tracks)} tracks changed instrument ({result.n_windows} window(s))",
    )


# ---------------------------------------------------------------------------------------------
# Musika: reconstruction by the autoencoder
# ---------------------------------------------------------------------------------------------


@dataclass
class ReconstructionResult:
    original: Path
    reconstruction: Path
    spectrograms: Path
    message: str


def reconstruct_upload(autoencoder, upload: Path | str | None, out_dir: Path) -> ReconstructionResult:
    """Encode and decode an uploaded audio file with a Musika autoencoder; both as 22.05 kHz WAV and
    their spectrograms one above the other."""
    import torch

    from orchestrion.audio.io import save_audio
    from orchestrion.musika.inference import reconstruct, spectrogram_comparison_png

    wave = read_audio_upload(upload)
    name = Path(upload).name
    with model_lock(autoencoder):  # the same modules may be streaming for another tab
        rebuilt = reconstruct(torch.from_numpy(wave), autoencoder).numpy()
    stem = Path(name).stem
    original = save_audio(out_dir / f"{stem}.wav", wave)
    reconstruction = save_audio(out_dir / f"{stem}-reconstructed.wav", rebuilt)
    panels = [(f"input: {name}", wave[0]), (f"reconstruction (level {autoencoder.level})", rebuilt[0])]
    with PLOTTING:
        png = spectrogram_comparison_png(out_dir / f"{stem}-spectrograms.png", panels)
    seconds = wave.shape[-1] / 22050
    return ReconstructionResult(original, reconstruction, png,
                                f"{name}: {seconds:.1f} s, {wave.shape[0]} channel(s), reconstructed at level "
                                f"{autoencoder.level}")
