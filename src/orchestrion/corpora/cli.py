"""`orchestrion corpus ...`: list, export and render the built-in corpora."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    no_args_is_help=True,
    help="Built-in corpora from installed packages (music21): list, export to MIDI, render to audio.",
)


@app.command("list")
def list_command() -> None:
    """List the built-in corpora with their size, origin and licence.

    Example:

      orchestrion corpus list
    """
    from rich.console import Console
    from rich.table import Table

    from orchestrion.corpora import list_corpora

    table = Table(show_lines=True)
    for column in ("name", "pieces", "description", "source", "licence"):
        table.add_column(column, overflow="fold")
    for info in list_corpora():
        table.add_row(info.name, str(info.pieces), info.description, info.source, info.licence)
    Console().print(table)


@app.command()
def export(
    name: str = typer.Argument(..., help="Corpus name, see `orchestrion corpus list`."),
    out_dir: Path = typer.Argument(..., help="Folder for the .mid files (created if missing)."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Export only the first N pieces."),
) -> None:
    """Export a corpus to multi-track MIDI files (one per piece; existing files are skipped).

    Example:

      orchestrion corpus export bach-chorales data/chorales --limit 20
    """
    from orchestrion.corpora import export_corpus

    paths = export_corpus(name, out_dir, limit=limit, progress=True)
    typer.echo(f"{len(paths)} MIDI files in {out_dir}")


@app.command()
def render(
    name: str = typer.Argument(..., help="Corpus name, see `orchestrion corpus list`."),
    out_dir: Path = typer.Argument(..., help="Folder for the .wav files; MIDI goes to OUT_DIR/midi."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Render only the first N pieces."),
    sample_rate: int = typer.Option(22050, "--sample-rate", "-r", help="Output sample rate in Hz."),
) -> None:
    """Export a corpus to MIDI and render every piece to stereo WAV with the default SoundFont.

    Example:

      orchestrion corpus render string-quartets data/quartets-audio --limit 5
    """
    from orchestrion.corpora import render_corpus

    paths = render_corpus(name, out_dir, limit=limit, sample_rate=sample_rate, progress=True)
    typer.echo(f"{len(paths)} WAV files in {out_dir}")
