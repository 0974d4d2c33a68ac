"""The one training loop shared by every model."""

from orchestrion.training.trainer import (
    SampleKey,
    StepContext,
    Trainer,
    TrainerConfig,
    per_process_batch,
    world_size,
)

__all__ = ["SampleKey", "StepContext", "Trainer", "TrainerConfig", "per_process_batch", "world_size"]
