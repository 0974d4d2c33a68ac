"""Configs of the SymphonyNet linear transformer and of its training recipe (spec §4, §5).

::

    SymphonyConfig()                          # reference size: d 512, 16 heads, 12 layers, FFN 2048 (≈ 39 M)
    SymphonyConfig.preset("small")            # CPU-trainable model (d 256, 8 heads, 6 layers, windows of 1024)
    SymphonyConfig.preset("debug")            # tiny, builds in milliseconds (tests)
    SymphonyTrainingConfig.preset_config("debug", model=...)   # a whole training run

The vocabulary sizes default to the fixed MMR layout of :mod:`orchestrion.symbolic.mmr_vocab`
(event 527 without Music BPE, +1 per merge; duration 36, track 44, instrument 133). The position
table sizes ``max_rel_pos``/``max_mea_pos`` are measured on a training split by
:mod:`orchestrion.symphony.data`; the defaults are the reference's shipped values (70, 533).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from orchestrion.config import register_config
from orchestrion.errors import ConfigError
from orchestrion.symbolic.mmr_vocab import (
    BASE_EVENT_VOCAB_SIZE,
    DURATION_VOCAB_SIZE,
    INSTRUMENT_VOCAB_SIZE,
    TRACK_VOCAB_SIZE,
)

FIELDS = ("event", "duration", "track", "instrument")  # the four output heads, in row-column order

_MODEL_PRESETS: dict[str, dict] = {
    "full": {},
    "small": {"d_model": 256, "n_heads": 8, "n_layers": 6, "d_ff": 1024, "window": 1024},
    "debug": {"d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 64, "window": 256, "max_rel_pos": 40,
              "max_mea_pos": 64},
}


@register_config("symphony.model")
@dataclass(frozen=True)
class SymphonyConfig:
    """Decoder-only causal linear transformer over MMR rows ``[evt, dur, trk, ins, rel, mea]``."""

    d_model: int = 512
    n_heads: int = 16  # head dim d_model / n_heads = 32 in the reference
    n_layers: int = 12
    d_ff: int = 2048  # GELU feed-forward width (4 · d_model)
    dropout: float = 0.1  # embeddings, attention output, feed-forward
    layer_norm_eps: float = 1e-5  # post-LN blocks and the encoder's final LayerNorm
    output_norm_eps: float = 1e-6  # the reference's extra LayerNorm before the heads
    attention_eps: float = 1e-6  # added to the linear-attention normaliser (fast-transformers' value)
    event_vocab_size: int = BASE_EVENT_VOCAB_SIZE  # 527 + number of Music BPE merges
    duration_vocab_size: int = DURATION_VOCAB_SIZE
    track_vocab_size: int = TRACK_VOCAB_SIZE
    instrument_vocab_size: int = INSTRUMENT_VOCAB_SIZE
    max_rel_pos: int = 70  # largest note-order index (rel) the table holds; row 0 = ignored
    max_mea_pos: int = 533  # largest measure index (mea) the table holds; row 0 = ignored
    tempo_tokens: bool = True  # the token grammar has a tempo step after the chord (MMRConfig.tempo_tokens)
    window: int = 4096  # training window in steps (rows); generation slides past it
    chunk_size: int = 64  # steps per block of the chunked parallel attention (speed/memory only)

    def __post_init__(self) -> None:
        positive = ("d_model", "n_heads", "n_layers", "d_ff", "max_rel_pos", "max_mea_pos", "window", "chunk_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"SymphonyConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"SymphonyConfig.d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"SymphonyConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.event_vocab_size < BASE_EVENT_VOCAB_SIZE:
            raise ConfigError(
                f"SymphonyConfig.event_vocab_size={self.event_vocab_size} is below the MMR base vocabulary "
                f"({BASE_EVENT_VOCAB_SIZE})"
            )

    @classmethod
    def preset(cls, name: str, **overrides) -> SymphonyConfig:
        """A named size: ``full`` (reference, ≈ 39 M with 700 merges), ``small`` (CPU), ``debug`` (tests)."""
        if name not in _MODEL_PRESETS:
            raise ConfigError(f"unknown SymphonyNet preset {name!r}; choose from {sorted(_MODEL_PRESETS)}")
        return cls(**{**_MODEL_PRESETS[name], **overrides})

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def vocab_sizes(self) -> dict[str, int]:
        """Output size of each head, keyed like :data:`FIELDS`."""
        return {
            "event": self.event_vocab_size,
            "duration": self.duration_vocab_size,
            "track": self.track_vocab_size,
            "instrument": self.instrument_vocab_size,
        }


# The reference recipe (§5) is 210 k updates of 128 × 4096 steps; smaller models train on far less
# data, so their schedules are shortened and their learning rates raised, as is usual for small
# transformers. batch_size is always the GLOBAL batch (sequences per update over all processes).
_TRAINING_PRESETS: dict[str, dict] = {
    "full": {"learning_rate": 3e-4, "warmup_steps": 5000, "total_steps": 210_000, "batch_size": 128},
    "small": {"learning_rate": 1e-3, "warmup_steps": 200, "total_steps": 4000, "batch_size": 16},
    "debug": {"learning_rate": 3e-3, "warmup_steps": 10, "total_steps": 200, "batch_size": 4},
}


@register_config("symphony.training")
@dataclass(frozen=True)
class SymphonyTrainingConfig:
    """Everything that defines a SymphonyNet training run: the model plus the §5 recipe.

    Saved in every checkpoint of the run; ``--resume`` continues with exactly these values, except
    ``total_steps``, which ``--steps`` may move to train a run further.
    """

    RESUME_MAY_CHANGE: ClassVar[tuple[str, ...]] = ("total_steps",)

    model: SymphonyConfig = SymphonyConfig()
    learning_rate: float = 3e-4  # peak, reached linearly from 0 over warmup_steps
    warmup_steps: int = 5000
    total_steps: int = 210_000  # linear decay to 0 at this update (also where training stops)
    batch_size: int = 128  # global: windows per optimizer update over all processes
    beta1: float = 0.9
    beta2: float = 0.98
    adam_eps: float = 1e-6
    weight_decay: float = 0.01  # decoupled (AdamW), as fairseq's Adam
    split_seed: int = 1998  # the train/valid/test shuffle (reference seed)
    valid_fraction: float = 0.01  # 99 % train; at least one piece each for valid and test when possible
    window_stride: int = 1024  # windows per piece and epoch: ceil((steps + U{0..stride-1}) / stride)
    relabel_tracks: bool = True  # random permutation of the 40 track ids per window (§4.3)

    def __post_init__(self) -> None:
        for name in ("warmup_steps", "total_steps", "batch_size", "window_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SymphonyTrainingConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"SymphonyTrainingConfig.learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ConfigError(f"SymphonyTrainingConfig.valid_fraction must be in [0, 1), got {self.valid_fraction}")

    @classmethod
    def preset_config(cls, name: str, *, model: SymphonyConfig | None = None, **overrides) -> SymphonyTrainingConfig:
        """The recipe of preset ``name`` (``full``/``small``/``debug``); ``model`` defaults to the same preset."""
        if name not in _TRAINING_PRESETS:
            raise ConfigError(f"unknown SymphonyNet preset {name!r}; choose from {sorted(_TRAINING_PRESETS)}")
        model = model if model is not None else SymphonyConfig.preset(name)
        return cls(model=model, **{**_TRAINING_PRESETS[name], **overrides})

    def replace_model(self, **changes) -> SymphonyTrainingConfig:
        """A copy with some model fields changed (vocabulary and table sizes measured on the data)."""
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **changes))


PRESETS = tuple(_MODEL_PRESETS)
