"""Objective metrics of symbolic music: per-piece features and how two sets of pieces compare.

The features follow the MGEval line of work (Yang & Lerch, "On the evaluation of generative
models in music", Neural Computing and Applications 32, 2020) adapted to multi-track pieces,
plus the grammar validity of SymphonyNet's representation:

============================  =====================================================================
pitch-class histogram (12)    share of pitched notes per pitch class (drums excluded)
pitch-class transitions (144) share of each (pitch class → next pitch class) step between
                              consecutive notes of a track (ordered by onset, then pitch)
pitch-class entropy           Shannon entropy of the pitch-class histogram, bits (0 … log2 12 = 3.585)
used pitch classes            pitch classes with at least one note (MGEval's "pitch count" per class)
lowest / highest / mean pitch MIDI note numbers of the pitched notes
pitch range                   highest − lowest, semitones
polyphony                     mean number of pitched notes sounding at once, over the time when
                              at least one sounds (time-weighted)
note density                  notes (drums included) per second, first onset to last release
mean inter-onset interval     seconds between consecutive distinct onset times (all tracks)
mean note length              beats (quarter notes), pitched notes
instruments                   distinct General MIDI programs with notes (drums count as one)
instrument usage              share of notes per program (129 bins, drums = 128)
MMR validity                  the file encodes to MMR (:func:`orchestrion.symbolic.mmr.encode`,
                              without the training-time sparse-track merge)
MMR note retention            source notes kept by the encoding (long-note splits counted once) /
                              notes in the file
============================  =====================================================================

How the sets are compared:

* **Overlapping area (OA)** of each scalar feature, as in Yang & Lerch: a Gaussian kernel density
  estimate per set (Scott's bandwidth ``σ·n^(−1/5)``, as ``scipy.stats.gaussian_kde``) and
  ``OA = ∫ min(p_ref, p_gen)``, 1 for identical distributions, 0 for disjoint ones. Densities
  are evaluated on a grid that resolves every kernel and normalised to integrate to 1 there.
  (Yang & Lerch apply the same OA to *distributions of pairwise distances* between pieces; on
  per-piece values it is directly readable and exactly 1 for identical sets.)
* **Relative measure** of Yang & Lerch for the two histogram features: the OA between the
  distribution of Euclidean distances between different reference pieces (intra-set) and that of
  distances from every reference piece to every generated piece (inter-set). Near 1 when the
  generated pieces are as far from the reference pieces as these are from one another; it is
  below 1 even for identical sets (the inter-set distances then include each piece's zero
  distance to its copy: about 1/n of them), so read it against the same measure of a baseline.
* **Jensen–Shannon divergence** (bits, 0 … 1) between the pooled pitch-class histograms and the
  pooled instrument usage of the two sets: 0 for identical sets.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from orchestrion.errors import DataError, MidiError
from orchestrion.fileio import SkipReport, atomic_write_text

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
DRUM_PROGRAM = 128
N_PROGRAMS = 129
_GRID_CENTRES = 400
_MAX_KERNELS = 2000  # larger samples (pairwise distances) are represented by this many quantiles
HISTOGRAM_FEATURES: tuple[tuple[str, str], ...] = (
    ("pitch_class_histogram", "pitch-class histogram"),
    ("pitch_class_transitions", "pitch-class transitions"),
)

# (attribute, label, unit) of every scalar feature compared by overlapping area
SCALAR_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("pitch_class_entropy", "pitch-class entropy", "bits"),
    ("used_pitch_classes", "used pitch classes", ""),
    ("lowest_pitch", "lowest pitch", "MIDI"),
    ("highest_pitch", "highest pitch", "MIDI"),
    ("mean_pitch", "mean pitch", "MIDI"),
    ("pitch_range", "pitch range", "semitones"),
    ("polyphony", "polyphony", "notes"),
    ("note_density", "note density", "notes/s"),
    ("mean_ioi", "mean inter-onset interval", "s"),
    ("mean_note_beats", "mean note length", "beats"),
    ("n_instruments", "instruments", ""),
)


@dataclass
class PieceFeatures:
    """The features of one MIDI file (pitch features are NaN for a drums-only piece)."""

    file: str
    n_notes: int
    pitch_class_histogram: list[float]
    pitch_class_transitions: list[float]
    pitch_class_entropy: float
    used_pitch_classes: float
    lowest_pitch: float
    highest_pitch: float
    mean_pitch: float
    pitch_range: float
    polyphony: float
    note_density: float
    mean_ioi: float
    mean_note_beats: float
    n_instruments: float
    instrument_notes: dict[int, int]
    mmr_valid: bool
    mmr_note_retention: float
    mmr_error: str = ""


def _entropy_bits(probabilities: np.ndarray) -> float:
    nonzero = probabilities[probabilities > 0]
    return float(-(nonzero * np.log2(nonzero)).sum())


def _polyphony(starts: np.ndarray, ends: np.ndarray) -> float:
    """Time-weighted mean count of sounding notes over the time where at least one sounds."""
    if len(starts) == 0:
        return math.nan
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.lexsort((steps, times))  # at equal times releases (−1) come first
    times, sounding = times[order], np.cumsum(steps[order])
    spans = np.diff(times)
    active = sounding[:-1] > 0
    sounding_time = spans[active].sum()
    return float((sounding[:-1] * spans)[active].sum() / sounding_time) if sounding_time > 0 else math.nan


def _mmr_check(score) -> tuple[bool, float, str]:
    from orchestrion.symbolic.mmr import encode

    try:  # no sparse-track merge: that is a training-data rule, not part of the grammar
        piece = encode(score, merge_sparse_tracks=False)
    except MidiError as error:
        return False, 0.0, str(error)
    # long notes are split into several note steps: count each source note once
    return True, (piece.n_notes_kept - piece.n_split_added) / max(piece.n_notes_in, 1), ""


def piece_features(path: str | Path, name: str | None = None) -> PieceFeatures:
    """Read one MIDI file and compute its features. Raises :class:`MidiError` for an unreadable file."""
    from orchestrion.symbolic.midi import load_midi, ticks_to_seconds

    score = load_midi(path)
    tpq = score.ticks_per_quarter
    pitched_start, pitched_end, pitches, all_starts, all_ends = [], [], [], [], []
    transitions = np.zeros((12, 12))
    instrument_notes: dict[int, int] = {}
    for track in score.tracks:
        notes = track.notes.numpy()
        if len(notes["time"]) == 0:
            continue
        start = notes["time"].astype(np.int64)
        end = start + np.maximum(notes["duration"].astype(np.int64), 0)
        program = DRUM_PROGRAM if track.is_drum else int(track.program)
        instrument_notes[program] = instrument_notes.get(program, 0) + len(start)
        all_starts.append(start)
        all_ends.append(end)
        if not track.is_drum:
            pitched_start.append(start)
            pitched_end.append(end)
            pitches.append(notes["pitch"].astype(np.int64))
            pitch_classes = pitches[-1][np.lexsort((pitches[-1], start))] % 12
            np.add.at(transitions, (pitch_classes[:-1], pitch_classes[1:]), 1)
    starts, ends = np.concatenate(all_starts), np.concatenate(all_ends)
    onset_seconds = np.unique(ticks_to_seconds(score, starts))
    span = float(ticks_to_seconds(score, ends.max()) - onset_seconds[0])
    if pitches:
        pitch = np.concatenate(pitches)
        p_start, p_end = np.concatenate(pitched_start), np.concatenate(pitched_end)
        histogram = np.bincount(pitch % 12, minlength=12) / len(pitch)
        pitch_stats = {
            "pitch_class_entropy": _entropy_bits(histogram),
            "used_pitch_classes": float((histogram > 0).sum()),
            "lowest_pitch": float(pitch.min()),
            "highest_pitch": float(pitch.max()),
            "mean_pitch": float(pitch.mean()),
            "pitch_range": float(pitch.max() - pitch.min()),
            "polyphony": _polyphony(p_start, p_end),
            "mean_note_beats": float((p_end - p_start).mean() / tpq),
        }
    else:
        histogram = np.zeros(12)
        pitch_stats = dict.fromkeys(
            ("pitch_class_entropy", "used_pitch_classes", "lowest_pitch", "highest_pitch", "mean_pitch",
             "pitch_range", "polyphony", "mean_note_beats"),
            math.nan,
        )
    valid, retention, error = _mmr_check(score)
    return PieceFeatures(
        file=name if name is not None else str(path),
        n_notes=len(starts),
        pitch_class_histogram=[float(v) for v in histogram],
        pitch_class_transitions=[float(v) for v in (transitions / max(transitions.sum(), 1.0)).ravel()],
        note_density=len(starts) / span if span > 0 else math.nan,
        mean_ioi=float(np.diff(onset_seconds).mean()) if len(onset_seconds) > 1 else math.nan,
        n_instruments=float(len(instrument_notes)),
        instrument_notes=dict(sorted(instrument_notes.items())),
        mmr_valid=valid,
        mmr_note_retention=retention,
        mmr_error=error,
        **pitch_stats,
    )


def _kde(values: np.ndarray, bandwidth: float, grid: np.ndarray, chunk: int = 4096) -> np.ndarray:
    density = np.empty(len(grid))
    for start in range(0, len(grid), chunk):  # bounded memory for large sets
        z = (grid[start : start + chunk, None] - values[None, :]) / bandwidth
        density[start : start + chunk] = np.exp(-0.5 * z * z).sum(axis=1)
    return density / (len(values) * bandwidth * math.sqrt(2 * math.pi))


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2)


def _scott_bandwidth(values: np.ndarray) -> float:
    """Scott's rule ``σ·n^(−1/5)`` (σ with ddof=1); 0 for a sample without spread."""
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return spread * len(values) ** (-1 / 5)


