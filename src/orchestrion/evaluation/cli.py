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
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Reconstruct every file with a Musika autoencoder; report multi-scale spectral distance,
    log-spectral distance (dB, lower is better) and SI-SDR (dB, higher is better), per file and mean.

    Example:

      orchestrion evaluate reconstruction held_out/ --model runs/ae_l1_p2 --json report.json
    """
    from rich.console import Console
    from rich.table import Table

    from orchestrion.evaluation.reconstruction import METRIC_NAMES, evaluate_reconstruction

    report = evaluate_reconstruction(reference_dir, model, device=device)
    table = Table(title=f"reconstruction by {report.model}")
    table.add_column("file")
    headers = {"multiscale_spectral_distance": "MSD ↓", "lsd_db": "LSD dB ↓", "si_sdr_db": "SI-SDR dB ↑"}
    for name in METRIC_NAMES:
        table.add_column(headers[name], justify="right")
    for row in report.files:
        table.add_row(str(row["file"]), *(f"{row[name]:.3f}" for name in METRIC_NAMES))
    table.add_row("[bold]mean", *(f"[bold]{report.mean[name]:.3f}" for name in METRIC_NAMES))
    Console().print(table)
    if json_out is not None:
        report.to_json(json_out)
        typer.echo(f"report written to {json_out}")


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
