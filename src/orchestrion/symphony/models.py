"""Loading a trained SymphonyNet run for inference (generation, orchestration, evaluation).

A run directory holds everything needed: the weights and :class:`SymphonyTrainingConfig` in its
checkpoints, and ``music_bpe.json`` when the model was trained on Music BPE tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from orchestrion.checkpoint import load_checkpoint, resolve_checkpoint
from orchestrion.errors import CheckpointError
from orchestrion.symbolic.mmr_vocab import BASE_EVENT_VOCAB_SIZE
from orchestrion.symbolic.music_bpe import MusicBPE
from orchestrion.symphony.config import SymphonyConfig, SymphonyTrainingConfig
from orchestrion.symphony.model import SymphonyModel

MODEL_MODULE = "model"  # the module name inside checkpoints
BPE_FILE = "music_bpe.json"  # copy of the dataset's Music BPE merges in the run directory
SPLIT_FILE = "split.json"  # the run's seeded train/valid/test split


@dataclass
class TrainedSymphony:
    """A trained model in eval mode with what its tokens need: Music BPE merges and the grammar."""

    model: SymphonyModel
    config: SymphonyConfig
    training: SymphonyTrainingConfig
    bpe: MusicBPE | None
    path: Path  # the checkpoint directory the weights came from

    @property
    def tempo_tokens(self) -> bool:
        return self.config.tempo_tokens


def load_symphony(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedSymphony:
    """Load a SymphonyNet run directory (its latest checkpoint) or one checkpoint directory.

    Raises :class:`CheckpointError` for a missing directory, another kind of model, weights that
    do not fit the config, or a Music BPE model whose ``music_bpe.json`` is missing.
    """
    run_dir = Path(run_dir)
    ckpt_dir = resolve_checkpoint(run_dir)
    ckpt = load_checkpoint(ckpt_dir)
    if not isinstance(ckpt.config, SymphonyTrainingConfig):
        raise CheckpointError(f"{run_dir}: holds a {ckpt.kind!r} model, not a SymphonyNet model")
    config = ckpt.config.model
    bpe = None
    if config.event_vocab_size > BASE_EVENT_VOCAB_SIZE:
        # a run directory, or a checkpoint inside one (RUN/checkpoints/step_N)
        candidates = [run_dir / BPE_FILE, ckpt.path.parent.parent / BPE_FILE]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise CheckpointError(f"{run_dir}: the model uses Music BPE tokens but {BPE_FILE} is missing")
        bpe = MusicBPE.load(found)
        if bpe.vocab_size != config.event_vocab_size:
            raise CheckpointError(f"{found}: {bpe.vocab_size} event ids, the model has {config.event_vocab_size}")
    model = SymphonyModel(config)
    ckpt.load_into(MODEL_MODULE, model)
    return TrainedSymphony(model.to(device).eval(), config, ckpt.config, bpe, ckpt.path)
