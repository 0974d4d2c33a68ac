"""`orchestrion demo`: what the bundled models do, in one folder a browser opens.

Three pieces, each with a picture, and an ``index.html`` that plays and shows them:

1. **Endless audio** (Musika): ``seconds`` of stereo from the latent GAN while the note-density
   condition sweeps from sparse to dense, with its spectrogram.
2. **A new multi-track piece** (SymphonyNet): generated from scratch for a chamber ensemble,
   rendered with the General MIDI soundfont, with its piano roll.
3. **Automatic orchestration** (SymphonyNet): a built-in arrangement with its instruments removed,
   re-orchestrated by the model; original and orchestrated side by side.

Everything runs on the CPU from the bundled models; nothing is downloaded.
"""

from __future__ import annotations

import html
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrion.errors import OrchestrionError
from orchestrion.fileio import atomic_write_text, check_output_path
from orchestrion.pretrained import model_or_default
from orchestrion.symphony.models import TrainedSymphony, load_symphony
from orchestrion.system import torch_threads

DENSITY_SWEEP = (0.05, 0.95)  # normalised note density at the start and the end of the Musika piece
ENSEMBLE = "violin,viola,cello,flute,clarinet"  # instruments the generated piece may use
ORCHESTRATED_PIECE = 1  # index in the built-in `demo` corpus (a chorale arranged for strings)
MAX_SECONDS = 3600.0


@dataclass
class DemoItem:
    """One entry of the page: a title, a line on what it is, audio files and pictures (names in the folder)."""

    title: str
    description: str
    audio: list[tuple[str, str]] = field(default_factory=list)  # (label, file name)
    pictures: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time it took


DEMO_FILES = (
    "musika.wav", "musika.png",
    "symphony.mid", "symphony.wav", "symphony.png",
    "original.mid", "original.wav", "original.png",
    "orchestrated.mid", "orchestrated.wav", "orchestrated.png",
    "index.html",
)


def _musika(out: Path, seconds: float, seed: int, model_dir: Path) -> DemoItem:
    from orchestrion.musika.generate import ConditionCurve, generate_to_file
    from orchestrion.musika.models import load_latent_gan

    gan = load_latent_gan(model_dir)
    extra = {}
    if "note_density" in gan.config.conditions:
        extra["note_density"] = ConditionCurve(
            np.array([0.0, seconds]), np.array(DENSITY_SWEEP), f"sweep {DENSITY_SWEEP[0]}-{DENSITY_SWEEP[1]}"
        )
    generate_to_file(gan, seconds, out / "musika.wav", seed, png=True, **extra)
    sweep = (
        f" while the note-density condition rises from {DENSITY_SWEEP[0]} to {DENSITY_SWEEP[1]} (sparse to dense)"
        if extra else ""
    )
    return DemoItem(
        "Endless audio (Musika latent GAN)",
        f"{seconds:g} s of stereo 22.05 kHz audio generated from noise, seed {seed}{sweep}. "
        "The generator makes latents of any length in one batched pass; the two-level autoencoder "
        "decodes them to a spectrogram with phase.",
        [("generated", "musika.wav")],
        ["musika.png"],
    )


def _symphony_piece(out: Path, trained: TrainedSymphony, bars: int, seed: int) -> DemoItem:
    from orchestrion.audio.render import render_file
    from orchestrion.symbolic.midi import save_midi
    from orchestrion.symbolic.pianoroll import plot_pianoroll
    from orchestrion.symphony.generate import SamplingOptions, generate_midi, parse_instruments, program_label

    options = SamplingOptions(seed=seed, bars=bars, instruments=parse_instruments(ENSEMBLE), top_p=0.95,
                              track_order=_track_order(trained))
    piece = generate_midi(trained.model, trained.bpe, options)[0]
    score = piece.score()
    save_midi(score, out / "symphony.mid")
    render_file(out / "symphony.mid", out / "symphony.wav")
    plot_pianoroll(score, out / "symphony.png", f"generated, {piece.n_bars} bars, seed {seed}")
    instruments = ", ".join(f"track {a.track}: {program_label(a.program)}" for a in piece.assignments)
    return DemoItem(
        "A new multi-track piece (SymphonyNet)",
        f"{piece.n_bars} bars sampled from scratch (seed {seed}, nucleus p 0.95), tracks free to choose "
        f"from {ENSEMBLE.replace(',', ', ')}; the instrument head chose {instruments}. "
        "Rendered with the General MIDI soundfont.",
        [("generated", "symphony.wav")],
        ["symphony.png"],
    )


