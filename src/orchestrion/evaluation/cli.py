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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --json file if it exists."),
) -> None:
    """Reconstruct every file with a Musika autoencoder; report multi-scale spectral distance,
    log-spectral distance (dB, lower is better) and SI-SDR (dB, higher is better), per file and mean.

    Unreadable or too short files are skipped (listed, and in report.jsonl next to --json). SI-SDR is
    undefined for a silent reference and shown as "undefined". An existing --json file is replaced
    only with --overwrite (checked before the evaluation runs).

    Example:

      orchestrion evaluate reconstruction held_out/ --model runs/ae_l1_p2 --json report.json
    """
    from rich.console import Console
    from rich.table import Table

    from orchestrion.evaluation.reconstruction import METRIC_NAMES, evaluate_reconstruction
    from orchestrion.fileio import SkipReport, check_output_path

    if json_out is not None:
        check_output_path(json_out, overwrite=overwrite, inputs=[reference_dir])
    report = evaluate_reconstruction(reference_dir, model, device=device)

    def shown(value: float | None, bold: bool = False) -> str:
        text = "undefined" if value is None else f"{value:.3f}"
        return f"[bold]{text}" if bold else text

    table = Table(title=f"reconstruction by {report.model}")
    table.add_column("file")
    headers = {"multiscale_spectral_distance": "MSD ↓", "lsd_db": "LSD dB ↓", "si_sdr_db": "SI-SDR dB ↑"}
    for name in METRIC_NAMES:
        table.add_column(headers[name], justify="right")
    for row in report.files:
        table.add_row(str(row["file"]), *(shown(row[name]) for name in METRIC_NAMES))
    table.add_row("[bold]mean", *(shown(report.mean[name], bold=True) for name in METRIC_NAMES))
    Console().print(table)
    if any(row["si_sdr_db"] is None for row in report.files):
        typer.echo("SI-SDR is undefined for a silent reference; the mean is over the other files")
    for entry in report.skipped:
        typer.secho(f"skipped {entry['file']}: {entry['reason']}", fg="yellow", err=True)
    if json_out is not None:
        report.to_json(json_out)
        typer.echo(f"report written to {json_out}")
        if report.skipped:
            skipped = SkipReport()
            skipped.skipped = report.skipped
            skipped.write(json_out.parent / "report.jsonl")
