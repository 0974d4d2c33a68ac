"""Sampling, continuation, sliding windows and orchestration with a small trained SymphonyNet."""

from __future__ import annotations

import mido
import numpy as np
import pretty_midi
import pytest
import symusic
import torch
from generate_support import corpus_bpe, corpus_midis, train_debug_model

from orchestrion.errors import MidiError
from orchestrion.symbolic.midi import parse_midi, save_midi
from orchestrion.symbolic.mmr_decode import decode, positions
from orchestrion.symbolic.mmr_vocab import BAR_OFFSET, CHORD_OFFSET, INSTRUMENT_OFFSET, PAD, POS_OFFSET, TRACK_OFFSET
from orchestrion.symphony.config import SymphonyConfig
from orchestrion.symphony.generate import (
    GenerationError,
    SamplingOptions,
    _window_to_keep,
    encode_prompt,
    generate,
    generate_many,
    generate_midi,
    orchestrate,
    parse_instruments,
    sample_masked,
)
from orchestrion.symphony.grammar import GrammarState
from orchestrion.symphony.model import SymphonyModel
from orchestrion.system import torch_threads


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Batch-1 steps of a tiny model are dominated by thread hand-offs on a shared machine."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def model() -> SymphonyModel:
    return train_debug_model(True)


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory: pytest.TempPathFactory):
    """The outer voices of the first demo arrangement: two bars fit the 64-row test window."""
    score = parse_midi(corpus_midis()[0], "demo0")
    score.tracks = [score.tracks[0], score.tracks[3]]
    return save_midi(score, tmp_path_factory.mktemp("prompt") / "demo0.mid")


def check_valid(tokens: np.ndarray, vocab: int, tempo_tokens: bool, bpe=None) -> symusic.Score:
    """The tokens parse under the MMR grammar and decode with every note kept."""
    GrammarState(vocab, tempo_tokens=tempo_tokens, track_order="distinct").feed_many(tokens)
    plain = bpe.decode(tokens) if bpe is not None else tokens
    score = decode(plain)
    assert score.note_num() == int((plain[:, 1] != PAD).sum())
    return score


def test_generation_past_several_windows_is_valid_and_readable_by_other_parsers(model, tmp_path) -> None:
    gen = generate(model, None, SamplingOptions(max_steps=400, seed=3))
    assert gen.n_windows >= 5  # 400 rows through a 64-row window
    assert len(gen.tokens) > 300 and gen.stopped_by == "max_steps"
    score = check_valid(gen.tokens, model.config.event_vocab_size, True)
    n_notes = score.note_num()
    assert n_notes > 50
    path = save_midi(score, tmp_path / "out.mid")
    assert symusic.Score(str(path)).note_num() == n_notes
    assert sum(len(i.notes) for i in pretty_midi.PrettyMIDI(str(path)).instruments) == n_notes
    assert sum(m.type == "note_on" and m.velocity > 0 for t in mido.MidiFile(str(path)).tracks for m in t) == n_notes
    # instrument column = the orchestration, one program per track
    note = gen.tokens[:, 1] != PAD
    program = {a.track: a.program for a in gen.assignments}
    assert all(ins - INSTRUMENT_OFFSET == program[t - TRACK_OFFSET] for t, ins in gen.tokens[note, 2:4])
    assert all(0 < a.probability <= 1 for a in gen.assignments)


def test_sliding_windows_respect_the_model_tables(model) -> None:
    """Every window the model sees keeps mea ≤ max_mea_pos, rel ≤ max_rel_pos, ≤ window rows."""
    seen = []
    original_prime = model.prime

    def prime(rows):
        seen.append(rows[0].clone())
        return original_prime(rows)

    model.prime = prime
    try:
        gen = generate(model, None, SamplingOptions(bars=25, seed=5))  # EOS masked until then
    finally:
        del model.prime
    assert len(seen) == gen.n_windows > 1
    c = model.config
    for rows in seen:
        assert len(rows) <= c.window and rows[:, 5].max() <= c.max_mea_pos and rows[:, 4].max() <= c.max_rel_pos
        body = rows[1:, :4].numpy()
        np.testing.assert_array_equal(rows[1:, 4:].numpy(), np.minimum(positions(body), [c.max_rel_pos, 10**9]))


def test_window_to_keep_prefers_whole_measures_and_cuts_a_long_measure_validly() -> None:
    bar, chord, nt = (BAR_OFFSET + 31, PAD, PAD, PAD), (140, PAD, PAD, PAD), (465, PAD, PAD, PAD)
    pos = [(POS_OFFSET + p, PAD, PAD, PAD) for p in range(32)]
    note = (64, 8, 4, PAD)
    measure = [bar, chord, nt] + [r for p in range(10) for r in (pos[p], note)]
    rows = measure * 3
    assert _window_to_keep(rows, 50, 10) == measure * 2
    assert _window_to_keep(rows, 50, 1) == measure
    kept = _window_to_keep(rows, 9, 10)  # the last measure is 23 rows: keep its tail after a prefix
    assert kept[:4] == [bar, chord, nt, pos[7]] and kept[4:] == measure[-5:] and len(kept) == 9
    GrammarState().feed_many(np.asarray(kept))


