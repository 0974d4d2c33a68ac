"""Piano-roll pictures of multi-track scores: one colour per track, time in seconds with bar numbers,
drums as hits on a lane of their own."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from symusic.core import ScoreTick

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from orchestrion.errors import MidiError
from orchestrion.fileio import atomic_write_bytes
from orchestrion.symbolic.midi import ticks_to_seconds

_MAX_BAR_LABELS = 24


def program_name(program: int, is_drum: bool = False) -> str:
    """General MIDI instrument name of ``program`` (0-127); drums (flag or program 128) → "Drums"."""
    if is_drum or program == 128:
        return "Drums"
    from pretty_midi import program_to_instrument_name  # GM name table; pretty_midi is a dependency

    return program_to_instrument_name(program)


def drum_name(pitch: int) -> str:
    """General MIDI percussion name of key ``pitch`` (35-81), else ``"drum key N"``."""
    from pretty_midi import note_number_to_drum_name

    return note_number_to_drum_name(pitch) or f"drum key {pitch}"


def pianoroll_figure(score: ScoreTick, title: str | None = None, *, dpi: int = 110) -> Figure:
    """The piano-roll figure of ``score`` (see :func:`plot_pianoroll`); raises MidiError without notes.

    Pitched tracks are bars on a pitch axis; drum tracks are hits (one marker per onset) on a
    separate lane below, one row per percussion sound, since a drum key is a sound, not a pitch.
    """
    from matplotlib import colormaps
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if score.ttype != "Tick":
        score = score.to("tick")
    if score.note_num() == 0:
        raise MidiError("cannot draw a piano roll of a score without notes")

    tracks = [(i, t, t.notes.numpy()) for i, t in enumerate(score.tracks) if len(t.notes)]
    pitched = [(i, t, a) for i, t, a in tracks if not t.is_drum]
    drums = [(i, t, a) for i, t, a in tracks if t.is_drum]
    drum_keys = sorted({int(p) for _, _, a in drums for p in a["pitch"]})
    fig = Figure(figsize=(14, 6 + (0.25 * len(drum_keys) if pitched and drums else 0)), dpi=dpi)
    if pitched and drums:
        ax, ax_drums = fig.subplots(2, 1, sharex=True, height_ratios=[4, max(1, len(drum_keys) / 4)])
    else:
        ax = ax_drums = fig.add_subplot(1, 1, 1)
    palette = colormaps["tab20"] if len(score.tracks) > 10 else colormaps["tab10"]
    handles, t_end = [], 0.0
    for i, track, a in tracks:
        start = ticks_to_seconds(score, a["time"])
        end = ticks_to_seconds(score, a["time"].astype(np.int64) + a["duration"])
        colour = palette(i % palette.N)
        if track.is_drum:
            row = np.searchsorted(drum_keys, a["pitch"])
            ax_drums.scatter(start, row, marker="|", s=60, color=colour, linewidths=1.5)
        else:
            pitch = a["pitch"].astype(np.float64)
            # One rectangle per note, built as an (N, 4, 2) vertex array: fast for tens of thousands of notes.
            verts = np.stack([
                np.stack([start, pitch - 0.4], 1), np.stack([end, pitch - 0.4], 1),
                np.stack([end, pitch + 0.4], 1), np.stack([start, pitch + 0.4], 1),
            ], axis=1)
            ax.add_collection(PolyCollection(verts, facecolors=[colour], edgecolors="none"))
        handles.append(Patch(color=colour, label=f"{i}: {program_name(int(track.program), bool(track.is_drum))}"))
        t_end = max(t_end, float(end.max()))

    bars = score.get_downbeats()
    bar_sec = ticks_to_seconds(score, bars[bars <= score.end()]) if len(bars) else np.zeros(0)
    for axis in {ax, ax_drums}:
        for x in bar_sec:
            axis.axvline(x, color="0.85", linewidth=0.6, zorder=0)
        axis.set_xlim(0.0, t_end * 1.01 + 1e-3)
    if pitched:
        low = min(int(a["pitch"].min()) for _, _, a in pitched)
        high = max(int(a["pitch"].max()) for _, _, a in pitched)
        ax.set_ylim(low - 2, high + 2)
        ax.set_ylabel("MIDI pitch")
    if drums:
        ax_drums.set_yticks(range(len(drum_keys)), [drum_name(k) for k in drum_keys], fontsize="small")
        ax_drums.set_ylim(-0.7, len(drum_keys) - 0.3)
        ax_drums.set_ylabel("drums")
    (ax_drums if drums else ax).set_xlabel("time (s)")
    if len(bar_sec):
        top = ax.secondary_xaxis("top")
        step = max(1, int(np.ceil(len(bar_sec) / _MAX_BAR_LABELS)))
        top.set_xticks(bar_sec[::step], [str(k + 1) for k in range(0, len(bar_sec), step)])
        top.set_xlabel("bar")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_pianoroll(
    score: ScoreTick, out_png: str | os.PathLike[str], title: str | None = None, *, dpi: int = 110
) -> Path:
    """Draw every note of ``score`` (x: seconds) and write a PNG atomically.

    Each track has its own colour and a legend entry "index: GM program name"; thin vertical lines
    mark bar starts (numbered on the top axis); drums are hits on their own lane
    (:func:`pianoroll_figure`). Raises MidiError if the score has no note.
    """
    out_png = Path(out_png)
    try:
        fig = pianoroll_figure(score, title, dpi=dpi)
    except MidiError as error:
        raise MidiError(f"{out_png}: {error}") from None
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out_png, buf.getvalue())
    return out_png
