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