def _representative(values: np.ndarray) -> np.ndarray:
    """The sample itself, or for a large one its quantiles at ``_MAX_KERNELS`` evenly spaced levels."""
    return values if len(values) <= _MAX_KERNELS else np.quantile(values, np.linspace(0, 1, _MAX_KERNELS))


def overlapping_area(reference: np.ndarray, generated: np.ndarray) -> float:
    """Overlap ``∫ min(p, q)`` of the Gaussian KDEs of two samples of a scalar (NaNs ignored); 0 … 1.

    A sample without spread (one piece, or all equal) borrows the other sample's bandwidth; when
    neither has spread the overlap is 1 for the same value and 0 otherwise. NaN when either
    sample has no finite value.
    """
    reference = np.asarray(reference, np.float64)
    generated = np.asarray(generated, np.float64)
    reference, generated = reference[np.isfinite(reference)], generated[np.isfinite(generated)]
    if len(reference) == 0 or len(generated) == 0:
        return math.nan
    h_ref, h_gen = _scott_bandwidth(reference), _scott_bandwidth(generated)
    if h_ref == 0 and h_gen == 0:
        return 1.0 if reference[0] == generated[0] else 0.0
    h_ref, h_gen = h_ref or h_gen, h_gen or h_ref
    offsets = np.linspace(-6.0, 6.0, 25)  # every kernel sampled at h/2 steps
    # around at most _GRID_CENTRES quantiles of each sample, which cover its support densely
    centres = [np.quantile(v, np.linspace(0, 1, min(len(v), _GRID_CENTRES))) for v in (reference, generated)]
    grid = np.unique(np.concatenate([(centres[0][:, None] + h_ref * offsets).ravel(),
                                     (centres[1][:, None] + h_gen * offsets).ravel()]))
    p, q = _kde(_representative(reference), h_ref, grid), _kde(_representative(generated), h_gen, grid)
    p, q = p / _trapezoid(p, grid), q / _trapezoid(q, grid)
    return min(_trapezoid(np.minimum(p, q), grid), 1.0)


