"""`orchestrion musika ...`: train the autoencoders, encode and decode audio, reconstruct files."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Musika: spectrogram autoencoders and latent audio generation.")


@contextlib.contextmanager
def _bar(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar over ``total`` files; yields the function that advances it by one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def _announcer(phase: str):
    """A callback saying on stderr which checkpoint a command loaded (path, level, phase, step) and
    where its audio's phase comes from."""
    from orchestrion.musika.inference import describe_model

    def announce(model) -> None:
        typer.echo(f"using {describe_model(model, phase)}", err=True)

    return announce


def _say_skipped(skipped, report: Path) -> None:
    """Warn on stderr how many input files a folder job skipped and where the reasons are."""
    if skipped.skipped:
        typer.secho(f"{len(skipped.skipped)} file(s) skipped, reasons in {report}", fg="yellow", err=True)


GENERATION_PHASE_HELP = (
    "learned (the decoder's phase, Musika) or griffin-lim (32 Griffin-Lim rounds on the decoded magnitude: "
    "3x the fp32 decoding time, 7x the bf16 one; it rebuilds CPU-trained small autoencoders' audio more closely, "
    "but the bundled model's generated music scored a worse FAD with it: docs/guide-musika.md)."
)
PHASE_HELP = (
    "Where the audio's phase comes from: learned (the decoder's, a phase-2 model), griffin-lim (32 Griffin-Lim "
    "rounds on the decoded magnitude: any model, a phase-1 one too; slower), or auto: learned where the model "
    "has it, else griffin-lim."
)


