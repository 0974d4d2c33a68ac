"""Endless stereo music from a trained latent GAN: offline generation and a streaming iterator.

Pipeline (spec musika.md §7.2, §8): coordinates of segment k (anchor k at level-2 frame
``k·latlen``, one style vector per seed; :mod:`orchestrion.musika.coordinates`) plus the
conditioning curves -> generator -> level-2 latents ``[left dims | right dims]`` -> per stereo
channel Dec2 -> Dec1 -> iSTFT, clipped to [-1, 1], 22.05 kHz.

Same seed, same audio, in any batching
    Everything random depends on the position in the piece, never on how the piece is cut into
    calls: the coordinates of segment k come from (seed, k); the generator's AddNoise for segment k
    from (seed, k, half); the decoders' AddNoise for decoder window w of channel c from
    (seed, c, w) (a :data:`~orchestrion.musika.layers.NoiseSampler`). Decoder windows are independent
    (Dec2 maps one window of 8 level-2 frames (piano 4) to one Dec1 window of 64 level-1 frames, both
    with padding inside the window only), so the only state carried from one decoded block to the
    next is the last 768 samples of the iSTFT overlap-add. :func:`generate` (all segments in one
    batched generator pass, decoding in large batches) and :class:`MusikaStream` (one segment and a
    few windows at a time) therefore give the same samples, up to float rounding of batched matrix
    products (tests check ≤ 1e-5). With Griffin-Lim phase (``phase="griffin-lim"``) the phase is solved
    on fixed, aligned blocks of :data:`GRIFFIN_LIM_BLOCK_WINDOWS` decoder windows, each starting from a
    random phase seeded by (seed, block) and continuing the last frames of the block before, so a
    stream gives the same audio in any block size; against :func:`generate`, whose generator batches
    the segments, 32 Griffin-Lim rounds amplify the float rounding of the latents (up to 4.8e-3 of the
    signal's energy in the tests, on an Intel Xeon).

Time axis
    Audio sample 0 is sample 768 of the iSTFT output: the first 768 samples lie under only part of
    the 4-fold window overlap (a fade-in), as in :func:`orchestrion.musika.codec.decode_latents`.
    Level-2 frame t is centred on audio second ``(hop·t + 128·(ratio − 1) − 256) / 22050``, where
    conditioning curves are sampled (linear interpolation, held constant beyond their ends).

Conditioning
    ``note_density`` on the normalised [0, 1] scale of the training data (spec §8 [PROPOSED]) and
    ``tempo`` in BPM, mapped to [0, 1] with the constants stored with the model (``bpm_min``,
    ``bpm_max``). Each is a constant or a CSV curve with the header ``seconds,value``. A model
    trained with a condition uses the middle of its range (0.5) when none is given.
    :meth:`MusikaStream.set_conditions` changes them while streaming: from the first decoder window
    not yet decoded (so within the next block) the value glides linearly to the new one over
    ``glide_seconds``, and the latents of that window cross-fade from the old to the regenerated
    segment, so the change makes no click.

Speed and latency (``benchmarks/musika_generate_speed.py``, full-size models, 2 CPU cores)
    fp32 74-79x real time, bf16 124-127x (wall time on an idle Zen 4 with AVX512-BF16), so the
    default ``precision="auto"`` is bf16 on CPUs with bfloat16 units (:func:`resolve_precision`); the first
    block of a stream is ready after ≈ 0.1-0.2 s (one generator segment and two decoder windows per
    channel; the first stream of a model also folds the decoder weights). Loading the run comes before that.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch
from torch import Tensor, nn

from orchestrion.audio.phase import PHASE_SOURCES, StreamingGriffinLim
from orchestrion.audio.spectral import HOP, N_FFT, SAMPLE_RATE, denormalise_magnitude, frames_to_wave, istft
from orchestrion.errors import OrchestrionError
from orchestrion.musika.coordinates import DEFAULT_TRUNCATION, LatentCoordinateGrid, append_conditions
from orchestrion.musika.layers import AddNoise, NoiseSampler

if TYPE_CHECKING:
    from orchestrion.musika.models import TrainedLatentGAN

PAD = N_FFT - HOP  # 768 samples: iSTFT overlap carried between blocks, and the fade-in that is dropped
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_CONDITION = 0.5  # normalised value used when a conditional model is given no value
DEFAULT_BPM_RANGE = (60.0, 200.0)  # spec §8 [PROPOSED], when the model stores no constants
MAX_SEGMENTS_PER_PASS = 64  # generator batch cap (≈ 25 min of techno): bounds memory, not the result
MAX_DECODE_WINDOWS = 64  # decoder windows per channel per decode call: bounds memory, not the result
# decoder windows per Griffin-Lim block (3 s of techno): few enough to keep the first audio quick, and
# fixed, so the phase does not depend on how the stream is read
GRIFFIN_LIM_BLOCK_WINDOWS = 4


class GenerationError(OrchestrionError):
    """A generation request cannot be served (bad length, condition, curve file or precision)."""


# ---------------------------------------------------------------------------------------------
# Conditioning values and curves
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionCurve:
    """One conditioning value over time on the model's normalised [0, 1] scale.

    ``seconds`` (increasing) and ``values`` (normalised) are the curve's points; a constant is one
    point. Between points the value is interpolated linearly, beyond the ends it is held.
    """

    seconds: np.ndarray
    values: np.ndarray
    source: str

    def at(self, seconds: np.ndarray) -> np.ndarray:
        """Values at the given audio times (float64 array of the same shape)."""
        return np.interp(seconds, self.seconds, self.values)


ConditionValue = float | str | Path | ConditionCurve  # a number, a CSV curve file, or a curve


def _condition_range(model: TrainedLatentGAN, name: str) -> tuple[float, float, str]:
    """(low, high, unit) a user value of condition ``name`` must lie in; maps linearly onto [0, 1]."""
    if name == "tempo":
        constants = (model.conditions or {}).get("tempo", {}) or {}
        low = float(constants.get("bpm_min", DEFAULT_BPM_RANGE[0]))
        high = float(constants.get("bpm_max", DEFAULT_BPM_RANGE[1]))
        return low, high, " BPM"
    return 0.0, 1.0, ""


def _normalise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (values - low) / (high - low)


def read_curve_csv(path: str | Path, name: str, low: float, high: float, unit: str = "") -> ConditionCurve:
    """Read a conditioning curve CSV (header ``seconds,value``) and normalise it to [0, 1].

    Times must be finite, ≥ 0 and strictly increasing; values finite and within [low, high].
    Raises :class:`GenerationError` naming the file and line otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise GenerationError(f"{path}: {name} curve file not found (give a number or a CSV file)")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise GenerationError(f"{path}: cannot read the {name} curve ({error})") from error
    if not rows or [cell.strip().lower() for cell in rows[0]] != ["seconds", "value"]:
        raise GenerationError(f"{path}: a {name} curve needs the header 'seconds,value' on its first line")
    times, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        try:
            if len(row) != 2:
                raise ValueError
            second, value = float(row[0]), float(row[1])
        except ValueError:
            raise GenerationError(f"{path}: line {line}: expected two numbers 'seconds,value', got {row}") from None
        if not (math.isfinite(second) and math.isfinite(value)) or second < 0:
            raise GenerationError(f"{path}: line {line}: times must be finite and >= 0, values finite")
        if times and second <= times[-1]:
            raise GenerationError(f"{path}: line {line}: time {second} s does not increase")
        if not low <= value <= high:
            raise GenerationError(f"{path}: line {line}: {name} {value}{unit} is outside {low:g}..{high:g}{unit}")
        times.append(second)
        values.append(value)
    if not times:
        raise GenerationError(f"{path}: the {name} curve has no points")
    return ConditionCurve(np.asarray(times), _normalise(np.asarray(values), low, high), str(path))


