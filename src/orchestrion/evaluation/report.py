"""The evaluation report (``scripts/evaluation_report.py``): every model's numbers next to baselines.

Three sections, each computed only when its inputs are given, each a :class:`Section` whose
tables are data (:class:`ReportTable`) rendered once to Markdown, so ``docs/evaluation.md`` and
``docs/evaluation.json`` hold the same numbers:

* :func:`musika_section`: FAD (offline ``spectral-stats`` embedder, 1 s excerpts) of latent-GAN
  clips against a held-out audio folder, next to random level-2 latents decoded by the same
  autoencoder, training audio (real vs real), spectrum-matched noise, and the held-out set's
  split-half FAD.
* :func:`autoencoder_section`: spectral distances of autoencoder reconstructions of excerpts of
  training, held-out and (optionally) out-of-domain audio, each run's magnitude also with
  Griffin-Lim phase, next to the exact-magnitude phase baselines and a linear frame code of the
  latent's size; training curves; a spectrogram comparison.
* :func:`symbolic_section`: SymphonyNet pieces against the run's held-out pieces, next to the
  held-out pieces with shuffled pitches, an n-gram note model and training pieces (real vs real).

Every compared set of a section has the same size and length (N clips of S seconds; K pieces of
B bars, every piece cut to its first B bars), since FAD and overlapping areas depend on both.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from orchestrion.errors import DataError, MidiError
from orchestrion.fileio import SkipReport, atomic_write_text

if TYPE_CHECKING:
    from orchestrion.evaluation.autoencoder_quality import LinearFrameCode
    from orchestrion.musika.models import TrainedAutoencoder

Log = Callable[[str], None]
IMAGES = Path("images") / "evaluation"  # relative to the report's folder
DEFAULT_DENSITIES = (0.25, 0.5, 0.75)


def _quiet(_: str) -> None:
    """The default log: say nothing."""


def format_number(value: float | None) -> str:
    """How every number of the report is printed: 4 significant digits, ``n/a`` for a missing one."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


@dataclass
class ReportTable:
    """A table of numbers: one row per system, one column per measure (None where undefined)."""

    title: str
    columns: list[str]
    rows: list[tuple[str, list[float | None]]] = field(default_factory=list)

    def add(self, label: str, values: Sequence[float | None]) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"row {label!r} has {len(values)} values for {len(self.columns)} columns")
        clean = [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]
        self.rows.append((label, clean))

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| system | " + " | ".join(self.columns) + " |",
                 "|---|" + "---:|" * len(self.columns)]
        lines += [f"| {label} | " + " | ".join(format_number(v) for v in values) + " |" for label, values in self.rows]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"title": self.title, "columns": self.columns,
                "rows": [{"system": label, "values": values} for label, values in self.rows]}