def relative_overlapping_area(reference: np.ndarray, generated: np.ndarray) -> float:
    """Yang & Lerch's relative measure for vector features ``(n, d)`` and ``(m, d)``.

    OA between the intra-set distances of the reference (Euclidean, pairs of different pieces)
    and the inter-set distances (every reference piece to every generated piece). NaN with
    fewer than 2 reference pieces.
    """
    reference, generated = np.asarray(reference, np.float64), np.asarray(generated, np.float64)
    if len(reference) < 2 or len(generated) == 0:
        return math.nan

    def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return np.sqrt(np.clip(squared, 0.0, None))

    intra = distances(reference, reference)[np.triu_indices(len(reference), k=1)]
    return overlapping_area(intra, distances(reference, generated).ravel())


def jensen_shannon_bits(first: np.ndarray, second: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, 0 … 1) of two non-negative histograms (normalised here)."""
    p = np.asarray(first, np.float64) / max(float(np.sum(first)), 1e-300)
    q = np.asarray(second, np.float64) / max(float(np.sum(second)), 1e-300)
    middle = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float((a[keep] * np.log2(a[keep] / middle[keep])).sum())

    return max(0.5 * kl(p) + 0.5 * kl(q), 0.0)


@dataclass
class SetSummary:
    """Per-set aggregates: folder, piece count, pooled histograms, validity."""

    folder: str
    pieces: int
    pitch_class_histogram: list[float]
    instrument_usage: dict[int, float]
    mmr_valid_fraction: float
    mmr_note_retention: float
    means: dict[str, float]
    stds: dict[str, float]


def _summarise(folder: str, pieces: list[PieceFeatures]) -> SetSummary:
    pitch_counts = np.zeros(12)
    instrument_counts = np.zeros(N_PROGRAMS)
    for piece in pieces:
        pitch_counts += np.asarray(piece.pitch_class_histogram) * (piece.n_notes - piece.instrument_notes.get(
            DRUM_PROGRAM, 0))
        for program, count in piece.instrument_notes.items():
            instrument_counts[program] += count
    columns = {name: np.array([getattr(p, name) for p in pieces], np.float64) for name, _, _ in SCALAR_FEATURES}

    def finite_stat(values: np.ndarray, stat) -> float:
        values = values[np.isfinite(values)]
        return float(stat(values)) if len(values) else math.nan

    return SetSummary(
        folder=folder,
        pieces=len(pieces),
        pitch_class_histogram=[float(v) for v in pitch_counts / max(pitch_counts.sum(), 1.0)],
        instrument_usage={
            int(p): float(instrument_counts[p] / instrument_counts.sum()) for p in np.flatnonzero(instrument_counts)
        },
        mmr_valid_fraction=float(np.mean([p.mmr_valid for p in pieces])),
        mmr_note_retention=float(np.mean([p.mmr_note_retention for p in pieces])),
        means={name: finite_stat(values, np.mean) for name, values in columns.items()},
        stds={name: finite_stat(values, np.std) for name, values in columns.items()},
    )


@dataclass
class SymbolicReport:
    """Two sets compared: per-feature OA, histogram divergences, validity, per-piece features."""

    reference: SetSummary
    generated: SetSummary
    overlapping_area: dict[str, float]
    relative_overlapping_area: dict[str, float]
    pitch_class_histogram_jsd: float
    instrument_usage_jsd: float
    pieces: dict[str, list[PieceFeatures]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_json(self, path: str | Path) -> Path:
        """Write the full report (per-piece features included) as JSON, atomically."""
        atomic_write_text(path, json.dumps(_json_ready(asdict(self)), indent=2) + "\n")
        return Path(path)

    def to_markdown(self) -> str:
        """The report as Markdown: feature table, distribution distances, validity, instruments, skips."""
        from orchestrion.symbolic.pianoroll import program_name

        ref, gen = self.reference, self.generated
        lines = [
            "# Symbolic evaluation",
            "",
            f"- reference: `{ref.folder}`, {ref.pieces} pieces",
            f"- generated: `{gen.folder}`, {gen.pieces} pieces",
            "",
            "| feature | reference mean ± std | generated mean ± std | overlapping area ↑ |",
            "|---|---|---|---|",
        ]
        for name, label, unit in SCALAR_FEATURES:
            label = f"{label} ({unit})" if unit else label
            lines.append(
                f"| {label} | {_pm(ref.means[name], ref.stds[name])} | {_pm(gen.means[name], gen.stds[name])} "
                f"| {_fmt(self.overlapping_area[name])} |"
            )
        lines += [
            "",
            "| per-piece histograms | Yang & Lerch relative OA (intra-reference vs inter-set distances) ↑ |",
            "|---|---|",
            *(f"| {label} | {_fmt(self.relative_overlapping_area[name])} |" for name, label in HISTOGRAM_FEATURES),
            "",
            "| distribution of the pooled notes | Jensen–Shannon divergence (bits) ↓ |",
            "|---|---|",
            f"| pitch-class histogram | {_fmt(self.pitch_class_histogram_jsd)} |",
            f"| instrument usage | {_fmt(self.instrument_usage_jsd)} |",
            "",
            "| set | valid MMR | notes kept by MMR encoding |",
            "|---|---|---|",
            f"| reference | {ref.mmr_valid_fraction:.1%} | {ref.mmr_note_retention:.1%} |",
            f"| generated | {gen.mmr_valid_fraction:.1%} | {gen.mmr_note_retention:.1%} |",
            "",
            "| pitch class | " + " | ".join(PITCH_CLASS_NAMES) + " |",
            "|---" * 13 + "|",
            "| reference | " + " | ".join(f"{v:.3f}" for v in ref.pitch_class_histogram) + " |",
            "| generated | " + " | ".join(f"{v:.3f}" for v in gen.pitch_class_histogram) + " |",
            "",
            "| instrument | reference share of notes | generated share of notes |",
            "|---|---|---|",
        ]
        programs = sorted(set(ref.instrument_usage) | set(gen.instrument_usage),
                          key=lambda p: -(ref.instrument_usage.get(p, 0.0) + gen.instrument_usage.get(p, 0.0)))
        for program in programs:
            lines.append(
                f"| {program_name(program)} ({program}) | {ref.instrument_usage.get(program, 0.0):.1%} "
                f"| {gen.instrument_usage.get(program, 0.0):.1%} |"
            )
        if self.skipped:
            lines += ["", f"Skipped {len(self.skipped)} file(s):", ""]
            lines += [f"- {s['set']}: `{s['file']}`: {s['reason']}" for s in self.skipped]
        return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def _pm(mean: float, std: float) -> str:
    return "n/a" if not math.isfinite(mean) else f"{mean:.3f} ± {std:.3f}"


def _json_ready(value):
    """NaN → null (JSON has no NaN), dict keys → strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def folder_features(folder: str | Path, skipped: SkipReport, *, progress: bool = True) -> list[PieceFeatures]:
    """Features of every MIDI file under ``folder``; unreadable files are recorded in ``skipped``."""
    from rich.progress import Progress

    from orchestrion.symbolic.preprocess import find_midi_files

    folder = Path(folder)
    names = find_midi_files(folder)
    if not names:
        raise DataError(f"{folder}: no MIDI files found (.mid/.midi, searched recursively)")
    pieces = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"read {folder.name or folder}", total=len(names))
        for name in names:
            try:
                pieces.append(piece_features(folder / name, name))
            except MidiError as error:
                skipped.skip(name, str(error).removeprefix(f"{folder / name}: "))
            bar.advance(task)
    skipped.require_some(len(pieces), f"MIDI files in {folder}")
    return pieces