def condition_curve(
    model: TrainedLatentGAN, name: str, value: float | str | Path | ConditionCurve
) -> ConditionCurve:
    """A user's conditioning value -- a number, a CSV file (a path, or a string naming one), or a
    :class:`ConditionCurve` already on the normalised scale -- as a curve.

    ``note_density`` is given on [0, 1], ``tempo`` in BPM within the model's range.
    """
    if name not in model.config.conditions:
        trained = ", ".join(model.config.conditions) or "none"
        raise GenerationError(f"this model was not trained with {name} conditioning (its conditions: {trained})")
    if isinstance(value, ConditionCurve):
        if not np.all((value.values >= 0) & (value.values <= 1)):
            raise GenerationError(f"{name} curve {value.source}: normalised values must lie in 0..1")
        return value
    low, high, unit = _condition_range(model, name)
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = Path(value)
    if isinstance(number, Path):
        return read_curve_csv(number, name, low, high, unit)
    number = float(number)
    if not math.isfinite(number) or not low <= number <= high:
        raise GenerationError(f"{name} {number:g}{unit} is outside {low:g}..{high:g}{unit}")
    return ConditionCurve(np.zeros(1), _normalise(np.asarray([number]), low, high), f"{number:g}{unit}")


def conditioning_curves(
    model: TrainedLatentGAN, note_density: ConditionValue | None, tempo: ConditionValue | None
) -> dict[str, ConditionCurve]:
    """One curve per condition the model was trained with (default 0.5 where none is given)."""
    given = {"note_density": note_density, "tempo": tempo}
    curves = {}
    for name, value in given.items():
        if value is not None:
            curves[name] = condition_curve(model, name, value)
    for name in model.config.conditions:
        curves.setdefault(name, ConditionCurve(np.zeros(1), np.asarray([DEFAULT_CONDITION]), "default"))
    return curves