@dataclass
class Section:
    """One part of the report: Markdown text around its tables, the numbers, pictures and wall time."""

    key: str
    title: str
    intro: list[str] = field(default_factory=list)  # Markdown paragraphs before the tables
    tables: list[ReportTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # Markdown paragraphs after the tables
    images: list[tuple[str, Path]] = field(default_factory=list)  # (caption, path relative to the report)
    data: dict = field(default_factory=dict)
    models: list[tuple[str, str, int | None]] = field(default_factory=list)  # (role, path, training step)
    seconds: float = 0.0

    def body(self, images: bool = True) -> str:
        """The section without its heading; without ``images``, what a model card quotes (its pictures
        are linked relative to the report's folder)."""
        parts = [*self.intro, *(table.to_markdown() for table in self.tables), *self.notes]
        if images:
            parts += [f"![{caption}]({path.as_posix()})" for caption, path in self.images]
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        return f"## {self.title}\n\n{self.body()}\n\n_Wall time of this section: {self.seconds:.1f} s._"

    def to_json(self) -> dict:
        return {
            "title": self.title, "markdown": self.body(images=False), "tables": [t.to_json() for t in self.tables],
            "images": [path.as_posix() for _, path in self.images], "data": _json_ready(self.data),
            "models": [{"role": r, "path": p, "step": s} for r, p, s in self.models], "seconds": self.seconds,
        }


def _json_ready(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    return value


def model_step(path: str | Path) -> int | None:
    """The training step of a run, a checkpoint or an exported model (None when it records none)."""
    from orchestrion.checkpoint import checkpoint_step, resolve_checkpoint

    checkpoint = resolve_checkpoint(path)
    step = checkpoint_step(checkpoint)
    if step is None:
        try:
            step = json.loads((checkpoint / "config.json").read_text()).get("trained_steps")
        except (OSError, json.JSONDecodeError):
            return None
    return step if isinstance(step, int) else None


def _step_text(step: int | None) -> str:
    return "n/a" if step is None else str(step)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def run_directory(path: str | Path) -> Path:
    """The run folder of ``path``: itself, or RUN for a checkpoint RUN/checkpoints/step_N."""
    path = Path(path)
    return path.parent.parent if path.parent.name == "checkpoints" else path


# ---------------------------------------------------------------------------------------------
# Audio excerpts
# ---------------------------------------------------------------------------------------------


def audio_excerpts(folder: str | Path, count: int, seconds: float, rng: np.random.Generator,
                   skipped: SkipReport | None = None) -> list[tuple[str, np.ndarray]]:
    """``count`` mono excerpts ``(name, (L,) float32)`` of ``seconds`` at 22.05 kHz from the audio under
    ``folder``: files in a seeded random order, taken in turn, each excerpt at a random offset.

    Files shorter than ``seconds`` or unreadable are skipped (recorded in ``skipped``); raises
    :class:`DataError` when none is long enough.
    """
    from orchestrion.audio.io import collect_audio_files, load_audio
    from orchestrion.audio.spectral import SAMPLE_RATE
    from orchestrion.errors import AudioError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: audio folder not found")
    skipped = SkipReport() if skipped is None else skipped
    length = round(seconds * SAMPLE_RATE)
    paths = collect_audio_files(folder)
    waves: list[tuple[str, np.ndarray]] = []
    for index in rng.permutation(len(paths)):
        if len(waves) == count:
            break
        try:
            wave = load_audio(paths[index], channels=1)[0]
        except AudioError as error:
            skipped.skip(paths[index], str(error))
            continue
        if len(wave) < length:
            skipped.skip(paths[index], f"shorter than {seconds:g} s")
            continue
        waves.append((paths[index].relative_to(folder).as_posix(), wave))
    if not waves:
        raise DataError(f"{folder}: no audio file of at least {seconds:g} s")
    excerpts = []
    for i in range(count):
        name, wave = waves[i % len(waves)]
        start = int(rng.integers(0, len(wave) - length + 1))
        excerpts.append((f"{name}@{start / SAMPLE_RATE:.1f}s", wave[start : start + length].copy()))
    return excerpts


def _write_clips(folder: Path, waves: Sequence[np.ndarray]) -> Path:
    from orchestrion.audio.io import save_audio

    for i, wave in enumerate(waves):
        save_audio(folder / f"clip_{i:04d}.wav", np.asarray(wave, np.float32)[None], subtype="FLOAT")
    return folder


# ---------------------------------------------------------------------------------------------
# 1. Musika generation: FAD with baselines
# ---------------------------------------------------------------------------------------------


def musika_section(
    model_path: str | Path,
    train_audio: str | Path,
    heldout_audio: str | Path,
    *,
    scratch: Path,
    images: Path,
    clips: int = 32,
    clip_seconds: float = 10.0,
    densities: Sequence[float] = DEFAULT_DENSITIES,
    seed: int = 0,
    embedder: str = "spectral-stats",
    weights: str | Path | None = None,
    onset_clips: int = 8,
    log: Log = _quiet,
) -> Section:
    """FAD of ``clips`` generated clips of ``clip_seconds`` (per note-density value of a conditional
    model) against ``heldout_audio``, with the baselines of the module docstring.

    Clips are mono (the GAN's left channel decoded alone, as the random-latent baseline), so every
    set is made the same way. ``images`` is the folder of the report's pictures (``<report>/images/evaluation``).
    ``embedder`` names the FAD embedder, ``weights`` the local weight file of a learned one (VGGish).
    A note-density-conditioned model also gets a table of madmom onsets per second in the first
    ``onset_clips`` clips of each set, next to the same count in training and held-out clips.
    """
    from orchestrion.evaluation.baselines import latent_statistics, random_latent_audio, spectrum_matched_noise
    from orchestrion.evaluation.conditioning import onsets_per_second
    from orchestrion.evaluation.embedders import build_embedder, embedder_info
    from orchestrion.evaluation.fad import embed_folder, fad_from_embeddings, split_half
    from orchestrion.musika.generate import generate
    from orchestrion.musika.inference import spectrogram_comparison_png
    from orchestrion.musika.models import load_latent_gan

    started = time.perf_counter()
    info = embedder_info(embedder)
    embedding = build_embedder(embedder, weights, "cpu")  # a missing weight file fails before the work
    model = load_latent_gan(model_path, "cpu")
    rng = np.random.default_rng(seed)
    skipped = SkipReport()
    log(f"musika: {clips} training and held-out excerpts of {clip_seconds:g} s")
    train_clips = audio_excerpts(train_audio, clips, clip_seconds, rng, skipped)
    heldout_clips = audio_excerpts(heldout_audio, clips, clip_seconds, rng, skipped)
    root = scratch / "musika"
    conditional = "note_density" in model.config.conditions
    values = list(densities) if conditional else [None]
    sets: dict[str, Path] = {}
    generated_waves: dict[str, list[np.ndarray]] = {}
    generated_example = None
    for value in values:
        label = "generated" if value is None else f"generated, note density {value:g}"
        log(f"musika: {label}: {clips} clips")
        waves = [generate(model, clip_seconds, seed + i, note_density=value, mono=True)[0] for i in range(clips)]
        generated_waves[label] = waves
        if generated_example is None or value == 0.5:
            generated_example = (label, waves[0])
        sets[label] = _write_clips(root / f"generated_{len(sets)}", waves)
    log("musika: baselines")
    mean, std = latent_statistics(model.autoencoder, [wave for _, wave in train_clips])
    sets["random level-2 latents, decoded"] = _write_clips(
        root / "random_latents",
        [random_latent_audio(model.autoencoder, mean, std, clip_seconds, seed + i) for i in range(clips)],
    )
    sets["training audio (real vs real)"] = _write_clips(root / "train", [wave for _, wave in train_clips])
    noise_rng = np.random.default_rng(seed)
    sets["spectrum-matched noise"] = _write_clips(
        root / "noise", [spectrum_matched_noise(wave, noise_rng) for _, wave in heldout_clips]
    )

    log("musika: embedding and FAD")
    reference = embed_folder(heldout_audio, embedding, progress=False)
    reference_embeddings = reference.stacked()
    table = ReportTable(f"FAD against the held-out audio ({reference.n_excerpts} excerpts of 1 s from "
                        f"{_plural(len(reference.files), 'file')})", ["FAD ↓", "excerpts"])
    for label, folder in sets.items():
        embedded = embed_folder(folder, embedding, progress=False)
        table.add(label, [fad_from_embeddings(reference_embeddings, embedded.stacked()), embedded.n_excerpts])
    half_a, half_b, method = split_half(reference)
    if min(len(half_a), len(half_b)) >= 2:
        table.add(f"held-out split-half ({method})",
                  [fad_from_embeddings(half_a, half_b), min(len(half_a), len(half_b))])

    tables = [table]
    if conditional:
        log(f"musika: onsets in {onset_clips} clips per set")
        onsets = ReportTable(f"Note-density control: madmom onsets per second, mean over {onset_clips} clips of "
                             f"{clip_seconds:g} s", ["onsets/s"])
        for label, waves in generated_waves.items():
            onsets.add(label, [float(np.mean([onsets_per_second(w) for w in waves[:onset_clips]]))])
        for label, clips_of in (("training audio", train_clips), ("held-out audio", heldout_clips)):
            onsets.add(label, [float(np.mean([onsets_per_second(w) for _, w in clips_of[:onset_clips]]))])
        tables.append(onsets)

    held_label, held_wave = heldout_clips[0]
    picture = spectrogram_comparison_png(
        images / "musika_generated.png",
        [(f"{generated_example[0]}, seed {seed}", generated_example[1]), (f"held-out: {held_label}", held_wave)],
    )
    step = model_step(model_path)
    intro = [
        f"Latent GAN `{model_path}` (step {_step_text(step)}): {clips} mono clips of {clip_seconds:g} s"
        + (f" per note-density value ({', '.join(f'{v:g}' for v in values)}; other conditions at the middle of "
           "their range)" if conditional else "")
        + f", seeds {seed}…{seed + clips - 1}. Reference: `{heldout_audio}`.",
        f"Embedder `{info.name}`: {info.description}. Lower is closer to the held-out audio; FAD depends on the "
        "embedder and on the set size, so compare rows of equal size within this table.",
    ]
    notes = [
        "How to read it: *training audio* is a real-vs-real score (other recordings of the same kind of music: "
        "about the best a model can reach at this set size); *random level-2 latents* are Gaussian latents with "
        "the per-dimension mean and std of the training audio's latents, decoded by the GAN's own autoencoder "
        "(what the decoder makes without the GAN: a GAN must beat it to have learned anything); "
        "*spectrum-matched noise* has each held-out clip's exact magnitude spectrum and energy with random phase: "
        "the right long-term timbre and loudness with no notes, onsets or harmony (a model above it has not "
        "even the timbre right). The split-half row compares two halves of the held-out folder (its excerpts "
        "column gives the smaller half; fewer excerpts than the whole folder, so it is inflated by the small-set "
        "bias).",
    ]
    if conditional:
        notes.append(
            "The onsets table counts what the note-density curves of the training data were made from (madmom's "
            "onset detector): a model that follows its control makes more onsets per second at a higher note "
            "density. The training and held-out rows are real audio at its own density (the GAN's data may be "
            "another rendering of the corpus: see the model card)."
        )
    return Section(
        key="musika", title="Musika: generated audio (FAD)", intro=intro, tables=tables, notes=notes,
        images=[("spectrogram of a generated clip and a held-out excerpt", IMAGES / picture.name)],
        data={"clips": clips, "clip_seconds": clip_seconds, "note_densities": values, "seed": seed,
              "embedder": info.name, "latent_mean": mean.tolist(), "latent_std": std.tolist(),
              "skipped": skipped.skipped},
        models=[("latent GAN", str(model_path), step)], seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------
# 2. Autoencoder quality
# ---------------------------------------------------------------------------------------------


def write_excerpts(
    folder: str | Path, out: Path, files: int, seconds: float, skipped: SkipReport, min_rms_db: float | None = None
) -> Path:
    """The middle ``seconds`` (or all, if shorter) of ``files`` audio files spread evenly over the sorted
    files of ``folder``, as mono float WAVs in ``out``.

    With ``min_rms_db``, an excerpt quieter than that (RMS, dBFS) is skipped (and reported) and the next
    file in sorted order taken instead: the autoencoders never train on such audio (their crops are
    redrawn below -60 dBFS) and the front end's -100 dB power floor cannot represent it, so its score
    would measure the floor, not the model. The next file is one no other excerpt comes from.
    """
    from orchestrion.audio.io import collect_audio_files, load_audio, save_audio
    from orchestrion.audio.spectral import SAMPLE_RATE
    from orchestrion.errors import AudioError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: audio folder not found")
    paths = collect_audio_files(folder)
    chosen = sorted({round(i) for i in np.linspace(0, len(paths) - 1, min(files, len(paths)))})
    length = round(seconds * SAMPLE_RATE)
    written, tried = 0, set()
    for first in chosen:
        for index in range(first, len(paths)):
            if index in tried or (index != first and index in chosen):  # another excerpt's own file
                continue
            tried.add(index)
            try:
                wave = load_audio(paths[index], channels=1)[0]
            except AudioError as error:
                skipped.skip(paths[index], str(error))
                break
            start = max(0, (len(wave) - length) // 2)
            excerpt = wave[start : start + length]
            rms_db = 10 * np.log10(max(float(np.mean(np.square(excerpt, dtype=np.float64))), 1e-20))
            if min_rms_db is not None and rms_db < min_rms_db:
                skipped.skip(paths[index], f"excerpt at {rms_db:.1f} dBFS RMS, quieter than {min_rms_db:g}: "
                                           "the next file is scored instead")
                continue
            # numbered: files of the same name in different sub-folders stay apart
            save_audio(out / f"{index:04d}_{paths[index].stem}.wav", excerpt[None], subtype="FLOAT")
            written += 1
            break
    skipped.require_some(written, f"audio in {folder}")
    return out


_AE_COLUMNS = ("log_mel_distance", "multiscale_spectral_distance", "lsd_db")
LINEAR_CODE_FILES = 40  # at most this many training files fit the linear code (every 2nd of 80, ...)


def fit_linear_code(folder: str | Path, dims: int, skipped: SkipReport, *,
                    max_files: int = LINEAR_CODE_FILES) -> tuple[LinearFrameCode, int, int]:
    """A :class:`~orchestrion.evaluation.autoencoder_quality.LinearFrameCode` of ``dims`` dimensions fitted
    on the middle :data:`~orchestrion.evaluation.autoencoder_quality.LINEAR_CODE_SECONDS` of every k-th
    sorted audio file of ``folder`` (k = 1, or more to keep at most ``max_files``). Unreadable files are
    skipped (recorded in ``skipped``). Returns ``(code, files in the folder, k)``."""
    from orchestrion.audio.io import collect_audio_files, load_audio
    from orchestrion.errors import AudioError
    from orchestrion.evaluation.autoencoder_quality import LinearFrameCode

    paths = collect_audio_files(folder)
    every = math.ceil(len(paths) / max_files)

    def waves():
        for path in paths[::every]:
            try:
                yield load_audio(path, channels=1)[0]
            except AudioError as error:
                if str(path) not in {entry["file"] for entry in skipped.skipped}:  # one line per bad file
                    skipped.skip(path, str(error))

    return LinearFrameCode.fit(waves(), dims), len(paths), every


def _linear_code_scores(code: LinearFrameCode, excerpts: Path) -> list[dict]:
    """Per excerpt ``{"file", metric: value}`` of ``code``'s reconstructions with the input phase, over the
    excerpts :func:`~orchestrion.evaluation.autoencoder_quality.evaluate_autoencoder` scores too."""
    import torch

    from orchestrion.audio.io import collect_audio_files, load_audio
    from orchestrion.evaluation.spectral_metrics import MIN_SAMPLES, spectral_distances

    rows = []
    for path in collect_audio_files(excerpts):
        wave = load_audio(path, channels=1)[0]
        if len(wave) >= MIN_SAMPLES:
            distances = spectral_distances(torch.from_numpy(wave).double(), code.reconstruct(wave))
            rows.append({"file": path.name, **distances})
    return rows


def _logged_metrics(run: Path) -> list[dict]:
    """The rows of an autoencoder training run's ``metrics.jsonl`` (none for another kind of run, e.g.
    a GAN run whose autoencoder is studied, or an exported model; a torn last line is ignored)."""
    from orchestrion.checkpoint import resolve_checkpoint
    from orchestrion.musika.models import AUTOENCODER_KIND

    try:
        kind = json.loads((resolve_checkpoint(run) / "config.json").read_text()).get("kind")
    except (OSError, json.JSONDecodeError):
        return []
    metrics = run_directory(run) / "metrics.jsonl"
    if kind != AUTOENCODER_KIND or not metrics.is_file():
        return []
    rows = []
    for line in metrics.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def _training_curves_png(runs: dict[str, Path], path: Path) -> tuple[Path | None, list[str]]:
    """One panel per run with every logged loss against the step; returns the PNG (None without
    any metrics) and the names of runs without autoencoder training metrics."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from orchestrion.fileio import atomic_write_bytes

    logged = {name: rows for name, run in runs.items() if (rows := _logged_metrics(run))}
    missing = [name for name in runs if name not in logged]
    if not logged:
        return None, missing
    figure = Figure(figsize=(6 * len(logged), 4))
    axes = figure.subplots(1, len(logged), squeeze=False)[0]
    for axis, (name, rows) in zip(axes, logged.items(), strict=True):
        numeric = {k for row in rows for k, v in row.items() if isinstance(v, (int, float))}
        keys = sorted(numeric - {"step", "time", "lr"})
        for key in keys:
            points = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
            axis.plot(*zip(*points, strict=True), label=key, linewidth=1)
        if all(row[k] > 0 for row in rows for k in keys if isinstance(row.get(k), (int, float))):
            axis.set_yscale("log")
        axis.set(title=name, xlabel="step", ylabel="training loss")
        axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return atomic_write_bytes(path, buffer.getvalue()), missing


def _phase_network(model: TrainedAutoencoder) -> str:
    """How a phase-2 run makes its phase, for the run list: "own phase (separate U-Net, demodulated pairs)"."""
    config = model.level1.config
    if config.phase_decoder == "shared":
        return "own phase (shared output conv, angle)"
    form = {"angle": "clipped angle", "atan2": "atan2 pairs", "demodulated": "demodulated pairs"}[config.phase_output]
    return f"own phase (separate U-Net, {form})"


def autoencoder_section(
    runs: dict[str, str | Path],
    folders: dict[str, str | Path],
    *,
    scratch: Path,
    images: Path,
    files: int = 4,
    excerpt_seconds: float = 20.0,
    log: Log = _quiet,
) -> Section:
    """Reconstruction quality of each autoencoder run (``name → run``) on excerpts of each audio folder
    (``label → folder``, e.g. training / held-out / out-of-domain), with the phase baselines.

    A magnitude-only (level-1 phase-1) run is scored with the input's phase (``oracle_phase``); every
    run's magnitude is also scored with Griffin-Lim phase. The baselines depend only on the input and
    are computed once, with the first run's padding. With a ``"training"`` folder, a linear frame code
    of each run's level-1 latent size is fitted on that folder's files (:func:`fit_linear_code`,
    the middle of each) and scored with the input phase as more baselines.
    """
    from orchestrion.audio.io import collect_audio_files, load_audio
    from orchestrion.evaluation.autoencoder_quality import (
        FRONT_END,
        GRIFFIN_LIM,
        LINEAR_CODE_SECONDS,
        MODEL,
        MODEL_GRIFFIN_LIM,
        MODEL_ORACLE_PHASE,
        RANDOM_PHASE,
        evaluate_autoencoder,
        reconstruct_systems,
    )
    from orchestrion.musika.config import SILENCE_DB
    from orchestrion.musika.inference import spectrogram_comparison_png
    from orchestrion.musika.models import load_autoencoder

    if not runs or not folders:
        raise DataError("the autoencoder study needs at least one run and one audio folder")
    started = time.perf_counter()
    skipped = SkipReport()
    excerpt_dirs = {}
    for i, (label, folder) in enumerate(folders.items()):
        excerpt_dirs[label] = write_excerpts(folder, scratch / "autoencoder" / f"set_{i}", files, excerpt_seconds,
                                             skipped, min_rms_db=SILENCE_DB)
    models = {name: load_autoencoder(run, "cpu", accept_gan_run=True) for name, run in runs.items()}
    oracle = {name: not model.level1.config.with_phase for name, model in models.items()}
    linear_codes, linear_facts = {}, None  # latent size -> code, one per distinct level-1 latent size
    if "training" in folders:
        sizes = sorted({model.level1.config.latent_dim for model in models.values()})
        log(f"autoencoders: linear {'/'.join(map(str, sizes))}-dim frame codes on {folders['training']}")
        widest, folder_files, every = fit_linear_code(folders["training"], sizes[-1], skipped)
        linear_codes = {dims: widest.truncated(dims) for dims in sizes}
        linear_facts = {"dims": sizes, "seconds_per_file": LINEAR_CODE_SECONDS, "files": widest.waves,
                        "folder_files": folder_files, "every": every, "frames": widest.frames}
    headers = {"log_mel_distance": "log-mel ↓", "multiscale_spectral_distance": "MSD ↓", "lsd_db": "LSD dB ↓"}
    baseline_labels = {GRIFFIN_LIM: "exact magnitude + Griffin-Lim phase (32 it.)",
                       RANDOM_PHASE: "exact magnitude + random phase", FRONT_END: "front end round trip (ceiling)"}
    tables, per_file = [], {}
    for label, excerpts in excerpt_dirs.items():
        table = ReportTable(f"{label}: mean over {_plural(len(list(excerpts.iterdir())), 'excerpt')}",
                            [headers[c] for c in _AE_COLUMNS])
        baselines = None
        for index, (name, run) in enumerate(runs.items()):
            log(f"autoencoders: {name} on {label}")
            report = evaluate_autoencoder(excerpts, run, oracle_phase=oracle[name], baselines=index == 0,
                                          model_griffin_lim=True, device="cpu", progress=False)
            system = MODEL_ORACLE_PHASE if oracle[name] else MODEL
            row_label = f"{name} (magnitude + input phase)" if oracle[name] else name
            table.add(row_label, [report.mean[system][c] for c in _AE_COLUMNS])
            table.add(f"{name} magnitude + Griffin-Lim phase (32 it.)",
                      [report.mean[MODEL_GRIFFIN_LIM][c] for c in _AE_COLUMNS])
            per_file[f"{label}/{name}"] = report.files
            if index == 0:
                baselines = report.mean
        for dims, code in linear_codes.items():
            scores = _linear_code_scores(code, excerpts)
            table.add(f"linear {dims}-dim frame code (PCA of training frames) + input phase",
                      [float(np.mean([row[c] for row in scores])) for c in _AE_COLUMNS])
            per_file[f"{label}/linear {dims}-dim code"] = scores
        for system, row_label in baseline_labels.items():
            table.add(row_label, [baselines[system][c] for c in _AE_COLUMNS])
        tables.append(table)

    curves, without_metrics = _training_curves_png({name: Path(run) for name, run in runs.items()},
                                                   images / "autoencoder_training.png")
    label = "held-out" if "held-out" in excerpt_dirs else next(iter(excerpt_dirs))
    example = collect_audio_files(excerpt_dirs[label])[0]
    wave = load_audio(example, channels=1)[0]
    panels = [(f"reference ({label}: {example.stem})", wave)]
    for name, model in models.items():
        rebuilt = reconstruct_systems(wave, model, oracle_phase=oracle[name], baselines=False)
        panels.append((f"{name}" + (" (magnitude + input phase)" if oracle[name] else ""),
                       next(iter(rebuilt.waves.values())).numpy()))
    comparison = spectrogram_comparison_png(images / "autoencoder_spectrograms.png", panels)

    steps = {name: model_step(run) for name, run in runs.items()}
    intro = [
        "Runs: " + "; ".join(f"`{name}` = `{run}` (step {_step_text(steps[name])}, level {models[name].level}, "
                             + ("magnitude only" if oracle[name] else _phase_network(models[name])) + ")"
                             for name, run in runs.items()) + ".",
        f"Excerpts: the middle {excerpt_seconds:g} s of up to {files} files per folder ("
        + ", ".join(f"{name}: `{folder}`" for name, folder in folders.items()) + "), mono, 22.05 kHz. "
        "Distances are lower-is-better, ≈ 0 for a perfect reconstruction; log-mel distance is the headline. "
        "A magnitude-only (phase-1) run has no phase of its own: its main row uses the input's own phase, an "
        "upper bound of what its decoder would give with a learned phase (its audio, with Griffin-Lim phase, "
        "is its Griffin-Lim row below). The baselines use the input's exact "
        "magnitude: Griffin-Lim shows what a classical phase reconstruction reaches, random phase is the "
        "floor, the front end round trip (input → normalised features → input phase) the ceiling.",
        "Two more kinds of rows isolate where the error comes from. *NAME magnitude + Griffin-Lim phase* "
        "decodes the run's own magnitude with the classical phase algorithm (same 32 iterations and seed as "
        "the exact-magnitude baseline): next to a phase-2 run's row it compares the learned phase with "
        "Griffin-Lim on the same magnitude; next to the exact-magnitude Griffin-Lim row it shows how much of "
        "the error is the magnitude's. The *linear frame code* row is what the best linear code of the "
        "level-1 latent's size keeps of each STFT frame even with a perfect phase (the input's): a run "
        "below it makes use of its non-linearity and of its decoder's context across frames.",
    ]
    if linear_facts is not None:
        intro.append(
            f"The linear frame code: PCA of the normalised log-power frames (513 bins) of the middle "
            f"{LINEAR_CODE_SECONDS:g} s of {_plural(linear_facts['files'], 'file')} of the training folder ("
            + (f"one in {linear_facts['every']} of its {linear_facts['folder_files']}"
               if linear_facts["every"] > 1 else "all of them")
            + f"; {linear_facts['frames']} frames), its top "
            + " or ".join(map(str, linear_facts["dims"])) + " components kept (the runs' level-1 latent sizes).")
    images_list = [(f"reference and reconstructions of one {label} excerpt", IMAGES / comparison.name)]
    notes = []
    if curves is not None:
        images_list.insert(0, ("training curves", IMAGES / curves.name))
    if without_metrics:
        notes.append("No training curve for " + ", ".join(f"`{n}`" for n in without_metrics)
                     + " (not an autoencoder training run with its `metrics.jsonl`: an exported model or the "
                     "autoencoder stored in a latent-GAN run).")
    return Section(
        key="autoencoders", title="Musika autoencoders: reconstruction quality", intro=intro, tables=tables,
        notes=notes, images=images_list,
        data={"files": files, "excerpt_seconds": excerpt_seconds, "per_file": per_file,
              "oracle_phase": oracle, "linear_code": linear_facts, "skipped": skipped.skipped},
        models=[(f"autoencoder {name}", str(run), steps[name]) for name, run in runs.items()],
        seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------
# 3. Symbolic: SymphonyNet with baselines
# ---------------------------------------------------------------------------------------------


def heldout_sources(model_path: str | Path) -> list[str]:
    """The source names (relative to the tokenized MIDI folder) of the run's valid and test pieces."""
    from orchestrion.fileio import read_json
    from orchestrion.symphony.models import SPLIT_FILE

    path = Path(model_path)
    candidates = [path / SPLIT_FILE, run_directory(path) / SPLIT_FILE]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise DataError(f"{model_path}: no {SPLIT_FILE} (the run's data split) next to the model")
    record = read_json(found, "run split record", DataError)
    sources = record.get("sources") if isinstance(record, dict) else None
    pieces = [*record.get("valid", []), *record.get("test", [])] if isinstance(record, dict) else []
    if not isinstance(sources, dict) or not pieces:
        raise DataError(f"{found}: lists no held-out (valid/test) piece with its source file")
    names = [sources.get(str(piece)) for piece in pieces]
    return sorted({name for name in names if isinstance(name, str)})


def _match_sources(names: list[str], sources: list[str]) -> tuple[list[str], list[str]]:
    """The files of ``names`` (relative paths) that are the held-out ``sources``: by relative path, else by
    a unique file name. Returns (matched, not found)."""
    by_name: dict[str, list[str]] = {}
    for name in names:
        by_name.setdefault(Path(name).name, []).append(name)
    matched, missing, known = [], [], set(names)
    for source in sources:
        if source in known:
            matched.append(source)
        elif len(by_name.get(Path(source).name, [])) == 1:
            matched.append(by_name[Path(source).name][0])
        else:
            missing.append(source)
    return matched, missing


def _save_scores(folder: Path, scores: Sequence, prefix: str) -> Path:
    from orchestrion.symbolic.midi import save_midi

    folder.mkdir(parents=True, exist_ok=True)
    for i, score in enumerate(scores):
        save_midi(score, folder / f"{prefix}_{i:04d}.mid")
    return folder


def _load_scores(root: Path, names: Sequence[str], skipped: SkipReport) -> list:
    from orchestrion.symbolic.midi import load_midi

    scores = []
    for name in names:
        try:
            scores.append(load_midi(root / name))
        except MidiError as error:
            skipped.skip(name, str(error).removeprefix(f"{root / name}: "))
    return scores


SYMBOLIC_COLUMNS = ["mean OA ↑", "pitch-class JSD ↓", "instrument JSD ↓", "PC-transition rel. OA ↑", "MMR valid ↑"]


def symbolic_section(
    model_path: str | Path,
    midi_dir: str | Path,
    *,
    scratch: Path,
    images: Path,
    pieces: int = 16,
    bars: int = 16,
    seed: int = 0,
    ngram_order: int = 3,
    log: Log = _quiet,
) -> Section:
    """``pieces`` SymphonyNet pieces of ``bars`` bars against the run's held-out pieces (from ``midi_dir``),
    with the shuffled-pitch, n-gram and training-piece baselines (all sets cut to ``bars`` bars)."""
    from orchestrion.evaluation.baselines import NoteNGram, first_bars, shuffle_pitches
    from orchestrion.evaluation.symbolic_metrics import SCALAR_FEATURES, evaluate_symbolic
    from orchestrion.symbolic.pianoroll import plot_pianoroll
    from orchestrion.symbolic.preprocess import find_midi_files
    from orchestrion.symphony.generate import SamplingOptions, generate_midi
    from orchestrion.symphony.models import load_symphony

    started = time.perf_counter()
    midi_dir = Path(midi_dir)
    sources = heldout_sources(model_path)
    names = find_midi_files(midi_dir)
    held_names, missing = _match_sources(names, sources)
    if not held_names:
        raise DataError(f"{midi_dir}: holds none of the run's {len(sources)} held-out pieces "
                        f"(e.g. {sources[0]}); give the folder the run's pieces were tokenized from")
    held_set = set(held_names)
    train_names = [name for name in names if name not in held_set]
    if not train_names:
        raise DataError(f"{midi_dir}: holds no piece outside the run's held-out split to train the n-gram on")
    skipped = SkipReport()
    rng = np.random.default_rng(seed)
    # a piece silent for its first bars has nothing to compare (and no features)
    heldout = [cut for cut in (first_bars(s, bars) for s in _load_scores(midi_dir, held_names, skipped))
               if cut.note_num() > 0]
    training = _load_scores(midi_dir, train_names, skipped)
    if not heldout or not training:
        raise DataError(f"{midi_dir}: no readable held-out or training piece")

    log(f"symbolic: generating {pieces} pieces of {bars} bars")
    trained = load_symphony(model_path, "cpu")
    generations = generate_midi(trained.model, trained.bpe, SamplingOptions(seed=seed, bars=bars), n_samples=pieces)
    generated = [first_bars(g.score(), bars) for g in generations]  # a last note may sound past the last bar
    empty = sum(score.note_num() == 0 for score in generated)
    generated = [score for score in generated if score.note_num() > 0]
    if not generated:
        raise DataError(f"{model_path}: none of the {pieces} generated pieces has a note")

    log("symbolic: baselines")
    unigram = NoteNGram(1).fit(training)
    ngram = NoteNGram(ngram_order).fit(training)
    ngram_rng = np.random.default_rng(seed)
    root = scratch / "symbolic"
    sets = {
        "SymphonyNet": _save_scores(root / "generated", generated, "generated"),
        "held-out, pitches shuffled": _save_scores(root / "shuffled", [shuffle_pitches(s, rng) for s in heldout],
                                                   "shuffled"),
        f"{ngram_order}-gram note model": _save_scores(
            root / "ngram", [p for p in (ngram.sample(bars, ngram_rng) for _ in range(pieces)) if p.note_num() > 0],
            "ngram"),
        "training pieces (real vs real)": _save_scores(
            root / "train", [cut for cut in (first_bars(training[i], bars) for i in rng.permutation(len(training)))
                             if cut.note_num() > 0][:pieces], "train"),
    }
    reference_dir = _save_scores(root / "heldout", heldout, "heldout")
    log("symbolic: metrics")
    headline = ReportTable(f"against {len(heldout)} held-out pieces (first {bars} bars)", SYMBOLIC_COLUMNS)
    features = ReportTable("overlapping area per feature ↑ (1 = the held-out distribution)", [])
    reports = {}
    for label, folder in sets.items():
        report = evaluate_symbolic(reference_dir, folder, progress=False)
        reports[label] = report
        areas = [report.overlapping_area[name] for name, _, _ in SCALAR_FEATURES]
        headline.add(label, [
            float(np.nanmean(areas)) if np.isfinite(areas).any() else None,
            report.pitch_class_histogram_jsd, report.instrument_usage_jsd,
            report.relative_overlapping_area["pitch_class_transitions"], report.generated.mmr_valid_fraction,
        ])
    features.columns = list(sets)
    for name, label, _ in SCALAR_FEATURES:
        features.add(label, [reports[s].overlapping_area[name] for s in sets])
    likelihood = ReportTable(f"note models on the held-out pieces (first {bars} bars)", ["bits per note ↓"])
    likelihood.add("unigram", [unigram.bits_per_note(heldout)])
    likelihood.add(f"{ngram_order}-gram", [ngram.bits_per_note(heldout)])

    picture = plot_pianoroll(generated[0], images / "symphony_generated.png",
                             title=f"SymphonyNet, seed {seed}, {bars} bars")
    step = model_step(model_path)
    intro = [
        f"SymphonyNet `{model_path}` (step {_step_text(step)}): {pieces} pieces of {bars} bars "
        f"(seeds {seed}…{seed + pieces - 1}, temperature 1, top-p 1)"
        + (f"; {empty} had no note and are left out" if empty else "") + ". "
        f"Reference: the run's {len(sources)} held-out (valid + test) pieces from `{midi_dir}`"
        + (f" ({len(missing)} not found there)" if missing else "") + f", each cut to its first {bars} bars, "
        f"as is every compared piece. Metrics: `orchestrion evaluate symbolic` (see docs/evaluation-metrics.md).",
    ]
    notes = [
        f"How to read it: *mean OA* averages the overlapping areas of the {len(SCALAR_FEATURES)} per-piece "
        "features (pitch range, polyphony, note density, …: 1 = same distribution as the held-out pieces); the JSDs "
        "compare the pooled pitch-class and instrument distributions (0 = identical); *PC-transition rel. OA* "
        "is Yang & Lerch's relative measure on the pitch-class transition matrices, the one column that sees "
        "melodic order; *MMR valid* is the share of pieces SymphonyNet's representation can encode. "
        "*Pitches shuffled*: the held-out pieces with each track's pitches permuted among its notes: every "
        "per-piece statistic is unchanged, only the order is destroyed (a metric that scores it like the "
        f"held-out pieces cannot see melody). *n-gram*: an order-{ngram_order} Kneser–Ney model of each track's "
        "(pitch, duration, onset gap) notes, trained on the training pieces, tracks drawn independently with "
        "the tempo, metre and instruments of a random training piece (see `orchestrion.evaluation.baselines`); "
        "the likelihood table shows it learned more than note frequencies. *Training pieces*: real vs real, "
        "the best a model can expect at this set size.",
    ]
    return Section(
        key="symphony", title="SymphonyNet: generated pieces", intro=intro, tables=[headline, features, likelihood],
        notes=notes, images=[("piano roll of a generated piece", IMAGES / picture.name)],
        data={"pieces": pieces, "bars": bars, "seed": seed, "empty_pieces": empty, "heldout_pieces": len(heldout),
              "heldout_missing": missing, "training_pieces": len(training), "ngram_order": ngram_order,
              "skipped": skipped.skipped},
        models=[("SymphonyNet", str(model_path), step)], seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------
# The whole report
# ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    """The header facts, the sections that ran and the ones left out (with why)."""

    command: str
    date: str
    machine: str
    sections: list[Section] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # section title → reason

    def to_markdown(self) -> str:
        models = [model for section in self.sections for model in section.models]
        lines = [
            "# Evaluation report", "",
            "Written by `scripts/evaluation_report.py`; do not edit by hand (run the command below again).", "",
            f"- date: {self.date}", f"- machine: {self.machine}", f"- command: `{self.command}`", "",
        ]
        if models:
            lines += ["| model | path | training step |", "|---|---|---:|"]
            lines += [f"| {role} | `{path}` | {_step_text(step)} |" for role, path, step in models]
            lines.append("")
        lines += ["| section | wall time (s) |", "|---|---:|"]
        lines += [f"| {s.title} | {s.seconds:.1f} |" for s in self.sections]
        lines += [f"| {title} | left out: {reason} |" for title, reason in self.left_out.items()]
        text = "\n".join(lines) + "\n"
        for section in self.sections:
            text += "\n" + section.to_markdown() + "\n"
        for title, reason in self.left_out.items():
            text += f"\n## {title}\n\nLeft out: {reason}.\n"
        return text

    def to_json(self) -> dict:
        return {
            "header": {"command": self.command, "date": self.date, "machine": self.machine},
            **{section.key: section.to_json() for section in self.sections},
            "left_out": self.left_out,
        }

    def write(self, markdown: Path, json_path: Path) -> tuple[Path, Path]:
        """Write both files atomically."""
        atomic_write_text(markdown, self.to_markdown())
        atomic_write_text(json_path, json.dumps(self.to_json(), indent=1) + "\n")
        return markdown, json_path


def report_outputs(out_dir: Path) -> list[Path]:
    """Every file the report writes under ``out_dir`` (checked before the work)."""
    images = out_dir / IMAGES
    return [out_dir / "evaluation.md", out_dir / "evaluation.json",
            *(images / name for name in ("musika_generated.png", "autoencoder_training.png",
                                         "autoencoder_spectrograms.png", "symphony_generated.png"))]