def _orchestration(out: Path, trained: TrainedSymphony, seed: int) -> DemoItem:
    from orchestrion.audio.render import render_file
    from orchestrion.corpora.catalogue import corpus_pieces
    from orchestrion.corpora.export import piece_midi
    from orchestrion.symbolic.midi import parse_midi, save_midi
    from orchestrion.symbolic.pianoroll import plot_pianoroll
    from orchestrion.symphony.generate import orchestrate, program_label

    source = corpus_pieces("demo")[ORCHESTRATED_PIECE]
    original = parse_midi(piece_midi(source), source.id)
    save_midi(original, out / "original.mid")
    unlabelled = original.copy()
    for track in unlabelled.tracks:
        track.program = 0
    with tempfile.TemporaryDirectory() as scratch:
        save_midi(unlabelled, Path(scratch) / "unlabelled.mid")
        result = orchestrate(Path(scratch) / "unlabelled.mid", trained.model, trained.bpe, mode="argmax",
                             seed=seed, track_order=_track_order(trained))
    save_midi(result.score, out / "orchestrated.mid")
    for name, written in (("original", original), ("orchestrated", result.score)):
        render_file(out / f"{name}.mid", out / f"{name}.wav")
        plot_pianoroll(written, out / f"{name}.png", f"{name}: {source.id}")
    original_programs = ", ".join(program_label(t.program) for t in original.tracks)
    chosen = "; ".join(
        f"{t.name or f'track {t.index}'}: {program_label(t.program)} (p {t.probability:.2f})"
        for t in result.tracks if t.probability is not None
    )
    return DemoItem(
        "Automatic orchestration (SymphonyNet)",
        f"'{source.id}' from the built-in demo corpus, written for {original_programs}. Its instruments "
        "were removed (every track set to piano) and the model chose one per track from its averaged "
        f"instrument predictions: {chosen}.",
        [("original", "original.wav"), ("orchestrated by the model", "orchestrated.wav")],
        ["original.png", "orchestrated.png"],
    )


def _track_order(trained: TrainedSymphony) -> str:
    return "distinct" if trained.training.relabel_tracks else "ascending"


def _page(items: list[DemoItem], total_seconds: float) -> str:
    sections = []
    for item in items:
        players = "".join(
            f'<figure><figcaption>{html.escape(label)}</figcaption>'
            f'<audio controls preload="none" src="{html.escape(name)}"></audio>'
            f'<a href="{html.escape(name)}" download>download</a></figure>'
            for label, name in item.audio
        )
        pictures = "".join(f'<img src="{html.escape(name)}" alt="{html.escape(name)}">' for name in item.pictures)
        sections.append(
            f"<section><h2>{html.escape(item.title)}</h2><p>{html.escape(item.description)}</p>"
            f'<div class="players">{players}</div><div class="pictures">{pictures}</div>'
            f'<p class="time">made in {item.seconds:.1f} s</p></section>'
        )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "section{border-top:1px solid #ddd;padding:1em 0}figure{display:inline-block;margin:0 2em .5em 0}"
        "figcaption{font-weight:600}audio{display:block}.pictures img{max-width:100%;margin:.5em 0}"
        ".pictures{display:flex;gap:1em;flex-wrap:wrap}.pictures img{flex:1 1 45%}.time{color:#777;font-size:.9em}"
    )
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>orchestrion demo</title>"
        f"<style>{style}</style></head><body><h1>orchestrion demo</h1>"
        "<p>Made on this computer by the small default models bundled with orchestrion "
        f"(in {total_seconds:.0f} s). They are starters trained on a CPU from the built-in corpora: "
        "train your own on your music for better results.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def run_demo(
    out: str | Path,
    *,
    seconds: float = 60.0,
    bars: int = 16,
    seed: int = 0,
    overwrite: bool = False,
    musika_model: Path | None = None,
    symphony_model: Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Write the demo folder ``out`` (see the module docstring) and return the path of its ``index.html``.

    Every file the demo writes is checked first: existing ones are replaced only with ``overwrite``.
    ``on_step`` is told what starts next (for progress messages).
    """
    if not (np.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise OrchestrionError(f"--seconds must be in (0, {MAX_SECONDS:g}], got {seconds:g}")
    if bars < 1:
        raise OrchestrionError(f"--bars must be at least 1, got {bars}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OrchestrionError(f"{out}: is a file; --out needs a folder")
    for name in DEMO_FILES:
        check_output_path(out / name, overwrite=overwrite)
    musika_dir = model_or_default(musika_model, "musika")  # a missing model fails before any work
    symphony_dir = model_or_default(symphony_model, "symphony")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    items: list[DemoItem] = []

    def timed(label: str, make: Callable[[], DemoItem]) -> None:
        if on_step is not None:
            on_step(label)
        began = time.perf_counter()
        item = make()
        item.seconds = time.perf_counter() - began
        items.append(item)

    sweep = f"Musika: {seconds:g} s of audio with a note-density sweep"
    timed(sweep, lambda: _musika(out, seconds, seed, musika_dir))
    trained = load_symphony(symphony_dir)
    with torch_threads(1):  # token-by-token sampling of a small model: more threads only add barriers
        timed(f"SymphonyNet: a {bars}-bar piece", lambda: _symphony_piece(out, trained, bars, seed))
        timed("SymphonyNet: orchestrating a built-in piece", lambda: _orchestration(out, trained, seed))
    page = out / "index.html"
    atomic_write_text(page, _page(items, time.perf_counter() - start))
    return page