class _ConditionSchedule:
    """The conditioning of a piece on the level-2 frame grid, with changes at given frames.

    ``changes`` holds (first frame, curves); after a change the value glides linearly from the
    previous schedule's value to the new curve's over ``glide_frames``.
    """

    def __init__(
        self,
        names: tuple[str, ...],
        curves: dict[str, ConditionCurve],
        frame_seconds: Callable[[np.ndarray], np.ndarray],  # level-2 frame indices -> audio seconds
    ) -> None:
        self.names = names
        self.frame_seconds = frame_seconds
        self.changes: list[tuple[int, int, dict[str, ConditionCurve]]] = [(0, 0, curves)]

    def change(self, first_frame: int, glide_frames: int, curves: dict[str, ConditionCurve]) -> None:
        current = self.changes[-1][2]
        self.changes.append((first_frame, max(glide_frames, 1), {**current, **curves}))

    def values(self, frames: np.ndarray) -> np.ndarray:
        """(n_conditions, len(frames)) float32 normalised values at level-2 frames ``frames``."""
        seconds = self.frame_seconds(frames)
        out = np.zeros((len(self.names), len(frames)))
        for i, name in enumerate(self.names):
            value = np.zeros(len(frames))
            for start, glide, curves in self.changes:
                weight = np.clip((frames - start + 1) / glide, 0.0, 1.0) if start > 0 else np.ones(len(frames))
                value = (1.0 - weight) * value + weight * curves[name].at(seconds)
            out[i] = value
        return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Position-keyed noise
# ---------------------------------------------------------------------------------------------


def position_seed(*parts: int | str) -> int:
    """A 63-bit seed from a tuple like (seed, "decoder", channel, window): same parts, same seed."""
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class PositionalNoise:
    """A :data:`~orchestrion.musika.layers.NoiseSampler` whose batch row r draws from its own
    generator seeded by ``keys[r]``: each row's noise depends on its position, not on the batch."""

    def __init__(self, keys: list[tuple[int | str, ...]]) -> None:
        self.generators = [torch.Generator().manual_seed(position_seed(*key)) for key in keys]

    def __call__(self, rows: int, frames: int) -> Tensor:
        if rows != len(self.generators):
            raise ValueError(f"noise for {rows} rows requested, sampler built for {len(self.generators)}")
        return torch.stack([torch.randn(1, frames, generator=g) for g in self.generators])  # (rows, 1, frames)


def _set_sampler(module: nn.Module, sampler: NoiseSampler | None) -> None:
    for layer in module.modules():
        if isinstance(layer, AddNoise):
            layer.sampler = sampler


