"""Facts about the running installation, for `orchestrion info` and bug reports."""

from __future__ import annotations

import platform
from pathlib import Path

from orchestrion import __version__
from orchestrion.errors import OrchestrionError

BUNDLED_MODELS_DIR = Path(__file__).parent / "models"


def system_info() -> dict[str, str]:
    """Versions, threads, device and asset locations as printable strings."""
    import numpy
    import torch

    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    info = {
        "orchestrion": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch threads": str(torch.get_num_threads()),
        "device": device,
        "bundled models": (
            str(BUNDLED_MODELS_DIR)
            if BUNDLED_MODELS_DIR.is_dir() and any(BUNDLED_MODELS_DIR.iterdir())
            else "none in this version"
        ),
    }
    try:
        from orchestrion.audio.render import default_soundfont

        info["soundfont"] = str(default_soundfont())
    except (ImportError, OrchestrionError):
        info["soundfont"] = "not available"
    return info