@app.command("train-ae")
def train_ae(
    data_dir: Path = typer.Argument(..., help="Folder of audio files (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, metrics.jsonl, loss_curve.png)."),
    level: int = typer.Option(1, "--level", min=1, max=2, help="Autoencoder level: 1 (spectrogram) or 2."),
    phase: int = typer.Option(1, "--phase", min=1, max=2, help="1 = reconstruction, 2 = adversarial."),
    preset: str = typer.Option(
        "techno",
        "--preset",
        help="Model sizes: piano, techno, small (CPU-sized) or debug (tiny). Phase 2 and --resume keep the sizes "
        "of their run.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    steps: int | None = typer.Option(
        None,
        "--steps",
        min=1,
        help="Total steps (default: 1M level 1, 400k level 2; small: phase 1/2 20k/1k level 1, 5k/1k level 2).",
    ),
    init: Path | None = typer.Option(None, "--init", help="Phase 2: the phase-1 run to start from."),
    level1: Path | None = typer.Option(None, "--level1", help="Level 2: the finished level-1 (phase-2) run."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Global batch size, split over DDP processes (default: the preset's)."
    ),
    lambda_rec: float | None = typer.Option(
        None, "--lambda-rec", min=0.0, help="Phase 2: weight of the L1 magnitude term (default: the preset's)."
    ),
    lr_schedule: str | None = typer.Option(
        None, "--lr-schedule",
        help="A new run's learning rate: 'constant' (the paper) or 'cosine' (down to 0 at --steps). Default: the "
        "preset's, cosine for small level 1 phase 1, else constant.",
    ),
    lambda_phase: float | None = typer.Option(
        None, "--lambda-phase", min=0.0,
        help="Phase 2: weight of the phase-derivative term (instantaneous frequency + group delay; default: "
        "the preset's, 5 for small level 1, else 0).",
    ),
    phase_decoder: str | None = typer.Option(
        None, "--phase-decoder",
        help="Level 1 phase 2: 'shared' (one U-Net makes magnitude and phase, the reference) or 'separate' "
        "(a second U-Net makes the phase; the magnitude stays exactly as phase 1 left it). Default: the run's.",
    ),
    phase_output: str | None = typer.Option(
        None, "--phase-output",
        help="Level 1 phase 2, separate phase U-Net: 'angle' (one output per bin, clipped: phase/π, the "
        "reference), 'atan2' (the angle of a real, imaginary pair per bin) or 'demodulated' (that angle relative "
        "to each bin's centre-frequency rotation). Default: the run's.",
    ),
    workers: int = typer.Option(2, "--workers", min=0, help="DataLoader worker processes."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", min=1, help="Steps between checkpoints."),
    seed: int = typer.Option(0, "--seed", help="Seed of weights and data order."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda, cuda:1, ..."),
) -> None:
    """Train one level and phase of the Musika autoencoder on a folder of audio.

    Phase 2 starts from a finished phase-1 run (--init) and writes a new run directory.

    Level 2 copies the frozen level-1 model (--level1) into its checkpoints: its run is self-contained.

    Under torchrun the same command trains data-parallel (DDP); on CUDA with mixed precision.

    Example:

      orchestrion musika train-ae music/ --out runs/l1p1 --level 1 --phase 1 --preset piano

      orchestrion musika train-ae music/ --out runs/l1p2 --level 1 --phase 2 --init runs/l1p1

      orchestrion musika train-ae music/ --out runs/l2p1 --level 2 --phase 1 --level1 runs/l1p2 --preset piano

      torchrun --nproc_per_node=4 $(which orchestrion) musika train-ae music/ --out runs/l1p1 --preset techno
    """
    from orchestrion.musika.train import train_autoencoder

    metrics = train_autoencoder(
        data_dir, out, level=level, phase=phase, preset=preset, steps=steps, resume=resume, init=init,
        level1=level1, batch_size=batch_size, lambda_rec=lambda_rec, lambda_phase=lambda_phase,
        lr_schedule=lr_schedule, phase_decoder=phase_decoder, phase_output=phase_output, workers=workers,
        checkpoint_every=checkpoint_every, seed=seed, device=device,
    )
    if metrics and os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        typer.echo("final " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))


@app.command("encode")
def encode(
    source: Path = typer.Argument(..., help="An audio file or a folder of audio files."),
    model: Path | None = typer.Option(
        None, "--model", help="Autoencoder or latent-GAN run directory (default: the bundled model)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for the latent files (.safetensors + index.json)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace latent files that already exist in --out."),
) -> None:
    """Encode audio of any length to Musika latents (level 1: 86 frames/s; level 2: 10.8 or 5.4 frames/s).

    Each audio file gets OUT/<its path under SOURCE>.safetensors (a/b.wav -> a/b.wav.safetensors), so
    names never collide. Existing latent files are refused unless --overwrite is given (checked before
    any work). Unreadable audio files are skipped and listed in OUT/report.jsonl.

    Example:

      orchestrion musika encode music/ --model runs/l2p2 --out latents/
    """
    from orchestrion.audio.io import collect_audio_files
    from orchestrion.fileio import SkipReport
    from orchestrion.musika.inference import SKIP_REPORT, encode_files
    from orchestrion.pretrained import model_or_default

    model = model_or_default(model, "musika")
    skipped = SkipReport()
    written = 0
    with _bar("encode", len(collect_audio_files(source))) as advance:
        for _ in encode_files(source, model, out, device=device, overwrite=overwrite, skipped=skipped):
            written += 1
            advance()
    typer.echo(f"{written} latent file(s) written to {out}")
    _say_skipped(skipped, out / SKIP_REPORT)


@app.command("decode")
def decode(
    latent_dir: Path = typer.Argument(..., help="A folder of latent files (or one .safetensors file)."),
    model: Path | None = typer.Option(
        None, "--model", help="The autoencoder (or GAN) run that made the latents (default: the bundled model)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for the decoded WAV files."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="fp32 (within 1e-5 of the peak), or bf16: ~2x faster on CPUs with bf16 units, ~40 dB SNR.",
    ),
    phase: str = typer.Option("auto", "--phase", help=PHASE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace WAV files that already exist in --out."),
) -> None:
    """Decode Musika latent files back to 22.05 kHz WAV audio of the original length.

    Audio is streamed to disk block by block, so latents of any length decode in bounded memory.
    a/b.wav.safetensors becomes OUT/a/b.wav. Existing WAVs are refused unless --overwrite is given.
    Latent files that cannot be used (corrupt, another level, made by another model) are skipped and
    listed in OUT/report.jsonl.

    Examples:

      orchestrion musika decode latents/ --model runs/l2p2 --out decoded/

      orchestrion musika decode latents/ --model runs/l2p2 --out decoded/ --precision bf16

      orchestrion musika decode latents/ --model runs/l1p1 --out decoded/ --phase griffin-lim
    """
    from orchestrion.fileio import SkipReport
    from orchestrion.musika.codec import latent_files
    from orchestrion.musika.inference import SKIP_REPORT, decode_files
    from orchestrion.pretrained import model_or_default

    model = model_or_default(model, "musika")
    total = len(latent_files(latent_dir)) if latent_dir.is_dir() else 1
    skipped = SkipReport()
    written = 0
    with _bar("decode", total) as advance:
        for _ in decode_files(
            latent_dir, model, out, device=device, precision=precision, phase=phase, overwrite=overwrite,
            on_model=_announcer(phase), skipped=skipped,
        ):
            written += 1
            advance()
    typer.echo(f"{written} audio file(s) written to {out}")
    _say_skipped(skipped, out / SKIP_REPORT)


@app.command("reconstruct")
def reconstruct(
    in_path: Path = typer.Argument(..., help="Input audio file."),
    out_path: Path = typer.Argument(..., help="Output audio file (.wav or .flac)."),
    model: Path | None = typer.Option(
        None, "--model", help="Autoencoder or latent-GAN run directory (default: the bundled model)."
    ),
    png: bool = typer.Option(False, "--png", help="Also write OUT.png: spectrograms of input vs reconstruction."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    phase: str = typer.Option("auto", "--phase", help=PHASE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT_PATH (and OUT.png) if they exist."),
) -> None:
    """Encode and decode one file (a quick listening test of a trained autoencoder).

    OUT_PATH may never be IN_PATH; an existing OUT_PATH is replaced only with --overwrite. A phase-1
    model (magnitude only) reconstructs with Griffin-Lim phase; --phase griffin-lim also gives it to a
    phase-2 model, to hear its magnitude apart from its learned phase.

    Examples:

      orchestrion musika reconstruct song.wav song_rec.wav --model runs/l1p2 --png

      orchestrion musika reconstruct song.wav song_gl.wav --model runs/l1p2 --phase griffin-lim
    """
    from orchestrion.musika.inference import reconstruct_file
    from orchestrion.pretrained import model_or_default

    model = model_or_default(model, "musika")
    for path in reconstruct_file(
        in_path, out_path, model, png=png, device=device, phase=phase, overwrite=overwrite,
        on_model=_announcer(phase),
    ):
        typer.echo(f"wrote {path}")


@app.command("train-gan")
def train_gan(
    latent_dir: Path = typer.Argument(..., help="Latent-chunk folder made by `orchestrion musika prepare-latents`."),
    out: Path = typer.Option(
        ..., "--out", help="Run directory (checkpoints, previews/, metrics.jsonl, loss_curve.png)."
    ),
    autoencoder: Path | None = typer.Option(
        None, "--autoencoder", help="The level-2 autoencoder run that made the latents (default: the manifest's)."
    ),
    preset: str = typer.Option(
        "small", "--preset", help="Model sizes: techno, piano (paper sizes), small (CPU-trainable) or debug (tiny)."
    ),
    conditional: bool = typer.Option(
        False, "--conditional", help="Condition on every curve of the folder (note_density, tempo)."
    ),
    conditions: str | None = typer.Option(
        None, "--conditions", help="Condition on these curves only, comma-separated (e.g. note_density)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Total steps (default 1.5M, the paper's)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Global batch size, split over DDP processes (default: the preset's)."
    ),
    beta1: float | None = typer.Option(None, "--beta1", help="Adam β1 (paper 0.5, the reference code 0.9)."),
    penalty: str | None = typer.Option(
        None, "--gradient-penalty", help="r1 (true R1, default) or reference ((‖∇D‖ − 1)², the released code's)."
    ),
    penalty_weight: float | None = typer.Option(
        None, "--gradient-penalty-weight", min=0.0,
        help="Weight of the penalty (paper sizes 10; small and debug 0.001: at 10 the critic stops learning).",
    ),
    upsampling: str | None = typer.Option(
        None, "--upsampling",
        help="Generator up-sampling: transposed (reference; paper sizes) or nearest (repeat + conv; small, debug).",
    ),
    workers: int = typer.Option(0, "--workers", min=0, help="DataLoader worker processes."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", min=1, help="Steps between checkpoints."),
    preview_every: int = typer.Option(
        5000, "--preview-every", min=0, help="Steps between previews (WAV + spectrogram in previews/); 0 = none."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of weights, coordinates and data order."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda, cuda:1, ..."),
) -> None:
    """Train the Musika latent GAN on stereo level-2 latents.

    The run directory keeps a copy of the autoencoder, so it alone is the --model of `musika generate`.

    Under torchrun the same command trains data-parallel (DDP); --batch-size stays the global batch.

    Example:

      orchestrion musika train-gan latents/ --out runs/gan --preset small --steps 30000

      orchestrion musika train-gan latents/ --out runs/gan-cond --conditions note_density --preset piano

      orchestrion musika train-gan latents/ --out runs/gan --resume --steps 60000
    """
    from orchestrion.errors import DataError
    from orchestrion.musika.latent_data import CONDITION_NAMES, read_manifest
    from orchestrion.musika.train_gan import train_latent_gan

    if conditions is not None:
        chosen = tuple(name.strip() for name in conditions.split(",") if name.strip())
    elif conditional:
        chosen = tuple(name for name in CONDITION_NAMES if name in read_manifest(latent_dir)["conditions"])
        if not chosen:
            raise DataError(f"{latent_dir}: --conditional, but the folder holds no conditioning curves")
    else:
        chosen = ()
    metrics = train_latent_gan(
        latent_dir, out, autoencoder=autoencoder, preset=preset, conditions=chosen, steps=steps, resume=resume,
        batch_size=batch_size, beta1=beta1, gradient_penalty=penalty, gradient_penalty_weight=penalty_weight,
        upsampling=upsampling, workers=workers,
        checkpoint_every=checkpoint_every, preview_every=preview_every, seed=seed, device=device,
    )
    if metrics and os.environ.get("RANK", "0") == "0":
        typer.echo("final " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))


@app.command("prepare-latents")
def prepare_latents(
    audio_dir: Path = typer.Argument(..., help="Folder of audio files (searched recursively), or one file."),
    model: Path | None = typer.Option(
        None, "--model",
        help="Level-2 autoencoder run, or a GAN run holding one (the GAN's latent space; default: the bundled model).",
    ),
    out: Path = typer.Option(..., "--out", help="New folder for the latent chunks (manifest.json, report.jsonl)."),
    chunk_frames: int = typer.Option(512, "--chunk-frames", min=1, help="Level-2 frames per chunk (paper: 512)."),
    min_frames: int = typer.Option(
        256, "--min-frames", min=1,
        help="Skip files with fewer real latent frames: one training window, 2·seq_len (techno 256, piano 128).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (for the encoder)."),
    jobs: int = typer.Option(1, "-j", "--jobs", min=1, help="Processes analysing onsets and tempo (the slow part)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished (or differently set up) folder."),
) -> None:
    """Encode a folder of audio into stereo level-2 latent chunks with note-density and tempo curves.

    The training data of `orchestrion musika train-gan`. Mono files are duplicated to left and right;
    only latent frames of real audio are kept; short or unreadable files are skipped and listed in
    OUT/report.jsonl. Onsets (madmom CNN) and tempo (madmom RNN + comb filter) take roughly half a
    second per second of audio on one CPU core; -j N runs N of those analyses in parallel. A killed run
    continues where it stopped when run again.

    Example:

      orchestrion musika prepare-latents music/ --model runs/l2p2 --out latents/ -j 4

      orchestrion musika prepare-latents piano/ --model runs/piano-l2 --out piano-latents/ --min-frames 128

      orchestrion musika prepare-latents my_music/ --out latents/ --min-frames 128   # the bundled autoencoder
    """
    from orchestrion.audio.io import collect_audio_files
    from orchestrion.musika.latent_data import REPORT_NAME
    from orchestrion.musika.latent_prepare import prepare_latents as prepare
    from orchestrion.pretrained import model_or_default

    with _bar("prepare-latents", len(collect_audio_files(audio_dir))) as advance:
        manifest = prepare(
            audio_dir, model_or_default(model, "musika"), out, chunk_frames=chunk_frames, min_frames=min_frames,
            device=device, jobs=jobs,
            overwrite=overwrite, on_file=lambda _source: advance(),
        )
    sources = {chunk["source"] for chunk in manifest["chunks"]}
    skipped = sum(1 for line in (out / REPORT_NAME).read_text(encoding="utf-8").splitlines() if line.strip())
    seconds = sum(chunk["frames"] for chunk in manifest["chunks"]) / manifest["frames_per_second"]
    typer.echo(
        f"{len(manifest['chunks'])} chunks from {len(sources)} files ({seconds / 60:.1f} min of latents, "
        f"counting overlapping last chunks) written to {out}; {skipped} files skipped (see {out / REPORT_NAME})"
    )


@app.command("generate")
def generate(
    model: Path | None = typer.Option(
        None, "--model", help="Latent-GAN run directory, it holds its autoencoder (default: the bundled model)."
    ),
    seconds: float = typer.Option(..., "--seconds", help="Length of the music in seconds (exact; up to hours)."),
    out: Path = typer.Option(..., "--out", help="Output audio file, .wav or .flac (16-bit, 22.05 kHz)."),
    seed: int = typer.Option(0, "--seed", min=0, help="The piece: same seed, same music."),
    note_density: str | None = typer.Option(
        None, "--note-density", help="Note density 0..1, or a CSV curve 'seconds,value' (conditional models)."
    ),
    tempo: str | None = typer.Option(
        None, "--tempo", help="Tempo in BPM, or a CSV curve 'seconds,value' (conditional models)."
    ),
    truncation: float = typer.Option(0.885, "--truncation", help="Truncation of style and anchors: lower is tamer."),
    mono: bool = typer.Option(False, "--mono", help="One channel (the left latent channel; half the decoding)."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16 on CPUs with bf16 units, else fp32), fp32 or bf16."
    ),
    phase: str = typer.Option("learned", "--phase", help=GENERATION_PHASE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    png: bool = typer.Option(False, "--png", help="Also write OUT.png: spectrogram of the first two minutes."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Generate stereo music of any length from a trained latent GAN (written as it is made).

    Conditioning values are constants or curves: a CSV file with the header 'seconds,value',
    interpolated linearly over time.

    Examples:

      orchestrion musika generate --model runs/gan --seconds 60 --out song.wav --seed 7

      orchestrion musika generate --model runs/piano-gan --seconds 600 --out piano.flac --note-density density.csv

      orchestrion musika generate --model runs/gan --seconds 60 --out song.wav --phase griffin-lim
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from orchestrion.device import resolve_device
    from orchestrion.fileio import check_output_path
    from orchestrion.musika.generate import conditioning_curves, generate_to_file
    from orchestrion.musika.models import load_latent_gan
    from orchestrion.pretrained import model_or_default

    model = model_or_default(model, "musika")
    check_output_path(out, overwrite=overwrite, inputs=[model])
    gan = load_latent_gan(model, resolve_device(device))
    conditioning_curves(gan, note_density, tempo)  # bad values or CSV files fail before the progress bar shows
    columns = (TextColumn("[bold]generate"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
               TimeRemainingColumn())
    with Progress(*columns) as bar:
        task = bar.add_task("generate", total=seconds)
        written = generate_to_file(
            gan, seconds, out, seed, note_density=note_density, tempo=tempo, truncation=truncation, mono=mono,
            precision=precision, phase=phase, png=png,
            progress=lambda done, total: bar.update(task, completed=done / 22050),
        )
    for path in written:
        typer.echo(f"wrote {path}")


@app.command("stream")
def stream(
    model: Path | None = typer.Option(
        None, "--model", help="Latent-GAN run directory, it holds its autoencoder (default: the bundled model)."
    ),
    out: str = typer.Option(..., "--out", help="'-' for standard output, or an audio file (.wav/.flac)."),
    seconds: float | None = typer.Option(None, "--seconds", help="Stop after this many seconds (default: never)."),
    seed: int = typer.Option(0, "--seed", min=0, help="The piece: same seed, same music."),
    note_density: str | None = typer.Option(None, "--note-density", help="Note density 0..1 or a CSV curve."),
    tempo: str | None = typer.Option(None, "--tempo", help="Tempo in BPM or a CSV curve."),
    truncation: float = typer.Option(0.885, "--truncation", help="Truncation of style and anchors."),
    mono: bool = typer.Option(False, "--mono", help="One channel."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16 on CPUs with bf16 units, else fp32), fp32 or bf16."
    ),
    audio_format: str = typer.Option(
        "wav", "--format", help="With --out -: wav (16-bit, endless header) or raw (s16le, 22050 Hz, interleaved)."
    ),
    block_seconds: float = typer.Option(1.0, "--block-seconds", help="Audio per write (latency vs overhead)."),
    phase: str = typer.Option("learned", "--phase", help=GENERATION_PHASE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Stream endless music, block by block, to standard output or a file (Ctrl-C ends it cleanly).

    The audio equals `musika generate` with the same seed. Messages go to standard error, so
    standard output carries only audio. First audio comes ≈ 0.1-0.2 s after the model is loaded
    (full-size techno, 2 CPU cores); the latency is printed at the end.

    Examples:

      orchestrion musika stream --model runs/gan --out - | aplay

      orchestrion musika stream --model runs/gan --out - --format raw | ffplay -f s16le -ar 22050 -ac 2 -

      orchestrion musika stream --model runs/gan --out live.wav --seconds 3600
    """
    import sys

    from orchestrion.device import resolve_device
    from orchestrion.musika.generate import MusikaStream, stream_to, stream_to_file
    from orchestrion.musika.models import load_latent_gan
    from orchestrion.pretrained import model_or_default

    model = model_or_default(model, "musika")
    if out != "-":
        from orchestrion.errors import OrchestrionError
        from orchestrion.fileio import check_output_path

        if audio_format != "wav":
            raise OrchestrionError(f"--format {audio_format} is for --out - only; a file's type follows its suffix")
        check_output_path(out, overwrite=overwrite, inputs=[model])
    gan = load_latent_gan(model, resolve_device(device))
    live = MusikaStream(
        gan, seed, note_density=note_density, tempo=tempo, truncation=truncation, mono=mono, precision=precision,
        block_seconds=block_seconds, phase=phase,
    )
    if out == "-":
        written = stream_to(live, sys.stdout.buffer, seconds=seconds, audio_format=audio_format)
    else:
        written = stream_to_file(live, Path(out), seconds=seconds)
    latency = live.first_audio_seconds or 0.0
    typer.echo(f"streamed {written / 22050:.1f} s (first audio after {latency:.2f} s)", err=True)