def test_fixed_seed_gives_identical_output_and_another_seed_does_not(model) -> None:
    a = generate(model, None, SamplingOptions(max_steps=120, seed=11, temperature=0.9, top_p=0.95))
    b = generate(model, None, SamplingOptions(max_steps=120, seed=11, temperature=0.9, top_p=0.95))
    c = generate(model, None, SamplingOptions(max_steps=120, seed=12, temperature=0.9, top_p=0.95))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.assignments == b.assignments
    assert not np.array_equal(a.tokens[: len(c.tokens)], c.tokens[: len(a.tokens)])


def test_grammar_valid_rate_is_100_percent_over_100_generations() -> None:
    """A randomly initialised model (no structure learnt at all) still only writes valid MMR."""
    torch.manual_seed(0)
    config = SymphonyConfig.preset("debug", window=32, max_mea_pos=9, max_rel_pos=7, tempo_tokens=True)
    random_model = SymphonyModel(config).eval()
    for seed in range(100):
        gen = generate(random_model, None, SamplingOptions(max_steps=32, seed=seed, track_choice="sample"))
        check_valid(gen.tokens, config.event_vocab_size, True)


def test_batched_samples_are_valid_reproducible_and_slide_on_their_own(model) -> None:
    """Several pieces per step: each has its own random stream and window; pieces of different lengths
    leave the batch at different times."""
    options = SamplingOptions(bars=12, seed=7)
    batch = generate_many(model, None, options, n_samples=4)
    again = generate_many(model, None, options, n_samples=4)
    for gen, same in zip(batch, again, strict=True):
        np.testing.assert_array_equal(gen.tokens, same.tokens)
        check_valid(gen.tokens, model.config.event_vocab_size, True)
        assert gen.n_bars == 12 and gen.n_windows > 1
    assert len({len(g.tokens) for g in batch}) > 1


def test_sampling_respects_the_mask_temperature_and_nucleus() -> None:
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    allowed = np.array([False, True, True, True, True])
    generator = torch.Generator().manual_seed(0)
    draws = [sample_masked(logits, allowed, generator)[0] for _ in range(400)]
    assert 0 not in draws and set(draws) == {1, 2, 3, 4}
    assert draws.count(1) > draws.count(2) > draws.count(4)
    # nucleus 0.6: ids 1 (p 0.64) alone; a high temperature flattens the distribution
    assert {sample_masked(logits, allowed, generator, top_p=0.6)[0] for _ in range(50)} == {1}
    hot = [sample_masked(logits, allowed, generator, temperature=100.0)[0] for _ in range(400)]
    assert min(hot.count(i) for i in (1, 2, 3, 4)) > 60
    choice, probability = sample_masked(logits, np.eye(5, dtype=bool)[3], generator)
    assert (choice, probability) == (3, 1.0)


def test_prompt_chords_replace_the_first_sampled_chords(model, prompt_file) -> None:
    """The reference's chord constraint: the prompt's chords from its first bar on, in order."""
    options = SamplingOptions(bars=3, seed=4, prompt_chords=2)
    (gen,) = generate_midi(model, None, options, prompt_file, prompt_bars=2)
    is_chord = (gen.tokens[:, 0] >= CHORD_OFFSET) & (gen.tokens[:, 0] < BAR_OFFSET)
    chords = gen.tokens[is_chord, 0].tolist()
    assert len(chords) == 5 and chords[2:4] == chords[0:2]


def test_prompt_tracks_can_be_reorchestrated(model, prompt_file) -> None:
    options = SamplingOptions(bars=1, seed=4, keep_prompt_instruments=False, instruments=(40, 42))
    (gen,) = generate_midi(model, None, options, prompt_file, prompt_bars=2)
    assert all(a.source == "model" and a.program in (40, 42) for a in gen.assignments)


def test_bars_gives_that_many_bars(model) -> None:
    gen = generate(model, None, SamplingOptions(bars=5, seed=2))
    assert gen.n_bars == 5 and gen.stopped_by == "bars"


def test_continuation_keeps_the_prompt_notes_and_instruments(model, prompt_file) -> None:
    options = SamplingOptions(bars=3, seed=4)
    prompt = encode_prompt(prompt_file, model, None, bars=2, seed=4)
    (gen,) = generate_midi(model, None, options, prompt_file, prompt_bars=2)
    assert gen.prompt_steps == len(prompt.tokens)
    np.testing.assert_array_equal(gen.tokens[: gen.prompt_steps], prompt.tokens)
    assert gen.n_bars == 2 + 3
    check_valid(gen.tokens, model.config.event_vocab_size, True)
    prompt_notes = {(n.time, n.duration, n.pitch, t.program) for t in decode(prompt.tokens).tracks for n in t.notes}
    out_notes = {(n.time, n.duration, n.pitch, t.program) for t in gen.score().tracks for n in t.notes}
    assert prompt_notes and prompt_notes <= out_notes
    kept = {a.track: a.program for a in gen.assignments if a.source == "prompt"}
    assert kept == prompt.programs and set(prompt.programs.values()) == {52}  # the demo choir arrangement


