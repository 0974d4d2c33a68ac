"""Which models the studio uses, and loading them once for every tab that asks.

A tab names its model by folder (a run directory, one of its checkpoints, or an exported model);
an empty field means the default the server was started with (``--musika-model`` /
``--symphony-model``, else the bundled model). A missing default is not fatal: the tab says why
and the rest of the studio works.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from orchestrion.errors import CheckpointError

FAMILIES = ("musika", "symphony")
CACHED_MODELS = 4  # loaded models kept in memory (least recently used ones are dropped)


@dataclass(frozen=True)
class ModelDefault:
    """The default model of one family: a folder, or why there is none."""

    family: str
    path: Path | None
    problem: str | None = None  # the message a tab shows when ``path`` is None

    @property
    def field_text(self) -> str:
        return "" if self.path is None else str(self.path)


def model_default(family: str, given: Path | None) -> ModelDefault:
    """``given`` (from the command line) if set, else the bundled model of ``family``, else the reason why not."""
    from orchestrion.pretrained import default_model_dir

    if given is not None:
        return ModelDefault(family, Path(given))
    try:
        return ModelDefault(family, default_model_dir(family))
    except CheckpointError:
        return ModelDefault(family, None, f"no bundled {family} model in this install: start the studio with "
                                          f"--{family}-model RUN_DIR, or type a run directory here")


def chosen_folder(text: str | None, default: ModelDefault) -> Path:
    """The folder a tab's model field names (empty: the default). Raises CheckpointError when there is none."""
    text = (text or "").strip()
    if text:
        return Path(text).expanduser()
    if default.path is None:
        raise CheckpointError(default.problem or f"no {default.family} model given")
    return default.path


class ModelCache:
    """Loaded models by (kind, checkpoint directory), shared by all tabs; thread-safe.

    Keyed by the resolved checkpoint, so a run that keeps training is reloaded when it writes a
    newer checkpoint. Loading happens once even when several tabs ask at the same moment.
    """

    def __init__(self, device: str | torch.device = "cpu", capacity: int = CACHED_MODELS) -> None:
        self.device = torch.device(device)
        self.capacity = capacity
        self._models: OrderedDict[tuple[str, Path], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, kind: str, folder: Path, load: Callable[[Path], Any]) -> Any:
        from orchestrion.checkpoint import resolve_checkpoint

        checkpoint = resolve_checkpoint(folder).resolve()
        key = (kind, checkpoint)
        with self._lock:  # one load at a time: two tabs asking for one model load it once
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model = load(checkpoint)
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model

    def latent_gan(self, folder: Path):
        """A Musika latent GAN (:class:`~orchestrion.musika.models.TrainedLatentGAN`)."""
        from orchestrion.musika.models import load_latent_gan

        return self._get("latent_gan", folder, lambda path: load_latent_gan(path, self.device))

    def autoencoder(self, folder: Path):
        """A Musika autoencoder: an autoencoder run, or the autoencoder stored in a latent-GAN run."""
        from orchestrion.musika.models import GAN_KIND, load_autoencoder

        if checkpoint_kind(folder) == GAN_KIND:
            return self.latent_gan(folder).autoencoder
        return self._get("autoencoder", folder, lambda path: load_autoencoder(path, self.device))

    def symphony(self, folder: Path):
        """A SymphonyNet model with its Music BPE (:class:`~orchestrion.symphony.models.TrainedSymphony`)."""
        from orchestrion.symphony.models import load_symphony

        return self._get("symphony", folder, lambda path: load_symphony(path, self.device))


def checkpoint_kind(folder: Path) -> str:
    """The kind recorded in a model folder's checkpoint (reads its config header only)."""
    import json

    from orchestrion.checkpoint import resolve_checkpoint

    checkpoint = resolve_checkpoint(folder)
    try:
        return json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))["kind"]
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{folder}: not a model folder ({error})") from error
