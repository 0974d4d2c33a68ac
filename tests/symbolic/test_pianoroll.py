"""Piano-roll PNG: written atomically, non-trivial, one colour per track."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic
from test_mmr_support import make_score, random_score

from orchestrion.errors import MidiError
from orchestrion.symbolic.mmr import roundtrip
from orchestrion.symbolic.pianoroll import plot_pianoroll, program_name


def _colours(png: Path) -> set[tuple[int, int, int]]:
    from matplotlib.image import imread

    img = (imread(png)[..., :3] * 255).round().astype(np.uint8)
    return set(map(tuple, img.reshape(-1, 3).tolist()))


def test_pianoroll_png_is_written_and_shows_each_track(tmp_path: Path) -> None:
    out = plot_pianoroll(random_score(1), tmp_path / "figs" / "roll.png", title="random piece")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert [p.name for p in out.parent.iterdir()] == ["roll.png"]  # no temp file left
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    present = _colours(out)
    rgb = [tuple(round(c * 255) for c in palette(i)[:3]) for i in range(10)]
    for i in range(8):  # 6 pitched + 2 drum tracks, each in its own tab10 colour
        assert rgb[i] in present, f"track {i} colour missing"
    assert rgb[9] not in present  # no ninth/tenth track, no tenth colour


def test_pianoroll_of_a_decoded_piece(tmp_path: Path) -> None:
    out = plot_pianoroll(roundtrip(random_score(2, n_tracks=3)), tmp_path / "decoded.png")
    assert out.stat().st_size > 10_000


def test_program_names() -> None:
    assert program_name(40) == "Violin" and program_name(0) == "Acoustic Grand Piano"
    assert program_name(128) == "Drums" and program_name(5, is_drum=True) == "Drums"


def test_empty_score_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MidiError, match="without notes"):
        plot_pianoroll(symusic.Score(480), tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_quarter_time_scores_are_accepted(tmp_path: Path) -> None:
    score = make_score([(0, False, [(0, 480, 60), (480, 480, 64)])]).to("quarter")
    assert plot_pianoroll(score, tmp_path / "q.png").exists()


def test_drums_are_hits_on_their_own_lane_not_pitches() -> None:
    from matplotlib.collections import PolyCollection

    from orchestrion.symbolic.pianoroll import pianoroll_figure

    piano = [(0, 480, 60), (480, 480, 72)]
    kit = [(0, 60, 36), (240, 60, 42), (480, 60, 42), (720, 60, 38)]
    fig = pianoroll_figure(make_score([(0, False, piano), (0, True, kit)]))
    pitched, drums = fig.axes[:2]
    bars = [c for c in pitched.collections if isinstance(c, PolyCollection)]
    assert len(bars) == 1 and len(bars[0].get_paths()) == len(piano)  # no drum note on the pitch axis
    assert pitched.get_ylim() == (58, 74)  # the pitch range of the piano only, not the drum keys 36-42
    assert [t.get_text() for t in drums.get_yticklabels()] == ["Bass Drum 1", "Acoustic Snare", "Closed Hi Hat"]
    hits = np.concatenate([c.get_offsets() for c in drums.collections])
    assert sorted(map(tuple, hits.tolist())) == [(0.0, 0.0), (0.25, 2.0), (0.5, 2.0), (0.75, 1.0)]  # (s, lane)


def test_drums_only_score_draws_one_drum_lane() -> None:
    from orchestrion.symbolic.pianoroll import pianoroll_figure

    fig = pianoroll_figure(make_score([(0, True, [(0, 60, 36), (480, 60, 38)])]))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["Bass Drum 1", "Acoustic Snare"]
