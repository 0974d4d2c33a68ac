"""Facts about the running installation, for `orchestrion info` and bug reports."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterable, Iterator

from orchestrion import __version__
from orchestrion.errors import OrchestrionError


def cpu_description(flags_of_interest: Iterable[str] = ()) -> tuple[str, list[str]]:
    """The CPU's model name and which of ``flags_of_interest`` (e.g. ``avx512_bf16``, ``amx_tile``) it has.

    Benchmarks print both: the same code runs at very different speeds on the machines we use.
    """
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass  # not Linux: fall back to what the platform module knows
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return name, [flag for flag in flags_of_interest if flag in flags]


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
        "cpu": cpu_description()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch threads": str(torch.get_num_threads()),
        "device": device,
    }
    try:
        from orchestrion.audio.render import default_soundfont

        info["soundfont"] = str(default_soundfont())
    except (ImportError, OrchestrionError):
        info["soundfont"] = "not available"
    from orchestrion.pretrained import BUNDLED, describe

    for model in BUNDLED.values():
        details = describe(model)
        if "status" in details:
            info[f"model {model.name}"] = str(details["status"])
        else:
            info[f"model {model.name}"] = (
                f"{details['parameters']:,} parameters, {details['megabytes']} MB, "
                f"{details['trained_steps']} steps: {details['description']} ({details['path']})"
            )
    return info


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` torch intra-op threads, then restore the setting.

    Small models gain nothing from threads, and on a busy machine OpenMP barriers make two threads
    much slower than one: token-by-token sampling, tiny test models and the demo use one.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
