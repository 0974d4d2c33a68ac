"""Piano-roll pictures of multi-track scores: one colour per track, time in seconds with bar numbers."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from symusic.core import ScoreTick

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


def plot_pianoroll(
    score: ScoreTick, out_png: str | os.PathLike[str], title: str | None = None, *, dpi: int = 110
) -> Path:
    """Draw every note of ``score`` as a bar (x: seconds, y: MIDI pitch) and write a PNG atomically.

    Each track has its own colour and a legend entry "index: GM program name"; thin vertical lines
    mark bar starts (numbered on the top axis). Raises MidiError if the score has no note.
    """
    from matplotlib import colormaps
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if score.ttype != "Tick":
        score = score.to("tick")
    out_png = Path(out_png)
    if score.note_num() == 0:
        raise MidiError(f"{out_png}: cannot draw a piano roll of a score without notes")

    fig = Figure(figsize=(14, 6), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    palette = colormaps["tab20"] if len(score.tracks) > 10 else colormaps["tab10"]
    handles, low, high, t_end = [], 127, 0, 0.0
    for i, track in enumerate(score.tracks):
        a = track.notes.numpy()
        if len(a["time"]) == 0:
            continue
        start = ticks_to_seconds(score, a["time"])
        end = ticks_to_seconds(score, a["time"].astype(np.int64) + a["duration"])
        pitch = a["pitch"].astype(np.float64)
        # One rectangle per note, built as an (N, 4, 2) vertex array: fast for tens of thousands of notes.
        verts = np.stack([
            np.stack([start, pitch - 0.4], 1), np.stack([end, pitch - 0.4], 1),
            np.stack([end, pitch + 0.4], 1), np.stack([start, pitch + 0.4], 1),
        ], axis=1)
        colour = palette(i % palette.N)
        ax.add_collection(PolyCollection(verts, facecolors=[colour], edgecolors="none"))
        handles.append(Patch(color=colour, label=f"{i}: {program_name(int(track.program), bool(track.is_drum))}"))
        low, high, t_end = min(low, int(pitch.min())), max(high, int(pitch.max())), max(t_end, float(end.max()))

    bars = score.get_downbeats()
    bar_sec = ticks_to_seconds(score, bars[bars <= score.end()]) if len(bars) else np.zeros(0)
    for x in bar_sec:
        ax.axvline(x, color="0.85", linewidth=0.6, zorder=0)
    ax.set_xlim(0.0, t_end * 1.01 + 1e-3)
    ax.set_ylim(low - 2, high + 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    if len(bar_sec):
        top = ax.secondary_xaxis("top")
        step = max(1, int(np.ceil(len(bar_sec) / _MAX_BAR_LABELS)))
        top.set_xticks(bar_sec[::step], [str(k + 1) for k in range(0, len(bar_sec), step)])
        top.set_xlabel("bar")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out_png, buf.getvalue())
    return out_png
