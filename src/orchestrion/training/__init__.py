"""The one training loop shared by every model."""

from orchestrion.training.trainer import SampleKey, StepContext, Trainer, TrainerConfig

__all__ = ["SampleKey", "StepContext", "Trainer", "TrainerConfig"]
