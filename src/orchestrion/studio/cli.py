"""`orchestrion studio`: serve the web studio on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrion.studio.limits import limits_text


def studio(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to listen on."),
    musika_model: Path | None = typer.Option(
        None, "--musika-model", help="Default latent-GAN run for the audio and reconstruction tabs (default: bundled)."
    ),
    symphony_model: Path | None = typer.Option(
        None, "--symphony-model", help="Default SymphonyNet run for the symbolic tab (default: bundled)."
    ),
    device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Serve a local web app to play with the models: endless Musika audio, SymphonyNet scores, reconstruction.

    A missing model does not stop the studio: its tab says why, and any run directory can be typed
    into the page. Each request writes into its own temporary folder, removed when the server stops.

    Example:

      orchestrion studio

      orchestrion studio --port 8000 --musika-model runs/gan --symphony-model runs/symphony
    """
    import os
    import tempfile

    from orchestrion.errors import OrchestrionError

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        import gradio  # noqa: F401
    except ImportError:
        # no brackets in the message: the CLI prints errors as rich markup, which would eat "[studio]"
        raise OrchestrionError(
            "the studio needs gradio: pip install 'gradio>=6.0' (or orchestrion with its studio extra)"
        ) from None
    from orchestrion.device import resolve_device
    from orchestrion.studio.app import StudioSettings, launch
    from orchestrion.studio.models import model_default
    from orchestrion.studio.streaming import require_stream_encoder

    resolved = str(resolve_device(device))
    with tempfile.TemporaryDirectory(prefix="orchestrion-studio-") as workspace:
        settings = StudioSettings(model_default("musika", musika_model), model_default("symphony", symphony_model),
                                  Path(workspace), resolved)
        problems = [default.problem for default in (settings.musika, settings.symphony) if default.problem]
        try:
            require_stream_encoder()
        except OrchestrionError as error:
            problems.append(str(error))
        if host not in ("127.0.0.1", "localhost", "::1"):
            problems.append(f"listening on {host}: anyone who can reach this machine can use the studio and its models")
        for problem in problems:
            typer.echo(f"warning: {problem}", err=True)
        typer.echo(f"orchestrion studio on http://{host}:{port} (Ctrl-C stops it)", err=True)
        launch(settings, host=host, port=port)


studio.__doc__ = f"{studio.__doc__.rstrip()}\n\n    Limits: {limits_text()}.\n"
