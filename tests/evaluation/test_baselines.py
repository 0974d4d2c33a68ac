"""Baselines of the evaluation report: the n-gram note model learns, shuffling keeps what it must, audio baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from orchestrion.evaluation.baselines import (
    MAX_UNITS,
    UNITS_PER_BEAT,
    NoteNGram,
    bar_end_tick,
    first_bars,
    latent_statistics,
    random_latent_audio,
    shuffle_pitches,
    spectrum_matched_noise,
    track_notes,
)
from orchestrion.evaluation.symbolic_metrics import evaluate_symbolic, piece_features
from orchestrion.symbolic.midi import load_midi, save_midi


@pytest.fixture(scope="module")
def chorales(chorale_midi: Path) -> list:
    return [load_midi(path) for path in sorted((chorale_midi / "chorales").glob("*.mid"))]


@pytest.fixture(scope="module")
def models(chorales) -> dict[int, NoteNGram]:
    return {order: NoteNGram(order).fit(chorales[:9]) for order in (1, 2, 3)}


def test_the_trigram_predicts_held_out_chorales_better_than_a_unigram(models, chorales) -> None:
    held_out = chorales[9:]
    bits = {order: model.bits_per_note(held_out) for order, model in models.items()}
    # measured: unigram 7.55, bigram 6.03, trigram 6.01 bits per note (9 training chorales, 3 held out);
    # on the default recipe's 394 training pieces and 22 held-out ones: 10.95, 8.94, 8.76
    assert bits[3] < bits[1] - 1.0, bits
    assert bits[2] < bits[1] - 1.0, bits
    # on its own training pieces the trigram is far better still: it memorises, as a count model does
    assert models[3].bits_per_note(chorales[:9]) < bits[3] - 1.0


def test_ngram_probabilities_sum_to_one_in_seen_and_unseen_contexts(models, chorales) -> None:
    model = models[3]
    program, notes = track_notes(chorales[0])[0]
    first = model.token(notes[0])
    for history in (model.start(program), (model.start(program)[-1], first), (-500, -501)):
        total = sum(model.probability(token, history) for token in range(len(model.vocabulary) + 1))
        assert math.isclose(total, 1.0, rel_tol=1e-9), (history, total)


def test_ngram_samples_have_the_asked_bars_and_a_training_pieces_instruments(models, tmp_path: Path) -> None:
    model = models[3]
    piece = model.sample(4, np.random.default_rng(0))
    again = model.sample(4, np.random.default_rng(0))
    assert [t.notes.numpy()["pitch"].tolist() for t in piece.tracks] == [
        t.notes.numpy()["pitch"].tolist() for t in again.tracks]
    numerator, denominator = piece.time_signatures[0].numerator, piece.time_signatures[0].denominator
    end = bar_end_tick(piece, 4)
    assert end == 4 * piece.ticks_per_quarter * numerator * 4 // denominator
    assert piece.note_num() > 20 and max(t.end() for t in piece.tracks) <= end
    assert tuple(t.program for t in piece.tracks) in {template.programs for template in model.templates}
    vocabulary = set(model.vocabulary)
    for _, notes in track_notes(piece):
        # the first gap and the last duration may be cut by the piece's edges, all pitches come from training
        assert {pitch for pitch, _, _ in notes} <= {pitch for pitch, _, _ in vocabulary}
        assert sum(note in vocabulary for note in notes) >= 0.9 * len(notes)
        assert all(0 <= gap <= MAX_UNITS for _, _, gap in notes)
    save_midi(piece, tmp_path / "ngram.mid")
    assert piece_features(tmp_path / "ngram.mid").mmr_valid


def test_shuffled_pitches_keep_notes_and_voices_and_change_the_melody(chorales, tmp_path: Path) -> None:
    original = chorales[0]
    shuffled = shuffle_pitches(original, np.random.default_rng(0))
    assert shuffled.note_num() == original.note_num()
    for before, after in zip(original.tracks, shuffled.tracks, strict=True):
        a, b = before.notes.numpy(), after.notes.numpy()
        assert np.array_equal(a["time"], b["time"]) and np.array_equal(a["duration"], b["duration"])
        assert sorted(a["pitch"]) == sorted(b["pitch"])  # each voice keeps its own pitches
    save_midi(original, tmp_path / "original.mid")
    save_midi(shuffled, tmp_path / "shuffled.mid")
    before, after = piece_features(tmp_path / "original.mid"), piece_features(tmp_path / "shuffled.mid")
    assert before.pitch_class_histogram == after.pitch_class_histogram
    assert before.pitch_range == after.pitch_range and before.polyphony == after.polyphony
    moved = np.abs(np.subtract(before.pitch_class_transitions, after.pitch_class_transitions)).sum()
    assert moved > 0.3, moved  # a chorale voice moves by steps; shuffled, it leaps anywhere in its range


def test_identical_sets_overlap_completely(chorales, tmp_path: Path) -> None:
    for i, score in enumerate(chorales[:4]):
        save_midi(first_bars(score, 4), tmp_path / "set" / f"{i}.mid")
    report = evaluate_symbolic(tmp_path / "set", tmp_path / "set", progress=False)
    assert all(area == pytest.approx(1.0, abs=1e-6) for area in report.overlapping_area.values())
    assert report.pitch_class_histogram_jsd == 0.0 and report.instrument_usage_jsd == 0.0


def test_first_bars_follow_the_time_signatures(chorales) -> None:
    import symusic

    score = chorales[0].copy()
    tpq = score.ticks_per_quarter
    score.time_signatures.clear()
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    score.time_signatures.append(symusic.TimeSignature(2 * 3 * tpq, 4, 4))  # 4/4 from bar 3 on
    assert bar_end_tick(score, 2) == 6 * tpq
    assert bar_end_tick(score, 3) == 10 * tpq
    cut = first_bars(score, 3)
    assert 0 < cut.note_num() < score.note_num()
    assert max(t.end() for t in cut.tracks) <= 10 * tpq
    assert UNITS_PER_BEAT % 3 == 0 and UNITS_PER_BEAT % 4 == 0  # sixteenths and triplets on the grid


def test_spectrum_matched_noise_keeps_the_spectrum_and_loses_the_notes(chorale) -> None:
    wave = (0.5 * chorale[: 2 * 22050]).astype(np.float32)
    noise = spectrum_matched_noise(wave, np.random.default_rng(0))
    assert noise.shape == wave.shape
    assert np.sum(noise.astype(np.float64) ** 2) == pytest.approx(np.sum(wave.astype(np.float64) ** 2), rel=1e-3)
    np.testing.assert_allclose(np.abs(np.fft.rfft(noise)), np.abs(np.fft.rfft(wave)), rtol=1e-2, atol=1e-2)
    assert abs(np.corrcoef(noise, wave)[0, 1]) < 0.05


def test_random_latents_match_the_statistics_and_decode_reproducibly(chorale, tmp_path: Path) -> None:
    from musika.gan_support import one_thread, write_gan_run
    from orchestrion.musika.models import load_latent_gan

    with one_thread():
        autoencoder = load_latent_gan(write_gan_run(tmp_path / "gan")).autoencoder
        mean, std = latent_statistics(autoencoder, [chorale[:22050], chorale[22050 : 3 * 22050]])
        dim = autoencoder.level2.config.latent_dim
        assert mean.shape == std.shape == (dim,) and np.all(std > 0) and np.all(np.abs(mean) < 1)
        first = random_latent_audio(autoencoder, mean, std, 1.5, seed=3)
        again = random_latent_audio(autoencoder, mean, std, 1.5, seed=3)
        other = random_latent_audio(autoencoder, mean, std, 1.5, seed=4)
    assert first.shape == (round(1.5 * 22050),) and first.dtype == np.float32
    assert np.array_equal(first, again) and not np.allclose(first, other)
    assert np.all(np.abs(first) <= 1.0) and np.std(first) > 1e-4


def test_drum_tracks_are_learned_and_sampled_as_drums() -> None:
    import symusic
    from symusic.core import NoteTickList

    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, qpm=100.0))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    beats = np.arange(64) * 240  # eighth notes: kick and snare alternating, a bass line under them
    drums = symusic.Track(program=0, is_drum=True)
    drums.notes = NoteTickList.from_numpy(beats.astype(np.int32), np.full(64, 120, np.int32),
                                          np.where(np.arange(64) % 2, 38, 36).astype(np.int8), np.full(64, 90, np.int8))
    bass = symusic.Track(program=33)
    bass.notes = NoteTickList.from_numpy(beats[::2].astype(np.int32), np.full(32, 480, np.int32),
                                         np.tile([40, 43, 45, 47], 8).astype(np.int8), np.full(32, 90, np.int8))
    score.tracks.extend([drums, bass])
    assert [program for program, _ in track_notes(score)] == [128, 33]
    model = NoteNGram(3).fit([score])
    piece = model.sample(2, np.random.default_rng(1))
    assert [(t.is_drum, t.program) for t in piece.tracks] == [(True, 0), (False, 33)]
    drum_notes = piece.tracks[0].notes.numpy()
    assert set(drum_notes["pitch"].tolist()) == {36, 38}  # drum keys only, never the bass line's pitches
    # every drum token moves on by an eighth (or 0 for the first hit): hits stay on the eighth grid of 2 bars
    assert np.all(drum_notes["time"] % 240 == 0) and drum_notes["time"].max() < 2 * 4 * 480
    assert piece.tempos[0].qpm == pytest.approx(100.0)