# ---------------------------------------------------------------------------------------------
# Streaming generator
# ---------------------------------------------------------------------------------------------


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` is bf16 on a CPU with bfloat16 units (AVX512-BF16 or AMX) and fp32 elsewhere.

    bf16 decodes ~1.6x faster there (``benchmarks/musika_generate_speed.py``) and sounds like fp32 on
    trained models: 36.7 dB SNR and log-mel / multi-scale distances to the input equal to 4 digits for
    the default model's autoencoder on held-out music (``benchmarks/musika_bf16_fidelity.py`` for a GAN).
    """
    if precision not in PRECISIONS:
        raise GenerationError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    from orchestrion.musika.fast import native_bf16

    return "bf16" if device.type == "cpu" and native_bf16() else "fp32"


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


class MusikaStream:
    """Endless audio from a latent GAN, block by block: ``for block in stream: ...``.

    Each block is a (channels, block_samples) float32 numpy array in [-1, 1] at 22.05 kHz (channels
    2, or 1 with ``mono``: the left latent channel decoded alone, a complete signal on its own; a
    downmix of independently decoded channels could comb-filter). Concatenated, the blocks equal
    :func:`generate` with the same seed and conditions. :meth:`read` returns any number of samples.

    Args:
        model: a trained latent GAN (:func:`orchestrion.musika.models.load_latent_gan`).
        seed: the piece: style vector, anchors and all noise derive from it.
        note_density, tempo: constants or CSV curves (see the module docstring).
        truncation: truncated-normal bound of style and anchors (spec §7.2; lower = tamer).
        mono: decode only the left channel.
        precision: ``"fp32"``, or ``"bf16"``: the decoders (≈ 98 % of the work) in bfloat16 -- the
            fused oneDNN decoder on CPU, autocast elsewhere; the generator always runs in float32.
            ``"auto"`` (default): bf16 on CPUs with bfloat16 units, else fp32 (:func:`resolve_precision`).
        block_seconds: length of the blocks the iterator yields (rounded to whole samples).
        glide_seconds: how long :meth:`set_conditions` takes to reach the new values.
        phase: ``"learned"`` (the decoder's phase, Musika) or ``"griffin-lim"`` (32 Griffin-Lim rounds on
            the decoded magnitude: 3x the fp32 decoding time, 7x the bf16 one; see the module docstring).
    """

    def __init__(
        self,
        model: TrainedLatentGAN,
        seed: int = 0,
        *,
        note_density: ConditionValue | None = None,
        tempo: ConditionValue | None = None,
        truncation: float = DEFAULT_TRUNCATION,
        mono: bool = False,
        precision: str = "auto",
        block_seconds: float = 1.0,
        glide_seconds: float = 2.0,
        phase: str = "learned",
    ) -> None:
        self.model = model
        self.device = next(model.generator.parameters()).device
        precision = resolve_precision(precision, self.device)
        if int(seed) != seed or seed < 0:
            raise GenerationError(f"seed must be a whole number >= 0, got {seed}")
        if not (math.isfinite(truncation) and truncation > 0):
            raise GenerationError(f"truncation must be a positive number, got {truncation}")
        if not (math.isfinite(block_seconds) and block_seconds > 0):
            raise GenerationError(f"block length must be positive, got {block_seconds} s")
        if not (math.isfinite(glide_seconds) and glide_seconds >= 0):
            raise GenerationError(f"glide must be >= 0 seconds, got {glide_seconds}")
        if phase not in PHASE_SOURCES:
            raise GenerationError(f"unknown phase {phase!r}; choose from {', '.join(PHASE_SOURCES)}")
        autoencoder = model.autoencoder
        if autoencoder.level2 is None:
            raise GenerationError(f"{autoencoder.path}: the GAN's autoencoder has no level 2")
        self.seed, self.truncation, self.precision = int(seed), float(truncation), precision
        self.level1, self.level2 = autoencoder.level1, autoencoder.level2
        config = model.config
        self.latent_dim = config.latent_dim
        self.segment_frames = config.latlen
        self.window_frames = self.level2.config.decoder_input_frames  # level-2 frames per decoder window
        if self.segment_frames % self.window_frames:
            raise GenerationError(
                f"segments of {self.segment_frames} frames are not whole {self.window_frames}-frame decoder windows"
            )
        self.window_samples = self.level2.config.hop * self.window_frames  # 16 384
        self.channels = [0] if mono else list(range(config.audio_channels))
        self.block_samples = max(1, round(block_seconds * SAMPLE_RATE))
        self.glide_frames = round(glide_seconds * SAMPLE_RATE / self.level2.config.hop)
        self.grid = LatentCoordinateGrid(config)
        hop, ratio = self.level2.config.hop, self.level2.config.ratio
        centre = HOP * (ratio - 1) / 2 + N_FFT / 2 - PAD  # audio sample at the centre of level-2 frame 0

        def frame_seconds(frames: np.ndarray) -> np.ndarray:
            return (hop * frames + centre) / SAMPLE_RATE

        self.schedule = _ConditionSchedule(config.conditions, conditioning_curves(model, note_density, tempo),
                                           frame_seconds)
        self.phase = phase
        self._griffin_lim = StreamingGriffinLim() if phase == "griffin-lim" else None
        self._fast = self.device.type == "cpu" and torch.backends.mkldnn.is_available()
        self._frozen_decoder = None  # the fused decoder, frozen from the models at the first decode (weights fixed)
        self._segments: dict[int, Tensor] = {}  # segment index -> (C·dim, latlen) float32 latents, CPU
        self._next_window = 0  # first decoder window not decoded yet
        self._carry: Tensor | None = None  # last 768 iSTFT samples, waiting for the next window's frames
        self._skip = PAD  # iSTFT samples still to drop at the start
        self._pending: list[Tensor] = []  # decoded audio not returned yet, (channels, n) pieces
        self._pending_samples = 0
        self.samples_read = 0
        self.first_audio_seconds: float | None = None  # wall time of the first read (latency to first audio)

    # -- latents ------------------------------------------------------------------------------

    def _generate_segments(self, first: int, count: int) -> Tensor:
        """Segments first..first+count-1 in one batched generator pass -> (count, C·dim, latlen) CPU float32."""
        coords = self.grid.inference_coordinates(self.seed, first, count, self.truncation)
        if self.model.config.conditions:
            frames = np.arange(first * self.segment_frames, (first + count) * self.segment_frames)
            curves = torch.from_numpy(self.schedule.values(frames))
            coords = append_conditions(coords, curves)
        generator = self.model.generator
        # the generator stacks the two halves of every segment on the batch axis: rows [half 0 of each
        # segment..., half 1 of each segment...]; noise keyed by (segment, half) makes it batch-independent
        keys = [(self.seed, "generator", first + row % count, row // count) for row in range(2 * count)]
        _set_sampler(generator, PositionalNoise(keys))
        try:
            with torch.inference_mode():  # float32 always: the generator is ~2 % of the time, bf16 saves nothing
                latents = generator(coords.to(self.device))
        finally:
            _set_sampler(generator, None)
        return latents.float().cpu()

    def _ensure_segments(self, first: int, stop: int) -> None:
        """Make segments [first, stop) available, generating the missing ones in batched passes."""
        missing = [k for k in range(first, stop) if k not in self._segments]
        while missing:
            start = missing[0]
            count = 1
            while count < min(len(missing), MAX_SEGMENTS_PER_PASS) and missing[count] == start + count:
                count += 1
            for offset, latents in enumerate(self._generate_segments(start, count)):
                self._segments[start + offset] = latents
            missing = missing[count:]

    def prefetch(self, seconds: float) -> None:
        """Generate the latents for the next ``seconds`` of audio now, in as few generator passes as possible."""
        last_sample = self.samples_read + round(seconds * SAMPLE_RATE) + PAD  # audio sample a is iSTFT sample a + 768
        last_window = math.ceil(last_sample / self.window_samples)
        stop = math.ceil(last_window * self.window_frames / self.segment_frames)
        self._ensure_segments(self._next_window * self.window_frames // self.segment_frames, stop)

    def _latents(self, first_frame: int, frames: int) -> Tensor:
        """Level-2 latents of frames [first_frame, first_frame + frames) -> (C·dim, frames)."""
        length = self.segment_frames
        first_segment, stop_segment = first_frame // length, math.ceil((first_frame + frames) / length)
        self._ensure_segments(first_segment, stop_segment)
        for stale in [k for k in self._segments if k < first_segment]:
            del self._segments[stale]
        joined = torch.cat([self._segments[k] for k in range(first_segment, stop_segment)], dim=-1)
        start = first_frame - first_segment * length
        return joined[:, start : start + frames]

    # -- decoding -----------------------------------------------------------------------------

    def _spectrogram(self, first_window: int, windows: int) -> tuple[Tensor, Tensor | None]:
        """Decoder windows [first, first + windows) of the selected channels -> frame-major (channels,
        windows·64, 513) normalised log-power and phase / π (None unless the phase is learned), CPU."""
        learned = self._griffin_lim is None
        latents = self._latents(first_window * self.window_frames, windows * self.window_frames)
        latents = latents.reshape(-1, self.latent_dim, latents.shape[-1])[self.channels]  # (channels, dim, frames)
        keys = [(self.seed, "decoder", c, first_window + w) for c in self.channels for w in range(windows)]
        sampler = PositionalNoise(keys)  # rows in the decoders' batch-major (channel, window) order
        if self._fast:
            if self._frozen_decoder is None:
                from orchestrion.musika.fast import freeze

                self._frozen_decoder = freeze(self.level1, self.level2, self.precision, magnitude_only=not learned)
            decoder = self._frozen_decoder
            out = decoder.decode(latents, noise=sampler)  # (channels, frames, 1026), 513 without a phase
            return out[..., : decoder.n_bins], out[..., decoder.n_bins :] if learned else None
        models = [self.level1, self.level2]
        for model in models:
            _set_sampler(model, sampler)
        try:
            with torch.inference_mode(), _autocast(self.device, self.precision):
                level1_latents = self.level2.decode(latents.to(self.device))
                if not learned:
                    return self.level1.decode_magnitude(level1_latents).float().transpose(1, 2).cpu(), None
                magnitude, phase = self.level1.decode(level1_latents)
            return magnitude.float().transpose(1, 2).cpu(), phase.float().transpose(1, 2).cpu()
        finally:
            for model in models:
                _set_sampler(model, None)

    def _decode(self, first_window: int, windows: int) -> Tensor:
        """Decoder windows [first, first + windows) of the selected channels -> (channels, windows·16384 + 768)."""
        features, phase = self._spectrogram(first_window, windows)
        if self._griffin_lim is None:
            return frames_to_wave(features, phase)
        magnitude = denormalise_magnitude(features.float()).transpose(1, 2)  # (channels, 513, frames)
        block = GRIFFIN_LIM_BLOCK_WINDOWS * features.shape[1] // windows  # level-1 frames per Griffin-Lim block
        phases = []
        for offset in range(0, magnitude.shape[-1], block):
            index = first_window // GRIFFIN_LIM_BLOCK_WINDOWS + offset // block
            self._griffin_lim.generator = torch.Generator().manual_seed(position_seed(self.seed, "griffin-lim", index))
            phases.append(self._griffin_lim(magnitude[..., offset : offset + block]))
        return istft(magnitude, torch.cat(phases, dim=-1))

    def _decode_more(self, windows: int) -> None:
        if self._griffin_lim is not None:  # whole Griffin-Lim blocks only (the stream starts on a block border)
            windows = math.ceil(windows / GRIFFIN_LIM_BLOCK_WINDOWS) * GRIFFIN_LIM_BLOCK_WINDOWS
        wave = self._decode(self._next_window, windows)
        self._next_window += windows
        if self._carry is not None:
            wave[:, :PAD] += self._carry
        self._carry = wave[:, -PAD:].clone()
        done = wave[:, :-PAD]
        if self._skip:
            dropped = min(self._skip, done.shape[-1])
            done, self._skip = done[:, dropped:], self._skip - dropped
        self._pending.append(done)
        self._pending_samples += done.shape[-1]

    def read(self, samples: int) -> np.ndarray:
        """The next ``samples`` samples: (channels, samples) float32 in [-1, 1]."""
        if samples < 0:
            raise GenerationError(f"cannot read a negative number of samples ({samples})")
        started = time.perf_counter()
        while self._pending_samples < samples:
            missing = samples - self._pending_samples + self._skip
            self._decode_more(min(MAX_DECODE_WINDOWS, math.ceil(missing / self.window_samples)))
        joined = torch.cat(self._pending, dim=-1) if self._pending else torch.zeros(len(self.channels), 0)
        out, rest = joined[:, :samples], joined[:, samples:]
        self._pending, self._pending_samples = ([rest] if rest.shape[-1] else []), rest.shape[-1]
        if self.first_audio_seconds is None and samples:
            self.first_audio_seconds = time.perf_counter() - started
        self.samples_read += samples
        return out.clamp(-1.0, 1.0).numpy()

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        return self.read(self.block_samples)

    # -- live control -------------------------------------------------------------------------

    def set_conditions(
        self, note_density: ConditionValue | None = None, tempo: ConditionValue | None = None
    ) -> None:
        """Change conditioning from the next block on, without a click (see the module docstring).

        Values as for the constructor; curves keep the stream's time axis (seconds since its start).
        """
        curves = {}
        for name, value in (("note_density", note_density), ("tempo", tempo)):
            if value is not None:
                curves[name] = condition_curve(self.model, name, value)
        if not curves:
            return
        first_frame = self._next_window * self.window_frames
        segment = first_frame // self.segment_frames
        old = self._segments.get(segment)
        self.schedule.change(first_frame, self.glide_frames, curves)
        for stale in [k for k in self._segments if k >= segment]:
            del self._segments[stale]
        if old is None:
            return
        self._ensure_segments(segment, segment + 1)
        new = self._segments[segment]
        start = first_frame - segment * self.segment_frames
        fade = torch.linspace(0.0, 1.0, self.window_frames + 2)[1:-1]  # (window,), strictly between 0 and 1
        blended = new.clone()
        blended[:, :start] = old[:, :start]
        stop = start + self.window_frames
        blended[:, start:stop] = (1 - fade) * old[:, start:stop] + fade * new[:, start:stop]
        self._segments[segment] = blended


# ---------------------------------------------------------------------------------------------
# Offline generation
# ---------------------------------------------------------------------------------------------


def _num_samples(seconds: float) -> int:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise GenerationError(f"seconds must be a positive number, got {seconds}")
    return max(1, round(seconds * SAMPLE_RATE))


def generate(
    model: TrainedLatentGAN,
    seconds: float,
    seed: int = 0,
    *,
    note_density: ConditionValue | None = None,
    tempo: ConditionValue | None = None,
    truncation: float = DEFAULT_TRUNCATION,
    mono: bool = False,
    precision: str = "auto",
    phase: str = "learned",
) -> np.ndarray:
    """Generate ``seconds`` of music: (channels, round(seconds·22050)) float32 in [-1, 1] at 22.05 kHz.

    All segments go through the generator in one batched pass (up to 64 segments ≈ 25 min of
    techno per pass), then are decoded in large batches. The result equals what
    :class:`MusikaStream` yields for the same arguments. See :class:`MusikaStream` for the arguments.
    """
    samples = _num_samples(seconds)
    stream = MusikaStream(
        model, seed, note_density=note_density, tempo=tempo, truncation=truncation, mono=mono, precision=precision,
        phase=phase,
    )
    stream.prefetch(samples / SAMPLE_RATE)
    return stream.read(samples)


def iter_generate(stream: MusikaStream, seconds: float, chunk_seconds: float = 60.0) -> Iterator[np.ndarray]:
    """Exactly ``seconds`` of ``stream`` in chunks of ``chunk_seconds`` (each chunk's latents in one pass)."""
    remaining = _num_samples(seconds)
    chunk = max(1, round(chunk_seconds * SAMPLE_RATE))
    while remaining:
        size = min(chunk, remaining)
        stream.prefetch(size / SAMPLE_RATE)
        yield stream.read(size)
        remaining -= size


@contextlib.contextmanager
def _audio_file(out: Path, channels: int) -> Iterator:
    """An open 16-bit 22.05 kHz soundfile writing to a temporary that replaces ``out`` when complete."""
    import soundfile

    from orchestrion.fileio import atomic_path

    if out.suffix.lower() not in (".wav", ".flac"):
        raise GenerationError(f"{out}: output must be a .wav or .flac file")
    with atomic_path(out) as tmp, soundfile.SoundFile(tmp, "w", SAMPLE_RATE, channels, subtype="PCM_16") as handle:
        yield handle


PNG_SECONDS = 120.0  # the spectrogram PNG shows at most the first two minutes (memory and legibility)


def generate_to_file(
    model: TrainedLatentGAN,
    seconds: float,
    out: str | Path,
    seed: int = 0,
    *,
    note_density: ConditionValue | None = None,
    tempo: ConditionValue | None = None,
    truncation: float = DEFAULT_TRUNCATION,
    mono: bool = False,
    precision: str = "auto",
    phase: str = "learned",
    png: bool = False,
    progress=None,
) -> list[Path]:
    """Generate ``seconds`` of music into ``out`` (16-bit WAV/FLAC by suffix), written as it is made.

    Memory stays bounded for hours (one chunk of audio at a time); the file appears atomically when
    complete. With ``png`` also writes ``out`` with suffix ``.png``: the spectrogram of the first
    channel's first two minutes. ``progress(done_samples, total_samples)`` is called after each chunk.
    Returns the written paths.
    """
    out = Path(out)
    total = _num_samples(seconds)
    stream = MusikaStream(
        model, seed, note_density=note_density, tempo=tempo, truncation=truncation, mono=mono, precision=precision,
        phase=phase,
    )
    preview: list[np.ndarray] = []
    preview_samples = round(PNG_SECONDS * SAMPLE_RATE) if png else 0
    done = 0
    with _audio_file(out, len(stream.channels)) as handle:
        for block in iter_generate(stream, total / SAMPLE_RATE):
            handle.write(block.T)
            if done < preview_samples:
                preview.append(block[0, : preview_samples - done])
            done += block.shape[-1]
            if progress is not None:
                progress(done, total)
    written = [out]
    if png:
        from orchestrion.musika.inference import spectrogram_comparison_png

        title = f"generated, seed {seed}" + (" (first 2 minutes)" if total > preview_samples else "")
        written.append(spectrogram_comparison_png(out.with_suffix(".png"), [(title, np.concatenate(preview))]))
    return written


# ---------------------------------------------------------------------------------------------
# Streaming to a byte sink (the `musika stream` command)
# ---------------------------------------------------------------------------------------------

STREAM_FORMATS = ("wav", "raw")


def wav_header(channels: int, samples: int | None) -> bytes:
    """A 16-bit PCM WAV header; ``samples=None`` marks an endless stream (sizes 0xFFFFFFFF, as sox/ffmpeg do)."""
    block_align = 2 * channels
    data = 0xFFFFFFFF if samples is None else min(samples * block_align, 0xFFFFFFFF - 36)
    riff = 0xFFFFFFFF if samples is None else data + 36
    return (
        b"RIFF" + riff.to_bytes(4, "little") + b"WAVEfmt "
        + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + channels.to_bytes(2, "little")
        + SAMPLE_RATE.to_bytes(4, "little") + (SAMPLE_RATE * block_align).to_bytes(4, "little")
        + block_align.to_bytes(2, "little") + (16).to_bytes(2, "little")
        + b"data" + data.to_bytes(4, "little")
    )


def pcm16(block: np.ndarray) -> bytes:
    """(channels, n) float in [-1, 1] -> interleaved little-endian 16-bit PCM bytes."""
    scaled = np.round(np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2")
    return scaled.T.tobytes()


def stream_to(
    stream: MusikaStream, sink: BinaryIO, *, seconds: float | None = None, audio_format: str = "wav"
) -> int:
    """Write ``stream`` to a binary sink (e.g. stdout) as 16-bit PCM, WAV or raw; returns samples written.

    Without ``seconds`` it runs until the sink closes (``BrokenPipeError``) or the user interrupts
    (Ctrl-C); both end it normally.
    """
    if audio_format not in STREAM_FORMATS:
        raise GenerationError(f"unknown stream format {audio_format!r}; choose from {', '.join(STREAM_FORMATS)}")
    total = None if seconds is None else _num_samples(seconds)
    if audio_format == "wav":
        sink.write(wav_header(len(stream.channels), total))
    written = 0
    try:
        while total is None or written < total:
            block = stream.read(stream.block_samples if total is None else min(stream.block_samples, total - written))
            sink.write(pcm16(block))
            sink.flush()
            written += block.shape[-1]
    except KeyboardInterrupt:
        pass  # the user ended an endless stream: a normal end
    except BrokenPipeError:
        # the reader went away: the stream ends there; point the descriptor at /dev/null so the
        # interpreter's final flush does not fail again (the recipe of Python's signal docs)
        with contextlib.suppress(AttributeError, OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sink.fileno())
    return written


def stream_to_file(stream: MusikaStream, out: Path, *, seconds: float | None = None) -> int:
    """Write ``stream`` to ``out`` (16-bit WAV/FLAC) until ``seconds`` or Ctrl-C; returns samples written.

    An interrupt ends the file cleanly: what was generated so far is kept (the file still appears
    atomically, complete and readable).
    """
    total = None if seconds is None else _num_samples(seconds)
    with _audio_file(out, len(stream.channels)) as handle:
        try:
            while total is None or handle.frames < total:
                size = stream.block_samples if total is None else min(stream.block_samples, total - handle.frames)
                handle.write(stream.read(size).T)
        except KeyboardInterrupt:
            pass  # the user ended an endless stream: keep what is there
        return handle.frames
