"""The one place a ``--device`` option becomes a ``torch.device``, for every command and the trainer."""

from __future__ import annotations

import re

import torch

from orchestrion.errors import OrchestrionError

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N."
_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` → ``cuda:<local_rank>`` when CUDA is available, else CPU; ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` are checked against this machine.

    Raises :class:`OrchestrionError` (one line, what to do) for an unknown name, a CUDA device
    on a torch without CUDA or with fewer GPUs.
    """
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(name)
    if match is None:
        raise OrchestrionError(f"--device {device!r}: unknown device; choose {DEVICE_HELP}")
    if not torch.cuda.is_available():
        raise OrchestrionError(
            f"--device {device!r}: this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu or auto"
        )
    index = int(match.group(1)) if match.group(1) is not None else local_rank
    if index >= torch.cuda.device_count():
        raise OrchestrionError(
            f"--device {device!r}: there is no GPU {index} (this machine has {torch.cuda.device_count()})"
        )
    return torch.device(f"cuda:{index}")