def evaluate_symbolic(reference_dir: str | Path, generated_dir: str | Path, *, progress: bool = True) -> SymbolicReport:
    """Compare the MIDI files under ``generated_dir`` with those under ``reference_dir``.

    Bad MIDI files are skipped and listed in ``report.skipped``; a folder that is missing, holds
    no MIDI file or only bad ones raises an :class:`~orchestrion.errors.OrchestrionError`.
    """
    for folder in (reference_dir, generated_dir):
        if not Path(folder).is_dir():
            raise DataError(f"{folder}: MIDI folder not found")
    ref_skips, gen_skips = SkipReport(), SkipReport()
    reference = folder_features(reference_dir, ref_skips, progress=progress)
    generated = folder_features(generated_dir, gen_skips, progress=progress)
    ref_summary, gen_summary = _summarise(str(reference_dir), reference), _summarise(str(generated_dir), generated)
    instruments = np.zeros((2, N_PROGRAMS))
    for row, summary in enumerate((ref_summary, gen_summary)):
        for program, share in summary.instrument_usage.items():
            instruments[row, program] = share
    return SymbolicReport(
        reference=ref_summary,
        generated=gen_summary,
        overlapping_area={
            name: overlapping_area(
                np.array([getattr(p, name) for p in reference]), np.array([getattr(p, name) for p in generated])
            )
            for name, _, _ in SCALAR_FEATURES
        },
        relative_overlapping_area={
            name: relative_overlapping_area(
                np.array([getattr(p, name) for p in reference]), np.array([getattr(p, name) for p in generated])
            )
            for name, _ in HISTOGRAM_FEATURES
        },
        pitch_class_histogram_jsd=jensen_shannon_bits(ref_summary.pitch_class_histogram,
                                                      gen_summary.pitch_class_histogram),
        instrument_usage_jsd=jensen_shannon_bits(instruments[0], instruments[1]),
        pieces={"reference": reference, "generated": generated},
        skipped=[{"set": "reference", **s} for s in ref_skips.skipped]
        + [{"set": "generated", **s} for s in gen_skips.skipped],
    )
