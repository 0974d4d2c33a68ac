"""The `orchestrion` command: one Typer app, thin commands over library functions.

Each concern owns its sub-app (``orchestrion.<area>.cli``); this module only mounts
them. Heavy imports (torch, music21, ...) happen inside commands, so ``--help`` is fast.
"""

from __future__ import annotations

import errno
import importlib
import sys
import time
import warnings
from pathlib import Path

import typer
from rich.console import Console

from orchestrion import __version__
from orchestrion.cli_style import tidy_typer_help
from orchestrion.errors import OrchestrionError

tidy_typer_help()

console = Console(stderr=True)

app = typer.Typer(
    name="orchestrion",
    help=(
        "Music generation toolkit: Musika-style audio and SymphonyNet-style symbolic music.\n\n"
        "Examples:\n\n"
        "  orchestrion info\n\n"
        "  orchestrion corpus list\n\n"
        "  orchestrion render piece.mid piece.wav"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# (module, attribute, name, kind): sub-apps are mounted as groups, functions as commands.
_MOUNTS: list[tuple[str, str, str, str]] = [
    ("orchestrion.musika.cli", "app", "musika", "group"),
    ("orchestrion.symphony.cli", "app", "symphony", "group"),
    ("orchestrion.corpora.cli", "app", "corpus", "group"),
    ("orchestrion.evaluation.cli", "app", "evaluate", "group"),
    ("orchestrion.audio.cli", "render", "render", "command"),
    ("orchestrion.studio.cli", "studio", "studio", "command"),
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"orchestrion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Music generation toolkit."""


@app.command()
def info() -> None:
    """Print versions, torch threads, compute device and where bundled assets live.

    Example:

      orchestrion info
    """
    from orchestrion.system import system_info

    for key, value in system_info().items():
        typer.echo(f"{key:>18}: {value}")


@app.command()
def inspect(
    checkpoint: str = typer.Argument(..., help="A checkpoint directory or a run directory (its latest checkpoint)."),
) -> None:
    """Verify a checkpoint and print its kind, step, config and parameter counts.

    Examples:

      orchestrion inspect runs/musika-l1

      orchestrion inspect runs/musika-l1/checkpoints/step_00001000
    """
    import json

    from orchestrion.checkpoint import load_checkpoint
    from orchestrion.config import config_to_dict

    ckpt = load_checkpoint(checkpoint)
    typer.echo(f"checkpoint: {ckpt.path}")
    typer.echo(f"kind:       {ckpt.kind}")
    if (ckpt.path / "state.json").is_file():
        typer.echo(f"step:       {ckpt.training_state()['step']}")
    for name in ckpt.module_names:
        count = sum(t.numel() for t in ckpt.module_state(name).values())
        typer.echo(f"module:     {name} ({count:,} values)")
    typer.echo(json.dumps(config_to_dict(ckpt.config), indent=2))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Folder for the demo (index.html, audio, pictures)."),
    seconds: float = typer.Option(60.0, "--seconds", help="Length of the Musika audio in seconds."),
    bars: int = typer.Option(16, "--bars", help="Bars of the generated SymphonyNet piece."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice (same seed, same demo)."),
    musika_model: Path | None = typer.Option(
        None, "--musika-model", help="A latent-GAN run instead of the bundled one."
    ),
    symphony_model: Path | None = typer.Option(
        None, "--symphony-model", help="A SymphonyNet run instead of the bundled one."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the files of an earlier demo in --out."),
) -> None:
    """Make music with the bundled models and write a page that plays and shows it (8 s on 2 CPU cores).

    Musika: 60 s of stereo audio while the note-density condition sweeps from sparse to dense.

    SymphonyNet: a multi-track piece from scratch, rendered with the soundfont; a built-in piece re-orchestrated.

    Each comes with a spectrogram or piano roll; OUT/index.html plays and shows them all.

    Examples:

      orchestrion demo --out demo

      orchestrion demo --out demo2 --seconds 20 --bars 8 --seed 3
    """
    from orchestrion.demo import run_demo

    start = time.perf_counter()
    page = run_demo(
        out, seconds=seconds, bars=bars, seed=seed, overwrite=overwrite, musika_model=musika_model,
        symphony_model=symphony_model, on_step=lambda label: console.print(f"[bold]{label}[/bold] ..."),
    )
    typer.echo(f"wrote {page} in {time.perf_counter() - start:.0f} s; open it in a browser")


@app.command()
def export(
    run: Path = typer.Argument(..., help="A trained run directory or one of its checkpoint directories."),
    out: Path = typer.Option(..., "--out", help="New folder for the weights-only model."),
    half: bool = typer.Option(True, "--fp16/--fp32", help="Store decoders, generator and transformer in float16."),
    card: Path | None = typer.Option(None, "--card", help="A MODEL_CARD.md to ship (checksummed with the weights)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
) -> None:
    """Write the inference part of a run (no optimiser state, no critic) as a small checkpoint to share.

    The result loads wherever --model takes a run, and is how the bundled default models are made.

    Examples:

      orchestrion export runs/gan --out my-musika-model

      orchestrion export runs/symphony --out my-symphony-model --fp32 --card MODEL_CARD.md
    """
    from orchestrion.pretrained import export_model

    if out.exists():
        if out.resolve() == run.resolve() or out.resolve() in run.resolve().parents:
            raise OrchestrionError(f"{out}: holds the run being exported; write the model to another folder")
        if not (out / "manifest.json").is_file():
            raise OrchestrionError(f"{out}: exists and is not a model folder; give a new folder")
        if not overwrite:
            raise OrchestrionError(f"{out}: exists; pass --overwrite to replace it")
    written = export_model(run, out, half=half, card=card)
    size = sum(f.stat().st_size for f in written.iterdir()) / 1e6
    typer.echo(f"wrote {written} ({size:.1f} MB)")


def _mount() -> None:
    for module_name, attribute, name, kind in _MOUNTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # that area has no commands in this build
            raise
        target = getattr(module, attribute)
        if kind == "group":
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


_mount()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings meant for the user (``UserWarning``) as one yellow line; others keep Python's format."""
    if issubclass(category, UserWarning):
        console.print(f"[yellow]warning:[/] {message}", soft_wrap=True, highlight=False)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def _os_error_message(error: OSError) -> str:
    """``path: reason`` for a failed file operation (read-only folder, full disk, missing parent)."""
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    reason = error.strerror or str(error)
    hints = {
        errno.ENOSPC: "the disk is full: free some space or write elsewhere",
        errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
        errno.EROFS: "the file system is read-only: write to another folder",
        errno.EACCES: "check the folder's permissions or write elsewhere",
    }
    hint = hints.get(error.errno)
    where = " -> ".join(paths) if paths else "a file operation"
    return f"{where}: {reason}" + (f" ({hint})" if hint else "")


def main() -> None:
    """Console-script entry point: user errors and failed file operations become one red line and exit code 2."""
    warnings.showwarning = _show_warning
    try:
        app()
    except OrchestrionError as error:
        console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        sys.exit(2)
    except OSError as error:
        console.print(f"[bold red]error:[/] {_os_error_message(error)}", soft_wrap=True, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