def test_bpe_model_generates_merged_tokens_that_decode(tmp_path) -> None:
    bpe = corpus_bpe()
    bpe_model = train_debug_model(False, bpe, steps=60)
    gen = generate(bpe_model, bpe, SamplingOptions(max_steps=200, seed=0))
    assert bpe_model.config.tempo_tokens is False
    check_valid(gen.tokens, bpe.vocab_size, False, bpe)


def test_instruments_restrict_the_orchestration(model) -> None:
    programs = parse_instruments("Violin, cello, 71")
    assert programs == (40, 42, 71)
    gen = generate(model, None, SamplingOptions(max_steps=150, seed=1, instruments=programs))
    assert gen.assignments and {a.program for a in gen.assignments} <= {40, 42, 71}


def test_unknown_instrument_lists_valid_names() -> None:
    with pytest.raises(GenerationError, match=r"unknown instrument 'Violn'; .*Acoustic Grand Piano.*Violin.*Drums"):
        parse_instruments("Violn")


def test_prompt_longer_than_the_model_can_take(model, prompt_file) -> None:
    with pytest.raises(GenerationError, match=r"demo0.mid: the prompt's first \d+ bars are \d+ steps; this model "
                                              r"takes at most 62 steps .* use --prompt-bars \d or fewer"):
        encode_prompt(prompt_file, model, None)


def test_corrupt_prompt_midi(model, tmp_path) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(MidiError, match=r"bad\.mid"):
        generate_midi(model, None, SamplingOptions(max_steps=10), bad)


def test_windows_too_small_to_slide_are_refused() -> None:
    with pytest.raises(GenerationError, match=r"max_mea_pos 5\) holds fewer than two measures"):
        generate(SymphonyModel(SymphonyConfig.preset("debug", max_mea_pos=5)), None, SamplingOptions(max_steps=5))
    with pytest.raises(GenerationError, match="a window of 8 rows is too short to slide"):
        generate(SymphonyModel(SymphonyConfig.preset("debug", window=8)), None, SamplingOptions(max_steps=5))


def test_model_and_merges_must_match(model) -> None:
    with pytest.raises(GenerationError, match=r"the model has 527 event ids but its 60 Music BPE merges give 587"):
        generate(model, corpus_bpe(), SamplingOptions(max_steps=10))


@pytest.mark.parametrize("options", [dict(temperature=0), dict(top_p=1.5), dict(bars=0), dict(track_order="x")])
def test_bad_sampling_options(options) -> None:
    with pytest.raises(GenerationError):
        SamplingOptions(**options)


def test_orchestrate_assigns_programs_and_leaves_notes_alone(model, tmp_path) -> None:
    score = parse_midi(corpus_midis()[5], "quartet")  # a string quartet movement: long, several windows
    drums = symusic.Track(name="kit", program=0, is_drum=True)
    for n in score.tracks[0].notes[:40]:
        drums.notes.append(symusic.Note(n.time, n.duration, 38, 90))
    score.tracks.append(drums)
    for track in score.tracks[:-1]:
        track.program = 0  # instruments unknown
    path = save_midi(score, tmp_path / "unlabelled.mid")
    result = orchestrate(path, model, keep_drums=True, mode="argmax")
    assert result.n_windows > 5
    assert [t.index for t in result.tracks] == list(range(5))
    assert result.tracks[-1].program == 128 and result.tracks[-1].probability is None
    for t in result.tracks[:-1]:
        assert 0 <= t.program < 128 and 0 < t.probability <= 1
    for before, after in zip(score.tracks, result.score.tracks, strict=True):
        assert before.notes.numpy()["pitch"].tolist() == after.notes.numpy()["pitch"].tolist()
        assert before.notes.numpy()["time"].tolist() == after.notes.numpy()["time"].tolist()
    assert result.score.tracks[-1].is_drum
    again = orchestrate(path, model, keep_drums=True, mode="argmax")
    assert [t.program for t in again.tracks] == [t.program for t in result.tracks]


def test_orchestrate_recovers_the_instruments_of_a_training_piece(model, tmp_path) -> None:
    """A chorale's four choir voices plus its organ reduction, programs removed: the trained model tells the
    organ track (chords) from the voices, so track ids map back to the right MIDI tracks."""
    score = parse_midi(corpus_midis()[6], "chorale")
    assert [t.program for t in score.tracks] == [52, 52, 52, 52, 19]
    for track in score.tracks:
        track.program = 0
    result = orchestrate(save_midi(score, tmp_path / "chorale.mid"), model, mode="argmax")
    assert [t.program for t in result.tracks] == [52, 52, 52, 52, 19]
    assert result.tracks[-1].probability > 0.5
