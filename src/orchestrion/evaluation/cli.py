"""`orchestrion evaluate ...`: quality measures of trained models."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Measure the quality of trained models.")


@app.command("reconstruction")
def reconstruction_command(
    reference_dir: Path = typer.Argument(..., help="Folder of reference audio files (searched recursively)."),
    model: Path = typer.Option(..., "--model", help="Musika autoencoder run directory (level 1 or 2)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    oracle_phase: bool = typer.Option(
        False, "--oracle-phase", help="Score a magnitude-only (phase-1) model with the input's own phase."
    ),
    baselines: bool = typer.Option(
        True, "--baselines/--no-baselines", help="Also score exact magnitude + Griffin-Lim / random phase."
    ),
    griffin_lim_on_model: bool = typer.Option(
        False, "--griffin-lim-on-model", help="Also score the model's magnitude with Griffin-Lim phase (32 it.)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --json file if it exists."),
) -> None:
    """Reconstruct every file with a Musika autoencoder and score it next to phase baselines: multi-resolution
    log-mel distance (the headline), multi-scale spectral distance, log-spectral distance (all ≈ 0 for a
    perfect reconstruction, floors 80 dB under each file's peak), SI-SDR where the phase is the input's,
    and the decoder's feature L1. Baselines: exact magnitude + Griffin-Lim (32 iterations) or random
    phase, and the front end's own round trip.

    A phase-1 model has no phase: score it with --oracle-phase (its magnitude, the input's phase)
    and/or --griffin-lim-on-model; a phase-2 model is refused with --oracle-phase. --griffin-lim-on-model
    adds, for any model, its decoder's magnitude with Griffin-Lim phase: learned against classical
    phase on the same magnitude, and for a phase-1 model the audio `musika reconstruct` makes of it.

    Unreadable or too short files are skipped (listed, and in report.jsonl next to --json). SI-SDR is
    undefined for a silent reference and shown as "undefined". An existing --json file is replaced
    only with --overwrite (checked before the evaluation runs).

    Example:

      orchestrion evaluate reconstruction held_out/ --model runs/ae_l1_p2 --json report.json

      orchestrion evaluate reconstruction held_out/ --model runs/ae_l1_p1 --oracle-phase

      orchestrion evaluate reconstruction held_out/ --model runs/ae_l1_p1 --griffin-lim-on-model

      orchestrion evaluate reconstruction held_out/ --model runs/ae_l1_p2 --griffin-lim-on-model
    """
    from rich.console import Console

    from orchestrion.evaluation.autoencoder_quality import PHASE_MATCHED, evaluate_autoencoder, report_tables
    from orchestrion.fileio import SkipReport, check_output_path

    if json_out is not None:
        check_output_path(json_out, overwrite=overwrite, inputs=[reference_dir])
    report = evaluate_autoencoder(
        reference_dir,
        model,
        oracle_phase=oracle_phase,
        baselines=baselines,
        model_griffin_lim=griffin_lim_on_model,
        device=device,
    )
    console = Console()
    for table in report_tables(report):
        console.print(table)
    if any(
        row[system]["si_sdr_db"] is None for row in report.files for system in report.systems if system in PHASE_MATCHED
    ):
        typer.echo("SI-SDR is undefined for a silent reference; the mean is over the other files")
    for entry in report.skipped:
        console.print(f"[yellow]skipped {entry['file']}: {entry['reason']}[/]", soft_wrap=True)
    if json_out is not None:
        report.to_json(json_out)
        typer.echo(f"report written to {json_out}")
        if report.skipped:
            skips = SkipReport()
            skips.skipped = report.skipped
            typer.echo(f"skipped files listed in {skips.write(json_out.parent / 'report.jsonl')}")


@app.command("fad")
def fad_command(
    reference_dir: Path = typer.Argument(..., help="Folder of reference audio (searched recursively)."),
    generated_dir: Path = typer.Argument(..., help="Folder of generated audio (searched recursively)."),
    embedder: str = typer.Option(
        "spectral-stats",
        "--embedder",
        help="spectral-stats (offline, not comparable with published FAD), vggish or vggish-pca (need --weights).",
    ),
    weights: Path | None = typer.Option(None, "--weights", help="Local safetensors weight file of a learned embedder."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (learned embedders only)."),
) -> None:
    """Fréchet Audio Distance between two folders of audio, on 1 s excerpts (as in the Musika paper),
    with the split-half FAD of the reference set as its scale. Unreadable files are skipped and listed.

    Example:

      orchestrion evaluate fad held_out/ generated/ --json fad.json

      orchestrion evaluate fad held_out/ generated/ --embedder vggish --weights vggish.safetensors
    """
    from rich.console import Console

    from orchestrion.evaluation.fad import evaluate_fad
    from orchestrion.fileio import check_output_path

    if json_out is not None:
        check_output_path(json_out, overwrite=overwrite, inputs=[p for p in (weights,) if p is not None])
    report = evaluate_fad(reference_dir, generated_dir, embedder=embedder, weights=weights, device=device)
    console = Console()
    for skipped in report.skipped:
        console.print(f"[yellow]skipped ({skipped['set']}) {skipped['file']}: {skipped['reason']}[/]", soft_wrap=True)
    console.print(report.summary(), soft_wrap=True, markup=False)
    if json_out is not None:
        report.to_json(json_out)
        typer.echo(f"report written to {json_out}")


@app.command("symbolic")
def symbolic_command(
    reference_dir: Path = typer.Argument(..., help="Folder of reference MIDI files (searched recursively)."),
    generated_dir: Path = typer.Argument(..., help="Folder of generated MIDI files (searched recursively)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full report (per-piece features) as JSON."),
    markdown_out: Path | None = typer.Option(None, "--markdown", help="Write the report as Markdown."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --json/--markdown files."),
) -> None:
    """Objective symbolic metrics of two MIDI folders (Yang & Lerch 2020): pitch-class histogram and
    entropy, pitch range, polyphony, note density, inter-onset intervals, instrument usage, MMR
    grammar validity, and the overlapping area of each feature's distribution between the sets.
    Unreadable MIDI files are skipped and listed.

    Example:

      orchestrion evaluate symbolic held_out_midi/ generated_midi/ --markdown symbolic.md --json symbolic.json
    """
    from rich.console import Console
    from rich.markdown import Markdown

    from orchestrion.errors import OrchestrionError
    from orchestrion.evaluation.symbolic_metrics import evaluate_symbolic
    from orchestrion.fileio import check_output_path

    outputs = [p for p in (json_out, markdown_out) if p is not None]
    if len(outputs) == 2 and json_out.resolve() == markdown_out.resolve():
        raise OrchestrionError(f"{json_out}: --json and --markdown name the same file")
    for path in outputs:
        check_output_path(path, overwrite=overwrite)
    report = evaluate_symbolic(reference_dir, generated_dir)
    markdown = report.to_markdown()
    Console().print(Markdown(markdown))
    if json_out is not None:
        report.to_json(json_out)
        typer.echo(f"report written to {json_out}")
    if markdown_out is not None:
        from orchestrion.fileio import atomic_write_text

        atomic_write_text(markdown_out, markdown)
        typer.echo(f"report written to {markdown_out}")
@app.command("symphony")
def symphony_command(
    model: Path = typer.Argument(..., help="SymphonyNet run directory (orchestrion symphony train --out)."),
    data: Path | None = typer.Option(None, "--data", help="Token dataset (default: the one the run trained on)."),
    split: str = typer.Option("test", "--split", help="test, valid or train pieces of the run's split, or all "
                                                     "pieces of --data."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the numbers as JSON here."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Bits per field (event, duration, track, instrument) and instrument accuracy of a SymphonyNet
    model on held-out pieces (argmax of each track's averaged instrument logits vs its program).

    Example:

      orchestrion evaluate symphony runs/sym --split test --json test_metrics.json
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from orchestrion.fileio import atomic_write_text, check_output_path
    from orchestrion.symphony.metrics import evaluate_run

    if json_out is not None:
        check_output_path(json_out, overwrite=True)
    metrics = evaluate_run(model, data, split=split, batch_size=batch_size, device=device)
    table = Table(title=f"{model}: {metrics['pieces']} {split} piece(s), {metrics['tracks']} tracks")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for field in ("event", "duration", "track", "instrument"):
        table.add_row(f"{field} bits per token", f"{metrics[f'{field}_bits']:.3f}")
    table.add_row("instrument accuracy (per track)", f"{metrics['instrument_accuracy']:.1%}")
    Console().print(table)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(metrics, indent=1) + "\n")
        typer.echo(f"metrics written to {json_out}")


@app.command("density")
def density_command(
    model: Path | None = typer.Option(
        None, "--model", help="Conditional latent-GAN run (default: the bundled musika-default model)."
    ),
    densities: str = typer.Option("0.1,0.5,0.9", "--densities", help="Comma-separated note densities in 0..1."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Pieces generated per density."),
    seconds: float = typer.Option(20.0, "--seconds", min=1.0, help="Length of each piece."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the numbers as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """Does a conditional Musika GAN follow its note-density control? Generates --seeds pieces at each
    density and counts onsets per second with madmom, the detector that made the training curves.

    Example:

      orchestrion evaluate density --model runs/gan-cond --densities 0.1,0.3,0.5,0.7,0.9 --json density.json
    """
    import dataclasses
    import json

    from orchestrion.errors import OrchestrionError
    from orchestrion.evaluation.conditioning import note_density_response
    from orchestrion.fileio import atomic_write_text, check_output_path
    from orchestrion.musika.models import load_latent_gan
    from orchestrion.pretrained import model_or_default

    try:
        values = [float(part) for part in densities.split(",") if part.strip()]
    except ValueError as error:
        raise OrchestrionError(f"--densities must be numbers separated by commas, got {densities!r}") from error
    if not values or any(not 0.0 <= value <= 1.0 for value in values):
        raise OrchestrionError(f"--densities must be values in 0..1, got {densities!r}")
    if json_out is not None:
        check_output_path(json_out, overwrite=overwrite)
    gan = load_latent_gan(model_or_default(model, "musika"))
    response = note_density_response(gan, values, seeds=seeds, seconds=seconds, progress=True)
    typer.echo(response.summary())
    if json_out is not None:
        atomic_write_text(json_out, json.dumps({"model": str(gan.path), **dataclasses.asdict(response),
                                                "spearman": response.spearman()}, indent=2) + "\n")
        typer.echo(f"written to {json_out}")
