"""Endless generation: same audio at once or streamed, seamless joins, exact lengths, conditioning curves."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from gan_support import one_thread, write_gan_run

from orchestrion.errors import ConfigError
from orchestrion.musika.fast import native_bf16
from orchestrion.musika.generate import (
    PAD,
    GenerationError,
    MusikaStream,
    condition_curve,
    generate,
    generate_to_file,
    read_curve_csv,
    stream_to,
    wav_header,
)
from orchestrion.musika.models import load_latent_gan

SR = 22050


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return write_gan_run(tmp_path_factory.mktemp("gan") / "run")


@pytest.fixture(scope="module")
def model(run_dir):
    return load_latent_gan(run_dir)


def _streamed(model, samples: int, block_seconds: float, **options) -> np.ndarray:
    stream = MusikaStream(model, 5, block_seconds=block_seconds, **options)
    blocks, total = [], 0
    for block in stream:
        assert block.shape == (2, stream.block_samples)
        blocks.append(block)
        total += block.shape[-1]
        if total >= samples:
            break
    return np.concatenate(blocks, axis=-1)[:, :samples]


@pytest.mark.parametrize(("fast", "block_sizes"), [(True, (1500, 16384, 37485)), (False, (5000,))])
def test_same_seed_same_audio_at_once_or_streamed_in_any_block_size(model, monkeypatch, fast, block_sizes):
    if not fast:  # the plain modules' path (GPU, or a CPU without oneDNN)
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    samples = 100_000  # 4.5 s: 7 decoder windows, 2 segments of the debug model
    once = generate(model, samples / SR, seed=5)
    assert once.shape == (2, samples) and once.dtype == np.float32
    for block in block_sizes:
        np.testing.assert_allclose(_streamed(model, samples, block / SR), once, rtol=0, atol=1e-5)
    assert np.abs(generate(model, samples / SR, seed=6) - once).mean() > 0.1 * np.abs(once).mean()  # seed matters


@pytest.mark.parametrize("fast", [True, False])
def test_griffin_lim_phase_is_the_same_in_any_block_size_and_differs_from_the_learned_phase(model, monkeypatch, fast):
    if not fast:
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    samples = 100_000  # 7 decoder windows: two Griffin-Lim blocks of 4

    def energy(audio: np.ndarray) -> float:
        return float(np.square(audio, dtype=np.float64).sum())

    once = generate(model, samples / SR, seed=5, phase="griffin-lim")
    assert once.shape == (2, samples) and np.abs(once).max() <= 1.0
    streamed = _streamed(model, samples, 1500 / SR, phase="griffin-lim")
    # a stream read in any block size solves the same aligned Griffin-Lim blocks from the same latents
    np.testing.assert_allclose(_streamed(model, samples, 37485 / SR, phase="griffin-lim"), streamed, rtol=0, atol=1e-6)
    # generate() makes the generator's segments in one batch, the stream one by one: their latents differ by
    # float rounding, which 32 rounds with momentum amplify (4.8e-3 of the energy on an Intel Xeon)
    assert energy(streamed - once) < 1e-2 * energy(once)
    learned = generate(model, samples / SR, seed=5)
    assert energy(learned - once) > 0.1 * energy(learned)
    with pytest.raises(GenerationError, match="unknown phase 'zero'"):
        MusikaStream(model, 0, phase="zero")


def test_length_is_exact_and_mono_is_the_left_channel(model):
    for seconds in (0.01, 1.0, 2.345):
        audio = generate(model, seconds)
        assert audio.shape == (2, round(seconds * SR))
        assert np.abs(audio).max() <= 1.0
    stereo, mono = generate(model, 1.5), generate(model, 1.5, mono=True)
    assert mono.shape == (1, round(1.5 * SR))
    np.testing.assert_allclose(mono[0], stereo[0], atol=1e-5)
    assert np.abs(stereo[0] - stereo[1]).mean() > 0.1 * np.abs(stereo).mean()


def _difference_energy(audio: np.ndarray, centres: np.ndarray, half: int = 64) -> np.ndarray:
    """Mean squared sample-to-sample difference in ±``half`` samples around each centre (both channels)."""
    diff = np.diff(audio, axis=-1) ** 2
    return np.array([diff[:, c - half : c + half].mean() for c in centres])


def test_block_and_segment_joins_show_no_discontinuity(model):
    audio = generate(model, 12.0)
    window_samples = 16384  # one decoder window; every 4th join is also a generator-segment join
    joins = np.arange(window_samples, audio.shape[-1] - 200, window_samples) - PAD  # audio = iSTFT[768:]
    elsewhere = np.arange(300, audio.shape[-1] - 300, 97)
    at_joins, typical = _difference_energy(audio, joins), _difference_energy(audio, elsewhere)
    assert at_joins.max() <= np.quantile(typical, 0.99)
    # the metric does see a click: a step of 10 standard deviations at one join
    clicked = audio.copy()
    clicked[:, joins[2] :] += 10 * audio.std()
    assert _difference_energy(clicked, joins[2:3]).max() > 1.5 * np.quantile(typical, 0.99)


def test_set_conditions_takes_effect_from_the_next_window_with_a_glide(model):
    stream = MusikaStream(model, 0, note_density=0.2, tempo=100, block_seconds=0.5, glide_seconds=1.0)
    next(stream)  # decodes up to window 1
    first_frame = stream._next_window * stream.window_frames
    before = stream.schedule.values(np.arange(first_frame))
    stream.set_conditions(note_density=0.8)
    values = stream.schedule.values(np.arange(first_frame + 20))
    np.testing.assert_allclose(values[:, :first_frame], before)  # the past is untouched
    density = values[0, first_frame:]
    assert np.all(np.diff(density) >= 0) and density[0] < 0.35 and density[-1] == pytest.approx(0.8)
    np.testing.assert_allclose(values[1], (100 - 80) / 100)  # tempo unchanged, normalised by the model's range
    assert next(stream).shape == (2, stream.block_samples)


def test_conditions_accept_numbers_strings_and_csv_curves(model, tmp_path):
    curve = tmp_path / "density.csv"
    curve.write_text("seconds,value\n0,0.1\n10,0.9\n")
    parsed = condition_curve(model, "note_density", str(curve))
    np.testing.assert_allclose(parsed.at(np.array([-1.0, 0.0, 5.0, 10.0, 60.0])), [0.1, 0.1, 0.5, 0.9, 0.9])
    assert condition_curve(model, "tempo", "130").at(np.array([3.0])) == pytest.approx(0.5)
    assert condition_curve(model, "note_density", 0.25).at(np.array([0.0])) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,density\n0,0.1\n", "needs the header 'seconds,value'"),
        ("seconds,value\n", "has no points"),
        ("seconds,value\n0,0.1\n0,0.2\n", "line 3: time 0.0 s does not increase"),
        ("seconds,value\n0,abc\n", "line 2: expected two numbers"),
        ("seconds,value\n0,0.1,3\n", "line 2: expected two numbers"),
        ("seconds,value\n0,1.5\n", "line 2: note_density 1.5 is outside 0..1"),
        ("seconds,value\n-1,0.5\n", "line 2: times must be finite and >= 0"),
    ],
)
def test_bad_curve_files_give_one_clear_error(tmp_path, text, message):
    path = tmp_path / "curve.csv"
    path.write_text(text)
    with pytest.raises(GenerationError, match=message) as error:
        read_curve_csv(path, "note_density", 0.0, 1.0)
    assert str(path) in str(error.value)


def test_bad_arguments_give_one_clear_error(model, tmp_path):
    with pytest.raises(GenerationError, match="seconds must be a positive number, got -1"):
        generate(model, -1)
    with pytest.raises(GenerationError, match=re.escape("note_density 1.2 is outside 0..1")):
        generate(model, 1, note_density=1.2)
    with pytest.raises(GenerationError, match=re.escape("tempo 300 BPM is outside 80..180 BPM")):
        generate(model, 1, tempo=300)
    with pytest.raises(GenerationError, match=re.escape("missing.csv: note_density curve file not found")):
        generate(model, 1, note_density=str(tmp_path / "missing.csv"))
    with pytest.raises(GenerationError, match="unknown precision 'fp8'"):
        generate(model, 1, precision="fp8")
    with pytest.raises(GenerationError, match="truncation must be a positive number"):
        generate(model, 1, truncation=0)
    unconditional = load_latent_gan(write_gan_run(tmp_path / "plain", conditions=()))
    with pytest.raises(GenerationError, match=re.escape("not trained with tempo conditioning (its conditions: none)")):
        generate(unconditional, 1, tempo=120)


def test_generate_to_file_writes_the_exact_length_and_a_png(model, tmp_path):
    out = tmp_path / "song.wav"
    seen = []
    written = generate_to_file(model, 3.5, out, seed=5, png=True, progress=lambda done, total: seen.append(done))
    assert written == [out, out.with_suffix(".png")] and out.with_suffix(".png").stat().st_size > 1000
    audio, rate = soundfile.read(out, dtype="float32", always_2d=True)
    assert rate == SR and audio.shape == (round(3.5 * SR), 2) and seen[-1] == round(3.5 * SR)
    np.testing.assert_allclose(audio.T, generate(model, 3.5, seed=5), atol=1.5 / 32767)
    with pytest.raises(GenerationError, match=re.escape("must be a .wav or .flac")):
        generate_to_file(model, 1, tmp_path / "song.mp3")


@pytest.mark.parametrize("audio_format", ["wav", "raw"])
def test_stream_to_a_pipe_writes_pcm(model, audio_format):
    sink = io.BytesIO()
    stream = MusikaStream(model, 5, block_seconds=0.3)
    written = stream_to(stream, sink, seconds=1.0, audio_format=audio_format)
    data = sink.getvalue()
    header = 44 if audio_format == "wav" else 0
    assert written == SR and len(data) == header + SR * 2 * 2
    if audio_format == "wav":
        audio, rate = soundfile.read(io.BytesIO(data), dtype="float32")
        assert rate == SR and audio.shape == (SR, 2)
        np.testing.assert_allclose(audio.T, generate(model, 1.0, seed=5), atol=1.5 / 32767)
    assert wav_header(2, None)[40:44] == b"\xff\xff\xff\xff"  # endless: unknown data size


def test_changing_conditions_mid_stream_changes_the_music_after_the_next_block_without_a_click(model):
    steady = MusikaStream(model, 2, note_density=0.2, block_seconds=0.5)
    changed = MusikaStream(model, 2, note_density=0.2, block_seconds=0.5)
    before = [next(steady), next(steady)]
    np.testing.assert_array_equal(next(changed), before[0])
    change_window = changed._next_window  # the first decoder window not yet decoded
    changed.set_conditions(note_density=0.9, tempo=170)
    after_steady = np.concatenate([before[1]] + [next(steady) for _ in range(12)], axis=-1)
    after_changed = np.concatenate([next(changed) for _ in range(13)], axis=-1)
    # audio up to the changed window (less its 768-sample iSTFT overlap) is untouched, later audio differs
    join = change_window * changed.window_samples - PAD - changed.block_samples  # into the concatenated arrays
    np.testing.assert_allclose(after_changed[:, : join - PAD], after_steady[:, : join - PAD], atol=1e-6)
    tail = slice(join + 2 * changed.window_samples, None)
    assert np.abs(after_changed[:, tail] - after_steady[:, tail]).mean() > 0.1 * np.abs(after_steady).mean()
    typical = _difference_energy(after_steady, np.arange(300, after_steady.shape[-1] - 300, 97))
    assert _difference_energy(after_changed, np.array([join, join + PAD])).max() <= np.quantile(typical, 0.99)


def test_any_length_is_one_batched_generator_pass(model, monkeypatch):
    passes = []
    original = MusikaStream._generate_segments

    def counted(self, first, count):
        passes.append((first, count))
        return original(self, first, count)

    monkeypatch.setattr(MusikaStream, "_generate_segments", counted)
    segment_samples = 4 * 16384  # debug GAN: 32 level-2 frames = 4 decoder windows
    for seconds, segments in ((0.5, 1), ((segment_samples - PAD) / SR, 1), (segment_samples / SR, 2), (20.0, 7)):
        passes.clear()
        generate(model, seconds)
        assert passes == [(0, segments)]


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no bfloat16 kernels in oneDNN (AVX2 only)")
def test_bf16_decoders_stay_close_to_fp32(model):
    exact = generate(model, 2.0, seed=4, precision="fp32").astype(np.float64)
    fast = generate(model, 2.0, seed=4, precision="bf16").astype(np.float64)
    assert fast.shape == exact.shape
    snr = 10 * np.log10(np.sum(exact**2) / np.sum((fast - exact) ** 2))
    assert 30.0 < snr < 80.0  # lossy, but within the 30 dB bound (38 dB on this model)


def test_auto_precision_is_bf16_only_where_the_cpu_has_bfloat16_units(model):
    from orchestrion.musika.generate import GenerationError, resolve_precision

    cpu = torch.device("cpu")
    expected = "bf16" if native_bf16() else "fp32"
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"  # the fast bf16 decoder is CPU-only
    assert resolve_precision("fp32", cpu) == "fp32"
    np.testing.assert_array_equal(generate(model, 1.0, seed=2), generate(model, 1.0, seed=2, precision=expected))
    with pytest.raises(GenerationError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", cpu)


def test_without_bf16_instructions_auto_is_fp32_and_bf16_is_refused(model, monkeypatch):
    from orchestrion.musika import fast
    from orchestrion.musika.generate import resolve_precision

    monkeypatch.setattr(fast, "native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(ConfigError, match="precision 'bf16' needs a CPU with bfloat16 instructions"):
        generate(model, 1.0, seed=2, precision="bf16")


def test_an_endless_stream_holds_bounded_state(model):
    stream = MusikaStream(model, 9, block_seconds=0.25)
    for _ in range(120):  # 30 s: 10 generator segments, 41 decoder windows of the debug model
        next(stream)
        assert len(stream._segments) <= 2  # the current segment and, at a join, the next one
        assert stream._pending_samples < stream.block_samples + stream.window_samples
    assert stream.samples_read == 120 * stream.block_samples
