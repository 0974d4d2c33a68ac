"""The small default models shipped inside the package, so a fresh install makes music offline.

Each bundled model is an ordinary weights-only checkpoint directory under
``orchestrion/models/<name>/`` (``config.json``, ``model.safetensors``, ``manifest.json`` with
the sha256 of every file, plus a ``MODEL_CARD.md``), written by ``orchestrion export`` from a run
trained by ``scripts/train_default_models.sh``. Loading one goes through the same verified loader
as any run, so a damaged install is refused by name instead of producing noise.

Commands that take ``--model`` use :func:`default_model_dir` when it is omitted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orchestrion.errors import CheckpointError

MODELS_DIR = Path(__file__).resolve().parent / "models"
MODEL_CARD = "MODEL_CARD.md"


@dataclass(frozen=True)
class BundledModel:
    """One shipped model: its folder name, what it does and the family of commands it serves."""

    name: str
    family: str  # "musika" (latent GAN + its autoencoder) or "symphony"
    description: str

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.name

    @property
    def installed(self) -> bool:
        return (self.path / "manifest.json").is_file()


BUNDLED: dict[str, BundledModel] = {
    model.name: model
    for model in (
        BundledModel(
            "musika-default",
            "musika",
            "latent GAN + two-level autoencoder (small presets), trained on rendered built-in corpora; "
            "conditional on note density and tempo",
        ),
        BundledModel(
            "symphony-default",
            "symphony",
            "SymphonyNet small (linear transformer + Music BPE), trained on the built-in MIDI corpora",
        ),
    )
}
FAMILIES = ("musika", "symphony")


def default_model_dir(family: str) -> Path:
    """The bundled model a command of ``family`` uses when ``--model`` is omitted.

    Raises :class:`CheckpointError` (one line, for the CLI) when this install has no such model.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose from {FAMILIES}")
    model = next(m for m in BUNDLED.values() if m.family == family)
    if not model.installed:
        raise CheckpointError(
            f"no bundled {family} model in this install ({model.path} is missing); "
            "pass --model RUN_DIR, or reinstall orchestrion"
        )
    return model.path


def describe(model: BundledModel) -> dict[str, object]:
    """Name, size on disk, parameter count and training step of a bundled model (reads no weights)."""
    info: dict[str, object] = {"name": model.name, "family": model.family, "path": str(model.path)}
    if not model.installed:
        info["status"] = "not installed"
        return info
    manifest = json.loads((model.path / "manifest.json").read_text())
    info["megabytes"] = round(sum(entry["bytes"] for entry in manifest["files"].values()) / 1e6, 1)
    header = json.loads((model.path / "config.json").read_text())
    info["kind"] = header["kind"]
    info["parameters"] = header.get("parameters")
    info["trained_steps"] = header.get("trained_steps")
    info["description"] = model.description
    return info


# Modules kept when shipping a run: what inference needs, not critics, optimisers or the raw generator.
_SHIPPED_MODULES = ("level1_encoder", "level1_decoder", "level2_encoder", "level2_decoder", "generator_ema", "model")
# Encoders stay float32: a GAN checks its autoencoder by a digest of the encoder weights, and latents
# encoded by the original run must stay valid for the shipped one.
_FULL_PRECISION = ("level1_encoder", "level2_encoder")
_RUN_FILES = ("music_bpe.json", "split.json")  # SymphonyNet: Music BPE merges and the run's data split


def export_model(run: str | Path, out: str | Path, *, half: bool = True, card: Path | None = None) -> Path:
    """Write the inference part of a trained run (or one of its checkpoints) as a weights-only checkpoint.

    ``half`` stores decoders, the generator and the transformer in float16 (encoders stay float32);
    the run's Music BPE file and data split and an optional model card are copied in and
    checksummed with the weights. Returns the written directory.
    """
    from orchestrion.checkpoint import export_checkpoint, load_checkpoint

    source = load_checkpoint(run)
    modules = [name for name in _SHIPPED_MODULES if name in source.module_names]
    if not modules:
        raise CheckpointError(f"{source.path}: holds none of the modules a model is used with ({source.module_names})")
    run_dir = Path(run)
    extras = {name: run_dir / name for name in _RUN_FILES if (run_dir / name).is_file()}
    if not extras:  # a checkpoint inside a run: RUN/checkpoints/step_N
        extras = {name: source.path.parent.parent / name for name in _RUN_FILES}
        extras = {name: path for name, path in extras.items() if path.is_file()}
    if card is not None:
        extras[MODEL_CARD] = Path(card)
    parameters = sum(tensor.numel() for name in modules for tensor in source.module_state(name).values())
    return export_checkpoint(
        source,
        out,
        modules=modules,
        half=[name for name in modules if half and name not in _FULL_PRECISION],
        extra_files=extras,
        header={"parameters": parameters, "trained_steps": source.step},
    )


def model_or_default(model: str | Path | None, family: str) -> Path:
    """``model`` as given, or the bundled model of ``family`` when the user left ``--model`` out."""
    return Path(model) if model is not None else default_model_dir(family)
